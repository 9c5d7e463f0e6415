//! Curate aggregation (SPEC 6): parse a raw NDJSON object and fold its hits
//! into one counter delta per visitor.

use crate::hit::parse_hit;
use crate::{Gender, Hit, HitError};
use std::collections::HashMap;

/// What one raw object contributes to one visitor's profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VisitorDelta {
    pub clientid: String,
    pub m: u64,
    pub f: u64,
    /// Gender and time of the object's latest hit for this visitor
    /// (on equal times, the later line).
    pub last_gender: Gender,
    pub last_seen_ms: i64,
}

/// A raw object's valid hits, and the 0-based line numbers of invalid lines.
#[derive(Debug, Default)]
pub struct ParsedObject<'a> {
    pub hits: Vec<Hit<'a>>,
    pub invalid_lines: Vec<(usize, HitError)>,
}

/// Parses NDJSON (`\n` or `\r\n`; blank lines skipped). Lines are validated
/// again because raw objects are input, not trusted state.
pub fn parse_raw_object(bytes: &[u8]) -> ParsedObject<'_> {
    let mut parsed = ParsedObject {
        hits: Vec::with_capacity(bytes.len() / 80),
        ..Default::default()
    };
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        match parse_hit(line).and_then(|wire| wire.into_raw_hit()) {
            Ok(hit) => parsed.hits.push(hit),
            Err(e) => parsed.invalid_lines.push((index, e)),
        }
    }
    parsed
}

/// Folds hits (in processing order) into one delta per visitor, sorted by
/// clientid so that adapters write in a deterministic order.
pub fn aggregate_hits(hits: &[Hit<'_>]) -> Vec<VisitorDelta> {
    let mut index: HashMap<&str, usize> = HashMap::with_capacity(hits.len() / 4);
    let mut deltas: Vec<VisitorDelta> = Vec::new();
    for hit in hits {
        let slot = *index.entry(hit.clientid.as_ref()).or_insert_with(|| {
            deltas.push(VisitorDelta {
                clientid: hit.clientid.to_string(),
                m: 0,
                f: 0,
                last_gender: hit.gender,
                last_seen_ms: i64::MIN,
            });
            deltas.len() - 1
        });
        let delta = &mut deltas[slot];
        match hit.gender {
            Gender::M => delta.m += 1,
            Gender::F => delta.f += 1,
        }
        // Later-or-equal wins, so on equal times the later hit is "last".
        if hit.event_ms >= delta.last_seen_ms {
            delta.last_seen_ms = hit.event_ms;
            delta.last_gender = hit.gender;
        }
    }
    deltas.sort_unstable_by(|a, b| a.clientid.cmp(&b.clientid));
    deltas
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::borrow::Cow;

    fn hit(id: &str, gender: Gender, event_ms: i64) -> Hit<'static> {
        Hit {
            clientid: Cow::Owned(id.into()),
            gender,
            event_ms,
        }
    }

    #[test]
    fn counts_per_visitor_and_keeps_the_latest_hit() {
        let hits = [
            hit("b", Gender::M, 30),
            hit("a", Gender::F, 20),
            hit("a", Gender::M, 10), // out of order: older than the previous hit
            hit("a", Gender::F, 5),
        ];
        let deltas = aggregate_hits(&hits);
        assert_eq!(deltas.len(), 2);
        assert_eq!(
            (deltas[0].clientid.as_str(), deltas[0].m, deltas[0].f),
            ("a", 1, 2)
        );
        assert_eq!(
            (deltas[0].last_gender, deltas[0].last_seen_ms),
            (Gender::F, 20)
        );
        assert_eq!(
            (
                deltas[1].clientid.as_str(),
                deltas[1].m,
                deltas[1].last_gender
            ),
            ("b", 1, Gender::M)
        );
    }

    #[test]
    fn equal_times_go_to_the_hit_processed_last() {
        let deltas = aggregate_hits(&[hit("a", Gender::F, 10), hit("a", Gender::M, 10)]);
        assert_eq!(deltas[0].last_gender, Gender::M);
        let deltas = aggregate_hits(&[hit("a", Gender::M, 10), hit("a", Gender::F, 10)]);
        assert_eq!(deltas[0].last_gender, Gender::F);
    }

    #[test]
    fn raw_parse_counts_valid_lines_and_reports_bad_ones() {
        let raw = b"{\"clientid\":\"a\",\"pageGender\":\"M\",\"timestamp\":\"2026-11-24T10:00:00.000Z\"}\r\n\
                    \n\
                    {\"clientid\":\"a\",\"pageGender\":\"M\"}\n\
                    garbage\n\
                    {\"clientid\":\"b\",\"pageGender\":\"F\",\"timestamp\":1795514400000}";
        let parsed = parse_raw_object(raw);
        assert_eq!(parsed.hits.len(), 2);
        let bad: Vec<_> = parsed.invalid_lines.iter().map(|(i, _)| *i).collect();
        assert_eq!(bad, [2, 3]);
        assert_eq!(parsed.invalid_lines[0].1, HitError::MissingTimestamp);
    }
}
