//! WebRTC signaling relay: offers, answers, ICE candidates and connection requests go to
//! one target, only within the sender's room, stamped with the sender's real id.

use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::SocketIo;
use socketioxide::adapter::Adapter;

use super::deliver::to_participant;
use super::incoming::{Admitted, Incoming};
use super::reply::{Done, internal};
use crate::limits::Class;
use crate::protocol::{RelayKind, decode_relay};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Relayed<'a> {
    sender_id: &'a str,
    sender_socket_id: &'a str,
    /// `offer`, `answer` or `candidate` (byte for byte as received), or `roomId`.
    #[serde(flatten)]
    body: Body<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
enum Body<'a> {
    Offer(&'a RawValue),
    Answer(&'a RawValue),
    Candidate(&'a RawValue),
    RoomId(&'a str),
}

/// `io` is extracted after `incoming` (and infallibly), so the event's turn is never lost.
pub async fn on_relay<A: Adapter>(incoming: Incoming<A>, io: SocketIo<A>) {
    let Some(Admitted(s, app, data, reply, _turn)) = incoming.admit(Class::Signal).await else {
        return;
    };
    let Some(kind) = RelayKind::from_client_event(reply.event()) else {
        return reply.fail(internal());
    };
    let sender = s.id.to_string();
    let req = match data.and_then(|p| decode_relay(kind, &p)) {
        Ok(req) => req,
        Err(e) => return reply.fail(e),
    };
    let room = match app
        .registry
        .relay_room(&sender, req.room.as_deref(), &req.target)
        .await
    {
        Ok(room) => room,
        Err(e) => return reply.fail(e),
    };
    let body = match (kind, req.body.as_deref()) {
        (RelayKind::Offer, Some(offer)) => Body::Offer(offer),
        (RelayKind::Answer, Some(answer)) => Body::Answer(answer),
        (RelayKind::IceCandidate, Some(candidate)) => Body::Candidate(candidate),
        (RelayKind::ConnectionRequest, _) => Body::RoomId(&room),
        _ => return reply.fail(internal()),
    };
    let relayed = Relayed {
        sender_id: &sender,
        sender_socket_id: &sender,
        body,
    };
    tracing::debug!(socket = %s.id, %room, target = %req.target, kind = kind.server_event(), "relay");
    app.metrics.relayed(kind.metric_label());
    to_participant(&io, &app, &req.target, kind.server_event(), &relayed).await;
    reply.ok(&Done {});
}
