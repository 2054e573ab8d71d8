//! Host moderation (issue 20, the contract in MODERATION.md) against a live server: the host
//! role and its succession, permissions enforced on every media alias, mute-all, kick,
//! transfer, lock, lobby with admission, passwords and end-room, with their ordering, their
//! refusals (`forbidden`, `invalid_payload`, `target_not_in_room`) and the silence after a
//! refusal. With `TEST_CLUSTER_REDIS` set (tests/cluster-suite.sh) the clients of each room
//! are spread over two instances: the host on one, the others alternating.

mod common;

use std::time::Duration;

use common::{TestClient, TestServer, ids};
use serde_json::{Value, json};

/// A room id no other test uses.
fn fresh_room() -> String {
    format!("MOD{}", &uuid::Uuid::new_v4().simple().to_string()[..10])
}

/// Client number `n` of a room: on instance `n % instances`, so in a cluster the host (0)
/// and its first participant (1) are never on the same instance.
async fn client_no(server: &TestServer, n: usize) -> TestClient {
    server.client_of(n % server.addrs.len()).await
}

const NAMES: [&str; 5] = ["Host", "Bob", "Cat", "Dan", "Eve"];

/// `n` participants of a fresh room, joined in order (the first is the host), with every
/// join's events consumed.
async fn room_of(server: &TestServer, n: usize) -> (String, Vec<TestClient>) {
    let room = fresh_room();
    let mut clients: Vec<TestClient> = Vec::new();
    for (i, name) in NAMES.iter().enumerate().take(n) {
        let mut c = client_no(server, i).await;
        c.join(&room, name).await;
        for other in clients.iter_mut() {
            other.expect("user-joined").await;
            other.expect("participants-updated").await;
        }
        clients.push(c);
    }
    (room, clients)
}

/// Sends `event` with an ack and expects a success.
async fn ok(c: &mut TestClient, event: &str, payload: Value) -> Value {
    let ack = c.emit_ack(event, payload).await;
    assert_eq!(ack["ok"], true, "{event}: {ack}");
    ack
}

/// Sends `event` with an ack and expects the refusal `code`, in the ack and the `error` event.
async fn refused(c: &mut TestClient, event: &str, payload: Value, code: &str) {
    let ack = c.emit_ack(event, payload.clone()).await;
    assert_eq!(ack["ok"], false, "{event} {payload}: {ack}");
    assert_eq!(ack["code"], code, "{event} {payload}: {ack}");
    assert!(
        ack["error"].as_str().is_some_and(|m| !m.is_empty()),
        "{ack}"
    );
    c.expect_error(event, code).await;
}

/// Nobody among `clients` receives anything for a short while.
async fn all_quiet(clients: &mut [TestClient]) {
    for c in clients.iter_mut() {
        c.expect_quiet().await;
    }
}

/// The participant `id` in a list.
fn find<'a>(list: &'a Value, id: &str) -> &'a Value {
    list.as_array()
        .expect("list")
        .iter()
        .find(|p| p["id"] == id)
        .unwrap_or_else(|| panic!("{id} not in {list}"))
}

/// The host of a list (the only one with `isAdmin`).
fn admins(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("list")
        .iter()
        .filter(|p| p["isAdmin"] == true)
        .map(|p| p["id"].as_str().expect("id").to_owned())
        .collect()
}

#[tokio::test]
async fn the_first_joiner_is_host_and_everyone_sees_room_state_and_permissions() {
    let server = TestServer::start().await;
    let room = fresh_room();
    let mut host = client_no(&server, 0).await;
    let joined = host.join(&room, "Host").await;
    assert_eq!(
        joined["room"],
        json!({"hostId": host.id, "locked": false, "lobby": false, "hasPassword": false})
    );
    let me = &joined["participant"];
    assert_eq!(me["isAdmin"], true);
    for flag in [
        "canUseMic",
        "hasMicPermission",
        "canUseCamera",
        "hasCameraPermission",
        "canShareScreen",
    ] {
        assert_eq!(me[flag], true, "{flag}: {me}");
    }
    let mut bob = client_no(&server, 1).await;
    let joined = bob.join(&room, "Bob").await;
    assert_eq!(joined["room"]["hostId"], host.id);
    assert_eq!(joined["participant"]["isAdmin"], false);
    assert_eq!(admins(&joined["participants"]), [host.id.clone()]);
    let user_joined = host.expect("user-joined").await;
    assert_eq!(user_joined["participant"]["canShareScreen"], true);
    host.expect("participants-updated").await;
    let (status, info) = server.get(&format!("/api/room/{room}")).await;
    assert_eq!(status, 200);
    assert_eq!(info["hasPassword"], false);
    assert_eq!(info["participantCount"], 2);
    // A member re-sending join-room gets the room state again.
    bob.emit("join-room", json!({"roomId": room, "userName": "Bob"}))
        .await;
    assert_eq!(bob.wait_for("joined-room").await["room"]["hostId"], host.id);
}

