//! Connection state recovery, driven over real TCP connections (websocket and HTTP
//! long-polling) by a raw Socket.IO v5 client that checks the wire byte by byte.

use std::{collections::VecDeque, net::SocketAddr, time::Duration};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value as Json;
use socketioxide::{
    SocketIo, SocketIoBuilder,
    extract::{AckSender, Data, SocketRef, TryData},
    socket::{DisconnectReason, Sid},
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
    sync::mpsc,
};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream, tungstenite::Message};

const WAIT: Duration = Duration::from_secs(5);

/// What the server's handlers saw, in order, per kind.
struct Probes {
    connected: mpsc::UnboundedReceiver<(Sid, Option<Json>)>,
    lost: mpsc::UnboundedReceiver<(Sid, DisconnectReason)>,
    recovered: mpsc::UnboundedReceiver<(Sid, DisconnectReason, bool)>,
    disconnected: mpsc::UnboundedReceiver<(Sid, DisconnectReason)>,
}

async fn next<T>(rx: &mut mpsc::UnboundedReceiver<T>) -> T {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("the server's handler did not run in time")
        .expect("closed")
}

struct Server {
    addr: SocketAddr,
    io: SocketIo,
    probes: Probes,
}

/// A server on an ephemeral port; `recovery` is `(window, max_buffered_packets)`.
async fn server(recovery: Option<(Duration, usize)>, ping_interval: Duration) -> Server {
    server_bounded(recovery, ping_interval, usize::MAX).await
}

/// As [`server`], with the sockets' buffers bounded to `max_bytes` (`max_buffer_bytes`).
async fn server_bounded(
    recovery: Option<(Duration, usize)>,
    ping_interval: Duration,
    max_bytes: usize,
) -> Server {
    server_with(ping_interval, |builder| {
        let builder = builder.max_buffer_bytes(max_bytes);
        match recovery {
            Some((window, max)) => builder.connection_state_recovery(window, max),
            None => builder,
        }
    })
    .await
}

/// A server whose builder `configure` finishes (recovery, bounds).
async fn server_with(
    ping_interval: Duration,
    configure: impl FnOnce(SocketIoBuilder) -> SocketIoBuilder,
) -> Server {
    let builder = SocketIo::builder()
        .ping_interval(ping_interval)
        .ping_timeout(Duration::from_secs(2));
    let (layer, io) = configure(builder).build_layer();
    let (connected_tx, connected) = mpsc::unbounded_channel();
    let (lost_tx, lost) = mpsc::unbounded_channel();
    let (recovered_tx, recovered) = mpsc::unbounded_channel();
    let (disconnected_tx, disconnected) = mpsc::unbounded_channel();
    io.ns(
        "/",
        async move |s: SocketRef, TryData(auth): TryData<Json>| {
            s.on("join", async |s: SocketRef, Data(room): Data<String>| {
                s.join(room);
            });
            s.on("echo", async |ack: AckSender, Data(v): Data<Json>| {
                ack.send(&v).ok();
            });
            let lost_tx = lost_tx.clone();
            s.on_transport_lost(async move |s: SocketRef, reason: DisconnectReason| {
                lost_tx.send((s.id, reason)).ok();
            });
            let recovered_tx = recovered_tx.clone();
            s.on_recovered(async move |s: SocketRef, reason: DisconnectReason| {
                recovered_tx.send((s.id, reason, s.recovered())).ok();
            });
            let disconnected_tx = disconnected_tx.clone();
            s.on_disconnect(async move |s: SocketRef, reason: DisconnectReason| {
                disconnected_tx.send((s.id, reason)).ok();
            });
            connected_tx.send((s.id, auth.ok())).ok();
        },
    );
    let app = axum::Router::new().layer(layer);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    Server {
        addr,
        io,
        probes: Probes {
            connected,
            lost,
            recovered,
            disconnected,
        },
    }
}

fn recovering(window: Duration, max: usize) -> Option<(Duration, usize)> {
    Some((window, max))
}

#[derive(Clone, Copy, Debug)]
enum Transport {
    Websocket,
    Polling,
}
const TRANSPORTS: [Transport; 2] = [Transport::Websocket, Transport::Polling];

/// An engine.io message as the client sees it: a socket.io packet, or a binary attachment.
#[derive(Debug, PartialEq)]
enum Frame {
    Text(String),
    /// Raw bytes on a websocket, base64 on long-polling.
    Binary(String),
}

/// A raw Socket.IO v5 client over one engine.io connection. It answers pings while it reads.
struct Client {
    addr: SocketAddr,
    eio_sid: String,
    ws: Option<WebSocketStream<MaybeTlsStream<TcpStream>>>,
    received: VecDeque<Frame>,
}

