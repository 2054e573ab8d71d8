//! What one client may not do to the others or to the server (issue 16): fill the server
//! with rooms, pass per-address limits by writing `X-Forwarded-For`, throw another
//! participant out by flooding it, make the server queue without bound, keep chat history
//! past its budget. Each test reproduces the attack with real clients against the server.

mod common;
mod raw;

use common::TestServer;
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
