//! What the server keeps per connected socket, in the socket's extensions: its event queue
//! (see [`super::order`]), its rate limiter, and whether the server has evicted it.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use super::order::{Queue, Turn};
use crate::limits::{Class, RateLimits, SocketLimiter, Verdict};
use crate::state::ConnectionSlot;

pub struct Client {
    queue: Queue,
    /// Disconnected by the server (flooding, slow consumer): its remaining events are ignored.
    pub(super) evicted: AtomicBool,
    limiter: SocketLimiter,
    /// Counts this socket in `MAX_CONNECTIONS` until the socket (and so this) is dropped.
    _slot: ConnectionSlot,
}

impl Client {
    pub fn new(limits: &RateLimits, slot: ConnectionSlot) -> Arc<Self> {
        Arc::new(Self {
            queue: Queue::default(),
            evicted: AtomicBool::new(false),
            limiter: SocketLimiter::new(limits),
            _slot: slot,
        })
    }

    /// A place in this socket's queue of events.
    pub(super) fn turn(self: &Arc<Self>) -> Turn {
        self.queue.take_turn(self.clone())
    }

    pub(super) fn check(&self, class: Class) -> Verdict {
        self.limiter.check(class)
    }
}
