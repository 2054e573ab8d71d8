//! Being in a room: `join-room`, `leave-room` and disconnects, with the join and leave
//! announcements in the order PROTOCOL.md fixes.

use std::sync::Arc;

use serde::Serialize;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{SocketRef, State};
use socketioxide::socket::DisconnectReason;

use super::deliver::{channel, to_others, to_room, to_room_from_server};
use super::incoming::{Admitted, Incoming};
use super::order::Turn;
use crate::ice::IceServer;
use crate::limits::Class;
use crate::model::{ChatMessage, ParticipantView};
use crate::protocol::{ProtocolError, decode_join, decode_room_only};
use crate::registry::{JoinOutcome, Joined, Left};
use crate::state::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct JoinedRoom<'a> {
    room_id: &'a str,
    participant_id: &'a str,
    participant: &'a ParticipantView,
    participants: &'a [ParticipantView],
    messages: &'a [Arc<ChatMessage>],
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

pub async fn on_join<A: Adapter>(incoming: Incoming<A>) {
    let Some(Admitted(s, app, data, reply, _turn)) = incoming.admit(Class::Join).await else {
        return;
    };
    let request = match data.and_then(|p| decode_join(&p)) {
        Ok(request) => request,
        Err(e) => return reply.fail(e),
    };
    let socket_id = s.id.to_string();
    match app.registry.join(&socket_id, &request).await {
        Err(e) => reply.fail(e),
        Ok(JoinOutcome::AlreadyIn(joined)) => {
            let answer = JoinedRoom::new(&joined, &app);
            s.emit("joined-room", &answer).ok();
            reply.ok(&answer);
        }
        Ok(JoinOutcome::Joined { left, joined }) => {
            if let Some(left) = left {
                announce_leave(&s, &app, &left, true).await;
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
            to_others(&s, &app, room, "user-joined", &user_joined).await;
            to_room(&s, &app, room, "participants-updated", &joined.participants).await;
            reply.ok(&answer);
        }
    }
}

pub async fn on_leave<A: Adapter>(incoming: Incoming<A>) {
    let Some(Admitted(s, app, data, reply, _turn)) = incoming.admit(Class::Join).await else {
        return;
    };
    let socket_id = s.id.to_string();
    let named = match data.and_then(|p| decode_room_only(&p)) {
        Ok(named) => named,
        Err(e) => return reply.fail(e),
    };
    if let Err(e) = app
        .registry
        .current_room(&socket_id, named.as_deref())
        .await
    {
        return reply.fail(e);
    }
    match app.registry.leave(&socket_id).await {
        Ok(Some(left)) => {
            announce_leave(&s, &app, &left, true).await;
            reply.ok(&RoomRef {
                room_id: &left.room_id,
            });
        }
        Ok(None) => reply.fail(ProtocolError::not_in_room()),
        Err(e) => reply.fail(e.into()),
    }
}

pub async fn on_disconnect<A: Adapter>(
    s: SocketRef<A>,
    State(app): State<AppState>,
    reason: DisconnectReason,
    turn: Turn,
) {
    let _turn = turn.wait().await;
    match app.registry.leave(&s.id.to_string()).await {
        Ok(Some(left)) => announce_leave(&s, &app, &left, false).await,
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(socket = %s.id, "disconnected socket not removed yet: {e}");
            tokio::spawn(remove_when_store_returns(s.clone(), app.clone()));
        }
    }
    tracing::info!(socket = %s.id, %reason, "disconnected");
}

/// In a cluster, a socket that disconnects while Redis is away is removed once Redis is back,
/// so it does not stay listed as a ghost.
async fn remove_when_store_returns<A: Adapter>(s: SocketRef<A>, app: AppState) {
    const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
    const GIVE_UP_AFTER: u32 = 600;
    for _ in 0..GIVE_UP_AFTER {
        tokio::time::sleep(RETRY_EVERY).await;
        match app.registry.leave_again(&s.id.to_string()).await {
            Ok(Some(left)) => return announce_leave(&s, &app, &left, false).await,
            Ok(None) => return,
            Err(_) => {}
        }
    }
    tracing::warn!(socket = %s.id, "gave up removing a disconnected socket");
}

/// Tells the leaver (unless it is gone) and then the rest of the room.
pub(super) async fn announce_leave<A: Adapter>(
    s: &SocketRef<A>,
    app: &AppState,
    left: &Left,
    tell_leaver: bool,
) {
    app.metrics.left();
    let room: &str = &left.room_id;
    if tell_leaver {
        s.emit("left-room", &RoomRef { room_id: room }).ok();
    }
    s.leave(channel(room));
    let user_left = user_left(left);
    to_others(s, app, room, "user-left", &user_left).await;
    to_others(s, app, room, "participants-updated", &left.participants).await;
    tracing::info!(socket = %s.id, %room, participants = left.participants.len(), "left");
    if left.room_removed {
        tracing::info!(%room, "room removed (empty)");
    }
}

/// Tells the rest of the room that a participant whose socket is not here is gone (removed
/// by an operator, or its instance died).
pub async fn announce_departure<A: Adapter>(io: &SocketIo<A>, app: &AppState, left: &Left) {
    app.metrics.left();
    let room: &str = &left.room_id;
    to_room_from_server(io, app, room, "user-left", &user_left(left)).await;
    to_room_from_server(io, app, room, "participants-updated", &left.participants).await;
    tracing::info!(socket = %left.participant.id, %room, participants = left.participants.len(), "removed");
}

fn user_left(left: &Left) -> UserLeft<'_> {
    UserLeft {
        participant_id: &left.participant.id,
        user_name: &left.participant.user_name,
    }
}
