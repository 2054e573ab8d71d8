//! The room registry, the core of the server: who is in which room, its host, media flags,
//! chat history and the host's moderation state (permissions, lock, lobby, password), and the
//! only code that changes them. [`Registry`] is the one
//! interface handlers use, over its two backends: [`memory`] (one instance, the default) and
//! [`redis`] (several instances sharing rooms through Redis), chosen once at start-up. Both
//! return the same outcomes, defined here; only the Redis one can fail for want of its
//! store ([`StoreUnavailable`], which clients see as error code `unavailable`). It knows
//! nothing of sockets or HTTP.

pub mod error;
pub mod events;
pub mod memory;
pub mod outcome;
pub mod redis;

use std::net::IpAddr;
use std::sync::Arc;

use crate::model::{Connection, Participant};
use crate::password::RoomPassword;
use crate::protocol::{Action, JoinRequest, MediaChange, ProtocolError};
pub use error::{RoomLimitReached, StoreUnavailable};
pub use events::LeaveReason;
pub use memory::MemoryRegistry;
pub use outcome::{
    Creator, JoinOutcome, Joined, Left, Limits, MAX_WAITERS, Moderated, RoomDetail, RoomInfo,
    RoomSummary, Said, Updated,
};
pub use redis::RedisRegistry;

/// The registry the server runs on, chosen once at start-up.
pub enum Registry {
    Memory(MemoryRegistry),
    Redis(RedisRegistry),
}

impl Registry {
    pub fn limits(&self) -> &Limits {
        match self {
            Self::Memory(r) => r.limits(),
            Self::Redis(r) => r.limits(),
        }
    }

    /// `(rooms, participants)` in existence (cluster-wide in cluster mode).
    pub async fn stats(&self) -> Result<(usize, usize), StoreUnavailable> {
        match self {
            Self::Memory(r) => Ok(r.stats()),
            Self::Redis(r) => r.stats().await,
        }
    }

    /// Makes an empty room with a fresh id, made by `creator`; `too_many_rooms` at
    /// `MAX_ROOMS` or at the creator's `MAX_ROOMS_PER_ADDRESS`.
    pub async fn create_room(&self, creator: IpAddr) -> Result<RoomInfo, ProtocolError> {
        self.create_room_with(creator, None).await
    }

    /// [`Self::create_room`], with a password every joiner must give (kept hashed).
    pub async fn create_room_with(
        &self,
        creator: IpAddr,
        password: Option<&RoomPassword>,
    ) -> Result<RoomInfo, ProtocolError> {
        match self {
            Self::Memory(r) => r.create_room(creator, password),
            Self::Redis(r) => r.create_room(creator, password).await,
        }
    }

    pub async fn room_info(&self, room_id: &str) -> Result<Option<RoomInfo>, StoreUnavailable> {
        match self {
            Self::Memory(r) => Ok(r.room_info(room_id)),
            Self::Redis(r) => r.room_info(room_id).await,
        }
    }

    /// The room `socket` is in, checked against the room the client named (if any).
    pub async fn current_room(
        &self,
        socket: &str,
        named: Option<&str>,
    ) -> Result<Arc<str>, ProtocolError> {
        match self {
            Self::Memory(r) => r.current_room(socket, named),
            Self::Redis(r) => r.current_room(socket, named).await,
        }
    }

    /// Puts `socket` in the room it asked for (leaving its current one first; making the
    /// room if `creator` may); announced with `ticket`.
    pub async fn join(
        &self,
        socket: &str,
        req: &JoinRequest,
        creator: Creator,
        ticket: Option<u64>,
    ) -> Result<JoinOutcome, ProtocolError> {
        match self {
            Self::Memory(r) => r.join(socket, req, creator, ticket),
            Self::Redis(r) => r.join(socket, req, creator, ticket).await,
        }
    }

    /// Takes `socket` out of its room for `reason`; `None` if it was in none. A socket waiting
    /// in a lobby gives up its place there (the host is told) and gets `None` too.
    pub async fn leave(
        &self,
        socket: &str,
        reason: LeaveReason,
        ticket: Option<u64>,
    ) -> Result<Option<Left>, StoreUnavailable> {
        match self {
            Self::Memory(r) => Ok(r.leave(socket, reason, ticket)),
            Self::Redis(r) => r.leave(socket, reason, ticket).await,
        }
    }

    /// `leave` retried after it failed: a first attempt that did run (its answer lost) still
    /// yields its Left, and is announced again, so the departure is announced.
    pub async fn leave_again(
        &self,
        socket: &str,
        reason: LeaveReason,
    ) -> Result<Option<Left>, StoreUnavailable> {
        match self {
            Self::Memory(r) => Ok(r.leave(socket, reason, None)),
            Self::Redis(r) => r.leave_again(socket, reason).await,
        }
    }

