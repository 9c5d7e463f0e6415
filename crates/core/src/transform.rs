//! The delivery transform of SPEC 5, shared by the Firehose Lambda and the
//! local delivery loop: one record in, one normalized NDJSON line out.

use crate::hit::parse_hit;
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
}
