//! How this server talks to Redis: RESP3 (the bus receives pub/sub messages as pushes on an
//! ordinary connection), short timeouts so a call during an outage fails fast instead of
//! stalling a client's events, and reconnection with a short backoff, retried for as long as
//! Redis stays away.

use std::time::Duration;

use redis::aio::ConnectionManagerConfig;
use redis::{IntoConnectionInfo, ProtocolVersion};

use crate::registry::error::StoreUnavailable;

/// A command that gets no answer within this is failed (Redis answers in well under 1 ms).
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// Reconnection backoff: 100 ms, then 200 ms. Calls made while reconnecting wait for it, so
/// a round of attempts stays short; the liveness task starts the next round within a second.
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_millis(400);
const RETRIES: usize = 2;
/// An upper bound on a whole call, reconnection attempts included (timeouts and backoff of
/// each attempt: [`manager_config`]), so a call during an outage fails
/// as `unavailable` rather than hanging the handler.
const CALL_DEADLINE: Duration = Duration::from_secs(5);

/// A client for `url`, always speaking RESP3.
pub fn client(url: &str) -> redis::RedisResult<redis::Client> {
    let info = url.into_connection_info()?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    redis::Client::open(info.set_redis_settings(settings))
}

/// Timeouts and backoff for every long-lived connection of this server.
pub fn manager_config() -> ConnectionManagerConfig {
    ConnectionManagerConfig::new()
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT))
        .set_min_delay(MIN_BACKOFF)
        .set_max_delay(MAX_BACKOFF)
        .set_number_of_retries(RETRIES)
}

/// Bounds a Redis call by [`CALL_DEADLINE`] and turns its failure into [`StoreUnavailable`].
pub(super) async fn deadline<T>(
    call: impl Future<Output = redis::RedisResult<T>>,
) -> Result<T, StoreUnavailable> {
    match tokio::time::timeout(CALL_DEADLINE, call).await {
        Ok(result) => result.map_err(store_error),
        Err(_) => Err(StoreUnavailable(format!(
            "no answer within {CALL_DEADLINE:?}"
        ))),
    }
}

fn store_error(e: redis::RedisError) -> StoreUnavailable {
    StoreUnavailable(e.to_string())
}
