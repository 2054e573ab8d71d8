//! The TCP side of the server: accepted connections get `TCP_NODELAY` (signaling messages are
//! small and latency-bound) and a bound on stalled writes. A peer that stops reading makes
//! the connection's writer wait forever, and socketioxide only finishes closing a session
//! (and so only runs our disconnect handler) once that writer lets go: a write that makes no
//! progress for the stall timeout fails instead, so a dead reader leaves its room promptly.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;

/// A TCP listener whose connections are [`StallGuard`]ed.
pub struct GuardedListener {
    inner: TcpListener,
    stall_timeout: Duration,
}

impl GuardedListener {
    pub fn new(inner: TcpListener, stall_timeout: Duration) -> Self {
        Self {
            inner,
            stall_timeout,
        }
    }
}

impl Listener for GuardedListener {
    type Io = StallGuard<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            match self.inner.accept().await {
                Ok((stream, addr)) => {
                    stream.set_nodelay(true).ok();
                    return (StallGuard::new(stream, self.stall_timeout), addr);
                }
                // Out of file descriptors and the like: wait a little rather than spin.
                Err(e) => {
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }
}

/// The peer's address, as `ConnectInfo` of a [`GuardedListener`] connection.
#[derive(Debug, Clone, Copy)]
pub struct PeerAddr(pub SocketAddr);

impl Connected<IncomingStream<'_, GuardedListener>> for PeerAddr {
    fn connect_info(stream: IncomingStream<'_, GuardedListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// A stream whose writes fail with `TimedOut` once they have made no progress for the
/// timeout; from then on its reads fail too, so whoever reads the connection sees it end
/// (a failed write alone does not make every server close the connection).
pub struct StallGuard<S> {
    inner: S,
    timeout: Duration,
    stalled: Option<Pin<Box<Sleep>>>,
    dead: bool,
    reader: Option<Waker>,
}

impl<S> StallGuard<S> {
    pub fn new(inner: S, timeout: Duration) -> Self {
        Self {
            inner,
            timeout,
            stalled: None,
            dead: false,
            reader: None,
        }
    }

    fn stalled_error() -> io::Error {
        io::Error::new(
            io::ErrorKind::TimedOut,
            "peer stopped reading: write stalled",
        )
    }

    /// Turns a pending write into an error once it has been pending for the timeout.
    fn watch<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if self.dead {
            return Poll::Ready(Err(Self::stalled_error()));
        }
        if result.is_ready() {
            self.stalled = None;
            return result;
        }
        let timeout = self.timeout;
        let timer = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.dead = true;
                if let Some(reader) = self.reader.take() {
                    reader.wake();
                }
                Poll::Ready(Err(Self::stalled_error()))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for StallGuard<S> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.dead {
            return Poll::Ready(Err(Self::stalled_error()));
        }
        let result = Pin::new(&mut this.inner).poll_read(cx, buf);
        if result.is_pending() {
            this.reader = Some(cx.waker().clone());
        }
        result
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for StallGuard<S> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.watch(cx, result)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_flush(cx);
        this.watch(cx, result)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.watch(cx, result)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let result = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.watch(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;

    #[tokio::test]
    async fn a_write_nobody_reads_times_out() {
        let (client, server) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(server, Duration::from_millis(100));
        let started = std::time::Instant::now();
        let error = guarded.write_all(&[0u8; 1024]).await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::TimedOut);
        assert!(started.elapsed() >= Duration::from_millis(100));
        let mut byte = [0u8; 1];
        let read = tokio::io::AsyncReadExt::read(&mut guarded, &mut byte).await;
        assert_eq!(
            read.unwrap_err().kind(),
            io::ErrorKind::TimedOut,
            "reads end too"
        );
        drop(client);
    }

    #[tokio::test]
    async fn progressing_writes_are_untouched() {
        let (mut client, server) = tokio::io::duplex(64);
        let mut guarded = StallGuard::new(server, Duration::from_millis(200));
        let reader = tokio::spawn(async move {
            let mut sink = Vec::new();
            tokio::io::AsyncReadExt::read_to_end(&mut client, &mut sink)
                .await
                .map(|_| sink.len())
        });
        for _ in 0..20 {
            guarded.write_all(&[1u8; 256]).await.unwrap();
        }
        drop(guarded);
        assert_eq!(reader.await.unwrap().unwrap(), 20 * 256);
    }
}
