//! SPEC 18 through HTTP against the spawned binary: the key scopes on every
//! route, the key files, the ingest key in the URL with a `text/plain` body,
//! CORS on `POST /hits` only, and `gender-service keys rotate`.

mod common;

use common::{KEY, Server};
use serde_json::{Value, json};
use std::path::Path;
use std::process::Command;

const SITE: &str = "http://site.test:8081";

fn key_file(dir: &Path, name: &str) -> String {
    let path = dir.join(name);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }
    std::fs::read_to_string(path).unwrap().trim().to_owned()
}

async fn status(
    server: &Server,
    method: reqwest::Method,
    path: &str,
    key: Option<&str>,
) -> (u16, Value) {
    let mut request = server
        .client
        .request(method.clone(), format!("{}{path}", server.url));
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    if method == reqwest::Method::POST {
        request = request
            .header("content-type", "application/json")
            .body(r#"{"clientid":"scoped","pageGender":"F"}"#);
    }
    let response = request.send().await.unwrap();
    let code = response.status().as_u16();
    (code, response.json().await.unwrap_or(Value::Null))
}

/// POST /hits as `navigator.sendBeacon` sends it: key in the URL, text body.
async fn beacon(server: &Server, key: &str, origin: Option<&str>, body: &str) -> reqwest::Response {
    let mut request = server
        .client
        .post(format!("{}/hits?key={key}", server.url))
        .header("content-type", "text/plain;charset=UTF-8")
        .body(body.to_owned());
    if let Some(origin) = origin {
        request = request.header("origin", origin);
    }
    request.send().await.unwrap()
}

#[tokio::test]
async fn each_key_reaches_only_its_routes_through_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--cors-origins", SITE]).await;
    let ingest = key_file(dir.path(), "ingest-key");
    let read = key_file(dir.path(), "read-key");
    assert_eq!((ingest.len(), read.len()), (32, 32));
    assert_ne!(ingest, read);
    use reqwest::Method;
    let erasure = format!("/erasures/{}", "0".repeat(32));
    // (route, [no key, unknown key, ingest, read, admin]): "ran" is the
    // route's own answer, whatever its status.
    let table = [
        (Method::POST, "/hits", ["401", "401", "ran", "403", "ran"]),
        (
            Method::GET,
            "/gender/scoped",
            ["401", "401", "403", "ran", "ran"],
        ),
        (
            Method::GET,
            erasure.as_str(),
            ["401", "401", "403", "ran", "ran"],
        ),
        (
            Method::DELETE,
            "/visitors/gone",
            ["401", "401", "403", "403", "ran"],
        ),
        (
            Method::POST,
            "/admin/flush",
            ["401", "401", "403", "403", "ran"],
        ),
        (
            Method::GET,
            "/admin/split",
            ["401", "401", "403", "403", "ran"],
        ),
        (Method::GET, "/health", ["ran"; 5]),
        (Method::GET, "/tracker.js", ["ran"; 5]),
    ];
    for (method, path, expected) in table {
        let mut got = Vec::new();
        for key in [
            None,
            Some("nope"),
            Some(ingest.as_str()),
            Some(read.as_str()),
            Some(KEY),
        ] {
            let (code, body) = status(&server, method.clone(), path, key).await;
            if code == 403 {
                assert!(body["required_scope"].is_string(), "{path}: {body}");
            }
            got.push(match code {
                401 => "401",
                403 => "403",
                _ => "ran",
            });
        }
        assert_eq!(got, expected, "{method} {path}");
    }
    let refused = server.metrics_text().await;
    assert!(
        refused.contains(r#"gender_requests_refused_total{reason="forbidden"} 9"#),
        "{refused}"
    );

    // The browser's way in: the ingest key in the URL, a text/plain body,
    // from a listed origin; a read or admin key there is refused.
    let hits = r#"[{"clientid":"browser-1","pageGender":"F","hitid":"h-1"},{"clientid":"browser-1","pageGender":"M","hitid":"h-2"}]"#;
    let response = beacon(&server, &ingest, Some(SITE), hits).await;
    assert_eq!(response.status(), 202);
    assert_eq!(response.headers()["access-control-allow-origin"], SITE);
    for key in [read.as_str(), KEY] {
        let response = beacon(&server, key, Some(SITE), hits).await;
        assert_eq!(response.status(), 403);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["required_scope"], "ingest");
    }
    let response = beacon(&server, &ingest, Some("http://elsewhere.test"), hits).await;
    assert_eq!(response.status(), 403);
    let preflight = server
        .client
        .request(reqwest::Method::OPTIONS, format!("{}/hits", server.url))
        .header("origin", SITE)
        .header("access-control-request-method", "POST")
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 204);
    assert_eq!(preflight.headers()["access-control-allow-origin"], SITE);
    let preflight = server
        .client
        .request(
            reqwest::Method::OPTIONS,
            format!("{}/gender/browser-1", server.url),
        )
        .header("origin", SITE)
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 401, "lookups get no preflight answer");
    assert!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .is_none()
    );

    server.flush().await;
    let (code, profile) = status(&server, Method::GET, "/gender/browser-1", Some(&read)).await;
    assert_eq!(code, 200);
    assert_eq!(profile["hits"], json!({"M": 1, "F": 1}));
}

