//! Counting hits as they come off the Kinesis stream (SPEC 19, 6, 15): the
//! rules of the stream consumer, pure. The AWS adapter reads and writes what
//! they decide; `functions/consumer` runs them per batch.
//!
//! A visitor's counting state lives in its profile item:
//!
//! - `seen`: a [`SeenSet`] of the hits counted within the horizon, grouped
//!   by the *arrival time* of the record that carried them (Kinesis'
//!   `approximateArrivalTimestamp`), so a replayed batch decides exactly as
//!   the first delivery did, whenever it comes;
//! - `sq`: the stream position (shard and sequence number) of the last
//!   record applied for the visitor. A hit's partition key is its clientid,
//!   so all of a visitor's records are in one shard, in order: a record at or
//!   before that position was applied, whatever the horizon. This is what
//!   makes a redelivered or bisected batch, or a retry from a reported
//!   failure, count once even when it comes back after the horizon;
//! - the counters and `last_*`, moved by one conditional write per visitor
//!   and batch (compare-and-set on the item's version).
//!
//! Duplicates that are *other records* (a `PutRecords` retry after a lost
//! answer, a producer resending its `hitid`s) are caught by `seen`.

use crate::dedup::HitKey;
use crate::seen_set::{self, Horizon, SeenSet};
use crate::{Gender, Hit, HitError};
use std::cmp::Ordering;
use std::collections::HashSet;

/// A Kinesis sequence number: decimal digits (56 on Kinesis today; the API
/// allows up to 129, emulators use small numbers), compared as the number it is.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SequenceNumber(String);

impl SequenceNumber {
    /// `None` unless `text` is 1..=129 ASCII digits. Leading zeros are dropped.
    pub fn parse(text: &str) -> Option<SequenceNumber> {
        if text.is_empty() || text.len() > 129 || !text.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let trimmed = text.trim_start_matches('0');
        Some(SequenceNumber(
            if trimmed.is_empty() { "0" } else { trimmed }.to_owned(),
        ))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Ord for SequenceNumber {
    fn cmp(&self, other: &Self) -> Ordering {
        // No leading zeros: the longer number is the larger.
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.cmp(&other.0))
    }
}

impl PartialOrd for SequenceNumber {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

/// Where a record sits in the stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct StreamPosition {
    pub shard: String,
    pub sequence: SequenceNumber,
}

impl StreamPosition {
    /// The `sq` attribute, packed so the profile item stays under 1 KB: a
    /// Kinesis shard id (`shardId-` and 12 digits) as a number, any other
    /// as text, then the sequence number's digits two to a byte. 38 bytes
    /// for a Kinesis position instead of 77 as text.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(40);
        match self
            .shard
            .strip_prefix("shardId-")
            .filter(|n| !n.is_empty() && n.len() <= 19 && n.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|n| n.parse::<u64>().ok().map(|v| (v, n.len())))
        {
            Some((number, width)) => {
                out.push(width as u8);
                out.extend_from_slice(&number.to_le_bytes());
            }
            None => {
                out.push(0);
                out.push(self.shard.len().min(255) as u8);
                out.extend_from_slice(&self.shard.as_bytes()[..self.shard.len().min(255)]);
            }
        }
        let digits = self.sequence.as_str().as_bytes();
        out.push(digits.len() as u8);
        for pair in digits.rchunks(2).rev() {
            let (high, low) = match pair {
                [d] => (0, d - b'0'),
                [h, l] => (h - b'0', l - b'0'),
                _ => unreachable!("chunks of at most 2"),
            };
            out.push(high << 4 | low);
        }
        out
    }

    pub fn decode(bytes: &[u8]) -> Option<StreamPosition> {
        let (&kind, rest) = bytes.split_first()?;
        let (shard, rest) = if kind == 0 {
            let (&len, rest) = rest.split_first()?;
            let name = rest.get(..len as usize)?;
            (
                String::from_utf8(name.to_vec()).ok()?,
                &rest[len as usize..],
            )
        } else {
            let number = u64::from_le_bytes(rest.get(..8)?.try_into().ok()?);
            (
                format!("shardId-{number:0width$}", width = kind as usize),
                &rest[8..],
            )
        };
        let (&count, packed) = rest.split_first()?;
        if packed.len() != (count as usize).div_ceil(2) || count == 0 {
            return None;
        }
        let mut digits = String::with_capacity(count as usize + 1);
        for byte in packed {
            let (high, low) = (byte >> 4, byte & 0x0f);
            if high > 9 || low > 9 {
                return None;
            }
            digits.push(char::from(b'0' + high));
            digits.push(char::from(b'0' + low));
        }
        let digits = &digits[digits.len() - count as usize..];
        if shard.is_empty() {
            return None;
        }
        Some(StreamPosition {
            shard,
            sequence: SequenceNumber::parse(digits)?,
        })
    }

