//! What the server keeps per connected socket, in the socket's extensions: its event queue
//! (see [`super::order`]) and its rate limiter; and the admission every handler starts with.

use std::sync::{Arc, Mutex};
use std::time::Instant;

use socketioxide::extract::{AckSender, SocketRef};

use super::order::{Queue, Turn, TurnGuard};
use super::reply::Reply;
use crate::metrics::Metrics;
use crate::protocol::{ErrorCode, ProtocolError};
use crate::ratelimit::{Class, Limiter, RateLimits, Verdict};

pub struct Client {
    pub(super) queue: Queue,
    limiter: Mutex<Limiter>,
    metrics: Arc<Metrics>,
}

impl Client {
    pub fn new(limits: &RateLimits, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            queue: Queue::default(),
            limiter: Mutex::new(Limiter::new(limits, Instant::now())),
            metrics,
        })
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
/// answered `rate_limited` and dropped; a client refused too often in a row is disconnected.
pub async fn admit(
    s: &SocketRef,
    turn: Turn,
    ack: AckSender,
    event: String,
    class: Class,
) -> Option<(TurnGuard, Reply)> {
    let turn = turn.wait().await;
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
            tracing::warn!(socket = %s.id, event = %reply.event(), "flooding: disconnected");
            reply.fail(rate_limited());
            s.clone().disconnect().ok();
            None
        }
    }
}

fn rate_limited() -> ProtocolError {
    ProtocolError::new(ErrorCode::RateLimited, "Too many events: slow down")
}
