//! The operator API under `/api/admin`, enabled by `ADMIN_TOKEN` (404 while unset, 401 for a
//! wrong token): list and inspect rooms (never their chat text), close a room, remove a
//! participant.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Serialize;
use socketioxide::adapter::Adapter;

use super::auth::has_bearer;
use super::error::{ApiError, error};
use crate::model::{ParticipantView, Timestamp};
use crate::registry::RoomSummary;
use crate::signaling::moderation;
use crate::state::App;

pub fn router<A: Adapter>(app: App<A>) -> Router<App<A>> {
    Router::new()
        .route("/rooms", get(rooms::<A>))
        .route("/rooms/{room_id}", get(room::<A>).delete(close_room::<A>))
        .route("/participants/{socket_id}", delete(kick::<A>))
        .layer(axum::middleware::from_fn_with_state(
            app,
            require_token::<A>,
        ))
}

async fn require_token<A: Adapter>(
    State(app): State<App<A>>,
    request: Request,
    next: Next,
) -> Response {
    match app.state.config.admin_token.as_deref() {
        None => error(StatusCode::NOT_FOUND, "Not found"),
        Some(token) if has_bearer(request.headers(), token) => next.run(request).await,
        Some(_) => error(StatusCode::UNAUTHORIZED, "Unauthorized"),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Host {
    id: String,
    user_name: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomRow {
    room_id: String,
    created_at: Timestamp,
    participant_count: usize,
    host: Option<Host>,
    message_count: usize,
}

impl From<RoomSummary> for RoomRow {
    fn from(s: RoomSummary) -> Self {
        Self {
            room_id: s.room_id.to_string(),
            created_at: s.created_at,
            participant_count: s.participant_count,
            host: s.host.map(|h| Host {
                id: h.id.to_string(),
                user_name: h.user_name.to_string(),
            }),
            message_count: s.message_count,
        }
    }
}

#[derive(Serialize)]
struct Rooms {
    rooms: Vec<RoomRow>,
}

async fn rooms<A: Adapter>(State(app): State<App<A>>) -> Result<Json<Rooms>, ApiError> {
    let summaries = app.state.registry.summaries().await?;
    Ok(Json(Rooms {
        rooms: summaries.into_iter().map(RoomRow::from).collect(),
    }))
}

#[derive(Serialize)]
struct RoomDetailBody {
    #[serde(flatten)]
    row: RoomRow,
    participants: Vec<ParticipantView>,
}

async fn room<A: Adapter>(
    State(app): State<App<A>>,
    Path(room_id): Path<String>,
) -> Result<Json<RoomDetailBody>, ApiError> {
    match app.state.registry.detail(&room_id).await? {
        Some(detail) => Ok(Json(RoomDetailBody {
            row: detail.summary.into(),
            participants: detail.participants,
        })),
        None => Err(ApiError::not_found("Room not found")),
    }
}

async fn close_room<A: Adapter>(
    State(app): State<App<A>>,
    Path(room_id): Path<String>,
) -> Response {
    match moderation::close_room(&app.io, &app.state, &room_id).await {
        Ok(Some(removed)) => Json(serde_json::json!({
            "roomId": room_id,
            "removedParticipants": removed.len(),
        }))
        .into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "Room not found"),
        Err(e) => ApiError::from(e).into_response(),
    }
}

async fn kick<A: Adapter>(State(app): State<App<A>>, Path(socket_id): Path<String>) -> Response {
    match moderation::kick(&app.io, &app.state, &socket_id).await {
        Ok(true) => {
            Json(serde_json::json!({ "socketId": socket_id, "removed": true })).into_response()
        }
        Ok(false) => error(StatusCode::NOT_FOUND, "Participant not found"),
        Err(e) => ApiError::from(e).into_response(),
    }
}
