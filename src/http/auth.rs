//! Bearer tokens: the operator endpoints' (compared in constant time) and the access
//! tokens of `POST /api/create-room`.

use axum::http::HeaderMap;
use axum::http::header::AUTHORIZATION;
use subtle::ConstantTimeEq;

/// The token of `Authorization: Bearer <token>`, if `headers` carry one.
pub fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
}

/// Whether `headers` carry `Authorization: Bearer <expected>`.
pub fn has_bearer(headers: &HeaderMap, expected: &str) -> bool {
    let Some(given) = bearer(headers) else {
        return false;
    };
    bool::from(given.as_bytes().ct_eq(expected.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let mut headers = HeaderMap::new();
        assert!(!has_bearer(&headers, "s3cret"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Bearer s3cret"));
        assert!(has_bearer(&headers, "s3cret"));
        assert!(!has_bearer(&headers, "s3cre"));
        headers.insert(AUTHORIZATION, HeaderValue::from_static("Basic s3cret"));
        assert!(!has_bearer(&headers, "s3cret"));
    }
}
