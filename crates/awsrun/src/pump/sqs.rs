//! Lambda's event source mapping on an SQS queue, with
//! `ReportBatchItemFailures` (curate's and erase's triggers): receive up
//! to `batch_size` messages with the queue's visibility timeout, invoke the
//! handler with the SQS event JSON, delete only the messages it did not
//! report; the others become visible again when the timeout ends and are
//! received again, until the queue's redrive policy (`maxReceiveCount`,
//! applied by SQS, here moto) moves them to the dead-letter queue. A
//! [`redrive`] moves a DLQ's messages back, as `StartMessageMoveTask` does.
//!
//! No long polling: the emulator serves one request at a time, so an
//! empty receive is followed by a short pause instead.

use super::Stop;
use aws_lambda_events::event::sqs::{SqsBatchResponse, SqsEvent};
use aws_sdk_sqs::types::{DeleteMessageBatchRequestEntry, MessageSystemAttributeName};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub type Handler =
    Arc<dyn Fn(SqsEvent) -> Pin<Box<dyn Future<Output = SqsBatchResponse> + Send>> + Send + Sync>;

#[derive(Debug, Clone)]
pub struct TriggerConfig {
    pub queue_url: String,
    pub queue_arn: String,
    pub batch_size: i32,
    /// The run's visibility timeout (AWS's is 6 x the function's timeout).
    pub visibility: Duration,
}

#[derive(Debug, Default, Clone)]
pub struct TriggerStats {
    pub invocations: u64,
    pub messages: u64,
    /// Messages the handler reported as failed (left for SQS to redeliver).
    pub failed: u64,
    /// Messages received more than once.
    pub redelivered: u64,
    pub deleted: u64,
}

pub struct SqsTrigger {
    pub stats: Arc<Mutex<TriggerStats>>,
}

impl SqsTrigger {
    pub fn start(
        sqs: aws_sdk_sqs::Client,
        config: TriggerConfig,
        handler: Handler,
        stop: Stop,
    ) -> (SqsTrigger, tokio::task::JoinHandle<()>) {
        let stats = Arc::new(Mutex::new(TriggerStats::default()));
        let task = tokio::spawn(run(sqs, config, handler, stats.clone(), stop));
        (SqsTrigger { stats }, task)
    }
}

async fn run(
    sqs: aws_sdk_sqs::Client,
    config: TriggerConfig,
    handler: Handler,
    stats: Arc<Mutex<TriggerStats>>,
    stop: Stop,
) {
    while !stop.stopped() {
        let received = sqs
            .receive_message()
            .queue_url(&config.queue_url)
            .max_number_of_messages(config.batch_size)
            .visibility_timeout(config.visibility.as_secs() as i32)
            .message_system_attribute_names(MessageSystemAttributeName::All)
            .send()
            .await;
        let messages = match received {
            Ok(out) => out.messages.unwrap_or_default(),
            Err(_) => Vec::new(),
        };
        if messages.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        }
        let records: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| {
                let attributes: serde_json::Map<String, serde_json::Value> = m
                    .attributes()
                    .map(|a| {
                        a.iter()
                            .map(|(k, v)| (k.as_str().to_owned(), v.clone().into()))
                            .collect()
                    })
                    .unwrap_or_default();
                serde_json::json!({
                    "messageId": m.message_id(),
                    "receiptHandle": m.receipt_handle(),
                    "body": m.body(),
                    "attributes": attributes,
                    "messageAttributes": {},
                    "md5OfBody": m.md5_of_body(),
                    "eventSource": "aws:sqs",
                    "eventSourceARN": config.queue_arn,
                    "awsRegion": "us-east-1",
                })
            })
            .collect();
        let redelivered = messages
            .iter()
            .filter(|m| {
                m.attributes()
                    .and_then(|a| a.get(&MessageSystemAttributeName::ApproximateReceiveCount))
                    .and_then(|n| n.parse::<u32>().ok())
                    .is_some_and(|n| n > 1)
            })
            .count();
        let event: SqsEvent = serde_json::from_value(serde_json::json!({ "Records": records }))
            .expect("the mapping's event is an SQS event");
        let response = handler(event).await;
        let failed: Vec<&str> = response
            .batch_item_failures
            .iter()
            .map(|f| f.item_identifier.as_str())
            .collect();
        let done: Vec<DeleteMessageBatchRequestEntry> = messages
            .iter()
            .enumerate()
            .filter(|(_, m)| !failed.contains(&m.message_id().unwrap_or_default()))
            .map(|(i, m)| {
                DeleteMessageBatchRequestEntry::builder()
                    .id(i.to_string())
                    .receipt_handle(m.receipt_handle().unwrap_or_default())
                    .build()
                    .expect("an entry")
            })
            .collect();
        let deleted = done.len();
        if !done.is_empty() {
            // A delete that fails leaves the message to be received again:
            // at-least-once, as on AWS.
            let _ = sqs
                .delete_message_batch()
                .queue_url(&config.queue_url)
                .set_entries(Some(done))
                .send()
                .await;
        }
        let mut stats = stats.lock().unwrap();
        stats.invocations += 1;
        stats.messages += messages.len() as u64;
        stats.failed += failed.len() as u64;
        stats.redelivered += redelivered as u64;
        stats.deleted += deleted as u64;
    }
}

/// Messages in `queue_url`, visible or in flight (straight from the
/// emulator, for the run's waits).
pub async fn waiting(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> u64 {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    let out = sqs
        .get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(A::ApproximateNumberOfMessages)
        .attribute_names(A::ApproximateNumberOfMessagesNotVisible)
        .send()
        .await
        .expect("queue attributes");
    let attributes = out.attributes.unwrap_or_default();
    [
        A::ApproximateNumberOfMessages,
        A::ApproximateNumberOfMessagesNotVisible,
    ]
    .iter()
    .filter_map(|a| attributes.get(a))
    .filter_map(|n| n.parse::<u64>().ok())
    .sum()
}

/// Moves every message of `dlq_url` back to `queue_url`; how many.
pub async fn redrive(sqs: &aws_sdk_sqs::Client, dlq_url: &str, queue_url: &str) -> u64 {
    let mut moved = 0;
    loop {
        let out = sqs
            .receive_message()
            .queue_url(dlq_url)
            .max_number_of_messages(10)
            .send()
            .await
            .expect("receive from the DLQ");
        let messages = out.messages.unwrap_or_default();
        if messages.is_empty() {
            return moved;
        }
        for m in messages {
            sqs.send_message()
                .queue_url(queue_url)
                .message_body(m.body().unwrap_or_default())
                .send()
                .await
                .expect("send back to the source queue");
            sqs.delete_message()
                .queue_url(dlq_url)
                .receipt_handle(m.receipt_handle().unwrap_or_default())
                .send()
                .await
                .expect("delete from the DLQ");
            moved += 1;
        }
    }
}

/// A queue's ARN.
pub async fn arn(sqs: &aws_sdk_sqs::Client, queue_url: &str) -> String {
    use aws_sdk_sqs::types::QueueAttributeName as A;
    sqs.get_queue_attributes()
        .queue_url(queue_url)
        .attribute_names(A::QueueArn)
        .send()
        .await
        .expect("queue attributes")
        .attributes
        .and_then(|a| a.get(&A::QueueArn).cloned())
        .expect("an ARN")
}
