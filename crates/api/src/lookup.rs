//! `GET /gender/{clientid}` (SPEC 4) and `GET /health`.

use crate::errors::JsonError;
use crate::schema::{
    ClientIdError, Forbidden, GenderProfile, Health, HealthDown, HealthOk, HealthUnavailable,
    HitCounts, MethodNotAllowed, Signals, Unauthorized,
};
use crate::state::ApiState;
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use gender_core::time::format_rfc3339_millis;
use gender_core::{Profile, validate_clientid};

pub fn profile_body(profile: &Profile) -> GenderProfile {
    let signals = profile.signals();
    GenderProfile {
        clientid: profile.clientid.clone(),
        gender: signals.gender().into(),
        signals: Signals {
            last: signals.last.into(),
            lifetime: signals.lifetime.into(),
            last_7_days: signals.last_7_days.map(Into::into),
        },
        hits: HitCounts {
            m: profile.m,
            f: profile.f,
        },
        last_seen: format_rfc3339_millis(profile.last_seen_ms),
        updated_at: format_rfc3339_millis(profile.updated_at_ms),
    }
}

/// The last path segment as sent when it does not decode to UTF-8
/// (`/gender/a%FF`), percent-decoded, invalid bytes as U+FFFD.
pub(crate) fn lossy_path_segment(uri: &Uri) -> String {
    let raw = uri.path().rsplit('/').next().unwrap_or_default();
    percent_encoding::percent_decode_str(raw)
        .decode_utf8_lossy()
        .into_owned()
}

/// The `{clientid}` of a path if it is valid, else the id as received.
pub(crate) fn path_clientid(
    uri: &Uri,
    clientid: Result<Path<String>, PathRejection>,
) -> Result<String, String> {
    match clientid {
        Ok(Path(clientid)) if validate_clientid(&clientid).is_ok() => Ok(clientid),
        Ok(Path(clientid)) => Err(clientid),
        Err(_) => Err(lossy_path_segment(uri)),
    }
}

/// `400` naming the broken `clientid` rule and echoing the id.
pub(crate) fn invalid_clientid(clientid: &str) -> Response {
    let error = validate_clientid(clientid)
        .err()
        .map_or_else(|| "invalid clientid".to_owned(), |e| e.to_string());
    JsonError::new(StatusCode::BAD_REQUEST, error)
        .with("clientid", clientid)
        .into_response()
}

fn invalid_lookup(state: &ApiState, clientid: &str) -> Response {
    state.metrics.lookups_invalid.inc();
    invalid_clientid(clientid)
}

#[utoipa::path(
    get,
    path = "/gender/{clientid}",
    tag = "lookup",
    operation_id = "getGender",
    summary = "A visitor's gender estimate",
    description = "The visitor's current gender, the three signals it is the majority vote \
        of, the lifetime hit counts and timestamps. A hit shows up here within about 2 s of \
        its `202` locally (after Firehose's buffering on AWS).",
    security(("ApiKey" = [])),
    params(
        ("clientid" = String, Path, pattern = r"^[A-Za-z0-9._:-]{1,64}$",
            description = "The visitor id (percent-encoded in the path).",
            example = "visitor-42"),
    ),
    responses(
        (status = 200, description = "The visitor's profile.", body = GenderProfile),
        (status = 400, description = "The id breaks the `clientid` rule (also an empty id, \
            `/gender/`, and one that is not UTF-8 once decoded); `clientid` echoes it.",
            body = ClientIdError,
            example = json!({"clientid": "bad id!", "error": "clientid must be 1..=64 characters of [A-Za-z0-9._:-]"})),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "A valid id that was never seen.", body = ClientIdError,
            example = json!({"clientid": "visitor-404", "error": "unknown clientid"})),
        (status = 405, response = MethodNotAllowed),
        (status = 503, description = "The state store is unavailable; retry after \
            `Retry-After` seconds.", body = ClientIdError,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying.")),
            example = json!({"clientid": "visitor-42", "error": "state store unavailable, retry"})),
    )
)]
pub async fn get_gender(
    State(state): State<ApiState>,
    uri: Uri,
    clientid: Result<Path<String>, PathRejection>,
) -> Response {
    let clientid = match path_clientid(&uri, clientid) {
        Ok(clientid) => clientid,
        Err(bad) => return invalid_lookup(&state, &bad),
    };
    match state.profiles.get_profile(&clientid).await {
        Ok(Some(profile)) => {
            state.metrics.lookups_found.inc();
            Json(profile_body(&profile)).into_response()
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
            JsonError::unavailable("state store unavailable, retry")
                .with("clientid", &clientid)
                .into_response()
        }
    }
}

/// `/gender/` with nothing after it is `GET /gender/{clientid}` with an
/// empty id (documented there), not an unknown route.
pub async fn empty_clientid(State(state): State<ApiState>) -> Response {
    invalid_lookup(&state, "")
}

#[utoipa::path(
    get,
    path = "/health",
    tag = "ops",
    operation_id = "getHealth",
    summary = "Health",
    description = "`200` when every stage works (the state store answers, the data directory \
        is writable, the pipeline within its bounds); otherwise `503` naming the stage and the \
        reason. No authentication.",
    responses(
        (status = 200, description = "Every stage works.", body = Health,
            example = json!({"status": "ok"})),
        (status = 405, response = MethodNotAllowed),
        (status = 503, description = "A stage does not work.", body = HealthUnavailable),
    )
)]
pub async fn health(State(state): State<ApiState>) -> Response {
    match state.health.ping().await {
        Ok(()) => Json(Health {
            status: HealthOk::Ok,
        })
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(HealthUnavailable {
                status: Some(HealthDown::Unavailable),
                error: with_causes(&e),
            }),
        )
            .into_response(),
    }
}

/// The error and its causes, `what: why: root cause` (the probes' causes
/// carry no paths).
fn with_causes(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}
