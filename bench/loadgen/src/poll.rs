//! Engine.IO v4 / Socket.IO v5 over HTTP long-polling only (a client that never upgrades, as
//! `socket.io-client` with `transports: ['polling']`), by hand over one keep-alive HTTP/1.1
//! connection: requests are sent one at a time (a long-poll `GET`, or a `POST` once that
//! `GET` has answered), so each client holds one TCP connection, as an idle browser tab
//! mostly does. Just what the idle scenario needs: open, connect to `/`, join, answer pings.

use std::time::Duration;

use tokio::net::TcpStream;

use crate::args::{Server, Target};
use crate::eio::{Error, Result, event_name, field, tcp};

/// Engine.IO's separator between packets in one polling payload.
const RECORD_SEPARATOR: char = '\u{1e}';

/// An open Socket.IO connection to the default namespace over long-polling.
pub struct PollConn {
    stream: TcpStream,
    /// `Host` header value.
    authority: String,
    /// `/socket.io/?EIO=4&transport=polling&sid=…`, once the handshake gave the sid.
    path: String,
    /// Bytes read past the last response.
    buf: Vec<u8>,
}

/// Opens the session, connects to `/` and joins `room` as `user`: the idle scenario's client.
pub async fn connect_and_join(
    target: &Target,
    server: usize,
    index: usize,
    room: &str,
    user: &str,
    timeout: Duration,
) -> Result<PollConn> {
    let server = &target.servers[server];
    match tokio::time::timeout(timeout, setup(target, server, index, room, user)).await {
        Ok(result) => result,
        Err(_) => Err(Error("polling connect and join: timed out".into())),
    }
}

async fn setup(
    target: &Target,
    server: &Server,
    index: usize,
    room: &str,
    user: &str,
) -> Result<PollConn> {
    let stream = tcp(target, server, index)
        .await
        .map_err(|e| Error(format!("tcp connect: {e}")))?;
    let mut conn = PollConn {
        stream,
        authority: server.authority.clone(),
        path: "/socket.io/?EIO=4&transport=polling".into(),
        buf: Vec::with_capacity(1024),
    };
    let open = conn.get().await?;
    let sid = open
        .strip_prefix('0')
        .and_then(|o| field(o, "sid"))
        .ok_or_else(|| Error(format!("no open packet: {open:.200}")))?
        .to_owned();
    conn.path = format!("/socket.io/?EIO=4&transport=polling&sid={sid}");
    conn.post("40").await?;
    conn.wait_for(|p| p.starts_with("40"), "the connect packet")
        .await?;
    conn.post(&format!(
        r#"42["join-room",{{"roomId":"{room}","userName":"{user}"}}]"#
    ))
    .await?;
    conn.wait_for(
        |p| event_name(p) == "joined-room" && p.starts_with("42"),
        "joined-room",
    )
    .await?;
    Ok(conn)
}

impl PollConn {
    /// Long-polls until a packet `wanted` comes, answering pings on the way.
    async fn wait_for(&mut self, wanted: impl Fn(&str) -> bool, what: &str) -> Result<()> {
        loop {
            let payload = self.get().await?;
            let mut found = false;
            for packet in payload.split(RECORD_SEPARATOR) {
                if packet.starts_with("44") {
                    return Err(Error(format!("connect refused: {packet:.200}")));
                }
                found |= wanted(packet);
            }
            self.answer_pings(&payload).await?;
            if found {
                return Ok(());
            }
            if payload.split(RECORD_SEPARATOR).any(|p| p == "1") {
                return Err(Error(format!("server closed the session before {what}")));
            }
        }
    }

    /// Held: long-polls forever, answering pings. `Err` when the session is gone.
    pub async fn hold(mut self) -> Error {
        loop {
            let payload = match self.get().await {
                Ok(payload) => payload,
                Err(e) => return e,
            };
            if payload
                .split(RECORD_SEPARATOR)
                .any(|p| p == "1" || p.starts_with("41"))
            {
                return Error("server closed the session".into());
            }
            if let Err(e) = self.answer_pings(&payload).await {
                return e;
            }
        }
    }

