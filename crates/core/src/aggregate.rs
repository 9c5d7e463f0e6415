//! Curate aggregation (SPEC 6): parse a raw NDJSON object and fold its hits
//! into one counter delta per visitor.

use crate::clientid::MAX_CLIENTID_LEN;
use crate::hit::parse_hit;
use crate::time::{MIN_EVENT_MS, parse_normalized_millis};
use crate::{Gender, Hit, HitError};
use rustc_hash::FxHashMap;
use std::borrow::Cow;

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
/// again because raw objects are input, not trusted state. Holds every hit:
/// for objects of any size use [`LineSplitter`] and [`parse_raw_line`].
pub fn parse_raw_object(bytes: &[u8]) -> ParsedObject<'_> {
    let mut parsed = ParsedObject {
        hits: Vec::with_capacity(bytes.len() / 80),
        ..Default::default()
    };
    for (index, line) in bytes.split(|&b| b == b'\n').enumerate() {
        match parse_raw_line(line) {
            Some(Ok(hit)) => parsed.hits.push(hit),
            Some(Err(e)) => parsed.invalid_lines.push((index, e)),
            None => {}
        }
    }
    parsed
}

/// One line of a raw object (without its `\n`): `None` for a blank line,
/// else the hit or why the line is invalid. The line shape delivery writes
/// (`{"clientid":"…","pageGender":"M","timestamp":"…Z"}`) is read at fixed
/// offsets; any other line goes through the full parser with the same result.
#[inline]
pub fn parse_raw_line(line: &[u8]) -> Option<Result<Hit<'_>, HitError>> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if let Some(hit) = parse_normalized_line(line) {
        return Some(Ok(hit));
    }
    if line.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(parse_hit(line).and_then(|wire| wire.into_raw_hit()))
}

const CLIENTID_PREFIX: &[u8] = b"{\"clientid\":\"";
const GENDER_INFIX: &[u8] = b"\",\"pageGender\":\"";
const TIME_INFIX: &[u8] = b"\",\"timestamp\":\"";

/// The normalized line shape, or `None`. Accepts only what the general path
/// would accept with the same meaning (valid clientid, `M`/`F`, in-bounds time).
#[inline]
fn parse_normalized_line(line: &[u8]) -> Option<Hit<'_>> {
    let rest = line.strip_prefix(CLIENTID_PREFIX)?;
    let id_len = rest
        .iter()
        .take(MAX_CLIENTID_LEN + 1)
        .position(|&b| !is_clientid_byte(b))?;
    if id_len == 0 || rest[id_len] != b'"' {
        return None;
    }
    let clientid = std::str::from_utf8(&rest[..id_len]).ok()?;
    let rest = rest[id_len..].strip_prefix(GENDER_INFIX)?;
    let gender = match rest.first()? {
        b'M' => Gender::M,
        b'F' => Gender::F,
        _ => return None,
    };
    let rest = rest[1..].strip_prefix(TIME_INFIX)?;
    if rest.len() != 24 + 2 || &rest[24..] != b"\"}" {
        return None;
    }
    let event_ms = parse_normalized_millis(&rest[..24])?;
    if event_ms < MIN_EVENT_MS {
        return None;
    }
    Some(Hit {
        clientid: Cow::Borrowed(clientid),
        gender,
        event_ms,
    })
}

#[inline]
fn is_clientid_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-')
}

/// Splits a byte stream that arrives in chunks into `\n`-terminated lines,
/// keeping only the unfinished tail between chunks (memory bounded by the
/// longest line, not by the object).
#[derive(Debug, Default)]
pub struct LineSplitter {
    tail: Vec<u8>,
    line_no: usize,
}

impl LineSplitter {
    pub fn new() -> LineSplitter {
        LineSplitter::default()
    }

    /// Calls `each(line_index, line)` for every complete line of `chunk`
    /// (the first one may continue the previous chunk's tail).
    pub fn push(&mut self, mut chunk: &[u8], mut each: impl FnMut(usize, &[u8])) {
        if !self.tail.is_empty() {
            let Some(end) = chunk.iter().position(|&b| b == b'\n') else {
                self.tail.extend_from_slice(chunk);
                return;
            };
            self.tail.extend_from_slice(&chunk[..end]);
            each(self.line_no, &self.tail);
            self.line_no += 1;
            self.tail.clear();
            chunk = &chunk[end + 1..];
        }
        let mut lines = chunk.split(|&b| b == b'\n');
        let mut last = lines.next();
        for line in lines {
            if let Some(complete) = last {
                each(self.line_no, complete);
                self.line_no += 1;
            }
            last = Some(line);
        }
        if let Some(unfinished) = last {
            self.tail.extend_from_slice(unfinished);
        }
    }

