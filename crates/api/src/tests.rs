//! Router tests through `tower::ServiceExt::oneshot`, with small in-memory
//! implementations of the ports (the adapters have their own tests).

use super::*;
use async_trait::async_trait;
use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use gender_core::ports::{Erasures, HealthProbe, HitLog, LogRecord, ProfileReader};
use gender_core::{Date, Gender, PortError, Profile, WindowSums};
use serde_json::{Value, json};
use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};
use tower::ServiceExt;

const NOW: i64 = 1_795_514_400_000;
const KEY: &str = "test-key";
const INGEST_KEY: &str = "ingest-test-key";
const READ_KEY: &str = "read-test-key";

/// SPEC 4's key as the admin key, and one key of each other scope.
fn scoped_keys() -> Keys {
    let keys = Keys::admin_only(KEY, || NOW);
    keys.set(Scope::Ingest, &ScopeKeys::only(INGEST_KEY));
    keys.set(Scope::Read, &ScopeKeys::only(READ_KEY));
    keys
}

#[derive(Default)]
struct MemoryLog {
    stored: Mutex<Vec<LogRecord>>,
    /// Indexes that "fail" on every attempt, like a persistent PutRecords failure.
    fail: Vec<usize>,
    down: bool,
    /// Refuses like the local log past its backlog bound.
    behind: bool,
}

#[async_trait]
impl HitLog for MemoryLog {
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<usize>, PortError> {
        if self.down {
            return Err(PortError::unavailable("log", "down"));
        }
        let mut stored = self.stored.lock().unwrap();
        for (i, r) in records.iter().enumerate() {
            if !self.fail.contains(&i) {
                stored.push(r.clone());
            }
        }
        Ok(self
            .fail
            .iter()
            .copied()
            .filter(|&i| i < records.len())
            .collect())
    }

    fn admits(&self) -> Result<(), PortError> {
        if self.behind {
            return Err(PortError::Throttled {
                what: "pipeline behind".into(),
                source: None,
            });
        }
        Ok(())
    }
}

#[derive(Default)]
struct MemoryProfiles(HashMap<String, Profile>);

#[async_trait]
impl ProfileReader for MemoryProfiles {
    async fn get_profile(&self, clientid: &str) -> Result<Option<Profile>, PortError> {
        if clientid == "panic" {
            panic!("boom");
        }
        if clientid == "down" {
            return Err(PortError::unavailable("state", "down"));
        }
        Ok(self.0.get(clientid).cloned())
    }
}

#[async_trait]
impl HealthProbe for MemoryProfiles {
    async fn ping(&self) -> Result<(), PortError> {
        Ok(())
    }
}

/// Erasure requests kept in memory; `down` as the clientid fails.
#[derive(Default)]
struct MemoryErasures(Mutex<Vec<(String, gender_core::ErasureRecord)>>);

#[async_trait]
impl Erasures for MemoryErasures {
    async fn request_erasure(
        &self,
        clientid: &str,
        now_ms: i64,
    ) -> Result<gender_core::ErasureRecord, PortError> {
        if clientid == "down" {
            return Err(PortError::unavailable("erasure log", "down"));
        }
        let mut all = self.0.lock().unwrap();
        let record = gender_core::ErasureRecord {
            id: gender_core::erasure::new_erasure_id([all.len() as u8; 16]),
            status: gender_core::ErasureStatus::Pending,
            requested_ms: now_ms,
            completed_ms: None,
            clientid_hash: gender_core::erasure::clientid_hash(b"salt", clientid),
        };
        all.push((clientid.to_owned(), record.clone()));
        Ok(record)
    }

    async fn erasure(&self, id: &str) -> Result<Option<gender_core::ErasureRecord>, PortError> {
        let all = self.0.lock().unwrap();
        Ok(all.iter().find(|(_, r)| r.id == id).map(|(_, r)| r.clone()))
    }
}

struct Harness {
    app: Router,
    log: Arc<MemoryLog>,
    erasures: Arc<MemoryErasures>,
}

fn harness(log: MemoryLog) -> Harness {
    harness_with_cors(log, CorsOrigins::none())
}

