//! What the registry tells the rest of the server about a change: the events members of a
//! room must see, in the room's order. Each change the registry makes comes out as one
//! [`Batch`] — sent by the memory backend while it still holds the room's lock, published by
//! the Redis backend from the very script that made the change — so every instance sees a
//! room's events in the order they happened. The announcer (in `signaling`) turns batches
//! into emits; a handler waits for its own batch ([`Deliveries`]) before answering.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dashmap::DashMap;
use serde_json::value::RawValue;
use tokio::sync::{mpsc, oneshot};

use super::outcome::{Joined, Left, Said, Updated};
use crate::model::{MediaKind, Participant, ParticipantView, Permission, Timestamp, Waiter};
use crate::protocol::RelayKind;

/// How long a handler waits for its batch to be announced before answering anyway (the
/// change is made; only a lost pub/sub message makes this wait run out).
const DELIVERY_WAIT: Duration = Duration::from_secs(2);

/// Where batches go: the announcer's inbox.
pub type Inbox = mpsc::UnboundedSender<Batch>;

/// One change of the registry, as the events members see.
#[derive(Debug, Clone)]
pub struct Batch {
    pub origin: Origin,
    pub events: Vec<Event>,
    /// The instance that delivers this batch's webhooks, when it is not the origin: in a
    /// cluster, the webhook owner of the batch's room (see `webhooks`), so each room's
    /// webhooks go out from one instance, in the room's order. `None`: the origin.
    pub hooks: Option<Arc<str>>,
}

/// Which instance made the change, and the ticket of the handler waiting for it (if any).
/// Only the origin counts the change in its metrics, so a cluster counts it once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub instance: Arc<str>,
    pub ticket: Option<u64>,
}

/// Why a participant left its room.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaveReason {
    /// `leave-room`: the leaver is told (`left-room`).
    Left,
    /// `join-room` for another room: the leaver is told too.
    Switched,
    /// Its socket disconnected.
    Disconnected,
    /// Removed by an operator: told `kicked`, then disconnected.
    Kicked,
    /// Removed by the room's host (`kick-participant`): told `kicked`, then disconnected.
    HostKicked,
    /// Evicted by the server (a slow consumer): disconnected.
    Evicted,
    /// Its instance died or shut down; nobody is left to tell.
    Removed,
}

impl LeaveReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Left => "left",
            Self::Switched => "switched",
            Self::Disconnected => "disconnected",
            Self::Kicked => "kicked",
            Self::HostKicked => "host-kicked",
            Self::Evicted => "evicted",
            Self::Removed => "removed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Left,
            Self::Switched,
            Self::Disconnected,
            Self::Kicked,
            Self::HostKicked,
            Self::Evicted,
            Self::Removed,
        ]
        .into_iter()
        .find(|r| r.as_str() == s)
    }

    /// The leaver is told `left-room` (it asked to leave).
    pub fn tells_leaver(self) -> bool {
        matches!(self, Self::Left | Self::Switched)
    }
}

/// What changed about a participant in an [`Event::Updated`]. `Connection`: its client lost
/// its connection (`reconnecting`) or came back to its session (connection state recovery).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    Media { kind: MediaKind, enabled: bool },
    ScreenShare { sharing: bool },
    Connection { reconnecting: bool },
}

#[derive(Debug, Clone)]
pub enum Event {
    /// The joiner's own view of its arrival (`joined-room`): only the instance holding the
    /// joiner's socket acts on it, and it comes before the [`Event::Joined`] of that join.
    Welcome(Arc<Joined>),
    /// A participant arrived (`user-joined` to the others, the list to everyone).
    Joined(Arc<Joined>),
    Left {
        left: Arc<Left>,
        reason: LeaveReason,
    },
    Said(Said),
    Updated {
        updated: Arc<Updated>,
        change: Change,
    },
    /// The room was closed with these participants in it: by an operator, or ended by its
    /// host (`ended_by`, who is told nothing: its ack says it).
    Closed {
        room_id: Arc<str>,
        participants: Arc<[Participant]>,
        ended_by: Option<Arc<str>>,
    },
    /// A signaling message for one participant (cluster mode: from another instance).
    Relay(Arc<Relay>),
    /// A socket to remove on the instance holding it (operator kick of a socket in no room).
    Kick {
        socket: Arc<str>,
    },
    /// A room came into existence (`POST /api/create-room`, or a join naming a new room),
    /// before anything happens in it. Nobody is told; webhooks are.
    RoomOpened {
        room_id: Arc<str>,
        created_at: Timestamp,
    },
    /// A room ceased to exist (its last participant left with `EMPTY_ROOM_TTL_SECS=0`, it
    /// expired, or an operator closed it), after its last event. Nobody is told; webhooks
    /// are.
    RoomRemoved {
        room_id: Arc<str>,
        created_at: Timestamp,
    },
    /// Media the host turned off (a permission withdrawn, `mute-all`): the toggled events to
    /// the others in the room, as if the participant had turned it off. No list: an
    /// [`Event::Listed`] closes the action.
    Toggled {
        room_id: Arc<str>,
        participant: ParticipantView,
        change: Change,
    },
    /// `permission-changed` to its target.
    PermissionChanged {
        room_id: Arc<str>,
        target: Arc<str>,
        permission: Permission,
        allowed: bool,
        by: Actor,
    },
    /// The room's list after a moderation action: `participants-updated` to everyone in it.
    Listed {
        room_id: Arc<str>,
        participants: Vec<ParticipantView>,
    },
    /// `host-changed` to everyone in the room, for a transfer (a host leaving is told by its
    /// [`Event::Left`]).
    HostChanged {
        room_id: Arc<str>,
        host: Arc<str>,
        previous: Arc<str>,
    },
    /// `kicked` to the participant the host removes; its [`Event::Left`] follows.
    Kicked {
        room_id: Arc<str>,
        socket: Arc<str>,
        by: Actor,
        reason: Option<Arc<str>>,
    },
    /// `room-lock-changed` or `lobby-changed` to everyone in the room.
    FlagChanged {
        room_id: Arc<str>,
        flag: RoomFlag,
        on: bool,
        by: Arc<str>,
    },
    /// `waiting-for-admission` to a newcomer the lobby holds.
    Waiting {
        room_id: Arc<str>,
        socket: Arc<str>,
    },
    /// `admission-requested` to the host.
    AdmissionRequested {
        room_id: Arc<str>,
        host: Arc<str>,
        waiter: Waiter,
    },
    /// `admission-cancelled` to the host: a waiter went away.
    AdmissionCancelled {
        room_id: Arc<str>,
        host: Arc<str>,
        waiter: Arc<str>,
    },
    /// A waiter's request ended without admission: the `error` of its `join-room`.
    Denied {
        room_id: Arc<str>,
        socket: Arc<str>,
        cause: DenyCause,
    },
}

