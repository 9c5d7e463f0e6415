//! The hit event of SPEC 2: a lenient wire shape that never fails on field
//! types (so every problem becomes a precise [`HitError`]), then validation.

use crate::time::{
    MAX_EVENT_MS, MIN_EVENT_MS, check_event_bounds, parse_rfc3339_millis, write_rfc3339_millis,
};
use crate::{Gender, HitError, validate_clientid, validate_hitid};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::borrow::Cow;
use std::fmt;

/// A validated hit as accepted at ingest. `event_ms` is `None` when the
/// producer sent no timestamp: delivery then uses the arrival time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncomingHit {
    pub clientid: String,
    pub gender: Gender,
    pub event_ms: Option<i64>,
    /// The producer's `hitid`; the API assigns one before storing the hit
    /// when the producer sent none (SPEC 2, 15).
    pub hitid: Option<String>,
}

impl IncomingHit {
    /// The normalized JSON line (no trailing newline) stored in the log / stream.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        write_hit_json(
            &self.clientid,
            self.gender,
            self.event_ms,
            self.hitid.as_deref(),
            out,
        );
    }

    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(96);
        self.write_json(&mut out);
        out
    }
}

/// A hit with its event time: a line of a raw object, a row of curated data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit<'a> {
    pub clientid: Cow<'a, str>,
    pub gender: Gender,
    pub event_ms: i64,
    /// `None` only for hits that entered without going through the API
    /// (records written straight into the stream, or log records of a
    /// version before `hitid`): those have no identity to deduplicate by.
    pub hitid: Option<Cow<'a, str>>,
}

impl Hit<'_> {
    pub fn into_owned(self) -> Hit<'static> {
        Hit {
            clientid: Cow::Owned(self.clientid.into_owned()),
            gender: self.gender,
            event_ms: self.event_ms,
            hitid: self.hitid.map(|id| Cow::Owned(id.into_owned())),
        }
    }

    /// The normalized NDJSON line of SPEC 5, `\n`-terminated.
    pub fn write_ndjson(&self, out: &mut Vec<u8>) {
        write_hit_json(
            &self.clientid,
            self.gender,
            Some(self.event_ms),
            self.hitid.as_deref(),
            out,
        );
        out.push(b'\n');
    }
}

/// The one normalized JSON shape of a hit, with or without its timestamp
/// and `hitid` (always in this order: the raw-line fast path relies on it).
fn write_hit_json(
    clientid: &str,
    gender: Gender,
    event_ms: Option<i64>,
    hitid: Option<&str>,
    out: &mut Vec<u8>,
) {
    out.extend_from_slice(b"{\"clientid\":\"");
    // The clientid alphabet needs no JSON escaping.
    out.extend_from_slice(clientid.as_bytes());
    out.extend_from_slice(b"\",\"pageGender\":\"");
    out.extend_from_slice(gender.as_str().as_bytes());
    out.push(b'"');
    if let Some(ms) = event_ms {
        out.extend_from_slice(b",\"timestamp\":\"");
        write_rfc3339_millis(ms, out);
        out.push(b'"');
    }
    if let Some(id) = hitid {
        out.extend_from_slice(b",\"hitid\":\"");
        // Same alphabet as clientid: nothing to escape.
        out.extend_from_slice(id.as_bytes());
        out.push(b'"');
    }
    out.push(b'}');
}

/// A field value of any JSON type, kept only as far as validation needs.
#[derive(Debug, Default)]
enum Field<'a> {
    #[default]
    Absent,
    Null,
    Str(Cow<'a, str>),
    Int(i64),
    Other,
}

impl<'de> Deserialize<'de> for Field<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = Field<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(Field::Str(Cow::Owned(v)))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(Field::Int(v))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(i64::try_from(v).map_or(Field::Other, Field::Int))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(Field::Other)
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(Field::Null)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Field::Other)
            }
        }
        d.deserialize_any(FieldVisitor)
    }
}

/// The four fields we read from a hit object; unknown fields are skipped.
#[derive(Debug, Default)]
pub struct WireHit<'a> {
    clientid: Field<'a>,
    page_gender: Field<'a>,
    timestamp: Field<'a>,
    hitid: Field<'a>,
}

