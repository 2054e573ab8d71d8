//! One client event as every handler receives it: the socket, the shared state, the event
//! name, the payload, the ack and the event's turn, all extracted at arrival (so in arrival
//! order); then [`Incoming::admit`] waits for the turn and applies the rate limit.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::value::RawValue;
use socketioxide::adapter::{Adapter, LocalAdapter};
use socketioxide::extract::{AckSender, Event, SocketRef, State};
use socketioxide::handler::{FromMessageParts, Value};
use socketioxide::socket::Socket;

use super::order::{Turn, TurnGuard};
use super::payload::first_argument;
use super::reply::Reply;
use crate::limits::{Class, Verdict};
use crate::protocol::{ErrorCode, ProtocolError};
use crate::state::AppState;

pub struct Incoming<A: Adapter = LocalAdapter> {
    socket: SocketRef<A>,
    app: AppState,
    event: String,
    payload: Result<Box<RawValue>, ProtocolError>,
    ack: AckSender<A>,
    turn: Turn,
}

/// An event allowed through: the socket, the shared state, the payload, the reply, and the
/// event's turn. Bind the turn (`_turn`, not `_`) for the whole handler: the socket's next
/// event waits for it to drop.
pub struct Admitted<A: Adapter = LocalAdapter>(
    pub SocketRef<A>,
    pub AppState,
    pub Result<Box<RawValue>, ProtocolError>,
    pub Reply<A>,
    pub TurnGuard,
);

#[derive(Debug, thiserror::Error)]
pub enum IncomingError {
    #[error("application state missing")]
    NoState,
    #[error("unreadable event name: {0}")]
    Event(#[from] socketioxide::ParserError),
    #[error(transparent)]
    NoSession(#[from] super::order::NoSession),
}

impl<A: Adapter> FromMessageParts<A> for Incoming<A> {
    type Error = IncomingError;
    fn from_message_parts(
        s: &Arc<Socket<A>>,
        v: &mut Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, IncomingError> {
        let State(app) = State::<AppState>::from_message_parts(s, v, ack_id)
            .map_err(|_| IncomingError::NoState)?;
        let Event(event) = Event::from_message_parts(s, v, ack_id)?;
        let Ok(ack) = AckSender::from_message_parts(s, v, ack_id);
        let Ok(socket) = SocketRef::from_message_parts(s, v, ack_id);
        // Last: a turn taken by an event whose extraction then failed would stall the queue.
        let turn = Turn::from_message_parts(s, v, ack_id)?;
        Ok(Self {
            socket,
            app,
            event,
            payload: first_argument(v),
            ack,
            turn,
        })
    }
}

impl<A: Adapter> Incoming<A> {
    /// Waits for the event's turn, then checks the sender's rate limit. A refused event is
    /// answered `rate_limited` and dropped; a client refused far more often than allowed is
    /// disconnected; events of a client the server has evicted are dropped unanswered.
    pub async fn admit(self, class: Class) -> Option<Admitted<A>> {
        let Self {
            socket,
            app,
            event,
            payload,
            ack,
            turn,
        } = self;
        let turn = turn.wait().await;
        let client = turn.client.clone();
        if client.evicted.load(Ordering::Acquire) {
            return None;
        }
        app.metrics.event_received(&event);
        let reply = Reply::new(&socket, ack, event, app.metrics.clone());
        match client.check(class) {
            Verdict::Allowed => Some(Admitted(socket, app, payload, reply, turn)),
            Verdict::Refused => {
                app.metrics.rate_limited(class.as_str());
                reply.fail(rate_limited());
                None
            }
            Verdict::Flooding => {
                app.metrics.rate_limited(class.as_str());
                client.evicted.store(true, Ordering::Release);
                tracing::warn!(socket = %socket.id, event = %reply.event(), "flooding: disconnected");
                reply.fail(rate_limited());
                socket.disconnect().ok();
                None
            }
        }
    }
}

fn rate_limited() -> ProtocolError {
    ProtocolError::new(ErrorCode::RateLimited, "Too many events: slow down")
}
