//! SIGTERM under load: the built binary with 100 clients connected (and a chatter) —
//! WebSocket and polling, 39 of them in rooms, 5 whose socket has stalled (they stopped
//! reading in a room a chatter floods), 10 polling sessions that never poll again — exits
//! with code 0 within 5 s; and SIGTERM in the middle of a relay storm never panics.

mod common;
mod raw;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::server_command;
use futures_util::FutureExt;
use raw::{RawPolling, RawWs, Sio};
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Payload, TransportType};
use serde_json::json;

/// A Socket.IO client of the kind browsers run; joins `room` (awaiting the ack) if given.
async fn client(address: &str, transport: TransportType, room: Option<String>) -> Client {
    let transport_name = match transport {
        TransportType::Polling => "polling",
        _ => "websocket",
    };
    let (connected_tx, connected) = tokio::sync::oneshot::channel::<()>();
    let connected_tx = Arc::new(Mutex::new(Some(connected_tx)));
    let socket = ClientBuilder::new(format!("http://{address}/"))
        .transport_type(transport)
        .reconnect(false)
        .on(rust_socketio::Event::Connect, move |_, _| {
            if let Some(tx) = connected_tx.lock().expect("lock").take() {
                tx.send(()).ok();
            }
            async {}.boxed()
        })
        .connect()
        .await
        .expect("connect");
    tokio::time::timeout(Duration::from_secs(5), connected)
        .await
        .expect("connected in time")
        .ok();
    if let Some(room) = room {
        let (tx, rx) = tokio::sync::oneshot::channel::<String>();
        let tx = Arc::new(Mutex::new(Some(tx)));
        socket
            .emit_with_ack(
                "join-room",
                json!({"roomId": room, "userName": "load"}),
                Duration::from_secs(5),
                move |ack: Payload, _| {
                    #[allow(deprecated)]
                    let text = match ack {
                        Payload::Text(v) => serde_json::Value::Array(v).to_string(),
                        Payload::String(s) => s,
                        _ => String::new(),
                    };
                    if let Some(tx) = tx.lock().expect("lock").take() {
                        tx.send(text).ok();
                    }
                    async {}.boxed()
                },
            )
            .await
            .expect("emit");
        let ack = tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .unwrap_or_else(|_| panic!("join ack in time ({transport_name} {room})"))
            .expect("ack");
        assert!(ack.contains("\"ok\":true"), "join: {ack}");
    }
    socket
}

