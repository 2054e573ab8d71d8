//! The values the server sends about people and messages: participant and chat message
//! objects exactly as PROTOCOL.md spells them, with every alias filled in.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize, Serializer};
use serde_json::value::RawValue;

/// A point in time that serializes as JavaScript's `Date.toISOString()` does
/// (`2024-05-01T12:00:00.000Z`), which is what the frontends parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    pub fn now() -> Self {
        Self(Utc::now())
    }

    pub fn to_iso(self) -> String {
        self.0.to_rfc3339_opts(SecondsFormat::Millis, true)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.to_iso())
    }
}

/// What kind of media a toggle is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MediaKind {
    Audio,
    Video,
}

/// Whether a participant's client is connected, or lost its connection and may come back
/// (connection state recovery: docs/PROTOCOL.md, "Connection state recovery").
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Connection {
    Connected,
    Reconnecting,
}

/// What the host may allow or forbid a participant (host moderation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Permission {
    Mic,
    Camera,
    Screen,
}

impl Permission {
    /// The `kind` of `permission-changed`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mic => "mic",
            Self::Camera => "camera",
            Self::Screen => "screen",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Mic, Self::Camera, Self::Screen]
            .into_iter()
            .find(|p| p.as_str() == s)
    }
}

/// A participant as the registry keeps it. Cheap to clone (shared strings).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Participant {
    pub id: Arc<str>,
    pub user_name: Arc<str>,
    pub avatar: Option<Arc<str>>,
    pub joined_at: Timestamp,
    pub audio_muted: bool,
    pub video_off: bool,
    pub screen_sharing: bool,
    /// `None` while connection state recovery is off: then no participant object carries a
    /// `connection` field, as before recovery existed.
    pub connection: Option<Connection>,
    /// The host allows this participant's microphone (while not, it stays muted).
    pub can_use_mic: bool,
    /// The host allows this participant's camera (while not, it stays off).
    pub can_use_camera: bool,
    /// The host allows this participant to share its screen.
    pub can_share_screen: bool,
}

impl Participant {
    pub fn new(id: Arc<str>, user_name: Arc<str>, avatar: Option<Arc<str>>) -> Self {
        Self {
            id,
            user_name,
            avatar,
            joined_at: Timestamp::now(),
            audio_muted: false,
            video_off: false,
            screen_sharing: false,
            connection: None,
            can_use_mic: true,
            can_use_camera: true,
            can_share_screen: true,
        }
    }

    /// Whether the host allows `permission`.
    pub fn allows(&self, permission: Permission) -> bool {
        match permission {
            Permission::Mic => self.can_use_mic,
            Permission::Camera => self.can_use_camera,
            Permission::Screen => self.can_share_screen,
        }
    }

    /// Allows or forbids `permission`; forbidding turns the media it covers off. Returns
    /// what had to be turned off, if anything was on.
    pub fn set_permission(&mut self, permission: Permission, allowed: bool) -> Option<MediaOff> {
        match permission {
            Permission::Mic => {
                self.can_use_mic = allowed;
                (!allowed && !self.audio_muted).then(|| {
                    self.audio_muted = true;
                    MediaOff::Audio
                })
            }
            Permission::Camera => {
                self.can_use_camera = allowed;
                (!allowed && !self.video_off).then(|| {
                    self.video_off = true;
                    MediaOff::Video
                })
            }
            Permission::Screen => {
                self.can_share_screen = allowed;
                (!allowed && self.screen_sharing).then(|| {
                    self.screen_sharing = false;
                    MediaOff::Screen
                })
            }
        }
    }

    /// A waiter of the lobby, as the host is told of it.
    pub fn as_waiter(&self) -> Waiter {
        Waiter {
            id: self.id.clone(),
            user_name: self.user_name.clone(),
            avatar: self.avatar.clone(),
        }
    }

