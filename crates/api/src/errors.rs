use axum::Router;
use axum::body::Body;
use axum::http::{HeaderValue, Response, StatusCode, header};
use axum::response::IntoResponse;
use serde_json::{Value, json};
use std::any::Any;
use tower_http::catch_panic::CatchPanicLayer;

/// A JSON error body `{"error": "...", ...extra}` with its status.
#[derive(Debug)]
pub struct JsonError {
    pub status: StatusCode,
    pub body: Value,
    /// Seconds for a `Retry-After` header.
    retry_after: Option<u32>,
}

/// The `Retry-After` of a `503` that a retry can heal (storage unavailable).
pub const RETRY_AFTER_SECONDS: u32 = 1;

impl JsonError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> JsonError {
        JsonError {
            status,
            body: json!({ "error": message.into() }),
            retry_after: None,
        }
    }

    /// A `503` for a temporary failure, with `Retry-After`
    /// ([`RETRY_AFTER_SECONDS`]).
    pub fn unavailable(message: impl Into<String>) -> JsonError {
        JsonError::new(StatusCode::SERVICE_UNAVAILABLE, message).retry_after(RETRY_AFTER_SECONDS)
    }

    /// Sends `Retry-After: seconds` with the error.
    pub fn retry_after(mut self, seconds: u32) -> JsonError {
        self.retry_after = Some(seconds);
        self
    }

    /// Adds a field next to `error`.
    pub fn with(mut self, field: &str, value: impl serde::Serialize) -> JsonError {
        self.body[field] = serde_json::to_value(value).unwrap_or(Value::Null);
        self
    }
}

impl IntoResponse for JsonError {
    fn into_response(self) -> axum::response::Response {
        let mut response = (self.status, axum::Json(self.body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

fn is_json(response: &Response<Body>) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"))
}

/// Gives every error response a JSON body: axum's own 404 / 405 / extractor
/// rejections included, so no client ever sees an empty or text error.
async fn json_error_bodies(response: Response<Body>) -> Response<Body> {
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) || is_json(&response) {
        return response;
    }
    let message = match status {
        StatusCode::NOT_FOUND => "no such route".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => {
            match response
                .headers()
                .get(header::ALLOW)
                .and_then(|v| v.to_str().ok())
            {
                Some(allowed) if !allowed.is_empty() => {
                    format!("method not allowed; allowed: {allowed}")
                }
                _ => "method not allowed for this route".to_owned(),
            }
        }
        other => other.canonical_reason().unwrap_or("error").to_lowercase(),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, Body::from(json!({ "error": message }).to_string()))
}

fn panic_response(_: Box<dyn Any + Send + 'static>) -> Response<Body> {
    tracing::error!("handler panicked");
    JsonError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response()
}

/// Answers a JSON 503 with `Retry-After` when a request is not done within
/// `deadline` (a hung storage call), so the caller never sees a gateway's
/// own non-JSON timeout. Whether a timed-out `POST /hits` was stored is
/// unknown: the client retries, as after any 503.
pub fn with_request_deadline(router: Router, deadline: std::time::Duration) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| async move {
            match tokio::time::timeout(deadline, next.run(request)).await {
                Ok(response) => response,
                Err(_) => {
                    tracing::warn!(
                        deadline_ms = deadline.as_millis() as u64,
                        "request deadline passed"
                    );
                    JsonError::unavailable("storage did not answer in time; retry").into_response()
                }
            }
        },
    ))
}

/// The outermost layers every deployment uses: a JSON 404 for unknown
/// routes, JSON bodies on every error, and panics turned into a JSON 500.
pub fn with_edge_layers(router: Router) -> Router {
    let routed =
        router.fallback(|| async { JsonError::new(StatusCode::NOT_FOUND, "no such route") });
    // Around the whole router, not each route: axum adds a 405's `Allow`
    // outside the route's layers, and the JSON body names those methods.
    Router::new()
        .fallback_service(routed)
        .layer(axum::middleware::map_response(json_error_bodies))
        .layer(CatchPanicLayer::custom(panic_response))
}