    /// The last line, when the stream does not end in `\n`.
    pub fn finish(&mut self, mut each: impl FnMut(usize, &[u8])) {
        if !self.tail.is_empty() {
            each(self.line_no, &self.tail);
            self.line_no += 1;
            self.tail.clear();
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    m: u64,
    f: u64,
    last_gender: Gender,
    last_seen_ms: i64,
}

/// Folds hits (in processing order) into one delta per visitor as they
/// stream by: memory grows with the visitors, not with the hits.
#[derive(Debug, Default)]
pub struct Aggregator {
    index: FxHashMap<Box<str>, u32>,
    slots: Vec<Slot>,
}

impl Aggregator {
    pub fn new() -> Aggregator {
        Aggregator::default()
    }

    pub fn visitors(&self) -> usize {
        self.slots.len()
    }

    #[inline]
    pub fn add(&mut self, clientid: &str, gender: Gender, event_ms: i64) {
        let slot = match self.index.get(clientid) {
            Some(&i) => &mut self.slots[i as usize],
            None => {
                self.index.insert(clientid.into(), self.slots.len() as u32);
                self.slots.push(Slot {
                    m: 0,
                    f: 0,
                    last_gender: gender,
                    last_seen_ms: i64::MIN,
                });
                self.slots.last_mut().expect("just pushed")
            }
        };
        match gender {
            Gender::M => slot.m += 1,
            Gender::F => slot.f += 1,
        }
        // Later-or-equal wins, so on equal times the later hit is "last".
        if event_ms >= slot.last_seen_ms {
            slot.last_seen_ms = event_ms;
            slot.last_gender = gender;
        }
    }

    /// One delta per visitor, sorted by clientid so that adapters write in a
    /// deterministic order.
    pub fn finish(self) -> Vec<VisitorDelta> {
        let slots = self.slots;
        let mut deltas: Vec<VisitorDelta> = self
            .index
            .into_iter()
            .map(|(clientid, i)| {
                let s = slots[i as usize];
                VisitorDelta {
                    clientid: clientid.into_string(),
                    m: s.m,
                    f: s.f,
                    last_gender: s.last_gender,
                    last_seen_ms: s.last_seen_ms,
                }
            })
            .collect();
        deltas.sort_unstable_by(|a, b| a.clientid.cmp(&b.clientid));
        deltas
    }
}

/// Folds hits (in processing order) into one delta per visitor, sorted by
/// clientid so that adapters write in a deterministic order.
pub fn aggregate_hits(hits: &[Hit<'_>]) -> Vec<VisitorDelta> {
    let mut aggregator = Aggregator::new();
    for hit in hits {
        aggregator.add(&hit.clientid, hit.gender, hit.event_ms);
    }
    aggregator.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn the_normalized_line_fast_path_agrees_with_the_full_parser() {
        let lines: &[&[u8]] = &[
            b"{\"clientid\":\"visitor-1\",\"pageGender\":\"M\",\"timestamp\":\"2026-11-24T10:00:00.123Z\"}",
            b"{\"clientid\":\"v\",\"pageGender\":\"F\",\"timestamp\":\"2000-01-01T00:00:00.000Z\"}",
            b"{\"clientid\":\"v\",\"pageGender\":\"F\",\"timestamp\":\"1999-12-31T23:59:59.999Z\"}",
            b"{\"clientid\":\"v\",\"pageGender\":\"f\",\"timestamp\":\"2026-11-24T10:00:00.123Z\"}",
            b"{\"clientid\":\"a b\",\"pageGender\":\"F\",\"timestamp\":\"2026-11-24T10:00:00.123Z\"}",
            b"{\"clientid\":\"\",\"pageGender\":\"F\",\"timestamp\":\"2026-11-24T10:00:00.123Z\"}",
            b"{\"clientid\":\"v\",\"pageGender\":\"F\",\"timestamp\":\"2026-02-30T10:00:00.123Z\"}",
            b"{\"clientid\":\"v\",\"pageGender\":\"F\",\"timestamp\":\"2026-11-24T10:00:00.123Z\"} ",
            b"{\"clientid\":\"v\",\"pageGender\":\"F\",\"timestamp\":\"2026-11-24T10:00:00.123Z\",\"hitid\":\"h\"}",
            b"{\"clientid\":\"v\",\"pageGender\":\"M\",\"timestamp\":\"2026-11-24T10:00:00.123Z\"}\r",
            b"{\"clientid\":\"v\",\"pageGender\":\"M\",\"timestamp\":\"2026-11-24T10:00:00.123Z\"}}",
        ];
        let long = format!(
            "{{\"clientid\":\"{}\",\"pageGender\":\"M\",\"timestamp\":\"2026-11-24T10:00:00.123Z\"}}",
            "x".repeat(65)
        );
        let max = long.replacen('x', "", 1);
        for line in lines
            .iter()
            .copied()
            .chain([long.as_bytes(), max.as_bytes()])
        {
            let trimmed = line.strip_suffix(b"\r").unwrap_or(line);
            let full = parse_hit(trimmed).and_then(|w| w.into_raw_hit());
            assert_eq!(
                parse_raw_line(line),
                Some(full),
                "{}",
                String::from_utf8_lossy(line)
            );
        }
        assert_eq!(parse_raw_line(b" \r"), None);
    }

    #[test]
    fn lines_split_the_same_whatever_the_chunking() {
        let text = b"one\ntwo\r\n\nthree-long-line\nlast";
        let whole: Vec<(usize, Vec<u8>)> = text
            .split(|&b| b == b'\n')
            .enumerate()
            .map(|(i, l)| (i, l.to_vec()))
            .collect();
        for size in 1..=text.len() {
            let mut got = Vec::new();
            let mut splitter = LineSplitter::new();
            for chunk in text.chunks(size) {
                splitter.push(chunk, |i, l| got.push((i, l.to_vec())));
            }
            splitter.finish(|i, l| got.push((i, l.to_vec())));
            assert_eq!(got, whole, "chunks of {size}");
        }
    }
}
