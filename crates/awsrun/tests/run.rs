//! The AWS-shaped end-to-end run (docs/DEPLOY.md, "The AWS-shaped run").
//! `scripts/test` runs it under its own heading:
//!
//! ```text
//! scripts/build-debug
//! cargo test --workspace --test run -- --ignored --nocapture
//! ```
//!
//! Environment: `AWSRUN_FAULT_RATE` (0.05), `AWSRUN_SEED` (1),
//! `AWSRUN_VISITORS` (150), `AWSRUN_REQUESTS` (300), `AWSRUN_PROBES` (40).

use gender_aws::athena::AthenaQueries;
use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::erasure::{CuratedObjects, ErasureLog};
use gender_aws::s3::S3ObjectStore;
use gender_awsrun::archive;
use gender_awsrun::checks::{self, require};
use gender_awsrun::local::LocalService;
use gender_awsrun::pump::athena::AthenaFront;
use gender_awsrun::pump::esm::{Esm, EsmConfig};
use gender_awsrun::pump::firehose::Firehose;
use gender_awsrun::pump::s3events::S3Events;
use gender_awsrun::pump::sqs::{self, Handler, SqsTrigger, TriggerConfig};
use gender_awsrun::pump::{Stop, schedule};
use gender_awsrun::stack::{Stack, names};
use gender_awsrun::traffic::{Traffic, TrafficConfig};
use gender_awsrun::{freshness, http, send};
use gender_core::Date;
use gender_core::seen_set::Horizon;
use gender_testkit::{Fault, Rule};
use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

mod poison {
    use base64::Engine;
    use gender_awsrun::archive;
    use gender_awsrun::stack::names;

    /// Not a hit record: not JSON, a hit without its gender, a packed
    /// record with one good and one bad line.
    const RECORDS: [&str; 3] = [
        "not a hit at all",
        r#"{"clientid":"poison-1","timestamp":"2026-11-20T10:00:00Z"}"#,
        "{\"clientid\":\"poison-2\",\"pageGender\":\"F\",\"hitid\":\"p2\"}\n{\"clientid\":\"poison-2\",\"pageGender\":7}",
    ];

    pub async fn put(kinesis: &aws_sdk_kinesis::Client) -> Vec<Vec<u8>> {
        for (i, data) in RECORDS.iter().enumerate() {
            kinesis
                .put_record()
                .stream_name(names::STREAM)
                .partition_key(format!("poison-{i}"))
                .data(aws_sdk_kinesis::primitives::Blob::new(data.as_bytes()))
                .send()
                .await
                .expect("PutRecord straight to moto");
        }
        RECORDS.iter().map(|r| r.as_bytes().to_vec()).collect()
    }

    fn decoded(value: &serde_json::Value) -> Option<Vec<u8>> {
        base64::engine::general_purpose::STANDARD
            .decode(value.as_str()?)
            .ok()
    }

    /// Each poison record is in an error object (as its `rawData`) and in a
    /// message of the consumer's dead-letter queue (as its `data`).
    pub async fn check(
        poison: &[Vec<u8>],
        s3: &aws_sdk_s3::Client,
        sqs: &aws_sdk_sqs::Client,
        consumer_dlq: &str,
    ) -> Vec<String> {
        let mut failed = Vec::new();
        for key in archive::list(s3, names::RAW_BUCKET, names::ERROR_PREFIX).await {
            let bytes = archive::get(s3, names::RAW_BUCKET, &key).await;
            for line in bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                let line: serde_json::Value =
                    serde_json::from_slice(line).expect("an error record is JSON");
                failed.extend(decoded(&line["rawData"]));
            }
        }
        let mut parked = Vec::new();
        loop {
            let bodies = gender_testkit::resources::queued_bodies(sqs, consumer_dlq).await;
            if bodies.is_empty() {
                break;
            }
            for body in bodies {
                let message: serde_json::Value =
                    serde_json::from_str(&body).expect("a dead letter is JSON");
                parked.extend(decoded(&message["data"]));
            }
        }
        let mut problems = Vec::new();
        for record in poison {
            let text = String::from_utf8_lossy(record);
            if !failed.contains(record) {
                problems.push(format!("{text:?} is not in Firehose's error prefix"));
            }
            if !parked.contains(record) {
                problems.push(format!(
                    "{text:?} is not in the consumer's dead-letter queue"
                ));
            }
        }
        println!(
            "poison: {} records; {} in the error prefix, {} dead letters of the consumer",
            poison.len(),
            failed.len(),
            parked.len()
        );
        problems
    }
}

