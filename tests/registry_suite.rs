//! The room registry suite: every scenario runs against both backends through the facade
//! (`Registry::Memory` and `Registry::Redis`), so the Redis registry of cluster mode is held
//! to exactly the outcomes of the in-memory one. The Redis-only tests at the end cover what
//! only a shared store has: concurrent instances, reaping a dead instance, outages and
//! malformed data.
//!
//! Redis tests share one private `redis-server` (started by the first test that needs it,
//! stopped with the last) and keep apart by a unique key prefix each. Without `redis-server`
//! installed they are skipped, unless `CI` is set.

#[path = "common/redis.rs"]
mod redis_server;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::ops::Deref;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use prolitemeet_server::cluster::bus::Bus;
use prolitemeet_server::model::{Connection, MediaKind};
use prolitemeet_server::protocol::{ErrorCode, JoinRequest, MediaChange, ProtocolError};
use prolitemeet_server::registry::Registry;
use prolitemeet_server::registry::events::{Batch, Change, Event};
use prolitemeet_server::registry::redis::RedisRegistry;
use prolitemeet_server::registry::{
    JoinOutcome, Joined, LeaveReason, Left, Limits, MemoryRegistry,
};
use redis_server::RedisServer;
use tokio::sync::mpsc;

/// Whoever makes rooms in these tests: one address, never limited.
const LOCAL: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST);
const ANYONE: prolitemeet_server::registry::Creator = prolitemeet_server::registry::Creator {
    address: LOCAL,
    may_create: true,
};

/// How long a state that must come (a sweep after a TTL, a reap) may take to come.
const WAIT: Duration = Duration::from_secs(6);
const POLL: Duration = Duration::from_millis(25);

// =============================================================================================
// Backends
// =============================================================================================

#[derive(Debug, Clone, Copy)]
enum Backend {
    Memory,
    Redis,
}

/// A registry under test, the batches it announces (received over pub/sub for Redis), and
/// the Redis server it uses kept alive.
struct Store {
    registry: Registry,
    batches: tokio::sync::Mutex<mpsc::UnboundedReceiver<Batch>>,
    _bus: Option<Bus>,
    _redis: Option<Arc<RedisServer>>,
}

impl Store {
    /// The next batch announced, within `WAIT`.
    async fn next_batch(&self) -> Batch {
        let mut batches = self.batches.lock().await;
        tokio::time::timeout(WAIT, batches.recv())
            .await
            .expect("a batch in time")
            .expect("the inbox is open")
    }

    /// The next `n` events announced, in order, whatever batches they came in, with the
    /// ticket of the batch each came in.
    async fn next_events(&self, n: usize) -> Vec<(Event, Option<u64>)> {
        let mut events = Vec::new();
        while events.len() < n {
            let batch = self.next_batch().await;
            assert_eq!(&*batch.origin.instance, "instance-1");
            let ticket = batch.origin.ticket;
            events.extend(batch.events.into_iter().map(|e| (e, ticket)));
        }
        assert_eq!(events.len(), n, "more events than expected: {events:?}");
        events
    }
}

impl Deref for Store {
    type Target = Registry;
    fn deref(&self) -> &Registry {
        &self.registry
    }
}

/// The `redis-server` the tests share while any of them runs; `None` if it is not installed.
fn shared_redis() -> Option<Arc<RedisServer>> {
    // A Weak, not a static server: the last test to finish drops it, so no child outlives us.
    static SHARED: Mutex<Weak<RedisServer>> = Mutex::new(Weak::new());
    let mut slot = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(server) = slot.upgrade() {
        return Some(server);
    }
    let server = Arc::new(RedisServer::start()?);
    *slot = Arc::downgrade(&server);
    Some(server)
}

/// A key prefix no other test uses.
fn unique_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

async fn connect_redis(
    server: &RedisServer,
    limits: Limits,
    prefix: &str,
    instance: &str,
) -> RedisRegistry {
    let client = redis::Client::open(server.url()).expect("redis url");
    RedisRegistry::connect(&client, limits, prefix, instance.into())
        .await
        .expect("connect to the test redis")
}

/// A subscriber to what `registry` publishes, as an instance has.
async fn subscribe(
    server: &RedisServer,
    registry: &RedisRegistry,
) -> (Bus, mpsc::UnboundedReceiver<Batch>) {
    let (inbox, batches) = mpsc::unbounded_channel();
    let client =
        prolitemeet_server::registry::redis::connection::client(&server.url()).expect("url");
    let bus = Bus::connect(&client, registry.channels(), inbox)
        .await
        .expect("subscribe to the test redis");
    (bus, batches)
}

/// The registry of `backend` with `limits`; `None` when Redis is wanted but not installed.
async fn open(backend: Backend, limits: Limits) -> Option<Store> {
    match backend {
        Backend::Memory => {
            let (inbox, batches) = mpsc::unbounded_channel();
            Some(Store {
                registry: Registry::Memory(MemoryRegistry::new(limits, inbox, "instance-1".into())),
                batches: batches.into(),
                _bus: None,
                _redis: None,
            })
        }
        Backend::Redis => {
            let server = shared_redis()?;
            let redis = connect_redis(&server, limits, &unique_prefix(), "instance-1").await;
            let (bus, batches) = subscribe(&server, &redis).await;
            Some(Store {
                registry: Registry::Redis(redis),
                batches: batches.into(),
                _bus: Some(bus),
                _redis: Some(server),
            })
        }
    }
}

/// Runs a scenario against both backends, as two tests: `<scenario>::memory` and
/// `<scenario>::redis`.
macro_rules! both_backends {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            #[tokio::test]
            async fn memory() {
                super::$scenario(super::Backend::Memory).await;
            }

            #[tokio::test]
            async fn redis() {
                super::$scenario(super::Backend::Redis).await;
            }
        }
    )*};
}

both_backends!(
    first_joiner_is_host_and_host_passes_on,
    rejoining_makes_a_new_last_participant,
    joining_the_same_room_changes_nothing,
    switching_rooms_leaves_the_old_one,
    a_full_room_refuses_and_the_socket_stays,
    the_room_cap_counts_created_and_joined_rooms,
    chat_history_is_oldest_first_and_capped,
    chat_history_limit_zero_keeps_nothing,
    events_from_outside_a_room_are_refused,
    relays_stay_within_a_room,
    media_and_screen_share_flags_show_in_the_views,
    empty_room_goes_at_once_with_zero_ttl,
    empty_room_stays_until_its_ttl_then_is_swept,
    unused_created_room_is_swept_after_its_ttl,
    closing_a_room_removes_everyone_and_its_history,
    stats_summaries_and_detail_describe_the_rooms,
    every_change_is_announced_in_order,
    a_closed_room_and_a_kick_are_announced,
    rooms_are_made_only_when_allowed_and_within_the_address_share,
    chat_history_is_bounded_in_bytes_per_room_and_in_all,
    a_room_is_announced_as_it_opens_and_as_it_goes,
    a_host_by_token_goes_first_in_join_order,
    a_reconnecting_participant_keeps_its_place_and_state,
    chat_sent_at_once_keeps_each_outcome_and_its_order,
);

// =============================================================================================
// Helpers
// =============================================================================================

fn limits() -> Limits {
    Limits {
        max_participants: 50,
        chat_history_limit: 3,
        chat_history_bytes: usize::MAX,
        chat_history_total_bytes: usize::MAX,
        empty_room_ttl: Duration::from_secs(300),
        unused_room_ttl: Duration::from_secs(600),
        max_rooms: 0,
        max_rooms_per_address: 0,
        connection_states: false,
    }
}

fn req(room: &str, name: &str) -> JoinRequest {
    JoinRequest {
        room_id: room.into(),
        user_name: name.into(),
        avatar: None,
        password: None,
        host: false,
    }
}

/// Joins and expects a new join (not `AlreadyIn`).
async fn join(r: &Registry, socket: &str, room: &str, name: &str) -> (Option<Left>, Joined) {
    match r.join(socket, &req(room, name), ANYONE, None).await {
        Ok(JoinOutcome::Joined { left, joined }) => (left, joined),
        Ok(other) => panic!("{socket} did not join {room}: {other:?}"),
        Err(e) => panic!("{socket} could not join {room}: {e:?}"),
    }
}

fn ids<'a>(
    views: impl IntoIterator<Item = &'a prolitemeet_server::model::ParticipantView>,
) -> Vec<String> {
    views.into_iter().map(|p| p.id.to_string()).collect()
}

/// Only the first participant is host.
fn assert_host_first(views: &[prolitemeet_server::model::ParticipantView]) {
    for (i, p) in views.iter().enumerate() {
        assert_eq!(p.is_admin, i == 0, "{} at {i}", p.id);
    }
}

fn code<T: std::fmt::Debug>(result: Result<T, ProtocolError>) -> ErrorCode {
    result.expect_err("expected a refusal").code
}

/// Polls `check` until it returns `Some`, failing after [`WAIT`].
async fn eventually<T, F: Future<Output = Option<T>>>(
    what: &str,
    mut check: impl FnMut() -> F,
) -> T {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {WAIT:?}");
        tokio::time::sleep(POLL).await;
    }
}

// =============================================================================================
// Scenarios for both backends
// =============================================================================================