impl WireHit<'_> {
    fn clientid(&self) -> Result<&str, HitError> {
        match &self.clientid {
            Field::Absent | Field::Null => Err(HitError::MissingClientId),
            Field::Str(s) => validate_clientid(s).map(|()| s.as_ref()),
            _ => Err(HitError::InvalidClientId),
        }
    }

    /// `None` when absent or null: the API assigns one (SPEC 2).
    fn hitid(&self) -> Result<Option<&str>, HitError> {
        match &self.hitid {
            Field::Absent | Field::Null => Ok(None),
            Field::Str(s) => validate_hitid(s).map(|()| Some(s.as_ref())),
            _ => Err(HitError::InvalidHitId),
        }
    }

    fn gender(&self) -> Result<Gender, HitError> {
        match &self.page_gender {
            Field::Absent | Field::Null => Err(HitError::MissingPageGender),
            Field::Str(s) => Gender::parse(s).ok_or(HitError::InvalidPageGender),
            _ => Err(HitError::InvalidPageGender),
        }
    }

    /// `None` when absent or null (SPEC 13), else epoch ms within the bounds
    /// relative to `reference_ms` (now at ingest, arrival time at delivery).
    fn event_ms(&self, reference_ms: Option<i64>) -> Result<Option<i64>, HitError> {
        let ms = match &self.timestamp {
            Field::Absent | Field::Null => return Ok(None),
            Field::Str(s) => parse_rfc3339_millis(s)?,
            Field::Int(ms) => *ms,
            Field::Other => return Err(HitError::InvalidTimestamp),
        };
        match reference_ms {
            Some(reference) => check_event_bounds(ms, reference)?,
            // Raw lines have no reference time: the lower bound applies, and
            // the last instant RFC 3339 can write (a date curate can file).
            None if ms < MIN_EVENT_MS => return Err(HitError::TimestampTooOld),
            None if ms > MAX_EVENT_MS => return Err(HitError::TimestampInFuture),
            None => {}
        }
        Ok(Some(ms))
    }

    /// Validation at ingest (SPEC 2, 3).
    pub fn validate_incoming(&self, now_ms: i64) -> Result<IncomingHit, HitError> {
        Ok(IncomingHit {
            clientid: self.clientid()?.to_owned(),
            gender: self.gender()?,
            event_ms: self.event_ms(Some(now_ms))?,
            hitid: self.hitid()?.map(str::to_owned),
        })
    }

    /// Validation at delivery: a missing timestamp becomes the arrival time.
    pub fn validate_delivered(&self, arrival_ms: i64) -> Result<Hit<'_>, HitError> {
        let clientid = self.clientid()?;
        let gender = self.gender()?;
        let event_ms = self.event_ms(Some(arrival_ms))?.unwrap_or(arrival_ms);
        Ok(Hit {
            clientid: Cow::Borrowed(clientid),
            gender,
            event_ms,
            hitid: self.hitid()?.map(Cow::Borrowed),
        })
    }
}

impl<'a> WireHit<'a> {
    /// Validation of a raw object line, which must carry its event time.
    pub fn into_raw_hit(self) -> Result<Hit<'a>, HitError> {
        let gender = self.gender()?;
        let event_ms = self.event_ms(None)?.ok_or(HitError::MissingTimestamp)?;
        self.clientid()?;
        self.hitid()?;
        let Field::Str(clientid) = self.clientid else {
            return Err(HitError::InvalidClientId);
        };
        let hitid = match self.hitid {
            Field::Str(id) => Some(id),
            _ => None,
        };
        Ok(Hit {
            clientid,
            gender,
            event_ms,
            hitid,
        })
    }
}

/// One element of a hit batch: a hit object, or the reason it is not one.
pub struct HitSlot<'a>(pub Result<WireHit<'a>, HitError>);

struct HitVisitor;

fn not_an_object<'a, E>(kind: &str) -> Result<HitSlot<'a>, E> {
    Ok(HitSlot(Err(HitError::NotAnObject(format!("got {kind}")))))
}

impl<'de> Visitor<'de> for HitVisitor {
    type Value = HitSlot<'de>;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a hit object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut hit = WireHit::default();
        while let Some(key) = map.next_key::<Cow<'de, str>>()? {
            match key.as_ref() {
                "clientid" => hit.clientid = map.next_value()?,
                "pageGender" => hit.page_gender = map.next_value()?,
                "timestamp" => hit.timestamp = map.next_value()?,
                "hitid" => hit.hitid = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(HitSlot(Ok(hit)))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        not_an_object("an array")
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        not_an_object("a string")
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        not_an_object("a number")
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        not_an_object("a number")
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        not_an_object("a number")
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        not_an_object("a boolean")
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        not_an_object("null")
    }
}

impl<'de> Deserialize<'de> for HitSlot<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(HitVisitor)
    }
}

