//! The origin allow-list (`FRONTEND_URL`), for REST and for every Socket.IO request on both
//! transports: a guard that refuses other origins with `403`, and the CORS headers for the
//! allowed ones. Requests without an `Origin` header (curl, native apps) pass.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HOST, ORIGIN};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;
use tower_http::cors::{AllowOrigin, CorsLayer};

use super::error::error;
use crate::config::AllowedOrigins;

/// Which origins the guard lets through.
#[derive(Debug, Clone)]
pub struct OriginPolicy {
    pub origins: AllowedOrigins,
    /// Also allow the server's own origin. Only when it hosts a frontend (`STATIC_DIR`):
    /// otherwise PROTOCOL.md's list is exact, and trusting `Host` would invite DNS rebinding.
    pub same_origin: bool,
}

/// Refuses any request whose `Origin` is not allowed, before anything else sees it
/// (including the WebSocket upgrade, which browsers do not subject to CORS).
pub async fn origin_guard(
    State(policy): State<Arc<OriginPolicy>>,
    request: Request,
    next: Next,
) -> Response {
    if let Some(origin) = request.headers().get(ORIGIN) {
        let allowed = origin.to_str().is_ok_and(|o| {
            policy.origins.allows(o) || (policy.same_origin && is_same_origin(o, &request))
        });
        if !allowed {
            return error(StatusCode::FORBIDDEN, "Origin not allowed");
        }
    }
    next.run(request).await
}

/// A page served by this server itself (`STATIC_DIR`) is always allowed: browsers send its
/// own origin on POSTs and WebSocket upgrades, and it matches the `Host` it was served from.
fn is_same_origin(origin: &str, request: &Request) -> bool {
    let Some(host) = request.headers().get(HOST).and_then(|h| h.to_str().ok()) else {
        return false;
    };
    origin
        .strip_prefix("http://")
        .or_else(|| origin.strip_prefix("https://"))
        .is_some_and(|origin_host| origin_host.eq_ignore_ascii_case(host))
}

/// CORS headers and preflight answers for the allowed origins.
pub fn cors_layer(origins: &AllowedOrigins) -> CorsLayer {
    let allow_origin = match origins {
        // Browsers refuse `*` with credentials, so the caller's origin is echoed instead.
        AllowedOrigins::Any => AllowOrigin::mirror_request(),
        AllowedOrigins::List(list) => AllowOrigin::list(
            list.iter()
                .filter_map(|o| HeaderValue::from_str(o).ok())
                .collect::<Vec<_>>(),
        ),
    };
    CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_credentials(true)
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([CONTENT_TYPE, AUTHORIZATION])
}
