//! `POST /admin/keys/rotate` (SPEC 18): a new key for one scope, the old
//! one accepted for a grace period ([`crate::keys::rotate`]). The server
//! owns its key files, so the rotation happens here and every route sees
//! the new key at once; `gender-service keys rotate` calls this route.

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gender_api::schema::{Error, Forbidden, MethodNotAllowed, Unauthorized};
use gender_api::{JsonError, Keys, Scope};
use gender_core::time::format_rfc3339_millis;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::Mutex;
use utoipa::ToSchema;

/// The longest grace period a rotation may give the old key: 30 days.
pub(crate) const MAX_GRACE_SECONDS: u64 = 30 * 24 * 3600;

/// What the route works with.
#[derive(Clone)]
pub(crate) struct KeyRotation {
    /// The keys the routes check, updated in place.
    pub(crate) keys: Keys,
    pub(crate) data_dir: PathBuf,
    /// Scopes whose key was given by flag / env: not rotatable here.
    pub(crate) fixed: Vec<Scope>,
    pub(crate) clock: fn() -> i64,
}

/// One rotation at a time: two at once would lose a previous key.
static ROTATING: Mutex<()> = Mutex::const_new(());

/// `POST /admin/keys/rotate` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RotateRequest {
    scope: Scope,
    /// How long the replaced key is still accepted; default 86400 (a day),
    /// at most 2592000 (30 days); 0 ends it at once.
    // Read as a number: JSON Schema's integers include `120.0`.
    #[schema(value_type = Option<u64>, minimum = 0, maximum = 2592000)]
    grace_seconds: Option<f64>,
}

/// `POST /admin/keys/rotate` answer.
#[derive(Serialize, ToSchema)]
pub(super) struct RotateResult {
    scope: Scope,
    /// The new key (also written to the scope's key file).
    key: String,
    /// Until when the replaced key is still accepted (RFC 3339, UTC).
    previous_valid_until: String,
}

fn bad_request(message: impl Into<String>) -> Response {
    JsonError::new(StatusCode::BAD_REQUEST, message).into_response()
}

#[utoipa::path(
    post,
    path = "/admin/keys/rotate",
    tag = "local",
    operation_id = "adminRotateKey",
    summary = "Replace one scope's key (local server only)",
    description = "Writes a new random key for the scope to its file in the data directory \
        and uses it at once; the replaced key keeps working for `grace_seconds` (default a \
        day). Only one replaced key is kept per scope: a second rotation within the grace \
        period ends the first one's. Needs the admin key. `gender-service keys rotate` calls it.",
    security(("ApiKey" = [])),
    request_body(content = RotateRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "Rotated; the answer holds the new key.", body = RotateResult),
        (status = 400, description = "Not a JSON object with a known `scope` and a \
            `grace_seconds` of at most 2592000.", body = Error),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 405, response = MethodNotAllowed),
        (status = 409, description = "The scope's key is set by a flag or env var; change it \
            there.", body = Error),
        (status = 500, description = "The key files could not be written.", body = Error),
    )
)]
pub(super) async fn rotate_key(State(rotation): State<KeyRotation>, body: Body) -> Response {
    let Ok(body) = axum::body::to_bytes(body, 4096).await else {
        return bad_request("request body over 4096 bytes");
    };
    let request: RotateRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(e) => {
            return bad_request(format!(
                "the body must be {{\"scope\": \"ingest\"|\"read\"|\"admin\", \"grace_seconds\": N}}: {e}"
            ));
        }
    };
    let scope = request.scope;
    let grace = match request.grace_seconds {
        None => crate::keys::DEFAULT_ROTATION_GRACE.as_secs(),
        Some(g) if g.fract() == 0.0 && (0.0..=MAX_GRACE_SECONDS as f64).contains(&g) => g as u64,
        Some(_) => {
            return bad_request(format!(
                "grace_seconds must be a whole number from 0 to {MAX_GRACE_SECONDS}"
            ));
        }
    };
    if rotation.fixed.contains(&scope) {
        return JsonError::new(
            StatusCode::CONFLICT,
            format!(
                "the {scope} key is set by a flag or env var (--{0}-key / GENDER_{1}_KEY); change it \
                 there and restart",
                if scope == Scope::Admin { "api" } else { scope.name() },
                if scope == Scope::Admin { "API".to_owned() } else { scope.name().to_uppercase() },
            ),
        )
        .into_response();
    }
    let _one_at_a_time = ROTATING.lock().await;
    let now = (rotation.clock)();
    let dir = rotation.data_dir.clone();
    let rotated = tokio::task::spawn_blocking(move || {
        crate::keys::rotate(&dir, scope, Duration::from_secs(grace), now)
    })
    .await
    .map_err(std::io::Error::other)
    .and_then(|r| r);
    match rotated {
        Ok(rotated) => {
            rotation.keys.set(scope, &rotated.keys);
            tracing::info!(scope = scope.name(), grace_seconds = grace, "key rotated");
            axum::Json(RotateResult {
                scope,
                key: rotated.keys.current,
                previous_valid_until: format_rfc3339_millis(rotated.previous_valid_until_ms),
            })
            .into_response()
        }
        Err(e) => {
            tracing::error!(scope = scope.name(), error = %e, "key rotation failed");
            JsonError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("could not write the {scope} key files: {e}"),
            )
            .into_response()
        }
    }
}

/// `GET /admin/keys/ingest` answer.
#[derive(Serialize, ToSchema)]
pub(super) struct IngestKeyResult {
    scope: Scope,
    /// The ingest key pages publish (`tracker.js`'s `data-key`).
    key: String,
}

#[utoipa::path(
    get,
    path = "/admin/keys/ingest",
    tag = "local",
    operation_id = "adminIngestKey",
    summary = "The current ingest key (local server only)",
    description = "The key a web page publishes to send hits (`<script src=\"/tracker.js\" \
        data-key=...>`), for the console's snippet. Only the ingest key, which pages publish \
        anyway; read and admin keys are never returned. Needs the admin key.",
    security(("ApiKey" = [])),
    responses(
        (status = 200, description = "The ingest key.", body = IngestKeyResult),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No ingest key is configured.", body = Error),
        (status = 405, response = MethodNotAllowed),
    )
)]
pub(super) async fn ingest_key(State(rotation): State<KeyRotation>) -> Response {
    match rotation.keys.current(Scope::Ingest) {
        Some(key) => axum::Json(IngestKeyResult {
            scope: Scope::Ingest,
            key,
        })
        .into_response(),
        None => {
            JsonError::new(StatusCode::NOT_FOUND, "no ingest key is configured").into_response()
        }
    }
}