/// Parses one JSON document expected to be a hit object. A syntax error and a
/// non-object both come back as [`HitError::NotAnObject`].
///
/// Flat objects of plain ASCII strings, integers and literals (what producers
/// and delivery send) take a hand-written scanner; anything else (escapes,
/// non-ASCII, nested values, floats, duplicate fields, syntax errors) goes to
/// serde_json, so both paths give the same answer for every input.
pub fn parse_hit(json: &[u8]) -> Result<WireHit<'_>, HitError> {
    if let Some(hit) = scan_flat_hit(json) {
        return Ok(hit);
    }
    parse_hit_serde(json)
}

/// The general path of [`parse_hit`] (serde_json), kept separate for tests.
pub fn parse_hit_serde(json: &[u8]) -> Result<WireHit<'_>, HitError> {
    match serde_json::from_slice::<HitSlot>(json) {
        Ok(HitSlot(slot)) => slot,
        Err(e) => Err(HitError::NotAnObject(e.to_string())),
    }
}

/// A byte cursor for [`scan_flat_hit`]; every method returns `None` where
/// the input needs the general parser.
struct Scan<'a> {
    b: &'a [u8],
    i: usize,
}

impl<'a> Scan<'a> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.b.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Option<()> {
        (self.b.get(self.i) == Some(&c)).then(|| self.i += 1)
    }

    /// A string of printable ASCII without escapes, cursor on its opening quote.
    #[inline]
    fn plain_string(&mut self) -> Option<&'a str> {
        self.eat(b'"')?;
        let start = self.i;
        loop {
            match *self.b.get(self.i)? {
                b'"' => break,
                b'\\' | 0..=0x1f | 0x7f.. => return None,
                _ => self.i += 1,
            }
        }
        let s = &self.b[start..self.i];
        self.i += 1;
        std::str::from_utf8(s).ok()
    }

    fn literal(&mut self, word: &[u8]) -> Option<()> {
        let end = self.i + word.len();
        (self.b.get(self.i..end)? == word).then(|| self.i = end)
    }

    fn digits(&mut self) -> usize {
        let start = self.i;
        while self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
            self.i += 1;
        }
        self.i - start
    }

    /// A JSON number by the strict grammar; `Some(true)` if it is an integer.
    fn number(&mut self) -> Option<bool> {
        let _ = self.eat(b'-');
        match self.b.get(self.i)? {
            b'0' => {
                self.i += 1;
                if self.b.get(self.i).is_some_and(u8::is_ascii_digit) {
                    return None;
                }
            }
            b'1'..=b'9' => {
                self.digits();
            }
            _ => return None,
        }
        let mut integer = true;
        if self.eat(b'.').is_some() {
            integer = false;
            if self.digits() == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.b.get(self.i) {
            integer = false;
            self.i += 1;
            if let Some(b'+' | b'-') = self.b.get(self.i) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return None;
            }
        }
        Some(integer)
    }

    /// The value of a field we read.
    fn field(&mut self) -> Option<Field<'a>> {
        match *self.b.get(self.i)? {
            b'"' => self.plain_string().map(|s| Field::Str(Cow::Borrowed(s))),
            b'n' => self.literal(b"null").map(|()| Field::Null),
            b't' => self.literal(b"true").map(|()| Field::Other),
            b'f' => self.literal(b"false").map(|()| Field::Other),
            b'-' | b'0'..=b'9' => {
                let start = self.i;
                // Floats, `-0` (a float to serde_json) and integers near the
                // i64/u64 limits: serde decides.
                if !self.number()? || self.i - start > 18 || &self.b[start..self.i] == b"-0" {
                    return None;
                }
                let text = std::str::from_utf8(&self.b[start..self.i]).ok()?;
                text.parse().ok().map(Field::Int)
            }
            _ => None,
        }
    }

    /// Skips the value of an unknown field (no nesting on this path).
    fn skip(&mut self) -> Option<()> {
        match *self.b.get(self.i)? {
            b'"' => self.plain_string().map(drop),
            b'n' => self.literal(b"null"),
            b't' => self.literal(b"true"),
            b'f' => self.literal(b"false"),
            b'-' | b'0'..=b'9' => self.number().map(drop),
            _ => None,
        }
    }
}