impl Client {
    async fn open(addr: SocketAddr, transport: Transport) -> Client {
        let mut client = Client {
            addr,
            eio_sid: String::new(),
            ws: None,
            received: VecDeque::new(),
        };
        let open = match transport {
            Transport::Websocket => {
                let url = format!("ws://{addr}/socket.io/?EIO=4&transport=websocket");
                let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
                let Some(Ok(Message::Text(open))) = ws.next().await else {
                    panic!("no open packet");
                };
                client.ws = Some(ws);
                open.to_string()
            }
            Transport::Polling => http(addr, "GET", "transport=polling", None).await,
        };
        let open: Json = serde_json::from_str(&open[1..]).unwrap();
        client.eio_sid = open["sid"].as_str().unwrap().to_string();
        client
    }

    /// Sends a socket.io packet.
    async fn send(&mut self, packet: &str) {
        let message = format!("4{packet}");
        match &mut self.ws {
            Some(ws) => ws.send(Message::text(message)).await.unwrap(),
            None => {
                let query = format!("transport=polling&sid={}", self.eio_sid);
                http(self.addr, "POST", &query, Some(&message)).await;
            }
        }
    }

    /// Connects to the main namespace with this CONNECT payload and returns the answer.
    async fn connect(&mut self, payload: &str) -> Json {
        self.send(&format!("0{payload}")).await;
        let answer = self.recv_text().await;
        let payload = answer
            .strip_prefix('0')
            .unwrap_or_else(|| panic!("expected a CONNECT answer, got {answer}"));
        serde_json::from_str(payload).unwrap()
    }

    /// The next frame, or `None` once the server closed the connection.
    async fn try_recv(&mut self) -> Option<Frame> {
        loop {
            if let Some(frame) = self.received.pop_front() {
                return Some(frame);
            }
            let packets = match &mut self.ws {
                Some(ws) => match tokio::time::timeout(WAIT, ws.next())
                    .await
                    .expect("no frame")
                {
                    Some(Ok(Message::Text(t))) => vec![t.to_string()],
                    Some(Ok(Message::Binary(b))) => {
                        self.received
                            .push_back(Frame::Binary(format!("{:?}", b.to_vec())));
                        continue;
                    }
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
                    Some(Ok(_)) => continue,
                },
                None => {
                    let query = format!("transport=polling&sid={}", self.eio_sid);
                    let get = http(self.addr, "GET", &query, None);
                    let payload = tokio::time::timeout(WAIT, get).await.expect("no payload");
                    if payload.contains("\"code\"") {
                        return None;
                    }
                    payload.split('\x1e').map(str::to_string).collect()
                }
            };
            for packet in packets {
                match packet.as_bytes().first() {
                    Some(b'2') => self.pong().await,
                    Some(b'4') => self
                        .received
                        .push_back(Frame::Text(packet[1..].to_string())),
                    Some(b'b') => self
                        .received
                        .push_back(Frame::Binary(packet[1..].to_string())),
                    Some(b'1') => return None,
                    _ => {}
                }
            }
        }
    }

    async fn pong(&mut self) {
        match &mut self.ws {
            Some(ws) => drop(ws.send(Message::text("3")).await),
            None => {
                let query = format!("transport=polling&sid={}", self.eio_sid);
                http(self.addr, "POST", &query, Some("3")).await;
            }
        }
    }

    async fn recv(&mut self) -> Frame {
        self.try_recv().await.expect("the connection closed")
    }

    async fn recv_text(&mut self) -> String {
        match self.recv().await {
            Frame::Text(t) => t,
            other => panic!("expected a text packet, got {other:?}"),
        }
    }

    /// The next EVENT: its arguments (the offset, if any, last).
    async fn recv_event(&mut self) -> Vec<Json> {
        let packet = self.recv_text().await;
        let data = packet
            .strip_prefix('2')
            .unwrap_or_else(|| panic!("expected an EVENT, got {packet}"));
        serde_json::from_str(data).unwrap_or_else(|_| panic!("not an event without ack: {packet}"))
    }

    /// Closes the connection abruptly (TCP closed, no engine.io close packet).
    fn drop_connection(self) {}
}

/// A one-request HTTP/1.1 client for the long-polling transport.
async fn http(addr: SocketAddr, method: &str, query: &str, body: Option<&str>) -> String {
    let mut stream = TcpStream::connect(addr).await.unwrap();
    let body = body.unwrap_or("");
    let request = format!(
        "{method} /socket.io/?EIO=4&{query} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await.unwrap();
    let response = String::from_utf8(response).unwrap();
    let (head, body) = response.split_once("\r\n\r\n").unwrap();
    if !head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        return body.to_string();
    }
    let mut rest = body;
    let mut out = String::new();
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        if size == 0 {
            break;
        }
        out.push_str(&tail[..size]);
        rest = &tail[size + 2..];
    }
    out
}