    /// Whether `self` is at or before `other` in the same shard. Records of
    /// different shards are never ordered here: a visitor's records move to
    /// a child shard only after its parent is read to the end.
    pub fn at_or_before(&self, other: &StreamPosition) -> bool {
        self.shard == other.shard && self.sequence <= other.sequence
    }
}

/// Why a record is not a packed record of valid hits (a poison record: it
/// goes to the consumer's dead-letter queue, never counted; the transform
/// answers the same record `ProcessingFailed`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PackedError {
    #[error("the record holds no hit")]
    Empty,
    #[error("line {line}: {error}")]
    Hit { line: usize, error: HitError },
    #[error("line {line}: the hits of one record must share one event date")]
    MixedDates { line: usize },
}

/// The hits of one Kinesis record: the normalized JSON of one hit, or of
/// several hits packed as NDJSON lines (what `PutRecords` writes: the hits of
/// one visitor and one event date in a request share a record). A missing
/// timestamp becomes the record's arrival time. The same rules as the
/// transform's [`transform_packed_record`](crate::transform::transform_packed_record),
/// whose normalized lines are parsed back here, so both paths take and
/// refuse exactly the same records.
pub fn unpack_record(data: &[u8], arrival_ms: i64) -> Result<Vec<Hit<'static>>, PackedError> {
    let mut lines = Vec::with_capacity(data.len() + 64);
    crate::transform::transform_packed_record(data, arrival_ms, &mut lines)?;
    lines
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .enumerate()
        .map(|(line, text)| {
            crate::hit::parse_hit(text)
                .and_then(|wire| wire.into_raw_hit().map(Hit::into_owned))
                .map_err(|error| PackedError::Hit { line, error })
        })
        .collect()
}

/// The event dates a visitor has hits on, kept in its item (`dd`) so that
/// an erasure reads only those dates of the curated data instead of all of
/// it (SPEC 17; docs/DEPLOY.md, "Erasure"). A bitmap over at most
/// [`HitDates::SPAN_DAYS`] days ending at the newest date: the dates older
/// than that have left the curated data under any retention the deployment
/// accepts.
///
/// Encoding: `[first date, days since the epoch (i32 LE)][bitmap, bit i =
/// first + i]`, trailing zero bytes left out: a visitor seen on a few
/// nearby dates takes 5-6 bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HitDates {
    first: i32,
    bits: Vec<u8>,
}

impl HitDates {
    /// The days one set spans (the longest curated retention is shorter).
    pub const SPAN_DAYS: i32 = 1024;

    pub fn decode(bytes: &[u8]) -> Option<HitDates> {
        if bytes.len() < 4 || bytes.len() > 4 + (Self::SPAN_DAYS as usize) / 8 {
            return None;
        }
        let first = i32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
        Some(HitDates {
            first,
            bits: bytes[4..].to_vec(),
        })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 + self.bits.len());
        out.extend_from_slice(&self.first.to_le_bytes());
        out.extend_from_slice(&self.bits);
        out
    }

    pub fn is_empty(&self) -> bool {
        self.bits.iter().all(|&b| b == 0)
    }

    /// The dates held, oldest first.
    pub fn dates(&self) -> Vec<crate::Date> {
        (0..self.bits.len() * 8)
            .filter(|&i| self.bits[i / 8] & (1 << (i % 8)) != 0)
            .map(|i| crate::Date::from_days(self.first + i as i32))
            .collect()
    }

    /// Adds `date`; a date more than the span behind the newest is dropped,
    /// and a newer date pushes the oldest out of the span. Whether it changed.
    pub fn add(&mut self, date: crate::Date) -> bool {
        let offset = date.days() - self.first;
        if (0..self.bits.len() as i32 * 8).contains(&offset)
            && self.bits[offset as usize / 8] & (1 << (offset % 8)) != 0
        {
            return false; // the common case: a date the visitor has already
        }
        let mut days: Vec<i32> = self.dates().iter().map(|d| d.days()).collect();
        days.push(date.days());
        let newest = *days.iter().max().expect("one date");
        days.retain(|&d| d > newest - Self::SPAN_DAYS);
        if !days.contains(&date.days()) {
            return false;
        }
        let first = *days.iter().min().expect("one date");
        let mut bits = vec![0u8; ((newest - first) as usize) / 8 + 1];
        for d in days {
            let i = (d - first) as usize;
            bits[i / 8] |= 1 << (i % 8);
        }
        *self = HitDates { first, bits };
        true
    }
}

