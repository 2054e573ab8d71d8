//! What the server keeps per connected socket, in the socket's extensions: its event queue
//! (see [`super::order`]), its rate limiter, whether the server has evicted it, the client's
//! address, and the slot that counts it in `MAX_CONNECTIONS`.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use socketioxide::extract::SocketRef;

use super::order::{Queue, Turn};
use crate::limits::{Class, RateLimits, SocketLimiter, Verdict};
use crate::state::ConnectionSlot;

pub struct Client {
    queue: Queue,
    /// Disconnected by the server (flooding, slow consumer): its remaining events are ignored.
    pub(super) evicted: AtomicBool,
    limiter: SocketLimiter,
    /// The client's address (per-address limits), as of its handshake.
    pub(super) address: IpAddr,
    /// Counts this socket in `MAX_CONNECTIONS` until the socket (and so this) is dropped.
    _slot: ConnectionSlot,
}

impl Client {
    pub fn new(limits: &RateLimits, address: IpAddr, slot: ConnectionSlot) -> Arc<Self> {
        Arc::new(Self {
            queue: Queue::default(),
            evicted: AtomicBool::new(false),
            limiter: SocketLimiter::new(limits),
            address,
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

    pub(super) fn check(&self, class: Class) -> Verdict {
        self.limiter.check(class)
    }
}
