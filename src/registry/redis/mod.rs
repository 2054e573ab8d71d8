//! The Redis registry of cluster mode: rooms, participants, host order, chat history and
//! TTLs live in Redis, and every change is one Lua script, so instances joining people into
//! the same room at once cannot pass `MAX_PARTICIPANTS`, disagree on the host or lose anyone.
//! It returns exactly the outcomes of [`super::memory::MemoryRegistry`]. Each script also
//! publishes what it changed ([`super::events`]) on `{p}:events` (every instance) or
//! `{p}:to:<instance>` (one instance), from inside the script, so every instance receives a
//! room's changes in the order Redis made them; [`decode_batch`] reads them back.
//!
//! Key schema, all under one hash tag `{p}` (from the configured prefix `p`), so every script
//! touches one slot:
//!
//! | key                 | type | contents                                                  |
//! |---------------------|------|-----------------------------------------------------------|
//! | `{p}:rooms`         | ZSET | room id → expiry deadline in ms, `+inf` while occupied    |
//! | `{p}:room:<id>`     | HASH | `created`: ISO timestamp, `creator`, `chatbytes`, `hooks` |
//! | `{p}:order:<id>`    | LIST | socket ids in join order (the first is the host)          |
//! | `{p}:people:<id>`   | HASH | socket id → participant JSON (`Stored`)                   |
//! | `{p}:chat:<id>`     | LIST | chat message JSON, oldest first                           |
//! | `{p}:member`        | HASH | socket id → the room it is in                             |
//! | `{p}:on:<instance>` | SET  | socket ids held by that instance                          |
//! | `{p}:instances`     | ZSET | instance id → last heartbeat in ms (Redis' clock)         |
//! | `{p}:reaped:<inst>` | STR  | set when that instance was reaped, until it beats again   |
//! | `{p}:events`        | chan | every room change, as a batch of events                   |
//! | `{p}:to:<instance>` | chan | what only that instance acts on: welcomes, relays         |
//!
//! `ZCARD {p}:rooms` is the room count (what `MAX_ROOMS` caps), `HLEN {p}:member` the
//! participant count. Deadlines and heartbeats use Redis' clock (`TIME` in the scripts), so
//! instances with skewed clocks agree on them.

pub mod connection;
mod wire;

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Script, ScriptInvocation};

use super::error::{RoomLimitReached, StoreUnavailable};
use super::events::{Change, LeaveReason, Relay};
use super::outcome::{
    Creator, JoinOutcome, Left, Limits, RoomDetail, RoomInfo, RoomSummary, Said, Updated,
};
use crate::model::{MediaKind, Participant, Timestamp};
use crate::protocol::{ErrorCode, JoinRequest, MediaChange, ProtocolError};
pub use wire::decode_batch;
use wire::{
    ChangeWire, ChatReply, CreateReply, JoinReply, LeftWire, RelayReply, RoomWire, Stored,
    UpdateReply, joined, parse, timestamp, view_of, views,
};

/// An upper bound on a whole call, reconnection attempts included (timeouts and backoff of
/// each attempt: [`connection::manager_config`]), so a call during an outage fails
/// as `unavailable` rather than hanging the handler.
const CALL_DEADLINE: Duration = Duration::from_secs(5);
/// Rooms one sweep removes at most; the rest go on the next (once a second).
const SWEEP_BATCH: usize = 500;
/// Fresh room ids tried before `create_room` gives up (a collision is already unlikely).
const CREATE_ATTEMPTS: usize = 16;

/// Prepended to every script: key names and the shared room operations.
const COMMON_LUA: &str = include_str!("scripts/common.lua");

/// One Lua script per atomic operation: the same for every registry, so built (and hashed)
/// once per process, which also keeps [`RedisRegistry`] small beside the memory registry in
/// the facade enum.
static SCRIPTS: LazyLock<Scripts> = LazyLock::new(Scripts::new);

struct Scripts {
    create: Script,
    join: Script,
    leave: Script,
    chat: Script,
    relay: Script,
    update: Script,
    room: Script,
    summaries: Script,
    close: Script,
    sweep: Script,
    heartbeat: Script,
    reap: Script,
    retire: Script,
}

