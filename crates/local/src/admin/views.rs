//! What shows the pipeline's state: `GET /admin/split` and
//! `GET /admin/visitors/{clientid}/days` (from the daily rollups),
//! `/metrics` and the web console.

use super::control::pipeline_error;
use crate::metrics;
use axum::extract::{Path, RawQuery, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use gender_api::JsonError;
use gender_api::schema::{Error, Forbidden, MethodNotAllowed, Unauthorized};
use gender_core::Date;
use gender_embedded::DirObjectStore;
use prometheus_client::registry::Registry;
use std::sync::Arc;
use utoipa::ToSchema;

const CONSOLE_HTML: &str = include_str!("../console.html");

/// What the rollup views read: the data directory, and what "today" is.
#[derive(Clone)]
pub(crate) struct Reports {
    pub(crate) store: DirObjectStore,
    pub(crate) clock: fn() -> i64,
}

/// Days `GET /admin/split` shows by default, and at most.
const SPLIT_DAYS: (u32, u32) = (14, 31);

/// `GET /admin/split`: the gender split per day.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes the JSON the handler builds")]
pub(super) struct SplitResult {
    /// Newest first; dates without a daily rollup are left out.
    days: Vec<DaySplitDoc>,
}

/// One date's rollup by gender (`gender_pipeline::report::DaySplit`).
#[derive(ToSchema)]
#[schema(as = DaySplit)]
#[expect(dead_code, reason = "describes the DaySplit the handler serializes")]
pub(super) struct DaySplitDoc {
    #[schema(format = Date)]
    date: String,
    hits_m: u64,
    hits_f: u64,
    /// Visitors most of whose hits that day were `M`.
    visitors_m: u64,
    visitors_f: u64,
    visitors_tied: u64,
}

/// `GET /admin/visitors/{clientid}/days`.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes the JSON the handler builds")]
pub(super) struct VisitorDaysResult {
    clientid: String,
    /// The 7 dates ending today (UTC), oldest first.
    days: Vec<VisitorDayDoc>,
}

/// One visitor's hits on one date (`gender_pipeline::report::VisitorDay`).
#[derive(ToSchema)]
#[schema(as = VisitorDay)]
#[expect(dead_code, reason = "describes the VisitorDay the handler serializes")]
pub(super) struct VisitorDayDoc {
    #[schema(format = Date)]
    date: String,
    m: u64,
    f: u64,
}

/// The `days` of a split query: absent means the default.
fn split_days(query: Option<&str>) -> Result<u32, String> {
    let Some(query) = query.filter(|q| !q.is_empty()) else {
        return Ok(SPLIT_DAYS.0);
    };
    let bad = || format!("query must be days=N with N from 1 to {}", SPLIT_DAYS.1);
    let value = query.strip_prefix("days=").ok_or_else(bad)?;
    match value.parse::<u32>() {
        Ok(n) if (1..=SPLIT_DAYS.1).contains(&n) => Ok(n),
        _ => Err(bad()),
    }
}

#[utoipa::path(
    get,
    path = "/admin/split",
    tag = "local",
    operation_id = "adminSplit",
    summary = "Gender split per day (local server only)",
    description = "From the daily rollups (SPEC 7) of the `days` dates ending today (UTC): \
        hits by page gender, and visitors by the gender most of their hits had that day. \
        Dates the daily job has not run for are left out. What the console's chart shows.",
    security(("ApiKey" = [])),
    params(("days" = Option<u32>, Query, description = "How many dates, 1..=31 (default 14).",
        minimum = 1, maximum = 31)),
    responses(
        (status = 200, description = "The split, newest date first.", body = SplitResult),
        (status = 400, description = "`days` is not a whole number from 1 to 31, or the query \
            has something else.", body = Error,
            example = json!({"error": "query must be days=N with N from 1 to 31"})),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 405, response = MethodNotAllowed),
        (status = 500, description = "A rollup cannot be read.", body = Error),
        (status = 503, description = "Storage failed; retry.", body = Error),
    )
)]
pub(super) async fn split(State(reports): State<Reports>, RawQuery(query): RawQuery) -> Response {
    let days = match split_days(query.as_deref()) {
        Ok(days) => days,
        Err(message) => return JsonError::new(StatusCode::BAD_REQUEST, message).into_response(),
    };
    let today = Date::of_millis((reports.clock)());
    let dates: Vec<Date> = (0..days as i32).map(|back| today.add_days(-back)).collect();
    match gender_pipeline::report::gender_split(&reports.store, &dates).await {
        Ok(days) => axum::Json(serde_json::json!({ "days": days })).into_response(),
        Err(e) => pipeline_error("reading the rollups failed", e),
    }
}

