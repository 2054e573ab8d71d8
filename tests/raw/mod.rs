//! Hand-rolled Engine.IO v4 / Socket.IO v5 clients for the attack tests: a raw WebSocket and a
//! raw HTTP long-polling session, so a test can send exactly the bytes no real client would,
//! and read exactly what the server answers (or see that it closed the session).
#![allow(dead_code)]

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;

/// How long to wait for an answer that must come.
pub const WAIT: Duration = Duration::from_secs(5);

/// Ack ids of the probes `RawWs::settle` sends (far from the ids tests use).
const SETTLE_PROBE: i64 = 900_000_000;

/// What one read from a raw transport gave.
#[derive(Debug, Clone, PartialEq)]
pub enum Recv {
    /// An Engine.IO message packet (`4…`), without its leading `4`: a Socket.IO packet.
    Msg(String),
    /// A binary frame (WebSocket) or `b…` packet (polling).
    Binary(Vec<u8>),
    /// The server closed the session (close packet, close frame, end of stream, HTTP error).
    Closed,
    /// Nothing came in time.
    Timeout,
}

/// A Socket.IO packet, as far as the attack tests care.
#[derive(Debug, Clone, PartialEq)]
pub enum Sio {
    Event {
        ack: Option<i64>,
        name: String,
        args: Vec<Value>,
    },
    Ack {
        id: i64,
        args: Vec<Value>,
    },
    Connect(Value),
    ConnectError(String),
    Disconnect(String),
    Other(String),
}

impl Sio {
    /// The first argument of an event called `name`.
    pub fn event_arg(&self, name: &str) -> Option<&Value> {
        match self {
            Sio::Event { name: n, args, .. } if n == name => {
                Some(args.first().unwrap_or(&Value::Null))
            }
            _ => None,
        }
    }
}

/// Parses a Socket.IO packet of the default namespace (`2…`, `3…`, `0…`, `1…`, `4…`).
pub fn parse_sio(packet: &str) -> Sio {
    let mut chars = packet.chars();
    let kind = chars.next();
    let rest = chars.as_str();
    let (digits, json_part) = split_ack(rest);
    match kind {
        Some('2') => match serde_json::from_str::<Value>(json_part) {
            Ok(Value::Array(mut args)) if !args.is_empty() => {
                let name = args.remove(0);
                match name {
                    Value::String(name) => Sio::Event {
                        ack: digits.parse().ok(),
                        name,
                        args,
                    },
                    _ => Sio::Other(packet.to_owned()),
                }
            }
            _ => Sio::Other(packet.to_owned()),
        },
        Some('3') => match (digits.parse(), serde_json::from_str::<Value>(json_part)) {
            (Ok(id), Ok(Value::Array(args))) => Sio::Ack { id, args },
            _ => Sio::Other(packet.to_owned()),
        },
        Some('0') => Sio::Connect(serde_json::from_str(rest).unwrap_or(Value::Null)),
        Some('1') => Sio::Disconnect(rest.to_owned()),
        Some('4') => Sio::ConnectError(rest.to_owned()),
        _ => Sio::Other(packet.to_owned()),
    }
}

fn split_ack(rest: &str) -> (&str, &str) {
    let end = rest
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(rest.len());
    (&rest[..end], &rest[end..])
}

/// `2["event",payload]` (or `2<ack>["event",payload]`): a Socket.IO event packet as text.
pub fn event_packet(event: &str, payload: &Value, ack: Option<i64>) -> String {
    let ack = ack.map(|a| a.to_string()).unwrap_or_default();
    format!("2{ack}{}", json!([event, payload]))
}

/// `4` + a Socket.IO packet: what goes in one Engine.IO message frame / polling packet.
pub fn eio_message(sio: &str) -> String {
    format!("4{sio}")
}

/// Interprets an Engine.IO text packet; `None` for ping/pong/noop/open (already handled).
fn classify_text(text: &str) -> Option<Recv> {
    match text.as_bytes().first() {
        Some(b'4') => Some(Recv::Msg(text[1..].to_owned())),
        Some(b'1') => Some(Recv::Closed),
        _ => None,
    }
}

pub type Ws = WebSocketStream<TcpStream>;

/// A raw WebSocket Engine.IO session.
pub struct RawWs {
    pub ws: Ws,
    /// The Engine.IO session id from the open packet.
    pub eio_sid: String,
    /// The Socket.IO socket id (participant id), once connected to `/`.
    pub sid: String,
}

