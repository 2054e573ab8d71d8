//! The Socket.IO side: one handler per client event, grouped by concern. Handlers decode the
//! payload ([`crate::protocol`]), ask the registry ([`crate::registry`]) to make the change,
//! wait until the change is announced ([`announce`], which turns the registry's events into
//! emits), then answer the sender.

pub mod announce;
mod chat;
mod client;
mod continuity;
mod emit;
mod events;
mod incoming;
mod media;
mod moderation;
mod negotiation;
mod order;
mod outgoing;
mod payload;
mod relay;
mod reply;
pub mod session;

use std::net::IpAddr;

use axum::extract::ConnectInfo;
use socketioxide::SocketIo;
use socketioxide::extract::{SocketRef, State, TryData};
use socketioxide::handler::ConnectHandler;

use crate::net::PeerAddr;
use crate::state::AppState;
use client::{Client, Queued};
use events::Handler;
use incoming::Arrival;

/// Registers the default namespace and every event of PROTOCOL.md.
pub fn register(io: &SocketIo) {
    io.ns("/", on_connected.with(prepare));
}

/// Runs before the client is told it is connected (connect handlers run only after), so no
/// event the client sends once connected can arrive before its handler exists.
async fn prepare(
    socket: SocketRef,
    State(app): State<AppState>,
    TryData(auth): TryData<serde_json::Value>,
) -> Result<(), AtCapacity> {
    // The handshake is refused at capacity already (503); this catches sessions that
    // handshook first and connect to the namespace later.
    let Some(slot) = app.open_connection() else {
        let cap = app.config.max_connections;
        tracing::warn!(cap, "namespace connect refused: MAX_CONNECTIONS reached");
        return Err(AtCapacity);
    };
    let address = client_address(&socket, &app);
    let bounds = Queued {
        events: app.config.max_queued_events,
        bytes: app.config.max_queued_bytes,
    };
    // A handshake without `auth`, or with one of another shape, simply has no token: the
    // connection is never refused for it, only a join that needs a token is.
    let handshake_token = auth
        .ok()
        .and_then(|auth| auth.get("token")?.as_str().map(str::to_owned));
    socket.extensions.insert(Client::new(
        &app.config.rate_limits,
        bounds,
        address,
        handshake_token,
        slot,
    ));
    socket.on_disconnect(session::on_disconnect);
    continuity::prepare(&socket, &app);
    // One handler for every event, rather than one entry per event in each socket's own
    // handler map: that map (25 events) was 1.3 KB of every idle client (heaptrack).
    socket.on_fallback(dispatch);
    Ok(())
}

#[derive(Debug, thiserror::Error)]
#[error("Server is at capacity; try again later")]
struct AtCapacity;

/// The client's address, from its handshake request (the TCP peer, or `X-Forwarded-For`
/// behind trusted proxies).
fn client_address(socket: &SocketRef, app: &AppState) -> IpAddr {
    let request = socket.req_parts();
    let peer = request
        .extensions
        .get::<ConnectInfo<PeerAddr>>()
        .map_or(IpAddr::from([0, 0, 0, 0]), |ConnectInfo(PeerAddr(peer))| {
            peer.ip()
        });
    app.config.trusted_proxies.client(peer, &request.headers)
}

async fn on_connected(socket: SocketRef) {
    tracing::info!(socket = %socket.id, transport = ?socket.transport_type(), "connected");
}

/// Hands each event to the handler the table names. Unknown events are ignored: answering
/// them would hand out free amplification.
async fn dispatch(arrival: Arrival, io: SocketIo) {
    let (handler, incoming) = match arrival {
        Arrival::Known(handler, incoming) => (handler, incoming),
        Arrival::Unknown { socket, app, event } => {
            app.metrics.event_received("unknown");
            tracing::debug!(socket = %socket.id, %event, "unknown event ignored");
            return;
        }
    };
    match handler {
        Handler::Join => session::on_join(incoming).await,
        Handler::Leave => session::on_leave(incoming).await,
        Handler::Chat => chat::on_send_message(incoming).await,
        Handler::Relay => relay::on_relay(incoming, io).await,
        Handler::Toggle => media::on_toggle(incoming).await,
        Handler::ScreenShare => media::on_screen_share(incoming).await,
        Handler::Moderate => moderation::on_moderate(incoming).await,
    }
}
