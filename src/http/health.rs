//! Health and monitoring: `GET /health` (liveness and counts), `GET /ready` (whether to send
//! traffic here) and `GET /metrics` (Prometheus).

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::http::StatusCode;
use axum::http::header::{ACCEPT, CONTENT_TYPE};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use socketioxide::TransportType;

use super::auth::has_bearer;
use super::error::error;
use crate::metrics::{Live, to_prometheus_text};
use crate::model::Timestamp;
use crate::state::{App, AppState};

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Health {
    status: &'static str,
    timestamp: Timestamp,
    /// Cluster-wide in cluster mode; `null` while Redis is unreachable.
    active_rooms: Option<usize>,
    total_participants: Option<usize>,
    uptime_secs: u64,
    version: &'static str,
    /// Socket.IO connections open on this instance, sessions waiting for their client
    /// included.
    connections: usize,
    /// Of those, sessions whose connection dropped and that wait for their client (only
    /// while connection state recovery is on).
    #[serde(skip_serializing_if = "Option::is_none")]
    reconnecting: Option<usize>,
    instance_id: Arc<str>,
    /// `memory` (one instance) or `redis` (cluster).
    mode: &'static str,
}

/// Liveness: 200 while the process serves requests, even when Redis is away (`/ready` is
/// the one that says whether to send traffic here).
pub async fn health(State(app): State<AppState>) -> Json<Health> {
    let counts = app.registry.stats().await.ok();
    Json(Health {
        status: "OK",
        timestamp: Timestamp::now(),
        active_rooms: counts.map(|(rooms, _)| rooms),
        total_participants: counts.map(|(_, participants)| participants),
        uptime_secs: app.uptime_secs(),
        version: env!("CARGO_PKG_VERSION"),
        connections: app.connections(),
        reconnecting: app.config.recovery().then(|| app.reconnecting()),
        instance_id: app.instance_id.clone(),
        mode: app.config.deployment.name(),
    })
}

/// Prometheus scrape target; needs `Authorization: Bearer <METRICS_TOKEN>` when that is set.
pub async fn metrics(State(app): State<App>, headers: HeaderMap) -> Response {
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
pub async fn ready(State(app): State<AppState>) -> Response {
    if app.is_shutting_down() {
        error(StatusCode::SERVICE_UNAVAILABLE, "Shutting down")
    } else if !app.store_reachable() {
        error(StatusCode::SERVICE_UNAVAILABLE, "Redis unreachable")
    } else {
        Json(serde_json::json!({ "status": "ready" })).into_response()
    }
}
