//! Delivery of events to sockets. A payload is serialized once and emitted to each local
//! recipient, so a recipient whose outgoing buffer is full is known by name: it is a slow
//! consumer (it stopped reading, or fell hopelessly behind) and is evicted — taken out of its
//! room with the usual announcements, then disconnected — instead of silently losing events
//! while the server keeps it listed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError};

use super::client::Client;
use super::session::announce_leave;
use crate::state::AppState;

/// The Socket.IO room that carries a meeting room's broadcasts. The prefix keeps meeting
/// rooms apart from any other use of Socket.IO rooms (socketioxide and its adapters name
/// rooms freely, socket ids included).
pub fn channel(room: &str) -> String {
    format!("room:{room}")
}

/// Emits to everyone in meeting room `room`, `socket` included if it is in it.
pub fn to_room<T: Serialize + ?Sized>(
    socket: &SocketRef,
    app: &AppState,
    room: &str,
    event: &str,
    data: &T,
) {
    deliver(app, socket.within(channel(room)).sockets(), event, data);
}

/// Emits to everyone in meeting room `room` but `socket`.
pub fn to_others<T: Serialize + ?Sized>(
    socket: &SocketRef,
    app: &AppState,
    room: &str,
    event: &str,
    data: &T,
) {
    deliver(app, socket.to(channel(room)).sockets(), event, data);
}

/// Emits to `target`, a socket of this instance.
pub fn to_socket<T: Serialize + ?Sized>(app: &AppState, target: SocketRef, event: &str, data: &T) {
    deliver(app, vec![target], event, data);
}

fn deliver<T: Serialize + ?Sized>(app: &AppState, targets: Vec<SocketRef>, event: &str, data: &T) {
    if targets.is_empty() {
        return;
    }
    let payload: Box<RawValue> = match serde_json::value::to_raw_value(data) {
        Ok(payload) => payload,
        Err(e) => {
            tracing::error!(%event, "cannot serialize payload: {e}");
            return;
        }
    };
    for target in targets {
        match target.emit(event, &payload) {
            Err(SendError::Socket(SocketError::InternalChannelFull)) => evict(app, target),
            Err(e) => tracing::debug!(socket = %target.id, %event, "emit failed: {e}"),
            Ok(()) => {}
        }
    }
}

/// Takes a slow consumer out of its room (in its own turn, after its pending events) and
/// disconnects it. Idempotent.
fn evict(app: &AppState, target: SocketRef) {
    let Some(client) = target.extensions.get::<Arc<Client>>() else {
        return;
    };
    if client.evicted.swap(true, Ordering::AcqRel) {
        return;
    }
    app.metrics.slow_consumer();
    let app = app.clone();
    tokio::spawn(async move {
        let _turn = client.turn().wait().await;
        tracing::warn!(socket = %target.id, "slow consumer: outgoing buffer full; evicted");
        if let Some(left) = app.registry.leave(&target.id.to_string()) {
            announce_leave(&target, &app, &left, false);
        }
        target.disconnect().ok();
    });
}
