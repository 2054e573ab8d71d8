//! Cluster mode (`REDIS_URL` set): several instances share rooms through Redis. Emits cross
//! instances through socketioxide's Redis adapter (on [`driver`]); the room registry lives
//! in Redis ([`store`]); each instance keeps a heartbeat and the survivors remove the
//! participants of an instance that died ([`liveness`]).

pub mod connection;
pub mod driver;
pub mod liveness;

use std::sync::Arc;
use std::time::Duration;

use socketioxide::adapter::Emitter;
use socketioxide_redis::{CustomRedisAdapter, RedisAdapterConfig, RedisAdapterCtr};

use crate::config::Config;
use crate::registry::Limits;
use crate::registry::redis::RedisRegistry;
use driver::ReconnectingDriver;

/// socketioxide's Redis adapter on the reconnecting driver.
pub type ClusterAdapter = CustomRedisAdapter<Emitter, ReconnectingDriver>;

/// Cross-instance messages a slow instance may have queued before new ones are dropped.
const ADAPTER_STREAM_BUFFER: usize = 16 * 1024;
/// How long a request to the other instances (e.g. fetching their sockets) may take.
const ADAPTER_REQUEST_TIMEOUT: Duration = Duration::from_secs(3);

/// Why cluster mode could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("cannot reach Redis at REDIS_URL: {0}")]
    Unreachable(#[from] redis::RedisError),
    #[error("cannot start the Redis adapter: {0}")]
    Adapter(String),
}

/// What cluster mode runs on, once Redis answered.
pub struct Cluster {
    pub registry: RedisRegistry,
    pub adapter: RedisAdapterCtr<ReconnectingDriver>,
    pub driver: ReconnectingDriver,
}

/// Connects to Redis (failing at once if it does not answer) as instance `instance`.
pub async fn connect(
    config: &Config,
    url: &str,
    limits: Limits,
    instance: Arc<str>,
) -> Result<Cluster, StartError> {
    let client = connection::client(url)?;
    let registry = RedisRegistry::connect(&client, limits, &config.redis_prefix, instance).await?;
    let driver = ReconnectingDriver::connect(&client).await?;
    let adapter_config = RedisAdapterConfig::new()
        .with_prefix(format!("{}-socket.io", config.redis_prefix))
        .with_request_timeout(ADAPTER_REQUEST_TIMEOUT)
        .with_stream_buffer(ADAPTER_STREAM_BUFFER);
    let adapter = RedisAdapterCtr::new_with_driver(driver.clone(), adapter_config);
    Ok(Cluster {
        registry,
        adapter,
        driver,
    })
}
