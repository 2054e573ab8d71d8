//! The in-memory registry of a single instance (the default): rooms, participants, host
//! order and chat history in `DashMap`s. Every operation is synchronous, takes its locks
//! briefly and returns *what happened*; handlers decide what to emit once every lock is
//! released.

use std::collections::VecDeque;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::error::RoomLimitReached;
use super::{JoinOutcome, Joined, Left, Limits, RoomDetail, RoomInfo, RoomSummary, Said, Updated};
use crate::model::{ChatMessage, MediaKind, Participant, ParticipantView, Timestamp};
use crate::protocol::{ErrorCode, JoinRequest, MediaChange, ProtocolError};

/// Whether a room has ever had anyone in it, and since when it has been empty.
#[derive(Debug, Clone, Copy)]
enum Occupancy {
    /// Made by `POST /api/create-room`, nobody has joined yet.
    Unused {
        since: Instant,
    },
    Occupied,
    Empty {
        since: Instant,
    },
}

#[derive(Debug)]
struct Room {
    created_at: Timestamp,
    /// In join order: the first one is the host.
    participants: Vec<Participant>,
    messages: VecDeque<Arc<ChatMessage>>,
    occupancy: Occupancy,
}

impl Room {
    fn new(occupancy: Occupancy) -> Self {
        Self {
            created_at: Timestamp::now(),
            participants: Vec::new(),
            messages: VecDeque::new(),
            occupancy,
        }
    }

    fn views(&self) -> Vec<ParticipantView> {
        self.participants
            .iter()
            .enumerate()
            .map(|(i, p)| p.view(i == 0))
            .collect()
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.participants.iter().position(|p| &*p.id == id)
    }

    fn expired(&self, now: Instant, limits: &Limits) -> bool {
        match self.occupancy {
            Occupancy::Occupied => false,
            Occupancy::Unused { since } => now.duration_since(since) >= limits.unused_room_ttl,
            Occupancy::Empty { since } => now.duration_since(since) >= limits.empty_room_ttl,
        }
    }
}

#[derive(Debug)]
pub struct MemoryRegistry {
    rooms: DashMap<Arc<str>, Room>,
    /// Socket id → the room it is in. A socket is in at most one room.
    members: DashMap<Arc<str>, Arc<str>>,
    /// How many rooms exist, kept beside `rooms` so the room cap is exact under concurrency.
    room_count: AtomicUsize,
    limits: Limits,
}

