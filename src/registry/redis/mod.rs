//! The Redis registry of cluster mode: rooms, participants, hosts, chat history, TTLs and the
//! host's moderation state (permissions, lock, lobby, password hash) live in Redis, and every
//! change is one Lua script, so instances joining people into the same room at once cannot
//! pass `MAX_PARTICIPANTS`, disagree on the host or lose anyone.
//! It returns exactly the outcomes of [`super::memory::MemoryRegistry`]. Each script also
//! publishes what it changed ([`super::events`]) on `{p}:events` (every instance) or
//! `{p}:to:<instance>` (one instance), from inside the script, so every instance receives a
//! room's changes in the order Redis made them; [`decode_published`] reads them back. Chat,
//! the one event sent by the thousand, goes in batches: one script call for every message
//! that arrived while the previous call was in flight (`chat_batch`).
//!
//! Key schema, all under one hash tag `{p}` (from the configured prefix `p`), so every script
//! touches one slot:
//!
//! | key                 | type | contents                                                  |
//! |---------------------|------|-----------------------------------------------------------|
//! | `{p}:rooms`         | ZSET | room id → expiry deadline in ms, `+inf` while occupied    |
//! | `{p}:room:<id>`     | HASH | `created`, `creator`, `chatbytes`, `hooks`, `host`, `locked`, `lobby`, `password` (a salted keyed hash) |
//! | `{p}:order:<id>`    | LIST | socket ids in join order (a host by token first)           |
//! | `{p}:people:<id>`   | HASH | socket id → participant JSON (`Stored`)                   |
//! | `{p}:senders:<id>`  | HASH | socket id → its name (and avatar) as its chat messages carry them (`"userName":…,"userAvatar":…` or `null`), kept with `people` so chat decodes no participant |
//! | `{p}:chat:<id>`     | LIST | chat message JSON, oldest first                           |
//! | `{p}:queue:<id>`    | LIST | the lobby's waiters' socket ids, in the order they asked  |
//! | `{p}:waiters:<id>`  | HASH | waiter socket id → participant JSON (`Stored`)            |
//! | `{p}:member`        | HASH | socket id → the room it is in                             |
//! | `{p}:waiting`       | HASH | socket id → the room whose lobby it waits in              |
//! | `{p}:password-key`  | STR  | the key of password hashes, unless `ROOM_PASSWORD_KEY` is set |
//! | `{p}:on:<instance>` | SET  | socket ids held by that instance (participants, waiters)  |
//! | `{p}:instances`     | ZSET | instance id → last heartbeat in ms (Redis' clock)         |
//! | `{p}:reaped:<inst>` | STR  | set when that instance was reaped, until it beats again   |
//! | `{p}:events`        | chan | every room change, as a batch of events                   |
//! | `{p}:to:<instance>` | chan | what only that instance acts on: welcomes, relays         |
//!
//! `ZCARD {p}:rooms` is the room count (what `MAX_ROOMS` caps), `HLEN {p}:member` the
//! participant count. Deadlines and heartbeats use Redis' clock (`TIME` in the scripts), so
//! instances with skewed clocks agree on them.

mod chat_batch;
pub mod connection;
mod wire;

use std::net::IpAddr;
use std::sync::{Arc, LazyLock};
use std::time::Duration;

use redis::aio::ConnectionManager;
use redis::{Script, ScriptInvocation};

use super::error::{RoomLimitReached, StoreUnavailable};
use super::events::{Change, LeaveReason, Relay};
use super::memory::{lobby_full, room_full, room_locked, wrong_password};
use super::outcome::{
    Creator, JoinOutcome, Left, Limits, Moderated, RoomDetail, RoomInfo, RoomSummary, Said, Updated,
};
use crate::model::{Connection, MediaKind, Participant, Permission, Timestamp};
use crate::password::{PasswordHash, PasswordKey, RoomPassword};
use crate::protocol::{Action, JoinRequest, MediaChange, ProtocolError};
use chat_batch::ChatBatcher;
use connection::deadline;
pub use wire::decode_published;
use wire::{
    ChangeWire, ConnectionReply, CreateReply, JoinReply, LeftWire, ModerateReply, RelayReply,
    RoomWire, Stored, UpdateReply, WithdrawReply, internal, joined, parse, ticket_arg, timestamp,
    view_of, views,
};

