//! The in-memory registry of a single instance (the default): rooms, participants, host
//! order and chat history in `DashMap`s. Every operation is synchronous, takes its locks
//! briefly and returns *what happened*. A change is also announced as a [`Batch`] sent while
//! the room's lock is still held, so the announcer sees each room's changes in the order they
//! were made; the emits themselves happen there, with no lock held.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;

use super::error::RoomLimitReached;
use super::events::{Batch, Change, Event, Inbox, LeaveReason, Origin};
use super::outcome::{
    Creator, JoinOutcome, Joined, Left, Limits, RoomDetail, RoomInfo, RoomSummary, Said, Updated,
};
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

/// A room's chat history, oldest first, with the bytes it takes.
#[derive(Debug, Default)]
struct History {
    messages: VecDeque<Arc<ChatMessage>>,
    bytes: usize,
}

impl History {
    /// Keeps `message`, then drops the oldest messages past `max_messages` or `max_bytes`;
    /// returns the bytes kept minus the bytes dropped.
    fn push(&mut self, message: Arc<ChatMessage>, max_messages: usize, max_bytes: usize) -> isize {
        let added = message.size();
        self.bytes += added;
        self.messages.push_back(message);
        let mut dropped = 0;
        while self.messages.len() > max_messages
            || (self.bytes > max_bytes && !self.messages.is_empty())
        {
            dropped += self.pop_front();
        }
        added as isize - dropped as isize
    }

    /// Drops the oldest message; its bytes.
    fn pop_front(&mut self) -> usize {
        let freed = self.messages.pop_front().map_or(0, |m| m.size());
        self.bytes -= freed;
        freed
    }

    /// Drops everything; the bytes freed.
    fn clear(&mut self) -> usize {
        self.messages = VecDeque::new();
        std::mem::take(&mut self.bytes)
    }
}

#[derive(Debug)]
struct Room {
    created_at: Timestamp,
    /// In join order: the first one is the host.
    participants: Vec<Participant>,
    messages: History,
    occupancy: Occupancy,
    /// Places promised to sockets switching in from another room (see `join`).
    reserved: usize,
    /// Whose address made it (counted in `MAX_ROOMS_PER_ADDRESS` while it exists).
    creator: Option<IpAddr>,
}

