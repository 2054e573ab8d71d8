//! The one error type of the REST API: a status and a sentence, answered as
//! `{"error": "…"}` (PROTOCOL.md's shape for every JSON error body).

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use crate::registry::StoreUnavailable;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }

    pub fn not_found(message: &str) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

/// 503 for a request the room store (Redis) could not answer.
impl From<StoreUnavailable> for ApiError {
    fn from(e: StoreUnavailable) -> Self {
        tracing::warn!("{e}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Room store unavailable; try again shortly",
        )
    }
}

/// A JSON error body, `{"error": "…"}`, with its status.
pub fn error(status: StatusCode, message: &str) -> Response {
    ApiError::new(status, message).into_response()
}
