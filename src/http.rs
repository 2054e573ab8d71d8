//! The REST API: `/health`, `/ready`, `/api/room/:roomId`, `/api/create-room`, and JSON
//! answers for unknown paths and methods.

use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use std::net::{IpAddr, SocketAddr};
use std::time::Instant;

use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query};
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_TYPE};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use socketioxide::TransportType;

use std::sync::Arc;

use socketioxide::adapter::Adapter;

use crate::App;
use crate::admin;
use crate::auth::has_bearer;
use crate::metrics::{Live, to_prometheus_text};
use crate::model::Timestamp;
use crate::net::PeerAddr;
use crate::registry::RoomInfo;
use crate::registry::StoreUnavailable;
use crate::state::AppState;
use crate::static_files;

/// A JSON error body, `{"error": "…"}`, with its status.
pub fn error(status: StatusCode, message: &str) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

/// 503 for a request the room store (Redis) could not answer.
pub fn unavailable(e: StoreUnavailable) -> Response {
    tracing::warn!("{e}");
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "Room store unavailable; try again shortly",
    )
}

pub fn router<A: Adapter>(app: App<A>) -> Router {
    let router = Router::new()
        .route("/health", get(health))
        .route("/ready", get(ready))
        .route("/metrics", get(metrics::<A>))
        .route("/api/room/{room_id}", get(room))
        .route("/api/create-room", post(create_room))
        .route("/api/ice-servers", get(ice_servers))
        .nest("/api/admin", admin::router(app.clone()))
        .method_not_allowed_fallback(method_not_allowed);
    let router = match app.state.config.static_dir.clone() {
        Some(dir) => router.fallback(move |request| static_files::serve(dir, request)),
        None => router.fallback(not_found),
    };
    router.with_state(app)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Health {
    status: &'static str,
    timestamp: Timestamp,
    /// Cluster-wide in cluster mode; `null` while Redis is unreachable.
    active_rooms: Option<usize>,
    total_participants: Option<usize>,
    uptime_secs: u64,
    version: &'static str,
    /// Socket.IO connections open on this instance.
    connections: usize,
    instance_id: Arc<str>,
    /// `memory` (one instance) or `redis` (cluster).
    mode: &'static str,
}

/// Liveness: 200 while the process serves requests, even when Redis is away (`/ready` is
/// the one that says whether to send traffic here).
async fn health(State(app): State<AppState>) -> Json<Health> {
    let counts = app.registry.stats().await.ok();
    Json(Health {
        status: "OK",
        timestamp: Timestamp::now(),
        active_rooms: counts.map(|(rooms, _)| rooms),
        total_participants: counts.map(|(_, participants)| participants),
        uptime_secs: app.uptime_secs(),
        version: env!("CARGO_PKG_VERSION"),
        connections: app.connections(),
        instance_id: app.instance_id.clone(),
        mode: if app.registry.is_shared() {
            "redis"
        } else {
            "memory"
        },
    })
}

/// Prometheus scrape target; needs `Authorization: Bearer <METRICS_TOKEN>` when that is set.
async fn metrics<A: Adapter>(State(app): State<App<A>>, headers: HeaderMap) -> Response {
    const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";
    const PROMETHEUS_TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
    if let Some(token) = app.state.config.metrics_token.as_deref()
        && !has_bearer(&headers, token)
    {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    let (rooms, participants) = app.state.registry.stats().await.unwrap_or_default();
    let (mut sockets_polling, mut sockets_websocket) = (0, 0);
    let sockets = app.io.of("/").map(|ns| ns.sockets()).unwrap_or_default();
    for socket in sockets {
        match socket.transport_type() {
            TransportType::Polling => sockets_polling += 1,
            TransportType::Websocket => sockets_websocket += 1,
        }
    }
    let text = app.state.metrics.render(&Live {
        rooms,
        participants,
        sockets_polling,
        sockets_websocket,
    });
    // Prometheus asks for OpenMetrics; everyone else gets the classic text format.
    let wants_openmetrics = headers
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("application/openmetrics-text"));
    if wants_openmetrics {
        ([(CONTENT_TYPE, OPENMETRICS)], text).into_response()
    } else {
        ([(CONTENT_TYPE, PROMETHEUS_TEXT)], to_prometheus_text(&text)).into_response()
    }
}

/// For load balancers: 200 while accepting, 503 once shutdown has begun or while the
/// cluster's Redis is unreachable.
async fn ready(State(app): State<AppState>) -> Response {
    if app.is_shutting_down() {
        error(StatusCode::SERVICE_UNAVAILABLE, "Shutting down")
    } else if !app.store_reachable() {
        error(StatusCode::SERVICE_UNAVAILABLE, "Redis unreachable")
    } else {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RoomBody {
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

async fn room(
    State(app): State<AppState>,
    room_id: Result<Path<String>, PathRejection>,
) -> Response {
    let Ok(Path(room_id)) = room_id else {
        return error(StatusCode::NOT_FOUND, "Room not found");
    };
    match app.registry.room_info(&room_id).await {
        Ok(Some(info)) => Json(RoomBody::from(info)).into_response(),
        Ok(None) => error(StatusCode::NOT_FOUND, "Room not found"),
        Err(e) => unavailable(e),
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    room_id: String,
    message: &'static str,
}

async fn create_room(State(app): State<AppState>) -> Response {
    match app.registry.create_room().await {
        Ok(info) => {
            tracing::info!(room = %info.room_id, "room created (create-room)");
            Json(Created {
                room_id: info.room_id.to_string(),
                message: "Room created successfully",
            })
            .into_response()
        }
        Err(refused) => error(StatusCode::SERVICE_UNAVAILABLE, &refused.message),
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct IceQuery {
    participant_id: Option<String>,
}

/// STUN and TURN servers for a browser, with TURN credentials issued for the caller
/// (`?participantId=<socket id>`, else a random id). Never cached; rate-limited per address.
async fn ice_servers(
    State(app): State<AppState>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    query: Result<Query<IceQuery>, QueryRejection>,
) -> Response {
    if !app
        .ice_limiter
        .allow(client_address(&headers, peer), Instant::now())
    {
        return error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests; slow down",
        );
    }
    let id = query
        .ok()
        .and_then(|Query(q)| q.participant_id)
        .filter(|id| {
            !id.is_empty()
                && id.len() <= 64
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        })
        .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string());
    let issued = app.config.ice.issue(&id);
    ([(CACHE_CONTROL, "no-store")], Json(issued)).into_response()
}

/// The caller's address: the first `X-Forwarded-For` entry when a proxy (Render, Railway,
/// Heroku) set one, else the peer. A client can forge the header when no proxy is in front,
/// which only buys it its own separate bucket.
fn client_address(headers: &HeaderMap, peer: SocketAddr) -> IpAddr {
    headers
        .get("x-forwarded-for")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .and_then(|first| first.trim().parse().ok())
        .unwrap_or(peer.ip())
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not found")
}

async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}