    /// `leave-room` from a socket waiting in a lobby: gives up its place (the host is told);
    /// the room it waited for, `None` if it waits for none.
    pub async fn withdraw(
        &self,
        socket: &str,
        named: Option<&str>,
        ticket: Option<u64>,
    ) -> Result<Option<Arc<str>>, ProtocolError> {
        match self {
            Self::Memory(r) => r.withdraw(socket, named, ticket),
            Self::Redis(r) => r.withdraw(socket, named, ticket).await,
        }
    }

    /// A host moderation action on the room of `socket`, which must be its host: made and
    /// announced as one atomic change, or refused with nothing changed.
    pub async fn moderate(
        &self,
        socket: &str,
        named: Option<&str>,
        action: &Action,
        ticket: Option<u64>,
    ) -> Result<Moderated, ProtocolError> {
        match self {
            Self::Memory(r) => r.moderate(socket, named, action, ticket),
            Self::Redis(r) => r.moderate(socket, named, action, ticket).await,
        }
    }

    pub async fn chat(
        &self,
        socket: &str,
        named_room: Option<&str>,
        text: &str,
        ticket: Option<u64>,
    ) -> Result<Said, ProtocolError> {
        match self {
            Self::Memory(r) => r.chat(socket, named_room, text, ticket),
            Self::Redis(r) => r.chat(socket, named_room, text, ticket).await,
        }
    }

    /// Checks that `target` is in the same room as `socket`; returns that room. For a
    /// target whose socket is on this instance: the caller delivers.
    pub async fn relay_room(
        &self,
        socket: &str,
        named_room: Option<&str>,
        target: &str,
    ) -> Result<Arc<str>, ProtocolError> {
        match self {
            Self::Memory(r) => r.relay_room(socket, named_room, target),
            Self::Redis(r) => r.relay_room(socket, named_room, target).await,
        }
    }

    /// For a target whose socket is not on this instance: checks as [`Self::relay_room`],
    /// then hands the relay to the instance holding the target (in a cluster); one instance
    /// alone has nowhere to send it.
    pub async fn forward_relay(
        &self,
        socket: &str,
        named_room: Option<&str>,
        relay: &events::Relay,
    ) -> Result<Arc<str>, ProtocolError> {
        match self {
            Self::Memory(r) => r.relay_room(socket, named_room, &relay.target),
            Self::Redis(r) => r.forward_relay(socket, named_room, relay).await,
        }
    }

    pub async fn set_media(
        &self,
        socket: &str,
        named_room: Option<&str>,
        change: MediaChange,
        ticket: Option<u64>,
    ) -> Result<Updated, ProtocolError> {
        match self {
            Self::Memory(r) => r.set_media(socket, named_room, change, ticket),
            Self::Redis(r) => r.set_media(socket, named_room, change, ticket).await,
        }
    }

    pub async fn set_screen_sharing(
        &self,
        socket: &str,
        named_room: Option<&str>,
        sharing: bool,
        ticket: Option<u64>,
    ) -> Result<Updated, ProtocolError> {
        match self {
            Self::Memory(r) => r.set_screen_sharing(socket, named_room, sharing, ticket),
            Self::Redis(r) => {
                r.set_screen_sharing(socket, named_room, sharing, ticket)
                    .await
            }
        }
    }

    /// Records whether `socket`'s client is connected or reconnecting (connection state
    /// recovery), announced with `ticket`; `None` if it is in no room or nothing changed.
    pub async fn set_connection(
        &self,
        socket: &str,
        connection: Connection,
        ticket: Option<u64>,
    ) -> Result<Option<Updated>, StoreUnavailable> {
        match self {
            Self::Memory(r) => Ok(r.set_connection(socket, connection, ticket)),
            Self::Redis(r) => r.set_connection(socket, connection, ticket).await,
        }
    }

    pub async fn summaries(&self) -> Result<Vec<RoomSummary>, StoreUnavailable> {
        match self {
            Self::Memory(r) => Ok(r.summaries()),
            Self::Redis(r) => r.summaries().await,
        }
    }

    pub async fn detail(&self, room_id: &str) -> Result<Option<RoomDetail>, StoreUnavailable> {
        match self {
            Self::Memory(r) => Ok(r.detail(room_id)),
            Self::Redis(r) => r.detail(room_id).await,
        }
    }

    /// Removes a room with its participants and history; returns who was in it.
    pub async fn close_room(
        &self,
        room_id: &str,
        ticket: Option<u64>,
    ) -> Result<Option<Vec<Participant>>, StoreUnavailable> {
        match self {
            Self::Memory(r) => Ok(r.close_room(room_id, ticket)),
            Self::Redis(r) => r.close_room(room_id, ticket).await,
        }
    }

    /// Removes the rooms that stayed empty (or unused) past their TTL; returns their ids.
    pub async fn sweep(&self) -> Result<Vec<Arc<str>>, StoreUnavailable> {
        match self {
            Self::Memory(r) => Ok(r.sweep(std::time::Instant::now())),
            Self::Redis(r) => r.sweep().await,
        }
    }
}
