//! Operator actions on live sockets (from the admin API): closing a room and removing a
//! participant, with the same announcements a leave makes. In a cluster both reach sockets on
//! every instance.

use serde::Serialize;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::socket::Sid;

use super::deliver::{channel, namespace, personal_channel, to_participant};
use super::session::announce_departure;
use crate::model::Participant;
use crate::registry::StoreUnavailable;
use crate::state::AppState;

#[derive(Serialize)]
struct ServerError<'a> {
    message: &'a str,
    code: &'a str,
    /// No client event caused it.
    event: Option<&'a str>,
}

async fn tell<A: Adapter>(
    io: &SocketIo<A>,
    app: &AppState,
    socket: &str,
    code: &str,
    message: &str,
) {
    let error = ServerError {
        message,
        code,
        event: None,
    };
    to_participant(io, app, socket, "error", &error).await;
}

/// Closes `room_id`: its participants get `error` code `room_closed` and are out of it.
/// `None` if there is no such room.
pub async fn close_room<A: Adapter>(
    io: &SocketIo<A>,
    app: &AppState,
    room_id: &str,
) -> Result<Option<Vec<Participant>>, StoreUnavailable> {
    let Some(removed) = app.registry.close_room(room_id).await? else {
        return Ok(None);
    };
    for p in &removed {
        tell(
            io,
            app,
            &p.id,
            "room_closed",
            "This room was closed by an operator",
        )
        .await;
        app.metrics.left();
    }
    if let Some(ns) = namespace(io) {
        ns.within(channel(room_id))
            .leave(channel(room_id))
            .await
            .ok();
    }
    tracing::info!(room = %room_id, participants = removed.len(), "room closed by operator");
    Ok(Some(removed))
}

/// Removes one socket: `error` code `kicked`, out of its room (the rest are told as for a
/// leave), then disconnected. `false` if no such socket is connected (on one instance) or
/// in a room (in a cluster, where it may be connected to another instance).
pub async fn kick<A: Adapter>(
    io: &SocketIo<A>,
    app: &AppState,
    socket_id: &str,
) -> Result<bool, StoreUnavailable> {
    let Some(ns) = namespace(io) else {
        return Ok(false);
    };
    let local = socket_id
        .parse::<Sid>()
        .ok()
        .and_then(|sid| ns.get_socket(sid));
    if local.is_none() && !app.registry.is_shared() {
        return Ok(false);
    }
    let left = app.registry.leave(socket_id).await?;
    if local.is_none() && left.is_none() {
        return Ok(false);
    }
    tell(
        io,
        app,
        socket_id,
        "kicked",
        "You were removed by an operator",
    )
    .await;
    if let Some(left) = left {
        match &local {
            Some(socket) => socket.leave(channel(&left.room_id)),
            None => {
                ns.clone()
                    .to(personal_channel(socket_id))
                    .leave(channel(&left.room_id))
                    .await
                    .ok();
            }
        }
        announce_departure(io, app, &left).await;
        tracing::info!(socket = %socket_id, room = %left.room_id, "participant removed by operator");
    }
    match local {
        Some(socket) => {
            socket.disconnect().ok();
        }
        None => {
            ns.to(personal_channel(socket_id)).disconnect().await.ok();
        }
    }
    Ok(true)
}