async fn first_joiner_is_host_and_host_passes_on(backend: Backend) {
    let Some(r) = open(backend, limits()).await else {
        return;
    };
    let (left, a) = join(&r, "a", "R", "Ann").await;
    assert!(left.is_none());
    assert!(a.created_room && a.me.is_admin);
    assert_eq!(&*a.room_id, "R");
    let (_, b) = join(&r, "b", "R", "Bob").await;
    assert!(!b.created_room && !b.me.is_admin);
    assert_eq!(&*b.me.user_name, "Bob");
    let (_, c) = join(&r, "c", "R", "Cat").await;
    assert_eq!(ids(&c.participants), ["a", "b", "c"]);
    assert_host_first(&c.participants);

    let left = r
        .leave("a", LeaveReason::Left, None)
        .await
        .unwrap()
        .expect("a was in R");
    assert_eq!(&*left.room_id, "R");
    assert_eq!(&*left.participant.user_name, "Ann");
    assert_eq!(&*left.participant.id, "a");
    assert_eq!(ids(&left.participants), ["b", "c"]);
    assert_host_first(&left.participants);
    assert!(!left.room_removed);
    assert!(
        r.leave("a", LeaveReason::Left, None)
            .await
            .unwrap()
            .is_none(),
        "a left twice"
    );
    assert_eq!(r.stats().await.unwrap(), (1, 2));

    let left = r
        .leave("b", LeaveReason::Left, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&left.participants), ["c"]);
    assert!(left.participants[0].is_admin);
}

async fn rejoining_makes_a_new_last_participant(backend: Backend) {
    let Some(r) = open(backend, limits()).await else {
        return;
    };
    join(&r, "a", "R", "Ann").await;
    join(&r, "b", "R", "Bob").await;
    r.leave("a", LeaveReason::Left, None).await.unwrap();
    let (_, again) = join(&r, "a", "R", "Ann").await;
    assert!(!again.me.is_admin && !again.created_room);
    assert_eq!(ids(&again.participants), ["b", "a"]);
    assert_host_first(&again.participants);
}

async fn joining_the_same_room_changes_nothing(backend: Backend) {
    let Some(r) = open(backend, limits()).await else {
        return;
    };
    join(&r, "a", "R", "Ann").await;
    join(&r, "b", "R", "Bob").await;
    r.chat("a", None, "hello", None).await.unwrap();
    match r.join("b", &req("R", "Other"), ANYONE, None).await.unwrap() {
        JoinOutcome::AlreadyIn(j) => {
            assert_eq!(&*j.me.user_name, "Bob");
            assert!(!j.me.is_admin && !j.created_room);
            assert_eq!(ids(&j.participants), ["a", "b"]);
            assert_eq!(j.messages.len(), 1);
        }
        other => panic!("joined twice: {other:?}"),
    }
    assert_eq!(r.stats().await.unwrap(), (1, 2));
}

async fn switching_rooms_leaves_the_old_one(backend: Backend) {
    let Some(r) = open(backend, limits()).await else {
        return;
    };
    join(&r, "a", "R1", "Ann").await;
    join(&r, "b", "R1", "Bob").await;
    let (left, j) = join(&r, "a", "R2", "Ann").await;
    let left = left.expect("a left R1");
    assert_eq!(&*left.room_id, "R1");
    assert_eq!(&*left.participant.id, "a");
    assert_eq!(ids(&left.participants), ["b"]);
    assert!(left.participants[0].is_admin && !left.room_removed);
    assert_eq!(&*j.room_id, "R2");
    assert!(j.created_room && j.me.is_admin);
    assert_eq!(
        r.room_info("R1").await.unwrap().unwrap().participant_count,
        1
    );
    assert_eq!(r.current_room("a", None).await.unwrap().as_ref(), "R2");
    assert_eq!(r.stats().await.unwrap(), (2, 2));

    // The last one out of a room with a zero TTL: the room goes as it switches.
    let Some(r) = open(
        backend,
        Limits {
            empty_room_ttl: Duration::ZERO,
            ..limits()
        },
    )
    .await
    else {
        return;
    };
    join(&r, "a", "R1", "Ann").await;
    let (left, _) = join(&r, "a", "R2", "Ann").await;
    let left = left.unwrap();
    assert!(left.room_removed && left.participants.is_empty());
    assert!(r.room_info("R1").await.unwrap().is_none());
    assert_eq!(r.stats().await.unwrap(), (1, 1));
}

async fn a_full_room_refuses_and_the_socket_stays(backend: Backend) {
    let Some(r) = open(
        backend,
        Limits {
            max_participants: 1,
            ..limits()
        },
    )
    .await
    else {
        return;
    };
    join(&r, "a", "R1", "Ann").await;
    join(&r, "b", "R2", "Bob").await;
    let err = r
        .join("b", &req("R1", "Bob"), ANYONE, None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::RoomFull);
    assert_eq!(err.message, "Room R1 is full (1 participants at most)");
    assert_eq!(r.current_room("b", None).await.unwrap().as_ref(), "R2");
    assert_eq!(
        r.room_info("R2").await.unwrap().unwrap().participant_count,
        1
    );
    assert_eq!(
        ids(&r.detail("R1").await.unwrap().unwrap().participants),
        ["a"]
    );
    // A newcomer is refused too, and is then in no room.
    assert_eq!(
        code(r.join("c", &req("R1", "Cat"), ANYONE, None).await),
        ErrorCode::RoomFull
    );
    assert_eq!(code(r.current_room("c", None).await), ErrorCode::NotInRoom);
    assert_eq!(r.stats().await.unwrap(), (2, 2));
}

async fn the_room_cap_counts_created_and_joined_rooms(backend: Backend) {
    let cap = Limits {
        max_rooms: 2,
        empty_room_ttl: Duration::ZERO,
        ..limits()
    };
    let Some(r) = open(backend, cap).await else {
        return;
    };
    r.create_room(LOCAL).await.unwrap();
    join(&r, "a", "R", "Ann").await;
    let err = r.create_room(LOCAL).await.unwrap_err();
    assert_eq!(err.code, ErrorCode::TooManyRooms);
    assert_eq!(
        err.message,
        "The server has reached its room limit; try again later"
    );
    assert_eq!(
        code(r.join("b", &req("R2", "Bob"), ANYONE, None).await),
        ErrorCode::TooManyRooms
    );
    // The cap is checked before the old room is left: a switch to a new room is refused
    // even when leaving would free one, and the socket stays.
    assert_eq!(
        code(r.join("a", &req("R3", "Ann"), ANYONE, None).await),
        ErrorCode::TooManyRooms
    );
    assert_eq!(r.current_room("a", None).await.unwrap().as_ref(), "R");
    join(&r, "b", "R", "Bob").await;
    r.leave("a", LeaveReason::Left, None).await.unwrap();
    let left = r
        .leave("b", LeaveReason::Left, None)
        .await
        .unwrap()
        .unwrap();
    assert!(left.room_removed);
    assert_eq!(r.stats().await.unwrap(), (1, 0));
    join(&r, "c", "R3", "Cat").await;
    assert_eq!(r.stats().await.unwrap(), (2, 1));
}

async fn chat_history_is_oldest_first_and_capped(backend: Backend) {
    let Some(r) = open(backend, limits()).await else {
        return;
    };
    let ann = JoinRequest {
        avatar: Some("https://example.com/ann.png".into()),
        ..req("R", "Ann")
    };
    r.join("a", &ann, ANYONE, None).await.unwrap();
    for i in 0..5 {
        let said = r
            .chat("a", Some("R"), &format!("m{i} \"quoted\" é/😀"), None)
            .await
            .unwrap();
        assert_eq!(&*said.room_id, "R");
        let m = said.message;
        assert_eq!(&*m.user_name, "Ann");
        assert_eq!(&*m.sender_id, "a");
        assert_eq!(
            m.user_avatar.as_deref(),
            Some("https://example.com/ann.png")
        );
        assert_eq!(&*m.message, format!("m{i} \"quoted\" é/😀"));
        assert_eq!(m.id.len(), 36, "a v4 uuid: {}", m.id);
    }
    let (_, j) = join(&r, "b", "R", "Bob").await;
    let texts: Vec<_> = j.messages.iter().map(|m| m.message.to_string()).collect();
    assert_eq!(
        texts,
        [
            "m2 \"quoted\" é/😀",
            "m3 \"quoted\" é/😀",
            "m4 \"quoted\" é/😀"
        ]
    );
    assert!(
        j.messages
            .windows(2)
            .all(|w| w[0].timestamp <= w[1].timestamp)
    );
    let said = r.chat("b", None, "from bob", None).await.unwrap().message;
    assert_eq!(said.user_avatar, None);
    let detail = r.detail("R").await.unwrap().unwrap();
    assert_eq!(detail.summary.message_count, 3);
}

async fn chat_history_limit_zero_keeps_nothing(backend: Backend) {
    let Some(r) = open(
        backend,
        Limits {
            chat_history_limit: 0,
            chat_history_bytes: usize::MAX,
            chat_history_total_bytes: usize::MAX,
            ..limits()
        },
    )
    .await
    else {
        return;
    };
    join(&r, "a", "R", "Ann").await;
    let said = r.chat("a", None, "hi", None).await.unwrap();
    assert_eq!(&*said.message.message, "hi");
    let (_, j) = join(&r, "b", "R", "Bob").await;
    assert!(j.messages.is_empty());
    assert_eq!(
        r.detail("R").await.unwrap().unwrap().summary.message_count,
        0
    );
}

