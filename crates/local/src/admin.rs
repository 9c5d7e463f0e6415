//! Local-only routes: the flush barrier, on-demand daily run, metrics,
//! console, the files of Swagger UI; and the OpenAPI document and `/docs`
//! page the local server serves (the API's plus these routes).

use crate::LocalState;
use crate::metrics;
use axum::Router;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use gender_api::schema::Error;
use gender_api::schema::{MethodNotAllowed, Unauthorized};
use gender_api::{JsonError, require_api_key};
use gender_core::{Date, default_daily_date};
use serde::Deserialize;
use std::sync::{Arc, LazyLock};
use utoipa::openapi::OpenApi as Document;
use utoipa::{OpenApi, ToSchema};
use utoipa_swagger_ui::Config;

const CONSOLE_HTML: &str = include_str!("console.html");

/// `POST /admin/daily` bodies are a date: anything larger is refused unread.
pub const MAX_DAILY_BODY_BYTES: usize = 4096;

/// The first and last dates `POST /admin/daily` runs for: hits before
/// 2000-01-01 are rejected at ingest (SPEC 2), and `YYYY` has four digits.
const DAILY_DATES: (&str, &str) = ("2000-01-01", "9999-12-31");

pub fn routes(state: LocalState) -> Router {
    let admin = Router::new()
        .route("/admin/flush", post(flush))
        .route("/admin/daily", post(daily))
        .route("/admin/split", get(split))
        .route("/admin/visitors/{clientid}/days", get(visitor_days))
        .route_layer(axum::middleware::from_fn_with_state(
            state.api.api_key.clone(),
            require_api_key,
        ));
    Router::new()
        .route("/metrics", get(prometheus))
        .route("/", get(console))
        .route("/docs/{*file}", get(docs_file))
        .merge(admin)
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(flush, daily, split, visitor_days, prometheus, console, docs_file),
    components(schemas(FlushResult, DailyRequest, DailySummary, DailyRollup, SplitResult, DaySplitDoc, VisitorDaysResult, VisitorDayDoc)),
    tags((name = "local", description = "Local server only (`gender-service serve`): the \
        admin triggers, metrics and the web console. Not deployed on AWS."))
)]
struct LocalDoc;

/// Swagger UI of the `utoipa-swagger-ui` crate (vendored: its files are
/// compiled into the binary, nothing is fetched at build or run time), the
/// release and settings of the API's CDN page.
static SWAGGER_UI: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| {
    // From `/docs/`, `../openapi.json` is `/openapi.json` under any prefix.
    let options: serde_json::Value =
        serde_json::from_str(&format!("{{{}}}", gender_api::docs::SWAGGER_UI_OPTIONS))
            .expect("the options are JSON");
    let flag = |name: &str| options[name].as_bool().unwrap_or_default();
    Arc::new(
        Config::new(["../openapi.json"])
            .deep_linking(flag("deepLinking"))
            .try_it_out_enabled(flag("tryItOutEnabled"))
            .persist_authorization(flag("persistAuthorization"))
            .display_request_duration(flag("displayRequestDuration"))
            .filter(flag("filter"))
            .validator_url(options["validatorUrl"].as_str().unwrap_or("none")),
    )
});

fn swagger_file(path: &str) -> Option<(Vec<u8>, String)> {
    match utoipa_swagger_ui::serve(path, SWAGGER_UI.clone()) {
        Ok(Some(file)) => Some((file.bytes.into_owned(), file.content_type)),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, path, "swagger ui file");
            None
        }
    }
}

/// The `/docs` page of the local server: Swagger UI's `index.html`, whose
/// files are relative (`./swagger-ui.css`), with `<base href="docs/">` so
/// that at `/docs` (no trailing slash) they load from `/docs/`.
pub fn docs_page() -> String {
    let (index, _) = swagger_file("index.html").expect("Swagger UI has an index.html");
    String::from_utf8_lossy(&index).replacen(
        "<head>",
        "<head>\n    <base href=\"docs/\">\n    <meta name=\"robots\" content=\"noindex\">",
        1,
    )
}