/// Rooms one sweep removes at most; the rest go on the next (once a second).
const SWEEP_BATCH: usize = 500;
/// Fresh room ids tried before `create_room` gives up (a collision is already unlikely).
const CREATE_ATTEMPTS: usize = 16;
/// Password checks a join tries before giving up, should the host change the password
/// between each check and its join.
const PASSWORD_ATTEMPTS: usize = 3;

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
    connection: Script,
    withdraw: Script,
    permission: Script,
    mute_all: Script,
    kick: Script,
    transfer: Script,
    flag: Script,
    admit: Script,
    deny: Script,
    password: Script,
    end: Script,
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
            connection: script(include_str!("scripts/connection.lua")),
            withdraw: script(include_str!("scripts/withdraw.lua")),
            permission: script(include_str!("scripts/permission.lua")),
            mute_all: script(include_str!("scripts/mute_all.lua")),
            kick: script(include_str!("scripts/kick.lua")),
            transfer: script(include_str!("scripts/transfer.lua")),
            flag: script(include_str!("scripts/flag.lua")),
            admit: script(include_str!("scripts/admit.lua")),
            deny: script(include_str!("scripts/deny.lua")),
            password: script(include_str!("scripts/password.lua")),
            end: script(include_str!("scripts/end.lua")),
        }
    }

    fn all(&self) -> [&Script; 24] {
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
            &self.connection,
            &self.withdraw,
            &self.permission,
            &self.mute_all,
            &self.kick,
            &self.transfer,
            &self.flag,
            &self.admit,
            &self.deny,
            &self.password,
            &self.end,
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
    /// What room passwords are hashed with: shared by every instance.
    password_key: PasswordKey,
    /// Where chat messages wait for their batch.
    chat: ChatBatcher,
}

// ---------------------------------------------------------------------------------------------
// Script arguments and errors
// ---------------------------------------------------------------------------------------------

fn target_not_in_room() -> ProtocolError {
    ProtocolError::target_not_in_room()
}

