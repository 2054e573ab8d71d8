//! Property tests: payload decoding never panics and answers exactly what PROTOCOL.md allows,
//! and the room registry keeps its invariants under any sequence of operations (checked
//! against a model kept by the test), and under concurrent operations from many threads —
//! including what it announces: the last participant list announced for each room is the
//! room's true list, whatever the interleaving.

mod raw;

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prolitemeet_server::model::ParticipantView;
use prolitemeet_server::model::{Connection, MediaKind};
use prolitemeet_server::protocol::{
    self, Decoded, ErrorCode, JoinRequest, MediaChange, RelayKind, decode_chat, decode_join,
    decode_relay, decode_room_only, decode_toggle, decode_toggle_media, decode_toggle_screen_share,
    is_valid_room_id, usable_avatar,
};
use prolitemeet_server::registry::events::{Batch, Event};
use prolitemeet_server::registry::{
    JoinOutcome, LeaveReason, Limits, MemoryRegistry as Registry, RoomLimitReached,
};
use proptest::prelude::*;
use proptest::test_runner::Config as ProptestConfig;
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;

/// Whoever makes rooms in these tests: one address, never limited.
const LOCAL: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const ANYONE: prolitemeet_server::registry::Creator = prolitemeet_server::registry::Creator {
    address: LOCAL,
    may_create: true,
};

// =============================================================================================
// Payload decoding
// =============================================================================================

/// Keys the decoders read, so generated objects hit them often.
const KEYS: &[&str] = &[
    "roomId",
    "userName",
    "userAvatar",
    "message",
    "targetId",
    "targetSocketId",
    "offer",
    "answer",
    "candidate",
    "isAudioMuted",
    "isAudioEnabled",
    "isVideoOff",
    "isVideoEnabled",
    "type",
    "enabled",
    "isScreenSharing",
];

/// Strings that sit on the decoders' edges: valid and invalid room ids, names around the
/// length limits, white space of every kind, URLs, media types.
fn edgy_string() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[A-Za-z0-9_-]{0,70}",
        "[ \t\n\u{3000}\u{a0}]{0,3}[a-zé😀 ]{0,55}[ \t\n\u{2003}]{0,3}",
        Just(String::new()),
        Just("audio".to_owned()),
        Just("video".to_owned()),
        Just("Audio".to_owned()),
        "(http|https|HTTP|Https|ftp|javascript)://[a-z./ ]{0,20}",
        (1990usize..2010).prop_map(|n| "x".repeat(n)),
        (2040usize..2060).prop_map(|n| format!("https://{}", "a".repeat(n))),
        (45usize..56).prop_map(|n| "é".repeat(n)),
        (60usize..70).prop_map(|n| "R".repeat(n)),
    ]
}

fn leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<u64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        edgy_string().prop_map(Value::String),
    ]
}

/// Any JSON value, with objects that often use the keys the decoders look at.
fn any_json() -> impl Strategy<Value = Value> {
    leaf().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop_oneof![
                        3 => prop::sample::select(KEYS).prop_map(str::to_owned),
                        1 => any::<String>(),
                    ],
                    inner
                ),
                0..8
            )
            .prop_map(|pairs| Value::Object(pairs.into_iter().collect())),
        ]
    })
}

/// An object built from the decoders' keys with plausible-or-not values: reaches success paths.
fn payload_object() -> impl Strategy<Value = Value> {
    let value = prop_oneof![
        3 => leaf(),
        1 => Just(json!({"type": "offer", "sdp": "v=0"})),
        1 => Just(json!({})),
        1 => Just(json!([1, 2])),
    ];
    prop::collection::btree_map(prop::sample::select(KEYS), value, 0..6).prop_map(|m| {
        Value::Object(
            m.into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .collect::<Map<_, _>>(),
        )
    })
}

/// Text around the length limits, padded with white space that trimming removes.
fn bounded_text(around: usize, ch: &'static str) -> impl Strategy<Value = String> {
    (0usize..3, around - 3..around + 4, 0usize..3).prop_map(move |(a, n, b)| {
        format!(
            "{}{}{}",
            " \u{3000}".repeat(a),
            ch.repeat(n),
            "\t\n".repeat(b)
        )
    })
}

/// One slot of a near-valid object: usually a good value, sometimes any value, sometimes absent.
fn slot(good: BoxedStrategy<Value>) -> BoxedStrategy<Option<Value>> {
    prop_oneof![4 => good.prop_map(Some), 1 => leaf().prop_map(Some), 1 => Just(None)].boxed()
}