/// A file of the viewer (scripts, styles, icons).
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "docs",
    operation_id = "getDocsFile",
    summary = "A file of the API documentation page (local server only)",
    description = "Scripts, styles and icons of Swagger UI, served from the binary. No \
        authentication.",
    params(("file" = String, Path, description = "File name, e.g. `swagger-ui.css`.")),
    responses(
        (status = 200, description = "The file.", content(
            (String = "text/html"),
            (String = "text/css"),
            (String = "text/javascript"),
            (String = "application/javascript"),
            (String = "application/json"),
            (String = "image/png"),
        )),
        (status = 404, description = "No such file.", body = Error,
            example = json!({"error": "no such documentation file", "file": "nope.js"})),
        (status = 405, response = MethodNotAllowed),
    )
)]
async fn docs_file(Path(path): Path<String>) -> Response {
    let Some((bytes, content_type)) = swagger_file(&path) else {
        return JsonError::new(StatusCode::NOT_FOUND, "no such documentation file")
            .with("file", path)
            .into_response();
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    // The files change only with the binary.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}

/// The document the local server serves: the API's routes and these.
pub fn openapi(max_body_bytes: usize) -> Document {
    let mut doc = gender_api::api_doc(max_body_bytes);
    doc.merge(LocalDoc::openapi());
    doc
}

/// What `POST /admin/flush` observed (`crate::FlushReport`).
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes the FlushReport the handler serializes")]
struct FlushResult {
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
        (status = 405, response = MethodNotAllowed),
        (status = 503, description = "Delivery or curate failed (storage); nothing is lost, \
            retry after `Retry-After` seconds.", body = Error,
            headers(("Retry-After" = u32, description = "Seconds to wait before retrying.")),
            example = json!({"error": "flush failed: delivery task stopped"})),
    )
)]
async fn flush(State(state): State<LocalState>) -> Response {
    match state.delivery.flush().await {
        Ok(report) => axum::Json(FlushAnswer {
            visible: true,
            summary: flush_summary(&report),
            report,
        })
        .into_response(),
        Err(e) => JsonError::unavailable(format!("flush failed: {e}")).into_response(),
    }
}

/// A flush's answer: first what is now true, then what this call did.
#[derive(serde::Serialize)]
struct FlushAnswer {
    visible: bool,
    summary: String,
    #[serde(flatten)]
    report: crate::FlushReport,
}

