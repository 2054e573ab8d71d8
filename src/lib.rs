//! ProLiteMeet Server: rooms, chat and WebRTC signaling for the ProLiteMeet frontends, over
//! Socket.IO, as a drop-in for the original Node.js backend.
//!
//! [`app`] builds everything from a [`Config`]; [`serve`] runs it until a shutdown signal.
//! Tests start exactly these two.

pub mod access;
pub mod address;
pub mod assist;
pub mod cli;
pub mod cluster;
pub mod config;
pub mod http;
pub mod ice;
pub mod limits;
pub mod logging;
mod memory;
pub mod metrics;
pub mod model;
pub mod net;
pub mod password;
pub mod protocol;
pub mod registry;
pub mod signaling;
pub mod state;
mod sweeper;
pub mod webhook_secret;
pub mod webhooks;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use socketioxide::{SocketIo, SocketIoBuilder};
use tokio::net::TcpListener;
use tokio::sync::{Notify, mpsc};

pub use cluster::StartError;
use cluster::bus::Bus;
pub use config::{Config, Deployment};
use registry::events::Batch;
use registry::memory::MemoryRegistry;
use registry::{Limits, Registry};
pub use state::{App, AppState};

/// What [`serve`] runs: the app (state and Socket.IO) and the background work it starts
/// with it — the announcer's inbox and, in a cluster, the pub/sub bus.
pub struct Server {
    pub app: App,
    bus: Option<Bus>,
    announcements: mpsc::UnboundedReceiver<Batch>,
}

/// How long open connections get to close after a shutdown signal before the server exits
/// anyway (PaaS platforms kill after ~10 s; we stay well inside that).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How long queued webhooks get to go out at shutdown.
const WEBHOOK_DRAIN: Duration = Duration::from_secs(2);

/// How long a new Engine.IO session may take to connect to the Socket.IO namespace.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the server `config` describes: the router (REST + Socket.IO + CORS) and the state
/// behind it, with rooms in memory or — in cluster mode — in Redis, decided here once. Fails
/// only in cluster mode, when Redis does not answer.
pub async fn app(config: Config) -> Result<(Router, Server), StartError> {
    let config = Arc::new(config);
    let instance = new_instance_id();
    let (inbox, announcements) = mpsc::unbounded_channel();
    let (registry, bus) = match &config.deployment {
        Deployment::Memory => {
            let mut registry =
                MemoryRegistry::new(limits(&config), inbox.clone(), instance.clone());
            if let Some(key) = &config.room_password_key {
                registry = registry.with_password_key(key.clone());
            }
            (Registry::Memory(registry), None)
        }
        Deployment::Redis { url, prefix } => {
            let cluster = cluster::connect(
                url,
                prefix,
                limits(&config),
                instance.clone(),
                inbox.clone(),
            )
            .await?;
            let mut registry = cluster.registry;
            match &config.room_password_key {
                Some(key) => registry = registry.with_password_key(key.clone()),
                // Debug only: the first line at info is the listening address.
                None => tracing::debug!(
                    "room passwords are hashed with a key kept in Redis; set ROOM_PASSWORD_KEY to keep it out"
                ),
            }
            (Registry::Redis(registry), Some(cluster.bus))
        }
    };
    let state = AppState::new(config.clone(), Arc::new(registry), instance, inbox);
    let (socket_layer, io) = socket_io(&config).with_state(state.clone()).build_layer();
    signaling::register(&io);
    let app = App { state, io };
    let router = http::service(&app, socket_layer);
    Ok((
        router,
        Server {
            app,
            bus,
            announcements,
        },
    ))
}

fn limits(config: &Config) -> Limits {
    Limits {
        max_participants: config.max_participants,
        chat_history_limit: config.chat_history_limit,
        chat_history_bytes: config.chat_history_bytes,
        chat_history_total_bytes: config.chat_history_total_bytes,
        empty_room_ttl: config.empty_room_ttl,
        unused_room_ttl: config.unused_room_ttl,
        max_rooms: config.max_rooms,
        max_rooms_per_address: config.max_rooms_per_address,
        connection_states: config.recovery(),
    }
}