impl Scripts {
    fn new() -> Self {
        let script = |body: &str| Script::new(&format!("{COMMON_LUA}\n{body}"));
        Self {
            create: script(include_str!("scripts/create.lua")),
            join: script(include_str!("scripts/join.lua")),
            leave: script(include_str!("scripts/leave.lua")),
            chat: script(include_str!("scripts/chat.lua")),
            relay: script(include_str!("scripts/relay.lua")),
            update: script(include_str!("scripts/update.lua")),
            room: script(include_str!("scripts/room.lua")),
            summaries: script(include_str!("scripts/summaries.lua")),
            close: script(include_str!("scripts/close.lua")),
            sweep: script(include_str!("scripts/sweep.lua")),
            heartbeat: script(include_str!("scripts/heartbeat.lua")),
            reap: script(include_str!("scripts/reap.lua")),
            retire: script(include_str!("scripts/retire.lua")),
        }
    }

    fn all(&self) -> [&Script; 13] {
        [
            &self.create,
            &self.join,
            &self.leave,
            &self.chat,
            &self.relay,
            &self.update,
            &self.room,
            &self.summaries,
            &self.close,
            &self.sweep,
            &self.heartbeat,
            &self.reap,
            &self.retire,
        ]
    }
}

pub struct RedisRegistry {
    conn: ConnectionManager,
    limits: Limits,
    /// `{prefix}`: the hash tag every key starts with.
    tag: String,
    /// `{prefix}:rooms`, the key every script declares so Redis routes it to the right slot.
    rooms_key: String,
    /// `{prefix}:member`, read directly by `stats` and `current_room`.
    member_key: String,
    instance: Arc<str>,
    scripts: &'static Scripts,
}

// ---------------------------------------------------------------------------------------------
// Script arguments and errors
// ---------------------------------------------------------------------------------------------

fn store_error(e: redis::RedisError) -> StoreUnavailable {
    StoreUnavailable(e.to_string())
}

fn room_full(room_id: &str, max: usize) -> ProtocolError {
    ProtocolError::new(
        ErrorCode::RoomFull,
        format!("Room {room_id} is full ({max} participants at most)"),
    )
}

fn target_not_in_room() -> ProtocolError {
    ProtocolError::new(
        ErrorCode::TargetNotInRoom,
        "The target is not a participant of your room",
    )
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A named room as two script arguments: whether one was named, and which.
fn named_args(named: Option<&str>) -> (&'static str, &str) {
    match named {
        Some(room) => ("1", room),
        None => ("0", ""),
    }
}

/// A ticket as a script argument: its number, or empty for none.
fn ticket_arg(ticket: Option<u64>) -> String {
    ticket.map(|t| t.to_string()).unwrap_or_default()
}

/// A fresh room id: 8 upper-case characters of a v4 UUID, as the memory registry makes.
fn fresh_room_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_ascii_uppercase()
}

// ---------------------------------------------------------------------------------------------
// The registry
// ---------------------------------------------------------------------------------------------

impl RedisRegistry {
    /// Connects (failing if Redis does not answer a PING now); keys go under `{prefix}`, and
    /// participants joined through this registry are recorded as held by `instance`.
    pub async fn connect(
        client: &redis::Client,
        limits: Limits,
        prefix: &str,
        instance: Arc<str>,
    ) -> Result<Self, redis::RedisError> {
        let config = connection::manager_config();
        let mut conn = ConnectionManager::new_with_config(client.clone(), config).await?;
        redis::cmd("PING").query_async::<()>(&mut conn).await?;
        // Loaded once now rather than by every first call racing on NOSCRIPT (they still load
        // themselves again after a Redis restart).
        for script in SCRIPTS.all() {
            script.prepare_invoke().load_async(&mut conn).await?;
        }
        let tag = format!("{{{prefix}}}");
        Ok(Self {
            conn,
            limits,
            rooms_key: format!("{tag}:rooms"),
            member_key: format!("{tag}:member"),
            tag,
            instance,
            scripts: &SCRIPTS,
        })
    }

    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// The instance id participants joined here are recorded with.
    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The pub/sub channels this instance listens to: every room change, and what is
    /// published for this instance alone.
    pub fn channels(&self) -> [String; 2] {
        [
            format!("{}:events", self.tag),
            format!("{}:to:{}", self.tag, self.instance),
        ]
    }

    pub async fn ping(&self) -> Result<(), StoreUnavailable> {
        let mut conn = self.conn.clone();
        deadline(redis::cmd("PING").query_async::<()>(&mut conn)).await
    }

