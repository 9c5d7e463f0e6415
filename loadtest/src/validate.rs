//! Checks that a response body says what SPEC 3 and 4 promise, so a fast but
//! wrong answer counts as a failure.

use serde_json::Value;

/// Why a body does not match the contract; the text becomes Goose's error tag.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum BodyError {
    #[error("body is not JSON: {0}")]
    NotJson(String),
    #[error("`{field}` is {found}, expected {expected}")]
    Field {
        field: &'static str,
        found: String,
        expected: String,
    },
}

fn parse(body: &str) -> Result<Value, BodyError> {
    serde_json::from_str(body).map_err(|error| BodyError::NotJson(error.to_string()))
}

fn mismatch(field: &'static str, found: Option<&Value>, expected: impl Into<String>) -> BodyError {
    BodyError::Field {
        field,
        found: found.map_or_else(|| "missing".to_string(), Value::to_string),
        expected: expected.into(),
    }
}

fn is_gender(value: Option<&Value>) -> bool {
    matches!(value.and_then(Value::as_str), Some("M" | "F"))
}

fn is_timestamp(value: Option<&Value>) -> bool {
    // RFC 3339 always has the date/time separator; the server formats it, we only
    // guard against an empty or non-string field.
    value
        .and_then(Value::as_str)
        .is_some_and(|text| text.contains('T'))
}

/// A `202` for `sent` valid hits: `{"accepted": sent, "rejected": []}`.
pub fn ingest_accepted(body: &str, sent: usize) -> Result<(), BodyError> {
    let json = parse(body)?;
    let accepted = json.get("accepted");
    if accepted.and_then(Value::as_u64) != Some(sent as u64) {
        return Err(mismatch("accepted", accepted, sent.to_string()));
    }
    let rejected = json.get("rejected");
    if !rejected
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        return Err(mismatch("rejected", rejected, "[]"));
    }
    Ok(())
}

/// A `200` profile of `clientid` with at least one counted hit.
pub fn profile(body: &str, clientid: &str) -> Result<(), BodyError> {
    let json = parse(body)?;
    check_clientid(&json, clientid)?;
    if !is_gender(json.get("gender")) {
        return Err(mismatch("gender", json.get("gender"), "\"M\" or \"F\""));
    }
    let signals = json.get("signals");
    for (field, value) in [
        ("signals.last", signals.and_then(|s| s.get("last"))),
        ("signals.lifetime", signals.and_then(|s| s.get("lifetime"))),
    ] {
        if !is_gender(value) {
            return Err(mismatch(field, value, "\"M\" or \"F\""));
        }
    }
    let week = signals.and_then(|s| s.get("last_7_days"));
    if !(week.is_some_and(Value::is_null) || is_gender(week)) {
        return Err(mismatch(
            "signals.last_7_days",
            week,
            "null, \"M\" or \"F\"",
        ));
    }
    let hits = json.get("hits");
    let count = |letter: &str| hits.and_then(|h| h.get(letter)).and_then(Value::as_u64);
    match (count("M"), count("F")) {
        (Some(m), Some(f)) if m + f > 0 => {}
        _ => {
            return Err(mismatch(
                "hits",
                hits,
                "{\"M\": n, \"F\": n} with n > 0 in total",
            ));
        }
    }
    for field in ["last_seen", "updated_at"] {
        if !is_timestamp(json.get(field)) {
            return Err(mismatch(field, json.get(field), "an RFC 3339 timestamp"));
        }
    }
    Ok(())
}

/// The total of a profile's hit counters, for probes waiting on a new hit.
pub fn hit_total(body: &str) -> Option<u64> {
    let json = parse(body).ok()?;
    let hits = json.get("hits")?;
    Some(hits.get("M")?.as_u64()? + hits.get("F")?.as_u64()?)
}

/// A `404` for a never-seen id: `{"clientid": id, "error": "unknown clientid"}`.
pub fn unknown(body: &str, clientid: &str) -> Result<(), BodyError> {
    let json = parse(body)?;
    check_clientid(&json, clientid)?;
    let error = json.get("error");
    if error.and_then(Value::as_str) != Some("unknown clientid") {
        return Err(mismatch("error", error, "\"unknown clientid\""));
    }
    Ok(())
}

