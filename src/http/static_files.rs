//! Optional hosting of a built frontend (`STATIC_DIR`), so a frontend and its backend can be
//! one service on one origin. Files are served at `/`; a GET that accepts HTML and matches no
//! file gets `index.html` (single-page-app routing). Hashed build assets are cached for a
//! year, everything else is revalidated. API, health and Socket.IO paths are never shadowed:
//! the router answers those before this fallback is reached.

use std::path::{Path, PathBuf};

use axum::extract::Request;
use axum::http::header::{ACCEPT, CACHE_CONTROL};
use axum::http::{HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use tower::ServiceExt;
use tower_http::services::{ServeDir, ServeFile};

use super::error::error;

const IMMUTABLE: &str = "public, max-age=31536000, immutable";
const REVALIDATE: &str = "no-cache";

/// Serves `dir`, falling back to `index.html` for page navigations.
pub async fn serve(dir: PathBuf, request: Request) -> Response {
    let path = request.uri().path().to_owned();
    if path == "/api" || path.starts_with("/api/") {
        return error(StatusCode::NOT_FOUND, "Not found");
    }
    let is_read = matches!(*request.method(), Method::GET | Method::HEAD);
    let wants_html = request
        .headers()
        .get(ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|accept| accept.contains("text/html"));
    if !is_read {
        return error(StatusCode::NOT_FOUND, "Not found");
    }
    let index = dir.join("index.html");
    match ServeDir::new(&dir).oneshot(request).await {
        Ok(found) if found.status() != StatusCode::NOT_FOUND => {
            let cache = if is_hashed_asset(&path) {
                IMMUTABLE
            } else {
                REVALIDATE
            };
            with_cache(found.into_response(), cache)
        }
        _ if wants_html => match ServeFile::new(index)
            .oneshot(Request::new(axum::body::Body::empty()))
            .await
        {
            Ok(page) if page.status().is_success() => with_cache(page.into_response(), REVALIDATE),
            _ => error(StatusCode::NOT_FOUND, "Not found"),
        },
        _ => error(StatusCode::NOT_FOUND, "Not found"),
    }
}

fn with_cache(mut response: Response, cache: &'static str) -> Response {
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static(cache));
    response
}

/// Build tools put content-hashed files under `/assets/` (Vite) or `/static/` (Create React
/// App), or name them `name-<hash>.ext` / `name.<hash>.ext`: those never change.
fn is_hashed_asset(path: &str) -> bool {
    if path.starts_with("/assets/") || path.starts_with("/static/") {
        return true;
    }
    let Some(stem) = Path::new(path).file_stem().and_then(|s| s.to_str()) else {
        return false;
    };
    stem.rsplit(['-', '.']).next().is_some_and(|hash| {
        hash.len() >= 8
            && hash.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
            && hash.bytes().any(|b| b.is_ascii_digit())
            && stem.len() > hash.len()
    })
}

#[cfg(test)]
mod tests {
    use super::is_hashed_asset;

    #[test]
    fn hashed_assets_are_recognised() {
        assert!(is_hashed_asset("/assets/index.js"));
        assert!(is_hashed_asset("/static/js/main.js"));
        assert!(is_hashed_asset("/main.3f9a2b1c.js"));
        assert!(is_hashed_asset("/index-Bx3a9kQf.css"));
        assert!(!is_hashed_asset("/index.html"));
        assert!(!is_hashed_asset("/favicon.ico"));
        assert!(!is_hashed_asset("/my-component.js"));
        assert!(!is_hashed_asset("/12345678.js"));
    }
}
