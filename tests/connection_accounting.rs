//! Connection accounting under hostile Socket.IO handshakes: `/health`'s `connections` must
//! equal the sockets that exist whatever a client sends, over either transport and in any
//! order of connect and close, so nobody can lock real clients out by leaking the count up
//! to `MAX_CONNECTIONS`.

mod common;
mod raw;

use std::time::Duration;

use common::{QUIET, TestServer, WAIT};
use futures_util::SinkExt;
use raw::{RawPolling, RawWs, Recv, Sio, parse_sio};
use serde_json::json;
use tokio_tungstenite::tungstenite::Message;

/// A cap low enough that a leak of one hostile payload alone would reach it.
const CAP: usize = 20;

/// `n` Socket.IO CONNECT packets (default namespace), as one polling payload.
fn connect_flood(n: usize) -> String {
    vec!["40"; n].join("\x1e")
}

/// Hostile payloads over HTTP long-polling: CONNECT floods with and without a close packet
/// in the same payload, CONNECT then close in separate requests, unknown namespaces, huge and
/// malformed auth.
async fn polling_attacks(server: &TestServer) {
    let addr = server.addr;
    let huge_auth = format!("40{}", json!({ "token": "x".repeat(90_000) }));
    let payloads: Vec<String> = vec![
        format!("{}\x1e1", connect_flood(10_000)),
        connect_flood(10_000),
        format!("40\x1e1\x1e{}", connect_flood(100)),
        format!("40/admin,\x1e40/nope,{{}}\x1e{}", connect_flood(50)),
        huge_auth,
        "40{\"token\":".into(),
        "40[1,2,3]\x1e40\"auth\"\x1e40null".into(),
    ];
    for payload in payloads {
        let Ok(session) = RawPolling::try_open(addr).await else {
            panic!("a hostile payload locked the handshake out");
        };
        session.post(payload).await;
        session.post("1").await;
    }
    // CONNECT, then close, in every order over separate requests.
    for _ in 0..20 {
        let session = RawPolling::try_open(addr).await.expect("handshake");
        session.post("1").await;
        session.post("40").await;
        let session = RawPolling::try_open(addr).await.expect("handshake");
        session.post("40").await;
        session.post("1").await;
        session.post("40").await;
    }
}

/// Hostile payloads over WebSocket: CONNECT floods then a close frame or a dropped TCP
/// connection, unknown namespaces, malformed auth.
async fn websocket_attacks(server: &TestServer) {
    let addr = server.addr;
    for ending in ["close-frame", "engine-close", "drop"] {
        let mut ws = RawWs::open(addr).await;
        for _ in 0..1_000 {
            if ws.send_text("40").await.is_err() {
                break;
            }
        }
        for text in ["40/admin,", "40{\"token\":", "40[1]", "40/nope,{}"] {
            ws.send_text(text).await.ok();
        }
        match ending {
            "close-frame" => {
                ws.ws.send(Message::Close(None)).await.ok();
            }
            "engine-close" => {
                ws.send_text("1").await.ok();
            }
            _ => drop(ws),
        }
    }
}

/// Multi-threaded, like the server in production: a connect racing its session's close is
/// what used to leak the count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_connect_payloads_leave_no_connection_counted() {
    let server = TestServer::with(|c| c.max_connections = CAP).await;
    for _ in 0..3 {
        polling_attacks(&server).await;
        websocket_attacks(&server).await;
    }
    server.await_no_connections(WAIT).await;
    // The cap is intact: CAP real clients get in and join, and one more is refused.
    let mut clients = Vec::new();
    for i in 0..CAP {
        clients.push(server.joined("R", &format!("user{i}")).await);
    }
    let (status, _) = RawPolling::try_open(server.addr)
        .await
        .err()
        .expect("the client over the cap is refused");
    assert_eq!(status, 503);
    for client in clients {
        client.disconnect().await;
    }
    server.await_no_connections(WAIT).await;
}

/// A second CONNECT to the namespace a session already joined changes nothing: no second
/// answer, the count stays, the socket keeps its id and works.
#[tokio::test]
async fn a_duplicate_connect_is_refused_without_side_effects() {
    let server = TestServer::start().await;
    let mut ws = RawWs::connect(server.addr).await;
    let mut polling = RawPolling::connect(server.addr).await;
    for _ in 0..5 {
        ws.send_text("40").await.expect("send");
        polling.send_sio("0").await;
    }
    polling.post("40\x1e40").await;
    for (name, next) in [
        ("websocket", ws.recv(QUIET).await),
        ("polling", polling.recv(QUIET).await),
    ] {
        match next {
            Recv::Timeout => {}
            Recv::Msg(m) => panic!(
                "{name}: a duplicate CONNECT was answered: {:?}",
                parse_sio(&m)
            ),
            other => panic!("{name}: the session changed: {other:?}"),
        }
    }
    let (_, health) = server.get("/health").await;
    assert_eq!(health["connections"], 2, "{health}");
    let joined = ws.join("R", "Ann").await;
    assert_eq!(joined["participantId"], ws.sid.as_str());
    let joined = polling.join("R", "Bob").await;
    assert_eq!(joined["participantId"], polling.sid.as_str());
    match ws.next_sio(Duration::from_secs(1)).await {
        Some(Sio::Event { name, .. }) => assert_eq!(name, "user-joined"),
        other => panic!("expected user-joined, got {other:?}"),
    }
}
