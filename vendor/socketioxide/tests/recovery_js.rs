//! The JavaScript socket.io-client (4.8, the client of the browsers) recovers its session from
//! this server through a real blip, over both transports: `tests/js/recovery.mjs` puts a TCP
//! proxy between them and cuts it. Needs node and `npm ci --prefix tests/js` (offline after).

use std::{
    collections::HashMap,
    path::PathBuf,
    process::Command,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde::Serialize;
use socketioxide::{
    SocketIo,
    extract::{AckSender, Data, SocketRef},
};

/// What the server's lifecycle handlers saw for one socket.
#[derive(Default, Clone, Copy, Serialize)]
struct Lifecycle {
    lost: u32,
    recovered: u32,
    disconnected: u32,
}
type Seen = Arc<Mutex<HashMap<String, Lifecycle>>>;

fn count(seen: &Seen, s: &SocketRef, update: fn(&mut Lifecycle)) {
    update(seen.lock().unwrap().entry(s.id.to_string()).or_default());
}

async fn serve() -> u16 {
    let (layer, io) = SocketIo::builder()
        .ping_interval(Duration::from_secs(2))
        .ping_timeout(Duration::from_secs(2))
        .connection_state_recovery(Duration::from_secs(30), 100)
        .build_layer();
    let seen = Seen::default();
    io.ns("/", async move |s: SocketRef| {
        s.on("subscribe", async |s: SocketRef, ack: AckSender| {
            s.join("r");
            ack.send(&s.id).ok();
        });
        // Odd ticks to the room, even ones to the socket alone.
        s.on(
            "burst",
            async |io: SocketIo,
                   Data((target, from, to)): Data<(String, i64, i64)>,
                   ack: AckSender| {
                for n in from..=to {
                    if n % 2 == 1 {
                        io.to("r").emit("tick", &n).await.ok();
                    } else if let Some(socket) = target.parse().ok().and_then(|s| io.get_socket(s))
                    {
                        socket.emit("tick", &n).ok();
                    }
                }
                ack.send(&()).ok();
            },
        );
        let stats = seen.clone();
        s.on(
            "stats",
            async move |Data(target): Data<String>, ack: AckSender| {
                let seen = stats
                    .lock()
                    .unwrap()
                    .get(&target)
                    .copied()
                    .unwrap_or_default();
                ack.send(&seen).ok();
            },
        );
        let (lost, recovered, disconnected) = (seen.clone(), seen.clone(), seen.clone());
        s.on_transport_lost(async move |s: SocketRef| count(&lost, &s, |l| l.lost += 1));
        s.on_recovered(async move |s: SocketRef| count(&recovered, &s, |l| l.recovered += 1));
        s.on_disconnect(async move |s: SocketRef| {
            count(&disconnected, &s, |l| l.disconnected += 1)
        });
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().layer(layer)).await });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn socket_io_client_recovers_through_a_blip() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/js");
    assert!(
        dir.join("node_modules/socket.io-client").exists(),
        "run `npm ci --prefix {}` first",
        dir.display()
    );
    let port = serve().await;
    for transport in ["polling", "websocket"] {
        for mode in ["cut", "blackhole"] {
            let dir = dir.clone();
            let run = tokio::task::spawn_blocking(move || {
                Command::new("node")
                    .arg("recovery.mjs")
                    .args([&port.to_string(), transport, mode])
                    .current_dir(dir)
                    .output()
                    .expect("node")
            });
            let out = run.await.unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "{transport} {mode}: {stdout}{stderr}");
            println!("{stdout}");
        }
    }
}
