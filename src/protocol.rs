//! Client payloads: decoding of every client → server event of PROTOCOL.md (with its
//! aliases) into typed requests, and the typed errors with machine codes that bad input gets.
//!
//! Decoding is pure: it never touches state, so a payload that fails here changes nothing.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::model::{MediaKind, Permission};
use crate::password::{PASSWORD_MAX, PASSWORD_MIN, RoomPassword};

/// Longest room id (PROTOCOL.md: 1 to 64 characters from `[A-Za-z0-9_-]`).
pub const ROOM_ID_MAX: usize = 64;
/// Longest user name, in characters after trimming.
pub const USER_NAME_MAX: usize = 50;
/// Longest chat message, in characters after trimming.
pub const MESSAGE_MAX: usize = 2000;
/// Longest usable avatar URL.
pub const AVATAR_URL_MAX: usize = 2048;
/// Longest socket id a relay target (or a moderated participant) may have; real ones are
/// far shorter.
const TARGET_ID_MAX: usize = 128;
/// Longest `reason` of a kick or a denied admission, in characters.
pub const REASON_MAX: usize = 500;

/// The machine codes of the `error` event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    InvalidPayload,
    NotInRoom,
    TargetNotInRoom,
    RoomFull,
    RateLimited,
    /// The server holds `MAX_ROOMS` rooms and cannot make another.
    TooManyRooms,
    /// The shared room store (Redis, in cluster mode) cannot be reached; try again shortly.
    Unavailable,
    /// `JWT_SECRET` is set and the join's token is missing or not valid for the room.
    Unauthorized,
    Internal,
    /// Host moderation: only the room's host may do this (or a participant may not do it).
    Forbidden,
    /// The room is locked: only its participants may (re-)join.
    RoomLocked,
    /// The room has a password and the join did not carry it.
    WrongPassword,
    /// The host refused a waiter of the lobby (or the room ended before it was admitted).
    AdmissionDenied,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidPayload => "invalid_payload",
            Self::NotInRoom => "not_in_room",
            Self::TargetNotInRoom => "target_not_in_room",
            Self::RoomFull => "room_full",
            Self::RateLimited => "rate_limited",
            Self::TooManyRooms => "too_many_rooms",
            Self::Unavailable => "unavailable",
            Self::Unauthorized => "unauthorized",
            Self::Internal => "internal",
            Self::Forbidden => "forbidden",
            Self::RoomLocked => "room_locked",
            Self::WrongPassword => "wrong_password",
            Self::AdmissionDenied => "admission_denied",
        }
    }
}

/// A refused client event: a code for programs and a sentence for people.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct ProtocolError {
    pub code: ErrorCode,
    pub message: String,
}

impl ProtocolError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidPayload, message)
    }

    pub fn not_in_room() -> Self {
        Self::new(ErrorCode::NotInRoom, "You are not in that room")
    }

    pub fn target_not_in_room() -> Self {
        Self::new(
            ErrorCode::TargetNotInRoom,
            "The target is not a participant of your room",
        )
    }

    /// A moderation event from someone who is not the room's host.
    pub fn not_host() -> Self {
        Self::new(
            ErrorCode::Forbidden,
            "Only the host of the room may do this",
        )
    }

    /// A media change the host does not allow.
    pub fn not_allowed(permission: Permission) -> Self {
        let what = match permission {
            Permission::Mic => "turn your microphone on",
            Permission::Camera => "turn your camera on",
            Permission::Screen => "share your screen",
        };
        Self::new(
            ErrorCode::Forbidden,
            format!("The host does not allow you to {what}"),
        )
    }

    /// An admission the lobby cannot take: not a pending waiter of the sender's room.
    pub fn not_waiting() -> Self {
        Self::new(
            ErrorCode::TargetNotInRoom,
            "That socket is not waiting to join your room",
        )
    }
}

pub type Decoded<T> = Result<T, ProtocolError>;

/// An event's first argument, parsed; only the relay keeps its argument raw.
fn value_of(payload: &RawValue) -> Decoded<Value> {
    serde_json::from_str(payload.get())
        .map_err(|_| ProtocolError::invalid("The payload is not valid JSON"))
}

/// The room a client named in an event other than `join-room`; `None` means "my current room".
pub type RoomHint = Option<String>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub room_id: String,
    pub user_name: String,
    pub avatar: Option<String>,
    /// The room's password, if the joiner gave one (never printed: see [`RoomPassword`]).
    pub password: Option<RoomPassword>,
    /// The joiner becomes the room's host (a JWT `host` claim); never from the payload.
    pub host: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatRequest {
    pub room: RoomHint,
    pub text: String,
}

/// The four relayed signaling messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RelayKind {
    Offer,
    Answer,
    IceCandidate,
    ConnectionRequest,
}

