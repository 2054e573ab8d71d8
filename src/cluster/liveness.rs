//! Instance liveness in a cluster. Every instance refreshes its heartbeat in Redis once a
//! second; an instance silent for [`DEAD_AFTER`] is dead (killed, crashed, cut off), and the
//! first survivor to notice removes its participants — the script publishes their departures,
//! which every instance announces. The same beat watches Redis itself: `/ready` answers 503
//! while it is away, and the connections come back by themselves.

use std::time::{Duration, Instant};

use socketioxide::SocketIo;

use super::bus::Bus;
use crate::registry::Registry;
use crate::state::AppState;

const BEAT_EVERY: Duration = Duration::from_secs(1);
/// An instance whose heartbeat is this old is dead. Participants of a killed instance are
/// gone within `DEAD_AFTER` + one beat (≤ 7 s; the promise is 15 s).
pub const DEAD_AFTER: Duration = Duration::from_secs(5);

/// This instance was cut off from Redis long enough for the others to remove its
/// participants. Its sockets no longer belong to any room, so they are closed; their clients
/// see the server end the connection.
fn drop_orphaned_sockets(io: &SocketIo) {
    tracing::warn!(
        "the cluster declared this instance dead while it was cut off from Redis; closing its sockets"
    );
    let sockets = io
        .of("/")
        .map(|ns| ns.local().sockets())
        .unwrap_or_default();
    for socket in sockets {
        socket.disconnect().ok();
    }
}

/// Leaves the cluster at shutdown: whoever this instance still lists is taken out (their
/// departures published to the rest of their rooms), and the heartbeat goes at once.
pub async fn retire(app: &AppState) {
    const RETIRE_WITHIN: Duration = Duration::from_millis(1000);
    let Registry::Redis(store) = &*app.registry else {
        return;
    };
    match tokio::time::timeout(RETIRE_WITHIN, store.retire()).await {
        Ok(Ok(removed)) => tracing::info!(participants = removed.len(), "left the cluster"),
        Ok(Err(e)) => tracing::warn!("could not leave the cluster cleanly: {e}"),
        Err(_) => tracing::warn!("could not leave the cluster within {RETIRE_WITHIN:?}"),
    }
}

pub async fn run(app: AppState, io: SocketIo, bus: Bus) {
    let Registry::Redis(store) = &*app.registry else {
        return;
    };
    let mut tick = tokio::time::interval(BEAT_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Since when Redis has answered without a break. After an outage every instance's
    // heartbeat is stale, so nobody is judged dead until the others had time to beat again.
    // At start-up nothing was cut off with this instance: a stale heartbeat there is an
    // instance killed before this one started, and its participants are removed at once.
    let mut reachable_since: Option<Instant> = Instant::now().checked_sub(DEAD_AFTER);
    loop {
        tick.tick().await;
        let beat = store.heartbeat().await;
        let pubsub = bus.ping().await;
        let reachable = beat.is_ok() && pubsub.is_ok();
        if reachable != app.store_reachable() {
            if reachable {
                tracing::info!("redis reachable again: instance resumed");
            } else if let Err(e) = &beat {
                tracing::error!("redis unreachable: {e}; not ready until it is back");
            } else if let Err(e) = &pubsub {
                tracing::error!("redis pub/sub unreachable: {e}; not ready until it is back");
            }
            app.set_store_reachable(reachable);
        }
        if !reachable {
            reachable_since = None;
            continue;
        }
        if matches!(beat, Ok(true)) {
            drop_orphaned_sockets(&io);
        }
        let since = *reachable_since.get_or_insert_with(Instant::now);
        if since.elapsed() < DEAD_AFTER {
            continue;
        }
        match store.reap_dead(DEAD_AFTER).await {
            Ok(removed) if !removed.is_empty() => tracing::warn!(
                participants = removed.len(),
                "removed the participants of a dead instance"
            ),
            Ok(_) => {}
            Err(e) => tracing::warn!("liveness check failed: {e}"),
        }
    }
}