/// An optional string as two script arguments: whether it is given, and what it is.
fn optional_args(value: Option<&str>) -> (&'static str, &str) {
    match value {
        Some(value) => ("1", value),
        None => ("0", ""),
    }
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
        let password_key = shared_password_key(&mut conn, &tag).await?;
        let chat = ChatBatcher::start(
            conn.clone(),
            &SCRIPTS.chat,
            tag.clone(),
            instance.clone(),
            limits.clone(),
        );
        Ok(Self {
            chat,
            conn,
            limits,
            rooms_key: format!("{tag}:rooms"),
            member_key: format!("{tag}:member"),
            tag,
            instance,
            scripts: &SCRIPTS,
            password_key,
        })
    }

    /// Hashes room passwords with `key` (`ROOM_PASSWORD_KEY`, the same on every instance)
    /// rather than the key kept in Redis.
    pub fn with_password_key(mut self, key: PasswordKey) -> Self {
        self.password_key = key;
        self
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

    fn hash(&self, password: &RoomPassword) -> Result<PasswordHash, ProtocolError> {
        self.password_key
            .hash(password)
            .map_err(|e| internal(format!("no randomness for a password salt: {e}")))
    }

    /// Makes an empty room with a fresh id (and `password`, if given); `too_many_rooms` at
    /// `MAX_ROOMS`.
    pub async fn create_room(
        &self,
        creator: IpAddr,
        password: Option<&RoomPassword>,
    ) -> Result<RoomInfo, ProtocolError> {
        let hash = password
            .map(|p| self.hash(p).map(|h| h.encode()))
            .transpose()?;
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
                .arg(&*self.instance)
                .arg(hash.as_deref().unwrap_or(""));
            match parse(&self.run(&call).await?)? {
                CreateReply::Created => {
                    return Ok(RoomInfo {
                        room_id: id.into(),
                        participant_count: 0,
                        created_at,
                        has_password: hash.is_some(),
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
            has_password: room.has_password,
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

    /// Puts `socket` in the requested room (or its lobby), leaving its current room first if
    /// it differs. A refusal (locked, wrong password, full) leaves it where it was.
    ///
    /// A password room answers with its hash instead; the password is checked here, in
    /// constant time, and the join asked again with the hash it was checked against (so a
    /// password changed meanwhile is checked again). Redis never sees the password.
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
            can_use_mic: true,
            can_use_camera: true,
            can_share_screen: true,
            instance: Some(self.instance.to_string()),
            connection: self
                .limits
                .connection_states
                .then_some(Connection::Connected),
        };
        let me = serde_json::to_string(&me).map_err(|e| StoreUnavailable(e.to_string()))?;
        let mut checked = String::new();
        for _ in 0..PASSWORD_ATTEMPTS {
            let mut call = self.invocation(&self.scripts.join);
            call.arg(socket)
                .arg(&req.room_id)
                .arg(&me)
                .arg(now.to_iso())
                .arg(self.limits.max_participants)
                .arg(self.limits.max_rooms)
                .arg(self.empty_ttl_ms())
                .arg(&*self.instance)
                .arg(ticket_arg(ticket))
                .arg(creator.address.to_string())
                .arg(self.limits.max_rooms_per_address)
                .arg(if creator.may_create { "1" } else { "0" })
                .arg(&checked)
                .arg(if req.host { "1" } else { "0" });
            return match parse(&self.run(&call).await?)? {
                JoinReply::Password { hash } => {
                    let right = PasswordHash::decode(&hash).is_some_and(|stored| {
                        req.password
                            .as_ref()
                            .is_some_and(|p| self.password_key.verify(&stored, p))
                    });
                    if !right {
                        return Err(wrong_password(&req.room_id));
                    }
                    checked = hash;
                    continue;
                }
                JoinReply::Joined { left, joined: j } => Ok(JoinOutcome::Joined {
                    left: left.as_ref().map(LeftWire::left).transpose()?,
                    joined: joined(socket, &j)?,
                }),
                JoinReply::AlreadyIn { joined: j } => {
                    Ok(JoinOutcome::AlreadyIn(joined(socket, &j)?))
                }
                JoinReply::Waiting { left, room_id } => Ok(JoinOutcome::Waiting {
                    left: left.as_ref().map(LeftWire::left).transpose()?,
                    room_id: room_id.into(),
                }),
                JoinReply::AlreadyWaiting { room_id } => Ok(JoinOutcome::AlreadyWaiting {
                    room_id: room_id.into(),
                }),
                JoinReply::RoomLocked => Err(room_locked(&req.room_id)),
                JoinReply::RoomFull => Err(room_full(&req.room_id, self.limits.max_participants)),
                JoinReply::LobbyFull => Err(lobby_full(&req.room_id)),
                JoinReply::TooManyRooms => Err(RoomLimitReached::Server.into()),
                JoinReply::TooManyForAddress => Err(RoomLimitReached::Address.into()),
                JoinReply::NeedsNewRoom => Ok(JoinOutcome::NeedsNewRoom),
            };
        }
        Err(wrong_password(&req.room_id))
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

    /// `leave-room` from a socket waiting in a lobby: gives up its place there.
    pub async fn withdraw(
        &self,
        socket: &str,
        named: Option<&str>,
        ticket: Option<u64>,
    ) -> Result<Option<Arc<str>>, ProtocolError> {
        let (has_named, named) = named_args(named);
        let mut call = self.invocation(&self.scripts.withdraw);
        call.arg(socket)
            .arg(has_named)
            .arg(named)
            .arg(&*self.instance)
            .arg(ticket_arg(ticket));
        match parse(&self.run(&call).await?)? {
            WithdrawReply::Withdrawn { room_id } => Ok(Some(room_id.into())),
            WithdrawReply::None => Ok(None),
            WithdrawReply::NotInRoom => Err(ProtocolError::not_in_room()),
        }
    }

    /// A host's moderation action: one script per kind of action, which checks that
    /// `socket` hosts its room, makes the change and publishes it.
    pub async fn moderate(
        &self,
        socket: &str,
        named: Option<&str>,
        action: &Action,
        ticket: Option<u64>,
    ) -> Result<Moderated, ProtocolError> {
        let (has_named, named_room) = named_args(named);
        let scripts = self.scripts;
        let script = match action {
            Action::Permission { .. } => &scripts.permission,
            Action::MuteAll => &scripts.mute_all,
            Action::Kick { .. } => &scripts.kick,
            Action::TransferHost { .. } => &scripts.transfer,
            Action::Lock { .. } | Action::Lobby { .. } => &scripts.flag,
            Action::Admit { .. } => &scripts.admit,
            Action::Deny { .. } => &scripts.deny,
            Action::SetPassword { .. } => &scripts.password,
            Action::End => &scripts.end,
        };
        let mut call = self.invocation(script);
        call.arg(socket).arg(has_named).arg(named_room);
        let flag = |on: bool| if on { "1" } else { "0" };
        match action {
            Action::SetPassword { password } => {
                let hash = password
                    .as_ref()
                    .map(|p| self.hash(p).map(|h| h.encode()))
                    .transpose()?;
                call.arg(hash.unwrap_or_default());
            }
            _ => {
                call.arg(&*self.instance).arg(ticket_arg(ticket));
            }
        }
        match action {
            Action::Permission {
                target,
                permission,
                allowed,
            } => {
                call.arg(target)
                    .arg(permission.as_str())
                    .arg(flag(*allowed));
            }
            Action::Kick { target, reason } => {
                let (given, reason) = optional_args(reason.as_deref());
                call.arg(target)
                    .arg(given)
                    .arg(reason)
                    .arg(self.empty_ttl_ms());
            }
            Action::TransferHost { target } => {
                call.arg(target);
            }
            Action::Lock { locked } => {
                call.arg("lock")
                    .arg(flag(*locked))
                    .arg(self.limits.max_participants)
                    .arg(Timestamp::now().to_iso());
            }
            Action::Lobby { enabled } => {
                call.arg("lobby")
                    .arg(flag(*enabled))
                    .arg(self.limits.max_participants)
                    .arg(Timestamp::now().to_iso());
            }
            Action::Admit { waiter } => {
                call.arg(waiter)
                    .arg(self.limits.max_participants)
                    .arg(Timestamp::now().to_iso());
            }
            Action::Deny { waiter, reason } => {
                let (given, reason) = optional_args(reason.as_deref());
                call.arg(waiter).arg(given).arg(reason);
            }
            Action::MuteAll | Action::SetPassword { .. } | Action::End => {}
        }
        match parse(&self.run(&call).await?)? {
            ModerateReply::Done {
                room_id,
                has_password,
            } => Ok(Moderated {
                room_id: room_id.into(),
                announced: !matches!(action, Action::SetPassword { .. }),
                has_password,
            }),
            ModerateReply::NotInRoom => Err(ProtocolError::not_in_room()),
            ModerateReply::Forbidden => Err(ProtocolError::not_host()),
            ModerateReply::TargetNotInRoom => Err(target_not_in_room()),
            ModerateReply::NotWaiting => Err(ProtocolError::not_waiting()),
            ModerateReply::RoomFull => Err(room_full(
                named.unwrap_or("your room"),
                self.limits.max_participants,
            )),
            ModerateReply::KickSelf => Err(ProtocolError::invalid("The host cannot kick itself")),
            ModerateReply::TransferSelf => Err(ProtocolError::invalid("You are already the host")),
        }
    }

    /// Records a chat message from `socket`, its name and avatar taken from the registry
    /// (in the next batch of this instance's messages: [`ChatBatcher`]).
    pub async fn chat(
        &self,
        socket: &str,
        named_room: Option<&str>,
        text: &str,
        ticket: Option<u64>,
    ) -> Result<Said, ProtocolError> {
        self.chat.chat(socket, named_room, text, ticket).await
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
        let (field, permission) = match change.kind {
            MediaKind::Audio => ("audioMuted", Permission::Mic),
            MediaKind::Video => ("videoOff", Permission::Camera),
        };
        let needs = change.enabled.then_some(permission);
        let change = Change::Media {
            kind: change.kind,
            enabled: change.enabled,
        };
        let value = matches!(change, Change::Media { enabled: false, .. });
        self.update(socket, named_room, field, value, change, needs, ticket)
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
        let needs = sharing.then_some(Permission::Screen);
        self.update(
            socket,
            named_room,
            "screenSharing",
            sharing,
            change,
            needs,
            ticket,
        )
        .await
    }

    /// Sets one flag (a [`Stored`] field name) of `socket`'s participant, if the host allows
    /// `needs` (when turning something on).
    #[allow(clippy::too_many_arguments)]
    async fn update(
        &self,
        socket: &str,
        named_room: Option<&str>,
        field: &str,
        value: bool,
        change: Change,
        needs: Option<Permission>,
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
            .arg(ticket_arg(ticket))
            .arg(match needs {
                Some(Permission::Mic) => "canUseMic",
                Some(Permission::Camera) => "canUseCamera",
                Some(Permission::Screen) => "canShareScreen",
                None => "",
            });
        match parse(&self.run(&call).await?)? {
            UpdateReply::Updated {
                room_id,
                participants: stored,
                host,
            } => {
                let participants = views(&stored, host.as_deref())?;
                Ok(Updated {
                    room_id: room_id.into(),
                    participant: view_of(socket, &stored, &participants)?,
                    participants,
                })
            }
            UpdateReply::NotInRoom => Err(ProtocolError::not_in_room()),
            UpdateReply::Forbidden => {
                Err(ProtocolError::not_allowed(needs.unwrap_or(Permission::Mic)))
            }
        }
    }

    /// Records whether `socket`'s client is connected or reconnecting (connection state
    /// recovery). `None` if it is in no room, its state was already that, or it carries no
    /// connection state: then nothing is published.
    pub async fn set_connection(
        &self,
        socket: &str,
        connection: Connection,
        ticket: Option<u64>,
    ) -> Result<Option<Updated>, StoreUnavailable> {
        let state = match connection {
            Connection::Connected => "connected",
            Connection::Reconnecting => "reconnecting",
        };
        let mut call = self.invocation(&self.scripts.connection);
        call.arg(socket)
            .arg(state)
            .arg(&*self.instance)
            .arg(ticket_arg(ticket));
        match parse(&self.run(&call).await?)? {
            ConnectionReply::Updated {
                room_id,
                participants: stored,
                host,
            } => {
                let participants = views(&stored, host.as_deref())?;
                Ok(Some(Updated {
                    room_id: room_id.into(),
                    participant: view_of(socket, &stored, &participants)?,
                    participants,
                }))
            }
            ConnectionReply::NotInRoom | ConnectionReply::Unchanged => Ok(None),
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
            participants: views(&room.participants, room.host_id.as_deref())?,
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

/// The key of password hashes the instances of a cluster share when `ROOM_PASSWORD_KEY` is
/// not set: made by the first instance, kept in Redis. (With the key beside the hashes, a
/// copy of Redis allows guessing offline; `ROOM_PASSWORD_KEY` keeps it out.)
async fn shared_password_key(
    conn: &mut ConnectionManager,
    tag: &str,
) -> Result<PasswordKey, redis::RedisError> {
    let key_name = format!("{tag}:password-key");
    let fresh = PasswordKey::random().map_err(|e| {
        redis::RedisError::from((
            redis::ErrorKind::Io,
            "no randomness for a password key",
            e.to_string(),
        ))
    })?;
    // SET NX, then GET (not SET NX GET: Redis before 7 lacks it): whoever set it first wins.
    let mut set = redis::cmd("SET");
    set.arg(&key_name).arg(fresh.to_hex()).arg("NX");
    set.query_async::<()>(conn).await?;
    let kept: Option<String> = redis::cmd("GET").arg(&key_name).query_async(conn).await?;
    match kept {
        None => Ok(fresh),
        Some(hex) => PasswordKey::from_hex(&hex).ok_or_else(|| {
            redis::RedisError::from((
                redis::ErrorKind::Parse,
                "malformed password key in Redis",
                key_name,
            ))
        }),
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
            can_use_mic: false,
            can_use_camera: true,
            can_share_screen: true,
            instance: Some("i1".into()),
            connection: Some(Connection::Reconnecting),
        };
        let json = serde_json::to_string(&stored).unwrap();
        let back: Stored = parse(&json).unwrap();
        let participant = back.participant().unwrap();
        assert_eq!(participant.joined_at.to_iso(), p.joined_at.to_iso());
        assert!(participant.audio_muted && !participant.can_use_mic);
        let before_moderation = r#"{"id":"s","userName":"A","joinedAt":"2026-01-01T00:00:00.000Z","audioMuted":false,"videoOff":false,"screenSharing":false}"#;
        let old = parse::<Stored>(before_moderation)
            .unwrap()
            .participant()
            .unwrap();
        assert!(old.can_use_mic && old.can_use_camera && old.can_share_screen);
        assert_eq!(participant.connection, Some(Connection::Reconnecting));
        let untracked = json.replace(r#","connection":"reconnecting""#, "");
        assert_ne!(untracked, json);
        let back: Stored = parse(&untracked).unwrap();
        assert_eq!(back.participant().unwrap().connection, None);
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
