//! What the registry answers: the outcome of each operation (who joined, who left, what was
//! said, what changed, what a room looks like) and the limits it enforces. Both backends
//! return exactly these.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::model::{ChatMessage, Participant, ParticipantView, RoomState, Timestamp};

/// The limits the registry enforces, from the configuration.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_participants: usize,
    /// Messages kept per room.
    pub chat_history_limit: usize,
    /// Bytes of messages kept per room.
    pub chat_history_bytes: usize,
    /// Bytes of messages kept in all rooms; the history of rooms nobody is in goes first.
    pub chat_history_total_bytes: usize,
    pub empty_room_ttl: Duration,
    pub unused_room_ttl: Duration,
    /// Most rooms in existence at once; 0 = no cap.
    pub max_rooms: usize,
    /// Most rooms one address may have made (still in existence); 0 = no cap.
    pub max_rooms_per_address: usize,
    /// Participants carry a connection state (connection state recovery is on): joiners
    /// start `connected`, and [`crate::registry::Registry::set_connection`] changes it.
    pub connection_states: bool,
}

/// Most join requests one room's lobby holds at once (`room_full` beyond).
pub const MAX_WAITERS: usize = 100;

/// Who makes a room, if a join names one that does not exist yet: the client's address
/// (counted against `MAX_ROOMS_PER_ADDRESS`), and whether it may (its creation quota allows
/// it; without, the join answers [`JoinOutcome::NeedsNewRoom`] and changes nothing).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Creator {
    pub address: IpAddr,
    pub may_create: bool,
}

/// Public facts about a room, for `GET /api/room/:roomId`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomInfo {
    pub room_id: Arc<str>,
    pub participant_count: usize,
    pub created_at: Timestamp,
    pub has_password: bool,
}

/// A room as operators see it (`GET /api/admin/rooms`).
#[derive(Debug, Clone)]
pub struct RoomSummary {
    pub room_id: Arc<str>,
    pub created_at: Timestamp,
    pub participant_count: usize,
    pub host: Option<ParticipantView>,
    pub message_count: usize,
}

/// One room in detail, without its chat text (`GET /api/admin/rooms/:roomId`).
#[derive(Debug, Clone)]
pub struct RoomDetail {
    pub summary: RoomSummary,
    pub participants: Vec<ParticipantView>,
}

/// A socket's arrival in a room.
#[derive(Debug, Clone)]
pub struct Joined {
    pub room_id: Arc<str>,
    pub me: ParticipantView,
    /// Everyone, the joiner included, in join order.
    pub participants: Vec<ParticipantView>,
    /// The room's chat history, oldest first.
    pub messages: Vec<Arc<ChatMessage>>,
    /// The room did not exist before this join.
    pub created_room: bool,
    /// The room's host and moderation state, after this join.
    pub room: RoomState,
}

#[derive(Debug, Clone)]
pub enum JoinOutcome {
    /// Joined the room, having first left `left` if the socket was elsewhere.
    Joined { left: Option<Left>, joined: Joined },
    /// Already in that room: nothing changed, the joiner is told again.
    AlreadyIn(Joined),
    /// The room does not exist and the creator may not make one now: nothing changed.
    NeedsNewRoom,
    /// Put in the room's lobby (having first left `left`), until the host admits it.
    Waiting {
        left: Option<Left>,
        room_id: Arc<str>,
    },
    /// Already waiting in that room's lobby: nothing changed.
    AlreadyWaiting { room_id: Arc<str> },
}

/// A participant's departure from a room.
#[derive(Debug, Clone)]
pub struct Left {
    pub room_id: Arc<str>,
    pub participant: Participant,
    /// Who remains, in join order.
    pub participants: Vec<ParticipantView>,
    /// The room was removed because it emptied and `EMPTY_ROOM_TTL_SECS` is 0.
    pub room_removed: bool,
    /// The leaver was the host and this one (the earliest remaining) took over.
    pub new_host: Option<Arc<str>>,
}

/// A chat message was recorded; everyone in the room gets it.
#[derive(Debug, Clone)]
pub struct Said {
    pub room_id: Arc<str>,
    pub message: Arc<ChatMessage>,
}

/// A participant's state changed; everyone in the room is told.
#[derive(Debug, Clone)]
pub struct Updated {
    pub room_id: Arc<str>,
    pub participant: ParticipantView,
    pub participants: Vec<ParticipantView>,
}

/// A host's moderation action was carried out (and announced, unless `announced` is false:
/// a password change tells nobody).
#[derive(Debug, Clone)]
pub struct Moderated {
    pub room_id: Arc<str>,
    pub announced: bool,
    /// After `set-room-password`: whether the room now has one.
    pub has_password: bool,
}