fn harness_with_cors(log: MemoryLog, cors: CorsOrigins) -> Harness {
    let mut profiles = MemoryProfiles::default();
    profiles.0.insert(
        "known".into(),
        Profile {
            clientid: "known".into(),
            m: 1,
            f: 3,
            last_gender: Gender::M,
            last_seen_ms: NOW,
            window: Some(WindowSums {
                m: 2,
                f: 0,
                date: Date::from_days(0),
            }),
            updated_at_ms: NOW + 5,
        },
    );
    let log = Arc::new(log);
    let profiles = Arc::new(profiles);
    let erasures = Arc::new(MemoryErasures::default());
    let state = ApiState {
        log: log.clone(),
        profiles: profiles.clone(),
        health: profiles,
        erasures: erasures.clone(),
        keys: scoped_keys(),
        cors,
        hit_ids: Arc::new(gender_core::hitid::HitIds::new([7; 8])),
        metrics: Arc::new(ApiMetrics::default()),
        clock: || NOW,
        max_body_bytes: gender_core::ingest::MAX_BODY_BYTES,
        parse_on: None,
    };
    Harness {
        app: with_edge_layers(router(state)),
        log,
        erasures,
    }
}

async fn call(app: &Router, request: Request<Body>) -> (StatusCode, Value) {
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    if status != StatusCode::OK || !bytes.starts_with(b"<") {
        assert_eq!(
            content_type.as_deref(),
            Some("application/json"),
            "status {status}"
        );
    }
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
    )
}

fn post(body: impl Into<Body>, content_type: Option<&str>) -> Request<Body> {
    let mut builder = Request::post("/hits").header("x-api-key", KEY);
    if let Some(ct) = content_type {
        builder = builder.header("content-type", ct);
    }
    builder.body(body.into()).unwrap()
}

fn get(uri: &str) -> Request<Body> {
    Request::get(uri)
        .header("x-api-key", KEY)
        .body(Body::empty())
        .unwrap()
}

const HIT: &str = r#"{"clientid":"a","pageGender":"m"}"#;

