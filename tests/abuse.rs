//! What one client may not do to the others or to the server (issue 16): fill the server
//! with rooms, pass per-address limits by writing `X-Forwarded-For`, throw another
//! participant out by flooding it, make the server queue without bound, keep chat history
//! past its budget. Each test reproduces the attack with real clients against the server.

mod common;
mod raw;

use common::{TestClient, TestServer, WAIT};
use prolitemeet_server::address::TrustedProxies;
use prolitemeet_server::limits::Rate;
use serde_json::json;

/// `POST /api/create-room` as the client at `forwarded` (through one trusted proxy).
async fn create_room_as(server: &TestServer, forwarded: Option<&str>) -> u16 {
    let mut request = server.http.post(server.url("/api/create-room"));
    if let Some(address) = forwarded {
        request = request.header("x-forwarded-for", address);
    }
    request.send().await.expect("POST").status().as_u16()
}

/// One address could fill the server with rooms in a second (10,000 with `POST
/// /api/create-room` in a loop), locking every other user out of new rooms. Now its room
/// creations are rate-limited, and it holds at most `MAX_ROOMS_PER_ADDRESS` rooms; others
/// still make theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_cannot_fill_the_server_with_rooms() {
    let server = TestServer::with(|c| {
        c.max_rooms = 100;
        c.max_rooms_per_address = 5;
        c.room_create_rate = Rate {
            per_sec: 1000.0,
            burst: 1000.0,
        };
        c.trusted_proxies = TrustedProxies::Hops(1);
    })
    .await;
    // The attacker connects directly (no proxy header): its address is the TCP peer.
    let mut created = 0;
    for _ in 0..200 {
        match create_room_as(&server, None).await {
            200 => created += 1,
            503 => {}
            other => panic!("unexpected status {other}"),
        }
    }
    assert_eq!(created, 5, "one address holds at most its share");
    // Joins that would make rooms count against the same share.
    let mallory = server.client().await;
    let refused = mallory
        .emit_ack("join-room", json!({"roomId": "MALLORY1", "userName": "M"}))
        .await;
    assert_eq!(refused["code"], "too_many_rooms", "{refused}");
    // Another address is not held back.
    assert_eq!(create_room_as(&server, Some("198.51.100.7")).await, 200);
    let (rooms, _) = server.counts().await;
    assert_eq!(rooms, 6);
}

/// Behind a trusted proxy, a socket's address is the one its proxy forwarded in the handshake
/// (the server keeps only that header of the handshake for the session's life): the rooms its
/// joins make count against that address's share, not the proxy's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_socket_behind_a_trusted_proxy_is_counted_as_its_forwarded_address() {
    let server = TestServer::with(|c| {
        c.max_rooms = 100;
        c.max_rooms_per_address = 1;
        c.trusted_proxies = TrustedProxies::Hops(1);
    })
    .await;
    let mut alice = TestClient::connect_forwarded_for(&server, "198.51.100.7").await;
    alice.join("ALICE1", "Alice").await;
    let again = alice
        .emit_ack(
            "join-room",
            json!({"roomId": "ALICE2", "userName": "Alice"}),
        )
        .await;
    assert_eq!(again["code"], "too_many_rooms", "{again}");
    // Another forwarded address, through the same proxy, has its own share.
    let mut bob = TestClient::connect_forwarded_for(&server, "198.51.100.8").await;
    bob.join("BOB1", "Bob").await;
    // So has the proxy's own address (a client without the header).
    let mut carol = server.client().await;
    carol.join("CAROL1", "Carol").await;
    let (rooms, _) = server.counts().await;
    assert_eq!(rooms, 3);
}

/// Room creation is rate-limited per address, for `create-room` and for joins that make a
/// room alike; joining rooms that exist is not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn room_creation_is_rate_limited_per_address() {
    let server = TestServer::with(|c| {
        c.room_create_rate = Rate {
            per_sec: 0.01,
            burst: 3.0,
        };
    })
    .await;
    for _ in 0..2 {
        assert_eq!(create_room_as(&server, None).await, 200);
    }
    let c = server.client().await;
    let made = c
        .emit_ack("join-room", json!({"roomId": "FRESH1", "userName": "C"}))
        .await;
    assert_eq!(made["ok"], true, "{made}");
    let refused = c
        .emit_ack("join-room", json!({"roomId": "FRESH2", "userName": "C"}))
        .await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    assert_eq!(create_room_as(&server, None).await, 429);
    // Joining an existing room is no creation.
    let d = server.client().await;
    let joined = d
        .emit_ack("join-room", json!({"roomId": "FRESH1", "userName": "D"}))
        .await;
    assert_eq!(joined["ok"], true, "{joined}");
    let (rooms, participants) = server.counts().await;
    assert_eq!((rooms, participants), (3, 2));
}