/// One sentence that cannot be read as "nothing happened" when the
/// background loop had already delivered everything.
fn flush_summary(report: &crate::FlushReport) -> String {
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
struct DailyRequest {
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
struct DailySummary {
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
struct DailyRollup {
    #[schema(format = Date)]
    date: String,
    visitors: u64,
    hits: u64,
}

/// The requested date of a `POST /admin/daily` body: `None` for no body,
/// `null`, `{}` and `{"date": null}`. Only an object is a request (serde
/// would also read a struct from an array).
fn daily_request(body: &[u8]) -> Result<Option<String>, String> {
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
async fn daily(State(state): State<LocalState>, body: Body) -> Response {
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
        None => default_daily_date((state.api.clock)()),
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
    match state.run_daily(date).await {
        Ok(summary) => axum::Json(summary).into_response(),
        Err(e) => pipeline_error("daily job failed", e),
    }
}

/// A date `POST /admin/daily` runs for: `YYYY-MM-DD` within [`DAILY_DATES`].
fn daily_date(text: &str) -> Option<Date> {
    let date = Date::parse(text)?;
    let first = Date::parse(DAILY_DATES.0)?;
    let last = Date::parse(DAILY_DATES.1)?;
    (first..=last).contains(&date).then_some(date)
}

/// Days `GET /admin/split` shows by default, and at most.
const SPLIT_DAYS: (u32, u32) = (14, 31);

/// `GET /admin/split`: the gender split per day.
#[derive(ToSchema)]
#[expect(dead_code, reason = "describes the JSON the handler builds")]
struct SplitResult {
    /// Newest first; dates without a daily rollup are left out.
    days: Vec<DaySplitDoc>,
}

/// One date's rollup by gender (`gender_pipeline::report::DaySplit`).
#[derive(ToSchema)]
#[schema(as = DaySplit)]
#[expect(dead_code, reason = "describes the DaySplit the handler serializes")]
struct DaySplitDoc {
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
struct VisitorDaysResult {
    clientid: String,
    /// The 7 dates ending today (UTC), oldest first.
    days: Vec<VisitorDayDoc>,
}

/// One visitor's hits on one date (`gender_pipeline::report::VisitorDay`).
#[derive(ToSchema)]
#[schema(as = VisitorDay)]
#[expect(dead_code, reason = "describes the VisitorDay the handler serializes")]
struct VisitorDayDoc {
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

/// A pipeline failure as JSON: `503` + `Retry-After` when trying again can
/// succeed (storage), `500` when it cannot (a damaged object).
fn pipeline_error(what: &str, e: gender_pipeline::PipelineError) -> Response {
    let message = format!("{what}: {e}");
    if e.retryable() {
        JsonError::unavailable(message).into_response()
    } else {
        JsonError::new(StatusCode::INTERNAL_SERVER_ERROR, message).into_response()
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
        (status = 405, response = MethodNotAllowed),
        (status = 500, description = "A rollup cannot be read.", body = Error),
        (status = 503, description = "Storage failed; retry.", body = Error),
    )
)]
async fn split(State(state): State<LocalState>, RawQuery(query): RawQuery) -> Response {
    let days = match split_days(query.as_deref()) {
        Ok(days) => days,
        Err(message) => return JsonError::new(StatusCode::BAD_REQUEST, message).into_response(),
    };
    let today = Date::of_millis((state.api.clock)());
    let dates: Vec<Date> = (0..days as i32).map(|back| today.add_days(-back)).collect();
    match gender_pipeline::report::gender_split(&state.store, &dates).await {
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
        (status = 405, response = MethodNotAllowed),
        (status = 500, description = "A rollup cannot be read.", body = Error),
        (status = 503, description = "Storage failed; retry.", body = Error),
    )
)]
async fn visitor_days(State(state): State<LocalState>, Path(clientid): Path<String>) -> Response {
    if let Err(e) = gender_core::validate_clientid(&clientid) {
        return JsonError::new(StatusCode::BAD_REQUEST, e.to_string())
            .with("clientid", &clientid)
            .into_response();
    }
    let today = Date::of_millis((state.api.clock)());
    let dates: Vec<Date> = (0..7).rev().map(|back| today.add_days(-back)).collect();
    match gender_pipeline::report::visitor_days(&state.store, &clientid, &dates).await {
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
async fn prometheus(State(state): State<LocalState>) -> Response {
    (
        [(header::CONTENT_TYPE, metrics::CONTENT_TYPE)],
        metrics::render(&state.registry),
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
async fn console() -> Html<&'static str> {
    Html(CONSOLE_HTML)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_dates_are_four_digit_years_from_2000() {
        for ok in ["2000-01-01", "2024-02-29", "9999-12-31"] {
            assert!(daily_date(ok).is_some(), "{ok}");
        }
        for bad in [
            "0000-01-01",
            "1999-12-31",
            "2023-02-29",
            "2024-13-01",
            "10000-01-01",
            "2024-1-01",
            "",
        ] {
            assert!(daily_date(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn daily_request_is_an_object_with_a_date_or_null_and_nothing_else() {
        let parse = |json: &str| daily_request(json.as_bytes());
        assert_eq!(
            parse(r#"{"date": "2024-05-01"}"#).unwrap().as_deref(),
            Some("2024-05-01")
        );
        for default in [r#"{"date": null}"#, "{}", "null", "", " \n"] {
            assert_eq!(parse(default), Ok(None), "{default:?}");
        }
        for bad in [
            r#"{"date": "2024-05-01", "x": 1}"#,
            r#"["2024-05-01"]"#,
            "[]",
            r#""2024-05-01""#,
            r#"{"date": 20240501}"#,
            "{",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    /// The local server, in-process on a loopback port.
    struct Local {
        url: String,
        client: reqwest::Client,
        stop: Option<tokio::sync::oneshot::Sender<()>>,
        server: Option<tokio::task::JoinHandle<Result<(), crate::LocalError>>>,
        _dir: tempfile::TempDir,
    }

    const KEY: &str = "admin-test-key";

    impl Local {
        async fn start() -> Local {
            let dir = tempfile::tempdir().unwrap();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let url = format!("http://{}", listener.local_addr().unwrap());
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let config = crate::LocalConfig::new(dir.path(), KEY);
            let server = tokio::spawn(crate::run(config, listener, async {
                let _ = stopped.await;
            }));
            Local {
                url,
                client: reqwest::Client::new(),
                stop: Some(stop),
                server: Some(server),
                _dir: dir,
            }
        }

        async fn send(
            &self,
            method: &str,
            path: &str,
            body: Option<Vec<u8>>,
        ) -> (u16, reqwest::header::HeaderMap, serde_json::Value) {
            let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
            let mut request = self
                .client
                .request(method, format!("{}{path}", self.url))
                .header("x-api-key", KEY);
            if let Some(body) = body {
                request = request
                    .header("content-type", "application/json")
                    .body(body);
            }
            let response = request.send().await.unwrap();
            let status = response.status().as_u16();
            let headers = response.headers().clone();
            let bytes = response.bytes().await.unwrap();
            let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
            (status, headers, json)
        }

        async fn post(&self, path: &str, body: serde_json::Value) -> (u16, serde_json::Value) {
            let (status, _, json) = self
                .send("POST", path, Some(body.to_string().into_bytes()))
                .await;
            (status, json)
        }

        async fn stop(mut self) {
            let _ = self.stop.take().unwrap().send(());
            self.server.take().unwrap().await.unwrap().unwrap();
        }
    }

    fn keys(value: &serde_json::Value) -> BTreeSet<String> {
        value.as_object().unwrap().keys().cloned().collect()
    }

    fn schema_properties(doc: &serde_json::Value, name: &str) -> BTreeSet<String> {
        keys(&doc["components"]["schemas"][name]["properties"])
    }

    use std::collections::BTreeSet;

    /// The local server documents its admin routes next to the API's, every
    /// route it has is in the document and every operation is a route, and
    /// the admin bodies have the documented properties.
    #[tokio::test]
    async fn the_local_document_describes_exactly_the_routes_and_admin_bodies() {
        let local = Local::start().await;
        let (status, _, doc) = local.send("GET", "/openapi.json", None).await;
        assert_eq!(status, 200);
        assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
        let mut refs = Vec::new();
        collect_refs(&doc, &mut refs);
        for r in refs {
            assert!(doc.pointer(r.trim_start_matches('#')).is_some(), "{r}");
        }

        let documented: BTreeSet<(String, String)> = doc["paths"]
            .as_object()
            .unwrap()
            .iter()
            .flat_map(|(path, item)| {
                keys(item)
                    .into_iter()
                    .map(move |method| (method.to_uppercase(), path.clone()))
            })
            .collect();
        for route in [
            "POST /admin/flush",
            "POST /admin/daily",
            "GET /metrics",
            "GET /",
        ] {
            let (method, path) = route.split_once(' ').unwrap();
            assert!(
                documented.contains(&(method.into(), path.into())),
                "{route}"
            );
        }
        // Paths written in this file's router, then every documented one:
        // the `Allow` of a 405 to an unknown method lists a path's methods.
        let written: BTreeSet<String> = include_str!("admin.rs")
            .split(".route(\"")
            .skip(1)
            // The OpenAPI way: `{*file}` is `{file}`.
            .filter_map(|rest| {
                rest.split_once('"')
                    .map(|(path, _)| path.replace("{*", "{"))
            })
            .collect();
        assert!(written.contains("/admin/daily"));
        let mut routed = BTreeSet::new();
        for path in written.iter().chain(documented.iter().map(|(_, p)| p)) {
            let concrete = path
                .split('/')
                .map(|s| if s.starts_with('{') { "x" } else { s })
                .collect::<Vec<_>>()
                .join("/");
            let (status, headers, _) = local.send("PROBE", &concrete, None).await;
            match status {
                404 => {}
                405 => {
                    for method in headers["allow"].to_str().unwrap().split(',') {
                        if method != "HEAD" {
                            routed.insert((method.to_owned(), path.clone()));
                        }
                    }
                }
                other => panic!("{path}: {other}"),
            }
        }
        assert_eq!(routed, documented);

        // The bodies the handlers serialize (core and delivery types) have
        // exactly the properties the document gives them.
        let (status, accepted) = local
            .post(
                "/hits",
                serde_json::json!({"clientid": "a", "pageGender": "F", "timestamp": "2024-05-01T12:00:00Z"}),
            )
            .await;
        assert_eq!(status, 202, "{accepted}");
        let (status, flushed) = local.post("/admin/flush", serde_json::Value::Null).await;
        assert_eq!(status, 200);
        assert_eq!(keys(&flushed), schema_properties(&doc, "FlushResult"));
        let (status, summary) = local
            .post("/admin/daily", serde_json::json!({"date": "2024-05-01"}))
            .await;
        assert_eq!(status, 200, "{summary}");
        assert_eq!(keys(&summary), schema_properties(&doc, "DailySummary"));
        assert_eq!(
            keys(&summary["rollups"][0]),
            schema_properties(&doc, "DailyRollup")
        );
        local.stop().await;
    }

    fn collect_refs<'a>(value: &'a serde_json::Value, refs: &mut Vec<&'a str>) {
        match value {
            serde_json::Value::Object(map) => {
                if let Some(serde_json::Value::String(r)) = map.get("$ref") {
                    refs.push(r);
                }
                map.values().for_each(|v| collect_refs(v, refs));
            }
            serde_json::Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
            _ => {}
        }
    }

    /// The vendored viewer is the release the API's CDN page pins.
    #[test]
    fn the_vendored_swagger_ui_is_the_pinned_release() {
        let (bundle, _) = swagger_file("swagger-ui-bundle.js").unwrap();
        let version = format!("\"{}\"", gender_api::docs::SWAGGER_UI_VERSION);
        assert!(String::from_utf8_lossy(&bundle).contains(&version));
        let (initializer, _) = swagger_file("swagger-initializer.js").unwrap();
        let initializer = String::from_utf8(initializer).unwrap();
        for setting in [
            "\"url\": \"../openapi.json\"",
            "\"persistAuthorization\": true",
            "\"validatorUrl\": \"none\"",
        ] {
            assert!(initializer.contains(setting), "{setting} in {initializer}");
        }
    }

    #[tokio::test]
    async fn the_docs_page_and_every_file_it_loads_are_served() {
        let local = Local::start().await;
        let (_, _, doc) = local.send("GET", "/openapi.json", None).await;
        let documented_types: BTreeSet<String> =
            keys(&doc["paths"]["/docs/{file}"]["get"]["responses"]["200"]["content"]);
        let page = local
            .client
            .get(format!("{}/docs", local.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert!(page.contains("<base href=\"docs/\">"), "{page}");
        let files: Vec<&str> = page
            .split(['"', '\''])
            .filter(|s| s.ends_with(".js") || s.ends_with(".css") || s.ends_with(".png"))
            // As the browser resolves them against the base.
            .map(|s| s.trim_start_matches("./"))
            .collect();
        assert!(files.len() >= 5, "{files:?}");
        for file in files {
            let response = local
                .client
                .get(format!("{}/docs/{file}", local.url))
                .send()
                .await
                .unwrap();
            assert_eq!(response.status(), 200, "{file}");
            let content_type = response.headers()["content-type"].to_str().unwrap();
            assert!(
                documented_types.contains(content_type),
                "{file}: {content_type}"
            );
        }
        let (status, headers, error) = local.send("GET", "/docs/nope.js", None).await;
        assert_eq!((status, error["file"].as_str()), (404, Some("nope.js")));
        assert_eq!(headers["content-type"], "application/json");
        local.stop().await;
    }

    #[tokio::test]
    async fn daily_answers_what_the_document_says() {
        let local = Local::start().await;
        let yesterday = default_daily_date(gender_core::time::system_now_ms()).to_string();
        for body in [
            serde_json::json!({"date": null}),
            serde_json::json!({}),
            serde_json::Value::Null,
        ] {
            let (status, summary) = local.post("/admin/daily", body).await;
            assert_eq!(
                (status, summary["date"].as_str()),
                (200, Some(yesterday.as_str()))
            );
        }
        let (status, _, summary) = local.send("POST", "/admin/daily", None).await;
        assert_eq!(
            (status, summary["date"].as_str()),
            (200, Some(yesterday.as_str()))
        );
        for date in ["0000-01-01", "1999-12-31", "2024-02-30"] {
            let (status, error) = local
                .post("/admin/daily", serde_json::json!({"date": date}))
                .await;
            assert_eq!(
                (status, error["date"].as_str()),
                (400, Some(date)),
                "{error}"
            );
        }
        let (status, error) = local
            .post(
                "/admin/daily",
                serde_json::json!({"date": "2024-05-01", "extra": 1}),
            )
            .await;
        assert_eq!(status, 400, "{error}");
        let big = format!(
            "{{\"date\": \"2024-05-01\"{}}}",
            " ".repeat(MAX_DAILY_BODY_BYTES)
        );
        let (status, _, error) = local
            .send("POST", "/admin/daily", Some(big.into_bytes()))
            .await;
        assert_eq!((status, error["limit_bytes"].as_u64()), (413, Some(4096)));

        let (status, headers, _) = local.send("GET", "/metrics", None).await;
        assert_eq!(status, 200);
        assert_eq!(headers["content-type"], metrics::CONTENT_TYPE);
        local.stop().await;
    }
}
