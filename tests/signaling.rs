//! Every client → server event of PROTOCOL.md against a live server, with both spellings of
//! every aliased field, both transports, the ordering rules and the room lifecycle.

mod common;
mod raw;

use common::{TestServer, assert_participant, ids};
use raw::{RawWs, Recv};
use rust_socketio::TransportType;
use serde_json::{Value, json};

/// The whole call: join, relay, toggles, screen share, chat, leave — in one dialect or the other.
async fn full_call(transport: TransportType, frontend_dialect: bool) {
    let server = TestServer::with(|c| c.empty_room_ttl = std::time::Duration::ZERO).await;
    let (status, created) = server.post("/api/create-room").await;
    assert_eq!(status, 200);
    let room = created["roomId"].as_str().expect("roomId").to_owned();

    let mut a = server.client_over(transport.clone()).await;
    let mut b = server.client_over(transport).await;
    let joined_a = a.join(&room, "Ann").await;
    assert_participant(&joined_a["participant"], &a.id, "Ann", true);
    assert_eq!(joined_a["roomId"], room.as_str());
    assert_eq!(joined_a["messages"], json!([]));

    b.emit(
        "join-room",
        json!({"roomId": room, "userName": " Bob ", "userAvatar": "https://x.test/b.png"}),
    )
    .await;
    let joined_b = b.expect("joined-room").await;
    b.id = joined_b["participantId"].as_str().expect("id").to_owned();
    assert_participant(&joined_b["participant"], &b.id, "Bob", false);
    assert_eq!(joined_b["participant"]["avatar"], "https://x.test/b.png");
    assert_eq!(ids(&joined_b["participants"]), [a.id.clone(), b.id.clone()]);
    assert_eq!(
        ids(&b.expect("participants-updated").await),
        [a.id.clone(), b.id.clone()]
    );
    let user_joined = a.expect("user-joined").await;
    assert_participant(&user_joined, &b.id, "Bob", false);
    assert_eq!(user_joined["participantId"], b.id.as_str());
    assert_participant(&user_joined["participant"], &b.id, "Bob", false);
    a.expect("participants-updated").await;

    let target = if frontend_dialect {
        "targetSocketId"
    } else {
        "targetId"
    };
    let offer = json!({"type": "offer", "sdp": "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n"});
    a.emit("webrtc-offer", json!({target: b.id, "offer": offer}))
        .await;
    let got = b.expect("webrtc-offer").await;
    assert_eq!(
        got,
        json!({"senderId": a.id, "senderSocketId": a.id, "offer": offer})
    );
    let answer = json!({"type": "answer", "sdp": "v=0"});
    b.emit(
        "webrtc-answer",
        json!({target: a.id, "answer": answer, "roomId": room}),
    )
    .await;
    assert_eq!(
        a.expect("webrtc-answer").await,
        json!({"senderId": b.id, "senderSocketId": b.id, "answer": answer})
    );
    let candidate = json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 5000 typ host", "sdpMid": "0", "sdpMLineIndex": 0});
    for c in [candidate.clone(), Value::Null] {
        a.emit(
            "webrtc-ice-candidate",
            json!({target: b.id, "candidate": c}),
        )
        .await;
        assert_eq!(
            b.expect("webrtc-ice-candidate").await,
            json!({"senderId": a.id, "senderSocketId": a.id, "candidate": c})
        );
    }
    b.emit("request-connection", json!({target: a.id})).await;
    assert_eq!(
        a.expect("connection-request").await,
        json!({"senderId": b.id, "senderSocketId": b.id, "roomId": room})
    );

    if frontend_dialect {
        a.emit("toggle-media", json!({"type": "audio", "enabled": false}))
            .await;
    } else {
        a.emit("toggle-audio", json!({"isAudioMuted": true})).await;
    }
    assert_eq!(
        b.expect("participant-audio-toggled").await,
        json!({"participantId": a.id, "isAudioMuted": true, "isAudioEnabled": false})
    );
    assert_eq!(
        b.expect("media-toggled").await,
        json!({"participantId": a.id, "participantName": "Ann", "type": "audio", "enabled": false})
    );
    let list = b.expect("participants-updated").await;
    assert_eq!(list[0]["isAudioMuted"], true);
    assert_eq!(list[0]["isAudioEnabled"], false);
    assert_eq!(a.expect("participants-updated").await, list);

    if frontend_dialect {
        b.emit("toggle-media", json!({"type": "video", "enabled": false}))
            .await;
    } else {
        b.emit("toggle-video", json!({"isVideoOff": true})).await;
    }
    assert_eq!(
        a.expect("participant-video-toggled").await,
        json!({"participantId": b.id, "isVideoOff": true, "isVideoEnabled": false})
    );
    assert_eq!(
        a.expect("media-toggled").await,
        json!({"participantId": b.id, "participantName": "Bob", "type": "video", "enabled": false})
    );
    assert_eq!(
        a.expect("participants-updated").await[1]["isVideoEnabled"],
        false
    );
    b.expect("participants-updated").await;

    if frontend_dialect {
        a.emit("toggle-screen-share", json!({"isScreenSharing": true}))
            .await;
    } else {
        a.emit_bare("start-screen-share").await;
    }
    assert_eq!(
        b.expect("user-started-screen-share").await,
        json!({"participantId": a.id})
    );
    assert_eq!(
        b.expect("participants-updated").await[0]["isScreenSharing"],
        true
    );
    a.expect("participants-updated").await;
    if frontend_dialect {
        a.emit("toggle-screen-share", json!({"isScreenSharing": false}))
            .await;
    } else {
        a.emit("stop-screen-share", Value::Null).await;
    }
    assert_eq!(
        b.expect("user-stopped-screen-share").await,
        json!({"participantId": a.id})
    );
    assert_eq!(
        b.expect("participants-updated").await[0]["isScreenSharing"],
        false
    );
    a.expect("participants-updated").await;

    b.emit(
        "send-message",
        json!({"message": "  hello  ", "userName": "Mallory", "userAvatar": "https://evil.test"}),
    )
    .await;
    let b_id = b.id.clone();
    for c in [&mut a, &mut b] {
        let m = c.expect("new-message").await;
        assert_eq!(m["message"], "hello");
        assert_eq!(m["userName"], "Bob");
        assert_eq!(m["senderId"], b_id.as_str());
        assert_eq!(m["userAvatar"], "https://x.test/b.png");
        assert!(m["id"].as_str().is_some_and(|id| id.len() == 36));
        assert!(m["timestamp"].as_str().is_some_and(|t| t.ends_with('Z')));
    }

    if frontend_dialect {
        a.emit_bare("leave-room").await;
    } else {
        a.emit("leave-room", json!({"roomId": room})).await;
    }
    assert_eq!(a.expect("left-room").await, json!({"roomId": room}));
    assert_eq!(
        b.expect("user-left").await,
        json!({"participantId": a.id, "userName": "Ann"})
    );
    assert_eq!(
        b.expect("host-changed").await,
        json!({"roomId": room, "hostId": b.id, "previousHostId": a.id})
    );
    let rest = b.expect("participants-updated").await;
    assert_eq!(ids(&rest), [b.id.clone()]);
    assert_eq!(rest[0]["isAdmin"], true, "host passes to Bob");
    server.await_counts((1, 1)).await;
    b.disconnect().await;
    server.await_counts((0, 0)).await;
    a.expect_quiet().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_call_original_dialect_over_websocket() {
    full_call(TransportType::Websocket, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_call_frontend_dialect_over_websocket() {
    full_call(TransportType::Websocket, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_call_original_dialect_over_polling() {
    full_call(TransportType::Polling, false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_call_frontend_dialect_over_polling_with_upgrade() {
    full_call(TransportType::WebsocketUpgrade, true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_of_one_socket_are_handled_in_order() {
    let server = TestServer::start().await;
    let mut a = server.joined("R", "Ann").await;
    let mut b = server.client().await;
    // No waiting between emits: the join must be done before the chat and every relay.
    b.emit("join-room", json!({"roomId": "R", "userName": "Bob"}))
        .await;
    b.emit("send-message", json!({"message": "first"})).await;
    for i in 0..50 {
        b.emit(
            "webrtc-ice-candidate",
            json!({"targetId": a.id, "candidate": {"n": i}}),
        )
        .await;
    }
    b.expect("joined-room").await;
    b.expect("participants-updated").await;
    b.expect("new-message").await;
    a.expect("user-joined").await;
    a.expect("participants-updated").await;
    assert_eq!(a.expect("new-message").await["message"], "first");
    for i in 0..50 {
        assert_eq!(a.expect("webrtc-ice-candidate").await["candidate"]["n"], i);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_hands_over_and_a_rejoiner_is_last() {
    let server = TestServer::start().await;
    let mut a = server.joined("R", "Ann").await;
    let mut b = server.joined("R", "Bob").await;
    let mut c = server.joined("R", "Cat").await;
    a.wait_for("participants-updated").await;
    a.wait_for("participants-updated").await;
    b.wait_for("participants-updated").await;
    a.emit_bare("leave-room").await;
    a.expect("left-room").await;
    let heir = b.id.clone();
    for other in [&mut b, &mut c] {
        other.expect("user-left").await;
        assert_eq!(other.expect("host-changed").await["hostId"], heir.as_str());
        let list = other.expect("participants-updated").await;
        assert_eq!(list[0]["isAdmin"], true);
        assert_eq!(list[0]["userName"], "Bob");
        assert_eq!(list[1]["isAdmin"], false);
    }
    let joined = a.join("R", "Ann").await;
    assert_eq!(
        ids(&joined["participants"]),
        [b.id.clone(), c.id.clone(), a.id.clone()]
    );
    assert_eq!(joined["participant"]["isAdmin"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joining_the_same_room_again_only_answers_the_joiner() {
    let server = TestServer::start().await;
    let mut a = server.joined("R", "Ann").await;
    let mut b = server.joined("R", "Bob").await;
    a.wait_for("participants-updated").await;
    let again = b
        .emit_ack(
            "join-room",
            json!({"roomId": "R", "userName": "Robert", "userAvatar": "https://x.test/r.png"}),
        )
        .await;
    assert_eq!(again["ok"], true);
    let joined = b.expect("joined-room").await;
    assert_eq!(joined["participant"]["userName"], "Bob");
    assert_eq!(joined["participant"]["avatar"], Value::Null);
    assert_eq!(joined["participants"].as_array().map(Vec::len), Some(2));
    a.expect_quiet().await;
    b.expect_quiet().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn switching_rooms_leaves_the_old_room_first() {
    let server = TestServer::start().await;
    let mut a = server.joined("R1", "Ann").await;
    let mut b = server.joined("R1", "Bob").await;
    let mut c = server.joined("R2", "Cat").await;
    a.wait_for("participants-updated").await;
    b.emit("join-room", json!({"roomId": "R2", "userName": "Bob"}))
        .await;
    assert_eq!(b.expect("left-room").await, json!({"roomId": "R1"}));
    let joined = b.expect("joined-room").await;
    assert_eq!(joined["roomId"], "R2");
    assert_eq!(
        ids(&b.expect("participants-updated").await),
        [c.id.clone(), b.id.clone()]
    );
    assert_eq!(a.expect("user-left").await["participantId"], b.id.as_str());
    assert_eq!(ids(&a.expect("participants-updated").await), [a.id.clone()]);
    assert_eq!(c.expect("user-joined").await["id"], b.id.as_str());
    c.expect("participants-updated").await;
    assert_eq!(server.get("/api/room/R1").await.1["participantCount"], 1);
    assert_eq!(server.get("/api/room/R2").await.1["participantCount"], 2);
    assert_eq!(server.counts().await, (2, 3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_room_refuses_and_the_socket_stays_put() {
    let server = TestServer::with(|c| c.max_participants = 1).await;
    let _a = server.joined("FULL", "Ann").await;
    let mut b = server.joined("OTHER", "Bob").await;
    let ack = b
        .emit_ack("join-room", json!({"roomId": "FULL", "userName": "Bob"}))
        .await;
    assert_eq!(ack["ok"], false);
    assert_eq!(ack["code"], "room_full");
    assert!(ack["error"].as_str().is_some());
    b.expect_error("join-room", "room_full").await;
    b.emit("send-message", json!({"message": "still here"}))
        .await;
    assert_eq!(b.expect("new-message").await["message"], "still here");
    assert_eq!(server.get("/api/room/OTHER").await.1["participantCount"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_is_capped_and_sent_to_joiners() {
    let server = TestServer::with(|c| c.chat_history_limit = 3).await;
    let mut a = server.joined("R", "Ann").await;
    for i in 0..5 {
        a.emit("send-message", json!({"message": format!("m{i}")}))
            .await;
        a.expect("new-message").await;
    }
    let mut b = server.client().await;
    let joined = b.join("R", "Bob").await;
    let texts: Vec<_> = joined["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .map(|m| m["message"].clone())
        .collect();
    assert_eq!(texts, [json!("m2"), json!("m3"), json!("m4")]);
    assert_eq!(joined["messages"][0]["userName"], "Ann");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_stay_inside_the_room() {
    let server = TestServer::start().await;
    let mut a = server.joined("R1", "Ann").await;
    let mut c = server.joined("R2", "Cat").await;
    for event in [
        "webrtc-offer",
        "webrtc-answer",
        "webrtc-ice-candidate",
        "request-connection",
    ] {
        let ack = a
            .emit_ack(
                event,
                json!({"targetId": c.id, "offer": {}, "answer": {}, "candidate": null}),
            )
            .await;
        assert_eq!(
            ack,
            json!({"ok": false, "error": ack["error"], "code": "target_not_in_room"})
        );
        a.expect_error(event, "target_not_in_room").await;
        a.emit(
            event,
            json!({"targetSocketId": "no-such-socket", "offer": {}, "answer": {}, "candidate": {}}),
        )
        .await;
        a.expect_error(event, "target_not_in_room").await;
    }
    c.expect_quiet().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_before_joining_are_not_in_room() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    for (event, payload) in [
        ("leave-room", Value::Null),
        ("send-message", json!({"message": "hi"})),
        ("webrtc-offer", json!({"targetId": "x", "offer": {}})),
        ("toggle-audio", json!({"isAudioMuted": true})),
        ("toggle-media", json!({"type": "video", "enabled": true})),
        ("start-screen-share", Value::Null),
        ("toggle-screen-share", json!({"isScreenSharing": true})),
    ] {
        a.emit(event, payload).await;
        a.expect_error(event, "not_in_room").await;
    }
    let mut b = server.joined("R", "Bob").await;
    b.emit("send-message", json!({"roomId": "OTHER", "message": "hi"}))
        .await;
    b.expect_error("send-message", "not_in_room").await;
    b.emit("leave-room", json!({"roomId": "OTHER"})).await;
    b.expect_error("leave-room", "not_in_room").await;
    assert_eq!(server.counts().await, (1, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_payloads_are_invalid_and_change_nothing() {
    let server = TestServer::start().await;
    let mut a = server.joined("R", "Ann").await;
    let mut b = server.joined("R", "Bob").await;
    a.wait_for("participants-updated").await;
    let long_name = "n".repeat(51);
    let long_text = "x".repeat(2001);
    let cases = [
        ("join-room", json!({"roomId": "has space", "userName": "A"})),
        (
            "join-room",
            json!({"roomId": "x".repeat(65), "userName": "A"}),
        ),
        ("join-room", json!({"roomId": "", "userName": "A"})),
        ("join-room", json!({"roomId": 42, "userName": "A"})),
        ("join-room", json!({"roomId": "R2", "userName": long_name})),
        ("join-room", json!({"roomId": "R2", "userName": "   "})),
        ("join-room", json!({"roomId": "R2"})),
        ("join-room", json!("R2")),
        ("join-room", Value::Null),
        ("send-message", json!({"message": ""})),
        ("send-message", json!({"message": "   "})),
        ("send-message", json!({"message": long_text})),
        ("send-message", json!({"message": 5})),
        ("send-message", json!(["hi"])),
        ("webrtc-offer", json!({"targetId": b.id, "offer": "v=0"})),
        ("webrtc-offer", json!({"targetId": b.id})),
        ("webrtc-offer", json!({"offer": {}})),
        ("webrtc-answer", json!({"targetId": b.id, "answer": [1]})),
        ("webrtc-ice-candidate", json!({"targetId": b.id})),
        (
            "webrtc-ice-candidate",
            json!({"targetId": b.id, "candidate": "c"}),
        ),
        ("webrtc-ice-candidate", json!(7)),
        ("request-connection", json!({"targetId": 1})),
        ("toggle-audio", json!({"isAudioMuted": "yes"})),
        ("toggle-audio", json!({})),
        ("toggle-video", json!({"isVideoOff": 1})),
        ("toggle-media", json!({"type": "screen", "enabled": true})),
        ("toggle-media", json!({"type": "audio", "enabled": "no"})),
        ("toggle-screen-share", json!({})),
        ("leave-room", json!("R")),
        ("leave-room", json!({"roomId": 3})),
        ("start-screen-share", json!(true)),
    ];
    for (event, payload) in cases {
        let ack = a.emit_ack(event, payload.clone()).await;
        assert_eq!(ack["ok"], false, "{event} {payload}");
        assert_eq!(ack["code"], "invalid_payload", "{event} {payload}");
        a.expect_error(event, "invalid_payload").await;
    }
    b.expect_quiet().await;
    assert_eq!(server.counts().await, (1, 2));
    let (_, room) = server.get("/api/room/R").await;
    assert_eq!(room["participantCount"], 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unusable_avatars_are_null_not_errors() {
    let server = TestServer::start().await;
    let long = format!("https://x.test/{}", "a".repeat(2040));
    for avatar in [
        json!("javascript:alert(1)"),
        json!(12),
        json!({"u": 1}),
        json!(long),
    ] {
        let mut c = server.client().await;
        c.emit(
            "join-room",
            json!({"roomId": "AV", "userName": "Ann", "userAvatar": avatar}),
        )
        .await;
        assert_eq!(
            c.expect("joined-room").await["participant"]["avatar"],
            Value::Null
        );
        c.disconnect().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_acks_carry_ok_true() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    let ack = a
        .emit_ack("join-room", json!({"roomId": "ACK", "userName": "Ann"}))
        .await;
    assert_eq!(ack["ok"], true);
    assert_eq!(ack["roomId"], "ACK");
    a.id = ack["participantId"].as_str().expect("id").to_owned();
    let ack = a.emit_ack("send-message", json!({"message": "hi"})).await;
    assert_eq!(
        (ack["ok"].clone(), ack["message"].clone()),
        (json!(true), json!("hi"))
    );
    let ack = a
        .emit_ack(
            "webrtc-offer",
            json!({"targetId": a.id, "offer": {"sdp": "x"}}),
        )
        .await;
    assert_eq!(ack, json!({"ok": true}));
    let ack = a
        .emit_ack("toggle-audio", json!({"isAudioEnabled": false}))
        .await;
    assert_eq!(ack["participant"]["isAudioMuted"], true);
    let ack = a.emit_ack("leave-room", Value::Null).await;
    assert_eq!(ack, json!({"ok": true, "roomId": "ACK"}));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_events_and_binary_payloads_do_no_harm() {
    let server = TestServer::start().await;
    let mut a = server.joined("R", "Ann").await;
    a.emit("no-such-event", json!({"x": 1})).await;
    a.expect_quiet().await;
    a.emit_raw(
        "send-message",
        rust_socketio::Payload::Binary(bytes::Bytes::from_static(b"\x00\x01")),
    )
    .await;
    a.expect_error("send-message", "invalid_payload").await;
    a.emit("send-message", json!({"message": "still fine"}))
        .await;
    assert_eq!(a.expect("new-message").await["message"], "still fine");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnect_is_a_leave_without_left_room() {
    let server = TestServer::with(|c| c.empty_room_ttl = std::time::Duration::ZERO).await;
    let a = server.joined("R", "Ann").await;
    let mut b = server.joined("R", "Bob").await;
    let a_id = a.id.clone();
    a.disconnect().await;
    assert_eq!(
        b.expect("user-left").await,
        json!({"participantId": a_id, "userName": "Ann"})
    );
    assert_eq!(
        b.expect("host-changed").await,
        json!({"roomId": "R", "hostId": b.id, "previousHostId": a_id})
    );
    let list = b.expect("participants-updated").await;
    assert_eq!(ids(&list), [b.id.clone()]);
    assert_eq!(list[0]["isAdmin"], true);
    server.await_counts((1, 1)).await;
    b.disconnect().await;
    server.await_counts((0, 0)).await;
    assert_eq!(server.get("/api/room/R").await.0, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emptied_room_outlives_its_last_participant_until_the_ttl() {
    let server = TestServer::with(|c| c.empty_room_ttl = std::time::Duration::from_secs(1)).await;
    let mut a = server.joined("KEEP", "Ann").await;
    a.emit("send-message", json!({"message": "remember me"}))
        .await;
    a.expect("new-message").await;
    a.emit_bare("leave-room").await;
    a.expect("left-room").await;
    let (status, room) = server.get("/api/room/KEEP").await;
    assert_eq!((status, room["participantCount"].clone()), (200, json!(0)));
    let joined = a.join("KEEP", "Ann").await;
    assert_eq!(joined["messages"][0]["message"], "remember me");
    a.emit_bare("leave-room").await;
    a.expect("left-room").await;
    server.await_counts((0, 0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_named_like_a_socket_id_gets_none_of_its_relays() {
    let server = TestServer::start().await;
    let mut alice = server.joined("R", "Alice").await;
    let bob = server.joined("R", "Bob").await;
    alice.wait_for("participants-updated").await;
    // Eve joins a meeting room whose id is Alice's socket id.
    let mut eve = server.joined(&alice.id.clone(), "Eve").await;
    bob.emit(
        "webrtc-offer",
        json!({"targetId": alice.id, "offer": {"sdp": "secret"}}),
    )
    .await;
    assert_eq!(alice.expect("webrtc-offer").await["offer"]["sdp"], "secret");
    eve.emit("send-message", json!({"message": "hi"})).await;
    eve.expect("new-message").await;
    eve.expect_quiet().await;
    alice.expect_quiet().await;
}

/// A relay carries the sender's `offer`, `answer` or `candidate` byte for byte — key order,
/// number formats, escapes — plus `senderId`/`senderSocketId`; in a cluster the two
/// participants are on different instances.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn relays_are_forwarded_byte_for_byte() {
    let server = TestServer::start().await;
    let last = server.addrs[server.addrs.len() - 1];
    let mut a = RawWs::connect(server.addr).await;
    a.join("EXACT", "Ann").await;
    let mut b = RawWs::connect(last).await;
    b.join("EXACT", "Bob").await;
    let body = r#"{"z":1.0,"type":"offer","a":1e3,"sdp":"v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\n","n":[-0.0,1E-7,12345678901234567890,0.10],"u":"\u00e9\ud83d\ude00/"}"#;
    for (event, field) in [
        ("webrtc-offer", "offer"),
        ("webrtc-answer", "answer"),
        ("webrtc-ice-candidate", "candidate"),
    ] {
        a.send_sio(&format!(
            r#"2["{event}",{{"{field}":{body},"targetId":"{}","roomId":"EXACT"}}]"#,
            b.sid
        ))
        .await
        .expect("send");
        let expected = format!(
            r#"2["{event}",{{"senderId":"{a}","senderSocketId":"{a}","{field}":{body}}}]"#,
            a = a.sid
        );
        loop {
            match b.recv(raw::WAIT).await {
                Recv::Msg(m) if m.starts_with(&format!(r#"2["{event}""#)) => {
                    assert_eq!(m, expected);
                    break;
                }
                Recv::Msg(_) | Recv::Binary(_) => {}
                other => panic!("no {event}: {other:?}"),
            }
        }
    }
}

/// Joins racing from several clients (over two instances in cluster mode): whatever the
/// interleaving, the last `participants-updated` each member receives is the room's true
/// list (as the operator API shows it), and no stale list follows it. 50 rounds × 4 clients,
/// 10 rounds (rooms) at a time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn racing_joins_leave_every_member_with_the_true_list() {
    let server = TestServer::with(|c| c.admin_token = Some("admin".into())).await;
    for batch in 0..5 {
        let rounds = (0..10).map(|i| racing_round(&server, batch * 10 + i));
        futures_util::future::join_all(rounds).await;
    }
}

async fn racing_round(server: &TestServer, round: usize) {
    let room = format!("RACE{round}");
    let mut clients = Vec::new();
    for _ in 0..4 {
        clients.push(server.client().await);
    }
    let joins = clients.iter().enumerate().map(|(i, c)| {
        c.emit_ack(
            "join-room",
            json!({"roomId": room, "userName": format!("u{i}")}),
        )
    });
    for ack in futures_util::future::join_all(joins).await {
        assert_eq!(ack["ok"], true, "{ack}");
    }
    let detail = server
        .http
        .get(server.url(&format!("/api/admin/rooms/{room}")))
        .bearer_auth("admin")
        .send()
        .await
        .expect("GET detail")
        .json::<Value>()
        .await
        .expect("JSON");
    let truth = ids(&detail["participants"]);
    assert_eq!(truth.len(), 4, "{detail}");
    let checks = clients.iter_mut().map(|client| {
        let truth = &truth;
        async move {
            let mut last = Vec::new();
            while &last != truth {
                let list = client
                    .wait_for_within("participants-updated", common::WAIT)
                    .await
                    .unwrap_or_else(|| {
                        panic!("round {round}: last list {last:?}, never the true {truth:?}")
                    });
                last = ids(&list);
            }
            if let Some(stale) = client
                .wait_for_within("participants-updated", common::QUIET)
                .await
            {
                panic!("round {round}: a list after the true one: {stale}");
            }
        }
    });
    futures_util::future::join_all(checks).await;
    for client in clients {
        client.disconnect().await;
    }
}

/// An `http://` avatar whose host starts with a non-ASCII character is kept; a user name of
/// only combining or zero-width characters is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn avatars_with_non_ascii_hosts_and_invisible_names() {
    let server = TestServer::start().await;
    let mut a = server.client().await;
    a.emit(
        "join-room",
        json!({"roomId": "U", "userName": "Zoé", "userAvatar": "http://é.example/a.png"}),
    )
    .await;
    let joined = a.expect("joined-room").await;
    assert_eq!(joined["participant"]["avatar"], "http://é.example/a.png");
    let b = server.client().await;
    for invisible in ["\u{200B}", "\u{0301}\u{0301}", "\u{200D}\u{2060}"] {
        let ack = b
            .emit_ack("join-room", json!({"roomId": "U", "userName": invisible}))
            .await;
        assert_eq!(ack["code"], "invalid_payload", "{invisible:?}: {ack}");
    }
    server.await_counts((1, 1)).await;
}
