//! The bad-input corpus: hundreds of malformed inputs, generated from tables, sent to a live
//! server over a raw WebSocket and over raw HTTP long-polling. After every single input the
//! server must still answer `/health`, a bystander in the room must still get a chat from
//! another participant (and nothing else before it), and no count may have moved.
//!
//! Two kinds of input:
//! - *payload attacks*: well-formed Socket.IO events of PROTOCOL.md whose payload has one field
//!   of a wrong type or shape (or is wholly wrong). They come from a participant of the room,
//!   which must get `error` with the right code (and an `{ok:false}` ack when it asked for one)
//!   and stay connected;
//! - *packet attacks*: broken Engine.IO / Socket.IO packets, unknown namespaces, binary frames,
//!   invalid UTF-8, deep nesting, huge frames. They come from a connection that joined no room;
//!   the server may close that connection or ignore the packet, but nothing else may change.

mod common;
mod raw;

use std::time::{Duration, Instant};

use common::TestClient;
use common::TestServer;
use raw::{RawPolling, RawWs, Recv, Sio, WAIT, event_packet, parse_sio};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

const ROOM: &str = "CORPUS";
/// Payload attacks are answered one by one; the room is witnessed after each batch of this many.
const PAYLOAD_BATCH: usize = 8;

/// Prints which input was being tried if the test panics while this is alive.
struct Trying(String);

impl Drop for Trying {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("!!! failed while trying: {}", self.0);
        }
    }
}

/// The room's witnesses: after each input, `/health`, the room's count and a chat round trip.
struct Witness {
    server: TestServer,
    bystander: TestClient,
    speaker: TestClient,
    counts: (u64, u64),
    room_size: u64,
    probes: usize,
}

impl Witness {
    async fn check(&mut self, label: &str) {
        let (status, health) = self.server.get("/health").await;
        assert_eq!(status, 200, "/health after {label}");
        assert_eq!(health["status"], "OK", "after {label}");
        let counts = (
            health["activeRooms"].as_u64().expect("activeRooms"),
            health["totalParticipants"]
                .as_u64()
                .expect("totalParticipants"),
        );
        assert_eq!(counts, self.counts, "/health counts changed after {label}");
        let (status, room) = self.server.get(&format!("/api/room/{ROOM}")).await;
        assert_eq!(status, 200, "room after {label}");
        assert_eq!(
            room["participantCount"], self.room_size,
            "participantCount changed after {label}"
        );
        self.probes += 1;
        let text = format!("probe {}", self.probes);
        self.speaker
            .emit("send-message", json!({"message": text}))
            .await;
        // Strict: the very next thing the bystander hears is this chat. Any relay, toggle,
        // user-left or participants-updated caused by the bad input would come first.
        let (name, got) = self.bystander.next().await;
        assert_eq!(
            name, "new-message",
            "bystander got `{name}` {got} after {label}"
        );
        assert_eq!(got["message"], text.as_str(), "after {label}");
        assert_eq!(got["senderId"], self.speaker.id.as_str(), "after {label}");
        let (name, _) = self.speaker.next().await;
        assert_eq!(name, "new-message", "speaker after {label}");
    }
}

// ---------------------------------------------------------------------------------------------
// Payload attacks: tables of events, fields and wrong values.
// ---------------------------------------------------------------------------------------------

