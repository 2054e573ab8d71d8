//! Cluster mode end to end: several instances on one private Redis, the participants of a
//! room spread over them. Every event of PROTOCOL.md must cross instances exactly as on one
//! instance; joins racing on two instances must respect `MAX_PARTICIPANTS`; a killed
//! instance's participants must be removed by the survivors; a Redis outage must be survived.
//! (The whole protocol suite also runs over two instances: see `tests/cluster-suite.sh`.)

mod common;
mod raw;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::Duration;

use common::redis::RedisServer;
use common::{Running, TestClient, TestServer, assert_participant, ids, server_command};
use prolitemeet_server::limits::{Rate, RateLimits};
use prolitemeet_server::{Config, Deployment};
use serde_json::{Value, json};

/// How long a killed instance's participants may stay listed (the promise is 15 s).
const REMOVAL_DEADLINE: Duration = Duration::from_secs(15);

macro_rules! redis_or_skip {
    () => {
        match RedisServer::start() {
            Some(redis) => redis,
            None => {
                eprintln!("skipped: redis-server is not installed");
                return;
            }
        }
    };
}

fn config(redis: &RedisServer) -> Config {
    Config {
        host: [127, 0, 0, 1].into(),
        port: 0,
        rate_limits: RateLimits::UNLIMITED,
        room_create_rate: Rate::UNLIMITED,
        max_rooms_per_address: 0,
        // Today's behaviour (a dropped connection is a departure); tests/recovery.rs and the
        // JavaScript suite cover recovery in a cluster.
        recovery_window: Duration::ZERO,
        deployment: Deployment::Redis {
            url: redis.url(),
            prefix: common::unique_prefix(),
        },
        ..Config::default()
    }
}

async fn cluster(redis: &RedisServer, instances: usize) -> TestServer {
    TestServer::cluster(config(redis), instances).await
}

