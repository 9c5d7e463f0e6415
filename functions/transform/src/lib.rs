//! The Firehose data-transformation handler (SPEC 5): every record of the
//! batch is answered once, in order, with the shared core transform.
//!
//! The event and the answer have their own serde types instead of
//! `aws_lambda_events`' Firehose types, with a fixed `metadata` shape instead
//! of a map per record. A record's data stays the base64 text it arrived as
//! until [`RecordTransformer`] decodes it (SIMD base64, into a buffer reused
//! for the whole batch), transforms it (into another reused buffer) and
//! encodes the line back into the record's own text buffer: no allocation per
//! record once the buffers have grown, and a record whose data is not valid
//! base64 is answered `ProcessingFailed` with its text as sent instead of
//! failing the invocation. The JSON on the wire is the same.

use base64_simd::STANDARD as BASE64;
use gender_core::Date;
use gender_core::stream::PackedError;
use gender_core::transform::transform_packed_record;
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
    /// Epoch milliseconds, read exactly: when the record entered Firehose.
    pub approximate_arrival_timestamp: i64,
    /// The record's bytes as base64 text, as sent (decoded by the transform).
    pub data: String,
    /// With the Kinesis stream as source: the record's place and arrival in
    /// the stream.
    #[serde(default)]
    pub kinesis_record_metadata: Option<KinesisRecordMetadata>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KinesisRecordMetadata {
    /// Epoch milliseconds: when the record entered the Kinesis stream.
    pub approximate_arrival_timestamp: i64,
}

impl TransformRecord {
    /// The arrival time a hit without timestamp takes (SPEC 2): the
    /// record's arrival in the Kinesis stream when Firehose reads one, which
    /// is also what the stream consumer uses, so the archive and the
    /// counters agree on it; else the arrival in Firehose.
    pub fn arrival_ms(&self) -> i64 {
        self.kinesis_record_metadata
            .as_ref()
            .map_or(self.approximate_arrival_timestamp, |k| {
                k.approximate_arrival_timestamp
            })
    }
}

/// Why a record was answered `ProcessingFailed`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordFailure {
    /// The record's `data` is not standard, padded, canonical base64.
    InvalidBase64,
    /// The decoded bytes are not a valid hit, or a packed record holds an
    /// invalid hit or hits of several dates.
    Record(PackedError),
}

impl fmt::Display for RecordFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RecordFailure::InvalidBase64 => f.write_str("record data is not valid base64"),
            RecordFailure::Record(error) => error.fmt(f),
        }
    }
}

/// Base64 record data in, base64 normalized line out, through two buffers
/// reused from record to record (one per invocation, or longer).
#[derive(Debug, Default)]
pub struct RecordTransformer {
    plain: Vec<u8>,
    line: Vec<u8>,
}

impl RecordTransformer {
    pub fn new() -> Self {
        Self::default()
    }

    /// Decodes `data` (base64) and transforms it; the normalized line is
    /// kept until the next call, for [`Self::encode_line`].
    pub fn transform(&mut self, data: &[u8], arrival_ms: i64) -> Result<Date, RecordFailure> {
        self.plain.clear();
        self.line.clear();
        BASE64
            .decode_append(data, &mut self.plain)
            .map_err(|_| RecordFailure::InvalidBase64)?;
        transform_packed_record(&self.plain, arrival_ms, &mut self.line)
            .map_err(RecordFailure::Record)
    }

    /// Appends the base64 of the last transformed line to `out`.
    pub fn encode_line(&self, out: &mut String) {
        // `encode_append` reserves exactly what it writes; growing by
        // doubling first keeps appends to one long buffer linear.
        out.reserve(BASE64.encoded_length(self.line.len()));
        BASE64.encode_append(&self.line, out);
    }