    async fn answer_pings(&mut self, payload: &str) -> Result<()> {
        for _ in payload.split(RECORD_SEPARATOR).filter(|p| *p == "2") {
            self.post("3").await?;
        }
        Ok(())
    }

    async fn get(&mut self) -> Result<String> {
        let request = format!(
            "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: */*\r\n\r\n",
            self.path, self.authority
        );
        self.request(request.as_bytes()).await
    }

    async fn post(&mut self, body: &str) -> Result<()> {
        let request = format!(
            "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: text/plain;charset=UTF-8\r\nContent-Length: {}\r\n\r\n{body}",
            self.path,
            self.authority,
            body.len()
        );
        self.request(request.as_bytes()).await?;
        Ok(())
    }

    /// Sends one request and reads its response; the body of a `200`, else an error.
    async fn request(&mut self, request: &[u8]) -> Result<String> {
        write_all(&self.stream, request).await?;
        let (status, body) = self.response().await?;
        if status != 200 {
            return Err(Error(format!("HTTP {status}: {body:.200}")));
        }
        Ok(body)
    }

    /// Reads one response (`Content-Length` or chunked body): its status and body.
    async fn response(&mut self) -> Result<(u16, String)> {
        let head_end = loop {
            if let Some(at) = memchr::memmem::find(&self.buf, b"\r\n\r\n") {
                break at;
            }
            self.fill().await?;
        };
        let head = std::str::from_utf8(&self.buf[..head_end])
            .map_err(|_| Error("response head is not UTF-8".into()))?
            .to_owned();
        self.buf.drain(..head_end + 4);
        let status: u16 = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .ok_or_else(|| Error(format!("bad status line: {head:.100}")))?;
        let header = |name: &str| {
            head.split("\r\n").skip(1).find_map(|line| {
                let (k, v) = line.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let body = if let Some(len) = header("content-length") {
            let len: usize = len
                .parse()
                .map_err(|_| Error(format!("bad content-length {len:?}")))?;
            self.take(len).await?
        } else if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
            let mut body = Vec::new();
            loop {
                let line = self.line().await?;
                let size = usize::from_str_radix(line.split(';').next().unwrap_or("").trim(), 16)
                    .map_err(|_| Error(format!("bad chunk size {line:?}")))?;
                body.extend(self.take(size).await?);
                self.line().await?;
                if size == 0 {
                    break body;
                }
            }
        } else {
            Vec::new()
        };
        let body = String::from_utf8(body).map_err(|_| Error("body is not UTF-8".into()))?;
        Ok((status, body))
    }

    async fn line(&mut self) -> Result<String> {
        loop {
            if let Some(at) = memchr::memmem::find(&self.buf, b"\r\n") {
                let line = String::from_utf8_lossy(&self.buf[..at]).into_owned();
                self.buf.drain(..at + 2);
                return Ok(line);
            }
            self.fill().await?;
        }
    }

    async fn take(&mut self, len: usize) -> Result<Vec<u8>> {
        while self.buf.len() < len {
            self.fill().await?;
        }
        Ok(self.buf.drain(..len).collect())
    }

    async fn fill(&mut self) -> Result<()> {
        loop {
            self.stream.readable().await?;
            // Not kept across the await: thousands of held clients live in this process.
            let mut chunk = [0u8; 4096];
            match self.stream.try_read(&mut chunk) {
                Ok(0) => return Err(Error("connection closed".into())),
                Ok(n) => {
                    self.buf.extend_from_slice(&chunk[..n]);
                    return Ok(());
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
}

async fn write_all(stream: &TcpStream, mut bytes: &[u8]) -> Result<()> {
    while !bytes.is_empty() {
        stream.writable().await?;
        match stream.try_write(bytes) {
            Ok(n) => bytes = &bytes[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_packets_split_on_the_record_separator() {
        let payload = "40{\"sid\":\"x\"}\u{1e}2";
        let packets: Vec<_> = payload.split(RECORD_SEPARATOR).collect();
        assert_eq!(packets, ["40{\"sid\":\"x\"}", "2"]);
    }
}