async fn joined_on(server: &TestServer, instance: usize, room: &str, name: &str) -> TestClient {
    let mut client = server.client_of(instance).await;
    client.join(room, name).await;
    client
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_room_spread_over_three_instances_behaves_as_on_one() {
    let redis = redis_or_skip!();
    let server = cluster(&redis, 3).await;

    // Joins: everyone hears of everyone, in join order, whatever the instance.
    let mut a = joined_on(&server, 0, "R", "Ann").await;
    let mut b = server.client_of(1).await;
    b.emit("join-room", json!({"roomId": "R", "userName": "Bob"}))
        .await;
    let joined = b.expect("joined-room").await;
    b.id = joined["participantId"].as_str().expect("id").to_owned();
    assert_participant(&joined["participants"][0], &a.id, "Ann", true);
    assert_participant(&joined["participant"], &b.id, "Bob", false);
    b.expect("participants-updated").await;
    let user_joined = a.expect("user-joined").await;
    assert_eq!(user_joined["participantId"], b.id);
    assert_eq!(
        ids(&a.expect("participants-updated").await),
        [a.id.clone(), b.id.clone()]
    );
    let mut c = joined_on(&server, 2, "R", "Cid").await;
    let everyone = [a.id.clone(), b.id.clone(), c.id.clone()];
    let [ai, bi, ci] = everyone.clone();
    for peer in [&mut a, &mut b] {
        assert_eq!(peer.expect("user-joined").await["id"], ci.as_str());
        assert_eq!(ids(&peer.expect("participants-updated").await), everyone);
    }

    // Chat reaches everyone, the sender included, and is kept as history for later joiners.
    b.emit("send-message", json!({"message": " hi all "})).await;
    for peer in [&mut a, &mut b, &mut c] {
        let message = peer.expect("new-message").await;
        assert_eq!(message["message"], "hi all");
        assert_eq!(message["senderId"], bi.as_str());
        assert_eq!(message["userName"], "Bob");
    }
    let mut d = server.client_of(0).await;
    d.emit("join-room", json!({"roomId": "R", "userName": "Dee"}))
        .await;
    let history = d.expect("joined-room").await;
    assert_eq!(history["messages"][0]["message"], "hi all");
    d.expect("participants-updated").await;
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect("user-joined").await;
        peer.expect("participants-updated").await;
    }
    d.disconnect().await;
    for peer in [&mut a, &mut b, &mut c] {
        peer.expect("user-left").await;
        peer.expect("participants-updated").await;
    }

    // Relays cross instances to the target only, stamped with the sender.
    let offer = json!({"type": "offer", "sdp": "v=0 offer"});
    a.emit(
        "webrtc-offer",
        json!({"targetId": ci.as_str(), "offer": offer}),
    )
    .await;
    let got = c.expect("webrtc-offer").await;
    assert_eq!(
        got,
        json!({"senderId": ai.as_str(), "senderSocketId": ai.as_str(), "offer": offer})
    );
    let answer = json!({"type": "answer", "sdp": "v=0 answer"});
    c.emit(
        "webrtc-answer",
        json!({"targetSocketId": ai.as_str(), "answer": answer}),
    )
    .await;
    assert_eq!(a.expect("webrtc-answer").await["answer"], answer);
    for n in 0..20 {
        b.emit(
            "webrtc-ice-candidate",
            json!({"targetId": ai.as_str(), "candidate": {"candidate": format!("c{n}")}}),
        )
        .await;
    }
    for n in 0..20 {
        let candidate = a.expect("webrtc-ice-candidate").await;
        assert_eq!(
            candidate["candidate"]["candidate"],
            format!("c{n}"),
            "in order"
        );
        assert_eq!(candidate["senderId"], bi.as_str());
    }
    c.emit("request-connection", json!({"targetId": bi.as_str()}))
        .await;
    assert_eq!(
        b.expect("connection-request").await,
        json!({"senderId": ci.as_str(), "senderSocketId": ci.as_str(), "roomId": "R"})
    );

    // Media and screen sharing.
    c.emit("toggle-audio", json!({"isAudioMuted": true})).await;
    for peer in [&mut a, &mut b] {
        let toggled = peer.expect("participant-audio-toggled").await;
        assert_eq!(
            toggled,
            json!({"participantId": ci.as_str(), "isAudioMuted": true, "isAudioEnabled": false})
        );
        let media = peer.expect("media-toggled").await;
        assert_eq!(media["type"], "audio");
        assert_eq!(media["enabled"], false);
        let list = peer.expect("participants-updated").await;
        assert_eq!(list[2]["isAudioMuted"], true);
    }
    assert_eq!(
        c.expect("participants-updated").await[2]["isAudioMuted"],
        true
    );
    b.emit("toggle-media", json!({"type": "video", "enabled": false}))
        .await;
    for peer in [&mut a, &mut c] {
        assert_eq!(
            peer.expect("participant-video-toggled").await["isVideoOff"],
            true
        );
        peer.expect("media-toggled").await;
        peer.expect("participants-updated").await;
    }
    b.expect("participants-updated").await;
    a.emit_bare("start-screen-share").await;
    for peer in [&mut b, &mut c] {
        assert_eq!(
            peer.expect("user-started-screen-share").await,
            json!({"participantId": ai.as_str()})
        );
        assert_eq!(
            peer.expect("participants-updated").await[0]["isScreenSharing"],
            true
        );
    }
    a.expect("participants-updated").await;

    // The host leaves: the next earliest, on another instance, becomes host.
    a.emit_bare("leave-room").await;
    assert_eq!(a.expect("left-room").await, json!({"roomId": "R"}));
    for peer in [&mut b, &mut c] {
        assert_eq!(
            peer.expect("user-left").await,
            json!({"participantId": ai.as_str(), "userName": "Ann"})
        );
        assert_eq!(
            peer.expect("host-changed").await,
            json!({"roomId": "R", "hostId": bi.as_str(), "previousHostId": ai.as_str()})
        );
        let list = peer.expect("participants-updated").await;
        assert_participant(&list[0], bi.as_str(), "Bob", true);
    }

    // Switching rooms leaves the old one, as seen from the other instance.
    c.emit("join-room", json!({"roomId": "R2", "userName": "Cid"}))
        .await;
    assert_eq!(c.expect("left-room").await, json!({"roomId": "R"}));
    c.expect("joined-room").await;
    c.expect("participants-updated").await;
    assert_eq!(b.expect("user-left").await["participantId"], ci.as_str());
    assert_eq!(ids(&b.expect("participants-updated").await), [bi.as_str()]);

    // Relays do not cross rooms, whatever the instance.
    b.emit(
        "webrtc-offer",
        json!({"targetId": ci.as_str(), "offer": offer}),
    )
    .await;
    b.expect_error("webrtc-offer", "target_not_in_room").await;
    c.expect_quiet().await;

    // Every instance answers the same, with cluster-wide counts and its own id.
    let mut instance_ids = Vec::new();
    for _ in 0..3 {
        let (status, room) = server.get("/api/room/R").await;
        assert_eq!(status, 200);
        assert_eq!(room["participantCount"], 1);
        let (_, health) = server.get("/health").await;
        assert_eq!(health["activeRooms"], 2, "{health}");
        assert_eq!(health["totalParticipants"], 2, "{health}");
        assert_eq!(health["mode"], "redis", "{health}");
        instance_ids.push(health["instanceId"].as_str().expect("id").to_owned());
    }
    instance_ids.sort();
    instance_ids.dedup();
    assert_eq!(instance_ids.len(), 3, "each instance has its own id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_joins_on_two_instances_never_overfill_a_room() {
    let redis = redis_or_skip!();
    let mut config = config(&redis);
    config.max_participants = 3;
    let server = TestServer::cluster(config, 2).await;
    let mut clients = Vec::new();
    for n in 0..10 {
        clients.push(server.client_of(n % 2).await);
    }
    // Everyone asks at once; the acks say who got in.
    let answers = futures_util::future::join_all(clients.iter().enumerate().map(|(n, c)| {
        c.emit_ack(
            "join-room",
            json!({"roomId": "FULL", "userName": format!("P{n}")}),
        )
    }))
    .await;
    let admitted: Vec<&Value> = answers.iter().filter(|a| a["ok"] == true).collect();
    let refused = answers
        .iter()
        .filter(|a| a["ok"] == false && a["code"] == "room_full")
        .count();
    assert_eq!(admitted.len(), 3, "{answers:?}");
    assert_eq!(refused, 7, "{answers:?}");
    // They agree on the list and on the host.
    let lists: Vec<Vec<String>> = admitted.iter().map(|a| ids(&a["participants"])).collect();
    let last = lists.iter().max_by_key(|l| l.len()).expect("lists");
    assert_eq!(last.len(), 3);
    for list in &lists {
        assert_eq!(list[0], last[0], "one host for all: {lists:?}");
    }
    let (_, room) = server.get("/api/room/FULL").await;
    assert_eq!(room["participantCount"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_api_reaches_participants_on_other_instances() {
    let redis = redis_or_skip!();
    let mut config = config(&redis);
    config.admin_token = Some("op".into());
    let server = TestServer::cluster(config, 2).await;
    let mut a = joined_on(&server, 0, "OPS", "Ann").await;
    let mut b = joined_on(&server, 1, "OPS", "Bob").await;
    a.expect("user-joined").await;
    a.expect("participants-updated").await;
    let admin = |addr: SocketAddr, method: reqwest::Method, path: &str| {
        let request = reqwest::Client::new()
            .request(method, format!("http://{addr}{path}"))
            .bearer_auth("op");
        async move {
            let response = request.send().await.expect("admin request");
            let status = response.status().as_u16();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    // Every instance lists the same room.
    for addr in &server.addrs {
        let (status, rooms) = admin(*addr, reqwest::Method::GET, "/api/admin/rooms").await;
        assert_eq!(status, 200);
        assert_eq!(rooms["rooms"][0]["participantCount"], 2, "{rooms}");
    }
    // Instance 0 removes Bob, who is connected to instance 1.
    let (status, _) = admin(
        server.addrs[0],
        reqwest::Method::DELETE,
        &format!("/api/admin/participants/{}", b.id),
    )
    .await;
    assert_eq!(status, 200);
    let error = b.expect("error").await;
    assert_eq!(error["code"], "kicked");
    assert_eq!(a.expect("user-left").await["participantId"], b.id);
    assert_eq!(
        ids(&a.expect("participants-updated").await),
        [a.id.as_str()]
    );
    // Instance 1 closes the room Ann (on instance 0) is in.
    let (status, closed) = admin(
        server.addrs[1],
        reqwest::Method::DELETE,
        "/api/admin/rooms/OPS",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(closed["removedParticipants"], 1);
    assert_eq!(a.expect("error").await["code"], "room_closed");
    a.emit("send-message", json!({"message": "still here?"}))
        .await;
    a.expect_error("send-message", "not_in_room").await;
}

/// Starts the server binary as a cluster instance; returns it and its address.
fn spawn_instance(redis: &RedisServer, prefix: &str) -> (Running, SocketAddr) {
    let url = redis.url();
    let mut child = Running(
        server_command(&[
            ("HOST", "127.0.0.1"),
            ("PORT", "0"),
            ("LOG_FORMAT", "json"),
            ("REDIS_URL", &url),
            ("REDIS_PREFIX", prefix),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn"),
    );
    let mut lines = BufReader::new(child.0.stdout.take().expect("stdout")).lines();
    let address = loop {
        let line = lines
            .next()
            .expect("the server logs its address")
            .expect("utf-8");
        let log: Value = serde_json::from_str(&line).expect("JSON log");
        if let Some(address) = log["address"].as_str() {
            break address.parse().expect("address");
        }
    };
    // Keep reading so the server never blocks on a full pipe.
    std::thread::spawn(move || for _ in lines {});
    (child, address)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_instance_s_participants_are_removed_by_the_survivors() {
    let redis = redis_or_skip!();
    let prefix = common::unique_prefix();
    let (mut doomed, doomed_addr) = spawn_instance(&redis, &prefix);
    let (_survivor, survivor_addr) = spawn_instance(&redis, &prefix);
    let doomed_server = TestServer::attach(doomed_addr);
    let survivor = TestServer::attach(survivor_addr);

    let mut host = survivor.client().await;
    host.join("K", "Stay").await;
    let mut gone_one = doomed_server.client().await;
    gone_one.join("K", "Gone1").await;
    let mut gone_two = doomed_server.client().await;
    gone_two.join("K", "Gone2").await;
    for _ in 0..2 {
        host.expect("user-joined").await;
        host.expect("participants-updated").await;
    }
    survivor.await_counts((1, 3)).await;

    doomed.0.kill().expect("kill -9");
    doomed.0.wait().expect("reaped");
    let killed_at = tokio::time::Instant::now();

    let mut departed = Vec::new();
    while departed.len() < 2 {
        let left = host
            .wait_for_within(
                "user-left",
                REMOVAL_DEADLINE.saturating_sub(killed_at.elapsed()),
            )
            .await
            .expect("user-left within 15 s of the kill");
        departed.push(left["participantId"].as_str().expect("id").to_owned());
    }
    assert!(killed_at.elapsed() < REMOVAL_DEADLINE);
    departed.sort();
    let mut expected = vec![gone_one.id.clone(), gone_two.id.clone()];
    expected.sort();
    assert_eq!(departed, expected);
    survivor.await_counts((1, 1)).await;
    let (_, room) = survivor.get("/api/room/K").await;
    assert_eq!(room["participantCount"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_stopped_with_sigterm_takes_its_participants_out_at_once() {
    let redis = redis_or_skip!();
    let prefix = common::unique_prefix();
    let (mut leaving, leaving_addr) = spawn_instance(&redis, &prefix);
    let (_staying, staying_addr) = spawn_instance(&redis, &prefix);
    let staying = TestServer::attach(staying_addr);
    let mut host = staying.client().await;
    host.join("T", "Stay").await;
    let mut guest = TestServer::attach(leaving_addr).client().await;
    guest.join("T", "Guest").await;
    host.expect("user-joined").await;
    host.expect("participants-updated").await;

    std::process::Command::new("kill")
        .args(["-TERM", &leaving.0.id().to_string()])
        .status()
        .expect("kill");
    // Well before any liveness timeout: the departing instance's own disconnects say it.
    let left = host
        .wait_for_within("user-left", Duration::from_secs(3))
        .await
        .expect("user-left as the instance shuts down");
    assert_eq!(left["participantId"], guest.id);
    assert_eq!(leaving.0.wait().expect("exit").code(), Some(0));
    staying.await_counts((1, 1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_instance_is_reaped_and_drops_its_sockets_when_it_wakes() {
    let redis = redis_or_skip!();
    let prefix = common::unique_prefix();
    let (frozen, frozen_addr) = spawn_instance(&redis, &prefix);
    let (_survivor, survivor_addr) = spawn_instance(&redis, &prefix);
    let frozen_server = TestServer::attach(frozen_addr);
    let survivor = TestServer::attach(survivor_addr);
    let mut host = survivor.client().await;
    host.join("Z", "Stay").await;
    let mut sleeper = frozen_server.client().await;
    sleeper.join("Z", "Sleeper").await;
    host.expect("user-joined").await;

    let pid = frozen.0.id().to_string();
    let signal = |name: &str| {
        std::process::Command::new("kill")
            .args([name, &pid])
            .status()
            .expect("kill")
    };
    signal("-STOP");
    let left = host
        .wait_for_within("user-left", REMOVAL_DEADLINE)
        .await
        .expect("the frozen instance's participant is removed within 15 s");
    assert_eq!(left["participantId"], sleeper.id);
    signal("-CONT");
    // Awake again, it learns it was declared dead and closes its orphaned sockets.
    frozen_server
        .await_no_connections(Duration::from_secs(10))
        .await;
    survivor.await_counts((1, 1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_survive_a_redis_restart() {
    let mut redis = redis_or_skip!();
    let server = cluster(&redis, 2).await;
    let mut a = joined_on(&server, 0, "OUT", "Ann").await;
    let _b = joined_on(&server, 1, "OUT", "Bob").await;
    a.expect("user-joined").await;
    a.expect("participants-updated").await;

    redis.stop();
    for addr in &server.addrs {
        await_ready(*addr, 503).await;
    }
    // The store is away: a refused event says so, and nothing is lost locally.
    let answer = a
        .emit_ack("send-message", json!({"message": "lost?"}))
        .await;
    assert_eq!(answer["code"], "unavailable", "{answer}");
    a.expect_error("send-message", "unavailable").await;

    redis.start_again();
    for addr in &server.addrs {
        await_ready(*addr, 200).await;
    }
    // Back without a restart: the room is intact (Redis kept nothing on disk, so it is
    // empty; the instances still hold their sockets) and new joins and chat cross again.
    let mut c = server.client_of(1).await;
    c.emit("join-room", json!({"roomId": "AFTER", "userName": "Cid"}))
        .await;
    c.expect("joined-room").await;
    c.expect("participants-updated").await;
    let mut d = joined_on(&server, 0, "AFTER", "Dee").await;
    c.expect("user-joined").await;
    c.expect("participants-updated").await;
    d.emit("send-message", json!({"message": "back"})).await;
    assert_eq!(c.expect("new-message").await["message"], "back");
    assert_eq!(d.expect("new-message").await["message"], "back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_that_leaves_while_redis_is_away_is_removed_when_it_is_back() {
    let redis = redis_or_skip!();
    let server = cluster(&redis, 2).await;
    let mut a = joined_on(&server, 0, "GAP", "Ann").await;
    let b = joined_on(&server, 1, "GAP", "Bob").await;
    a.expect("user-joined").await;
    a.expect("participants-updated").await;
    let bob = b.id.clone();

    // Redis stops answering for a while (its clients' commands wait, then time out).
    let paused = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port().to_string(),
            "CLIENT",
            "PAUSE",
            "4000",
            "ALL",
        ])
        .output()
        .expect("redis-cli");
    assert!(paused.status.success(), "{paused:?}");
    b.disconnect().await;
    // Once Redis answers again, Bob's departure goes through and Ann hears of it.
    let left = a
        .wait_for_within("user-left", Duration::from_secs(15))
        .await
        .expect("user-left once Redis is back");
    assert_eq!(left["participantId"], bob);
    server.await_counts((1, 1)).await;
}

/// Polls `/ready` of one instance until it answers `status`.
async fn await_ready(addr: SocketAddr, status: u16) {
    let http = reqwest::Client::new();
    common::eventually(Duration::from_secs(20), || {
        let request = http.get(format!("http://{addr}/ready")).send();
        async move {
            let seen = request.await.map(|r| r.status().as_u16()).unwrap_or(0);
            (seen == status)
                .then_some(())
                .ok_or_else(|| format!("/ready of {addr} kept answering {seen}, expected {status}"))
        }
    })
    .await;
}

#[test]
fn an_unreachable_redis_at_start_is_exit_code_2() {
    let closed_port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port();
    let output = server_command(&[
        ("HOST", "127.0.0.1"),
        ("PORT", "0"),
        ("REDIS_URL", &format!("redis://127.0.0.1:{closed_port}")),
    ])
    .output()
    .expect("run");
    assert_eq!(output.status.code(), Some(2), "{output:?}");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("Redis"), "{stderr}");
    let bad = server_command(&[("REDIS_URL", "http://nope")])
        .output()
        .expect("run");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("REDIS_URL"));
}

/// Pauses Redis for `millis` (its clients' commands wait, then time out).
fn pause_redis(redis: &RedisServer, millis: u32) {
    let paused = std::process::Command::new("redis-cli")
        .args([
            "-p",
            &redis.port().to_string(),
            "CLIENT",
            "PAUSE",
            &millis.to_string(),
            "ALL",
        ])
        .output()
        .expect("redis-cli");
    assert!(paused.status.success(), "{paused:?}");
}

/// While Redis stalls, every event used to be admitted and held until its turn: 2,000
/// events of 40 KB took the server from 9 to 98 MB in a second, none refused. Now rate
/// limits and the socket's queue bounds apply on arrival: the flood is refused at once and
/// what waits stays bounded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_during_a_redis_stall_is_refused_on_arrival() {
    let redis = redis_or_skip!();
    let mut config = config(&redis);
    config.rate_limits = Config::default().rate_limits;
    let server = TestServer::cluster(config, 1).await;
    let mut flooder = raw::RawWs::connect(server.addr).await;
    flooder.join("STALL", "Flooder").await;
    let before = raw::rss_kib();
    pause_redis(&redis, 3000);
    let text = "x".repeat(1900);
    let candidate = json!({"candidate": "y".repeat(40_000)});
    let mut sent = 0;
    for i in 0..2_000 {
        let packet = if i % 2 == 0 {
            raw::event_packet("send-message", &json!({"message": text}), None)
        } else {
            raw::event_packet(
                "webrtc-ice-candidate",
                &json!({"targetId": flooder.sid, "candidate": candidate}),
                None,
            )
        };
        if flooder.send_sio(&packet).await.is_err() {
            break;
        }
        sent += 1;
    }
    let mut refused = 0;
    let peak = loop {
        let rss = raw::rss_kib();
        match flooder.next_sio(Duration::from_secs(6)).await {
            Some(raw::Sio::Event { name, args, .. }) if name == "error" => {
                if args[0]["code"] == "rate_limited" {
                    refused += 1;
                }
            }
            Some(_) => {}
            None => break rss,
        }
    };
    let grown = peak.saturating_sub(before) / 1024;
    println!("flood during a Redis stall: {sent} events sent, {refused} refused, RSS +{grown} MB");
    assert!(refused > 0, "nothing was refused");
    assert!(grown < 48, "RSS grew {grown} MB while Redis stalled");
}

/// Disconnects while Redis is away each used to spawn a retry task holding its socket: 1,500
/// connect/disconnect cycles took 8 → 40 MB, and the closed sockets stayed counted against
/// `MAX_CONNECTIONS`. Now pending removals are one bounded set: connections drop to 0 at
/// once, and everyone is removed once Redis is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disconnects_during_an_outage_free_their_connections_at_once() {
    let redis = redis_or_skip!();
    let mut redis = redis;
    let server = cluster(&redis, 1).await;
    let mut sockets = Vec::new();
    for i in 0..300 {
        let mut s = raw::RawWs::connect(server.addr).await;
        s.join(&format!("OUT{}", i % 10), "P").await;
        sockets.push(s);
    }
    server.await_counts((10, 300)).await;
    redis.stop();
    await_ready(server.addr, 503).await;
    let before = raw::rss_kib();
    drop(sockets);
    server.await_no_connections(Duration::from_secs(10)).await;
    // And 1,000 more connect/disconnect cycles while Redis is still away.
    for _ in 0..1_000 {
        let s = raw::RawWs::open(server.addr).await;
        drop(s);
    }
    server.await_no_connections(Duration::from_secs(10)).await;
    let grown = raw::rss_kib().saturating_sub(before) / 1024;
    println!("disconnects during an outage: RSS +{grown} MB, connections back to 0");
    assert!(grown < 16, "RSS grew {grown} MB");
    redis.start_again();
    await_ready(server.addr, 200).await;
}