/// What the attacker must get back.
#[derive(Debug, Clone)]
enum Expect {
    /// `error` with this code (and `{ok:false, code}` on the ack).
    Error(&'static str),
    /// This event instead (a harmless input that is not an error), e.g. `joined-room`.
    Event(&'static str),
}

#[derive(Debug, Clone)]
struct Case {
    label: String,
    event: &'static str,
    /// The JSON array of the Socket.IO event: `["event", arg…]`.
    array: String,
    expect: Expect,
}

const INVALID: Expect = Expect::Error("invalid_payload");

fn nested_array(depth: usize) -> Value {
    let mut v = json!(0);
    for _ in 0..depth {
        v = json!([v]);
    }
    v
}

fn nested_object(depth: usize) -> Value {
    let mut v = json!("deep");
    for _ in 0..depth {
        v = json!({ "a": v });
    }
    v
}

/// A value of every JSON type but string (and no null): what goes where something else belongs.
fn non_strings() -> Vec<(&'static str, Value)> {
    vec![
        ("true", json!(true)),
        ("false", json!(false)),
        ("0", json!(0)),
        ("-1.5", json!(-1.5)),
        ("1e300", json!(1e300)),
        ("u64::MAX", json!(u64::MAX)),
        ("i64::MIN", json!(i64::MIN)),
        ("[]", json!([])),
        ("[\"x\"]", json!(["x"])),
        ("{}", json!({})),
        ("{k:[1]}", json!({"k": [1]})),
        ("array nested 100 deep", nested_array(100)),
        ("object nested 100 deep", nested_object(100)),
        ("10000-element array", Value::Array(vec![json!(0); 10_000])),
    ]
}

/// How a field must be read, which decides its wrong values.
#[derive(Debug, Clone, Copy)]
enum Field {
    /// `join-room.roomId`: required, `[A-Za-z0-9_-]{1,64}`.
    JoinRoomId,
    /// `join-room.userName`: required, 1-50 characters after trimming.
    UserName,
    /// `join-room.userAvatar`: anything unusable is `null`, not an error.
    Avatar,
    /// `roomId` of other events: optional; must name the current room.
    RoomHint,
    /// `send-message.message`: required, 1-2000 characters after trimming.
    Message,
    /// `targetId` / `targetSocketId`: required socket id of someone in the room.
    Target,
    /// `offer` / `answer`: required object.
    Body,
    /// `candidate`: required object or null.
    Candidate,
    /// A required boolean.
    Bool,
    /// `toggle-media.type`: `"audio"` or `"video"`.
    MediaType,
}

/// `(label, value or None for "field missing", expected answer)`.
fn wrong_values(field: Field) -> Vec<(String, Option<Value>, Expect)> {
    let mut out: Vec<(String, Option<Value>, Expect)> = Vec::new();
    let mut add = |label: &str, v: Option<Value>, e: Expect| out.push((label.to_owned(), v, e));
    let long = |n: usize, c: &str| c.repeat(n);
    let is_object = |v: &Value| v.is_object();
    let is_bool = |v: &Value| v.is_boolean();
    match field {
        Field::JoinRoomId => {
            for (l, v) in non_strings() {
                add(l, Some(v), INVALID);
            }
            add("null", Some(Value::Null), INVALID);
            add("missing", None, INVALID);
            for s in [
                "".to_owned(),
                " ".to_owned(),
                "a b".to_owned(),
                long(65, "x"),
                long(10_000, "x"),
                "é".to_owned(),
                "R/1".to_owned(),
                "R\u{0}".to_owned(),
                "R.1".to_owned(),
                "<script>alert(1)</script>".to_owned(),
                format!("{ROOM}\n"),
                "../../etc/passwd".to_owned(),
            ] {
                add(&format!("string {:?}", trunc(&s)), Some(json!(s)), INVALID);
            }
        }
        Field::UserName => {
            for (l, v) in non_strings() {
                add(l, Some(v), INVALID);
            }
            add("null", Some(Value::Null), INVALID);
            add("missing", None, INVALID);
            for s in [
                "".to_owned(),
                "   ".to_owned(),
                "\u{3000}\u{2003}\t\n".to_owned(),
                long(51, "x"),
                long(51, "é"),
                long(51, "😀"),
                long(20_000, "x"),
            ] {
                add(&format!("string {:?}", trunc(&s)), Some(json!(s)), INVALID);
            }
        }
        Field::Avatar => {
            let ok = Expect::Event("joined-room");
            for (l, v) in non_strings() {
                add(l, Some(v), ok.clone());
            }
            add("null", Some(Value::Null), ok.clone());
            for s in [
                "javascript:alert(1)".to_owned(),
                "https://".to_owned(),
                format!("http://{}", long(3000, "a")),
                "https://a b".to_owned(),
                "data:image/png;base64,AAAA".to_owned(),
                "https://a\u{0}b".to_owned(),
            ] {
                add(
                    &format!("string {:?}", trunc(&s)),
                    Some(json!(s)),
                    ok.clone(),
                );
            }
        }
        Field::RoomHint => {
            for (l, v) in non_strings() {
                add(l, Some(v), INVALID);
            }
            let not_in_room = Expect::Error("not_in_room");
            for s in ["OTHER".to_owned(), "".to_owned(), long(5000, "x")] {
                add(
                    &format!("string {:?}", trunc(&s)),
                    Some(json!(s)),
                    not_in_room.clone(),
                );
            }
        }
        Field::Message => {
            for (l, v) in non_strings() {
                add(l, Some(v), INVALID);
            }
            add("null", Some(Value::Null), INVALID);
            add("missing", None, INVALID);
            for s in [
                "".to_owned(),
                "  \n\t ".to_owned(),
                long(2001, "x"),
                long(2001, "é"),
                long(60_000, "x"),
            ] {
                add(&format!("string {:?}", trunc(&s)), Some(json!(s)), INVALID);
            }
        }
        Field::Target => {
            for (l, v) in non_strings() {
                add(l, Some(v), INVALID);
            }
            add("null", Some(Value::Null), INVALID);
            add("missing", None, INVALID);
            for s in ["".to_owned(), long(129, "x")] {
                add(&format!("string {:?}", trunc(&s)), Some(json!(s)), INVALID);
            }
            add(
                "string \"nobody\"",
                Some(json!("nobody")),
                Expect::Error("target_not_in_room"),
            );
        }
        Field::Body | Field::Candidate => {
            for (l, v) in non_strings() {
                if !is_object(&v) {
                    add(l, Some(v), INVALID);
                }
            }
            if matches!(field, Field::Body) {
                add("null", Some(Value::Null), INVALID);
            }
            add("missing", None, INVALID);
            for s in ["v=0", ""] {
                add(&format!("string {s:?}"), Some(json!(s)), INVALID);
            }
        }
        Field::Bool => {
            for (l, v) in non_strings() {
                if !is_bool(&v) {
                    add(l, Some(v), INVALID);
                }
            }
            add("null", Some(Value::Null), INVALID);
            add("missing", None, INVALID);
            for s in ["true", "false", ""] {
                add(&format!("string {s:?}"), Some(json!(s)), INVALID);
            }
        }
        Field::MediaType => {
            for (l, v) in non_strings() {
                add(l, Some(v), INVALID);
            }
            add("null", Some(Value::Null), INVALID);
            add("missing", None, INVALID);
            for s in ["Audio", "VIDEO", "screen", "", "audio "] {
                add(&format!("string {s:?}"), Some(json!(s)), INVALID);
            }
        }
    }
    out
}

fn trunc(s: &str) -> String {
    if s.chars().count() > 12 {
        format!(
            "{}…({} chars)",
            s.chars().take(8).collect::<String>(),
            s.chars().count()
        )
    } else {
        s.to_owned()
    }
}

/// One event of PROTOCOL.md: a valid payload, and the fields to spoil one at a time.
struct Spec {
    event: &'static str,
    base: Value,
    fields: Vec<(&'static str, Field)>,
    /// `{roomId?}`, `null` or no payload at all are valid (and would change state).
    room_only: bool,
}

/// Every client event, with `target` (the bystander) as relay target.
fn specs(target: &str) -> Vec<Spec> {
    let offer = json!({"type": "offer", "sdp": "v=0"});
    let answer = json!({"type": "answer", "sdp": "v=0"});
    let candidate = json!({"candidate": "candidate:1 1 udp 1 127.0.0.1 9 typ host", "sdpMid": "0"});
    let mut specs = vec![
        Spec {
            event: "join-room",
            base: json!({"roomId": ROOM, "userName": "Mallory"}),
            fields: vec![
                ("roomId", Field::JoinRoomId),
                ("userName", Field::UserName),
                ("userAvatar", Field::Avatar),
            ],
            room_only: false,
        },
        Spec {
            event: "leave-room",
            base: json!({"roomId": ROOM}),
            fields: vec![("roomId", Field::RoomHint)],
            room_only: true,
        },
        Spec {
            event: "send-message",
            base: json!({"roomId": ROOM, "message": "hi"}),
            fields: vec![("roomId", Field::RoomHint), ("message", Field::Message)],
            room_only: false,
        },
    ];
    for (target_key, dialect_only_target) in [("targetId", false), ("targetSocketId", true)] {
        for (event, body) in [
            ("webrtc-offer", Some(("offer", offer.clone(), Field::Body))),
            (
                "webrtc-answer",
                Some(("answer", answer.clone(), Field::Body)),
            ),
            (
                "webrtc-ice-candidate",
                Some(("candidate", candidate.clone(), Field::Candidate)),
            ),
            ("request-connection", None),
        ] {
            let mut base = json!({ target_key: target, "roomId": ROOM });
            let mut fields = vec![(target_key, Field::Target)];
            if let Some((key, value, field)) = body {
                base[key] = value;
                if !dialect_only_target {
                    fields.push((key, field));
                }
            }
            if !dialect_only_target {
                fields.push(("roomId", Field::RoomHint));
            }
            specs.push(Spec {
                event,
                base,
                fields,
                room_only: false,
            });
        }
    }
    for (event, off, on) in [
        ("toggle-audio", "isAudioMuted", "isAudioEnabled"),
        ("toggle-video", "isVideoOff", "isVideoEnabled"),
    ] {
        specs.push(Spec {
            event,
            base: json!({ off: false, "roomId": ROOM }),
            fields: vec![(off, Field::Bool), ("roomId", Field::RoomHint)],
            room_only: false,
        });
        specs.push(Spec {
            event,
            base: json!({ on: true }),
            fields: vec![(on, Field::Bool)],
            room_only: false,
        });
    }
    specs.push(Spec {
        event: "toggle-media",
        base: json!({"type": "audio", "enabled": true, "roomId": ROOM}),
        fields: vec![
            ("type", Field::MediaType),
            ("enabled", Field::Bool),
            ("roomId", Field::RoomHint),
        ],
        room_only: false,
    });
    for event in ["start-screen-share", "stop-screen-share"] {
        specs.push(Spec {
            event,
            base: json!({"roomId": ROOM}),
            fields: vec![("roomId", Field::RoomHint)],
            room_only: true,
        });
    }
    specs.push(Spec {
        event: "toggle-screen-share",
        base: json!({"isScreenSharing": false, "roomId": ROOM}),
        fields: vec![
            ("isScreenSharing", Field::Bool),
            ("roomId", Field::RoomHint),
        ],
        room_only: false,
    });
    specs
}

/// The payload-attack corpus: every field of every event with every wrong value, plus wholly
/// wrong payloads.
fn payload_cases(target: &str) -> Vec<Case> {
    let mut cases = Vec::new();
    let mut seen_whole = std::collections::HashSet::new();
    for spec in specs(target) {
        for (key, field) in &spec.fields {
            for (label, value, expect) in wrong_values(*field) {
                let mut payload = spec.base.clone();
                match value {
                    Some(v) => payload[*key] = v,
                    None => {
                        payload.as_object_mut().expect("object").remove(*key);
                    }
                }
                cases.push(Case {
                    label: format!("{} {key} = {label}", spec.event),
                    event: spec.event,
                    array: json!([spec.event, payload]).to_string(),
                    expect,
                });
            }
        }
        if !seen_whole.insert(spec.event) {
            continue;
        }
        // The payload itself of a wrong type.
        let mut wholes: Vec<(String, String)> = vec![
            ("payload true".into(), json!([spec.event, true]).to_string()),
            ("payload 0".into(), json!([spec.event, 0]).to_string()),
            ("payload -1.5".into(), json!([spec.event, -1.5]).to_string()),
            (
                "payload \"str\"".into(),
                json!([spec.event, "str"]).to_string(),
            ),
            ("payload \"\"".into(), json!([spec.event, ""]).to_string()),
            ("payload []".into(), json!([spec.event, []]).to_string()),
            (
                "payload [valid payload]".into(),
                json!([spec.event, [spec.base.clone()]]).to_string(),
            ),
            (
                "payload 10000-element array".into(),
                json!([spec.event, vec![0; 10_000]]).to_string(),
            ),
            (
                "payload nested 120 deep".into(),
                json!([spec.event, nested_array(120)]).to_string(),
            ),
            (
                "payload 5 then the valid payload".into(),
                json!([spec.event, 5, spec.base.clone()]).to_string(),
            ),
        ];
        if !spec.room_only {
            wholes.push(("payload null".into(), json!([spec.event, null]).to_string()));
            wholes.push(("no payload".into(), json!([spec.event]).to_string()));
            wholes.push(("payload {}".into(), json!([spec.event, {}]).to_string()));
        }
        for (label, array) in wholes {
            cases.push(Case {
                label: format!("{} {label}", spec.event),
                event: spec.event,
                array,
                expect: INVALID,
            });
        }
    }
    cases
}

/// Either raw transport, seen through what the corpus needs.
#[allow(clippy::large_enum_variant)]
enum Attacker {
    Ws(RawWs),
    Polling(RawPolling),
}

impl Attacker {
    fn name(&self) -> &'static str {
        match self {
            Attacker::Ws(_) => "websocket",
            Attacker::Polling(_) => "polling",
        }
    }

    async fn send_sio(&mut self, sio: &str) {
        match self {
            Attacker::Ws(ws) => ws.send_sio(sio).await.expect("send"),
            Attacker::Polling(p) => assert_eq!(p.send_sio(sio).await, 200, "POST {sio:.60}"),
        }
    }

    async fn next_sio(&mut self) -> Option<Sio> {
        match self {
            Attacker::Ws(ws) => ws.next_sio(WAIT).await,
            Attacker::Polling(p) => p.next_sio(WAIT).await,
        }
    }

    /// The next packet that is not a probe chat from the room.
    async fn next_reply(&mut self, label: &str) -> Sio {
        loop {
            let packet = self.next_sio().await.unwrap_or_else(|| {
                panic!("{}: connection closed or silent after {label}", self.name())
            });
            if packet.event_arg("new-message").is_none() {
                return packet;
            }
        }
    }
}

/// Sends one payload attack and checks the answer; `ack` asks for an acknowledgement.
async fn run_case(attacker: &mut Attacker, case: &Case, ack: Option<i64>) {
    let label = &case.label;
    let json_part = &case.array;
    let packet = match ack {
        Some(id) => format!("2{id}{json_part}"),
        None => format!("2{json_part}"),
    };
    attacker.send_sio(&packet).await;
    let mut seen_event = false;
    let mut seen_ack = ack.is_none();
    while !(seen_event && seen_ack) {
        match attacker.next_reply(label).await {
            Sio::Event { name, args, .. } => {
                let arg = args.first().cloned().unwrap_or(Value::Null);
                match &case.expect {
                    Expect::Error(code) => {
                        assert_eq!(name, "error", "{label}: got `{name}` {arg}");
                        assert_eq!(arg["code"], *code, "{label}: {arg}");
                        assert_eq!(arg["event"], case.event, "{label}: {arg}");
                        assert!(
                            arg["message"].as_str().is_some_and(|m| !m.is_empty()),
                            "{label}: {arg}"
                        );
                    }
                    Expect::Event(expected) => {
                        assert_eq!(name, *expected, "{label}: got `{name}` {arg}");
                        if *expected == "joined-room" {
                            // Already in the room: nothing changed, the list is the same.
                            assert_eq!(arg["roomId"], ROOM, "{label}");
                            assert_eq!(
                                arg["participants"].as_array().map(Vec::len),
                                Some(4),
                                "{label}"
                            );
                            assert_eq!(arg["participant"]["userName"], "Mallory", "{label}");
                            assert_eq!(arg["participant"]["avatar"], Value::Null, "{label}");
                        }
                    }
                }
                assert!(!seen_event, "{label}: a second `{name}`");
                seen_event = true;
            }
            Sio::Ack { id, args } => {
                assert_eq!(Some(id), ack, "{label}: ack id");
                let arg = args.first().cloned().unwrap_or(Value::Null);
                match &case.expect {
                    Expect::Error(code) => {
                        assert_eq!(arg["ok"], false, "{label}: ack {arg}");
                        assert_eq!(arg["code"], *code, "{label}: ack {arg}");
                        assert!(arg["error"].is_string(), "{label}: ack {arg}");
                    }
                    Expect::Event(_) => assert_eq!(arg["ok"], true, "{label}: ack {arg}"),
                }
                seen_ack = true;
            }
            other => panic!("{label}: unexpected {other:?}"),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Packet attacks: broken packets from a connection in no room.
// ---------------------------------------------------------------------------------------------

/// One packet attack: Engine.IO text (frame or POST body), raw bytes, or WebSocket messages.
#[derive(Clone)]
enum Garbage {
    /// An Engine.IO text packet (a WebSocket text frame; a POST body for polling).
    Text(String),
    /// Raw bytes: a binary WebSocket frame; a POST body for polling.
    Bytes(Vec<u8>),
    /// WebSocket only: these messages in a row (binary events with attachments, bad frames).
    Frames(Vec<Message>),
}

fn label_of(g: &Garbage) -> String {
    match g {
        Garbage::Text(t) => format!("text {:?}", trunc_bytes(t.as_bytes())),
        Garbage::Bytes(b) => format!("bytes {:?}", trunc_bytes(b)),
        Garbage::Frames(f) => format!(
            "{} frames, first {:?}",
            f.len(),
            f.first().map(|m| trunc_bytes(&m.clone().into_data()))
        ),
    }
}

fn trunc_bytes(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(48)]).into_owned();
    if b.len() > 48 {
        format!("{s}…({} bytes)", b.len())
    } else {
        s
    }
}

/// Socket.IO-level garbage, each as an Engine.IO message (`4…`) or other Engine.IO packet.
fn sio_garbage() -> Vec<String> {
    let placeholder = r#"{"_placeholder":true,"num":0}"#;
    let deep_open = "[".repeat(10_000);
    let deep_pair = format!("{}{}", "[".repeat(10_000), "]".repeat(10_000));
    let deep_obj = format!("{}1{}", r#"{"a":"#.repeat(10_000), "}".repeat(10_000));
    let mut texts: Vec<String> = [
        // Engine.IO level.
        "",
        "4",
        "4 ",
        "9",
        "x",
        "0",
        "0{}",
        "3",
        "5",
        "6",
        "2probe",
        "3probe",
        "7",
        "\u{0}",
        // Truncated / invalid Socket.IO packets.
        "42",
        "42[",
        "42[\"",
        "42[\"send-message\"",
        "42[\"send-message\",",
        "42[\"send-message\",{",
        "42[\"send-message\",{}",
        "42]",
        "42{}",
        "42\"send-message\"",
        "42123",
        "42null",
        "42true",
        "42[]",
        "42[1]",
        "42[null]",
        "42[true,{}]",
        "42[{}]",
        "42[[\"send-message\"]]",
        "42[\"send-message\",{}]]",
        "42[\"send-message\",{}] trailing",
        "42[\"send-message\" {}]",
        "42['send-message',{}]",
        "42[\"send-message\",{\"a\":1,}]",
        "42[\"send-message\",{a:1}]",
        "42[\"send-message\",1e999]",
        "42[\"send-message\",NaN]",
        "42[\"send-message\",-]",
        "42[\"send-message\",0x10]",
        "42[\"send-message\",{\"message\":\"\\ud800\"}]",
        "42[\"\\ud800\"]",
        "42[\"\\u0000\"]",
        "42[\"send-message\",\"\\u0000\"]",
        "42abc",
        "42-1[\"x\"]",
        "4-1[\"a\"]",
        "4x",
        "47",
        "48[]",
        "49",
        "4\u{0}\u{0}\u{0}",
        "429999999999999999999999[\"leave-room\"]",
        "42007[\"leave-room\"]",
        // Acks, disconnects, connect errors the client should never send.
        "43",
        "43[]",
        "4399[]",
        "4399[{\"ok\":true}]",
        "43-1[]",
        "44",
        "44{}",
        "44\"x\"",
        // Binary packets without their attachments, or with absurd counts.
        "45",
        "45-",
        "45-[]",
        "451-",
        "46",
        "461-[]",
        "4611[]",
        "4599999999999-[\"send-message\"]",
        "45999999999999999999999999-[]",
        "4599999999999-[\"send-message\",{\"_placeholder\":true,\"num\":99999999}]",
        // Namespaces.
        "40/admin,",
        "40/admin,{}",
        "40/admin",
        "40/,",
        "40/",
        "40{\"token\":1}",
        "40",
        "42/admin,[\"send-message\",{\"message\":\"hi\"}]",
        "42/admin,",
        "42/,[\"leave-room\"]",
        "43/admin,1[]",
        "41/admin,",
        // Event names that are not ours, or that mean something inside the library.
        "42[\"__proto__\",{}]",
        "42[\"constructor\"]",
        "42[\"error\",{\"code\":\"x\"}]",
        "42[\"disconnect\"]",
        "42[\"disconnecting\"]",
        "42[\"connect\"]",
        "42[\"connect_error\"]",
        "42[\"newListener\",{}]",
        "42[\"join-room \",{}]",
        "42[\"JOIN-ROOM\",{}]",
        "42[\"unknown-event\",{\"roomId\":\"CORPUS\"}]",
        "42[\"\",{}]",
        "42[1,{}]",
        "42[null,{}]",
        "42[{\"event\":\"send-message\"},{}]",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    texts.extend([
        format!("40/{},", "a".repeat(10_000)),
        format!("42[\"{}\",{{}}]", "x".repeat(50_000)),
        format!("42[\"send-message\",{}{{}}]", "{},".repeat(5000)),
        format!("42{deep_open}"),
        format!("42[\"send-message\",{deep_pair}]"),
        format!("42[\"send-message\",{deep_obj}]"),
        format!("42{}{}", "[".repeat(129), "]".repeat(129)),
        format!("42[\"send-message\",[{}0]]", "0,".repeat(30_000)),
        format!(
            "42[\"send-message\",{{\"message\":\"{}\"}}]",
            "x".repeat(90_000)
        ),
        format!(
            "42[\"join-room\",{{\"roomId\":\"{ROOM}\",\"userName\":\"{}\"}}]",
            "y".repeat(90_000)
        ),
        format!("451-[\"send-message\",{placeholder}]"),
        format!("451-[\"join-room\",{{\"roomId\":\"{ROOM}\",\"userName\":{placeholder}}}]"),
        format!("452-[\"send-message\",{placeholder},{placeholder}]"),
        "41".to_owned(),
        "1".to_owned(),
    ]);
    texts
}

/// WebSocket-only inputs: binary frames, invalid UTF-8 text frames, binary events.
fn ws_only_garbage() -> Vec<Garbage> {
    let placeholder = r#"{"_placeholder":true,"num":0}"#;
    let invalid_utf8_text = |bytes: &[u8]| {
        Message::Frame(Frame::message(
            bytes.to_vec(),
            OpCode::Data(Data::Text),
            true,
        ))
    };
    vec![
        Garbage::Bytes(vec![]),
        Garbage::Bytes(vec![0xff, 0xfe, 0xfd]),
        Garbage::Bytes(vec![0; 4096]),
        Garbage::Bytes(b"42[\"send-message\",{\"message\":\"hi\"}]".to_vec()),
        Garbage::Bytes((0..=255).collect()),
        Garbage::Frames(vec![invalid_utf8_text(&[b'4', b'2', 0xff, 0xfe])]),
        Garbage::Frames(vec![invalid_utf8_text(&[0xc3, 0x28])]),
        Garbage::Frames(vec![invalid_utf8_text(
            b"42[\"send-message\",{\"message\":\"\xed\xa0\x80\"}]",
        )]),
        // A binary event and its attachment: binary packets are refused by the handler.
        Garbage::Frames(vec![
            Message::text(format!("451-[\"send-message\",{placeholder}]")),
            Message::binary(vec![1u8, 2, 3]),
        ]),
        // A join whose user name hides in an attachment must not join.
        Garbage::Frames(vec![
            Message::text(format!(
                "451-[\"join-room\",{{\"roomId\":\"{ROOM}\",\"userName\":{placeholder}}}]"
            )),
            Message::binary(b"Mallory".to_vec()),
        ]),
        // Two attachments announced, one sent, then text.
        Garbage::Frames(vec![
            Message::text(format!(
                "452-[\"send-message\",{placeholder},{placeholder}]"
            )),
            Message::binary(vec![1u8]),
        ]),
        // A binary ack nobody asked for.
        Garbage::Frames(vec![
            Message::text(format!("4617-[{placeholder}]")),
            Message::binary(vec![9u8; 16]),
        ]),
        // A 2 MB text frame (over the payload limit).
        Garbage::Text(format!(
            "42[\"send-message\",{{\"message\":\"{}\"}}]",
            "z".repeat(2 << 20)
        )),
        Garbage::Frames(vec![Message::Ping(vec![1u8; 100].into())]),
        Garbage::Frames(vec![Message::Pong(vec![2u8; 100].into())]),
        Garbage::Frames(vec![
            Message::Frame(Frame::message(
                b"42[\"send".to_vec(),
                OpCode::Data(Data::Text),
                false,
            )),
            Message::Frame(Frame::message(
                b"-message\"]".to_vec(),
                OpCode::Data(Data::Continue),
                true,
            )),
        ]),
        Garbage::Frames(vec![Message::Frame(Frame::message(
            b"orphan continuation".to_vec(),
            OpCode::Data(Data::Continue),
            true,
        ))]),
        Garbage::Frames(vec![Message::Frame(Frame::message(
            b"reserved opcode".to_vec(),
            OpCode::Data(Data::Reserved(3)),
            true,
        ))]),
    ]
}

/// Polling-only POST bodies: several packets per body, base64 attachments, invalid UTF-8.
fn polling_only_garbage() -> Vec<Garbage> {
    let placeholder = r#"{"_placeholder":true,"num":0}"#;
    vec![
        Garbage::Text("\x1e".into()),
        Garbage::Text("\x1e\x1e\x1e".into()),
        Garbage::Text("4\x1e4".into()),
        Garbage::Text("42[\x1e\"send-message\"]".into()),
        Garbage::Text("42[\"leave-room\",5]\x1e42[\"nope\"]\x1e42[".into()),
        Garbage::Text("b".into()),
        Garbage::Text("bAAAA".into()),
        Garbage::Text("b!!!not base64!!!".into()),
        Garbage::Text(format!("451-[\"send-message\",{placeholder}]\x1ebAQID")),
        Garbage::Text(format!(
            "451-[\"join-room\",{{\"roomId\":\"{ROOM}\",\"userName\":{placeholder}}}]\x1ebTWFsbG9yeQ=="
        )),
        Garbage::Text(format!(
            "452-[\"send-message\",{placeholder},{placeholder}]\x1ebAQ=="
        )),
        Garbage::Text("bAQID".into()),
        Garbage::Text(format!(
            "42[\"send-message\",{{}}]{}",
            "\x1e42[\"x\"]".repeat(3000)
        )),
        Garbage::Bytes(vec![b'4', b'2', 0xff, 0xfe, 0xfd]),
        Garbage::Bytes(vec![0xff; 100]),
        Garbage::Bytes(vec![0; 100]),
        Garbage::Bytes(b"42[\"send-message\",{\"message\":\"\xed\xa0\x80\"}]".to_vec()),
        Garbage::Bytes(vec![b'x'; 200_000]),
    ]
}

/// How a connection in no room took one packet attack.
#[derive(Debug, Default)]
struct Tally {
    survived: usize,
    closed: usize,
    errors: std::collections::BTreeMap<String, usize>,
}

/// After an input, sends a probe (`leave-room` with an ack, which a socket in no room answers
/// `not_in_room`) and reads until that ack (the connection survived) or the end of the session.
/// Returns whether the connection is still usable.
async fn probe_ws(ws: &mut RawWs, probe_id: i64, label: &str, tally: &mut Tally) -> bool {
    if ws
        .send_sio(&event_packet("leave-room", &Value::Null, Some(probe_id)))
        .await
        .is_err()
    {
        tally.closed += 1;
        return false;
    }
    loop {
        match ws.recv(WAIT).await {
            Recv::Msg(m) => match parse_sio(&m) {
                Sio::Ack { id, args } if id == probe_id => {
                    assert_eq!(
                        args[0]["code"], "not_in_room",
                        "{label}: probe ack {args:?}"
                    );
                    tally.survived += 1;
                    return true;
                }
                Sio::Event { name, args, .. } if name == "error" => {
                    *tally
                        .errors
                        .entry(format!("{}", args[0]["code"]))
                        .or_default() += 1;
                }
                _ => {}
            },
            Recv::Binary(_) => {}
            Recv::Closed => {
                tally.closed += 1;
                return false;
            }
            Recv::Timeout => panic!("{label}: the server neither answered nor closed (hang?)"),
        }
    }
}

async fn probe_polling(p: &mut RawPolling, probe_id: i64, label: &str, tally: &mut Tally) -> bool {
    let status = p
        .send_sio(&event_packet("leave-room", &Value::Null, Some(probe_id)))
        .await;
    if status != 200 {
        tally.closed += 1;
        return false;
    }
    loop {
        match p.recv(WAIT).await {
            Recv::Msg(m) => match parse_sio(&m) {
                Sio::Ack { id, args } if id == probe_id => {
                    assert_eq!(
                        args[0]["code"], "not_in_room",
                        "{label}: probe ack {args:?}"
                    );
                    tally.survived += 1;
                    return true;
                }
                Sio::Event { name, args, .. } if name == "error" => {
                    *tally
                        .errors
                        .entry(format!("{}", args[0]["code"]))
                        .or_default() += 1;
                }
                _ => {}
            },
            Recv::Binary(_) => {}
            Recv::Closed => {
                tally.closed += 1;
                return false;
            }
            Recv::Timeout => panic!("{label}: the server neither answered nor closed (hang?)"),
        }
    }
}

/// HTTP requests no Engine.IO client sends; each must get a 4xx/2xx answer, never a 5xx.
fn http_garbage(sid: &str) -> Vec<(reqwest::Method, String, Vec<u8>)> {
    use reqwest::Method;
    let get = Method::GET;
    let post = Method::POST;
    let long_sid = "A".repeat(10_000);
    vec![
        (
            get.clone(),
            "/socket.io/?EIO=3&transport=polling".into(),
            vec![],
        ),
        (
            get.clone(),
            "/socket.io/?EIO=5&transport=polling".into(),
            vec![],
        ),
        (
            get.clone(),
            "/socket.io/?EIO=abc&transport=polling".into(),
            vec![],
        ),
        (
            get.clone(),
            "/socket.io/?EIO=-1&transport=polling".into(),
            vec![],
        ),
        (get.clone(), "/socket.io/?transport=polling".into(), vec![]),
        (
            get.clone(),
            "/socket.io/?EIO=4&transport=flashsocket".into(),
            vec![],
        ),
        (get.clone(), "/socket.io/?EIO=4".into(), vec![]),
        (get.clone(), "/socket.io/".into(), vec![]),
        (
            get.clone(),
            "/socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA".into(),
            vec![],
        ),
        (
            get.clone(),
            "/socket.io/?EIO=4&transport=polling&sid=".into(),
            vec![],
        ),
        (
            get.clone(),
            format!("/socket.io/?EIO=4&transport=polling&sid={long_sid}"),
            vec![],
        ),
        (
            get.clone(),
            "/socket.io/?EIO=4&transport=polling&sid=%00%ff".into(),
            vec![],
        ),
        (
            get.clone(),
            format!(
                "/socket.io/?EIO=4&transport=polling&x={}",
                "y".repeat(20_000)
            ),
            vec![],
        ),
        (
            get.clone(),
            "/socket.io/?EIO=4&transport=websocket".into(),
            vec![],
        ),
        (
            get.clone(),
            format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"),
            vec![],
        ),
        (
            get.clone(),
            "/socket.io/%ff%fe?EIO=4&transport=polling".into(),
            vec![],
        ),
        (
            post.clone(),
            "/socket.io/?EIO=4&transport=polling".into(),
            b"40".to_vec(),
        ),
        (
            post.clone(),
            "/socket.io/?EIO=4&transport=polling&sid=AAAAAAAAAAAAAAAAAAAA".into(),
            b"40".to_vec(),
        ),
        (
            post.clone(),
            format!("/socket.io/?EIO=4&transport=websocket&sid={sid}"),
            b"40".to_vec(),
        ),
        (
            post.clone(),
            format!("/socket.io/?EIO=4&transport=polling&sid={long_sid}"),
            b"40".to_vec(),
        ),
        (
            Method::PUT,
            "/socket.io/?EIO=4&transport=polling".into(),
            b"40".to_vec(),
        ),
        (
            Method::DELETE,
            format!("/socket.io/?EIO=4&transport=polling&sid={sid}"),
            vec![],
        ),
        (
            Method::OPTIONS,
            "/socket.io/?EIO=4&transport=polling".into(),
            vec![],
        ),
        (Method::PATCH, "/api/create-room".into(), b"{}".to_vec()),
        (post.clone(), "/api/room/R?x=1".into(), vec![b'{'; 300_000]),
        (
            get.clone(),
            format!("/api/room/{}", "R".repeat(10_000)),
            vec![],
        ),
        (get.clone(), "/api/room/%ff%fe".into(), vec![]),
        (
            get.clone(),
            "/api/room/..%2f..%2fetc%2fpasswd".into(),
            vec![],
        ),
        (post.clone(), "/health".into(), b"x".to_vec()),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_bad_inputs_change_nothing() {
    let started = Instant::now();
    let server = TestServer::start().await;
    let addr = server.addr;
    let mut bystander = server.joined(ROOM, "Bystander").await;
    let mut speaker = server.joined(ROOM, "Speaker").await;
    bystander.expect("user-joined").await;
    bystander.expect("participants-updated").await;

    // Two participants attack from inside the room, one per transport.
    let mut ws_insider = RawWs::connect(addr).await;
    ws_insider.join(ROOM, "Mallory").await;
    let mut poll_insider = RawPolling::connect(addr).await;
    poll_insider.join(ROOM, "Mallory").await;
    ws_insider.expect_event("user-joined").await;
    ws_insider.expect_event("participants-updated").await;
    for c in [&mut bystander, &mut speaker] {
        for _ in 0..2 {
            c.expect("user-joined").await;
            c.expect("participants-updated").await;
        }
    }
    let counts = server.counts().await;
    assert_eq!(counts, (1, 4));
    let bystander_id = bystander.id.clone();
    let mut witness = Witness {
        server,
        bystander,
        speaker,
        counts,
        room_size: 4,
        probes: 0,
    };
    witness.check("setup").await;

    let mut tried = 0usize;
    let mut per_group: Vec<(String, usize, f64)> = Vec::new();

    // 1. Payload attacks from inside the room, over both transports in turn (each insider
    //    reads its socket after every input, so neither sits idle long enough to time out).
    let cases = payload_cases(&bystander_id);
    let mut ack_id = 1000i64;
    let t = Instant::now();
    let mut insiders = [Attacker::Ws(ws_insider), Attacker::Polling(poll_insider)];
    for (i, case) in cases.iter().enumerate() {
        for attacker in insiders.iter_mut() {
            let label = format!("{} payload attack #{i}: {}", attacker.name(), case.label);
            let _trying = Trying(label.clone());
            ack_id += 1;
            let ack = (ack_id % 2 == 0).then_some(ack_id);
            run_case(attacker, case, ack).await;
            tried += 1;
        }
        // Every answer was checked above; the room is checked after each batch (a stray
        // broadcast from any input of the batch would still arrive before the probe chat).
        if i % PAYLOAD_BATCH == PAYLOAD_BATCH - 1 || i + 1 == cases.len() {
            witness
                .check(&format!(
                    "payload attacks #{}..={i} ({})",
                    i + 1 - (i % PAYLOAD_BATCH),
                    case.label
                ))
                .await;
        }
    }
    per_group.push((
        "payload attacks from inside the room (websocket + polling)".into(),
        2 * cases.len(),
        t.elapsed().as_secs_f64(),
    ));
    // The insiders leave politely; the rest of the corpus runs with two participants.
    for attacker in insiders.iter_mut() {
        let _trying = Trying(format!("{} insider leaving", attacker.name()));
        attacker
            .send_sio(&event_packet("leave-room", &Value::Null, None))
            .await;
        loop {
            if attacker
                .next_reply("leave")
                .await
                .event_arg("left-room")
                .is_some()
            {
                break;
            }
        }
        for c in [&mut witness.bystander, &mut witness.speaker] {
            c.expect("user-left").await;
            c.expect("participants-updated").await;
        }
    }
    witness.counts = (1, 2);
    witness.room_size = 2;
    witness.check("insiders left").await;
    drop(insiders);

    // 2. Packet attacks over WebSocket, from a connection in no room.
    let t = Instant::now();
    let mut ws_inputs: Vec<Garbage> = sio_garbage().into_iter().map(Garbage::Text).collect();
    ws_inputs.extend(ws_only_garbage());
    let mut ws_tally = Tally::default();
    let mut outsider: Option<RawWs> = None;
    for (i, input) in ws_inputs.iter().enumerate() {
        let label = format!("websocket packet attack #{i}: {}", label_of(input));
        let _trying = Trying(label.clone());
        let ws = match outsider.as_mut() {
            Some(ws) => ws,
            None => outsider.insert(RawWs::connect(addr).await),
        };
        let sent = match input {
            Garbage::Text(t) => ws.send_text(t).await,
            Garbage::Bytes(b) => ws.send(Message::binary(b.clone())).await,
            Garbage::Frames(frames) => {
                let mut r = Ok(());
                for f in frames {
                    r = r.and(ws.send(f.clone()).await);
                }
                r
            }
        };
        let alive = sent.is_ok() && probe_ws(ws, 1 + i as i64, &label, &mut ws_tally).await;
        if !alive {
            outsider = None;
        }
        witness.check(&label).await;
        tried += 1;
    }
    per_group.push((
        "packet attacks over websocket".into(),
        ws_inputs.len(),
        t.elapsed().as_secs_f64(),
    ));

    // 3. Packet attacks over polling: the same texts as POST bodies, and polling specials.
    let t = Instant::now();
    let mut poll_inputs: Vec<Garbage> = sio_garbage()
        .into_iter()
        .filter(|t| t.len() < 100_000)
        .map(Garbage::Text)
        .collect();
    poll_inputs.extend(polling_only_garbage());
    let mut poll_tally = Tally::default();
    let mut post_statuses = std::collections::BTreeMap::<u16, usize>::new();
    let mut outsider: Option<RawPolling> = None;
    for (i, input) in poll_inputs.iter().enumerate() {
        let label = format!("polling packet attack #{i}: {}", label_of(input));
        let _trying = Trying(label.clone());
        let p = match outsider.as_mut() {
            Some(p) => p,
            None => outsider.insert(RawPolling::connect(addr).await),
        };
        let status = match input {
            Garbage::Text(t) => p.post(t.clone()).await,
            Garbage::Bytes(b) => p.post(b.clone()).await,
            Garbage::Frames(_) => unreachable!("websocket only"),
        };
        assert!(status < 500, "{label}: HTTP {status}");
        *post_statuses.entry(status).or_default() += 1;
        let alive = probe_polling(p, 1 + i as i64, &label, &mut poll_tally).await;
        if !alive {
            outsider = None;
        }
        witness.check(&label).await;
        tried += 1;
    }
    per_group.push((
        "packet attacks over polling".into(),
        poll_inputs.len(),
        t.elapsed().as_secs_f64(),
    ));

    // 4. HTTP requests no client sends, against the Engine.IO endpoint and the REST API.
    let t = Instant::now();
    let victim = RawPolling::connect(addr).await;
    let requests = http_garbage(&victim.eio_sid);
    let mut http_statuses = std::collections::BTreeMap::<u16, usize>::new();
    // A client of its own, without connection reuse: a connection the server answered early
    // (before reading a huge body) must not be handed to the witness's next request.
    let attack_http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .expect("HTTP client");
    for (i, (method, path, body)) in requests.iter().enumerate() {
        let label = format!("HTTP attack #{i}: {method} {:.80}", path);
        let _trying = Trying(label.clone());
        let response = tokio::time::timeout(
            WAIT,
            attack_http
                .request(method.clone(), witness.server.url(path))
                .body(body.clone())
                .send(),
        )
        .await
        .unwrap_or_else(|_| panic!("{label}: no answer in time"))
        .unwrap_or_else(|e| panic!("{label}: {e}"));
        let status = response.status().as_u16();
        assert!(status < 500, "{label}: HTTP {status}");
        *http_statuses.entry(status).or_default() += 1;
        witness.check(&label).await;
        tried += 1;
    }
    per_group.push((
        "HTTP attacks".into(),
        requests.len(),
        t.elapsed().as_secs_f64(),
    ));
    drop(victim);

    // Nothing leaked: once the outsiders are gone, only the four participants stay connected.
    drop(outsider);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (_, health) = witness.server.get("/health").await;
        let connections = health["connections"].as_u64().expect("connections");
        if connections == 4 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/health still shows {connections} connections, expected the 4 participants"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    witness.check("the end").await;

    println!("=== bad-input corpus ===");
    for (group, n, secs) in &per_group {
        println!("{group}: {n} inputs in {secs:.1} s");
    }
    println!(
        "websocket packet attacks: connection survived {} / closed by the server {}; error codes seen {:?}",
        ws_tally.survived, ws_tally.closed, ws_tally.errors
    );
    println!(
        "polling packet attacks: session survived {} / closed by the server {}; POST statuses {:?}; error codes seen {:?}",
        poll_tally.survived, poll_tally.closed, post_statuses, poll_tally.errors
    );
    println!("HTTP attacks: statuses {http_statuses:?}");
    println!(
        "bad inputs tried: {tried} (in {:.1} s)",
        started.elapsed().as_secs_f64()
    );
    assert!(tried >= 200, "only {tried} inputs");
}
