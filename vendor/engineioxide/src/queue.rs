//! The queue of packets waiting to be sent to a client: a bounded single-consumer channel
//! with the subset of [`tokio::sync::mpsc`]'s API the transports use, plus a one-slot
//! "volatile" mailbox (what a [`tokio::sync::watch`] channel did: only the latest volatile
//! message is kept).
//!
//! Why not tokio's channel: a bounded `mpsc` channel allocates its first block of 32 slots
//! (32 [`PacketBuf`]s, ~5 KB) and a cache-padded shared state (512 B) when it is created,
//! whatever its capacity, and the `watch` channel another 520 B: ~6.5 KB per session before
//! anything is sent. This queue is one small allocation, and its buffer grows with what is
//! actually queued (a `VecDeque`, empty until the first packet). Semantics kept: capacity
//! counts queued packets plus outstanding [`Permit`]s, `try_send`/`try_reserve` report
//! `Full`/`Closed`, a closed queue still hands out what it holds, then `None`.

#[cfg(any(test, feature = "__test_harness"))]
use std::future::poll_fn;
use std::{
    collections::VecDeque,
    pin::pin,
    sync::{Arc, Mutex, MutexGuard},
    task::{Context, Poll, Waker},
};

use engineioxide_core::PacketBuf;
use tokio::sync::{
    Notify,
    mpsc::error::{SendError, TrySendError},
};

struct State {
    queued: VecDeque<PacketBuf>,
    /// The bytes of the messages in `queued`.
    queued_bytes: usize,
    /// Permits handed out and not yet used or dropped.
    reserved: usize,
    /// The latest volatile message not yet taken.
    volatile: Option<PacketBuf>,
    closed: bool,
    /// The consumer waiting for a packet (there is at most one: the receiver is `&mut`).
    waiting: Option<Waker>,
}

struct Shared {
    capacity: usize,
    /// At most this many bytes queued (one packet is always let in when the queue is empty).
    max_bytes: usize,
    state: Mutex<State>,
    /// Woken when the queue closes.
    closed: Notify,
    /// Woken when a slot frees up (for [`Sender::send`]).
    space: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        // No code panics while holding the lock; recover anyway rather than propagate.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues packets (the slot is already accounted for) and wakes the consumer.
    fn push(&self, packets: PacketBuf, from_permit: bool) {
        let waker = {
            let mut state = self.lock();
            if from_permit {
                state.reserved -= 1;
            }
            state.queued_bytes = state.queued_bytes.saturating_add(size(&packets));
            state.queued.push_back(packets);
            state.waiting.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    fn release_permit(&self) {
        self.lock().reserved -= 1;
        self.space.notify_waiters();
    }
}

/// The bytes `packets` hold.
fn size(packets: &PacketBuf) -> usize {
    use engineioxide_core::Packet;
    packets
        .iter()
        .map(|p| match p {
            Packet::Message(m) => m.len(),
            Packet::Binary(b) | Packet::BinaryV3(b) => b.len(),
            _ => 1,
        })
        .sum()
}

/// Creates a queue of at most `capacity` packets (at least 1) and `max_bytes` bytes.
pub(crate) fn channel(capacity: usize, max_bytes: usize) -> (Sender, Receiver) {
    let shared = Arc::new(Shared {
        capacity: capacity.max(1),
        max_bytes,
        state: Mutex::new(State {
            queued: VecDeque::new(),
            queued_bytes: 0,
            reserved: 0,
            volatile: None,
            closed: false,
            waiting: None,
        }),
        closed: Notify::new(),
        space: Notify::new(),
    });
    (
        Sender {
            shared: shared.clone(),
        },
        Receiver { shared },
    )
}

/// The sending side (held by the socket).
pub(crate) struct Sender {
    shared: Arc<Shared>,
}

/// A reserved slot of the queue, see [`Sender::try_reserve`].
pub(crate) struct Permit<'a> {
    shared: &'a Shared,
    used: bool,
}

impl Permit<'_> {
    /// Queues packets in the reserved slot.
    pub(crate) fn send(mut self, packets: PacketBuf) {
        self.used = true;
        self.shared.push(packets, true);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        if !self.used {
            self.shared.release_permit();
        }
    }
}

impl Sender {
    /// Queues packets if there is room and the queue is open.
    pub(crate) fn try_send(&self, packets: PacketBuf) -> Result<(), TrySendError<PacketBuf>> {
        let waker = {
            let mut state = self.shared.lock();
            if state.closed {
                return Err(TrySendError::Closed(packets));
            }
            if state.queued.len() + state.reserved >= self.shared.capacity {
                return Err(TrySendError::Full(packets));
            }
            let bytes = size(&packets);
            if !state.queued.is_empty()
                && state.queued_bytes.saturating_add(bytes) > self.shared.max_bytes
            {
                return Err(TrySendError::Full(packets));
            }
            state.queued_bytes = state.queued_bytes.saturating_add(bytes);
            state.queued.push_back(packets);
            state.waiting.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        Ok(())
    }

    /// Reserves a slot if there is room and the queue is open.
    pub(crate) fn try_reserve(&self) -> Result<Permit<'_>, TrySendError<()>> {
        let mut state = self.shared.lock();
        if state.closed {
            return Err(TrySendError::Closed(()));
        }
        if state.queued.len() + state.reserved >= self.shared.capacity {
            return Err(TrySendError::Full(()));
        }
        // The size of what the permit will carry is not known yet: the queue refuses once
        // it holds its bytes' worth, so it passes that by at most one packet.
        if state.queued_bytes >= self.shared.max_bytes && !state.queued.is_empty() {
            return Err(TrySendError::Full(()));
        }
        state.reserved += 1;
        Ok(Permit {
            shared: &self.shared,
            used: false,
        })
    }