impl MemoryRegistry {
    pub fn new(limits: Limits) -> Self {
        Self {
            rooms: DashMap::new(),
            members: DashMap::new(),
            room_count: AtomicUsize::new(0),
            limits,
        }
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `(rooms, participants)` in existence.
    pub fn stats(&self) -> (usize, usize) {
        (self.room_count.load(Ordering::Relaxed), self.members.len())
    }

    /// Counts one more room, unless that would pass `MAX_ROOMS`.
    fn reserve_room(&self) -> Result<(), RoomLimitReached> {
        let max = self.limits.max_rooms;
        self.room_count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            })
            .map(drop)
            .map_err(|_| RoomLimitReached)
    }

    fn release_rooms(&self, removed: usize) {
        self.room_count.fetch_sub(removed, Ordering::AcqRel);
    }

    /// Makes an empty room with a fresh id: 8 upper-case characters of a v4 UUID.
    pub fn create_room(&self) -> Result<RoomInfo, RoomLimitReached> {
        self.reserve_room()?;
        loop {
            let id: Arc<str> = uuid::Uuid::new_v4().simple().to_string()[..8]
                .to_ascii_uppercase()
                .into();
            if let Entry::Vacant(slot) = self.rooms.entry(id.clone()) {
                let room = Room::new(Occupancy::Unused {
                    since: Instant::now(),
                });
                let created_at = room.created_at;
                slot.insert(room);
                return Ok(RoomInfo {
                    room_id: id,
                    participant_count: 0,
                    created_at,
                });
            }
        }
    }

    pub fn room_info(&self, room_id: &str) -> Option<RoomInfo> {
        self.rooms.get(room_id).map(|entry| {
            let (id, room) = entry.pair();
            RoomInfo {
                room_id: id.clone(),
                participant_count: room.participants.len(),
                created_at: room.created_at,
            }
        })
    }

    /// The room `socket` is in, checked against the room the client named (if any).
    pub fn current_room(
        &self,
        socket: &str,
        named: Option<&str>,
    ) -> Result<Arc<str>, ProtocolError> {
        let room = self
            .members
            .get(socket)
            .map(|r| r.value().clone())
            .ok_or_else(ProtocolError::not_in_room)?;
        match named {
            Some(named) if named != &*room => Err(ProtocolError::not_in_room()),
            _ => Ok(room),
        }
    }

    /// Puts `socket` in the requested room, leaving its current room first if it differs.
    /// A full room refuses it and it stays where it was.
    pub fn join(&self, socket: &str, req: &JoinRequest) -> Result<JoinOutcome, ProtocolError> {
        let current = self.members.get(socket).map(|r| r.value().clone());
        if current.as_deref() == Some(req.room_id.as_str())
            && let Some(joined) = self.snapshot(&req.room_id, socket)
        {
            return Ok(JoinOutcome::AlreadyIn(joined));
        }
        let socket_id: Arc<str> = socket.into();
        let participant = Participant::new(
            socket_id.clone(),
            req.user_name.as_str().into(),
            req.avatar.as_deref().map(Into::into),
        );
        let joined = {
            let (room_id, created_room, mut room) =
                match self.rooms.entry(req.room_id.as_str().into()) {
                    Entry::Occupied(e) => (e.key().clone(), false, e.into_ref()),
                    Entry::Vacant(e) => {
                        self.reserve_room()?;
                        let id = e.key().clone();
                        (id, true, e.insert(Room::new(Occupancy::Occupied)))
                    }
                };
            if room.participants.len() >= self.limits.max_participants {
                return Err(ProtocolError::new(
                    ErrorCode::RoomFull,
                    format!(
                        "Room {} is full ({} participants at most)",
                        room_id, self.limits.max_participants
                    ),
                ));
            }
            room.participants.push(participant);
            room.occupancy = Occupancy::Occupied;
            let participants = room.views();
            Joined {
                room_id,
                me: participants[participants.len() - 1].clone(),
                participants,
                messages: room.messages.iter().cloned().collect(),
                created_room,
            }
        };
        let left = current.and_then(|old| self.remove_from_room(&old, socket));
        self.members.insert(socket_id, joined.room_id.clone());
        Ok(JoinOutcome::Joined { left, joined })
    }

    /// Takes `socket` out of its room (explicit leave or disconnect); `None` if it was in none.
    pub fn leave(&self, socket: &str) -> Option<Left> {
        let (_, room_id) = self.members.remove(socket)?;
        self.remove_from_room(&room_id, socket)
    }

    fn remove_from_room(&self, room_id: &str, socket: &str) -> Option<Left> {
        let (participant, participants, now_empty) = {
            let mut room = self.rooms.get_mut(room_id)?;
            let index = room.position(socket)?;
            let participant = room.participants.remove(index);
            let now_empty = room.participants.is_empty();
            if now_empty {
                room.occupancy = Occupancy::Empty {
                    since: Instant::now(),
                };
            }
            (participant, room.views(), now_empty)
        };
        let room_removed = now_empty
            && self.limits.empty_room_ttl.is_zero()
            && self
                .rooms
                .remove_if(room_id, |_, room| room.participants.is_empty())
                .is_some();
        if room_removed {
            self.release_rooms(1);
        }
        Some(Left {
            room_id: room_id.into(),
            participant,
            participants,
            room_removed,
        })
    }

    fn snapshot(&self, room_id: &str, socket: &str) -> Option<Joined> {
        let entry = self.rooms.get(room_id)?;
        let (id, room) = entry.pair();
        let participants = room.views();
        let me = participants.get(room.position(socket)?)?.clone();
        Some(Joined {
            room_id: id.clone(),
            me,
            participants,
            messages: room.messages.iter().cloned().collect(),
            created_room: false,
        })
    }

    /// Records a chat message from `socket`, its name and avatar taken from the registry.
    pub fn chat(
        &self,
        socket: &str,
        named_room: Option<&str>,
        text: &str,
    ) -> Result<Said, ProtocolError> {
        let room_id = self.current_room(socket, named_room)?;
        let mut room = self
            .rooms
            .get_mut(&room_id)
            .ok_or_else(ProtocolError::not_in_room)?;
        let sender = room
            .position(socket)
            .map(|i| &room.participants[i])
            .ok_or_else(ProtocolError::not_in_room)?;
        let message = Arc::new(ChatMessage::new(
            uuid::Uuid::new_v4().to_string().into(),
            sender.id.clone(),
            sender.user_name.clone(),
            text.into(),
            Timestamp::now(),
            sender.avatar.clone(),
        ));
        let limit = self.limits.chat_history_limit;
        if limit > 0 {
            if room.messages.len() >= limit {
                room.messages.pop_front();
            }
            room.messages.push_back(message.clone());
        }
        Ok(Said { room_id, message })
    }

    /// Checks that `target` is in the same room as `socket`; returns that room.
    pub fn relay_room(
        &self,
        socket: &str,
        named_room: Option<&str>,
        target: &str,
    ) -> Result<Arc<str>, ProtocolError> {
        let room_id = self.current_room(socket, named_room)?;
        let same_room = self
            .rooms
            .get(&room_id)
            .is_some_and(|room| room.position(target).is_some());
        if same_room {
            Ok(room_id)
        } else {
            Err(ProtocolError::new(
                ErrorCode::TargetNotInRoom,
                "The target is not a participant of your room",
            ))
        }
    }

    pub fn set_media(
        &self,
        socket: &str,
        named_room: Option<&str>,
        change: MediaChange,
    ) -> Result<Updated, ProtocolError> {
        self.update(socket, named_room, |p| match change.kind {
            MediaKind::Audio => p.audio_muted = !change.enabled,
            MediaKind::Video => p.video_off = !change.enabled,
        })
    }

    pub fn set_screen_sharing(
        &self,
        socket: &str,
        named_room: Option<&str>,
        sharing: bool,
    ) -> Result<Updated, ProtocolError> {
        self.update(socket, named_room, |p| p.screen_sharing = sharing)
    }

    fn update(
        &self,
        socket: &str,
        named_room: Option<&str>,
        change: impl FnOnce(&mut Participant),
    ) -> Result<Updated, ProtocolError> {
        let room_id = self.current_room(socket, named_room)?;
        let mut room = self
            .rooms
            .get_mut(&room_id)
            .ok_or_else(ProtocolError::not_in_room)?;
        let index = room
            .position(socket)
            .ok_or_else(ProtocolError::not_in_room)?;
        change(&mut room.participants[index]);
        let participants = room.views();
        Ok(Updated {
            room_id,
            participant: participants[index].clone(),
            participants,
        })
    }

    /// Every room, for operators.
    pub fn summaries(&self) -> Vec<RoomSummary> {
        let mut rooms: Vec<RoomSummary> = self
            .rooms
            .iter()
            .map(|entry| summary(entry.key(), entry.value()))
            .collect();
        rooms.sort_by_key(|r| r.created_at);
        rooms
    }

    pub fn detail(&self, room_id: &str) -> Option<RoomDetail> {
        let entry = self.rooms.get(room_id)?;
        Some(RoomDetail {
            summary: summary(entry.key(), entry.value()),
            participants: entry.views(),
        })
    }

    /// Removes a room, its participants and its history at once (operator action).
    /// Returns who was in it.
    pub fn close_room(&self, room_id: &str) -> Option<Vec<Participant>> {
        let (_, room) = self.rooms.remove(room_id)?;
        self.release_rooms(1);
        for p in &room.participants {
            self.members
                .remove_if(&p.id, |_, in_room| &**in_room == room_id);
        }
        Some(room.participants)
    }

    /// Removes the rooms that stayed empty (or unused) past their TTL; returns their ids.
    pub fn sweep(&self, now: Instant) -> Vec<Arc<str>> {
        let mut removed = Vec::new();
        self.rooms.retain(|id, room| {
            let expired = room.expired(now, &self.limits);
            if expired {
                removed.push(id.clone());
            }
            !expired
        });
        self.release_rooms(removed.len());
        removed
    }
}

