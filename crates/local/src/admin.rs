//! Local-only routes: the flush barrier, on-demand daily run, metrics, console.

use crate::LocalState;
use crate::metrics;
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use gender_api::{JsonError, require_api_key};
use gender_core::{Date, default_daily_date};
use serde::Deserialize;

const CONSOLE_HTML: &str = include_str!("console.html");

pub fn routes(state: LocalState) -> Router {
    let admin = Router::new()
        .route("/admin/flush", post(flush))
        .route("/admin/daily", post(daily))
        .route_layer(axum::middleware::from_fn_with_state(
            state.api.api_key.clone(),
            require_api_key,
        ));
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/", get(|| async { Html(CONSOLE_HTML) }))
        .merge(admin)
        .with_state(state)
}

async fn flush(State(state): State<LocalState>) -> Response {
    match state.delivery.flush().await {
        Ok(report) => axum::Json(report).into_response(),
        Err(e) => JsonError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("flush failed: {e}"),
        )
        .into_response(),
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DailyRequest {
    date: Option<String>,
}

/// Body `{"date": "YYYY-MM-DD"}`; an empty body or no date means yesterday UTC.
async fn daily(State(state): State<LocalState>, body: Bytes) -> Response {
    let requested = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<DailyRequest>(&body) {
            Ok(request) => request.date,
            Err(e) => {
                return JsonError::new(
                    StatusCode::BAD_REQUEST,
                    format!("body must be {{\"date\": \"YYYY-MM-DD\"}}: {e}"),
                )
                .into_response();
            }
        }
    };
    let date = match requested {
        None => default_daily_date((state.api.clock)()),
        Some(text) => match Date::parse(&text) {
            Some(date) => date,
            None => {
                return JsonError::new(
                    StatusCode::BAD_REQUEST,
                    "date must be a calendar date YYYY-MM-DD",
                )
                .with("date", text)
                .into_response();
            }
        },
    };
    match state.run_daily(date).await {
        Ok(summary) => axum::Json(summary).into_response(),
        Err(e) => JsonError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("daily job failed: {e}"),
        )
        .into_response(),
    }
}

async fn prometheus(State(state): State<LocalState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&state.registry),
    )
        .into_response()
}
