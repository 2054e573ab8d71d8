//! The JSON the Redis registry's scripts store, answer and publish, and its conversion into
//! the registry's outcomes and events. Anything that does not read back is an error
//! ([`StoreUnavailable`]), never a panic.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

use crate::model::{
    ChatMessage, Connection, MediaKind, Participant, ParticipantView, Permission, RoomState,
    Timestamp,
};
use crate::protocol::{ErrorCode, ProtocolError, RelayKind};
use crate::registry::error::StoreUnavailable;
use crate::registry::events::{
    Actor, Batch, Change, DenyCause, Event, LeaveReason, Origin, Relay, RoomFlag,
};
use crate::registry::outcome::{Joined, Left, RoomSummary, Said, Updated};

/// A participant as stored in `{p}:people:<id>`: the registry's [`Participant`] plus the
/// instance that holds its socket.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Stored {
    pub(super) id: String,
    pub(super) user_name: String,
    #[serde(default)]
    pub(super) avatar: Option<String>,
    pub(super) joined_at: String,
    pub(super) audio_muted: bool,
    pub(super) video_off: bool,
    pub(super) screen_sharing: bool,
    /// Permissions (stored before host moderation existed: allowed).
    #[serde(default = "allowed")]
    pub(super) can_use_mic: bool,
    #[serde(default = "allowed")]
    pub(super) can_use_camera: bool,
    #[serde(default = "allowed")]
    pub(super) can_share_screen: bool,
    #[serde(default)]
    pub(super) instance: Option<String>,
    /// Only while connection state recovery is on (absent, the participant carries none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) connection: Option<Connection>,
}

fn allowed() -> bool {
    true
}

impl Stored {
    pub(super) fn participant(&self) -> Result<Participant, StoreUnavailable> {
        Ok(Participant {
            id: self.id.as_str().into(),
            user_name: self.user_name.as_str().into(),
            avatar: self.avatar.as_deref().map(Into::into),
            joined_at: timestamp(&self.joined_at)?,
            audio_muted: self.audio_muted,
            video_off: self.video_off,
            screen_sharing: self.screen_sharing,
            connection: self.connection,
            can_use_mic: self.can_use_mic,
            can_use_camera: self.can_use_camera,
            can_share_screen: self.can_share_screen,
        })
    }
}

/// A room's moderation state as the scripts describe it (`room_state` in common.lua).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RoomStateWire {
    #[serde(default)]
    pub(super) host_id: Option<String>,
    pub(super) locked: bool,
    pub(super) lobby: bool,
    pub(super) has_password: bool,
}

impl RoomStateWire {
    fn state(&self) -> RoomState {
        RoomState {
            host_id: self.host_id.as_deref().map(Into::into),
            locked: self.locked,
            lobby: self.lobby,
            has_password: self.has_password,
        }
    }
}

/// A chat message as stored in `{p}:chat:<id>`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct StoredMessage {
    pub(super) id: String,
    pub(super) sender_id: String,
    pub(super) user_name: String,
    pub(super) message: String,
    pub(super) timestamp: String,
    #[serde(default)]
    pub(super) user_avatar: Option<String>,
}

impl StoredMessage {
    pub(super) fn message(&self) -> Result<Arc<ChatMessage>, StoreUnavailable> {
        Ok(Arc::new(ChatMessage::new(
            self.id.as_str().into(),
            self.sender_id.as_str().into(),
            self.user_name.as_str().into(),
            self.message.as_str().into(),
            timestamp(&self.timestamp)?,
            self.user_avatar.as_deref().map(Into::into),
        )))
    }
}

/// The fields of a published chat message, borrowed from its JSON where they can be.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SaidFields<'a> {
    #[serde(borrow)]
    id: Cow<'a, str>,
    #[serde(borrow)]
    sender_id: Cow<'a, str>,
    #[serde(borrow)]
    user_name: Cow<'a, str>,
    #[serde(borrow)]
    message: Cow<'a, str>,
    #[serde(borrow)]
    timestamp: Cow<'a, str>,
    #[serde(borrow, default)]
    user_avatar: Option<Cow<'a, str>>,
}

