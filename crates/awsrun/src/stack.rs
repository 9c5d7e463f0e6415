//! The AWS side of the run: a moto server, the fault proxy in front of it,
//! and the resources shaped like `terraform/` (names, queues with their
//! redrive policies, buckets, the table, the stream, the Athena workgroup).
//!
//! Two SDK configurations: `faulty` goes through the proxy (what every
//! handler and the pump's own AWS calls use, as AWS's services meet the
//! same errors), `direct` goes to moto (resource creation and the checks,
//! which must see the state as it is, not a fault).

use gender_lambda::SdkTimeouts;
use gender_testkit::{FaultProxy, Moto, Rule, resources};
use std::time::Duration;

/// Resource names, as `terraform/` names them for a `gs-run` deployment.
pub mod names {
    pub const STREAM: &str = "gs-run-hits";
    pub const STREAM_ARN: &str = "arn:aws:kinesis:us-east-1:123456789012:stream/gs-run-hits";
    pub const DELIVERY_STREAM: &str = "gs-run-hits-archive";
    pub const TABLE: &str = "gs-run-profiles";
    pub const RAW_BUCKET: &str = "gs-run-raw";
    pub const CURATED_BUCKET: &str = "gs-run-curated";
    pub const BACKUP_BUCKET: &str = "gs-run-backup";
    pub const CURATE_QUEUE: &str = "gs-run-curate";
    pub const CURATE_DLQ: &str = "gs-run-curate-dlq";
    pub const ERASE_QUEUE: &str = "gs-run-erase";
    pub const ERASE_DLQ: &str = "gs-run-erase-dlq";
    pub const CONSUMER_DLQ: &str = "gs-run-consumer-dlq";
    pub const WORKGROUP: &str = "gs-run-erase";
    pub const GLUE_DATABASE: &str = "gs_run";
    /// Firehose's error prefix (terraform/modules/firehose `error_prefix`).
    pub const ERROR_PREFIX: &str = "errors/";
    pub const SHARDS: i32 = 2;
    /// `curate_max_receive_count` and `erasure_max_receive_count`.
    pub const MAX_RECEIVE_COUNT: u32 = 5;
}

/// The URLs of the queues.
#[derive(Debug, Clone)]
pub struct Queues {
    pub curate: String,
    pub curate_dlq: String,
    pub erase: String,
    pub erase_dlq: String,
    pub consumer_dlq: String,
}

pub struct Stack {
    pub moto: Moto,
    pub proxy: FaultProxy,
    /// Straight to moto: set-up and checks.
    pub direct: aws_config::SdkConfig,
    /// Through the fault proxy, with the SDK's standard retry.
    pub faulty: aws_config::SdkConfig,
    pub queues: Queues,
    pub fault_rate: f64,
}

impl Stack {
    /// moto, the proxy (faults drawn from `seed`) and every resource; the
    /// standard mix of faults at `fault_rate` plus stalled answers.
    pub async fn start(seed: u64, fault_rate: f64) -> Stack {
        let moto = Moto::start();
        let proxy = FaultProxy::start(&moto.endpoint, seed);
        let direct = moto.sdk_config().await;
        let faulty = proxy.sdk_config().await;
        let queues = create_resources(&direct).await;
        if fault_rate > 0.0 {
            for rule in Rule::standard_mix(fault_rate) {
                proxy.inject(rule);
            }
            // The lost answer: applied by AWS, never seen by the caller,
            // which retries a write that succeeded (held past every
            // function's attempt timeout).
            for (service, operation) in [
                ("kinesis", "PutRecords"),
                ("dynamodb", "UpdateItem"),
                ("s3", "PutObject"),
            ] {
                proxy.inject(
                    Rule::new(
                        service,
                        operation,
                        gender_testkit::Fault::Stall(Duration::from_secs(3)),
                    )
                    .rate(fault_rate / 5.0),
                );
            }
        }
        Stack {
            moto,
            proxy,
            direct,
            faulty,
            queues,
            fault_rate,
        }
    }

    /// A function's SDK configuration: through the proxy, with its
    /// attempt and operation timeouts (as its `main.rs` loads it).
    pub fn function_sdk(&self, timeouts: SdkTimeouts) -> aws_config::SdkConfig {
        self.faulty
            .to_builder()
            .timeout_config(
                aws_config::timeout::TimeoutConfig::builder()
                    .operation_attempt_timeout(timeouts.attempt)
                    .operation_timeout(timeouts.operation)
                    .build(),
            )
            .build()
    }

    /// Injections so far, per (fault, operation), and their total.
    pub fn injected(&self) -> (std::collections::BTreeMap<(String, String), u64>, u64) {
        (self.proxy.counts(), self.proxy.injected_total())
    }
}

async fn create_resources(sdk: &aws_config::SdkConfig) -> Queues {
    use names::*;
    let _ = resources::create_table(sdk, TABLE).await;
    aws_sdk_kinesis::Client::new(sdk)
        .create_stream()
        .stream_name(STREAM)
        .shard_count(SHARDS)
        .send()
        .await
        .expect("create the stream");
    let s3 = gender_aws::s3::client(sdk);
    for bucket in [RAW_BUCKET, CURATED_BUCKET, BACKUP_BUCKET] {
        resources::create_bucket(&s3, bucket).await;
    }
    let (sqs, curate_dlq) = resources::create_queue(sdk, CURATE_DLQ).await;
    let (_, erase_dlq) = resources::create_queue(sdk, ERASE_DLQ).await;
    let (_, consumer_dlq) = resources::create_queue(sdk, CONSUMER_DLQ).await;
    let curate = queue_with_dlq(&sqs, CURATE_QUEUE, &curate_dlq).await;
    let erase = queue_with_dlq(&sqs, ERASE_QUEUE, &erase_dlq).await;
    aws_sdk_athena::Client::new(sdk)
        .create_work_group()
        .name(WORKGROUP)
        .configuration(
            aws_sdk_athena::types::WorkGroupConfiguration::builder()
                .result_configuration(
                    aws_sdk_athena::types::ResultConfiguration::builder()
                        .output_location(format!("s3://{CURATED_BUCKET}/athena-results/erase/"))
                        .build(),
                )
                .enforce_work_group_configuration(true)
                .build(),
        )
        .send()
        .await
        .expect("create the Athena workgroup");
    Queues {
        curate,
        curate_dlq,
        erase,
        erase_dlq,
        consumer_dlq,
    }
}

/// A queue whose messages move to `dlq` after `MAX_RECEIVE_COUNT`
/// receives (terraform/modules/curate_trigger, erase_queue).
async fn queue_with_dlq(sqs: &aws_sdk_sqs::Client, name: &str, dlq_url: &str) -> String {
    let dlq_arn = sqs
        .get_queue_attributes()
        .queue_url(dlq_url)
        .attribute_names(aws_sdk_sqs::types::QueueAttributeName::QueueArn)
        .send()
        .await
        .expect("the DLQ's attributes")
        .attributes
        .and_then(|a| {
            a.get(&aws_sdk_sqs::types::QueueAttributeName::QueueArn)
                .cloned()
        })
        .expect("the DLQ's ARN");
    let redrive = serde_json::json!({
        "deadLetterTargetArn": dlq_arn,
        "maxReceiveCount": names::MAX_RECEIVE_COUNT,
    })
    .to_string();
    sqs.create_queue()
        .queue_name(name)
        .attributes(
            aws_sdk_sqs::types::QueueAttributeName::RedrivePolicy,
            redrive,
        )
        .send()
        .await
        .expect("create a queue")
        .queue_url
        .expect("a queue URL")
}
