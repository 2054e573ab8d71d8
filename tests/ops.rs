//! Operations: `/metrics` counters move by exactly what known traffic causes and the output
//! parses as Prometheus text; `METRICS_TOKEN`; the operator API (`ADMIN_TOKEN`); JSON logs.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::{Running, TestServer, server_command};
use prolitemeet_server::limits::{Rate, RateLimits};
use serde_json::{Value, json};

/// Every sample of `/metrics` as `name{labels}` → value, labels sorted.
async fn scrape(server: &TestServer) -> HashMap<String, f64> {
    let text = server
        .http
        .get(server.url("/metrics"))
        .send()
        .await
        .expect("GET /metrics")
        .text()
        .await
        .expect("body");
    validate_with_promtool(&text);
    let scrape =
        prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("parses");
    let mut samples = HashMap::new();
    for sample in scrape.samples {
        let mut labels: Vec<String> = sample
            .labels
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        labels.sort();
        let value = match sample.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => v,
            prometheus_parse::Value::Histogram(buckets) => buckets.last().map_or(0.0, |b| b.count),
            prometheus_parse::Value::Summary(_) => continue,
        };
        samples.insert(format!("{}{{{}}}", sample.metric, labels.join(",")), value);
    }
    samples
}

/// Runs `promtool check metrics` on the exposition when promtool is installed (CI installs it).
fn validate_with_promtool(text: &str) {
    let Ok(mut child) = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    else {
        assert!(
            std::env::var("CI").is_err(),
            "CI must have promtool (Debian package prometheus)"
        );
        return;
    };
    use std::io::Write;
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let output = child.wait_with_output().expect("promtool");
    assert!(
        output.status.success(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn delta(before: &HashMap<String, f64>, after: &HashMap<String, f64>, key: &str) -> f64 {
    after.get(key).copied().unwrap_or(0.0) - before.get(key).copied().unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counters_move_by_exactly_the_traffic() {
    let server = TestServer::start().await;
    let before = scrape(&server).await;
    let mut a = server.joined("M", "Ann").await;
    let mut b = server.joined("M", "Bob").await;
    a.wait_for("participants-updated").await;
    a.emit("send-message", json!({"message": "hi"})).await;
    a.expect("new-message").await;
    b.expect("new-message").await;
    for (event, body) in [
        ("webrtc-offer", "offer"),
        ("webrtc-answer", "answer"),
        ("webrtc-ice-candidate", "candidate"),
    ] {
        a.emit(event, json!({"targetId": b.id, body: {}})).await;
        b.expect(event).await;
    }
    a.emit("request-connection", json!({"targetId": b.id}))
        .await;
    b.expect("connection-request").await;
    a.emit("send-message", json!({"message": ""})).await;
    a.expect_error("send-message", "invalid_payload").await;
    a.emit("no-such-event", json!({})).await;
    b.emit_bare("leave-room").await;
    b.expect("left-room").await;
    a.wait_for("participants-updated").await;
    let after = scrape(&server).await;

    for (key, expected) in [
        ("prolitemeet_events_received_total{event=join-room}", 2.0),
        ("prolitemeet_events_received_total{event=send-message}", 2.0),
        ("prolitemeet_events_received_total{event=webrtc-offer}", 1.0),
        ("prolitemeet_events_received_total{event=leave-room}", 1.0),
        ("prolitemeet_events_received_total{event=unknown}", 1.0),
        (
            "prolitemeet_events_rejected_total{code=invalid_payload}",
            1.0,
        ),
        ("prolitemeet_signaling_relayed_total{kind=offer}", 1.0),
        ("prolitemeet_signaling_relayed_total{kind=answer}", 1.0),
        ("prolitemeet_signaling_relayed_total{kind=ice}", 1.0),
        (
            "prolitemeet_signaling_relayed_total{kind=connection-request}",
            1.0,
        ),
        ("prolitemeet_chat_messages_total{}", 1.0),
        ("prolitemeet_joins_total{}", 2.0),
        ("prolitemeet_leaves_total{}", 1.0),
        ("prolitemeet_handler_duration_seconds{event=join-room}", 2.0),
    ] {
        assert_eq!(delta(&before, &after, key), expected, "{key}");
    }
    assert_eq!(after["prolitemeet_rooms{}"], 1.0);
    assert_eq!(after["prolitemeet_participants{}"], 1.0);
    assert_eq!(
        after["prolitemeet_sockets_connected{transport=websocket}"],
        2.0
    );
    assert!(after["process_resident_memory_bytes{}"] > 1e6);
    assert!(after["process_open_fds{}"] > 0.0);
    assert!(after.contains_key("process_cpu_seconds_total{}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_hits_are_counted() {
    let server = TestServer::with(|c| {
        c.rate_limits = RateLimits {
            chat: Rate {
                per_sec: 0.001,
                burst: 1.0,
            },
            ..RateLimits::UNLIMITED
        };
    })
    .await;
    let mut a = server.joined("M", "Ann").await;
    a.emit("send-message", json!({"message": "one"})).await;
    a.expect("new-message").await;
    a.emit("send-message", json!({"message": "two"})).await;
    a.expect_error("send-message", "rate_limited").await;
    let after = scrape(&server).await;
    assert_eq!(after["prolitemeet_rate_limit_hits_total{class=chat}"], 1.0);
    assert_eq!(
        after["prolitemeet_events_rejected_total{code=rate_limited}"],
        1.0
    );
}

#[tokio::test]
async fn metrics_token_guards_metrics() {
    let server = TestServer::with(|c| c.metrics_token = Some("m3trics".into())).await;
    assert_eq!(server.get("/metrics").await.0, 401);
    let wrong = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth("nope")
        .send()
        .await
        .expect("GET");
    assert_eq!(wrong.status(), 401);
    let right = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth("m3trics")
        .send()
        .await
        .expect("GET");
    assert_eq!(right.status(), 200);
    assert!(
        right.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("text/plain; version=0.0.4")
    );
    let openmetrics = server
        .http
        .get(server.url("/metrics"))
        .bearer_auth("m3trics")
        .header("Accept", "application/openmetrics-text; version=1.0.0")
        .send()
        .await
        .expect("GET");
    assert!(
        openmetrics.headers()["content-type"]
            .to_str()
            .expect("ascii")
            .starts_with("application/openmetrics-text")
    );
    assert!(openmetrics.text().await.expect("body").ends_with("# EOF\n"));
}

async fn admin(
    server: &TestServer,
    method: reqwest::Method,
    path: &str,
    token: Option<&str>,
) -> (u16, Value) {
    let mut request = server.http.request(method, server.url(path));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await.expect("admin request");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn admin_api_is_absent_without_a_token_and_refuses_a_wrong_one() {
    let server = TestServer::start().await;
    assert_eq!(
        admin(&server, reqwest::Method::GET, "/api/admin/rooms", Some("x"))
            .await
            .0,
        404
    );
    let server = TestServer::with(|c| c.admin_token = Some("adm1n".into())).await;
    for (method, path) in [
        (reqwest::Method::GET, "/api/admin/rooms"),
        (reqwest::Method::GET, "/api/admin/rooms/R"),
        (reqwest::Method::DELETE, "/api/admin/rooms/R"),
        (reqwest::Method::DELETE, "/api/admin/participants/S"),
    ] {
        assert_eq!(
            admin(&server, method.clone(), path, None).await.0,
            401,
            "{path}"
        );
        let (status, body) = admin(&server, method, path, Some("wrong")).await;
        assert_eq!((status, body["error"].is_string()), (401, true), "{path}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operators_can_list_inspect_close_and_kick() {
    const TOKEN: Option<&str> = Some("adm1n");
    let server = TestServer::with(|c| {
        c.admin_token = Some("adm1n".into());
        c.empty_room_ttl = std::time::Duration::ZERO;
    })
    .await;
    let mut a = server.joined("R1", "Ann").await;
    let mut b = server.joined("R1", "Bob").await;
    let mut c = server.joined("R2", "Cat").await;
    a.wait_for("participants-updated").await;
    a.emit("send-message", json!({"message": "top secret"}))
        .await;
    a.expect("new-message").await;
    b.expect("new-message").await;

    let (status, list) = admin(&server, reqwest::Method::GET, "/api/admin/rooms", TOKEN).await;
    assert_eq!(status, 200);
    let r1 = list["rooms"]
        .as_array()
        .expect("rooms")
        .iter()
        .find(|r| r["roomId"] == "R1")
        .expect("R1")
        .clone();
    assert_eq!(r1["participantCount"], 2);
    assert_eq!(r1["messageCount"], 1);
    assert_eq!(r1["host"]["id"], a.id.as_str());
    assert!(r1["createdAt"].is_string());

    let (status, detail) = admin(&server, reqwest::Method::GET, "/api/admin/rooms/R1", TOKEN).await;
    assert_eq!(status, 200);
    assert_eq!(detail["participants"][1]["userName"], "Bob");
    assert!(detail["participants"][0].get("isAudioMuted").is_some());
    assert!(
        !detail.to_string().contains("top secret"),
        "no chat text: {detail}"
    );
    assert_eq!(
        admin(
            &server,
            reqwest::Method::GET,
            "/api/admin/rooms/NOPE",
            TOKEN
        )
        .await
        .0,
        404
    );

    let (status, kicked) = admin(
        &server,
        reqwest::Method::DELETE,
        &format!("/api/admin/participants/{}", b.id),
        TOKEN,
    )
    .await;
    assert_eq!((status, kicked["removed"].clone()), (200, json!(true)));
    assert_eq!(b.expect("error").await["code"], "kicked");
    assert_eq!(a.expect("user-left").await["participantId"], b.id.as_str());
    assert_eq!(
        a.expect("participants-updated")
            .await
            .as_array()
            .map(Vec::len),
        Some(1)
    );
    assert_eq!(
        admin(
            &server,
            reqwest::Method::DELETE,
            "/api/admin/participants/nobody",
            TOKEN
        )
        .await
        .0,
        404
    );

    let (status, closed) = admin(
        &server,
        reqwest::Method::DELETE,
        "/api/admin/rooms/R1",
        TOKEN,
    )
    .await;
    assert_eq!(
        (status, closed["removedParticipants"].clone()),
        (200, json!(1))
    );
    assert_eq!(a.expect("error").await["code"], "room_closed");
    assert_eq!(server.get("/api/room/R1").await.0, 404);
    a.emit("send-message", json!({"message": "anyone?"})).await;
    a.expect_error("send-message", "not_in_room").await;
    let joined = a.join("R1", "Ann").await;
    assert_eq!(joined["messages"], json!([]), "history is gone");
    c.expect_quiet().await;
    server.await_counts((2, 2)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_carry_socket_room_and_request_fields() {
    let mut child = Running(
        server_command(&[("HOST", "127.0.0.1"), ("PORT", "0"), ("LOG_FORMAT", "json")])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().expect("stdout")).lines();
    let first: Value =
        serde_json::from_str(&lines.next().expect("line").expect("utf-8")).expect("JSON");
    let address: std::net::SocketAddr = first["address"]
        .as_str()
        .expect("address")
        .parse()
        .expect("addr");
    let reader = std::thread::spawn(move || {
        lines
            .map(|l| serde_json::from_str::<Value>(&l.expect("utf-8")).expect("every line is JSON"))
            .collect::<Vec<_>>()
    });
    let server = TestServer::attach(address);
    assert_eq!(server.get("/health").await.0, 200);
    let mut client = server.client().await;
    client.join("LOGS", "Ann").await;
    Command::new("kill")
        .args(["-TERM", &child.0.id().to_string()])
        .status()
        .expect("kill");
    assert_eq!(child.0.wait().expect("exit").code(), Some(0));
    let logs = reader.join().expect("reader");
    let joined = logs
        .iter()
        .find(|l| l["message"] == "joined")
        .expect("a join line");
    assert!(
        joined["socket"].is_string() && joined["room"] == "LOGS",
        "{joined}"
    );
    let request = logs
        .iter()
        .find(|l| {
            l["message"] == "finished processing request" && l.to_string().contains("/health")
        })
        .expect("a request line");
    assert!(
        request["status"] == 200 && request.get("latency").is_some(),
        "{request}"
    );
    assert_eq!(request["span"]["method"], "GET", "{request}");
}
