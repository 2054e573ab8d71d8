//! The background task that removes rooms left empty past `EMPTY_ROOM_TTL_SECS` and rooms
//! made by `create-room` but never joined past `UNUSED_ROOM_TTL_SECS`; it also forgets idle
//! client addresses of the per-address rate limiters. In a cluster every instance sweeps; the
//! store makes each removal happen once.

use std::sync::Arc;
use std::time::Duration;

use crate::limits::AddressLimiter;
use crate::registry::Registry;

/// PROTOCOL.md promises removal within 5 s of the TTL; once a second keeps well inside that.
const SWEEP_EVERY: Duration = Duration::from_secs(1);

pub async fn run(registry: Arc<Registry>, limiters: [Arc<AddressLimiter>; 2]) {
    let mut tick = tokio::time::interval(SWEEP_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match registry.sweep().await {
            Ok(rooms) => {
                for room in rooms {
                    tracing::info!(%room, "room removed (expired)");
                }
            }
            Err(e) => tracing::debug!("sweep skipped: {e}"),
        }
        for limiter in &limiters {
            limiter.prune();
        }
    }
}