impl RelayKind {
    /// The event a client sends for this kind.
    pub fn client_event(self) -> &'static str {
        match self {
            Self::Offer => "webrtc-offer",
            Self::Answer => "webrtc-answer",
            Self::IceCandidate => "webrtc-ice-candidate",
            Self::ConnectionRequest => "request-connection",
        }
    }

    pub fn from_client_event(event: &str) -> Option<Self> {
        [
            Self::Offer,
            Self::Answer,
            Self::IceCandidate,
            Self::ConnectionRequest,
        ]
        .into_iter()
        .find(|kind| kind.client_event() == event)
    }

    /// The `kind` label of the relay metric.
    pub fn metric_label(self) -> &'static str {
        match self {
            Self::Offer => "offer",
            Self::Answer => "answer",
            Self::IceCandidate => "ice",
            Self::ConnectionRequest => "connection-request",
        }
    }

    /// The event the target receives.
    pub fn server_event(self) -> &'static str {
        match self {
            Self::ConnectionRequest => "connection-request",
            other => other.client_event(),
        }
    }

    /// The payload field carried through untouched, if any.
    fn body_field(self) -> Option<&'static str> {
        match self {
            Self::Offer => Some("offer"),
            Self::Answer => Some("answer"),
            Self::IceCandidate => Some("candidate"),
            Self::ConnectionRequest => None,
        }
    }
}

#[derive(Debug, Clone)]
pub struct RelayRequest {
    pub room: RoomHint,
    pub target: String,
    pub kind: RelayKind,
    /// The `offer`, `answer` or `candidate` value, byte for byte as received (key order,
    /// number formats, escapes); `None` for a connection request.
    pub body: Option<Box<RawValue>>,
    /// Addressed by `targetId` with `roomId` and no `targetSocketId`, as the public
    /// frontend addresses every relay (the negotiation assist's hint, see `assist`).
    pub frontend_addressing: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MediaChange {
    pub kind: MediaKind,
    pub enabled: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaRequest {
    pub room: RoomHint,
    pub change: MediaChange,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScreenShareRequest {
    pub room: RoomHint,
    pub sharing: bool,
}

/// A payload that must be an object.
fn object(payload: &Value) -> Decoded<&Map<String, Value>> {
    payload
        .as_object()
        .ok_or_else(|| ProtocolError::invalid("The payload must be an object"))
}

/// A payload that may be an object, `null` or absent (absent arrives as `null`).
fn optional_object(payload: &Value) -> Decoded<Option<&Map<String, Value>>> {
    match payload {
        Value::Null => Ok(None),
        Value::Object(map) => Ok(Some(map)),
        _ => Err(ProtocolError::invalid(
            "The payload must be an object, null or absent",
        )),
    }
}

/// A field that is absent or `null` reads as `None`.
fn present<'a>(map: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    map.get(key).filter(|v| !v.is_null())
}

fn bool_field(map: &Map<String, Value>, key: &str) -> Decoded<Option<bool>> {
    match present(map, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ProtocolError::invalid(format!("`{key}` must be a boolean"))),
    }
}

/// Checks a room id's shape: 1 to 64 characters from `[A-Za-z0-9_-]`.
pub fn is_valid_room_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= ROOM_ID_MAX
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

fn room_hint(map: Option<&Map<String, Value>>) -> Decoded<RoomHint> {
    match map.and_then(|m| present(m, "roomId")) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s.clone())),
        Some(_) => Err(ProtocolError::invalid("`roomId` must be a string")),
    }
}

/// Trims `value` and checks it holds 1 to `max` characters.
fn trimmed_text(value: Option<&Value>, key: &str, max: usize) -> Decoded<String> {
    let Some(Value::String(raw)) = value else {
        return Err(ProtocolError::invalid(format!("`{key}` must be a string")));
    };
    let text = raw.trim();
    let len = text.chars().count();
    if len == 0 {
        return Err(ProtocolError::invalid(format!("`{key}` must not be empty")));
    }
    if len > max {
        return Err(ProtocolError::invalid(format!(
            "`{key}` must be at most {max} characters"
        )));
    }
    Ok(text.to_owned())
}

/// Whether `c` shows: not white space, a combining mark, a format character (zero-width
/// spaces and joiners, direction marks), a control, or unassigned.
pub fn is_visible(c: char) -> bool {
    use unicode_general_category::{GeneralCategory as G, get_general_category};
    !c.is_whitespace()
        && !matches!(
            get_general_category(c),
            G::NonspacingMark
                | G::EnclosingMark
                | G::SpacingMark
                | G::Format
                | G::Control
                | G::Surrogate
                | G::Unassigned
                | G::SpaceSeparator
                | G::LineSeparator
                | G::ParagraphSeparator
        )
}

/// An `http(s)://` URL of at most 2048 characters, or `None`: an unusable avatar is no error.
pub fn usable_avatar(value: Option<&Value>) -> Option<String> {
    let url = value?.as_str()?;
    let scheme = |prefix: &str| {
        url.as_bytes()
            .get(..prefix.len())
            .is_some_and(|head| head.eq_ignore_ascii_case(prefix.as_bytes()))
    };
    // The scheme is ASCII, so `rest` starts on a character boundary.
    let rest = if scheme("http://") {
        &url[7..]
    } else if scheme("https://") {
        &url[8..]
    } else {
        return None;
    };
    let usable = !rest.is_empty()
        && url.chars().count() <= AVATAR_URL_MAX
        && !url.chars().any(|c| c.is_whitespace() || c.is_control());
    usable.then(|| url.to_owned())
}