    /// A script call with the routing key and the key prefix already given (`KEYS[1]`,
    /// `ARGV[1]`); the caller adds its own arguments.
    fn invocation<'a>(&'a self, script: &'a Script) -> ScriptInvocation<'a> {
        let mut invocation = script.key(&self.rooms_key);
        invocation.arg(&self.tag);
        invocation
    }

    /// Runs a script and returns its JSON reply.
    async fn run(&self, invocation: &ScriptInvocation<'_>) -> Result<String, StoreUnavailable> {
        let mut conn = self.conn.clone();
        deadline(invocation.invoke_async::<String>(&mut conn)).await
    }

    fn empty_ttl_ms(&self) -> u64 {
        millis(self.limits.empty_room_ttl)
    }

    /// Records this instance as alive now (Redis' clock). `true` if the other instances had
    /// declared it dead meanwhile and removed its participants.
    pub async fn heartbeat(&self) -> Result<bool, StoreUnavailable> {
        let mut call = self.invocation(&self.scripts.heartbeat);
        call.arg(&*self.instance);
        parse(&self.run(&call).await?)
    }

    /// Leaves the cluster (at shutdown): takes out the participants this instance still
    /// holds (their departures published) and removes its heartbeat.
    pub async fn retire(&self) -> Result<Vec<Left>, StoreUnavailable> {
        let mut call = self.invocation(&self.scripts.retire);
        call.arg(&*self.instance).arg(self.empty_ttl_ms());
        let lefts: Vec<LeftWire> = parse(&self.run(&call).await?)?;
        lefts.iter().map(LeftWire::left).collect()
    }

    /// Claims every other instance silent for longer than `dead_after` and removes its
    /// participants as leaves would, their departures published. Each dead instance is
    /// claimed by exactly one caller.
    pub async fn reap_dead(&self, dead_after: Duration) -> Result<Vec<Left>, StoreUnavailable> {
        let mut call = self.invocation(&self.scripts.reap);
        call.arg(&*self.instance)
            .arg(millis(dead_after))
            .arg(self.empty_ttl_ms());
        let lefts: Vec<LeftWire> = parse(&self.run(&call).await?)?;
        lefts.iter().map(LeftWire::left).collect()
    }

    /// `(rooms, participants)` in existence, cluster-wide.
    pub async fn stats(&self) -> Result<(usize, usize), StoreUnavailable> {
        let mut conn = self.conn.clone();
        let mut pipe = redis::pipe();
        pipe.atomic()
            .cmd("ZCARD")
            .arg(&self.rooms_key)
            .cmd("HLEN")
            .arg(&self.member_key);
        deadline(pipe.query_async::<(usize, usize)>(&mut conn)).await
    }

    /// Makes an empty room with a fresh id; `too_many_rooms` at `MAX_ROOMS`.
    pub async fn create_room(&self, creator: IpAddr) -> Result<RoomInfo, ProtocolError> {
        for _ in 0..CREATE_ATTEMPTS {
            let id = fresh_room_id();
            // Kept to the millisecond, as stored, so later reads return the same time.
            let created = Timestamp::now().to_iso();
            let created_at = timestamp(&created)?;
            let mut call = self.invocation(&self.scripts.create);
            call.arg(&id)
                .arg(&created)
                .arg(millis(self.limits.unused_room_ttl))
                .arg(self.limits.max_rooms)
                .arg(creator.to_string())
                .arg(self.limits.max_rooms_per_address)
                .arg(&*self.instance);
            match parse(&self.run(&call).await?)? {
                CreateReply::Created => {
                    return Ok(RoomInfo {
                        room_id: id.into(),
                        participant_count: 0,
                        created_at,
                    });
                }
                CreateReply::Taken => continue,
                CreateReply::TooManyRooms => return Err(RoomLimitReached::Server.into()),
                CreateReply::TooManyForAddress => return Err(RoomLimitReached::Address.into()),
            }
        }
        Err(StoreUnavailable("no free room id found".into()).into())
    }

    /// One room as `room.lua` describes it; `with` is `"none"` or `"all"` (participants).
    async fn room(&self, room_id: &str, with: &str) -> Result<Option<RoomWire>, StoreUnavailable> {
        let mut call = self.invocation(&self.scripts.room);
        call.arg(room_id).arg(with);
        parse(&self.run(&call).await?)
    }

