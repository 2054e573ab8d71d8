//! The Socket.IO side: one handler per client event, grouped by concern. Handlers decode the
//! payload ([`crate::protocol`]), ask the registry ([`crate::rooms`]) what happened, and only
//! then, with no lock held, turn the outcome into emits.

mod chat;
mod client;
mod deliver;
mod incoming;
mod media;
pub mod moderation;
mod order;
mod payload;
mod relay;
mod reply;
pub mod session;

use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;
use socketioxide::extract::{Event, SocketRef, State};
use socketioxide::handler::ConnectHandler;

use crate::cluster::ClusterAdapter;
use crate::cluster::driver::ReconnectingDriver;
use crate::protocol::RelayKind;
use crate::state::AppState;
use client::Client;

/// Registers the default namespace and every event of PROTOCOL.md on one instance.
pub fn register(io: &SocketIo) {
    io.ns("/", on_connected.with(prepare));
}

/// Registers the default namespace on an instance of a cluster; resolves once the adapter
/// subscribed to the cluster's channels.
pub async fn register_cluster(
    io: &SocketIo<ClusterAdapter>,
) -> Result<(), socketioxide_redis::InitError<ReconnectingDriver>> {
    io.ns("/", on_connected.with(prepare)).await
}

/// Runs before the client is told it is connected (connect handlers run only after), so no
/// event the client sends once connected can arrive before its handler exists.
async fn prepare<A: Adapter>(
    socket: SocketRef<A>,
    State(app): State<AppState>,
) -> Result<(), AtCapacity> {
    // The handshake is refused at capacity already (503); this catches sessions that
    // handshook first and connect to the namespace later.
    let Some(slot) = app.open_connection() else {
        let cap = app.config.max_connections;
        tracing::warn!(cap, "namespace connect refused: MAX_CONNECTIONS reached");
        return Err(AtCapacity);
    };
    socket
        .extensions
        .insert(Client::new(&app.config.rate_limits, slot));
    if app.registry.is_shared() {
        // Relays and operator actions reach a socket of any instance through this room.
        socket.join(deliver::personal_channel(&socket.id.to_string()));
    }

    socket.on("join-room", session::on_join::<A>);
    socket.on("leave-room", session::on_leave::<A>);
    socket.on_disconnect(session::on_disconnect::<A>);

    socket.on("send-message", chat::on_send_message::<A>);

    for kind in [
        RelayKind::Offer,
        RelayKind::Answer,
        RelayKind::IceCandidate,
        RelayKind::ConnectionRequest,
    ] {
        socket.on(kind.client_event(), relay::on_relay::<A>);
    }

    for event in ["toggle-audio", "toggle-video", "toggle-media"] {
        socket.on(event, media::on_toggle::<A>);
    }
    for event in [
        "start-screen-share",
        "stop-screen-share",
        "toggle-screen-share",
    ] {
        socket.on(event, media::on_screen_share::<A>);
    }

    socket.on_fallback(on_unknown_event::<A>);
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("Server is at capacity; try again later")]
struct AtCapacity;

async fn on_connected<A: Adapter>(socket: SocketRef<A>) {
    tracing::info!(socket = %socket.id, transport = ?socket.transport_type(), "connected");
}

/// Unknown events are ignored: answering them would hand out free amplification.
async fn on_unknown_event<A: Adapter>(
    socket: SocketRef<A>,
    State(app): State<AppState>,
    Event(event): Event,
) {
    app.metrics.event_received("unknown");
    tracing::debug!(socket = %socket.id, %event, "unknown event ignored");
}
