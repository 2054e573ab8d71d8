//! Host moderation: the events only a room's host may send (permissions, mute all, kick,
//! transfer, lock, lobby and admissions, password, end). The handler decodes the payload and
//! asks the registry, which checks that the sender is the host, makes the change as one
//! atomic step and announces it; the sender is answered once it has been announced. A
//! refusal changes nothing and tells nobody but the sender.

use super::incoming::{Admitted, Incoming};
use super::outgoing::ModerationDone;
use super::reply::internal;
use crate::protocol::{Action, decode_moderation};

pub async fn on_moderate(incoming: Incoming) {
    let Some(Admitted {
        socket,
        app,
        payload,
        reply,
        turn: _turn,
        ..
    }) = incoming.admit().await
    else {
        return;
    };
    let decoded = payload
        .and_then(|p| decode_moderation(reply.event(), &p).unwrap_or_else(|| Err(internal())));
    let request = match decoded {
        Ok(request) => request,
        Err(e) => return reply.fail(e),
    };
    let ticket = app.deliveries.ticket();
    match app
        .registry
        .moderate(
            socket.id.as_str(),
            request.room.as_deref(),
            &request.action,
            Some(ticket.id),
        )
        .await
    {
        Ok(done) => {
            if done.announced {
                ticket.delivered().await;
            }
            // Never the payload: it may carry a password.
            tracing::info!(socket = %socket.id, room = %done.room_id, action = request.action.name(), "moderation");
            let has_password =
                matches!(request.action, Action::SetPassword { .. }).then_some(done.has_password);
            reply.ok(&ModerationDone {
                room_id: &done.room_id,
                has_password,
            });
        }
        Err(e) => reply.fail(e),
    }
}