/// A client writing a new `X-Forwarded-For` per request used to get a fresh bucket each
/// time. Without `TRUSTED_PROXIES` the header is ignored; behind one trusted proxy the
/// right-most address (the one the proxy added) is the client, whatever the client wrote
/// to the left of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_forwarded_for_does_not_pass_per_address_limits() {
    let ice = |server: &TestServer, forwarded: String| {
        let request = server
            .http
            .get(server.url("/api/ice-servers"))
            .header("x-forwarded-for", forwarded);
        async move { request.send().await.expect("GET").status().as_u16() }
    };
    let rate = Rate {
        per_sec: 0.01,
        burst: 3.0,
    };
    let open = TestServer::with(|c| c.ice_rate = rate).await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(ice(&open, format!("10.0.0.{i}")).await);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429, 429, 429],
        "forged headers ignored"
    );

    let proxied = TestServer::with(|c| {
        c.ice_rate = rate;
        c.trusted_proxies = TrustedProxies::Hops(1);
    })
    .await;
    let mut statuses = Vec::new();
    for i in 0..6 {
        statuses.push(ice(&proxied, format!("10.0.0.{i}, 198.51.100.7")).await);
    }
    assert_eq!(
        statuses,
        [200, 200, 200, 429, 429, 429],
        "the proxy's address for the client counts, not the client's own claims"
    );
    assert_eq!(ice(&proxied, "198.51.100.8".into()).await, 200);
}

/// The highest RSS of this process (the in-process server included) while `work` runs, in
/// KiB, sampled every 25 ms.
async fn peak_rss_during<T>(work: impl std::future::Future<Output = T>) -> (T, u64) {
    let peak = std::sync::Arc::new(std::sync::atomic::AtomicU64::new(raw::rss_kib()));
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let (peak, done) = (peak.clone(), done.clone());
        tokio::spawn(async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                peak.fetch_max(raw::rss_kib(), std::sync::atomic::Ordering::Relaxed);
                tokio::time::sleep(std::time::Duration::from_millis(25)).await;
            }
        })
    };
    let out = work.await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    sampler.await.ok();
    (out, peak.load(std::sync::atomic::Ordering::Relaxed))
}

/// ~90 KB of SDP, as an offer.
fn big_offer(n: usize) -> serde_json::Value {
    json!({"type": "offer", "sdp": format!("v=0 {n} {}", "a".repeat(90_000))})
}

/// A participant flooding another with thousands of offers of ~90 KB used to fill the victim's
/// outgoing buffer; the server then "evicted" the victim (the room got `user-left`) but
/// could not close it (its buffer was full), leaving a zombie. Now the flood is refused to
/// its sender (a byte budget per target), and the victim stays, untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_flood_limits_its_sender_never_its_target() {
    let server = TestServer::with(|c| {
        c.rate_limits = prolitemeet_server::Config::default().rate_limits;
    })
    .await;
    let mut victim = server.joined("FLOOD", "Victim").await;
    let mut bystander = server.joined("FLOOD", "Bystander").await;
    let mut attacker = raw::RawWs::connect(server.addr).await;
    attacker.join("FLOOD", "Attacker").await;
    bystander.wait_for("participants-updated").await;
    let target = victim.id.clone();
    let mut sent = 0;
    for n in 0..1_500 {
        let offer = raw::event_packet(
            "webrtc-offer",
            &json!({"targetId": target, "offer": big_offer(n)}),
            None,
        );
        if attacker.send_sio(&offer).await.is_err() {
            break;
        }
        sent += 1;
    }
    // The attacker is refused (then disconnected as a flooder).
    let mut refused = 0;
    loop {
        match attacker.next_sio(WAIT).await {
            Some(raw::Sio::Event { name, args, .. }) if name == "error" => {
                assert_eq!(args[0]["code"], "rate_limited");
                refused += 1;
            }
            Some(_) => {}
            None => break,
        }
    }
    println!("relay flood: {sent} offers sent, {refused} refused, then the sender was cut");
    assert!(refused > 0, "the flood was not refused");
    // The victim got the few offers within its sender's budget, and is still in the call.
    let mut offers = 0;
    while let Some(offer) = victim
        .wait_for_within("webrtc-offer", std::time::Duration::from_millis(500))
        .await
    {
        assert_eq!(offer["senderId"], attacker.sid.as_str());
        offers += 1;
    }
    // Its budget lets ~1 MB through at once, then 256 KB a second: far from 270 MB.
    assert!(offers < 200, "{offers} offers of 90 KB reached the victim");
    let ack = victim
        .emit_ack("send-message", json!({"message": "still here"}))
        .await;
    assert_eq!(ack["ok"], true, "{ack}");
    let left = bystander.wait_for_within("user-left", common::QUIET).await;
    if let Some(left) = left {
        assert_ne!(
            left["participantId"],
            victim.id.as_str(),
            "the victim was thrown out"
        );
    }
}