    pub async fn room_info(&self, room_id: &str) -> Result<Option<RoomInfo>, StoreUnavailable> {
        let Some(room) = self.room(room_id, "none").await? else {
            return Ok(None);
        };
        Ok(Some(RoomInfo {
            room_id: room.room_id.as_str().into(),
            participant_count: room.participant_count,
            created_at: timestamp(&room.created_at)?,
        }))
    }

    /// The room `socket` is in, checked against the room the client named (if any).
    pub async fn current_room(
        &self,
        socket: &str,
        named: Option<&str>,
    ) -> Result<Arc<str>, ProtocolError> {
        let mut conn = self.conn.clone();
        let mut cmd = redis::cmd("HGET");
        cmd.arg(&self.member_key).arg(socket);
        let room: Option<String> = deadline(cmd.query_async(&mut conn)).await?;
        match (room, named) {
            (None, _) => Err(ProtocolError::not_in_room()),
            (Some(room), Some(named)) if named != room => Err(ProtocolError::not_in_room()),
            (Some(room), _) => Ok(room.into()),
        }
    }

    /// Puts `socket` in the requested room, leaving its current room first if it differs.
    /// A full room refuses it and it stays where it was.
    pub async fn join(
        &self,
        socket: &str,
        req: &JoinRequest,
        creator: Creator,
        ticket: Option<u64>,
    ) -> Result<JoinOutcome, ProtocolError> {
        let now = Timestamp::now();
        let me = Stored {
            id: socket.to_owned(),
            user_name: req.user_name.clone(),
            avatar: req.avatar.clone(),
            joined_at: now.to_iso(),
            audio_muted: false,
            video_off: false,
            screen_sharing: false,
            instance: Some(self.instance.to_string()),
        };
        let me = serde_json::to_string(&me).map_err(|e| StoreUnavailable(e.to_string()))?;
        let mut call = self.invocation(&self.scripts.join);
        call.arg(socket)
            .arg(&req.room_id)
            .arg(me)
            .arg(now.to_iso())
            .arg(self.limits.max_participants)
            .arg(self.limits.max_rooms)
            .arg(self.empty_ttl_ms())
            .arg(&*self.instance)
            .arg(ticket_arg(ticket))
            .arg(creator.address.to_string())
            .arg(self.limits.max_rooms_per_address)
            .arg(if creator.may_create { "1" } else { "0" })
            .arg(if req.host { "1" } else { "0" });
        match parse(&self.run(&call).await?)? {
            JoinReply::Joined { left, joined: j } => Ok(JoinOutcome::Joined {
                left: left.as_ref().map(LeftWire::left).transpose()?,
                joined: joined(socket, &j)?,
            }),
            JoinReply::AlreadyIn { joined: j } => Ok(JoinOutcome::AlreadyIn(joined(socket, &j)?)),
            JoinReply::RoomFull => Err(room_full(&req.room_id, self.limits.max_participants)),
            JoinReply::TooManyRooms => Err(RoomLimitReached::Server.into()),
            JoinReply::TooManyForAddress => Err(RoomLimitReached::Address.into()),
            JoinReply::NeedsNewRoom => Ok(JoinOutcome::NeedsNewRoom),
        }
    }

    /// Takes `socket` out of its room for `reason`; `None` if it was in none.
    pub async fn leave(
        &self,
        socket: &str,
        reason: LeaveReason,
        ticket: Option<u64>,
    ) -> Result<Option<Left>, StoreUnavailable> {
        self.leave_with(socket, reason, ticket, false).await
    }

    /// `leave` again after a failed attempt: if that attempt did run (its answer was lost),
    /// its Left, with who remains now (that attempt published the departure).
    pub async fn leave_again(
        &self,
        socket: &str,
        reason: LeaveReason,
    ) -> Result<Option<Left>, StoreUnavailable> {
        self.leave_with(socket, reason, None, true).await
    }

    async fn leave_with(
        &self,
        socket: &str,
        reason: LeaveReason,
        ticket: Option<u64>,
        replay: bool,
    ) -> Result<Option<Left>, StoreUnavailable> {
        let mut call = self.invocation(&self.scripts.leave);
        call.arg(socket)
            .arg(self.empty_ttl_ms())
            .arg(if replay { "1" } else { "0" })
            .arg(reason.as_str())
            .arg(&*self.instance)
            .arg(ticket_arg(ticket));
        let left: Option<LeftWire> = parse(&self.run(&call).await?)?;
        left.as_ref().map(LeftWire::left).transpose()
    }

