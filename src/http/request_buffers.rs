//! Memory per Socket.IO session. engineioxide keeps every session's request parts (headers,
//! URI, extensions) for the session's whole life; hyper parses headers and the URI as slices
//! of its 8-16 KiB connection read buffer, and axum adds an `OriginalUri` slice of it too, so
//! each idle session would pin that whole buffer. Copying them into allocations of their own
//! lets it go (measured: 35 → 25 KB of RSS per idle client at 19,000 clients).

use axum::extract::{OriginalUri, Request};
use axum::http::{HeaderMap, HeaderValue, Uri};
use axum::middleware::Next;
use axum::response::Response;

pub async fn detach(mut request: Request, next: Next) -> Response {
    if request.uri().path().starts_with("/socket.io") {
        let headers = std::mem::take(request.headers_mut());
        let mut owned = HeaderMap::with_capacity(headers.len());
        for (name, value) in &headers {
            if let Ok(value) = HeaderValue::from_bytes(value.as_bytes()) {
                owned.append(name.clone(), value);
            }
        }
        *request.headers_mut() = owned;
        if let Ok(uri) = Uri::try_from(request.uri().to_string()) {
            *request.uri_mut() = uri.clone();
            request.extensions_mut().insert(OriginalUri(uri));
        }
    }
    next.run(request).await
}
