//! The raw bucket's event notification to the curate queue
//! (`terraform/modules/curate_trigger`): an `ObjectCreated:Put` record in
//! S3's event JSON (key URL-encoded, ETag, size, sequencer) sent to SQS
//! for each object Firehose writes, and, as S3 delivers at least once, the
//! same notification a second time with the fault rate (at least once per
//! run when the rate is above zero).

use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A notification as sent (kept so a test can send it again).
#[derive(Debug, Clone)]
pub struct Notification {
    pub key: String,
    pub body: String,
}

#[derive(Debug, Default, Clone)]
pub struct S3EventStats {
    pub notifications: u64,
    pub duplicates: u64,
}

#[derive(Clone)]
pub struct S3Events {
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
    duplicate_rate: f64,
    rng: Arc<Mutex<fastrand::Rng>>,
    pub sent: Arc<Mutex<Vec<Notification>>>,
    pub stats: Arc<Mutex<S3EventStats>>,
}

impl S3Events {
    pub fn new(sqs: aws_sdk_sqs::Client, queue_url: &str, duplicate_rate: f64, seed: u64) -> Self {
        S3Events {
            sqs,
            queue_url: queue_url.to_owned(),
            duplicate_rate,
            rng: Arc::new(Mutex::new(fastrand::Rng::with_seed(seed))),
            sent: Arc::default(),
            stats: Arc::default(),
        }
    }

    /// Announces a new object of `bucket`.
    pub async fn object_created(&self, bucket: &str, key: &str, etag: &str, size: usize) {
        let now = gender_core::time::system_now_ms();
        let body = serde_json::json!({"Records": [{
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": "us-east-1",
            "eventTime": gender_core::time::format_rfc3339_millis(now),
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "AWS:AROAEXAMPLEFIREHOSE:AWSFirehoseToS3"},
            "requestParameters": {"sourceIPAddress": "10.0.0.1"},
            "responseElements": {"x-amz-request-id": format!("{:016X}", now), "x-amz-id-2": "awsrun"},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "raw-object-created",
                "bucket": {
                    "name": bucket,
                    "ownerIdentity": {"principalId": "A3NL1KOZZKExample"},
                    "arn": format!("arn:aws:s3:::{bucket}"),
                },
                "object": {
                    "key": url_encode(key),
                    "size": size,
                    "eTag": etag,
                    "sequencer": format!("{:018X}", now),
                },
            },
        }]})
        .to_string();
        let duplicate = {
            let mut stats = self.stats.lock().unwrap();
            let first = stats.duplicates == 0 && self.duplicate_rate > 0.0;
            let duplicate = first || self.rng.lock().unwrap().f64() < self.duplicate_rate;
            stats.notifications += 1;
            stats.duplicates += u64::from(duplicate);
            duplicate
        };
        self.sent.lock().unwrap().push(Notification {
            key: key.to_owned(),
            body: body.clone(),
        });
        self.send(&body).await;
        if duplicate {
            self.send(&body).await;
        }
    }

    /// Sends `body` to the queue (again), retried.
    pub async fn send(&self, body: &str) {
        for _ in 0..50 {
            let sent = self
                .sqs
                .send_message()
                .queue_url(&self.queue_url)
                .message_body(body)
                .send()
                .await;
            if sent.is_ok() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the curate queue refused a notification 50 times");
    }
}

/// S3's encoding of keys in event notifications (form encoding: a space is
/// `+`, `=` is `%3D`).
fn url_encode(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'/' | b'*' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_encoded_as_s3_notifications_encode_them_and_curate_reads_them_back() {
        let key = "raw/dt=2026-12-07/gs-run-hits-archive-1-2026-12-07-00-01-02-ab12 x";
        let encoded = url_encode(key);
        assert_eq!(
            encoded,
            "raw/dt%3D2026-12-07/gs-run-hits-archive-1-2026-12-07-00-01-02-ab12+x"
        );
        assert_eq!(gender_curate::decode_key(&encoded), key);
    }
}