#[tokio::test]
async fn mic_permission_off_mutes_the_target_and_no_alias_can_unmute_it() {
    let server = TestServer::start().await;
    let (room, mut c) = room_of(&server, 3).await;
    let (bob_id, host_id) = (c[1].id.clone(), c[0].id.clone());
    ok(
        &mut c[0],
        "admin-toggle-mic-permission",
        json!({"roomId": room, "participantId": bob_id, "canUseMic": false}),
    )
    .await;
    // The others: toggled, media-toggled, then the final list.
    for i in [0, 2] {
        let toggled = c[i].expect("participant-audio-toggled").await;
        assert_eq!(
            toggled,
            json!({"participantId": bob_id, "isAudioMuted": true, "isAudioEnabled": false})
        );
        let media = c[i].expect("media-toggled").await;
        assert_eq!(media["type"], "audio");
        assert_eq!(media["enabled"], false);
        assert_eq!(media["participantName"], "Bob");
        let list = c[i].expect("participants-updated").await;
        let bob = find(&list, &bob_id);
        assert_eq!(
            (
                &bob["canUseMic"],
                &bob["hasMicPermission"],
                &bob["isAudioMuted"],
                &bob["isAudioEnabled"]
            ),
            (&json!(false), &json!(false), &json!(true), &json!(false))
        );
    }
    // The target: permission-changed, then the list.
    let changed = c[1].expect("permission-changed").await;
    assert_eq!(
        changed,
        json!({"participantId": bob_id, "kind": "mic", "allowed": false, "byId": host_id, "byName": "Host"})
    );
    let list = c[1].expect("participants-updated").await;
    assert_eq!(find(&list, &bob_id)["canUseMic"], false);

    // Every way of turning the mic on is refused and changes nothing.
    for (event, payload) in [
        ("toggle-audio", json!({"isAudioMuted": false})),
        ("toggle-audio", json!({"isAudioEnabled": true})),
        ("toggle-media", json!({"type": "audio", "enabled": true})),
    ] {
        refused(&mut c[1], event, payload, "forbidden").await;
    }
    all_quiet(&mut c).await;
    // Turning it off stays allowed, in every spelling, even when already off.
    for (event, payload) in [
        ("toggle-audio", json!({"isAudioMuted": true})),
        ("toggle-audio", json!({"isAudioEnabled": false})),
        ("toggle-media", json!({"type": "audio", "enabled": false})),
    ] {
        let ack = ok(&mut c[1], event, payload).await;
        assert_eq!(ack["participant"]["isAudioMuted"], true, "{ack}");
    }
    // Each of the three is a media change like any other.
    for _ in 0..3 {
        for i in [0, 2] {
            c[i].expect("participant-audio-toggled").await;
            c[i].expect("media-toggled").await;
            c[i].expect("participants-updated").await;
        }
        c[1].expect("participants-updated").await;
    }

    // Allowed again (by the alias): flags back, media stays off, and the target may unmute.
    ok(
        &mut c[0],
        "admin-toggle-mic-permission",
        json!({"participantId": bob_id, "allowed": true}),
    )
    .await;
    let changed = c[1].expect("permission-changed").await;
    assert_eq!(changed["allowed"], true);
    let list = c[1].expect("participants-updated").await;
    let bob = find(&list, &bob_id);
    assert_eq!(
        (&bob["canUseMic"], &bob["isAudioMuted"]),
        (&json!(true), &json!(true))
    );
    let list = c[2].expect("participants-updated").await;
    assert_eq!(find(&list, &bob_id)["hasMicPermission"], true);
    let ack = ok(&mut c[1], "toggle-audio", json!({"isAudioMuted": false})).await;
    assert_eq!(ack["participant"]["isAudioEnabled"], true);
    assert_eq!(
        c[2].expect("participant-audio-toggled").await["isAudioEnabled"],
        true
    );
}

#[tokio::test]
async fn camera_permission_off_turns_video_off_and_only_changes_flags_when_already_off() {
    let server = TestServer::start().await;
    let (_room, mut c) = room_of(&server, 2).await;
    let bob_id = c[1].id.clone();
    ok(
        &mut c[0],
        "admin-toggle-camera-permission",
        json!({"participantId": bob_id, "allowed": false}),
    )
    .await;
    assert_eq!(
        c[0].expect("participant-video-toggled").await,
        json!({"participantId": bob_id, "isVideoOff": true, "isVideoEnabled": false})
    );
    assert_eq!(c[0].expect("media-toggled").await["type"], "video");
    let list = c[0].expect("participants-updated").await;
    assert_eq!(find(&list, &bob_id)["hasCameraPermission"], false);
    assert_eq!(c[1].expect("permission-changed").await["kind"], "camera");
    c[1].expect("participants-updated").await;
    refused(
        &mut c[1],
        "toggle-video",
        json!({"isVideoOff": false}),
        "forbidden",
    )
    .await;
    refused(
        &mut c[1],
        "toggle-video",
        json!({"isVideoEnabled": true}),
        "forbidden",
    )
    .await;
    refused(
        &mut c[1],
        "toggle-media",
        json!({"type": "video", "enabled": true}),
        "forbidden",
    )
    .await;
    all_quiet(&mut c).await;
    // On, then off again while the video is off: only the flags change, no toggled events.
    ok(
        &mut c[0],
        "admin-toggle-camera-permission",
        json!({"participantId": bob_id, "canUseCamera": true}),
    )
    .await;
    c[0].expect("participants-updated").await;
    c[1].expect("permission-changed").await;
    c[1].expect("participants-updated").await;
    ok(
        &mut c[0],
        "admin-toggle-camera-permission",
        json!({"participantId": bob_id, "canUseCamera": false, "allowed": false}),
    )
    .await;
    let list = c[0].expect("participants-updated").await;
    assert_eq!(find(&list, &bob_id)["canUseCamera"], false);
    assert_eq!(c[1].expect("permission-changed").await["allowed"], false);
    c[1].expect("participants-updated").await;
}

