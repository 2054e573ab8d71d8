//! The HTTP side: the router of the REST API (one file per resource), Socket.IO mounted as a
//! layer, and the middleware every request passes — origin guard, CORS, connection cap,
//! body limit, request logs. JSON answers for unknown paths and methods.

pub mod admin;
mod auth;
mod capacity;
pub mod cors;
pub mod error;
mod health;
mod ice;
mod request_buffers;
mod rooms;
mod static_files;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use socketioxide::layer::SocketIoLayer;
use tower_http::LatencyUnit;
use tower_http::trace::{DefaultMakeSpan, DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::state::App;
use error::error;

/// The whole HTTP service: REST routes, Socket.IO, and the middleware around both.
pub fn service(app: &App, socket_layer: SocketIoLayer) -> Router {
    let state = &app.state;
    let config = &state.config;
    let policy = Arc::new(cors::OriginPolicy {
        origins: config.allowed_origins.clone(),
        same_origin: config.static_dir.is_some(),
    });
    routes(app.clone())
        .layer(socket_layer)
        .layer(axum::middleware::from_fn(request_buffers::detach))
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            capacity::connection_cap,
        ))
        .layer(axum::extract::DefaultBodyLimit::max(
            config.max_payload_bytes,
        ))
        .layer(cors::cors_layer(&policy.origins))
        .layer(axum::middleware::from_fn_with_state(
            policy,
            cors::origin_guard,
        ))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(DefaultMakeSpan::new().level(Level::INFO))
                .on_request(())
                .on_response(
                    DefaultOnResponse::new()
                        .level(Level::INFO)
                        .latency_unit(LatencyUnit::Millis),
                ),
        )
}

fn routes(app: App) -> Router {
    let router = Router::new()
        .route("/health", get(health::health))
        .route("/ready", get(health::ready))
        .route("/metrics", get(health::metrics))
        .route("/api/room/{room_id}", get(rooms::room))
        .route("/api/create-room", post(rooms::create_room))
        .route("/api/ice-servers", get(ice::ice_servers))
        .nest("/api/admin", admin::router(app.clone()))
        .method_not_allowed_fallback(method_not_allowed);
    let router = match app.state.config.static_dir.clone() {
        Some(dir) => router.fallback(move |request| static_files::serve(dir, request)),
        None => router.fallback(not_found),
    };
    router.with_state(app)
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Not found")
}

async fn method_not_allowed() -> Response {
    error(StatusCode::METHOD_NOT_ALLOWED, "Method not allowed")
}
