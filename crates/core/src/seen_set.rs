//! Deduplication state kept inside a visitor's profile (SPEC 15, the AWS
//! deployment): the fingerprints of the hits counted for that visitor within
//! the horizon, and the per-object decision curate derives from it. Pure
//! data and rules; the DynamoDB adapter stores the bytes, functions/curate
//! runs the protocol.
//!
//! Encoding of the `seen` attribute (little-endian):
//!
//! ```text
//! [format = 1 (u8)] then groups, oldest first:
//!   [bucket start, minutes since the epoch (u32)][entries (u32)][entries x 6-byte fingerprint]
//! ```
//!
//! A fingerprint is the low 48 bits of [`HitKey`] (`xxh3_128(clientid 0xFF
//! hitid)`). Entries are grouped by the time the counting write committed,
//! in buckets of a twelfth of the horizon, so one header serves many hits and
//! a whole bucket expires at once: an entry is kept for at least the horizon
//! and at most the horizon plus one bucket. At 2 hits per visitor per minute
//! and a 1-hour horizon a set holds 120 entries in 12 groups: 817 bytes.
//!
//! Two distinct hits of one visitor share a 48-bit fingerprint with
//! probability n / 2^48 for a set of n entries: at n = 120, 4 x 10^-13 per
//! hit, about one hit wrongly taken for a duplicate per 2 x 10^12 hits.

use crate::dedup::{HitFilter, HitKey};
use std::collections::HashSet;

const FORMAT: u8 = 1;
const HEADER: usize = 8;
/// Bytes of one stored fingerprint.
pub const FINGERPRINT_BYTES: usize = 6;
const FINGERPRINT_MASK: u64 = (1 << (8 * FINGERPRINT_BYTES)) - 1;
/// Buckets per horizon: the granularity of expiry.
const BUCKETS_PER_HORIZON: u32 = 12;
/// The most a set may take in its item (about 4,000 entries). DynamoDB
/// items stop at 400 KB and a transaction at 4 MB for its 100 items; a
/// visitor with more hits in one horizon (a bot) is deduplicated over the
/// most recent ones that fit.
pub const MAX_SET_BYTES: usize = 24 * 1024;

/// The identity of a hit within one object (64 bits of [`HitKey`]): what
/// curate compares hits of one object by and what markers record.
pub fn identity(clientid: &str, hitid: &str) -> u64 {
    HitKey::of(clientid, hitid).0 as u64
}

/// What a set stores of an [`identity`].
pub fn fingerprint(identity: u64) -> u64 {
    identity & FINGERPRINT_MASK
}

/// The deduplication horizon at minute precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Horizon {
    minutes: u32,
    bucket_minutes: u32,
}

impl Horizon {
    /// `None` for 0 (deduplication off); otherwise rounded up to whole minutes.
    pub fn from_seconds(seconds: u64) -> Option<Horizon> {
        if seconds == 0 {
            return None;
        }
        let minutes = u32::try_from(seconds.div_ceil(60)).unwrap_or(u32::MAX / 2);
        Some(Horizon {
            minutes,
            bucket_minutes: minutes.div_ceil(BUCKETS_PER_HORIZON).max(1),
        })
    }

    pub fn minutes(&self) -> u32 {
        self.minutes
    }

    /// Whether two times fall into the same bucket (are recorded as one group).
    pub fn same_bucket(&self, a_ms: i64, b_ms: i64) -> bool {
        self.bucket_of(a_ms) == self.bucket_of(b_ms)
    }

    fn bucket_of(&self, now_ms: i64) -> u32 {
        let minute = minute_of(now_ms);
        minute - minute % self.bucket_minutes
    }

    /// Whether a bucket starting at `start` still answers at `now_ms`.
    fn keeps(&self, start: u32, now_ms: i64) -> bool {
        u64::from(start) + u64::from(self.bucket_minutes) + u64::from(self.minutes)
            > u64::from(minute_of(now_ms))
    }
}