/// Who carried out a moderation action: the host, by socket id and registered name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    pub id: Arc<str>,
    pub name: Arc<str>,
}

/// A room setting the host switches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoomFlag {
    Lock,
    Lobby,
}

impl RoomFlag {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lock => "lock",
            Self::Lobby => "lobby",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Lock, Self::Lobby]
            .into_iter()
            .find(|f| f.as_str() == s)
    }
}

/// Why a waiter's request to join ended without admission.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DenyCause {
    /// `deny-participant`, with the host's reason if it gave one.
    Denied { reason: Option<Arc<str>> },
    /// The room emptied: nobody is left to admit it.
    RoomEmptied,
    /// The host ended the room, or an operator closed it.
    RoomEnded,
    /// The lobby was switched off and the room had no place left for it.
    RoomFull,
}

impl DenyCause {
    /// The cause's name on the wire (cluster mode).
    pub fn as_str(&self) -> &'static str {
        match self {
            Self::Denied { .. } => "denied",
            Self::RoomEmptied => "emptied",
            Self::RoomEnded => "ended",
            Self::RoomFull => "full",
        }
    }

    pub fn parse(s: &str, reason: Option<Arc<str>>) -> Option<Self> {
        Some(match s {
            "denied" => Self::Denied { reason },
            "emptied" => Self::RoomEmptied,
            "ended" => Self::RoomEnded,
            "full" => Self::RoomFull,
            _ => return None,
        })
    }
}

/// An offer, answer, ICE candidate or connection request on its way to `target`.
#[derive(Debug, Clone)]
pub struct Relay {
    pub room_id: Arc<str>,
    pub sender: Arc<str>,
    pub target: Arc<str>,
    pub kind: RelayKind,
    /// The offer/answer/candidate, byte for byte as the sender wrote it.
    pub body: Option<Box<RawValue>>,
}

/// Handlers waiting for their own batch to be announced, by ticket.
#[derive(Debug, Default)]
pub struct Deliveries {
    next: AtomicU64,
    waiting: DashMap<u64, oneshot::Sender<()>>,
}

impl Deliveries {
    /// A ticket to pass to the registry; [`Ticket::delivered`] resolves once the batch the
    /// change made has been announced.
    pub fn ticket(self: &Arc<Self>) -> Ticket {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (done, announced) = oneshot::channel();
        self.waiting.insert(id, done);
        Ticket {
            id,
            announced: Some(announced),
            deliveries: self.clone(),
        }
    }

    /// The batch of `ticket` has been announced.
    pub fn done(&self, ticket: u64) {
        if let Some((_, done)) = self.waiting.remove(&ticket) {
            done.send(()).ok();
        }
    }

    pub fn pending(&self) -> usize {
        self.waiting.len()
    }
}

/// A handler's place in [`Deliveries`]; dropping it forgets the wait.
#[derive(Debug)]
pub struct Ticket {
    pub id: u64,
    announced: Option<oneshot::Receiver<()>>,
    deliveries: Arc<Deliveries>,
}

impl Ticket {
    /// Waits until the change's batch has been announced (bounded by [`DELIVERY_WAIT`]).
    pub async fn delivered(mut self) {
        if let Some(announced) = self.announced.take()
            && tokio::time::timeout(DELIVERY_WAIT, announced)
                .await
                .is_err()
        {
            tracing::warn!(ticket = self.id, "a change was not announced in time");
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.deliveries.waiting.remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_ticket_resolves_when_done_and_forgets_itself() {
        let deliveries = Arc::new(Deliveries::default());
        let ticket = deliveries.ticket();
        let id = ticket.id;
        assert_eq!(deliveries.pending(), 1);
        deliveries.done(id);
        ticket.delivered().await;
        assert_eq!(deliveries.pending(), 0);
        let dropped = deliveries.ticket();
        drop(dropped);
        assert_eq!(deliveries.pending(), 0);
        deliveries.done(id);
    }

    #[test]
    fn leave_reasons_round_trip() {
        for r in [
            LeaveReason::Left,
            LeaveReason::Switched,
            LeaveReason::Disconnected,
            LeaveReason::Kicked,
            LeaveReason::HostKicked,
            LeaveReason::Evicted,
            LeaveReason::Removed,
        ] {
            assert_eq!(LeaveReason::parse(r.as_str()), Some(r));
        }
        assert!(LeaveReason::Left.tells_leaver() && !LeaveReason::Kicked.tells_leaver());
    }
}
