//! ICE servers with TURN credentials: `GET /api/ice-servers`, `iceServers` in `joined-room`,
//! and the issued credentials proven against a real coturn (`turnserver`, with
//! `turnutils_uclient` allocating a relay). CI installs coturn; elsewhere the coturn part is
//! skipped with a note when it is missing.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{Running, TestServer};
use prolitemeet_server::ice::{IceConfig, TurnConfig, credential};
use prolitemeet_server::limits::Rate;
use serde_json::Value;

const SECRET: &str = "test-static-auth-secret";

fn free_udp_port() -> u16 {
    std::net::UdpSocket::bind("127.0.0.1:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

async fn turn_server(turn_port: u16) -> TestServer {
    TestServer::with(|c| {
        c.ice = IceConfig {
            stun_urls: vec![format!("stun:127.0.0.1:{turn_port}")],
            turn: Some(TurnConfig {
                urls: vec![format!("turn:127.0.0.1:{turn_port}?transport=udp")],
                secret: SECRET.into(),
            }),
            ttl: Duration::from_secs(600),
        };
    })
    .await
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs()
}

#[tokio::test]
async fn ice_servers_carry_expiring_turn_credentials() {
    let server = turn_server(3478).await;
    let response = server
        .http
        .get(server.url("/api/ice-servers?participantId=alice"))
        .send()
        .await
        .expect("GET");
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["cache-control"], "no-store");
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["ttl"], 600);
    assert_eq!(body["iceServers"][0]["urls"][0], "stun:127.0.0.1:3478");
    let turn = &body["iceServers"][1];
    assert_eq!(turn["urls"][0], "turn:127.0.0.1:3478?transport=udp");
    let username = turn["username"].as_str().expect("username");
    let (expiry, id) = username.split_once(':').expect("expiry:id");
    assert_eq!(id, "alice");
    let expiry: u64 = expiry.parse().expect("unix time");
    assert!(expiry.abs_diff(now() + 600) <= 5, "{expiry}");
    assert_eq!(turn["credential"], credential(SECRET, username));

    let (_, anonymous) = server.get("/api/ice-servers").await;
    let other = anonymous["iceServers"][1]["username"]
        .as_str()
        .expect("username");
    assert!(
        other.split_once(':').is_some_and(|(_, id)| id.len() >= 16),
        "{other}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_room_carries_ice_servers_for_the_participant() {
    let server = turn_server(3478).await;
    let mut a = server.client().await;
    let joined = a.join("ICE", "Ann").await;
    let turn = &joined["iceServers"][1];
    let username = turn["username"].as_str().expect("username");
    assert!(username.ends_with(&format!(":{}", a.id)), "{username}");
    assert_eq!(turn["credential"], credential(SECRET, username));
    let stun_only = TestServer::start().await;
    let mut b = stun_only.client().await;
    let joined = b.join("ICE", "Bob").await;
    assert_eq!(
        joined["iceServers"],
        serde_json::json!([{"urls": ["stun:stun.l.google.com:19302"]}])
    );
}

#[tokio::test]
async fn ice_servers_are_rate_limited_per_address() {
    let server = TestServer::with(|c| {
        c.ice_rate = Rate {
            per_sec: 0.01,
            burst: 2.0,
        }
    })
    .await;
    assert_eq!(server.get("/api/ice-servers").await.0, 200);
    assert_eq!(server.get("/api/ice-servers").await.0, 200);
    let (status, body) = server.get("/api/ice-servers").await;
    assert_eq!(status, 429);
    assert!(body["error"].is_string());
}

/// Allocates a relay on coturn with `username`/`password`; true if coturn accepted them.
fn allocate(turn_port: u16, username: &str, password: &str) -> bool {
    Command::new("timeout")
        .args(["20", "turnutils_uclient", "-y", "-n", "1", "-m", "1", "-p"])
        .arg(turn_port.to_string())
        .args(["-u", username, "-w", password, "127.0.0.1"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[tokio::test]
async fn coturn_accepts_issued_credentials_and_refuses_bad_ones() {
    if Command::new("turnserver")
        .arg("--help")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
    {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have coturn (Debian package coturn)"
        );
        eprintln!("coturn not installed: skipping the real TURN allocation");
        return;
    }
    let turn_port = free_udp_port();
    // Keep coturn's pid file and user database out of the host's /var.
    let scratch =
        std::env::temp_dir().join(format!("plm-coturn-{}-{turn_port}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch dir");
    let _coturn = Running(
        Command::new("turnserver")
            .args([
                "-n",
                "--listening-ip=127.0.0.1",
                "--relay-ip=127.0.0.1",
                "--use-auth-secret",
            ])
            .arg(format!("--static-auth-secret={SECRET}"))
            .arg(format!("--listening-port={turn_port}"))
            .args([
                "--realm=prolitemeet.test",
                "--no-tls",
                "--no-dtls",
                "--no-cli",
                "--allow-loopback-peers",
            ])
            .args(["--log-file=stdout", "--simple-log"])
            .arg(format!(
                "--pidfile={}",
                scratch.join("turnserver.pid").display()
            ))
            .arg(format!("--userdb={}", scratch.join("turndb").display()))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("turnserver"),
    );
    let server = turn_server(turn_port).await;
    let (_, body) = server.get("/api/ice-servers?participantId=alice").await;
    let username = body["iceServers"][1]["username"]
        .as_str()
        .expect("username")
        .to_owned();
    let password = body["iceServers"][1]["credential"]
        .as_str()
        .expect("credential")
        .to_owned();

    // coturn may take a moment to listen: the issued credential must work within a few tries.
    let accepted = tokio::task::spawn_blocking(move || {
        (0..10).any(|_| {
            allocate(turn_port, &username, &password) || {
                std::thread::sleep(Duration::from_millis(300));
                false
            }
        })
    })
    .await
    .expect("join");
    assert!(accepted, "coturn refused the server's credential");

    let (_, body) = server.get("/api/ice-servers?participantId=bob").await;
    let username = body["iceServers"][1]["username"]
        .as_str()
        .expect("username")
        .to_owned();
    let tampered = credential("not-the-secret", &username);
    let expired_user = format!("{}:bob", now() - 60);
    let expired = credential(SECRET, &expired_user);
    let refused = tokio::task::spawn_blocking(move || {
        (
            allocate(turn_port, &username, &tampered),
            allocate(turn_port, &expired_user, &expired),
        )
    })
    .await
    .expect("join");
    assert_eq!(
        refused,
        (false, false),
        "tampered and expired credentials must be refused"
    );
}