/// Opens a TCP connection, optionally with a small receive buffer (for slow consumers).
pub async fn tcp(addr: SocketAddr, recv_buffer: Option<u32>) -> TcpStream {
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .expect("socket");
    if let Some(size) = recv_buffer {
        socket.set_recv_buffer_size(size).expect("SO_RCVBUF");
    }
    socket.connect(addr).await.expect("tcp connect")
}

pub fn ws_url(addr: SocketAddr) -> String {
    format!("ws://{addr}/socket.io/?EIO=4&transport=websocket")
}

impl RawWs {
    /// Upgrades to WebSocket and reads the open packet; `Err` carries the HTTP status if the
    /// server refused the handshake.
    pub async fn try_open(addr: SocketAddr, recv_buffer: Option<u32>) -> Result<Self, u16> {
        let stream = tcp(addr, recv_buffer).await;
        let (mut ws, _) = match tokio_tungstenite::client_async(ws_url(addr), stream).await {
            Ok(ok) => ok,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                return Err(response.status().as_u16());
            }
            Err(e) => panic!("websocket handshake: {e}"),
        };
        let open = tokio::time::timeout(WAIT, ws.next())
            .await
            .expect("open packet in time")
            .expect("open packet")
            .expect("open packet ok");
        let text = open.into_text().expect("text open packet").to_string();
        assert!(text.starts_with('0'), "open packet: {text}");
        let open: Value = serde_json::from_str(&text[1..]).expect("open JSON");
        Ok(Self {
            ws,
            eio_sid: open["sid"].as_str().expect("sid").to_owned(),
            sid: String::new(),
        })
    }

    pub async fn open(addr: SocketAddr) -> Self {
        Self::try_open(addr, None)
            .await
            .expect("handshake accepted")
    }

    /// Opens and connects to the default namespace (`40` → `40{"sid":…}`).
    pub async fn connect(addr: SocketAddr) -> Self {
        Self::connect_with(addr, None).await
    }

    pub async fn connect_with(addr: SocketAddr, recv_buffer: Option<u32>) -> Self {
        let mut raw = Self::try_open(addr, recv_buffer)
            .await
            .expect("handshake accepted");
        raw.send_text("40").await.expect("send 40");
        match raw.recv(WAIT).await {
            Recv::Msg(m) => match parse_sio(&m) {
                Sio::Connect(v) => raw.sid = v["sid"].as_str().expect("socket sid").to_owned(),
                other => panic!("expected connect, got {other:?}"),
            },
            other => panic!("expected connect, got {other:?}"),
        }
        raw.settle().await;
        raw
    }

    /// Waits until the server's emits to this socket work.
    ///
    /// socketioxide sends the CONNECT packet a moment *before* it marks the socket connected,
    /// and until then every `emit` to the socket fails (acks and room broadcasts still go
    /// out), and the server ignores those failures: an event sent at once after CONNECT can
    /// lose its answer (seen under CPU load: `joined-room` lost while the room's broadcast
    /// `participants-updated` arrives). So this sends a harmless probe (`leave-room` with an
    /// ack; a socket in no room gets the `error` event, then the ack) until the `error` event
    /// comes before its ack.
    pub async fn settle(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut probe = SETTLE_PROBE;
        loop {
            self.send_sio(&event_packet("leave-room", &Value::Null, Some(probe)))
                .await
                .expect("probe");
            let mut emitted = false;
            loop {
                match self.recv(WAIT).await {
                    Recv::Msg(m) => match parse_sio(&m) {
                        Sio::Ack { id, .. } if id == probe => break,
                        Sio::Event { name, .. } if name == "error" => emitted = true,
                        _ => {}
                    },
                    Recv::Binary(_) => {}
                    Recv::Closed => panic!("session closed while settling"),
                    Recv::Timeout => panic!("no answer to a probe after CONNECT"),
                }
            }
            if emitted {
                if probe > SETTLE_PROBE {
                    eprintln!(
                        "note: socket {}: {} `error` event(s) right after CONNECT were lost \
                         (emits fail until socketioxide marks the socket connected)",
                        self.sid,
                        probe - SETTLE_PROBE
                    );
                }
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "emits to a new socket kept failing"
            );
            probe += 1;
        }
    }

    pub async fn send_text(&mut self, text: &str) -> Result<(), String> {
        self.send(Message::text(text.to_owned())).await
    }

    /// Sends a Socket.IO packet as one Engine.IO message frame.
    pub async fn send_sio(&mut self, sio: &str) -> Result<(), String> {
        self.send_text(&eio_message(sio)).await
    }

    pub async fn emit(&mut self, event: &str, payload: &Value, ack: Option<i64>) {
        self.send_sio(&event_packet(event, payload, ack))
            .await
            .expect("emit");
    }

    pub async fn send(&mut self, message: Message) -> Result<(), String> {
        self.ws.send(message).await.map_err(|e| e.to_string())
    }

    /// The next meaningful packet; answers pings on the way.
    pub async fn recv(&mut self, wait: Duration) -> Recv {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let next = match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return Recv::Timeout,
                Ok(next) => next,
            };
            match next {
                None | Some(Err(_)) => return Recv::Closed,
                Some(Ok(Message::Text(text))) => {
                    if text.as_str() == "2" {
                        if self.send_text("3").await.is_err() {
                            return Recv::Closed;
                        }
                        continue;
                    }
                    if let Some(r) = classify_text(text.as_str()) {
                        return r;
                    }
                }
                Some(Ok(Message::Binary(bin))) => return Recv::Binary(bin.to_vec()),
                Some(Ok(Message::Close(_))) => return Recv::Closed,
                Some(Ok(_)) => {}
            }
        }
    }

    /// The next Socket.IO packet, or `None` if the session closed or nothing came in time.
    pub async fn next_sio(&mut self, wait: Duration) -> Option<Sio> {
        loop {
            match self.recv(wait).await {
                Recv::Msg(m) => return Some(parse_sio(&m)),
                Recv::Binary(_) => {}
                Recv::Closed | Recv::Timeout => return None,
            }
        }
    }

    /// Joins `room` and consumes `joined-room` and `participants-updated`.
    pub async fn join(&mut self, room: &str, name: &str) -> Value {
        self.emit(
            "join-room",
            &json!({"roomId": room, "userName": name}),
            None,
        )
        .await;
        let joined = self.expect_event("joined-room").await;
        self.expect_event("participants-updated").await;
        joined
    }

    /// Skips other packets until the event `name` arrives.
    pub async fn expect_event(&mut self, name: &str) -> Value {
        let mut skipped = Vec::new();
        loop {
            match self.next_sio(WAIT).await {
                Some(p) => {
                    if let Some(arg) = p.event_arg(name) {
                        return arg.clone();
                    }
                    skipped.push(p);
                }
                None => panic!("session ended or timed out before `{name}`; skipped {skipped:?}"),
            }
        }
    }

    pub fn split(self) -> (SplitSink<Ws, Message>, SplitStream<Ws>) {
        self.ws.split()
    }
}

