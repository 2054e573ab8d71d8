//! `Socket::ping_within`: an early ping besides the heartbeat's own, answered like any ping,
//! one ping out at a time, and `EngineIoHandler::on_ping` called before each ping is queued.

use std::{sync::Arc, time::Duration};

use bytes::Bytes;
use engineioxide::{
    Str,
    config::EngineIoConfig,
    handler::EngineIoHandler,
    service::EngineIoService,
    socket::{DisconnectReason, Socket},
};
use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

mod fixture;
use fixture::create_ws_connection;

#[derive(Debug)]
enum Seen {
    Connected(Arc<Socket<()>>),
    Ping,
    Pong,
    Disconnected(DisconnectReason),
}

#[derive(Debug)]
struct Recorder(mpsc::UnboundedSender<Seen>);

impl PartialEq for Seen {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Seen::Connected(a), Seen::Connected(b)) => a.id == b.id,
            (Seen::Ping, Seen::Ping) | (Seen::Pong, Seen::Pong) => true,
            (Seen::Disconnected(a), Seen::Disconnected(b)) => a == b,
            _ => false,
        }
    }
}

impl EngineIoHandler for Recorder {
    type Data = ();
    fn on_connect(self: Arc<Self>, socket: Arc<Socket<()>>) {
        self.0.send(Seen::Connected(socket)).ok();
    }
    fn on_disconnect(&self, _: Arc<Socket<()>>, reason: DisconnectReason) {
        self.0.send(Seen::Disconnected(reason)).ok();
    }
    fn on_message(self: &Arc<Self>, _: Str, _: Arc<Socket<()>>) {}
    fn on_binary(self: &Arc<Self>, _: Bytes, _: Arc<Socket<()>>) {}
    fn on_ping(&self, _: &Arc<Socket<()>>) {
        self.0.send(Seen::Ping).ok();
    }
    fn on_pong(&self, _: &Arc<Socket<()>>) {
        self.0.send(Seen::Pong).ok();
    }
}

const WAIT: Duration = Duration::from_secs(2);

/// The regular heartbeat is far away: every ping after the first is an early one.
fn server() -> (EngineIoService<Recorder>, mpsc::UnboundedReceiver<Seen>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let config = EngineIoConfig::builder()
        .ping_interval(Duration::from_secs(60))
        .ping_timeout(Duration::from_secs(60))
        .build();
    (
        EngineIoService::with_config(Arc::new(Recorder(tx)), config),
        rx,
    )
}

async fn seen(rx: &mut mpsc::UnboundedReceiver<Seen>) -> Seen {
    tokio::time::timeout(WAIT, rx.recv())
        .await
        .expect("nothing seen in time")
        .expect("closed")
}

/// The next text frame; `None` if none comes within `within`.
async fn frame<S>(ws: &mut S, within: Duration) -> Option<String>
where
    S: StreamExt<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    loop {
        match tokio::time::timeout(within, ws.next()).await {
            Err(_) => return None,
            Ok(Some(Ok(Message::Text(t)))) => return Some(t.as_str().to_owned()),
            Ok(Some(Ok(_))) => continue,
            Ok(other) => panic!("connection ended: {other:?}"),
        }
    }
}

#[tokio::test]
async fn an_early_ping_is_sent_and_answered_like_any_other() {
    let (mut svc, mut rx) = server();
    let mut ws = create_ws_connection(&mut svc).await;
    let Seen::Connected(socket) = seen(&mut rx).await else {
        panic!("no connection")
    };
    let open = frame(&mut ws, WAIT).await.expect("no open packet");
    assert!(open.starts_with('0'), "{open}");
    // The heartbeat's first ping, right after the handshake.
    assert_eq!(seen(&mut rx).await, Seen::Ping);
    assert_eq!(frame(&mut ws, WAIT).await.as_deref(), Some("2"));
    ws.send(Message::text("3")).await.unwrap();
    assert_eq!(seen(&mut rx).await, Seen::Pong);

    socket.ping_within(Duration::from_millis(20));
    socket.ping_within(Duration::from_millis(20)); // one is asked for already: nothing more
    assert_eq!(seen(&mut rx).await, Seen::Ping);
    assert_eq!(frame(&mut ws, WAIT).await.as_deref(), Some("2"));
    ws.send(Message::text("3")).await.unwrap();
    assert_eq!(seen(&mut rx).await, Seen::Pong);
    assert_eq!(
        frame(&mut ws, Duration::from_millis(300)).await,
        None,
        "one early ping only"
    );
    assert!(rx.try_recv().is_err(), "the session goes on");
}

#[tokio::test]
async fn an_early_ping_waits_for_the_pong_of_the_ping_that_is_out() {
    let (mut svc, mut rx) = server();
    let mut ws = create_ws_connection(&mut svc).await;
    let Seen::Connected(socket) = seen(&mut rx).await else {
        panic!("no connection")
    };
    let open = frame(&mut ws, WAIT).await.expect("no open packet");
    assert!(open.starts_with('0'), "{open}");
    assert_eq!(seen(&mut rx).await, Seen::Ping);
    assert_eq!(frame(&mut ws, WAIT).await.as_deref(), Some("2"));

    // The first ping is not answered yet: its pong would not prove what comes after it, and
    // a second ping out would make the pongs ambiguous.
    socket.ping_within(Duration::from_millis(10));
    assert_eq!(frame(&mut ws, Duration::from_millis(150)).await, None);
    ws.send(Message::text("3")).await.unwrap();
    assert_eq!(seen(&mut rx).await, Seen::Pong);
    assert_eq!(seen(&mut rx).await, Seen::Ping);
    assert_eq!(frame(&mut ws, WAIT).await.as_deref(), Some("2"));
    ws.send(Message::text("3")).await.unwrap();
    assert_eq!(seen(&mut rx).await, Seen::Pong);
}

/// A client that does not answer an early ping is still found out by the heartbeat.
#[tokio::test]
async fn an_unanswered_early_ping_still_times_out_the_session() {
    let (tx, mut rx) = mpsc::unbounded_channel();
    let config = EngineIoConfig::builder()
        .ping_interval(Duration::from_millis(200))
        .ping_timeout(Duration::from_millis(100))
        .build();
    let mut svc = EngineIoService::with_config(Arc::new(Recorder(tx)), config);
    let mut ws = create_ws_connection(&mut svc).await;
    let Seen::Connected(socket) = seen(&mut rx).await else {
        panic!("no connection")
    };
    let open = frame(&mut ws, WAIT).await.expect("no open packet");
    assert!(open.starts_with('0'), "{open}");
    assert_eq!(seen(&mut rx).await, Seen::Ping);
    assert_eq!(frame(&mut ws, WAIT).await.as_deref(), Some("2"));
    ws.send(Message::text("3")).await.unwrap();
    assert_eq!(seen(&mut rx).await, Seen::Pong);
    socket.ping_within(Duration::from_millis(10));
    assert_eq!(seen(&mut rx).await, Seen::Ping);
    // Never answered: the next regular tick takes the early ping as its own, and its
    // timeout closes the session.
    loop {
        match seen(&mut rx).await {
            Seen::Disconnected(reason) => {
                assert_eq!(reason, DisconnectReason::HeartbeatTimeout);
                break;
            }
            Seen::Ping => panic!("a second ping while one is out"),
            other => panic!("unexpected {other:?}"),
        }
    }
}
