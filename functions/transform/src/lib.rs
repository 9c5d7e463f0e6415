//! The Firehose data-transformation handler (SPEC 5): every record of the
//! batch is answered once, in order, with the shared core transform.

use aws_lambda_events::encodings::Base64Data;
use aws_lambda_events::event::firehose::{
    KinesisFirehoseResponse, KinesisFirehoseResponseRecord, KinesisFirehoseResponseRecordMetadata,
};
use gender_core::transform::transform_record;
use serde::Deserialize;
use std::collections::HashMap;

/// The part of Firehose's transformation event the transform reads. Not
/// `aws_lambda_events`' `KinesisFirehoseEvent`: its `MillisecondTimestamp`
/// goes through `f64` seconds and loses 1 ms on about half of all arrival
/// times (e.g. `…400123` becomes `….122`), and the arrival time is the event
/// time of hits sent without one. Other fields of the event are ignored.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformEvent {
    pub records: Vec<TransformRecord>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TransformRecord {
    pub record_id: String,
    /// Epoch milliseconds, read exactly.
    pub approximate_arrival_timestamp: i64,
    /// Already base64-decoded.
    pub data: Base64Data,
}

/// Firehose's result for a record that was transformed.
pub const RESULT_OK: &str = "Ok";
/// Firehose's result for a rejected record: it is written to the error
/// output prefix. `Dropped` is never used, so no hit disappears silently.
pub const RESULT_PROCESSING_FAILED: &str = "ProcessingFailed";
/// The dynamic-partitioning key the S3 prefix `raw/dt=!{partitionKeyFromLambda:dt}/` reads.
pub const PARTITION_KEY_DATE: &str = "dt";

/// Transforms one Firehose batch. Infallible by design: the work is pure,
/// and a bad record must become `ProcessingFailed`, never a failed
/// invocation (which would make Firehose retry or fail the whole batch).
pub fn transform_event(event: TransformEvent) -> KinesisFirehoseResponse {
    let total = event.records.len();
    let mut records = Vec::with_capacity(total);
    let mut failed = 0usize;
    let mut first_failure = None;
    // One buffer for every line; each answer gets an exact-size copy.
    let mut line = Vec::with_capacity(128);

    for record in event.records {
        line.clear();
        let arrival_ms = record.approximate_arrival_timestamp;
        let mut answer = KinesisFirehoseResponseRecord::default();
        answer.record_id = Some(record.record_id);
        match transform_record(&record.data, arrival_ms, &mut line) {
            Ok(date) => {
                answer.result = Some(RESULT_OK.to_owned());
                *answer.data = line.clone();
                answer.metadata = partition_metadata(date.to_string());
            }
            Err(error) => {
                failed += 1;
                first_failure.get_or_insert(error);
                answer.result = Some(RESULT_PROCESSING_FAILED.to_owned());
                // The original bytes, so the error prefix shows what was sent.
                answer.data = record.data;
            }
        }
        records.push(answer);
    }

    let ok = total - failed;
    match first_failure {
        None => tracing::info!(records = total, ok, failed, "transformed firehose batch"),
        // One sample reason per batch instead of a log line per bad record.
        Some(error) => tracing::warn!(
            records = total,
            ok,
            failed,
            first_failure = %error,
            "transformed firehose batch with rejected records"
        ),
    }

    let mut response = KinesisFirehoseResponse::default();
    response.records = records;
    response
}