pub fn decode_join(payload: &RawValue) -> Decoded<JoinRequest> {
    decode_join_as(payload, None)
}

/// The `token` of a `join-room` payload (JWT room access): `None` when absent or `null`.
pub fn join_token(payload: &RawValue) -> Decoded<Option<String>> {
    let payload = value_of(payload)?;
    let map = object(&payload)?;
    match present(map, "token") {
        None => Ok(None),
        Some(Value::String(token)) => Ok(Some(token.clone())),
        Some(_) => Err(ProtocolError::invalid("`token` must be a string")),
    }
}

/// A `join-room` payload; with `name` (a token's `name` claim) the payload's `userName` is
/// ignored and `name` is the display name, held to the same rules.
pub fn decode_join_as(payload: &RawValue, name: Option<&str>) -> Decoded<JoinRequest> {
    let payload = value_of(payload)?;
    let map = object(&payload)?;
    let room_id = match present(map, "roomId") {
        Some(Value::String(id)) if is_valid_room_id(id) => id.clone(),
        Some(Value::String(_)) => {
            return Err(ProtocolError::invalid(
                "`roomId` must be 1 to 64 characters from A-Z, a-z, 0-9, '_' and '-'",
            ));
        }
        _ => return Err(ProtocolError::invalid("`roomId` must be a string")),
    };
    let claimed = name.map(|n| Value::String(n.to_owned()));
    let (given, key) = match &claimed {
        Some(claimed) => (Some(claimed), "name"),
        None => (map.get("userName"), "userName"),
    };
    let user_name = trimmed_text(given, key, USER_NAME_MAX)?;
    if !user_name.chars().any(is_visible) {
        return Err(ProtocolError::invalid(format!(
            "`{key}` must have at least one visible character"
        )));
    }
    let password = match present(map, "password") {
        None => None,
        Some(Value::String(p)) if p.is_empty() => None,
        Some(Value::String(p)) if p.chars().count() <= PASSWORD_MAX => {
            Some(RoomPassword::new(p.clone()))
        }
        Some(Value::String(_)) => {
            return Err(ProtocolError::invalid(format!(
                "`password` must be at most {PASSWORD_MAX} characters"
            )));
        }
        Some(_) => return Err(ProtocolError::invalid("`password` must be a string")),
    };
    Ok(JoinRequest {
        room_id,
        user_name,
        avatar: usable_avatar(map.get("userAvatar")),
        password,
        host: false,
    })
}

/// `leave-room`, `start-screen-share` and `stop-screen-share`: `{roomId?}`, `null` or nothing.
pub fn decode_room_only(payload: &RawValue) -> Decoded<RoomHint> {
    room_hint(optional_object(&value_of(payload)?)?)
}

pub fn decode_chat(payload: &RawValue) -> Decoded<ChatRequest> {
    let payload = value_of(payload)?;
    let map = object(&payload)?;
    let room = room_hint(Some(map))?;
    let text = trimmed_text(map.get("message"), "message", MESSAGE_MAX)?;
    Ok(ChatRequest { room, text })
}

/// Reads the payload's fields without parsing their values, so the `offer`, `answer` or
/// `candidate` is relayed exactly as the sender wrote it (an SDP of several KB is neither
/// unescaped nor re-encoded).
pub fn decode_relay(kind: RelayKind, payload: &RawValue) -> Decoded<RelayRequest> {
    let fields: BTreeMap<String, &RawValue> = serde_json::from_str(payload.get())
        .map_err(|_| ProtocolError::invalid("The payload must be an object"))?;
    let field = |key: &str| -> Decoded<Option<Value>> {
        fields
            .get(key)
            .map(|raw| value_of(raw))
            .transpose()
            .map(|v| v.filter(|v| !v.is_null()))
    };
    let room = match field("roomId")? {
        None => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(ProtocolError::invalid("`roomId` must be a string")),
    };
    let frontend_addressing = room.is_some()
        && fields.get("targetId").is_some_and(|t| t.get() != "null")
        && fields
            .get("targetSocketId")
            .is_none_or(|t| t.get() == "null");
    let target =
        match field("targetId")?.map_or_else(|| field("targetSocketId"), |t| Ok(Some(t)))? {
            Some(Value::String(t)) if !t.is_empty() && t.len() <= TARGET_ID_MAX => t,
            _ => {
                return Err(ProtocolError::invalid(
                    "`targetId` (or `targetSocketId`) must be a socket id",
                ));
            }
        };
    let body = match kind.body_field() {
        None => None,
        Some(name) => {
            let raw = fields.get(name).copied();
            let text = raw.map(|r| r.get().trim_start());
            match (kind, text) {
                (_, Some(t)) if t.starts_with('{') => raw.map(RawValue::to_owned),
                (RelayKind::IceCandidate, Some("null")) => raw.map(RawValue::to_owned),
                (RelayKind::IceCandidate, _) => {
                    return Err(ProtocolError::invalid(
                        "`candidate` must be an object, or null for end-of-candidates",
                    ));
                }
                _ => {
                    return Err(ProtocolError::invalid(format!(
                        "`{name}` must be an object"
                    )));
                }
            }
        }
    };
    Ok(RelayRequest {
        room,
        target,
        kind,
        body,
        frontend_addressing,
    })
}

