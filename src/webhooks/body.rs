//! What a webhook says: the registry's events about a room's life and membership, turned into
//! the bodies the application backend receives, `{"type", "timestamp", "data"}`. Only these
//! four types exist; chat, media state, offers, answers and ICE candidates never become a
//! webhook, so no chat text, SDP or candidate can leave the server this way.

use std::sync::Arc;

use serde::Serialize;

use crate::model::{ParticipantView, Timestamp};
use crate::registry::LeaveReason;
use crate::registry::events::Event;

/// One webhook event, serialized once, delivered to every endpoint under the same id.
#[derive(Debug)]
pub struct Hook {
    /// `webhook-id`: the same on every retry of this event, new for every event.
    pub id: String,
    /// The room it is about: deliveries keep each room's order.
    pub room: Arc<str>,
    /// `room.started`, `participant.joined`, …
    pub kind: &'static str,
    pub body: Vec<u8>,
}

#[derive(Serialize)]
struct Body<'a, D: Serialize> {
    #[serde(rename = "type")]
    kind: &'a str,
    timestamp: Timestamp,
    data: D,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomStarted<'a> {
    room_id: &'a str,
    created_at: Timestamp,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomFinished<'a> {
    room_id: &'a str,
    #[serde(rename = "duration_s")]
    duration_s: i64,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ParticipantJoined<'a> {
    room_id: &'a str,
    participant: Who<'a>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Who<'a> {
    id: &'a str,
    user_name: &'a str,
    is_admin: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ParticipantLeft<'a> {
    room_id: &'a str,
    participant_id: &'a str,
    reason: &'a str,
}

/// The `reason` of `participant.left`.
pub fn left_reason(reason: LeaveReason) -> &'static str {
    match reason {
        // A switch to another room leaves this one as `leave-room` does.
        LeaveReason::Left | LeaveReason::Switched => "left",
        // Evicted: the server cut a connection that stopped reading.
        LeaveReason::Disconnected | LeaveReason::Evicted => "disconnected",
        // By an operator, or by the room's host (kick-participant).
        LeaveReason::Kicked | LeaveReason::HostKicked => "kicked",
        // Its instance died (reaped once its heartbeat was missed) or shut down.
        LeaveReason::Removed => "timeout",
    }
}

/// The webhooks `event` makes (none for most), as of `now`.
pub fn hooks_of(event: &Event, now: Timestamp) -> Vec<Hook> {
    match event {
        Event::RoomOpened {
            room_id,
            created_at,
        } => vec![hook(
            room_id,
            "room.started",
            now,
            RoomStarted {
                room_id,
                created_at: *created_at,
            },
        )],
        Event::Joined(joined) => vec![joined_hook(&joined.room_id, &joined.me, now)],
        Event::Left { left, reason } => vec![left_hook(
            &left.room_id,
            &left.participant.id,
            left_reason(*reason),
            now,
        )],
        // An operator closed the room with these participants in it: each was removed by
        // the operator. Ended by its host (end-room): the host left, the others were removed.
        Event::Closed {
            room_id,
            participants,
            ended_by,
        } => participants
            .iter()
            .map(|p| {
                let reason = if ended_by.as_deref() == Some(&*p.id) {
                    "left"
                } else {
                    "kicked"
                };
                left_hook(room_id, &p.id, reason, now)
            })
            .collect(),
        Event::RoomRemoved {
            room_id,
            created_at,
        } => {
            let lived = now.0.signed_duration_since(created_at.0).num_seconds();
            vec![hook(
                room_id,
                "room.finished",
                now,
                RoomFinished {
                    room_id,
                    duration_s: lived.max(0),
                },
            )]
        }
        // Admissions from the lobby are Joined events; kicks by the host are Left events. The
        // rest of moderation changes nobody's presence.
        Event::Welcome(_)
        | Event::Said(_)
        | Event::Updated { .. }
        | Event::Relay(_)
        | Event::Kick { .. }
        | Event::Toggled { .. }
        | Event::PermissionChanged { .. }
        | Event::Listed { .. }
        | Event::HostChanged { .. }
        | Event::Kicked { .. }
        | Event::FlagChanged { .. }
        | Event::Waiting { .. }
        | Event::AdmissionRequested { .. }
        | Event::AdmissionCancelled { .. }
        | Event::Denied { .. } => Vec::new(),
    }
}

fn joined_hook(room_id: &Arc<str>, me: &ParticipantView, now: Timestamp) -> Hook {
    let data = ParticipantJoined {
        room_id,
        participant: Who {
            id: &me.id,
            user_name: &me.user_name,
            is_admin: me.is_admin,
        },
    };
    hook(room_id, "participant.joined", now, data)
}