/// An event's name and number.
fn ev(name: &str, n: i64) -> [Json; 2] {
    [name.into(), n.into()]
}

fn recoverable(reason: DisconnectReason) -> bool {
    use DisconnectReason::*;
    matches!(reason, TransportClose | TransportError | HeartbeatTimeout)
}

fn offset_of(event: &[Json]) -> String {
    event
        .last()
        .and_then(Json::as_str)
        .expect("no offset")
        .to_string()
}

/// Connects a client with a session, and returns it with its sid and pid.
async fn connected_client(srv: &mut Server, transport: Transport) -> (Client, String, String) {
    let mut client = Client::open(srv.addr, transport).await;
    let answer = client.connect("").await;
    next(&mut srv.probes.connected).await;
    let sid = answer["sid"].as_str().unwrap().to_string();
    let pid = answer["pid"].as_str().expect("no pid").to_string();
    (client, sid, pid)
}

fn socket(io: &SocketIo, sid: &str) -> SocketRef {
    io.get_socket(sid.parse().unwrap()).expect("socket gone")
}

#[tokio::test]
async fn connect_answer_carries_a_private_session_id() {
    for transport in TRANSPORTS {
        let mut srv = server(recovering(WAIT, 100), WAIT).await;
        let (_client, sid, pid) = connected_client(&mut srv, transport).await;
        assert_eq!(pid.len(), 32, "192 bits in url-safe base64");
        assert!(
            pid.bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'_')
        );
        let (_other, _, other_pid) = connected_client(&mut srv, transport).await;
        assert_ne!(pid, other_pid);
        assert!(!socket(&srv.io, &sid).recovered());
    }
}

