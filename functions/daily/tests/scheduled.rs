//! The daily Lambda's handler with the scheduled and the manual event, over
//! S3 and DynamoDB in moto server.

use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::s3::S3ObjectStore;
use gender_core::ports::{ObjectStore, ProfileReader};
use gender_core::{Gender, Hit};
use gender_daily::{Config, Daily};
use gender_testkit::{Moto, resources};

const SCHEDULED: &str = "eventbridge-scheduled.json";
const MANUAL: &str = "daily-manual.json";

#[tokio::test]
async fn scheduled_and_manual_runs_set_the_window_and_write_rollups() {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let s3 = gender_aws::s3::client(&sdk);
    resources::create_bucket(&s3, "gs-test-curated").await;
    let dynamo = resources::create_table(&sdk, "gs-test-profiles").await;
    let profiles = DynamoProfiles::new(dynamo.clone(), "gs-test-profiles");
    let curated = S3ObjectStore::new(s3.clone(), "gs-test-curated");

    // Curated hits on 2026-11-20 and counters for them, as curate leaves them.
    let at = gender_core::time::parse_rfc3339_millis("2026-11-20T10:00:00Z").unwrap();
    let hits: Vec<Hit> = [Gender::M, Gender::M, Gender::F]
        .into_iter()
        .map(|gender| Hit {
            clientid: "visitor-1".into(),
            gender,
            event_ms: at,
            hitid: None,
        })
        .collect();
    let key = "curated/hits/dt=2026-11-20/x.parquet";
    curated
        .put(
            key,
            gender_pipeline::codec::encode_hits(&hits.iter().collect::<Vec<_>>(), key).unwrap(),
        )
        .await
        .unwrap();
    for delta in gender_core::aggregate_hits(&hits) {
        resources::put_profile(
            &dynamo,
            "gs-test-profiles",
            &delta.clientid,
            (delta.m, delta.f),
            delta.last_gender.as_str(),
            delta.last_seen_ms,
        )
        .await;
    }

    let daily = Daily::new(
        Config {
            curated_bucket: "gs-test-curated".into(),
            table_name: "gs-test-profiles".into(),
        },
        &sdk,
    );
    let summary = daily
        .handle(&serde_json::from_str(&gender_testkit::fixture(SCHEDULED)).unwrap())
        .await
        .unwrap();
    assert_eq!(
        (summary.date.as_str(), summary.window_from.as_str()),
        ("2026-11-23", "2026-11-17")
    );
    assert_eq!(summary.visitors_in_window, 1);
    let window = profiles
        .get_profile("visitor-1")
        .await
        .unwrap()
        .unwrap()
        .window
        .unwrap();
    assert_eq!((window.m, window.f), (2, 1));
    let rollups = curated.list("curated/daily/").await.unwrap();
    assert_eq!(rollups.len(), 7, "one rollup per date of the window");

    let again = daily
        .handle(&serde_json::from_str(&gender_testkit::fixture(MANUAL)).unwrap())
        .await
        .unwrap();
    assert_eq!(
        again, summary,
        "a re-run of the same date gives identical results"
    );

    let later = daily
        .handle(&serde_json::json!({"date": "2026-12-31"}))
        .await
        .unwrap();
    assert_eq!(later.signals_cleared, 1);
    assert_eq!(
        profiles
            .get_profile("visitor-1")
            .await
            .unwrap()
            .unwrap()
            .window,
        None
    );
}
