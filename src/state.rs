//! The state shared by every HTTP and socket handler, passed explicitly to both
//! (axum `State` and socketioxide `State`), and the assembled [`App`]: that state with the
//! Socket.IO handle. It sits below the handlers, which all take it from here.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::FromRef;
use socketioxide::SocketIo;

use crate::assist::Assist;
use crate::config::Config;
use crate::limits::AddressLimiter;
use crate::metrics::Metrics;
use crate::registry::Registry;
use crate::registry::events::{Deliveries, Inbox};
use crate::webhooks::Webhooks;

/// The assembled server as handlers see it: its shared state and the Socket.IO handle.
#[derive(Clone)]
pub struct App {
    pub state: AppState,
    pub io: SocketIo,
}

impl FromRef<App> for AppState {
    fn from_ref(app: &App) -> AppState {
        app.state.clone()
    }
}

/// Disconnects during a Redis outage remembered for removal; past this many, later ones are
/// dropped (their instance's retirement or reaping still removes them).
const MAX_PENDING_REMOVALS: usize = 100_000;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    /// `GET /api/ice-servers` requests per client address.
    pub ice_limiter: Arc<AddressLimiter>,
    /// Rooms made per client address.
    pub room_limiter: Arc<AddressLimiter>,
    /// This instance among its cluster (reported by `/health`).
    pub instance_id: Arc<str>,
    /// The announcer's inbox, for changes made outside the registry (operator actions).
    pub inbox: Inbox,
    /// Handlers waiting for their change to be announced.
    pub deliveries: Arc<Deliveries>,
    /// Disconnected sockets still to be taken out of their rooms (cluster mode, Redis away).
    pub pending_removals: Arc<PendingRemovals>,
    /// Webhooks to the application's backend (fed by the announcer).
    pub webhooks: Arc<Webhooks>,
    /// The negotiation assist (`NEGOTIATION_ASSIST`), for the participants of this instance.
    pub assist: Arc<Assist>,
    /// The room store answers (always, in memory; in cluster mode, while Redis does).
    store_reachable: Arc<AtomicBool>,
    started: Instant,
    connections: Arc<AtomicUsize>,
    /// Sessions whose connection dropped, kept for their client (connection state recovery);
    /// counted in `connections` too.
    reconnecting: Arc<AtomicUsize>,
    /// Connections opened plus connections closed since the start (see `memory`).
    connection_changes: Arc<AtomicU64>,
    shutting_down: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(
        config: Arc<Config>,
        registry: Arc<Registry>,
        instance_id: Arc<str>,
        inbox: Inbox,
    ) -> Self {
        let metrics = Arc::new(Metrics::new());
        Self {
            webhooks: Arc::new(Webhooks::new(
                config.webhooks.as_ref(),
                instance_id.clone(),
                metrics.clone(),
            )),
            inbox,
            deliveries: Arc::default(),
            pending_removals: Arc::new(PendingRemovals::new(MAX_PENDING_REMOVALS)),
            assist: Arc::new(Assist::new(config.negotiation_assist)),
            ice_limiter: Arc::new(AddressLimiter::new(config.ice_rate)),
            room_limiter: Arc::new(AddressLimiter::new(config.room_create_rate)),
            instance_id,
            store_reachable: Arc::new(AtomicBool::new(true)),
            config,
            registry,
            metrics,
            started: Instant::now(),
            connections: Arc::default(),
            reconnecting: Arc::default(),
            connection_changes: Arc::default(),
            shutting_down: Arc::default(),
        }
    }

    pub fn uptime_secs(&self) -> u64 {
        self.started.elapsed().as_secs()
    }

    /// Socket.IO connections currently open on this instance.
    pub fn connections(&self) -> usize {
        self.connections.load(Ordering::Relaxed)
    }

    /// Counts one more Socket.IO connection, unless `MAX_CONNECTIONS` are open: the check and
    /// the count are one atomic step, so racing connects cannot pass the cap. The connection
    /// stays counted for as long as the returned slot lives.
    pub fn open_connection(&self) -> Option<ConnectionSlot> {
        let cap = self.config.max_connections;
        self.connections
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |open| {
                (cap == 0 || open < cap).then_some(open + 1)
            })
            .ok()?;
        self.connection_changes.fetch_add(1, Ordering::Relaxed);
        Some(ConnectionSlot {
            open: self.connections.clone(),
            changes: self.connection_changes.clone(),
        })
    }

    /// Sessions waiting for their client to come back (see [`ReconnectingSlot`]).
    pub fn reconnecting(&self) -> usize {
        self.reconnecting.load(Ordering::Relaxed)
    }

    /// Counts one session waiting for its client, for as long as the slot lives.
    pub fn reconnecting_slot(&self) -> ReconnectingSlot {
        self.reconnecting.fetch_add(1, Ordering::AcqRel);
        ReconnectingSlot(self.reconnecting.clone())
    }

    /// Connections opened plus connections closed since the start.
    pub fn connection_changes(&self) -> u64 {
        self.connection_changes.load(Ordering::Relaxed)
    }

    pub fn store_reachable(&self) -> bool {
        self.store_reachable.load(Ordering::Relaxed)
    }

    pub fn set_store_reachable(&self, reachable: bool) {
        self.store_reachable.store(reachable, Ordering::Relaxed);
    }

    pub fn begin_shutdown(&self) {
        self.shutting_down.store(true, Ordering::Relaxed);
    }

    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::Relaxed)
    }
}

/// One counted Socket.IO connection. The socket keeps it (in its per-socket state) for its
/// whole life, and dropping it uncounts the connection, so the count equals the sockets that
/// exist however a connection ends: a normal disconnect, a connect that failed half way (its
/// session closed meanwhile), an eviction.
#[derive(Debug)]
pub struct ConnectionSlot {
    open: Arc<AtomicUsize>,
    changes: Arc<AtomicU64>,
}

impl Drop for ConnectionSlot {
    fn drop(&mut self) {
        self.open.fetch_sub(1, Ordering::AcqRel);
        self.changes.fetch_add(1, Ordering::Relaxed);
    }
}

/// One session whose connection dropped and that waits for its client (connection state
/// recovery). Its socket keeps it until the client is back or the session ends, so the count
/// stays right however the session ends.
#[derive(Debug)]
pub struct ReconnectingSlot(Arc<AtomicUsize>);

impl Drop for ReconnectingSlot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Sockets that disconnected while the room store was unreachable (cluster mode), still to
/// be taken out of their rooms once it answers: a bounded set, retried by one task
/// (`signaling::session::retry_removals`) rather than a task per socket, and holding ids
/// only, so a gone socket's memory and connection slot are freed at once.
#[derive(Debug)]
pub struct PendingRemovals {
    ids: Mutex<HashSet<Arc<str>>>,
    capacity: usize,
}

impl PendingRemovals {
    pub fn new(capacity: usize) -> Self {
        Self {
            ids: Mutex::default(),
            capacity,
        }
    }

    fn ids(&self) -> std::sync::MutexGuard<'_, HashSet<Arc<str>>> {
        self.ids
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `false` if the set is full (the removal is dropped).
    pub fn add(&self, socket: Arc<str>) -> bool {
        let mut ids = self.ids();
        if ids.len() >= self.capacity {
            return false;
        }
        ids.insert(socket);
        true
    }

    /// Every pending removal, taken out of the set.
    pub fn take(&self) -> Vec<Arc<str>> {
        self.ids().drain().collect()
    }

    pub fn len(&self) -> usize {
        self.ids().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
