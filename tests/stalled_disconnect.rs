//! A participant whose socket has stopped draining (a stalled reader, or a phone whose network
//! died without a FIN) must still leave its room when the server ends its session — here
//! because it then sends a broken packet, which makes the server close the session at once.
//! The others must get `user-left`, and `/health` must stop counting it.
//!
//! (The server-side heartbeat ends such a session the same way about 25 s after its last
//! pong; this test takes the fast path to the same code.)

mod common;
mod raw;

use std::time::{Duration, Instant};

use common::TestServer;
use raw::RawWs;
use serde_json::json;

/// 1500 messages of 8 KB: far more than the socket buffers between the server and a reader
/// that does not read (4 KiB receive buffer) can hold, so the server's writer for it stalls.
const MESSAGES: usize = 1500;
const CHARS: usize = 2000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_reader_that_the_server_disconnects_leaves_its_room() {
    let server = TestServer::start().await;
    let mut stalled = RawWs::connect_with(server.addr, Some(4096)).await;
    stalled.join("STALL", "Stalled").await;
    let stalled_id = stalled.sid.clone();
    let mut ann = server.joined("STALL", "Ann").await;
    let mut bob = server.joined("STALL", "Bob").await;
    ann.wait_for("participants-updated").await;
    server.await_counts((1, 3)).await;

    // The room chats; the stalled reader reads nothing.
    let body = "😀".repeat(CHARS);
    for i in 0..MESSAGES {
        ann.emit("send-message", json!({"message": body})).await;
        if i % 50 == 49 {
            for _ in 0..50 {
                ann.wait_for("new-message").await;
            }
        }
    }
    // The server may evict the stalled reader already, as a slow consumer whose outgoing
    // buffer filled up: then the room hears `user-left` in the middle of the chat.
    let mut chats = 0;
    let mut evicted_early = false;
    while chats < MESSAGES {
        let (name, payload) = bob.next().await;
        match name.as_str() {
            "new-message" => chats += 1,
            "user-left" if payload["participantId"] == stalled_id.as_str() => evicted_early = true,
            _ => {}
        }
    }
    if evicted_early {
        println!("stalled reader evicted as a slow consumer while the room chatted");
        server.await_counts((1, 2)).await;
        return;
    }

    // Now it breaks the protocol: the server closes its session on the spot.
    let closed_at = Instant::now();
    stalled.send_text("42[").await.expect("send");

    let deadline = tokio::time::Instant::now() + common::WAIT;
    let mut left = None;
    while left.is_none() && tokio::time::Instant::now() < deadline {
        let window = (deadline - tokio::time::Instant::now()).min(Duration::from_secs(1));
        if let Ok((name, payload)) = tokio::time::timeout(window, bob.next()).await
            && name == "user-left"
        {
            assert_eq!(payload["participantId"], stalled_id.as_str());
            left = Some(closed_at.elapsed());
        }
    }
    let (_, health) = server.get("/health").await;
    let (_, room) = server.get("/api/room/STALL").await;
    println!(
        "stalled reader closed by the server: user-left after {left:?}; /health {} rooms, {} participants, {} connections; room STALL has {} participants",
        health["activeRooms"],
        health["totalParticipants"],
        health["connections"],
        room["participantCount"]
    );
    if left.is_none() {
        // Diagnosis: let the stalled reader drain its socket, and see whether the departure
        // is announced then (it is, if the stalled write was what blocked the cleanup).
        let drained_at = Instant::now();
        let mut drained = 0usize;
        while let raw::Recv::Msg(_) | raw::Recv::Binary(_) =
            stalled.recv(Duration::from_secs(2)).await
        {
            drained += 1;
        }
        let after = match tokio::time::timeout(common::WAIT, bob.wait_for("user-left")).await {
            Ok(p) if p["participantId"] == stalled_id.as_str() => {
                format!(
                    "`user-left` came {:?} after it started reading again",
                    drained_at.elapsed()
                )
            }
            _ => "no `user-left` even after it read again".to_owned(),
        };
        panic!(
            "the server closed the stalled reader's session, but for {:?} the room never heard \
             `user-left`: a ghost participant ({} participants in STALL, {} connections). The \
             reader then drained {drained} packets; {after}",
            common::WAIT,
            room["participantCount"],
            health["connections"]
        );
    }
    server.await_counts((1, 2)).await;
    drop(stalled);
}

/// The control: the same broken packet from a reader that keeps reading ends its session and
/// the room hears `user-left` at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_packet_ends_a_reading_participant_at_once() {
    let server = TestServer::start().await;
    let mut reader = RawWs::connect(server.addr).await;
    reader.join("CTRL", "Reader").await;
    let reader_id = reader.sid.clone();
    let mut bob = server.joined("CTRL", "Bob").await;
    reader.expect_event("participants-updated").await;
    reader.send_text("42[").await.expect("send");
    let left = bob.wait_for("user-left").await;
    assert_eq!(left["participantId"], reader_id.as_str());
    server.await_counts((1, 1)).await;
}

/// A reader that stalls with fewer packets queued than its outgoing buffer holds is not a
/// slow consumer by that measure; the stalled TCP write is: once no write has progressed
/// for `WRITE_STALL_TIMEOUT_SECS`, its connection is cut and it leaves its room.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_writer_is_cut_off_and_its_participant_leaves() {
    let server = TestServer::with(|c| c.write_stall_timeout = Duration::from_secs(2)).await;
    let mut stalled = RawWs::connect_with(server.addr, Some(4096)).await;
    stalled.join("STALL", "Stalled").await;
    let stalled_id = stalled.sid.clone();
    let mut ann = server.joined("STALL", "Ann").await;
    let body = "😀".repeat(CHARS);
    // 1000 × 8 KB: more than the kernel buffers hold, fewer packets than the socket buffer.
    let started = Instant::now();
    let mut left_after = None;
    let is_departure = |name: &str, payload: &serde_json::Value| {
        name == "user-left" && payload["participantId"] == stalled_id.as_str()
    };
    for i in 0..1000 {
        ann.emit("send-message", json!({"message": body})).await;
        if i % 50 == 49 {
            let mut chats = 0;
            while chats < 50 {
                let (name, payload) = ann.next().await;
                if name == "new-message" {
                    chats += 1;
                }
                if is_departure(&name, &payload) {
                    left_after.get_or_insert(started.elapsed());
                }
            }
        }
    }
    while left_after.is_none() {
        let (name, payload) = ann.next().await;
        if is_departure(&name, &payload) {
            left_after = Some(started.elapsed());
        }
    }
    println!("stalled writer cut off; user-left {left_after:?} after the chat began");
    server.await_counts((1, 1)).await;
    drop(stalled);
}
