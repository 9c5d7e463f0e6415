//! Curate aggregation (SPEC 6): parse a raw NDJSON object and fold its hits
//! into one counter delta per visitor.

use crate::clientid::{MAX_CLIENTID_LEN, MAX_HITID_LEN, all_identifier_bytes};
use crate::hit::parse_hit;
use crate::table::{
    InlineKey, InlineTable, Pipelined, inline_key, inline_key_bytes, inline_key_str,
};
use crate::time::{MAX_EVENT_MS, MIN_EVENT_MS, parse_normalized_millis};
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
    let mut start = 0;
    let ends = memchr::memchr_iter(b'\n', bytes).chain(std::iter::once(bytes.len()));
    for (index, end) in ends.enumerate() {
        match parse_raw_line(&bytes[start..end]) {
            Some(Ok(hit)) => parsed.hits.push(hit),
            Some(Err(e)) => parsed.invalid_lines.push((index, e)),
            None => {}
        }
        start = (end + 1).min(bytes.len());
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
const HITID_INFIX: &[u8] = b",\"hitid\":\"";

/// The normalized line shape, or `None`. Accepts only what the general path
/// would accept with the same meaning (valid clientid, `M`/`F`, in-bounds time).
#[inline]
fn parse_normalized_line(line: &[u8]) -> Option<Hit<'_>> {
    let rest = line.strip_prefix(CLIENTID_PREFIX)?;
    // The closing quote within the longest id, and nothing disallowed before it.
    let id_len = memchr::memchr(b'"', &rest[..rest.len().min(MAX_CLIENTID_LEN + 1)])?;
    if id_len == 0 || !all_identifier_bytes(&rest[..id_len]) {
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
    if rest.len() < 24 + 2 || rest[24] != b'"' {
        return None;
    }
    let hitid = match &rest[25..] {
        b"}" => None,
        tail => {
            let id = tail.strip_prefix(HITID_INFIX)?.strip_suffix(b"\"}")?;
            if id.is_empty() || id.len() > MAX_HITID_LEN || !all_identifier_bytes(id) {
                return None;
            }
            Some(Cow::Borrowed(std::str::from_utf8(id).ok()?))
        }
    };
    let event_ms = parse_normalized_millis(&rest[..24])?;
    if !(MIN_EVENT_MS..=MAX_EVENT_MS).contains(&event_ms) {
        return None;
    }
    Some(Hit {
        clientid: Cow::Borrowed(clientid),
        gender,
        event_ms,
        hitid,
    })
}

/// The longest line a [`LineSplitter`] carries between chunks. A raw line
/// is delivery's normalized hit, well under a kilobyte; a longer one is
/// reported as [`OVERLONG_LINE`] instead of being held.
pub const MAX_LINE_BYTES: usize = 1 << 20;

/// What a [`LineSplitter`] hands over for a line over [`MAX_LINE_BYTES`]:
/// not JSON, so it counts as an invalid line.
pub const OVERLONG_LINE: &[u8] = b"\0line longer than the limit";

/// The most lines [`LineSplitter::push_runs`] hands over at once: long
/// enough for a consumer to fetch memory well ahead of its use.
pub const LINE_RUN: usize = 1024;

/// Splits a byte stream that arrives in chunks into `\n`-terminated lines,
/// keeping only the unfinished tail between chunks: memory is bounded by
/// the chunk size and [`MAX_LINE_BYTES`], not by the object.
#[derive(Debug, Default)]
pub struct LineSplitter {
    tail: Vec<u8>,
    /// The current line passed the limit: skip to its end.
    overlong: bool,
    line_no: usize,
}

impl LineSplitter {
    pub fn new() -> LineSplitter {
        LineSplitter::default()
    }

    fn emit_tail(&mut self, each: &mut impl FnMut(usize, &[u8])) {
        let line = if self.overlong {
            OVERLONG_LINE
        } else {
            &self.tail
        };
        each(self.line_no, line);
        self.line_no += 1;
        self.tail.clear();
        self.overlong = false;
    }

    fn keep(&mut self, unfinished: &[u8]) {
        if self.overlong {
            return;
        }
        if self.tail.len() + unfinished.len() > MAX_LINE_BYTES {
            self.overlong = true;
            self.tail = Vec::new();
        } else {
            self.tail.extend_from_slice(unfinished);
        }
    }

    /// Calls `each(line_index, line)` for every complete line of `chunk`
    /// (the first one may continue the previous chunk's tail).
    pub fn push(&mut self, chunk: &[u8], mut each: impl FnMut(usize, &[u8])) {
        self.push_runs(chunk, |run| {
            for &(index, line) in run {
                each(index, line);
            }
        });
    }

    /// Like [`push`](Self::push), but hands the lines over in runs of up to
    /// [`LINE_RUN`] consecutive `(line_index, line)` pairs, in order, so a
    /// consumer can work on several lines at once.
    pub fn push_runs(&mut self, mut chunk: &[u8], mut each_run: impl FnMut(&[(usize, &[u8])])) {
        if !self.tail.is_empty() || self.overlong {
            let Some(end) = memchr::memchr(b'\n', chunk) else {
                self.keep(chunk);
                return;
            };
            self.keep(&chunk[..end]);
            self.emit_tail(&mut |index, line| each_run(&[(index, line)]));
            chunk = &chunk[end + 1..];
        }
        let mut run: Vec<(usize, &[u8])> = Vec::with_capacity(LINE_RUN);
        let mut start = 0;
        for end in memchr::memchr_iter(b'\n', chunk) {
            let line = &chunk[start..end];
            run.push((
                self.line_no,
                if line.len() > MAX_LINE_BYTES {
                    OVERLONG_LINE
                } else {
                    line
                },
            ));
            if run.len() == LINE_RUN {
                each_run(&run);
                run.clear();
            }
            self.line_no += 1;
            start = end + 1;
        }
        if !run.is_empty() {
            each_run(&run);
        }
        self.keep(&chunk[start..]);
    }

    /// The last line, when the stream does not end in `\n`.
    pub fn finish(&mut self, mut each: impl FnMut(usize, &[u8])) {
        if !self.tail.is_empty() || self.overlong {
            self.emit_tail(&mut each);
        }
    }
}

/// A map from clientid to `V`: 16-byte inline keys for ids of up to 15
/// bytes, 32-byte ones up to 31, boxed strings for the rest (rare).
#[derive(Debug)]
pub struct VisitorMap<V> {
    pub(crate) short: InlineTable<V>,
    medium: FxHashMap<InlineKey<32>, V>,
    long: FxHashMap<Box<str>, V>,
}

impl<V: Default + Clone> Default for VisitorMap<V> {
    fn default() -> Self {
        VisitorMap {
            short: InlineTable::default(),
            medium: FxHashMap::default(),
            long: FxHashMap::default(),
        }
    }
}

impl<V: Default + Clone> VisitorMap<V> {
    /// Room for about `visitors` entries without growing.
    pub fn with_capacity(visitors: usize) -> Self {
        VisitorMap {
            short: InlineTable::with_capacity(visitors),
            ..VisitorMap::default()
        }
    }

    /// Calls `apply(entry, item)` for each `(clientid, item)` in turn, the
    /// entry created with `new()` when absent, with the memory loads of
    /// several lookups overlapped. Items of one clientid are applied in
    /// their order.
    pub fn for_each_entry<'a, T>(
        &mut self,
        items: impl IntoIterator<Item = (&'a str, T)>,
        new: impl Fn() -> V,
        mut apply: impl FnMut(&mut V, T),
    ) {
        let mut pipe = Pipelined::default();
        for (clientid, item) in items {
            match inline_key::<16>(clientid) {
                Some(key) => {
                    if let Some((key, item)) = pipe.push(&self.short, key, item) {
                        apply(self.short.entry(key, &new), item);
                    }
                }
                None => apply(self.entry(clientid, &new), item),
            }
        }
        for (key, item) in pipe.drain() {
            apply(self.short.entry(key, &new), item);
        }
    }

    pub fn len(&self) -> usize {
        self.short.len() + self.medium.len() + self.long.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry of `clientid`, created with `new()` if absent.
    #[inline]
    pub fn entry(&mut self, clientid: &str, new: impl FnOnce() -> V) -> &mut V {
        if let Some(key) = inline_key::<16>(clientid) {
            return self.short.entry(key, new);
        }
        if let Some(key) = inline_key::<32>(clientid) {
            return self.medium.entry(key).or_insert_with(new);
        }
        if !self.long.contains_key(clientid) {
            self.long.insert(clientid.into(), new());
        }
        self.long.get_mut(clientid).expect("just inserted")
    }

    pub fn get(&self, clientid: &str) -> Option<&V> {
        if let Some(key) = inline_key::<16>(clientid) {
            return self.short.get(&key);
        }
        if let Some(key) = inline_key::<32>(clientid) {
            return self.medium.get(&key);
        }
        self.long.get(clientid)
    }

    /// Every entry, unordered.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        let short = self.short.iter().map(|(k, v)| (inline_key_str(k), v));
        let medium = self.medium.iter().map(|(k, v)| (inline_key_str(k), v));
        let long = self.long.iter().map(|(k, v)| (&**k, v));
        short.chain(medium).chain(long)
    }

    /// Every entry, sorted by clientid (the keys move out by value, so the
    /// sort compares local bytes instead of chasing pointers). The short ids
    /// (nearly all) are sorted in their table's own memory.
    pub fn into_sorted(self) -> SortedVisitors<V> {
        let mut rest: Vec<(VisitorKey, V)> =
            Vec::with_capacity(self.medium.len() + self.long.len());
        rest.extend(
            self.medium
                .into_iter()
                .map(|(k, v)| (VisitorKey::Medium(k), v)),
        );
        rest.extend(self.long.into_iter().map(|(k, v)| (VisitorKey::Long(k), v)));
        rest.sort_unstable_by(|a, b| a.0.cmp_key(&b.0));
        SortedVisitors {
            short: self.short.into_sorted(),
            rest,
        }
    }
}

/// The entries of a [`VisitorMap`] in clientid order: the short ids and
/// the others, each sorted, merged as they are read.
#[derive(Debug)]
pub struct SortedVisitors<V> {
    short: Vec<(InlineKey<16>, V)>,
    rest: Vec<(VisitorKey, V)>,
}

impl<V> SortedVisitors<V> {
    pub fn len(&self) -> usize {
        self.short.len() + self.rest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Every entry, in clientid order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &V)> {
        let mut short = self.short.iter().peekable();
        let mut rest = self.rest.iter().peekable();
        std::iter::from_fn(move || {
            // An id is in one of the two, never both.
            let from_short = match (short.peek(), rest.peek()) {
                (Some((a, _)), Some((b, _))) => inline_key_bytes(a) < b.as_bytes(),
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => return None,
            };
            if from_short {
                short.next().map(|(k, v)| (inline_key_str(k), v))
            } else {
                rest.next().map(|(k, v)| (k.as_str(), v))
            }
        })
    }
}

/// A clientid taken out of a [`VisitorMap`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VisitorKey {
    Short(InlineKey<16>),
    Medium(InlineKey<32>),
    Long(Box<str>),
}