impl Room {
    fn new(occupancy: Occupancy, creator: Option<IpAddr>) -> Self {
        Self {
            created_at: Timestamp::now(),
            participants: Vec::new(),
            messages: History::default(),
            occupancy,
            reserved: 0,
            creator,
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
        if self.reserved > 0 {
            return false;
        }
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
    /// Bytes of chat history kept in all rooms.
    history_bytes: AtomicUsize,
    /// Rooms that emptied with history, oldest first: theirs goes first when the total
    /// history budget is needed (an entry may be stale: the room filled again or is gone).
    emptied: Mutex<VecDeque<Arc<str>>>,
    /// Address → how many existing rooms it made.
    creators: DashMap<IpAddr, usize>,
    limits: Limits,
    /// Where changes are announced.
    inbox: Inbox,
    /// This instance, the origin of every change made here.
    instance: Arc<str>,
}

impl MemoryRegistry {
    pub fn new(limits: Limits, inbox: Inbox, instance: Arc<str>) -> Self {
        Self {
            rooms: DashMap::new(),
            members: DashMap::new(),
            room_count: AtomicUsize::new(0),
            history_bytes: AtomicUsize::new(0),
            emptied: Mutex::new(VecDeque::new()),
            creators: DashMap::new(),
            limits,
            inbox,
            instance,
        }
    }

    /// Announces one change; called with the changed room's lock held.
    fn announce(&self, ticket: Option<u64>, events: Vec<Event>) {
        let origin = Origin {
            instance: self.instance.clone(),
            ticket,
        };
        // Only fails once the announcer is gone (the server is stopping).
        let batch = Batch {
            origin,
            events,
            hooks: None,
        };
        self.inbox.send(batch).ok();
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// `(rooms, participants)` in existence.
    pub fn stats(&self) -> (usize, usize) {
        (self.room_count.load(Ordering::Relaxed), self.members.len())
    }

    /// Counts one more room made by `creator`, unless that would pass `MAX_ROOMS` or the
    /// creator's `MAX_ROOMS_PER_ADDRESS`.
    fn reserve_room(&self, creator: IpAddr) -> Result<(), RoomLimitReached> {
        let per_address = self.limits.max_rooms_per_address;
        {
            let mut made = self.creators.entry(creator).or_insert(0);
            if per_address > 0 && *made >= per_address {
                return Err(RoomLimitReached::Address);
            }
            *made += 1;
        }
        let max = self.limits.max_rooms;
        let counted = self
            .room_count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (max == 0 || n < max).then_some(n + 1)
            });
        if counted.is_err() {
            self.release_creator(creator);
            return Err(RoomLimitReached::Server);
        }
        Ok(())
    }

    fn release_creator(&self, creator: IpAddr) {
        if let Entry::Occupied(mut made) = self.creators.entry(creator) {
            *made.get_mut() -= 1;
            if *made.get() == 0 {
                made.remove();
            }
        }
    }

    fn emptied_queue(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<str>>> {
        self.emptied
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn count_history(&self, grown: isize) {
        if grown >= 0 {
            self.history_bytes
                .fetch_add(grown.unsigned_abs(), Ordering::AcqRel);
        } else {
            self.history_bytes
                .fetch_sub(grown.unsigned_abs(), Ordering::AcqRel);
        }
    }

    /// Brings the history of all rooms back within `CHAT_HISTORY_TOTAL_BYTES` after `room`
    /// grew: the history of rooms nobody is in goes first (oldest emptied first), then the
    /// oldest messages of `room` itself. Called with no room lock held.
    fn keep_history_within_budget(&self, room: &str) {
        let budget = self.limits.chat_history_total_bytes;
        let over = || self.history_bytes.load(Ordering::Acquire) > budget;
        while over() {
            let next = self.emptied_queue().pop_front();
            let Some(empty) = next else { break };
            if let Some(mut r) = self.rooms.get_mut(&empty)
                && r.participants.is_empty()
            {
                let freed = r.messages.clear();
                self.count_history(-(freed as isize));
            }
        }
        if over()
            && let Some(mut r) = self.rooms.get_mut(room)
        {
            while over() && !r.messages.messages.is_empty() {
                let freed = r.messages.pop_front();
                self.count_history(-(freed as isize));
            }
        }
    }

    /// Uncounts a room that is gone.
    fn release_room(&self, room: &Room) {
        self.room_count.fetch_sub(1, Ordering::AcqRel);
        self.count_history(-(room.messages.bytes as isize));
        if let Some(creator) = room.creator {
            self.release_creator(creator);
        }
    }

    /// Makes an empty room with a fresh id (8 upper-case characters of a v4 UUID), made by
    /// `creator`.
    pub fn create_room(&self, creator: IpAddr) -> Result<RoomInfo, RoomLimitReached> {
        self.reserve_room(creator)?;
        loop {
            let id: Arc<str> = uuid::Uuid::new_v4().simple().to_string()[..8]
                .to_ascii_uppercase()
                .into();
            if let Entry::Vacant(slot) = self.rooms.entry(id.clone()) {
                let room = Room::new(
                    Occupancy::Unused {
                        since: Instant::now(),
                    },
                    Some(creator),
                );
                let created_at = room.created_at;
                let room = slot.insert(room);
                self.announce(None, vec![opened(room.key(), created_at)]);
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
    ///
    /// A switch touches two rooms, each announced under its own lock: a place is first
    /// reserved in the new room (so it cannot fill up meanwhile), the old room is left
    /// (announced as a switch), then the place is taken (announced with `ticket`).
    pub fn join(
        &self,
        socket: &str,
        req: &JoinRequest,
        creator: Creator,
        ticket: Option<u64>,
    ) -> Result<JoinOutcome, ProtocolError> {
        let current = self.members.get(socket).map(|r| r.value().clone());
        if current.as_deref() == Some(req.room_id.as_str())
            && let Some(joined) = self.snapshot(&req.room_id, socket)
        {
            return Ok(JoinOutcome::AlreadyIn(joined));
        }
        let Some(created_room) = self.reserve_place(&req.room_id, creator)? else {
            return Ok(JoinOutcome::NeedsNewRoom);
        };
        let left = current
            .and_then(|old| self.remove_from_room(&old, socket, LeaveReason::Switched, None));
        let socket_id: Arc<str> = socket.into();
        let participant = Participant::new(
            socket_id.clone(),
            req.user_name.as_str().into(),
            req.avatar.as_deref().map(Into::into),
        );
        let joined = {
            let (room_id, mut room, remade) = match self.rooms.entry(req.room_id.as_str().into()) {
                Entry::Occupied(e) => (e.key().clone(), e.into_ref(), false),
                // Closed by an operator since the place was reserved: made anew.
                Entry::Vacant(e) => {
                    self.reserve_room(creator.address)?;
                    let id = e.key().clone();
                    let mut room = Room::new(Occupancy::Occupied, Some(creator.address));
                    room.reserved = 1;
                    (id, e.insert(room), true)
                }
            };
            let mut events = Vec::with_capacity(3);
            if remade {
                events.push(opened(&room_id, room.created_at));
            }
            room.reserved = room.reserved.saturating_sub(1);
            // A host by token goes first in join order, where the host is.
            let position = if req.host { 0 } else { room.participants.len() };
            room.participants.insert(position, participant);
            room.occupancy = Occupancy::Occupied;
            let participants = room.views();
            let joined = Joined {
                room_id,
                me: participants[position].clone(),
                participants,
                messages: room.messages.messages.iter().cloned().collect(),
                created_room,
            };
            let shared = Arc::new(joined.clone());
            events.extend([Event::Welcome(shared.clone()), Event::Joined(shared)]);
            self.announce(ticket, events);
            joined
        };
        self.members.insert(socket_id, joined.room_id.clone());
        Ok(JoinOutcome::Joined { left, joined })
    }

    /// Promises `socket` a place in room `room_id` (creating the room within the room caps,
    /// if `creator` may); whether the room is new, or `None` if it would be and the creator
    /// may not make it. A full room refuses.
    fn reserve_place(
        &self,
        room_id: &str,
        creator: Creator,
    ) -> Result<Option<bool>, ProtocolError> {
        let (mut room, created) = match self.rooms.entry(room_id.into()) {
            Entry::Occupied(e) => (e.into_ref(), false),
            Entry::Vacant(_) if !creator.may_create => return Ok(None),
            Entry::Vacant(e) => {
                self.reserve_room(creator.address)?;
                let room = e.insert(Room::new(Occupancy::Occupied, Some(creator.address)));
                // Announced now, under the room's lock: a joiner racing in before this one
                // finishes must come after it.
                self.announce(None, vec![opened(room.key(), room.created_at)]);
                (room, true)
            }
        };
        if room.participants.len() + room.reserved >= self.limits.max_participants {
            return Err(ProtocolError::new(
                ErrorCode::RoomFull,
                format!(
                    "Room {} is full ({} participants at most)",
                    room_id, self.limits.max_participants
                ),
            ));
        }
        room.reserved += 1;
        Ok(Some(created))
    }

    /// Takes `socket` out of its room; `None` if it was in none.
    pub fn leave(&self, socket: &str, reason: LeaveReason, ticket: Option<u64>) -> Option<Left> {
        let (_, room_id) = self.members.remove(socket)?;
        self.remove_from_room(&room_id, socket, reason, ticket)
    }

    fn remove_from_room(
        &self,
        room_id: &str,
        socket: &str,
        reason: LeaveReason,
        ticket: Option<u64>,
    ) -> Option<Left> {
        let (left, now_empty) = {
            let mut room = self.rooms.get_mut(room_id)?;
            let index = room.position(socket)?;
            let participant = room.participants.remove(index);
            let now_empty = room.participants.is_empty() && room.reserved == 0;
            if room.participants.is_empty() {
                room.occupancy = Occupancy::Empty {
                    since: Instant::now(),
                };
                if room.messages.bytes > 0 {
                    self.emptied_queue().push_back(room_id.into());
                }
            }
            let left = Left {
                room_id: room_id.into(),
                participant,
                participants: room.views(),
                room_removed: now_empty && self.limits.empty_room_ttl.is_zero(),
            };
            self.announce(
                ticket,
                vec![Event::Left {
                    left: Arc::new(left.clone()),
                    reason,
                }],
            );
            (left, now_empty)
        };
        if now_empty
            && self.limits.empty_room_ttl.is_zero()
            && let Some((_, room)) = self.rooms.remove_if(room_id, |id, room| {
                let unused = room.participants.is_empty() && room.reserved == 0;
                if unused {
                    self.announce(None, vec![removed(id, room.created_at)]);
                }
                unused
            })
        {
            self.release_room(&room);
        }
        Some(left)
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
            messages: room.messages.messages.iter().cloned().collect(),
            created_room: false,
        })
    }

    /// Records a chat message from `socket`, its name and avatar taken from the registry.
    pub fn chat(
        &self,
        socket: &str,
        named_room: Option<&str>,
        text: &str,
        ticket: Option<u64>,
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
        let limits = &self.limits;
        if limits.chat_history_limit > 0 {
            let grown = room.messages.push(
                message.clone(),
                limits.chat_history_limit,
                limits.chat_history_bytes,
            );
            self.count_history(grown);
        }
        let said = Said { room_id, message };
        self.announce(ticket, vec![Event::Said(said.clone())]);
        drop(room);
        self.keep_history_within_budget(&said.room_id);
        Ok(said)
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
        media: MediaChange,
        ticket: Option<u64>,
    ) -> Result<Updated, ProtocolError> {
        let change = Change::Media {
            kind: media.kind,
            enabled: media.enabled,
        };
        self.update(socket, named_room, change, ticket, |p| match media.kind {
            MediaKind::Audio => p.audio_muted = !media.enabled,
            MediaKind::Video => p.video_off = !media.enabled,
        })
    }

    pub fn set_screen_sharing(
        &self,
        socket: &str,
        named_room: Option<&str>,
        sharing: bool,
        ticket: Option<u64>,
    ) -> Result<Updated, ProtocolError> {
        let change = Change::ScreenShare { sharing };
        self.update(socket, named_room, change, ticket, |p| {
            p.screen_sharing = sharing;
        })
    }

    fn update(
        &self,
        socket: &str,
        named_room: Option<&str>,
        change: Change,
        ticket: Option<u64>,
        apply: impl FnOnce(&mut Participant),
    ) -> Result<Updated, ProtocolError> {
        let room_id = self.current_room(socket, named_room)?;
        let mut room = self
            .rooms
            .get_mut(&room_id)
            .ok_or_else(ProtocolError::not_in_room)?;
        let index = room
            .position(socket)
            .ok_or_else(ProtocolError::not_in_room)?;
        apply(&mut room.participants[index]);
        let participants = room.views();
        let updated = Updated {
            room_id,
            participant: participants[index].clone(),
            participants,
        };
        self.announce(
            ticket,
            vec![Event::Updated {
                updated: Arc::new(updated.clone()),
                change,
            }],
        );
        Ok(updated)
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
    pub fn close_room(&self, room_id: &str, ticket: Option<u64>) -> Option<Vec<Participant>> {
        let (id, room) = self.rooms.remove_if(room_id, |id, room| {
            self.announce(
                ticket,
                vec![
                    Event::Closed {
                        room_id: id.clone(),
                        participants: room.participants.clone().into(),
                    },
                    removed(id, room.created_at),
                ],
            );
            true
        })?;
        drop(id);
        self.release_room(&room);
        for p in &room.participants {
            self.members
                .remove_if(&p.id, |_, in_room| &**in_room == room_id);
        }
        Some(room.participants)
    }

    /// Removes the rooms that stayed empty (or unused) past their TTL; returns their ids.
    pub fn sweep(&self, now: Instant) -> Vec<Arc<str>> {
        let mut gone = Vec::new();
        self.rooms.retain(|id, room| {
            let expired = room.expired(now, &self.limits);
            if expired {
                self.announce(None, vec![removed(id, room.created_at)]);
                gone.push(id.clone());
                self.release_room(room);
            }
            !expired
        });
        // Forget emptied rooms that are gone or were entered again, and repeats. The queue
        // is not locked while rooms are (a leave locks its room, then the queue).
        let queue = std::mem::take(&mut *self.emptied_queue());
        let mut seen = std::collections::HashSet::new();
        let kept: VecDeque<Arc<str>> = queue
            .into_iter()
            .filter(|id| {
                seen.insert(id.clone())
                    && self
                        .rooms
                        .get(id)
                        .is_some_and(|r| r.participants.is_empty() && r.messages.bytes > 0)
            })
            .collect();
        let mut emptied = self.emptied_queue();
        let since = std::mem::replace(&mut *emptied, kept);
        emptied.extend(since);
        gone
    }
}

/// The event of a room's coming into existence.
fn opened(id: &Arc<str>, created_at: Timestamp) -> Event {
    Event::RoomOpened {
        room_id: id.clone(),
        created_at,
    }
}

/// The event of a room's removal.
fn removed(id: &Arc<str>, created_at: Timestamp) -> Event {
    Event::RoomRemoved {
        room_id: id.clone(),
        created_at,
    }
}

fn summary(id: &Arc<str>, room: &Room) -> RoomSummary {
    RoomSummary {
        room_id: id.clone(),
        created_at: room.created_at,
        participant_count: room.participants.len(),
        host: room.participants.first().map(|p| p.view(true)),
        message_count: room.messages.messages.len(),
    }
}
