//! Engine.IO v4 / Socket.IO v5 over a plain WebSocket, by hand: just what a benchmark client
//! needs (open, connect to `/`, emit, read events, answer pings), with no JSON tree built for
//! the packets that carry the load.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::AsRawFd;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use crate::args::{Server, Target};

pub type Ws = WebSocketStream<TcpStream>;

/// An open Socket.IO connection to the default namespace.
pub struct Conn {
    pub ws: Ws,
    /// The Socket.IO socket id: what relays are addressed to.
    pub sid: String,
}

/// What one incoming frame meant.
pub enum Frame {
    /// A Socket.IO event packet (`42["name",…]`), whole text kept.
    Event(Utf8Bytes),
    /// Anything else that needs no action (pong, noop, binary, Socket.IO acks…).
    Other,
}

#[derive(Debug)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl<E: std::error::Error> From<E> for Error {
    fn from(e: E) -> Self {
        Self(e.to_string())
    }
}

pub type Result<T> = std::result::Result<T, Error>;

fn config() -> WebSocketConfig {
    // Small eager read buffer: tens of thousands of clients live in this one process.
    let mut config = WebSocketConfig::default();
    config.read_buffer_size = 16 * 1024;
    config.write_buffer_size = 0;
    config
}

pub async fn tcp(target: &Target, server: &Server, index: usize) -> std::io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    if !target.source_ips.is_empty() {
        let ip: IpAddr = target.source_ips[index % target.source_ips.len()];
        // Choose the port at connect time (per destination), not at bind time, so each
        // source address offers its whole ephemeral range.
        let one: libc::c_int = 1;
        // SAFETY: a valid socket fd and a pointer to a c_int of the size passed.
        unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&raw const one).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            );
        }
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(server.addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Opens the WebSocket to `target.servers[server]`, reads the Engine.IO open packet,
/// connects to `/` and returns the socket id. `index` picks the source address.
pub async fn connect(
    target: &Target,
    server: usize,
    index: usize,
    timeout: Duration,
) -> Result<Conn> {
    let server = &target.servers[server];
    match tokio::time::timeout(timeout, connect_inner(target, server, index)).await {
        Ok(result) => result,
        Err(_) => Err(Error("connect: timed out".into())),
    }
}

async fn connect_inner(target: &Target, server: &Server, index: usize) -> Result<Conn> {
    let stream = tcp(target, server, index)
        .await
        .map_err(|e| Error(format!("tcp connect: {e}")))?;
    let (mut ws, _) =
        tokio_tungstenite::client_async_with_config(server.ws_url.as_str(), stream, Some(config()))
            .await
            .map_err(|e| Error(format!("websocket handshake: {e}")))?;
    // Engine.IO open packet: `0{"sid":…,"pingInterval":…}`.
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) if t.starts_with('0') => break,
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(Error(format!("open packet: {e}"))),
            None => return Err(Error("closed before the open packet".into())),
        }
    }
    ws.send(Message::text("40")).await?;
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                if let Some(rest) = t.strip_prefix("40") {
                    let sid = field(rest, "sid")
                        .ok_or_else(|| Error(format!("connect packet without sid: {t}")))?;
                    return Ok(Conn {
                        ws,
                        sid: sid.to_owned(),
                    });
                }
                if t.starts_with("44") {
                    return Err(Error(format!("connect refused: {t}")));
                }
                if t.as_str() == "2" {
                    ws.send(Message::text("3")).await?;
                }
            }
            Some(Ok(_)) => {}
            Some(Err(e)) => return Err(Error(format!("connect: {e}"))),
            None => return Err(Error("closed while connecting".into())),
        }
    }
}

/// A string field of a flat JSON object, read without parsing the object: enough for the
/// ids the server generates (no escapes in them).
pub fn field<'a>(json: &'a str, name: &str) -> Option<&'a str> {
    let key = format!("\"{name}\":\"");
    let start = json.find(&key)? + key.len();
    let len = json[start..].find('"')?;
    Some(&json[start..start + len])
}

/// The event name of a `42["name",…]` packet.
pub fn event_name(text: &str) -> &str {
    text.strip_prefix("42[\"")
        .and_then(|rest| rest.split('"').next())
        .unwrap_or("")
}

impl Conn {
    /// Reads the next frame, answering Engine.IO pings on the way. `Err` when the
    /// connection is gone.
    pub async fn next(&mut self) -> Result<Frame> {
        match self.ws.next().await {
            Some(Ok(Message::Text(text))) => {
                let bytes = text.as_bytes();
                match bytes {
                    [b'2'] => {
                        self.ws.send(Message::text("3")).await?;
                        Ok(Frame::Other)
                    }
                    [b'4', b'2', ..] => Ok(Frame::Event(text)),
                    [b'1', ..] => Err(Error("server closed the session".into())),
                    [b'4', b'1', ..] => Err(Error("server disconnected the socket".into())),
                    _ => Ok(Frame::Other),
                }
            }
            Some(Ok(Message::Close(_))) | None => Err(Error("connection closed".into())),
            Some(Ok(_)) => Ok(Frame::Other),
            Some(Err(e)) => Err(e.into()),
        }
    }

    /// Sends one Engine.IO message frame (already `4…`).
    pub async fn send(&mut self, packet: String) -> Result<()> {
        self.ws.send(Message::Text(packet.into())).await?;
        Ok(())
    }

    /// Waits for the event `name`, handling pings; other events are passed to `other`.
    pub async fn wait_for(
        &mut self,
        name: &str,
        timeout: Duration,
        mut other: impl FnMut(&str),
    ) -> Result<Utf8Bytes> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let frame = tokio::time::timeout_at(deadline, self.next())
                .await
                .map_err(|_| Error(format!("no {name} in time")))??;
            if let Frame::Event(text) = frame {
                if event_name(&text) == name {
                    return Ok(text);
                }
                other(&text);
            }
        }
    }

    /// `socket.emit('join-room', {roomId, userName})` and wait for `joined-room`.
    pub async fn join(&mut self, room: &str, user: &str, timeout: Duration) -> Result<()> {
        self.send(format!(
            r#"42["join-room",{{"roomId":"{room}","userName":"{user}"}}]"#
        ))
        .await?;
        self.wait_for("joined-room", timeout, |_| {}).await?;
        Ok(())
    }

    /// Socket.IO disconnect (`41`), then the connection is dropped.
    pub async fn close(mut self) {
        let _ = self.ws.send(Message::text("41")).await;
        let _ = self.ws.close(None).await;
    }
}

/// The number after the `~T` marker a benchmark message carries (a send time, ns).
pub fn stamp(text: &str) -> Option<u64> {
    let at = memchr::memmem::find(text.as_bytes(), b"~T")? + 2;
    let digits = &text.as_bytes()[at..];
    let mut value: u64 = 0;
    let mut any = false;
    for &b in digits {
        if !b.is_ascii_digit() {
            break;
        }
        value = value.wrapping_mul(10).wrapping_add(u64::from(b - b'0'));
        any = true;
    }
    any.then_some(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_ids_names_and_stamps() {
        assert_eq!(field(r#"{"sid":"abc","x":1}"#, "sid"), Some("abc"));
        assert_eq!(event_name(r#"42["new-message",{}]"#), "new-message");
        assert_eq!(
            stamp(r#"42["new-message",{"message":"hi ~T123456 xx"}]"#),
            Some(123_456)
        );
        assert_eq!(stamp("no marker"), None);
    }
}
