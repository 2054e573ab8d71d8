//! ProLiteMeet Server: rooms, chat and WebRTC signaling for the ProLiteMeet frontends, over
//! Socket.IO, as a drop-in for the original Node.js backend.
//!
//! [`app`] builds everything from a [`Config`]; [`serve`] runs it until a shutdown signal.
//! Tests start exactly these two.

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
pub mod protocol;
pub mod registry;
pub mod signaling;
pub mod state;
mod sweeper;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use socketioxide::adapter::Adapter;
use socketioxide::{SocketIo, SocketIoBuilder};
use tokio::net::TcpListener;
use tokio::sync::Notify;

use cluster::ClusterAdapter;
pub use config::Config;
use registry::Limits;
use registry::Registry;
use registry::memory::MemoryRegistry;
pub use state::{App, AppState};

/// How long open connections get to close after a shutdown signal before the server exits
/// anyway (PaaS platforms kill after ~10 s; we stay well inside that).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

/// How long a new Engine.IO session may take to connect to the Socket.IO namespace.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Builds the single-instance server (rooms in memory): the router (REST + Socket.IO +
/// CORS) and the state behind it.
pub fn app(config: Config) -> (Router, App) {
    let config = Arc::new(config);
    let registry = Registry::Memory(MemoryRegistry::new(limits(&config)));
    let state = AppState::new(config.clone(), Arc::new(registry), new_instance_id());
    let (socket_layer, io) = socket_io(&config).with_state(state.clone()).build_layer();
    signaling::register(&io);
    let app = App {
        state,
        io,
        cluster_driver: None,
    };
    (http::service(&app, socket_layer), app)
}

/// Builds one instance of a cluster (`REDIS_URL`): rooms in Redis, emits through the Redis
/// adapter. Fails if Redis does not answer.
pub async fn cluster_app(
    config: Config,
) -> Result<(Router, App<ClusterAdapter>), cluster::StartError> {
    let config = Arc::new(config);
    let url = config
        .redis_url
        .clone()
        .ok_or_else(|| cluster::StartError::Adapter("REDIS_URL is not set".into()))?;
    let instance = new_instance_id();
    let cluster = cluster::connect(&config, &url, limits(&config), instance.clone()).await?;
    let registry = Registry::Redis(cluster.registry);
    let state = AppState::new(config.clone(), Arc::new(registry), instance);
    let (socket_layer, io) = socket_io(&config)
        .with_state(state.clone())
        .with_adapter::<ClusterAdapter>(cluster.adapter)
        .build_layer();
    signaling::register_cluster(&io)
        .await
        .map_err(|e| cluster::StartError::Adapter(e.to_string()))?;
    let app = App {
        state,
        io,
        cluster_driver: Some(cluster.driver),
    };
    Ok((http::service(&app, socket_layer), app))
}

fn limits(config: &Config) -> Limits {
    Limits {
        max_participants: config.max_participants,
        chat_history_limit: config.chat_history_limit,
        empty_room_ttl: config.empty_room_ttl,
        unused_room_ttl: config.unused_room_ttl,
        max_rooms: config.max_rooms,
    }
}

/// A short random id naming this instance in logs, `/health` and the cluster's heartbeats.
fn new_instance_id() -> Arc<str> {
    uuid::Uuid::new_v4().simple().to_string()[..12].into()
}

fn socket_io(config: &Config) -> SocketIoBuilder {
    SocketIo::builder()
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
}

/// Closing the server does not run the sockets' disconnect handlers (socketioxide closes the
/// namespace first), so in a cluster this instance first takes out and announces everyone it
/// lists, while it can still emit: nobody lingers until the others' liveness timeout.
async fn leave_cluster<A: Adapter>(app: &App<A>) {
    if app.cluster_driver.is_some() {
        cluster::liveness::retire(&app.state, &app.io).await;
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then closes every socket and
/// returns once connections are done (or after a short grace period).
pub async fn serve<A: Adapter>(
    listener: TcpListener,
    router: Router,
    app: App<A>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let sweeper = tokio::spawn(sweeper::run(
        app.state.registry.clone(),
        app.state.ice_limiter.clone(),
    ));
    let trimmer = tokio::spawn(memory::run(app.state.clone()));
    let liveness = app.cluster_driver.clone().map(|driver| {
        tokio::spawn(cluster::liveness::run(
            app.state.clone(),
            app.io.clone(),
            driver,
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
            leave_cluster(&app).await;
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
    sweeper.abort();
    trimmer.abort();
    if let Some(liveness) = liveness {
        liveness.abort();
    }
    result
}
