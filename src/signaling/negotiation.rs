//! The negotiation assist ([`crate::assist`]) wired to sockets: it learns of the joins and
//! departures of this instance's participants from the announcer, and of their relays from
//! the relay handler; what it releases is emitted here, in the sender's turn, and its wakes
//! are timers that ask it again. It covers participants who joined on this instance (in a
//! cluster, pairs on different instances negotiate unassisted; docs/PROTOCOL.md says so).

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use socketioxide::SocketIo;
use socketioxide::extract::SocketRef;
use socketioxide::socket::Sid;

use super::client::Client;
use super::emit::{deliver_relay, emit_each};
use super::outgoing::{Relayed, UserJoined};
use crate::assist::{self, Delivery, Dialect, Fate, Mode, Wake};
use crate::protocol::{RelayKind, RelayRequest};
use crate::registry::Joined;
use crate::registry::events::Relay;
use crate::state::AppState;

/// What the assist needs to know of a relay request before it is consumed.
#[derive(Debug, Clone, Copy)]
pub struct RelayHint {
    dialect: Dialect,
    end_of_candidates: bool,
    browser_offer: bool,
}

impl RelayHint {
    pub fn of(request: &RelayRequest) -> Self {
        let body = request.body.as_deref();
        Self {
            dialect: Dialect::of(request),
            end_of_candidates: request.kind == RelayKind::IceCandidate
                && body.is_some_and(|b| b.get() == "null"),
            browser_offer: request.kind == RelayKind::Offer && body.is_some_and(browser_made),
        }
    }
}

/// A session description a browser made: its `sdp` starts with the version line and
/// carries the DTLS fingerprint every browser puts in an offer with media (scripted clients
/// send a stand-in such as `v=0`).
fn browser_made(description: &RawValue) -> bool {
    #[derive(Deserialize)]
    struct Description<'a> {
        #[serde(borrow)]
        sdp: Option<Cow<'a, str>>,
    }
    serde_json::from_str::<Description>(description.get())
        .ok()
        .and_then(|d| d.sdp)
        .is_some_and(|sdp| sdp.starts_with("v=0") && sdp.contains("a=fingerprint:"))
}

/// A participant of this instance joined: returns the members its `user-joined` is withheld
/// from for now (their camera is starting).
pub fn joined(io: &SocketIo, app: &AppState, joined: &Joined) -> Vec<String> {
    if app.assist.mode() == Mode::Off {
        return Vec::new();
    }
    let room = &*joined.room_id;
    let step = app.assist.joined(room, &joined.me.id, Instant::now(), || {
        raw(&UserJoined::new(&joined.me))
    });
    if !step.withheld_from.is_empty() {
        tracing::debug!(socket = %joined.me.id, %room, members = ?step.withheld_from,
            "negotiation assist: user-joined withheld while their camera starts");
    }
    schedule(io, app, room, step.wakes);
    step.withheld_from
}

/// `who` left `room` (or the room closed): what was held from or for it is dropped.
pub fn left(app: &AppState, room: &str, who: &str) {
    if app.assist.mode() != Mode::Off {
        app.assist.left(room, who);
    }
}

/// Relays `relay` to `target` (a socket of this instance) as the assist decides, with what
/// it releases before and after; called in the sender's turn.
pub fn relay(io: &SocketIo, app: &AppState, target: SocketRef, relay: &Relay, hint: RelayHint) {
    if app.assist.mode() == Mode::Off {
        return deliver_relay(app, target, relay);
    }
    let seen = assist::Relay {
        from: &relay.sender,
        to: &relay.target,
        kind: relay.kind,
        dialect: hint.dialect,
        end_of_candidates: hint.end_of_candidates,
        browser_offer: hint.browser_offer,
    };
    let room = &*relay.room_id;
    let step = app
        .assist
        .relay(room, seen, Instant::now(), || raw(&Relayed::of(relay)));
    deliver(io, app, &relay.sender, step.before);
    match step.current {
        Fate::Deliver => deliver_relay(app, target, relay),
        Fate::Hold => tracing::debug!(socket = %relay.sender, %room, target = %relay.target,
            kind = relay.kind.server_event(), "negotiation assist: held"),
    }
    if step.superseded_offers > 0 {
        tracing::debug!(socket = %relay.sender, %room, target = %relay.target,
            offers = step.superseded_offers,
            "negotiation assist: held offer discarded, its sender answered the target's offer instead");
    }
    deliver(io, app, &relay.sender, step.after);
    schedule(io, app, room, step.wakes);
}

/// An event's payload as its recipient will receive it, kept while the assist holds it.
fn raw<T: Serialize>(payload: &T) -> Box<RawValue> {
    match serde_json::value::to_raw_value(payload) {
        Ok(raw) => raw,
        Err(e) => {
            tracing::error!("cannot serialize a held event: {e}");
            RawValue::NULL.to_owned()
        }
    }
}

/// Emits released events to their recipients still on this instance.
fn deliver(io: &SocketIo, app: &AppState, sender: &str, released: Vec<Delivery<Box<RawValue>>>) {
    for d in released {
        tracing::debug!(socket = %sender, target = %d.to, event = d.event.name(), "negotiation assist: released");
        if let Some(recipient) = local(io, &d.to) {
            emit_each(app, [recipient], d.event.name(), &d.payload);
        }
    }
}

fn local(io: &SocketIo, id: &str) -> Option<SocketRef> {
    let sid = id.parse::<Sid>().ok()?;
    io.of("/")?.get_socket(sid)
}

/// Asks the assist again at each wake's time for what its sender holds.
fn schedule(io: &SocketIo, app: &AppState, room: &str, wakes: Vec<Wake>) {
    for wake in wakes {
        let (io, app, room) = (io.clone(), app.clone(), room.to_owned());
        tokio::spawn(async move {
            tokio::time::sleep_until(wake.at.into()).await;
            Box::pin(release_due(io, app, room, wake.sender)).await;
        });
    }
}

/// Releases what `sender` holds that is due, in `sender`'s turn: after the events it sent
/// before, before the ones it sends next, so nothing it relays overtakes what was held.
async fn release_due(io: SocketIo, app: AppState, room: String, sender: String) {
    // Gone: its departure dropped whatever it held.
    let Some(socket) = local(&io, &sender) else {
        return;
    };
    let Some(client) = socket.extensions.get::<Arc<Client>>() else {
        return;
    };
    let _turn = client.turn().wait().await;
    let step = app.assist.expire(&room, &sender, Instant::now());
    deliver(&io, &app, &sender, step.before);
    schedule(&io, &app, &room, step.wakes);
}