    /// The wire view of this participant; `is_admin` is decided by the room (the host).
    pub fn view(&self, is_admin: bool) -> ParticipantView {
        ParticipantView {
            id: self.id.clone(),
            user_name: self.user_name.clone(),
            name: self.user_name.clone(),
            avatar: self.avatar.clone(),
            joined_at: self.joined_at,
            is_audio_muted: self.audio_muted,
            is_audio_enabled: !self.audio_muted,
            is_video_off: self.video_off,
            is_video_enabled: !self.video_off,
            is_screen_sharing: self.screen_sharing,
            is_admin,
            connection: self.connection,
            can_use_mic: self.can_use_mic,
            has_mic_permission: self.can_use_mic,
            can_use_camera: self.can_use_camera,
            has_camera_permission: self.can_use_camera,
            can_share_screen: self.can_share_screen,
        }
    }
}

/// Media a moderation action turned off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MediaOff {
    Audio,
    Video,
    Screen,
}

/// Someone waiting in a room's lobby for the host to admit them (`admission-requested`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Waiter {
    #[serde(rename = "participantId")]
    pub id: Arc<str>,
    pub user_name: Arc<str>,
    #[serde(rename = "userAvatar")]
    pub avatar: Option<Arc<str>>,
}

/// A room's moderation state as members see it: `joined-room.room`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomState {
    /// The host's socket id (`null` only for a room nobody is in).
    pub host_id: Option<Arc<str>>,
    pub locked: bool,
    pub lobby: bool,
    pub has_password: bool,
}

/// The participant object of PROTOCOL.md: both spellings of every field, always present.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParticipantView {
    pub id: Arc<str>,
    pub user_name: Arc<str>,
    pub name: Arc<str>,
    pub avatar: Option<Arc<str>>,
    pub joined_at: Timestamp,
    pub is_audio_muted: bool,
    pub is_audio_enabled: bool,
    pub is_video_off: bool,
    pub is_video_enabled: bool,
    pub is_screen_sharing: bool,
    pub is_admin: bool,
    /// Only while connection state recovery is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connection: Option<Connection>,
    /// The five permission flags of host moderation (`hasMicPermission` and
    /// `hasCameraPermission` are the frontend's names for the first two).
    pub can_use_mic: bool,
    pub has_mic_permission: bool,
    pub can_use_camera: bool,
    pub has_camera_permission: bool,
    pub can_share_screen: bool,
}

/// The chat message object of PROTOCOL.md. Its wire JSON is made once, when the message is:
/// every later `joined-room` of the room carries it again (up to `CHAT_HISTORY_LIMIT` of
/// them), and re-encoding them per join dominated the cost of joining a room with history.
#[derive(Debug, Clone)]
pub struct ChatMessage {
    pub id: Arc<str>,
    pub sender_id: Arc<str>,
    pub user_name: Arc<str>,
    pub message: Arc<str>,
    pub timestamp: Timestamp,
    pub user_avatar: Option<Arc<str>>,
    json: Arc<RawValue>,
}

/// A chat message's fields, serialized field by field (for a serializer that needs them as a
/// map, such as a `#[serde(flatten)]`).
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessageFields<'a> {
    id: &'a str,
    sender_id: &'a str,
    user_name: &'a str,
    message: &'a str,
    timestamp: Timestamp,
    user_avatar: Option<&'a str>,
}

impl ChatMessage {
    pub fn new(
        id: Arc<str>,
        sender_id: Arc<str>,
        user_name: Arc<str>,
        message: Arc<str>,
        timestamp: Timestamp,
        user_avatar: Option<Arc<str>>,
    ) -> Self {
        let mut made = Self::with_json(
            id,
            sender_id,
            user_name,
            message,
            timestamp,
            user_avatar,
            RawValue::NULL.to_owned().into(),
        );
        // Strings and a timestamp always serialize; were it to fail, `null` keeps this total.
        if let Ok(json) = serde_json::value::to_raw_value(&made.fields()) {
            made.json = json.into();
        }
        made
    }

