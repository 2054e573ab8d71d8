//! The announcer: turns the registry's batches ([`crate::registry::events`]) into emits to the
//! sockets of this instance, one batch at a time, in the order they arrive — the order each
//! room changed, on every instance. It is the only place that adds sockets to a meeting
//! room's Socket.IO room or takes them out, so a joiner gets `joined-room` before anything of
//! its room, and a leaver nothing after `left-room`.
//! Emits go through [`super::emit`], which evicts slow consumers.

use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use socketioxide::operators::BroadcastOperators;
use socketioxide::socket::Sid;
use tokio::sync::mpsc;

use super::emit::{deliver_relay, emit_each};
use super::negotiation;
use super::outgoing::{
    AudioToggled, ConnectionChanged, HostChanged, JoinedRoom, Kicked, LobbyChanged, LockChanged,
    MediaToggled, ParticipantRef, PermissionChanged, RoomEnded, RoomRef, ServerError, UserJoined,
    UserLeft, VideoToggled,
};
use crate::model::{MediaKind, ParticipantView};
use crate::protocol::ErrorCode;
use crate::registry::LeaveReason;
use crate::registry::events::{Batch, Change, DenyCause, Event, RoomFlag};
use crate::state::AppState;

/// The Socket.IO room that carries a meeting room's broadcasts. The prefix keeps meeting
/// rooms apart from any other use of Socket.IO rooms (socketioxide names rooms freely, socket
/// ids included).
pub fn channel(room: &str) -> String {
    format!("room:{room}")
}

/// Announces batches until the inbox closes.
pub async fn run(io: SocketIo, app: AppState, mut batches: mpsc::UnboundedReceiver<Batch>) {
    while let Some(batch) = batches.recv().await {
        let from_here = batch.origin.instance == app.instance_id;
        if let Some(ns) = io.of("/") {
            for event in &batch.events {
                announce(&io, &ns, &app, event, from_here);
            }
        }
        app.webhooks.observe(&batch);
        if from_here && let Some(ticket) = batch.origin.ticket {
            app.deliveries.done(ticket);
        }
    }
}

/// The socket with id `id`, if this instance holds it.
fn local(ns: &BroadcastOperators, id: &str) -> Option<SocketRef> {
    id.parse::<Sid>().ok().and_then(|sid| ns.get_socket(sid))
}

/// The sockets of this instance in meeting room `room`.
fn members(ns: &BroadcastOperators, room: &str) -> Vec<SocketRef> {
    ns.clone().within(channel(room)).sockets()
}