async fn events_from_outside_a_room_are_refused(backend: Backend) {
    let Some(r) = open(backend, limits()).await else {
        return;
    };
    let audio_off = MediaChange {
        kind: MediaKind::Audio,
        enabled: false,
    };
    // In no room at all.
    assert_eq!(code(r.current_room("z", None).await), ErrorCode::NotInRoom);
    assert_eq!(
        code(r.chat("z", None, "hi", None).await),
        ErrorCode::NotInRoom
    );
    assert_eq!(
        code(r.relay_room("z", None, "a").await),
        ErrorCode::NotInRoom
    );
    assert_eq!(
        code(r.set_media("z", None, audio_off, None).await),
        ErrorCode::NotInRoom
    );
    assert_eq!(
        code(r.set_screen_sharing("z", None, true, None).await),
        ErrorCode::NotInRoom
    );
    let err = r.chat("z", None, "hi", None).await.unwrap_err();
    assert_eq!(err, ProtocolError::not_in_room());

    // In a room, but naming another.
    join(&r, "a", "R", "Ann").await;
    join(&r, "b", "R", "Bob").await;
    assert_eq!(
        code(r.current_room("a", Some("X")).await),
        ErrorCode::NotInRoom
    );
    assert_eq!(
        code(r.current_room("a", Some("")).await),
        ErrorCode::NotInRoom
    );
    assert_eq!(
        code(r.chat("a", Some("X"), "hi", None).await),
        ErrorCode::NotInRoom
    );
    assert_eq!(
        code(r.relay_room("a", Some("X"), "b").await),
        ErrorCode::NotInRoom
    );
    assert_eq!(
        code(r.set_media("a", Some("X"), audio_off, None).await),
        ErrorCode::NotInRoom
    );
    assert_eq!(
        code(r.set_screen_sharing("a", Some("X"), true, None).await),
        ErrorCode::NotInRoom
    );
    assert_eq!(r.current_room("a", Some("R")).await.unwrap().as_ref(), "R");

    // After leaving.
    r.leave("a", LeaveReason::Left, None).await.unwrap();
    assert_eq!(
        code(r.chat("a", Some("R"), "hi", None).await),
        ErrorCode::NotInRoom
    );
    assert_eq!(
        code(r.relay_room("a", None, "b").await),
        ErrorCode::NotInRoom
    );
}

async fn relays_stay_within_a_room(backend: Backend) {
    let Some(r) = open(backend, limits()).await else {
        return;
    };
    join(&r, "a", "R1", "Ann").await;
    join(&r, "b", "R1", "Bob").await;
    join(&r, "c", "R2", "Cat").await;
    assert_eq!(r.relay_room("a", None, "b").await.unwrap().as_ref(), "R1");
    assert_eq!(
        r.relay_room("b", Some("R1"), "a").await.unwrap().as_ref(),
        "R1"
    );
    let err = r.relay_room("a", None, "c").await.unwrap_err();
    assert_eq!(err.code, ErrorCode::TargetNotInRoom);
    assert_eq!(err.message, "The target is not a participant of your room");
    assert_eq!(
        code(r.relay_room("a", None, "nobody").await),
        ErrorCode::TargetNotInRoom
    );
    r.leave("b", LeaveReason::Left, None).await.unwrap();
    assert_eq!(
        code(r.relay_room("a", None, "b").await),
        ErrorCode::TargetNotInRoom
    );
}

async fn media_and_screen_share_flags_show_in_the_views(backend: Backend) {
    let Some(r) = open(backend, limits()).await else {
        return;
    };
    join(&r, "a", "R", "Ann").await;
    join(&r, "b", "R", "Bob").await;
    let audio_off = MediaChange {
        kind: MediaKind::Audio,
        enabled: false,
    };
    let u = r.set_media("b", None, audio_off, None).await.unwrap();
    assert_eq!(&*u.room_id, "R");
    assert_eq!(&*u.participant.id, "b");
    assert!(u.participant.is_audio_muted && !u.participant.is_audio_enabled);
    assert!(!u.participant.is_admin);
    assert_eq!(ids(&u.participants), ["a", "b"]);
    assert_host_first(&u.participants);
    assert!(!u.participants[0].is_audio_muted);

    let video_off = MediaChange {
        kind: MediaKind::Video,
        enabled: false,
    };
    let u = r.set_media("b", Some("R"), video_off, None).await.unwrap();
    assert!(u.participant.is_video_off && !u.participant.is_video_enabled);
    assert!(u.participant.is_audio_muted, "the audio flag stays");
    let u = r.set_screen_sharing("b", None, true, None).await.unwrap();
    assert!(u.participant.is_screen_sharing && u.participant.is_video_off);

    let (_, c) = join(&r, "c", "R", "Cat").await;
    let b = &c.participants[1];
    assert!(b.is_audio_muted && b.is_video_off && b.is_screen_sharing);
    assert!(!c.me.is_audio_muted && !c.me.is_video_off && !c.me.is_screen_sharing);

    let video_on = MediaChange {
        kind: MediaKind::Video,
        enabled: true,
    };
    let u = r.set_media("b", None, video_on, None).await.unwrap();
    assert!(!u.participant.is_video_off && u.participant.is_video_enabled);
    let u = r.set_screen_sharing("b", None, false, None).await.unwrap();
    assert!(!u.participant.is_screen_sharing && u.participant.is_audio_muted);
    let detail = r.detail("R").await.unwrap().unwrap();
    assert!(detail.participants[1].is_audio_muted && !detail.participants[1].is_video_off);
}

async fn empty_room_goes_at_once_with_zero_ttl(backend: Backend) {
    let Some(r) = open(
        backend,
        Limits {
            empty_room_ttl: Duration::ZERO,
            ..limits()
        },
    )
    .await
    else {
        return;
    };
    join(&r, "a", "R", "Ann").await;
    r.chat("a", None, "hi", None).await.unwrap();
    let left = r
        .leave("a", LeaveReason::Left, None)
        .await
        .unwrap()
        .unwrap();
    assert!(left.room_removed && left.participants.is_empty());
    assert_eq!(r.stats().await.unwrap(), (0, 0));
    assert!(r.room_info("R").await.unwrap().is_none());
    assert!(r.sweep().await.unwrap().is_empty());
    let (_, j) = join(&r, "a", "R", "Ann").await;
    assert!(
        j.created_room && j.messages.is_empty(),
        "history went with the room"
    );
}

async fn empty_room_stays_until_its_ttl_then_is_swept(backend: Backend) {
    let ttl = Duration::from_secs(1);
    let Some(r) = open(
        backend,
        Limits {
            empty_room_ttl: ttl,
            ..limits()
        },
    )
    .await
    else {
        return;
    };
    join(&r, "a", "R", "Ann").await;
    r.chat("a", None, "kept", None).await.unwrap();
    let left_at = Instant::now();
    let left = r
        .leave("a", LeaveReason::Left, None)
        .await
        .unwrap()
        .unwrap();
    assert!(!left.room_removed && left.participants.is_empty());
    assert!(r.sweep().await.unwrap().is_empty(), "swept before its TTL");
    assert_eq!(
        r.room_info("R").await.unwrap().unwrap().participant_count,
        0
    );
    assert_eq!(r.stats().await.unwrap(), (1, 0));

    // Coming back within the TTL finds the room and its history.
    let (_, j) = join(&r, "a", "R", "Ann").await;
    assert!(!j.created_room);
    assert_eq!(j.messages.len(), 1);
    let left_at_again = Instant::now();
    r.leave("a", LeaveReason::Left, None).await.unwrap();

    let swept = eventually("the empty room is swept", || async {
        let swept = r.sweep().await.unwrap();
        (!swept.is_empty()).then_some(swept)
    })
    .await;
    assert!(
        left_at.elapsed() >= ttl && left_at_again.elapsed() >= ttl,
        "swept too early"
    );
    assert_eq!(swept.iter().map(|s| s.as_ref()).collect::<Vec<_>>(), ["R"]);
    assert!(r.room_info("R").await.unwrap().is_none());
    assert_eq!(r.stats().await.unwrap(), (0, 0));
}

async fn unused_created_room_is_swept_after_its_ttl(backend: Backend) {
    let ttl = Duration::from_secs(1);
    let Some(r) = open(
        backend,
        Limits {
            unused_room_ttl: ttl,
            ..limits()
        },
    )
    .await
    else {
        return;
    };
    let used = r.create_room(LOCAL).await.unwrap();
    let unused = r.create_room(LOCAL).await.unwrap();
    let created_at = Instant::now();
    for info in [&used, &unused] {
        assert_eq!(info.room_id.len(), 8);
        assert!(
            info.room_id
                .chars()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        );
        assert_eq!(info.participant_count, 0);
    }
    assert_ne!(used.room_id, unused.room_id);
    let info = r.room_info(&unused.room_id).await.unwrap().unwrap();
    assert_eq!(info.created_at, unused.created_at);
    assert!(r.sweep().await.unwrap().is_empty(), "swept before its TTL");
    let (_, j) = join(&r, "a", &used.room_id, "Ann").await;
    assert!(!j.created_room && j.me.is_admin);

    let swept = eventually("the unused room is swept", || async {
        let swept = r.sweep().await.unwrap();
        (!swept.is_empty()).then_some(swept)
    })
    .await;
    assert!(created_at.elapsed() >= ttl, "swept too early");
    assert_eq!(swept, vec![unused.room_id.clone()]);
    // The joined room was made first, so its unused deadline passed too: occupied, it stays.
    assert!(r.room_info(&used.room_id).await.unwrap().is_some());
    assert_eq!(r.stats().await.unwrap(), (1, 1));
}