/// A raw HTTP long-polling Engine.IO session.
pub struct RawPolling {
    pub http: reqwest::Client,
    pub base: String,
    pub eio_sid: String,
    pub sid: String,
    queue: VecDeque<Recv>,
    /// Waited before each GET, to play a client on a slower network (a round trip).
    pub poll_delay: Duration,
}

pub fn polling_url(addr: SocketAddr) -> String {
    format!("http://{addr}/socket.io/?EIO=4&transport=polling")
}

impl RawPolling {
    /// The handshake GET; `Err((status, body))` if the server refused it.
    pub async fn try_open(addr: SocketAddr) -> Result<Self, (u16, Value)> {
        let http = reqwest::Client::new();
        let base = polling_url(addr);
        let response = http.get(&base).send().await.expect("handshake GET");
        let status = response.status().as_u16();
        let body = response.text().await.unwrap_or_default();
        if status != 200 {
            return Err((status, serde_json::from_str(&body).unwrap_or(Value::Null)));
        }
        let mut queue: VecDeque<&str> = body.split('\x1e').collect();
        let open = queue.pop_front().expect("open packet");
        assert!(open.starts_with('0'), "open packet: {open}");
        let open: Value = serde_json::from_str(&open[1..]).expect("open JSON");
        Ok(Self {
            http,
            base,
            eio_sid: open["sid"].as_str().expect("sid").to_owned(),
            sid: String::new(),
            queue: VecDeque::new(),
            poll_delay: Duration::ZERO,
        })
    }

    pub async fn connect(addr: SocketAddr) -> Self {
        let mut raw = Self::try_open(addr).await.expect("handshake accepted");
        assert_eq!(raw.post("40").await, 200);
        match raw.recv(WAIT).await {
            Recv::Msg(m) => match parse_sio(&m) {
                Sio::Connect(v) => raw.sid = v["sid"].as_str().expect("socket sid").to_owned(),
                other => panic!("expected connect, got {other:?}"),
            },
            other => panic!("expected connect, got {other:?}"),
        }
        raw.settle().await;
        raw
    }