fn summary(id: &Arc<str>, room: &Room) -> RoomSummary {
    RoomSummary {
        room_id: id.clone(),
        created_at: room.created_at,
        participant_count: room.participants.len(),
        host: room.participants.first().map(|p| p.view(true)),
        message_count: room.messages.len(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn registry(max_participants: usize, empty_secs: u64) -> MemoryRegistry {
        MemoryRegistry::new(Limits {
            max_participants,
            chat_history_limit: 3,
            empty_room_ttl: Duration::from_secs(empty_secs),
            unused_room_ttl: Duration::from_secs(600),
            max_rooms: 0,
        })
    }

    fn req(room: &str, name: &str) -> JoinRequest {
        JoinRequest {
            room_id: room.into(),
            user_name: name.into(),
            avatar: None,
        }
    }

    fn joined(outcome: JoinOutcome) -> (Option<Left>, Joined) {
        match outcome {
            JoinOutcome::Joined { left, joined } => (left, joined),
            JoinOutcome::AlreadyIn(_) => panic!("expected a new join"),
        }
    }

    #[test]
    fn first_joiner_is_host_and_host_passes_on() {
        let r = registry(50, 300);
        let (_, a) = joined(r.join("a", &req("R", "Ann")).unwrap());
        assert!(a.created_room && a.me.is_admin);
        let (_, b) = joined(r.join("b", &req("R", "Bob")).unwrap());
        assert!(!b.me.is_admin);
        assert_eq!(b.participants.len(), 2);
        assert_eq!(&*b.participants[0].id, "a");
        let left = r.leave("a").unwrap();
        assert_eq!(&*left.participant.user_name, "Ann");
        assert_eq!(left.participants.len(), 1);
        assert!(left.participants[0].is_admin);
        assert_eq!(r.stats(), (1, 1));
    }

    #[test]
    fn rejoining_makes_a_new_last_participant() {
        let r = registry(50, 300);
        r.join("a", &req("R", "Ann")).unwrap();
        r.join("b", &req("R", "Bob")).unwrap();
        r.leave("a");
        let (_, again) = joined(r.join("a", &req("R", "Ann")).unwrap());
        assert!(!again.me.is_admin);
        assert_eq!(&*again.participants[1].id, "a");
    }

    #[test]
    fn joining_the_same_room_changes_nothing() {
        let r = registry(50, 300);
        r.join("a", &req("R", "Ann")).unwrap();
        match r.join("a", &req("R", "Other")).unwrap() {
            JoinOutcome::AlreadyIn(j) => {
                assert_eq!(&*j.me.user_name, "Ann");
                assert_eq!(j.participants.len(), 1);
            }
            JoinOutcome::Joined { .. } => panic!("joined twice"),
        }
    }

    #[test]
    fn switching_rooms_leaves_the_old_one() {
        let r = registry(50, 300);
        r.join("a", &req("R1", "Ann")).unwrap();
        r.join("b", &req("R1", "Bob")).unwrap();
        let (left, j) = joined(r.join("a", &req("R2", "Ann")).unwrap());
        let left = left.unwrap();
        assert_eq!(&*left.room_id, "R1");
        assert_eq!(left.participants.len(), 1);
        assert_eq!(&*j.room_id, "R2");
        assert_eq!(r.room_info("R1").unwrap().participant_count, 1);
        assert_eq!(r.current_room("a", None).unwrap().as_ref(), "R2");
        assert_eq!(r.stats(), (2, 2));
    }

    #[test]
    fn a_full_room_refuses_and_the_socket_stays() {
        let r = registry(1, 300);
        r.join("a", &req("R1", "Ann")).unwrap();
        r.join("b", &req("R2", "Bob")).unwrap();
        let err = r.join("b", &req("R1", "Bob")).unwrap_err();
        assert_eq!(err.code, ErrorCode::RoomFull);
        assert_eq!(r.current_room("b", None).unwrap().as_ref(), "R2");
        assert_eq!(r.room_info("R2").unwrap().participant_count, 1);
    }

    #[test]
    fn empty_rooms_go_at_once_with_zero_ttl_else_after_it() {
        let r = registry(50, 0);
        r.join("a", &req("R", "Ann")).unwrap();
        assert!(r.leave("a").unwrap().room_removed);
        assert_eq!(r.stats(), (0, 0));

        let r = registry(50, 300);
        r.join("a", &req("R", "Ann")).unwrap();
        assert!(!r.leave("a").unwrap().room_removed);
        let now = Instant::now();
        assert!(r.sweep(now).is_empty());
        assert_eq!(r.sweep(now + Duration::from_secs(300)).len(), 1);
        assert_eq!(r.stats(), (0, 0));
    }

    #[test]
    fn unused_created_rooms_expire_after_their_own_ttl() {
        let r = registry(50, 0);
        let info = r.create_room().unwrap();
        assert_eq!(info.room_id.len(), 8);
        assert!(
            info.room_id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
        let now = Instant::now();
        assert!(r.sweep(now + Duration::from_secs(599)).is_empty());
        assert_eq!(r.sweep(now + Duration::from_secs(601)), vec![info.room_id]);
    }

    #[test]
    fn the_room_cap_counts_created_and_joined_rooms() {
        let r = MemoryRegistry::new(Limits {
            max_rooms: 2,
            ..registry(50, 0).limits
        });
        r.create_room().unwrap();
        r.join("a", &req("R", "Ann")).unwrap();
        assert_eq!(r.create_room().unwrap_err(), RoomLimitReached);
        let err = r.join("b", &req("R2", "Bob")).unwrap_err();
        assert_eq!(err.code, ErrorCode::TooManyRooms);
        r.join("b", &req("R", "Bob")).unwrap();
        r.leave("a");
        r.leave("b");
        assert_eq!(r.stats(), (1, 0));
        r.join("c", &req("R3", "Cat")).unwrap();
        assert_eq!(r.stats(), (2, 1));
    }

    #[test]
    fn closing_a_room_removes_everyone_and_its_history() {
        let r = registry(50, 300);
        r.join("a", &req("R", "Ann")).unwrap();
        r.join("b", &req("R", "Bob")).unwrap();
        r.join("c", &req("S", "Cat")).unwrap();
        r.chat("a", None, "hi").unwrap();
        let summaries = r.summaries();
        assert_eq!(summaries.len(), 2);
        let detail = r.detail("R").unwrap();
        assert_eq!(detail.summary.message_count, 1);
        assert_eq!(detail.summary.host.unwrap().id.as_ref(), "a");
        assert_eq!(detail.participants.len(), 2);
        let gone = r.close_room("R").unwrap();
        assert_eq!(gone.len(), 2);
        assert_eq!(r.stats(), (1, 1));
        assert!(r.current_room("a", None).is_err());
        assert!(r.close_room("R").is_none());
        let (_, j) = joined(r.join("a", &req("R", "Ann")).unwrap());
        assert!(j.messages.is_empty() && j.created_room);
    }

    #[test]
    fn chat_uses_registered_identity_and_caps_history() {
        let r = registry(50, 300);
        r.join("a", &req("R", "Ann")).unwrap();
        for i in 0..5 {
            let m = r.chat("a", Some("R"), &format!("m{i}")).unwrap().message;
            assert_eq!(&*m.user_name, "Ann");
            assert_eq!(&*m.sender_id, "a");
        }
        let (_, j) = joined(r.join("b", &req("R", "Bob")).unwrap());
        let texts: Vec<_> = j.messages.iter().map(|m| m.message.to_string()).collect();
        assert_eq!(texts, ["m2", "m3", "m4"]);
        assert_eq!(
            r.chat("a", Some("X"), "hi").unwrap_err().code,
            ErrorCode::NotInRoom
        );
        assert_eq!(
            r.chat("z", None, "hi").unwrap_err().code,
            ErrorCode::NotInRoom
        );
    }

    #[test]
    fn relay_only_within_a_room() {
        let r = registry(50, 300);
        r.join("a", &req("R1", "Ann")).unwrap();
        r.join("b", &req("R1", "Bob")).unwrap();
        r.join("c", &req("R2", "Cat")).unwrap();
        assert_eq!(r.relay_room("a", None, "b").unwrap().as_ref(), "R1");
        assert_eq!(
            r.relay_room("a", None, "c").unwrap_err().code,
            ErrorCode::TargetNotInRoom
        );
        assert_eq!(
            r.relay_room("a", None, "nobody").unwrap_err().code,
            ErrorCode::TargetNotInRoom
        );
        assert_eq!(
            r.relay_room("z", None, "a").unwrap_err().code,
            ErrorCode::NotInRoom
        );
    }

    #[test]
    fn media_flags_change_both_spellings() {
        let r = registry(50, 300);
        r.join("a", &req("R", "Ann")).unwrap();
        let u = r
            .set_media(
                "a",
                None,
                MediaChange {
                    kind: MediaKind::Audio,
                    enabled: false,
                },
            )
            .unwrap();
        assert!(u.participant.is_audio_muted && !u.participant.is_audio_enabled);
        let u = r.set_screen_sharing("a", None, true).unwrap();
        assert!(u.participant.is_screen_sharing && u.participant.is_audio_muted);
        assert_eq!(u.participants.len(), 1);
    }
}
