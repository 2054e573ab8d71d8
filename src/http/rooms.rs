//! Rooms over REST: `GET /api/room/:roomId` (does it exist, how many are in it) and
//! `POST /api/create-room` (which needs a `room: "*"` access token when `JWT_SECRET` is set).

use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Serialize;

use super::auth::bearer;
use super::error::ApiError;
use crate::access::{ANY_ROOM, Refused};
use crate::model::Timestamp;
use crate::net::PeerAddr;
use crate::registry::RoomInfo;
use crate::state::AppState;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoomBody {
    room_id: String,
    participant_count: usize,
    created_at: Timestamp,
}

impl From<RoomInfo> for RoomBody {
    fn from(info: RoomInfo) -> Self {
        Self {
            room_id: info.room_id.to_string(),
            participant_count: info.participant_count,
            created_at: info.created_at,
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

/// Rate-limited per client address, and within the address's share of rooms.
pub async fn create_room(
    State(app): State<AppState>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
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
    let creator = app.config.trusted_proxies.client(peer.ip(), &headers);
    if !app.room_limiter.allow(creator) {
        return Err(ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many rooms created from your address; slow down",
        ));
    }
    match app.registry.create_room(creator).await {
        Ok(info) => {
            tracing::info!(room = %info.room_id, "room created (create-room)");
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
