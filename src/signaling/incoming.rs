//! One client event as every handler receives it: the socket, the shared state, the event
//! name, the payload, the ack and the event's turn, all extracted at arrival (so in arrival
//! order); then [`Incoming::admit`] waits for the turn and applies the rate limit.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::value::RawValue;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Event, SocketRef, State};
use socketioxide::handler::{FromMessageParts, Value};
use socketioxide::socket::Socket;

use super::client::Client;
use super::order::{Turn, TurnGuard};
use super::payload::first_argument;
use super::reply::Reply;
use crate::limits::{Class, Verdict};
use crate::protocol::{ErrorCode, ProtocolError};
use crate::state::AppState;

pub struct Incoming {
    socket: SocketRef,
    app: AppState,
    event: String,
    payload: Result<Box<RawValue>, ProtocolError>,
    ack: AckSender,
    client: Arc<Client>,
    turn: Turn,
}

/// An event allowed through. Bind `turn` (as `turn: _turn`, not `_`) for the whole handler:
/// the socket's next event waits for it to drop.
pub struct Admitted {
    pub socket: SocketRef,
    pub app: AppState,
    /// The client's address, for per-address limits.
    pub address: IpAddr,
    /// The event's first argument, raw; the error its sender gets if it is unusable.
    pub payload: Result<Box<RawValue>, ProtocolError>,
    pub reply: Reply,
    pub turn: TurnGuard,
}

#[derive(Debug, thiserror::Error)]
pub enum IncomingError {
    #[error("application state missing")]
    NoState,
    #[error("unreadable event name: {0}")]
    Event(#[from] socketioxide::ParserError),
    #[error("socket has no session (connect middleware did not run)")]
    NoSession,
}

impl FromMessageParts<LocalAdapter> for Incoming {
    type Error = IncomingError;
    fn from_message_parts(
        s: &Arc<Socket>,
        v: &mut Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, IncomingError> {
        let State(app) = State::<AppState>::from_message_parts(s, v, ack_id)
            .map_err(|_| IncomingError::NoState)?;
        let Event(event) = Event::from_message_parts(s, v, ack_id)?;
        let Ok(ack) = AckSender::from_message_parts(s, v, ack_id);
        let Ok(socket) = SocketRef::from_message_parts(s, v, ack_id);
        // Last: a turn taken by an event whose extraction then failed would stall the queue.
        let client = Client::of(&socket).ok_or(IncomingError::NoSession)?;
        let turn = client.turn();
        Ok(Self {
            socket,
            app,
            event,
            payload: first_argument(v),
            ack,
            client,
            turn,
        })
    }
}

impl Incoming {
    /// Waits for the event's turn, then checks the sender's rate limit. A refused event is
    /// answered `rate_limited` and dropped; a client refused far more often than allowed is
    /// disconnected; events of a client the server has evicted are dropped unanswered.
    pub async fn admit(self, class: Class) -> Option<Admitted> {
        let Self {
            socket,
            app,
            event,
            payload,
            ack,
            client,
            turn,
        } = self;
        let turn = turn.wait().await;
        if client.evicted.load(Ordering::Acquire) {
            return None;
        }
        app.metrics.event_received(&event);
        let reply = Reply::new(&socket, ack, event, app.metrics.clone());
        match client.check(class) {
            Verdict::Allowed => Some(Admitted {
                socket,
                app,
                address: client.address,
                payload,
                reply,
                turn,
            }),
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
