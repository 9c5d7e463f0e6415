//! Parsing of a `POST /hits` body (SPEC 3, 13) into accepted and rejected hits.
//! Which HTTP status each outcome gets is decided by the API layer.

use crate::hit::{HitSlot, parse_hit};
use crate::{HitError, IncomingHit};
use serde::Deserialize;
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use std::fmt;

pub const MAX_BODY_BYTES: usize = 5 * 1024 * 1024;
pub const MAX_HITS_PER_REQUEST: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFormat {
    Json,
    Ndjson,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rejection {
    pub index: usize,
    pub error: String,
}

/// The hits of one request: valid ones with their request index, and the rest.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Batch {
    pub accepted: Vec<(usize, IncomingHit)>,
    pub rejected: Vec<Rejection>,
}

impl Batch {
    fn push(&mut self, index: usize, result: Result<IncomingHit, HitError>) {
        match result {
            Ok(hit) => self.accepted.push((index, hit)),
            Err(e) => self.rejected.push(Rejection {
                index,
                error: e.to_string(),
            }),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    #[error("request body is empty")]
    Empty,
    #[error("request body is not valid JSON: {0}")]
    Malformed(String),
    #[error("request body is not UTF-8 text")]
    NotUtf8,
    #[error("too many hits: at most {MAX_HITS_PER_REQUEST} per request")]
    TooManyHits,
}

/// A JSON body: one hit object or an array of them.
enum JsonBody<'a> {
    One(HitSlot<'a>),
    Many(Vec<HitSlot<'a>>),
    /// An array longer than [`MAX_HITS_PER_REQUEST`] (its rest is skipped).
    TooMany,
}

impl<'de> Deserialize<'de> for JsonBody<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct BodyVisitor;
        impl<'de> Visitor<'de> for BodyVisitor {
            type Value = JsonBody<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a hit object or an array of hit objects")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
                HitSlot::deserialize(de::value::MapAccessDeserializer::new(map)).map(JsonBody::One)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                let mut slots = Vec::with_capacity(seq.size_hint().unwrap_or(16).min(512));
                while let Some(slot) = seq.next_element::<HitSlot>()? {
                    if slots.len() == MAX_HITS_PER_REQUEST {
                        // Skip the rest without building hits: the body is
                        // bounded, and the answer is already 413.
                        while seq.next_element::<IgnoredAny>()?.is_some() {}
                        return Ok(JsonBody::TooMany);
                    }
                    slots.push(slot);
                }
                Ok(JsonBody::Many(slots))
            }
        }
        d.deserialize_any(BodyVisitor)
    }
}

