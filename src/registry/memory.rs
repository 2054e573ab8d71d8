//! The in-memory registry of a single instance (the default): rooms, participants, hosts,
//! chat history and the host's moderation state (permissions, lock, lobby, password) in
//! `DashMap`s. Every operation is synchronous, takes its locks briefly and returns *what
//! happened*. A change is also announced as a [`Batch`] sent while the room's lock is still
//! held, so the announcer sees each room's changes in the order they were made; the emits
//! themselves happen there, with no lock held.
//!
//! Lock order: a room's lock may be held while `members` or `waiting` is touched, never the
//! other way round (their guards are never held across a room lock).

use std::collections::VecDeque;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use dashmap::mapref::one::RefMut;

use super::error::RoomLimitReached;
use super::events::{Actor, Batch, Change, DenyCause, Event, Inbox, LeaveReason, Origin, RoomFlag};
use super::outcome::{
    Creator, JoinOutcome, Joined, Left, Limits, MAX_WAITERS, Moderated, RoomDetail, RoomInfo,
    RoomSummary, Said, Updated,
};
use crate::model::{
    ChatMessage, Connection, MediaKind, MediaOff, Participant, ParticipantView, Permission,
    RoomState, Timestamp,
};
use crate::password::{PasswordHash, PasswordKey, RoomPassword};
use crate::protocol::{Action, ErrorCode, JoinRequest, MediaChange, ProtocolError};

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
    /// In join order.
    participants: Vec<Participant>,
    messages: History,
    occupancy: Occupancy,
    /// Places promised to sockets switching in from another room (see `join`).
    reserved: usize,
    /// Whose address made it (counted in `MAX_ROOMS_PER_ADDRESS` while it exists).
    creator: Option<IpAddr>,
    /// The host: whoever joined the room empty, then whom it was transferred to, or the
    /// earliest remaining participant when the host leaves. `None` while nobody is in it.
    host: Option<Arc<str>>,
    /// Only participants may (re-)join; reset when the room empties.
    locked: bool,
    /// Newcomers wait for the host to admit them; reset when the room empties.
    lobby: bool,
    password: Option<PasswordHash>,
    /// The lobby's waiters, in the order they asked.
    waiters: Vec<Participant>,
    /// Lobby places promised to sockets switching in from another room.
    reserved_waiters: usize,
}

