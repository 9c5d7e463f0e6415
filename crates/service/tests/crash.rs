//! Crash safety (SPEC 9, 15): SIGKILL the server mid-stream, restart on the
//! same data dir, and check that every hit that got a 202 is counted exactly
//! once (resends of hits with a producer hitid included) and that nothing
//! half-written is visible under curated/.

mod common;

use common::{Server, curated_files};
use serde_json::json;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const HITS_PER_REQUEST: usize = 40;

/// What happened to one request: its visitor's M and F counts, and whether a 202 came back.
#[derive(Clone, Copy, Debug)]
struct Sent {
    m: u64,
    f: u64,
    acked: bool,
}

/// Sends requests until the server dies; each request uses its own visitor,
/// so its hits must show up all together or not at all.
async fn stream_until_killed(
    server_url: String,
    round: usize,
    log: Arc<Mutex<HashMap<String, Sent>>>,
) {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let mut rng = fastrand::Rng::with_seed(round as u64);
    for request in 0.. {
        let clientid = format!("r{round}-q{request}");
        let genders: Vec<&str> = (0..HITS_PER_REQUEST)
            .map(|_| if rng.bool() { "M" } else { "F" })
            .collect();
        let m = genders.iter().filter(|g| **g == "M").count() as u64;
        // Every other request carries producer hitids and is sent twice (a
        // producer's retry): the resend must count nothing, across kills too.
        let resend = request % 2 == 1;
        let body: Vec<_> = genders
            .iter()
            .enumerate()
            .map(|(j, g)| match resend {
                true => json!({"clientid": clientid, "pageGender": g, "hitid": format!("h{j}")}),
                false => json!({"clientid": clientid, "pageGender": g}),
            })
            .collect();
        log.lock().unwrap().insert(
            clientid.clone(),
            Sent {
                m,
                f: HITS_PER_REQUEST as u64 - m,
                acked: false,
            },
        );
        // Each send is acknowledged (`true`) or the server is gone (`false`).
        let send = || async {
            match client
                .post(format!("{server_url}/hits"))
                .header("x-api-key", common::KEY)
                .json(&body)
                .send()
                .await
            {
                Ok(r) if r.status() == 202 => true,
                Ok(r) => panic!("unexpected status {}", r.status()),
                Err(_) => false,
            }
        };
        if !send().await {
            return;
        }
        log.lock().unwrap().get_mut(&clientid).unwrap().acked = true;
        if resend && !send().await {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sent: Arc<Mutex<HashMap<String, Sent>>> = Arc::default();
    let mut rng = fastrand::Rng::with_seed(42);
    // A short delivery interval, and compaction after every cycle, so kills
    // land inside delivery, curate and compaction too.
    let args = [
        "--flush-interval-ms",
        "20",
        "--compact-min-files",
        "2",
        "--compact-interval-ms",
        "0",
    ];

    for round in 0..4 {
        let server = Server::start(dir.path(), &args).await;
        let writers: Vec<_> = (0..3)
            .map(|w| {
                tokio::spawn(stream_until_killed(
                    server.url.clone(),
                    round * 10 + w,
                    sent.clone(),
                ))
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(rng.u64(300..1200))).await;
        server.kill9();
        for w in writers {
            w.await.unwrap();
        }
    }

    let server = Server::start(dir.path(), &args).await;
    server.flush().await;
    let sent = sent.lock().unwrap().clone();
    let acked = sent.values().filter(|s| s.acked).count();
    assert!(
        acked > 20,
        "the test must actually stream before the kills (acked {acked})"
    );

    let mut expected_rows = 0;
    for (clientid, s) in &sent {
        let (status, body) = server.get(&format!("/gender/{clientid}")).await;
        match status {
            200 => {
                // Stored: all of the request's hits exactly once, whether or not the 202 arrived.
                assert_eq!(body["hits"], json!({"M": s.m, "F": s.f}), "{clientid}");
                expected_rows += HITS_PER_REQUEST;
            }
            404 => assert!(!s.acked, "{clientid} got a 202 but was lost"),
            other => panic!("{clientid}: status {other}"),
        }
    }

    // curated/ holds only complete Parquet files, with exactly one row per
    // stored hit: never both a date's old files and their merge, never neither.
    let files = curated_files(dir.path(), "curated");
    let rows: usize = files.iter().map(|(_, hits)| hits.len()).sum();
    assert_eq!(rows, expected_rows);
    assert!(
        files.iter().any(|(key, _)| key.contains("/c-")),
        "compaction ran: {:?}",
        files.iter().map(|(k, _)| k).collect::<Vec<_>>()
    );
    assert!(
        !dir.path().join(".compaction").exists(),
        "leftovers of an interrupted compaction are cleared at start"
    );

    // raw/ too: every stored hit in it once (a producer's resend is in raw
    // twice, as Firehose would keep it; curate counts it once), whether its
    // object was merged by a compaction the kills interrupted or not, and
    // merges happened.
    let mut raw_hits = std::collections::HashSet::new();
    let mut merged_raw = 0;
    for file in common::files_under(&dir.path().join("raw")) {
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        if !name.ends_with(".ndjson") || name.starts_with('.') {
            continue;
        }
        merged_raw += usize::from(name.starts_with("c-"));
        let body = std::fs::read_to_string(&file).unwrap();
        for line in body.lines().filter(|l| !l.is_empty()) {
            let hit: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(hit["hitid"].is_string(), "{line}");
            raw_hits.insert((hit["clientid"].to_string(), hit["hitid"].to_string()));
        }
    }
    assert_eq!(
        raw_hits.len(),
        expected_rows,
        "distinct raw hits vs stored hits"
    );
    assert!(merged_raw > 0, "raw compaction ran");
}
