//! Rooms over REST: `GET /api/room/:roomId` (does it exist, how many are in it, does it need
//! a password) and `POST /api/create-room` (optionally with a password; it needs a
//! `room: "*"` access token when `JWT_SECRET` is set).

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;
use serde_json::Value;

use super::auth::bearer;
use super::error::ApiError;
use crate::access::{ANY_ROOM, Refused};
use crate::model::Timestamp;
use crate::net::PeerAddr;
use crate::password::{PASSWORD_MAX, PASSWORD_MIN, RoomPassword};
use crate::registry::RoomInfo;
use crate::state::AppState;

/// What `GET /api/room/:roomId` answers: never the password nor anything about it but
/// whether there is one.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomBody {
    room_id: String,
    participant_count: usize,
    created_at: Timestamp,
    has_password: bool,
}

impl From<RoomInfo> for RoomBody {
    fn from(info: RoomInfo) -> Self {
        Self {
            room_id: info.room_id.to_string(),
            participant_count: info.participant_count,
            created_at: info.created_at,
            has_password: info.has_password,
        }
    }
}

pub async fn room(
    State(app): State<AppState>,
    room_id: Result<Path<String>, PathRejection>,
) -> Result<Json<RoomBody>, ApiError> {
    let Ok(Path(room_id)) = room_id else {
        return Err(ApiError::not_found("Room not found"));
    };
    match app.registry.room_info(&room_id).await? {
        Some(info) => Ok(Json(RoomBody::from(info))),
        None => Err(ApiError::not_found("Room not found")),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Created {
    room_id: String,
    message: &'static str,
}

/// The optional password of `POST /api/create-room`: no body, an empty one (whatever its
/// `Content-Type`: the frontend sends `application/json` with nothing), `{}` or
/// `{"password": null}` make a room without one.
fn requested_password(body: &[u8]) -> Result<Option<RoomPassword>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let bad = |why: String| ApiError::new(StatusCode::BAD_REQUEST, why);
    let Ok(Value::Object(fields)) = serde_json::from_slice::<Value>(body) else {
        return Err(bad(
            "The body must be empty or a JSON object such as {\"password\": \"…\"}".into(),
        ));
    };
    match fields.get("password") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(p)) if RoomPassword::has_valid_length(p) => {
            Ok(Some(RoomPassword::new(p.clone())))
        }
        Some(_) => Err(bad(format!(
            "`password` must be a string of {PASSWORD_MIN} to {PASSWORD_MAX} characters"
        ))),
    }
}

/// Rate-limited per client address, and within the address's share of rooms. The body is
/// read before the rate limit, so a refused password costs no room.
pub async fn create_room(
    State(app): State<AppState>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Created>, ApiError> {
    if let Some(secret) = &app.config.jwt_secret {
        let admitted = bearer(&headers)
            .ok_or(Refused("Authorization: Bearer <access token> required"))
            .and_then(|token| secret.verify(token))
            .and_then(|claims| {
                (claims.room == ANY_ROOM).then_some(()).ok_or(Refused(
                    "Creating a room needs a token whose `room` is \"*\"",
                ))
            });
        if let Err(Refused(why)) = admitted {
            return Err(ApiError::new(StatusCode::UNAUTHORIZED, why));
        }
    }
    let password = requested_password(&body)?;
    let creator = app.config.trusted_proxies.client(peer.ip(), &headers);
    if !app.room_limiter.allow(creator) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many rooms created from your address; slow down",
        ));
    }
    match app
        .registry
        .create_room_with(creator, password.as_ref())
        .await
    {
        Ok(info) => {
            tracing::info!(room = %info.room_id, password = info.has_password, "room created (create-room)");
            Ok(Json(Created {
                room_id: info.room_id.to_string(),
                message: "Room created successfully",
            }))
        }
        Err(refused) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            refused.message,
        )),
    }
}