impl VisitorKey {
    #[inline]
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            VisitorKey::Short(key) => inline_key_bytes(key),
            VisitorKey::Medium(key) => inline_key_bytes(key),
            VisitorKey::Long(id) => id.as_bytes(),
        }
    }

    #[inline]
    pub fn as_str(&self) -> &str {
        match self {
            VisitorKey::Short(key) => inline_key_str(key),
            VisitorKey::Medium(key) => inline_key_str(key),
            VisitorKey::Long(id) => id,
        }
    }

    /// The order of the clientids (two short keys compare as two
    /// big-endian integers).
    #[inline]
    fn cmp_key(&self, other: &VisitorKey) -> std::cmp::Ordering {
        if let (VisitorKey::Short(a), VisitorKey::Short(b)) = (self, other) {
            return u128::from_be_bytes(*a).cmp(&u128::from_be_bytes(*b));
        }
        self.as_bytes().cmp(other.as_bytes())
    }
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    m: u64,
    f: u64,
    last_seen_ms: i64,
    last_gender: Gender,
}

impl Default for Slot {
    fn default() -> Self {
        Slot {
            m: 0,
            f: 0,
            last_seen_ms: i64::MIN,
            last_gender: Gender::M,
        }
    }
}

impl Slot {
    #[inline]
    fn add(&mut self, gender: Gender, event_ms: i64) {
        match gender {
            Gender::M => self.m += 1,
            Gender::F => self.f += 1,
        }
        // Later-or-equal wins, so on equal times the later hit is "last".
        if event_ms >= self.last_seen_ms {
            self.last_seen_ms = event_ms;
            self.last_gender = gender;
        }
    }
}

