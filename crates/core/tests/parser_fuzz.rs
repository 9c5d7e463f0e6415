//! Fuzzing the hit parser: [`parse_hit`] (a hand-written scanner for flat
//! objects with a serde_json fallback), the three validations built on it
//! (ingest, delivery, raw lines), the raw-line fast path of curate, and the
//! request body parser, differentially against a reference written here from
//! SPEC 2, 3 and 13 on top of `serde_json::Value`.
//!
//! Bounded: each property runs the case count given below in a normal
//! `cargo test`; `PROPTEST_CASES=N` (proptest's own variable) runs N cases of
//! every property instead, for a long hunt.
//!
//! Where SPEC leaves a choice open, the reference takes the product's:
//! - Which error a hit breaking several rules gets is not specified: the
//!   product's error must be one of the rules the reference finds broken.
//! - A number is an integer timestamp when serde_json reads it as one: `1.0`,
//!   `1e3` and `-0` are not integers (so they are invalid timestamps).
//! - A line of ASCII whitespace only (form feed included) is blank: skipped
//!   in NDJSON bodies and raw objects.
//! - `hitid` (SPEC 2) is not generated here: it is not read by these parsers.

use gender_core::hit::{IncomingHit, parse_hit, parse_hit_serde};
use gender_core::ingest::{BatchError, BodyFormat, parse_batch};
use gender_core::time::{MAX_EVENT_MS, MAX_FUTURE_MS, MIN_EVENT_MS, parse_rfc3339_millis};
use gender_core::transform::transform_record;
use gender_core::{Date, Gender, Hit, HitError, LineSplitter, parse_raw_line, parse_raw_object};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use std::collections::HashMap;
use std::fmt;

/// `cases` per property in a normal test run; `PROPTEST_CASES` overrides it.
/// Failing inputs are kept in `tests/<this file>.proptest-regressions` and
/// re-run first.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_some() {
        default
    } else {
        ProptestConfig { cases, ..default }
    }
}

/// 2026-11-24T10:00:00Z: "now" at ingest, the arrival time at delivery.
const NOW: i64 = 1_795_514_400_000;

// ---------------------------------------------------------------------------
// The reference: SPEC 2's rules on a serde_json::Value.

