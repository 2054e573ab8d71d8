//! WebRTC signaling relay: offers, answers, ICE candidates and connection requests go to
//! one target, only within the sender's room, stamped with the sender's real id. A target
//! on this instance is emitted to at once (unless the negotiation assist holds it for a
//! while); one held by another instance (cluster mode) is reached through the registry,
//! which publishes the relay to that instance.

use std::sync::Arc;

use socketioxide::SocketIo;
use socketioxide::socket::Sid;

use super::incoming::{Admitted, Incoming, enforce};
use super::negotiation::{self, RelayHint};
use super::reply::{Done, internal};
use crate::limits::{Class, Verdict};
use crate::protocol::{RelayKind, decode_relay};
use crate::registry::events::Relay;

/// `io` is extracted after `incoming` (and infallibly), so the event's turn is never lost.
pub async fn on_relay(incoming: Incoming, io: SocketIo) {
    let Some(Admitted {
        socket,
        app,
        client,
        payload,
        reply,
        turn: _turn,
        ..
    }) = incoming.admit().await
    else {
        return;
    };
    let Some(kind) = RelayKind::from_client_event(reply.event()) else {
        return reply.fail(internal());
    };
    let request = match payload.and_then(|p| decode_relay(kind, &p)) {
        Ok(request) => request,
        Err(e) => return reply.fail(e),
    };
    let hint = RelayHint::of(&request);
    // A flood aimed at one participant is refused to its sender, never the target's problem.
    let bytes = request.body.as_deref().map_or(0, |b| b.get().len());
    let verdict = client.limiter().check_relay(&request.target, bytes);
    if verdict != Verdict::Allowed {
        return enforce(&socket, &app, &client, Class::Signal, verdict, reply);
    }
    let sender: Arc<str> = socket.id.as_str().into();
    let here = request
        .target
        .parse::<Sid>()
        .ok()
        .and_then(|sid| io.of("/")?.get_socket(sid));
    let mut relay = Relay {
        room_id: Arc::from(""),
        sender: sender.clone(),
        target: request.target.as_str().into(),
        kind,
        body: request.body,
    };
    let checked = match &here {
        Some(_) => {
            app.registry
                .relay_room(&sender, request.room.as_deref(), &relay.target)
                .await
        }
        None => {
            app.registry
                .forward_relay(&sender, request.room.as_deref(), &relay)
                .await
        }
    };
    match checked {
        Ok(room) => relay.room_id = room,
        Err(e) => return reply.fail(e),
    }
    tracing::debug!(socket = %socket.id, room = %relay.room_id, target = %relay.target, kind = kind.server_event(), "relay");
    app.metrics.relayed(kind.metric_label());
    if let Some(target) = here {
        negotiation::relay(&io, &app, target, &relay, hint);
    }
    reply.ok(&Done {});
}