/// Folds hits (in processing order) into one delta per visitor as they
/// stream by: memory grows with the visitors, not with the hits. A few hits
/// wait in a ring while their visitor's bucket is prefetched; one visitor's
/// hits still fold in their order.
#[derive(Debug, Default)]
pub struct Aggregator {
    visitors: VisitorMap<Slot>,
    pending: Pipelined<(Gender, i64)>,
}

impl Aggregator {
    pub fn new() -> Aggregator {
        Aggregator::default()
    }

    pub fn visitors(&mut self) -> usize {
        self.flush();
        self.visitors.len()
    }

    #[inline]
    pub fn add(&mut self, clientid: &str, gender: Gender, event_ms: i64) {
        match inline_key::<16>(clientid) {
            Some(key) => {
                let queued = self
                    .pending
                    .push(&self.visitors.short, key, (gender, event_ms));
                if let Some((key, (gender, event_ms))) = queued {
                    self.visitors
                        .short
                        .entry(key, Slot::default)
                        .add(gender, event_ms);
                }
            }
            None => self
                .visitors
                .entry(clientid, Slot::default)
                .add(gender, event_ms),
        }
    }

    fn flush(&mut self) {
        for (key, (gender, event_ms)) in self.pending.drain() {
            self.visitors
                .short
                .entry(key, Slot::default)
                .add(gender, event_ms);
        }
    }

