//! The WebSocket opening handshake, as RFC 6455 §4.2.1–4.4 has a server answer it: a
//! well-formed upgrade gets `101` and the right `Sec-WebSocket-Accept`; a malformed key, a
//! missing header or a non-GET request gets `400`; another protocol version gets `426` with
//! `Sec-WebSocket-Version: 13`. Sent byte for byte over TCP, through the whole server.

mod common;

use common::{TestServer, WAIT};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The example key of RFC 6455 §1.3 and the accept value it must produce.
const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";
const ACCEPT: &str = "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=";

/// Sends one request and returns the status line and the headers (lower-case names).
async fn exchange(server: &TestServer, request: &str) -> (u16, Vec<(String, String)>) {
    let mut tcp = TcpStream::connect(server.addr).await.expect("connect");
    tcp.write_all(request.as_bytes()).await.expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match tokio::time::timeout(WAIT, tcp.read(&mut byte)).await {
            Ok(Ok(1)) => head.push(byte[0]),
            other => panic!(
                "response ended early ({other:?}): {:?}",
                String::from_utf8_lossy(&head)
            ),
        }
    }
    let head = String::from_utf8(head).expect("utf-8 head");
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// An upgrade request to the Socket.IO path with `headers` (each `Name: value`).
fn upgrade(method: &str, headers: &[&str]) -> String {
    let mut request =
        format!("{method} /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: localhost\r\n");
    for h in headers {
        request.push_str(h);
        request.push_str("\r\n");
    }
    if method == "POST" {
        request.push_str("Content-Length: 0\r\n");
    }
    request.push_str("\r\n");
    request
}

const UPGRADE: &str = "Upgrade: websocket";
const CONNECTION: &str = "Connection: Upgrade";
const VERSION: &str = "Sec-WebSocket-Version: 13";

#[tokio::test]
async fn a_well_formed_upgrade_is_accepted() {
    let server = TestServer::start().await;
    let key = format!("Sec-WebSocket-Key: {KEY}");
    let (status, headers) = exchange(
        &server,
        &upgrade("GET", &[UPGRADE, CONNECTION, &key, VERSION]),
    )
    .await;
    assert_eq!(status, 101, "{headers:?}");
    assert_eq!(header(&headers, "sec-websocket-accept"), Some(ACCEPT));
    // Browsers send `Connection: keep-alive, Upgrade` and mixed case.
    let (status, _) = exchange(
        &server,
        &upgrade(
            "GET",
            &[
                "Upgrade: WebSocket",
                "Connection: keep-alive, Upgrade",
                &key,
                VERSION,
            ],
        ),
    )
    .await;
    assert_eq!(status, 101);
}

#[tokio::test]
async fn a_malformed_key_is_refused_with_400() {
    let server = TestServer::start().await;
    for key in [
        "abc",                      // not 16 bytes
        "dGhlIHNhbXBsZSBub25j",     // 15 bytes
        "dGhlIHNhbXBsZSBub25jZTE=", // 17 bytes
        "dGhlIHNhbXBsZSBub25jZQ",   // unpadded
        "!!!!IHNhbXBsZSBub25jZQ==", // not base64
        "",
    ] {
        let key = format!("Sec-WebSocket-Key: {key}");
        let (status, _) = exchange(
            &server,
            &upgrade("GET", &[UPGRADE, CONNECTION, &key, VERSION]),
        )
        .await;
        assert_eq!(status, 400, "key {key:?}");
    }
    let (status, _) = exchange(&server, &upgrade("GET", &[UPGRADE, CONNECTION, VERSION])).await;
    assert_eq!(status, 400, "no key");
}

#[tokio::test]
async fn another_version_gets_426_naming_version_13() {
    let server = TestServer::start().await;
    let key = format!("Sec-WebSocket-Key: {KEY}");
    for version in ["8", "12", "14", "13, 8"] {
        let version = format!("Sec-WebSocket-Version: {version}");
        let (status, headers) = exchange(
            &server,
            &upgrade("GET", &[UPGRADE, CONNECTION, &key, &version]),
        )
        .await;
        assert_eq!(status, 426, "{version}");
        assert_eq!(
            header(&headers, "sec-websocket-version"),
            Some("13"),
            "{version}"
        );
    }
}

#[tokio::test]
async fn a_request_that_is_not_an_upgrade_is_refused_with_400() {
    let server = TestServer::start().await;
    let key = format!("Sec-WebSocket-Key: {KEY}");
    for (method, headers) in [
        ("POST", vec![UPGRADE, CONNECTION, &key, VERSION]),
        ("GET", vec![CONNECTION, &key, VERSION]),
        ("GET", vec![UPGRADE, &key, VERSION]),
        ("GET", vec![UPGRADE, CONNECTION, &key]),
        ("GET", vec!["Upgrade: h2c", CONNECTION, &key, VERSION]),
    ] {
        let (status, _) = exchange(&server, &upgrade(method, &headers)).await;
        assert_eq!(status, 400, "{method} {headers:?}");
    }
}
