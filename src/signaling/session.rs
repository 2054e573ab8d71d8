//! Being in a room: `join-room`, `leave-room` and disconnects. The registry announces each
//! change (the joiner's `joined-room`, `user-joined`, `user-left`, the lists; a newcomer the
//! lobby holds gets `waiting-for-admission`); the handler answers once its change has been
//! announced.

use serde_json::value::RawValue;
use socketioxide::extract::{SocketRef, State};
use socketioxide::socket::DisconnectReason;

use super::client::Client;
use super::incoming::{Admitted, Incoming, enforce};
use super::outgoing::{JoinedRoom, RoomRef, Waiting};
use super::reply::internal;
use crate::limits::{Class, Verdict};
use crate::protocol::{
    ErrorCode, JoinRequest, ProtocolError, decode_join, decode_join_as, decode_room_only,
    join_token,
};
use crate::registry::{Creator, JoinOutcome, LeaveReason};
use crate::state::AppState;

pub async fn on_join(incoming: Incoming) {
    let Some(Admitted {
        socket,
        app,
        client,
        address,
        payload,
        reply,
        turn: _turn,
    }) = incoming.admit().await
    else {
        return;
    };
    let payload = match payload {
        Ok(payload) => payload,
        Err(e) => return reply.fail(e),
    };
    let request = match admitted_join(&app, &client, &payload) {
        Ok(request) => request,
        Err(e) => return reply.fail(e),
    };
    let socket_id = socket.id.to_string();
    let ticket = app.deliveries.ticket();
    let mut creator = Creator {
        address,
        may_create: false,
    };
    let mut outcome = app
        .registry
        .join(&socket_id, &request, creator, Some(ticket.id))
        .await;
    // Making a room is limited per address; joining one is not.
    if matches!(outcome, Ok(JoinOutcome::NeedsNewRoom)) {
        if !app.room_limiter.allow(address) {
            return reply.fail(ProtocolError::new(
                ErrorCode::RateLimited,
                "Too many rooms created from your address; slow down",
            ));
        }
        creator.may_create = true;
        outcome = app
            .registry
            .join(&socket_id, &request, creator, Some(ticket.id))
            .await;
    }
    match outcome {
        Err(e) => reply.fail(e),
        Ok(JoinOutcome::NeedsNewRoom) => reply.fail(internal()),
        // Nothing changed: only the joiner is told again, a few times at most.
        Ok(JoinOutcome::AlreadyIn(joined)) => {
            let verdict = client.limiter().check_rejoin();
            if verdict != Verdict::Allowed {
                return enforce(&socket, &app, &client, Class::Join, verdict, reply);
            }
            let answer = JoinedRoom::new(&joined, &app);
            socket.emit("joined-room", &answer).ok();
            reply.ok(&answer);
        }
        Ok(JoinOutcome::Joined { joined, .. }) => {
            ticket.delivered().await;
            reply.ok(&JoinedRoom::new(&joined, &app));
        }
        Ok(JoinOutcome::Waiting { room_id, .. }) => {
            ticket.delivered().await;
            reply.ok(&Waiting {
                waiting: true,
                room_id: &room_id,
            });
        }
        // Still waiting: only the waiter is told again, a few times at most.
        Ok(JoinOutcome::AlreadyWaiting { room_id }) => {
            let verdict = client.limiter().check_rejoin();
            if verdict != Verdict::Allowed {
                return enforce(&socket, &app, &client, Class::Join, verdict, reply);
            }
            socket
                .emit("waiting-for-admission", &RoomRef { room_id: &room_id })
                .ok();
            reply.ok(&Waiting {
                waiting: true,
                room_id: &room_id,
            });
        }
    }
}

/// The join `payload` asks for, if `JWT_SECRET` lets it in: with JWT on, the payload's
/// `token` (else the handshake's) must admit to the room; its `name` claim replaces
/// `userName` and its `host` claim makes the joiner host. Nothing is changed on a refusal.
fn admitted_join(
    app: &AppState,
    client: &Client,
    payload: &RawValue,
) -> Result<JoinRequest, ProtocolError> {
    let Some(secret) = &app.config.jwt_secret else {
        return decode_join(payload);
    };
    let unauthorized = |message: &str| ProtocolError::new(ErrorCode::Unauthorized, message);
    let token = join_token(payload)?.or_else(|| client.handshake_token.clone());
    let Some(token) = token else {
        return Err(unauthorized(
            "An access token is required to join (`token` in join-room or the handshake's auth)",
        ));
    };
    let claims = secret.verify(&token).map_err(|e| unauthorized(e.0))?;
    let mut request = decode_join_as(payload, claims.name.as_deref())?;
    if !claims.admits(&request.room_id) {
        return Err(unauthorized("Access token is for another room"));
    }
    request.host = claims.host;
    Ok(request)
}

pub async fn on_leave(incoming: Incoming) {
    let Some(Admitted {
        socket,
        app,
        payload,
        reply,
        turn: _turn,
        ..
    }) = incoming.admit().await
    else {
        return;
    };
    let socket_id = socket.id.to_string();
    let named = match payload.and_then(|p| decode_room_only(&p)) {
        Ok(named) => named,
        Err(e) => return reply.fail(e),
    };
    if let Err(e) = app
        .registry
        .current_room(&socket_id, named.as_deref())
        .await
    {
        // A socket waiting in a lobby gives up its place there.
        let ticket = app.deliveries.ticket();
        return match app
            .registry
            .withdraw(&socket_id, named.as_deref(), Some(ticket.id))
            .await
        {
            Ok(Some(room_id)) => {
                ticket.delivered().await;
                reply.ok(&RoomRef { room_id: &room_id });
            }
            Ok(None) => reply.fail(e),
            Err(e) => reply.fail(e),
        };
    }
    let ticket = app.deliveries.ticket();
    match app
        .registry
        .leave(&socket_id, LeaveReason::Left, Some(ticket.id))
        .await
    {
        Ok(Some(left)) => {
            ticket.delivered().await;
            reply.ok(&RoomRef {
                room_id: &left.room_id,
            });
        }
        Ok(None) => reply.fail(ProtocolError::not_in_room()),
        Err(e) => reply.fail(e.into()),
    }
}

/// Runs in the socket's turn, after every event it sent before going away.
pub async fn on_disconnect(
    socket: SocketRef,
    State(app): State<AppState>,
    reason: DisconnectReason,
) {
    let Some(client) = Client::of(&socket) else {
        return;
    };
    let _turn = client.turn().wait().await;
    let socket_id = socket.id.to_string();
    let ticket = app.deliveries.ticket();
    match app
        .registry
        .leave(&socket_id, LeaveReason::Disconnected, Some(ticket.id))
        .await
    {
        Ok(Some(_)) => ticket.delivered().await,
        Ok(None) => {}
        Err(e) => {
            tracing::warn!(socket = %socket.id, "disconnected socket not removed yet: {e}");
            if !app.pending_removals.add(socket_id.into()) {
                tracing::warn!(socket = %socket.id, "too many removals pending: dropped");
            }
        }
    }
    tracing::info!(socket = %socket.id, %reason, "disconnected");
}

/// In a cluster, sockets that disconnected while Redis was away are taken out of their rooms
/// once it answers again, so they do not stay listed as ghosts: one task for all of them.
pub async fn retry_removals(app: AppState) {
    const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
    let mut tick = tokio::time::interval(RETRY_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        for socket in app.pending_removals.take() {
            let removed = app
                .registry
                .leave_again(&socket, LeaveReason::Disconnected)
                .await;
            if removed.is_err() {
                app.pending_removals.add(socket);
            }
        }
    }
}