    /// A message with the JSON it was read back from (a cluster's store, where it was made
    /// from these fields), kept as it is rather than made again.
    pub fn with_json(
        id: Arc<str>,
        sender_id: Arc<str>,
        user_name: Arc<str>,
        message: Arc<str>,
        timestamp: Timestamp,
        user_avatar: Option<Arc<str>>,
        json: Arc<RawValue>,
    ) -> Self {
        Self {
            id,
            sender_id,
            user_name,
            message,
            timestamp,
            user_avatar,
            json,
        }
    }

    /// The bytes the message's JSON takes: what the history budgets count.
    pub fn size(&self) -> usize {
        self.json.get().len()
    }

    pub fn fields(&self) -> ChatMessageFields<'_> {
        ChatMessageFields {
            id: &self.id,
            sender_id: &self.sender_id,
            user_name: &self.user_name,
            message: &self.message,
            timestamp: self.timestamp,
            user_avatar: self.user_avatar.as_deref(),
        }
    }
}

impl PartialEq for ChatMessage {
    fn eq(&self, other: &Self) -> bool {
        self.json.get() == other.json.get()
    }
}

impl Eq for ChatMessage {}

impl Serialize for ChatMessage {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.json.serialize(serializer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chat_message_serializes_as_protocol_md_spells_it() {
        let m = ChatMessage::new(
            "m1".into(),
            "s1".into(),
            "Ann \"A\"".into(),
            "hi".into(),
            Timestamp::now(),
            None,
        );
        let json = serde_json::to_value(&m).unwrap();
        assert_eq!(json["id"], "m1");
        assert_eq!(json["senderId"], "s1");
        assert_eq!(json["userName"], "Ann \"A\"");
        assert_eq!(json["message"], "hi");
        assert!(json["userAvatar"].is_null());
        assert_eq!(json["timestamp"], m.timestamp.to_iso());
        assert_eq!(json.as_object().unwrap().len(), 6);
    }

    #[test]
    fn participant_view_has_every_alias_and_they_agree() {
        let mut p = Participant::new("s1".into(), "Alice".into(), None);
        p.audio_muted = true;
        let json = serde_json::to_value(p.view(true)).unwrap();
        assert_eq!(json["id"], "s1");
        assert_eq!(json["userName"], "Alice");
        assert_eq!(json["name"], "Alice");
        assert!(json["avatar"].is_null());
        assert_eq!(json["isAudioMuted"], true);
        assert_eq!(json["isAudioEnabled"], false);
        assert_eq!(json["isVideoOff"], false);
        assert_eq!(json["isVideoEnabled"], true);
        assert_eq!(json["isScreenSharing"], false);
        assert_eq!(json["isAdmin"], true);
        for flag in [
            "canUseMic",
            "hasMicPermission",
            "canUseCamera",
            "hasCameraPermission",
            "canShareScreen",
        ] {
            assert_eq!(json[flag], true, "{flag}");
        }
        p.set_permission(Permission::Mic, false);
        let json = serde_json::to_value(p.view(false)).unwrap();
        assert_eq!(json["canUseMic"], false);
        assert_eq!(json["hasMicPermission"], false);
        let joined = json["joinedAt"].as_str().unwrap();
        assert!(joined.ends_with('Z') && joined.len() == 24, "{joined}");
        assert!(
            json.get("connection").is_none(),
            "no connection state: {json}"
        );
        assert_eq!(json.as_object().unwrap().len(), 16);
    }

    #[test]
    fn the_connection_state_shows_only_when_tracked() {
        let mut p = Participant::new("s1".into(), "Alice".into(), None);
        p.connection = Some(Connection::Reconnecting);
        let json = serde_json::to_value(p.view(false)).unwrap();
        assert_eq!(json["connection"], "reconnecting");
        p.connection = Some(Connection::Connected);
        let json = serde_json::to_value(p.view(false)).unwrap();
        assert_eq!(json["connection"], "connected");
    }
}