    /// Queues packets, waiting for room if the queue is full.
    pub(crate) async fn send(&self, packets: PacketBuf) -> Result<(), SendError<PacketBuf>> {
        let mut packets = packets;
        loop {
            let mut space = pin!(self.shared.space.notified());
            space.as_mut().enable();
            match self.try_send(packets) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(p)) => return Err(SendError(p)),
                Err(TrySendError::Full(p)) => packets = p,
            }
            space.await;
        }
    }

    /// Replaces the volatile message waiting to be sent, if any. False once closed.
    pub(crate) fn send_volatile(&self, packets: PacketBuf) -> bool {
        let waker = {
            let mut state = self.shared.lock();
            if state.closed {
                return false;
            }
            state.volatile = Some(packets);
            state.waiting.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
        true
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.shared.lock().closed
    }

    /// Resolves once the queue is closed.
    pub(crate) async fn closed(&self) {
        let mut closed = pin!(self.shared.closed.notified());
        closed.as_mut().enable();
        if self.is_closed() {
            return;
        }
        closed.await;
    }
}

/// The receiving side (held by the transport that currently writes to the client: the
/// socket's `internal_rx` lock makes it the only consumer).
pub(crate) struct Receiver {
    shared: Arc<Shared>,
}

impl Receiver {
    /// The next queued packets; `None` once the queue is closed and empty.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<PacketBuf>> {
        let mut state = self.shared.lock();
        if let Some(packets) = state.queued.pop_front() {
            state.queued_bytes = state.queued_bytes.saturating_sub(size(&packets));
            if state.queued.is_empty() && state.queued.capacity() > 0 {
                // Drained: give the buffer back (an idle session holds none).
                state.queued = VecDeque::new();
            }
            drop(state);
            self.shared.space.notify_waiters();
            return Poll::Ready(Some(packets));
        }
        if state.closed {
            return Poll::Ready(None);
        }
        register(&mut state.waiting, cx);
        Poll::Pending
    }

    #[cfg(any(test, feature = "__test_harness"))]
    pub(crate) async fn recv(&self) -> Option<PacketBuf> {
        poll_fn(|cx| self.poll_recv(cx)).await
    }

    #[cfg(test)]
    pub(crate) fn try_recv(&self) -> Result<PacketBuf, tokio::sync::mpsc::error::TryRecvError> {
        use tokio::sync::mpsc::error::TryRecvError;
        match self.poll_recv(&mut Context::from_waker(Waker::noop())) {
            Poll::Ready(Some(packets)) => Ok(packets),
            Poll::Ready(None) => Err(TryRecvError::Disconnected),
            Poll::Pending => {
                // Do not leave the no-op waker in place of a real one.
                let mut state = self.shared.lock();
                if state
                    .waiting
                    .as_ref()
                    .is_some_and(|w| w.will_wake(Waker::noop()))
                {
                    state.waiting = None;
                }
                Err(TryRecvError::Empty)
            }
        }
    }

    /// The latest volatile message, once there is one (pending forever otherwise).
    pub(crate) fn poll_volatile(&self, cx: &mut Context<'_>) -> Poll<PacketBuf> {
        let mut state = self.shared.lock();
        if let Some(packets) = state.volatile.take() {
            return Poll::Ready(packets);
        }
        register(&mut state.waiting, cx);
        Poll::Pending
    }

    #[cfg(test)]
    pub(crate) async fn volatile(&self) -> PacketBuf {
        poll_fn(|cx| self.poll_volatile(cx)).await
    }

    /// Closes the queue: no more packets are accepted, those queued can still be received.
    pub(crate) fn close(&mut self) {
        let waker = {
            let mut state = self.shared.lock();
            state.closed = true;
            state.volatile = None;
            state.waiting.take()
        };
        self.shared.closed.notify_waiters();
        self.shared.space.notify_waiters();
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.close();
    }
}

fn register(slot: &mut Option<Waker>, cx: &Context<'_>) {
    match slot {
        Some(waker) if waker.will_wake(cx.waker()) => {}
        _ => *slot = Some(cx.waker().clone()),
    }
}

impl std::fmt::Debug for Sender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.shared.capacity)
            .finish()
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver").finish()
    }
}

