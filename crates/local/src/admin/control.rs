//! What makes the pipeline act: `POST /admin/flush`, the barrier after
//! which every hit accepted before it is visible, and `POST /admin/daily`,
//! the daily job on demand.

use crate::delivery::{DeliveryHandle, FlushReport};
use crate::scheduler::DailyJob;
use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use gender_api::JsonError;
use gender_api::schema::{Error, Forbidden, MethodNotAllowed, Unauthorized};
use gender_core::{Date, default_daily_date};
use serde::Deserialize;
use utoipa::ToSchema;

/// `POST /admin/daily` bodies are a date: anything larger is refused unread.
pub(super) const MAX_DAILY_BODY_BYTES: usize = 4096;

/// The first and last dates `POST /admin/daily` runs for: hits before
/// 2000-01-01 are rejected at ingest (SPEC 2), and `YYYY` has four digits.
const DAILY_DATES: (&str, &str) = ("2000-01-01", "9999-12-31");

/// What `POST /admin/flush` observed (`crate::FlushReport`).
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes the FlushReport the handler serializes")]
pub(super) struct FlushResult {
    /// Always `true` in a `200`: every hit accepted before the call is visible.
    visible: bool,
    /// What is now true, then what this call itself did (the background
    /// loop may already have delivered everything, so zero counts are normal).
    summary: String,
    /// Log offset up to which every hit is delivered, curated and visible.
    delivered_offset: u64,
    /// Raw objects written by this flush.
    objects_delivered: u64,
    /// Raw objects curated by this flush.
    objects_curated: u64,
    /// Hits curated by this flush.
    hits_curated: u64,
    /// Hits this flush did not count again: their `(clientid, hitid)` was
    /// already counted within the dedup horizon.
    hits_duplicate: u64,
    /// Delivery cycles this flush took: more than one when a cycle reached
    /// its cap on event dates (1,024) and the rest waited in the log.
    cycles: u64,
}

#[utoipa::path(
    post,
    path = "/admin/flush",
    tag = "local",
    operation_id = "adminFlush",
    summary = "Flush the pipeline (local server only)",
    description = "A barrier: answers `200` once every hit accepted before the call is \
        delivered, curated and reflected in the state store. No request body (one sent is \
        ignored).",
    security(("ApiKey" = [])),
    responses(
        (status = 200, description = "Every hit accepted before the call is visible to \
            lookups.", body = FlushResult),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 405, response = MethodNotAllowed),
        (status = 500, description = "Everything deliverable is visible, but accepted records \
            were lost to damaged log bytes since start (bit flips, bad sectors): `lost_records` \
            says how many, `damaged_ranges` where (log offsets). Not retryable; `/health` says \
            the same until restart.", body = Error,
            example = json!({"error": "1 accepted record(s) were lost to log damage since start …",
                "visible": false, "lost_records": 1, "delivered_offset": 412345,
                "damaged_ranges": [{"start": 201000, "end": 201210, "records": 1}]})),
        (status = 503, description = "Delivery or curate failed (storage); nothing is lost, \
            retry after `Retry-After` seconds.", body = Error,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying.")),
            example = json!({"error": "flush failed: delivery task stopped"})),
    )
)]
pub(super) async fn flush(State(delivery): State<DeliveryHandle>) -> Response {
    match delivery.flush().await {
        Ok(report) if report.lost_records > 0 => lost_answer(&report),
        Ok(report) => axum::Json(FlushAnswer {
            visible: true,
            summary: flush_summary(&report),
            report,
        })
        .into_response(),
        Err(e) => JsonError::unavailable(format!("flush failed: {e}")).into_response(),
    }
}