async fn health(address: &str) -> serde_json::Value {
    reqwest::get(format!("http://{address}/health"))
        .await
        .expect("GET /health")
        .json()
        .await
        .expect("JSON")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_100_clients_and_stalled_sockets_exits_0_within_5_s() {
    let child = server_command(&[
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("LOG_FORMAT", "json"),
        ("CHAT_RATE_PER_SEC", "0"),
        ("EMPTY_ROOM_TTL_SECS", "0"),
    ])
    .stdout(Stdio::piped())
    .stderr(Stdio::null())
    .spawn()
    .expect("spawn");
    // Killed if the test fails early, so no stray server keeps running.
    let mut child = common::Running(child);
    let mut lines = BufReader::new(child.0.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a log line").expect("utf-8");
    let log: serde_json::Value = serde_json::from_str(&first).expect("JSON log line");
    let address = log["address"].as_str().expect("address").to_owned();
    let addr: SocketAddr = address.parse().expect("socket address");
    // Keep reading the logs so the server never blocks on a full pipe; check they are JSON.
    let reader = std::thread::spawn(move || {
        lines.all(|line| line.is_ok_and(|l| serde_json::from_str::<serde_json::Value>(&l).is_ok()))
    });

    // 70 WebSocket clients of the real kind, 24 of them in 6 rooms, and 15 polling ones.
    // (The polling ones only connect: rust_socketio's polling client now and then never
    // delivers an ack, which the raw polling clients below never miss.)
    let mut connecting = Vec::new();
    for i in 0..85 {
        let transport = if i < 70 {
            TransportType::Websocket
        } else {
            TransportType::Polling
        };
        let room = (i < 70 && i % 3 == 0).then(|| format!("LOAD{}", i % 6));
        let address = address.clone();
        connecting.push(tokio::spawn(async move {
            client(&address, transport, room).await
        }));
    }
    let mut clients = Vec::new();
    for c in connecting {
        clients.push(c.await.expect("client"));
    }
    // 5 raw WebSocket participants that stop reading, in a room a chatter then floods
    // (8 KB messages, rate limits off), so the server's writes to them stall.
    let mut stalled = Vec::new();
    for i in 0..5 {
        let mut s = RawWs::connect_with(addr, Some(4096)).await;
        s.join("STALL", &format!("S{i}")).await;
        stalled.push(s);
    }
    // 10 polling sessions that joined a room and never poll again.
    let mut idle = Vec::new();
    for i in 0..10 {
        let mut p = RawPolling::connect(addr).await;
        p.join("IDLE", &format!("I{i}")).await;
        idle.push(p);
    }
    let mut chatter = RawWs::connect(addr).await;
    chatter.join("STALL", "Chatter").await;
    let body = "😀".repeat(2000);
    for _ in 0..600 {
        chatter
            .send_sio(&raw::event_packet(
                "send-message",
                &json!({"message": body}),
                None,
            ))
            .await
            .expect("chat");
    }
    // The chatter reads its own 600 echoes: the server has sent them to the stalled ones too.
    let mut echoed = 0;
    while echoed < 600 {
        match chatter.next_sio(raw::WAIT).await {
            Some(p) => {
                if let Sio::Event { name, .. } = p
                    && name == "new-message"
                {
                    echoed += 1;
                }
            }
            None => panic!("chatter lost after {echoed} echoes"),
        }
    }
    let h = health(&address).await;
    println!(
        "before SIGTERM: {} connections, {} rooms, {} participants",
        h["connections"], h["activeRooms"], h["totalParticipants"]
    );
    assert_eq!(h["connections"], 101, "{h}");
    assert_eq!(h["totalParticipants"], 24 + 5 + 10 + 1, "{h}");

    let status = Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.0.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    println!(
        "exited with {:?} {:.2} s after SIGTERM",
        exit.code(),
        started.elapsed().as_secs_f64()
    );
    assert_eq!(exit.code(), Some(0));
    assert!(reader.join().expect("reader"), "every log line is JSON");
    drop((clients, stalled, idle, chatter));
}

/// The server binary (JSON logs on stdout, panics on stderr), its address, and a thread
/// collecting everything it prints.
fn start_binary(
    extra: &[(&str, &str)],
) -> (common::Running, SocketAddr, std::thread::JoinHandle<String>) {
    let mut vars = vec![
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("LOG_FORMAT", "json"),
        ("RUST_LOG", "warn,prolitemeet_server=info"),
    ];
    vars.extend_from_slice(extra);
    let child = server_command(&vars)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut child = common::Running(child);
    let mut stdout = BufReader::new(child.0.stdout.take().expect("stdout"));
    let mut stderr = child.0.stderr.take().expect("stderr");
    let mut first = String::new();
    stdout.read_line(&mut first).expect("a log line");
    let log: serde_json::Value = serde_json::from_str(&first).expect("JSON log line");
    let addr = log["address"]
        .as_str()
        .expect("address")
        .parse()
        .expect("socket address");
    let output = std::thread::spawn(move || {
        let errors = std::thread::spawn(move || {
            let mut text = String::new();
            std::io::Read::read_to_string(&mut stderr, &mut text).ok();
            text
        });
        let mut text = first;
        std::io::Read::read_to_string(&mut stdout, &mut text).ok();
        text + &errors.join().unwrap_or_default()
    });
    (child, addr, output)
}

/// Waits for the child to exit (at most 5 s) and returns its exit code.
async fn exit_code(child: &mut common::Running) -> Option<i32> {
    let started = Instant::now();
    loop {
        if let Some(exit) = child.0.try_wait().expect("wait") {
            return exit.code();
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Relay handlers still queued when SIGTERM closes the server used to reach socketioxide's
/// `SocketIo` shortcuts after the namespace table was emptied, which panic ("default
/// namespace not found"): `io.get_socket` in memory mode, `io.to` in cluster mode. 6 pairs,
/// each sender firing 2,900 ICE candidates at its peer, SIGTERM once the candidates flow:
/// exit code 0 and no panic, round after round.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_relay_storm_never_panics() {
    relay_storm_rounds(&[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_relay_storm_never_panics_in_cluster_mode() {
    let Some(redis) = common::redis::RedisServer::start() else {
        return;
    };
    relay_storm_rounds(&[("REDIS_URL", &redis.url())]).await;
}

async fn relay_storm_rounds(vars: &[(&str, &str)]) {
    const ROUNDS: usize = 5;
    const PAIRS: usize = 6;
    const CANDIDATES: usize = 2_900;
    for round in 0..ROUNDS {
        let (mut child, addr, output) = start_binary(vars);
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for pair in 0..PAIRS {
            let room = format!("STORM{pair}");
            let mut receiver = RawWs::connect(addr).await;
            receiver.join(&room, "Receiver").await;
            let mut sender = RawWs::connect(addr).await;
            sender.join(&room, "Sender").await;
            let target = receiver.sid.clone();
            senders.push(tokio::spawn(async move {
                let candidate = raw::event_packet(
                    "webrtc-ice-candidate",
                    &json!({
                        "targetId": target,
                        "candidate": {
                            "candidate": "candidate:1 1 udp 2122260223 192.0.2.1 9 typ host",
                            "sdpMid": "0",
                            "sdpMLineIndex": 0
                        }
                    }),
                    None,
                );
                for _ in 0..CANDIDATES {
                    if sender.send_sio(&candidate).await.is_err() {
                        break;
                    }
                }
                sender
            }));
            receivers.push(receiver);
        }
        // SIGTERM once candidates are arriving.
        receivers[0].expect_event("webrtc-ice-candidate").await;
        let status = Command::new("kill")
            .args(["-TERM", &child.0.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let code = exit_code(&mut child).await;
        let printed = output.join().expect("output");
        assert!(
            !printed.contains("panicked"),
            "round {round}: the server panicked:\n{printed}"
        );
        assert_eq!(code, Some(0), "round {round}: exit code\n{printed}");
        for sender in senders {
            sender.await.ok();
        }
        drop(receivers);
    }
}
