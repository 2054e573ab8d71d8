//! Floods: a client sending chat as fast as it can is answered `rate_limited`, then
//! disconnected, while a bystander in the same room keeps getting a polite client's messages
//! promptly; and the default signaling limits let a real call's burst of ICE candidates through.

mod common;
mod raw;

use std::time::{Duration, Instant};

use common::TestServer;
use futures_util::{SinkExt, StreamExt};
use prolitemeet_server::Config;
use prolitemeet_server::limits::{Rate, RateLimits};
use raw::{RawWs, Sio, eio_message, event_packet, parse_sio};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

const CHAT_RATE: f64 = 5.0;
const CHAT_BURST: f64 = 10.0;
const DISCONNECT_AFTER: u32 = 50;

/// What the flooder saw.
#[derive(Debug, Default)]
struct FloodReport {
    rate_limited: usize,
    other_errors: Vec<serde_json::Value>,
    own_messages_echoed: usize,
    /// When the server ended the session, counted from the first flood message.
    disconnected_after: Option<Duration>,
    /// `41` (Socket.IO disconnect) before the transport closed.
    got_disconnect_packet: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chat_flooder_is_limited_then_disconnected_and_the_room_is_unaffected() {
    let server = TestServer::with(|c| {
        c.rate_limits = RateLimits {
            chat: Rate {
                per_sec: CHAT_RATE,
                burst: CHAT_BURST,
            },
            disconnect_after: DISCONNECT_AFTER,
            ..Config::default().rate_limits
        };
    })
    .await;
    let mut bystander = server.joined("FLOOD", "Bystander").await;
    let mut polite = server.joined("FLOOD", "Polite").await;
    let mut flooder = RawWs::connect(server.addr).await;
    flooder.join("FLOOD", "Flooder").await;
    let flooder_id = flooder.sid.clone();
    for _ in 0..2 {
        bystander.wait_for("participants-updated").await;
    }
    polite.wait_for("participants-updated").await;
    server.await_counts((1, 3)).await;

    // The flooder writes as fast as the socket takes it; its reader tallies the answers.
    let (mut sink, mut stream) = flooder.split();
    let flood_started = Instant::now();
    let writer = tokio::spawn(async move {
        let mut sent = 0usize;
        for i in 0..2000 {
            let packet = eio_message(&event_packet(
                "send-message",
                &json!({"message": format!("flood {i}")}),
                None,
            ));
            if sink.send(Message::text(packet)).await.is_err() {
                break;
            }
            sent += 1;
        }
        sent
    });
    let me = flooder_id.clone();
    let reader = tokio::spawn(async move {
        let mut report = FloodReport::default();
        loop {
            let next = tokio::time::timeout(common::WAIT, stream.next()).await;
            let text = match next {
                Err(_) => break, // never disconnected: asserted below
                Ok(None | Some(Err(_)) | Some(Ok(Message::Close(_)))) => {
                    report.disconnected_after = Some(flood_started.elapsed());
                    break;
                }
                Ok(Some(Ok(Message::Text(t)))) => t.to_string(),
                Ok(Some(Ok(_))) => continue,
            };
            let Some(sio) = text.strip_prefix('4') else {
                continue;
            };
            match parse_sio(sio) {
                Sio::Event { name, args, .. } if name == "error" => {
                    if args[0]["code"] == "rate_limited" && args[0]["event"] == "send-message" {
                        report.rate_limited += 1;
                    } else {
                        report.other_errors.push(args[0].clone());
                    }
                }
                Sio::Event { name, args, .. }
                    if name == "new-message" && args[0]["senderId"] == me.as_str() =>
                {
                    report.own_messages_echoed += 1;
                }
                Sio::Disconnect(_) => report.got_disconnect_packet = true,
                _ => {}
            }
        }
        report
    });

    // Meanwhile a polite participant talks; the bystander must hear each message promptly,
    // whatever the flooder does.
    let mut latencies = Vec::new();
    let mut flooder_heard = 0usize;
    let mut flooder_left = None;
    let mut list_after_leave = None;
    for i in 0..5 {
        let text = format!("polite {i}");
        let sent = Instant::now();
        polite.emit("send-message", json!({"message": text})).await;
        loop {
            let (name, payload) = bystander.next().await;
            match name.as_str() {
                "new-message" if payload["senderId"] == flooder_id.as_str() => flooder_heard += 1,
                "new-message" => {
                    assert_eq!(payload["message"], text.as_str());
                    assert_eq!(payload["senderId"], polite.id.as_str());
                    latencies.push(sent.elapsed());
                    break;
                }
                "user-left" => {
                    assert_eq!(payload["participantId"], flooder_id.as_str());
                    flooder_left = Some(flood_started.elapsed());
                }
                "participants-updated" if flooder_left.is_some() => {
                    list_after_leave = Some(payload)
                }
                "participants-updated" => {}
                other => panic!("bystander got `{other}` {payload}"),
            }
        }
    }
    // The flooder is disconnected, and the room is told.
    while flooder_left.is_none() {
        let (name, payload) = bystander.next().await;
        match name.as_str() {
            "new-message" => {
                assert_eq!(payload["senderId"], flooder_id.as_str(), "{payload}");
                flooder_heard += 1;
            }
            "user-left" => {
                assert_eq!(payload["participantId"], flooder_id.as_str());
                flooder_left = Some(flood_started.elapsed());
            }
            "participants-updated" => {}
            other => panic!("bystander got `{other}` {payload}"),
        }
    }
    let list = match list_after_leave {
        Some(list) => list,
        None => bystander.wait_for("participants-updated").await,
    };
    assert_eq!(
        common::ids(&list),
        [bystander.id.clone(), polite.id.clone()],
        "only the flooder left"
    );
    let sent = writer.await.expect("writer");
    let report = reader.await.expect("reader");
    let flood_secs = flood_started.elapsed().as_secs_f64();

    // After the flood, the polite client still talks freely.
    for i in 5..7 {
        let text = format!("polite {i}");
        let t = Instant::now();
        polite.emit("send-message", json!({"message": text})).await;
        let m = bystander.wait_for("new-message").await;
        assert_eq!(m["message"], text.as_str());
        latencies.push(t.elapsed());
    }
    // The polite client was never limited.
    while let Ok((name, payload)) = tokio::time::timeout(common::QUIET, polite.next()).await {
        assert_ne!(name, "error", "polite client got {payload}");
    }
    server.await_counts((1, 2)).await;

    println!(
        "=== chat flood (CHAT_RATE_PER_SEC={CHAT_RATE}, CHAT_BURST={CHAT_BURST}, RATE_LIMIT_DISCONNECT_AFTER={DISCONNECT_AFTER}) ==="
    );
    println!(
        "flooder wrote {sent} messages; got {} rate_limited errors, {} of its messages echoed; \
         disconnect packet: {}; session ended {:?} after the flood began; bystander heard {flooder_heard} flood messages; \
         user-left seen at {:?}",
        report.rate_limited,
        report.own_messages_echoed,
        report.got_disconnect_packet,
        report.disconnected_after,
        flooder_left
    );
    println!(
        "polite messages' latency at the bystander: {:?}",
        latencies
            .iter()
            .map(|d| format!("{:.1} ms", d.as_secs_f64() * 1e3))
            .collect::<Vec<_>>()
    );

    assert!(report.other_errors.is_empty(), "{:?}", report.other_errors);
    assert!(
        report.rate_limited >= 1,
        "the flooder was never told rate_limited"
    );
    assert!(
        report.rate_limited <= DISCONNECT_AFTER as usize + 1,
        "{} refusals before the disconnect (threshold {DISCONNECT_AFTER})",
        report.rate_limited
    );
    assert!(
        report.disconnected_after.is_some(),
        "the flooder's session was not closed"
    );
    // Dropped events stay dropped: the room heard at most the burst plus the refill.
    let allowed = (CHAT_BURST + CHAT_RATE * flood_secs).ceil() as usize + 1;
    assert!(
        flooder_heard <= allowed,
        "the room heard {flooder_heard} flood messages; at most {allowed} are allowed"
    );
    assert_eq!(
        flooder_heard, report.own_messages_echoed,
        "what the flooder saw echoed"
    );
    for (i, latency) in latencies.iter().enumerate() {
        assert!(
            *latency < Duration::from_secs(1),
            "polite message {i} took {latency:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_signaling_limits_let_a_burst_of_60_ice_candidates_through() {
    let server = TestServer::with(|c| c.rate_limits = Config::default().rate_limits).await;
    let mut a = server.joined("CALL", "Ann").await;
    let mut b = server.joined("CALL", "Bob").await;
    a.wait_for("participants-updated").await;
    let offer = json!({"type": "offer", "sdp": "v=0\r\n".repeat(200)});
    a.emit("webrtc-offer", json!({"targetId": b.id, "offer": offer}))
        .await;
    let started = Instant::now();
    let candidates: Vec<_> = (0..60)
        .map(|i| {
            json!({
                "candidate": format!("candidate:{i} 1 udp {} 192.0.2.{} {} typ host", 2_122_260_223u32 - i, i % 250, 50_000 + i),
                "sdpMid": "0",
                "sdpMLineIndex": 0
            })
        })
        .collect();
    for c in &candidates {
        a.emit(
            "webrtc-ice-candidate",
            json!({"targetId": b.id, "candidate": c}),
        )
        .await;
    }
    a.emit(
        "webrtc-ice-candidate",
        json!({"targetId": b.id, "candidate": null}),
    )
    .await;
    assert_eq!(b.expect("webrtc-offer").await["offer"], offer);
    for c in candidates.iter().chain([&serde_json::Value::Null]) {
        let got = b.expect("webrtc-ice-candidate").await;
        assert_eq!(
            got,
            json!({"senderId": a.id, "senderSocketId": a.id, "candidate": c}),
            "candidates arrive untouched and in order"
        );
    }
    println!(
        "61 ICE candidates (60 + end-of-candidates) relayed in {:.1} ms under the default limits",
        started.elapsed().as_secs_f64() * 1e3
    );
    a.expect_quiet().await;
    b.expect_quiet().await;
}

/// A flooder that slips one allowed event of another class (a connection request to itself,
/// which bothers nobody) between its refused chat messages resets the "refused in a row"
/// count, so it is never disconnected while every chat it floods is answered with an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooder_cannot_dodge_the_disconnect_by_mixing_in_allowed_events() {
    let server = TestServer::with(|c| {
        c.rate_limits = RateLimits {
            chat: Rate {
                per_sec: CHAT_RATE,
                burst: CHAT_BURST,
            },
            disconnect_after: DISCONNECT_AFTER,
            ..Config::default().rate_limits
        };
    })
    .await;
    let mut bystander = server.joined("DODGE", "Bystander").await;
    let mut flooder = RawWs::connect(server.addr).await;
    flooder.join("DODGE", "Flooder").await;
    let me = flooder.sid.clone();
    bystander.wait_for("participants-updated").await;

    // 1000 chat messages in a row, with a harmless allowed event after every 25.
    let total = 1000usize;
    let mut frames = Vec::new();
    for i in 0..total {
        frames.push(event_packet(
            "send-message",
            &json!({"message": format!("flood {i}")}),
            None,
        ));
        if i % 25 == 24 {
            frames.push(event_packet(
                "request-connection",
                &json!({"targetId": me}),
                None,
            ));
        }
    }
    // The last event asks for an ack, so we know when the server has handled everything.
    frames.push(event_packet(
        "request-connection",
        &json!({"targetId": me}),
        Some(1),
    ));
    for f in &frames {
        if flooder.send_sio(f).await.is_err() {
            break;
        }
    }
    let mut refused = 0usize;
    let mut echoed = 0usize;
    // Read until the final ack (still connected), a disconnect, or silence. The ack may
    // have been dropped if the server's buffer for this socket was full at that moment; a
    // second probe, sent once everything is read, settles it.
    let mut probe = 1;
    let disconnected = loop {
        match flooder.recv(common::WAIT).await {
            raw::Recv::Closed => break true,
            raw::Recv::Timeout if probe == 1 => {
                probe = 2;
                let again = event_packet("request-connection", &json!({"targetId": me}), Some(2));
                if flooder.send_sio(&again).await.is_err() {
                    break true;
                }
            }
            raw::Recv::Timeout => panic!("no answer to a probe, and no disconnect"),
            raw::Recv::Binary(_) => {}
            raw::Recv::Msg(m) => match parse_sio(&m) {
                Sio::Disconnect(_) => break true,
                Sio::Ack { id, .. } if id == probe => break false,
                Sio::Event { name, args, .. } if name == "error" => {
                    assert_eq!(args[0]["code"], "rate_limited");
                    refused += 1;
                }
                Sio::Event { name, args, .. } if name == "new-message" => {
                    assert_eq!(args[0]["senderId"], me.as_str());
                    echoed += 1;
                }
                _ => {}
            },
        }
    };
    println!(
        "mixed flood: {total} chat messages, {refused} refused with rate_limited, {echoed} let through, disconnected: {disconnected}"
    );
    assert!(
        refused > DISCONNECT_AFTER as usize,
        "only {refused} refusals"
    );
    assert!(
        disconnected,
        "a client refused {refused} times (threshold {DISCONNECT_AFTER}) stayed connected by \
         slipping an allowed event of another class in every 25 messages"
    );
}
