//! End to end through HTTP against a spawned `gender-service serve`.

mod common;

use common::{KEY, Server, curated_files};
use serde_json::{Value, json};

fn hit(id: &str, gender: &str, ts: &str) -> Value {
    json!({ "clientid": id, "pageGender": gender, "timestamp": ts })
}

#[tokio::test]
async fn ingest_pipeline_lookup_and_daily_through_http() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;

    // Out-of-order hits: the latest event time decides `last`, not arrival.
    let batch = json!([
        hit("alice", "f", "2026-11-20T10:00:00Z"),
        hit("alice", "M", "2026-11-21T10:00:00+02:00"),
        hit("alice", "F", "2026-11-19T10:00:00Z"),
        {"clientid": "alice", "pageGender": "X"},
        hit("bob", "M", "2026-11-20T12:00:00.123456Z"),
    ]);
    let (status, body) = server
        .post_hits(batch.to_string(), "application/json")
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 4);
    assert_eq!(
        body["rejected"],
        json!([{"index": 3, "error": "pageGender must be \"M\" or \"F\""}])
    );

    // Equal event times across requests: the one processed last wins.
    let ndjson = format!(
        "{}\r\n{}\r\n",
        hit("carol", "M", "2026-11-20T08:00:00Z"),
        hit("carol", "F", "2026-11-20T08:00:00Z")
    );
    assert_eq!(
        server.post_hits(ndjson, "application/x-ndjson").await.0,
        202
    );
    let (status, _) = server
        .post_hits(
            hit("carol", "M", "2026-11-20T08:00:00Z").to_string(),
            "application/json; charset=utf-8",
        )
        .await;
    assert_eq!(status, 202);

    let flushed = server.flush().await;
    assert!(flushed["delivered_offset"].as_u64().unwrap() > 0);

    let (status, alice) = server.get("/gender/alice").await;
    assert_eq!(status, 200);
    assert_eq!(alice["hits"], json!({"M": 1, "F": 2}));
    assert_eq!(alice["last_seen"], "2026-11-21T08:00:00.000Z");
    assert_eq!(
        alice["signals"],
        json!({"last": "M", "lifetime": "F", "last_7_days": null})
    );
    assert_eq!(alice["gender"], "F");
    let (_, carol) = server.get("/gender/carol").await;
    assert_eq!(carol["signals"]["last"], "M");
    assert_eq!(carol["hits"], json!({"M": 2, "F": 1}));

    // Daily for 2026-11-21: window 11-15..=11-21 holds alice's 3 hits (2 F, 1 M).
    let (status, summary) = server
        .post("/admin/daily", json!({"date": "2026-11-21"}))
        .await;
    assert_eq!(status, 200, "{summary}");
    assert_eq!(summary["window_from"], "2026-11-15");
    assert_eq!(summary["visitors_in_window"], 3);
    let (_, alice) = server.get("/gender/alice").await;
    assert_eq!(alice["signals"]["last_7_days"], "F");
    // A later window without alice's hits clears the signal again.
    let (_, summary) = server
        .post("/admin/daily", json!({"date": "2026-12-10"}))
        .await;
    assert_eq!(summary["signals_cleared"], 3);
    assert_eq!(
        server.get("/gender/alice").await.1["signals"]["last_7_days"],
        Value::Null
    );
    // Re-running a date gives identical results.
    let first = server
        .post("/admin/daily", json!({"date": "2026-11-21"}))
        .await
        .1;
    let again = server
        .post("/admin/daily", json!({"date": "2026-11-21"}))
        .await
        .1;
    assert_eq!(first, again);

    // Curated Parquet: exact schema, one row per valid hit, truncated to ms.
    let files = curated_files(dir.path(), "curated/hits");
    let rows: usize = files.iter().map(|(_, hits)| hits.len()).sum();
    assert_eq!(rows, 7);
    let bob = files
        .iter()
        .flat_map(|(_, h)| h)
        .find(|h| h.clientid == "bob")
        .unwrap();
    assert_eq!(bob.event_ms % 1000, 123);
    assert!(
        files
            .iter()
            .all(|(key, _)| key.starts_with("curated/hits/dt=2026-11-"))
    );
    let daily = dir.path().join("curated/daily/dt=2026-11-21/daily.parquet");
    let rollup =
        gender_pipeline::codec::decode_daily(std::fs::read(daily).unwrap(), "daily").unwrap();
    assert_eq!(
        rollup
            .iter()
            .map(|r| (r.clientid.as_str(), r.m, r.f))
            .collect::<Vec<_>>(),
        [("alice", 1, 0)]
    );

    // Raw NDJSON: exactly the four fields, millisecond UTC, and the hitid
    // the service assigned. (Raw objects are filed by arrival date, and the
    // hits may span several delivery batches.)
    let text: String = std::fs::read_dir(dir.path().join("raw"))
        .unwrap()
        .flat_map(|day| std::fs::read_dir(day.unwrap().path()).unwrap())
        .map(|entry| std::fs::read_to_string(entry.unwrap().path()).unwrap())
        .collect();
    let bob = text
        .lines()
        .find(|l| l.contains(r#""clientid":"bob""#))
        .unwrap_or_else(|| panic!("{text}"));
    let hitid = bob
        .strip_prefix(
            r#"{"clientid":"bob","pageGender":"M","timestamp":"2026-11-20T12:00:00.123Z","hitid":""#,
        )
        .and_then(|rest| rest.strip_suffix(r#""}"#))
        .unwrap_or_else(|| panic!("{bob}"));
    gender_core::validate_hitid(hitid).unwrap();

    // Metrics reflect the run.
    let metrics = server.metrics_text().await;
    assert!(
        metrics.contains("gender_hits_accepted_total 7"),
        "{metrics}"
    );
    assert!(metrics.contains("gender_hits_rejected_total 1"));
    assert!(metrics.contains("gender_hits_curated_total 7"));

    // SIGTERM: a clean exit well within 30 s, and everything is still there after a restart.
    let (status, took) = server.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took.as_secs() < 30);
    let server = Server::start(dir.path(), &[]).await;
    assert_eq!(
        server.get("/gender/alice").await.1["hits"],
        json!({"M": 1, "F": 2})
    );
}

#[tokio::test]
async fn every_error_path_answers_json_with_the_right_status() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let url = &server.url;
    let c = &server.client;
    let status_and_json = |r: reqwest::Response| async move {
        let status = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default();
        assert!(
            ct.starts_with("application/json"),
            "{status} content-type {ct}"
        );
        let body: Value = r.json().await.unwrap();
        assert!(body["error"].is_string(), "{body}");
        status
    };

    let no_key = c
        .post(format!("{url}/hits"))
        .json(&json!({"clientid": "x", "pageGender": "M"}))
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_json(no_key).await, 401);
    let form = c
        .post(format!("{url}/hits"))
        .header("x-api-key", KEY)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("x")
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_json(form).await, 415);
    let big = format!(
        "[{}]",
        vec![r#"{"clientid":"x","pageGender":"M"}"#; 501].join(",")
    );
    assert_eq!(server.post_hits(big, "application/json").await.0, 413);
    assert_eq!(
        oversized_post_status(url).await,
        "HTTP/1.1 413 Payload Too Large"
    );
    assert_eq!(server.post_hits("[]", "application/json").await.0, 400);
    assert_eq!(server.post_hits("", "application/json").await.0, 400);
    assert_eq!(
        server.post_hits("{not json", "application/json").await.0,
        400
    );
    let (status, body) = server
        .post_hits(
            r#"[{"clientid":"ok","pageGender":"M","timestamp":"2026-11-24"}]"#,
            "application/json",
        )
        .await;
    assert_eq!(
        (
            status,
            body["rejected"][0]["error"]
                .as_str()
                .unwrap()
                .contains("RFC 3339")
        ),
        (400, true)
    );

    assert_eq!(
        server.get("/gender/nobody").await,
        (
            404,
            json!({"clientid": "nobody", "error": "unknown clientid"})
        )
    );
    assert_eq!(server.get("/gender/bad!id").await.0, 400);
    let wrong_method = c
        .delete(format!("{url}/gender/x"))
        .header("x-api-key", KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(status_and_json(wrong_method).await, 405);
    let unknown = c.get(format!("{url}/nope")).send().await.unwrap();
    assert_eq!(status_and_json(unknown).await, 404);
    assert_eq!(
        server
            .post("/admin/daily", json!({"date": "2026-13-01"}))
            .await
            .0,
        400
    );
    let admin_no_key = c.post(format!("{url}/admin/flush")).send().await.unwrap();
    assert_eq!(status_and_json(admin_no_key).await, 401);

    // Nothing invalid was stored.
    server.flush().await;
    assert!(curated_files(dir.path(), "curated/hits").is_empty());

    let health = c.get(format!("{url}/health")).send().await.unwrap();
    assert_eq!(
        health.json::<Value>().await.unwrap(),
        json!({"status": "ok"})
    );
    let spec: Value = c
        .get(format!("{url}/openapi.json"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(spec["paths"]["/admin/flush"].is_object());
    let console = c
        .get(format!("{url}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(console.contains("id=\"lookup-btn\""));
    // Its icon is inline, so a browser asks for no /favicon.ico.
    assert!(console.contains(r#"<link rel="icon" href="data:image/svg+xml,"#));
    // The trend charts the page draws from /metrics samples.
    assert!(console.contains(r#"id="chart-rate""#) && console.contains(r#"id="chart-lag""#));
    assert!(console.contains(r#"id="split-chart""#));
    assert!(console.contains(r#"id="site-snippet""#) && console.contains("/admin/keys/ingest"));
}

#[tokio::test]
async fn keys_are_generated_once_kept_in_the_data_dir_and_printed() {
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_gender-service"))
        .args(["serve", "--data-dir"])
        .arg(dir.path())
        .args(["--addr", &format!("127.0.0.1:{port}")])
        .env_remove("GENDER_API_KEY")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let banner: Vec<String> = std::io::BufRead::lines(std::io::BufReader::new(stdout))
        .take(9)
        .map(Result::unwrap)
        .collect();
    let kept = |file: &str| {
        let path = dir.path().join(file);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{file}");
        }
        std::fs::read_to_string(path).unwrap().trim().to_owned()
    };
    // SPEC 4's key is the admin key; the scoped keys of SPEC 18 beside it.
    let (key, ingest, read) = (kept("api-key"), kept("ingest-key"), kept("read-key"));
    for (scope, key) in [("admin", &key), ("ingest", &ingest), ("read", &read)] {
        assert_eq!(key.len(), 32);
        assert!(
            banner
                .iter()
                .any(|l| l.contains(&format!("{scope} key: {key}"))),
            "{banner:?}"
        );
    }
    assert!(
        banner
            .iter()
            .any(|l| l.contains("curl") && l.contains(&format!("x-api-key: {ingest}"))),
        "{banner:?}"
    );
    assert!(
        banner
            .iter()
            .any(|l| l.contains("tracker.js") && l.contains(&format!("data-key=\"{ingest}\""))),
        "{banner:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// Declares 5 MiB + 1 and sends only the headers: the server must answer 413
/// from the declared length without waiting for (or buffering) the body.
async fn oversized_post_status(url: &str) -> String {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let addr = url.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let request = format!(
        "POST /hits HTTP/1.1\r\nhost: {addr}\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n[",
        5 * 1024 * 1024 + 1
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut status = String::new();
    BufReader::new(stream).read_line(&mut status).await.unwrap();
    status.trim_end().to_owned()
}

#[tokio::test]
async fn generators_fill_the_local_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let run = |args: &[&str]| {
        let output = std::process::Command::new(env!("CARGO_BIN_EXE_gender-service"))
            .args(args)
            .args(["--url", &server.url, "--api-key", KEY])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).into_owned()
    };

    let out = run(&[
        "generate-dummy-data",
        "--days",
        "3",
        "--visitors",
        "12",
        "--seed",
        "7",
    ]);
    assert!(out.contains("for 12 visitors"), "{out}");
    let (status, profile) = server.get("/gender/dummy-0003").await;
    assert_eq!(status, 200);
    let hits = profile["hits"]["M"].as_u64().unwrap() + profile["hits"]["F"].as_u64().unwrap();
    assert!((15..=90).contains(&hits), "3 days of 5-30 hits: {hits}");
    assert!(
        profile["signals"]["last_7_days"].is_string(),
        "daily ran: {profile}"
    );

    let out = run(&[
        "generate-stream-data",
        "--rps",
        "200",
        "--duration",
        "2s",
        "--visitors",
        "5",
    ]);
    let sent: u64 = out
        .trim()
        .strip_prefix("sent ")
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("summary line: {out}"));
    assert!(
        sent > 0 && sent <= 420,
        "at most 2 s x 200 hits/s, plus one tick: {out}"
    );
    server.flush().await;
    let mut streamed = 0;
    for v in 0..5 {
        let (_, p) = server.get(&format!("/gender/stream-{v:05}")).await;
        streamed += p["hits"]["M"].as_u64().unwrap_or(0) + p["hits"]["F"].as_u64().unwrap_or(0);
    }
    assert_eq!(
        streamed, sent,
        "every hit the generator reports as accepted is counted"
    );

    let out = run(&["backfill", "--from", "2026-11-01", "--to", "2026-11-03"]);
    assert!(out.is_empty() || !out.contains("error"));
    let out = run(&["daily", "--date", "2026-11-03"]);
    assert!(out.contains("\"window_from\": \"2026-10-28\""), "{out}");
    let out = run(&["flush"]);
    assert!(out.contains("delivered_offset"), "{out}");
}

#[tokio::test]
async fn the_console_views_read_the_daily_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]).await;
    let today = gender_core::Date::of_millis(gender_core::time::system_now_ms());
    let (yesterday, before) = (today.add_days(-1), today.add_days(-2));
    let at = |d: gender_core::Date| format!("{d}T12:00:00Z");
    let hits = json!([
        {"clientid": "view-a", "pageGender": "M", "timestamp": at(yesterday)},
        {"clientid": "view-a", "pageGender": "M", "timestamp": at(yesterday)},
        {"clientid": "view-a", "pageGender": "F", "timestamp": at(before)},
        {"clientid": "view-b", "pageGender": "F", "timestamp": at(yesterday)},
    ]);
    let (status, body) = server.post_hits(hits.to_string(), "application/json").await;
    assert_eq!(status, 202, "{body}");
    server.flush().await;
    let (status, body) = server.post("/admin/daily", json!({})).await;
    assert_eq!(status, 200, "{body}");

    let (status, split) = server.get("/admin/split?days=3").await;
    assert_eq!(status, 200, "{split}");
    let days = split["days"].as_array().unwrap();
    // Today has no rollup yet (the job ran for yesterday): left out.
    assert_eq!(days[0]["date"], yesterday.to_string(), "newest first");
    assert_eq!(
        (
            &days[0]["hits_m"],
            &days[0]["hits_f"],
            &days[0]["visitors_m"],
            &days[0]["visitors_f"]
        ),
        (&json!(2), &json!(1), &json!(1), &json!(1))
    );
    assert_eq!(days[1]["date"], before.to_string());
    assert_eq!(days[1]["visitors_f"], 1);

    let (status, view) = server.get("/admin/visitors/view-a/days").await;
    assert_eq!(status, 200, "{view}");
    let days = view["days"].as_array().unwrap();
    assert_eq!(days.len(), 7, "the 7 dates ending today");
    assert_eq!(days[6], json!({"date": today.to_string(), "m": 0, "f": 0}));
    assert_eq!(
        days[5],
        json!({"date": yesterday.to_string(), "m": 2, "f": 0})
    );
    assert_eq!(days[4], json!({"date": before.to_string(), "m": 0, "f": 1}));

    for (path, status) in [
        ("/admin/split?days=0", 400),
        ("/admin/split?days=32", 400),
        ("/admin/split?limit=3", 400),
        ("/admin/visitors/a%20b/days", 400),
    ] {
        let (got, body) = server.get(path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert!(body["error"].is_string(), "{path}: {body}");
    }
}
