//! Test harness: starts the real server in-process on an ephemeral port (exactly
//! `prolitemeet_server::app` + `serve`) and drives it with a real Socket.IO client
//! (`rust_socketio`), turning received events into a stream the tests await.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::FutureExt;
pub mod redis;

use prolitemeet_server::limits::{Rate, RateLimits};
use prolitemeet_server::{Config, Deployment, app, serve};
use rust_socketio::asynchronous::{Client, ClientBuilder};
use rust_socketio::{Event, Payload, TransportType};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// How long a test waits for an event that must come.
pub const WAIT: Duration = Duration::from_secs(5);
/// How long a test listens to show that an event does *not* come.
pub const QUIET: Duration = Duration::from_millis(300);

/// One server, or (when `TEST_CLUSTER_REDIS` names a Redis) two instances of a cluster on
/// that Redis: then clients and HTTP requests alternate between the instances, so the same
/// tests check that every event crosses instances exactly as on one.
pub struct TestServer {
    /// The first instance.
    pub addr: SocketAddr,
    /// Every instance; clients and HTTP requests take turns over them.
    pub addrs: Vec<SocketAddr>,
    next: AtomicUsize,
    pub http: reqwest::Client,
    stops: Vec<oneshot::Sender<()>>,
}

/// The Redis the test suites run against as a cluster, if any.
pub fn cluster_redis() -> Option<String> {
    std::env::var("TEST_CLUSTER_REDIS")
        .ok()
        .filter(|url| !url.is_empty())
}

impl TestServer {
    pub async fn start() -> Self {
        Self::with(|_| {}).await
    }

    /// Starts a server whose configuration `adjust` may change (limits, TTLs, origins);
    /// a two-instance cluster when `TEST_CLUSTER_REDIS` is set.
    pub async fn with(adjust: impl FnOnce(&mut Config)) -> Self {
        // Protocol tests send faster than people do: rate limits are off unless a test sets them.
        // Connection state recovery is off unless a test turns it on (tests/recovery.rs): these
        // suites check today's behaviour (RECOVERY_WINDOW_S=0), where a dropped connection is
        // a departure and events carry no offset.
        let mut config = Config {
            host: IpAddr::from([127, 0, 0, 1]),
            port: 0,
            rate_limits: RateLimits::UNLIMITED,
            room_create_rate: Rate::UNLIMITED,
            max_rooms_per_address: 0,
            recovery_window: Duration::ZERO,
            ..Config::default()
        };
        adjust(&mut config);
        match cluster_redis() {
            Some(url) => {
                config.deployment = Deployment::Redis {
                    url,
                    prefix: unique_prefix(),
                };
                Self::cluster(config, 2).await
            }
            None => {
                let (addr, stop) = start_one(config).await;
                Self::of(vec![addr], vec![stop])
            }
        }
    }

    /// `instances` instances of one cluster, all with `config` (which names the Redis).
    pub async fn cluster(config: Config, instances: usize) -> Self {
        let mut addrs = Vec::new();
        let mut stops = Vec::new();
        for _ in 0..instances {
            let (addr, stop) = start_one(config.clone()).await;
            addrs.push(addr);
            stops.push(stop);
        }
        Self::of(addrs, stops)
    }

    fn of(addrs: Vec<SocketAddr>, stops: Vec<oneshot::Sender<()>>) -> Self {
        Self {
            addr: addrs[0],
            addrs,
            next: AtomicUsize::new(0),
            http: reqwest::Client::new(),
            stops,
        }
    }

    /// The instance whose turn it is.
    fn next_addr(&self) -> SocketAddr {
        self.addrs[self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len()]
    }

    /// A client of instance `index`.
    pub async fn client_of(&self, index: usize) -> TestClient {
        TestClient::connect_to(self.addrs[index], TransportType::Websocket).await
    }

    /// A handle on a server started elsewhere (the binary), for its HTTP and clients.
    pub fn attach(addr: SocketAddr) -> Self {
        Self::of(vec![addr], Vec::new())
    }

