//! Being in a room: `join-room`, `leave-room` and disconnects, with the join and leave
//! announcements in the order PROTOCOL.md fixes.

use serde::Serialize;
use socketioxide::extract::{SocketRef, State};
use socketioxide::socket::DisconnectReason;

use super::deliver::{channel, to_others, to_room};
use super::incoming::{Admitted, Incoming};
use super::order::Turn;
use crate::ice::IceServer;
use crate::model::{ChatMessage, ParticipantView};
use crate::protocol::{ProtocolError, decode_join, decode_room_only};
use crate::ratelimit::Class;
use crate::rooms::{JoinOutcome, Joined, Left};
use crate::state::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinedRoom<'a> {
    room_id: &'a str,
    participant_id: &'a str,
    participant: &'a ParticipantView,
    participants: &'a [ParticipantView],
    messages: &'a [ChatMessage],
    /// STUN/TURN servers issued for this participant (frontends that ignore it are unaffected).
    ice_servers: Vec<IceServer>,
}

impl<'a> JoinedRoom<'a> {
    fn new(j: &'a Joined, app: &AppState) -> Self {
        Self {
            room_id: &j.room_id,
            participant_id: &j.me.id,
            participant: &j.me,
            participants: &j.participants,
            messages: &j.messages,
            ice_servers: app.config.ice.issue(&j.me.id).ice_servers,
        }
    }
}

/// The new participant, plus the same object nested, so every reader finds it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserJoined<'a> {
    #[serde(flatten)]
    flat: &'a ParticipantView,
    participant_id: &'a str,
    participant: &'a ParticipantView,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct UserLeft<'a> {
    participant_id: &'a str,
    user_name: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomRef<'a> {
    room_id: &'a str,
}

pub async fn on_join(incoming: Incoming) {
    let Some(Admitted(s, app, data, reply, _turn)) = incoming.admit(Class::Join).await else {
        return;
    };
    let request = match data.and_then(|p| decode_join(&p)) {
        Ok(request) => request,
        Err(e) => return reply.fail(e),
    };
    let socket_id = s.id.to_string();
    match app.registry.join(&socket_id, &request) {
        Err(e) => reply.fail(e),
        Ok(JoinOutcome::AlreadyIn(joined)) => {
            let answer = JoinedRoom::new(&joined, &app);
            s.emit("joined-room", &answer).ok();
            reply.ok(&answer);
        }
        Ok(JoinOutcome::Joined { left, joined }) => {
            if let Some(left) = left {
                announce_leave(&s, &app, &left, true);
            }
            let room = &*joined.room_id;
            if joined.created_room {
                tracing::info!(%room, "room created");
            }
            tracing::info!(socket = %s.id, %room, participants = joined.participants.len(), "joined");
            app.metrics.joined();
            s.join(channel(room));
            let answer = JoinedRoom::new(&joined, &app);
            s.emit("joined-room", &answer).ok();
            let user_joined = UserJoined {
                flat: &joined.me,
                participant_id: &joined.me.id,
                participant: &joined.me,
            };
            to_others(&s, &app, room, "user-joined", &user_joined);
            to_room(&s, &app, room, "participants-updated", &joined.participants);
            reply.ok(&answer);
        }
    }
}

pub async fn on_leave(incoming: Incoming) {
    let Some(Admitted(s, app, data, reply, _turn)) = incoming.admit(Class::Join).await else {
        return;
    };
    let socket_id = s.id.to_string();
    let checked = data
        .and_then(|p| decode_room_only(&p))
        .and_then(|named| app.registry.current_room(&socket_id, named.as_deref()));
    if let Err(e) = checked {
        return reply.fail(e);
    }
    match app.registry.leave(&socket_id) {
        Some(left) => {
            announce_leave(&s, &app, &left, true);
            reply.ok(&RoomRef {
                room_id: &left.room_id,
            });
        }
        None => reply.fail(ProtocolError::not_in_room()),
    }
}

pub async fn on_disconnect(
    s: SocketRef,
    State(app): State<AppState>,
    reason: DisconnectReason,
    turn: Turn,
) {
    let _turn = turn.wait().await;
    if let Some(left) = app.registry.leave(&s.id.to_string()) {
        announce_leave(&s, &app, &left, false);
    }
    app.connection_closed();
    tracing::info!(socket = %s.id, %reason, "disconnected");
}

/// Tells the leaver (unless it is gone) and then the rest of the room.
pub(super) fn announce_leave(s: &SocketRef, app: &AppState, left: &Left, tell_leaver: bool) {
    app.metrics.left();
    let room: &str = &left.room_id;
    if tell_leaver {
        s.emit("left-room", &RoomRef { room_id: room }).ok();
    }
    s.leave(channel(room));
    let user_left = UserLeft {
        participant_id: &left.participant.id,
        user_name: &left.participant.user_name,
    };
    to_others(s, app, room, "user-left", &user_left);
    to_others(s, app, room, "participants-updated", &left.participants);
    tracing::info!(socket = %s.id, %room, participants = left.participants.len(), "left");
    if left.room_removed {
        tracing::info!(%room, "room removed (empty)");
    }
}
