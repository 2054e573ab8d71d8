//! Call continuity on the server's side (connection state recovery, issue 18): a session
//! whose client overflowed its buffer while away ends as a normal leave (not as an evicted
//! slow consumer); a graceful shutdown in a cluster takes out the sessions still waiting for
//! their client; the wire with recovery on (pid, offsets, `connection` field) as a raw client
//! sees it. The JavaScript suite (tests/client/recovery.test.js) covers recovery itself with
//! the real socket.io-client through a network blip.

mod common;
mod raw;

use std::net::SocketAddr;
use std::time::Duration;

use common::redis::RedisServer;
use common::{TestClient, TestServer, WAIT};
use prolitemeet_server::limits::{Rate, RateLimits};
use prolitemeet_server::{Config, Deployment, app, serve};
use raw::{RawWs, Recv, Sio, event_packet, parse_sio};
use rust_socketio::TransportType;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A server with connection state recovery on, as by default (TestServer turns it off).
async fn recovering(adjust: impl FnOnce(&mut Config)) -> TestServer {
    TestServer::with(|c| {
        c.recovery_window = Config::default().recovery_window;
        adjust(c);
    })
    .await
}

/// A raw client joined to `room`: its socket id, and the offset of the last event it saw.
async fn raw_joined(addr: SocketAddr, room: &str, name: &str) -> (RawWs, Value) {
    let mut raw = RawWs::connect(addr).await;
    raw.emit(
        "join-room",
        &json!({"roomId": room, "userName": name}),
        None,
    )
    .await;
    let joined = raw.expect_event("joined-room").await;
    (raw, joined)
}

/// Reads `raw` until the event `name`; returns its whole argument list.
async fn event_args(raw: &mut RawWs, name: &str) -> Vec<Value> {
    loop {
        match raw.recv(WAIT).await {
            Recv::Msg(m) => {
                if let Sio::Event { name: n, args, .. } = parse_sio(&m)
                    && n == name
                {
                    return args;
                }
            }
            Recv::Binary(_) => {}
            other => panic!("no `{name}`: {other:?}"),
        }
    }
}

#[tokio::test]
async fn the_wire_with_recovery_on_carries_a_pid_offsets_and_connection_states() {
    let server = recovering(|_| {}).await;
    let mut raw = RawWs::open(server.addr).await;
    raw.send_text("40").await.expect("send 40");
    let Recv::Msg(connect) = raw.recv(WAIT).await else {
        panic!("no CONNECT answer")
    };
    let Sio::Connect(answer) = parse_sio(&connect) else {
        panic!("not a CONNECT: {connect}")
    };
    let pid = answer["pid"].as_str().expect("a pid");
    assert!(
        pid.len() >= 22
            && pid
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_'),
        "at least 128 random bits, url-safe: {pid}"
    );
    raw.settle().await;
    raw.send_sio(&event_packet(
        "join-room",
        &json!({"roomId": "W", "userName": "Wes"}),
        Some(1),
    ))
    .await
    .expect("join");
    let joined = event_args(&mut raw, "joined-room").await;
    assert_eq!(joined.len(), 2, "payload and offset: {joined:?}");
    assert!(joined[1].is_string(), "the offset is a string: {joined:?}");
    assert_eq!(joined[0]["participant"]["connection"], "connected");
    let listed = event_args(&mut raw, "participants-updated").await;
    assert_eq!(listed[0][0]["connection"], "connected");
    let offset = |v: &Value| u64::from_str_radix(v.as_str().expect("offset"), 36).expect("base 36");
    assert!(offset(&listed[1]) > offset(&joined[1]), "offsets increase");
    // The ack carries none.
    loop {
        match raw.recv(WAIT).await {
            Recv::Msg(m) => {
                if let Sio::Ack { id: 1, args } = parse_sio(&m) {
                    assert_eq!(args.len(), 1, "an ack has no offset: {args:?}");
                    assert_eq!(args[0]["ok"], true);
                    break;
                }
            }
            other => panic!("no ack: {other:?}"),
        }
    }
}

