//! The state shared by every HTTP and socket handler, passed explicitly to both
//! (axum `State` and socketioxide `State`).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use crate::config::Config;
use crate::metrics::Metrics;
use crate::ratelimit::AddressLimiter;
use crate::registry::Registry;

#[derive(Clone)]
pub struct AppState {
    pub config: Arc<Config>,
    pub registry: Arc<Registry>,
    pub metrics: Arc<Metrics>,
    /// `GET /api/ice-servers` requests per client address.
    pub ice_limiter: Arc<AddressLimiter>,
    /// This instance among its cluster (reported by `/health`).
    pub instance_id: Arc<str>,
    /// The room store answers (always, in memory; in cluster mode, while Redis does).
    store_reachable: Arc<AtomicBool>,
    started: Instant,
    connections: Arc<AtomicUsize>,
    /// Connections opened plus connections closed since the start (see `memory`).
    connection_changes: Arc<AtomicU64>,
    shutting_down: Arc<AtomicBool>,
}

impl AppState {
    pub fn new(config: Arc<Config>, registry: Arc<Registry>, instance_id: Arc<str>) -> Self {
        Self {
            ice_limiter: Arc::new(AddressLimiter::new(config.ice_rate)),
            instance_id,
            store_reachable: Arc::new(AtomicBool::new(true)),
            config,
            registry,
            metrics: Arc::new(Metrics::new()),
            started: Instant::now(),
            connections: Arc::default(),
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

    pub fn connection_opened(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
        self.connection_changes.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_closed(&self) {
        self.connections.fetch_sub(1, Ordering::Relaxed);
        self.connection_changes.fetch_add(1, Ordering::Relaxed);
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
