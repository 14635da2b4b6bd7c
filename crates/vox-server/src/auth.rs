//! Bearer API keys as a layer. `/health` and `/ready` are public; every other route needs
//! `Authorization: Bearer <key>` with one of the configured keys. Keys are compared in constant time and never
//! logged.

use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;

use crate::error::ApiError;
use crate::state::AppState;

/// Routes anyone may call (liveness and readiness probes).
pub fn is_public(path: &str) -> bool {
    matches!(path, "/health" | "/ready")
}

/// True when `presented` equals one of `keys`. Every key is compared, whatever matches, so the time taken does
/// not say which key (or how much of one) was right.
pub fn key_matches(keys: &[String], presented: &[u8]) -> bool {
    let mut ok = subtle::Choice::from(0u8);
    for k in keys {
        ok |= k.as_bytes().ct_eq(presented);
    }
    ok.into()
}

pub async fn require_key(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let keys = &state.config.api_keys;
    if keys.is_empty() || is_public(req.uri().path()) {
        return next.run(req).await;
    }
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .map(str::trim);
    match presented {
        Some(p) if key_matches(keys, p.as_bytes()) => next.run(req).await,
        Some(_) => unauthorized("the API key is not valid"),
        None => unauthorized("missing API key: send Authorization: Bearer <key>"),
    }
}

fn unauthorized(message: &str) -> Response {
    let mut r = ApiError::new(StatusCode::UNAUTHORIZED, message).into_response();
    r.headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_configured_key_matches_and_nothing_else() {
        let keys = vec!["first-key-123".to_string(), "second-key-456".to_string()];
        assert!(key_matches(&keys, b"first-key-123"));
        assert!(key_matches(&keys, b"second-key-456"));
        assert!(!key_matches(&keys, b"first-key-12"));
        assert!(!key_matches(&keys, b"first-key-1234"));
        assert!(!key_matches(&keys, b""));
        assert!(!key_matches(&[], b"first-key-123"));
    }
}
