//! `DELETE /visitors/{clientid}` and `GET /erasures/{id}` (SPEC 17). The
//! request is recorded durably behind the [`Erasures`](gender_core::ports::Erasures)
//! port and carried out in the background by the deployment.

use crate::errors::JsonError;
use crate::lookup::{invalid_clientid, lossy_path_segment, path_clientid};
use crate::schema::{
    ClientIdError, Erasure, ErasureIdError, Forbidden, MethodNotAllowed, Unauthorized,
};
use crate::state::ApiState;
use axum::Json;
use axum::extract::rejection::PathRejection;
use axum::extract::{Path, State};
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use gender_core::ErasureRecord;
use gender_core::erasure::is_erasure_id;
use gender_core::time::format_rfc3339_millis;

fn body(record: &ErasureRecord) -> Erasure {
    Erasure {
        erasure_id: record.id.clone(),
        status: record.status.into(),
        requested_at: format_rfc3339_millis(record.requested_ms),
        completed_at: record.completed_ms.map(format_rfc3339_millis),
        status_url: format!("/erasures/{}", record.id),
    }
}

#[utoipa::path(
    delete,
    path = "/visitors/{clientid}",
    tag = "erasure",
    operation_id = "eraseVisitor",
    summary = "Forget a visitor",
    description = "Records a request to forget the visitor everywhere the service keeps data: \
        the profile, the visitor's rows in curated hits and in daily rollups. Raw objects \
        (and on AWS Firehose's backup) are deleted by retention within their stated age. The \
        work happens in the background: follow it at `status_url`. Hits accepted before this \
        request are erased; hits for the visitor accepted after it are counted afresh. Any \
        valid id is accepted, seen or not, and each request makes a new erasure. The erasure \
        log keeps the id, the times and a salted hash of the clientid, never the clientid.",
    security(("ApiKey" = [])),
    params(
        ("clientid" = String, Path, pattern = r"^[A-Za-z0-9._:-]{1,64}$",
            description = "The visitor id (percent-encoded in the path).",
            example = "visitor-42"),
    ),
    responses(
        (status = 202, description = "Recorded; `Location` is the erasure's status URL.",
            body = Erasure,
            headers(("Location" = String, description = "`/erasures/{id}`"))),
        (status = 400, description = "The id breaks the `clientid` rule; `clientid` echoes it.",
            body = ClientIdError,
            example = json!({"clientid": "bad id!", "error": "clientid must be 1..=64 characters of [A-Za-z0-9._:-]"})),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 405, response = MethodNotAllowed),
        (status = 503, description = "Nothing was recorded; retry after `Retry-After` seconds.",
            body = ClientIdError,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    )
)]
pub async fn delete_visitor(
    State(state): State<ApiState>,
    uri: Uri,
    clientid: Result<Path<String>, PathRejection>,
) -> Response {
    let clientid = match path_clientid(&uri, clientid) {
        Ok(clientid) => clientid,
        Err(bad) => return invalid_clientid(&bad),
    };
    match state
        .erasures
        .request_erasure(&clientid, (state.clock)())
        .await
    {
        Ok(record) => {
            let body = body(&record);
            let location = body.status_url.clone();
            (
                StatusCode::ACCEPTED,
                [(header::LOCATION, location)],
                Json(body),
            )
                .into_response()
        }
        Err(e) => {
            tracing::error!(error = %e, "recording an erasure failed");
            JsonError::unavailable("erasure not recorded, retry")
                .with("clientid", &clientid)
                .into_response()
        }
    }
}

/// `/visitors/` with nothing after it: an empty id.
pub async fn delete_empty_clientid() -> Response {
    invalid_clientid("")
}

#[utoipa::path(
    get,
    path = "/erasures/{id}",
    tag = "erasure",
    operation_id = "getErasure",
    summary = "An erasure's status",
    description = "`pending` until the visitor's profile and rows are gone, then `complete` \
        with `completed_at`.",
    security(("ApiKey" = [])),
    params(
        ("id" = String, Path, pattern = r"^[0-9a-f]{32}$",
            description = "The `erasure_id` of the `202`.",
            example = "3f2a9c0d4e5b6a7182930a1b2c3d4e5f"),
    ),
    responses(
        (status = 200, description = "The erasure.", body = Erasure),
        (status = 400, description = "Not an erasure id.", body = ErasureIdError),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 404, description = "No erasure has this id.", body = ErasureIdError,
            example = json!({"erasure_id": "00000000000000000000000000000000", "error": "unknown erasure"})),
        (status = 405, response = MethodNotAllowed),
        (status = 503, description = "The erasure log is unavailable; retry after \
            `Retry-After` seconds.", body = ErasureIdError,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    )
)]
pub async fn get_erasure(
    State(state): State<ApiState>,
    uri: Uri,
    id: Result<Path<String>, PathRejection>,
) -> Response {
    let id = match id {
        Ok(Path(id)) => id,
        Err(_) => lossy_path_segment(&uri),
    };
    if !is_erasure_id(&id) {
        return JsonError::new(
            StatusCode::BAD_REQUEST,
            "erasure id must be 32 characters of [0-9a-f]",
        )
        .with("erasure_id", &id)
        .into_response();
    }
    match state.erasures.erasure(&id).await {
        Ok(Some(record)) => Json(body(&record)).into_response(),
        Ok(None) => JsonError::new(StatusCode::NOT_FOUND, "unknown erasure")
            .with("erasure_id", &id)
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "reading the erasure log failed");
            JsonError::unavailable("erasure log unavailable, retry")
                .with("erasure_id", &id)
                .into_response()
        }
    }
}
