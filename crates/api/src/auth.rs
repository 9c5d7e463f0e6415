use crate::errors::JsonError;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use subtle::ConstantTimeEq;

pub const API_KEY_HEADER: &str = "x-api-key";

/// The credential of SPEC 4. `None` disables the check (only for deployments
/// where API Gateway already authenticated the caller).
#[derive(Clone)]
pub struct ApiKey(Option<Arc<str>>);

impl ApiKey {
    pub fn required(key: impl Into<Arc<str>>) -> ApiKey {
        ApiKey(Some(key.into()))
    }

    pub fn disabled() -> ApiKey {
        ApiKey(None)
    }

    fn accepts(&self, presented: Option<&[u8]>) -> bool {
        match (&self.0, presented) {
            (None, _) => true,
            (Some(key), Some(given)) => key.as_bytes().ct_eq(given).into(),
            (Some(_), None) => false,
        }
    }
}

/// Middleware: `401` JSON unless `x-api-key` matches; nothing else runs.
pub async fn require_api_key(State(key): State<ApiKey>, request: Request, next: Next) -> Response {
    let presented = request.headers().get(API_KEY_HEADER).map(|v| v.as_bytes());
    if key.accepts(presented) {
        next.run(request).await
    } else {
        JsonError::new(
            StatusCode::UNAUTHORIZED,
            "missing or invalid API key (header x-api-key)",
        )
        .into_response()
    }
}
