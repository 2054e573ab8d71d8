//! Emitting to sockets of this instance, for the announcer and the negotiation assist alike.
//!
//! A payload is encoded once and emitted to each recipient, so a recipient whose outgoing
//! buffer is full is known by name: it is a slow consumer (it stopped reading, or fell
//! hopelessly behind) and is evicted — taken out of its room with the usual announcements,
//! then disconnected — instead of silently losing events while the server keeps it listed.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;
use socketioxide::extract::SocketRef;
use socketioxide::{SendError, SocketError};

use super::client::Client;
use super::outgoing::Relayed;
use crate::registry::LeaveReason;
use crate::registry::events::Relay;
use crate::state::AppState;

/// A relay to a socket of this instance, stamped with its sender's id.
pub fn deliver_relay(app: &AppState, target: SocketRef, relay: &Relay) {
    if let Some(relayed) = Relayed::of(relay) {
        emit_each(app, [target], relay.kind.server_event(), &relayed);
    }
}

/// Emits `data` to each target from one encoding, whose text they share (with connection
/// state recovery, each keeps that one text until its client has it, rather than a copy of
/// its own); a target whose buffer is full is a slow consumer and is evicted.
pub fn emit_each<T: Serialize + ?Sized>(
    app: &AppState,
    targets: impl IntoIterator<Item = SocketRef>,
    event: &str,
    data: &T,
) {
    let mut targets = targets.into_iter().peekable();
    let Some(first) = targets.peek() else {
        return;
    };
    // Every socket here is in the one namespace the server has, so the first one's
    // encoding is everybody's.
    let encoded = match first.encode_event(event, data) {
        Ok(encoded) => encoded,
        Err(e) => {
            tracing::error!(%event, "cannot serialize payload: {e}");
            return;
        }
    };
    for target in targets {
        match target.emit_encoded(&encoded) {
            Err(SendError::Socket(SocketError::InternalChannelFull)) => evict(app, target),
            Err(e) => tracing::debug!(socket = %target.id, %event, "emit failed: {e}"),
            Ok(()) => {}
        }
    }
}

/// Takes a slow consumer out of its room (in its own turn, after its pending events); its
/// departure, announced, disconnects it. Idempotent.
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
        match app
            .registry
            .leave(&target.id.to_string(), LeaveReason::Evicted, None)
            .await
        {
            Ok(Some(_)) => {}
            Ok(None) => {
                target.disconnect().ok();
            }
            Err(e) => {
                tracing::warn!(socket = %target.id, "evicted socket not removed: {e}");
                target.disconnect().ok();
            }
        }
    });
}