fn minute_of(ms: i64) -> u32 {
    u32::try_from(ms.max(0) / 60_000).unwrap_or(u32::MAX)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    start: u32,
    fingerprints: Vec<u64>,
}

/// A stored `seen` attribute that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("seen set: {0}")]
pub struct SeenSetError(&'static str);

/// The fingerprints counted for one visitor, grouped by commit bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenSet {
    groups: Vec<Group>,
}

impl SeenSet {
    pub fn decode(bytes: &[u8]) -> Result<SeenSet, SeenSetError> {
        let Some((&format, mut rest)) = bytes.split_first() else {
            return Ok(SeenSet::default());
        };
        if format != FORMAT {
            return Err(SeenSetError("unknown format"));
        }
        let mut groups = Vec::new();
        while !rest.is_empty() {
            if rest.len() < HEADER {
                return Err(SeenSetError("torn group header"));
            }
            let start = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
            let count = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes")) as usize;
            rest = &rest[HEADER..];
            let len = count
                .checked_mul(FINGERPRINT_BYTES)
                .filter(|&len| len <= rest.len())
                .ok_or(SeenSetError("torn group"))?;
            let fingerprints = rest[..len]
                .chunks_exact(FINGERPRINT_BYTES)
                .map(|b| {
                    let mut wide = [0u8; 8];
                    wide[..FINGERPRINT_BYTES].copy_from_slice(b);
                    u64::from_le_bytes(wide)
                })
                .collect();
            rest = &rest[len..];
            groups.push(Group {
                start,
                fingerprints,
            });
        }
        Ok(SeenSet { groups })
    }

    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.push(FORMAT);
        for group in &self.groups {
            out.extend_from_slice(&group.start.to_le_bytes());
            out.extend_from_slice(&(group.fingerprints.len() as u32).to_le_bytes());
            for fp in &group.fingerprints {
                out.extend_from_slice(&fp.to_le_bytes()[..FINGERPRINT_BYTES]);
            }
        }
        out
    }

    pub fn encoded_len(&self) -> usize {
        1 + self
            .groups
            .iter()
            .map(|g| HEADER + g.fingerprints.len() * FINGERPRINT_BYTES)
            .sum::<usize>()
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.fingerprints.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Drops the buckets that no longer answer at `now_ms`.
    pub fn prune(&mut self, horizon: Horizon, now_ms: i64) {
        self.groups.retain(|g| horizon.keeps(g.start, now_ms));
    }

    /// The fingerprints that answer at `now_ms` (pruned ones excluded).
    pub fn live(&self, horizon: Horizon, now_ms: i64) -> HashSet<u64> {
        self.groups
            .iter()
            .filter(|g| horizon.keeps(g.start, now_ms))
            .flat_map(|g| g.fingerprints.iter().copied())
            .collect()
    }

    /// Records `identities` as counted by a write committing at `now_ms`,
    /// after pruning; then keeps the set within [`MAX_SET_BYTES`] by dropping
    /// the oldest buckets (and, for one oversized object, its last entries).
    pub fn record(&mut self, horizon: Horizon, now_ms: i64, identities: &[u64]) {
        self.prune(horizon, now_ms);
        if !identities.is_empty() {
            let start = horizon.bucket_of(now_ms);
            let at = match self.groups.binary_search_by_key(&start, |g| g.start) {
                Ok(at) => at,
                Err(at) => {
                    self.groups.insert(
                        at,
                        Group {
                            start,
                            fingerprints: Vec::new(),
                        },
                    );
                    at
                }
            };
            self.groups[at]
                .fingerprints
                .extend(identities.iter().map(|&id| fingerprint(id)));
        }
        while self.encoded_len() > MAX_SET_BYTES {
            if self.groups.len() > 1 {
                self.groups.remove(0);
            } else {
                let keep = (MAX_SET_BYTES - 1 - HEADER) / FINGERPRINT_BYTES;
                self.groups[0].fingerprints.truncate(keep);
            }
        }
    }
}