/// Reads one media flag given under either spelling: `off_key` (true = off) or
/// `on_key` (true = on). Both given and disagreeing is refused.
fn flag_either(map: &Map<String, Value>, off_key: &str, on_key: &str) -> Decoded<bool> {
    let off = bool_field(map, off_key)?;
    let on = bool_field(map, on_key)?;
    match (off, on) {
        (Some(off), Some(on)) if off == on => Err(ProtocolError::invalid(format!(
            "`{off_key}` and `{on_key}` disagree"
        ))),
        (Some(off), _) => Ok(!off),
        (None, Some(on)) => Ok(on),
        (None, None) => Err(ProtocolError::invalid(format!(
            "`{off_key}` or `{on_key}` must be a boolean"
        ))),
    }
}

/// `toggle-audio` and `toggle-video`.
pub fn decode_toggle(kind: MediaKind, payload: &RawValue) -> Decoded<MediaRequest> {
    let payload = value_of(payload)?;
    let map = object(&payload)?;
    let room = room_hint(Some(map))?;
    let enabled = match kind {
        MediaKind::Audio => flag_either(map, "isAudioMuted", "isAudioEnabled")?,
        MediaKind::Video => flag_either(map, "isVideoOff", "isVideoEnabled")?,
    };
    Ok(MediaRequest {
        room,
        change: MediaChange { kind, enabled },
    })
}

/// `toggle-media {type, enabled}`.
pub fn decode_toggle_media(payload: &RawValue) -> Decoded<MediaRequest> {
    let payload = value_of(payload)?;
    let map = object(&payload)?;
    let room = room_hint(Some(map))?;
    let kind = match map.get("type").and_then(Value::as_str) {
        Some("audio") => MediaKind::Audio,
        Some("video") => MediaKind::Video,
        _ => {
            return Err(ProtocolError::invalid(
                "`type` must be \"audio\" or \"video\"",
            ));
        }
    };
    let enabled = bool_field(map, "enabled")?
        .ok_or_else(|| ProtocolError::invalid("`enabled` must be a boolean"))?;
    Ok(MediaRequest {
        room,
        change: MediaChange { kind, enabled },
    })
}

/// `toggle-screen-share {isScreenSharing}`.
pub fn decode_toggle_screen_share(payload: &RawValue) -> Decoded<ScreenShareRequest> {
    let payload = value_of(payload)?;
    let map = object(&payload)?;
    let room = room_hint(Some(map))?;
    let sharing = bool_field(map, "isScreenSharing")?
        .ok_or_else(|| ProtocolError::invalid("`isScreenSharing` must be a boolean"))?;
    Ok(ScreenShareRequest { room, sharing })
}

/// What a host asks of its room (host moderation; every one of these is host-only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// `admin-toggle-mic-permission`, `admin-toggle-camera-permission`,
    /// `admin-toggle-screen-share-permission`.
    Permission {
        target: String,
        permission: Permission,
        allowed: bool,
    },
    MuteAll,
    Kick {
        target: String,
        reason: Option<String>,
    },
    TransferHost {
        target: String,
    },
    Lock {
        locked: bool,
    },
    Lobby {
        enabled: bool,
    },
    Admit {
        waiter: String,
    },
    Deny {
        waiter: String,
        reason: Option<String>,
    },
    SetPassword {
        password: Option<RoomPassword>,
    },
    End,
}