fn rotate(server: &Server, scope: &str, grace: &str) -> (bool, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_gender-service"))
        .args(["keys", "rotate", "--scope", scope, "--grace-seconds", grace])
        .args(["--url", &server.url, "--api-key", KEY])
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

fn new_key(printed: &str, scope: &str) -> String {
    printed
        .lines()
        .find_map(|l| l.strip_prefix(&format!("new {scope} key: ")))
        .unwrap_or_else(|| panic!("{printed}"))
        .to_owned()
}

#[tokio::test]
async fn keys_rotate_keeps_the_old_key_for_its_grace_period_across_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let first = key_file(dir.path(), "ingest-key");
    let hit = |n: u32| format!(r#"{{"clientid":"rot","pageGender":"F","hitid":"r-{n}"}}"#);
    assert_eq!(beacon(&server, &first, None, &hit(1)).await.status(), 202);

    let (ok, printed) = rotate(&server, "ingest", "3600");
    assert!(ok, "{printed}");
    let second = new_key(&printed, "ingest");
    assert_eq!(key_file(dir.path(), "ingest-key"), second);
    assert!(printed.contains("accepted until"), "{printed}");
    // Both work now: the new one, and the old one within its grace.
    assert_eq!(beacon(&server, &second, None, &hit(2)).await.status(), 202);
    assert_eq!(beacon(&server, &first, None, &hit(3)).await.status(), 202);

    // The grace outlives a restart (it is in ingest-key.previous).
    let (exit, _) = server.terminate();
    assert!(exit.success());
    let server = Server::start(dir.path(), &[]).await;
    assert_eq!(beacon(&server, &first, None, &hit(4)).await.status(), 202);

    // A rotation without grace ends the replaced key at once, and a second
    // rotation replaces the previous key: the first one is gone too.
    let (ok, printed) = rotate(&server, "ingest", "0");
    assert!(ok, "{printed}");
    let third = new_key(&printed, "ingest");
    assert_eq!(beacon(&server, &second, None, &hit(5)).await.status(), 401);
    assert_eq!(beacon(&server, &first, None, &hit(6)).await.status(), 401);
    assert_eq!(beacon(&server, &third, None, &hit(7)).await.status(), 202);
    // The other scopes were not touched.
    server.flush().await;
    let read = key_file(dir.path(), "read-key");
    let (code, profile) = status(&server, reqwest::Method::GET, "/gender/rot", Some(&read)).await;
    assert_eq!((code, profile["hits"]["F"].as_u64()), (200, Some(5)));
}

#[tokio::test]
async fn a_key_set_by_flag_is_not_rotated_and_offline_rotation_needs_a_stopped_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--ingest-key", "flag-ingest-key"]).await;
    assert!(!dir.path().join("ingest-key").exists());
    assert_eq!(
        beacon(
            &server,
            "flag-ingest-key",
            None,
            r#"{"clientid":"f","pageGender":"M"}"#
        )
        .await
        .status(),
        202
    );
    let (ok, printed) = rotate(&server, "ingest", "60");
    assert!(!ok);
    assert!(
        printed.contains("409") && printed.contains("--ingest-key"),
        "{printed}"
    );
    let (exit, _) = server.terminate();
    assert!(exit.success());

    // Stopped: --offline rewrites the files; the next start uses them.
    let read = key_file(dir.path(), "read-key");
    let output = Command::new(env!("CARGO_BIN_EXE_gender-service"))
        .args([
            "keys",
            "rotate",
            "--scope",
            "read",
            "--offline",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let printed = String::from_utf8_lossy(&output.stdout).into_owned();
    let new_read = new_key(&printed, "read");
    assert_eq!(key_file(dir.path(), "read-key"), new_read);
    let server = Server::start(dir.path(), &[]).await;
    for key in [&read, &new_read] {
        let (code, _) = status(&server, reqwest::Method::GET, "/gender/f", Some(key)).await;
        assert_ne!(code, 401, "old (in its grace) and new read keys both work");
    }
}

/// `--ingest-rate-per-ip`: the ingest key's `POST /hits` (key in the URL or
/// in the header, one bucket) past the rate of its client address gets a
/// JSON `429` with `Retry-After`, counted in /metrics; the admin key from
/// the same address is not limited, a read key still gets its `403`, and
/// another address has its own bucket.
#[tokio::test]
async fn the_ingest_key_is_rate_limited_per_client_address_and_the_admin_key_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--ingest-rate-per-ip", "1"]).await;
    let ingest = key_file(dir.path(), "ingest-key");
    let read = key_file(dir.path(), "read-key");
    let body = r#"{"clientid":"limited","pageGender":"F"}"#;

    // 1 per second, bursts of 1: requests sent back to back meet a 429 as
    // soon as they come faster than that.
    let started = std::time::Instant::now();
    let mut accepted = 0u32;
    let mut limited = None;
    for n in 0..1000 {
        let response = if n % 2 == 0 {
            beacon(&server, &ingest, None, body).await
        } else {
            server
                .client
                .post(format!("{}/hits", server.url))
                .header("x-api-key", &ingest)
                .header("content-type", "application/json")
                .body(body)
                .send()
                .await
                .unwrap()
        };
        match response.status().as_u16() {
            202 => accepted += 1,
            429 => {
                limited = Some(response);
                break;
            }
            other => panic!("POST /hits with the ingest key: {other}"),
        }
    }
    let limited = limited.expect("the ingest key was never limited");
    // Never more than the burst plus what the elapsed time refilled.
    assert!(
        f64::from(accepted) <= 1.0 + started.elapsed().as_secs_f64().ceil(),
        "{accepted} accepted in {:?}",
        started.elapsed()
    );
    let retry_after: u32 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after >= 1);
    let error: Value = limited.json().await.unwrap();
    assert_eq!(error["retryable"], json!(true), "{error}");
    assert!(
        error["error"].as_str().unwrap().contains("per second"),
        "{error}"
    );
    assert_eq!(
        server
            .metric("gender_requests_refused_total{reason=\"rate_limited\"}")
            .await,
        1.0
    );

    // The admin key from the same address: never limited.
    for _ in 0..20 {
        let (code, body) = server.post_hits(body.to_owned(), "application/json").await;
        assert_eq!(code, 202, "{body}");
    }
    // A read key is the key check's to refuse, not the limiter's.
    let (code, _) = status(&server, reqwest::Method::POST, "/hits", Some(&read)).await;
    assert_eq!(code, 403);

    // Another client address (127.0.0.2 reaches the loopback listener on
    // Linux) has its own full bucket.
    #[cfg(target_os = "linux")]
    {
        let other = reqwest::Client::builder()
            .local_address(std::net::IpAddr::from([127, 0, 0, 2]))
            .build()
            .unwrap();
        let response = other
            .post(format!("{}/hits?key={ingest}", server.url))
            .header("content-type", "text/plain")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), 202);
    }
}

