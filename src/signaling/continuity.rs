//! Call continuity (connection state recovery, issue 18). With `RECOVERY_WINDOW_S` > 0,
//! socketioxide keeps the session of a socket whose connection dropped (same id, rooms,
//! extensions, handlers, and every packet sent to it meanwhile) until its client comes back
//! or the window passes; `on_disconnect` runs only when the session really ends, and then
//! it is today's leave. Here the room hears of it: the registry marks the participant
//! `reconnecting` when the connection drops and `connected` when its client recovered the
//! session, and announces each change (`participant-reconnecting` / `-reconnected`, then
//! the list). Both run in the socket's turn, so they fall in order among its events.

use std::sync::{Arc, Mutex, PoisonError};

use socketioxide::adapter::LocalAdapter;
use socketioxide::extract::{SocketRef, State};
use socketioxide::handler::FromDisconnectParts;
use socketioxide::socket::{DisconnectReason, Socket};

use super::client::Client;
use super::order::Turn;
use crate::model::Connection;
use crate::state::{AppState, ReconnectingSlot};

/// Registers the lifecycle handlers of recovery on `socket` (they never run while recovery
/// is off); called before the client is told it is connected.
pub fn prepare(socket: &SocketRef, app: &AppState) {
    if !app.config.recovery() {
        return;
    }
    socket.extensions.insert(Arc::new(Away::default()));
    socket.on_transport_lost(on_transport_lost);
    socket.on_recovered(on_recovered);
}

/// Whether the socket's client is away: counted in `/health` (`reconnecting`) while it is.
/// Dropped with the socket, so a session that ends while away is uncounted too.
#[derive(Default)]
struct Away(Mutex<Option<ReconnectingSlot>>);

impl Away {
    fn set(&self, slot: Option<ReconnectingSlot>) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = slot;
    }
}

/// A lifecycle event's place in its socket's queue of events, taken when socketioxide calls
/// the handler (synchronously, as events take theirs on arrival): a recovery then comes
/// before the events its client sends on the new connection.
struct LifecycleTurn(Turn);

#[derive(Debug, thiserror::Error)]
#[error("socket has no session (connect middleware did not run)")]
struct NoSession;

impl FromDisconnectParts<LocalAdapter> for LifecycleTurn {
    type Error = NoSession;
    fn from_disconnect_parts(s: &Arc<Socket>, _: DisconnectReason) -> Result<Self, NoSession> {
        let client = s.extensions.get::<Arc<Client>>().ok_or(NoSession)?;
        Ok(Self(client.turn()))
    }
}

/// The connection dropped; the session waits for its client.
async fn on_transport_lost(
    turn: LifecycleTurn,
    socket: SocketRef,
    State(app): State<AppState>,
    reason: DisconnectReason,
) {
    let _turn = turn.0.wait().await;
    if let Some(away) = socket.extensions.get::<Arc<Away>>() {
        away.set(Some(app.reconnecting_slot()));
    }
    let window = app.config.recovery_window.as_secs();
    tracing::info!(socket = %socket.id, %reason, window, "connection lost: session kept for its client");
    mark(&app, &socket, Connection::Reconnecting).await;
}

/// Its client is back on a new connection, and got what was sent to it meanwhile.
async fn on_recovered(
    turn: LifecycleTurn,
    socket: SocketRef,
    State(app): State<AppState>,
    reason: DisconnectReason,
) {
    let _turn = turn.0.wait().await;
    if let Some(away) = socket.extensions.get::<Arc<Away>>() {
        away.set(None);
    }
    tracing::info!(socket = %socket.id, previous = %reason, transport = ?socket.transport_type(), "session recovered");
    mark(&app, &socket, Connection::Connected).await;
}

/// Records the participant's connection state and waits until the room has been told, so
/// the socket's next events come after it.
async fn mark(app: &AppState, socket: &SocketRef, connection: Connection) {
    let ticket = app.deliveries.ticket();
    match app
        .registry
        .set_connection(socket.id.as_str(), connection, Some(ticket.id))
        .await
    {
        Ok(Some(_)) => ticket.delivered().await,
        // In no room: nobody to tell.
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(socket = %socket.id, ?connection, "connection state not recorded: {e}");
        }
    }
}
