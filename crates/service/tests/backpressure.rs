//! Backpressure end to end (SPEC 14): ingest driven past the backlog bound
//! of a real server gets 503 + Retry-After with nothing stored, the backlog
//! stays near its bound, and every hit that got a 202 is counted once.

mod common;

use common::Server;
use serde_json::{Value, json};

const BOUND: u64 = 200_000;

fn log_bytes(data_dir: &std::path::Path) -> u64 {
    std::fs::read_dir(data_dir.join("log"))
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().ends_with(".seg"))
        .map(|e| e.metadata().unwrap().len())
        .sum()
}

#[tokio::test]
async fn past_the_backlog_bound_ingest_gets_503_and_nothing_accepted_is_lost() {
    let dir = tempfile::tempdir().unwrap();
    // Delivery only on flush, so the backlog grows until the bound.
    let bound = BOUND.to_string();
    let args = [
        "--max-backlog-bytes",
        bound.as_str(),
        "--flush-interval-ms",
        "3600000",
        "--buffer-bytes",
        "1000000000",
        // Refused at once: with delivery off, waiting for room is waiting
        // for nothing (the wait itself is tested in local::admission).
        "--ingest-room-wait-ms",
        "0",
    ];
    let server = Server::start(dir.path(), &args).await;
    let mut accepted = 0u64;
    let mut refused = 0;
    for request in 0..200 {
        let hits: Vec<Value> = (0..100)
            .map(|i| json!({"clientid": format!("bp-{}", (request * 100 + i) % 37), "pageGender": "M"}))
            .collect();
        let response = server
            .client
            .post(format!("{}/hits", server.url))
            .header("x-api-key", common::KEY)
            .json(&hits)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let retry_after = response.headers().get("retry-after").cloned();
        let body: Value = response.json().await.unwrap();
        match status {
            202 => accepted += body["accepted"].as_u64().unwrap(),
            503 => {
                refused += 1;
                assert!(retry_after.is_some(), "503 without Retry-After: {body}");
                assert!(body["error"].as_str().unwrap().contains("behind"), "{body}");
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(refused > 0, "the bound was never reached");
    // The backlog stayed bounded: at most the bound plus one request's hits
    // (100 records of under 200 bytes each, framing and assigned hitid included).
    assert!(
        log_bytes(dir.path()) < BOUND + 100 * 200,
        "log grew to {} bytes",
        log_bytes(dir.path())
    );
    let (status, health) = server.get("/health").await;
    assert_eq!(status, 503, "{health}");
    assert!(health.to_string().contains("behind"), "{health}");
    assert_eq!(
        server.metric("gender_ingest_refused_total").await,
        refused as f64
    );
    assert!(server.metric("gender_backlog_bytes").await >= BOUND as f64);

    // Curate catches up: everything accepted is counted once, ingest reopens.
    server.flush().await;
    let mut counted = 0;
    for v in 0..37 {
        let (status, body) = server.get(&format!("/gender/bp-{v}")).await;
        assert_eq!(status, 200, "{body}");
        counted += body["hits"]["M"].as_u64().unwrap();
    }
    assert_eq!(counted, accepted);
    assert_eq!(server.get("/health").await.0, 200);
    let (status, body) = server
        .post_hits(
            json!({"clientid": "bp-0", "pageGender": "F"}).to_string(),
            "application/json",
        )
        .await;
    assert_eq!(status, 202, "{body}");
}
