//! The values the server sends about people and messages: participant and chat message
//! objects exactly as PROTOCOL.md spells them, with every alias filled in.

use std::sync::Arc;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};

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
        }
    }
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
}

/// The chat message object of PROTOCOL.md.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ChatMessage {
    pub id: Arc<str>,
    pub sender_id: Arc<str>,
    pub user_name: Arc<str>,
    pub message: Arc<str>,
    pub timestamp: Timestamp,
    pub user_avatar: Option<Arc<str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let joined = json["joinedAt"].as_str().unwrap();
        assert!(joined.ends_with('Z') && joined.len() == 24, "{joined}");
    }
}
