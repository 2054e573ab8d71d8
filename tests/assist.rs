//! The negotiation assist (`NEGOTIATION_ASSIST`, docs/NEGOTIATION.md) over real
//! connections: which relays from a member to a newcomer are held, what releases them, in
//! what order they arrive, and that the rest of the relay is untouched.
//!
//! A chat message serves as a barrier: a client's events are handled in order and a relay
//! is emitted before the client's next event is handled, so a relay that arrives *after* a
//! chat message sent after it was held by the server.

mod common;

use std::time::Duration;

use common::{TestClient, TestServer};
use prolitemeet_server::assist::{CLASSIFY_WINDOW, Mode};
use serde_json::{Value, json};

fn room() -> String {
    format!(
        "assist-{}",
        &uuid::Uuid::new_v4().simple().to_string()[..12]
    )
}

/// An offer as a browser makes it (the assist helps browsers only under `auto`).
fn offer(tag: &str) -> Value {
    json!({"type": "offer", "sdp": format!(
        "v=0\r\no=- {tag} 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n\
         a=fingerprint:sha-256 00:11:22\r\na=setup:actpass\r\n"
    )})
}

/// An offer as a test script makes it.
fn scripted_offer(tag: &str) -> Value {
    json!({"type": "offer", "sdp": format!("v=0 {tag}")})
}

fn candidate(n: u32) -> Value {
    json!({"candidate": format!("candidate:{n} 1 udp 1 127.0.0.1 {} typ host", 5000 + n), "sdpMid": "0", "sdpMLineIndex": 0})
}

/// A server with the assist in `mode`; Ann in the room first, then the newcomer Ned. Ann has
/// consumed Ned's arrival.
async fn pair(mode: Mode) -> (TestServer, String, TestClient, TestClient) {
    let server = TestServer::with(|c| c.negotiation_assist = mode).await;
    let room = room();
    let mut ann = server.joined(&room, "Ann").await;
    let ned = server.joined(&room, "Ned").await;
    ann.expect("user-joined").await;
    ann.expect("participants-updated").await;
    (server, room, ann, ned)
}

/// Sends a chat message and returns its text; everyone's next `new-message` is it.
async fn barrier(from: &TestClient, tag: &str) -> String {
    let text = format!("barrier {tag}");
    from.emit("send-message", json!({"message": text})).await;
    text
}

async fn expect_chat(c: &mut TestClient, text: &str) {
    assert_eq!(c.expect("new-message").await["message"], text);
}

/// The frontend's pattern with a slow camera: Ann's offer, candidate and request-connection
/// wait; Ned's own offer goes through; Ann answers it; Ned gets the answer, then the
/// candidate and the request, never Ann's offer (she rolled it back).
#[tokio::test]
async fn naive_members_offer_waits_for_the_newcomers_and_is_dropped_once_answered() {
    let (_server, room, mut ann, mut ned) = pair(Mode::Auto).await;
    let ned_id = ned.id.clone();
    let to_ned = |extra: Value| {
        let mut m = json!({"targetId": ned_id, "roomId": room});
        if let (Some(m), Value::Object(extra)) = (m.as_object_mut(), extra) {
            m.extend(extra);
        }
        m
    };
    let ack = ann
        .emit_ack("webrtc-offer", to_ned(json!({"offer": offer("ann")})))
        .await;
    assert_eq!(ack["ok"], true, "a held relay is accepted: {ack}");
    ann.emit(
        "webrtc-ice-candidate",
        to_ned(json!({"candidate": candidate(1)})),
    )
    .await;
    ann.emit("request-connection", to_ned(json!({}))).await;
    let text = barrier(&ann, "1").await;
    expect_chat(&mut ned, &text).await;
    expect_chat(&mut ann, &text).await;

    // Ned's camera is ready: its offer is delivered at once (before its barrier).
    ned.emit(
        "webrtc-offer",
        json!({"targetId": ann.id, "roomId": room, "offer": offer("ned")}),
    )
    .await;
    let text = barrier(&ned, "2").await;
    assert_eq!(ann.expect("webrtc-offer").await["offer"], offer("ned"));
    expect_chat(&mut ann, &text).await;
    expect_chat(&mut ned, &text).await;

    let answer = json!({"type": "answer", "sdp": "v=0 ann"});
    ann.emit("webrtc-answer", to_ned(json!({"answer": answer})))
        .await;
    let text = barrier(&ann, "3").await;
    assert_eq!(
        ned.expect("webrtc-answer").await,
        json!({"senderId": ann.id, "senderSocketId": ann.id, "answer": answer})
    );
    assert_eq!(
        ned.expect("webrtc-ice-candidate").await["candidate"],
        candidate(1)
    );
    assert_eq!(
        ned.expect("connection-request").await,
        json!({"senderId": ann.id, "senderSocketId": ann.id, "roomId": room})
    );
    expect_chat(&mut ned, &text).await;

    // Settled: what Ann sends now goes straight through.
    ann.emit(
        "webrtc-ice-candidate",
        to_ned(json!({"candidate": candidate(2)})),
    )
    .await;
    assert_eq!(
        ned.expect("webrtc-ice-candidate").await["candidate"],
        candidate(2)
    );
}