#[tokio::test]
async fn a_session_whose_missed_packets_overflow_its_buffer_ends_as_a_normal_leave() {
    const BUFFER: usize = 16;
    let server = recovering(|c| c.recovery_buffer_max = BUFFER).await;
    let mut host = server.joined("O", "Ann").await;
    let (away, joined) = raw_joined(server.addr, "O", "Bob").await;
    let bob = joined["participantId"].as_str().expect("id").to_owned();
    host.wait_for("participants-updated").await;

    // Bob's connection drops: he is kept, reconnecting.
    drop(away);
    let reconnecting = host.wait_for("participant-reconnecting").await;
    assert_eq!(reconnecting, json!({"participantId": bob, "roomId": "O"}));
    // More than his buffer holds is said while he is away: his session ends, as a leave,
    // long before the window (120 s).
    for i in 0..=BUFFER {
        host.emit("send-message", json!({"message": format!("m{i}")}))
            .await;
    }
    let left = host.wait_for("user-left").await;
    assert_eq!(left, json!({"participantId": bob, "userName": "Bob"}));
    let list = host.wait_for("participants-updated").await;
    assert_eq!(common::ids(&list), [host.id.clone()]);
    server.await_counts((1, 1)).await;
    let (_, metrics) = get_text(&server, "/metrics").await;
    assert!(
        metrics.contains("prolitemeet_slow_consumers_evicted_total 0"),
        "not counted as a slow consumer:\n{metrics}"
    );
    let (_, health) = server.get("/health").await;
    assert_eq!(health["reconnecting"], 0, "{health}");
}

async fn get_text(server: &TestServer, path: &str) -> (u16, String) {
    let response = server.http.get(server.url(path)).send().await.expect("GET");
    (
        response.status().as_u16(),
        response.text().await.expect("body"),
    )
}

/// One instance of a cluster, stopped when the sender is used or dropped.
async fn instance(config: Config) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind((config.host, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let (router, server) = app(config).await.expect("the instance starts");
    tokio::spawn(serve(listener, router, server, async {
        stopped.await.ok();
    }));
    (addr, stop)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_graceful_shutdown_takes_out_the_sessions_waiting_for_their_client() {
    let Some(redis) = RedisServer::start() else {
        eprintln!("skipped: redis-server is not installed");
        return;
    };
    let config = Config {
        host: [127, 0, 0, 1].into(),
        port: 0,
        rate_limits: RateLimits::UNLIMITED,
        room_create_rate: Rate::UNLIMITED,
        max_rooms_per_address: 0,
        deployment: Deployment::Redis {
            url: redis.url(),
            prefix: common::unique_prefix(),
        },
        ..Config::default()
    };
    let (leaving, stop) = instance(config.clone()).await;
    let (staying, _keep) = instance(config).await;
    let mut ann = TestClient::connect_to(staying, TransportType::Websocket).await;
    ann.join("S", "Ann").await;
    let (away, joined) = raw_joined(leaving, "S", "Bob").await;
    let bob = joined["participantId"].as_str().expect("id").to_owned();
    ann.wait_for("participants-updated").await;
    drop(away);
    ann.wait_for("participant-reconnecting").await;

    // SIGTERM of Bob's instance, well inside his window (120 s): he leaves at once.
    stop.send(()).ok();
    let left = ann.wait_for("user-left").await;
    assert_eq!(left["participantId"], bob);
    let list = ann.wait_for("participants-updated").await;
    assert_eq!(common::ids(&list), [ann.id.clone()]);
    assert_eq!(list[0]["isAdmin"], true);
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            let health: Value = reqwest::get(format!("http://{staying}/health"))
                .await
                .expect("health")
                .json()
                .await
                .expect("json");
            if health["totalParticipants"] == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("one participant left in the cluster");
}