#[utoipa::path(
    get,
    path = "/admin/visitors/{clientid}/days",
    tag = "local",
    operation_id = "adminVisitorDays",
    summary = "A visitor's hits per day over the last 7 days (local server only)",
    description = "From the daily rollups of the 7 dates ending today (UTC), oldest \
        first, zero where the visitor had no hit (or the daily job has not run). What the \
        console's per-visitor chart shows.",
    security(("ApiKey" = [])),
    params(("clientid" = String, Path, pattern = r"^[A-Za-z0-9._:-]{1,64}$",
        description = "The visitor id (percent-encoded in the path).", example = "visitor-42")),
    responses(
        (status = 200, description = "The visitor's days.", body = VisitorDaysResult),
        (status = 400, description = "`clientid` breaks the rule.", body = Error,
            example = json!({"clientid": "a b", "error": "clientid must be 1..=64 characters of [A-Za-z0-9._:-]"})),
        (status = 401, response = Unauthorized),
        (status = 403, response = Forbidden),
        (status = 405, response = MethodNotAllowed),
        (status = 500, description = "A rollup cannot be read.", body = Error),
        (status = 503, description = "Storage failed; retry.", body = Error),
    )
)]
pub(super) async fn visitor_days(
    State(reports): State<Reports>,
    Path(clientid): Path<String>,
) -> Response {
    if let Err(e) = gender_core::validate_clientid(&clientid) {
        return JsonError::new(StatusCode::BAD_REQUEST, e.to_string())
            .with("clientid", &clientid)
            .into_response();
    }
    let today = Date::of_millis((reports.clock)());
    let dates: Vec<Date> = (0..7).rev().map(|back| today.add_days(-back)).collect();
    match gender_pipeline::report::visitor_days(&reports.store, &clientid, &dates).await {
        Ok(days) => {
            axum::Json(serde_json::json!({ "clientid": clientid, "days": days })).into_response()
        }
        Err(e) => pipeline_error("reading the rollups failed", e),
    }
}

#[utoipa::path(
    get,
    path = "/metrics",
    tag = "local",
    operation_id = "getMetrics",
    summary = "Prometheus metrics (local server only)",
    description = "Prometheus text format 0.0.4: hits accepted and rejected, objects \
        delivered and curated, curate lag, lookups, errors by stage (names start with \
        `gender_`). No authentication.",
    responses(
        (status = 200, description = "The metrics.",
            content_type = "text/plain; version=0.0.4; charset=utf-8", body = String,
            example = "# HELP gender_hits_accepted_total Hits accepted by POST /hits (durable).\n# TYPE gender_hits_accepted_total counter\ngender_hits_accepted_total 42\n"),
        (status = 405, response = MethodNotAllowed),
    )
)]
pub(super) async fn prometheus(State(registry): State<Arc<Registry>>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&registry),
    )
        .into_response()
}

#[utoipa::path(
    get,
    path = "/",
    tag = "local",
    operation_id = "getConsole",
    summary = "Web console (local server only)",
    description = "A page to look a visitor up, send test hits, flush, run the daily job and \
        watch the pipeline's counters. The page needs no key; the calls it makes use the key \
        typed into it.",
    responses(
        (status = 200, description = "HTML page.", content_type = "text/html", body = String),
        (status = 405, response = MethodNotAllowed),
    )
)]
pub(super) async fn console() -> Html<&'static str> {
    Html(CONSOLE_HTML)
}