/// A member in the naive dialect that never sends request-connection: its offer waits only
/// until CLASSIFY_WINDOW after the newcomer joined, then arrives with its candidate, in order.
#[tokio::test]
async fn unknown_members_offer_is_released_after_the_classify_window() {
    let (_server, room, ann, mut ned) = pair(Mode::Auto).await;
    ann.emit(
        "webrtc-offer",
        json!({"targetId": ned.id, "roomId": room, "offer": offer("ann")}),
    )
    .await;
    ann.emit(
        "webrtc-ice-candidate",
        json!({"targetId": ned.id, "candidate": candidate(1)}),
    )
    .await;
    let text = barrier(&ann, "held").await;
    expect_chat(&mut ned, &text).await;
    assert_eq!(ned.expect("webrtc-offer").await["offer"], offer("ann"));
    assert_eq!(
        ned.expect("webrtc-ice-candidate").await["candidate"],
        candidate(1)
    );
}

/// End-of-candidates (a null candidate) is something the naive frontend never sends: the
/// member's held offer and candidate go at once, before it.
#[tokio::test]
async fn end_of_candidates_releases_what_was_held_at_once() {
    let (_server, room, ann, mut ned) = pair(Mode::Auto).await;
    ann.emit(
        "webrtc-offer",
        json!({"targetId": ned.id, "roomId": room, "offer": offer("ann")}),
    )
    .await;
    ann.emit(
        "webrtc-ice-candidate",
        json!({"targetId": ned.id, "candidate": candidate(1)}),
    )
    .await;
    ann.emit(
        "webrtc-ice-candidate",
        json!({"targetId": ned.id, "candidate": null}),
    )
    .await;
    let text = barrier(&ann, "after").await;
    assert_eq!(ned.expect("webrtc-offer").await["offer"], offer("ann"));
    assert_eq!(
        ned.expect("webrtc-ice-candidate").await["candidate"],
        candidate(1)
    );
    assert_eq!(
        ned.expect("webrtc-ice-candidate").await["candidate"],
        Value::Null
    );
    expect_chat(&mut ned, &text).await;
}

/// Other dialects (targetSocketId; targetId without roomId) are not held while their sender
/// is not known naive.
#[tokio::test]
async fn other_dialects_are_relayed_at_once() {
    for addressed in [json!({"targetSocketId": "NED"}), json!({"targetId": "NED"})] {
        let (_server, _room, ann, mut ned) = pair(Mode::Auto).await;
        let mut payload = json!({"offer": offer("ann")});
        for (k, v) in addressed.as_object().into_iter().flatten() {
            payload[k] = if v == "NED" { json!(ned.id) } else { v.clone() };
        }
        ann.emit("webrtc-offer", payload).await;
        let text = barrier(&ann, "after").await;
        assert_eq!(ned.expect("webrtc-offer").await["offer"], offer("ann"));
        expect_chat(&mut ned, &text).await;
    }
}

/// With NEGOTIATION_ASSIST=off even a member known naive is relayed at once.
#[tokio::test]
async fn off_relays_everything_at_once() {
    let (_server, room, ann, mut ned) = pair(Mode::Off).await;
    ann.emit(
        "request-connection",
        json!({"targetId": ned.id, "roomId": room}),
    )
    .await;
    ann.emit(
        "webrtc-offer",
        json!({"targetId": ned.id, "roomId": room, "offer": offer("ann")}),
    )
    .await;
    let text = barrier(&ann, "after").await;
    ned.expect("connection-request").await;
    assert_eq!(ned.expect("webrtc-offer").await["offer"], offer("ann"));
    expect_chat(&mut ned, &text).await;
}

/// `on` holds a member's offer even in the other dialect; the newcomer's own relays are
/// never held.
#[tokio::test]
async fn on_holds_every_members_offer_but_never_the_newcomers() {
    let (_server, _room, mut ann, mut ned) = pair(Mode::On).await;
    ann.emit(
        "webrtc-offer",
        json!({"targetSocketId": ned.id, "offer": offer("ann")}),
    )
    .await;
    let text = barrier(&ann, "held").await;
    expect_chat(&mut ned, &text).await;
    expect_chat(&mut ann, &text).await;
    ned.emit("request-connection", json!({"targetSocketId": ann.id}))
        .await;
    let text = barrier(&ned, "newcomer").await;
    ann.expect("connection-request").await;
    expect_chat(&mut ann, &text).await;
}