#[cfg(test)]
mod tests {
    use engineioxide_core::{Packet, Str};
    use smallvec::smallvec;
    use tokio::sync::mpsc::error::TryRecvError;

    use super::*;

    fn msg(text: &'static str) -> PacketBuf {
        smallvec![Packet::Message(Str::from(text))]
    }

    fn text(packets: PacketBuf) -> String {
        match packets.into_iter().next() {
            Some(Packet::Message(m)) => m.to_string(),
            other => panic!("unexpected {other:?}"),
        }
    }

    #[tokio::test]
    async fn full_counts_queued_packets_and_permits() {
        let (tx, rx) = channel(2, usize::MAX);
        tx.try_send(msg("a")).unwrap();
        let permit = tx.try_reserve().unwrap();
        assert!(matches!(tx.try_send(msg("b")), Err(TrySendError::Full(_))));
        assert!(matches!(tx.try_reserve(), Err(TrySendError::Full(()))));
        drop(permit);
        tx.try_reserve().unwrap().send(msg("b"));
        assert!(matches!(tx.try_send(msg("c")), Err(TrySendError::Full(_))));
        assert_eq!(text(rx.recv().await.unwrap()), "a");
        tx.try_send(msg("c")).unwrap();
        assert_eq!(text(rx.try_recv().unwrap()), "b");
        assert_eq!(text(rx.try_recv().unwrap()), "c");
        assert!(matches!(rx.try_recv(), Err(TryRecvError::Empty)));
    }

    #[tokio::test]
    async fn closed_queue_refuses_new_packets_and_drains_the_rest() {
        let (tx, mut rx) = channel(4, usize::MAX);
        tx.try_send(msg("a")).unwrap();
        assert!(!tx.is_closed());
        rx.close();
        assert!(tx.is_closed());
        tx.closed().await;
        assert!(matches!(
            tx.try_send(msg("b")),
            Err(TrySendError::Closed(_))
        ));
        assert!(matches!(tx.try_reserve(), Err(TrySendError::Closed(()))));
        assert!(!tx.send_volatile(msg("v")));
        assert_eq!(text(rx.recv().await.unwrap()), "a");
        assert!(rx.recv().await.is_none());
    }

    #[tokio::test]
    async fn a_waiting_receiver_and_closed_waiters_are_woken() {
        let (tx, rx) = channel(4, usize::MAX);
        let reader = tokio::spawn(async move {
            let first = rx.recv().await.map(text);
            (first, rx)
        });
        tokio::task::yield_now().await;
        tx.try_send(msg("a")).unwrap();
        let (first, mut rx) = reader.await.unwrap();
        assert_eq!(first.as_deref(), Some("a"));

        let tx = Arc::new(tx);
        let waiter = tokio::spawn({
            let tx = tx.clone();
            async move { tx.closed().await }
        });
        tokio::task::yield_now().await;
        rx.close();
        waiter.await.unwrap();
    }

    #[tokio::test]
    async fn send_waits_for_room() {
        let (tx, rx) = channel(1, usize::MAX);
        tx.try_send(msg("a")).unwrap();
        let tx = Arc::new(tx);
        let sender = tokio::spawn({
            let tx = tx.clone();
            async move { tx.send(msg("b")).await.is_ok() }
        });
        tokio::task::yield_now().await;
        assert!(!sender.is_finished());
        assert_eq!(text(rx.recv().await.unwrap()), "a");
        assert!(sender.await.unwrap());
        assert_eq!(text(rx.recv().await.unwrap()), "b");
    }

    #[tokio::test]
    async fn only_the_latest_volatile_message_is_kept() {
        let (tx, rx) = channel(1, usize::MAX);
        assert!(tx.send_volatile(msg("v1")));
        assert!(tx.send_volatile(msg("v2")));
        assert_eq!(text(rx.volatile().await), "v2");
        let pending = tokio::time::timeout(std::time::Duration::from_millis(20), rx.volatile());
        assert!(pending.await.is_err(), "taken once");
    }

    #[tokio::test]
    async fn full_counts_queued_bytes_too() {
        let (tx, rx) = channel(100, 5);
        tx.try_send(msg("abcdefgh")).unwrap();
        assert!(
            matches!(tx.try_send(msg("x")), Err(TrySendError::Full(_))),
            "over the bytes, though one large message always fits an empty queue"
        );
        assert!(matches!(tx.try_reserve(), Err(TrySendError::Full(()))));
        assert_eq!(text(rx.recv().await.unwrap()), "abcdefgh");
        tx.try_send(msg("ab")).unwrap();
        tx.try_send(msg("cd")).unwrap();
        assert!(matches!(tx.try_send(msg("ef")), Err(TrySendError::Full(_))));
        tx.try_reserve().unwrap().send(msg("ef"));
        assert!(matches!(tx.try_reserve(), Err(TrySendError::Full(()))));
        assert_eq!(text(rx.recv().await.unwrap()), "ab");
        tx.try_reserve().unwrap().send(msg("gh"));
    }
}