    /// One delta per visitor, sorted by clientid so that adapters write in a
    /// deterministic order.
    pub fn finish(mut self) -> Vec<VisitorDelta> {
        self.flush();
        let sorted = self.visitors.into_sorted();
        let mut deltas = Vec::with_capacity(sorted.len());
        deltas.extend(sorted.iter().map(|(clientid, s)| VisitorDelta {
            clientid: clientid.to_owned(),
            m: s.m,
            f: s.f,
            last_gender: s.last_gender,
            last_seen_ms: s.last_seen_ms,
        }));
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
            hitid: None,
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
            b"{\"clientid\":\"v\",\"pageGender\":\"F\",\"timestamp\":\"2026-11-24T10:00:00.123Z\",\"hitid\":\"\"}",
            b"{\"clientid\":\"v\",\"pageGender\":\"F\",\"timestamp\":\"2026-11-24T10:00:00.123Z\",\"hitid\":\"a b\"}",
            b"{\"clientid\":\"v\",\"pageGender\":\"F\",\"timestamp\":\"2026-11-24T10:00:00.123Z\",\"hitid\":\"h\"",
            b"{\"clientid\":\"v\",\"pageGender\":\"F\",\"timestamp\":\"2026-11-24T10:00:00.123Z\",\"hitid\":\"h\",\"hitid\":\"g\"}",
            b"{\"clientid\":\"v\",\"pageGender\":\"F\",\"timestamp\":\"2026-11-24T10:00:00.123Z\",\"hitid\":null}",
            b"{\"clientid\":\"v\",\"pageGender\":\"F\",\"timestamp\":\"2026-11-24T10:00:00.123Z\",\"hitid\":\"x:Y_.9-\"}",
        ];
        let long = format!(
            "{{\"clientid\":\"{}\",\"pageGender\":\"M\",\"timestamp\":\"2026-11-24T10:00:00.123Z\"}}",
            "x".repeat(65)
        );
        let max = long.replacen('x', "", 1);
        let id_line = |n: usize| {
            format!(
                "{{\"clientid\":\"v\",\"pageGender\":\"M\",\"timestamp\":\"2026-11-24T10:00:00.123Z\",\"hitid\":\"{}\"}}",
                "h".repeat(n)
            )
        };
        let (id_max, id_long) = (id_line(64), id_line(65));
        for line in lines.iter().copied().chain([
            long.as_bytes(),
            max.as_bytes(),
            id_max.as_bytes(),
            id_long.as_bytes(),
        ]) {
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
    fn short_and_long_clientids_are_kept_apart_correctly() {
        let long = "x".repeat(40);
        let edge = "y".repeat(31);
        let hits = [
            hit(&long, Gender::M, 1),
            hit(&edge, Gender::F, 1),
            hit(&long, Gender::M, 2),
            hit("", Gender::F, 1),
        ];
        let deltas = aggregate_hits(&hits);
        let got: Vec<_> = deltas
            .iter()
            .map(|d| (d.clientid.len(), d.m, d.f))
            .collect();
        assert_eq!(got, [(0, 0, 1), (40, 2, 0), (31, 0, 1)]);
        assert_eq!(inline_key_str(&inline_key::<32>(&edge).unwrap()), edge);
        assert_eq!(inline_key::<32>(&long), None);
        assert_eq!(inline_key::<16>(&"z".repeat(16)), None);

        // Sorted like the strings, whichever map each id sits in.
        let mut map = VisitorMap::default();
        let ids = [
            "b",
            "a",
            "ab",
            "a-15-chars-long",
            "a-16-chars-long!",
            &long,
            "",
            "zz",
        ];
        for id in ids {
            *map.entry(id, || 0) += 1;
        }
        let sorted: Vec<String> = map
            .into_sorted()
            .iter()
            .map(|(k, _)| k.to_owned())
            .collect();
        let mut want: Vec<String> = ids.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(sorted, want);
    }

    #[test]
    fn an_overlong_line_is_reported_not_held() {
        let mut text = b"{}\n".to_vec();
        text.extend(std::iter::repeat_n(b'x', MAX_LINE_BYTES + 10));
        text.extend_from_slice(b"\nlast");
        for size in [1000, 65_536, text.len()] {
            let mut got = Vec::new();
            let mut splitter = LineSplitter::new();
            for chunk in text.chunks(size) {
                splitter.push(chunk, |i, l| got.push((i, l.to_vec())));
                assert!(splitter.tail.len() <= MAX_LINE_BYTES);
            }
            splitter.finish(|i, l| got.push((i, l.to_vec())));
            let want = [
                (0, b"{}".to_vec()),
                (1, OVERLONG_LINE.to_vec()),
                (2, b"last".to_vec()),
            ];
            assert_eq!(got, want, "chunks of {size}");
        }
        assert!(parse_raw_line(OVERLONG_LINE).unwrap().is_err());
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
