//! Seeds the visitors that "known" lookups ask for, so they really answer 200.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::CONTENT_TYPE;

use crate::{LoadTestError, Target, validate, workload};

/// Hits per seeding request: the most SPEC 3 allows.
const SEED_BATCH: u32 = 500;
/// How long a deployed stack (no flush barrier) gets to make the seeds visible.
const VISIBLE_WITHIN: Duration = Duration::from_secs(60);

/// Posts one hit for each known visitor, then waits until they can be looked up:
/// through `POST /admin/flush` on the local server, by polling elsewhere.
pub async fn seed_known_visitors(target: &Target, count: u32) -> Result<(), LoadTestError> {
    if count == 0 {
        return Ok(());
    }
    for start in (0..count).step_by(SEED_BATCH as usize) {
        let ids: Vec<String> = (start..count.min(start + SEED_BATCH))
            .map(workload::known_id)
            .collect();
        let response = target
            .post("/hits")
            .header(CONTENT_TYPE, "application/json")
            .body(workload::batch_json(&ids))
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        if status != StatusCode::ACCEPTED {
            return Err(LoadTestError::Seed(format!(
                "POST /hits answered {status}: {body}"
            )));
        }
        validate::ingest_accepted(&body, ids.len())
            .map_err(|error| LoadTestError::Seed(format!("POST /hits: {error}")))?;
    }

    let flush = target.post("/admin/flush").send().await?;
    match flush.status() {
        status if status.is_success() => Ok(()),
        // A deployed stack has no admin routes: wait for its pipeline instead.
        StatusCode::NOT_FOUND | StatusCode::METHOD_NOT_ALLOWED => {
            wait_until_visible(target, &workload::known_id(count - 1)).await
        }
        status => Err(LoadTestError::Seed(format!(
            "POST /admin/flush answered {status}: {}",
            flush.text().await.unwrap_or_default()
        ))),
    }
}

async fn wait_until_visible(target: &Target, clientid: &str) -> Result<(), LoadTestError> {
    let started = Instant::now();
    while started.elapsed() < VISIBLE_WITHIN {
        let response = target.get(&format!("/gender/{clientid}")).send().await?;
        if response.status() == StatusCode::OK {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err(LoadTestError::Seed(format!(
        "seeded visitor {clientid} not visible after {VISIBLE_WITHIN:?}"
    )))
}
