//! Deduplication state kept inside a visitor's profile (SPEC 15, the AWS
//! deployment): the fingerprints of the hits counted for that visitor within
//! the horizon. Pure data and rules; the DynamoDB adapter stores the bytes,
//! the stream consumer decides with them (`crate::stream`).
//!
//! Encoding of the `seen` attribute (little-endian):
//!
//! ```text
//! [format = 2 (u8)] then groups, oldest first:
//!   [bucket start, minutes since the epoch (u32)][entries (u32)][entries x 5-byte fingerprint]
//! ```
//!
//! Format 1 (6-byte fingerprints, written by curate before the stream
//! consumer) is still read, its fingerprints cut to 5 bytes.
//!
//! A fingerprint is the low 40 bits of [`HitKey`] (`xxh3_128(clientid 0xFF
//! hitid)`). Entries are grouped by the arrival time of the hits, in buckets
//! of a sixth of the horizon, so one header serves many hits and a whole
//! bucket expires at once: an entry is kept for at least the horizon and at
//! most the horizon plus one bucket. At 2 hits per visitor per minute and a
//! 1-hour horizon a set holds at most 140 entries in 7 groups: 757 bytes,
//! which keeps the whole profile item under DynamoDB's 1 KB write unit
//! (docs/DEPLOY.md, "Cost").
//!
//! Two distinct hits of one visitor share a 40-bit fingerprint with
//! probability n / 2^40 for a set of n entries: at n = 120, 1.1 x 10^-10 per
//! hit, about one hit wrongly taken for a duplicate per 9 x 10^9 hits (at
//! 1,000 hits/s, one every 100 days).

use crate::dedup::HitKey;
use std::collections::HashSet;

const FORMAT: u8 = 2;
/// The format of 6-byte fingerprints, still read.
const FORMAT_WIDE: u8 = 1;
const HEADER: usize = 8;
/// Bytes of one stored fingerprint.
pub const FINGERPRINT_BYTES: usize = 5;
const FINGERPRINT_MASK: u64 = (1 << (8 * FINGERPRINT_BYTES)) - 1;
/// Buckets per horizon: the granularity of expiry.
const BUCKETS_PER_HORIZON: u32 = 6;
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
        let width = match format {
            FORMAT => FINGERPRINT_BYTES,
            FORMAT_WIDE => 6,
            _ => return Err(SeenSetError("unknown format")),
        };
        let mut groups = Vec::new();
        while !rest.is_empty() {
            if rest.len() < HEADER {
                return Err(SeenSetError("torn group header"));
            }
            let start = u32::from_le_bytes(rest[0..4].try_into().expect("4 bytes"));
            let count = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes")) as usize;
            rest = &rest[HEADER..];
            let len = count
                .checked_mul(width)
                .filter(|&len| len <= rest.len())
                .ok_or(SeenSetError("torn group"))?;
            let fingerprints = rest[..len]
                .chunks_exact(width)
                .map(|b| {
                    let mut wide = [0u8; 8];
                    wide[..width].copy_from_slice(b);
                    u64::from_le_bytes(wide) & FINGERPRINT_MASK
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
        assert_eq!(Horizon::from_seconds(3600).unwrap().bucket_minutes, 10);
        assert_eq!(Horizon::from_seconds(61).unwrap().bucket_minutes, 1);
    }

    #[test]
    fn encoding_round_trips_and_rejects_damage() {
        let mut set = SeenSet::default();
        assert_eq!(SeenSet::decode(&[]).unwrap(), set);
        set.record(hour(), T0, &[identity("v", "1"), identity("v", "2")]);
        set.record(hour(), T0 + 12 * MIN, &[u64::MAX]);
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
        set.record(hour(), T0 + 9 * MIN, &[3, 4]);
        assert_eq!(set.groups.len(), 1);
        set.record(hour(), T0 + 10 * MIN, &[5]);
        assert_eq!(set.groups.len(), 2);
        // A clock behind the newest bucket still files into the right one.
        set.record(hour(), T0 + MIN, &[6]);
        assert_eq!(set.groups.len(), 2);
        assert_eq!(set.groups[0].fingerprints, [1, 2, 3, 4, 6]);
    }

    #[test]
    fn an_entry_answers_for_at_least_the_horizon_and_then_expires() {
        let mut set = SeenSet::default();
        set.record(hour(), T0 + 9 * MIN + 59_999, &[7]);
        let fp = fingerprint(7);
        // The bucket [T0, T0+10min) expires once an hour has passed since its end.
        assert!(set.live(hour(), T0 + 69 * MIN + 59_999).contains(&fp));
        assert!(!set.live(hour(), T0 + 70 * MIN).contains(&fp));
        set.record(hour(), T0 + 70 * MIN, &[8]);
        assert_eq!(set.len(), 1, "pruned on write");
        assert!(!set.live(hour(), T0 + 70 * MIN).contains(&fp));
    }

    #[test]
    fn the_set_stays_within_its_cap_dropping_the_oldest_first() {
        let mut set = SeenSet::default();
        let many: Vec<u64> = (0..3_000).collect();
        set.record(hour(), T0, &many);
        set.record(hour(), T0 + 10 * MIN, &many);
        assert!(set.encoded_len() <= MAX_SET_BYTES);
        assert_eq!(set.groups.len(), 1, "the older bucket went first");
        let huge: Vec<u64> = (0..10_000).collect();
        let mut one = SeenSet::default();
        one.record(hour(), T0, &huge);
        assert!(one.encoded_len() <= MAX_SET_BYTES);
        assert!(one.len() > 4_000);
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
        assert_eq!(set.encoded_len(), 1 + 6 * HEADER + 120 * FINGERPRINT_BYTES);
        assert_eq!(set.encoded_len(), 649);
    }

    #[test]
    fn sets_of_six_byte_fingerprints_are_still_read() {
        let id = identity("v", "1");
        let mut old = vec![FORMAT_WIDE];
        old.extend_from_slice(&100u32.to_le_bytes());
        old.extend_from_slice(&1u32.to_le_bytes());
        old.extend_from_slice(&id.to_le_bytes()[..6]);
        let set = SeenSet::decode(&old).unwrap();
        assert!(set.live(hour(), 100 * MIN).contains(&fingerprint(id)));
    }
}