fn left_hook(room_id: &Arc<str>, participant: &str, reason: &str, now: Timestamp) -> Hook {
    let data = ParticipantLeft {
        room_id,
        participant_id: participant,
        reason,
    };
    hook(room_id, "participant.left", now, data)
}

fn hook(room: &Arc<str>, kind: &'static str, now: Timestamp, data: impl Serialize) -> Hook {
    let body = Body {
        kind,
        timestamp: now,
        data,
    };
    Hook {
        id: format!("msg_{}", uuid::Uuid::new_v4().simple()),
        room: room.clone(),
        kind,
        // Plain structs of strings, numbers and booleans always serialize.
        body: serde_json::to_vec(&body).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ChatMessage, Participant};
    use crate::registry::events::Relay;
    use crate::registry::{Joined, Left, Said};
    use serde_json::{Value, json};

    fn json_of(hook: &Hook) -> Value {
        serde_json::from_slice(&hook.body).unwrap()
    }

    #[test]
    fn room_and_membership_events_become_the_four_types() {
        let now = Timestamp::now();
        let ann = Participant::new("s1".into(), "Ann".into(), None);
        let created_at = Timestamp(now.0 - chrono::Duration::seconds(90));
        let room: Arc<str> = "R1".into();
        let opened = hooks_of(
            &Event::RoomOpened {
                room_id: room.clone(),
                created_at,
            },
            now,
        );
        assert_eq!(
            json_of(&opened[0]),
            json!({"type": "room.started", "timestamp": now.to_iso(),
                   "data": {"roomId": "R1", "createdAt": created_at.to_iso()}})
        );
        let joined = Joined {
            room_id: room.clone(),
            me: ann.view(true),
            participants: vec![ann.view(true)],
            messages: Vec::new(),
            created_room: true,
            room: Default::default(),
        };
        let hooks = hooks_of(&Event::Joined(Arc::new(joined)), now);
        assert_eq!(
            json_of(&hooks[0])["data"],
            json!({"roomId": "R1", "participant": {"id": "s1", "userName": "Ann", "isAdmin": true}})
        );
        let left = Left {
            room_id: room.clone(),
            participant: ann.clone(),
            participants: Vec::new(),
            room_removed: true,
            new_host: None,
        };
        let hooks = hooks_of(
            &Event::Left {
                left: Arc::new(left),
                reason: LeaveReason::Removed,
            },
            now,
        );
        assert_eq!(
            json_of(&hooks[0])["data"],
            json!({"roomId": "R1", "participantId": "s1", "reason": "timeout"})
        );
        let closed = hooks_of(
            &Event::Closed {
                room_id: room.clone(),
                participants: vec![
                    ann.clone(),
                    Participant::new("s2".into(), "Bo".into(), None),
                ]
                .into(),
                ended_by: None,
            },
            now,
        );
        assert_eq!(closed.len(), 2);
        assert_eq!(json_of(&closed[1])["data"]["reason"], "kicked");
        let finished = hooks_of(
            &Event::RoomRemoved {
                room_id: room.clone(),
                created_at,
            },
            now,
        );
        assert_eq!(
            json_of(&finished[0]),
            json!({"type": "room.finished", "timestamp": now.to_iso(),
                   "data": {"roomId": "R1", "duration_s": 90}})
        );
        let ids: std::collections::HashSet<_> = [&opened[0], &finished[0], &closed[0], &closed[1]]
            .iter()
            .map(|h| h.id.clone())
            .collect();
        assert_eq!(ids.len(), 4, "a new id for every event");
    }

    #[test]
    fn chat_media_and_relays_make_no_webhook() {
        let now = Timestamp::now();
        let said = Said {
            room_id: "R".into(),
            message: Arc::new(ChatMessage::new(
                "m".into(),
                "s1".into(),
                "Ann".into(),
                "secret text".into(),
                now,
                None,
            )),
        };
        assert!(hooks_of(&Event::Said(said), now).is_empty());
        let relay = Relay {
            room_id: "R".into(),
            sender: "a".into(),
            target: "b".into(),
            kind: crate::protocol::RelayKind::Offer,
            body: None,
        };
        assert!(hooks_of(&Event::Relay(Arc::new(relay)), now).is_empty());
    }

    #[test]
    fn every_leave_reason_maps_to_a_documented_one() {
        for reason in [
            LeaveReason::Left,
            LeaveReason::Switched,
            LeaveReason::Disconnected,
            LeaveReason::Kicked,
            LeaveReason::Evicted,
            LeaveReason::Removed,
        ] {
            assert!(["left", "disconnected", "kicked", "timeout"].contains(&left_reason(reason)));
        }
    }
}
