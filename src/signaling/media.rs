//! Media state: microphone and camera toggles (three spellings of the same request) and
//! screen sharing. Each change updates the registry, which announces it (the toggled events
//! to the others, then the refreshed list to everyone); the sender's ack carries its own
//! participant object.

use super::incoming::{Admitted, Incoming};
use super::outgoing::Changed;
use super::reply::internal;
use crate::model::MediaKind;
use crate::protocol::{
    decode_room_only, decode_toggle, decode_toggle_media, decode_toggle_screen_share,
};

/// `toggle-audio`, `toggle-video` and `toggle-media`.
pub async fn on_toggle(incoming: Incoming) {
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
    let decoded = payload.and_then(|p| match reply.event() {
        "toggle-audio" => decode_toggle(MediaKind::Audio, &p),
        "toggle-video" => decode_toggle(MediaKind::Video, &p),
        "toggle-media" => decode_toggle_media(&p),
        _ => Err(internal()),
    });
    let request = match decoded {
        Ok(request) => request,
        Err(e) => return reply.fail(e),
    };
    let ticket = app.deliveries.ticket();
    match app
        .registry
        .set_media(
            &socket.id.to_string(),
            request.room.as_deref(),
            request.change,
            Some(ticket.id),
        )
        .await
    {
        Ok(updated) => {
            ticket.delivered().await;
            tracing::debug!(socket = %socket.id, room = %updated.room_id, "media state changed");
            reply.ok(&Changed {
                participant: &updated.participant,
            });
        }
        Err(e) => reply.fail(e),
    }
}

/// `start-screen-share`, `stop-screen-share` and `toggle-screen-share`.
pub async fn on_screen_share(incoming: Incoming) {
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
    let decoded = payload.and_then(|p| match reply.event() {
        "start-screen-share" => decode_room_only(&p).map(|room| (room, true)),
        "stop-screen-share" => decode_room_only(&p).map(|room| (room, false)),
        "toggle-screen-share" => decode_toggle_screen_share(&p).map(|r| (r.room, r.sharing)),
        _ => Err(internal()),
    });
    let (room, sharing) = match decoded {
        Ok(decoded) => decoded,
        Err(e) => return reply.fail(e),
    };
    let ticket = app.deliveries.ticket();
    match app
        .registry
        .set_screen_sharing(
            &socket.id.to_string(),
            room.as_deref(),
            sharing,
            Some(ticket.id),
        )
        .await
    {
        Ok(updated) => {
            ticket.delivered().await;
            reply.ok(&Changed {
                participant: &updated.participant,
            });
        }
        Err(e) => reply.fail(e),
    }
}