async fn closing_a_room_removes_everyone_and_its_history(backend: Backend) {
    let Some(r) = open(backend, limits()).await else {
        return;
    };
    join(&r, "a", "R", "Ann").await;
    join(&r, "b", "R", "Bob").await;
    join(&r, "c", "S", "Cat").await;
    r.chat("a", None, "hi", None).await.unwrap();
    let gone = r.close_room("R", None).await.unwrap().expect("R existed");
    let gone: Vec<_> = gone
        .iter()
        .map(|p| (p.id.to_string(), p.user_name.to_string()))
        .collect();
    assert_eq!(
        gone,
        [("a".into(), "Ann".into()), ("b".into(), "Bob".into())]
    );
    assert_eq!(r.stats().await.unwrap(), (1, 1));
    assert_eq!(code(r.current_room("a", None).await), ErrorCode::NotInRoom);
    assert!(
        r.leave("b", LeaveReason::Left, None)
            .await
            .unwrap()
            .is_none()
    );
    assert!(r.close_room("R", None).await.unwrap().is_none());
    assert!(r.room_info("R").await.unwrap().is_none());
    let (left, j) = join(&r, "a", "R", "Ann").await;
    assert!(left.is_none());
    assert!(j.messages.is_empty() && j.created_room);
    assert_eq!(r.current_room("c", None).await.unwrap().as_ref(), "S");
}

async fn stats_summaries_and_detail_describe_the_rooms(backend: Backend) {
    let Some(r) = open(backend, limits()).await else {
        return;
    };
    assert_eq!(r.stats().await.unwrap(), (0, 0));
    assert!(r.summaries().await.unwrap().is_empty());
    assert!(r.detail("R").await.unwrap().is_none());
    assert!(r.room_info("R").await.unwrap().is_none());

    join(&r, "a", "R", "Ann").await;
    join(&r, "b", "R", "Bob").await;
    r.chat("b", None, "hi", None).await.unwrap();
    // Creation times are kept to the millisecond: space the rooms so their order is known.
    tokio::time::sleep(Duration::from_millis(5)).await;
    let created = r.create_room(LOCAL).await.unwrap();
    tokio::time::sleep(Duration::from_millis(5)).await;
    join(&r, "c", "S", "Cat").await;
    assert_eq!(r.stats().await.unwrap(), (3, 3));

    let summaries = r.summaries().await.unwrap();
    let order: Vec<_> = summaries.iter().map(|s| s.room_id.to_string()).collect();
    assert_eq!(
        order,
        ["R".to_string(), created.room_id.to_string(), "S".into()]
    );
    assert!(
        summaries
            .windows(2)
            .all(|w| w[0].created_at <= w[1].created_at)
    );
    let room = &summaries[0];
    assert_eq!((room.participant_count, room.message_count), (2, 1));
    let host = room.host.as_ref().expect("R has a host");
    assert!(host.is_admin && &*host.id == "a" && &*host.user_name == "Ann");
    assert!(summaries[1].host.is_none());
    assert_eq!(summaries[1].participant_count, 0);
    assert_eq!(summaries[1].created_at, created.created_at);

    let detail = r.detail("R").await.unwrap().unwrap();
    assert_eq!(&*detail.summary.room_id, "R");
    assert_eq!(detail.summary.created_at, room.created_at);
    assert_eq!(detail.summary.participant_count, 2);
    assert_eq!(detail.summary.host.as_ref().unwrap().id.as_ref(), "a");
    assert_eq!(ids(&detail.participants), ["a", "b"]);
    assert_host_first(&detail.participants);
    let info = r.room_info("R").await.unwrap().unwrap();
    assert_eq!((info.room_id.as_ref(), info.participant_count), ("R", 2));
    assert_eq!(info.created_at, room.created_at);
}

// =============================================================================================
// Redis only: several instances on one store
// =============================================================================================

/// Two registries (instances `i1`, `i2`) on one prefix of the shared server.
async fn two_instances(limits: Limits) -> Option<(Arc<RedisServer>, RedisRegistry, RedisRegistry)> {
    let server = shared_redis()?;
    let prefix = unique_prefix();
    let one = connect_redis(&server, limits.clone(), &prefix, "i1").await;
    let two = connect_redis(&server, limits, &prefix, "i2").await;
    Some((server, one, two))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_joins_on_two_instances_respect_max_participants() {
    let max = Limits {
        max_participants: 5,
        empty_room_ttl: Duration::ZERO,
        ..limits()
    };
    let Some((_server, one, two)) = two_instances(max).await else {
        return;
    };
    let instances = [
        Arc::new(Registry::Redis(one)),
        Arc::new(Registry::Redis(two)),
    ];
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let r = instances[i % 2].clone();
            tokio::spawn(async move {
                let socket = format!("s{i:02}");
                (
                    socket.clone(),
                    r.join(&socket, &req("R", &socket), ANYONE, None).await,
                )
            })
        })
        .collect();
    let mut admitted = BTreeSet::new();
    let mut hosts = BTreeSet::new();
    let mut full = 0;
    for task in tasks {
        let (socket, outcome) = task.await.unwrap();
        match outcome {
            Ok(JoinOutcome::Joined { left: None, joined }) => {
                assert_eq!(&*joined.participants.last().unwrap().id, socket);
                assert_host_first(&joined.participants);
                hosts.insert(joined.participants[0].id.to_string());
                admitted.insert(socket);
            }
            Err(e) if e.code == ErrorCode::RoomFull => full += 1,
            other => panic!("{socket}: {other:?}"),
        }
    }
    assert_eq!((admitted.len(), full), (5, 15));
    assert_eq!(hosts.len(), 1, "every joiner saw the same host: {hosts:?}");

    let [one, _] = &instances;
    let detail = one.detail("R").await.unwrap().unwrap();
    let present: BTreeSet<_> = detail
        .participants
        .iter()
        .map(|p| p.id.to_string())
        .collect();
    assert_eq!(present, admitted, "nobody lost, nobody extra");
    assert_eq!(
        detail.participants[0].id.to_string(),
        *hosts.first().unwrap()
    );
    assert_eq!(one.stats().await.unwrap(), (1, 5));

    // Everyone leaves at once, from both instances: the room goes exactly once.
    let leaves: Vec<_> = admitted
        .iter()
        .enumerate()
        .map(|(i, socket)| {
            let r = instances[i % 2].clone();
            let socket = socket.clone();
            tokio::spawn(async move { r.leave(&socket, LeaveReason::Left, None).await })
        })
        .collect();
    let mut removed = 0;
    for task in leaves {
        let left = task.await.unwrap().unwrap().expect("was in R");
        assert_host_first(&left.participants);
        removed += usize::from(left.room_removed);
    }
    assert_eq!(removed, 1);
    assert_eq!(one.stats().await.unwrap(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_room_creation_on_two_instances_respects_max_rooms() {
    let cap = Limits {
        max_rooms: 5,
        ..limits()
    };
    let Some((_server, one, two)) = two_instances(cap).await else {
        return;
    };
    let instances = [
        Arc::new(Registry::Redis(one)),
        Arc::new(Registry::Redis(two)),
    ];
    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let r = instances[i % 2].clone();
            tokio::spawn(async move {
                if i % 4 == 0 {
                    r.create_room(LOCAL).await.map(drop)
                } else {
                    r.join(&format!("s{i}"), &req(&format!("R{i}"), "X"), ANYONE, None)
                        .await
                        .map(drop)
                }
            })
        })
        .collect();
    let mut made = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => made += 1,
            Err(e) => assert_eq!(e.code, ErrorCode::TooManyRooms, "{e:?}"),
        }
    }
    assert_eq!(made, 5);
    assert_eq!(instances[0].stats().await.unwrap().0, 5);
    assert_eq!(instances[1].summaries().await.unwrap().len(), 5);
}

#[tokio::test]
async fn a_dead_instance_is_reaped_once_by_a_survivor() {
    let ttl0 = Limits {
        empty_room_ttl: Duration::ZERO,
        ..limits()
    };
    let Some(server) = shared_redis() else { return };
    let prefix = unique_prefix();
    let x = Registry::Redis(connect_redis(&server, ttl0.clone(), &prefix, "x").await);
    let y = connect_redis(&server, ttl0.clone(), &prefix, "y").await;
    let z = connect_redis(&server, ttl0, &prefix, "z").await;
    let Registry::Redis(x_store) = &x else {
        unreachable!()
    };
    assert_eq!(x_store.instance(), "x");
    assert!(
        !x_store.heartbeat().await.unwrap(),
        "a new instance was never reaped"
    );
    y.heartbeat().await.unwrap();
    y.ping().await.unwrap();

    join(&x, "x1", "R1", "X1").await;
    y.join("y1", &req("R1", "Y1"), ANYONE, None).await.unwrap();
    join(&x, "x2", "R1", "X2").await;
    join(&x, "x3", "R2", "X3").await;
    assert_eq!(y.stats().await.unwrap(), (2, 4));

    // x stops beating; y keeps beating and reaps x once x has been silent long enough.
    let dead_after = Duration::from_millis(300);
    let lefts = eventually("x is reaped", || async {
        y.heartbeat().await.unwrap();
        let lefts = y.reap_dead(dead_after).await.unwrap();
        (!lefts.is_empty()).then_some(lefts)
    })
    .await;

    let summary: Vec<_> = lefts
        .iter()
        .map(|l| {
            (
                l.room_id.to_string(),
                l.participant.id.to_string(),
                ids(&l.participants),
                l.room_removed,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "R1".into(),
                "x1".into(),
                vec!["y1".to_string(), "x2".into()],
                false
            ),
            ("R1".into(), "x2".into(), vec!["y1".to_string()], false),
            ("R2".into(), "x3".into(), vec![], true),
        ]
    );
    assert!(lefts[0].participants[0].is_admin, "y1 became host");
    assert_eq!(&*lefts[0].participant.user_name, "X1");
    assert_eq!(y.stats().await.unwrap(), (1, 1));
    assert_eq!(code(y.current_room("x1", None).await), ErrorCode::NotInRoom);
    let detail = y.detail("R1").await.unwrap().unwrap();
    assert_eq!(ids(&detail.participants), ["y1"]);
    assert!(detail.participants[0].is_admin);

    // Claimed once: neither another survivor nor y again gets anything.
    assert!(z.reap_dead(dead_after).await.unwrap().is_empty());
    assert!(y.reap_dead(dead_after).await.unwrap().is_empty());

    // x was only cut off: its next heartbeat learns it was declared dead (once), and the
    // survivors' beats never say so.
    assert!(x_store.heartbeat().await.unwrap(), "x learns it was reaped");
    assert!(!x_store.heartbeat().await.unwrap());
    assert!(!y.heartbeat().await.unwrap());
}