fn partition_metadata(date: String) -> KinesisFirehoseResponseRecordMetadata {
    let mut metadata = KinesisFirehoseResponseRecordMetadata::default();
    metadata.partition_keys = HashMap::from([(PARTITION_KEY_DATE.to_owned(), date)]);
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use base64::engine::general_purpose::STANDARD as BASE64;
    use serde_json::Value;

    /// Expected answer per fixture record, in order: `Some((line, dt))` for
    /// `Ok`, `None` for `ProcessingFailed`.
    const EXPECTED: [Option<(&str, &str)>; 9] = [
        // RFC 3339 with +02:00 offset, sub-millisecond digits truncated; the UTC date is the day before.
        Some((
            r#"{"clientid":"visitor-1","pageGender":"F","timestamp":"2026-11-23T22:30:00.123Z"}"#,
            "2026-11-23",
        )),
        // Integer epoch milliseconds.
        Some((
            r#"{"clientid":"visitor-2","pageGender":"M","timestamp":"2026-11-24T06:00:00.000Z"}"#,
            "2026-11-24",
        )),
        // No timestamp: the arrival time, exact to the millisecond (see `TransformEvent`).
        Some((
            r#"{"clientid":"visitor-3","pageGender":"M","timestamp":"2026-11-24T10:00:00.123Z"}"#,
            "2026-11-24",
        )),
        // Lower-case gender, an unknown field dropped, trailing newline in the input.
        Some((
            r#"{"clientid":"visitor-4","pageGender":"F","timestamp":"2026-11-24T09:59:59.000Z"}"#,
            "2026-11-24",
        )),
        None, // not JSON
        None, // missing clientid
        None, // pageGender "X"
        None, // 24 h + 1 ms after its arrival time
        // Exactly 24 h after arrival is still accepted.
        Some((
            r#"{"clientid":"visitor-7","pageGender":"F","timestamp":"2026-11-25T10:00:00.000Z"}"#,
            "2026-11-25",
        )),
    ];

    fn fixture_event() -> TransformEvent {
        serde_json::from_str(&gender_testkit::fixture("firehose-transform.json"))
            .expect("fixture is a Firehose transformation event")
    }

    #[test]
    fn answers_every_record_once_in_order_with_the_expected_result() {
        let event = fixture_event();
        let input_ids: Vec<_> = event
            .records
            .iter()
            .map(|r| Some(r.record_id.clone()))
            .collect();
        assert_eq!(input_ids.len(), EXPECTED.len());

        let response = transform_event(event);

        let output_ids: Vec<_> = response
            .records
            .iter()
            .map(|r| r.record_id.clone())
            .collect();
        assert_eq!(output_ids, input_ids);
        for (index, (answer, expected)) in response.records.iter().zip(EXPECTED).enumerate() {
            let want = if expected.is_some() {
                RESULT_OK
            } else {
                RESULT_PROCESSING_FAILED
            };
            assert_eq!(answer.result.as_deref(), Some(want), "record {index}");
        }
    }

    #[test]
    fn ok_records_carry_one_normalized_line_and_their_date() {
        let response = transform_event(fixture_event());

        for (index, (answer, expected)) in response.records.iter().zip(EXPECTED).enumerate() {
            let Some((line, date)) = expected else {
                continue;
            };
            assert_eq!(
                String::from_utf8(answer.data.0.clone()).unwrap(),
                format!("{line}\n"),
                "record {index}"
            );
            assert_eq!(
                answer.metadata.partition_keys,
                HashMap::from([(PARTITION_KEY_DATE.to_owned(), date.to_owned())]),
                "record {index}"
            );
        }
    }

    #[test]
    fn failed_records_carry_their_original_data() {
        let original = fixture_event();
        let response = transform_event(original.clone());

        for (index, (answer, expected)) in response.records.iter().zip(EXPECTED).enumerate() {
            if expected.is_some() {
                continue;
            }
            assert_eq!(
                answer.data.0, original.records[index].data.0,
                "record {index}"
            );
            assert!(answer.metadata.partition_keys.is_empty(), "record {index}");
        }
    }

    #[test]
    fn serializes_with_the_field_names_firehose_reads() {
        let response = serde_json::to_value(transform_event(fixture_event())).unwrap();
        let input: Value =
            serde_json::from_str(&gender_testkit::fixture("firehose-transform.json")).unwrap();

        let records = response["records"].as_array().expect("records array");
        assert_eq!(records.len(), EXPECTED.len());
        for (index, (record, expected)) in records.iter().zip(EXPECTED).enumerate() {
            assert_eq!(record["recordId"], input["records"][index]["recordId"]);
            let data = BASE64
                .decode(record["data"].as_str().expect("data is a base64 string"))
                .unwrap();
            match expected {
                Some((line, date)) => {
                    assert_eq!(record["result"], "Ok");
                    assert_eq!(data, format!("{line}\n").into_bytes());
                    assert_eq!(record["metadata"]["partitionKeys"]["dt"], date);
                }
                None => {
                    assert_eq!(record["result"], "ProcessingFailed");
                    assert_eq!(record["data"], input["records"][index]["data"]);
                }
            }
        }
    }

    #[test]
    fn an_empty_batch_gets_an_empty_answer() {
        let event: TransformEvent = serde_json::from_str(r#"{"records":[]}"#).unwrap();
        assert!(transform_event(event).records.is_empty());
    }
}
