//! Media state: microphone and camera toggles (three spellings of the same request) and
//! screen sharing. Each change updates the registry, tells the others, then refreshes the
//! participant list for everyone.

use serde::Serialize;
use serde_json::value::RawValue;
use socketioxide::adapter::Adapter;
use socketioxide::extract::SocketRef;

use super::deliver::{to_others, to_room};
use super::incoming::{Admitted, Incoming};
use super::reply::{Reply, internal};
use crate::limits::Class;
use crate::model::{MediaKind, ParticipantView};
use crate::protocol::{
    Decoded, MediaRequest, decode_room_only, decode_toggle, decode_toggle_media,
    decode_toggle_screen_share,
};
use crate::registry::Updated;
use crate::state::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct AudioToggled<'a> {
    participant_id: &'a str,
    is_audio_muted: bool,
    is_audio_enabled: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct VideoToggled<'a> {
    participant_id: &'a str,
    is_video_off: bool,
    is_video_enabled: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MediaToggled<'a> {
    participant_id: &'a str,
    participant_name: &'a str,
    #[serde(rename = "type")]
    kind: MediaKind,
    enabled: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ParticipantRef<'a> {
    participant_id: &'a str,
}

#[derive(Serialize)]
struct Changed<'a> {
    participant: &'a ParticipantView,
}

fn decode_media(event: &str, payload: &RawValue) -> Option<Decoded<MediaRequest>> {
    match event {
        "toggle-audio" => Some(decode_toggle(MediaKind::Audio, payload)),
        "toggle-video" => Some(decode_toggle(MediaKind::Video, payload)),
        "toggle-media" => Some(decode_toggle_media(payload)),
        _ => None,
    }
}

/// `toggle-audio`, `toggle-video` and `toggle-media`.
pub async fn on_toggle<A: Adapter>(incoming: Incoming<A>) {
    let Some(Admitted(s, app, data, reply, _turn)) = incoming.admit(Class::Signal).await else {
        return;
    };
    let req = match data
        .and_then(|p| decode_media(reply.event(), &p).unwrap_or_else(|| Err(internal())))
    {
        Ok(req) => req,
        Err(e) => return reply.fail(e),
    };
    let change = req.change;
    let updated = match app
        .registry
        .set_media(&s.id.to_string(), req.room.as_deref(), change)
        .await
    {
        Ok(updated) => updated,
        Err(e) => return reply.fail(e),
    };
    let room = &*updated.room_id;
    let me = &updated.participant;
    match change.kind {
        MediaKind::Audio => {
            let toggled = AudioToggled {
                participant_id: &me.id,
                is_audio_muted: me.is_audio_muted,
                is_audio_enabled: me.is_audio_enabled,
            };
            to_others(&s, &app, room, "participant-audio-toggled", &toggled).await;
        }
        MediaKind::Video => {
            let toggled = VideoToggled {
                participant_id: &me.id,
                is_video_off: me.is_video_off,
                is_video_enabled: me.is_video_enabled,
            };
            to_others(&s, &app, room, "participant-video-toggled", &toggled).await;
        }
    }
    let toggled = MediaToggled {
        participant_id: &me.id,
        participant_name: &me.user_name,
        kind: change.kind,
        enabled: change.enabled,
    };
    to_others(&s, &app, room, "media-toggled", &toggled).await;
    finish(&s, &app, reply, &updated).await;
}

/// `start-screen-share`, `stop-screen-share` and `toggle-screen-share`.
pub async fn on_screen_share<A: Adapter>(incoming: Incoming<A>) {
    let Some(Admitted(s, app, data, reply, _turn)) = incoming.admit(Class::Signal).await else {
        return;
    };
    let decoded = data.and_then(|p| match reply.event() {
        "start-screen-share" => decode_room_only(&p).map(|room| (room, true)),
        "stop-screen-share" => decode_room_only(&p).map(|room| (room, false)),
        "toggle-screen-share" => decode_toggle_screen_share(&p).map(|r| (r.room, r.sharing)),
        _ => Err(internal()),
    });
    let updated = match decoded {
        Ok((room, sharing)) => {
            app.registry
                .set_screen_sharing(&s.id.to_string(), room.as_deref(), sharing)
                .await
        }
        Err(e) => Err(e),
    };
    let updated = match updated {
        Ok(updated) => updated,
        Err(e) => return reply.fail(e),
    };
    let event = if updated.participant.is_screen_sharing {
        "user-started-screen-share"
    } else {
        "user-stopped-screen-share"
    };
    let started_or_stopped = ParticipantRef {
        participant_id: &updated.participant.id,
    };
    to_others(&s, &app, &updated.room_id, event, &started_or_stopped).await;
    finish(&s, &app, reply, &updated).await;
}

/// The list refresh every media change ends with, and the acknowledgement.
async fn finish<A: Adapter>(s: &SocketRef<A>, app: &AppState, reply: Reply<A>, updated: &Updated) {
    tracing::debug!(socket = %s.id, room = %updated.room_id, "media state changed");
    to_room(
        s,
        app,
        &updated.room_id,
        "participants-updated",
        &updated.participants,
    )
    .await;
    reply.ok(&Changed {
        participant: &updated.participant,
    });
}