#[tokio::test]
async fn accepts_a_single_hit_and_stores_it_normalized() {
    let h = harness(MemoryLog::default());
    let (status, body) = call(&h.app, post(HIT, Some("application/json"))).await;
    assert_eq!(
        (status, body),
        (StatusCode::ACCEPTED, json!({"accepted": 1, "rejected": []}))
    );
    let stored = h.log.stored.lock().unwrap();
    assert_eq!(stored[0].partition_key, "a");
    // A hit sent without a hitid is stored with an assigned one.
    let data = std::str::from_utf8(&stored[0].data).unwrap();
    let assigned = data
        .strip_prefix(r#"{"clientid":"a","pageGender":"M","hitid":""#)
        .and_then(|rest| rest.strip_suffix(r#""}"#))
        .unwrap_or_else(|| panic!("stored {data}"));
    gender_core::validate_hitid(assigned).unwrap();
}

#[tokio::test]
async fn a_producer_hitid_is_kept_and_each_missing_one_is_assigned_anew() {
    let h = harness(MemoryLog::default());
    let body = r#"[{"clientid":"a","pageGender":"F","hitid":"p-1"},{"clientid":"a","pageGender":"F"},{"clientid":"a","pageGender":"F"}]"#;
    let (status, _) = call(&h.app, post(body, Some("application/json"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let ids: Vec<String> = h
        .log
        .stored
        .lock()
        .unwrap()
        .iter()
        .map(|r| {
            let v: serde_json::Value = serde_json::from_slice(&r.data).unwrap();
            v["hitid"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(ids[0], "p-1");
    assert_ne!(ids[1], ids[2]);
    let (status, body) = call(
        &h.app,
        post(
            r#"{"clientid":"a","pageGender":"F","hitid":"not valid"}"#,
            Some("application/json"),
        ),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("hitid")
    );
}

#[tokio::test]
async fn mixed_batch_accepts_valid_hits_and_lists_the_rest() {
    let h = harness(MemoryLog::default());
    let body = format!(r#"[{HIT}, {{"clientid":"bad id","pageGender":"M"}}, {HIT}, "x"]"#);
    let (status, json) = call(&h.app, post(body, Some("application/json; charset=utf-8"))).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(json["accepted"], 2);
    assert_eq!(json["rejected"][0]["index"], 1);
    assert_eq!(json["rejected"][1]["index"], 3);
    assert_eq!(h.log.stored.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn all_invalid_empty_and_malformed_bodies_get_400() {
    let h = harness(MemoryLog::default());
    let (status, json) = call(&h.app, post(r#"[{"clientid":"a"}]"#, None)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(json["rejected"][0]["error"], "pageGender is required");
    for body in ["", "[]", "{", "nope"] {
        let (status, json) = call(&h.app, post(body, Some("application/json"))).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body:?}");
        assert!(json["error"].is_string());
    }
    assert!(h.log.stored.lock().unwrap().is_empty());
}

#[tokio::test]
async fn ndjson_with_crlf_is_accepted() {
    let h = harness(MemoryLog::default());
    let body = format!("{HIT}\r\n{HIT}\r\n");
    let (status, json) = call(&h.app, post(body, Some("application/x-ndjson"))).await;
    assert_eq!(
        (status, json["accepted"].clone()),
        (StatusCode::ACCEPTED, json!(2))
    );
}

#[tokio::test]
async fn size_count_and_type_limits() {
    let h = harness(MemoryLog::default());
    let limit = 5 * 1024 * 1024;
    let exact = format!("[{HIT}{}]", " ".repeat(limit - HIT.len() - 2));
    assert_eq!(exact.len(), limit);
    assert_eq!(
        call(&h.app, post(exact, Some("application/json"))).await.0,
        StatusCode::ACCEPTED
    );
    let over = format!("[{HIT}{}]", " ".repeat(limit - HIT.len() - 1));
    assert_eq!(
        call(&h.app, post(over.clone(), Some("application/json")))
            .await
            .0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // Without a Content-Length (streamed), the limit still holds.
    let stream = Body::from_stream(futures_stream(over.into_bytes()));
    assert_eq!(
        call(&h.app, post(stream, Some("application/json"))).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    let many = format!("[{}]", vec![HIT; 501].join(","));
    assert_eq!(
        call(&h.app, post(many, Some("application/json"))).await.0,
        StatusCode::PAYLOAD_TOO_LARGE
    );
    assert_eq!(
        call(&h.app, post(HIT, Some("text/csv"))).await.0,
        StatusCode::UNSUPPORTED_MEDIA_TYPE
    );
    assert_eq!(h.log.stored.lock().unwrap().len(), 1);
}

fn futures_stream(
    bytes: Vec<u8>,
) -> impl futures_core::Stream<Item = Result<Vec<u8>, std::io::Error>> {
    struct Chunks(Vec<Vec<u8>>);
    impl futures_core::Stream for Chunks {
        type Item = Result<Vec<u8>, std::io::Error>;
        fn poll_next(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<Option<Self::Item>> {
            std::task::Poll::Ready(if self.0.is_empty() {
                None
            } else {
                Some(Ok(self.0.remove(0)))
            })
        }
    }
    Chunks(bytes.chunks(1 << 20).map(<[u8]>::to_vec).collect())
}

#[tokio::test]
async fn credentials_are_required_and_nothing_is_stored_without() {
    let h = harness(MemoryLog::default());
    let no_key = Request::post("/hits").body(Body::from(HIT)).unwrap();
    assert_eq!(call(&h.app, no_key).await.0, StatusCode::UNAUTHORIZED);
    let wrong = Request::post("/hits")
        .header("x-api-key", "nope")
        .body(Body::from(HIT))
        .unwrap();
    assert_eq!(call(&h.app, wrong).await.0, StatusCode::UNAUTHORIZED);
    let lookup = Request::get("/gender/known").body(Body::empty()).unwrap();
    assert_eq!(call(&h.app, lookup).await.0, StatusCode::UNAUTHORIZED);
    assert!(h.log.stored.lock().unwrap().is_empty());
    let health = Request::get("/health").body(Body::empty()).unwrap();
    assert_eq!(
        call(&h.app, health).await,
        (StatusCode::OK, json!({"status": "ok"}))
    );
}

#[tokio::test]
async fn lookup_found_unknown_and_invalid() {
    let h = harness(MemoryLog::default());
    let (status, body) = call(&h.app, get("/gender/known")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        body,
        json!({
            "clientid": "known",
            "gender": "M",
            "signals": {"last": "M", "lifetime": "F", "last_7_days": "M"},
            "hits": {"M": 1, "F": 3},
            "last_seen": "2026-11-24T10:00:00.000Z",
            "updated_at": "2026-11-24T10:00:00.005Z",
        })
    );
    assert_eq!(
        call(&h.app, get("/gender/someone")).await,
        (
            StatusCode::NOT_FOUND,
            json!({"clientid": "someone", "error": "unknown clientid"})
        )
    );
    let (status, body) = call(&h.app, get("/gender/bad%20id")).await;
    assert_eq!(
        (status, body["clientid"].clone()),
        (StatusCode::BAD_REQUEST, json!("bad id"))
    );
    assert_eq!(
        call(&h.app, get("/gender/")).await.0,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        call(&h.app, get(&format!("/gender/{}", "x".repeat(65))))
            .await
            .0,
        StatusCode::BAD_REQUEST
    );
}

#[tokio::test]
async fn unknown_routes_wrong_methods_and_panics_are_json() {
    let h = harness(MemoryLog::default());
    assert_eq!(call(&h.app, get("/nope")).await.0, StatusCode::NOT_FOUND);
    let (status, body) = call(&h.app, get("/hits")).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"], "method not allowed; allowed: POST");
    let delete = Request::delete("/health").body(Body::empty()).unwrap();
    assert_eq!(call(&h.app, delete).await.0, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        call(&h.app, get("/gender/panic")).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn a_log_that_would_refuse_is_asked_before_the_body_is_parsed() {
    let h = harness(MemoryLog {
        behind: true,
        ..Default::default()
    });
    // Not parsed: an invalid body gets the same 503 as a valid one.
    for body in [HIT.to_owned(), "[{\"clientid\": ".to_owned()] {
        let response = h.app.clone().oneshot(post(body, None)).await.unwrap();
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(response.headers()["retry-after"], "1");
    }
    let (_, body) = call(&h.app, post(HIT, None)).await;
    assert_eq!(body["retryable"], true);
    assert!(
        body["error"].as_str().unwrap().contains("pipeline behind"),
        "{body}"
    );
    assert!(h.log.stored.lock().unwrap().is_empty());
}

#[tokio::test]
async fn storage_failures_are_never_reported_as_accepted() {
    let h = harness(MemoryLog {
        down: true,
        ..Default::default()
    });
    let response = h.app.clone().oneshot(post(HIT, None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    let (status, body) = call(&h.app, post(HIT, None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["retryable"], true);

    let h = harness(MemoryLog {
        fail: vec![0],
        ..Default::default()
    });
    let response = h.app.clone().oneshot(post(HIT, None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");

    let h = harness(MemoryLog {
        fail: vec![1],
        ..Default::default()
    });
    let body = format!(
        r#"[{HIT}, {{"clientid":"b","pageGender":"F"}}, {{"clientid":"c","pageGender":"F"}}]"#
    );
    let (status, json) = call(&h.app, post(body, None)).await;
    assert_eq!(
        (status, json["accepted"].clone()),
        (StatusCode::ACCEPTED, json!(2))
    );
    assert_eq!(json["rejected"][0]["index"], 1);
}

#[tokio::test]
async fn openapi_and_docs_are_served_without_credentials() {
    let h = harness(MemoryLog::default());
    let (status, spec) = call(
        &h.app,
        Request::get("/openapi.json").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(spec["openapi"].as_str().unwrap().starts_with("3."));
    for path in ["/hits", "/gender/{clientid}", "/health"] {
        assert!(spec["paths"][path].is_object(), "{path} documented");
    }
    let docs = h
        .app
        .clone()
        .oneshot(Request::get("/docs").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
}

#[tokio::test]
async fn a_lookup_the_store_cannot_answer_is_a_503_with_retry_after() {
    let h = harness(MemoryLog::default());
    let response = h.app.clone().oneshot(get("/gender/down")).await.unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");
    assert_eq!(
        call(&h.app, get("/gender/down")).await.1,
        json!({"clientid": "down", "error": "state store unavailable, retry"})
    );
}

#[tokio::test]
async fn an_id_that_is_not_utf8_is_a_400_naming_it() {
    let h = harness(MemoryLog::default());
    let (status, body) = call(&h.app, get("/gender/a%FF")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["clientid"], "a\u{FFFD}");
    assert!(
        body["error"].as_str().unwrap().contains("clientid"),
        "{body}"
    );
}

async fn served_document(app: &Router) -> Value {
    let (status, doc) = call(
        app,
        Request::get("/openapi.json").body(Body::empty()).unwrap(),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    doc
}

fn collect_refs<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(r)) = map.get("$ref") {
                refs.push(r);
            }
            map.values().for_each(|v| collect_refs(v, refs));
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, refs)),
        _ => {}
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

/// Parses, says OpenAPI 3.x, every `$ref` resolves, every operation has a
/// unique `operationId`, every path parameter is declared.
pub(crate) fn assert_valid_openapi(doc: &Value) {
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert!(doc["info"]["title"].is_string() && doc["info"]["version"].is_string());
    let mut refs = Vec::new();
    collect_refs(doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        let pointer = r
            .strip_prefix('#')
            .unwrap_or_else(|| panic!("{r} is not local"));
        assert!(doc.pointer(pointer).is_some(), "{r} does not resolve");
    }
    let mut ids = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            let id = operation["operationId"].as_str().expect("operationId");
            assert!(ids.insert(id.to_owned()), "duplicate operationId {id}");
            let declared: BTreeSet<&str> = operation["parameters"]
                .as_array()
                .into_iter()
                .flatten()
                .filter(|p| p["in"] == "path" && p["required"] == true)
                .filter_map(|p| p["name"].as_str())
                .collect();
            let templated: BTreeSet<&str> = path
                .split('/')
                .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
                .collect();
            assert_eq!(declared, templated, "{method} {path}");
            assert!(
                operation["responses"]
                    .as_object()
                    .is_some_and(|r| !r.is_empty()),
                "{method} {path}"
            );
        }
    }
}

/// `(METHOD, path)` of every operation of the document.
pub(crate) fn documented_routes(doc: &Value) -> BTreeSet<(String, String)> {
    doc["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(path, item)| {
            item.as_object()
                .unwrap()
                .keys()
                .map(move |method| (method.to_uppercase(), path.clone()))
        })
        .collect()
}

/// A request path for a path template: each `{param}` is `x`.
pub(crate) fn concrete(template: &str) -> String {
    template
        .split('/')
        .map(|s| if s.starts_with('{') { "x" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// The methods the router has for a path: the `Allow` of its `405` to a
/// method no route has. `HEAD` (implied by `GET`) is left out.
async fn routed_methods(app: &Router, template: &str) -> BTreeSet<String> {
    let request = Request::builder()
        .method(axum::http::Method::from_bytes(b"PROBE").unwrap())
        .uri(concrete(template))
        .header("x-api-key", KEY)
        .body(Body::empty())
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    match response.status() {
        StatusCode::NOT_FOUND => BTreeSet::new(),
        StatusCode::METHOD_NOT_ALLOWED => response.headers()["allow"]
            .to_str()
            .unwrap()
            .split(',')
            .map(|m| m.trim().to_owned())
            .filter(|m| m != "HEAD")
            .collect(),
        other => panic!("{template}: {other}"),
    }
}

/// Every operation of the served document is a route, and every path it
/// names has no other methods (routes are registered from the same
/// annotations the document is made of, so no route goes undocumented).
#[tokio::test]
async fn the_document_describes_exactly_the_routes() {
    let h = harness(MemoryLog::default());
    let doc = served_document(&h.app).await;
    assert_valid_openapi(&doc);
    let documented = documented_routes(&doc);
    assert!(documented.contains(&("GET".into(), "/gender/{clientid}".into())));
    assert!(documented.contains(&("GET".into(), "/docs".into())));
    let mut routed = BTreeSet::new();
    for (_, path) in &documented {
        for method in routed_methods(&h.app, path).await {
            routed.insert((method, path.clone()));
        }
    }
    assert_eq!(routed, documented);
}

#[test]
fn the_lambda_document_has_the_api_routes_only_and_its_body_limit() {
    let doc = serde_json::to_value(api_doc(4 * 1024 * 1024)).unwrap();
    assert_valid_openapi(&doc);
    let paths: BTreeSet<&str> = doc["paths"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(
        paths,
        BTreeSet::from([
            "/hits",
            "/gender/{clientid}",
            "/visitors/{clientid}",
            "/erasures/{id}",
            "/health",
            "/tracker.js",
            "/openapi.json",
            "/docs",
        ])
    );
    let text = doc.to_string();
    assert!(!text.contains(openapi::BODY_LIMIT));
    let hits = &doc["paths"]["/hits"]["post"];
    assert!(
        hits["description"]
            .as_str()
            .unwrap()
            .contains("4 MiB (4194304 bytes)")
    );
    assert!(
        hits["requestBody"]["description"]
            .as_str()
            .unwrap()
            .contains("4 MiB")
    );
    assert!(
        hits["responses"]["413"]["description"]
            .as_str()
            .unwrap()
            .contains("4 MiB")
    );
    assert_eq!(
        hits["security"],
        json!([{"ApiKey": []}, {"IngestKeyInUrl": []}])
    );
    assert_eq!(
        doc["paths"]["/gender/{clientid}"]["get"]["responses"]["403"],
        json!({"$ref": "#/components/responses/Forbidden"})
    );
    assert_eq!(
        doc["components"]["securitySchemes"]["ApiKey"],
        json!({
            "type": "apiKey",
            "in": "header",
            "name": "x-api-key",
            "description": doc["components"]["securitySchemes"]["ApiKey"]["description"],
        })
    );
    let retry_after = &hits["responses"]["503"]["headers"]["Retry-After"];
    assert!(retry_after.is_object());
    let batch = &doc["components"]["schemas"]["HitBatch"]["oneOf"][1];
    assert_eq!(
        (batch["minItems"].as_u64(), batch["maxItems"].as_u64()),
        (Some(1), Some(500))
    );
    assert_eq!(
        batch["contains"],
        json!({"$ref": "#/components/schemas/Hit"})
    );
}

#[tokio::test]
async fn the_docs_page_loads_the_pinned_swagger_ui_and_renders_this_document() {
    let h = harness(MemoryLog::default());
    let response = h.app.clone().oneshot(get("/docs")).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()["content-type"],
        "text/html; charset=utf-8"
    );
    let page = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let page = String::from_utf8(page.to_vec()).unwrap();
    let release = format!("swagger-ui-dist@{}", docs::SWAGGER_UI_VERSION);
    for file in ["swagger-ui.css", "swagger-ui-bundle.js"] {
        let tag = page
            .lines()
            .find(|l| l.contains(&format!("{release}/{file}")))
            .unwrap_or_else(|| panic!("{file} in {page}"));
        assert!(tag.contains("integrity=\"sha384-"), "{tag}");
    }
    assert!(page.contains(r#""url": "openapi.json""#), "{page}");
}

fn request(method: &str, uri: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("x-api-key", KEY)
        .body(Body::empty())
        .unwrap()
}

#[tokio::test]
async fn an_erasure_is_recorded_and_followed_without_naming_the_visitor() {
    let h = harness(MemoryLog::default());
    let response = h
        .app
        .clone()
        .oneshot(request("DELETE", "/visitors/visitor-1"))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = serde_json::from_slice(
        &axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap(),
    )
    .unwrap();
    assert_eq!(body["status"], "pending");
    assert_eq!(body["status_url"], location.as_str());
    assert_eq!(body["requested_at"], "2026-11-24T10:00:00.000Z");
    assert!(body["completed_at"].is_null());
    assert!(!body.to_string().contains("visitor-1"));
    let recorded = h.erasures.0.lock().unwrap().clone();
    assert_eq!(recorded.len(), 1);
    assert_eq!(recorded[0].0, "visitor-1");

    let (status, status_body) = call(&h.app, request("GET", &location)).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(status_body, body);
}

#[tokio::test]
async fn erasure_routes_answer_bad_input_with_json_errors() {
    let h = harness(MemoryLog::default());
    for (method, uri, status) in [
        ("DELETE", "/visitors/bad%20id", StatusCode::BAD_REQUEST),
        ("DELETE", "/visitors/", StatusCode::BAD_REQUEST),
        ("DELETE", "/visitors/a%FF", StatusCode::BAD_REQUEST),
        ("DELETE", "/visitors/down", StatusCode::SERVICE_UNAVAILABLE),
        ("GET", "/erasures/nope", StatusCode::BAD_REQUEST),
        (
            "GET",
            &format!("/erasures/{}", "0".repeat(32)),
            StatusCode::NOT_FOUND,
        ),
    ] {
        let (got, body) = call(&h.app, request(method, uri)).await;
        assert_eq!(got, status, "{method} {uri}: {body}");
        assert!(body["error"].is_string(), "{method} {uri}: {body}");
    }
    assert!(h.erasures.0.lock().unwrap().is_empty(), "nothing recorded");
    let unauthenticated = Request::builder()
        .method("DELETE")
        .uri("/visitors/visitor-1")
        .body(Body::empty())
        .unwrap();
    let (status, _) = call(&h.app, unauthenticated).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(h.erasures.0.lock().unwrap().is_empty());
}

// SPEC 18: key scopes, keys in URLs, text/plain bodies, CORS, the tracker.

/// `401`, `403`, or "ran" (any other status: the route's own answer).
fn outcome(status: StatusCode) -> &'static str {
    match status {
        StatusCode::UNAUTHORIZED => "401",
        StatusCode::FORBIDDEN => "403",
        _ => "ran",
    }
}

fn keyed(method: &str, uri: &str, key: Option<&str>) -> Request<Body> {
    let mut builder = Request::builder().method(method).uri(uri);
    if let Some(key) = key {
        builder = builder.header("x-api-key", key);
    }
    let body = if method == "POST" { HIT } else { "" };
    builder
        .header("content-type", "application/json")
        .body(Body::from(body))
        .unwrap()
}

#[tokio::test]
async fn every_scope_on_every_route() {
    let h = harness(MemoryLog::default());
    let erasure = "/erasures/00000000000000000000000000000000";
    // (route, [no key, unknown key, ingest, read, admin])
    let table: [(&str, &str, [&str; 5]); 7] = [
        ("POST", "/hits", ["401", "401", "ran", "403", "ran"]),
        ("GET", "/gender/known", ["401", "401", "403", "ran", "ran"]),
        ("GET", "/gender/", ["401", "401", "403", "ran", "ran"]),
        ("GET", erasure, ["401", "401", "403", "ran", "ran"]),
        (
            "DELETE",
            "/visitors/v-1",
            ["401", "401", "403", "403", "ran"],
        ),
        ("GET", "/health", ["ran"; 5]),
        ("GET", "/tracker.js", ["ran"; 5]),
    ];
    for (method, uri, expected) in table {
        let mut got = Vec::new();
        for key in [
            None,
            Some("nope"),
            Some(INGEST_KEY),
            Some(READ_KEY),
            Some(KEY),
        ] {
            let response = h
                .app
                .clone()
                .oneshot(keyed(method, uri, key))
                .await
                .unwrap();
            got.push(outcome(response.status()));
        }
        assert_eq!(got, expected, "{method} {uri}");
    }
    // Only the admin-keyed request erased; only ingest and admin stored hits.
    assert_eq!(h.erasures.0.lock().unwrap().len(), 1);
    assert_eq!(h.log.stored.lock().unwrap().len(), 2);
}

#[tokio::test]
async fn a_wrong_scope_is_a_json_403_naming_the_scope_needed() {
    let h = harness(MemoryLog::default());
    let request = keyed("GET", "/gender/known", Some(INGEST_KEY));
    let (status, body) = call(&h.app, request).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["required_scope"], "read");
    assert_eq!(body["scope"], "ingest");
    let (status, body) = call(&h.app, keyed("DELETE", "/visitors/v", Some(READ_KEY))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(body["required_scope"], "admin");
    let (status, body) = call(&h.app, keyed("GET", "/gender/known", None)).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(body["error"].as_str().unwrap().contains("missing"));
}

fn beacon(uri: &str, origin: Option<&str>) -> Request<Body> {
    let mut builder = Request::post(uri).header("content-type", "text/plain;charset=UTF-8");
    if let Some(origin) = origin {
        builder = builder.header("origin", origin);
    }
    builder.body(Body::from(HIT)).unwrap()
}

#[tokio::test]
async fn only_an_ingest_key_may_come_in_the_url_and_only_to_post_hits() {
    let h = harness(MemoryLog::default());
    let (status, body) = call(&h.app, beacon(&format!("/hits?key={INGEST_KEY}"), None)).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(1))
    );
    for key in [READ_KEY, KEY] {
        let (status, body) = call(&h.app, beacon(&format!("/hits?key={key}"), None)).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{key}");
        assert_eq!(body["required_scope"], "ingest");
        assert!(
            !body.to_string().contains(key),
            "the answer repeats the key"
        );
    }
    let request = Request::get(format!("/gender/known?key={READ_KEY}"))
        .body(Body::empty())
        .unwrap();
    let (status, body) = call(&h.app, request).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("only on POST /hits")
    );
    assert_eq!(h.log.stored.lock().unwrap().len(), 1);
}

#[tokio::test]
async fn a_text_plain_body_is_the_same_json() {
    let h = harness(MemoryLog::default());
    let two = format!("[{HIT},{HIT}]");
    let (status, body) = call(&h.app, post(two, Some("text/plain;charset=UTF-8"))).await;
    assert_eq!(
        (status, body["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(2))
    );
    let (status, _) = call(&h.app, post("not json", Some("text/plain"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

fn preflight(uri: &str, origin: &str) -> Request<Body> {
    Request::builder()
        .method("OPTIONS")
        .uri(uri)
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .body(Body::empty())
        .unwrap()
}

const SITE: &str = "https://site.example";

#[tokio::test]
async fn without_cors_origins_nothing_changes() {
    let h = harness(MemoryLog::default());
    let response = h
        .app
        .clone()
        .oneshot(preflight("/hits", SITE))
        .await
        .unwrap();
    // As before SPEC 18: a keyless request to a guarded path is a 401.
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let uri = format!("/hits?key={INGEST_KEY}");
    let response = h
        .app
        .clone()
        .oneshot(beacon(&uri, Some(SITE)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn cors_answers_listed_origins_on_post_hits_only_and_refuses_others() {
    let cors = CorsOrigins::parse(&format!("{SITE},https://www.site.example")).unwrap();
    let h = harness_with_cors(MemoryLog::default(), cors);

    let response = h
        .app
        .clone()
        .oneshot(preflight("/hits", SITE))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NO_CONTENT);
    let headers = response.headers();
    assert_eq!(headers["access-control-allow-origin"], SITE);
    assert_eq!(headers["access-control-allow-methods"], "POST");
    assert!(
        headers["access-control-allow-headers"]
            .to_str()
            .unwrap()
            .contains("x-api-key")
    );
    assert_eq!(headers["vary"], "Origin");

    let (status, body) = call(&h.app, preflight("/hits", "https://evil.example")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(body["error"].as_str().unwrap().contains("origin"));

    let uri = format!("/hits?key={INGEST_KEY}");
    let response = h
        .app
        .clone()
        .oneshot(beacon(&uri, Some(SITE)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["access-control-allow-origin"], SITE);
    assert_eq!(
        response.headers()["access-control-expose-headers"],
        "Retry-After"
    );
    // A refusal is readable by the page too.
    let response = h
        .app
        .clone()
        .oneshot(beacon("/hits?key=nope", Some(SITE)))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(response.headers()["access-control-allow-origin"], SITE);
    // Another origin is refused even with a good key; no origin (a server) is not.
    let (status, _) = call(&h.app, beacon(&uri, Some("https://evil.example"))).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let response = h.app.clone().oneshot(beacon(&uri, None)).await.unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    assert_eq!(h.log.stored.lock().unwrap().len(), 2);

    // The lookups stay server-to-server: no preflight, no CORS headers.
    let response = h
        .app
        .clone()
        .oneshot(preflight("/gender/known", SITE))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
    let mut lookup = get("/gender/known");
    lookup.headers_mut().insert("origin", SITE.parse().unwrap());
    let response = h.app.clone().oneshot(lookup).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert!(
        response
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );
}

#[tokio::test]
async fn the_tracker_is_served_with_caching_headers_and_an_etag() {
    let h = harness(MemoryLog::default());
    let request = || Request::get("/tracker.js").body(Body::empty()).unwrap();
    let response = h.app.clone().oneshot(request()).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let headers = response.headers().clone();
    assert_eq!(headers["content-type"], "text/javascript; charset=utf-8");
    assert_eq!(headers["cache-control"], "public, max-age=3600");
    let etag = headers["etag"].clone();
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    assert_eq!(body, TRACKER_JS.as_bytes());
    let mut again = request();
    again.headers_mut().insert("if-none-match", etag.clone());
    let response = h.app.clone().oneshot(again).await.unwrap();
    assert_eq!(response.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(response.headers()["etag"], etag);
}