/// One hit of a batch as the consumer counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamHit {
    pub gender: Gender,
    pub event_ms: i64,
    /// `identity(clientid, hitid)`; `None` for a hit without `hitid`
    /// (written into the stream by something else than the API).
    pub identity: Option<u64>,
    /// The arrival time of the record that carried it.
    pub arrival_ms: i64,
    /// Index into the batch's record positions.
    pub record: usize,
}

impl StreamHit {
    pub fn of(hit: &Hit<'_>, arrival_ms: i64, record: usize) -> StreamHit {
        StreamHit {
            gender: hit.gender,
            event_ms: hit.event_ms,
            identity: hit
                .hitid
                .as_deref()
                .map(|h| HitKey::of(&hit.clientid, h).0 as u64),
            arrival_ms,
            record,
        }
    }
}

/// What a visitor's item holds for counting, read consistently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CountingState {
    /// `ver`: `None` while the item has never been written by the consumer
    /// (no item, or one the daily job or an older version wrote).
    pub version: Option<u64>,
    pub seen: SeenSet,
    pub last_seen_ms: Option<i64>,
    pub position: Option<StreamPosition>,
    pub dates: HitDates,
}

/// One visitor's write for a batch, decided from what was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CountingUpdate {
    pub m: u64,
    pub f: u64,
    /// The gender and time of the latest counted hit (on equal times the
    /// later in the stream), when it is at least as late as what is stored:
    /// then `last_gender`/`last_seen` are replaced.
    pub last: Option<(Gender, i64)>,
    pub seen: SeenSet,
    /// The last record of the batch for this visitor: stored as `sq`.
    pub position: StreamPosition,
    /// The version read (the write is conditional on it).
    pub expected_version: Option<u64>,
    pub duplicates: u64,
    /// The visitor's hit dates with this batch's, when they changed.
    pub dates: Option<HitDates>,
}

impl CountingUpdate {
    pub fn counted(&self) -> u64 {
        self.m + self.f
    }
}

/// What one visitor's hits of a batch come to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    /// `None` when every hit was in a record applied before: nothing to write.
    pub update: Option<CountingUpdate>,
    /// Hits skipped because their record was applied before.
    pub replayed: u64,
}