#[tokio::test]
async fn screen_share_permission_off_stops_a_share_and_blocks_new_ones() {
    let server = TestServer::start().await;
    let (_room, mut c) = room_of(&server, 2).await;
    let bob_id = c[1].id.clone();
    ok(&mut c[1], "start-screen-share", json!({})).await;
    c[0].expect("user-started-screen-share").await;
    c[0].expect("participants-updated").await;
    c[1].expect("participants-updated").await;

    ok(
        &mut c[0],
        "admin-toggle-screen-share-permission",
        json!({"participantId": bob_id, "canShareScreen": false}),
    )
    .await;
    assert_eq!(
        c[0].expect("user-stopped-screen-share").await,
        json!({"participantId": bob_id})
    );
    let list = c[0].expect("participants-updated").await;
    let bob = find(&list, &bob_id);
    assert_eq!(
        (&bob["isScreenSharing"], &bob["canShareScreen"]),
        (&json!(false), &json!(false))
    );
    assert_eq!(c[1].expect("permission-changed").await["kind"], "screen");
    c[1].expect("participants-updated").await;

    refused(&mut c[1], "start-screen-share", json!({}), "forbidden").await;
    refused(
        &mut c[1],
        "toggle-screen-share",
        json!({"isScreenSharing": true}),
        "forbidden",
    )
    .await;
    all_quiet(&mut c).await;
    let ack = ok(&mut c[1], "stop-screen-share", json!({})).await;
    assert_eq!(ack["participant"]["isScreenSharing"], false);
    ok(
        &mut c[1],
        "toggle-screen-share",
        json!({"isScreenSharing": false}),
    )
    .await;
    for _ in 0..2 {
        c[0].expect("user-stopped-screen-share").await;
        c[0].expect("participants-updated").await;
        c[1].expect("participants-updated").await;
    }
    ok(
        &mut c[0],
        "admin-toggle-screen-share-permission",
        json!({"participantId": bob_id, "allowed": true}),
    )
    .await;
    assert_eq!(c[1].expect("permission-changed").await["allowed"], true);
    c[0].expect("participants-updated").await;
    ok(&mut c[1], "start-screen-share", json!({})).await;
    assert_eq!(
        c[0].expect("user-started-screen-share").await["participantId"],
        bob_id
    );
}

#[tokio::test]
async fn only_the_host_moderates_and_every_refusal_is_silent() {
    let server = TestServer::start().await;
    let (room, mut c) = room_of(&server, 3).await;
    let (host_id, bob_id) = (c[0].id.clone(), c[1].id.clone());
    // A non-host: forbidden for every moderation event, its own permissions included.
    for (event, payload) in [
        (
            "admin-toggle-mic-permission",
            json!({"participantId": bob_id, "canUseMic": true}),
        ),
        (
            "admin-toggle-camera-permission",
            json!({"participantId": host_id, "canUseCamera": false}),
        ),
        (
            "admin-toggle-screen-share-permission",
            json!({"participantId": host_id, "allowed": false}),
        ),
        ("mute-all", json!({})),
        ("kick-participant", json!({"participantId": host_id})),
        ("transfer-host", json!({"participantId": bob_id})),
        ("lock-room", json!({"locked": true})),
        ("set-lobby", json!({"enabled": true})),
        ("admit-participant", json!({"participantId": "nobody"})),
        ("deny-participant", json!({"participantId": "nobody"})),
        ("set-room-password", json!({"password": "secret"})),
        ("end-room", Value::Null),
    ] {
        refused(&mut c[1], event, payload, "forbidden").await;
    }
    // Bad payloads from the host.
    let bad: Vec<(&str, Value)> = vec![
        ("admin-toggle-mic-permission", json!("x")),
        ("admin-toggle-mic-permission", json!(42)),
        ("admin-toggle-mic-permission", json!([bob_id])),
        ("admin-toggle-mic-permission", json!({"canUseMic": false})),
        (
            "admin-toggle-mic-permission",
            json!({"participantId": 42, "canUseMic": false}),
        ),
        (
            "admin-toggle-mic-permission",
            json!({"participantId": [bob_id], "canUseMic": false}),
        ),
        (
            "admin-toggle-mic-permission",
            json!({"participantId": {}, "canUseMic": false}),
        ),
        (
            "admin-toggle-mic-permission",
            json!({"participantId": bob_id}),
        ),
        (
            "admin-toggle-mic-permission",
            json!({"participantId": bob_id, "canUseMic": "false"}),
        ),
        (
            "admin-toggle-mic-permission",
            json!({"participantId": bob_id, "canUseMic": 0}),
        ),
        (
            "admin-toggle-mic-permission",
            json!({"participantId": bob_id, "canUseMic": null}),
        ),
        (
            "admin-toggle-mic-permission",
            json!({"participantId": bob_id, "allowed": 1}),
        ),
        (
            "admin-toggle-mic-permission",
            json!({"participantId": bob_id, "canUseMic": false, "allowed": true}),
        ),
        (
            "admin-toggle-camera-permission",
            json!({"participantId": bob_id, "canUseCamera": "true"}),
        ),
        (
            "admin-toggle-screen-share-permission",
            json!({"participantId": bob_id, "allowed": null}),
        ),
        ("lock-room", json!({"locked": "true"})),
        ("lock-room", json!({"locked": 1})),
        ("lock-room", json!({})),
        ("set-lobby", json!({"enabled": "yes"})),
        ("set-lobby", json!({"enabled": 0})),
        ("set-lobby", json!("on")),
        (
            "kick-participant",
            json!({"participantId": bob_id, "reason": 5}),
        ),
        ("kick-participant", json!({"participantId": host_id})),
        ("deny-participant", json!({"participantId": 7})),
        ("set-room-password", json!({"password": "abc"})),
        ("set-room-password", json!({"password": "x".repeat(129)})),
        ("set-room-password", json!({"password": 1234})),
        ("set-room-password", json!({})),
        ("mute-all", json!("all")),
        ("end-room", json!([1])),
    ];
    for (event, payload) in bad {
        refused(&mut c[0], event, payload, "invalid_payload").await;
    }
    // Targets outside the room.
    let mut stranger = client_no(&server, 1).await;
    stranger.join(&fresh_room(), "Stranger").await;
    for (event, payload) in [
        (
            "admin-toggle-mic-permission",
            json!({"participantId": "nobody", "canUseMic": false}),
        ),
        (
            "admin-toggle-camera-permission",
            json!({"participantId": stranger.id, "canUseCamera": false}),
        ),
        (
            "admin-toggle-screen-share-permission",
            json!({"participantId": stranger.id, "canShareScreen": false}),
        ),
        ("kick-participant", json!({"participantId": stranger.id})),
        ("transfer-host", json!({"participantId": stranger.id})),
        ("admit-participant", json!({"participantId": bob_id})),
        ("deny-participant", json!({"participantId": stranger.id})),
    ] {
        refused(&mut c[0], event, payload, "target_not_in_room").await;
    }
    // Another room named: not_in_room.
    refused(
        &mut c[0],
        "mute-all",
        json!({"roomId": "ELSEWHERE"}),
        "not_in_room",
    )
    .await;
    all_quiet(&mut c).await;
    stranger.expect_quiet().await;
    // Nothing changed: a newcomer sees the same host, flags and room.
    let mut late = client_no(&server, 0).await;
    let joined = late.join(&room, "Late").await;
    assert_eq!(
        joined["room"],
        json!({"hostId": host_id, "locked": false, "lobby": false, "hasPassword": false})
    );
    for p in joined["participants"].as_array().expect("list") {
        for flag in ["canUseMic", "canUseCamera", "canShareScreen"] {
            assert_eq!(p[flag], true, "{p}");
        }
    }
    let (_, info) = server.get(&format!("/api/room/{room}")).await;
    assert_eq!(info["participantCount"], 4);
}

