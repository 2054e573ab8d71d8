//! Measures what connection state recovery costs in memory: the bytes still allocated, counted
//! by a wrapping global allocator, while N long-polling sockets are connected, once each got
//! K room broadcasts, once their connections all died at once (their sessions kept), and once
//! the window passed. Requests go to the service in process (no TCP), so the figures are the
//! server's alone.
//!
//! `cargo run --release --example recovery_memory -- [N] [K] [on|off]`

use std::{
    alloc::{GlobalAlloc, Layout, System},
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use socketioxide::{SocketIo, extract::SocketRef};
use tower_service::Service;

struct Counting;
static LIVE: AtomicUsize = AtomicUsize::new(0);
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size(), Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}
#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> usize {
    LIVE.load(Ordering::Relaxed)
}

async fn until(what: &str, check: impl Fn() -> bool) {
    for _ in 0..600 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never: {what}");
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let n: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(10_000);
    let k: usize = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let recovery = args.get(3).map(String::as_str) != Some("off");

    let window = Duration::from_secs(3);
    let mut builder = SocketIo::builder()
        .ping_interval(Duration::from_secs(1))
        .ping_timeout(Duration::from_secs(1));
    if recovery {
        builder = builder.connection_state_recovery(window, 1000);
    }
    let (svc, io) = builder.build_svc();
    let lost = Arc::new(AtomicUsize::new(0));
    let ended = Arc::new(AtomicUsize::new(0));
    let (lost2, ended2) = (lost.clone(), ended.clone());
    io.ns("/", async move |s: SocketRef| {
        s.join("room");
        let lost = lost2.clone();
        s.on_transport_lost(async move || {
            lost.fetch_add(1, Ordering::Relaxed);
        });
        let ended = ended2.clone();
        s.on_disconnect(async move || {
            ended.fetch_add(1, Ordering::Relaxed);
        });
    });

    let request = |method: &str, query: String, body: &'static str| {
        http::Request::builder()
            .method(method)
            .uri(format!(
                "http://127.0.0.1/socket.io/?EIO=4&transport=polling{query}"
            ))
            .body(Full::new(Bytes::from_static(body.as_bytes())))
            .unwrap()
    };
    let baseline = live();
    for _ in 0..n {
        let res = svc
            .clone()
            .call(request("GET", String::new(), ""))
            .await
            .unwrap();
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let open: serde_json::Value = serde_json::from_slice(&body[1..]).unwrap();
        let sid = open["sid"].as_str().unwrap().to_string();
        svc.clone()
            .call(request("POST", format!("&sid={sid}"), "40"))
            .await
            .unwrap();
    }
    until("all connected", || io.sockets().len() == n).await;
    let connected = live();
    for i in 0..k {
        io.to("room")
            .emit("event", &format!("payload {i:>20}"))
            .await
            .unwrap();
    }
    let with_packets = live();
    // Nobody polls: every connection dies of a heartbeat timeout, at about the same time.
    let detached = if recovery {
        until("all lost", || lost.load(Ordering::Relaxed) == n).await;
        live()
    } else {
        0
    };
    until("all ended", || {
        ended.load(Ordering::Relaxed) == n && io.sockets().is_empty()
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = live();

    let per = |bytes: usize| bytes.saturating_sub(baseline) as f64 / n as f64;
    println!(
        "recovery {}: {n} sockets, {k} broadcasts of ~40 bytes",
        if recovery { "on" } else { "off" }
    );
    println!(
        "  connected, idle:            {:>9.0} B/socket",
        per(connected)
    );
    println!(
        "  connected, {k} unproven:     {:>9.0} B/socket",
        per(with_packets)
    );
    if recovery {
        println!(
            "  all detached (kept):        {:>9.0} B/session",
            per(detached)
        );
    }
    println!(
        "  after the window:           {:>9} B in all ({:+} B from the start)",
        after,
        after as isize - baseline as isize
    );
}