/// Decides one visitor's write for a batch: `hits` in stream order,
/// `positions` the batch's records. A hit counts when its record lies after
/// the stored position and its identity was neither counted within the
/// horizon (at its own arrival time) nor earlier in this batch.
pub fn decide(
    hits: &[StreamHit],
    positions: &[StreamPosition],
    stored: &CountingState,
    horizon: Option<Horizon>,
) -> Decision {
    let mut replayed = 0u64;
    let mut fresh: Vec<&StreamHit> = Vec::with_capacity(hits.len());
    for hit in hits {
        let applied = stored
            .position
            .as_ref()
            .is_some_and(|stored| positions[hit.record].at_or_before(stored));
        if applied {
            replayed += 1;
        } else {
            fresh.push(hit);
        }
    }
    let Some(last_record) = fresh.iter().map(|h| h.record).max() else {
        return Decision {
            update: None,
            replayed,
        };
    };

    let (mut m, mut f, mut duplicates) = (0u64, 0u64, 0u64);
    let mut latest: Option<(Gender, i64)> = None;
    let mut counted_now: HashSet<u64> = HashSet::new();
    let mut dates = stored.dates.clone();
    let mut dates_changed = false;
    // Identities counted by this batch, with the arrival they are kept under.
    let mut recorded: Vec<(i64, u64)> = Vec::new();
    let live = horizon.map(|h| {
        let first_arrival = fresh.iter().map(|h| h.arrival_ms).min().unwrap_or(0);
        stored.seen.live(h, first_arrival)
    });
    for hit in &fresh {
        if let (Some(id), Some(live)) = (hit.identity, &live) {
            if live.contains(&seen_set::fingerprint(id)) || !counted_now.insert(id) {
                duplicates += 1;
                continue;
            }
            recorded.push((hit.arrival_ms, id));
        }
        match hit.gender {
            Gender::M => m += 1,
            Gender::F => f += 1,
        }
        if latest.is_none_or(|(_, t)| hit.event_ms >= t) {
            latest = Some((hit.gender, hit.event_ms));
        }
        dates_changed |= dates.add(crate::Date::of_millis(hit.event_ms));
    }

    let mut seen = stored.seen.clone();
    if let Some(horizon) = horizon {
        // One group per arrival bucket; `record` prunes at each step, so the
        // set ends pruned at the batch's latest arrival.
        recorded.sort_by_key(|&(arrival, _)| arrival);
        let mut start = 0;
        while start < recorded.len() {
            let arrival = recorded[start].0;
            let end = start
                + recorded[start..]
                    .iter()
                    .take_while(|(a, _)| horizon.same_bucket(*a, arrival))
                    .count();
            let ids: Vec<u64> = recorded[start..end].iter().map(|&(_, id)| id).collect();
            seen.record(horizon, recorded[end - 1].0, &ids);
            start = end;
        }
        if let Some(latest_arrival) = fresh.iter().map(|h| h.arrival_ms).max() {
            seen.prune(horizon, latest_arrival);
        }
    }
    let last = latest.filter(|&(_, t)| stored.last_seen_ms.is_none_or(|s| t >= s));
    Decision {
        update: Some(CountingUpdate {
            m,
            f,
            last,
            seen,
            position: positions[last_record].clone(),
            expected_version: stored.version,
            duplicates,
            dates: dates_changed.then_some(dates),
        }),
        replayed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_514_400_000; // 2026-11-24T10:00:00Z
    const MIN: i64 = 60_000;

    fn pos(shard: &str, seq: &str) -> StreamPosition {
        StreamPosition {
            shard: shard.into(),
            sequence: SequenceNumber::parse(seq).unwrap(),
        }
    }

    fn hit(
        gender: Gender,
        event_ms: i64,
        hitid: &str,
        arrival_ms: i64,
        record: usize,
    ) -> StreamHit {
        StreamHit {
            gender,
            event_ms,
            identity: Some(HitKey::of("v", hitid).0 as u64),
            arrival_ms,
            record,
        }
    }

    fn hour() -> Option<Horizon> {
        Horizon::from_seconds(3600)
    }

    /// Applies a decision to a state the way the adapter's write does.
    fn apply(state: &CountingState, update: &CountingUpdate) -> (CountingState, u64, u64) {
        assert_eq!(update.expected_version, state.version);
        let next = CountingState {
            version: Some(state.version.unwrap_or(0) + 1),
            seen: update.seen.clone(),
            last_seen_ms: update.last.map(|(_, t)| t).or(state.last_seen_ms),
            position: Some(update.position.clone()),
            dates: update.dates.clone().unwrap_or_else(|| state.dates.clone()),
        };
        (next, update.m, update.f)
    }

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        let n = |s| SequenceNumber::parse(s).unwrap();
        assert!(n("9") < n("10"));
        assert!(n("0010") == n("10"));
        assert!(
            n("49546986683135544286507457936321625675700192471156785154")
                > n("49546986683135544286507457936321625675700192471156785153")
        );
        for bad in ["", "1a", "-1", &"9".repeat(130)] {
            assert!(SequenceNumber::parse(bad).is_none(), "{bad}");
        }
        for p in [
            pos("shardId-000000000001", "123"),
            pos(
                "shardId-000000000007",
                "49546986683135544286507457936321625675700192471156785154",
            ),
            pos("some-emulator-shard", "0"),
        ] {
            assert_eq!(
                StreamPosition::decode(&p.encode()),
                Some(p.clone()),
                "{p:?}"
            );
        }
        assert_eq!(
            pos(
                "shardId-000000000007",
                "49546986683135544286507457936321625675700192471156785154"
            )
            .encode()
            .len(),
            38
        );
        assert!(StreamPosition::decode(&[]).is_none());
        assert!(StreamPosition::decode(&[0, 3, b'a']).is_none());
        assert!(StreamPosition::decode(&[0, 1, b'a', 2, 0xff]).is_none());
        assert!(pos("a", "5").at_or_before(&pos("a", "5")));
        assert!(!pos("a", "6").at_or_before(&pos("a", "5")));
        assert!(
            !pos("b", "1").at_or_before(&pos("a", "5")),
            "other shards are never ordered"
        );
    }

    #[test]
    fn a_packed_record_unpacks_to_its_hits_and_bad_ones_are_poison() {
        let data = b"{\"clientid\":\"v\",\"pageGender\":\"M\",\"hitid\":\"a\"}\n{\"clientid\":\"v\",\"pageGender\":\"f\",\"timestamp\":\"2026-11-24T09:00:00Z\",\"hitid\":\"b\"}\n";
        let hits = unpack_record(data, T0).unwrap();
        assert_eq!(hits.len(), 2);
        assert_eq!(
            hits[0].event_ms, T0,
            "a missing timestamp is the arrival time"
        );
        assert_eq!(hits[1].gender, Gender::F);
        assert_eq!(
            unpack_record(b"{\"clientid\":\"v\",\"pageGender\":\"M\"}", T0)
                .unwrap()
                .len(),
            1,
            "one hit without a newline"
        );
        assert_eq!(unpack_record(b"\n \n", T0), Err(PackedError::Empty));
        assert!(matches!(
            unpack_record(
                b"{\"clientid\":\"v\",\"pageGender\":\"M\"}\n{\"clientid\":\"v\"}",
                T0
            ),
            Err(PackedError::Hit { line: 1, .. })
        ));
        let two_dates = b"{\"clientid\":\"v\",\"pageGender\":\"M\",\"timestamp\":\"2026-11-23T09:00:00Z\"}\n{\"clientid\":\"v\",\"pageGender\":\"M\",\"timestamp\":\"2026-11-24T09:00:00Z\"}";
        assert_eq!(
            unpack_record(two_dates, T0),
            Err(PackedError::MixedDates { line: 1 })
        );
    }

    #[test]
    fn counts_each_identity_once_and_keeps_the_latest_hit() {
        let positions = [pos("s0", "1"), pos("s0", "2")];
        let hits = [
            hit(Gender::M, T0 + 5, "a", T0, 0),
            hit(Gender::F, T0 + 5, "b", T0, 0), // same time, later: it is `last`
            hit(Gender::M, T0 + 1, "c", T0 + 10, 1),
            hit(Gender::M, T0 + 9, "a", T0 + 10, 1), // a PutRecords retry of `a`
        ];
        let decision = decide(&hits, &positions, &CountingState::default(), hour());
        let update = decision.update.unwrap();
        assert_eq!((update.m, update.f, update.duplicates), (2, 1, 1));
        assert_eq!(update.last, Some((Gender::F, T0 + 5)));
        assert_eq!(update.position, positions[1]);
        assert_eq!(update.expected_version, None);
        assert_eq!(update.seen.len(), 3);
    }

    #[test]
    fn a_redelivered_or_bisected_batch_counts_once_even_after_the_horizon() {
        let positions: Vec<_> = (1..=4).map(|s| pos("s0", &s.to_string())).collect();
        let hits: Vec<_> = (0..4)
            .map(|i| hit(Gender::M, T0 + i as i64, &format!("h{i}"), T0, i))
            .collect();
        // The first half applied (a bisected batch), then the whole batch again.
        let first = decide(&hits[..2], &positions, &CountingState::default(), hour());
        let (state, m, _) = apply(&CountingState::default(), first.update.as_ref().unwrap());
        assert_eq!(m, 2);
        let again = decide(&hits, &positions, &state, hour());
        assert_eq!(again.replayed, 2);
        let (state, m, _) = apply(&state, again.update.as_ref().unwrap());
        assert_eq!(m, 2, "only the two records after the stored position");
        // Much later, every record again: all replayed, nothing to write,
        // although the seen set has long expired.
        let mut expired = state.clone();
        expired.seen.prune(hour().unwrap(), T0 + 3 * 3600 * 1000);
        assert!(expired.seen.is_empty());
        let replay = decide(&hits, &positions, &expired, hour());
        assert_eq!((replay.update, replay.replayed), (None, 4));
    }

    #[test]
    fn a_resent_hitid_counts_once_within_the_horizon_and_again_after_it() {
        let first = decide(
            &[hit(Gender::M, T0, "x", T0, 0)],
            &[pos("s0", "1")],
            &CountingState::default(),
            hour(),
        );
        let (state, _, _) = apply(&CountingState::default(), first.update.as_ref().unwrap());
        // The producer resends it 30 minutes later, in a new record.
        let resend = decide(
            &[hit(Gender::M, T0, "x", T0 + 30 * MIN, 0)],
            &[pos("s0", "7")],
            &state,
            hour(),
        );
        let update = resend.update.unwrap();
        assert_eq!((update.counted(), update.duplicates), (0, 1));
        assert_eq!(update.last, None);
        assert_eq!(
            update.position,
            pos("s0", "7"),
            "the position still moves on"
        );
        // Two hours later the identity is forgotten: a new hit.
        let later = decide(
            &[hit(Gender::M, T0, "x", T0 + 120 * MIN, 0)],
            &[pos("s0", "9")],
            &state,
            hour(),
        );
        assert_eq!(later.update.unwrap().counted(), 1);
    }

    #[test]
    fn an_older_hit_counts_without_moving_last() {
        let state = CountingState {
            version: Some(4),
            last_seen_ms: Some(T0 + 1_000),
            ..CountingState::default()
        };
        let decision = decide(
            &[hit(Gender::F, T0, "late", T0 + 5_000, 0)],
            &[pos("s0", "3")],
            &state,
            hour(),
        );
        let update = decision.update.unwrap();
        assert_eq!(
            (update.f, update.last, update.expected_version),
            (1, None, Some(4))
        );
    }

    #[test]
    fn without_a_horizon_only_the_position_deduplicates() {
        let positions = [pos("s0", "1"), pos("s0", "2")];
        let hits = [
            hit(Gender::M, T0, "a", T0, 0),
            hit(Gender::M, T0, "a", T0, 1),
        ];
        let update = decide(&hits, &positions, &CountingState::default(), None)
            .update
            .unwrap();
        assert_eq!((update.m, update.duplicates), (2, 0));
        assert!(update.seen.is_empty());
    }

    #[test]
    fn hits_without_hitid_always_count() {
        let mut h = hit(Gender::M, T0, "a", T0, 0);
        h.identity = None;
        let update = decide(
            &[h.clone(), h],
            &[pos("s0", "1")],
            &CountingState::default(),
            hour(),
        )
        .update
        .unwrap();
        assert_eq!(update.m, 2);
    }

    #[test]
    fn hit_dates_are_kept_compactly_within_their_span() {
        let day = |d: i32| crate::Date::from_days(20_000 + d);
        let mut dates = HitDates::default();
        assert!(dates.is_empty());
        assert!(dates.add(day(5)));
        assert!(!dates.add(day(5)), "already there");
        assert!(dates.add(day(3)), "an older date within the span");
        assert!(dates.add(day(12)));
        assert_eq!(dates.dates(), [day(3), day(5), day(12)]);
        assert_eq!(dates.encode().len(), 4 + 2);
        assert_eq!(HitDates::decode(&dates.encode()), Some(dates.clone()));
        // A date a span ahead pushes the old ones out; one a span behind is dropped.
        assert!(dates.add(day(3 + HitDates::SPAN_DAYS)));
        assert_eq!(
            dates.dates(),
            [day(5), day(12), day(3 + HitDates::SPAN_DAYS)]
        );
        assert!(!dates.add(day(0)));
        assert!(dates.encode().len() <= 4 + HitDates::SPAN_DAYS as usize / 8);
        assert_eq!(HitDates::decode(b"abc"), None);
    }

    #[test]
    fn a_batch_adds_its_hit_dates() {
        let day_ms = 86_400_000;
        let hits = [
            hit(Gender::M, T0, "a", T0, 0),
            hit(Gender::M, T0 - day_ms, "b", T0, 0),
        ];
        let update = decide(&hits, &[pos("s0", "1")], &CountingState::default(), hour())
            .update
            .unwrap();
        let dates = update.dates.clone().unwrap();
        assert_eq!(dates.dates().len(), 2);
        let (state, _, _) = apply(&CountingState::default(), &update);
        let again = decide(
            &[hit(Gender::F, T0 + 5, "c", T0 + 5, 0)],
            &[pos("s0", "2")],
            &state,
            hour(),
        );
        assert_eq!(again.update.unwrap().dates, None, "no new date: no change");
    }
}
