//! Slow consumers: participants that stop reading their socket (with a small receive buffer,
//! so back-pressure reaches the server at once) must not make the server buffer without
//! bound, and the other participants of the room must keep getting every message.
//!
//! The server runs in this process, so its memory is this process's RSS (VmRSS).
//!
//! Sizing: one slow reader of a few thousand 1 KB messages is only a few MB in all, which
//! could never break a +64 MB bound even if the server kept every byte. So several slow
//! readers get 8 KB messages: kept whole, what is addressed to them would be
//! `SLOW_READERS × MESSAGES × 8 KB` ≈ 144 MB, far past the bound.

mod common;
mod raw;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use common::TestServer;
use raw::{RawWs, Recv, Sio, parse_sio, rss_kib};
use serde_json::json;

const SLOW_READERS: usize = 6;
const MESSAGES: usize = 3000;
/// 2000 four-byte characters: the longest chat message, 8 KB of UTF-8.
const CHARS: usize = 2000;
const RSS_BOUND_KIB: u64 = 64 * 1024;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_that_stop_reading_cost_bounded_memory_and_nobody_else_waits() {
    let server = TestServer::start().await;
    let addr = server.addr;
    let mut slow = Vec::new();
    for i in 0..SLOW_READERS {
        let mut s = RawWs::connect_with(addr, Some(4096)).await;
        s.join("SLOW", &format!("Sloth{i}")).await;
        slow.push(s);
    }
    // From here on, no slow reader's socket is read.
    let mut ann = server.joined("SLOW", "Ann").await;
    let mut bob = server.joined("SLOW", "Bob").await;
    ann.wait_for("participants-updated").await;
    server.await_counts((1, SLOW_READERS as u64 + 2)).await;
    let slow_ids: Vec<String> = slow.iter().map(|s| s.sid.clone()).collect();

    let rss_before = rss_kib();
    let peak = Arc::new(AtomicU64::new(rss_before));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kib(), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        })
    };

    // Bob counts every message from Ann, in order and intact, as they come.
    let ann_id = ann.id.clone();
    let counter = tokio::spawn(async move {
        let mut got = 0usize;
        let mut worst = Duration::ZERO;
        let mut last = Instant::now();
        while got < MESSAGES {
            let (name, m) = bob.next().await;
            if name != "new-message" {
                continue;
            }
            assert_eq!(m["senderId"], ann_id.as_str());
            let text = m["message"].as_str().expect("text");
            assert_eq!(
                text.get(..5).and_then(|n| n.parse::<usize>().ok()),
                Some(got),
                "Bob got message {got} out of order or damaged"
            );
            assert_eq!(text.chars().count(), CHARS);
            got += 1;
            worst = worst.max(last.elapsed());
            last = Instant::now();
        }
        (bob, got, worst)
    });

    let started = Instant::now();
    let body = "😀".repeat(CHARS - 5);
    for i in 0..MESSAGES {
        ann.emit("send-message", json!({"message": format!("{i:05}{body}")}))
            .await;
        // Ann reads her own echoes as she goes, so the test's buffers stay small.
        if i % 50 == 49 {
            for _ in 0..50 {
                ann.wait_for("new-message").await;
            }
        }
    }
    let (mut bob, got, worst_gap) = counter.await.expect("Bob's counter");
    let elapsed = started.elapsed();
    sampling.store(false, Ordering::Relaxed);
    sampler.await.ok();
    let rss_after = rss_kib();
    let rss_peak = peak.load(Ordering::Relaxed).max(rss_after);
    let sent_mb = (MESSAGES * CHARS * 4) as f64 / 1e6;

    println!("=== slow consumers ===");
    println!(
        "{SLOW_READERS} readers stopped reading (SO_RCVBUF 4 KiB); Ann sent {MESSAGES} messages of {CHARS} chars \
         ({sent_mb:.0} MB, so {:.0} MB addressed to the slow readers) in {:.1} s; Bob got {got}, longest gap {:.0} ms",
        sent_mb * SLOW_READERS as f64,
        elapsed.as_secs_f64(),
        worst_gap.as_secs_f64() * 1e3
    );
    println!(
        "RSS before {} MiB, after {} MiB (+{} MiB), peak {} MiB (+{} MiB); bound +{} MiB",
        rss_before / 1024,
        rss_after / 1024,
        rss_after.saturating_sub(rss_before) / 1024,
        rss_peak / 1024,
        rss_peak.saturating_sub(rss_before) / 1024,
        RSS_BOUND_KIB / 1024
    );
    assert_eq!(got, MESSAGES, "Bob missed messages");
    assert!(
        rss_peak.saturating_sub(rss_before) < RSS_BOUND_KIB,
        "RSS grew by {} MiB while readers were stalled",
        rss_peak.saturating_sub(rss_before) / 1024
    );
    assert!(
        worst_gap < Duration::from_secs(2),
        "Bob waited {worst_gap:?} for a message"
    );

    // What becomes of the slow readers? Watch for a while (not asserted: the issue asks for a
    // disconnect, but only within an unspecified time).
    let observe = std::env::var("SLOW_CONSUMER_OBSERVE_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(10u64);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(observe);
    let mut gone = Vec::new();
    while gone.len() < SLOW_READERS && tokio::time::Instant::now() < deadline {
        // `TestClient::next` panics after `WAIT` of silence: listen in shorter windows.
        let window = (deadline - tokio::time::Instant::now()).min(Duration::from_secs(2));
        match tokio::time::timeout(window, bob.next()).await {
            Ok((name, payload)) if name == "user-left" => {
                let id = payload["participantId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                assert!(slow_ids.contains(&id), "someone else left: {payload}");
                gone.push((id, started.elapsed()));
            }
            Ok(_) | Err(_) => {}
        }
    }
    match gone.first() {
        Some((_, after)) => println!(
            "the server disconnected {} of {SLOW_READERS} slow readers; the first {:.1} s after the chat began, the last {:.1} s",
            gone.len(),
            after.as_secs_f64(),
            gone.last().map(|g| g.1.as_secs_f64()).unwrap_or_default()
        ),
        None => println!(
            "the server did NOT disconnect any slow reader within {observe} s after the chat ended \
             ({:.1} s after it began)",
            started.elapsed().as_secs_f64()
        ),
    }

    // And what did a slow reader get, once it reads again?
    let mut first = slow.remove(0);
    let mut received = 0usize;
    let mut closed = false;
    loop {
        match first.recv(Duration::from_millis(500)).await {
            Recv::Msg(m) => {
                if let Sio::Event { name, .. } = parse_sio(&m)
                    && name == "new-message"
                {
                    received += 1;
                }
            }
            Recv::Binary(_) => {}
            Recv::Closed => {
                closed = true;
                break;
            }
            Recv::Timeout => break,
        }
    }
    println!(
        "the first slow reader, reading again, found {received} of {MESSAGES} messages; its session was {}",
        if closed { "closed" } else { "still open" }
    );
    server.counts().await;
}