/// Of one visitor's hits in an object (identities, any order, repeats
/// allowed), those counted before: their fingerprint is live in `stored`.
/// Each is reported once.
pub fn counted_before(stored: &HashSet<u64>, identities: &[u64]) -> Vec<u64> {
    let mut out: Vec<u64> = identities
        .iter()
        .copied()
        .filter(|&id| stored.contains(&fingerprint(id)))
        .collect();
    out.sort_unstable();
    out.dedup();
    out
}

/// Of one visitor's hits in an object, the identities this object counts:
/// each distinct identity once, minus those counted before.
pub fn counted_now(identities: &[u64], before: &HashSet<u64>) -> Vec<u64> {
    let mut seen = HashSet::with_capacity(identities.len());
    identities
        .iter()
        .copied()
        .filter(|id| !before.contains(id) && seen.insert(*id))
        .collect()
}

/// Packs identities for a marker (8 bytes each, little-endian).
pub fn pack_identities(ids: &[u64]) -> Vec<u8> {
    ids.iter().flat_map(|id| id.to_le_bytes()).collect()
}

/// The inverse of [`pack_identities`]; `None` if the length is not a multiple of 8.
pub fn unpack_identities(bytes: &[u8]) -> Option<Vec<u64>> {
    if !bytes.len().is_multiple_of(8) {
        return None;
    }
    Some(
        bytes
            .chunks_exact(8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
            .collect(),
    )
}

/// The decision for one object, as a [`HitFilter`] for curate's pass over
/// it: a hit counts iff its identity is not among `before` (counted by an
/// earlier object) and it is the first occurrence in this object.
#[derive(Debug, Default, Clone)]
pub struct ObjectDecision {
    before: HashSet<u64>,
    in_object: HashSet<u64>,
}

impl ObjectDecision {
    pub fn new(before: HashSet<u64>) -> ObjectDecision {
        ObjectDecision {
            before,
            in_object: HashSet::new(),
        }
    }
}

impl HitFilter for ObjectDecision {
    fn first_sighting(&mut self, clientid: &str, hitid: &str) -> bool {
        let id = identity(clientid, hitid);
        !self.before.contains(&id) && self.in_object.insert(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60_000;
    const T0: i64 = 1_795_514_400_000; // 2026-11-24T10:00:00Z, a whole hour

    fn hour() -> Horizon {
        Horizon::from_seconds(3600).unwrap()
    }

    #[test]
    fn horizon_rounds_up_to_minutes_and_zero_is_off() {
        assert_eq!(Horizon::from_seconds(0), None);
        assert_eq!(Horizon::from_seconds(1).unwrap().minutes(), 1);
        assert_eq!(Horizon::from_seconds(3600).unwrap().bucket_minutes, 5);
        assert_eq!(Horizon::from_seconds(61).unwrap().bucket_minutes, 1);
    }

    #[test]
    fn encoding_round_trips_and_rejects_damage() {
        let mut set = SeenSet::default();
        assert_eq!(SeenSet::decode(&[]).unwrap(), set);
        set.record(hour(), T0, &[identity("v", "1"), identity("v", "2")]);
        set.record(hour(), T0 + 7 * MIN, &[u64::MAX]);
        let bytes = set.encode();
        assert_eq!(bytes.len(), set.encoded_len());
        assert_eq!(bytes.len(), 1 + 2 * HEADER + 3 * FINGERPRINT_BYTES);
        let back = SeenSet::decode(&bytes).unwrap();
        assert_eq!(back, set);
        assert_eq!(back.len(), 3);
        assert!(back.live(hour(), T0).contains(&fingerprint(u64::MAX)));
        assert!(SeenSet::decode(&bytes[..bytes.len() - 1]).is_err());
        assert!(SeenSet::decode(&bytes[..5]).is_err());
        assert!(SeenSet::decode(&[9]).is_err());
    }

    #[test]
    fn one_bucket_holds_the_hits_of_several_objects() {
        let mut set = SeenSet::default();
        set.record(hour(), T0, &[1, 2]);
        set.record(hour(), T0 + 4 * MIN, &[3, 4]);
        assert_eq!(set.groups.len(), 1);
        set.record(hour(), T0 + 5 * MIN, &[5]);
        assert_eq!(set.groups.len(), 2);
        // A clock behind the newest bucket still files into the right one.
        set.record(hour(), T0 + MIN, &[6]);
        assert_eq!(set.groups.len(), 2);
        assert_eq!(set.groups[0].fingerprints, [1, 2, 3, 4, 6]);
    }

    #[test]
    fn an_entry_answers_for_at_least_the_horizon_and_then_expires() {
        let mut set = SeenSet::default();
        set.record(hour(), T0 + 4 * MIN + 59_999, &[7]);
        let fp = fingerprint(7);
        // The bucket [T0, T0+5min) expires once an hour has passed since its end.
        assert!(set.live(hour(), T0 + 64 * MIN + 59_999).contains(&fp));
        assert!(!set.live(hour(), T0 + 65 * MIN).contains(&fp));
        set.record(hour(), T0 + 65 * MIN, &[8]);
        assert_eq!(set.len(), 1, "pruned on write");
        assert!(!set.live(hour(), T0 + 65 * MIN).contains(&fp));
    }

    #[test]
    fn the_set_stays_within_its_cap_dropping_the_oldest_first() {
        let mut set = SeenSet::default();
        let many: Vec<u64> = (0..3_000).collect();
        set.record(hour(), T0, &many);
        set.record(hour(), T0 + 5 * MIN, &many);
        assert!(set.encoded_len() <= MAX_SET_BYTES);
        assert_eq!(set.groups.len(), 1, "the older bucket went first");
        let huge: Vec<u64> = (0..10_000).collect();
        let mut one = SeenSet::default();
        one.record(hour(), T0, &huge);
        assert!(one.encoded_len() <= MAX_SET_BYTES);
        assert!(one.len() > 4_000);
    }

    #[test]
    fn the_decision_counts_first_occurrences_not_counted_before() {
        let a1 = identity("a", "1");
        let a2 = identity("a", "2");
        let a3 = identity("a", "3");
        let mut stored = SeenSet::default();
        stored.record(hour(), T0, &[a1]);
        let live = stored.live(hour(), T0 + MIN);
        let hits = [a1, a2, a2, a3, a1];
        let before: HashSet<u64> = counted_before(&live, &hits).into_iter().collect();
        assert_eq!(before, HashSet::from([a1]));
        assert_eq!(counted_now(&hits, &before), [a2, a3]);
        let mut filter = ObjectDecision::new(before);
        let decided: Vec<bool> = ["1", "2", "2", "3", "1"]
            .iter()
            .map(|h| filter.first_sighting("a", h))
            .collect();
        assert_eq!(decided, [false, true, false, true, false]);
        assert!(filter.first_sighting("b", "1"), "another visitor's hit 1");
    }

    #[test]
    fn identities_pack_for_markers() {
        let ids = [1, u64::MAX, 42];
        assert_eq!(unpack_identities(&pack_identities(&ids)).unwrap(), ids);
        assert!(unpack_identities(&[0; 9]).is_none());
    }

    #[test]
    fn an_hour_at_two_hits_a_minute_fits_in_well_under_a_kilobyte() {
        let mut set = SeenSet::default();
        for minute in 0..60 {
            let ids = [
                identity("v", &format!("{minute}a")),
                identity("v", &format!("{minute}b")),
            ];
            set.record(hour(), T0 + minute * MIN, &ids);
        }
        assert_eq!(set.len(), 120);
        assert_eq!(set.encoded_len(), 1 + 12 * HEADER + 120 * FINGERPRINT_BYTES);
        assert_eq!(set.encoded_len(), 817);
    }
}
