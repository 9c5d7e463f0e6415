//! The local routes through the local server, in-process on a loopback port.

use super::control::{MAX_DAILY_BODY_BYTES, daily_date, daily_request};
use super::docs::swagger_file;
use crate::metrics;
use gender_core::default_daily_date;
use std::collections::BTreeSet;

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

/// The local server documents its admin routes next to the API's, every
/// operation is a route, and the admin bodies have the documented
/// properties.
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
    // Every documented path has exactly its documented methods: the `Allow`
    // of a 405 to an unknown method lists them. (Routes are registered from
    // the annotations the document is made of, so none goes undocumented.)
    let mut routed = BTreeSet::new();
    for (_, path) in &documented {
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
