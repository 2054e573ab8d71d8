//! Delivery of events to sockets. On one instance a payload is serialized once and emitted to
//! each recipient, so a recipient whose outgoing buffer is full is known by name: it is a slow
//! consumer (it stopped reading, or fell hopelessly behind) and is evicted — taken out of its
//! room with the usual announcements, then disconnected — instead of silently losing events
//! while the server keeps it listed. In a cluster every emit goes through the Redis adapter,
//! which reaches the sockets of every instance; a reader that stops there is caught by the
//! write-stall timeout instead.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;
use socketioxide::operators::BroadcastOperators;
use socketioxide::socket::Sid;
use socketioxide::{SendError, SocketError, SocketIo};

use super::client::Client;
use super::session::announce_leave;
use crate::state::AppState;

/// The Socket.IO room that carries a meeting room's broadcasts. The prefix keeps meeting
/// rooms apart from any other use of Socket.IO rooms (socketioxide and its adapters name
/// rooms freely, socket ids included).
pub fn channel(room: &str) -> String {
    format!("room:{room}")
}

/// The default namespace, to address sockets from outside a handler; `None` once the server
/// has closed (socketioxide's `io.to`, `io.within` and `io.get_socket` panic then).
pub fn namespace<A: Adapter>(io: &SocketIo<A>) -> Option<BroadcastOperators<A>> {
    io.of("/")
}

/// The Socket.IO room that reaches one participant wherever its socket is connected; only
/// used in cluster mode (one instance addresses its own sockets directly).
pub fn personal_channel(socket: &str) -> String {
    format!("sid:{socket}")
}

/// Emits to everyone in meeting room `room`, `socket` included if it is in it.
pub async fn to_room<A: Adapter, T: Serialize + ?Sized>(
    socket: &SocketRef<A>,
    app: &AppState,
    room: &str,
    event: &str,
    data: &T,
) {
    deliver(app, socket.within(channel(room)), event, data).await;
}

/// Emits to everyone in meeting room `room` but `socket`.
pub async fn to_others<A: Adapter, T: Serialize + ?Sized>(
    socket: &SocketRef<A>,
    app: &AppState,
    room: &str,
    event: &str,
    data: &T,
) {
    deliver(app, socket.to(channel(room)), event, data).await;
}

/// Emits to everyone in meeting room `room`, from no socket (operator actions, the removal of
/// a dead instance's participants).
pub async fn to_room_from_server<A: Adapter, T: Serialize + ?Sized>(
    io: &SocketIo<A>,
    app: &AppState,
    room: &str,
    event: &str,
    data: &T,
) {
    if let Some(ns) = namespace(io) {
        deliver(app, ns.within(channel(room)), event, data).await;
    }
}

/// Emits to one participant by socket id, on whichever instance holds it.
pub async fn to_participant<A: Adapter, T: Serialize + ?Sized>(
    io: &SocketIo<A>,
    app: &AppState,
    socket: &str,
    event: &str,
    data: &T,
) {
    let Some(ns) = namespace(io) else {
        return;
    };
    if app.registry.is_shared() {
        deliver(app, ns.to(personal_channel(socket)), event, data).await;
    } else if let Some(target) = socket
        .parse::<Sid>()
        .ok()
        .and_then(|sid| ns.get_socket(sid))
    {
        emit_each(app, vec![target], event, data);
    } else {
        tracing::debug!(%socket, %event, "recipient already gone");
    }
}

/// On one instance, emits to each recipient (so a full buffer names its socket); in a
/// cluster, hands the emit to the adapter, which reaches the other instances too.
async fn deliver<A: Adapter, T: Serialize + ?Sized>(
    app: &AppState,
    recipients: BroadcastOperators<A>,
    event: &str,
    data: &T,
) {
    if app.registry.is_shared() {
        if let Err(e) = recipients.emit(event, data).await {
            tracing::warn!(%event, "cluster emit failed: {e}");
        }
    } else {
        emit_each(app, recipients.sockets(), event, data);
    }
}

fn emit_each<A: Adapter, T: Serialize + ?Sized>(
    app: &AppState,
    targets: Vec<SocketRef<A>>,
    event: &str,
    data: &T,
) {
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
fn evict<A: Adapter>(app: &AppState, target: SocketRef<A>) {
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
        match app.registry.leave(&target.id.to_string()).await {
            Ok(Some(left)) => announce_leave(&target, &app, &left, false).await,
            Ok(None) => {}
            Err(e) => tracing::warn!(socket = %target.id, "evicted socket not removed: {e}"),
        }
        target.disconnect().ok();
    });
}
