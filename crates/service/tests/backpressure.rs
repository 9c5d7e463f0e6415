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

/// Each thread of process `pid`: its name and nice value (`/proc`, Linux).
#[cfg(target_os = "linux")]
fn thread_niceness(pid: u32) -> Vec<(String, i64)> {
    let mut threads = Vec::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let Ok(stat) = std::fs::read_to_string(task.unwrap().path().join("stat")) else {
            continue; // the thread ended meanwhile
        };
        // `tid (name) state ...`: the name may hold spaces and parentheses;
        // the nice value is the 17th field after it.
        let (head, rest) = stat.rsplit_once(')').unwrap();
        let name = head.split_once('(').unwrap().1.to_owned();
        let nice = rest.split_whitespace().nth(16).unwrap().parse().unwrap();
        threads.push((name, nice));
    }
    threads
}

/// The nice values of the server's request workers, its pipeline threads
/// (delivery and its blocking threads) and its parse threads, once hits
/// went through every stage (so delivery has started its blocking threads).
#[cfg(target_os = "linux")]
async fn niceness_of_threads(extra: &[&str]) -> (Vec<i64>, Vec<i64>, Vec<i64>, Vec<(String, i64)>) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), extra).await;
    let hits: Vec<Value> = (0..200)
        .map(|i| json!({"clientid": format!("n-{}", i % 20), "pageGender": "M"}))
        .collect();
    let (status, body) = server
        .post_hits(Value::Array(hits).to_string(), "application/json")
        .await;
    assert_eq!(status, 202, "{body}");
    server.flush().await;
    let (status, profile) = server.get("/gender/n-1").await;
    assert_eq!(status, 200, "{profile}");
    let threads = thread_niceness(server.child.id());
    let of = |prefix: &str| -> Vec<i64> {
        threads
            .iter()
            .filter(|(name, _)| name.starts_with(prefix))
            .map(|&(_, nice)| nice)
            .collect()
    };
    let (workers, pipeline, parse) = (of("tokio-r"), of("delivery"), of("hits-parse"));
    assert!(
        !workers.is_empty() && pipeline.len() >= 2 && !parse.is_empty(),
        "delivery and a delivery-io thread expected: {threads:?}"
    );
    (workers, pipeline, parse, threads)
}

/// SPEC 14, lookups fast under a flood: the threads that answer requests
/// keep the server's priority, parsing hit bodies runs 10 levels below
/// them, and the pipeline (delivery, curate and their blocking threads) at
/// their priority by default or `--pipeline-niceness` levels below.
#[cfg(target_os = "linux")]
#[tokio::test]
async fn request_workers_outrank_parsing_and_the_pipeline_as_configured() {
    let (workers, pipeline, parse, threads) = niceness_of_threads(&[]).await;
    let base = workers[0];
    assert!(workers.iter().all(|&n| n == base), "{threads:?}");
    assert!(pipeline.iter().all(|&n| n == base), "{threads:?}");
    assert!(
        parse.iter().all(|&n| n == (base + 10).min(19)),
        "{threads:?}"
    );

    // The operator's choice: lookups first, the pipeline 6 levels below
    // (and its blocking threads not 6 below the delivery thread's 6).
    let (workers, pipeline, _, threads) = niceness_of_threads(&["--pipeline-niceness", "6"]).await;
    assert!(
        pipeline.iter().all(|&n| n == (workers[0] + 6).min(19)),
        "{threads:?}"
    );
}