    /// Records a chat message from `socket`, its name and avatar taken from the registry.
    pub async fn chat(
        &self,
        socket: &str,
        named_room: Option<&str>,
        text: &str,
        ticket: Option<u64>,
    ) -> Result<Said, ProtocolError> {
        let (has_named, named) = named_args(named_room);
        let mut call = self.invocation(&self.scripts.chat);
        call.arg(socket)
            .arg(has_named)
            .arg(named)
            .arg(text)
            .arg(uuid::Uuid::new_v4().to_string())
            .arg(Timestamp::now().to_iso())
            .arg(self.limits.chat_history_limit)
            .arg(&*self.instance)
            .arg(ticket_arg(ticket))
            .arg(self.limits.chat_history_bytes)
            .arg(self.limits.chat_history_total_bytes);
        match parse(&self.run(&call).await?)? {
            ChatReply::Said { room_id, message } => Ok(Said {
                room_id: room_id.into(),
                message: message.message()?,
            }),
            ChatReply::NotInRoom => Err(ProtocolError::not_in_room()),
        }
    }

    /// Checks that `target` is in the same room as `socket`; returns that room.
    pub async fn relay_room(
        &self,
        socket: &str,
        named_room: Option<&str>,
        target: &str,
    ) -> Result<Arc<str>, ProtocolError> {
        self.relay(socket, named_room, target, None).await
    }

    /// Checks as [`Self::relay_room`], then publishes the relay to the instance holding its
    /// target.
    pub async fn forward_relay(
        &self,
        socket: &str,
        named_room: Option<&str>,
        relay: &Relay,
    ) -> Result<Arc<str>, ProtocolError> {
        self.relay(socket, named_room, &relay.target, Some(relay))
            .await
    }

    async fn relay(
        &self,
        socket: &str,
        named_room: Option<&str>,
        target: &str,
        forward: Option<&Relay>,
    ) -> Result<Arc<str>, ProtocolError> {
        let (has_named, named) = named_args(named_room);
        let mut call = self.invocation(&self.scripts.relay);
        call.arg(socket).arg(has_named).arg(named).arg(target);
        match forward {
            Some(relay) => call
                .arg("1")
                .arg(relay.kind.client_event())
                .arg(relay.body.as_deref().map_or("", |b| b.get())),
            None => call.arg("0").arg("").arg(""),
        };
        call.arg(&*self.instance);
        match parse(&self.run(&call).await?)? {
            RelayReply::Ok { room_id } => Ok(room_id.into()),
            RelayReply::NotInRoom => Err(ProtocolError::not_in_room()),
            RelayReply::TargetNotInRoom => Err(target_not_in_room()),
        }
    }

    pub async fn set_media(
        &self,
        socket: &str,
        named_room: Option<&str>,
        change: MediaChange,
        ticket: Option<u64>,
    ) -> Result<Updated, ProtocolError> {
        let field = match change.kind {
            MediaKind::Audio => "audioMuted",
            MediaKind::Video => "videoOff",
        };
        let change = Change::Media {
            kind: change.kind,
            enabled: change.enabled,
        };
        let value = matches!(change, Change::Media { enabled: false, .. });
        self.update(socket, named_room, field, value, change, ticket)
            .await
    }

    pub async fn set_screen_sharing(
        &self,
        socket: &str,
        named_room: Option<&str>,
        sharing: bool,
        ticket: Option<u64>,
    ) -> Result<Updated, ProtocolError> {
        let change = Change::ScreenShare { sharing };
        self.update(socket, named_room, "screenSharing", sharing, change, ticket)
            .await
    }

    /// Sets one flag (a [`Stored`] field name) of `socket`'s participant.
    async fn update(
        &self,
        socket: &str,
        named_room: Option<&str>,
        field: &str,
        value: bool,
        change: Change,
        ticket: Option<u64>,
    ) -> Result<Updated, ProtocolError> {
        let (has_named, named) = named_args(named_room);
        let change = serde_json::to_string(&ChangeWire::from(change))
            .map_err(|e| StoreUnavailable(e.to_string()))?;
        let mut call = self.invocation(&self.scripts.update);
        call.arg(socket)
            .arg(has_named)
            .arg(named)
            .arg(field)
            .arg(if value { "1" } else { "0" })
            .arg(change)
            .arg(&*self.instance)
            .arg(ticket_arg(ticket));
        match parse(&self.run(&call).await?)? {
            UpdateReply::Updated {
                room_id,
                participants: stored,
            } => {
                let participants = views(&stored)?;
                Ok(Updated {
                    room_id: room_id.into(),
                    participant: view_of(socket, &stored, &participants)?,
                    participants,
                })
            }
            UpdateReply::NotInRoom => Err(ProtocolError::not_in_room()),
        }
    }