impl Action {
    /// A short name for logs and metrics (never the payload: it may hold a password).
    pub fn name(&self) -> &'static str {
        match self {
            Self::Permission { .. } => "permission",
            Self::MuteAll => "mute-all",
            Self::Kick { .. } => "kick",
            Self::TransferHost { .. } => "transfer-host",
            Self::Lock { .. } => "lock",
            Self::Lobby { .. } => "lobby",
            Self::Admit { .. } => "admit",
            Self::Deny { .. } => "deny",
            Self::SetPassword { .. } => "password",
            Self::End => "end-room",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModerationRequest {
    pub room: RoomHint,
    pub action: Action,
}

/// A participant (or waiter) id a moderation event names: a string of 1 to 128 bytes.
fn participant_id(map: &Map<String, Value>) -> Decoded<String> {
    match map.get("participantId") {
        Some(Value::String(id)) if !id.is_empty() && id.len() <= TARGET_ID_MAX => Ok(id.clone()),
        _ => Err(ProtocolError::invalid(
            "`participantId` must be a participant's socket id",
        )),
    }
}

/// A boolean that must be there: absent, `null` or anything but a boolean is refused.
fn required_bool(map: &Map<String, Value>, key: &str) -> Decoded<Option<bool>> {
    match map.get(key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(_) => Err(ProtocolError::invalid(format!("`{key}` must be a boolean"))),
    }
}

/// A permission flag under its own name or `allowed`; both given must agree.
fn permission_flag(map: &Map<String, Value>, key: &str) -> Decoded<bool> {
    match (required_bool(map, key)?, required_bool(map, "allowed")?) {
        (Some(a), Some(b)) if a != b => Err(ProtocolError::invalid(format!(
            "`{key}` and `allowed` disagree"
        ))),
        (Some(flag), _) | (None, Some(flag)) => Ok(flag),
        (None, None) => Err(ProtocolError::invalid(format!(
            "`{key}` (or `allowed`) must be a boolean"
        ))),
    }
}

fn reason(map: &Map<String, Value>) -> Decoded<Option<String>> {
    match present(map, "reason") {
        None => Ok(None),
        Some(Value::String(r)) if r.chars().count() <= REASON_MAX => Ok(Some(r.clone())),
        Some(Value::String(_)) => Err(ProtocolError::invalid(format!(
            "`reason` must be at most {REASON_MAX} characters"
        ))),
        Some(_) => Err(ProtocolError::invalid("`reason` must be a string or null")),
    }
}

/// `set-room-password`'s `password`: 4 to 128 characters, or `null` to remove it. Unlike
/// elsewhere, leaving it out is refused rather than read as `null`, so a malformed payload
/// cannot remove a password by accident.
fn new_password(map: &Map<String, Value>) -> Decoded<Option<RoomPassword>> {
    match map.get("password") {
        Some(Value::Null) => Ok(None),
        Some(Value::String(p)) if RoomPassword::has_valid_length(p) => {
            Ok(Some(RoomPassword::new(p.clone())))
        }
        _ => Err(ProtocolError::invalid(format!(
            "`password` must be a string of {PASSWORD_MIN} to {PASSWORD_MAX} characters, or null to remove it"
        ))),
    }
}

/// The host moderation events, by event name; `None` for any other event.
pub fn decode_moderation(event: &str, payload: &RawValue) -> Option<Decoded<ModerationRequest>> {
    let value = match value_of(payload) {
        Ok(value) => value,
        Err(e) => return Some(Err(e)),
    };
    let permission = |permission: Permission, key: &str| -> Decoded<ModerationRequest> {
        let map = object(&value)?;
        Ok(ModerationRequest {
            room: room_hint(Some(map))?,
            action: Action::Permission {
                target: participant_id(map)?,
                permission,
                allowed: permission_flag(map, key)?,
            },
        })
    };
    let with_object = |decode: &dyn Fn(&Map<String, Value>) -> Decoded<Action>| {
        let map = object(&value)?;
        Ok(ModerationRequest {
            room: room_hint(Some(map))?,
            action: decode(map)?,
        })
    };
    let room_only = |action: Action| -> Decoded<ModerationRequest> {
        Ok(ModerationRequest {
            room: room_hint(optional_object(&value)?)?,
            action,
        })
    };
    let flag = |map: &Map<String, Value>, key: &str| {
        required_bool(map, key)?
            .ok_or_else(|| ProtocolError::invalid(format!("`{key}` must be a boolean")))
    };
    Some(match event {
        "admin-toggle-mic-permission" => permission(Permission::Mic, "canUseMic"),
        "admin-toggle-camera-permission" => permission(Permission::Camera, "canUseCamera"),
        "admin-toggle-screen-share-permission" => permission(Permission::Screen, "canShareScreen"),
        "mute-all" => room_only(Action::MuteAll),
        "end-room" => room_only(Action::End),
        "kick-participant" => with_object(&|map| {
            Ok(Action::Kick {
                target: participant_id(map)?,
                reason: reason(map)?,
            })
        }),
        "transfer-host" => with_object(&|map| {
            Ok(Action::TransferHost {
                target: participant_id(map)?,
            })
        }),
        "lock-room" => with_object(&|map| {
            Ok(Action::Lock {
                locked: flag(map, "locked")?,
            })
        }),
        "set-lobby" => with_object(&|map| {
            Ok(Action::Lobby {
                enabled: flag(map, "enabled")?,
            })
        }),
        "admit-participant" => with_object(&|map| {
            Ok(Action::Admit {
                waiter: participant_id(map)?,
            })
        }),
        "deny-participant" => with_object(&|map| {
            Ok(Action::Deny {
                waiter: participant_id(map)?,
                reason: reason(map)?,
            })
        }),
        "set-room-password" => with_object(&|map| {
            Ok(Action::SetPassword {
                password: new_password(map)?,
            })
        }),
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// A payload as it arrives: raw JSON text.
    fn p(v: Value) -> Box<RawValue> {
        serde_json::value::to_raw_value(&v).unwrap()
    }

    fn code<T: std::fmt::Debug>(r: Decoded<T>) -> ErrorCode {
        r.unwrap_err().code
    }

    #[test]
    fn a_join_token_is_a_string_and_its_name_replaces_user_name() {
        let with = p(json!({"roomId": "R", "userName": "Mallory", "token": "t.o.k"}));
        assert_eq!(join_token(&with).unwrap().as_deref(), Some("t.o.k"));
        assert_eq!(join_token(&p(json!({"roomId": "R"}))).unwrap(), None);
        assert_eq!(join_token(&p(json!({"token": null}))).unwrap(), None);
        assert_eq!(
            code(join_token(&p(json!({"token": 5})))),
            ErrorCode::InvalidPayload
        );
        assert_eq!(code(join_token(&p(json!("R")))), ErrorCode::InvalidPayload);
        let named = decode_join_as(&with, Some(" Dr. Bob ")).unwrap();
        assert_eq!(named.user_name, "Dr. Bob");
        let nameless = p(json!({"roomId": "R"}));
        assert_eq!(
            decode_join_as(&nameless, Some("Cat")).unwrap().user_name,
            "Cat"
        );
        assert_eq!(code(decode_join(&nameless)), ErrorCode::InvalidPayload);
        let blank = decode_join_as(&with, Some("\u{200b}")).unwrap_err();
        assert!(blank.message.contains("`name`"), "{}", blank.message);
    }

    #[test]
    fn join_trims_name_and_checks_room_id() {
        let j = decode_join(&p(json!({"roomId": "AB_c-9", "userName": "  Al  "}))).unwrap();
        assert_eq!(j.room_id, "AB_c-9");
        assert_eq!(j.user_name, "Al");
        assert_eq!(j.avatar, None);
        for bad in [
            json!({"roomId": "", "userName": "a"}),
            json!({"roomId": "a b", "userName": "a"}),
            json!({"roomId": "x".repeat(65), "userName": "a"}),
            json!({"roomId": 5, "userName": "a"}),
            json!({"userName": "a"}),
            json!({"roomId": "R", "userName": "   "}),
            json!({"roomId": "R", "userName": "é".repeat(51)}),
            json!({"roomId": "R", "userName": 3}),
            json!("R"),
            json!(null),
            json!([1]),
        ] {
            assert_eq!(
                code(decode_join(&p(bad.clone()))),
                ErrorCode::InvalidPayload,
                "{bad}"
            );
        }
        for invisible in [
            "\u{200B}",
            "\u{0301}\u{0301}",
            "\u{200D}\u{FE0F}",
            "\u{2060}\u{200E}",
        ] {
            let bad = json!({"roomId": "R", "userName": invisible});
            assert_eq!(
                code(decode_join(&p(bad.clone()))),
                ErrorCode::InvalidPayload,
                "{bad}"
            );
        }
        assert!(decode_join(&p(json!({"roomId": "R", "userName": "e\u{0301}"}))).is_ok());
        assert!(decode_join(&p(json!({"roomId": "R", "userName": "😀"}))).is_ok());
        let fifty = "é".repeat(50);
        assert!(decode_join(&p(json!({"roomId": "R", "userName": fifty}))).is_ok());
    }

    #[test]
    fn avatar_must_be_a_short_http_url_else_null() {
        let ok = |v: Value| usable_avatar(Some(&v));
        assert_eq!(
            ok(json!("https://a.b/c.png")),
            Some("https://a.b/c.png".into())
        );
        assert_eq!(ok(json!("http://a")), Some("http://a".into()));
        assert_eq!(ok(json!("HTTPS://A.B")), Some("HTTPS://A.B".into()));
        assert_eq!(
            ok(json!("http://é.example/a.png")),
            Some("http://é.example/a.png".into()),
            "a host starting with a non-ASCII character"
        );
        assert_eq!(
            ok(json!("https://日本.jp/a")),
            Some("https://日本.jp/a".into())
        );
        assert_eq!(ok(json!("javascript:alert(1)")), None);
        assert_eq!(ok(json!("https://")), None);
        assert_eq!(ok(json!(42)), None);
        assert_eq!(ok(json!({"url": "https://a"})), None);
        let long = format!("https://{}", "a".repeat(2041));
        assert_eq!(long.chars().count(), 2049);
        assert_eq!(ok(json!(long)), None);
        assert!(ok(json!(long[..2048])).is_some());
    }

    #[test]
    fn room_only_payloads_accept_null_absent_and_object() {
        assert_eq!(decode_room_only(&p(Value::Null)).unwrap(), None);
        assert_eq!(decode_room_only(&p(json!({}))).unwrap(), None);
        assert_eq!(
            decode_room_only(&p(json!({"roomId": "A"}))).unwrap(),
            Some("A".into())
        );
        assert_eq!(
            code(decode_room_only(&p(json!("A")))),
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            code(decode_room_only(&p(json!({"roomId": 1})))),
            ErrorCode::InvalidPayload
        );
    }

    #[test]
    fn chat_trims_and_bounds_the_text() {
        let c = decode_chat(&p(json!({"message": " hi "}))).unwrap();
        assert_eq!(c.text, "hi");
        assert!(decode_chat(&p(json!({"message": "x".repeat(2000)}))).is_ok());
        for bad in [
            json!({"message": "x".repeat(2001)}),
            json!({"message": " \n\t "}),
            json!({"message": 1}),
            json!({}),
            json!("hi"),
        ] {
            assert_eq!(
                code(decode_chat(&p(bad.clone()))),
                ErrorCode::InvalidPayload,
                "{bad}"
            );
        }
    }

    #[test]
    fn relay_reads_either_target_alias_and_keeps_body() {
        let raw = |text: &str| RawValue::from_string(text.to_owned()).unwrap();
        let r = decode_relay(
            RelayKind::Offer,
            &raw(r#"{"targetSocketId":"abc","offer":{"type":"offer","sdp":"v=0\r\n","z":1.0,"a":1e3}}"#),
        )
        .unwrap();
        assert_eq!(r.target, "abc");
        assert_eq!(
            r.body.unwrap().get(),
            r#"{"type":"offer","sdp":"v=0\r\n","z":1.0,"a":1e3}"#,
            "byte for byte"
        );
        let r = decode_relay(
            RelayKind::IceCandidate,
            &p(json!({"targetId": "t", "candidate": null})),
        )
        .unwrap();
        assert_eq!(r.body.unwrap().get(), "null");
        let r = decode_relay(RelayKind::ConnectionRequest, &p(json!({"targetId": "t"}))).unwrap();
        assert_eq!(r.kind.server_event(), "connection-request");
        assert!(r.body.is_none());
        for (kind, bad) in [
            (RelayKind::IceCandidate, json!({"targetId": "t"})),
            (
                RelayKind::IceCandidate,
                json!({"targetId": "t", "candidate": "c"}),
            ),
            (RelayKind::Offer, json!({"targetId": "t", "offer": null})),
            (RelayKind::Offer, json!({"targetId": "t", "offer": "sdp"})),
            (RelayKind::Answer, json!({"targetId": "t", "answer": [1]})),
            (RelayKind::Offer, json!({"offer": {}})),
            (RelayKind::Offer, json!({"targetId": 7, "offer": {}})),
            (RelayKind::Offer, json!({"targetId": "", "offer": {}})),
            (
                RelayKind::Offer,
                json!({"targetId": "t", "roomId": 5, "offer": {}}),
            ),
            (RelayKind::Offer, json!(true)),
            (RelayKind::Offer, json!([{"targetId": "t", "offer": {}}])),
        ] {
            assert_eq!(
                code(decode_relay(kind, &p(bad.clone()))),
                ErrorCode::InvalidPayload,
                "{bad}"
            );
        }
    }

    #[test]
    fn toggles_read_both_spellings() {
        let audio = |v: Value| decode_toggle(MediaKind::Audio, &p(v)).map(|r| r.change.enabled);
        assert_eq!(audio(json!({"isAudioMuted": true})), Ok(false));
        assert_eq!(audio(json!({"isAudioEnabled": true})), Ok(true));
        assert_eq!(
            audio(json!({"isAudioMuted": false, "isAudioEnabled": true})),
            Ok(true)
        );
        assert!(audio(json!({"isAudioMuted": true, "isAudioEnabled": true})).is_err());
        assert!(audio(json!({"isAudioMuted": "yes"})).is_err());
        assert!(audio(json!({})).is_err());
        let video = decode_toggle(MediaKind::Video, &p(json!({"isVideoOff": true}))).unwrap();
        assert_eq!(
            video.change,
            MediaChange {
                kind: MediaKind::Video,
                enabled: false
            }
        );
        let m = decode_toggle_media(&p(json!({"type": "video", "enabled": true}))).unwrap();
        assert_eq!(
            m.change,
            MediaChange {
                kind: MediaKind::Video,
                enabled: true
            }
        );
        assert!(decode_toggle_media(&p(json!({"type": "screen", "enabled": true}))).is_err());
        assert!(decode_toggle_media(&p(json!({"type": "audio"}))).is_err());
        let s = decode_toggle_screen_share(&p(json!({"isScreenSharing": true}))).unwrap();
        assert!(s.sharing);
        assert!(decode_toggle_screen_share(&p(json!({}))).is_err());
    }

    fn moderation(event: &str, v: Value) -> Decoded<ModerationRequest> {
        decode_moderation(event, &p(v)).expect("a moderation event")
    }

    #[test]
    fn permission_events_read_the_flag_or_its_alias() {
        for (event, key, permission) in [
            ("admin-toggle-mic-permission", "canUseMic", Permission::Mic),
            (
                "admin-toggle-camera-permission",
                "canUseCamera",
                Permission::Camera,
            ),
            (
                "admin-toggle-screen-share-permission",
                "canShareScreen",
                Permission::Screen,
            ),
        ] {
            let allowed = |v: Value| {
                moderation(event, v).map(|r| match r.action {
                    Action::Permission {
                        allowed,
                        permission: p,
                        target,
                    } => {
                        assert_eq!((p, target.as_str()), (permission, "s1"));
                        allowed
                    }
                    other => panic!("{other:?}"),
                })
            };
            assert_eq!(
                allowed(json!({"participantId": "s1", key: false})),
                Ok(false)
            );
            assert_eq!(
                allowed(json!({"participantId": "s1", "allowed": true})),
                Ok(true)
            );
            assert_eq!(
                allowed(json!({"participantId": "s1", key: true, "allowed": true, "roomId": "R"})),
                Ok(true)
            );
            for bad in [
                json!({"participantId": "s1", key: true, "allowed": false}),
                json!({"participantId": "s1"}),
                json!({"participantId": "s1", key: "false"}),
                json!({"participantId": "s1", key: 0}),
                json!({"participantId": "s1", "allowed": 1}),
                json!({"participantId": "s1", key: null}),
                json!({"participantId": "s1", "allowed": null}),
                json!({"participantId": 42, key: true}),
                json!({"participantId": ["x"], key: true}),
                json!({"participantId": {}, key: true}),
                json!({"participantId": "", key: true}),
                json!({key: true}),
                json!({"participantId": "s1", key: true, "roomId": 3}),
                json!("s1"),
                json!(7),
                json!([{"participantId": "s1", key: true}]),
                json!(null),
            ] {
                assert_eq!(
                    code(allowed(bad.clone())),
                    ErrorCode::InvalidPayload,
                    "{event} {bad}"
                );
            }
        }
    }

    #[test]
    fn room_actions_check_their_fields() {
        assert_eq!(
            moderation("mute-all", Value::Null).unwrap().action,
            Action::MuteAll
        );
        assert_eq!(
            moderation("end-room", json!({"roomId": "R"})).unwrap(),
            ModerationRequest {
                room: Some("R".into()),
                action: Action::End
            }
        );
        assert_eq!(
            code(moderation("end-room", json!("R"))),
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            moderation("lock-room", json!({"locked": true}))
                .unwrap()
                .action,
            Action::Lock { locked: true }
        );
        assert_eq!(
            moderation("set-lobby", json!({"enabled": false}))
                .unwrap()
                .action,
            Action::Lobby { enabled: false }
        );
        for bad in [json!("true"), json!(1), json!(0), json!("yes"), json!(null)] {
            assert_eq!(
                code(moderation("lock-room", json!({"locked": bad}))),
                ErrorCode::InvalidPayload
            );
            assert_eq!(
                code(moderation("set-lobby", json!({"enabled": bad}))),
                ErrorCode::InvalidPayload
            );
        }
        assert_eq!(
            code(moderation("lock-room", json!({}))),
            ErrorCode::InvalidPayload
        );
        assert_eq!(
            moderation(
                "kick-participant",
                json!({"participantId": "s", "reason": null})
            )
            .unwrap()
            .action,
            Action::Kick {
                target: "s".into(),
                reason: None
            }
        );
        assert_eq!(
            moderation(
                "deny-participant",
                json!({"participantId": "s", "reason": "no"})
            )
            .unwrap()
            .action,
            Action::Deny {
                waiter: "s".into(),
                reason: Some("no".into())
            }
        );
        for bad in [
            json!(5),
            json!(["r"]),
            json!({}),
            json!("x".repeat(REASON_MAX + 1)),
        ] {
            assert_eq!(
                code(moderation(
                    "kick-participant",
                    json!({"participantId": "s", "reason": bad})
                )),
                ErrorCode::InvalidPayload
            );
        }
        assert_eq!(
            moderation("transfer-host", json!({"participantId": "s"}))
                .unwrap()
                .action,
            Action::TransferHost { target: "s".into() }
        );
        assert_eq!(
            moderation("admit-participant", json!({"participantId": "w"}))
                .unwrap()
                .action,
            Action::Admit { waiter: "w".into() }
        );
        assert!(decode_moderation("join-room", &p(json!({}))).is_none());
    }

    #[test]
    fn passwords_are_bounded_and_never_printed() {
        let set = |v: Value| moderation("set-room-password", v).map(|r| r.action);
        assert_eq!(
            set(json!({"password": null})),
            Ok(Action::SetPassword { password: None })
        );
        let Ok(Action::SetPassword { password: Some(pw) }) = set(json!({"password": "abcd"}))
        else {
            panic!("a 4-character password")
        };
        assert!(!format!("{pw:?}").contains("abcd"));
        assert!(set(json!({"password": "é".repeat(128)})).is_ok());
        for bad in [
            json!({"password": "abc"}),
            json!({"password": "x".repeat(129)}),
            json!({"password": 1234}),
            json!({"password": true}),
            json!({}),
            json!(null),
        ] {
            assert_eq!(code(set(bad.clone())), ErrorCode::InvalidPayload, "{bad}");
        }
        let join =
            |pw: Value| decode_join(&p(json!({"roomId": "R", "userName": "A", "password": pw})));
        assert_eq!(join(json!(null)).unwrap().password, None);
        assert_eq!(join(json!("")).unwrap().password, None);
        assert_eq!(
            join(json!("secret")).unwrap().password,
            Some(RoomPassword::new("secret".into()))
        );
        assert!(!format!("{:?}", join(json!("secret")).unwrap()).contains("secret"));
        assert_eq!(code(join(json!(1234))), ErrorCode::InvalidPayload);
        assert_eq!(
            code(join(json!("x".repeat(129)))),
            ErrorCode::InvalidPayload
        );
    }
}
