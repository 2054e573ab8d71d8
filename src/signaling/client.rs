//! What the server keeps per connected socket, in the socket's extensions: its event queue
//! (see [`super::order`]) and its rate limiter; and the admission every handler starts with.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use socketioxide::extract::{AckSender, SocketRef};

use super::order::{Queue, Turn, TurnGuard};
use super::reply::Reply;
use crate::metrics::Metrics;
use crate::protocol::{ErrorCode, ProtocolError};
use crate::ratelimit::{Class, Limiter, RateLimits, Verdict};

pub struct Client {
    queue: Queue,
    /// Disconnected by the server (flooding, slow consumer): its remaining events are ignored.
    pub(super) evicted: AtomicBool,
    /// Seen marked connected once; from then on there is no connect gap to wait out.
    settled: AtomicBool,
    limiter: Mutex<Limiter>,
    metrics: Arc<Metrics>,
}

impl Client {
    pub fn new(limits: &RateLimits, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            queue: Queue::default(),
            evicted: AtomicBool::new(false),
            settled: AtomicBool::new(false),
            limiter: Mutex::new(Limiter::new(limits, Instant::now())),
            metrics,
        })
    }

    /// A place in this socket's queue of events.
    pub(super) fn turn(self: &Arc<Self>) -> Turn {
        self.queue.take_turn(self.clone())
    }

    fn check(&self, class: Class) -> Verdict {
        let mut limiter = match self.limiter.lock() {
            Ok(limiter) => limiter,
            Err(poisoned) => poisoned.into_inner(),
        };
        limiter.check(class, Instant::now())
    }
}

/// Waits for the event's turn, then checks the sender's rate limit. A refused event is
/// answered `rate_limited` and dropped; a client refused far more often than allowed is
/// disconnected.
pub async fn admit(
    s: &SocketRef,
    turn: Turn,
    ack: AckSender,
    event: String,
    class: Class,
) -> Option<(TurnGuard, Reply)> {
    let turn = turn.wait().await;
    if turn.client.evicted.load(Ordering::Acquire) {
        return None;
    }
    if !turn.client.settled.load(Ordering::Acquire) {
        wait_until_connected(s).await;
        turn.client.settled.store(true, Ordering::Release);
    }
    let metrics = turn.client.metrics.clone();
    metrics.event_received(&event);
    let reply = Reply::new(s, ack, event, metrics.clone());
    let verdict = turn.client.check(class);
    if verdict != Verdict::Allowed {
        metrics.rate_limited(class.as_str());
    }
    match verdict {
        Verdict::Allowed => Some((turn, reply)),
        Verdict::Refused => {
            reply.fail(rate_limited());
            None
        }
        Verdict::Flooding => {
            turn.client.evicted.store(true, Ordering::Release);
            tracing::warn!(socket = %s.id, event = %reply.event(), "flooding: disconnected");
            reply.fail(rate_limited());
            s.clone().disconnect().ok();
            None
        }
    }
}

/// socketioxide tells the client it is connected a moment before it marks the socket
/// connected, and emits to a socket not yet marked are dropped; a fast client's first event
/// can land in that gap. Waits (briefly) for the mark.
async fn wait_until_connected(s: &SocketRef) {
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

fn rate_limited() -> ProtocolError {
    ProtocolError::new(ErrorCode::RateLimited, "Too many events: slow down")
}
