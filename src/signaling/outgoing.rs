//! The payloads the server emits, field for field as PROTOCOL.md spells them (both spellings
//! of every aliased field). Built from the registry's outcomes; serialized once per emit.

use std::sync::Arc;

use serde::Serialize;
use serde_json::value::RawValue;

use crate::ice::IceServer;
use crate::model::{ChatMessage, MediaKind, ParticipantView, Permission, RoomState};
use crate::protocol::RelayKind;
use crate::registry::events::Relay;
use crate::registry::{Joined, Left};
use crate::state::AppState;

/// `joined-room` (and the successful `join-room` ack).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct JoinedRoom<'a> {
    room_id: &'a str,
    participant_id: &'a str,
    participant: &'a ParticipantView,
    participants: &'a [ParticipantView],
    messages: &'a [Arc<ChatMessage>],
    /// STUN/TURN servers issued for this participant (frontends that ignore it are unaffected).
    ice_servers: Vec<IceServer>,
    /// The host and the room's moderation state.
    room: &'a RoomState,
}

impl<'a> JoinedRoom<'a> {
    pub fn new(j: &'a Joined, app: &AppState) -> Self {
        Self {
            room_id: &j.room_id,
            participant_id: &j.me.id,
            participant: &j.me,
            participants: &j.participants,
            messages: &j.messages,
            ice_servers: app.config.ice.issue(&j.me.id).ice_servers,
            room: &j.room,
        }
    }
}

/// `user-joined`: the new participant, plus the same object nested, so every reader finds it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserJoined<'a> {
    #[serde(flatten)]
    flat: &'a ParticipantView,
    participant_id: &'a str,
    participant: &'a ParticipantView,
}

impl<'a> UserJoined<'a> {
    pub fn new(p: &'a ParticipantView) -> Self {
        Self {
            flat: p,
            participant_id: &p.id,
            participant: p,
        }
    }
}

/// `user-left`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct UserLeft<'a> {
    participant_id: &'a str,
    user_name: &'a str,
}

impl<'a> UserLeft<'a> {
    pub fn new(left: &'a Left) -> Self {
        Self {
            participant_id: &left.participant.id,
            user_name: &left.participant.user_name,
        }
    }
}

/// `left-room`, and the `leave-room` ack.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomRef<'a> {
    pub room_id: &'a str,
}

/// `participant-audio-toggled`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AudioToggled<'a> {
    participant_id: &'a str,
    is_audio_muted: bool,
    is_audio_enabled: bool,
}

impl<'a> AudioToggled<'a> {
    pub fn new(p: &'a ParticipantView) -> Self {
        Self {
            participant_id: &p.id,
            is_audio_muted: p.is_audio_muted,
            is_audio_enabled: p.is_audio_enabled,
        }
    }
}

/// `participant-video-toggled`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct VideoToggled<'a> {
    participant_id: &'a str,
    is_video_off: bool,
    is_video_enabled: bool,
}

impl<'a> VideoToggled<'a> {
    pub fn new(p: &'a ParticipantView) -> Self {
        Self {
            participant_id: &p.id,
            is_video_off: p.is_video_off,
            is_video_enabled: p.is_video_enabled,
        }
    }
}

/// `media-toggled`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MediaToggled<'a> {
    pub participant_id: &'a str,
    pub participant_name: &'a str,
    #[serde(rename = "type")]
    pub kind: MediaKind,
    pub enabled: bool,
}

/// `user-started-screen-share` and `user-stopped-screen-share`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantRef<'a> {
    pub participant_id: &'a str,
}

/// `participant-reconnecting` and `participant-reconnected` (connection state recovery).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionChanged<'a> {
    pub participant_id: &'a str,
    pub room_id: &'a str,
}

/// The ack of a media change: the sender's participant object.
#[derive(Serialize)]
pub struct Changed<'a> {
    pub participant: &'a ParticipantView,
}

/// A relayed offer, answer, ICE candidate or connection request, stamped with the sender's
/// real id.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Relayed<'a> {
    pub sender_id: &'a str,
    pub sender_socket_id: &'a str,
    /// `offer`, `answer` or `candidate` (byte for byte as received), or `roomId`.
    #[serde(flatten)]
    pub body: RelayBody<'a>,
}

impl<'a> Relayed<'a> {
    /// What `relay`'s target receives, stamped with its sender's id; `None` for a relay
    /// missing its body (the decoder refuses those, so never in practice).
    pub fn of(relay: &'a Relay) -> Option<Self> {
        let body = match (relay.kind, relay.body.as_deref()) {
            (RelayKind::Offer, Some(offer)) => RelayBody::Offer(offer),
            (RelayKind::Answer, Some(answer)) => RelayBody::Answer(answer),
            (RelayKind::IceCandidate, Some(candidate)) => RelayBody::Candidate(candidate),
            (RelayKind::ConnectionRequest, _) => RelayBody::RoomId(&relay.room_id),
            _ => return None,
        };
        Some(Self {
            sender_id: &relay.sender,
            sender_socket_id: &relay.sender,
            body,
        })
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub enum RelayBody<'a> {
    Offer(&'a RawValue),
    Answer(&'a RawValue),
    Candidate(&'a RawValue),
    RoomId(&'a str),
}

/// An `error` event no client event caused (`event: null`): an operator's or the server's
/// action on the socket.
#[derive(Serialize)]
pub struct ServerError<'a> {
    pub message: &'a str,
    pub code: &'a str,
    pub event: Option<&'a str>,
}

/// The `join-room` ack of a newcomer the lobby holds: `{ok: true, waiting: true, roomId}`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiting<'a> {
    pub waiting: bool,
    pub room_id: &'a str,
}

/// `permission-changed`, to its target.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PermissionChanged<'a> {
    pub participant_id: &'a str,
    pub kind: Permission,
    pub allowed: bool,
    pub by_id: &'a str,
    pub by_name: &'a str,
}

/// `kicked`, to the participant the host removes.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kicked<'a> {
    pub room_id: &'a str,
    pub by_id: &'a str,
    pub by_name: &'a str,
    pub reason: Option<&'a str>,
}

/// `host-changed`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HostChanged<'a> {
    pub room_id: &'a str,
    pub host_id: &'a str,
    pub previous_host_id: &'a str,
}

/// `room-lock-changed`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LockChanged<'a> {
    pub room_id: &'a str,
    pub locked: bool,
    pub by_id: &'a str,
}

/// `lobby-changed`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LobbyChanged<'a> {
    pub room_id: &'a str,
    pub enabled: bool,
    pub by_id: &'a str,
}

/// `room-ended`, to everyone in the room but its host.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomEnded<'a> {
    pub room_id: &'a str,
    pub by_id: &'a str,
}

/// The ack of a moderation event: `{ok: true, roomId}`, and `hasPassword` after
/// `set-room-password`.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ModerationDone<'a> {
    pub room_id: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub has_password: Option<bool>,
}