/// A member that leaves takes its held offer along: the newcomer hears it left, and the
/// offer never comes (not even once the classify window is over).
#[tokio::test]
async fn a_member_leaving_drops_what_it_held() {
    let (_server, room, ann, mut ned) = pair(Mode::Auto).await;
    ann.emit(
        "webrtc-offer",
        json!({"targetId": ned.id, "roomId": room, "offer": offer("ann")}),
    )
    .await;
    let text = barrier(&ann, "held").await;
    expect_chat(&mut ned, &text).await;
    ann.disconnect().await;
    assert_eq!(ned.expect("user-left").await["userName"], "Ann");
    // Ann was the host: Ned, the only one left, takes over.
    assert_eq!(ned.expect("host-changed").await["hostId"], ned.id.as_str());
    ned.expect("participants-updated").await;
    assert_eq!(
        ned.wait_for_within("webrtc-offer", CLASSIFY_WINDOW + Duration::from_millis(500))
            .await,
        None
    );
}

/// Camera wait: Bob joined after Ann (who shows she is naive) and has not offered anyone
/// yet (its camera is starting) when Cat joins. Bob gets the new participant list, but not
/// Cat's user-joined nor Cat's offer, until Bob offers someone; then both, in that order.
#[tokio::test]
async fn a_member_whose_camera_is_starting_hears_of_the_newcomer_once_it_offers() {
    let (server, room, mut ann, mut bob) = pair(Mode::Auto).await;
    // Ann is the frontend: it offers the newcomer, then asks for a connection.
    ann.emit(
        "webrtc-offer",
        json!({"targetId": bob.id, "roomId": room, "offer": offer("ann")}),
    )
    .await;
    ann.emit(
        "request-connection",
        json!({"targetId": bob.id, "roomId": room}),
    )
    .await;
    let mut cat = server.joined(&room, "Cat").await;
    assert_eq!(ann.expect("user-joined").await["participantId"], cat.id);
    ann.expect("participants-updated").await;
    let list = bob.expect("participants-updated").await;
    assert_eq!(list.as_array().map(Vec::len), Some(3), "{list}");

    cat.emit(
        "webrtc-offer",
        json!({"targetId": bob.id, "roomId": room, "offer": offer("cat")}),
    )
    .await;
    let text = barrier(&cat, "held").await;
    expect_chat(&mut bob, &text).await;
    expect_chat(&mut cat, &text).await;
    expect_chat(&mut ann, &text).await;

    // Bob's camera is ready: it offers Ann (and would offer Cat, whom it knows from the list).
    bob.emit(
        "webrtc-offer",
        json!({"targetId": ann.id, "roomId": room, "offer": offer("bob")}),
    )
    .await;
    assert_eq!(ann.expect("webrtc-offer").await["offer"], offer("bob"));
    let joined = bob.expect("user-joined").await;
    assert_eq!(joined["participantId"], cat.id);
    assert_eq!(joined["userName"], "Cat");
    assert_eq!(
        bob.expect("webrtc-offer").await,
        json!({"senderId": cat.id, "senderSocketId": cat.id, "offer": offer("cat")})
    );
}

/// Scripted clients in the frontend's dialect (offers that are no browser's SDP,
/// request-connection and all) are never held under `auto`: a member's offer and request to
/// a newcomer arrive before the member's next event, and a third participant's user-joined
/// reaches everyone at once.
#[tokio::test]
async fn scripted_clients_in_the_frontend_dialect_are_relayed_at_once() {
    let (server, room, mut ann, mut ned) = pair(Mode::Auto).await;
    let to_ned = json!({"targetId": ned.id, "roomId": room});
    ann.emit("request-connection", to_ned.clone()).await;
    let mut offer = to_ned.clone();
    offer["offer"] = scripted_offer("ann");
    ann.emit("webrtc-offer", offer).await;
    ann.emit("request-connection", to_ned).await;
    let text = barrier(&ann, "1").await;
    assert_eq!(ned.expect("connection-request").await["senderId"], ann.id);
    assert_eq!(
        ned.expect("webrtc-offer").await["offer"],
        scripted_offer("ann")
    );
    ned.expect("connection-request").await;
    expect_chat(&mut ned, &text).await;
    expect_chat(&mut ann, &text).await;

    let cat = server.joined(&room, "Cat").await;
    assert_eq!(ann.expect("user-joined").await["participantId"], cat.id);
    assert_eq!(ned.expect("user-joined").await["participantId"], cat.id);
}