/// `from_here`: this instance made the change, so it counts it (once in a cluster).
fn announce(
    io: &SocketIo,
    ns: &BroadcastOperators,
    app: &AppState,
    event: &Event,
    from_here: bool,
) {
    match event {
        Event::Welcome(joined) => {
            if let Some(joiner) = local(ns, &joined.me.id) {
                joiner.join(channel(&joined.room_id));
                emit_each(app, [joiner], "joined-room", &JoinedRoom::new(joined, app));
            }
        }
        Event::Joined(joined) => {
            let room = &*joined.room_id;
            // Before anyone hears of the newcomer, so the assist knows it when they answer.
            let withheld = match local(ns, &joined.me.id) {
                Some(_) => negotiation::joined(io, app, joined),
                None => Vec::new(),
            };
            let members = members(ns, room);
            let others = members.iter().filter(|s| {
                s.id.as_str() != &*joined.me.id && !withheld.iter().any(|w| w == s.id.as_str())
            });
            emit_each(
                app,
                others.cloned(),
                "user-joined",
                &UserJoined::new(&joined.me),
            );
            emit_each(app, members, "participants-updated", &joined.participants);
            if from_here {
                if joined.created_room {
                    tracing::info!(%room, "room created");
                }
                tracing::info!(socket = %joined.me.id, %room, participants = joined.participants.len(), "joined");
                app.metrics.joined();
            }
        }
        Event::Left { left, reason } => {
            let room = &*left.room_id;
            negotiation::left(app, room, &left.participant.id);
            if let Some(leaver) = local(ns, &left.participant.id) {
                if reason.tells_leaver() {
                    emit_each(
                        app,
                        [leaver.clone()],
                        "left-room",
                        &RoomRef { room_id: room },
                    );
                }
                leaver.leave(channel(room));
                dismiss(app, &leaver, *reason);
            }
            let rest = members(ns, room);
            emit_each(app, rest.iter().cloned(), "user-left", &UserLeft::new(left));
            if let Some(host) = &left.new_host {
                let changed = HostChanged {
                    room_id: room,
                    host_id: host,
                    previous_host_id: &left.participant.id,
                };
                emit_each(app, rest.iter().cloned(), "host-changed", &changed);
            }
            emit_each(app, rest, "participants-updated", &left.participants);
            if from_here {
                tracing::info!(socket = %left.participant.id, %room, participants = left.participants.len(), reason = reason.as_str(), "left");
                if left.room_removed {
                    tracing::info!(%room, "room removed (empty)");
                }
                app.metrics.left();
            }
        }
        Event::Said(said) => {
            let members = members(ns, &said.room_id);
            emit_each(app, members, "new-message", &said.message);
            if from_here {
                app.metrics.chat_message();
            }
        }
        Event::Updated { updated, change } => {
            let members = members(ns, &updated.room_id);
            tell_change(
                app,
                &members,
                &updated.room_id,
                &updated.participant,
                *change,
            );
            if from_here && let Change::Connection { reconnecting } = *change {
                let state = if reconnecting {
                    "reconnecting"
                } else {
                    "reconnected"
                };
                tracing::info!(socket = %updated.participant.id, room = %updated.room_id, "participant {state}");
            }
            emit_each(app, members, "participants-updated", &updated.participants);
        }
        Event::Closed {
            room_id,
            participants,
            ended_by,
        } => {
            for p in participants.iter() {
                negotiation::left(app, room_id, &p.id);
                if let Some(member) = local(ns, &p.id) {
                    match ended_by {
                        // The host is answered by its ack.
                        Some(host) if *host == p.id => {}
                        Some(host) => {
                            let ended = RoomEnded {
                                room_id,
                                by_id: host,
                            };
                            emit_each(app, [member.clone()], "room-ended", &ended);
                            tell(app, &member, "room_closed", "The host ended this room");
                        }
                        None => tell(
                            app,
                            &member,
                            "room_closed",
                            "This room was closed by an operator",
                        ),
                    }
                    member.leave(channel(room_id));
                }
                if from_here {
                    app.metrics.left();
                }
            }
            if from_here {
                let by = if ended_by.is_some() {
                    "host"
                } else {
                    "operator"
                };
                tracing::info!(room = %room_id, participants = participants.len(), by, "room closed");
            }
        }
        Event::Relay(relay) => {
            if let Some(target) = local(ns, &relay.target) {
                deliver_relay(app, target, relay);
            }
        }
        Event::Kick { socket } => {
            if let Some(kicked) = local(ns, socket) {
                dismiss(app, &kicked, LeaveReason::Kicked);
            }
        }
        Event::Toggled {
            room_id,
            participant,
            change,
        } => tell_change(app, &members(ns, room_id), room_id, participant, *change),
        Event::PermissionChanged {
            target,
            permission,
            allowed,
            by,
            ..
        } => {
            if let Some(target) = local(ns, target) {
                let changed = PermissionChanged {
                    participant_id: target.id.as_str(),
                    kind: *permission,
                    allowed: *allowed,
                    by_id: &by.id,
                    by_name: &by.name,
                };
                emit_each(app, [target.clone()], "permission-changed", &changed);
            }
        }
        Event::Listed {
            room_id,
            participants,
        } => emit_each(
            app,
            members(ns, room_id),
            "participants-updated",
            participants,
        ),
        Event::HostChanged {
            room_id,
            host,
            previous,
        } => {
            let changed = HostChanged {
                room_id,
                host_id: host,
                previous_host_id: previous,
            };
            emit_each(app, members(ns, room_id), "host-changed", &changed);
            if from_here {
                tracing::info!(room = %room_id, %host, %previous, "host transferred");
            }
        }
        Event::Kicked {
            room_id,
            socket,
            by,
            reason,
        } => {
            if let Some(kicked) = local(ns, socket) {
                let notice = Kicked {
                    room_id,
                    by_id: &by.id,
                    by_name: &by.name,
                    reason: reason.as_deref(),
                };
                emit_each(app, [kicked], "kicked", &notice);
            }
        }
        Event::FlagChanged {
            room_id,
            flag,
            on,
            by,
        } => {
            let members = members(ns, room_id);
            match flag {
                RoomFlag::Lock => {
                    let changed = LockChanged {
                        room_id,
                        locked: *on,
                        by_id: by,
                    };
                    emit_each(app, members, "room-lock-changed", &changed);
                }
                RoomFlag::Lobby => {
                    let changed = LobbyChanged {
                        room_id,
                        enabled: *on,
                        by_id: by,
                    };
                    emit_each(app, members, "lobby-changed", &changed);
                }
            }
        }
        Event::Waiting { room_id, socket } => {
            if let Some(waiter) = local(ns, socket) {
                emit_each(app, [waiter], "waiting-for-admission", &RoomRef { room_id });
            }
        }
        Event::AdmissionRequested { host, waiter, .. } => {
            if let Some(host) = local(ns, host) {
                emit_each(app, [host], "admission-requested", waiter);
            }
        }
        Event::AdmissionCancelled { host, waiter, .. } => {
            if let Some(host) = local(ns, host) {
                let gone = ParticipantRef {
                    participant_id: waiter,
                };
                emit_each(app, [host], "admission-cancelled", &gone);
            }
        }
        Event::Denied {
            room_id,
            socket,
            cause,
        } => {
            if let Some(waiter) = local(ns, socket) {
                let (code, message) = refusal(room_id, cause);
                let error = ServerError {
                    message: &message,
                    code: code.as_str(),
                    event: Some("join-room"),
                };
                emit_each(app, [waiter], "error", &error);
            }
        }
        // Nobody is in a room as it opens or once it is removed: for webhooks only.
        Event::RoomOpened { .. } | Event::RoomRemoved { .. } => {}
    }
}

