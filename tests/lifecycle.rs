//! The binary as operators run it: configuration errors stop start-up with exit code 2 and a
//! one-line message naming the variable; SIGTERM with clients connected exits 0 promptly.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Running, server_command};
use rust_socketio::TransportType;
use rust_socketio::asynchronous::ClientBuilder;

#[test]
fn bad_configuration_exits_2_naming_the_variable() {
    for (var, value) in [
        ("PORT", "abc"),
        ("MAX_PARTICIPANTS", "0"),
        ("EMPTY_ROOM_TTL_SECS", "-5"),
        ("FRONTEND_URL", "not a url"),
        ("RUST_LOG", "=!="),
    ] {
        let output = server_command(&[
            (var, value),
            ("PORT", if var == "PORT" { value } else { "0" }),
        ])
        .output()
        .expect("run binary");
        assert_eq!(output.status.code(), Some(2), "{var}={value}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
        assert!(stderr.contains(var), "{stderr}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_clients_connected_exits_0_quickly() {
    let mut running = Running(
        server_command(&[("HOST", "127.0.0.1"), ("PORT", "0"), ("LOG_FORMAT", "json")])
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn"),
    );
    let child = &mut running.0;
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let first = lines.next().expect("a log line").expect("utf-8");
    let log: serde_json::Value = serde_json::from_str(&first).expect("JSON log line");
    let address = log["address"].as_str().expect("address").to_owned();
    // Keep reading the logs so the server never blocks on a full pipe; check they are JSON.
    let reader = std::thread::spawn(move || {
        lines.all(|line| line.is_ok_and(|l| serde_json::from_str::<serde_json::Value>(&l).is_ok()))
    });

    let mut clients = Vec::new();
    for _ in 0..20 {
        let client = ClientBuilder::new(format!("http://{address}/"))
            .transport_type(TransportType::Websocket)
            .reconnect(false)
            .connect()
            .await
            .expect("connect");
        clients.push(client);
    }
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let started = Instant::now();
    let exit = loop {
        if let Some(exit) = child.try_wait().expect("wait") {
            break exit;
        }
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "still running 5 s after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(exit.code(), Some(0));
    assert!(reader.join().expect("reader"), "every log line is JSON");
    drop(clients);
}
