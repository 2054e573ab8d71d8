//! `GET /api/ice-servers`: STUN and TURN servers for a browser, with TURN credentials issued
//! for the caller; rate-limited per client address.

use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{ConnectInfo, Query, State};
use axum::http::header::CACHE_CONTROL;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::error;
use crate::net::PeerAddr;
use crate::state::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceQuery {
    participant_id: Option<String>,
}

/// STUN and TURN servers for a browser, with TURN credentials issued for the caller
/// (`?participantId=<socket id>`, else a random id). Never cached; rate-limited per address.
pub async fn ice_servers(
    State(app): State<AppState>,
    ConnectInfo(PeerAddr(peer)): ConnectInfo<PeerAddr>,
    headers: HeaderMap,
    query: Result<Query<IceQuery>, QueryRejection>,
) -> Response {
    if !app
        .ice_limiter
        .allow(app.config.trusted_proxies.client(peer.ip(), &headers))
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
