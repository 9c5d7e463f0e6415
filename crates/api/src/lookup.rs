//! `GET /gender/{clientid}` (SPEC 4) and `GET /health`.

use crate::{ApiState, JsonError};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gender_core::time::format_rfc3339_millis;
use gender_core::{Profile, validate_clientid};
use serde_json::{Value, json};

pub fn profile_json(profile: &Profile) -> Value {
    let signals = profile.signals();
    json!({
        "clientid": profile.clientid,
        "gender": signals.gender(),
        "signals": {
            "last": signals.last,
            "lifetime": signals.lifetime,
            "last_7_days": signals.last_7_days,
        },
        "hits": { "M": profile.m, "F": profile.f },
        "last_seen": format_rfc3339_millis(profile.last_seen_ms),
        "updated_at": format_rfc3339_millis(profile.updated_at_ms),
    })
}

pub async fn get_gender(State(state): State<ApiState>, Path(clientid): Path<String>) -> Response {
    if let Err(e) = validate_clientid(&clientid) {
        state.metrics.lookups_invalid.inc();
        return JsonError::new(StatusCode::BAD_REQUEST, e.to_string())
            .with("clientid", &clientid)
            .into_response();
    }
    match state.profiles.get_profile(&clientid).await {
        Ok(Some(profile)) => {
            state.metrics.lookups_found.inc();
            Json(profile_json(&profile)).into_response()
        }
        Ok(None) => {
            state.metrics.lookups_not_found.inc();
            JsonError::new(StatusCode::NOT_FOUND, "unknown clientid")
                .with("clientid", &clientid)
                .into_response()
        }
        Err(e) => {
            state.metrics.lookup_errors.inc();
            tracing::error!(error = %e, "profile lookup failed");
            JsonError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "state store unavailable, retry",
            )
            .with("clientid", &clientid)
            .into_response()
        }
    }
}

/// `/gender/` with nothing after it is an empty clientid, not an unknown route.
pub async fn empty_clientid(State(state): State<ApiState>) -> Response {
    state.metrics.lookups_invalid.inc();
    let error = validate_clientid("").expect_err("empty is invalid");
    JsonError::new(StatusCode::BAD_REQUEST, error.to_string())
        .with("clientid", "")
        .into_response()
}

pub async fn health(State(state): State<ApiState>) -> Response {
    match state.health.ping().await {
        Ok(()) => Json(json!({ "status": "ok" })).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "error": e.to_string() })),
        )
            .into_response(),
    }
}