/// A short random id naming this instance in logs, `/health` and the cluster's heartbeats.
fn new_instance_id() -> Arc<str> {
    uuid::Uuid::new_v4().simple().to_string()[..12].into()
}

fn socket_io(config: &Config) -> SocketIoBuilder {
    let builder = SocketIo::builder();
    // Off (a zero window), the wire is exactly as before recovery existed.
    let builder = match config.recovery() {
        true => builder
            .connection_state_recovery(config.recovery_window, config.recovery_buffer_max)
            .connection_state_recovery_max_bytes(config.recovery_buffer_bytes),
        false => builder,
    };
    builder
        // Each WebSocket eagerly allocates this read buffer (default 4 KiB); signaling
        // frames are small and larger ones still fit (the buffer grows as needed).
        .ws_read_buffer_size(1024)
        .max_payload(config.max_payload_bytes as u64)
        .ws_max_message_size(config.max_payload_bytes)
        .ws_max_frame_size(config.max_payload_bytes)
        // An Engine.IO session that never joins the namespace is closed after this, so bare
        // handshakes (not counted by MAX_CONNECTIONS until they connect) cannot pile up.
        .connect_timeout(CONNECT_TIMEOUT)
        .max_buffer_size(config.socket_buffer_packets)
        .max_buffer_bytes(config.socket_buffer_bytes)
        // A session's handshake headers stay with it for its whole life; the server reads
        // one of them, once, when the socket connects (the client's address behind trusted
        // proxies, `signaling::client_address`).
        .session_headers(|name| name == "x-forwarded-for")
}

/// Serves `router` on `listener` until `shutdown` resolves, then closes every socket and
/// returns once connections are done (or after a short grace period).
pub async fn serve(
    listener: TcpListener,
    router: Router,
    server: Server,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let Server {
        app,
        bus,
        announcements,
    } = server;
    let sweeper = tokio::spawn(sweeper::run(
        app.state.registry.clone(),
        [
            app.state.ice_limiter.clone(),
            app.state.room_limiter.clone(),
        ],
    ));
    let trimmer = tokio::spawn(memory::run(app.state.clone()));
    let webhooks = app.state.webhooks.clone();
    let webhook_senders = webhooks.start();
    let removals = tokio::spawn(signaling::session::retry_removals(app.state.clone()));
    let announcer = tokio::spawn(signaling::announce::run(
        app.io.clone(),
        app.state.clone(),
        announcements,
    ));
    let liveness = bus.map(|bus| {
        tokio::spawn(cluster::liveness::run(
            app.state.clone(),
            app.io.clone(),
            bus,
        ))
    });
    let listener = net::GuardedListener::new(listener, app.state.config.write_stall_timeout);
    let closing = Arc::new(Notify::new());
    let graceful = {
        let closing = closing.clone();
        async move {
            shutdown.await;
            tracing::info!("shutting down: closing sockets");
            app.state.begin_shutdown();
            closing.notify_one();
            // In a cluster, whoever this instance still lists is taken out and announced
            // to the other instances first, while it can still publish.
            cluster::liveness::retire(&app.state).await;
            app.io.close().await;
        }
    };
    let server = axum::serve(
        listener,
        router.into_make_service_with_connect_info::<net::PeerAddr>(),
    )
    .with_graceful_shutdown(graceful);
    let result = tokio::select! {
        result = server => result,
        () = async {
            closing.notified().await;
            tokio::time::sleep(SHUTDOWN_GRACE).await;
        } => {
            tracing::warn!("connections still open after {SHUTDOWN_GRACE:?}; exiting anyway");
            Ok(())
        }
    };
    webhooks.drain(WEBHOOK_DRAIN).await;
    for sender in webhook_senders {
        sender.abort();
    }
    sweeper.abort();
    trimmer.abort();
    removals.abort();
    announcer.abort();
    if let Some(liveness) = liveness {
        liveness.abort();
    }
    result
}