/// A participant that stops reading is evicted once its outgoing buffer is full; that used
/// to leave it connected (socketioxide could not queue the disconnect packet), still counted
/// against `MAX_CONNECTIONS`, never told. Now its connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_evicted_slow_reader_is_really_disconnected() {
    let server = TestServer::with(|c| {
        c.socket_buffer_packets = 64;
        c.socket_buffer_bytes = 256 * 1024;
    })
    .await;
    let mut sloth = raw::RawWs::connect_with(server.addr, Some(4096)).await;
    sloth.join("SLOW", "Sloth").await;
    let mut chatter = server.joined("SLOW", "Chatter").await;
    // From here on the sloth never reads. The chatter reads its own echo before sending the
    // next message, so only the sloth's buffer can fill, however slow the machine.
    let text = "😀".repeat(2000);
    let mut left = None;
    for _ in 0..400 {
        chatter.emit("send-message", json!({"message": text})).await;
        match chatter.wait_for_either("new-message", "user-left").await {
            ("user-left", payload) => {
                left = Some(payload);
                break;
            }
            _ => continue,
        }
    }
    let left = match left {
        Some(left) => left,
        None => chatter.wait_for("user-left").await,
    };
    assert_eq!(left["participantId"], sloth.sid.as_str());
    common::eventually(WAIT, || async {
        let (_, health) = server.get("/health").await;
        (health["connections"] == 1)
            .then_some(())
            .ok_or_else(|| format!("the evicted socket is still connected: {health}"))
    })
    .await;
    drop(sloth);
}

/// In a room holding a long chat history, each repeated `join-room` of a member answered the
/// whole history twice (the event and the ack): 4 sockets that stopped reading × 51 joins
/// took the server from 140 MB to 775 MB. Now repeated joins have a small quota, history is
/// bounded in bytes, and a socket's outgoing buffer too: whoever reads too slowly is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_joins_cannot_amplify_into_memory() {
    let server = TestServer::with(|c| {
        c.rate_limits = prolitemeet_server::Config::default().rate_limits;
    })
    .await;
    let mut host = raw::RawWs::connect(server.addr).await;
    host.join("AMP", "Host").await;
    let text = "😀".repeat(2000);
    for _ in 0..200 {
        host.send_sio(&raw::event_packet(
            "send-message",
            &json!({"message": text}),
            None,
        ))
        .await
        .expect("chat");
    }
    for _ in 0..200 {
        host.expect_event("new-message").await;
    }
    let mut readers = Vec::new();
    for i in 0..4 {
        let mut r = raw::RawWs::connect_with(server.addr, Some(4096)).await;
        r.join("AMP", &format!("R{i}")).await;
        readers.push(r);
    }
    let before = raw::rss_kib();
    let ((), peak) = peak_rss_during(async {
        for r in &mut readers {
            for _ in 0..51 {
                let join = raw::event_packet(
                    "join-room",
                    &json!({"roomId": "AMP", "userName": "R"}),
                    None,
                );
                if r.send_sio(&join).await.is_err() {
                    break;
                }
            }
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    })
    .await;
    let grown = peak.saturating_sub(before) / 1024;
    println!(
        "repeated joins: RSS {} MB before, peak +{grown} MB",
        before / 1024
    );
    assert!(grown < 64, "RSS grew {grown} MB");
}

/// 40 sockets each joined a room of their own, sent 200 messages of 8 KB and left: the
/// histories stayed, 7.5 → 140 MB, for the empty-room grace. Now history is bounded in
/// bytes per room and in all rooms. With connection state recovery on (the default), the
/// writers' dropped sessions wait for their clients, keeping what they were sent last: that is
/// bounded too (`RECOVERY_BUFFER_BYTES`; with only the 4 MiB outgoing buffer: +141 MB).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_history_cannot_outgrow_its_budget() {
    let server = TestServer::with(|c| {
        let defaults = prolitemeet_server::Config::default();
        c.recovery_window = defaults.recovery_window;
        c.recovery_buffer_bytes = defaults.recovery_buffer_bytes;
    })
    .await;
    let text = "😀".repeat(2000);
    let before = raw::rss_kib();
    let ((), peak) = peak_rss_during(async {
        for i in 0..40 {
            let mut s = raw::RawWs::connect(server.addr).await;
            s.join(&format!("HIST{i}"), "Writer").await;
            for _ in 0..200 {
                s.send_sio(&raw::event_packet(
                    "send-message",
                    &json!({"message": text}),
                    None,
                ))
                .await
                .expect("chat");
            }
            for _ in 0..200 {
                s.expect_event("new-message").await;
            }
            s.send_sio(&raw::event_packet(
                "leave-room",
                &serde_json::Value::Null,
                None,
            ))
            .await
            .expect("leave");
            s.expect_event("left-room").await;
        }
    })
    .await;
    let after = raw::rss_kib();
    println!(
        "chat history: RSS {} MB before, peak +{} MB, +{} MB after",
        before / 1024,
        peak.saturating_sub(before) / 1024,
        after.saturating_sub(before) / 1024
    );
    assert!(
        after.saturating_sub(before) < 32 * 1024,
        "40 rooms' history kept {} MB",
        after.saturating_sub(before) / 1024
    );
}