#[derive(Debug, Clone, Copy)]
enum Check {
    /// Ingest: the timestamp is optional and bounded by "now".
    Incoming(i64),
    /// Delivery: a missing timestamp is the arrival time, which bounds it.
    Delivered(i64),
    /// A raw object line: the timestamp is required; no reference time, so
    /// only the range RFC 3339 can write bounds it from above.
    Raw,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct RefHit {
    clientid: String,
    gender: Gender,
    event_ms: Option<i64>,
}

/// A JSON document as the reference reads it: an object keeps the fields
/// SPEC 2 names (the last of repeated ones) as serde_json Values; unknown
/// fields are skipped unread (SPEC 2: ignored), so a value a Value cannot
/// hold (a number beyond f64) is harmless there, as it is inside an array
/// given as a field's value. Anything else is not an object.
enum Doc {
    Object(HashMap<String, Value>),
    Other,
}

struct DocVisitor;

impl<'de> Visitor<'de> for DocVisitor {
    type Value = Doc;
    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Doc, A::Error> {
        let mut fields = HashMap::new();
        while let Some(key) = map.next_key::<String>()? {
            if ["clientid", "pageGender", "timestamp"].contains(&key.as_str()) {
                fields.insert(key, map.next_value::<FieldValue>()?.0);
            } else {
                map.next_value::<IgnoredAny>()?;
            }
        }
        Ok(Doc::Object(fields))
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Doc, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Doc::Other)
    }
    fn visit_bool<E>(self, _: bool) -> Result<Doc, E> {
        Ok(Doc::Other)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Doc, E> {
        Ok(Doc::Other)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Doc, E> {
        Ok(Doc::Other)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Doc, E> {
        Ok(Doc::Other)
    }
    fn visit_str<E>(self, _: &str) -> Result<Doc, E> {
        Ok(Doc::Other)
    }
    fn visit_unit<E>(self) -> Result<Doc, E> {
        Ok(Doc::Other)
    }
}

impl<'de> Deserialize<'de> for Doc {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Doc, D::Error> {
        d.deserialize_any(DocVisitor)
    }
}

/// The value of a field SPEC 2 names, as a serde_json Value: scalars as
/// they are; an array or object of any content (the wrong type for every
/// field) as an empty one.
struct FieldValue(Value);

impl<'de> Deserialize<'de> for FieldValue {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<FieldValue, D::Error> {
        struct FieldVisitor;
        impl<'de> Visitor<'de> for FieldVisitor {
            type Value = FieldValue;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<FieldValue, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(FieldValue(Value::Object(serde_json::Map::new())))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<FieldValue, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(FieldValue(Value::Array(Vec::new())))
            }
            fn visit_bool<E>(self, v: bool) -> Result<FieldValue, E> {
                Ok(FieldValue(v.into()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<FieldValue, E> {
                Ok(FieldValue(v.into()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<FieldValue, E> {
                Ok(FieldValue(v.into()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<FieldValue, E> {
                Ok(FieldValue(v.into()))
            }
            fn visit_str<E>(self, v: &str) -> Result<FieldValue, E> {
                Ok(FieldValue(v.into()))
            }
            fn visit_unit<E>(self) -> Result<FieldValue, E> {
                Ok(FieldValue(Value::Null))
            }
        }
        d.deserialize_any(FieldVisitor)
    }
}

/// A request body: one document, an array of them, or anything else.
enum Body {
    One(Doc),
    Many(Vec<Doc>),
    Other,
}

impl<'de> Deserialize<'de> for Body {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Body, D::Error> {
        struct BodyVisitor;
        impl<'de> Visitor<'de> for BodyVisitor {
            type Value = Body;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Body, A::Error> {
                DocVisitor.visit_map(map).map(Body::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Body, A::Error> {
                let mut docs = Vec::new();
                while let Some(doc) = seq.next_element::<Doc>()? {
                    docs.push(doc);
                }
                Ok(Body::Many(docs))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_i64<E>(self, _: i64) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_u64<E>(self, _: u64) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_f64<E>(self, _: f64) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_str<E>(self, _: &str) -> Result<Body, E> {
                Ok(Body::Other)
            }
            fn visit_unit<E>(self) -> Result<Body, E> {
                Ok(Body::Other)
            }
        }
        d.deserialize_any(BodyVisitor)
    }
}

/// The valid hit, or every rule the document breaks (never empty).
fn reference_doc(doc: &Doc, check: Check) -> RefAnswer {
    let Doc::Object(object) = doc else {
        return Err(vec![HitError::NotAnObject(String::new())]);
    };
    let mut broken = Vec::new();
    let clientid = match object.get("clientid") {
        None | Some(Value::Null) => {
            broken.push(HitError::MissingClientId);
            None
        }
        Some(Value::String(s))
            if (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".:_-".contains(&b)) =>
        {
            Some(s.clone())
        }
        Some(_) => {
            broken.push(HitError::InvalidClientId);
            None
        }
    };
    let gender = match object.get("pageGender") {
        None | Some(Value::Null) => {
            broken.push(HitError::MissingPageGender);
            None
        }
        Some(Value::String(s)) if s == "M" || s == "m" => Some(Gender::M),
        Some(Value::String(s)) if s == "F" || s == "f" => Some(Gender::F),
        Some(_) => {
            broken.push(HitError::InvalidPageGender);
            None
        }
    };
    let ms = match object.get("timestamp") {
        None | Some(Value::Null) => Ok(None),
        // The RFC 3339 parser is fuzzed on its own against `time` (rfc3339_fuzz.rs).
        Some(Value::String(s)) => parse_rfc3339_millis(s)
            .map(Some)
            .map_err(|_| HitError::InvalidTimestamp),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or(HitError::InvalidTimestamp),
        Some(_) => Err(HitError::InvalidTimestamp),
    };
    let (min, max) = match check {
        Check::Incoming(now) | Check::Delivered(now) => (MIN_EVENT_MS, now + MAX_FUTURE_MS),
        Check::Raw => (MIN_EVENT_MS, MAX_EVENT_MS),
    };
    let event_ms = match ms {
        Err(e) => {
            broken.push(e);
            None
        }
        Ok(Some(ms)) if ms < min => {
            broken.push(HitError::TimestampTooOld);
            None
        }
        Ok(Some(ms)) if ms > max => {
            broken.push(HitError::TimestampInFuture);
            None
        }
        Ok(Some(ms)) => Some(ms),
        Ok(None) => match check {
            Check::Incoming(_) => None,
            Check::Delivered(arrival) => Some(arrival),
            Check::Raw => {
                broken.push(HitError::MissingTimestamp);
                None
            }
        },
    };
    match (clientid, gender) {
        (Some(clientid), Some(gender)) if broken.is_empty() => Ok(RefHit {
            clientid,
            gender,
            event_ms,
        }),
        _ => Err(broken),
    }
}

fn reference(json: &[u8], check: Check) -> RefAnswer {
    match serde_json::from_slice::<Doc>(json) {
        Ok(doc) => reference_doc(&doc, check),
        Err(_) => Err(vec![HitError::NotAnObject(String::new())]),
    }
}

/// The error's kind: `NotAnObject` carries serde's message with positions.
fn kind(e: &HitError) -> HitError {
    match e {
        HitError::NotAnObject(_) => HitError::NotAnObject(String::new()),
        other => other.clone(),
    }
}

/// The product's answer must be the reference's: the same hit, or an error
/// naming one of the rules the reference found broken.
fn agree<T: std::fmt::Debug>(
    got: Result<T, HitError>,
    want: &RefAnswer,
    same: impl Fn(&T, &RefHit) -> bool,
    input: &[u8],
) -> Result<(), TestCaseError> {
    let input = String::from_utf8_lossy(input);
    match (&got, want) {
        (Ok(got), Ok(want)) => prop_assert!(same(got, want), "{input:?}: {got:?} != {want:?}"),
        (Err(e), Err(broken)) => prop_assert!(
            broken.contains(&kind(e)),
            "{input:?}: error {e:?} is not among {broken:?}"
        ),
        _ => prop_assert!(false, "{input:?}: got {got:?}, want {want:?}"),
    }
    Ok(())
}

/// The normalized line SPEC 5 asks for, written from the reference's fields.
fn normalized_line(hit: &RefHit, ms: i64) -> String {
    let dt = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap();
    format!(
        "{{\"clientid\":\"{}\",\"pageGender\":\"{}\",\"timestamp\":\"{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z\"}}",
        hit.clientid,
        hit.gender,
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

// ---------------------------------------------------------------------------
// Generators of JSON text: hit objects with arbitrary field orders,
// whitespace, escapes, unknown and duplicate fields, numbers, nulls, unicode.

/// A tiny deterministic choice stream, so that one `u64` drives every
/// whitespace and escape decision of a rendering.
struct Dice(u64);

impl Dice {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn one_in(&mut self, n: u64) -> bool {
        self.next().is_multiple_of(n)
    }
    fn ws(&mut self) -> &'static str {
        // Mostly nothing, as producers write; sometimes every JSON whitespace.
        const WS: [&str; 8] = ["", "", "", "", " ", "\t", "\r\n", " \n  "];
        WS[(self.next() % WS.len() as u64) as usize]
    }
}

/// `s` as a JSON string literal; with `escape`, some characters that need
/// no escape get one anyway (`\uXXXX`, surrogate pairs, `\/`).
fn render_string(s: &str, escape: bool, dice: &mut Dice) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            '/' if escape && dice.one_in(2) => out.push_str("\\/"),
            c if escape && dice.one_in(4) => {
                let mut units = [0u16; 2];
                for unit in c.encode_utf16(&mut units) {
                    if dice.one_in(2) {
                        out.push_str(&format!("\\u{unit:04X}"));
                    } else {
                        out.push_str(&format!("\\u{unit:04x}"));
                    }
                }
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A JSON value before rendering.
#[derive(Debug, Clone)]
enum J {
    /// A literal token written as is: numbers, `null`, `true`, `false`.
    Token(String),
    Str(String),
    Array(Vec<J>),
    Object(Vec<(String, J)>),
}

impl J {
    fn render(&self, escape: bool, dice: &mut Dice, out: &mut String) {
        match self {
            J::Token(t) => out.push_str(t),
            J::Str(s) => out.push_str(&render_string(s, escape, dice)),
            J::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(dice.ws());
                        out.push(',');
                    }
                    out.push_str(dice.ws());
                    item.render(escape, dice, out);
                }
                out.push_str(dice.ws());
                out.push(']');
            }
            J::Object(fields) => {
                out.push_str(dice.ws());
                out.push('{');
                for (i, (key, value)) in fields.iter().enumerate() {
                    if i > 0 {
                        out.push_str(dice.ws());
                        out.push(',');
                    }
                    out.push_str(dice.ws());
                    out.push_str(&render_string(key, escape, dice));
                    out.push_str(dice.ws());
                    out.push(':');
                    out.push_str(dice.ws());
                    value.render(escape, dice, out);
                }
                out.push_str(dice.ws());
                out.push('}');
                out.push_str(dice.ws());
            }
        }
    }
}

fn tokens(list: &'static [&'static str]) -> impl Strategy<Value = J> {
    proptest::sample::select(list).prop_map(|t| J::Token(t.to_owned()))
}

/// Numbers of every JSON shape, and a few that are not JSON at all.
fn number() -> impl Strategy<Value = J> {
    prop_oneof![
        1 => any::<i64>().prop_map(|n| J::Token(n.to_string())),
        1 => any::<u64>().prop_map(|n| J::Token(n.to_string())),
        1 => (-1e20f64..1e20).prop_map(|f| J::Token(format!("{f:?}"))),
        1 => (-1e20f64..1e20).prop_map(|f| J::Token(format!("{f:e}"))),
        4 => tokens(&[
            "0",
            "-0",
            "-1",
            "0.0",
            "-0.0",
            "1E3",
            "1e+3",
            "1e-3",
            "123456789012345678",
            "-123456789012345678",
            "1234567890123456789",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775808",
            "-9223372036854775809",
            "18446744073709551615",
            "18446744073709551616",
            "1e400",
            "01",
            "1.",
            ".5",
            "+1",
            "-",
            "1795514400000",
            "1795514400000.0",
            "1.7955144e12",
            "946684800000",
            "946684799999",
            "1795600800000",
            "1795600800001",
            "253402300799999",
            "253402300800000",
            "185542587100000000",
        ]),
    ]
}

/// Any JSON value, nested a little.
fn any_value() -> impl Strategy<Value = J> {
    let leaf = prop_oneof![
        tokens(&["null", "true", "false", "nul", "True"]),
        number(),
        any::<String>().prop_map(J::Str),
        "[ -~]{0,12}".prop_map(J::Str),
    ];
    leaf.prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(J::Array),
            proptest::collection::vec((key(), inner), 0..4).prop_map(J::Object),
        ]
    })
}

fn clientid_value() -> impl Strategy<Value = J> {
    prop_oneof![
        6 => "[A-Za-z0-9._:-]{1,64}".prop_map(J::Str),
        1 => "[A-Za-z0-9._:-]{63,66}".prop_map(J::Str),
        1 => "[A-Za-z0-9._:/ é-]{0,8}".prop_map(J::Str),
        1 => any_value(),
    ]
}

fn gender_value() -> impl Strategy<Value = J> {
    prop_oneof![
        6 => proptest::sample::select(&["M", "F", "m", "f"][..]).prop_map(|g| J::Str(g.into())),
        1 => proptest::sample::select(&["", "X", "MF", " M", "M ", "Ｍ", "µ", "male"][..])
            .prop_map(|g| J::Str(g.into())),
        1 => any_value(),
    ]
}

/// RFC 3339 text around NOW, at the bounds, and near misses of it.
fn timestamp_text() -> impl Strategy<Value = String> {
    let around_now = (
        -40 * 86_400_000i64..3 * 86_400_000,
        proptest::sample::select(&[0i32, 60, -60, 330, -570, 23 * 60 + 59, -(23 * 60 + 59)][..]),
        0usize..=6,
        any::<bool>(),
    )
        .prop_map(|(delta, offset_min, frac_digits, lower)| {
            rfc3339(NOW + delta, offset_min, frac_digits, lower)
        });
    prop_oneof![
        6 => around_now,
        2 => proptest::sample::select(&[
            "2000-01-01T00:00:00Z",
            "1999-12-31T23:59:59.999Z",
            "1999-12-31T23:59:59.9999999Z",
            "2000-01-01T01:00:00+01:00",
            "2026-11-25T10:00:00Z",
            "2026-11-25T10:00:00.001Z",
            "2026-11-25T10:00:00.0009Z",
            "2026-11-24T23:59:60Z",
            "9999-12-31T23:59:59.999Z",
            "9999-12-31T23:59:60.000Z",
            "9999-12-31T23:00:00-05:00",
            "2026-11-24",
            "2026-11-24T10:00:00",
            "2026-11-24T10:00Z",
            "2026-11-24 10:00:00Z",
            "2026-02-29T10:00:00Z",
            "2026-11-24T10:00:00+0100",
            "",
        ][..]).prop_map(str::to_owned),
        1 => "[0-9:.TZz+-]{0,26}",
    ]
}

/// `ms` written as RFC 3339 in the given offset, with a fraction of
/// `frac_digits` (beyond 3 digits: the sub-millisecond ones are noise).
fn rfc3339(ms: i64, offset_min: i32, frac_digits: usize, lower: bool) -> String {
    let local = ms + offset_min as i64 * 60_000;
    let dt = time::OffsetDateTime::from_unix_timestamp_nanos(local as i128 * 1_000_000).unwrap();
    let frac = format!("{:03}987654", dt.millisecond());
    let frac = if frac_digits == 0 || (dt.millisecond() != 0 && frac_digits < 3) {
        String::new()
    } else {
        format!(".{}", &frac[..frac_digits])
    };
    let zone = match offset_min {
        0 if lower => "z".to_owned(),
        0 => "Z".to_owned(),
        m => format!(
            "{}{:02}:{:02}",
            if m < 0 { '-' } else { '+' },
            m.abs() / 60,
            m.abs() % 60
        ),
    };
    format!(
        "{:04}-{:02}-{:02}{}{:02}:{:02}:{:02}{frac}{zone}",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        if lower { 't' } else { 'T' },
        dt.hour(),
        dt.minute(),
        dt.second(),
    )
}

fn timestamp_value() -> impl Strategy<Value = J> {
    prop_oneof![
        4 => timestamp_text().prop_map(J::Str),
        2 => (-40 * 86_400_000i64..3 * 86_400_000).prop_map(|d| J::Token((NOW + d).to_string())),
        2 => number(),
        1 => any_value(),
    ]
}

/// Field names: the three read, near misses of them, and anything.
fn key() -> BoxedStrategy<String> {
    prop_oneof![
        proptest::sample::select(
            &[
                "page",
                "ref",
                "",
                "clientId",
                "ClientID",
                "clientid ",
                "pagegender",
                "page_gender",
                "Timestamp",
                "time",
                "é",
                "\u{0}",
            ][..]
        )
        .prop_map(str::to_owned),
        "[a-zA-Z]{1,10}",
        any::<String>(),
    ]
    .boxed()
}

/// One field of a hit object, keyed by what it is.
fn field() -> impl Strategy<Value = (String, J)> {
    prop_oneof![
        3 => clientid_value().prop_map(|v| ("clientid".to_owned(), v)),
        3 => gender_value().prop_map(|v| ("pageGender".to_owned(), v)),
        3 => timestamp_value().prop_map(|v| ("timestamp".to_owned(), v)),
        2 => (key(), any_value()),
    ]
}

/// A flat hit object of plain ASCII, the shape the fast scanner takes:
/// the three fields (each maybe missing, repeated or null) and scalar extras.
fn flat_hit_text() -> impl Strategy<Value = Vec<u8>> {
    let scalar = || {
        prop_oneof![
            tokens(&["null", "true", "false"]),
            number(),
            "[ -~]{0,12}".prop_map(J::Str),
        ]
    };
    let field = prop_oneof![
        2 => prop_oneof![3 => "[A-Za-z0-9._:-]{1,64}".prop_map(J::Str), 1 => scalar()]
            .prop_map(|v| ("clientid".to_owned(), v)),
        2 => prop_oneof![3 => "[MFmfX]".prop_map(J::Str), 1 => scalar()]
            .prop_map(|v| ("pageGender".to_owned(), v)),
        2 => prop_oneof![
            2 => timestamp_text().prop_map(J::Str),
            1 => (-40 * 86_400_000i64..3 * 86_400_000).prop_map(|d| J::Token((NOW + d).to_string())),
            3 => scalar(),
        ]
        .prop_map(|v| ("timestamp".to_owned(), v)),
        1 => ("[ -~]{0,10}", scalar()),
    ];
    (proptest::collection::vec(field, 0..6), any::<u64>()).prop_map(|(fields, seed)| {
        let mut out = String::new();
        J::Object(fields).render(false, &mut Dice(seed | 1), &mut out);
        out.into_bytes()
    })
}

/// A hit object: usually the three fields once each in some order, plus
/// extras; sometimes fields missing or repeated.
fn hit_object() -> impl Strategy<Value = J> {
    let usual = (
        clientid_value(),
        gender_value(),
        proptest::option::weighted(0.8, timestamp_value()),
        proptest::collection::vec(field(), 0..3),
        any::<u64>(),
    )
        .prop_map(|(c, g, t, extra, order)| {
            let mut fields = vec![("clientid".to_owned(), c), ("pageGender".to_owned(), g)];
            if let Some(t) = t {
                fields.push(("timestamp".to_owned(), t));
            }
            fields.extend(extra);
            // A permutation from `order`.
            let mut dice = Dice(order | 1);
            for i in (1..fields.len()).rev() {
                let j = (dice.next() % (i as u64 + 1)) as usize;
                fields.swap(i, j);
            }
            J::Object(fields)
        });
    prop_oneof![
        4 => usual,
        1 => proptest::collection::vec(field(), 0..7).prop_map(J::Object),
    ]
}

/// The text of a hit: mostly well-formed JSON, sometimes damaged.
fn hit_text() -> impl Strategy<Value = Vec<u8>> {
    (hit_object(), any::<u64>(), 0u8..4, damage()).prop_map(|(j, seed, escape, damage)| {
        let mut dice = Dice(seed | 1);
        let mut out = String::new();
        j.render(escape == 0, &mut dice, &mut out);
        damage.apply(out.into_bytes())
    })
}

#[derive(Debug, Clone)]
enum Damage {
    None,
    Truncate(usize),
    Overwrite(usize, u8),
    Insert(usize, u8),
    Append(Vec<u8>),
}

fn damage() -> impl Strategy<Value = Damage> {
    let byte = prop_oneof![
        proptest::sample::select(&b"{}[]\",:\\ 0-e.n\r\n\x0c"[..]),
        any::<u8>(),
    ];
    prop_oneof![
        12 => Just(Damage::None),
        1 => any::<usize>().prop_map(Damage::Truncate),
        1 => (any::<usize>(), byte.clone()).prop_map(|(i, b)| Damage::Overwrite(i, b)),
        1 => (any::<usize>(), byte).prop_map(|(i, b)| Damage::Insert(i, b)),
        1 => proptest::sample::select(TAILS).prop_map(|b| Damage::Append(b.to_vec())),
    ]
}

const TAILS: &[&[u8]] = &[b",", b"}", b" x", b"\x00", b"\xef\xbb\xbf"];

impl Damage {
    fn apply(&self, mut b: Vec<u8>) -> Vec<u8> {
        let n = b.len();
        match self {
            Damage::None => {}
            Damage::Truncate(i) => b.truncate(i % (n + 1)),
            Damage::Overwrite(i, c) if n > 0 => b[i % n] = *c,
            Damage::Insert(i, c) => b.insert(i % (n + 1), *c),
            Damage::Append(tail) => b.extend_from_slice(tail),
            Damage::Overwrite(..) => {}
        }
        b
    }
}

/// Exactly the line shape delivery writes (curate's fast path), with every
/// part varied: clientids near the limits, genders, instants at the bounds.
fn normalized_shape_line() -> impl Strategy<Value = Vec<u8>> {
    let id = prop_oneof![
        "[A-Za-z0-9._:-]{1,8}",
        "[A-Za-z0-9._:-]{63,65}",
        "[A-Za-z0-9._:/ é\"-]{0,4}",
    ];
    let gender = proptest::sample::select(&["M", "F", "m", "f", "X", "", "MM"][..]);
    let ts = prop_oneof![
        (MIN_EVENT_MS - 2000..MIN_EVENT_MS + 2000).prop_map(|ms| rfc3339(ms, 0, 3, false)),
        (NOW - 1000..NOW + 1000).prop_map(|ms| rfc3339(ms, 0, 3, false)),
        (MAX_EVENT_MS - 2000..=MAX_EVENT_MS).prop_map(|ms| rfc3339(ms, 0, 3, false)),
        proptest::sample::select(
            &[
                "9999-12-31T23:59:60.000Z",
                "9999-12-31T23:59:60.999Z",
                "1999-12-31T23:59:60.000Z",
                "2026-11-24T23:59:60.500Z",
                "2026-11-24t10:00:00.000Z",
                "2026-11-24T10:00:00.000z",
                "2026-02-29T10:00:00.000Z",
                "2026-11-24T10:00:00.00Z",
            ][..]
        )
        .prop_map(str::to_owned),
        "[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z",
    ];
    let ending = proptest::sample::select(&["", "\r", " ", "\r\r", "}"][..]);
    (id, gender, ts, ending).prop_map(|(id, g, ts, end)| {
        format!("{{\"clientid\":\"{id}\",\"pageGender\":\"{g}\",\"timestamp\":\"{ts}\"}}{end}")
            .into_bytes()
    })
}

// ---------------------------------------------------------------------------
// One input through every entry point.

fn check_one_hit(json: &[u8]) -> Result<(), TestCaseError> {
    let fast = parse_hit(json);
    let slow = parse_hit_serde(json);
    // The two paths of parse_hit give the same answer, to the field.
    prop_assert_eq!(
        fast.as_ref().map(|w| format!("{w:?}")).map_err(kind),
        slow.as_ref().map(|w| format!("{w:?}")).map_err(kind),
        "{:?}",
        String::from_utf8_lossy(json)
    );

    // Ingest.
    let got = fast
        .as_ref()
        .map_err(Clone::clone)
        .and_then(|w| w.validate_incoming(NOW));
    let want = reference(json, Check::Incoming(NOW));
    agree(
        got.clone(),
        &want,
        |g: &IncomingHit, w| {
            (g.clientid.as_str(), g.gender, g.event_ms)
                == (w.clientid.as_str(), w.gender, w.event_ms)
        },
        json,
    )?;
    if let Ok(hit) = &got {
        // What is stored in the log parses back to the same hit.
        let stored = hit.to_json();
        prop_assert_eq!(
            parse_hit(&stored).and_then(|w| w.validate_incoming(NOW)),
            Ok(hit.clone())
        );
        let value: Value = serde_json::from_slice(&stored).unwrap();
        let want = want.as_ref().unwrap();
        prop_assert_eq!(value["clientid"].as_str(), Some(want.clientid.as_str()));
        prop_assert_eq!(value["pageGender"].as_str(), Some(want.gender.as_str()));
    }

    // Delivery (SPEC 5): one normalized NDJSON line and the event date.
    let mut out = Vec::new();
    let got = transform_record(json, NOW, &mut out);
    let want = reference(json, Check::Delivered(NOW));
    agree(got.clone(), &want, |_, _| true, json)?;
    match (&got, &want) {
        (Ok(date), Ok(want)) => {
            let ms = want.event_ms.unwrap();
            prop_assert_eq!(out, format!("{}\n", normalized_line(want, ms)).into_bytes());
            prop_assert_eq!(*date, Date::of_millis(ms));
        }
        _ => prop_assert!(out.is_empty(), "output for a failed record"),
    }

    // A raw object line (curate).
    check_raw_line(json)
}

fn check_raw_line(line: &[u8]) -> Result<(), TestCaseError> {
    let got = parse_raw_line(line);
    let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
    if trimmed.iter().all(u8::is_ascii_whitespace) {
        prop_assert!(got.is_none(), "a blank line is no hit");
        return Ok(());
    }
    let Some(got) = got else {
        return Err(TestCaseError::fail(format!(
            "{:?} skipped as blank",
            String::from_utf8_lossy(line)
        )));
    };
    // The fixed-offset fast path answers exactly like the general parser...
    let general = parse_hit(trimmed).and_then(|w| w.into_raw_hit());
    prop_assert_eq!(&got, &general, "{:?}", String::from_utf8_lossy(line));
    // ...and like the reference.
    let want = reference(trimmed, Check::Raw);
    agree(
        got.clone(),
        &want,
        |g: &Hit, w| {
            (g.clientid.as_ref(), g.gender, Some(g.event_ms))
                == (w.clientid.as_str(), w.gender, w.event_ms)
        },
        line,
    )?;
    if let Ok(hit) = got {
        // Every accepted hit can be written back (RFC 3339, 4-digit year).
        let mut out = Vec::new();
        hit.write_ndjson(&mut out);
        let again = parse_raw_line(out.strip_suffix(b"\n").unwrap());
        prop_assert_eq!(again, Some(Ok(hit.clone())));
        let date = Date::of_millis(hit.event_ms).to_string();
        prop_assert_eq!(Date::parse(&date), Some(Date::of_millis(hit.event_ms)));
    }
    Ok(())
}

/// The reference's answer for one hit: the hit, or every rule it breaks.
type RefAnswer = Result<RefHit, Vec<HitError>>;

/// What parse_batch must answer, from the reference (SPEC 3, 13): each
/// hit's answer with its index.
fn reference_batch(body: &[u8], format: BodyFormat) -> Result<Vec<(usize, RefAnswer)>, BatchError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BatchError::Empty);
    }
    match format {
        BodyFormat::Json => {
            let body: Body =
                serde_json::from_slice(body).map_err(|_| BatchError::Malformed(String::new()))?;
            match body {
                Body::Many(docs) if docs.is_empty() => Err(BatchError::Malformed(String::new())),
                Body::Many(docs) if docs.len() > 500 => Err(BatchError::TooManyHits),
                Body::Many(docs) => Ok(docs
                    .iter()
                    .enumerate()
                    .map(|(i, doc)| (i, reference_doc(doc, Check::Incoming(NOW))))
                    .collect()),
                Body::One(doc) => Ok(vec![(0, reference_doc(&doc, Check::Incoming(NOW)))]),
                Body::Other => Err(BatchError::Malformed(String::new())),
            }
        }
        BodyFormat::Ndjson => {
            let text = std::str::from_utf8(body).map_err(|_| BatchError::NotUtf8)?;
            let lines: Vec<(usize, &str)> = text
                .split('\n')
                .map(|l| l.strip_suffix('\r').unwrap_or(l))
                .enumerate()
                .filter(|(_, l)| !l.bytes().all(|b| b.is_ascii_whitespace()))
                .collect();
            if lines.len() > 500 {
                return Err(BatchError::TooManyHits);
            }
            Ok(lines
                .into_iter()
                .map(|(i, l)| (i, reference(l.as_bytes(), Check::Incoming(NOW))))
                .collect())
        }
    }
}

fn check_batch(body: &[u8], format: BodyFormat) -> Result<(), TestCaseError> {
    let got = parse_batch(body, format, NOW);
    let want = reference_batch(body, format);
    let show = String::from_utf8_lossy(body);
    let (got, want) = match (got, want) {
        (Ok(got), Ok(want)) => (got, want),
        (Err(g), Err(w)) => {
            prop_assert_eq!(
                std::mem::discriminant(&g),
                std::mem::discriminant(&w),
                "{:?}: {:?} vs {:?}",
                show,
                g,
                w
            );
            return Ok(());
        }
        (got, want) => {
            return Err(TestCaseError::fail(format!(
                "{show:?}: got {got:?}, want {want:?}"
            )));
        }
    };
    let mut accepted = got.accepted.iter();
    let mut rejected = got.rejected.iter();
    for (index, want) in &want {
        match want {
            Ok(w) => {
                let Some((i, g)) = accepted.next() else {
                    return Err(TestCaseError::fail(format!(
                        "{show:?}: hit {index} not accepted"
                    )));
                };
                prop_assert_eq!(*i, *index);
                prop_assert_eq!(
                    (g.clientid.as_str(), g.gender, g.event_ms),
                    (w.clientid.as_str(), w.gender, w.event_ms)
                );
            }
            Err(broken) => {
                let Some(r) = rejected.next() else {
                    return Err(TestCaseError::fail(format!(
                        "{show:?}: hit {index} not rejected"
                    )));
                };
                prop_assert_eq!(r.index, *index);
                let named = broken.iter().any(|e| match e {
                    HitError::NotAnObject(_) => r.error.starts_with("not a JSON object"),
                    e => r.error == e.to_string(),
                });
                prop_assert!(named, "{:?}: {:?} is not among {:?}", show, r.error, broken);
            }
        }
    }
    prop_assert!(
        accepted.next().is_none() && rejected.next().is_none(),
        "{:?}: extra hits",
        show
    );
    Ok(())
}

fn separator() -> impl Strategy<Value = &'static str> {
    proptest::sample::select(&["\n", "\n", "\r\n", "\n\n", "\n \t\n", "\r\n\r\n"][..])
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn generated_hits_get_the_reference_answer(json in hit_text()) {
        check_one_hit(&json)?;
    }

    #[test]
    fn flat_hits_get_the_reference_answer(json in flat_hit_text()) {
        check_one_hit(&json)?;
    }

    #[test]
    fn normalized_lines_get_the_reference_answer(line in normalized_shape_line()) {
        check_one_hit(line.strip_suffix(b"\r").unwrap_or(&line))?;
        check_raw_line(&line)?;
    }

    #[test]
    fn json_alphabet_soup_gets_the_reference_answer(
        s in "[{}\\[\\]\":, 0-9a-zA-Z\\\\.eE+-]{0,40}",
        prefix in proptest::sample::select(&["", "{\"clientid\":", "{\"clientid\":\"a\",\"pageGender\":\"M\",\"timestamp\":"][..]),
    ) {
        check_one_hit(format!("{prefix}{s}").as_bytes())?;
    }

    #[test]
    fn arbitrary_bytes_never_panic_and_both_paths_agree(
        b in proptest::collection::vec(any::<u8>(), 0..64),
    ) {
        check_one_hit(&b)?;
        let _ = parse_raw_object(&b);
        check_batch(&b, BodyFormat::Json)?;
        check_batch(&b, BodyFormat::Ndjson)?;
    }

    #[test]
    fn json_bodies_get_the_reference_answer(
        hits in proptest::collection::vec(
            prop_oneof![4 => hit_text(), 1 => any_value().prop_map(|j| {
                let mut out = String::new();
                j.render(false, &mut Dice(7), &mut out);
                out.into_bytes()
            })],
            0..6,
        ),
        as_array in prop_oneof![4 => Just(true), 1 => Just(false)],
        ws in proptest::sample::select(&["", " ", "\n", "\r\n\t"][..]),
    ) {
        let body = if as_array || hits.len() != 1 {
            let mut body = format!("{ws}[").into_bytes();
            for (i, hit) in hits.iter().enumerate() {
                if i > 0 {
                    body.extend_from_slice(format!(",{ws}").as_bytes());
                }
                body.extend_from_slice(hit);
            }
            body.extend_from_slice(format!("]{ws}").as_bytes());
            body
        } else {
            hits[0].clone()
        };
        check_batch(&body, BodyFormat::Json)?;
    }

    #[test]
    fn ndjson_bodies_get_the_reference_answer(
        lines in proptest::collection::vec((hit_text(), separator()), 0..6),
        last_newline in any::<bool>(),
    ) {
        let mut body = Vec::new();
        for (i, (line, sep)) in lines.iter().enumerate() {
            body.extend_from_slice(line);
            if i + 1 < lines.len() || last_newline {
                body.extend_from_slice(sep.as_bytes());
            }
        }
        check_batch(&body, BodyFormat::Ndjson)?;
    }

    #[test]
    fn raw_objects_parse_line_by_line_whatever_the_chunking(
        lines in proptest::collection::vec(
            (prop_oneof![hit_text(), normalized_shape_line()], separator()),
            0..8,
        ),
        chunk in 1usize..64,
    ) {
        let mut raw = Vec::new();
        for (line, sep) in &lines {
            raw.extend_from_slice(line);
            raw.extend_from_slice(sep.as_bytes());
        }
        let parsed = parse_raw_object(&raw);
        let mut hits = Vec::new();
        let mut invalid = Vec::new();
        for (i, line) in raw.split(|&b| b == b'\n').enumerate() {
            check_raw_line(line)?;
            match parse_raw_line(line) {
                Some(Ok(hit)) => hits.push(hit),
                Some(Err(e)) => invalid.push((i, e)),
                None => {}
            }
        }
        prop_assert_eq!(&parsed.hits, &hits);
        prop_assert_eq!(&parsed.invalid_lines, &invalid);
        // Streaming in chunks of any size sees the same lines.
        let mut splitter = LineSplitter::new();
        let mut seen = Vec::new();
        for piece in raw.chunks(chunk) {
            splitter.push(piece, |i, l| seen.push((i, l.to_vec())));
        }
        splitter.finish(|i, l| seen.push((i, l.to_vec())));
        let mut whole: Vec<(usize, Vec<u8>)> =
            raw.split(|&b| b == b'\n').map(<[u8]>::to_vec).enumerate().collect();
        if whole.last().is_some_and(|(_, l)| l.is_empty()) {
            whole.pop();
        }
        prop_assert_eq!(seen, whole);
    }
}

/// Nesting past serde_json's depth limit is refused by both paths alike.
#[test]
fn deep_nesting_is_refused_alike() {
    for depth in [1, 100, 127, 128, 129, 1000] {
        let json = format!(
            "{{\"clientid\":\"a\",\"pageGender\":\"M\",\"x\":{}{}}}",
            "[".repeat(depth),
            "]".repeat(depth)
        );
        let r: Result<(), TestCaseError> = check_one_hit(json.as_bytes());
        r.unwrap();
    }
}

/// Found by the raw-line properties: a raw line's timestamp had no upper
/// bound, so `185542587100000000` (year ~5.9 million) was accepted and then
/// overflowed the calendar arithmetic when curate filed it under its date (a
/// panic in debug builds, a garbage `dt=` in release); and the leap second
/// `9999-12-31T23:59:60Z` reads as year 10000. Raw lines now stop at the last
/// instant RFC 3339 can write, on both the fast and the general path.
#[test]
fn regression_raw_lines_after_year_9999_are_refused() {
    let line = |ts: &str| format!(r#"{{"clientid":"a","pageGender":"M","timestamp":{ts}}}"#);
    for ts in [
        "185542587100000000",
        "253402300800000",
        "\"9999-12-31T23:59:60.000Z\"",
        "\"9999-12-31T23:00:00-05:00\"",
    ] {
        let line = line(ts);
        assert_eq!(
            parse_raw_line(line.as_bytes()),
            Some(Err(HitError::TimestampInFuture)),
            "{line}"
        );
    }
    for ts in ["253402300799999", "\"9999-12-31T23:59:59.999Z\""] {
        let line = line(ts);
        let hit = parse_raw_line(line.as_bytes()).unwrap().unwrap();
        assert_eq!(hit.event_ms, MAX_EVENT_MS, "{line}");
    }
}

/// Found by `flat_hits_get_the_reference_answer`: the fast scanner read `-0`
/// as the integer 0 while serde_json reads it as a float, so the two paths
/// of parse_hit disagreed (`TimestampTooOld` against `InvalidTimestamp`).
#[test]
fn regression_minus_zero_gets_the_same_answer_on_both_paths() {
    for json in [
        r#"{"clientid":"a","pageGender":"M","timestamp":-0}"#,
        r#"{"clientid":-0,"pageGender":"M"}"#,
        r#"{"clientid":"a","pageGender":"M","x":-0,"timestamp":-0}"#,
    ] {
        let fast = format!("{:?}", parse_hit(json.as_bytes()));
        let slow = format!("{:?}", parse_hit_serde(json.as_bytes()));
        assert_eq!(fast, slow, "{json}");
    }
    let json = br#"{"clientid":"a","pageGender":"M","timestamp":-0}"#;
    assert_eq!(
        parse_hit(json).and_then(|w| w.validate_incoming(NOW)),
        Err(HitError::InvalidTimestamp)
    );
}

/// Found by `arbitrary_bytes_never_panic_and_both_paths_agree`: an NDJSON
/// line of Unicode spaces (a vertical tab, a no-break space) was skipped as
/// blank instead of rejected, unlike the same line in a raw object.
#[test]
fn regression_ndjson_lines_of_unicode_spaces_are_rejected_not_skipped() {
    let hit = r#"{"clientid":"a","pageGender":"M"}"#;
    for junk in ["\u{b}", "\u{a0}", "\u{2028}", " \u{85} "] {
        let body = format!("{hit}\n{junk}\n{hit}\n");
        let batch = parse_batch(body.as_bytes(), BodyFormat::Ndjson, NOW).unwrap();
        assert_eq!(batch.accepted.len(), 2, "{junk:?}");
        assert_eq!(batch.rejected.len(), 1, "{junk:?}");
        assert_eq!(batch.rejected[0].index, 1);
        assert!(batch.rejected[0].error.starts_with("not a JSON object"));
    }
    // ASCII whitespace (form feed included) is still a blank line.
    let body = format!("{hit}\n \t\u{c}\r\n{hit}");
    let batch = parse_batch(body.as_bytes(), BodyFormat::Ndjson, NOW).unwrap();
    assert_eq!((batch.accepted.len(), batch.rejected.len()), (2, 0));
}
