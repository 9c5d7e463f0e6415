//! `POST /hits` (SPEC 3).

use crate::errors::JsonError;
use crate::schema::{
    Error, Forbidden, HitBatch, IngestError, IngestResult, MethodNotAllowed, NdjsonHits,
    RejectedHit, Unauthorized,
};
use crate::state::ApiState;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gender_core::ingest::{BatchError, BodyFormat, parse_batch};
use gender_core::ports::LogRecord;

/// Bodies above this are parsed on the blocking pool, off the async workers.
const INLINE_PARSE_BYTES: usize = 64 * 1024;

fn body_format(headers: &HeaderMap) -> Result<BodyFormat, JsonError> {
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Ok(BodyFormat::Json);
    };
    let essence = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        // `text/plain`: what `navigator.sendBeacon` and `fetch` send for a
        // string body without a preflight (SPEC 18); the body is the same JSON.
        "application/json" | "text/plain" => Ok(BodyFormat::Json),
        "application/x-ndjson" | "application/ndjson" => Ok(BodyFormat::Ndjson),
        _ => Err(JsonError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Content-Type must be application/json, text/plain (holding JSON) or application/x-ndjson",
        )),
    }
}

fn too_large(limit: usize) -> JsonError {
    JsonError::new(
        StatusCode::PAYLOAD_TOO_LARGE,
        format!("request body over {limit} bytes"),
    )
    .with("limit_bytes", limit)
}

/// Reads at most `limit` bytes (the deployment's body limit); the limit is
/// enforced while streaming, so an oversized body is never buffered whole.
async fn read_body(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, JsonError> {
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large(limit));
    }
    axum::body::to_bytes(body, limit).await.map_err(|e| {
        let over_limit = std::error::Error::source(&e)
            .is_some_and(|s| s.is::<http_body_util::LengthLimitError>());
        if over_limit {
            too_large(limit)
        } else {
            JsonError::new(
                StatusCode::BAD_REQUEST,
                format!("could not read request body: {e}"),
            )
        }
    })
}

fn batch_error(e: BatchError) -> JsonError {
    let status = match e {
        BatchError::TooManyHits => StatusCode::PAYLOAD_TOO_LARGE,
        BatchError::Empty | BatchError::Malformed(_) | BatchError::NotUtf8 => {
            StatusCode::BAD_REQUEST
        }
    };
    JsonError::new(status, e.to_string())
}

#[utoipa::path(
    post,
    path = "/hits",
    tag = "ingest",
    operation_id = "postHits",
    summary = "Ingest page hits",
    description = "Accepts one hit, a JSON array of 1..=500 hits, or NDJSON (1..=500 lines). \
        The body may be at most {max_body}. Every valid hit is stored even if others in the \
        same request are invalid; those are listed in `rejected`. A `202` means durable: the \
        accepted hits are in Kinesis (AWS) or fsync'ed in the local log. `application/json` \
        with a charset parameter is JSON; no `Content-Type` is read as JSON, and so is \
        `text/plain` (what a browser's `navigator.sendBeacon` sends, no preflight needed). \
        Needs a key of scope `ingest` (or `admin`) in `x-api-key`; an ingest key may instead \
        come as `?key=` (SPEC 18), a read or admin key there is refused (`403`).",
    security(("ApiKey" = []), ("IngestKeyInUrl" = [])),
    request_body(
        description = "Hits, at most {max_body}.",
        content(
            (HitBatch = "application/json", examples(
                ("one" = (summary = "One hit", value = json!(
                    {"clientid": "visitor-42", "pageGender": "F"}
                ))),
                ("array" = (summary = "An array of hits", value = json!([
                    {"clientid": "visitor-42", "pageGender": "F", "timestamp": "2024-05-01T12:34:56Z"},
                    {"clientid": "visitor-7", "pageGender": "m", "timestamp": 1714566896789_i64}
                ]))),
            )),
            (NdjsonHits = "application/x-ndjson", example = json!(
                "{\"clientid\":\"visitor-42\",\"pageGender\":\"F\"}\n{\"clientid\":\"visitor-7\",\"pageGender\":\"M\"}\n"
            )),
        )
    ),
    responses(
        (status = 202, description = "At least one hit was stored durably; the others are \
            listed in `rejected`.", body = IngestResult),
        (status = 400, description = "The body is not JSON / NDJSON, is empty (an empty array \
            too), or no hit in it is valid (then `accepted` is 0 and `rejected` says why for \
            each).", body = IngestError,
            example = json!({"error": "no valid hits in the request", "accepted": 0,
                "rejected": [{"index": 0, "error": "pageGender is required"}]})),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 405, response = MethodNotAllowed),
        (status = 413, description = "The body is over {max_body} (`limit_bytes` says the \
            limit), or holds more than 500 hits.", body = IngestError,
            example = json!({"error": "too many hits: at most 500 per request"})),
        (status = 415, description = "A `Content-Type` other than `application/json`, \
            `text/plain` or `application/x-ndjson` (also `application/ndjson`).", body = Error,
            example = json!({"error": "Content-Type must be application/json, text/plain (holding JSON) or application/x-ndjson"})),
        (status = 503, description = "Storage is unavailable or behind: no hit was stored \
            (`rejected` lists them when they were tried); send the request again after \
            `Retry-After` seconds.", body = IngestError,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying.")),
            example = json!({"error": "ingest backend unavailable; nothing was stored, retry",
                "retryable": true})),
    )
)]
pub async fn post_hits(State(state): State<ApiState>, headers: HeaderMap, body: Body) -> Response {
    let result = ingest(&state, &headers, body).await;
    match result {
        Ok(response) => response,
        Err(error) => {
            state.metrics.ingest_requests_failed.inc();
            error.into_response()
        }
    }
}

