//! Router tests through `tower::ServiceExt::oneshot`, with small in-memory
//! implementations of the ports (the adapters have their own tests).

use super::*;
use async_trait::async_trait;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use gender_core::ports::LogRecord;
use gender_core::{Date, Gender, PortError, Profile, WindowSums};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Mutex;
use tower::ServiceExt;

const NOW: i64 = 1_795_514_400_000;
const KEY: &str = "test-key";

#[derive(Default)]
struct MemoryLog {
    stored: Mutex<Vec<LogRecord>>,
    /// Indexes that "fail" on every attempt, like a persistent PutRecords failure.
    fail: Vec<usize>,
    down: bool,
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
}

#[derive(Default)]
struct MemoryProfiles(HashMap<String, Profile>);

#[async_trait]
impl ProfileReader for MemoryProfiles {
    async fn get_profile(&self, clientid: &str) -> Result<Option<Profile>, PortError> {
        if clientid == "panic" {
            panic!("boom");
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

struct Harness {
    app: Router,
    log: Arc<MemoryLog>,
}

fn harness(log: MemoryLog) -> Harness {
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
    let state = ApiState {
        log: log.clone(),
        profiles: profiles.clone(),
        health: profiles,
        api_key: ApiKey::required(KEY),
        metrics: Arc::new(ApiMetrics::default()),
        clock: || NOW,
        max_body_bytes: gender_core::ingest::MAX_BODY_BYTES,
    };
    Harness {
        app: with_edge_layers(router(state)),
        log,
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
    assert_eq!(stored[0].data, br#"{"clientid":"a","pageGender":"M"}"#);
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
        call(&h.app, post(HIT, Some("text/plain"))).await.0,
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
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .starts_with("method not allowed"),
        "{body}"
    );
    let delete = Request::delete("/health").body(Body::empty()).unwrap();
    assert_eq!(call(&h.app, delete).await.0, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(
        call(&h.app, get("/gender/panic")).await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn storage_failures_are_never_reported_as_accepted() {
    let h = harness(MemoryLog {
        down: true,
        ..Default::default()
    });
    let (status, body) = call(&h.app, post(HIT, None)).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["retryable"], true);

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