/// Objects with every key of every event, most of them valid: reaches every success path and
/// the length limits.
fn near_valid() -> impl Strategy<Value = Value> {
    let text = |s: BoxedStrategy<String>| s.prop_map(Value::String).boxed();
    let name = prop_oneof![
        "[ ]{0,2}[A-Za-zé]{1,10}[ ]{0,2}".boxed(),
        bounded_text(50, "é").boxed(),
        bounded_text(50, "x").boxed(),
        Just("  ".to_owned()).boxed(),
    ]
    .boxed();
    let message = prop_oneof![
        "[ ]{0,2}[a-z ]{1,10}".boxed(),
        bounded_text(2000, "x").boxed(),
        bounded_text(2000, "😀").boxed(),
        Just("\n".to_owned()).boxed(),
    ]
    .boxed();
    let room = prop_oneof![
        "[A-Za-z0-9_-]{1,64}",
        "[A-Za-z0-9_-]{62,66}",
        "[A-Za-z0-9_ .-]{0,8}"
    ]
    .boxed();
    let id = prop_oneof![
        "[A-Za-z0-9_-]{1,20}",
        "[A-Za-z0-9_-]{60,130}",
        Just(String::new())
    ]
    .boxed();
    let url = prop_oneof![
        "(http|https|HTTPS|ftp)://[a-z./]{0,20}",
        (2040usize..2056).prop_map(|n| format!("https://{}", "a".repeat(n))),
    ]
    .boxed();
    let object = prop_oneof![
        Just(json!({"type": "offer", "sdp": "v=0"})),
        Just(json!({}))
    ]
    .boxed();
    let candidate = prop_oneof![Just(json!({"candidate": "c"})), Just(Value::Null)].boxed();
    let boolean = any::<bool>().prop_map(Value::Bool).boxed();
    let media = prop::sample::select(vec!["audio", "video", "screen"])
        .prop_map(|s| json!(s))
        .boxed();
    let slots: Vec<(&'static str, BoxedStrategy<Option<Value>>)> = vec![
        ("roomId", slot(text(room))),
        ("userName", slot(text(name))),
        ("userAvatar", slot(text(url))),
        ("message", slot(text(message))),
        ("targetId", slot(text(id.clone()))),
        ("targetSocketId", slot(text(id))),
        ("offer", slot(object.clone())),
        ("answer", slot(object)),
        ("candidate", slot(candidate)),
        ("isAudioMuted", slot(boolean.clone())),
        ("isAudioEnabled", slot(boolean.clone())),
        ("isVideoOff", slot(boolean.clone())),
        ("isVideoEnabled", slot(boolean.clone())),
        ("type", slot(media)),
        ("enabled", slot(boolean.clone())),
        ("isScreenSharing", slot(boolean)),
    ];
    let (keys, strategies): (Vec<_>, Vec<_>) = slots.into_iter().unzip();
    strategies.prop_map(move |values| {
        Value::Object(
            keys.iter()
                .zip(values)
                .filter_map(|(k, v)| v.map(|v| ((*k).to_owned(), v)))
                .collect(),
        )
    })
}

fn payload() -> impl Strategy<Value = Value> {
    prop_oneof![any_json(), payload_object(), near_valid()]
}

/// A field that is absent or null.
fn absent(map: &Map<String, Value>, key: &str) -> bool {
    map.get(key).is_none_or(Value::is_null)
}

fn trimmed_len(s: &str) -> usize {
    s.trim().chars().count()
}

/// Every error of decoding is `invalid_payload`.
fn invalid<T: std::fmt::Debug>(what: &str, p: &Value, r: &Decoded<T>) -> Result<(), TestCaseError> {
    if let Err(e) = r {
        prop_assert_eq!(e.code, ErrorCode::InvalidPayload, "{} {}: {:?}", what, p, e);
        prop_assert!(!e.message.is_empty());
    }
    Ok(())
}

/// `roomId` of events other than join: absent, null or a string (any string; the registry
/// decides whether it is the current room).
fn room_hint_ok(map: &Map<String, Value>) -> Option<Option<String>> {
    match map.get("roomId") {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.clone())),
        Some(_) => None,
    }
}