#[tokio::test]
async fn events_carry_increasing_offsets_and_acks_none() {
    for transport in TRANSPORTS {
        let mut srv = server(recovering(WAIT, 100), WAIT).await;
        let (mut client, sid, _) = connected_client(&mut srv, transport).await;
        client.send(r#"2["join","room"]"#).await;
        client.send(r#"27["echo",{"a":1}]"#).await;
        // The ack of a client's event: no offset.
        assert_eq!(client.recv_text().await, r#"37[{"a":1}]"#);

        let s = socket(&srv.io, &sid);
        s.emit("direct", &1).unwrap();
        srv.io.to("room").emit("room", &(2, "x")).await.unwrap();
        srv.io.emit("all", &3).await.unwrap();
        let mut offsets = Vec::new();
        let expected = [
            ("direct", serde_json::json!([1])),
            ("room", serde_json::json!([2, "x"])),
            ("all", serde_json::json!([3])),
        ];
        for (event, args) in expected {
            let args = args.as_array().unwrap().clone();
            let received = client.recv_event().await;
            assert_eq!(received[0], event);
            assert_eq!(received[1..received.len() - 1], args[..], "{received:?}");
            offsets.push(offset_of(&received));
        }
        let parsed: Vec<u64> = offsets
            .iter()
            .map(|o| u64::from_str_radix(o, 36).unwrap())
            .collect();
        assert!(parsed.windows(2).all(|w| w[0] < w[1]), "{offsets:?}");

        // Events that ask for an ack, and volatile events, carry none.
        let _ack = s.emit_with_ack::<_, Json>("ask", &4).unwrap();
        assert_eq!(client.recv_text().await, r#"21["ask",4]"#);
        s.volatile().emit("volatile", &5).unwrap();
        assert_eq!(client.recv_text().await, r#"2["volatile",5]"#);
    }
}

#[tokio::test]
async fn binary_events_carry_offsets() {
    let mut srv = server(recovering(WAIT, 100), WAIT).await;
    let (mut client, sid, _) = connected_client(&mut srv, Transport::Websocket).await;
    let bin = bytes::Bytes::from_static(&[1, 2, 3]);
    socket(&srv.io, &sid).emit("bin", &bin).unwrap();
    let header = client.recv_text().await;
    let data = header.strip_prefix("51-").expect("a binary event");
    let args: Vec<Json> = serde_json::from_str(data).unwrap();
    assert_eq!(args[0], "bin");
    assert_eq!(args[1], serde_json::json!({"_placeholder": true, "num": 0}));
    assert!(u64::from_str_radix(&offset_of(&args), 36).is_ok());
    assert_eq!(client.recv().await, Frame::Binary("[1, 2, 3]".into()));
}

#[tokio::test]
async fn recovery_replays_what_was_missed_in_order() {
    for transport in TRANSPORTS {
        let mut srv = server(recovering(WAIT, 100), Duration::from_millis(300)).await;
        let (mut client, sid, pid) = connected_client(&mut srv, transport).await;
        client.send(r#"2["join","room"]"#).await;
        client.send(r#"21["echo",0]"#).await;
        client.recv_text().await;
        let s = socket(&srv.io, &sid);
        s.extensions.insert(42u32);
        s.emit("seen", &0).unwrap();
        let offset = offset_of(&client.recv_event().await);

        client.drop_connection();
        let (lost_sid, reason) = next(&mut srv.probes.lost).await;
        assert_eq!(lost_sid.to_string(), sid);
        assert!(recoverable(reason), "{reason:?}");
        // Kept meanwhile: its rooms, the packets addressed to it.
        for n in 1..=3 {
            match n % 2 {
                0 => s.emit("missed", &n).unwrap(),
                _ => srv.io.to("room").emit("missed", &n).await.unwrap(),
            }
        }
        assert!(srv.io.get_socket(s.id).is_some());

        let mut client = Client::open(srv.addr, transport).await;
        let answer = client
            .connect(&format!(
                r#"{{"pid":"{pid}","offset":"{offset}","token":"t"}}"#
            ))
            .await;
        assert_eq!(answer, serde_json::json!({"sid": sid, "pid": pid}));
        for n in 1..=3 {
            let event = client.recv_event().await;
            assert_eq!(event[..2], ev("missed", n));
        }
        s.emit("new", &4).unwrap();
        assert_eq!(client.recv_event().await[..2], ev("new", 4));

        let (recovered_sid, reason, recovered) = next(&mut srv.probes.recovered).await;
        assert_eq!(recovered_sid.to_string(), sid);
        assert!(recovered && s.recovered());
        assert!(recoverable(reason), "{reason:?}");
        assert_eq!(s.extensions.get::<u32>(), Some(42));
        assert!(s.connected());
        // The same socket goes on: no new connection for the application, its handlers stay.
        assert!(srv.probes.connected.try_recv().is_err());
        client.send(r#"22["echo",5]"#).await;
        assert_eq!(client.recv_text().await, "32[5]");
        assert!(srv.probes.disconnected.try_recv().is_err());
    }
}

/// The client sent no offset: it received no event since it connected.
#[tokio::test]
async fn recovery_without_offset_replays_everything_kept() {
    let mut srv = server(recovering(WAIT, 100), WAIT).await;
    let (client, sid, pid) = connected_client(&mut srv, Transport::Websocket).await;
    client.drop_connection();
    next(&mut srv.probes.lost).await;
    socket(&srv.io, &sid).emit("missed", &1).unwrap();
    let mut client = Client::open(srv.addr, Transport::Websocket).await;
    let answer = client.connect(&format!(r#"{{"pid":"{pid}"}}"#)).await;
    assert_eq!(answer["sid"], sid.as_str());
    assert_eq!(client.recv_event().await[..2], ev("missed", 1));
}

/// The client is back before the server noticed that its connection died: the new
/// connection takes the session over, gets what the old one swallowed, and the old one is
/// closed without ending anything.
#[tokio::test]
async fn takeover_of_a_silently_dead_connection() {
    for transport in TRANSPORTS {
        let mut srv = server(recovering(WAIT, 100), Duration::from_secs(60)).await;
        let (mut old, sid, pid) = connected_client(&mut srv, transport).await;
        let s = socket(&srv.io, &sid);
        s.emit("seen", &0).unwrap();
        let offset = offset_of(&old.recv_event().await);
        // Swallowed by the dead connection (the client never reads it).
        s.emit("swallowed", &1).unwrap();
        s.emit("swallowed", &2).unwrap();

        let mut client = Client::open(srv.addr, transport).await;
        let answer = client
            .connect(&format!(r#"{{"pid":"{pid}","offset":"{offset}"}}"#))
            .await;
        assert_eq!(answer, serde_json::json!({"sid": sid, "pid": pid}));
        for n in 1..=2 {
            assert_eq!(client.recv_event().await[..2], ev("swallowed", n));
        }
        let (_, reason, _) = next(&mut srv.probes.recovered).await;
        assert_eq!(reason, DisconnectReason::TransportError);

        // The old connection is closed by the server, after what it still had.
        let mut old_frames = Vec::new();
        while let Some(frame) = old.try_recv().await {
            old_frames.push(frame);
        }
        assert!(old_frames.len() <= 2, "{old_frames:?}");
        // Its end ends nothing: the socket lives on through the new connection.
        s.emit("after", &3).unwrap();
        assert_eq!(client.recv_event().await[..2], ev("after", 3));
        assert!(srv.probes.lost.try_recv().is_err());
        assert!(srv.probes.disconnected.try_recv().is_err());
        assert!(s.connected());
    }
}

#[tokio::test]
async fn an_expired_session_ends_once_and_cannot_be_recovered() {
    let window = Duration::from_millis(300);
    let mut srv = server(recovering(window, 100), WAIT).await;
    let (client, sid, pid) = connected_client(&mut srv, Transport::Websocket).await;
    client.send_join_and_drop().await;
    let (_, lost_reason) = next(&mut srv.probes.lost).await;
    let (ended, reason) = next(&mut srv.probes.disconnected).await;
    assert_eq!(ended.to_string(), sid);
    assert_eq!(reason, lost_reason, "the reason its connection ended");
    assert!(srv.io.get_socket(ended).is_none());
    assert!(srv.io.to("room").sockets().is_empty());

    let mut client = Client::open(srv.addr, Transport::Websocket).await;
    let answer = client.connect(&format!(r#"{{"pid":"{pid}"}}"#)).await;
    assert_ne!(answer["sid"], sid.as_str());
    assert_ne!(answer["pid"], pid.as_str());
    let (_, auth) = next(&mut srv.probes.connected).await;
    // As for a client that sent no auth: pid and offset are not the application's.
    assert_eq!(auth, Some(serde_json::json!({})));
    tokio::time::sleep(window * 2).await;
    assert!(srv.probes.disconnected.try_recv().is_err(), "ended twice");
    assert!(srv.probes.recovered.try_recv().is_err());
}

impl Client {
    async fn send_join_and_drop(mut self) {
        self.send(r#"2["join","room"]"#).await;
        self.send(r#"21["echo",0]"#).await;
        self.recv_text().await;
        self.drop_connection();
    }
}

#[tokio::test]
async fn forged_or_stale_pid_gets_a_fresh_session() {
    let mut srv = server(recovering(WAIT, 100), WAIT).await;
    let (victim, victim_sid, victim_pid) = connected_client(&mut srv, Transport::Websocket).await;
    victim.send_join_and_drop().await;
    next(&mut srv.probes.lost).await;
    srv.io.to("room").emit("secret", &1).await.unwrap();

    let forged = "A".repeat(32);
    let bad_offset = format!(r#"{{"pid":"{victim_pid}","offset":"not-an-offset"}}"#);
    let future_offset = format!(r#"{{"pid":"{victim_pid}","offset":"zzzzzzzzzzzz"}}"#);
    let attempts = [
        format!(r#"{{"pid":"{forged}","offset":"0","name":"eve"}}"#),
        r#"{"pid":42,"name":"eve"}"#.to_string(),
        bad_offset,
        future_offset,
    ];
    for attempt in attempts {
        let mut client = Client::open(srv.addr, Transport::Websocket).await;
        let answer = client.connect(&attempt).await;
        assert_ne!(answer["sid"], victim_sid.as_str(), "{attempt}");
        assert_ne!(answer["pid"], victim_pid.as_str(), "{attempt}");
        let (_, auth) = next(&mut srv.probes.connected).await;
        if attempt.contains("eve") {
            assert_eq!(auth, Some(serde_json::json!({"name": "eve"})));
        }
        // Nothing of the victim's session: its packets, its rooms.
        srv.io.to("room").emit("secret", &2).await.unwrap();
        client.send(r#"21["echo","mine"]"#).await;
        assert_eq!(client.recv_text().await, r#"31["mine"]"#);
    }
    // The victim can still recover its own session.
    let mut client = Client::open(srv.addr, Transport::Websocket).await;
    let answer = client
        .connect(&format!(r#"{{"pid":"{victim_pid}"}}"#))
        .await;
    assert_eq!(answer["sid"], victim_sid.as_str());
}

#[tokio::test]
async fn buffer_overflow_ends_the_session() {
    let mut srv = server(recovering(WAIT, 3), WAIT).await;
    let (client, sid, pid) = connected_client(&mut srv, Transport::Websocket).await;
    client.drop_connection();
    next(&mut srv.probes.lost).await;
    let s = socket(&srv.io, &sid);
    for n in 1..=3 {
        s.emit("kept", &n).unwrap();
    }
    assert!(srv.probes.disconnected.try_recv().is_err());
    assert!(s.emit("overflow", &4).is_err());
    let (ended, _) = next(&mut srv.probes.disconnected).await;
    assert_eq!(ended.to_string(), sid);

    let mut client = Client::open(srv.addr, Transport::Websocket).await;
    let answer = client.connect(&format!(r#"{{"pid":"{pid}"}}"#)).await;
    assert_ne!(answer["sid"], sid.as_str());
}

/// What a socket keeps is bounded in bytes too (`max_buffer_bytes`): a disconnected session
/// that would keep more ends; a connected socket forgets its oldest packets, and can then
/// only be recovered by a client that received them.
#[tokio::test]
async fn kept_bytes_are_bounded_by_max_buffer_bytes() {
    // Each event below takes about 130 bytes: three fit in 400, four do not.
    let big = "x".repeat(100);
    let mut srv = server_bounded(recovering(WAIT, 100), WAIT, 400).await;
    let (client, sid, pid) = connected_client(&mut srv, Transport::Websocket).await;
    client.drop_connection();
    next(&mut srv.probes.lost).await;
    let s = socket(&srv.io, &sid);
    for _ in 0..3 {
        s.emit("kept", &big).unwrap();
    }
    assert!(srv.probes.disconnected.try_recv().is_err());
    assert!(s.emit("overflow", &big).is_err());
    let (ended, _) = next(&mut srv.probes.disconnected).await;
    assert_eq!(ended.to_string(), sid);
    let mut client = Client::open(srv.addr, Transport::Websocket).await;
    let answer = client.connect(&format!(r#"{{"pid":"{pid}"}}"#)).await;
    assert_ne!(answer["sid"], sid.as_str());

    // Connected: the oldest of four is forgotten, so a client that kept no offset (it
    // might not have received the first) cannot recover; with the bound off, it could.
    for (max_bytes, recovers) in [(400, false), (usize::MAX, true)] {
        let mut srv = server_bounded(recovering(WAIT, 100), WAIT, max_bytes).await;
        let (mut client, sid, pid) = connected_client(&mut srv, Transport::Websocket).await;
        // One at a time: the outgoing buffer has the same bound.
        for n in 1..=4 {
            socket(&srv.io, &sid).emit("sent", &(n, &big)).unwrap();
            client.recv_event().await;
        }
        client.drop_connection();
        next(&mut srv.probes.lost).await;
        let mut client = Client::open(srv.addr, Transport::Websocket).await;
        let answer = client.connect(&format!(r#"{{"pid":"{pid}"}}"#)).await;
        assert_eq!(
            answer["sid"] == sid.as_str(),
            recovers,
            "max {max_bytes} bytes"
        );
    }
}

/// `connection_state_recovery_max_bytes` bounds what is kept below a larger (here unbounded)
/// outgoing buffer: a disconnected session that would keep more ends.
#[tokio::test]
async fn kept_bytes_have_their_own_bound() {
    let big = "x".repeat(100);
    let mut srv = server_with(WAIT, |b| {
        b.connection_state_recovery(WAIT, 100)
            .connection_state_recovery_max_bytes(400)
    })
    .await;
    let (client, sid, _) = connected_client(&mut srv, Transport::Websocket).await;
    client.drop_connection();
    next(&mut srv.probes.lost).await;
    let s = socket(&srv.io, &sid);
    for _ in 0..3 {
        s.emit("kept", &big).unwrap();
    }
    assert!(srv.probes.disconnected.try_recv().is_err());
    assert!(s.emit("overflow", &big).is_err());
    let (ended, _) = next(&mut srv.probes.disconnected).await;
    assert_eq!(ended.to_string(), sid);
}

#[tokio::test]
async fn explicit_disconnects_end_the_session_at_once() {
    let mut srv = server(recovering(WAIT, 100), WAIT).await;
    let (mut client, sid, _) = connected_client(&mut srv, Transport::Websocket).await;
    client.send("1").await;
    let (ended, reason) = next(&mut srv.probes.disconnected).await;
    assert_eq!(
        (ended.to_string(), reason),
        (sid, DisconnectReason::ClientNSDisconnect)
    );

    let (_client, sid, _) = connected_client(&mut srv, Transport::Websocket).await;
    socket(&srv.io, &sid).disconnect().unwrap();
    let (ended, reason) = next(&mut srv.probes.disconnected).await;
    assert_eq!(
        (ended.to_string(), reason),
        (sid, DisconnectReason::ServerNSDisconnect)
    );

    // A session kept for its client can be ended by the server too.
    let (client, sid, _) = connected_client(&mut srv, Transport::Websocket).await;
    client.drop_connection();
    next(&mut srv.probes.lost).await;
    socket(&srv.io, &sid).disconnect().unwrap();
    let (ended, reason) = next(&mut srv.probes.disconnected).await;
    assert_eq!(
        (ended.to_string(), reason),
        (sid, DisconnectReason::ServerNSDisconnect)
    );
    assert!(srv.probes.lost.try_recv().is_err());
}

/// A recovered socket whose client stopped reading is still really disconnected when the
/// server disconnects it (change 8): its current connection is closed, not the dead one it
/// first connected with.
#[tokio::test]
async fn a_recovered_socket_too_full_to_be_told_is_disconnected_on_its_new_connection() {
    let mut srv = server_bounded(recovering(WAIT, 100), WAIT, 64 * 1024).await;
    let (client, sid, pid) = connected_client(&mut srv, Transport::Websocket).await;
    client.drop_connection();
    next(&mut srv.probes.lost).await;
    let mut client = Client::open(srv.addr, Transport::Websocket).await;
    let answer = client.connect(&format!(r#"{{"pid":"{pid}"}}"#)).await;
    assert_eq!(answer["sid"], sid.as_str());
    next(&mut srv.probes.recovered).await;

    // The client reads nothing until the server finds its buffer full.
    let s = socket(&srv.io, &sid);
    let big = "x".repeat(16 * 1024);
    let full = (0..20_000).any(|n| s.emit("big", &(n, &big)).is_err());
    assert!(full, "the buffer never filled");
    s.clone().disconnect().unwrap();
    let (ended, reason) = next(&mut srv.probes.disconnected).await;
    assert_eq!(
        (ended.to_string(), reason),
        (sid, DisconnectReason::ServerNSDisconnect)
    );
    // What was queued arrives, then the connection ends (no DISCONNECT packet fitted).
    while let Some(frame) = client.try_recv().await {
        assert!(matches!(frame, Frame::Text(t) if t.starts_with("2[\"big\"")));
    }
}

#[tokio::test]
async fn without_recovery_the_wire_is_unchanged() {
    for transport in TRANSPORTS {
        let mut srv = server(None, Duration::from_millis(300)).await;
        let mut client = Client::open(srv.addr, transport).await;
        client.send("0").await;
        let eio_sid = client.eio_sid.clone();
        assert_eq!(
            client.recv_text().await,
            format!(r#"0{{"sid":"{eio_sid}"}}"#)
        );
        next(&mut srv.probes.connected).await;
        let s = socket(&srv.io, &eio_sid);
        s.emit("direct", &1).unwrap();
        assert_eq!(client.recv_text().await, r#"2["direct",1]"#);
        srv.io.emit("all", &2).await.unwrap();
        assert_eq!(client.recv_text().await, r#"2["all",2]"#);
        client.drop_connection();
        next(&mut srv.probes.disconnected).await;
        assert!(srv.probes.lost.try_recv().is_err());

        // A pid is meaningless: the auth reaches the application as the client sent it.
        let mut client = Client::open(srv.addr, transport).await;
        let answer = client.connect(r#"{"pid":"x","offset":"y"}"#).await;
        assert_eq!(answer, serde_json::json!({"sid": client.eio_sid}));
        let (_, auth) = next(&mut srv.probes.connected).await;
        assert_eq!(auth, Some(serde_json::json!({"pid": "x", "offset": "y"})));
    }
}

/// Lifecycle handlers run in order even when the events come faster than they run.
#[tokio::test]
async fn lifecycle_handlers_run_in_order() {
    let (layer, io) = SocketIo::builder()
        .ping_interval(WAIT)
        .connection_state_recovery(WAIT, 100)
        .build_layer();
    let (tx, mut rx) = mpsc::unbounded_channel::<&'static str>();
    io.ns("/", async move |s: SocketRef| {
        let tx1 = tx.clone();
        s.on_transport_lost(async move || {
            tx1.send("lost-start").ok();
            tokio::time::sleep(Duration::from_millis(200)).await;
            tx1.send("lost").ok();
        });
        let tx2 = tx.clone();
        s.on_recovered(async move || {
            tx2.send("recovered").ok();
        });
        let tx3 = tx.clone();
        s.on_disconnect(async move || {
            tx3.send("disconnected").ok();
        });
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().layer(layer)).await });

    let mut client = Client::open(addr, Transport::Websocket).await;
    let answer = client.connect("").await;
    let (sid, pid) = (
        answer["sid"].as_str().unwrap(),
        answer["pid"].as_str().unwrap(),
    );
    client.drop_connection();
    assert_eq!(next(&mut rx).await, "lost-start");
    // Recovered while the slow transport-lost handler still runs.
    let mut client = tokio::time::timeout(WAIT, async {
        loop {
            let mut client = Client::open(addr, Transport::Websocket).await;
            let answer = client.connect(&format!(r#"{{"pid":"{pid}"}}"#)).await;
            if answer["sid"] == sid {
                return client;
            }
        }
    })
    .await
    .unwrap();
    client.send("1").await;
    for expected in ["lost", "recovered", "disconnected"] {
        assert_eq!(next(&mut rx).await, expected);
    }
}

impl Client {
    /// Reads until it answered `n` pings (websocket).
    async fn answer_pings(&mut self, n: usize) {
        let ws = self.ws.as_mut().expect("websocket");
        let mut answered = 0;
        while answered < n {
            let frame = tokio::time::timeout(WAIT, ws.next())
                .await
                .expect("no ping");
            if let Some(Ok(Message::Text(t))) = frame
                && t.as_str() == "2"
            {
                ws.send(Message::text("3")).await.unwrap();
                answered += 1;
            }
        }
    }
}

/// What the client provably received (it answered a ping sent after it) is not kept: an idle
/// socket costs nothing, and a recovery does not replay it.
#[tokio::test]
async fn packets_proven_received_are_not_kept() {
    let mut srv = server(recovering(WAIT, 100), Duration::from_millis(100)).await;
    let (mut client, sid, pid) = connected_client(&mut srv, Transport::Websocket).await;
    let s = socket(&srv.io, &sid);
    s.emit("received", &1).unwrap();
    assert_eq!(client.recv_event().await[..2], ev("received", 1));
    // The pong of the ping after the next one proves it.
    client.answer_pings(3).await;
    client.drop_connection();
    next(&mut srv.probes.lost).await;
    s.emit("missed", &2).unwrap();

    // No offset: as if it had received nothing; only what is not proven comes back.
    let mut client = Client::open(srv.addr, Transport::Websocket).await;
    let answer = client.connect(&format!(r#"{{"pid":"{pid}"}}"#)).await;
    assert_eq!(answer["sid"], sid.as_str());
    assert_eq!(client.recv_event().await[..2], ev("missed", 2));
}

/// A kept packet asks for an early ping: its pong proves the packet received long before the
/// heartbeat's next ping (a minute away here), and a recovery does not replay it.
#[tokio::test]
async fn a_packet_is_proven_received_by_an_early_ping() {
    let mut srv = server(recovering(WAIT, 100), Duration::from_secs(60)).await;
    let (mut client, sid, pid) = connected_client(&mut srv, Transport::Websocket).await;
    let s = socket(&srv.io, &sid);
    s.emit("received", &1).unwrap();
    assert_eq!(client.recv_event().await[..2], ev("received", 1));
    client.answer_pings(1).await;
    client.drop_connection();
    next(&mut srv.probes.lost).await;
    s.emit("missed", &2).unwrap();

    let mut client = Client::open(srv.addr, Transport::Websocket).await;
    let answer = client.connect(&format!(r#"{{"pid":"{pid}"}}"#)).await;
    assert_eq!(answer["sid"], sid.as_str());
    assert_eq!(client.recv_event().await[..2], ev("missed", 2));
}

#[tokio::test]
async fn an_event_encoded_once_reaches_each_socket_with_one_offset() {
    for recovery in [recovering(WAIT, 100), None] {
        let mut srv = server(recovery, WAIT).await;
        let (mut a, sid_a, _) = match recovery {
            Some(_) => connected_client(&mut srv, Transport::Websocket).await,
            None => {
                let mut client = Client::open(srv.addr, Transport::Websocket).await;
                let answer = client.connect("").await;
                next(&mut srv.probes.connected).await;
                let sid = answer["sid"].as_str().unwrap().to_string();
                (client, sid, String::new())
            }
        };
        let mut b = Client::open(srv.addr, Transport::Polling).await;
        let answer = b.connect("").await;
        next(&mut srv.probes.connected).await;
        let sid_b = answer["sid"].as_str().unwrap().to_string();

        let (sa, sb) = (socket(&srv.io, &sid_a), socket(&srv.io, &sid_b));
        let encoded = sa.encode_event("shared", &(1, "x")).unwrap();
        sa.emit_encoded(&encoded).unwrap();
        sb.emit_encoded(&encoded).unwrap();
        let (got_a, got_b) = (a.recv_event().await, b.recv_event().await);
        assert_eq!(got_a[..3], [Json::from("shared"), 1.into(), "x".into()]);
        match recovery {
            // One offset for both, as a broadcast has.
            Some(_) => {
                assert_eq!(got_a.len(), 4, "{got_a:?}");
                assert_eq!(got_a, got_b);
            }
            None => {
                assert_eq!(got_a.len(), 3, "no offset without recovery: {got_a:?}");
                assert_eq!(got_a, got_b);
            }
        }
        // A socket that is gone answers for itself.
        sb.clone().disconnect().unwrap();
        assert!(sb.emit_encoded(&encoded).is_err());
        sa.emit_encoded(&encoded).unwrap();
        assert_eq!(a.recv_event().await[0], "shared");
    }
}