    /// `path` on the instance whose turn it is.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.next_addr(), path)
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let response = self.http.get(self.url(path)).send().await.expect("GET");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    pub async fn post(&self, path: &str) -> (u16, Value) {
        let response = self.http.post(self.url(path)).send().await.expect("POST");
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// `(activeRooms, totalParticipants)` from `/health`.
    pub async fn counts(&self) -> (u64, u64) {
        let (_, health) = self.get("/health").await;
        (
            health["activeRooms"].as_u64().expect("activeRooms"),
            health["totalParticipants"]
                .as_u64()
                .expect("totalParticipants"),
        )
    }

    /// Polls `/health` until it shows `expected`, or fails after `WAIT`.
    pub async fn await_counts(&self, expected: (u64, u64)) {
        eventually(WAIT, || async move {
            let seen = self.counts().await;
            (seen == expected)
                .then_some(())
                .ok_or_else(|| format!("/health kept showing {seen:?}, expected {expected:?}"))
        })
        .await;
    }

    /// Polls `/health` until this server holds no connection, or fails after `limit`.
    pub async fn await_no_connections(&self, limit: Duration) {
        eventually(limit, || async move {
            let (_, health) = self.get("/health").await;
            (health["connections"] == 0)
                .then_some(())
                .ok_or_else(|| format!("connections left: {health}"))
        })
        .await;
    }

    pub async fn client(&self) -> TestClient {
        TestClient::connect_to(self.next_addr(), TransportType::Websocket).await
    }

    pub async fn client_over(&self, transport: TransportType) -> TestClient {
        TestClient::connect_to(self.next_addr(), transport).await
    }

    /// A client joined to `room` as `name`, with the join's own events consumed.
    pub async fn joined(&self, room: &str, name: &str) -> TestClient {
        let mut c = self.client().await;
        c.join(room, name).await;
        c
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        for stop in self.stops.drain(..) {
            stop.send(()).ok();
        }
    }
}

/// Starts one server (in memory, or an instance of the cluster `config.deployment` names).
async fn start_one(config: Config) -> (SocketAddr, oneshot::Sender<()>) {
    let listener = TcpListener::bind((config.host, 0)).await.expect("bind");
    let addr = listener.local_addr().expect("local addr");
    let (stop, stopped) = oneshot::channel::<()>();
    let stopped = async {
        stopped.await.ok();
    };
    let (router, app) = app(config).await.expect("the server starts");
    tokio::spawn(serve(listener, router, app, stopped));
    (addr, stop)
}

/// Runs `probe` until it succeeds; after `limit`, fails with what it last saw.
pub async fn eventually<F, Fut>(limit: Duration, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        match probe().await {
            Ok(()) => return,
            Err(seen) => assert!(tokio::time::Instant::now() < deadline, "{seen}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A key prefix of its own for each test, so tests can share one Redis.
pub fn unique_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// A connected Socket.IO client and the events it has received, in order.
pub struct TestClient {
    pub id: String,
    socket: Client,
    events: mpsc::UnboundedReceiver<(String, Value)>,
    /// Becomes true when the server disconnects this client (a Socket.IO disconnect packet).
    closed: tokio::sync::watch::Receiver<bool>,
}

/// The first argument of an event or ack. Acks arrive as the raw JSON array text.
#[allow(deprecated)]
fn first_arg(payload: Payload) -> Value {
    match payload {
        Payload::Text(mut args) if !args.is_empty() => args.swap_remove(0),
        Payload::String(raw) => match serde_json::from_str::<Value>(&raw) {
            Ok(Value::Array(mut args)) if !args.is_empty() => args.swap_remove(0),
            Ok(other) => other,
            Err(_) => Value::Null,
        },
        _ => Value::Null,
    }
}

impl TestClient {
    pub async fn connect(server: &TestServer, transport: TransportType) -> Self {
        Self::connect_to(server.next_addr(), transport).await
    }

    pub async fn connect_to(addr: SocketAddr, transport: TransportType) -> Self {
        Self::connect_with(addr, transport, None).await
    }

    /// Connects as the client at `forwarded`, as a trusted proxy in front of the server
    /// would say with `X-Forwarded-For`.
    pub async fn connect_forwarded_for(server: &TestServer, forwarded: &str) -> Self {
        Self::connect_with(
            server.next_addr(),
            TransportType::Websocket,
            Some(forwarded),
        )
        .await
    }

    async fn connect_with(
        addr: SocketAddr,
        transport: TransportType,
        forwarded: Option<&str>,
    ) -> Self {
        let (tx, events) = mpsc::unbounded_channel();
        let (connected_tx, connected) = oneshot::channel::<()>();
        let connected_tx = Arc::new(Mutex::new(Some(connected_tx)));
        let on_any = tx.clone();
        let on_error = tx;
        let (closed_tx, closed) = tokio::sync::watch::channel(false);
        let mut builder = ClientBuilder::new(format!("http://{addr}/"));
        if let Some(address) = forwarded {
            builder = builder.opening_header("X-Forwarded-For", address);
        }
        let socket = builder
            .transport_type(transport)
            .reconnect(false)
            .on(Event::Connect, move |_, _| {
                if let Some(tx) = connected_tx.lock().expect("lock").take() {
                    tx.send(()).ok();
                }
                async {}.boxed()
            })
            .on_any(move |event, payload, _| {
                on_any.send((event.to_string(), first_arg(payload))).ok();
                async {}.boxed()
            })
            .on("error", move |payload, _| {
                on_error.send(("error".into(), first_arg(payload))).ok();
                async {}.boxed()
            })
            .on(Event::Close, move |_, _| {
                closed_tx.send(true).ok();
                async {}.boxed()
            })
            .connect()
            .await
            .expect("connect");
        tokio::time::timeout(WAIT, connected)
            .await
            .expect("connect event in time")
            .ok();
        Self {
            id: String::new(),
            socket,
            events,
            closed,
        }
    }

    /// Waits until the server disconnects this client; fails after `limit`.
    pub async fn await_server_disconnect(&mut self, limit: Duration) {
        tokio::time::timeout(limit, self.closed.wait_for(|closed| *closed))
            .await
            .expect("disconnected by the server in time")
            .expect("close flag");
    }

    pub async fn emit(&self, event: &str, payload: Value) {
        self.socket.emit(event, payload).await.expect("emit");
    }

    /// Emits an event with no argument at all, as `socket.emit('leave-room')` does.
    pub async fn emit_bare(&self, event: &str) {
        self.socket
            .emit(event, Payload::Text(vec![]))
            .await
            .expect("emit");
    }

    pub async fn emit_raw(&self, event: &str, payload: Payload) {
        self.socket.emit(event, payload).await.expect("emit");
    }

    /// Emits with an acknowledgement callback and returns what the server acknowledged.
    pub async fn emit_ack(&self, event: &str, payload: Value) -> Value {
        let (tx, rx) = oneshot::channel();
        let tx = Arc::new(Mutex::new(Some(tx)));
        self.socket
            .emit_with_ack(event, payload, WAIT, move |ack, _| {
                if let Some(tx) = tx.lock().expect("lock").take() {
                    // rust_socketio hands acks over as the raw argument array.
                    let args = first_arg(ack);
                    let first = match args {
                        Value::Array(mut args) if !args.is_empty() => args.swap_remove(0),
                        other => other,
                    };
                    tx.send(first).ok();
                }
                async {}.boxed()
            })
            .await
            .expect("emit");
        tokio::time::timeout(WAIT, rx)
            .await
            .unwrap_or_else(|_| panic!("no ack for {event}"))
            .expect("ack")
    }

    /// The next event received, whatever it is.
    pub async fn next(&mut self) -> (String, Value) {
        tokio::time::timeout(WAIT, self.events.recv())
            .await
            .expect("an event in time")
            .expect("event stream open")
    }

    /// The next event, which must be `event`.
    pub async fn expect(&mut self, event: &str) -> Value {
        let (name, payload) = self.next().await;
        assert_eq!(
            name, event,
            "expected `{event}`, got `{name}` with {payload}"
        );
        payload
    }

    /// Skips other events until `event` arrives.
    pub async fn wait_for(&mut self, event: &str) -> Value {
        loop {
            let (name, payload) = self.next().await;
            if name == event {
                return payload;
            }
        }
    }

    /// Skips other events until `first` or `second` arrives; says which, with its payload.
    pub async fn wait_for_either<'a>(
        &mut self,
        first: &'a str,
        second: &'a str,
    ) -> (&'a str, Value) {
        loop {
            let (name, payload) = self.next().await;
            if name == first {
                return (first, payload);
            }
            if name == second {
                return (second, payload);
            }
        }
    }

    /// Skips other events until `event` arrives; `None` if it does not within `limit`.
    pub async fn wait_for_within(&mut self, event: &str, limit: Duration) -> Option<Value> {
        tokio::time::timeout(limit, async {
            while let Some((name, payload)) = self.events.recv().await {
                if name == event {
                    return Some(payload);
                }
            }
            None
        })
        .await
        .ok()
        .flatten()
    }

    /// Asserts nothing arrives for a short while.
    pub async fn expect_quiet(&mut self) {
        if let Ok(Some((name, payload))) = tokio::time::timeout(QUIET, self.events.recv()).await {
            panic!("expected silence, got `{name}` with {payload}");
        }
    }

    /// The `error` event for `event`, with `code`.
    pub async fn expect_error(&mut self, event: &str, code: &str) -> Value {
        let error = self.expect("error").await;
        assert_eq!(error["code"], code, "{error}");
        assert_eq!(error["event"], event, "{error}");
        assert!(
            error["message"].as_str().is_some_and(|m| !m.is_empty()),
            "{error}"
        );
        error
    }

    /// Joins and consumes `joined-room` and `participants-updated`; remembers the own id.
    pub async fn join(&mut self, room: &str, name: &str) -> Value {
        self.emit("join-room", json!({"roomId": room, "userName": name}))
            .await;
        let joined = self.expect("joined-room").await;
        self.id = joined["participantId"].as_str().expect("id").to_owned();
        self.expect("participants-updated").await;
        joined
    }

    pub async fn disconnect(self) {
        self.socket.disconnect().await.ok();
    }
}

/// Checks every field of a participant object of PROTOCOL.md.
pub fn assert_participant(p: &Value, id: &str, name: &str, is_admin: bool) {
    assert_eq!(p["id"], id, "{p}");
    assert_eq!(p["userName"], name, "{p}");
    assert_eq!(p["name"], name, "{p}");
    assert!(p.get("avatar").is_some(), "avatar present: {p}");
    assert!(
        p["joinedAt"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{p}"
    );
    assert_eq!(
        p["isAudioMuted"],
        !p["isAudioEnabled"].as_bool().expect("bool"),
        "{p}"
    );
    assert_eq!(
        p["isVideoOff"],
        !p["isVideoEnabled"].as_bool().expect("bool"),
        "{p}"
    );
    assert!(p["isScreenSharing"].is_boolean(), "{p}");
    assert_eq!(p["isAdmin"], is_admin, "{p}");
}

/// The ids of a participant list, in order.
pub fn ids(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("array")
        .iter()
        .map(|p| p["id"].as_str().expect("id").to_owned())
        .collect()
}

impl TestClient {
    /// Throws away the events received so far (for long runs that do not read them all);
    /// returns how many there were.
    pub fn drain_events(&mut self) -> usize {
        let mut n = 0;
        while self.events.try_recv().is_ok() {
            n += 1;
        }
        n
    }
}

/// A spawned server binary, killed if the test ends early so no stray process keeps the
/// test's output pipes open.
pub struct Running(pub std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.kill().ok();
        self.0.wait().ok();
    }
}

/// The server binary with a clean environment of our own (no `.env` from the repository).
pub fn server_command(vars: &[(&str, &str)]) -> std::process::Command {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_prolitemeet-server"));
    command.current_dir(std::env::temp_dir()).env_clear();
    for (key, value) in vars {
        command.env(key, value);
    }
    command
}