/// Parses and validates a request body. `now_ms` bounds future timestamps.
pub fn parse_batch(body: &[u8], format: BodyFormat, now_ms: i64) -> Result<Batch, BatchError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(BatchError::Empty);
    }
    let mut batch = Batch::default();
    match format {
        BodyFormat::Json => {
            let parsed = serde_json::from_slice::<JsonBody>(body)
                .map_err(|e| BatchError::Malformed(e.to_string()))?;
            let slots = match parsed {
                JsonBody::TooMany => return Err(BatchError::TooManyHits),
                JsonBody::One(slot) => vec![slot],
                JsonBody::Many(slots) if slots.is_empty() => {
                    return Err(BatchError::Malformed("the array holds no hits".into()));
                }
                JsonBody::Many(slots) => slots,
            };
            for (index, HitSlot(slot)) in slots.into_iter().enumerate() {
                batch.push(index, slot.and_then(|w| w.validate_incoming(now_ms)));
            }
        }
        BodyFormat::Ndjson => {
            let text = std::str::from_utf8(body).map_err(|_| BatchError::NotUtf8)?;
            let mut count = 0;
            // Indexes are line numbers (0-based); blank lines carry no hit.
            // Blank is ASCII whitespace, as for the whole body and raw lines:
            // a line of other (Unicode) spaces is not JSON and is rejected.
            for (index, line) in text.split('\n').enumerate() {
                let line = line.strip_suffix('\r').unwrap_or(line);
                if line.bytes().all(|b| b.is_ascii_whitespace()) {
                    continue;
                }
                count += 1;
                if count > MAX_HITS_PER_REQUEST {
                    return Err(BatchError::TooManyHits);
                }
                batch.push(
                    index,
                    parse_hit(line.as_bytes()).and_then(|w| w.validate_incoming(now_ms)),
                );
            }
        }
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_795_514_400_000;

    fn hit(id: &str) -> String {
        format!(r#"{{"clientid":"{id}","pageGender":"M"}}"#)
    }

    #[test]
    fn single_object_and_array_are_accepted() {
        let one = parse_batch(hit("a").as_bytes(), BodyFormat::Json, NOW).unwrap();
        assert_eq!(one.accepted.len(), 1);
        let many = format!("[{},{}]", hit("a"), hit("b"));
        let batch = parse_batch(many.as_bytes(), BodyFormat::Json, NOW).unwrap();
        assert_eq!(
            batch.accepted.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [0, 1]
        );
    }

    #[test]
    fn mixed_batch_keeps_valid_hits_and_lists_rejected_by_index() {
        let body = format!(r#"[{}, 7, {{"clientid":"x"}}, {}]"#, hit("a"), hit("b"));
        let batch = parse_batch(body.as_bytes(), BodyFormat::Json, NOW).unwrap();
        assert_eq!(
            batch.accepted.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [0, 3]
        );
        assert_eq!(
            batch.rejected.iter().map(|r| r.index).collect::<Vec<_>>(),
            [1, 2]
        );
        assert_eq!(batch.rejected[1].error, "pageGender is required");
    }

    #[test]
    fn empty_malformed_and_oversized_bodies() {
        assert_eq!(
            parse_batch(b"  ", BodyFormat::Json, NOW),
            Err(BatchError::Empty)
        );
        assert!(matches!(
            parse_batch(b"[]", BodyFormat::Json, NOW),
            Err(BatchError::Malformed(_))
        ));
        assert!(matches!(
            parse_batch(b"{", BodyFormat::Json, NOW),
            Err(BatchError::Malformed(_))
        ));
        assert!(matches!(
            parse_batch(b"\"x\"", BodyFormat::Json, NOW),
            Err(BatchError::Malformed(_))
        ));
        let at_limit = format!("[{}]", vec![hit("a"); 500].join(","));
        assert_eq!(
            parse_batch(at_limit.as_bytes(), BodyFormat::Json, NOW)
                .unwrap()
                .accepted
                .len(),
            500
        );
        let over = format!("[{}]", vec![hit("a"); 501].join(","));
        assert_eq!(
            parse_batch(over.as_bytes(), BodyFormat::Json, NOW),
            Err(BatchError::TooManyHits)
        );
    }

    #[test]
    fn ndjson_lines_may_end_in_crlf_and_bad_lines_are_rejected_alone() {
        let body = format!("{}\r\n{{oops\r\n\r\n{}\n", hit("a"), hit("b"));
        let batch = parse_batch(body.as_bytes(), BodyFormat::Ndjson, NOW).unwrap();
        assert_eq!(
            batch.accepted.iter().map(|(i, _)| *i).collect::<Vec<_>>(),
            [0, 3]
        );
        assert_eq!(batch.rejected.len(), 1);
        assert_eq!(batch.rejected[0].index, 1);
        let over = vec![hit("a"); 501].join("\n");
        assert_eq!(
            parse_batch(over.as_bytes(), BodyFormat::Ndjson, NOW),
            Err(BatchError::TooManyHits)
        );
        assert_eq!(
            parse_batch(b"\xff\n", BodyFormat::Ndjson, NOW),
            Err(BatchError::NotUtf8)
        );
    }
}