/// A flush that went through but cannot claim every accepted hit visible:
/// records were lost to log damage since start (SPEC 16). Not retryable;
/// the answer says how many and where, like `/health`.
fn lost_answer(report: &FlushReport) -> Response {
    JsonError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        format!(
            "{} accepted record(s) were lost to log damage since start and will never be \
             visible; every other hit accepted before this call is curated and visible \
             (log offset {}). `gender-service check` lists the damaged ranges",
            report.lost_records, report.delivered_offset
        ),
    )
    .with("visible", false)
    .with("lost_records", report.lost_records)
    .with("damaged_ranges", &report.damaged_ranges)
    .with("delivered_offset", report.delivered_offset)
    .into_response()
}

/// A flush's answer: first what is now true, then what this call did.
#[derive(serde::Serialize)]
struct FlushAnswer {
    visible: bool,
    summary: String,
    #[serde(flatten)]
    report: FlushReport,
}

/// One sentence that cannot be read as "nothing happened" when the
/// background loop had already delivered everything.
fn flush_summary(report: &FlushReport) -> String {
    let done_here = if report.objects_delivered + report.objects_curated == 0 {
        "this call had nothing left to do: the background delivery had already made them visible"
            .to_owned()
    } else {
        format!(
            "this call delivered {} raw object(s) and curated {} ({} hits counted, {} duplicates skipped); \
             the background delivery did the rest",
            report.objects_delivered,
            report.objects_curated,
            report.hits_curated,
            report.hits_duplicate
        )
    };
    format!(
        "Every hit accepted before this call is curated and visible (log offset {}); {done_here}.",
        report.delivered_offset
    )
}

/// The body of `POST /admin/daily`; no body, `null`, `{}` or
/// `{"date": null}` run the default date.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(example = json!({"date": "2024-05-01"}))]
pub(super) struct DailyRequest {
    /// The date D (UTC) to run the job for, 2000-01-01..=9999-12-31. Absent
    /// or `null`: yesterday (UTC), as the schedule does.
    #[schema(
        format = Date,
        pattern = r"^[2-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$"
    )]
    #[serde(default)]
    date: Option<String>,
}

/// What a daily run did (`gender_core::DailySummary`).
#[derive(ToSchema)]
#[schema(example = json!({
    "date": "2024-05-01", "window_from": "2024-04-25", "window_to": "2024-05-01",
    "rollups": [{"date": "2024-04-25", "visitors": 80, "hits": 1400}],
    "visitors_in_window": 97, "signals_set": 97, "signals_cleared": 3
}))]
#[expect(
    dead_code,
    reason = "describes the DailySummary the handler serializes"
)]
pub(super) struct DailySummary {
    /// The date D the job ran for.
    #[schema(format = Date)]
    date: String,
    /// D-6, the first date of the window.
    #[schema(format = Date)]
    window_from: String,
    /// D.
    #[schema(format = Date)]
    window_to: String,
    /// The rollups recomputed by this run (dates whose curated hits changed).
    rollups: Vec<DailyRollup>,
    /// Visitors with hits in the window.
    visitors_in_window: u64,
    /// Visitors whose `last_7_days` signal was set.
    signals_set: u64,
    /// Visitors whose `last_7_days` signal was cleared (no hits in the window).
    signals_cleared: u64,
}

/// One rollup written by a daily run.
#[derive(ToSchema)]
#[expect(
    dead_code,
    reason = "describes the RollupSummary the handler serializes"
)]
pub(super) struct DailyRollup {
    #[schema(format = Date)]
    date: String,
    visitors: u64,
    hits: u64,
}

/// The requested date of a `POST /admin/daily` body: `None` for no body,
/// `null`, `{}` and `{"date": null}`. Only an object is a request (serde
/// would also read a struct from an array).
pub(super) fn daily_request(body: &[u8]) -> Result<Option<String>, String> {
    const SHAPE: &str = "body must be {\"date\": \"YYYY-MM-DD\"} (or no body)";
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::Null) => Ok(None),
        Ok(object @ serde_json::Value::Object(_)) => serde_json::from_value::<DailyRequest>(object)
            .map(|request| request.date)
            .map_err(|e| format!("{SHAPE}: {e}")),
        Ok(_) => Err(format!("{SHAPE}: not an object")),
        Err(e) => Err(format!("{SHAPE}: {e}")),
    }
}