#[tokio::test]
async fn mute_all_mutes_everyone_but_the_host_and_the_already_muted() {
    let server = TestServer::start().await;
    let (room, mut c) = room_of(&server, 4).await;
    ok(&mut c[3], "toggle-audio", json!({"isAudioMuted": true})).await;
    for other in c.iter_mut().take(3) {
        other.expect("participant-audio-toggled").await;
        other.expect("media-toggled").await;
        other.expect("participants-updated").await;
    }
    c[3].expect("participants-updated").await;
    ok(&mut c[0], "mute-all", json!({"roomId": room})).await;
    let muted = [c[1].id.clone(), c[2].id.clone()];
    for i in 0..4 {
        let me = c[i].id.clone();
        let mut seen = Vec::new();
        let list = loop {
            let (name, payload) = c[i].next().await;
            match name.as_str() {
                "participant-audio-toggled" => {
                    assert_eq!(payload["isAudioMuted"], true);
                    seen.push(payload["participantId"].as_str().expect("id").to_owned());
                }
                "media-toggled" => {
                    assert_eq!(
                        seen.last(),
                        payload["participantId"]
                            .as_str()
                            .map(str::to_owned)
                            .as_ref()
                    );
                }
                "participants-updated" => break payload,
                other => panic!("unexpected {other}: {payload}"),
            }
        };
        let expected: Vec<&String> = muted.iter().filter(|id| **id != me).collect();
        assert_eq!(seen.iter().collect::<Vec<_>>(), expected, "client {i}");
        for p in list.as_array().expect("list") {
            let is_host = p["id"] == c[0].id.as_str();
            assert_eq!(p["isAudioMuted"], !is_host, "{p}");
            assert_eq!(p["canUseMic"], true, "{p}");
        }
    }
    all_quiet(&mut c).await;
    // The muted may unmute themselves.
    ok(&mut c[1], "toggle-audio", json!({"isAudioMuted": false})).await;
    // Nothing to mute: the list only.
    ok(&mut c[0], "mute-all", Value::Null).await;
}

#[tokio::test]
async fn a_kicked_participant_is_told_then_disconnected_and_the_room_moves_on() {
    let server = TestServer::start().await;
    let (room, mut c) = room_of(&server, 3).await;
    let (host_id, bob_id) = (c[0].id.clone(), c[1].id.clone());
    ok(
        &mut c[0],
        "kick-participant",
        json!({"participantId": bob_id, "reason": "spam"}),
    )
    .await;
    assert_eq!(
        c[1].expect("kicked").await,
        json!({"roomId": room, "byId": host_id, "byName": "Host", "reason": "spam"})
    );
    let error = c[1].expect("error").await;
    assert_eq!(
        (&error["code"], &error["event"]),
        (&json!("kicked"), &Value::Null)
    );
    c[1].await_server_disconnect(Duration::from_secs(2)).await;
    for i in [0, 2] {
        assert_eq!(
            c[i].expect("user-left").await,
            json!({"participantId": bob_id, "userName": "Bob"})
        );
        let list = c[i].expect("participants-updated").await;
        assert_eq!(ids(&list), [host_id.clone(), c[2].id.clone()]);
    }
    let (_, info) = server.get(&format!("/api/room/{room}")).await;
    assert_eq!(info["participantCount"], 2);
    // Without a reason: null.
    let cat = c[2].id.clone();
    ok(&mut c[0], "kick-participant", json!({"participantId": cat})).await;
    assert_eq!(c[2].expect("kicked").await["reason"], Value::Null);
}

