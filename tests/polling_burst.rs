//! A participant on HTTP long-polling (the transport every socket.io-client starts on, and
//! stays on where WebSockets are blocked) in a busy room: when a burst of room traffic
//! arrives faster than its polls drain it, it must get every event, or be disconnected so
//! that it reconnects and resyncs. Silently losing some (chat, `user-joined`, acks) leaves its
//! view of the room wrong with no way to notice.

mod common;
mod raw;

use std::time::Duration;

use common::TestServer;
use prolitemeet_server::Config;
use raw::{RawPolling, Recv, Sio, parse_sio};
use serde_json::json;

/// Twenty talkers, each sending 20 chat messages at once: 400 messages, every one of them
/// allowed by the default rate limits (burst 250).
const TALKERS: usize = 20;
const EACH: usize = 20;
/// The poller's network: 50 ms per round trip (a good mobile link).
const RTT: Duration = Duration::from_millis(50);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_polling_participant_gets_every_event_of_a_burst_or_is_disconnected() {
    let server = TestServer::with(|c| c.rate_limits = Config::default().rate_limits).await;
    let mut poller = RawPolling::connect(server.addr).await;
    poller.join("BUSY", "Poller").await;
    let mut talkers = Vec::new();
    for i in 0..TALKERS {
        let t = server.joined("BUSY", &format!("T{i}")).await;
        talkers.push(t);
    }
    // The poller reads the joins, then the burst begins while it keeps polling.
    for _ in 0..TALKERS {
        poller.expect_event("participants-updated").await;
    }
    poller.poll_delay = RTT;
    let reader = tokio::spawn(async move {
        let mut got = 0usize;
        let mut closed = false;
        while got < TALKERS * EACH {
            match poller.recv(Duration::from_millis(1500)).await {
                Recv::Msg(m) => {
                    if let Sio::Event { name, .. } = parse_sio(&m)
                        && name == "new-message"
                    {
                        got += 1;
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
        (got, closed)
    });
    let sends = talkers.iter().enumerate().map(|(i, t)| async move {
        for j in 0..EACH {
            t.emit("send-message", json!({"message": format!("T{i} #{j}")}))
                .await;
        }
    });
    futures_util::future::join_all(sends).await;
    let (got, closed) = reader.await.expect("reader");
    println!(
        "polling participant ({} ms per poll): got {got} of {} burst messages; session closed: {closed}",
        RTT.as_millis(),
        TALKERS * EACH
    );
    for t in talkers.iter_mut() {
        t.drain_events();
    }
    assert!(
        got == TALKERS * EACH || closed,
        "the polling participant silently lost {} of {} messages and is still connected",
        TALKERS * EACH - got,
        TALKERS * EACH
    );
}
