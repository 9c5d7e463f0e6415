//! The Firehose data-transformation handler (SPEC 5): every record of the
//! batch is answered once, in order, with the shared core transform.
//!
//! The event and the answer have their own serde types instead of
//! `aws_lambda_events`' Firehose types: the record data is base64-decoded
//! straight from the borrowed JSON string into one allocation, and the answer
//! is base64-encoded on a stack buffer while it is serialized, with a fixed
//! `metadata` shape instead of a map per record. The JSON on the wire is the
//! same.

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use gender_core::Date;
use gender_core::transform::transform_record;
use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeMap, SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};
use std::fmt;

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
    pub data: RecordData,
}

/// A record's bytes; base64 in the JSON.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RecordData(pub Vec<u8>);

impl<'de> Deserialize<'de> for RecordData {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Base64Visitor;
        impl Visitor<'_> for Base64Visitor {
            type Value = RecordData;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a base64 string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<RecordData, E> {
                BASE64.decode(v).map(RecordData).map_err(E::custom)
            }
        }
        d.deserialize_str(Base64Visitor)
    }
}

impl Serialize for RecordData {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        // Records are small: encode on the stack, allocate only for big ones.
        let mut stack = [0u8; 1024];
        let len = self.0.len().div_ceil(3) * 4;
        if len <= stack.len() {
            let n = BASE64
                .encode_slice(&self.0, &mut stack)
                .map_err(serde::ser::Error::custom)?;
            let text = std::str::from_utf8(&stack[..n]).map_err(serde::ser::Error::custom)?;
            s.serialize_str(text)
        } else {
            s.serialize_str(&BASE64.encode(&self.0))
        }
    }
}

/// Firehose's result for a record that was transformed.
pub const RESULT_OK: &str = "Ok";
/// Firehose's result for a rejected record: it is written to the error
/// output prefix. `Dropped` is never used, so no hit disappears silently.
pub const RESULT_PROCESSING_FAILED: &str = "ProcessingFailed";
/// The dynamic-partitioning key the S3 prefix `raw/dt=!{partitionKeyFromLambda:dt}/` reads.
pub const PARTITION_KEY_DATE: &str = "dt";

/// The answer to one record: `{"recordId", "result", "data", "metadata":
/// {"partitionKeys": {"dt": …}}}` (no partition keys for a failed record).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransformedRecord {
    pub record_id: String,
    /// [`RESULT_OK`] or [`RESULT_PROCESSING_FAILED`].
    pub result: &'static str,
    /// The normalized line, or the original bytes of a failed record.
    pub data: RecordData,
    /// The event date of a transformed record.
    pub date: Option<Date>,
}

struct PartitionKeys(Option<Date>);

impl Serialize for PartitionKeys {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(usize::from(self.0.is_some())))?;
        if let Some(date) = self.0 {
            let mut text = Vec::with_capacity(10);
            date.write_to(&mut text);
            let text = std::str::from_utf8(&text).map_err(serde::ser::Error::custom)?;
            map.serialize_entry(PARTITION_KEY_DATE, text)?;
        }
        map.end()
    }
}

struct Metadata(Option<Date>);

impl Serialize for Metadata {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(1))?;
        map.serialize_entry("partitionKeys", &PartitionKeys(self.0))?;
        map.end()
    }
}

impl Serialize for TransformedRecord {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut record = s.serialize_struct("TransformedRecord", 4)?;
        record.serialize_field("recordId", &self.record_id)?;
        record.serialize_field("result", self.result)?;
        record.serialize_field("data", &self.data)?;
        record.serialize_field("metadata", &Metadata(self.date))?;
        record.end()
    }
}

/// The handler's answer: `{"records": [...]}`, one per input record, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TransformResponse {
    pub records: Vec<TransformedRecord>,
}

/// Transforms one Firehose batch. Infallible by design: the work is pure,
/// and a bad record must become `ProcessingFailed`, never a failed
/// invocation (which would make Firehose retry or fail the whole batch).
pub fn transform_event(event: TransformEvent) -> TransformResponse {
    let total = event.records.len();
    let mut records = Vec::with_capacity(total);
    let mut failed = 0usize;
    let mut first_failure = None;

    for record in event.records {
        let arrival_ms = record.approximate_arrival_timestamp;
        let mut line = Vec::with_capacity(96);
        let answer = match transform_record(&record.data.0, arrival_ms, &mut line) {
            Ok(date) => TransformedRecord {
                record_id: record.record_id,
                result: RESULT_OK,
                data: RecordData(line),
                date: Some(date),
            },
            Err(error) => {
                failed += 1;
                first_failure.get_or_insert(error);
                // The original bytes, so the error prefix shows what was sent.
                TransformedRecord {
                    record_id: record.record_id,
                    result: RESULT_PROCESSING_FAILED,
                    data: record.data,
                    date: None,
                }
            }
        };
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
    TransformResponse { records }
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
        let input_ids: Vec<_> = event.records.iter().map(|r| r.record_id.clone()).collect();
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
            assert_eq!(answer.result, want, "record {index}");
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
                answer.date.map(|d| d.to_string()).as_deref(),
                Some(date),
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
            assert_eq!(answer.date, None, "record {index}");
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
                    assert_eq!(record["metadata"]["partitionKeys"], serde_json::json!({}));
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
