//! Hits spread over many event dates (SPEC 14, issue 26), through HTTP
//! against the real binary: raw/ grows with volume, not with the spread of
//! dates; each date gets one curated file; and the backlog bound counts the
//! dates waiting, so `503` engages even when the backlog is small in bytes.

mod common;

use common::{Server, files_under};
use serde_json::{Value, json};

const VISITORS: usize = 50;
const DAY_MS: i64 = 86_400_000;
/// 2000-01-01, the first date SPEC 2 accepts.
const FIRST_DAY_MS: i64 = 946_684_800_000;

/// `n` hits, the i-th on day `first_day + i`.
fn spread(first_day: usize, n: usize) -> String {
    let hits: Vec<Value> = (0..n)
        .map(|i| {
            let day = (first_day + i) as i64;
            json!({
                "clientid": format!("f-{}", (first_day + i) % VISITORS),
                "pageGender": "F",
                "timestamp": FIRST_DAY_MS + day * DAY_MS + 3_600_000,
            })
        })
        .collect();
    Value::Array(hits).to_string()
}

async fn counted(server: &Server) -> u64 {
    let mut total = 0;
    for v in 0..VISITORS {
        let (status, body) = server.get(&format!("/gender/f-{v}")).await;
        if status == 200 {
            total += body["hits"]["M"].as_u64().unwrap() + body["hits"]["F"].as_u64().unwrap();
        }
    }
    total
}

const KEEP_EVERYTHING: [&str; 10] = [
    "--flush-interval-ms",
    "3600000",
    "--buffer-bytes",
    "1000000000",
    "--retain-raw-days",
    "0",
    "--retain-curated-days",
    "0",
    "--retain-daily-days",
    "0",
];

#[tokio::test]
async fn hits_on_thousands_of_dates_make_few_raw_files_and_one_curated_file_per_date() {
    // 2,000 dates (the one-shot case had 10,000: every Parquet file
    // is fsync'ed, which a debug build on a shared machine makes slow).
    const REQUESTS: usize = 4;
    const PER_REQUEST: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &KEEP_EVERYTHING).await;
    for r in 0..REQUESTS {
        let (status, body) = server
            .post_hits(spread(r * PER_REQUEST, PER_REQUEST), "application/json")
            .await;
        assert_eq!(
            (status, body["accepted"].clone()),
            (202, json!(PER_REQUEST))
        );
    }
    let started = std::time::Instant::now();
    server.flush().await;
    let flush_took = started.elapsed();
    let dates = REQUESTS * PER_REQUEST;
    assert_eq!(counted(&server).await, dates as u64);

    let raw = files_under(&dir.path().join("raw"));
    let curated = files_under(&dir.path().join("curated/hits"));
    eprintln!(
        "{dates} dates: {} raw files, {} curated files, flush {flush_took:?}",
        raw.len(),
        curated.len()
    );
    assert!(
        raw.len() <= 100,
        "{} raw files for {dates} dates",
        raw.len()
    );
    let mut per_date = std::collections::BTreeMap::<String, usize>::new();
    for file in &curated {
        let date = file.parent().unwrap().file_name().unwrap();
        *per_date
            .entry(date.to_string_lossy().into_owned())
            .or_default() += 1;
    }
    assert_eq!(per_date.len(), dates, "one partition per date");
    assert!(
        per_date.values().all(|&n| n == 1),
        "more than one curated file for a date"
    );
}

#[tokio::test]
async fn a_cycle_of_hits_interleaved_over_hundreds_of_dates_is_one_object_and_one_file_per_date() {
    // The sustained shape of issue 26: consecutive hits on different dates,
    // each date coming back every few hits. One cycle takes them all; its
    // files must grow with the dates, not with the hits (cutting the batch
    // at a smaller date cap than the cycle's made one file per few hits,
    // and curate fell behind for good).
    const DATES: usize = 300;
    const REQUESTS: usize = 5;
    const PER_REQUEST: usize = 500;
    let dir = tempfile::tempdir().unwrap();
    let mut args = KEEP_EVERYTHING.to_vec();
    // Compaction would merge the extra files away and hide them.
    args.extend(["--compact-interval-ms", "3600000"]);
    let server = Server::start(dir.path(), &args).await;
    for r in 0..REQUESTS {
        let hits: Vec<Value> = (0..PER_REQUEST)
            .map(|i| {
                let day = ((r * PER_REQUEST + i) % DATES) as i64;
                json!({
                    "clientid": format!("f-{}", i % VISITORS),
                    "pageGender": "M",
                    "timestamp": FIRST_DAY_MS + day * DAY_MS + 3_600_000,
                })
            })
            .collect();
        let (status, body) = server
            .post_hits(Value::Array(hits).to_string(), "application/json")
            .await;
        assert_eq!(status, 202, "{body}");
    }
    let report = server.flush().await;
    assert_eq!(counted(&server).await, (REQUESTS * PER_REQUEST) as u64);
    assert_eq!(report["objects_delivered"], json!(1), "{report}");
    let curated = files_under(&dir.path().join("curated/hits"));
    assert_eq!(curated.len(), DATES, "one file per date: {report}");
    assert_eq!(
        server.metric("gender_curated_files_compacted_total").await,
        0.0
    );
}