#[tokio::test]
async fn a_retried_leave_replays_a_leave_whose_answer_was_lost() {
    let Some(server) = shared_redis() else { return };
    let r = connect_redis(&server, limits(), &unique_prefix(), "x").await;
    r.join("a", &req("R", "Ann"), ANYONE, None).await.unwrap();
    r.join("b", &req("R", "Bob"), ANYONE, None).await.unwrap();
    // The first leave ran; say its answer never arrived.
    assert!(
        r.leave("b", LeaveReason::Left, None)
            .await
            .unwrap()
            .is_some()
    );
    let replayed = r
        .leave_again("b", LeaveReason::Disconnected)
        .await
        .unwrap()
        .expect("the lost Left");
    assert_eq!(&*replayed.room_id, "R");
    assert_eq!(&*replayed.participant.user_name, "Bob");
    assert_eq!(ids(&replayed.participants), ["a"]);
    assert!(!replayed.room_removed);
    // Replayed once; a plain leave never replays.
    assert!(
        r.leave_again("b", LeaveReason::Disconnected)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        r.leave("a", LeaveReason::Left, None)
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        r.leave("a", LeaveReason::Left, None)
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn live_instances_and_the_reaper_itself_are_never_reaped() {
    let Some(server) = shared_redis() else { return };
    let prefix = unique_prefix();
    let x = connect_redis(&server, limits(), &prefix, "x").await;
    let y = connect_redis(&server, limits(), &prefix, "y").await;
    let w = connect_redis(&server, limits(), &prefix, "w").await;
    x.join("x1", &req("R", "X1"), ANYONE, None).await.unwrap();
    y.join("y1", &req("R", "Y1"), ANYONE, None).await.unwrap();
    x.heartbeat().await.unwrap();
    y.heartbeat().await.unwrap();

    // Beating recently: not dead.
    assert!(
        y.reap_dead(Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        x.reap_dead(Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(y.stats().await.unwrap(), (1, 2));

    // Once both heartbeats are older than the threshold, each spares itself and takes the
    // other: only x beats, so only y is reaped, by x.
    let lefts = eventually("y is reaped by x", || async {
        x.heartbeat().await.unwrap();
        let lefts = x.reap_dead(Duration::from_millis(100)).await.unwrap();
        (!lefts.is_empty()).then_some(lefts)
    })
    .await;
    assert_eq!(lefts.len(), 1);
    assert_eq!(&*lefts[0].participant.id, "y1");
    assert_eq!(ids(&lefts[0].participants), ["x1"]);
    assert!(
        w.reap_dead(Duration::from_secs(60))
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(x.current_room("x1", None).await.unwrap().as_ref(), "R");
}

// =============================================================================================
// Redis only: failures
// =============================================================================================

#[tokio::test]
async fn an_unreachable_redis_fails_at_connect() {
    let port = redis_server::free_port();
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/?protocol=resp3")).unwrap();
    let started = Instant::now();
    let result = RedisRegistry::connect(&client, limits(), &unique_prefix(), "i".into()).await;
    assert!(result.is_err(), "connected to a closed port");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn an_outage_is_unavailable_then_the_store_recovers() {
    // Its own server: stopping the shared one would break the other tests.
    let Some(mut server) = RedisServer::start() else {
        return;
    };
    let store = connect_redis(&server, limits(), &unique_prefix(), "i").await;
    let r = Registry::Redis(store);
    join(&r, "a", "R", "Ann").await;

    server.stop();
    let started = Instant::now();
    assert!(r.stats().await.is_err());
    assert_eq!(
        code(r.join("b", &req("R", "Bob"), ANYONE, None).await),
        ErrorCode::Unavailable
    );
    assert_eq!(
        code(r.chat("a", None, "hi", None).await),
        ErrorCode::Unavailable
    );
    // Messages that queue up behind a failing call fail with it, not one deadline each.
    let (one, two, three) = tokio::join!(
        r.chat("a", None, "one", None),
        r.chat("a", None, "two", None),
        r.chat("a", None, "three", None)
    );
    for result in [one, two, three] {
        assert_eq!(code(result), ErrorCode::Unavailable);
    }
    assert_eq!(
        code(r.current_room("a", None).await),
        ErrorCode::Unavailable
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "took {:?}",
        started.elapsed()
    );

    // Redis comes back (empty, as this one keeps nothing on disk): calls work again.
    server.start_again();
    eventually("the registry reconnects", || async { r.stats().await.ok() }).await;
    let (_, j) = join(&r, "b", "R", "Bob").await;
    assert!(j.created_room && j.me.is_admin);
}

#[tokio::test]
async fn a_senders_chat_name_is_kept_exactly_while_it_is_in_the_room() {
    let Some(server) = shared_redis() else { return };
    let prefix = unique_prefix();
    let r = Registry::Redis(connect_redis(&server, limits(), &prefix, "i").await);
    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let senders = format!("{{{prefix}}}:senders:R");
    let ann = JoinRequest {
        avatar: Some("😀 \"a\"".into()),
        ..req("R", "Ann \"the\" first")
    };
    r.join("a", &ann, ANYONE, None).await.unwrap();
    join(&r, "b", "R", "Bob").await;
    let kept: HashMap<String, String> = redis::cmd("HGETALL")
        .arg(&senders)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert_eq!(
        kept,
        HashMap::from([
            (
                "a".into(),
                r#""userName":"Ann \"the\" first","userAvatar":"😀 \"a\"""#.into()
            ),
            ("b".into(), r#""userName":"Bob","userAvatar":null"#.into()),
        ])
    );
    let said = r.chat("a", None, "hi", None).await.unwrap().message;
    assert_eq!(
        (&*said.user_name, said.user_avatar.as_deref()),
        ("Ann \"the\" first", Some("😀 \"a\""))
    );
    r.leave("b", LeaveReason::Left, None).await.unwrap();
    let left: bool = redis::cmd("HEXISTS")
        .arg(&senders)
        .arg("b")
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(!left, "a leaver's name goes with it");
    assert_eq!(
        code(r.chat("b", Some("R"), "hi", None).await),
        ErrorCode::NotInRoom
    );
    r.close_room("R", None).await.unwrap();
    let exists: bool = redis::cmd("EXISTS")
        .arg(&senders)
        .query_async(&mut raw)
        .await
        .unwrap();
    assert!(!exists, "a closed room's names go with it");
}

#[tokio::test]
async fn malformed_values_in_redis_are_errors_not_panics() {
    let Some(server) = shared_redis() else { return };
    let prefix = unique_prefix();
    let r = Registry::Redis(connect_redis(&server, limits(), &prefix, "i").await);
    join(&r, "a", "R", "Ann").await;
    join(&r, "b", "R", "Bob").await;
    r.chat("a", None, "hi", None).await.unwrap();

    let client = redis::Client::open(server.url()).unwrap();
    let mut raw = client.get_multiplexed_async_connection().await.unwrap();
    let corrupt = |key: &str, field: &str, value: &str| {
        let mut cmd = redis::cmd("HSET");
        cmd.arg(format!("{{{prefix}}}:{key}")).arg(field).arg(value);
        cmd
    };
    corrupt("people:R", "a", "{not json")
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    assert!(r.detail("R").await.is_err());
    assert!(r.summaries().await.is_err());
    // Chat signs with the name kept beside the participant (`senders:R`), so it does not read
    // the participant; without that entry (a room older than it) it does.
    let said = r.chat("a", None, "hi", None).await.unwrap();
    assert_eq!(&*said.message.user_name, "Ann");
    let mut forget = redis::cmd("HDEL");
    forget.arg(format!("{{{prefix}}}:senders:R")).arg("a");
    forget.query_async::<()>(&mut raw).await.unwrap();
    assert_eq!(
        code(r.chat("a", None, "hi", None).await),
        ErrorCode::Unavailable
    );
    // Sent at once (one batch in cluster mode): the malformed sender's message fails alone.
    let (bad, good) = tokio::join!(
        r.chat("a", None, "hi", None),
        r.chat("b", None, "still here", None)
    );
    assert_eq!(code(bad), ErrorCode::Unavailable);
    assert_eq!(&*good.unwrap().message.message, "still here");
    // Valid JSON, but no name to sign the message with: that message alone fails too.
    corrupt("people:R", "a", r#"{"id":"a","userName":7}"#)
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    let (bad, good) = tokio::join!(
        r.chat("a", None, "hi", None),
        r.chat("b", None, "still here", None)
    );
    assert_eq!(code(bad), ErrorCode::Unavailable);
    assert_eq!(&*good.unwrap().message.message, "still here");
    // A kept name that is not one (published, it would spoil its whole batch): refused alone.
    corrupt("senders:R", "b", r#""userName":7"#)
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    let (bad_kept, bad_participant) = tokio::join!(
        r.chat("b", None, "hi", None),
        r.chat("a", None, "not signed either", None)
    );
    assert_eq!(code(bad_kept), ErrorCode::Unavailable);
    assert_eq!(code(bad_participant), ErrorCode::Unavailable);
    assert_eq!(
        code(r.set_screen_sharing("a", None, true, None).await),
        ErrorCode::Unavailable
    );
    assert_eq!(
        code(r.join("c", &req("R", "Cat"), ANYONE, None).await),
        ErrorCode::Unavailable
    );

    let bad_time = r#"{"id":"a","userName":"Ann","avatar":null,"joinedAt":"yesterday","audioMuted":false,"videoOff":false,"screenSharing":false}"#;
    corrupt("people:R", "a", bad_time)
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    assert!(r.detail("R").await.is_err());
    corrupt("room:R", "created", "long ago")
        .query_async::<()>(&mut raw)
        .await
        .unwrap();
    assert!(r.room_info("R").await.is_err());
    // The untouched participant still works where the bad ones are not read.
    assert_eq!(r.relay_room("b", None, "a").await.unwrap().as_ref(), "R");
}

// =============================================================================================
// What the registry announces
// =============================================================================================

/// The participant ids of a list.
fn list_ids(list: &[prolitemeet_server::model::ParticipantView]) -> Vec<String> {
    list.iter().map(|p| p.id.to_string()).collect()
}

/// Messages sent at once (which cluster mode sends to Redis as one batch): each gets its own
/// outcome, refusals included, and the history and the announcements keep the order they
/// were sent in, each with its own ticket.
async fn chat_sent_at_once_keeps_each_outcome_and_its_order(backend: Backend) {
    let Some(r) = open(
        backend,
        Limits {
            chat_history_limit: 10,
            ..limits()
        },
    )
    .await
    else {
        return;
    };
    let ann = JoinRequest {
        avatar: Some("https://example.com/ann.png".into()),
        ..req("R", "Ann")
    };
    r.join("a", &ann, ANYONE, None).await.unwrap();
    join(&r, "b", "R", "Bob").await;
    join(&r, "c", "S", "Cat").await;
    // Two rooms opened, three welcomes, three arrivals.
    r.next_events(8).await;
    let (one, outsider, two, wrong_room, other_room, three, named_empty) = tokio::join!(
        r.chat("a", None, "one", Some(11)),
        r.chat("z", None, "nobody", Some(12)),
        r.chat("b", Some("R"), "two \"quoted\" é/😀", Some(13)),
        r.chat("b", Some("S"), "wrong room", Some(14)),
        r.chat("c", None, "in S", Some(15)),
        r.chat("a", Some("R"), "three", Some(16)),
        r.chat("a", Some(""), "no such room", Some(17)),
    );
    let one = one.unwrap();
    assert_eq!((&*one.room_id, &*one.message.user_name), ("R", "Ann"));
    assert_eq!(
        one.message.user_avatar.as_deref(),
        Some("https://example.com/ann.png")
    );
    assert_eq!(code(outsider), ErrorCode::NotInRoom);
    let two = two.unwrap();
    assert_eq!(
        (&*two.message.message, &*two.message.user_name),
        ("two \"quoted\" é/😀", "Bob")
    );
    assert_eq!(two.message.user_avatar, None);
    assert_eq!(code(wrong_room), ErrorCode::NotInRoom);
    assert_eq!(&*other_room.unwrap().room_id, "S");
    assert_eq!(&*three.unwrap().message.sender_id, "a");
    assert_eq!(code(named_empty), ErrorCode::NotInRoom);

    let said: Vec<_> = r
        .next_events(4)
        .await
        .into_iter()
        .map(|(event, ticket)| match event {
            Event::Said(said) => (
                said.room_id.to_string(),
                said.message.message.to_string(),
                ticket,
            ),
            other => panic!("a message: {other:?}"),
        })
        .collect();
    let said: Vec<_> = said
        .iter()
        .map(|(room, text, t)| (room.as_str(), text.as_str(), *t))
        .collect();
    assert_eq!(
        said,
        [
            ("R", "one", Some(11)),
            ("R", "two \"quoted\" é/😀", Some(13)),
            ("S", "in S", Some(15)),
            ("R", "three", Some(16)),
        ]
    );
    let (_, joined) = join(&r, "d", "R", "Dan").await;
    let history: Vec<_> = joined
        .messages
        .iter()
        .map(|m| m.message.to_string())
        .collect();
    assert_eq!(history, ["one", "two \"quoted\" é/😀", "three"]);
    assert_eq!(
        r.detail("S").await.unwrap().unwrap().summary.message_count,
        1
    );
}

async fn every_change_is_announced_in_order(backend: Backend) {
    let Some(r) = open(backend, limits()).await else {
        return;
    };
    r.join("a", &req("R", "Ann"), ANYONE, Some(1))
        .await
        .unwrap();
    r.join("b", &req("R", "Bob"), ANYONE, Some(2))
        .await
        .unwrap();
    r.chat("a", None, "hi", Some(3)).await.unwrap();
    let audio_off = MediaChange {
        kind: MediaKind::Audio,
        enabled: false,
    };
    r.set_media("b", None, audio_off, Some(4)).await.unwrap();
    r.set_screen_sharing("b", None, true, None).await.unwrap();
    r.leave("a", LeaveReason::Left, Some(5)).await.unwrap();
    r.join("b", &req("S", "Bob"), ANYONE, Some(6))
        .await
        .unwrap();
    // Joining the room one is in changes nothing: nothing is announced.
    r.join("b", &req("S", "Bob"), ANYONE, Some(7))
        .await
        .unwrap();
    r.leave("b", LeaveReason::Disconnected, None).await.unwrap();
    let events = r.next_events(14).await;
    let mut events = events.into_iter();
    let mut next = || events.next().expect("an event");

    let (Event::RoomOpened { room_id, .. }, None) = next() else {
        panic!("R opened")
    };
    assert_eq!(&*room_id, "R");
    let (Event::Welcome(w), _) = next() else {
        panic!("welcome of a")
    };
    assert_eq!((&*w.room_id, &*w.me.id), ("R", "a"));
    assert!(w.created_room && w.me.is_admin);
    let (Event::Joined(j), Some(1)) = next() else {
        panic!("joined a, ticket 1")
    };
    assert_eq!(list_ids(&j.participants), ["a"]);
    let (Event::Welcome(w), _) = next() else {
        panic!("welcome of b")
    };
    assert_eq!(list_ids(&w.participants), ["a", "b"]);
    let (Event::Joined(j), Some(2)) = next() else {
        panic!("joined b, ticket 2")
    };
    assert_eq!(&*j.me.id, "b");
    assert!(!j.me.is_admin);
    assert_eq!(list_ids(&j.participants), ["a", "b"]);
    let (Event::Said(said), Some(3)) = next() else {
        panic!("said, ticket 3")
    };
    assert_eq!((&*said.room_id, &*said.message.message), ("R", "hi"));
    assert_eq!(&*said.message.user_name, "Ann");
    let (Event::Updated { updated, change }, Some(4)) = next() else {
        panic!("media, ticket 4")
    };
    assert_eq!(
        change,
        Change::Media {
            kind: MediaKind::Audio,
            enabled: false
        }
    );
    assert!(updated.participant.is_audio_muted && updated.participants[1].is_audio_muted);
    let (Event::Updated { updated, change }, None) = next() else {
        panic!("screen share")
    };
    assert_eq!(change, Change::ScreenShare { sharing: true });
    assert!(updated.participant.is_screen_sharing);
    let (Event::Left { left, reason }, Some(5)) = next() else {
        panic!("a left, ticket 5")
    };
    assert_eq!(reason, LeaveReason::Left);
    assert_eq!(
        (&*left.participant.id, list_ids(&left.participants)),
        ("a", vec!["b".to_owned()])
    );
    assert!(left.participants[0].is_admin, "b is the host now");
    let (Event::RoomOpened { room_id, .. }, None) = next() else {
        panic!("S opened, before anything happens in it")
    };
    assert_eq!(&*room_id, "S");
    let (Event::Left { left, reason }, _) = next() else {
        panic!("b switched")
    };
    assert_eq!(reason, LeaveReason::Switched);
    assert_eq!(&*left.room_id, "R");
    assert!(left.participants.is_empty());
    let (Event::Welcome(w), _) = next() else {
        panic!("welcome of b in S")
    };
    assert_eq!(&*w.room_id, "S");
    let (Event::Joined(j), Some(6)) = next() else {
        panic!("b joined S, ticket 6")
    };
    assert_eq!(&*j.room_id, "S");
    let (Event::Left { left, reason }, None) = next() else {
        panic!("b disconnected")
    };
    assert_eq!((reason, &*left.room_id), (LeaveReason::Disconnected, "S"));
}

async fn a_closed_room_and_a_kick_are_announced(backend: Backend) {
    let Some(r) = open(backend, limits()).await else {
        return;
    };
    r.join("a", &req("R", "Ann"), ANYONE, None).await.unwrap();
    r.join("b", &req("R", "Bob"), ANYONE, None).await.unwrap();
    r.join("c", &req("S", "Cat"), ANYONE, None).await.unwrap();
    r.close_room("R", Some(9)).await.unwrap();
    r.leave("c", LeaveReason::Kicked, None).await.unwrap();
    // R opened, a and b in it (welcome, joined), S opened, c in it: 8 events.
    let events = r.next_events(11).await;
    let (
        Event::Closed {
            room_id,
            participants,
            ended_by: None,
        },
        Some(9),
    ) = &events[8]
    else {
        panic!("closed, ticket 9: {events:?}")
    };
    assert_eq!(&**room_id, "R");
    let closed: Vec<&str> = participants.iter().map(|p| &*p.id).collect();
    assert_eq!(closed, ["a", "b"]);
    let (Event::RoomRemoved { room_id, .. }, Some(9)) = &events[9] else {
        panic!("R removed with its closing: {events:?}")
    };
    assert_eq!(&**room_id, "R");
    let (Event::Left { left, reason }, None) = &events[10] else {
        panic!("c kicked: {events:?}")
    };
    assert_eq!((*reason, &*left.participant.id), (LeaveReason::Kicked, "c"));
}

/// Joins and leaves racing on two instances: both instances receive the same events in the
/// same order, and the last list each sees of the room is its true list.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_instances_announce_one_order_to_all() {
    let roomy = Limits {
        max_participants: 100,
        ..limits()
    };
    let Some((server, x, y)) = two_instances(roomy).await else {
        return;
    };
    let (_bus_x, mut seen_by_x) = subscribe(&server, &x).await;
    let (_bus_y, mut seen_by_y) = subscribe(&server, &y).await;
    let (x, y) = (Arc::new(x), Arc::new(y));
    let mut tasks = Vec::new();
    for round in 0..20 {
        for (i, instance) in [&x, &y, &x, &y].into_iter().enumerate() {
            let instance = instance.clone();
            let socket = format!("r{round}s{i}");
            tasks.push(tokio::spawn(async move {
                instance
                    .join(&socket, &req("RACE", &socket), ANYONE, None)
                    .await
                    .unwrap();
                if i % 2 == 0 {
                    instance
                        .leave(&socket, LeaveReason::Left, None)
                        .await
                        .unwrap();
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("task");
    }
    let truth = list_ids(&x.detail("RACE").await.unwrap().unwrap().participants);
    assert_eq!(truth.len(), 40);
    // 80 joins and 40 leaves; x also hears its own instance's welcomes (40), y its own (40).
    let lists = |batches: &mut mpsc::UnboundedReceiver<Batch>| {
        let mut order = Vec::new();
        while let Ok(batch) = batches.try_recv() {
            for event in batch.events {
                match event {
                    Event::Joined(j) => order.push(list_ids(&j.participants)),
                    Event::Left { left, .. } => order.push(list_ids(&left.participants)),
                    _ => {}
                }
            }
        }
        order
    };
    let deadline = Instant::now() + WAIT;
    let (mut on_x, mut on_y) = (Vec::new(), Vec::new());
    while (on_x.len() < 120 || on_y.len() < 120) && Instant::now() < deadline {
        on_x.extend(lists(&mut seen_by_x));
        on_y.extend(lists(&mut seen_by_y));
        tokio::time::sleep(POLL).await;
    }
    assert_eq!(on_x.len(), 120);
    assert_eq!(on_x, on_y, "both instances saw the same order");
    assert_eq!(on_x.last(), Some(&truth), "the last list is the true list");
}

async fn rooms_are_made_only_when_allowed_and_within_the_address_share(backend: Backend) {
    let Some(r) = open(
        backend,
        Limits {
            max_rooms_per_address: 2,
            ..limits()
        },
    )
    .await
    else {
        return;
    };
    let mallory = std::net::IpAddr::from([203, 0, 113, 66]);
    let may_not = prolitemeet_server::registry::Creator {
        address: mallory,
        may_create: false,
    };
    let may = prolitemeet_server::registry::Creator {
        may_create: true,
        ..may_not
    };
    // A join naming a room that does not exist makes nothing unless allowed.
    match r.join("m1", &req("NEW", "M"), may_not, None).await.unwrap() {
        JoinOutcome::NeedsNewRoom => {}
        other => panic!("made a room it may not: {other:?}"),
    }
    assert_eq!(r.stats().await.unwrap(), (0, 0));
    r.join("m1", &req("NEW", "M"), may, None).await.unwrap();
    // Joining an existing room needs no allowance.
    r.join("x", &req("NEW", "X"), may_not, None).await.unwrap();
    r.create_room(mallory).await.unwrap();
    // Two rooms made by one address: a third is refused, by join or by create-room.
    let err = r
        .join("m2", &req("THIRD", "M"), may, None)
        .await
        .unwrap_err();
    assert_eq!(err.code, ErrorCode::TooManyRooms);
    assert_eq!(code(r.create_room(mallory).await), ErrorCode::TooManyRooms);
    // Other addresses are not held back by it.
    r.create_room(LOCAL).await.unwrap();
    // A room it made going away frees its share.
    r.leave("m1", LeaveReason::Left, None).await.unwrap();
    r.leave("x", LeaveReason::Left, None).await.unwrap();
    r.close_room("NEW", None).await.unwrap();
    r.join("m2", &req("THIRD", "M"), may, None).await.unwrap();
}

/// Messages of ~1,150 bytes (1,000 characters plus the message's other fields): a room
/// keeps 2 within 3,000 bytes; all rooms keep 3 within 4,000, and when more is needed the
/// history of a room nobody is in goes first.
async fn chat_history_is_bounded_in_bytes_per_room_and_in_all(backend: Backend) {
    let Some(r) = open(
        backend,
        Limits {
            chat_history_bytes: 3_000,
            chat_history_total_bytes: 4_000,
            ..limits()
        },
    )
    .await
    else {
        return;
    };
    let long = |n: usize| format!("{n}{}", "x".repeat(1_000));
    join(&r, "a", "A", "Ann").await;
    for n in 0..4 {
        r.chat("a", None, &long(n), None).await.unwrap();
    }
    let (_, again) = join(&r, "z", "A", "Zed").await;
    let kept: Vec<_> = again.messages.iter().map(|m| &m.message[..1]).collect();
    assert_eq!(kept, ["2", "3"], "the newest that fit in the room's bytes");
    r.leave("z", LeaveReason::Left, None).await.unwrap();
    r.leave("a", LeaveReason::Left, None).await.unwrap();
    // A is empty with its history; B's history needs the budget: A's goes.
    join(&r, "b", "B", "Bob").await;
    r.chat("b", None, &long(7), None).await.unwrap();
    r.chat("b", None, &long(8), None).await.unwrap();
    let (_, in_b) = join(&r, "y", "B", "Yan").await;
    assert_eq!(in_b.messages.len(), 2, "B keeps its own");
    let (_, in_a) = join(&r, "x", "A", "Xia").await;
    assert!(
        in_a.messages.is_empty(),
        "the empty room's history went first"
    );
}

// =============================================================================================
// Rooms coming and going (what webhooks are made from), hosts by token
// =============================================================================================

/// What a room's opening or removal announced: its id and creation time.
fn life(event: &Event) -> Option<(&str, prolitemeet_server::model::Timestamp)> {
    match event {
        Event::RoomOpened {
            room_id,
            created_at,
        }
        | Event::RoomRemoved {
            room_id,
            created_at,
        } => Some((room_id, *created_at)),
        _ => None,
    }
}

async fn a_room_is_announced_as_it_opens_and_as_it_goes(backend: Backend) {
    let Some(r) = open(
        backend,
        Limits {
            empty_room_ttl: Duration::ZERO,
            unused_room_ttl: Duration::from_secs(1),
            ..limits()
        },
    )
    .await
    else {
        return;
    };
    let unused = r.create_room(LOCAL).await.unwrap();
    let (_, joined) = join(&r, "a", "R", "Ann").await;
    assert!(joined.created_room);
    r.leave("a", LeaveReason::Left, Some(1)).await.unwrap();
    join(&r, "b", "S", "Bob").await;
    r.close_room("S", Some(2)).await.unwrap();
    let events = r.next_events(11).await;
    let kinds: Vec<String> = events
        .iter()
        .map(|(e, _)| {
            format!("{e:?}")
                .split([' ', '('])
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "RoomOpened",
            "RoomOpened",
            "Welcome",
            "Joined",
            "Left",
            "RoomRemoved",
            "RoomOpened",
            "Welcome",
            "Joined",
            "Closed",
            "RoomRemoved",
        ],
        "{events:?}"
    );
    let (opened, created) = life(&events[0].0).unwrap();
    assert_eq!((opened, created), (&*unused.room_id, unused.created_at));
    let (r_opened, r_created) = life(&events[1].0).unwrap();
    let (r_removed, r_created_again) = life(&events[5].0).unwrap();
    assert_eq!((r_opened, r_removed), ("R", "R"));
    assert_eq!(
        r_created, r_created_again,
        "the removal knows the creation time"
    );
    assert!(matches!(events[5], (Event::RoomRemoved { .. }, _)));
    // Closing removes the room with everyone in it, announced with the closing.
    let (Event::RoomRemoved { room_id, .. }, Some(2)) = &events[10] else {
        panic!("S removed with its closing: {events:?}")
    };
    assert_eq!(&**room_id, "S");
    // The unused room expires: its removal is announced by the sweep that removed it.
    let swept = eventually("the unused room is swept", || async {
        let swept = r.sweep().await.unwrap();
        (!swept.is_empty()).then_some(swept)
    })
    .await;
    assert_eq!(swept, vec![unused.room_id.clone()]);
    let (event, ticket) = r.next_events(1).await.remove(0);
    assert_eq!(ticket, None);
    assert!(matches!(event, Event::RoomRemoved { .. }));
    assert_eq!(life(&event), Some((&*unused.room_id, unused.created_at)));
}

async fn a_host_by_token_goes_first_in_join_order(backend: Backend) {
    let Some(r) = open(backend, limits()).await else {
        return;
    };
    join(&r, "a", "R", "Ann").await;
    join(&r, "b", "R", "Bob").await;
    let host = JoinRequest {
        host: true,
        ..req("R", "Cat")
    };
    let Ok(JoinOutcome::Joined { joined, .. }) = r.join("c", &host, ANYONE, None).await else {
        panic!("c joins")
    };
    assert_eq!(ids(&joined.participants), ["c", "a", "b"]);
    assert!(joined.me.is_admin && &*joined.me.id == "c");
    assert_host_first(&joined.participants);
    let detail = r.detail("R").await.unwrap().unwrap();
    assert_eq!(ids(&detail.participants), ["c", "a", "b"]);
    // Announced as such to the room: the host changes (as by a transfer), then the join.
    let events = r.next_events(8).await;
    let (Event::HostChanged { host, previous, .. }, _) = &events[6] else {
        panic!("c takes the host role: {events:?}")
    };
    assert_eq!((&**host, &**previous), ("c", "a"));
    let (Event::Joined(j), _) = &events[7] else {
        panic!("c's join: {events:?}")
    };
    assert!(j.me.is_admin && ids(&j.participants) == ["c", "a", "b"]);
    // The host by token leaves: the next in join order is host, as always.
    let left = r
        .leave("c", LeaveReason::Left, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(ids(&left.participants), ["a", "b"]);
    assert!(left.participants[0].is_admin);
}

/// Each room's batches name one instance to deliver its webhooks: the one that made the room,
/// whoever changes it, until that one leaves the cluster; then the instance making the next
/// change (or, if that one is leaving too, one still alive).
#[tokio::test]
async fn a_room_s_webhooks_stay_with_one_instance_until_it_leaves() {
    let ttl0 = Limits {
        empty_room_ttl: Duration::ZERO,
        ..limits()
    };
    let Some((server, i1, i2)) = two_instances(ttl0).await else {
        return;
    };
    i1.heartbeat().await.unwrap();
    i2.heartbeat().await.unwrap();
    let (_bus, mut seen) = subscribe(&server, &i2).await;
    // (event kind, room, origin, webhook owner) of every batch i2 receives.
    let mut next = async || {
        let batch = tokio::time::timeout(WAIT, seen.recv())
            .await
            .expect("a batch in time")
            .expect("open");
        let kinds: Vec<String> = batch
            .events
            .iter()
            .map(|e| {
                format!("{e:?}")
                    .split([' ', '('])
                    .next()
                    .unwrap_or("")
                    .to_owned()
            })
            .collect();
        (
            kinds.join("+"),
            batch.origin.instance.to_string(),
            batch.hooks.as_deref().map(str::to_owned),
        )
    };
    let i1r = Registry::Redis(i1);
    let i2r = Registry::Redis(i2);
    join(&i1r, "a", "R", "Ann").await;
    join(&i2r, "b", "R", "Bob").await;
    let created = i2r.create_room(LOCAL).await.unwrap();
    let owned_by = |who: &str| Some(who.to_owned());
    assert_eq!(
        next().await,
        ("RoomOpened".into(), "i1".into(), owned_by("i1"))
    );
    assert_eq!(next().await, ("Joined".into(), "i1".into(), owned_by("i1")));
    // i2's welcome of b (its own channel) carries no owner: it makes no webhook.
    assert_eq!(next().await, ("Welcome".into(), "i2".into(), None));
    assert_eq!(next().await, ("Joined".into(), "i2".into(), owned_by("i1")));
    assert_eq!(
        next().await,
        ("RoomOpened".into(), "i2".into(), owned_by("i2"))
    );
    let _ = created;

    // i1 shuts down: a leaves with it, and R's webhooks pass to i2, which is alive.
    let Registry::Redis(i1) = &i1r else {
        unreachable!()
    };
    assert_eq!(i1.retire().await.unwrap().len(), 1);
    assert_eq!(next().await, ("Left".into(), "i1".into(), owned_by("i2")));
    i2r.leave("b", LeaveReason::Left, None).await.unwrap();
    assert_eq!(
        next().await,
        ("Left+RoomRemoved".into(), "i2".into(), owned_by("i2"))
    );
}

/// Connection state recovery: a participant whose client lost its connection stays in its
/// room, host role, media flags and all, marked `reconnecting`, until it is back or leaves.
async fn a_reconnecting_participant_keeps_its_place_and_state(backend: Backend) {
    let Some(r) = open(
        backend,
        Limits {
            connection_states: true,
            ..limits()
        },
    )
    .await
    else {
        return;
    };
    let (_, a) = join(&r, "a", "R", "Ann").await;
    assert_eq!(a.me.connection, Some(Connection::Connected));
    join(&r, "b", "R", "Bob").await;
    let audio_off = MediaChange {
        kind: MediaKind::Audio,
        enabled: false,
    };
    r.set_media("a", None, audio_off, None).await.unwrap();
    r.chat("a", None, "before", None).await.unwrap();
    // The room's opening, two welcomes and joins, the mute, the chat.
    r.next_events(7).await;

    // The host's client loses its connection.
    let u = r
        .set_connection("a", Connection::Reconnecting, Some(7))
        .await
        .unwrap()
        .expect("a change");
    assert_eq!((&*u.room_id, &*u.participant.id), ("R", "a"));
    assert_eq!(u.participant.connection, Some(Connection::Reconnecting));
    assert!(u.participant.is_admin && u.participant.is_audio_muted);
    assert_eq!(ids(&u.participants), ["a", "b"]);
    assert_eq!(u.participants[1].connection, Some(Connection::Connected));
    // Nothing changes (and nothing is announced) for a state it already has, or for a socket
    // in no room.
    let again = r.set_connection("a", Connection::Reconnecting, None).await;
    assert!(again.unwrap().is_none());
    let nobody = r
        .set_connection("nobody", Connection::Connected, None)
        .await;
    assert!(nobody.unwrap().is_none());
    // It still counts, can be relayed to, and a joiner meanwhile finds it, reconnecting.
    assert_eq!(
        r.room_info("R").await.unwrap().unwrap().participant_count,
        2
    );
    assert_eq!(r.stats().await.unwrap(), (1, 2));
    assert_eq!(&*r.relay_room("b", None, "a").await.unwrap(), "R");
    let (_, c) = join(&r, "c", "R", "Cat").await;
    assert_eq!(c.participants[0].connection, Some(Connection::Reconnecting));
    assert_eq!(c.me.connection, Some(Connection::Connected));
    assert_eq!(
        c.messages.iter().map(|m| &*m.message).collect::<Vec<_>>(),
        ["before"]
    );
    // Back: the same participant, host and muted still.
    let u = r
        .set_connection("a", Connection::Connected, None)
        .await
        .unwrap()
        .expect("a change");
    assert_eq!(u.participant.connection, Some(Connection::Connected));
    assert!(u.participant.is_admin && u.participant.is_audio_muted);
    assert_eq!(u.participant.joined_at, a.me.joined_at);
    assert_eq!(ids(&u.participants), ["a", "b", "c"]);
    let detail = r.detail("R").await.unwrap().unwrap();
    assert_eq!(detail.participants, u.participants);

    let events = r.next_events(4).await;
    let (Event::Updated { updated, change }, Some(7)) = &events[0] else {
        panic!("a reconnecting, ticket 7: {events:?}")
    };
    assert_eq!(*change, Change::Connection { reconnecting: true });
    assert_eq!(
        updated.participant.connection,
        Some(Connection::Reconnecting)
    );
    assert!(matches!(&events[1], (Event::Welcome(w), _) if &*w.me.id == "c"));
    assert!(matches!(&events[2], (Event::Joined(j), _) if &*j.me.id == "c"));
    let (Event::Updated { updated, change }, None) = &events[3] else {
        panic!("a reconnected: {events:?}")
    };
    assert_eq!(
        *change,
        Change::Connection {
            reconnecting: false
        }
    );
    assert_eq!(updated.participants, u.participants);

    // A reconnecting host that never comes back leaves as anyone does: the host passes on.
    r.set_connection("a", Connection::Reconnecting, None)
        .await
        .unwrap();
    let left = r
        .leave("a", LeaveReason::Disconnected, None)
        .await
        .unwrap()
        .expect("a left");
    assert_eq!(ids(&left.participants), ["b", "c"]);
    assert_host_first(&left.participants);
    let events = r.next_events(2).await;
    assert!(matches!(
        &events[1],
        (
            Event::Left {
                reason: LeaveReason::Disconnected,
                ..
            },
            _
        )
    ));
    assert!(
        r.set_connection("a", Connection::Connected, None)
            .await
            .unwrap()
            .is_none()
    );

    // Without connection states (recovery off), participants carry none and nothing changes.
    let Some(plain) = open(backend, limits()).await else {
        return;
    };
    let (_, p) = join(&plain, "p", "P", "Pat").await;
    assert_eq!(p.me.connection, None);
    let marked = plain
        .set_connection("p", Connection::Reconnecting, None)
        .await;
    assert!(marked.unwrap().is_none());
    let detail = plain.detail("P").await.unwrap().unwrap();
    assert_eq!(detail.participants[0].connection, None);
    // The room's opening, the welcome and the join.
    plain.next_events(3).await;
    plain.chat("p", None, "still here", None).await.unwrap();
    assert!(matches!(plain.next_events(1).await[0], (Event::Said(_), _)));
}