    /// [`Self::transform`], then the line's base64 appended to `out`; `out`
    /// is untouched when the record fails.
    pub fn transform_base64(
        &mut self,
        data: &[u8],
        arrival_ms: i64,
        out: &mut String,
    ) -> Result<Date, RecordFailure> {
        let date = self.transform(data, arrival_ms)?;
        self.encode_line(out);
        Ok(date)
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
    /// Base64 text: of the normalized line, or of a failed record the data
    /// exactly as it was sent.
    pub data: String,
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
    let mut transformer = RecordTransformer::new();

    for record in event.records {
        let arrival_ms = record.arrival_ms();
        let answer = match transformer.transform(record.data.as_bytes(), arrival_ms) {
            Ok(date) => {
                // The input text is decoded: its buffer takes the answer.
                let mut data = record.data;
                data.clear();
                transformer.encode_line(&mut data);
                TransformedRecord {
                    record_id: record.record_id,
                    result: RESULT_OK,
                    data,
                    date: Some(date),
                }
            }
            Err(error) => {
                failed += 1;
                first_failure.get_or_insert(error);
                // The data as sent, so the error prefix shows what was sent.
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
                String::from_utf8(BASE64.decode(&answer.data).unwrap()).unwrap(),
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
            assert_eq!(answer.data, original.records[index].data, "record {index}");
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

    fn record(id: &str, data: &str) -> TransformRecord {
        TransformRecord {
            record_id: id.to_owned(),
            approximate_arrival_timestamp: ARRIVAL,
            data: data.to_owned(),
            kinesis_record_metadata: None,
        }
    }

    #[test]
    fn a_packed_kinesis_record_becomes_its_lines_at_the_stream_arrival_time() {
        let packed = concat!(
            r#"{"clientid":"c1","pageGender":"m","hitid":"a"}"#,
            "\n",
            r#"{"clientid":"c1","pageGender":"F","hitid":"b"}"#
        );
        let mut in_stream = record("packed", &BASE64.encode(packed));
        // Read by Firehose two seconds after it entered the stream.
        in_stream.approximate_arrival_timestamp = ARRIVAL + 2_000;
        in_stream.kinesis_record_metadata = Some(KinesisRecordMetadata {
            approximate_arrival_timestamp: ARRIVAL,
        });
        let response = transform_event(TransformEvent {
            records: vec![in_stream],
        });
        let answer = &response.records[0];
        assert_eq!(answer.result, RESULT_OK);
        let text = String::from_utf8(BASE64.decode(&answer.data).unwrap()).unwrap();
        assert_eq!(
            text,
            concat!(
                r#"{"clientid":"c1","pageGender":"M","timestamp":"2026-11-24T10:00:00.000Z","hitid":"a"}"#,
                "\n",
                r#"{"clientid":"c1","pageGender":"F","timestamp":"2026-11-24T10:00:00.000Z","hitid":"b"}"#,
                "\n"
            )
        );
    }

    const ARRIVAL: i64 = 1_795_514_400_000; // 2026-11-24T10:00:00Z
    const HIT: &str = r#"{"clientid":"c1","pageGender":"f"}"#;
    const LINE: &str =
        "{\"clientid\":\"c1\",\"pageGender\":\"F\",\"timestamp\":\"2026-11-24T10:00:00.000Z\"}\n";

    #[test]
    fn data_that_is_not_base64_is_failed_with_its_text_as_sent_and_the_batch_goes_on() {
        let good = BASE64.encode(HIT);
        let bad = [
            "not base64!",
            // Valid characters, missing padding.
            good.trim_end_matches('='),
            // Non-zero trailing bits: "eyI=" is `{"`, "eyJ=" and "eyK=" differ
            // from it only in bits past the data; "ew==" is `{`, "eR==" likewise.
            "eyJ=",
            "eyK=",
            "eR==",
            // Whitespace inside.
            "eyJj bGll",
            // Length not a multiple of 4.
            "eyJjb",
        ];
        // Check the "non-canonical" cases really are rejected by the reference decoder too.
        for text in &bad {
            assert!(
                BASE64.decode(text).is_err(),
                "{text:?} must be invalid base64"
            );
        }
        let mut records = vec![record("first", &good)];
        records.extend(
            bad.iter()
                .enumerate()
                .map(|(i, text)| record(&format!("bad-{i}"), text)),
        );
        records.push(record("last", &good));

        let response = transform_event(TransformEvent { records });

        assert_eq!(response.records.len(), bad.len() + 2);
        for answer in [&response.records[0], response.records.last().unwrap()] {
            assert_eq!(answer.result, RESULT_OK);
            assert_eq!(BASE64.decode(&answer.data).unwrap(), LINE.as_bytes());
        }
        for (answer, text) in response.records[1..=bad.len()].iter().zip(bad) {
            assert_eq!(answer.result, RESULT_PROCESSING_FAILED, "{text:?}");
            assert_eq!(answer.data, text, "the data as sent");
            assert_eq!(answer.date, None);
            let json = serde_json::to_value(answer).unwrap();
            assert_eq!(json["data"], text);
            assert_eq!(json["metadata"]["partitionKeys"], serde_json::json!({}));
        }
    }

    #[test]
    fn a_failure_names_base64_or_the_hit_error() {
        let mut transformer = RecordTransformer::new();
        assert_eq!(
            transformer.transform(b"%%%%", ARRIVAL),
            Err(RecordFailure::InvalidBase64)
        );
        let no_client = BASE64.encode(r#"{"pageGender":"M"}"#);
        assert!(matches!(
            transformer.transform(no_client.as_bytes(), ARRIVAL),
            Err(RecordFailure::Record(_))
        ));
    }

    #[test]
    fn the_transformer_matches_the_reference_base64_and_the_core_transform_across_reuse() {
        // Short, padded both ways, empty-field and long (> 1 KiB encoded) records,
        // through one transformer so stale buffer contents would show.
        let long_page = "p".repeat(3000);
        let hits = [
            format!(r#"{{"clientid":"c-long","pageGender":"m","page":"{long_page}"}}"#),
            HIT.to_owned(),
            r#"{"clientid":"ab","pageGender":"M","timestamp":1795514399999}"#.to_owned(),
            r#"{"clientid":"abc","pageGender":"F","timestamp":"2026-11-24T09:30:00+01:00"}"#
                .to_owned(),
            r#"{"clientid":"abcd","pageGender":"M","timestamp":"2026-11-24T09:00:00.5Z"}"#
                .to_owned(),
        ];
        let mut transformer = RecordTransformer::new();
        let mut out = String::from("prefix:");
        let mut want = String::from("prefix:");
        for hit in &hits {
            let mut line = Vec::new();
            let date = gender_core::transform::transform_record(hit.as_bytes(), ARRIVAL, &mut line)
                .unwrap();
            want.push_str(&BASE64.encode(&line));
            let got = transformer
                .transform_base64(BASE64.encode(hit).as_bytes(), ARRIVAL, &mut out)
                .unwrap();
            assert_eq!(got, date, "{hit}");
            assert_eq!(out, want, "{hit}");
        }
        // A failure leaves the output as it was.
        assert!(
            transformer
                .transform_base64(b"eyJ9", ARRIVAL, &mut out)
                .is_err()
        );
        assert_eq!(out, want);
    }

    #[test]
    fn an_empty_batch_gets_an_empty_answer() {
        let event: TransformEvent = serde_json::from_str(r#"{"records":[]}"#).unwrap();
        assert!(transform_event(event).records.is_empty());
    }
}
