//! How a handler answers its sender: the `error` event and the optional acknowledgement,
//! with the shapes PROTOCOL.md gives them, and the emits every handler shares.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use socketioxide::extract::{AckSender, SocketRef};

use crate::metrics::Metrics;
use crate::protocol::{ErrorCode, ProtocolError};

#[derive(Serialize)]
struct ErrorEvent<'a> {
    message: &'a str,
    code: ErrorCode,
    event: &'a str,
}

#[derive(Serialize)]
struct AckOk<'a, T: Serialize> {
    ok: bool,
    #[serde(flatten)]
    result: &'a T,
}

#[derive(Serialize)]
struct AckErr<'a> {
    ok: bool,
    error: &'a str,
    code: ErrorCode,
}

/// An ack result with no fields: `{ "ok": true }`.
#[derive(Serialize)]
pub struct Done {}

/// The answer to one client event; answering also records how long handling took.
pub struct Reply {
    socket: SocketRef,
    ack: AckSender,
    event: String,
    metrics: Arc<Metrics>,
    started: Instant,
}

impl Reply {
    pub fn new(socket: &SocketRef, ack: AckSender, event: String, metrics: Arc<Metrics>) -> Self {
        Self {
            socket: socket.clone(),
            ack,
            event,
            metrics,
            started: Instant::now(),
        }
    }

    pub fn event(&self) -> &str {
        &self.event
    }

    /// Acknowledges success with `{ok: true, ...result}` if the client asked for an ack.
    pub fn ok<T: Serialize>(self, result: &T) {
        self.ack.send(&AckOk { ok: true, result }).ok();
        self.metrics.handled(&self.event, self.started.elapsed());
    }

    /// Sends the `error` event, and `{ok: false, error, code}` if the client asked for an ack.
    pub fn fail(self, error: ProtocolError) {
        tracing::debug!(socket = %self.socket.id, event = %self.event, code = error.code.as_str(), "refused: {}", error.message);
        let event = ErrorEvent {
            message: &error.message,
            code: error.code,
            event: &self.event,
        };
        self.socket.emit("error", &event).ok();
        self.metrics.event_rejected(error.code.as_str());
        self.metrics.handled(&self.event, self.started.elapsed());
        self.ack
            .send(&AckErr {
                ok: false,
                error: &error.message,
                code: error.code,
            })
            .ok();
    }
}

/// The sender-visible failure when something that cannot fail does.
pub fn internal() -> ProtocolError {
    ProtocolError::new(ErrorCode::Internal, "Internal server error")
}
