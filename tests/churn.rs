//! Churn: 50 WebSocket clients doing 2000 random joins, leaves, room switches,
//! chats and disconnects (with reconnects) over 5 rooms, all at once. Afterwards every room
//! holds exactly the clients that were told they are in it, each once, the host first; and
//! when everyone has left (`EMPTY_ROOM_TTL_SECS=0`) `/health` shows 0 rooms, 0 participants.

mod common;
mod raw;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::{TestClient, TestServer};
use raw::XorShift;
use rust_socketio::TransportType;
use serde_json::{Value, json};

const CLIENTS: usize = 50;
const OPS: usize = 2000;
const ROOMS: &[&str] = &["R0", "R1", "R2", "R3", "R4"];
/// Small enough that rooms fill up and `room_full` happens under churn.
const MAX_PARTICIPANTS: usize = 12;
const SEED: u64 = 0x5EED_C4A2;

/// What one client ended up as, by the acks it got.
struct Outcome {
    client: TestClient,
    room: Option<String>,
    /// Ids this client had before reconnecting: gone for good.
    gone: Vec<String>,
    counts: BTreeMap<&'static str, usize>,
}

/// WebSocket only: a polling client that is not polling at the moment of a burst loses
/// events, acks included, once its 128-packet buffer is full (see `tests/polling_burst.rs`),
/// and rust_socketio 0.6's polling client now and then drops an ack by itself; either would
/// stall a client waiting for an ack here.
fn transport(_i: usize) -> TransportType {
    TransportType::Websocket
}

