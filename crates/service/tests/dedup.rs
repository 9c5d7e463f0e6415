//! Deduplication end to end (SPEC 15) against the real binary: a request
//! sent twice, one `hitid` in two batches, duplicates inside one batch and a
//! resend after a restart are each counted once, and the curated Parquet
//! holds one row per identity. Hits without a `hitid` get one assigned and
//! are never merged with each other.

mod common;

use common::{Server, curated_files};
use serde_json::{Value, json};
use std::collections::HashMap;

fn hit(clientid: &str, gender: &str, hitid: Option<&str>) -> Value {
    let mut hit = json!({"clientid": clientid, "pageGender": gender});
    if let Some(id) = hitid {
        hit["hitid"] = json!(id);
    }
    hit
}

async fn post(server: &Server, hits: Vec<Value>) {
    let n = hits.len();
    let (status, body) = server
        .post_hits(Value::Array(hits).to_string(), "application/json")
        .await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], n, "{body}");
}

async fn counts(server: &Server, clientid: &str) -> (u64, u64) {
    let (status, body) = server.get(&format!("/gender/{clientid}")).await;
    assert_eq!(status, 200, "{body}");
    (
        body["hits"]["M"].as_u64().unwrap(),
        body["hits"]["F"].as_u64().unwrap(),
    )
}

/// Rows per (clientid, hit_id) over every curated file.
fn rows_by_identity(server: &Server) -> HashMap<(String, Option<String>), usize> {
    let mut rows = HashMap::new();
    for (_, hits) in curated_files(&server.data_dir, "curated/hits") {
        for hit in hits {
            *rows
                .entry((hit.clientid.into_owned(), hit.hitid.map(|h| h.into_owned())))
                .or_default() += 1;
        }
    }
    rows
}

/// A delivery interval of an hour: only `POST /admin/flush` delivers.
const ONLY_FLUSH_DELIVERS: &[&str] = &["--flush-interval-ms", "3600000"];

#[tokio::test]
async fn every_way_of_repeating_a_hit_counts_it_once() {
    let dir = tempfile::tempdir().unwrap();
    // No background delivery: the flushes below report what they did, so
    // they must be the ones doing all of it.
    let server = Server::start(dir.path(), ONLY_FLUSH_DELIVERS).await;

    // Duplicates inside one batch, and the same request sent twice.
    let request = vec![
        hit("dup-a", "M", Some("r1")),
        hit("dup-a", "M", Some("r1")),
        hit("dup-a", "F", Some("r2")),
    ];
    post(&server, request.clone()).await;
    post(&server, request).await;
    // The same hitid for another visitor is another hit.
    post(&server, vec![hit("dup-b", "F", Some("r1"))]).await;
    let first = server.flush().await;
    assert_eq!(first["hits_curated"], 3, "{first}");
    assert_eq!(first["hits_duplicate"], 4, "{first}");
    // The answer says what is now true, whoever did the work.
    assert_eq!(first["visible"], true, "{first}");
    let summary = first["summary"].as_str().unwrap();
    assert!(
        summary.starts_with("Every hit accepted before this call is curated and visible"),
        "{summary}"
    );
    assert!(summary.contains("4 duplicates skipped"), "{summary}");
    let idle = server.flush().await;
    assert!(
        idle["summary"]
            .as_str()
            .unwrap()
            .contains("nothing left to do"),
        "{idle}"
    );
    // The same hitid again in a later batch (a resend after a timeout),
    // next to a new one.
    post(
        &server,
        vec![hit("dup-a", "M", Some("r1")), hit("dup-a", "M", Some("r3"))],
    )
    .await;
    server.flush().await;
    assert_eq!(counts(&server, "dup-a").await, (2, 1));
    assert_eq!(counts(&server, "dup-b").await, (0, 1));
    assert_eq!(server.metric("gender_hits_duplicate_total").await, 5.0);

    // Without a hitid, identical hits are distinct hits (ids are assigned).
    let plain = vec![hit("plain", "M", None), hit("plain", "M", None)];
    post(&server, plain.clone()).await;
    post(&server, plain).await;
    server.flush().await;
    assert_eq!(counts(&server, "plain").await, (4, 0));

    let rows = rows_by_identity(&server);
    for ((clientid, hit_id), n) in &rows {
        assert_eq!(*n, 1, "{clientid} {hit_id:?} has {n} rows");
        assert!(hit_id.is_some(), "every row carries its hit_id");
    }
    let of = |c: &str| rows.keys().filter(|(id, _)| id == c).count();
    assert_eq!((of("dup-a"), of("dup-b"), of("plain")), (3, 1, 4));

    // The index is rebuilt from the state store: a resend after a restart
    // (SIGKILL, so nothing is saved on the way out) is still a duplicate.
    let data_dir = server.data_dir.clone();
    server.kill9();
    let server = Server::start(&data_dir, ONLY_FLUSH_DELIVERS).await;
    // Only producer ids are remembered (dup-a r1 r2 r3, dup-b r1): the
    // ids the server assigned itself are unique by construction.
    assert_eq!(server.metric("gender_dedup_identities").await, 4.0);
    post(&server, vec![hit("dup-a", "F", Some("r2"))]).await;
    let after = server.flush().await;
    assert_eq!(after["hits_duplicate"], 1, "{after}");
    assert_eq!(counts(&server, "dup-a").await, (2, 1));
}

#[tokio::test]
async fn a_zero_horizon_turns_deduplication_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--dedup-horizon-secs", "0"]).await;
    post(
        &server,
        vec![hit("v", "M", Some("same")), hit("v", "M", Some("same"))],
    )
    .await;
    server.flush().await;
    assert_eq!(counts(&server, "v").await, (2, 0));
}