/// The `503` of a request none of whose hits was stored. Throttling is
/// backpressure working (the adapter logs when it starts and ends), so only
/// other failures are logged here, once per request.
fn not_stored(state: &ApiState, e: &gender_core::PortError, hits: usize) -> JsonError {
    state.metrics.ingest_errors.inc();
    if !matches!(e, gender_core::PortError::Throttled { .. }) {
        tracing::error!(error = %e, hits, "ingest append failed");
    }
    // The port's own words name the cause (the pipeline behind its backlog
    // bound, the data directory unusable, the stream throttling) and carry
    // no paths.
    JsonError::unavailable(format!("{e}; nothing was stored, retry")).with("retryable", true)
}

async fn ingest(state: &ApiState, headers: &HeaderMap, body: Body) -> Result<Response, JsonError> {
    let format = body_format(headers)?;
    let bytes = read_body(headers, body, state.max_body_bytes).await?;
    // A request the log would refuse (the pipeline behind its bound) is
    // refused before its hits are parsed: overload costs no parsing.
    state.log.admits().map_err(|e| not_stored(state, &e, 0))?;
    let now_ms = (state.clock)();
    let batch = if let Some(parse_on) = &state.parse_on {
        let (done, parsed) = tokio::sync::oneshot::channel();
        parse_on(Box::new(move || {
            let _ = done.send(parse_batch(&bytes, format, now_ms));
        }));
        parsed
            .await
            .map_err(|_| JsonError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?
    } else if bytes.len() > INLINE_PARSE_BYTES {
        tokio::task::spawn_blocking(move || parse_batch(&bytes, format, now_ms))
            .await
            .map_err(|_| JsonError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal error"))?
    } else {
        parse_batch(&bytes, format, now_ms)
    }
    .map_err(batch_error)?;

    let mut rejected: Vec<RejectedHit> = batch.rejected.into_iter().map(Into::into).collect();
    state.metrics.hits_rejected.inc_by(rejected.len() as u64);
    if batch.accepted.is_empty() {
        return Err(
            JsonError::new(StatusCode::BAD_REQUEST, "no valid hits in the request")
                .with("accepted", 0)
                .with("rejected", &rejected),
        );
    }

    let (indexes, records): (Vec<usize>, Vec<LogRecord>) = batch
        .accepted
        .into_iter()
        .map(|(index, mut hit)| {
            // Assigned here, before the hit is stored, so every retry of
            // the stored record (the SDK's, ours, a redelivery) carries it.
            hit.hitid.get_or_insert_with(|| state.hit_ids.assign());
            let data = hit.to_json();
            (
                index,
                LogRecord {
                    partition_key: hit.clientid,
                    data,
                },
            )
        })
        .unzip();
    // The append and its bookkeeping run to the end even if the client (or a
    // shutdown) drops this request: stored hits are always counted.
    let submitted = records.len();
    let (log, metrics) = (state.log.clone(), state.metrics.clone());
    let appended = tokio::spawn(async move {
        let result = log.append(records).await;
        if let Ok(failed) = &result {
            metrics
                .hits_accepted
                .inc_by((submitted - failed.len()) as u64);
        }
        result
    })
    .await
    .unwrap_or_else(|e| Err(gender_core::PortError::unavailable("ingest", e)));
    let failed = appended.map_err(|e| not_stored(state, &e, indexes.len()))?;
    // Only hits that were finally stored count as accepted.
    for &i in &failed {
        rejected.push(RejectedHit {
            index: indexes[i],
            error: "not stored after retries; send it again".into(),
        });
    }
    let accepted = indexes.len() - failed.len();
    if accepted == 0 {
        state.metrics.ingest_errors.inc();
        return Err(
            JsonError::unavailable("ingest backend did not store any hit, retry")
                .with("accepted", 0)
                .with("rejected", &rejected)
                .with("retryable", true),
        );
    }
    rejected.sort_by_key(|r| r.index);
    Ok((
        StatusCode::ACCEPTED,
        axum::Json(IngestResult { accepted, rejected }),
    )
        .into_response())
}