async fn churn(i: usize, server: &TestServer) -> Outcome {
    let mut rng = XorShift::new(SEED + i as u64);
    let mut client = server.client_over(transport(i)).await;
    let mut room: Option<String> = None;
    let mut gone = Vec::new();
    let mut counts = BTreeMap::new();
    for _ in 0..OPS / CLIENTS {
        let roll = rng.below(100);
        let op = match (roll, &room) {
            (0..=9, _) => "disconnect",
            (10..=24, _) => "chat",
            (25..=44, Some(_)) => "leave",
            (45..=74, Some(_)) => "switch",
            _ => "join",
        };
        *counts.entry(op).or_default() += 1;
        match op {
            "join" | "switch" => {
                let target = ROOMS[rng.below(ROOMS.len())];
                let ack = client
                    .emit_ack(
                        "join-room",
                        json!({"roomId": target, "userName": format!("c{i}")}),
                    )
                    .await;
                if ack["ok"] == true {
                    assert_eq!(ack["roomId"], target, "{ack}");
                    client.id = ack["participantId"].as_str().expect("id").to_owned();
                    room = Some(target.to_owned());
                } else {
                    assert_eq!(
                        ack["code"], "room_full",
                        "client {i} joining {target}: {ack}"
                    );
                    *counts.entry("room_full").or_default() += 1;
                }
            }
            "leave" => {
                let ack = client.emit_ack("leave-room", Value::Null).await;
                match &room {
                    Some(r) => assert_eq!(ack, json!({"ok": true, "roomId": r}), "client {i}"),
                    None => assert_eq!(ack["code"], "not_in_room", "client {i}: {ack}"),
                }
                room = None;
            }
            "chat" => {
                let ack = client
                    .emit_ack(
                        "send-message",
                        json!({"message": format!("hello from {i}")}),
                    )
                    .await;
                assert_eq!(ack["ok"], room.is_some(), "client {i} in {room:?}: {ack}");
                if room.is_none() {
                    assert_eq!(ack["code"], "not_in_room", "{ack}");
                }
            }
            "disconnect" => {
                if !client.id.is_empty() {
                    gone.push(client.id.clone());
                }
                client.disconnect().await;
                client = server.client_over(transport(i)).await;
                room = None;
            }
            _ => unreachable!(),
        }
        client.drain_events();
    }
    Outcome {
        client,
        room,
        gone,
        counts,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_clients_churning_leave_an_exact_registry_and_then_an_empty_one() {
    let started = Instant::now();
    let server = TestServer::with(|c| {
        c.empty_room_ttl = Duration::ZERO;
        c.max_participants = MAX_PARTICIPANTS;
    })
    .await;
    let server = std::sync::Arc::new(server);
    let tasks: Vec<_> = (0..CLIENTS)
        .map(|i| {
            let server = server.clone();
            tokio::spawn(async move { churn(i, &server).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in tasks {
        outcomes.push(t.await.expect("churning client"));
    }
    let churned = started.elapsed();

    // The registry matches what the acks said: rooms, counts, membership, host.
    let mut members: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for o in &outcomes {
        if let Some(r) = &o.room {
            members
                .entry(r.clone())
                .or_default()
                .insert(o.client.id.clone());
        }
    }
    let joined: usize = members.values().map(BTreeSet::len).sum();
    server
        .await_counts((members.len() as u64, joined as u64))
        .await;
    for room in ROOMS {
        let (status, info) = server.get(&format!("/api/room/{room}")).await;
        match members.get(*room) {
            Some(m) => {
                assert_eq!(status, 200, "{room}");
                assert_eq!(info["participantCount"], m.len(), "{room}");
                assert!(m.len() <= MAX_PARTICIPANTS);
            }
            None => assert_eq!(status, 404, "{room} should be gone (TTL 0): {info}"),
        }
    }
    let gone: BTreeSet<String> = outcomes.iter().flat_map(|o| o.gone.clone()).collect();
    let mut seen = BTreeSet::new();
    for (i, o) in outcomes.iter_mut().enumerate() {
        match &o.room {
            Some(r) => {
                // Joining the room one is in answers the full list, changing nothing.
                let ack = o
                    .client
                    .emit_ack("join-room", json!({"roomId": r, "userName": "again"}))
                    .await;
                assert_eq!(ack["ok"], true, "{ack}");
                let list = common::ids(&ack["participants"]);
                let set: BTreeSet<String> = list.iter().cloned().collect();
                assert_eq!(set.len(), list.len(), "someone twice in {r}: {list:?}");
                assert_eq!(&set, &members[r], "members of {r}");
                assert!(
                    set.is_disjoint(&gone),
                    "a disconnected client is still in {r}"
                );
                let admins: Vec<_> = ack["participants"]
                    .as_array()
                    .expect("list")
                    .iter()
                    .map(|p| p["isAdmin"] == true)
                    .collect();
                assert!(
                    admins[0] && admins.iter().filter(|a| **a).count() == 1,
                    "one host, first: {admins:?}"
                );
                assert_eq!(
                    ack["participant"]["userName"],
                    format!("c{i}"),
                    "name unchanged"
                );
                seen.extend(set);
            }
            None => {
                let ack = o.client.emit_ack("leave-room", Value::Null).await;
                assert_eq!(ack["code"], "not_in_room", "{ack}");
            }
        }
    }
    assert_eq!(
        seen.len(),
        joined,
        "every participant is in exactly one room"
    );

    // Everyone leaves: half by leave-room, half by disconnecting.
    let mut totals: BTreeMap<&str, usize> = BTreeMap::new();
    let mut still_connected = Vec::new();
    for (i, o) in outcomes.into_iter().enumerate() {
        for (k, v) in &o.counts {
            *totals.entry(k).or_default() += v;
        }
        if i % 2 == 0 {
            let ack = o.client.emit_ack("leave-room", Value::Null).await;
            assert_eq!(ack["ok"], o.room.is_some(), "{ack}");

            still_connected.push(o.client);
        } else {
            o.client.disconnect().await;
        }
    }
    server.await_counts((0, 0)).await;
    let (_, health) = server.get("/health").await;
    println!("=== churn ===");
    println!(
        "{CLIENTS} clients, {} operations {totals:?} in {:.1} s; at the end {} rooms held {joined} participants; \
         after everyone left: {} rooms, {} participants, {} connections (the {} that left without disconnecting)",
        totals.values().sum::<usize>() - totals.get("room_full").copied().unwrap_or(0),
        churned.as_secs_f64(),
        members.len(),
        health["activeRooms"],
        health["totalParticipants"],
        health["connections"],
        still_connected.len()
    );
    assert_eq!(
        health["connections"],
        still_connected.len(),
        "connection count"
    );
    for c in still_connected {
        c.disconnect().await;
    }
    server.await_no_connections(common::WAIT).await;
}
