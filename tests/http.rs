//! The REST API and the origin allow-list, over real HTTP: `/health`, rooms, JSON errors,
//! CORS for REST and for both Socket.IO transports (the WebSocket upgrade included).

mod common;

use common::TestServer;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn health_reports_the_original_fields() {
    let server = TestServer::start().await;
    let (status, health) = server.get("/health").await;
    assert_eq!(status, 200);
    assert_eq!(health["status"], "OK");
    assert!(
        health["timestamp"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(health["activeRooms"], 0);
    assert_eq!(health["totalParticipants"], 0);
    assert!(health["uptimeSecs"].is_u64());
    assert_eq!(health["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(health["connections"], 0);
    assert_eq!(server.get("/ready").await.0, 200);
}

#[tokio::test]
async fn created_rooms_exist_empty() {
    let server = TestServer::start().await;
    let (status, created) = server.post("/api/create-room").await;
    assert_eq!(status, 200);
    assert_eq!(created["message"], "Room created successfully");
    let id = created["roomId"].as_str().expect("roomId");
    assert_eq!(id.len(), 8);
    assert!(
        id.chars()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase()),
        "{id}"
    );
    let (status, room) = server.get(&format!("/api/room/{id}")).await;
    assert_eq!(status, 200);
    assert_eq!(room["roomId"], id);
    assert_eq!(room["participantCount"], 0);
    assert!(room["createdAt"].as_str().is_some_and(|t| t.ends_with('Z')));
    assert_eq!(server.counts().await, (1, 0));
}

#[tokio::test]
async fn unknown_rooms_paths_and_methods_answer_json() {
    let server = TestServer::start().await;
    assert_eq!(
        server.get("/api/room/NOPE").await,
        (404, json!({"error": "Room not found"}))
    );
    assert_eq!(server.get("/api/room/%FF%FE").await.0, 404);
    let (status, body) = server.get("/no/such/path").await;
    assert_eq!(status, 404);
    assert!(body["error"].is_string());
    let (status, body) = server.get("/api/create-room").await;
    assert_eq!(status, 405);
    assert!(body["error"].is_string());
}

#[tokio::test]
async fn unused_created_rooms_expire() {
    let server = TestServer::with(|c| c.unused_room_ttl = std::time::Duration::from_secs(1)).await;
    server.post("/api/create-room").await;
    assert_eq!(server.counts().await, (1, 0));
    server.await_counts((0, 0)).await;
}

const ALLOWED: &str = "http://allowed.test";
const EVIL: &str = "http://evil.test";

async fn guarded() -> TestServer {
    TestServer::with(|c| {
        c.allowed_origins = prolitemeet_server::config::AllowedOrigins::List(vec![ALLOWED.into()]);
    })
    .await
}

async fn get_with_origin(server: &TestServer, path: &str, origin: &str) -> reqwest::Response {
    server
        .http
        .get(server.url(path))
        .header("Origin", origin)
        .send()
        .await
        .expect("GET")
}

#[tokio::test]
async fn foreign_origins_are_refused_everywhere() {
    let server = guarded().await;
    for path in [
        "/health",
        "/api/room/X",
        "/socket.io/?EIO=4&transport=polling",
    ] {
        let response = get_with_origin(&server, path, EVIL).await;
        assert_eq!(response.status(), 403, "{path}");
        assert!(
            response
                .headers()
                .get("access-control-allow-origin")
                .is_none()
        );
        assert_eq!(
            response.json::<serde_json::Value>().await.ok(),
            Some(json!({"error": "Origin not allowed"}))
        );
    }
    let response = server
        .http
        .post(server.url("/api/create-room"))
        .header("Origin", EVIL)
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 403);
    let preflight = server
        .http
        .request(reqwest::Method::OPTIONS, server.url("/api/create-room"))
        .header("Origin", EVIL)
        .header("Access-Control-Request-Method", "POST")
        .send()
        .await
        .expect("OPTIONS");
    assert_eq!(preflight.status(), 403);
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_eq!(
        server.counts().await,
        (0, 0),
        "the refused POST made no room"
    );
}

/// A raw WebSocket upgrade request, as a browser on `origin` sends it.
async fn websocket_upgrade_status(server: &TestServer, origin: Option<&str>) -> String {
    let mut stream = tokio::net::TcpStream::connect(server.addr)
        .await
        .expect("connect");
    let origin = origin
        .map(|o| format!("Origin: {o}\r\n"))
        .unwrap_or_default();
    let request = format!(
        "GET /socket.io/?EIO=4&transport=websocket HTTP/1.1\r\nHost: {}\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n{origin}\r\n",
        server.addr
    );
    stream.write_all(request.as_bytes()).await.expect("write");
    let mut buf = [0u8; 512];
    let n = stream.read(&mut buf).await.expect("read");
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn websocket_upgrades_obey_the_allow_list() {
    let server = guarded().await;
    assert!(
        websocket_upgrade_status(&server, Some(EVIL))
            .await
            .contains("403")
    );
    assert!(
        websocket_upgrade_status(&server, Some(ALLOWED))
            .await
            .contains("101")
    );
    assert!(
        websocket_upgrade_status(&server, None)
            .await
            .contains("101")
    );
}

#[tokio::test]
async fn allowed_origins_get_cors_headers() {
    let server = guarded().await;
    for path in ["/health", "/socket.io/?EIO=4&transport=polling"] {
        let response = get_with_origin(&server, path, ALLOWED).await;
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert_eq!(headers["access-control-allow-origin"], ALLOWED);
        assert_eq!(headers["access-control-allow-credentials"], "true");
    }
    let preflight = server
        .http
        .request(reqwest::Method::OPTIONS, server.url("/api/create-room"))
        .header("Origin", ALLOWED)
        .header("Access-Control-Request-Method", "POST")
        .header("Access-Control-Request-Headers", "content-type")
        .send()
        .await
        .expect("OPTIONS");
    assert!(preflight.status().is_success());
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], ALLOWED);
    let allowed_headers = headers["access-control-allow-headers"]
        .to_str()
        .expect("ascii");
    assert!(allowed_headers.contains("content-type") && allowed_headers.contains("authorization"));
    let methods = headers["access-control-allow-methods"]
        .to_str()
        .expect("ascii");
    assert!(methods.contains("GET") && methods.contains("POST"));
    assert_eq!(server.get("/health").await.0, 200, "no Origin: allowed");
}

#[tokio::test]
async fn the_servers_own_origin_is_refused_unless_it_hosts_a_frontend() {
    let server = guarded().await;
    let own = format!("http://{}", server.addr);
    assert!(
        websocket_upgrade_status(&server, Some(&own))
            .await
            .contains("403")
    );
}

#[tokio::test]
async fn a_page_served_by_the_server_itself_is_same_origin() {
    let site = std::env::temp_dir().join(format!("plm-site-{}", std::process::id()));
    std::fs::create_dir_all(&site).expect("mkdir");
    std::fs::write(site.join("index.html"), "<h1>meet</h1>").expect("write");
    let server = TestServer::with(|c| {
        c.allowed_origins = prolitemeet_server::config::AllowedOrigins::List(vec![ALLOWED.into()]);
        c.static_dir = Some(site.clone());
    })
    .await;
    let page = server
        .http
        .get(server.url("/room/ABC"))
        .header("Accept", "text/html")
        .send()
        .await
        .expect("GET");
    assert_eq!(page.headers()["cache-control"], "no-cache");
    assert_eq!(page.text().await.expect("body"), "<h1>meet</h1>");
    assert_eq!(server.get("/api/nope").await.0, 404);
    let own = format!("http://{}", server.addr);
    let response = server
        .http
        .post(server.url("/api/create-room"))
        .header("Origin", own.as_str())
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status(), 200);
    assert!(
        websocket_upgrade_status(&server, Some(&own))
            .await
            .contains("101")
    );
    let other_port = format!("http://127.0.0.1:{}", server.addr.port() + 1);
    assert!(
        websocket_upgrade_status(&server, Some(&other_port))
            .await
            .contains("403")
    );
}

#[tokio::test]
async fn star_echoes_any_origin() {
    let server =
        TestServer::with(|c| c.allowed_origins = prolitemeet_server::config::AllowedOrigins::Any)
            .await;
    let response = get_with_origin(&server, "/health", EVIL).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["access-control-allow-origin"], EVIL);
    assert_eq!(
        response.headers()["access-control-allow-credentials"],
        "true"
    );
}