/// A participant's media changed (its own change, or the host's doing): the toggled events
/// to the others among `members`.
fn tell_change(
    app: &AppState,
    members: &[SocketRef],
    room_id: &str,
    me: &ParticipantView,
    change: Change,
) {
    let others = || members.iter().filter(|s| s.id.as_str() != &*me.id).cloned();
    match change {
        Change::Media { kind, enabled } => {
            match kind {
                MediaKind::Audio => emit_each(
                    app,
                    others(),
                    "participant-audio-toggled",
                    &AudioToggled::new(me),
                ),
                MediaKind::Video => emit_each(
                    app,
                    others(),
                    "participant-video-toggled",
                    &VideoToggled::new(me),
                ),
            }
            let toggled = MediaToggled {
                participant_id: &me.id,
                participant_name: &me.user_name,
                kind,
                enabled,
            };
            emit_each(app, others(), "media-toggled", &toggled);
        }
        Change::ScreenShare { sharing } => {
            let event = if sharing {
                "user-started-screen-share"
            } else {
                "user-stopped-screen-share"
            };
            let who = ParticipantRef {
                participant_id: &me.id,
            };
            emit_each(app, others(), event, &who);
        }
        // Followed, as every change, by the list, where its `connection` shows.
        Change::Connection { reconnecting } => {
            let event = if reconnecting {
                "participant-reconnecting"
            } else {
                "participant-reconnected"
            };
            let who = ConnectionChanged {
                participant_id: &me.id,
                room_id,
            };
            emit_each(app, others(), event, &who);
        }
    }
}

/// The `error` a waiter gets when its request to join ends without admission.
fn refusal(room_id: &str, cause: &DenyCause) -> (ErrorCode, String) {
    match cause {
        DenyCause::Denied { reason: None } => (
            ErrorCode::AdmissionDenied,
            format!("The host did not admit you to room {room_id}"),
        ),
        DenyCause::Denied {
            reason: Some(reason),
        } => (
            ErrorCode::AdmissionDenied,
            format!("The host did not admit you to room {room_id}: {reason}"),
        ),
        DenyCause::RoomEmptied => (
            ErrorCode::AdmissionDenied,
            format!("Everyone left room {room_id} before you were admitted; join again"),
        ),
        DenyCause::RoomEnded => (
            ErrorCode::AdmissionDenied,
            format!("Room {room_id} was closed before you were admitted"),
        ),
        DenyCause::RoomFull => (
            ErrorCode::RoomFull,
            format!("Room {room_id} is full; you were not admitted"),
        ),
    }
}

/// What a participant taken out by the server gets: a kicked one is told, then disconnected;
/// an evicted one is disconnected.
fn dismiss(app: &AppState, socket: &SocketRef, reason: LeaveReason) {
    match reason {
        LeaveReason::Kicked => {
            tell(app, socket, "kicked", "You were removed by an operator");
            tracing::info!(socket = %socket.id, "participant removed by operator");
            socket.clone().disconnect().ok();
        }
        LeaveReason::HostKicked => {
            tell(
                app,
                socket,
                "kicked",
                "You were removed from the room by its host",
            );
            tracing::info!(socket = %socket.id, "participant removed by the host");
            socket.clone().disconnect().ok();
        }
        LeaveReason::Evicted => {
            socket.clone().disconnect().ok();
        }
        _ => {}
    }
}

/// An `error` event no client event caused.
fn tell(app: &AppState, socket: &SocketRef, code: &str, message: &str) {
    let error = ServerError {
        message,
        code,
        event: None,
    };
    emit_each(app, [socket.clone()], "error", &error);
}