/// The console's "Website" panel: `GET /admin/keys/ingest` gives the
/// current ingest key to the admin key only, and hits sent with the key in
/// the URL (as `tracker.js` sends them) are counted apart in /metrics.
#[tokio::test]
async fn the_console_gets_the_ingest_key_and_url_key_requests_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let ingest = key_file(dir.path(), "ingest-key");
    let read = key_file(dir.path(), "read-key");
    let (code, body) = server.get("/admin/keys/ingest").await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(body, json!({"scope": "ingest", "key": ingest}));
    for key in [&ingest, &read] {
        let (code, _) = status(
            &server,
            reqwest::Method::GET,
            "/admin/keys/ingest",
            Some(key),
        )
        .await;
        assert_eq!(code, 403);
    }
    let (code, _) = status(&server, reqwest::Method::GET, "/admin/keys/ingest", None).await;
    assert_eq!(code, 401);

    let counted = "gender_url_key_requests_total";
    assert_eq!(server.metric(counted).await, 0.0);
    let body = r#"{"clientid":"from-a-page","pageGender":"M"}"#;
    assert_eq!(
        beacon(&server, &ingest, None, body).await.status().as_u16(),
        202
    );
    // The key in the header, or a bad key in the URL: not counted.
    let (code, _) = status(&server, reqwest::Method::POST, "/hits", Some(&ingest)).await;
    assert_eq!(code, 202);
    assert_eq!(
        beacon(&server, "nope", None, body).await.status().as_u16(),
        401
    );
    assert_eq!(server.metric(counted).await, 1.0);

    // After a rotation the route gives the new key.
    let (code, rotated) = server
        .post(
            "/admin/keys/rotate",
            json!({"scope": "ingest", "grace_seconds": 0}),
        )
        .await;
    assert_eq!(code, 200, "{rotated}");
    let (_, body) = server.get("/admin/keys/ingest").await;
    assert_eq!(body["key"], rotated["key"]);
    assert_ne!(body["key"], json!(ingest));
}
