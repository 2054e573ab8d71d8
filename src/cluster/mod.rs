//! Cluster mode (`REDIS_URL` set): several instances share rooms through Redis. The room
//! registry lives in Redis ([`crate::registry::redis`]); its scripts publish every change,
//! which each instance receives on its [`bus`]; each instance keeps a heartbeat and the
//! survivors remove the participants of an instance that died ([`liveness`]).

pub mod bus;
pub mod liveness;

use std::sync::Arc;

use crate::registry::Limits;
use crate::registry::events::Inbox;
use crate::registry::redis::{RedisRegistry, connection};
use bus::Bus;

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot reach Redis at REDIS_URL: {0}")]
    Unreachable(#[from] redis::RedisError),
}

/// What cluster mode runs on, once Redis answered.
pub struct Cluster {
    pub registry: RedisRegistry,
    pub bus: Bus,
}

/// Connects to Redis at `url` (failing at once if it does not answer) as instance
/// `instance`, with keys and channels under `prefix`; published batches go to `inbox`.
pub async fn connect(
    url: &str,
    prefix: &str,
    limits: Limits,
    instance: Arc<str>,
    inbox: Inbox,
) -> Result<Cluster, StartError> {
    let client = connection::client(url)?;
    let registry = RedisRegistry::connect(&client, limits, prefix, instance.clone()).await?;
    let bus = Bus::connect(&client, registry.channels(), inbox).await?;
    Ok(Cluster { registry, bus })
}