#[tokio::test]
async fn transfer_and_succession_move_the_host_role_in_join_order() {
    let server = TestServer::start().await;
    let (room, mut c) = room_of(&server, 3).await;
    let ids_in_order: Vec<String> = c.iter().map(|c| c.id.clone()).collect();
    ok(
        &mut c[0],
        "transfer-host",
        json!({"participantId": ids_in_order[2]}),
    )
    .await;
    for client in c.iter_mut() {
        assert_eq!(
            client.expect("host-changed").await,
            json!({"roomId": room, "hostId": ids_in_order[2], "previousHostId": ids_in_order[0]})
        );
        let list = client.expect("participants-updated").await;
        assert_eq!(ids(&list), ids_in_order, "no reordering");
        assert_eq!(admins(&list), [ids_in_order[2].clone()]);
    }
    refused(&mut c[0], "lock-room", json!({"locked": true}), "forbidden").await;
    for locked in [true, false] {
        ok(&mut c[2], "lock-room", json!({"locked": locked})).await;
        for client in c.iter_mut() {
            assert_eq!(client.expect("room-lock-changed").await["locked"], locked);
        }
    }
    // The new host leaves: the earliest remaining (the old host) is host again.
    c[2].emit("leave-room", json!({})).await;
    for stayer in c.iter_mut().take(2) {
        assert_eq!(
            stayer.expect("user-left").await["participantId"],
            ids_in_order[2]
        );
        assert_eq!(
            stayer.expect("host-changed").await,
            json!({"roomId": room, "hostId": ids_in_order[0], "previousHostId": ids_in_order[2]})
        );
        let list = stayer.expect("participants-updated").await;
        assert_eq!(admins(&list), [ids_in_order[0].clone()]);
    }
    // The host disconnects: Bob inherits and can moderate at once.
    let host = c.remove(0);
    host.disconnect().await;
    assert_eq!(
        c[0].expect("user-left").await["participantId"],
        ids_in_order[0]
    );
    assert_eq!(c[0].expect("host-changed").await["hostId"], ids_in_order[1]);
    assert_eq!(
        admins(&c[0].expect("participants-updated").await),
        [ids_in_order[1].clone()]
    );
    ok(&mut c[0], "set-lobby", json!({"enabled": true})).await;
    let late = client_no(&server, 1).await;
    let ack = late
        .emit_ack("join-room", json!({"roomId": room, "userName": "Late"}))
        .await;
    assert_eq!(ack["waiting"], true);
}

#[tokio::test]
async fn a_locked_room_refuses_newcomers_but_not_its_members() {
    let server = TestServer::start().await;
    let (room, mut c) = room_of(&server, 2).await;
    let host_id = c[0].id.clone();
    ok(&mut c[0], "lock-room", json!({"locked": true})).await;
    for client in c.iter_mut() {
        assert_eq!(
            client.expect("room-lock-changed").await,
            json!({"roomId": room, "locked": true, "byId": host_id})
        );
    }
    // Locked beats the lobby and the password.
    ok(&mut c[0], "set-lobby", json!({"enabled": true})).await;
    ok(
        &mut c[0],
        "set-room-password",
        json!({"password": "letmein"}),
    )
    .await;
    for client in c.iter_mut() {
        client.expect("lobby-changed").await;
    }
    let mut out = client_no(&server, 1).await;
    refused(
        &mut out,
        "join-room",
        json!({"roomId": room, "userName": "Out"}),
        "room_locked",
    )
    .await;
    all_quiet(&mut c).await;
    out.expect_quiet().await;
    let (_, info) = server.get(&format!("/api/room/{room}")).await;
    assert_eq!(info["participantCount"], 2);
    // A member re-joining its own room is not refused.
    c[1].emit("join-room", json!({"roomId": room, "userName": "Bob"}))
        .await;
    let again = c[1].wait_for("joined-room").await;
    assert_eq!(
        again["room"],
        json!({"hostId": host_id, "locked": true, "lobby": true, "hasPassword": true})
    );
    ok(&mut c[0], "set-lobby", json!({"enabled": false})).await;
    ok(&mut c[0], "set-room-password", json!({"password": null})).await;
    ok(&mut c[0], "lock-room", json!({"locked": false})).await;
    out.join(&room, "Out").await;
}