/// The fast path of [`parse_hit`]: `None` hands the input to serde_json.
fn scan_flat_hit(json: &[u8]) -> Option<WireHit<'_>> {
    let mut s = Scan { b: json, i: 0 };
    let mut hit = WireHit::default();
    let mut seen = 0u8;
    s.ws();
    s.eat(b'{')?;
    s.ws();
    if s.eat(b'}').is_none() {
        loop {
            let key = s.plain_string()?;
            s.ws();
            s.eat(b':')?;
            s.ws();
            let (slot, bit) = match key {
                "clientid" => (&mut hit.clientid, 1),
                "pageGender" => (&mut hit.page_gender, 2),
                "timestamp" => (&mut hit.timestamp, 4),
                "hitid" => (&mut hit.hitid, 8),
                _ => {
                    s.skip()?;
                    s.ws();
                    if s.eat(b',').is_some() {
                        s.ws();
                        continue;
                    }
                    s.eat(b'}')?;
                    break;
                }
            };
            // A repeated field: serde's answer (the last value) is the rule.
            if seen & bit != 0 {
                return None;
            }
            seen |= bit;
            *slot = s.field()?;
            s.ws();
            if s.eat(b',').is_some() {
                s.ws();
                continue;
            }
            s.eat(b'}')?;
            break;
        }
    }
    s.ws();
    (s.i == json.len()).then_some(hit)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_514_400_000; // 2026-11-24T10:00:00Z

    fn incoming(json: &str) -> Result<IncomingHit, HitError> {
        parse_hit(json.as_bytes())?.validate_incoming(NOW)
    }

    #[test]
    fn normalizes_gender_and_accepts_both_timestamp_forms() {
        let hit = incoming(r#"{"clientid":"abc","pageGender":"f","timestamp":1795514400000}"#);
        assert_eq!(
            hit,
            Ok(IncomingHit {
                clientid: "abc".into(),
                gender: Gender::F,
                event_ms: Some(NOW),
                hitid: None,
            })
        );
        let hit = incoming(
            r#"{"clientid":"a","pageGender":"M","timestamp":"2026-11-24T11:00:00+01:00"}"#,
        );
        assert_eq!(hit.unwrap().event_ms, Some(NOW));
    }

    #[test]
    fn absent_or_null_timestamp_is_none_and_unknown_fields_are_ignored() {
        let hit = incoming(r#"{"clientid":"a","pageGender":"M","timestamp":null,"x":[1,{"y":2}]}"#);
        assert_eq!(hit.unwrap().event_ms, None);
        assert_eq!(
            incoming(r#"{"pageGender":"M","clientid":"a"}"#)
                .unwrap()
                .event_ms,
            None
        );
    }

    #[test]
    fn each_rule_has_its_own_error() {
        let cases = [
            (r#"{"pageGender":"M"}"#, HitError::MissingClientId),
            (
                r#"{"clientid":null,"pageGender":"M"}"#,
                HitError::MissingClientId,
            ),
            (
                r#"{"clientid":5,"pageGender":"M"}"#,
                HitError::InvalidClientId,
            ),
            (
                r#"{"clientid":"a b","pageGender":"M"}"#,
                HitError::InvalidClientId,
            ),
            (r#"{"clientid":"a"}"#, HitError::MissingPageGender),
            (
                r#"{"clientid":"a","pageGender":"X"}"#,
                HitError::InvalidPageGender,
            ),
            (
                r#"{"clientid":"a","pageGender":1}"#,
                HitError::InvalidPageGender,
            ),
            (
                r#"{"clientid":"a","pageGender":"M","timestamp":"2026-11-24"}"#,
                HitError::InvalidTimestamp,
            ),
            (
                r#"{"clientid":"a","pageGender":"M","timestamp":1.5}"#,
                HitError::InvalidTimestamp,
            ),
            (
                r#"{"clientid":"a","pageGender":"M","timestamp":"1999-12-31T23:59:59Z"}"#,
                HitError::TimestampTooOld,
            ),
            (
                r#"{"clientid":"a","pageGender":"M","timestamp":1895514400000}"#,
                HitError::TimestampInFuture,
            ),
            (
                r#"{"clientid":"a","pageGender":"M","timestamp":18446744073709551615}"#,
                HitError::InvalidTimestamp,
            ),
        ];
        for (json, want) in cases {
            assert_eq!(incoming(json), Err(want), "{json}");
        }
        assert!(matches!(incoming("[1]"), Err(HitError::NotAnObject(_))));
        assert!(matches!(incoming("{"), Err(HitError::NotAnObject(_))));
    }

    #[test]
    fn hitid_is_optional_and_validated_like_clientid() {
        let hit = incoming(r#"{"clientid":"a","pageGender":"M","hitid":"r-1.x:Y_9"}"#).unwrap();
        assert_eq!(hit.hitid.as_deref(), Some("r-1.x:Y_9"));
        assert_eq!(
            incoming(r#"{"clientid":"a","pageGender":"M","hitid":null}"#)
                .unwrap()
                .hitid,
            None
        );
        let long = format!(
            r#"{{"clientid":"a","pageGender":"M","hitid":"{}"}}"#,
            "h".repeat(64)
        );
        assert!(incoming(&long).is_ok());
        for bad in [
            r#""""#.to_owned(),
            r#""a b""#.to_owned(),
            r#""é""#.to_owned(),
            "7".to_owned(),
            "[]".to_owned(),
            format!(r#""{}""#, "h".repeat(65)),
        ] {
            let json = format!(r#"{{"clientid":"a","pageGender":"M","hitid":{bad}}}"#);
            assert_eq!(incoming(&json), Err(HitError::InvalidHitId), "{json}");
        }
    }

    #[test]
    fn escaped_strings_are_decoded_before_validation() {
        let hit = incoming(r#"{"clientid":"\u0061b","pageGender":"\u004d"}"#).unwrap();
        assert_eq!((hit.clientid.as_str(), hit.gender), ("ab", Gender::M));
    }

    #[test]
    fn normalized_json_round_trips() {
        let hit = IncomingHit {
            clientid: "v-1".into(),
            gender: Gender::F,
            event_ms: Some(NOW + 7),
            hitid: Some("h:1".into()),
        };
        let json = hit.to_json();
        assert_eq!(
            std::str::from_utf8(&json).unwrap(),
            r#"{"clientid":"v-1","pageGender":"F","timestamp":"2026-11-24T10:00:00.007Z","hitid":"h:1"}"#
        );
        assert_eq!(parse_hit(&json).unwrap().validate_incoming(NOW), Ok(hit));
    }

    #[test]
    fn the_fast_scanner_agrees_with_serde_on_every_input() {
        let inputs = [
            r#"{"clientid":"a","pageGender":"M","timestamp":"2026-11-24T10:00:00Z"}"#,
            r#"  { "clientid" : "a" , "pageGender":"f" ,"timestamp": 1795514400000 }  "#,
            r#"{"clientid":"a","pageGender":"M","timestamp":-5}"#,
            r#"{"clientid":"a","pageGender":"M","timestamp":null}"#,
            r#"{"clientid":"a","pageGender":"M","timestamp":1.5}"#,
            r#"{"clientid":"a","pageGender":"M","timestamp":1e3}"#,
            r#"{"clientid":"a","pageGender":"M","timestamp":01}"#,
            r#"{"clientid":"a","pageGender":"M","timestamp":-}"#,
            r#"{"clientid":"a","pageGender":"M","timestamp":99999999999999999999}"#,
            r#"{"clientid":"a","pageGender":"M","timestamp":true}"#,
            r#"{"clientid":"a","pageGender":"M","x":1.5e-3,"y":false,"z":null,"w":"s"}"#,
            r#"{"clientid":"a","pageGender":"M","x":[1,2],"y":{"a":1}}"#,
            r#"{"clientid":"a","clientid":"b","pageGender":"M"}"#,
            r#"{"clientid":"a","pageGender":"M","hitid":"h-1"}"#,
            r#"{"clientid":"a","pageGender":"M","hitid":"h","hitid":"g"}"#,
            r#"{"clientid":"a","pageGender":"M","hitid":5}"#,
            r#"{"clientid":"a","pageGender":"M"}"#,
            r#"{"clientid":"é","pageGender":"M"}"#,
            r#"{"clientid":"a","pageGender":"M",}"#,
            r#"{"clientid":"a","pageGender":"M"} x"#,
            r#"{"clientid":"a" "pageGender":"M"}"#,
            r#"{"clientid":"a","pageGender":"M""#,
            r#"{}"#,
            r#"[]"#,
            r#""a""#,
            r#"5"#,
            r#"null"#,
            "",
            "{\"clientid\":\"a\",\"pageGender\":\"M\"}\n",
            "{\"clientid\":\"a\tb\",\"pageGender\":\"M\"}",
        ];
        let show = |r: Result<WireHit<'_>, HitError>| match r {
            Ok(w) => format!("{w:?}"),
            // serde's message carries positions; the kind is what must agree.
            Err(HitError::NotAnObject(_)) => "not an object".to_owned(),
            Err(e) => format!("{e:?}"),
        };
        for input in inputs {
            let fast = show(parse_hit(input.as_bytes()));
            let slow = show(parse_hit_serde(input.as_bytes()));
            assert_eq!(fast, slow, "{input}");
        }
        // Every prefix of a valid hit, too.
        let full = r#"{"page":"/a","clientid":"v-1","pageGender":"F","timestamp":"2026-11-24T10:00:00.123Z","hitid":"h.7","n":-1.5E+2}"#;
        for end in 0..=full.len() {
            let input = &full.as_bytes()[..end];
            assert_eq!(
                show(parse_hit(input)),
                show(parse_hit_serde(input)),
                "{end}"
            );
        }
    }
}
