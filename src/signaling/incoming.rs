//! One client event as every handler receives it. Everything is decided on arrival, in
//! arrival order, while socketioxide extracts the handler's arguments: the rate limit of the
//! event's class and the bounds of the socket's queue are applied at once (a refused event's
//! payload is not kept, and a flooder's later events are dropped at once), and the event
//! takes its turn in the socket's queue. [`Incoming::admit`] then waits for the turn and
//! answers a refusal, or hands the event to its handler: answers keep the events' order.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::value::RawValue;
use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{AckSender, Event, SocketRef, State};
use socketioxide::handler::{FromMessageParts, Value};
use socketioxide::socket::Socket;

use super::client::{Client, QueueSlot};
use super::events::{Handler, class_of, handler_of};
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
    ack: AckSender,
    client: Arc<Client>,
    class: Class,
    decision: Decision,
}

/// What was decided on arrival.
enum Decision {
    /// Admitted: the payload, the event's place in its socket's queue, and its turn.
    Queued {
        payload: Result<Box<RawValue>, ProtocolError>,
        slot: QueueSlot,
        turn: Turn,
    },
    /// Over its class's rate, or its socket's queue is full: answered in its turn.
    Refused { verdict: Verdict, turn: Turn },
    /// The server has evicted the socket: its events are dropped unanswered.
    Evicted,
}

/// An event allowed through. Bind `turn` (as `turn: _turn`, not `_`) for the whole handler:
/// the socket's next event waits for it to drop.
pub struct Admitted {
    pub socket: SocketRef,
    pub app: AppState,
    pub client: Arc<Client>,
    /// The client's address, for per-address limits.
    pub address: IpAddr,
    /// The event's first argument, raw; the error its sender gets if it is unusable.
    pub payload: Result<Box<RawValue>, ProtocolError>,
    pub reply: Reply,
    pub turn: Handling,
}

/// Held while a handler runs: its turn (the socket's next event waits for it) and its place
/// in the socket's queue bounds.
pub struct Handling {
    _turn: TurnGuard,
    _slot: QueueSlot,
}

#[derive(Debug, thiserror::Error)]
pub enum IncomingError {
    #[error("application state missing")]
    NoState,
    #[error("unreadable event name: {0}")]
    Event(#[from] socketioxide::ParserError),
    #[error("socket has no session (connect middleware did not run)")]
    NoSession,
    #[error("no handler takes event {0:?}")]
    Unknown(String),
}

/// What the one message handler of a socket receives: an event of the table, decided on
/// arrival as [`Incoming`] is and named with the handler that takes it, or an event the server
/// does not handle.
pub enum Arrival {
    Known(Handler, Incoming),
    Unknown {
        socket: SocketRef,
        app: AppState,
        event: String,
    },
}

impl FromMessageParts<LocalAdapter> for Arrival {
    type Error = IncomingError;
    fn from_message_parts(
        s: &Arc<Socket>,
        v: &mut Value,
        ack_id: &Option<i64>,
    ) -> Result<Self, IncomingError> {
        let Event(event) = Event::from_message_parts(s, v, ack_id)?;
        if let Some(handler) = handler_of(&event) {
            let incoming = Incoming::from_message_parts(s, v, ack_id)?;
            return Ok(Self::Known(handler, incoming));
        }
        let State(app) = State::<AppState>::from_message_parts(s, v, ack_id)
            .map_err(|_| IncomingError::NoState)?;
        let Ok(socket) = SocketRef::from_message_parts(s, v, ack_id);
        Ok(Self::Unknown { socket, app, event })
    }
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
        let client = Client::of(&socket).ok_or(IncomingError::NoSession)?;
        let class = class_of(&event).ok_or_else(|| IncomingError::Unknown(event.clone()))?;
        let decision = if client.evicted.load(Ordering::Acquire) {
            Decision::Evicted
        } else {
            match client.check(class) {
                Verdict::Allowed => match client.enqueue(size(v)) {
                    // Last: a turn taken by an event whose extraction then failed would
                    // stall the queue.
                    Some(slot) => Decision::Queued {
                        payload: first_argument(v),
                        slot,
                        turn: client.turn(),
                    },
                    None => refuse(&client, client.limiter().refuse()),
                },
                refused => refuse(&client, refused),
            }
        };
        Ok(Self {
            socket,
            app,
            event,
            ack,
            client,
            class,
            decision,
        })
    }
}

/// A refusal; from a flooder's last one on, its events are dropped on arrival.
fn refuse(client: &Client, verdict: Verdict) -> Decision {
    if verdict == Verdict::Flooding {
        client.evicted.store(true, Ordering::Release);
    }
    Decision::Refused {
        verdict,
        turn: client.turn(),
    }
}

/// The bytes an event's packet holds.
fn size(value: &Value) -> usize {
    match value {
        Value::Str(text, attachments) => {
            text.len() + attachments.iter().flatten().map(|a| a.len()).sum::<usize>()
        }
        Value::Bytes(bytes) => bytes.len(),
    }
}

impl Incoming {
    /// Answers a refused event (`rate_limited`; a client refused far more often than
    /// allowed is disconnected) or waits for an admitted event's turn.
    pub async fn admit(self) -> Option<Admitted> {
        let Self {
            socket,
            app,
            event,
            ack,
            client,
            class,
            decision,
        } = self;
        let (payload, slot, turn) = match decision {
            Decision::Evicted => return None,
            Decision::Refused { verdict, turn } => {
                let _turn = turn.wait().await;
                app.metrics.event_received(&event);
                let reply = Reply::new(&socket, ack, event, app.metrics.clone());
                enforce(&socket, &app, &client, class, verdict, reply);
                return None;
            }
            Decision::Queued {
                payload,
                slot,
                turn,
            } => (payload, slot, turn),
        };
        let turn = turn.wait().await;
        if client.evicted.load(Ordering::Acquire) {
            return None;
        }
        app.metrics.event_received(&event);
        let reply = Reply::new(&socket, ack, event, app.metrics.clone());
        Some(Admitted {
            socket,
            app,
            address: client.address,
            client,
            payload,
            reply,
            turn: Handling {
                _turn: turn,
                _slot: slot,
            },
        })
    }
}

/// Answers an event the limits refused: `rate_limited`, and a flooder is disconnected.
pub fn enforce(
    socket: &SocketRef,
    app: &AppState,
    client: &Client,
    class: Class,
    verdict: Verdict,
    reply: Reply,
) {
    match verdict {
        Verdict::Allowed => {}
        Verdict::Refused => {
            app.metrics.rate_limited(class.as_str());
            reply.fail(rate_limited());
        }
        Verdict::Flooding => {
            app.metrics.rate_limited(class.as_str());
            client.evicted.store(true, Ordering::Release);
            tracing::warn!(socket = %socket.id, event = %reply.event(), "flooding: disconnected");
            reply.fail(rate_limited());
            socket.clone().disconnect().ok();
        }
    }
}

fn rate_limited() -> ProtocolError {
    ProtocolError::new(ErrorCode::RateLimited, "Too many events: slow down")
}
