//! What the server keeps per connected socket, in the socket's extensions: its event queue
//! (see [`super::order`]) and how much waits in it, its rate limiter, whether the server has
//! evicted it, the client's address, and the slot that counts it in `MAX_CONNECTIONS`.

use std::net::IpAddr;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, PoisonError};

use socketioxide::extract::SocketRef;

use super::order::{Queue, Turn};
use crate::limits::{Class, RateLimits, SocketLimiter, Verdict};
use crate::state::ConnectionSlot;

pub struct Client {
    queue: Queue,
    /// Events (and their bytes) admitted and not yet handled.
    queued: Mutex<Queued>,
    /// At most this many events and bytes wait: more are refused on arrival.
    queue_bounds: Queued,
    /// Disconnected by the server (flooding, slow consumer): its remaining events are ignored.
    pub(super) evicted: AtomicBool,
    limiter: SocketLimiter,
    /// The client's address (per-address limits), as of its handshake.
    pub(super) address: IpAddr,
    /// The handshake's `auth.token` (JWT room access), judged at each `join-room` that
    /// carries no token of its own.
    pub(super) handshake_token: Option<String>,
    /// Counts this socket in `MAX_CONNECTIONS` until the socket (and so this) is dropped.
    _slot: ConnectionSlot,
}

impl Client {
    pub fn new(
        limits: &RateLimits,
        queue_bounds: Queued,
        address: IpAddr,
        handshake_token: Option<String>,
        slot: ConnectionSlot,
    ) -> Arc<Self> {
        Arc::new(Self {
            queue: Queue::default(),
            queued: Mutex::default(),
            queue_bounds,
            evicted: AtomicBool::new(false),
            limiter: SocketLimiter::new(limits),
            address,
            handshake_token,
            _slot: slot,
        })
    }

    /// The state of `socket`; `None` only if its connect middleware did not run.
    pub(super) fn of(socket: &SocketRef) -> Option<Arc<Self>> {
        socket.extensions.get::<Arc<Self>>()
    }

    /// A place in this socket's queue of events.
    pub(super) fn turn(&self) -> Turn {
        self.queue.take_turn()
    }

    pub(super) fn limiter(&self) -> &SocketLimiter {
        &self.limiter
    }

    pub(super) fn check(&self, class: Class) -> Verdict {
        self.limiter.check(class)
    }

    /// Room for one more event of `bytes` in the queue: held until the event is handled.
    pub(super) fn enqueue(self: &Arc<Self>, bytes: usize) -> Option<QueueSlot> {
        let mut queued = self.queued.lock().unwrap_or_else(PoisonError::into_inner);
        let fits = queued.events < self.queue_bounds.events
            && (queued.events == 0 || queued.bytes + bytes <= self.queue_bounds.bytes);
        if !fits {
            return None;
        }
        queued.events += 1;
        queued.bytes += bytes;
        Some(QueueSlot {
            client: self.clone(),
            bytes,
        })
    }
}

/// A count of events and of their bytes.
#[derive(Debug, Default, Clone, Copy)]
pub struct Queued {
    pub events: usize,
    pub bytes: usize,
}

/// An event's place in its socket's queue bounds; given back when the event is handled.
pub struct QueueSlot {
    client: Arc<Client>,
    bytes: usize,
}

impl Drop for QueueSlot {
    fn drop(&mut self) {
        let mut queued = self
            .client
            .queued
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        queued.events -= 1;
        queued.bytes -= self.bytes;
    }
}
