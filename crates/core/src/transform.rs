//! The delivery transform of SPEC 5, shared by the Firehose Lambda and the
//! local delivery loop: one record in, one normalized NDJSON line out (a
//! packed Kinesis record: one line per hit it holds).

use crate::hit::parse_hit;
use crate::stream::PackedError;
use crate::{Date, HitError};

/// Parses, validates and normalizes one delivered record, appending its
/// NDJSON line to `out` and returning the partition date (`dt`). Bounds are
/// checked against the arrival time so a re-run gives the same answer.
pub fn transform_record(data: &[u8], arrival_ms: i64, out: &mut Vec<u8>) -> Result<Date, HitError> {
    let wire = parse_hit(data)?;
    let hit = wire.validate_delivered(arrival_ms)?;
    hit.write_ndjson(out);
    Ok(Date::of_millis(hit.event_ms))
}

/// The transform of a Kinesis record, which holds one hit or, packed by
/// `PutRecords` as NDJSON, several hits of one visitor and one event date:
/// one normalized line per hit appended to `out`, and their date. A record
/// with an invalid hit, or hits of several dates, fails whole (`out` is left
/// as it was), as the stream consumer treats it.
pub fn transform_packed_record(
    data: &[u8],
    arrival_ms: i64,
    out: &mut Vec<u8>,
) -> Result<Date, PackedError> {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    let body = body.strip_suffix(b"\r").unwrap_or(body);
    if !body.contains(&b'\n') {
        // One hit: the common record, and any single JSON object.
        return transform_record(body, arrival_ms, out).map_err(|error| {
            if body.iter().all(u8::is_ascii_whitespace) {
                PackedError::Empty
            } else {
                PackedError::Hit { line: 0, error }
            }
        });
    }
    let start = out.len();
    let packed = transform_lines(body, arrival_ms, out);
    if packed.is_err() {
        out.truncate(start);
        // A single hit written over several lines (pretty-printed JSON from
        // another producer) is still one valid hit.
        if let Ok(date) = transform_record(body, arrival_ms, out) {
            return Ok(date);
        }
    }
    packed
}

fn transform_lines(body: &[u8], arrival_ms: i64, out: &mut Vec<u8>) -> Result<Date, PackedError> {
    let mut date = None;
    for (line, text) in body.split(|&b| b == b'\n').enumerate() {
        let text = text.strip_suffix(b"\r").unwrap_or(text);
        if text.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let dt = transform_record(text, arrival_ms, out)
            .map_err(|error| PackedError::Hit { line, error })?;
        match date {
            None => date = Some(dt),
            Some(first) if first != dt => return Err(PackedError::MixedDates { line }),
            Some(_) => {}
        }
    }
    date.ok_or(PackedError::Empty)
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARRIVAL: i64 = 1_795_514_400_000; // 2026-11-24T10:00:00Z

    fn run(data: &str) -> Result<(String, String), HitError> {
        let mut out = Vec::new();
        let dt = transform_record(data.as_bytes(), ARRIVAL, &mut out)?;
        Ok((String::from_utf8(out).unwrap(), dt.to_string()))
    }

    #[test]
    fn carries_the_hitid_after_the_timestamp() {
        let (line, _) =
            run(r#"{"hitid":"p-1","clientid":"c1","pageGender":"m","timestamp":1795514400000}"#)
                .unwrap();
        assert_eq!(
            line,
            "{\"clientid\":\"c1\",\"pageGender\":\"M\",\"timestamp\":\"2026-11-24T10:00:00.000Z\",\"hitid\":\"p-1\"}\n"
        );
        assert_eq!(
            run(r#"{"hitid":"a b","clientid":"c1","pageGender":"m"}"#),
            Err(HitError::InvalidHitId)
        );
    }

    #[test]
    fn outputs_exactly_three_fields_with_millisecond_utc() {
        let (line, dt) =
            run(r#"{"clientid":"c1","pageGender":"f","timestamp":"2026-11-23T23:30:00.1234-01:00","ref":"x"}"#)
                .unwrap();
        assert_eq!(
            line,
            "{\"clientid\":\"c1\",\"pageGender\":\"F\",\"timestamp\":\"2026-11-24T00:30:00.123Z\"}\n"
        );
        assert_eq!(dt, "2026-11-24");
    }

    #[test]
    fn missing_timestamp_takes_the_arrival_time() {
        let (line, dt) = run(r#"{"clientid":"c1","pageGender":"M"}"#).unwrap();
        assert!(line.contains("\"timestamp\":\"2026-11-24T10:00:00.000Z\""));
        assert_eq!(dt, "2026-11-24");
    }

    #[test]
    fn invalid_records_fail_without_output() {
        let mut out = Vec::new();
        for bad in [
            "",
            "not json",
            "[]",
            r#"{"clientid":"c1","pageGender":"Q"}"#,
        ] {
            assert!(
                transform_record(bad.as_bytes(), ARRIVAL, &mut out).is_err(),
                "{bad}"
            );
        }
        assert!(out.is_empty());
    }

    #[test]
    fn a_packed_record_gives_one_line_per_hit_or_fails_whole() {
        let mut out = Vec::new();
        let packed = "{\"clientid\":\"c1\",\"pageGender\":\"m\",\"hitid\":\"a\"}\n{\"clientid\":\"c1\",\"pageGender\":\"F\",\"timestamp\":\"2026-11-24T01:00:00Z\",\"hitid\":\"b\"}\n";
        let dt = transform_packed_record(packed.as_bytes(), ARRIVAL, &mut out).unwrap();
        assert_eq!(dt.to_string(), "2026-11-24");
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(text.lines().count(), 2);
        assert!(text.ends_with('\n'));
        // One bad hit, or two dates: nothing written, the record fails.
        out.clear();
        let bad = "{\"clientid\":\"c1\",\"pageGender\":\"m\"}\n{\"clientid\":\"c1\"}";
        assert!(matches!(
            transform_packed_record(bad.as_bytes(), ARRIVAL, &mut out),
            Err(PackedError::Hit { line: 1, .. })
        ));
        let dates = "{\"clientid\":\"c1\",\"pageGender\":\"m\",\"timestamp\":\"2026-11-23T01:00:00Z\"}\n{\"clientid\":\"c1\",\"pageGender\":\"m\"}";
        assert_eq!(
            transform_packed_record(dates.as_bytes(), ARRIVAL, &mut out),
            Err(PackedError::MixedDates { line: 1 })
        );
        assert!(out.is_empty());
        // One hit over several lines is one hit; blank data is empty.
        let pretty = "{\n  \"clientid\": \"c1\",\n  \"pageGender\": \"M\"\n}\n";
        transform_packed_record(pretty.as_bytes(), ARRIVAL, &mut out).unwrap();
        assert_eq!(String::from_utf8(out).unwrap().lines().count(), 1);
        assert_eq!(
            transform_packed_record(b" \n", ARRIVAL, &mut Vec::new()),
            Err(PackedError::Empty)
        );
    }
}