    /// As [`RawWs::settle`]: probes until the server's emits to this socket work.
    pub async fn settle(&mut self) {
        let deadline = tokio::time::Instant::now() + WAIT;
        let mut probe = SETTLE_PROBE;
        loop {
            self.emit("leave-room", &Value::Null, Some(probe)).await;
            let mut emitted = false;
            loop {
                match self.recv(WAIT).await {
                    Recv::Msg(m) => match parse_sio(&m) {
                        Sio::Ack { id, .. } if id == probe => break,
                        Sio::Event { name, .. } if name == "error" => emitted = true,
                        _ => {}
                    },
                    Recv::Binary(_) => {}
                    Recv::Closed => panic!("session closed while settling"),
                    Recv::Timeout => panic!("no answer to a probe after CONNECT"),
                }
            }
            if emitted {
                if probe > SETTLE_PROBE {
                    eprintln!(
                        "note: polling socket {}: {} `error` event(s) right after CONNECT were lost",
                        self.sid,
                        probe - SETTLE_PROBE
                    );
                }
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "emits to a new socket kept failing"
            );
            probe += 1;
        }
    }

    pub fn session_url(&self) -> String {
        format!("{}&sid={}", self.base, self.eio_sid)
    }

    /// POSTs a raw body to the session; returns the HTTP status.
    pub async fn post(&self, body: impl Into<reqwest::Body>) -> u16 {
        self.http
            .post(self.session_url())
            .header("content-type", "text/plain;charset=UTF-8")
            .body(body)
            .send()
            .await
            .map(|r| r.status().as_u16())
            .unwrap_or(0)
    }

    /// POSTs one Socket.IO packet as an Engine.IO message.
    pub async fn send_sio(&self, sio: &str) -> u16 {
        self.post(eio_message(sio)).await
    }

    pub async fn emit(&self, event: &str, payload: &Value, ack: Option<i64>) {
        let status = self.send_sio(&event_packet(event, payload, ack)).await;
        assert_eq!(status, 200, "POST {event}");
    }

    /// The next meaningful packet, GETting when nothing is queued; answers pings.
    /// A GET is only made when an answer is expected (a GET left hanging would make the
    /// next one a second concurrent poll, which closes the session).
    pub async fn recv(&mut self, wait: Duration) -> Recv {
        loop {
            if let Some(r) = self.queue.pop_front() {
                return r;
            }
            if !self.poll_delay.is_zero() {
                tokio::time::sleep(self.poll_delay).await;
            }
            let get = self.http.get(self.session_url()).send();
            let response = match tokio::time::timeout(wait, get).await {
                Err(_) => return Recv::Timeout,
                Ok(Err(_)) => return Recv::Closed,
                Ok(Ok(r)) => r,
            };
            if response.status().as_u16() != 200 {
                return Recv::Closed;
            }
            let body = match tokio::time::timeout(wait, response.text()).await {
                Ok(Ok(body)) => body,
                _ => return Recv::Closed,
            };
            if body.is_empty() {
                // The session was closed while polling.
                return Recv::Closed;
            }
            for packet in body.split('\x1e') {
                if packet == "2" {
                    self.post("3").await;
                } else if let Some(b64) = packet.strip_prefix('b') {
                    self.queue.push_back(Recv::Binary(b64.as_bytes().to_vec()));
                } else if let Some(r) = classify_text(packet) {
                    self.queue.push_back(r);
                }
            }
        }
    }

    pub async fn next_sio(&mut self, wait: Duration) -> Option<Sio> {
        loop {
            match self.recv(wait).await {
                Recv::Msg(m) => return Some(parse_sio(&m)),
                Recv::Binary(_) => {}
                Recv::Closed | Recv::Timeout => return None,
            }
        }
    }

    pub async fn expect_event(&mut self, name: &str) -> Value {
        let mut skipped = Vec::new();
        loop {
            match self.next_sio(WAIT).await {
                Some(p) => {
                    if let Some(arg) = p.event_arg(name) {
                        return arg.clone();
                    }
                    skipped.push(p);
                }
                None => panic!("session ended or timed out before `{name}`; skipped {skipped:?}"),
            }
        }
    }

    pub async fn join(&mut self, room: &str, name: &str) -> Value {
        self.emit(
            "join-room",
            &json!({"roomId": room, "userName": name}),
            None,
        )
        .await;
        let joined = self.expect_event("joined-room").await;
        self.expect_event("participants-updated").await;
        joined
    }
}

/// The resident set size of this process (the in-process server included), in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS")
}

/// A tiny deterministic PRNG (xorshift64*), so runs are reproducible without a crate.
#[derive(Debug, Clone)]
pub struct XorShift(u64);

impl XorShift {
    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform-ish in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}