#[tokio::test]
async fn the_lobby_holds_newcomers_until_the_host_admits_or_denies_them() {
    let server = TestServer::start().await;
    let (room, mut c) = room_of(&server, 2).await;
    let host_id = c[0].id.clone();
    ok(&mut c[0], "set-lobby", json!({"enabled": true})).await;
    for client in c.iter_mut() {
        assert_eq!(
            client.expect("lobby-changed").await,
            json!({"roomId": room, "enabled": true, "byId": host_id})
        );
    }
    // A waiter: told to wait, the host is asked, members hear nothing.
    let mut w = client_no(&server, 1).await;
    let ack = w
        .emit_ack(
            "join-room",
            json!({"roomId": room, "userName": "Wes", "userAvatar": "https://x.test/w.png"}),
        )
        .await;
    assert_eq!((&ack["ok"], &ack["waiting"]), (&json!(true), &json!(true)));
    assert_eq!(
        w.expect("waiting-for-admission").await,
        json!({"roomId": room})
    );
    let wid = {
        let asked = c[0].expect("admission-requested").await;
        assert_eq!(asked["userName"], "Wes");
        assert_eq!(asked["userAvatar"], "https://x.test/w.png");
        asked["participantId"].as_str().expect("id").to_owned()
    };
    c[1].expect_quiet().await;
    let (_, info) = server.get(&format!("/api/room/{room}")).await;
    assert_eq!(info["participantCount"], 2);

    // Admitted: joins exactly as a direct join.
    ok(
        &mut c[0],
        "admit-participant",
        json!({"participantId": wid}),
    )
    .await;
    let joined = w.expect("joined-room").await;
    assert_eq!(joined["participantId"], wid);
    assert_eq!(joined["room"]["lobby"], true);
    assert_eq!(ids(&w.expect("participants-updated").await).len(), 3);
    for client in c.iter_mut() {
        assert_eq!(client.expect("user-joined").await["participantId"], wid);
        client.expect("participants-updated").await;
    }
    // Admitted, it speaks under the name and avatar it asked with.
    w.emit("send-message", json!({"message": "thanks"})).await;
    for client in c.iter_mut().chain([&mut w]) {
        let said = client.expect("new-message").await;
        assert_eq!(
            (&said["senderId"], &said["userName"], &said["userAvatar"]),
            (&json!(wid), &json!("Wes"), &json!("https://x.test/w.png"))
        );
    }
    // Admitting again: no longer a waiter.
    refused(
        &mut c[0],
        "admit-participant",
        json!({"participantId": wid}),
        "target_not_in_room",
    )
    .await;

    // Denied: an error, never joins, no longer pending.
    let mut d = client_no(&server, 0).await;
    let ack = d
        .emit_ack("join-room", json!({"roomId": room, "userName": "Den"}))
        .await;
    assert_eq!(ack["waiting"], true);
    d.expect("waiting-for-admission").await;
    let did = c[0].expect("admission-requested").await["participantId"]
        .as_str()
        .expect("id")
        .to_owned();
    ok(
        &mut c[0],
        "deny-participant",
        json!({"participantId": did, "reason": "not today"}),
    )
    .await;
    let error = d.expect("error").await;
    assert_eq!(
        (&error["code"], &error["event"]),
        (&json!("admission_denied"), &json!("join-room"))
    );
    refused(
        &mut c[0],
        "deny-participant",
        json!({"participantId": did}),
        "target_not_in_room",
    )
    .await;
    all_quiet(&mut c).await;
    w.expect_quiet().await;

    // A waiter that leaves is cancelled; members hear nothing.
    let mut gone = client_no(&server, 1).await;
    gone.emit("join-room", json!({"roomId": room, "userName": "Gus"}))
        .await;
    gone.expect("waiting-for-admission").await;
    let gid = c[0].expect("admission-requested").await["participantId"].clone();
    gone.disconnect().await;
    assert_eq!(
        c[0].expect("admission-cancelled").await,
        json!({"participantId": gid})
    );
    c[1].expect_quiet().await;

    // A transfer re-announces pending waiters to the new host.
    let mut p = client_no(&server, 0).await;
    p.emit("join-room", json!({"roomId": room, "userName": "Pat"}))
        .await;
    p.expect("waiting-for-admission").await;
    let pid = c[0].expect("admission-requested").await["participantId"].clone();
    let bob_id = c[1].id.clone();
    ok(&mut c[0], "transfer-host", json!({"participantId": bob_id})).await;
    let asked = c[1].wait_for("admission-requested").await;
    assert_eq!(asked["participantId"], pid);
    // Lobby off: newcomers join directly again.
    ok(&mut c[1], "set-lobby", json!({"enabled": false})).await;
    let mut direct = client_no(&server, 1).await;
    direct.join(&room, "Direct").await;
}