fn check_decoders(p: &Value) -> Result<(), TestCaseError> {
    let map = p.as_object();
    // The payload as it arrives: JSON text.
    let raw = serde_json::value::to_raw_value(p).expect("serializable");
    let raw = &*raw;

    // join-room {roomId, userName, userAvatar?}
    let r = decode_join(raw);
    invalid("join", p, &r)?;
    let expect_ok = map.is_some_and(|m| {
        m.get("roomId")
            .and_then(Value::as_str)
            .is_some_and(is_valid_room_id)
            && m.get("userName").and_then(Value::as_str).is_some_and(|n| {
                (1..=protocol::USER_NAME_MAX).contains(&trimmed_len(n))
                    && n.trim().chars().any(protocol::is_visible)
            })
    });
    prop_assert_eq!(r.is_ok(), expect_ok, "join {}: {:?}", p, r);
    if let Ok(j) = &r {
        let m = map.expect("object");
        prop_assert_eq!(Some(j.room_id.as_str()), m["roomId"].as_str());
        prop_assert!(j.room_id.len() <= 64 && !j.room_id.is_empty());
        prop_assert_eq!(j.user_name.as_str(), m["userName"].as_str().unwrap().trim());
        prop_assert_eq!(&j.avatar, &usable_avatar(m.get("userAvatar")));
    }

    // An avatar is an http(s) URL of at most 2048 characters without white space, or nothing.
    let avatar_oracle = |v: &Value| {
        let url = v.as_str()?;
        let lower = url.to_ascii_lowercase();
        let rest = lower
            .strip_prefix("http://")
            .or_else(|| lower.strip_prefix("https://"))?;
        (!rest.is_empty()
            && url.chars().count() <= protocol::AVATAR_URL_MAX
            && !url.chars().any(|c| c.is_whitespace() || c.is_control()))
        .then(|| url.to_owned())
    };
    prop_assert_eq!(usable_avatar(Some(p)), avatar_oracle(p), "avatar {}", p);
    if let Some(a) = map.and_then(|m| m.get("userAvatar")) {
        prop_assert_eq!(usable_avatar(Some(a)), avatar_oracle(a), "avatar {}", a);
    }

    // leave-room / start-screen-share / stop-screen-share: {roomId?}, null or nothing.
    let r = decode_room_only(raw);
    invalid("room only", p, &r)?;
    let expected = match p {
        Value::Null => Some(None),
        Value::Object(m) => room_hint_ok(m),
        _ => None,
    };
    prop_assert_eq!(r.as_ref().ok(), expected.as_ref(), "room only {}", p);

    // send-message {roomId?, message}
    let r = decode_chat(raw);
    invalid("chat", p, &r)?;
    let expected = map.and_then(|m| {
        let room = room_hint_ok(m)?;
        let text = m.get("message")?.as_str()?;
        (1..=protocol::MESSAGE_MAX)
            .contains(&trimmed_len(text))
            .then(|| (room, text.trim().to_owned()))
    });
    prop_assert_eq!(
        r.as_ref().ok().map(|c| (c.room.clone(), c.text.clone())),
        expected,
        "chat {}",
        p
    );

    // Relays {targetId|targetSocketId, offer|answer|candidate, roomId?}
    for kind in [
        RelayKind::Offer,
        RelayKind::Answer,
        RelayKind::IceCandidate,
        RelayKind::ConnectionRequest,
    ] {
        let r = decode_relay(kind, raw);
        invalid(kind.client_event(), p, &r)?;
        let target = map.and_then(|m| {
            if !absent(m, "targetId") {
                m.get("targetId")
            } else {
                m.get("targetSocketId")
            }
        });
        let body_ok = |m: &Map<String, Value>| match kind {
            RelayKind::Offer => m.get("offer").is_some_and(Value::is_object),
            RelayKind::Answer => m.get("answer").is_some_and(Value::is_object),
            RelayKind::IceCandidate => m
                .get("candidate")
                .is_some_and(|c| c.is_object() || c.is_null()),
            RelayKind::ConnectionRequest => true,
        };
        let must_reject = map.is_none_or(|m| {
            room_hint_ok(m).is_none()
                || target.and_then(Value::as_str).is_none_or(str::is_empty)
                || !body_ok(m)
        });
        // Real socket ids are short; anything up to 64 characters must pass.
        let must_accept = !must_reject
            && target
                .and_then(Value::as_str)
                .is_some_and(|t| t.len() <= 64);
        if must_reject {
            prop_assert!(r.is_err(), "{} must be refused: {}", kind.client_event(), p);
        }
        if must_accept {
            prop_assert!(
                r.is_ok(),
                "{} must pass: {} {:?}",
                kind.client_event(),
                p,
                r
            );
        }
        if let Ok(req) = &r {
            let m = map.expect("object");
            prop_assert_eq!(Some(req.target.as_str()), target.and_then(Value::as_str));
            prop_assert_eq!(req.kind, kind);
            prop_assert_eq!(Some(req.room.clone()), room_hint_ok(m));
            let body = match kind {
                RelayKind::Offer => m["offer"].clone(),
                RelayKind::Answer => m["answer"].clone(),
                RelayKind::IceCandidate => m["candidate"].clone(),
                RelayKind::ConnectionRequest => Value::Null,
            };
            // The payload arrived as the text `raw`; the body is forwarded as the very span
            // of it, so it reads exactly as the original value serializes.
            let relayed = req.body.as_deref().map_or("null", |b| b.get());
            prop_assert_eq!(
                relayed,
                serde_json::to_string(&body).expect("JSON"),
                "the body is passed on exactly as received"
            );
        }
    }

    // toggle-audio / toggle-video: either spelling, both agreeing if both given.
    for (kind, off, on) in [
        (MediaKind::Audio, "isAudioMuted", "isAudioEnabled"),
        (MediaKind::Video, "isVideoOff", "isVideoEnabled"),
    ] {
        let r = decode_toggle(kind, raw);
        invalid("toggle", p, &r)?;
        let expected = map.and_then(|m| {
            room_hint_ok(m)?;
            let flag = |k: &str| match m.get(k) {
                None | Some(Value::Null) => Some(None),
                Some(Value::Bool(b)) => Some(Some(*b)),
                Some(_) => None,
            };
            match (flag(off)?, flag(on)?) {
                (Some(o), Some(e)) if o == e => None,
                (Some(o), _) => Some(!o),
                (None, Some(e)) => Some(e),
                (None, None) => None,
            }
        });
        prop_assert_eq!(
            r.as_ref().ok().map(|m| m.change),
            expected.map(|enabled| MediaChange { kind, enabled }),
            "toggle {}",
            p
        );
    }

    // toggle-media {type, enabled}
    let r = decode_toggle_media(raw);
    invalid("toggle-media", p, &r)?;
    let expected = map.and_then(|m| {
        room_hint_ok(m)?;
        let kind = match m.get("type")?.as_str()? {
            "audio" => MediaKind::Audio,
            "video" => MediaKind::Video,
            _ => return None,
        };
        Some(MediaChange {
            kind,
            enabled: m.get("enabled")?.as_bool()?,
        })
    });
    prop_assert_eq!(
        r.as_ref().ok().map(|m| m.change),
        expected,
        "toggle-media {}",
        p
    );

    // toggle-screen-share {isScreenSharing}
    let r = decode_toggle_screen_share(raw);
    invalid("toggle-screen-share", p, &r)?;
    let expected = map.and_then(|m| {
        room_hint_ok(m)?;
        m.get("isScreenSharing")?.as_bool()
    });
    prop_assert_eq!(
        r.as_ref().ok().map(|s| s.sharing),
        expected,
        "toggle-screen-share {}",
        p
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 3000, ..ProptestConfig::default() })]

    #[test]
    fn decoding_never_panics_and_accepts_exactly_the_protocol(p in payload()) {
        check_decoders(&p)?;
    }

    #[test]
    fn room_id_shape(id in prop_oneof![any::<String>(), "[A-Za-z0-9_-]{0,70}"]) {
        let expected = (1..=64).contains(&id.len())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
        prop_assert_eq!(is_valid_room_id(&id), expected, "{:?}", id);
    }
}

#[test]
fn decoding_survives_deep_and_huge_values() {
    let mut deep = json!(0);
    for _ in 0..1000 {
        deep = json!({ "roomId": deep, "offer": {}, "candidate": null, "targetId": "t" });
    }
    let huge = Value::Array(vec![json!("x"); 200_000]);
    let long =
        json!({"roomId": "R", "userName": "n".repeat(1_000_000), "message": " ".repeat(1_000_000)});
    for p in [&deep, &huge, &long] {
        check_decoders(p).expect("decoders agree with the protocol");
    }
}

// =============================================================================================
// The registry against a model
// =============================================================================================

const SOCKETS: usize = 5;
const NAMED_ROOMS: &[&str] = &["A", "B", "C"];

#[derive(Debug, Clone)]
enum RoomRef {
    Named(usize),
    /// The n-th room made by `create_room` (modulo how many there are), else "A".
    Created(usize),
}

