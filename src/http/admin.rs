//! The operator API under `/api/admin`, enabled by `ADMIN_TOKEN` (404 while unset, 401 for a
//! wrong token): list and inspect rooms (never their chat text), close a room, remove a
//! participant. Closing and removing are registry changes like any other: the members are
//! told by the announcer, on whichever instance holds their sockets.

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get};
use axum::{Json, Router};
use serde::Serialize;

use super::auth::has_bearer;
use super::error::{ApiError, error};
use crate::model::{ParticipantView, Timestamp};
use crate::registry::LeaveReason;
use crate::registry::RoomSummary;
use crate::registry::events::{Batch, Event, Origin};
use crate::state::App;

pub fn router(app: App) -> Router<App> {
    Router::new()
        .route("/rooms", get(rooms))
        .route("/rooms/{room_id}", get(room).delete(close_room))
        .route("/participants/{socket_id}", delete(kick))
        .layer(axum::middleware::from_fn_with_state(app, require_token))
}

async fn require_token(State(app): State<App>, request: Request, next: Next) -> Response {
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

async fn rooms(State(app): State<App>) -> Result<Json<Rooms>, ApiError> {
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

async fn room(
    State(app): State<App>,
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

async fn close_room(State(app): State<App>, Path(room_id): Path<String>) -> Response {
    match app.state.registry.close_room(&room_id, None).await {
        Ok(Some(removed)) => Json(serde_json::json!({
            "roomId": room_id,
            "removedParticipants": removed.len(),
        }))
        .into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "Room not found"),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Removes one socket: `error` code `kicked`, out of its room (the rest are told as for a
/// leave), then disconnected. 404 if no such socket is in a room, or connected here.
async fn kick(State(app): State<App>, Path(socket_id): Path<String>) -> Response {
    let state = &app.state;
    match state
        .registry
        .leave(&socket_id, LeaveReason::Kicked, None)
        .await
    {
        Ok(Some(_)) => {}
        Ok(None) if is_connected_here(&app, &socket_id) => {
            let kick = Batch {
                origin: Origin {
                    instance: state.instance_id.clone(),
                    ticket: None,
                },
                events: vec![Event::Kick {
                    socket: socket_id.as_str().into(),
                }],
                hooks: None,
            };
            state.inbox.send(kick).ok();
        }
        Ok(None) => return error(StatusCode::NOT_FOUND, "Participant not found"),
        Err(e) => return ApiError::from(e).into_response(),
    }
    Json(serde_json::json!({ "socketId": socket_id, "removed": true })).into_response()
}

fn is_connected_here(app: &App, socket_id: &str) -> bool {
    socket_id
        .parse()
        .ok()
        .and_then(|sid| app.io.of("/")?.get_socket(sid))
        .is_some()
}