fn bad_daily_request(message: String) -> Response {
    JsonError::new(StatusCode::BAD_REQUEST, message).into_response()
}

#[utoipa::path(
    post,
    path = "/admin/daily",
    tag = "local",
    operation_id = "adminDaily",
    summary = "Run the daily job (local server only)",
    description = "Recomputes the daily rollups of the window D-6..=D and the `last_7_days` \
        signal (SPEC 7), and answers once the job has completed; on AWS the job runs on an \
        EventBridge schedule. Re-running a date gives identical results. The body is \
        optional: none, `null`, `{}` or `{\"date\": null}` run yesterday (UTC). The body is read as \
        JSON whatever its `Content-Type`; properties other than `date` get `400`.",
    security(("ApiKey" = [])),
    request_body(
        content = Option<DailyRequest>,
        content_type = "application/json",
        description = "At most 4096 bytes.",
    ),
    responses(
        (status = 200, description = "The daily job completed.", body = DailySummary),
        (status = 400, description = "The body is not a JSON object with at most a `date`, or \
            the date is not a calendar date of 2000-01-01..=9999-12-31 (`date` echoes it).",
            body = Error,
            example = json!({"error": "date must be a calendar date YYYY-MM-DD from 2000-01-01 to 9999-12-31", "date": "0000-01-01"})),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 405, response = MethodNotAllowed),
        (status = 413, description = "The body is over 4096 bytes.", body = Error,
            example = json!({"error": "request body over 4096 bytes", "limit_bytes": 4096})),
        (status = 500, description = "The daily job failed on stored data it cannot read \
            (a damaged object); the log line says which.", body = Error),
        (status = 503, description = "The daily job failed on storage; retry after \
            `Retry-After` seconds.", body = Error,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying."))),
    )
)]
pub(super) async fn daily(State(daily): State<DailyJob>, body: Body) -> Response {
    let body = match axum::body::to_bytes(body, MAX_DAILY_BODY_BYTES).await {
        Ok(body) => body,
        Err(_) => {
            return JsonError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                format!("request body over {MAX_DAILY_BODY_BYTES} bytes"),
            )
            .with("limit_bytes", MAX_DAILY_BODY_BYTES)
            .into_response();
        }
    };
    let requested = match daily_request(&body) {
        Ok(date) => date,
        Err(message) => return bad_daily_request(message),
    };
    let date = match requested {
        None => default_daily_date((daily.clock)()),
        Some(text) => match daily_date(&text) {
            Some(date) => date,
            None => {
                return JsonError::new(
                    StatusCode::BAD_REQUEST,
                    format!(
                        "date must be a calendar date YYYY-MM-DD from {} to {}",
                        DAILY_DATES.0, DAILY_DATES.1
                    ),
                )
                .with("date", text)
                .into_response();
            }
        },
    };
    match daily.run(date).await {
        Ok(summary) => axum::Json(summary).into_response(),
        Err(e) => pipeline_error("daily job failed", e),
    }
}

/// A date `POST /admin/daily` runs for: `YYYY-MM-DD` within [`DAILY_DATES`].
pub(super) fn daily_date(text: &str) -> Option<Date> {
    let date = Date::parse(text)?;
    let first = Date::parse(DAILY_DATES.0)?;
    let last = Date::parse(DAILY_DATES.1)?;
    (first..=last).contains(&date).then_some(date)
}

/// A pipeline failure as JSON: `503` + `Retry-After` when trying again can
/// succeed (storage), `500` when it cannot (a damaged object).
pub(super) fn pipeline_error(what: &str, e: gender_pipeline::PipelineError) -> Response {
    let message = format!("{what}: {e}");
    if e.retryable() {
        JsonError::unavailable(message).into_response()
    } else {
        JsonError::new(StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
    }
}