#[derive(Debug, Clone)]
enum Op {
    Join {
        sock: usize,
        room: RoomRef,
        name: String,
    },
    Leave {
        sock: usize,
    },
    /// A disconnect: the registry sees a leave; the socket comes back with a new id.
    Disconnect {
        sock: usize,
    },
    Chat {
        sock: usize,
        named: Option<RoomRef>,
        text: String,
    },
    CreateRoom,
    Media {
        sock: usize,
        audio: bool,
        enabled: bool,
    },
    ScreenShare {
        sock: usize,
        sharing: bool,
    },
    CloseRoom {
        room: RoomRef,
    },
    /// Its client lost its connection (or came back): connection state recovery.
    Connection {
        sock: usize,
        reconnecting: bool,
    },
    /// Sweep as if every TTL had passed.
    SweepLater,
    SweepNow,
}

fn room_ref() -> impl Strategy<Value = RoomRef> {
    prop_oneof![
        4 => (0..NAMED_ROOMS.len()).prop_map(RoomRef::Named),
        1 => (0usize..4).prop_map(RoomRef::Created),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let sock = 0..SOCKETS;
    prop_oneof![
        8 => (sock.clone(), room_ref(), "[A-Za-z]{1,6}").prop_map(|(sock, room, name)| Op::Join { sock, room, name }),
        3 => sock.clone().prop_map(|sock| Op::Leave { sock }),
        3 => sock.clone().prop_map(|sock| Op::Disconnect { sock }),
        3 => (sock.clone(), prop::option::of(room_ref()), "[a-z]{1,8}").prop_map(|(sock, named, text)| Op::Chat { sock, named, text }),
        1 => Just(Op::CreateRoom),
        2 => (sock.clone(), any::<bool>(), any::<bool>()).prop_map(|(sock, audio, enabled)| Op::Media { sock, audio, enabled }),
        1 => (sock.clone(), any::<bool>()).prop_map(|(sock, sharing)| Op::ScreenShare { sock, sharing }),
        1 => room_ref().prop_map(|room| Op::CloseRoom { room }),
        2 => (sock.clone(), any::<bool>()).prop_map(|(sock, reconnecting)| Op::Connection { sock, reconnecting }),
        1 => Just(Op::SweepLater),
        1 => Just(Op::SweepNow),
    ]
}

#[derive(Debug, Clone)]
struct Member {
    id: String,
    name: String,
    audio_muted: bool,
    video_off: bool,
    sharing: bool,
    reconnecting: bool,
}

#[derive(Debug, Clone, Default)]
struct ModelRoom {
    /// In join order: the first is the host.
    members: Vec<Member>,
    messages: VecDeque<(String, String)>,
    ever_joined: bool,
}

#[derive(Debug)]
struct Model {
    limits: Limits,
    rooms: BTreeMap<String, ModelRoom>,
    generation: [u32; SOCKETS],
    created: Vec<String>,
    /// Ids of sockets that have disconnected: they must be in no room, ever again.
    gone: Vec<String>,
}

impl Model {
    fn id(&self, sock: usize) -> String {
        format!("s{sock}g{}", self.generation[sock])
    }

    fn room_name(&self, r: &RoomRef) -> String {
        match r {
            RoomRef::Named(i) => NAMED_ROOMS[*i].to_owned(),
            RoomRef::Created(i) if !self.created.is_empty() => {
                self.created[i % self.created.len()].clone()
            }
            RoomRef::Created(_) => NAMED_ROOMS[0].to_owned(),
        }
    }

    fn room_of(&self, id: &str) -> Option<String> {
        self.rooms
            .iter()
            .find(|(_, r)| r.members.iter().any(|m| m.id == id))
            .map(|(k, _)| k.clone())
    }

    fn member_mut(&mut self, id: &str) -> Option<&mut Member> {
        self.rooms
            .values_mut()
            .flat_map(|r| r.members.iter_mut())
            .find(|m| m.id == id)
    }

    fn room_cap_reached(&self) -> bool {
        self.limits.max_rooms > 0 && self.rooms.len() >= self.limits.max_rooms
    }

    /// Removes `id` from its room; returns (room, removed member, rest, room removed).
    fn remove(&mut self, id: &str) -> Option<(String, Member, Vec<String>, bool)> {
        let room_id = self.room_of(id)?;
        let room = self.rooms.get_mut(&room_id).expect("room");
        let index = room
            .members
            .iter()
            .position(|m| m.id == id)
            .expect("member");
        let member = room.members.remove(index);
        let rest = room.members.iter().map(|m| m.id.clone()).collect();
        let removed = room.members.is_empty() && self.limits.empty_room_ttl.is_zero();
        if removed {
            self.rooms.remove(&room_id);
        }
        Some((room_id, member, rest, removed))
    }

    fn ids(&self, room: &str) -> Vec<String> {
        self.rooms[room]
            .members
            .iter()
            .map(|m| m.id.clone())
            .collect()
    }
}

fn view_ids(list: &[prolitemeet_server::model::ParticipantView]) -> Vec<String> {
    list.iter().map(|p| p.id.to_string()).collect()
}

/// Checks a participant list against the model: order, host flag, names and media flags.
fn check_list(
    model: &Model,
    room: &str,
    list: &[prolitemeet_server::model::ParticipantView],
) -> Result<(), TestCaseError> {
    let members = &model.rooms[room].members;
    prop_assert_eq!(view_ids(list), model.ids(room), "list of {}", room);
    for (i, (v, m)) in list.iter().zip(members).enumerate() {
        prop_assert_eq!(
            v.is_admin,
            i == 0,
            "host is the earliest joiner of {}",
            room
        );
        prop_assert_eq!(&*v.user_name, m.name.as_str());
        prop_assert_eq!(&*v.name, m.name.as_str());
        prop_assert_eq!(v.is_audio_muted, m.audio_muted);
        prop_assert_eq!(v.is_audio_enabled, !m.audio_muted);
        prop_assert_eq!(v.is_video_off, m.video_off);
        prop_assert_eq!(v.is_video_enabled, !m.video_off);
        prop_assert_eq!(v.is_screen_sharing, m.sharing);
        let connection = match m.reconnecting {
            true => Connection::Reconnecting,
            false => Connection::Connected,
        };
        prop_assert_eq!(
            v.connection,
            model.limits.connection_states.then_some(connection)
        );
    }
    Ok(())
}

fn apply(reg: &Registry, model: &mut Model, op: &Op) -> Result<(), TestCaseError> {
    match op {
        Op::Join { sock, room, name } => {
            let id = model.id(*sock);
            let target = model.room_name(room);
            let req = JoinRequest {
                room_id: target.clone(),
                user_name: name.clone(),
                avatar: None,
                password: None,
                host: false,
            };
            let result = reg.join(&id, &req, ANYONE, None);
            let current = model.room_of(&id);
            if current.as_deref() == Some(target.as_str()) {
                match result {
                    Ok(JoinOutcome::AlreadyIn(j)) => {
                        prop_assert_eq!(&*j.room_id, target.as_str());
                        prop_assert_eq!(&*j.me.id, id.as_str());
                        check_list(model, &target, &j.participants)?;
                    }
                    other => prop_assert!(false, "already in {}: {:?}", target, other),
                }
                return Ok(());
            }
            let exists = model.rooms.contains_key(&target);
            if exists && model.rooms[&target].members.len() >= model.limits.max_participants {
                let err = result.expect_err("room_full");
                prop_assert_eq!(err.code, ErrorCode::RoomFull);
                return Ok(());
            }
            if !exists && model.room_cap_reached() {
                let err = result.expect_err("too_many_rooms");
                prop_assert_eq!(err.code, ErrorCode::TooManyRooms);
                return Ok(());
            }
            let (left, joined) = match result {
                Ok(JoinOutcome::Joined { left, joined }) => (left, joined),
                other => return Err(TestCaseError::fail(format!("expected a join: {other:?}"))),
            };
            let entry = model.rooms.entry(target.clone()).or_default();
            entry.members.push(Member {
                id: id.clone(),
                name: name.clone(),
                audio_muted: false,
                video_off: false,
                sharing: false,
                reconnecting: false,
            });
            entry.ever_joined = true;
            prop_assert_eq!(joined.created_room, !exists);
            prop_assert_eq!(&*joined.room_id, target.as_str());
            prop_assert_eq!(&*joined.me.id, id.as_str());
            let history: Vec<(String, String)> = joined
                .messages
                .iter()
                .map(|m| (m.sender_id.to_string(), m.message.to_string()))
                .collect();
            prop_assert_eq!(
                history,
                model.rooms[&target]
                    .messages
                    .iter()
                    .cloned()
                    .collect::<Vec<_>>()
            );
            // The old room is left only after the new one accepted the socket.
            match (current, left) {
                (None, None) => {}
                (Some(old), Some(left)) => {
                    let (room, member, rest, removed) = model.remove_from(&old, &id);
                    prop_assert_eq!(&*left.room_id, room.as_str());
                    prop_assert_eq!(&*left.participant.id, member.id.as_str());
                    prop_assert_eq!(view_ids(&left.participants), rest);
                    prop_assert_eq!(left.room_removed, removed);
                }
                (current, left) => prop_assert!(false, "was in {:?}, left {:?}", current, left),
            }
            check_list(model, &target, &joined.participants)?;
        }
        Op::Leave { sock } | Op::Disconnect { sock } => {
            let id = model.id(*sock);
            let left = reg.leave(&id, LeaveReason::Left, None);
            match (model.remove(&id), left) {
                (None, None) => {}
                (Some((room, member, rest, removed)), Some(left)) => {
                    prop_assert_eq!(&*left.room_id, room.as_str());
                    prop_assert_eq!(&*left.participant.id, member.id.as_str());
                    prop_assert_eq!(&*left.participant.user_name, member.name.as_str());
                    prop_assert_eq!(view_ids(&left.participants), rest.clone());
                    prop_assert_eq!(left.room_removed, removed);
                    if !removed {
                        check_list(model, &room, &left.participants)?;
                    }
                }
                (expected, got) => {
                    prop_assert!(false, "leave: model {:?}, registry {:?}", expected, got)
                }
            }
            if matches!(op, Op::Disconnect { .. }) {
                model.gone.push(id);
                model.generation[*sock] += 1;
            }
        }
        Op::Chat { sock, named, text } => {
            let id = model.id(*sock);
            let named = named.as_ref().map(|r| model.room_name(r));
            let result = reg.chat(&id, named.as_deref(), text, None);
            let current = model.room_of(&id);
            let allowed = current.is_some() && (named.is_none() || named == current);
            if !allowed {
                prop_assert_eq!(result.err().map(|e| e.code), Some(ErrorCode::NotInRoom));
                return Ok(());
            }
            let said = result.map_err(|e| TestCaseError::fail(format!("chat: {e:?}")))?;
            let room = current.expect("room");
            prop_assert_eq!(&*said.room_id, room.as_str());
            prop_assert_eq!(&*said.message.sender_id, id.as_str());
            prop_assert_eq!(&*said.message.message, text.as_str());
            let name = model.member_mut(&id).expect("member").name.clone();
            prop_assert_eq!(
                &*said.message.user_name,
                name.as_str(),
                "identity from the registry"
            );
            let limit = model.limits.chat_history_limit;
            let history = &mut model.rooms.get_mut(&room).expect("room").messages;
            if limit > 0 {
                if history.len() >= limit {
                    history.pop_front();
                }
                history.push_back((id, text.clone()));
            }
        }
        Op::CreateRoom => {
            let result = reg.create_room(LOCAL, None);
            if model.room_cap_reached() {
                prop_assert_eq!(result.err(), Some(RoomLimitReached::Server.into()));
                return Ok(());
            }
            let info = result.map_err(|e| TestCaseError::fail(format!("create: {e}")))?;
            prop_assert_eq!(info.participant_count, 0);
            prop_assert_eq!(info.room_id.len(), 8);
            prop_assert!(
                info.room_id
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
            );
            prop_assert!(!model.rooms.contains_key(&*info.room_id), "fresh id");
            model
                .rooms
                .insert(info.room_id.to_string(), ModelRoom::default());
            model.created.push(info.room_id.to_string());
        }
        Op::Media {
            sock,
            audio,
            enabled,
        } => {
            let id = model.id(*sock);
            let kind = if *audio {
                MediaKind::Audio
            } else {
                MediaKind::Video
            };
            let result = reg.set_media(
                &id,
                None,
                MediaChange {
                    kind,
                    enabled: *enabled,
                },
                None,
            );
            let Some(room) = model.room_of(&id) else {
                prop_assert_eq!(result.err().map(|e| e.code), Some(ErrorCode::NotInRoom));
                return Ok(());
            };
            let updated = result.map_err(|e| TestCaseError::fail(format!("media: {e:?}")))?;
            let m = model.member_mut(&id).expect("member");
            if *audio {
                m.audio_muted = !enabled;
            } else {
                m.video_off = !enabled;
            }
            prop_assert_eq!(&*updated.participant.id, id.as_str());
            check_list(model, &room, &updated.participants)?;
        }
        Op::ScreenShare { sock, sharing } => {
            let id = model.id(*sock);
            let result = reg.set_screen_sharing(&id, None, *sharing, None);
            let Some(room) = model.room_of(&id) else {
                prop_assert_eq!(result.err().map(|e| e.code), Some(ErrorCode::NotInRoom));
                return Ok(());
            };
            let updated = result.map_err(|e| TestCaseError::fail(format!("share: {e:?}")))?;
            model.member_mut(&id).expect("member").sharing = *sharing;
            prop_assert_eq!(updated.participant.is_screen_sharing, *sharing);
            check_list(model, &room, &updated.participants)?;
        }
        Op::Connection { sock, reconnecting } => {
            let id = model.id(*sock);
            let connection = match reconnecting {
                true => Connection::Reconnecting,
                false => Connection::Connected,
            };
            let updated = reg.set_connection(&id, connection, None);
            let tracked = model.limits.connection_states;
            let Some(room) = model.room_of(&id) else {
                prop_assert!(updated.is_none(), "in no room: {:?}", updated);
                return Ok(());
            };
            let m = model.member_mut(&id).expect("member");
            let changes = tracked && m.reconnecting != *reconnecting;
            prop_assert_eq!(updated.is_some(), changes, "changes only when it differs");
            if tracked {
                m.reconnecting = *reconnecting;
            }
            if let Some(updated) = updated {
                prop_assert_eq!(&*updated.participant.id, id.as_str());
                check_list(model, &room, &updated.participants)?;
            }
        }
        Op::CloseRoom { room } => {
            let name = model.room_name(room);
            let closed = reg.close_room(&name, None);
            match (model.rooms.remove(&name), closed) {
                (None, None) => {}
                (Some(r), Some(list)) => {
                    let ids: Vec<String> = list.iter().map(|p| p.id.to_string()).collect();
                    prop_assert_eq!(
                        ids,
                        r.members.iter().map(|m| m.id.clone()).collect::<Vec<_>>()
                    );
                }
                (expected, got) => prop_assert!(
                    false,
                    "close {}: model {:?}, registry {:?}",
                    name,
                    expected,
                    got
                ),
            }
        }
        Op::SweepLater => {
            let removed: BTreeSet<String> = reg
                .sweep(Instant::now() + Duration::from_secs(100_000))
                .iter()
                .map(|r| r.to_string())
                .collect();
            let empty: BTreeSet<String> = model
                .rooms
                .iter()
                .filter(|(_, r)| r.members.is_empty())
                .map(|(k, _)| k.clone())
                .collect();
            prop_assert_eq!(&removed, &empty, "sweep removes exactly the empty rooms");
            model.rooms.retain(|_, r| !r.members.is_empty());
        }
        Op::SweepNow => {
            // No TTL has passed: only rooms emptied with a zero TTL could go, and those
            // went when they emptied.
            let removed = reg.sweep(Instant::now());
            prop_assert!(
                removed.is_empty(),
                "swept {:?} before any TTL passed",
                removed
            );
        }
    }
    Ok(())
}

impl Model {
    fn remove_from(&mut self, room: &str, id: &str) -> (String, Member, Vec<String>, bool) {
        let r = self.rooms.get_mut(room).expect("old room");
        let index = r
            .members
            .iter()
            .position(|m| m.id == id)
            .expect("member of old room");
        let member = r.members.remove(index);
        let rest = r.members.iter().map(|m| m.id.clone()).collect();
        let removed = r.members.is_empty() && self.limits.empty_room_ttl.is_zero();
        if removed {
            self.rooms.remove(room);
        }
        (room.to_owned(), member, rest, removed)
    }
}

/// Every invariant of the registry, read through its public API, against the model.
fn check_invariants(reg: &Registry, model: &Model) -> Result<(), TestCaseError> {
    let participants: usize = model.rooms.values().map(|r| r.members.len()).sum();
    prop_assert_eq!(reg.stats(), (model.rooms.len(), participants), "stats");

    // The rooms in existence, with their counts, hosts and histories.
    let summaries = reg.summaries();
    let ids: BTreeSet<String> = summaries.iter().map(|s| s.room_id.to_string()).collect();
    prop_assert_eq!(
        &ids,
        &model.rooms.keys().cloned().collect::<BTreeSet<_>>(),
        "rooms"
    );
    prop_assert_eq!(summaries.len(), ids.len(), "no room listed twice");
    let mut everyone = Vec::new();
    for s in &summaries {
        let r = &model.rooms[&*s.room_id];
        prop_assert_eq!(s.participant_count, r.members.len());
        prop_assert_eq!(s.message_count, r.messages.len());
        prop_assert_eq!(
            s.host.as_ref().map(|h| h.id.to_string()),
            r.members.first().map(|m| m.id.clone())
        );
        let info = reg
            .room_info(&s.room_id)
            .expect("room_info of a listed room");
        prop_assert_eq!(info.participant_count, r.members.len());
        let detail = reg.detail(&s.room_id).expect("detail of a listed room");
        check_list(model, &s.room_id, &detail.participants)?;
        everyone.extend(view_ids(&detail.participants));
    }
    // Every participant is in exactly one room.
    let unique: BTreeSet<&String> = everyone.iter().collect();
    prop_assert_eq!(
        unique.len(),
        everyone.len(),
        "someone is in two rooms: {:?}",
        everyone
    );
    prop_assert_eq!(everyone.len(), participants);

    // Each socket's own view agrees, and relays go exactly within a room.
    let live: Vec<String> = (0..SOCKETS).map(|s| model.id(s)).collect();
    for id in live.iter().chain(&model.gone) {
        let expected = model.room_of(id);
        let got = reg.current_room(id, None).ok().map(|r| r.to_string());
        prop_assert_eq!(&got, &expected, "current room of {}", id);
        if let Some(room) = &expected {
            prop_assert!(reg.current_room(id, Some(room)).is_ok());
            prop_assert_eq!(
                reg.current_room(id, Some("elsewhere"))
                    .err()
                    .map(|e| e.code),
                Some(ErrorCode::NotInRoom)
            );
        }
    }
    for a in &live {
        for b in live.iter().chain(&model.gone) {
            let result = reg.relay_room(a, None, b).map(|r| r.to_string());
            match (model.room_of(a), model.room_of(b)) {
                (None, _) => {
                    prop_assert_eq!(result.err().map(|e| e.code), Some(ErrorCode::NotInRoom))
                }
                (Some(ra), Some(rb)) if ra == rb => prop_assert_eq!(result.ok(), Some(ra)),
                (Some(_), _) => prop_assert_eq!(
                    result.err().map(|e| e.code),
                    Some(ErrorCode::TargetNotInRoom)
                ),
            }
        }
    }
    for room in NAMED_ROOMS {
        prop_assert_eq!(
            reg.room_info(room).is_some(),
            model.rooms.contains_key(*room)
        );
    }
    Ok(())
}

fn limits() -> impl Strategy<Value = Limits> {
    (
        1usize..=3,
        prop::bool::ANY,
        prop::sample::select(vec![0usize, 2, 4]),
        0usize..=3,
        prop::bool::ANY,
    )
        .prop_map(
            |(max_participants, zero_ttl, max_rooms, chat_history_limit, connection_states)| {
                Limits {
                    max_participants,
                    chat_history_limit,
                    chat_history_bytes: usize::MAX,
                    chat_history_total_bytes: usize::MAX,
                    empty_room_ttl: if zero_ttl {
                        Duration::ZERO
                    } else {
                        Duration::from_secs(300)
                    },
                    unused_room_ttl: Duration::from_secs(600),
                    max_rooms,
                    max_rooms_per_address: 0,
                    connection_states,
                }
            },
        )
}

/// A registry and the batches it announces.
fn registry(limits: Limits) -> (Registry, mpsc::UnboundedReceiver<Batch>) {
    let (inbox, batches) = mpsc::unbounded_channel();
    (Registry::new(limits, inbox, "test".into()), batches)
}

/// Each room's participant list as last announced.
type Announced = BTreeMap<String, Vec<ParticipantView>>;

/// Folds the batches announced so far into `lists`.
fn fold(lists: &mut Announced, batches: &mut mpsc::UnboundedReceiver<Batch>) {
    while let Ok(batch) = batches.try_recv() {
        for event in batch.events {
            let (room, list) = match event {
                Event::Joined(j) => (j.room_id.clone(), j.participants.clone()),
                Event::Left { left, .. } => (left.room_id.clone(), left.participants.clone()),
                Event::Updated { updated, .. } => {
                    (updated.room_id.clone(), updated.participants.clone())
                }
                Event::Closed { room_id, .. } => (room_id, Vec::new()),
                _ => continue,
            };
            lists.insert(room.to_string(), list);
        }
    }
}

/// What was announced of every room matches the model.
fn check_announced(model: &Model, lists: &Announced) -> Result<(), TestCaseError> {
    for (room, r) in &model.rooms {
        match lists.get(room) {
            Some(list) => check_list(model, room, list)?,
            None => prop_assert!(r.members.is_empty(), "nothing announced of {}", room),
        }
    }
    for (room, list) in lists {
        if !model.rooms.contains_key(room) {
            prop_assert!(list.is_empty(), "{} is gone but listed {:?}", room, list);
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn registry_keeps_its_invariants(limits in limits(), ops in prop::collection::vec(op(), 1..80)) {
        let (reg, mut batches) = registry(limits.clone());
        let mut announced = Announced::new();
        let mut model = Model {
            limits,
            rooms: BTreeMap::new(),
            generation: [0; SOCKETS],
            created: Vec::new(),
            gone: Vec::new(),
        };
        for op in &ops {
            apply(&reg, &mut model, op)?;
            check_invariants(&reg, &model)?;
            fold(&mut announced, &mut batches);
            check_announced(&model, &announced)?;
        }
        // Everyone leaves.
        for sock in 0..SOCKETS {
            apply(&reg, &mut model, &Op::Leave { sock })?;
            check_invariants(&reg, &model)?;
        }
        let unused = model.rooms.values().filter(|r| !r.ever_joined).count();
        if model.limits.empty_room_ttl.is_zero() {
            // Only rooms made by create_room and never joined are left.
            prop_assert_eq!(reg.stats(), (unused, 0));
        } else {
            prop_assert_eq!(reg.stats(), (model.rooms.len(), 0));
        }
        apply(&reg, &mut model, &Op::SweepLater)?;
        prop_assert_eq!(reg.stats(), (0, 0));
    }
}

// =============================================================================================
// The registry under concurrency: sockets on many threads at once (as the server runs them:
// each socket's own events in order, different sockets in parallel).
// =============================================================================================

#[test]
fn concurrent_operations_leave_a_consistent_registry() {
    for (seed, max_participants, zero_ttl, max_rooms) in [
        (1u64, 3usize, true, 0usize),
        (2, 2, true, 3),
        (3, 4, false, 0),
        (4, 1, true, 2),
    ] {
        let (reg, mut batches) = registry(Limits {
            max_participants,
            chat_history_limit: 5,
            chat_history_bytes: usize::MAX,
            chat_history_total_bytes: usize::MAX,
            empty_room_ttl: if zero_ttl {
                Duration::ZERO
            } else {
                Duration::from_secs(300)
            },
            unused_room_ttl: Duration::from_secs(600),
            max_rooms,
            max_rooms_per_address: 0,
            connection_states: true,
        });
        let reg = Arc::new(reg);
        let threads: Vec<_> = (0..6u64)
            .map(|t| {
                let reg = reg.clone();
                std::thread::spawn(move || {
                    let mut rng = raw::XorShift::new(seed * 1000 + t + 1);
                    // Each thread drives 3 sockets; it knows where each of its sockets is.
                    let mut at: [Option<String>; 3] = Default::default();
                    let mut generation = [0u32; 3];
                    for _ in 0..3000 {
                        let s = rng.below(3);
                        let id = format!("t{t}s{s}g{}", generation[s]);
                        match rng.below(11) {
                            0..=4 => {
                                let room = ["A", "B", "C", "D"][rng.below(4)].to_owned();
                                let req = JoinRequest {
                                    room_id: room.clone(),
                                    user_name: "x".into(),
                                    avatar: None,
                                    password: None,
                                    host: false,
                                };
                                match reg.join(&id, &req, ANYONE, None) {
                                    Ok(_) => at[s] = Some(room),
                                    Err(e) => assert!(
                                        matches!(
                                            e.code,
                                            ErrorCode::RoomFull | ErrorCode::TooManyRooms
                                        ),
                                        "{e:?}"
                                    ),
                                }
                            }
                            5 | 6 => {
                                assert_eq!(
                                    reg.leave(&id, LeaveReason::Left, None).is_some(),
                                    at[s].is_some(),
                                    "leave {id}"
                                );
                                at[s] = None;
                            }
                            7 => {
                                assert_eq!(
                                    reg.leave(&id, LeaveReason::Left, None).is_some(),
                                    at[s].is_some(),
                                    "disconnect {id}"
                                );
                                at[s] = None;
                                generation[s] += 1;
                            }
                            8 => {
                                let said = reg.chat(&id, None, "hi", None);
                                assert_eq!(said.is_ok(), at[s].is_some(), "chat {id}: {said:?}");
                            }
                            9 => {
                                let connection = match rng.below(2) {
                                    0 => Connection::Reconnecting,
                                    _ => Connection::Connected,
                                };
                                let changed = reg.set_connection(&id, connection, None);
                                assert!(changed.is_none() || at[s].is_some(), "{id}: {changed:?}");
                            }
                            _ => {
                                if t == 0 && rng.below(4) == 0 {
                                    reg.sweep(Instant::now());
                                } else {
                                    let r = reg.set_media(
                                        &id,
                                        None,
                                        MediaChange {
                                            kind: MediaKind::Audio,
                                            enabled: rng.below(2) == 0,
                                        },
                                        None,
                                    );
                                    assert_eq!(r.is_ok(), at[s].is_some(), "media {id}: {r:?}");
                                }
                            }
                        }
                        let here = reg.current_room(&id, None).ok().map(|r| r.to_string());
                        assert_eq!(here, at[s], "current room of {id}");
                    }
                    at.iter().flatten().count()
                })
            })
            .collect();
        let still_in: usize = threads.into_iter().map(|t| t.join().expect("thread")).sum();
        let summaries = reg.summaries();
        let in_rooms: usize = summaries.iter().map(|s| s.participant_count).sum();
        assert_eq!(reg.stats(), (summaries.len(), still_in), "seed {seed}");
        assert_eq!(in_rooms, still_in, "seed {seed}");
        let mut everyone = BTreeSet::new();
        for s in &summaries {
            assert!(
                s.participant_count <= max_participants,
                "seed {seed}: {s:?}"
            );
            for p in reg.detail(&s.room_id).expect("detail").participants {
                assert!(
                    everyone.insert(p.id.to_string()),
                    "seed {seed}: {} twice",
                    p.id
                );
                assert_eq!(
                    reg.current_room(&p.id, None).ok().as_deref(),
                    Some(&*s.room_id)
                );
            }
            if zero_ttl {
                assert!(
                    s.participant_count > 0,
                    "seed {seed}: empty room {s:?} with TTL 0"
                );
            }
        }
        if max_rooms > 0 {
            assert!(summaries.len() <= max_rooms, "seed {seed}");
        }
        // Whatever the interleaving, each room's last announced list is its true list.
        let mut announced = Announced::new();
        fold(&mut announced, &mut batches);
        for s in &summaries {
            let truth = reg.detail(&s.room_id).expect("detail").participants;
            let last = announced.get(&*s.room_id).cloned().unwrap_or_default();
            // Every field: media flags and connection states too.
            assert_eq!(last, truth, "seed {seed}: room {}", s.room_id);
        }
        // Everyone leaves: nothing is left behind.
        for id in everyone {
            assert!(reg.leave(&id, LeaveReason::Left, None).is_some());
        }
        reg.sweep(Instant::now() + Duration::from_secs(100_000));
        assert_eq!(reg.stats(), (0, 0), "seed {seed}");
        assert!(reg.summaries().is_empty(), "seed {seed}");
    }
}
