//! Operator actions on live sockets (from the admin API): closing a room and removing a
//! participant, with the same announcements a leave makes.

use serde::Serialize;
use socketioxide::SocketIo;
use socketioxide::socket::Sid;

use super::deliver::channel;
use crate::model::Participant;
use crate::state::AppState;

#[derive(Serialize)]
struct ServerError<'a> {
    message: &'a str,
    code: &'a str,
    /// No client event caused it.
    event: Option<&'a str>,
}

fn tell(io: &SocketIo, socket: &str, code: &str, message: &str) {
    if let Some(s) = socket
        .parse::<Sid>()
        .ok()
        .and_then(|sid| io.get_socket(sid))
    {
        s.emit(
            "error",
            &ServerError {
                message,
                code,
                event: None,
            },
        )
        .ok();
    }
}

/// Closes `room_id`: its participants get `error` code `room_closed` and are out of it.
/// `None` if there is no such room.
pub async fn close_room(io: &SocketIo, app: &AppState, room_id: &str) -> Option<Vec<Participant>> {
    let removed = app.registry.close_room(room_id)?;
    for p in &removed {
        tell(
            io,
            &p.id,
            "room_closed",
            "This room was closed by an operator",
        );
        app.metrics.left();
    }
    io.within(channel(room_id))
        .leave(channel(room_id))
        .await
        .ok();
    tracing::info!(room = %room_id, participants = removed.len(), "room closed by operator");
    Some(removed)
}

/// Removes one socket: `error` code `kicked`, out of its room (the rest are told as for a
/// leave), then disconnected. `false` if no such socket is connected here.
pub async fn kick(io: &SocketIo, app: &AppState, socket_id: &str) -> bool {
    let Some(socket) = socket_id
        .parse::<Sid>()
        .ok()
        .and_then(|sid| io.get_socket(sid))
    else {
        return false;
    };
    tell(io, socket_id, "kicked", "You were removed by an operator");
    if let Some(left) = app.registry.leave(socket_id) {
        app.metrics.left();
        let room = channel(&left.room_id);
        socket.leave(room.clone());
        let user_left = serde_json::json!({
            "participantId": left.participant.id,
            "userName": left.participant.user_name,
        });
        io.to(room.clone()).emit("user-left", &user_left).await.ok();
        io.to(room)
            .emit("participants-updated", &left.participants)
            .await
            .ok();
        tracing::info!(socket = %socket_id, room = %left.room_id, "participant removed by operator");
    }
    socket.disconnect().ok();
    true
}