    /// Every room, for operators, oldest first.
    pub async fn summaries(&self) -> Result<Vec<RoomSummary>, StoreUnavailable> {
        let call = self.invocation(&self.scripts.summaries);
        let rooms: Vec<RoomWire> = parse(&self.run(&call).await?)?;
        let mut rooms = rooms
            .iter()
            .map(RoomWire::summary)
            .collect::<Result<Vec<_>, _>>()?;
        // Ids break ties of equal (millisecond) creation times, for a stable order.
        rooms.sort_by(|a, b| (a.created_at, &a.room_id).cmp(&(b.created_at, &b.room_id)));
        Ok(rooms)
    }

    pub async fn detail(&self, room_id: &str) -> Result<Option<RoomDetail>, StoreUnavailable> {
        let Some(room) = self.room(room_id, "all").await? else {
            return Ok(None);
        };
        Ok(Some(RoomDetail {
            summary: room.summary()?,
            participants: views(&room.participants)?,
        }))
    }

    /// Removes a room, its participants and its history at once (operator action).
    /// Returns who was in it.
    pub async fn close_room(
        &self,
        room_id: &str,
        ticket: Option<u64>,
    ) -> Result<Option<Vec<Participant>>, StoreUnavailable> {
        let mut call = self.invocation(&self.scripts.close);
        call.arg(room_id)
            .arg(&*self.instance)
            .arg(ticket_arg(ticket));
        let gone: Option<Vec<Stored>> = parse(&self.run(&call).await?)?;
        gone.map(|list| list.iter().map(Stored::participant).collect())
            .transpose()
    }

    /// Removes the rooms that stayed empty (or unused) past their TTL; returns their ids.
    /// Any instance may call it: the deadlines are in Redis.
    pub async fn sweep(&self) -> Result<Vec<Arc<str>>, StoreUnavailable> {
        let mut call = self.invocation(&self.scripts.sweep);
        call.arg(SWEEP_BATCH).arg(&*self.instance);
        let ids: Vec<String> = parse(&self.run(&call).await?)?;
        Ok(ids.into_iter().map(Into::into).collect())
    }
}

/// Bounds a Redis call by [`CALL_DEADLINE`] and turns its failure into [`StoreUnavailable`].
async fn deadline<T>(
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreUnavailable> {
    match tokio::time::timeout(CALL_DEADLINE, call).await {
        Ok(result) => result.map_err(store_error),
        Err(_) => Err(StoreUnavailable(format!(
            "no answer within {CALL_DEADLINE:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_values_round_trip_and_bad_ones_are_errors() {
        let p = Participant::new("s1".into(), "Ann".into(), None);
        let stored = Stored {
            id: "s1".into(),
            user_name: "Ann".into(),
            avatar: None,
            joined_at: p.joined_at.to_iso(),
            audio_muted: true,
            video_off: false,
            screen_sharing: false,
            instance: Some("i1".into()),
        };
        let json = serde_json::to_string(&stored).unwrap();
        let back: Stored = parse(&json).unwrap();
        let participant = back.participant().unwrap();
        assert_eq!(participant.joined_at.to_iso(), p.joined_at.to_iso());
        assert!(participant.audio_muted);
        assert!(parse::<Stored>("{\"id\":1}").is_err());
        assert!(parse::<Option<LeftWire>>("null").unwrap().is_none());
        let bad_time = json.replace(&p.joined_at.to_iso(), "yesterday");
        assert!(parse::<Stored>(&bad_time).unwrap().participant().is_err());
        assert!(parse::<JoinReply>("{\"status\":\"exploded\"}").is_err());
    }

    #[test]
    fn room_ids_look_like_the_memory_ones() {
        let id = fresh_room_id();
        assert_eq!(id.len(), 8);
        assert!(
            id.chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
    }
}