/// A `202` for `DELETE /visitors/{id}`: a new pending erasure, with `Location`
/// naming its status URL. Gives the erasure id.
pub fn erasure_accepted(body: &str, location: Option<&str>) -> Result<String, BodyError> {
    let json = parse(body)?;
    let (id, complete) = erasure_fields(&json)?;
    if complete {
        return Err(mismatch("status", json.get("status"), "\"pending\""));
    }
    let status_url = format!("/erasures/{id}");
    if location != Some(status_url.as_str()) {
        return Err(BodyError::Field {
            field: "Location header",
            found: location.map_or_else(|| "missing".to_owned(), |l| format!("{l:?}")),
            expected: format!("{status_url:?}"),
        });
    }
    Ok(id)
}

/// A `200` for `GET /erasures/{id}`; `Ok(true)` once it is complete.
pub fn erasure_status(body: &str, id: &str) -> Result<bool, BodyError> {
    let json = parse(body)?;
    let (found, complete) = erasure_fields(&json)?;
    if found != id {
        return Err(mismatch(
            "erasure_id",
            json.get("erasure_id"),
            format!("\"{id}\""),
        ));
    }
    Ok(complete)
}

/// The fields every erasure body has (SPEC 17): the id (32 lowercase hex
/// digits), `pending` with no completion time or `complete` with one, the
/// request time and the status URL. Gives the id and whether it is complete.
fn erasure_fields(json: &Value) -> Result<(String, bool), BodyError> {
    let id_field = json.get("erasure_id");
    let id = id_field
        .and_then(Value::as_str)
        .filter(|id| id.len() == 32 && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
        .ok_or_else(|| mismatch("erasure_id", id_field, "32 lowercase hex digits"))?;
    if !is_timestamp(json.get("requested_at")) {
        return Err(mismatch(
            "requested_at",
            json.get("requested_at"),
            "an RFC 3339 timestamp",
        ));
    }
    let completed_at = json.get("completed_at");
    let complete = match json.get("status").and_then(Value::as_str) {
        Some("pending") if completed_at.is_some_and(Value::is_null) => false,
        Some("complete") if is_timestamp(completed_at) => true,
        Some("pending") => {
            return Err(mismatch("completed_at", completed_at, "null while pending"));
        }
        Some("complete") => {
            return Err(mismatch(
                "completed_at",
                completed_at,
                "an RFC 3339 timestamp once complete",
            ));
        }
        _ => {
            return Err(mismatch(
                "status",
                json.get("status"),
                "\"pending\" or \"complete\"",
            ));
        }
    };
    let status_url = json.get("status_url");
    if status_url.and_then(Value::as_str) != Some(&format!("/erasures/{id}")) {
        return Err(mismatch(
            "status_url",
            status_url,
            format!("\"/erasures/{id}\""),
        ));
    }
    Ok((id.to_owned(), complete))
}

fn check_clientid(json: &Value, clientid: &str) -> Result<(), BodyError> {
    let found = json.get("clientid");
    if found.and_then(Value::as_str) != Some(clientid) {
        return Err(mismatch("clientid", found, format!("\"{clientid}\"")));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROFILE: &str = r#"{"clientid":"v-1","gender":"M","signals":{"last":"M","lifetime":"M","last_7_days":null},"hits":{"M":1,"F":1},"last_seen":"2026-11-24T10:00:00Z","updated_at":"2026-11-24T10:00:01Z"}"#;

    #[test]
    fn ingest_needs_every_hit_accepted_and_none_rejected() {
        assert_eq!(
            ingest_accepted(r#"{"accepted":3,"rejected":[]}"#, 3),
            Ok(())
        );
        assert!(ingest_accepted(r#"{"accepted":2,"rejected":[]}"#, 3).is_err());
        assert!(
            ingest_accepted(r#"{"accepted":3,"rejected":[{"index":0,"error":"x"}]}"#, 3).is_err()
        );
        assert!(ingest_accepted(r#"{"accepted":3}"#, 3).is_err());
        assert!(matches!(
            ingest_accepted("<html>", 1),
            Err(BodyError::NotJson(_))
        ));
    }

    #[test]
    fn profile_matches_the_spec_shape() {
        assert_eq!(profile(PROFILE, "v-1"), Ok(()));
        assert_eq!(hit_total(PROFILE), Some(2));
        let week = PROFILE.replace(r#""last_7_days":null"#, r#""last_7_days":"F""#);
        assert_eq!(profile(&week, "v-1"), Ok(()));
    }

    #[test]
    fn profile_rejects_each_broken_field() {
        let broken = [
            PROFILE.replace(r#""clientid":"v-1""#, r#""clientid":"v-2""#),
            PROFILE.replace(r#""gender":"M""#, r#""gender":"X""#),
            PROFILE.replace(r#""last":"M""#, r#""last":null"#),
            PROFILE.replace(r#""lifetime":"M""#, r#""lifetime":"m""#),
            PROFILE.replace(r#""last_7_days":null"#, r#""last_7_days":"U""#),
            PROFILE.replace(r#""hits":{"M":1,"F":1}"#, r#""hits":{"M":0,"F":0}"#),
            PROFILE.replace(r#""hits":{"M":1,"F":1}"#, r#""hits":{"M":1}"#),
            PROFILE.replace(r#""last_seen":"2026-11-24T10:00:00Z""#, r#""last_seen":"""#),
            PROFILE.replace(r#","updated_at":"2026-11-24T10:00:01Z""#, ""),
        ];
        for body in broken {
            assert!(profile(&body, "v-1").is_err(), "accepted {body}");
        }
    }

    const ERASURE: &str = r#"{"erasure_id":"3f2a9c0d4e5b6a7182930a1b2c3d4e5f","status":"pending","requested_at":"2026-11-24T10:00:00.000Z","completed_at":null,"status_url":"/erasures/3f2a9c0d4e5b6a7182930a1b2c3d4e5f"}"#;
    const ERASURE_ID: &str = "3f2a9c0d4e5b6a7182930a1b2c3d4e5f";

    fn erasure_complete() -> String {
        ERASURE.replace(r#""pending""#, r#""complete""#).replace(
            r#""completed_at":null"#,
            r#""completed_at":"2026-11-24T10:00:02.500Z""#,
        )
    }

    #[test]
    fn erasure_accepted_is_pending_with_its_location() {
        let location = format!("/erasures/{ERASURE_ID}");
        assert_eq!(
            erasure_accepted(ERASURE, Some(&location)),
            Ok(ERASURE_ID.to_owned())
        );
        assert!(erasure_accepted(ERASURE, None).is_err());
        assert!(erasure_accepted(ERASURE, Some("/erasures/other")).is_err());
        assert!(erasure_accepted(&erasure_complete(), Some(&location)).is_err());
    }

    #[test]
    fn erasure_status_tells_pending_from_complete() {
        assert_eq!(erasure_status(ERASURE, ERASURE_ID), Ok(false));
        assert_eq!(erasure_status(&erasure_complete(), ERASURE_ID), Ok(true));
        assert!(erasure_status(ERASURE, "00000000000000000000000000000000").is_err());
    }

    #[test]
    fn erasure_rejects_each_broken_field() {
        let broken = [
            ERASURE.replace(ERASURE_ID, "3F2A9C0D4E5B6A7182930A1B2C3D4E5F"),
            ERASURE.replace(r#""erasure_id":"3f2a9c0d4e5b6a7182930a1b2c3d4e5f","#, ""),
            ERASURE.replace(r#""pending""#, r#""running""#),
            ERASURE.replace(
                r#""completed_at":null"#,
                r#""completed_at":"2026-11-24T10:00:02Z""#,
            ),
            erasure_complete().replace(
                r#""completed_at":"2026-11-24T10:00:02.500Z""#,
                r#""completed_at":null"#,
            ),
            ERASURE.replace(r#""requested_at":"2026-11-24T10:00:00.000Z","#, ""),
            ERASURE.replace(r#""status_url":"/erasures/"#, r#""status_url":"/erasure/"#),
        ];
        for body in broken {
            assert!(
                erasure_status(&body, ERASURE_ID).is_err(),
                "accepted {body}"
            );
        }
    }

    #[test]
    fn unknown_needs_the_id_and_the_message() {
        assert_eq!(
            unknown(r#"{"clientid":"x","error":"unknown clientid"}"#, "x"),
            Ok(())
        );
        assert!(unknown(r#"{"clientid":"y","error":"unknown clientid"}"#, "x").is_err());
        assert!(unknown(r#"{"clientid":"x","error":"not found"}"#, "x").is_err());
    }
}
