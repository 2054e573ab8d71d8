//! What the server keeps per connected socket, in the socket's extensions: its event queue
//! (see [`super::order`]), its rate limiter, and whether the server has evicted it.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;

use super::order::{Queue, Turn};
use crate::ratelimit::{Class, Limiter, RateLimits, Verdict};

pub struct Client {
    queue: Queue,
    /// Disconnected by the server (flooding, slow consumer): its remaining events are ignored.
    pub(super) evicted: AtomicBool,
    /// Seen marked connected once; from then on there is no connect gap to wait out.
    settled: AtomicBool,
    limiter: Mutex<Limiter>,
}

impl Client {
    pub fn new(limits: &RateLimits) -> Arc<Self> {
        Arc::new(Self {
            queue: Queue::default(),
            evicted: AtomicBool::new(false),
            settled: AtomicBool::new(false),
            limiter: Mutex::new(Limiter::new(limits, Instant::now())),
        })
    }

    /// A place in this socket's queue of events.
    pub(super) fn turn(self: &Arc<Self>) -> Turn {
        self.queue.take_turn(self.clone())
    }

    /// Before its first event is handled, waits out socketioxide's connect gap (below).
    pub(super) async fn settle<A: Adapter>(&self, socket: &SocketRef<A>) {
        if !self.settled.load(Ordering::Acquire) {
            wait_until_connected(socket).await;
            self.settled.store(true, Ordering::Release);
        }
    }

    pub(super) fn check(&self, class: Class) -> Verdict {
        let mut limiter = match self.limiter.lock() {
            Ok(limiter) => limiter,
            Err(poisoned) => poisoned.into_inner(),
        };
        limiter.check(class, Instant::now())
    }
}

/// socketioxide tells the client it is connected a moment before it marks the socket
/// connected, and emits to a socket not yet marked are dropped; a fast client's first event
/// can land in that gap. Waits (briefly) for the mark.
async fn wait_until_connected<A: Adapter>(s: &SocketRef<A>) {
    for attempt in 0..100 {
        if s.connected() {
            return;
        }
        if attempt < 10 {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
    }
}