fn env<T: std::str::FromStr>(name: &str, default: T) -> T {
    match std::env::var(name) {
        Ok(text) => text
            .parse()
            .unwrap_or_else(|_| panic!("{name}={text:?} is not a valid value")),
        Err(_) => default,
    }
}

/// Waits for `done`, failing the run with `what` after `limit`.
async fn wait_for(what: &str, limit: Duration, mut done: impl AsyncFnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !done().await {
        assert!(
            Instant::now() < deadline,
            "{what}: not done within {limit:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The visibility timeout of the run's queues (AWS: 6 x the function's
/// timeout; here short, so a failed message comes back within the run).
const VISIBILITY: Duration = Duration::from_secs(4);

/// `DAILY_WRITES_PER_SECOND` of the run's daily function.
const DAILY_WRITES_PER_SECOND: u32 = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "minutes long: scripts/test runs it under its own heading"]
async fn aws_shaped_run() {
    let fault_rate: f64 = env("AWSRUN_FAULT_RATE", 0.05);
    let seed: u64 = env("AWSRUN_SEED", 1);
    let probes: usize = env("AWSRUN_PROBES", 40);
    let started = Instant::now();
    println!("AWS-shaped run: seed {seed}, fault rate {fault_rate}");

    let stack = Stack::start(seed, fault_rate).await;
    let direct_s3 = gender_aws::s3::client(&stack.direct);
    let direct_sqs = aws_sdk_sqs::Client::new(&stack.direct);
    let aws = http::serve(&stack).await;
    let local = LocalService::start().await;
    let stop = Stop::default();

    // Kinesis -> event source mapping -> the stream consumer.
    let esm = Esm::start(
        stack.faulty.clone(),
        stack.function_sdk(gender_consumer::SDK_TIMEOUTS),
        gender_consumer::Config {
            table_name: names::TABLE.into(),
            dead_letter_queue_url: stack.queues.consumer_dlq.clone(),
            dedup_horizon: Horizon::from_seconds(3600),
        },
        EsmConfig {
            batch_size: 1000,
            max_retries: 10,
            redeliver_rate: fault_rate,
            seed,
            on_failure_queue: stack.queues.consumer_dlq.clone(),
        },
        stop.clone(),
    );

    // Kinesis -> Firehose (transform) -> raw/ -> S3 event -> curate queue.
    let events = S3Events::new(
        aws_sdk_sqs::Client::new(&stack.faulty),
        &stack.queues.curate,
        fault_rate,
        seed,
    );
    let (firehose, _firehose_task) = Firehose::start(
        aws_sdk_kinesis::Client::new(&stack.faulty),
        gender_aws::s3::client(&stack.faulty),
        events.clone(),
        stop.clone(),
    )
    .await;

    // The curate queue -> curate.
    let curate = Arc::new(gender_curate::Curate::new(
        gender_curate::Config {
            curated_bucket: names::CURATED_BUCKET.into(),
            keep_raw: true,
            dedup_horizon: Horizon::from_seconds(3600),
        },
        &stack.function_sdk(gender_curate::SDK_TIMEOUTS),
    ));
    let curate_handler: Handler = Arc::new(move |event| {
        let curate = curate.clone();
        Box::pin(async move { curate.handle(event).await })
    });
    let (curate_trigger, _curate_task) = SqsTrigger::start(
        aws_sdk_sqs::Client::new(&stack.faulty),
        TriggerConfig {
            queue_url: stack.queues.curate.clone(),
            queue_arn: sqs::arn(&direct_sqs, &stack.queues.curate).await,
            batch_size: 5,
            visibility: VISIBILITY,
        },
        curate_handler,
        stop.clone(),
    );
    // The erase queue -> erase, its Athena queries answered by the front.
    let athena = AthenaFront::start(
        &stack.proxy.endpoint,
        &stack.moto.endpoint,
        direct_s3.clone(),
    )
    .await;
    let erase_sdk = stack.function_sdk(gender_erase::SDK_TIMEOUTS);
    let erase = Arc::new(gender_erase::Erase::from_parts(
        ErasureLog::new(aws_sdk_dynamodb::Client::new(&erase_sdk), names::TABLE),
        AthenaQueries::new(
            aws_sdk_athena::Client::from_conf(
                aws_sdk_athena::config::Builder::from(&erase_sdk)
                    .endpoint_url(&athena.endpoint)
                    .build(),
            ),
            names::WORKGROUP,
            names::GLUE_DATABASE,
        )
        .with_poll(Duration::from_millis(100)),
        CuratedObjects::new(gender_aws::s3::client(&erase_sdk), names::CURATED_BUCKET),
    ));
    let erase_handler: Handler = Arc::new(move |event| {
        let erase = erase.clone();
        Box::pin(async move {
            erase
                .handle(event, Instant::now() + Duration::from_secs(900))
                .await
        })
    });
    let (erase_trigger, _erase_task) = SqsTrigger::start(
        aws_sdk_sqs::Client::new(&stack.faulty),
        TriggerConfig {
            queue_url: stack.queues.erase.clone(),
            queue_arn: sqs::arn(&direct_sqs, &stack.queues.erase).await,
            batch_size: 10,
            visibility: VISIBILITY,
        },
        erase_handler,
        stop.clone(),
    );

    // The traffic, to both deployments; probes timed meanwhile.
    let today = Date::of_millis(gender_core::time::system_now_ms());
    let traffic = Traffic::generate(
        &TrafficConfig {
            seed,
            visitors: env("AWSRUN_VISITORS", 150),
            requests: env("AWSRUN_REQUESTS", 300),
            days: 4,
            producer_ids: 0.5,
            resent: 0.3,
        },
        today,
    );
    let resent = traffic.requests.iter().filter(|r| r.resend).count();
    println!(
        "traffic: {} requests ({resent} resent), {} hits sent, {} visitors, dates {}..={}",
        traffic.requests.len(),
        traffic.hits_sent(),
        traffic.visitors().len(),
        traffic.first_date,
        traffic.today
    );
    // Meanwhile an S3 read outage (SlowDown on every GetObject) lasts
    // until curate has given up on a message (maxReceiveCount receives,
    // each after the visibility timeout): the redrive below brings it back.
    let outage = async {
        if fault_rate == 0.0 {
            return 0;
        }
        stack
            .proxy
            .inject(Rule::new("s3", "GetObject", Fault::SlowDown));
        wait_for(
            "(g) curate giving up on a message during the S3 outage",
            Duration::from_secs(180),
            async || sqs::waiting(&direct_sqs, &stack.queues.curate_dlq).await > 0,
        )
        .await;
        stack
            .proxy
            .inject(Rule::new("s3", "GetObject", Fault::SlowDown).rate(0.0));
        sqs::waiting(&direct_sqs, &stack.queues.curate_dlq).await
    };
    let (aws_sent, local_sent, loaded, dead_lettered) = tokio::join!(
        send::send_all(&aws, &traffic),
        send::send_all(&local.api, &traffic),
        freshness::probe(&aws, &local.api, probes / 2, seed, "loaded"),
        outage,
    );
    println!(
        "sent: AWS {} requests ({} sent again after a non-202), local {} ({})",
        aws_sent.requests, aws_sent.retried, local_sent.requests, local_sent.retried
    );
    // Records the http function never writes (another producer's, or a
    // bug's), put straight into the stream: the transform fails them into
    // Firehose's error prefix and the consumer parks them in its
    // dead-letter queue; neither path blocks on them or counts them.
    let poison = poison::put(&aws_sdk_kinesis::Client::new(&stack.direct)).await;
    local.flush().await;
    let quiet = async || {
        esm.idle() && firehose.idle() && sqs::waiting(&direct_sqs, &stack.queues.curate).await == 0
    };
    wait_for(
        "the pump delivering everything (stream read, Firehose buffers written, curate queue empty)",
        Duration::from_secs(240),
        quiet,
    )
    .await;

    // The same probes on the quiet stack: the pump's polling and our code.
    let quiet_probes = freshness::probe(&aws, &local.api, probes - probes / 2, seed, "quiet").await;
    local.flush().await;

    let mut expected = traffic.expected();
    for probe in loaded.visitors.iter().chain(&quiet_probes.visitors) {
        expected.insert(probe.clone(), (1, 0));
    }
    require(
        "poison records in Firehose's error prefix and the consumer's dead-letter queue",
        &poison::check(&poison, &direct_s3, &direct_sqs, &stack.queues.consumer_dlq).await,
    );
    require(
        "(a) every hit answered 202 counted exactly once",
        &checks::counted_once(&aws, &expected).await,
    );
    require(
        "(c) GET /gender on AWS equals the local deployment's, visitor by visitor",
        &checks::same_answers(&aws, &local.api, expected.keys()).await,
    );

    // The DLQ redrive: what curate gave up on comes back, once.
    let redriven = sqs::redrive(&direct_sqs, &stack.queues.curate_dlq, &stack.queues.curate).await;
    wait_for(
        "curate after the DLQ redrive",
        Duration::from_secs(120),
        async || sqs::waiting(&direct_sqs, &stack.queues.curate).await == 0,
    )
    .await;
    require(
        "(b) the curated Parquet holds one row per counted hit (after the DLQ redrive)",
        &checks::one_row_per_hit(
            &archive::curated_rows(&direct_s3, names::CURATED_BUCKET).await,
            &expected,
        ),
    );

    // (d) An erasure, then a redelivery of the raw objects that held the visitor.
    let victim = checks::most_archived(&direct_s3, &expected).await;
    let (victim, raw_keys) = (victim.0, victim.1);
    println!("erasing {victim} (in {} raw objects)", raw_keys.len());
    let aws_erasure = checks::erase(&aws, &victim).await;
    let local_erasure = checks::erase(&local.api, &victim).await;
    local.flush().await;
    wait_for(
        "(d) the AWS erasure completing",
        Duration::from_secs(180),
        async || checks::erasure_complete(&aws, &aws_erasure).await,
    )
    .await;
    wait_for(
        "(d) the local erasure completing",
        Duration::from_secs(120),
        async || {
            local.flush().await;
            checks::erasure_complete(&local.api, &local_erasure).await
        },
    )
    .await;
    let erased = |when: &'static str| {
        let (direct_s3, aws, local, victim) = (&direct_s3, &aws, &local, &victim);
        async move {
            let rows = archive::curated_rows(direct_s3, names::CURATED_BUCKET).await;
            require(when, &checks::erased(aws, &local.api, victim, &rows).await);
        }
    };
    erased("(d) the erased visitor is gone").await;
    let before = curate_trigger.stats.lock().unwrap().messages;
    let resent_notifications: Vec<String> = events
        .sent
        .lock()
        .unwrap()
        .iter()
        .filter(|n| raw_keys.contains(&n.key))
        .map(|n| n.body.clone())
        .collect();
    for body in &resent_notifications {
        events.send(body).await;
    }
    wait_for(
        "(d) curate taking the redelivered notifications",
        Duration::from_secs(120),
        async || {
            curate_trigger.stats.lock().unwrap().messages
                >= before + resent_notifications.len() as u64
                && sqs::waiting(&direct_sqs, &stack.queues.curate).await == 0
        },
    )
    .await;
    erased("(d) the erased visitor stays gone after its raw objects' redelivery").await;
    expected.remove(&victim);

    // (e) The daily job for today, on both, with the faults still on.
    let daily_sdk = stack.function_sdk(gender_daily::SDK_TIMEOUTS);
    let continuations = Arc::new(schedule::Continuations::default());
    let daily = gender_daily::Daily::with_ports(
        S3ObjectStore::new(gender_aws::s3::client(&daily_sdk), names::CURATED_BUCKET),
        DynamoProfiles::new(aws_sdk_dynamodb::Client::new(&daily_sdk), names::TABLE)
            .with_backoff(gender_daily::WRITE_BACKOFF),
        continuations.clone(),
        // Paced so that the run's few hundred windows outlast one
        // invocation's slice: the job continues in new invocations, the
        // path a run at scale takes.
        NonZeroU32::new(DAILY_WRITES_PER_SECOND).expect("positive"),
    );
    let outcome = schedule::fire(&daily, &continuations, today).await;
    println!(
        "daily (AWS): {} invocations ({} continuations, {} retried after an error): {}",
        outcome.invocations,
        outcome.continuations,
        outcome.retries,
        serde_json::to_string(&outcome.reply).unwrap_or_default()
    );
    assert!(
        matches!(outcome.reply, gender_daily::DailyReply::Complete(_)),
        "(e) the daily job did not complete: {:?}",
        outcome.reply
    );
    let (status, local_daily) = local
        .api
        .post(
            "/admin/daily",
            serde_json::json!({"date": today.to_string()}),
        )
        .await;
    assert_eq!(status, 200, "(e) the local daily job: {local_daily}");
    println!("daily (local): {local_daily}");
    let aws_daily = serde_json::to_value(&outcome.reply).expect("the reply is JSON");
    for field in ["window_from", "window_to", "rollups"] {
        assert_eq!(
            aws_daily[field], local_daily[field],
            "(e) the daily job's {field} on AWS differs from local's"
        );
    }
    require(
        "(e) after the daily job, GET /gender (the 7-day windows) on AWS equals local's",
        &checks::same_answers(&aws, &local.api, expected.keys()).await,
    );

    stop.stop();
    let (counts, total) = stack.injected();
    println!("--- the pump");
    println!(
        "event source mapping: {:?}",
        esm.stats.lock().unwrap().clone()
    );
    println!("firehose: {:?}", firehose.stats.lock().unwrap().clone());
    println!("s3 events: {:?}", events.stats.lock().unwrap().clone());
    println!(
        "curate trigger: {:?}",
        curate_trigger.stats.lock().unwrap().clone()
    );
    println!(
        "curate DLQ: {dead_lettered} messages given up on during the S3 outage, {redriven} redriven"
    );
    println!(
        "erase trigger: {:?}",
        erase_trigger.stats.lock().unwrap().clone()
    );
    println!("athena: {:?}", athena.stats.lock().unwrap().clone());
    println!("--- (g) faults injected: {total}");
    let mut per_kind: BTreeMap<String, u64> = BTreeMap::new();
    for ((fault, operation), n) in &counts {
        println!("  {fault:<30} {operation:<22} {n}");
        *per_kind.entry(fault.clone()).or_default() += n;
    }
    println!("  per kind: {per_kind:?}");
    println!("--- (f) 202 -> changed GET /gender, the mapping polling each shard every 1 s");
    println!("while the traffic runs: {}", loaded.summary());
    println!("on the quiet stack:     {}", quiet_probes.summary());
    if fault_rate > 0.0 {
        assert!(
            total > 0,
            "(g) the fault rate is {fault_rate} but the proxy injected nothing"
        );
        let stats = curate_trigger.stats.lock().unwrap().clone();
        assert!(
            stats.redelivered > 0 && redriven > 0,
            "the run should have redelivered a curate message after a failure and redriven \
             one from the DLQ: {stats:?}, {redriven} redriven"
        );
    }
    println!("run took {:.1} s", started.elapsed().as_secs_f64());
}
