//! The one registry interface handlers use, over its two backends: the in-memory registry of
//! a single instance ([`crate::rooms`]) and the Redis registry shared by a cluster
//! ([`crate::cluster::store`]). Both return the same outcomes; only the Redis one can fail
//! for want of its store, which clients see as error code `unavailable`.

use std::sync::Arc;

use crate::cluster::store::RedisRegistry;
use crate::model::Participant;
use crate::protocol::{ErrorCode, JoinRequest, MediaChange, ProtocolError};
use crate::rooms::{
    JoinOutcome, Left, Limits, MemoryRegistry, RoomDetail, RoomInfo, RoomSummary, Said, Updated,
};

/// The shared room store could not be reached (or answered nonsense).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("room store unavailable: {0}")]
pub struct StoreUnavailable(pub String);

impl From<StoreUnavailable> for ProtocolError {
    fn from(e: StoreUnavailable) -> Self {
        tracing::warn!("{e}");
        ProtocolError::new(
            ErrorCode::Unavailable,
            "The server cannot reach its room store; try again shortly",
        )
    }
}

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

    /// Shared by several instances (cluster mode).
    pub fn is_shared(&self) -> bool {
        matches!(self, Self::Redis(_))
    }

    /// `(rooms, participants)` in existence (cluster-wide in cluster mode).
    pub async fn stats(&self) -> Result<(usize, usize), StoreUnavailable> {
        match self {
            Self::Memory(r) => Ok(r.stats()),
            Self::Redis(r) => r.stats().await,
        }
    }

    /// Makes an empty room with a fresh id; `too_many_rooms` at `MAX_ROOMS`.
    pub async fn create_room(&self) -> Result<RoomInfo, ProtocolError> {
        match self {
            Self::Memory(r) => Ok(r.create_room()?),
            Self::Redis(r) => r.create_room().await,
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

    pub async fn join(
        &self,
        socket: &str,
        req: &JoinRequest,
    ) -> Result<JoinOutcome, ProtocolError> {
        match self {
            Self::Memory(r) => r.join(socket, req),
            Self::Redis(r) => r.join(socket, req).await,
        }
    }

    /// Takes `socket` out of its room; `None` if it was in none.
    pub async fn leave(&self, socket: &str) -> Result<Option<Left>, StoreUnavailable> {
        match self {
            Self::Memory(r) => Ok(r.leave(socket)),
            Self::Redis(r) => r.leave(socket).await,
        }
    }

    /// `leave` retried after it failed: a first attempt that did run (its answer lost) still
    /// yields its Left, so the departure is announced once.
    pub async fn leave_again(&self, socket: &str) -> Result<Option<Left>, StoreUnavailable> {
        match self {
            Self::Memory(r) => Ok(r.leave(socket)),
            Self::Redis(r) => r.leave_again(socket).await,
        }
    }

    pub async fn chat(
        &self,
        socket: &str,
        named_room: Option<&str>,
        text: &str,
    ) -> Result<Said, ProtocolError> {
        match self {
            Self::Memory(r) => r.chat(socket, named_room, text),
            Self::Redis(r) => r.chat(socket, named_room, text).await,
        }
    }

    /// Checks that `target` is in the same room as `socket`; returns that room.
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

    pub async fn set_media(
        &self,
        socket: &str,
        named_room: Option<&str>,
        change: MediaChange,
    ) -> Result<Updated, ProtocolError> {
        match self {
            Self::Memory(r) => r.set_media(socket, named_room, change),
            Self::Redis(r) => r.set_media(socket, named_room, change).await,
        }
    }

    pub async fn set_screen_sharing(
        &self,
        socket: &str,
        named_room: Option<&str>,
        sharing: bool,
    ) -> Result<Updated, ProtocolError> {
        match self {
            Self::Memory(r) => r.set_screen_sharing(socket, named_room, sharing),
            Self::Redis(r) => r.set_screen_sharing(socket, named_room, sharing).await,
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
    ) -> Result<Option<Vec<Participant>>, StoreUnavailable> {
        match self {
            Self::Memory(r) => Ok(r.close_room(room_id)),
            Self::Redis(r) => r.close_room(room_id).await,
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