/// A published chat message, with the JSON it was published as for its wire form: not
/// serialized again, as every instance reads every published message.
fn said_message(json: Box<RawValue>) -> Result<Arc<ChatMessage>, StoreUnavailable> {
    let json: Arc<RawValue> = json.into();
    let fields: SaidFields<'_> = serde_json::from_str(json.get())
        .map_err(|e| malformed(format!("{e} in a chat message {:.200}", json.get())))?;
    Ok(Arc::new(ChatMessage::with_json(
        (*fields.id).into(),
        (*fields.sender_id).into(),
        (*fields.user_name).into(),
        (*fields.message).into(),
        timestamp(&fields.timestamp)?,
        fields.user_avatar.as_deref().map(Into::into),
        json.clone(),
    )))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct JoinedWire {
    pub(super) room_id: String,
    pub(super) participants: Vec<Stored>,
    pub(super) messages: Vec<StoredMessage>,
    pub(super) created_room: bool,
    pub(super) room: RoomStateWire,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct LeftWire {
    pub(super) room_id: String,
    pub(super) participant: Stored,
    pub(super) participants: Vec<Stored>,
    #[serde(default)]
    pub(super) host: Option<String>,
    #[serde(default)]
    pub(super) new_host: Option<String>,
    pub(super) room_removed: bool,
}

impl LeftWire {
    pub(super) fn left(&self) -> Result<Left, StoreUnavailable> {
        Ok(Left {
            room_id: self.room_id.as_str().into(),
            participant: self.participant.participant()?,
            participants: views(&self.participants, self.host.as_deref())?,
            room_removed: self.room_removed,
            new_host: self.new_host.as_deref().map(Into::into),
        })
    }
}

/// A room as `room.lua` and `summaries.lua` describe it.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RoomWire {
    pub(super) room_id: String,
    pub(super) created_at: String,
    pub(super) participant_count: usize,
    pub(super) message_count: usize,
    #[serde(default)]
    pub(super) has_password: bool,
    #[serde(default)]
    pub(super) host_id: Option<String>,
    #[serde(default)]
    pub(super) host: Option<Stored>,
    #[serde(default)]
    pub(super) participants: Vec<Stored>,
}

impl RoomWire {
    pub(super) fn summary(&self) -> Result<RoomSummary, StoreUnavailable> {
        let listed = self
            .participants
            .iter()
            .find(|p| Some(p.id.as_str()) == self.host_id.as_deref());
        let host = match self.host.as_ref().or(listed) {
            Some(host) => Some(host.participant()?.view(true)),
            None => None,
        };
        Ok(RoomSummary {
            room_id: self.room_id.as_str().into(),
            created_at: timestamp(&self.created_at)?,
            participant_count: self.participant_count,
            host,
            message_count: self.message_count,
        })
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(super) enum CreateReply {
    Created,
    Taken,
    TooManyRooms,
    TooManyForAddress,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(super) enum JoinReply {
    Joined {
        left: Option<LeftWire>,
        joined: JoinedWire,
    },
    AlreadyIn {
        joined: JoinedWire,
    },
    /// The lobby holds the joiner until the host admits it.
    Waiting {
        left: Option<LeftWire>,
        #[serde(rename = "roomId")]
        room_id: String,
    },
    AlreadyWaiting {
        #[serde(rename = "roomId")]
        room_id: String,
    },
    /// A password room: check the joiner's password against `hash`, then ask again with it.
    Password {
        hash: String,
    },
    RoomLocked,
    RoomFull,
    LobbyFull,
    TooManyRooms,
    TooManyForAddress,
    NeedsNewRoom,
}

/// What every moderation script answers.
#[derive(Debug, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(super) enum ModerateReply {
    Done {
        #[serde(rename = "roomId")]
        room_id: String,
        #[serde(default, rename = "hasPassword")]
        has_password: bool,
    },
    NotInRoom,
    Forbidden,
    TargetNotInRoom,
    NotWaiting,
    RoomFull,
    KickSelf,
    TransferSelf,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(super) enum WithdrawReply {
    Withdrawn {
        #[serde(rename = "roomId")]
        room_id: String,
    },
    None,
    NotInRoom,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(super) enum RelayReply {
    Ok {
        #[serde(rename = "roomId")]
        room_id: String,
    },
    NotInRoom,
    TargetNotInRoom,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(super) enum UpdateReply {
    Updated {
        #[serde(rename = "roomId")]
        room_id: String,
        participants: Vec<Stored>,
        #[serde(default)]
        host: Option<String>,
    },
    NotInRoom,
    Forbidden,
}

/// A reply the registry cannot make sense of, logged; the client is told only that it failed.
pub(super) fn internal(what: impl std::fmt::Display) -> ProtocolError {
    tracing::error!("{what}");
    ProtocolError::new(ErrorCode::Internal, "Internal server error")
}

/// A ticket as a script argument: its number, or empty for none.
pub(super) fn ticket_arg(ticket: Option<u64>) -> String {
    ticket.map(|t| t.to_string()).unwrap_or_default()
}

pub(super) fn malformed(what: impl std::fmt::Display) -> StoreUnavailable {
    StoreUnavailable(format!("malformed reply from the room store: {what}"))
}

/// Reads an ISO timestamp as [`Timestamp::to_iso`] writes it.
pub(super) fn timestamp(iso: &str) -> Result<Timestamp, StoreUnavailable> {
    DateTime::parse_from_rfc3339(iso)
        .map(|t| Timestamp(t.with_timezone(&Utc)))
        .map_err(|e| malformed(format!("timestamp {iso:?}: {e}")))
}

pub(super) fn parse<T: DeserializeOwned>(reply: &str) -> Result<T, StoreUnavailable> {
    serde_json::from_str(reply).map_err(|e| malformed(format!("{e} in {reply:.200}")))
}

/// Wire views in join order; `host` is the admin.
pub(super) fn views(
    stored: &[Stored],
    host: Option<&str>,
) -> Result<Vec<ParticipantView>, StoreUnavailable> {
    stored
        .iter()
        .map(|p| Ok(p.participant()?.view(Some(p.id.as_str()) == host)))
        .collect()
}

/// The view of `socket` among `participants`; its absence means the store is inconsistent.
pub(super) fn view_of(
    socket: &str,
    stored: &[Stored],
    participants: &[ParticipantView],
) -> Result<ParticipantView, StoreUnavailable> {
    stored
        .iter()
        .position(|p| p.id == socket)
        .and_then(|i| participants.get(i))
        .cloned()
        .ok_or_else(|| malformed(format!("{socket} missing from its room")))
}

pub(super) fn joined(socket: &str, wire: &JoinedWire) -> Result<Joined, StoreUnavailable> {
    let participants = views(&wire.participants, wire.room.host_id.as_deref())?;
    Ok(Joined {
        room_id: wire.room_id.as_str().into(),
        me: view_of(socket, &wire.participants, &participants)?,
        messages: wire
            .messages
            .iter()
            .map(StoredMessage::message)
            .collect::<Result<_, _>>()?,
        participants,
        created_room: wire.created_room,
        room: wire.room.state(),
    })
}

#[derive(Debug, Deserialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub(super) enum ConnectionReply {
    Updated {
        #[serde(rename = "roomId")]
        room_id: String,
        participants: Vec<Stored>,
        #[serde(default)]
        host: Option<String>,
    },
    NotInRoom,
    Unchanged,
}

/// What changed about a participant, as `update.lua` and `connection.lua` publish it.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) enum ChangeWire {
    Audio(bool),
    Video(bool),
    ScreenShare(bool),
    Reconnecting(bool),
}

impl From<Change> for ChangeWire {
    fn from(change: Change) -> Self {
        match change {
            Change::Media {
                kind: MediaKind::Audio,
                enabled,
            } => Self::Audio(enabled),
            Change::Media {
                kind: MediaKind::Video,
                enabled,
            } => Self::Video(enabled),
            Change::ScreenShare { sharing } => Self::ScreenShare(sharing),
            Change::Connection { reconnecting } => Self::Reconnecting(reconnecting),
        }
    }
}

impl From<ChangeWire> for Change {
    fn from(wire: ChangeWire) -> Self {
        match wire {
            ChangeWire::Audio(enabled) => Change::Media {
                kind: MediaKind::Audio,
                enabled,
            },
            ChangeWire::Video(enabled) => Change::Media {
                kind: MediaKind::Video,
                enabled,
            },
            ChangeWire::ScreenShare(sharing) => Change::ScreenShare { sharing },
            ChangeWire::Reconnecting(reconnecting) => Change::Connection { reconnecting },
        }
    }
}

#[derive(Debug, Deserialize)]
struct BatchWire<'a> {
    origin: OriginWire,
    /// Kept raw, then read by their tag: an internally tagged enum would buffer each event,
    /// and a relay's body must stay the sender's very bytes.
    #[serde(borrow)]
    events: Vec<&'a RawValue>,
    /// The webhook owner of the batch's room (`publish_room` in `common.lua`).
    #[serde(default)]
    hooks: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Tag<'a> {
    t: &'a str,
}

#[derive(Debug, Deserialize)]
struct OriginWire {
    instance: String,
    ticket: Option<u64>,
}

/// An event as the scripts publish it (`common.lua` and the scripts that change rooms), by
/// its tag `t`.
#[derive(Debug)]
enum EventWire {
    Welcome(WelcomeWire),
    Joined(JoinedEventWire),
    Left(LeftEventWire),
    Said(SaidWire),
    Updated(UpdatedWire),
    Closed(ClosedWire),
    Relay(RelayWire),
    Toggled(ToggledWire),
    Permission(PermissionWire),
    List(ListWire),
    Host(HostWire),
    Kicked(KickedWire),
    Flag(FlagWire),
    Waiting(WaitingWire),
    Knock(KnockWire),
    Cancelled(CancelledWire),
    Denied(DeniedWire),
    Opened(RoomLifeWire),
    Removed(RoomLifeWire),
}

#[derive(Debug, Deserialize)]
struct WelcomeWire {
    socket: String,
    joined: JoinedWire,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct JoinedEventWire {
    room_id: String,
    socket: String,
    participants: Vec<Stored>,
    room: RoomStateWire,
}

#[derive(Debug, Deserialize)]
struct LeftEventWire {
    reason: String,
    left: LeftWire,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct SaidWire {
    room_id: String,
    message: Box<RawValue>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct UpdatedWire {
    room_id: String,
    socket: String,
    participants: Vec<Stored>,
    #[serde(default)]
    host: Option<String>,
    change: ChangeWire,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClosedWire {
    room_id: String,
    participants: Vec<Stored>,
    #[serde(default)]
    ended_by: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToggledWire {
    room_id: String,
    participant: Stored,
    #[serde(default)]
    host: Option<String>,
    change: ChangeWire,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct PermissionWire {
    room_id: String,
    socket: String,
    permission: String,
    allowed: bool,
    by_id: String,
    by_name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListWire {
    room_id: String,
    participants: Vec<Stored>,
    #[serde(default)]
    host: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct HostWire {
    room_id: String,
    host: String,
    previous: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KickedWire {
    room_id: String,
    socket: String,
    by_id: String,
    by_name: String,
    #[serde(default)]
    reason: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct FlagWire {
    room_id: String,
    flag: String,
    on: bool,
    by_id: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct WaitingWire {
    room_id: String,
    socket: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct KnockWire {
    room_id: String,
    host: String,
    waiter: Stored,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct CancelledWire {
    room_id: String,
    host: String,
    socket: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct DeniedWire {
    room_id: String,
    socket: String,
    cause: String,
    #[serde(default)]
    reason: Option<String>,
}

/// A room's opening or removal.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RoomLifeWire {
    room_id: String,
    created_at: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RelayWire {
    room_id: String,
    sender: String,
    target: String,
    kind: String,
    body: Box<RawValue>,
}

/// The tag of an event that starts with it, as the scripts write every event
/// (`{"t":"said",…`), read without a pass over the whole event; `None` for any other shape
/// (the event is then parsed for its tag).
fn leading_tag(event: &str) -> Option<&str> {
    let rest = event.strip_prefix(r#"{"t":""#)?;
    let tag = &rest[..rest.find('"')?];
    (!tag.contains('\\')).then_some(tag)
}

impl EventWire {
    fn read(raw: &RawValue) -> Result<Self, StoreUnavailable> {
        fn of<T: DeserializeOwned>(raw: &RawValue) -> Result<T, StoreUnavailable> {
            parse(raw.get())
        }
        let tag = match leading_tag(raw.get()) {
            Some(tag) => tag,
            None => {
                serde_json::from_str::<Tag>(raw.get())
                    .map_err(|e| malformed(format!("{e}: an event without its tag")))?
                    .t
            }
        };
        Ok(match tag {
            "welcome" => Self::Welcome(of(raw)?),
            "joined" => Self::Joined(of(raw)?),
            "left" => Self::Left(of(raw)?),
            "said" => Self::Said(of(raw)?),
            "updated" => Self::Updated(of(raw)?),
            "closed" => Self::Closed(of(raw)?),
            "relay" => Self::Relay(of(raw)?),
            "toggled" => Self::Toggled(of(raw)?),
            "permission" => Self::Permission(of(raw)?),
            "list" => Self::List(of(raw)?),
            "host" => Self::Host(of(raw)?),
            "kicked" => Self::Kicked(of(raw)?),
            "flag" => Self::Flag(of(raw)?),
            "waiting" => Self::Waiting(of(raw)?),
            "knock" => Self::Knock(of(raw)?),
            "cancelled" => Self::Cancelled(of(raw)?),
            "denied" => Self::Denied(of(raw)?),
            "opened" => Self::Opened(of(raw)?),
            "removed" => Self::Removed(of(raw)?),
            other => return Err(malformed(format!("event {other:?}"))),
        })
    }

    fn event(self) -> Result<Event, StoreUnavailable> {
        Ok(match self {
            Self::Welcome(WelcomeWire { socket, joined: j }) => {
                Event::Welcome(Arc::new(joined(&socket, &j)?))
            }
            Self::Joined(JoinedEventWire {
                room_id,
                socket,
                participants: stored,
                room,
            }) => {
                let participants = views(&stored, room.host_id.as_deref())?;
                Event::Joined(Arc::new(Joined {
                    room_id: room_id.into(),
                    me: view_of(&socket, &stored, &participants)?,
                    participants,
                    messages: Vec::new(),
                    created_room: false,
                    room: room.state(),
                }))
            }
            Self::Left(LeftEventWire { reason, left }) => Event::Left {
                left: Arc::new(left.left()?),
                reason: LeaveReason::parse(&reason)
                    .ok_or_else(|| malformed(format!("leave reason {reason:?}")))?,
            },
            Self::Said(SaidWire { room_id, message }) => Event::Said(Said {
                room_id: room_id.into(),
                message: said_message(message)?,
            }),
            Self::Updated(UpdatedWire {
                room_id,
                socket,
                participants: stored,
                host,
                change,
            }) => {
                let participants = views(&stored, host.as_deref())?;
                Event::Updated {
                    updated: Arc::new(Updated {
                        room_id: room_id.into(),
                        participant: view_of(&socket, &stored, &participants)?,
                        participants,
                    }),
                    change: change.into(),
                }
            }
            Self::Closed(ClosedWire {
                room_id,
                participants,
                ended_by,
            }) => Event::Closed {
                room_id: room_id.into(),
                participants: participants
                    .iter()
                    .map(Stored::participant)
                    .collect::<Result<Vec<_>, _>>()?
                    .into(),
                ended_by: ended_by.map(Into::into),
            },
            Self::Toggled(ToggledWire {
                room_id,
                participant,
                host,
                change,
            }) => Event::Toggled {
                room_id: room_id.into(),
                participant: participant
                    .participant()?
                    .view(host.as_deref() == Some(participant.id.as_str())),
                change: change.into(),
            },
            Self::Permission(PermissionWire {
                room_id,
                socket,
                permission,
                allowed,
                by_id,
                by_name,
            }) => Event::PermissionChanged {
                room_id: room_id.into(),
                target: socket.into(),
                permission: Permission::parse(&permission)
                    .ok_or_else(|| malformed(format!("permission {permission:?}")))?,
                allowed,
                by: Actor {
                    id: by_id.into(),
                    name: by_name.into(),
                },
            },
            Self::List(ListWire {
                room_id,
                participants,
                host,
            }) => Event::Listed {
                room_id: room_id.into(),
                participants: views(&participants, host.as_deref())?,
            },
            Self::Host(HostWire {
                room_id,
                host,
                previous,
            }) => Event::HostChanged {
                room_id: room_id.into(),
                host: host.into(),
                previous: previous.into(),
            },
            Self::Kicked(KickedWire {
                room_id,
                socket,
                by_id,
                by_name,
                reason,
            }) => Event::Kicked {
                room_id: room_id.into(),
                socket: socket.into(),
                by: Actor {
                    id: by_id.into(),
                    name: by_name.into(),
                },
                reason: reason.map(Into::into),
            },
            Self::Flag(FlagWire {
                room_id,
                flag,
                on,
                by_id,
            }) => Event::FlagChanged {
                room_id: room_id.into(),
                flag: RoomFlag::parse(&flag).ok_or_else(|| malformed(format!("flag {flag:?}")))?,
                on,
                by: by_id.into(),
            },
            Self::Waiting(WaitingWire { room_id, socket }) => Event::Waiting {
                room_id: room_id.into(),
                socket: socket.into(),
            },
            Self::Knock(KnockWire {
                room_id,
                host,
                waiter,
            }) => Event::AdmissionRequested {
                room_id: room_id.into(),
                host: host.into(),
                waiter: waiter.participant()?.as_waiter(),
            },
            Self::Cancelled(CancelledWire {
                room_id,
                host,
                socket,
            }) => Event::AdmissionCancelled {
                room_id: room_id.into(),
                host: host.into(),
                waiter: socket.into(),
            },
            Self::Denied(DeniedWire {
                room_id,
                socket,
                cause,
                reason,
            }) => Event::Denied {
                room_id: room_id.into(),
                socket: socket.into(),
                cause: DenyCause::parse(&cause, reason.map(Into::into))
                    .ok_or_else(|| malformed(format!("deny cause {cause:?}")))?,
            },
            Self::Relay(RelayWire {
                room_id,
                sender,
                target,
                kind,
                body,
            }) => {
                let kind = RelayKind::from_client_event(&kind)
                    .ok_or_else(|| malformed(format!("relay kind {kind:?}")))?;
                Event::Relay(Arc::new(Relay {
                    room_id: room_id.into(),
                    sender: sender.into(),
                    target: target.into(),
                    kind,
                    body: (kind != RelayKind::ConnectionRequest).then_some(body),
                }))
            }
            Self::Opened(RoomLifeWire {
                room_id,
                created_at,
            }) => Event::RoomOpened {
                room_id: room_id.into(),
                created_at: timestamp(&created_at)?,
            },
            Self::Removed(RoomLifeWire {
                room_id,
                created_at,
            }) => Event::RoomRemoved {
                room_id: room_id.into(),
                created_at: timestamp(&created_at)?,
            },
        })
    }
}

/// A published message, read back: one batch, or an array of them (`chat.lua` publishes a
/// batch of messages as one array), in order.
pub fn decode_published(message: &[u8]) -> Result<Vec<Batch>, StoreUnavailable> {
    let many = message
        .iter()
        .find(|b| !b.is_ascii_whitespace())
        .is_some_and(|b| *b == b'[');
    if many {
        let wires: Vec<BatchWire> = serde_json::from_slice(message)
            .map_err(|e| malformed(format!("{e} in published batches")))?;
        wires.into_iter().map(BatchWire::batch).collect()
    } else {
        decode_batch(message).map(|batch| vec![batch])
    }
}

/// A published batch, read back.
pub fn decode_batch(message: &[u8]) -> Result<Batch, StoreUnavailable> {
    let wire: BatchWire = serde_json::from_slice(message)
        .map_err(|e| malformed(format!("{e} in a published batch")))?;
    wire.batch()
}

impl BatchWire<'_> {
    fn batch(self) -> Result<Batch, StoreUnavailable> {
        Ok(Batch {
            origin: Origin {
                instance: self.origin.instance.into(),
                ticket: self.origin.ticket,
            },
            events: self
                .events
                .into_iter()
                .map(|raw| EventWire::read(raw)?.event())
                .collect::<Result<_, _>>()?,
            hooks: self.hooks.map(Into::into),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_published_relay_keeps_its_body_byte_for_byte() {
        let body = r#"{"z":1.0,"type":"offer","a":1e3}"#;
        let message = format!(
            r#"{{"origin":{{"instance":"i","ticket":null}},"events":[{{"t":"relay","roomId":"R","sender":"a","target":"b","kind":"webrtc-offer","body":{body}}}]}}"#
        );
        let batch = decode_batch(message.as_bytes()).unwrap();
        assert_eq!(&*batch.origin.instance, "i");
        let Event::Relay(relay) = &batch.events[0] else {
            panic!("a relay: {batch:?}")
        };
        assert_eq!(relay.kind, RelayKind::Offer);
        assert_eq!(relay.body.as_deref().map(RawValue::get), Some(body));
    }

    #[test]
    fn a_published_connection_change_reads_back() {
        let me = r#"{"id":"a","userName":"Ann","joinedAt":"2026-01-01T00:00:00.000Z","audioMuted":false,"videoOff":false,"screenSharing":false,"connection":"reconnecting"}"#;
        let message = format!(
            r#"{{"origin":{{"instance":"i","ticket":3}},"events":[{{"t":"updated","roomId":"R","socket":"a","participants":[{me}],"change":{{"reconnecting":true}}}}]}}"#
        );
        let batch = decode_batch(message.as_bytes()).unwrap();
        let Event::Updated { updated, change } = &batch.events[0] else {
            panic!("an update: {batch:?}")
        };
        assert_eq!(*change, Change::Connection { reconnecting: true });
        assert_eq!(
            updated.participant.connection,
            Some(Connection::Reconnecting)
        );
        let wire = serde_json::to_string(&ChangeWire::from(Change::Connection {
            reconnecting: false,
        }))
        .unwrap();
        assert_eq!(wire, r#"{"reconnecting":false}"#);
    }

    #[test]
    fn unknown_or_broken_events_are_errors() {
        for message in [
            r#"{"origin":{"instance":"i","ticket":1},"events":[{"t":"exploded"}]}"#,
            r#"{"origin":{"instance":"i","ticket":1},"events":[{"no":"tag"}]}"#,
            r#"{"origin":{"instance":"i","ticket":1},"events":[{"t":"left","reason":"bored","left":{}}]}"#,
            r#"not json"#,
        ] {
            assert!(decode_batch(message.as_bytes()).is_err(), "{message}");
        }
    }

    #[test]
    fn a_published_chat_message_is_emitted_as_it_was_stored() {
        let stored = r#"{"id":"m1","senderId":"a","message":"h\u00e9 \"you\"","timestamp":"2026-01-01T00:00:00.000Z","userName":"Ann","userAvatar":"😀"}"#;
        let message = format!(
            r#"[{{"origin":{{"instance":"i","ticket":4}},"events":[{{"t":"said","roomId":"R","message":{stored}}}]}}]"#
        );
        let batches = decode_published(message.as_bytes()).unwrap();
        let Event::Said(said) = &batches[0].events[0] else {
            panic!("a chat message: {batches:?}")
        };
        assert_eq!(&*said.room_id, "R");
        let m = &said.message;
        assert_eq!(&*m.message, "hé \"you\"");
        assert_eq!(
            (&*m.user_name, m.user_avatar.as_deref()),
            ("Ann", Some("😀"))
        );
        assert_eq!(m.size(), stored.len());
        assert_eq!(serde_json::to_string(&**m).unwrap(), stored);
    }

    #[test]
    fn an_event_is_read_by_its_tag_whatever_the_order_of_its_fields() {
        assert_eq!(leading_tag(r#"{"t":"said","roomId":"R"}"#), Some("said"));
        assert_eq!(leading_tag(r#"{"roomId":"R","t":"said"}"#), None);
        assert_eq!(leading_tag(r#"{"t":"sa\"id"}"#), None);
        let message = r#"{"origin":{"instance":"i","ticket":null},"events":[{"roomId":"R","createdAt":"2026-01-01T00:00:00.000Z","t":"opened"}]}"#;
        let batch = decode_batch(message.as_bytes()).unwrap();
        assert!(
            matches!(batch.events[0], Event::RoomOpened { .. }),
            "{batch:?}"
        );
    }
}