/// What a join was promised by [`MemoryRegistry::reserve_place`].
#[derive(Debug, Clone, Copy)]
struct Place {
    created: bool,
    /// A place in the lobby rather than in the room.
    lobby: bool,
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
            host: None,
            locked: false,
            lobby: false,
            password: None,
            waiters: Vec::new(),
            reserved_waiters: 0,
        }
    }

    fn is_host(&self, id: &str) -> bool {
        self.host.as_deref() == Some(id)
    }

    fn views(&self) -> Vec<ParticipantView> {
        self.participants
            .iter()
            .map(|p| p.view(self.is_host(&p.id)))
            .collect()
    }

    fn state(&self) -> RoomState {
        RoomState {
            host_id: self.host.clone(),
            locked: self.locked,
            lobby: self.lobby,
            has_password: self.password.is_some(),
        }
    }

    fn position(&self, id: &str) -> Option<usize> {
        self.participants.iter().position(|p| &*p.id == id)
    }

    fn waiter_position(&self, id: &str) -> Option<usize> {
        self.waiters.iter().position(|p| &*p.id == id)
    }

    /// Room for one more participant (places promised to switchers count).
    fn has_place(&self, max_participants: usize) -> bool {
        self.participants.len() + self.reserved < max_participants
    }

    fn expired(&self, now: Instant, limits: &Limits) -> bool {
        if self.reserved > 0 || self.reserved_waiters > 0 {
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
    /// Socket id → the room whose lobby it waits in. A waiter is in no room.
    waiting: DashMap<Arc<str>, Arc<str>>,
    /// What room passwords are hashed with.
    password_key: PasswordKey,
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
            waiting: DashMap::new(),
            password_key: PasswordKey::random()
                .unwrap_or_else(|_| PasswordKey::from_secret(&uuid::Uuid::new_v4().to_string())),
            limits,
            inbox,
            instance,
        }
    }

    /// Hashes room passwords with `key` (`ROOM_PASSWORD_KEY`) rather than a key of its own.
    pub fn with_password_key(mut self, key: PasswordKey) -> Self {
        self.password_key = key;
        self
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
    /// `creator`, with `password` if given.
    pub fn create_room(
        &self,
        creator: IpAddr,
        password: Option<&RoomPassword>,
    ) -> Result<RoomInfo, ProtocolError> {
        let password = password.map(|p| self.hash(p)).transpose()?;
        self.reserve_room(creator)?;
        loop {
            let id: Arc<str> = uuid::Uuid::new_v4().simple().to_string()[..8]
                .to_ascii_uppercase()
                .into();
            if let Entry::Vacant(slot) = self.rooms.entry(id.clone()) {
                let mut room = Room::new(
                    Occupancy::Unused {
                        since: Instant::now(),
                    },
                    Some(creator),
                );
                room.password = password;
                let created_at = room.created_at;
                let has_password = room.password.is_some();
                let room = slot.insert(room);
                self.announce(None, vec![opened(room.key(), created_at)]);
                return Ok(RoomInfo {
                    room_id: id,
                    participant_count: 0,
                    created_at,
                    has_password,
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
                has_password: room.password.is_some(),
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

    /// Puts `socket` in the requested room, leaving its current room first if it differs
    /// (or giving up its place in another room's lobby). A refusal (locked, wrong password,
    /// full) leaves it where it was. A room whose lobby is on takes it as a waiter instead.
    ///
    /// A switch touches two rooms, each announced under its own lock: a place (in the room or
    /// its lobby) is first reserved in the new room, after its checks, so it cannot fill up
    /// meanwhile; the old room is left (announced as a switch), then the place is taken
    /// (announced with `ticket`).
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
        let waiting = self.waiting.get(socket).map(|r| r.value().clone());
        if let Some(room_id) = &waiting
            && **room_id == *req.room_id
            && self
                .rooms
                .get(room_id)
                .is_some_and(|r| r.waiter_position(socket).is_some())
        {
            return Ok(JoinOutcome::AlreadyWaiting {
                room_id: room_id.clone(),
            });
        }
        let Some(place) = self.reserve_place(req, creator)? else {
            return Ok(JoinOutcome::NeedsNewRoom);
        };
        if let Some(old) = waiting {
            self.cancel_waiting(&old, socket, None);
        }
        let left = current
            .and_then(|old| self.remove_from_room(&old, socket, LeaveReason::Switched, None));
        let socket_id: Arc<str> = socket.into();
        let mut participant = Participant::new(
            socket_id.clone(),
            req.user_name.as_str().into(),
            req.avatar.as_deref().map(Into::into),
        );
        if self.limits.connection_states {
            participant.connection = Some(Connection::Connected);
        }
        let (room_id, mut room) = match self.rooms.entry(req.room_id.as_str().into()) {
            Entry::Occupied(e) => (e.key().clone(), e.into_ref()),
            // Closed since the place was reserved: made anew.
            Entry::Vacant(e) => {
                self.reserve_room(creator.address)?;
                let id = e.key().clone();
                let mut room = Room::new(Occupancy::Occupied, Some(creator.address));
                if place.lobby {
                    room.reserved_waiters = 1;
                } else {
                    room.reserved = 1;
                }
                let room = e.insert(room);
                self.announce(None, vec![opened(&id, room.created_at)]);
                (id, room)
            }
        };
        if place.lobby {
            room.reserved_waiters = room.reserved_waiters.saturating_sub(1);
            if let Some(host) = room.host.clone()
                && room.lobby
            {
                let waiter = participant.as_waiter();
                room.waiters.push(participant);
                self.waiting.insert(socket_id.clone(), room_id.clone());
                self.announce(
                    ticket,
                    vec![
                        Event::Waiting {
                            room_id: room_id.clone(),
                            socket: socket_id,
                        },
                        Event::AdmissionRequested {
                            room_id: room_id.clone(),
                            host,
                            waiter,
                        },
                    ],
                );
                return Ok(JoinOutcome::Waiting { left, room_id });
            }
            // The lobby was switched off (or the room emptied) meanwhile: in it goes.
        } else {
            room.reserved = room.reserved.saturating_sub(1);
        }
        // A host by token (a JWT `host` claim) goes first in the list and takes the role, as
        // by a transfer.
        let position = if req.host { 0 } else { room.participants.len() };
        room.participants.insert(position, participant);
        let previous_host = if req.host || room.host.is_none() {
            room.host.replace(socket_id.clone())
        } else {
            None
        };
        room.occupancy = Occupancy::Occupied;
        self.members.insert(socket_id.clone(), room_id.clone());
        let joined = Self::arrival(&room_id, &room, place.created, position);
        let shared = Arc::new(joined.clone());
        let mut events = vec![Event::Welcome(shared.clone())];
        if let Some(previous) = previous_host.filter(|p| *p != socket_id) {
            events.push(Event::HostChanged {
                room_id: room_id.clone(),
                host: socket_id.clone(),
                previous,
            });
            events.extend(room.waiters.iter().map(|w| Event::AdmissionRequested {
                room_id: room_id.clone(),
                host: socket_id.clone(),
                waiter: w.as_waiter(),
            }));
        }
        events.push(Event::Joined(shared));
        self.announce(ticket, events);
        Ok(JoinOutcome::Joined { left, joined })
    }

    /// The arrival of the room's participant at `position`, as it and the others are told.
    fn arrival(room_id: &Arc<str>, room: &Room, created_room: bool, position: usize) -> Joined {
        let participants = room.views();
        Joined {
            room_id: room_id.clone(),
            me: participants[position].clone(),
            participants,
            messages: room.messages.messages.iter().cloned().collect(),
            created_room,
            room: room.state(),
        }
    }

    /// Checks a join against room `room_id` and promises it a place there or in its lobby
    /// (creating the room within the room caps, if `creator` may); `None` if the room would
    /// be new and the creator may not make it. In this order: locked, wrong password, full,
    /// then the lobby (full at [`MAX_WAITERS`]).
    fn reserve_place(
        &self,
        req: &JoinRequest,
        creator: Creator,
    ) -> Result<Option<Place>, ProtocolError> {
        let room_id = req.room_id.as_str();
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
        if room.locked {
            return Err(room_locked(room_id));
        }
        if let Some(hash) = &room.password
            && !req
                .password
                .as_ref()
                .is_some_and(|p| self.password_key.verify(hash, p))
        {
            return Err(wrong_password(room_id));
        }
        if !room.has_place(self.limits.max_participants) {
            return Err(room_full(room_id, self.limits.max_participants));
        }
        // A host by token is never held: it is the one who admits.
        if room.lobby && !room.participants.is_empty() && !req.host {
            if room.waiters.len() + room.reserved_waiters >= MAX_WAITERS {
                return Err(lobby_full(room_id));
            }
            room.reserved_waiters += 1;
            return Ok(Some(Place {
                created,
                lobby: true,
            }));
        }
        room.reserved += 1;
        Ok(Some(Place {
            created,
            lobby: false,
        }))
    }

    /// Takes `socket` out of its room, or out of the lobby it waits in; `None` if it was in
    /// no room (a waiter's departure is announced to the host all the same).
    pub fn leave(&self, socket: &str, reason: LeaveReason, ticket: Option<u64>) -> Option<Left> {
        // A waiter admitted while this runs is a member on the next round.
        for _ in 0..3 {
            if let Some((_, room_id)) = self.members.remove(socket) {
                return self.remove_from_room(&room_id, socket, reason, ticket);
            }
            let room_id = self.waiting.get(socket).map(|r| r.value().clone())?;
            if self.cancel_waiting(&room_id, socket, ticket) {
                return None;
            }
        }
        None
    }

    /// `leave-room` from a waiter: gives up its place in the lobby. The room it waited for,
    /// or `None` if it waits for none.
    pub fn withdraw(
        &self,
        socket: &str,
        named: Option<&str>,
        ticket: Option<u64>,
    ) -> Result<Option<Arc<str>>, ProtocolError> {
        let Some(room_id) = self.waiting.get(socket).map(|r| r.value().clone()) else {
            return Ok(None);
        };
        if named.is_some_and(|named| named != &*room_id) {
            return Err(ProtocolError::not_in_room());
        }
        Ok(self
            .cancel_waiting(&room_id, socket, ticket)
            .then_some(room_id))
    }

    /// Takes waiter `socket` out of the lobby of `room_id`, telling the host; `false` if it
    /// was not waiting there.
    fn cancel_waiting(&self, room_id: &Arc<str>, socket: &str, ticket: Option<u64>) -> bool {
        let Some(mut room) = self.rooms.get_mut(room_id) else {
            self.waiting.remove_if(socket, |_, r| r == room_id);
            return false;
        };
        let Some(index) = room.waiter_position(socket) else {
            return false;
        };
        let waiter = room.waiters.remove(index);
        self.waiting.remove(socket);
        if let Some(host) = room.host.clone() {
            self.announce(
                ticket,
                vec![Event::AdmissionCancelled {
                    room_id: room_id.clone(),
                    host,
                    waiter: waiter.id,
                }],
            );
        }
        true
    }

    fn remove_from_room(
        &self,
        room_id: &str,
        socket: &str,
        reason: LeaveReason,
        ticket: Option<u64>,
    ) -> Option<Left> {
        let left = {
            let mut room = self.rooms.get_mut(room_id)?;
            let id = room.key().clone();
            let index = room.position(socket)?;
            let (left, after) = self.take_out(&id, room.value_mut(), index);
            let mut events = vec![Event::Left {
                left: Arc::new(left.clone()),
                reason,
            }];
            events.extend(after);
            self.announce(ticket, events);
            left
        };
        if left.room_removed
            && let Some((_, room)) = self.rooms.remove_if(room_id, |id, room| {
                let unused = room.participants.is_empty()
                    && room.reserved == 0
                    && room.reserved_waiters == 0;
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

    /// Takes participant `index` out of `room` (locked; its `members` entry is the caller's
    /// business): the host passes to the earliest remaining participant, who is told the
    /// lobby's waiters again; a room that empties drops its lock and lobby, and its waiters
    /// are refused (nobody is left to admit them). Returns the Left and the events that
    /// follow it.
    fn take_out(&self, room_id: &Arc<str>, room: &mut Room, index: usize) -> (Left, Vec<Event>) {
        let participant = room.participants.remove(index);
        let mut after = Vec::new();
        let mut new_host = None;
        if room.is_host(&participant.id) {
            room.host = room.participants.first().map(|p| p.id.clone());
            new_host = room.host.clone();
        }
        if room.participants.is_empty() {
            room.occupancy = Occupancy::Empty {
                since: Instant::now(),
            };
            if room.messages.bytes > 0 {
                self.emptied_queue().push_back(room_id.clone());
            }
            room.locked = false;
            room.lobby = false;
            for waiter in room.waiters.drain(..) {
                self.waiting.remove_if(&waiter.id, |_, r| r == room_id);
                after.push(Event::Denied {
                    room_id: room_id.clone(),
                    socket: waiter.id,
                    cause: DenyCause::RoomEmptied,
                });
            }
        } else if let Some(host) = &new_host {
            after.extend(room.waiters.iter().map(|w| Event::AdmissionRequested {
                room_id: room_id.clone(),
                host: host.clone(),
                waiter: w.as_waiter(),
            }));
        }
        let now_empty =
            room.participants.is_empty() && room.reserved == 0 && room.reserved_waiters == 0;
        let left = Left {
            room_id: room_id.clone(),
            participant,
            participants: room.views(),
            room_removed: now_empty && self.limits.empty_room_ttl.is_zero(),
            new_host,
        };
        (left, after)
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
            room: room.state(),
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

    /// A media change of `socket` itself; turning on what the host does not allow is
    /// `forbidden` and changes nothing.
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
        let needs = match media.kind {
            MediaKind::Audio => Permission::Mic,
            MediaKind::Video => Permission::Camera,
        };
        self.update(socket, named_room, change, ticket, |p| {
            if media.enabled && !p.allows(needs) {
                return Err(ProtocolError::not_allowed(needs));
            }
            match media.kind {
                MediaKind::Audio => p.audio_muted = !media.enabled,
                MediaKind::Video => p.video_off = !media.enabled,
            }
            Ok(())
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
            if sharing && !p.can_share_screen {
                return Err(ProtocolError::not_allowed(Permission::Screen));
            }
            p.screen_sharing = sharing;
            Ok(())
        })
    }

    fn update(
        &self,
        socket: &str,
        named_room: Option<&str>,
        change: Change,
        ticket: Option<u64>,
        apply: impl FnOnce(&mut Participant) -> Result<(), ProtocolError>,
    ) -> Result<Updated, ProtocolError> {
        let room_id = self.current_room(socket, named_room)?;
        let mut room = self
            .rooms
            .get_mut(&room_id)
            .ok_or_else(ProtocolError::not_in_room)?;
        let index = room
            .position(socket)
            .ok_or_else(ProtocolError::not_in_room)?;
        apply(&mut room.participants[index])?;
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

    /// Records whether `socket`'s client is connected or reconnecting (connection state
    /// recovery). `None` if it is in no room, its state was already that, or participants
    /// carry no connection state: then nothing is announced.
    pub fn set_connection(
        &self,
        socket: &str,
        connection: Connection,
        ticket: Option<u64>,
    ) -> Option<Updated> {
        let room_id = self.members.get(socket)?.value().clone();
        let mut room = self.rooms.get_mut(&room_id)?;
        let index = room.position(socket)?;
        let state = &mut room.participants[index].connection;
        if state.is_none() || *state == Some(connection) {
            return None;
        }
        *state = Some(connection);
        let participants = room.views();
        let updated = Updated {
            room_id,
            participant: participants[index].clone(),
            participants,
        };
        let change = Change::Connection {
            reconnecting: connection == Connection::Reconnecting,
        };
        self.announce(
            ticket,
            vec![Event::Updated {
                updated: Arc::new(updated.clone()),
                change,
            }],
        );
        Some(updated)
    }

    fn hash(&self, password: &RoomPassword) -> Result<PasswordHash, ProtocolError> {
        self.password_key.hash(password).map_err(|e| {
            tracing::error!("no randomness for a password salt: {e}");
            ProtocolError::new(ErrorCode::Internal, "Internal server error")
        })
    }

    /// The room `socket` is the host of, locked, and the host as the actor of a moderation
    /// action: `not_in_room` or `forbidden` otherwise.
    fn hosted(
        &self,
        socket: &str,
        named: Option<&str>,
    ) -> Result<(RefMut<'_, Arc<str>, Room>, Actor), ProtocolError> {
        let room_id = self.current_room(socket, named)?;
        let room = self
            .rooms
            .get_mut(&room_id)
            .ok_or_else(ProtocolError::not_in_room)?;
        let index = room
            .position(socket)
            .ok_or_else(ProtocolError::not_in_room)?;
        if !room.is_host(socket) {
            return Err(ProtocolError::not_host());
        }
        let host = &room.participants[index];
        let by = Actor {
            id: host.id.clone(),
            name: host.user_name.clone(),
        };
        Ok((room, by))
    }

    /// A host's moderation action on its room: checked, made and announced under the room's
    /// lock (ending the room removes it).
    pub fn moderate(
        &self,
        socket: &str,
        named: Option<&str>,
        action: &Action,
        ticket: Option<u64>,
    ) -> Result<Moderated, ProtocolError> {
        if matches!(action, Action::End) {
            return self.end_room(socket, named, ticket);
        }
        let (mut room, by) = self.hosted(socket, named)?;
        let room_id = room.key().clone();
        if let Action::SetPassword { password } = action {
            room.password = password.as_ref().map(|p| self.hash(p)).transpose()?;
            return Ok(Moderated {
                room_id,
                announced: false,
                has_password: room.password.is_some(),
            });
        }
        let events = self.apply(&room_id, room.value_mut(), &by, action)?;
        self.announce(ticket, events);
        Ok(Moderated {
            room_id,
            announced: true,
            has_password: room.password.is_some(),
        })
    }

    /// Makes `action` on `room` (locked, hosted by `by`); the events to announce. A refusal
    /// changes nothing.
    fn apply(
        &self,
        room_id: &Arc<str>,
        room: &mut Room,
        by: &Actor,
        action: &Action,
    ) -> Result<Vec<Event>, ProtocolError> {
        let target_index = |room: &Room, target: &str| {
            room.position(target)
                .ok_or_else(ProtocolError::target_not_in_room)
        };
        let mut events = Vec::new();
        match action {
            Action::Permission {
                target,
                permission,
                allowed,
            } => {
                let index = target_index(room, target)?;
                let off = room.participants[index].set_permission(*permission, *allowed);
                let participants = room.views();
                let participant = participants[index].clone();
                if let Some(off) = off {
                    events.push(Event::Toggled {
                        room_id: room_id.clone(),
                        change: change_of(off),
                        participant: participant.clone(),
                    });
                }
                events.push(Event::PermissionChanged {
                    room_id: room_id.clone(),
                    target: participant.id,
                    permission: *permission,
                    allowed: *allowed,
                    by: by.clone(),
                });
                events.push(Event::Listed {
                    room_id: room_id.clone(),
                    participants,
                });
            }
            Action::MuteAll => {
                let mut muted = Vec::new();
                for (i, p) in room.participants.iter_mut().enumerate() {
                    if p.id != by.id && !p.audio_muted {
                        p.audio_muted = true;
                        muted.push(i);
                    }
                }
                let participants = room.views();
                events.extend(muted.into_iter().map(|i| Event::Toggled {
                    room_id: room_id.clone(),
                    participant: participants[i].clone(),
                    change: change_of(MediaOff::Audio),
                }));
                events.push(Event::Listed {
                    room_id: room_id.clone(),
                    participants,
                });
            }
            Action::Kick { target, reason } => {
                let index = target_index(room, target)?;
                if **target == *by.id {
                    return Err(ProtocolError::invalid("The host cannot kick itself"));
                }
                self.members.remove_if(target.as_str(), |_, r| r == room_id);
                let (left, after) = self.take_out(room_id, room, index);
                events.push(Event::Kicked {
                    room_id: room_id.clone(),
                    socket: left.participant.id.clone(),
                    by: by.clone(),
                    reason: reason.as_deref().map(Into::into),
                });
                events.push(Event::Left {
                    left: Arc::new(left),
                    reason: LeaveReason::HostKicked,
                });
                events.extend(after);
            }
            Action::TransferHost { target } => {
                let index = target_index(room, target)?;
                if **target == *by.id {
                    return Err(ProtocolError::invalid("You are already the host"));
                }
                let host = room.participants[index].id.clone();
                room.host = Some(host.clone());
                events.push(Event::HostChanged {
                    room_id: room_id.clone(),
                    host: host.clone(),
                    previous: by.id.clone(),
                });
                events.push(Event::Listed {
                    room_id: room_id.clone(),
                    participants: room.views(),
                });
                events.extend(room.waiters.iter().map(|w| Event::AdmissionRequested {
                    room_id: room_id.clone(),
                    host: host.clone(),
                    waiter: w.as_waiter(),
                }));
            }
            Action::Lock { locked } => {
                room.locked = *locked;
                events.push(flag_changed(room_id, RoomFlag::Lock, *locked, by));
            }
            Action::Lobby { enabled } => {
                room.lobby = *enabled;
                events.push(flag_changed(room_id, RoomFlag::Lobby, *enabled, by));
                if !enabled {
                    // Everyone waiting comes in, in the order they asked, while there is room.
                    for waiter in std::mem::take(&mut room.waiters) {
                        if room.has_place(self.limits.max_participants) {
                            events.extend(self.admit_waiter(room_id, room, waiter));
                        } else {
                            self.waiting.remove(&waiter.id);
                            events.push(Event::Denied {
                                room_id: room_id.clone(),
                                socket: waiter.id,
                                cause: DenyCause::RoomFull,
                            });
                        }
                    }
                }
            }
            Action::Admit { waiter } => {
                let index = room
                    .waiter_position(waiter)
                    .ok_or_else(ProtocolError::not_waiting)?;
                if !room.has_place(self.limits.max_participants) {
                    return Err(room_full(room_id, self.limits.max_participants));
                }
                let waiter = room.waiters.remove(index);
                events.extend(self.admit_waiter(room_id, room, waiter));
            }
            Action::Deny { waiter, reason } => {
                let index = room
                    .waiter_position(waiter)
                    .ok_or_else(ProtocolError::not_waiting)?;
                let waiter = room.waiters.remove(index);
                self.waiting.remove(&waiter.id);
                events.push(Event::Denied {
                    room_id: room_id.clone(),
                    socket: waiter.id,
                    cause: DenyCause::Denied {
                        reason: reason.as_deref().map(Into::into),
                    },
                });
            }
            Action::SetPassword { .. } | Action::End => {
                return Err(ProtocolError::new(
                    ErrorCode::Internal,
                    "Internal server error",
                ));
            }
        }
        Ok(events)
    }

    /// A waiter (already out of the lobby) joins `room` as by a direct join: its welcome and
    /// its arrival.
    fn admit_waiter(
        &self,
        room_id: &Arc<str>,
        room: &mut Room,
        mut waiter: Participant,
    ) -> [Event; 2] {
        waiter.joined_at = Timestamp::now();
        self.waiting.remove(&waiter.id);
        self.members.insert(waiter.id.clone(), room_id.clone());
        room.participants.push(waiter);
        let shared = Arc::new(Self::arrival(
            room_id,
            room,
            false,
            room.participants.len() - 1,
        ));
        [Event::Welcome(shared.clone()), Event::Joined(shared)]
    }

    /// `end-room`: removes the room at once, whatever `EMPTY_ROOM_TTL_SECS` says; everyone
    /// but the host is told, waiters are refused.
    fn end_room(
        &self,
        socket: &str,
        named: Option<&str>,
        ticket: Option<u64>,
    ) -> Result<Moderated, ProtocolError> {
        let room_id = self.hosted(socket, named)?.0.key().clone();
        let removed = self.rooms.remove_if(&room_id, |id, room| {
            let hosting = room.is_host(socket);
            if hosting {
                let mut events = closing(id, room, Some(socket.into()));
                events.push(removed(id, room.created_at));
                self.announce(ticket, events);
            }
            hosting
        });
        let Some((_, room)) = removed else {
            return Err(ProtocolError::not_host());
        };
        self.forget(&room_id, &room);
        Ok(Moderated {
            room_id,
            announced: true,
            has_password: false,
        })
    }

    /// Uncounts a removed room and forgets its participants' and waiters' places.
    fn forget(&self, room_id: &str, room: &Room) {
        self.release_room(room);
        for p in &room.participants {
            self.members
                .remove_if(&p.id, |_, in_room| &**in_room == room_id);
        }
        for w in &room.waiters {
            self.waiting
                .remove_if(&w.id, |_, in_room| &**in_room == room_id);
        }
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
        let (_, room) = self.rooms.remove_if(room_id, |id, room| {
            let mut events = closing(id, room, None);
            events.push(removed(id, room.created_at));
            self.announce(ticket, events);
            true
        })?;
        self.forget(room_id, &room);
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
        host: room
            .participants
            .iter()
            .find(|p| room.is_host(&p.id))
            .map(|p| p.view(true)),
        message_count: room.messages.messages.len(),
    }
}

/// The events of a room's closing: who was in it, then its waiters refused.
fn closing(id: &Arc<str>, room: &Room, ended_by: Option<Arc<str>>) -> Vec<Event> {
    let mut events = vec![Event::Closed {
        room_id: id.clone(),
        participants: room.participants.clone().into(),
        ended_by,
    }];
    events.extend(room.waiters.iter().map(|w| Event::Denied {
        room_id: id.clone(),
        socket: w.id.clone(),
        cause: DenyCause::RoomEnded,
    }));
    events
}

/// What media a moderation action turned off, as the change others are told of.
fn change_of(off: MediaOff) -> Change {
    match off {
        MediaOff::Audio => Change::Media {
            kind: MediaKind::Audio,
            enabled: false,
        },
        MediaOff::Video => Change::Media {
            kind: MediaKind::Video,
            enabled: false,
        },
        MediaOff::Screen => Change::ScreenShare { sharing: false },
    }
}

fn flag_changed(room_id: &Arc<str>, flag: RoomFlag, on: bool, by: &Actor) -> Event {
    Event::FlagChanged {
        room_id: room_id.clone(),
        flag,
        on,
        by: by.id.clone(),
    }
}

pub(super) fn room_full(room_id: &str, max: usize) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::RoomFull,
        format!("Room {room_id} is full ({max} participants at most)"),
    )
}

pub(super) fn lobby_full(room_id: &str) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::RoomFull,
        format!(
            "Too many are waiting to join room {room_id} ({MAX_WAITERS} at most); try again later"
        ),
    )
}

pub(super) fn room_locked(room_id: &str) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::RoomLocked,
        format!("Room {room_id} is locked by its host"),
    )
}

pub(super) fn wrong_password(room_id: &str) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::WrongPassword,
        format!("Room {room_id} needs the right password"),
    )
}