#[tokio::test]
async fn a_password_room_admits_only_the_right_password_and_never_shows_it() {
    let server = TestServer::start().await;
    let body = |v: Value| {
        server
            .http
            .post(server.url("/api/create-room"))
            .json(&v)
            .send()
    };
    for bad in [
        json!({"password": "abc"}),
        json!({"password": "x".repeat(129)}),
        json!({"password": 1234}),
        json!({"password": true}),
    ] {
        let response = body(bad.clone()).await.expect("POST");
        assert_eq!(response.status().as_u16(), 400, "{bad}");
        let answer: Value = response.json().await.expect("json");
        assert!(answer["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // An empty body with the JSON content type, as the frontend sends: no password.
    let response = server
        .http
        .post(server.url("/api/create-room"))
        .header("content-type", "application/json")
        .send()
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    let open: Value = response.json().await.expect("json");
    let (_, info) = server
        .get(&format!(
            "/api/room/{}",
            open["roomId"].as_str().expect("id")
        ))
        .await;
    assert_eq!(info["hasPassword"], false);

    let response = body(json!({"password": "Sésame ouvre-toi"}))
        .await
        .expect("POST");
    assert_eq!(response.status().as_u16(), 200);
    let created: Value = response.json().await.expect("json");
    let room = created["roomId"].as_str().expect("roomId").to_owned();
    assert!(!created.to_string().contains("Sésame"));
    for addr in &server.addrs {
        let text = server
            .http
            .get(format!("http://{addr}/api/room/{room}"))
            .send()
            .await
            .expect("GET")
            .text()
            .await
            .expect("text");
        let info: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(info["hasPassword"], true, "{text}");
        for key in info.as_object().expect("object").keys() {
            let key = key.to_ascii_lowercase();
            assert!(
                key == "haspassword"
                    || !(key.contains("pass") || key.contains("hash") || key.contains("secret")),
                "{text}"
            );
        }
        assert!(!text.contains("Sésame"), "{text}");
    }
    // Even the first joiner needs it, exactly.
    let mut host = client_no(&server, 0).await;
    for wrong in [
        json!({"roomId": room, "userName": "Host"}),
        json!({"roomId": room, "userName": "Host", "password": "sésame ouvre-toi"}),
    ] {
        refused(&mut host, "join-room", wrong, "wrong_password").await;
    }
    host.emit(
        "join-room",
        json!({"roomId": room, "userName": "Host", "password": "Sésame ouvre-toi"}),
    )
    .await;
    let joined = host.expect("joined-room").await;
    host.id = joined["participantId"].as_str().expect("id").to_owned();
    host.expect("participants-updated").await;
    assert_eq!(joined["room"]["hasPassword"], true);
    assert!(!joined.to_string().contains("Sésame"));

    // Replaced at once, on every instance; members are unaffected.
    let ack = ok(
        &mut host,
        "set-room-password",
        json!({"password": "n3w-pass"}),
    )
    .await;
    assert!(!ack.to_string().contains("n3w-pass"));
    let mut bob = client_no(&server, 1).await;
    refused(
        &mut bob,
        "join-room",
        json!({"roomId": room, "userName": "Bob", "password": "Sésame ouvre-toi"}),
        "wrong_password",
    )
    .await;
    host.expect_quiet().await;
    bob.emit(
        "join-room",
        json!({"roomId": room, "userName": "Bob", "password": "n3w-pass"}),
    )
    .await;
    bob.expect("joined-room").await;
    // In cluster mode, Redis holds hashes only: neither password anywhere in it.
    if let Some(url) = common::cluster_redis() {
        let everything = redis_contents(&url).await;
        for password in ["Sésame ouvre-toi", "n3w-pass"] {
            assert!(
                !everything.contains(password),
                "{password} is in Redis in clear text"
            );
        }
        assert!(everything.contains("v1."), "a password hash is kept");
    }
    // Removed: anyone joins.
    ok(&mut host, "set-room-password", json!({"password": null})).await;
    let (_, info) = server.get(&format!("/api/room/{room}")).await;
    assert_eq!(info["hasPassword"], false);
    let mut cat = client_no(&server, 1).await;
    assert_eq!(cat.join(&room, "Cat").await["room"]["hasPassword"], false);
}

/// Every key and value in the Redis at `url`, as one text.
async fn redis_contents(url: &str) -> String {
    let client = redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("redis connection");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg("*")
        .query_async(&mut conn)
        .await
        .expect("KEYS");
    let mut text = String::new();
    for key in keys {
        let kind: String = redis::cmd("TYPE")
            .arg(&key)
            .query_async(&mut conn)
            .await
            .expect("TYPE");
        let command = match kind.as_str() {
            "string" => redis::cmd("GET").arg(&key).clone(),
            "hash" => redis::cmd("HGETALL").arg(&key).clone(),
            "list" => redis::cmd("LRANGE").arg(&key).arg(0).arg(-1).clone(),
            "set" => redis::cmd("SMEMBERS").arg(&key).clone(),
            "zset" => redis::cmd("ZRANGE").arg(&key).arg(0).arg(-1).clone(),
            _ => continue,
        };
        // A key may expire between KEYS and its read.
        let values: Vec<Vec<u8>> = command
            .query_async::<Option<Vec<Vec<u8>>>>(&mut conn)
            .await
            .ok()
            .flatten()
            .unwrap_or_default();
        text.push_str(&key);
        for value in values {
            text.push('\n');
            text.push_str(&String::from_utf8_lossy(&value));
        }
        text.push('\n');
    }
    text
}

#[tokio::test]
async fn end_room_tells_everyone_deletes_the_room_and_keeps_them_connected() {
    let server = TestServer::with(|c| c.empty_room_ttl = Duration::from_secs(300)).await;
    let (room, mut c) = room_of(&server, 3).await;
    let host_id = c[0].id.clone();
    c[1].emit("send-message", json!({"message": "hello"})).await;
    for client in c.iter_mut() {
        client.expect("new-message").await;
    }
    ok(&mut c[0], "lock-room", json!({"locked": true})).await;
    for client in c.iter_mut() {
        client.expect("room-lock-changed").await;
    }
    ok(&mut c[0], "end-room", json!({"roomId": room})).await;
    for client in c.iter_mut().skip(1) {
        assert_eq!(
            client.expect("room-ended").await,
            json!({"roomId": room, "byId": host_id})
        );
        let error = client.expect("error").await;
        assert_eq!(
            (&error["code"], &error["event"]),
            (&json!("room_closed"), &Value::Null)
        );
    }
    for addr in server.addrs.clone() {
        common::eventually(Duration::from_secs(1), || {
            let url = format!("http://{addr}/api/room/{room}");
            let http = server.http.clone();
            async move {
                let status = http
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| e.to_string())?
                    .status();
                (status == 404)
                    .then_some(())
                    .ok_or_else(|| format!("room still answers {status}"))
            }
        })
        .await;
    }
    // Still connected, in no room.
    for client in c.iter_mut() {
        refused(
            client,
            "send-message",
            json!({"message": "x"}),
            "not_in_room",
        )
        .await;
    }
    // The same id makes a fresh room: new host, no messages, default state.
    let joined = c[2].join(&room, "Cat").await;
    assert_eq!(joined["messages"], json!([]));
    assert_eq!(
        joined["room"],
        json!({"hostId": c[2].id, "locked": false, "lobby": false, "hasPassword": false})
    );
}

/// The choices docs/PROTOCOL.md makes where the contract leaves room: lobby off admits the
/// waiters; an emptied room refuses its waiters, drops its lock and lobby but keeps its
/// password; the host may change its own permissions but not transfer to itself; a waiter
/// asking again stays pending.
#[tokio::test]
async fn lobby_off_admits_waiters_and_an_emptied_room_keeps_only_its_password() {
    let server = TestServer::with(|c| c.empty_room_ttl = Duration::from_secs(300)).await;
    let (room, mut c) = room_of(&server, 2).await;
    let host_id = c[0].id.clone();
    refused(
        &mut c[0],
        "transfer-host",
        json!({"participantId": host_id}),
        "invalid_payload",
    )
    .await;
    // The host's own microphone: allowed to switch off, then it cannot unmute either.
    ok(
        &mut c[0],
        "admin-toggle-mic-permission",
        json!({"participantId": host_id, "canUseMic": false}),
    )
    .await;
    assert_eq!(c[0].expect("permission-changed").await["allowed"], false);
    let list = c[0].expect("participants-updated").await;
    assert_eq!(
        (
            &list[0]["canUseMic"],
            &list[0]["isAudioMuted"],
            &list[0]["isAdmin"]
        ),
        (&json!(false), &json!(true), &json!(true))
    );
    refused(
        &mut c[0],
        "toggle-audio",
        json!({"isAudioMuted": false}),
        "forbidden",
    )
    .await;
    // It still moderates.
    ok(&mut c[0], "lock-room", json!({"locked": false})).await;
    c[0].expect("room-lock-changed").await;
    c[1].wait_for("room-lock-changed").await;

    ok(&mut c[0], "set-lobby", json!({"enabled": true})).await;
    let mut w = client_no(&server, 1).await;
    let first = w
        .emit_ack("join-room", json!({"roomId": room, "userName": "Wes"}))
        .await;
    assert_eq!(first["waiting"], true);
    w.expect("waiting-for-admission").await;
    c[0].wait_for("admission-requested").await;
    // Asking again: still waiting, the host is not asked twice.
    let again = w
        .emit_ack("join-room", json!({"roomId": room, "userName": "Wes"}))
        .await;
    assert_eq!(again["waiting"], true);
    w.expect("waiting-for-admission").await;
    // Lobby off: the waiter comes in as by an admission.
    ok(&mut c[0], "set-lobby", json!({"enabled": false})).await;
    let joined = w.expect("joined-room").await;
    assert_eq!(joined["room"]["lobby"], false);
    w.expect("participants-updated").await;
    let host_saw: Vec<String> = {
        let mut names = Vec::new();
        while names.last().map(String::as_str) != Some("participants-updated") {
            names.push(c[0].next().await.0);
        }
        names
    };
    assert_eq!(
        host_saw,
        ["lobby-changed", "user-joined", "participants-updated"]
    );

    // A password, a lock and a lobby with a waiter; then everyone leaves.
    ok(
        &mut c[0],
        "set-room-password",
        json!({"password": "door-code"}),
    )
    .await;
    ok(&mut c[0], "set-lobby", json!({"enabled": true})).await;
    let mut late = client_no(&server, 0).await;
    late.emit(
        "join-room",
        json!({"roomId": room, "userName": "Late", "password": "door-code"}),
    )
    .await;
    late.expect("waiting-for-admission").await;
    ok(&mut c[0], "lock-room", json!({"locked": true})).await;
    w.disconnect().await;
    let bob = c.remove(1);
    bob.disconnect().await;
    let host = c.remove(0);
    host.disconnect().await;
    let error = late.expect("error").await;
    assert_eq!(
        (&error["code"], &error["event"]),
        (&json!("admission_denied"), &json!("join-room"))
    );
    // The emptied room: open and without lobby, still with its password.
    let mut next = client_no(&server, 1).await;
    refused(
        &mut next,
        "join-room",
        json!({"roomId": room, "userName": "Next"}),
        "wrong_password",
    )
    .await;
    next.emit(
        "join-room",
        json!({"roomId": room, "userName": "Next", "password": "door-code"}),
    )
    .await;
    let joined = next.expect("joined-room").await;
    assert_eq!(
        joined["room"],
        json!({"hostId": joined["participantId"], "locked": false, "lobby": false, "hasPassword": true})
    );
}

/// A lobby holds 100 requests; the next newcomer is refused `room_full` and is not pending.
#[tokio::test]
async fn a_full_lobby_refuses_the_next_newcomer() {
    let server = TestServer::start().await;
    let (room, mut c) = room_of(&server, 1).await;
    ok(&mut c[0], "set-lobby", json!({"enabled": true})).await;
    c[0].expect("lobby-changed").await;
    let mut waiters = Vec::new();
    for i in 0..100 {
        let w = client_no(&server, i + 1).await;
        let ack = w
            .emit_ack(
                "join-room",
                json!({"roomId": room, "userName": format!("W{i}")}),
            )
            .await;
        assert_eq!(ack["waiting"], true, "waiter {i}: {ack}");
        waiters.push(w);
    }
    let mut extra = client_no(&server, 0).await;
    refused(
        &mut extra,
        "join-room",
        json!({"roomId": room, "userName": "Extra"}),
        "room_full",
    )
    .await;
    let asked: Vec<Value> = {
        let mut asked = Vec::new();
        while asked.len() < 100 {
            asked.push(c[0].expect("admission-requested").await);
        }
        asked
    };
    assert!(asked.iter().all(|a| a["userName"] != "Extra"));
    c[0].expect_quiet().await;
    // Denying one makes a place.
    let first = asked[0]["participantId"].clone();
    ok(
        &mut c[0],
        "deny-participant",
        json!({"participantId": first}),
    )
    .await;
    let ack = extra
        .emit_ack("join-room", json!({"roomId": room, "userName": "Extra"}))
        .await;
    assert_eq!(ack["waiting"], true, "{ack}");
}