#[tokio::test]
async fn the_backlog_bound_counts_the_dates_waiting_for_curate() {
    let dir = tempfile::tempdir().unwrap();
    let mut args = KEEP_EVERYTHING.to_vec();
    args.extend(["--max-pending-dates", "100"]);
    let server = Server::start(dir.path(), &args).await;
    let mut accepted = 0u64;
    let mut refusal = None;
    for r in 0..10 {
        let (status, body) = server
            .post_hits(spread(r * 50, 50), "application/json")
            .await;
        match status {
            202 => accepted += 50,
            503 => {
                refusal = Some(body);
                break;
            }
            other => panic!("{other}: {body}"),
        }
    }
    // A few KB of log, far below the byte bound: the dates engaged it.
    let refusal = refusal.expect("never refused with hundreds of dates waiting");
    assert!(
        refusal["error"].as_str().unwrap().contains("event dates"),
        "{refusal}"
    );
    assert_eq!(refusal["retryable"], json!(true), "{refusal}");
    assert!((100..=150).contains(&accepted), "{accepted}");
    let (status, health) = server.get("/health").await;
    assert_eq!(status, 503, "{health}");

    server.flush().await;
    assert_eq!(counted(&server).await, accepted);
    let (status, body) = server.post_hits(spread(1000, 50), "application/json").await;
    assert_eq!(status, 202, "accepted again once curated: {body}");
}

#[tokio::test]
async fn past_the_curate_delay_bound_ingest_answers_503_until_curate_catches_up() {
    // Every hit on its own date: a cycle writes a Parquet file per hit, far
    // slower than the 100 ms cycles allow, though the backlog is small in
    // bytes and in dates (the sustained case of issue 26 at its worst).
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "--flush-interval-ms",
        "100",
        "--max-curate-delay-ms",
        "100",
        "--retain-raw-days",
        "0",
        "--retain-curated-days",
        "0",
    ];
    let server = Server::start(dir.path(), &args).await;
    let mut accepted = 0u64;
    let mut refusal = None;
    // Dates from 2000-01-01 to 2025-12-31 (none in the future), again and
    // again: each cycle writes a file for every date it holds.
    for r in 0..400 {
        let (status, body) = server
            .post_hits(spread(r * 500 % 9_500, 500), "application/json")
            .await;
        match status {
            202 => accepted += 500,
            503 => {
                eprintln!("refused after {accepted} hits: {body}");
                refusal = Some(body);
                break;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let refusal = refusal.expect("never refused while curate fell seconds behind");
    assert!(
        refusal["error"].as_str().unwrap().contains("has waited"),
        "{refusal}"
    );
    assert_eq!(refusal["retryable"], json!(true), "{refusal}");
    // Nothing accepted is lost, and ingest opens again once it is visible.
    server.flush().await;
    assert_eq!(counted(&server).await, accepted);
    let (status, body) = server.post_hits(spread(0, 10), "application/json").await;
    assert_eq!(status, 202, "accepted again once curated: {body}");
}

#[tokio::test]
async fn a_flush_answers_when_hits_are_visible_and_leaves_compaction_to_the_next_cycle() {
    // Merging a minute's files of thousands of dates took most of a flush
    // after a sustained spread (issue 26); a flush promises visibility only.
    let dir = tempfile::tempdir().unwrap();
    let args = [
        // The interval counts from the end of a cycle: no background cycle
        // comes between the two flushes below, one does 3 s after.
        "--flush-interval-ms",
        "3000",
        "--compact-interval-ms",
        "0",
        "--compact-min-files",
        "2",
    ];
    let server = Server::start(dir.path(), &args).await;
    for _ in 0..2 {
        let (status, body) = server.post_hits(spread(0, 20), "application/json").await;
        assert_eq!(status, 202, "{body}");
        server.flush().await;
    }
    // The second flush's cycle wrote a second file for each of the 20
    // dates: still there when it answered.
    assert_eq!(counted(&server).await, 40);
    assert_eq!(files_under(&dir.path().join("curated/hits")).len(), 40);
    assert_eq!(
        server.metric("gender_curated_files_compacted_total").await,
        0.0
    );
    // The next background cycle merges them. The files are swapped before
    // the cycle counts them in the metric: wait for both.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while files_under(&dir.path().join("curated/hits")).len() > 20
        || server.metric("gender_curated_files_compacted_total").await == 0.0
    {
        assert!(std::time::Instant::now() < deadline, "never compacted");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(files_under(&dir.path().join("curated/hits")).len(), 20);
    assert_eq!(counted(&server).await, 40);
}
