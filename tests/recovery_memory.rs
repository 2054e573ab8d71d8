//! Call continuity at scale (issue 18): 10,000 participants in rooms of five lose their
//! connections at once and never come back. While their sessions wait (RECOVERY_WINDOW_S),
//! `/health` counts them as `reconnecting`; once the window has passed they are all gone
//! (`/health` back to 0 connections, 0 participants, 0 rooms) and none of them ever was a
//! slow consumer. The server is the built binary (its own process, so its memory is its
//! own); the clients are lean raw WebSocket clients that answer pings. It prints the server's
//! RSS at each stage; it asserts only a loose bound (memory goals live in bench/).

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::server_command;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, mpsc};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const SESSIONS: usize = 10_000;
const ROOM_SIZE: usize = 5;
const WINDOW_S: u64 = 15;
/// Clients connecting at once.
const CONCURRENCY: usize = 200;
/// A generous bound on what one abandoned session may cost (debug build, allocator slack):
/// far above the ~20 KB measured, far below what an unbounded buffer would take.
const MAX_BYTES_PER_SESSION: u64 = 200 * 1024;

/// The server process's resident set size, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .expect("/proc/<pid>/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

async fn health(http: &reqwest::Client, addr: SocketAddr) -> Value {
    http.get(format!("http://{addr}/health"))
        .send()
        .await
        .expect("GET /health")
        .json()
        .await
        .expect("health JSON")
}

/// One participant: connects, joins `room`, reports, then answers pings until aborted
/// (dropping its connection with no goodbye, as a dead network does).
async fn participant(addr: SocketAddr, room: String, joined: mpsc::UnboundedSender<()>) {
    let stream = TcpStream::connect(addr).await.expect("tcp connect");
    // Small buffers: 10,000 of these live in the test process.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, stream, Some(config))
        .await
        .expect("websocket handshake");
    let mut sent_join = false;
    let mut reported = false;
    while let Some(Ok(message)) = ws.next().await {
        let Message::Text(text) = message else {
            continue;
        };
        let text = text.as_str();
        if text.starts_with('0') {
            ws.send(Message::text("40")).await.expect("send 40");
        } else if text == "2" {
            ws.send(Message::text("3")).await.expect("pong");
        } else if text.starts_with("40") && !sent_join {
            sent_join = true;
            let join = json!(["join-room", {"roomId": room, "userName": "p"}]);
            ws.send(Message::text(format!("42{join}")))
                .await
                .expect("join");
        } else if text.starts_with("42[\"joined-room\"") && !reported {
            reported = true;
            joined.send(()).ok();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_abandoned_sessions_are_bounded_and_gone_after_the_window() {
    let window = WINDOW_S.to_string();
    let child = server_command(&[
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("LOG_FORMAT", "json"),
        (
            "RUST_LOG",
            "warn,prolitemeet_server=info,prolitemeet_server::signaling=warn",
        ),
        ("RECOVERY_WINDOW_S", &window),
        ("MAX_CONNECTIONS", "0"),
        ("MAX_ROOMS", "0"),
        ("MAX_ROOMS_PER_ADDRESS", "0"),
        ("ROOM_CREATE_RATE_PER_SEC", "0"),
        ("EMPTY_ROOM_TTL_SECS", "0"),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit())
    .spawn()
    .expect("spawn the server");
    let mut child = common::Running(child);
    let pid = child.0.id();
    let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout"));
    let mut first = String::new();
    stdout.read_line(&mut first).expect("a log line");
    let address: Value = serde_json::from_str(&first).expect("JSON log line");
    let addr: SocketAddr = address["address"]
        .as_str()
        .expect("address")
        .parse()
        .expect("socket address");
    // Keep reading its logs, so its pipe never fills; count warnings about slow consumers.
    let logs = std::thread::spawn(move || {
        let mut slow_consumers = 0;
        for line in stdout.lines().map_while(Result::ok) {
            if line.contains("slow consumer") {
                slow_consumers += 1;
            }
        }
        slow_consumers
    });
    let http = reqwest::Client::new();
    let baseline = rss_kib(pid);

    let started = Instant::now();
    let (joined_tx, mut joined_rx) = mpsc::unbounded_channel();
    let gate = Arc::new(Semaphore::new(CONCURRENCY));
    let mut tasks = Vec::with_capacity(SESSIONS);
    for i in 0..SESSIONS {
        let permit = gate.clone().acquire_owned().await.expect("semaphore");
        let joined = joined_tx.clone();
        let (ready_tx, ready_rx) = mpsc::unbounded_channel();
        tasks.push(tokio::spawn(participant(
            addr,
            format!("mem-{}", i / ROOM_SIZE),
            ready_tx,
        )));
        tokio::spawn(async move {
            let mut ready_rx = ready_rx;
            if ready_rx.recv().await.is_some() {
                joined.send(()).ok();
            }
            drop(permit);
        });
    }
    drop(joined_tx);
    for n in 0..SESSIONS {
        tokio::time::timeout(Duration::from_secs(60), joined_rx.recv())
            .await
            .unwrap_or_else(|_| panic!("only {n} of {SESSIONS} joined"))
            .expect("joined");
    }
    let setup = started.elapsed();
    let h = health(&http, addr).await;
    assert_eq!(h["connections"], SESSIONS, "{h}");
    assert_eq!(h["totalParticipants"], SESSIONS, "{h}");
    let connected = rss_kib(pid);

    // Every network dies at once.
    for task in &tasks {
        task.abort();
    }
    let cut = Instant::now();
    let mut peak = (0, connected);
    let all_waiting = loop {
        let h = health(&http, addr).await;
        let waiting = h["reconnecting"].as_u64().expect("reconnecting");
        let rss = rss_kib(pid);
        if waiting >= peak.0 {
            peak = (waiting, rss.max(peak.1));
        }
        if waiting == SESSIONS as u64 {
            assert_eq!(h["totalParticipants"], SESSIONS, "all still listed: {h}");
            assert_eq!(h["connections"], SESSIONS, "all still counted: {h}");
            break cut.elapsed();
        }
        assert!(
            cut.elapsed() < Duration::from_secs(WINDOW_S),
            "not all sessions were waiting within the window: {h}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let detached = rss_kib(pid).max(peak.1);

    // The window passes: everything is gone.
    let gone = loop {
        let h = health(&http, addr).await;
        if h["connections"] == 0
            && h["reconnecting"] == 0
            && h["totalParticipants"] == 0
            && h["activeRooms"] == 0
        {
            break cut.elapsed();
        }
        assert!(
            cut.elapsed() < Duration::from_secs(WINDOW_S + 60),
            "still there {:?} after the cut: {h}",
            cut.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let after = rss_kib(pid);
    let per_session = (detached.saturating_sub(baseline)) * 1024 / SESSIONS as u64;
    println!(
        "server RSS: baseline {baseline} KiB; {SESSIONS} joined (setup {setup:.1?}) {connected} KiB; \
         all waiting for their client ({all_waiting:.1?} after the cut) {detached} KiB \
         (~{per_session} B per session over the baseline); all gone {gone:.1?} after the cut \
         (window {WINDOW_S} s) {after} KiB"
    );
    assert!(
        gone >= Duration::from_secs(WINDOW_S) - Duration::from_secs(1),
        "sessions ended before their window ({gone:?})"
    );
    assert!(
        per_session < MAX_BYTES_PER_SESSION,
        "{per_session} B per abandoned session"
    );
    drop(child);
    assert_eq!(logs.join().expect("log reader"), 0, "no slow consumer");
}
