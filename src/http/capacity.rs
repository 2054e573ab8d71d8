//! HTTP-level limits: the global cap on Socket.IO connections (`MAX_CONNECTIONS`), answered
//! politely with `503` on the handshake rather than by failing later.

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::Response;

use super::error::error;
use crate::state::AppState;

/// A new Engine.IO session is a `/socket.io/` request without a `sid` yet.
fn is_handshake(request: &Request) -> bool {
    request.uri().path().starts_with("/socket.io")
        && !request
            .uri()
            .query()
            .is_some_and(|q| q.split('&').any(|pair| pair.starts_with("sid=")))
}

pub async fn connection_cap(State(app): State<AppState>, request: Request, next: Next) -> Response {
    let cap = app.config.max_connections;
    if cap > 0 && is_handshake(&request) && app.connections() >= cap {
        tracing::warn!(cap, "connection refused: MAX_CONNECTIONS reached");
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "Server is at capacity; try again later",
        );
    }
    next.run(request).await
}
