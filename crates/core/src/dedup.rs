//! Deduplication (SPEC 15). A hit is identified by `(clientid, hitid)`;
//! curate counts an identity once within the horizon, whatever repeated it.
//!
//! Curate asks a [`HitFilter`] about each hit carrying a `hitid`, in line
//! order, before the hit reaches the Parquet file or the counters, so both
//! hold one row / one count per identity. The local runtime's filter is a
//! [`SeenIndex`]: every identity counted in the last horizon, in memory,
//! with the identities of each applied object persisted in the same
//! transaction as its counters (so a restart rebuilds the same index).

use std::collections::HashSet;
use std::hash::{BuildHasherDefault, Hasher};

/// 128 bits of a hit's identity: `xxh3_128(clientid 0xFF hitid)` (`0xFF`
/// occurs in neither id). Two distinct identities share a key with
/// probability 2^-128 per pair: at 10^9 identities in a horizon, about
/// 10^-21 over the lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HitKey(pub u128);

impl HitKey {
    pub fn of(clientid: &str, hitid: &str) -> HitKey {
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        hasher.update(clientid.as_bytes());
        hasher.update(&[0xFF]);
        hasher.update(hitid.as_bytes());
        HitKey(hasher.digest128())
    }

    pub const BYTES: usize = 16;

    /// Keys packed back to back (little-endian), as the state store keeps them.
    pub fn pack(keys: &[HitKey]) -> Vec<u8> {
        let mut out = Vec::with_capacity(keys.len() * Self::BYTES);
        for key in keys {
            out.extend_from_slice(&key.0.to_le_bytes());
        }
        out
    }

    /// The inverse of [`pack`](Self::pack); `None` if the length is not a multiple of 16.
    pub fn unpack(bytes: &[u8]) -> Option<Vec<HitKey>> {
        if !bytes.len().is_multiple_of(Self::BYTES) {
            return None;
        }
        Some(
            bytes
                .chunks_exact(Self::BYTES)
                .map(|b| HitKey(u128::from_le_bytes(b.try_into().expect("16 bytes"))))
                .collect(),
        )
    }
}

/// Decides, hit by hit, whether curate counts it. Only hits with a `hitid`
/// are asked; the rest are always counted (they have no identity).
pub trait HitFilter: Send {
    /// `true` when this identity was not counted before within the horizon
    /// (and is from now on, unless the caller discards the decision).
    fn first_sighting(&mut self, clientid: &str, hitid: &str) -> bool;
}

/// No deduplication: every hit counts (a deployment with the horizon set to
/// zero, and the baseline the benchmarks compare with).
#[derive(Debug, Default, Clone, Copy)]
pub struct CountAll;

impl HitFilter for CountAll {
    fn first_sighting(&mut self, _: &str, _: &str) -> bool {
        true
    }
}

/// A [`HitKey`] is already a hash: use its bits as they are.
#[derive(Default)]
pub struct KeyHasher(u64);

impl Hasher for KeyHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u128` is used by `HitKey`'s derived Hash; keep a
        // correct fallback anyway.
        for &b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(b);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = (v as u64) ^ ((v >> 64) as u64);
    }
}

pub type KeySet = HashSet<HitKey, BuildHasherDefault<KeyHasher>>;

/// The identities counted within the horizon, in two generations: keys
/// remembered at time `t` stay until the generation after `t`'s is
/// retired, so each is remembered for at least the horizon and at most
/// twice it. Memory peaks at 43-60 bytes per remembered identity (hash
/// table growth included; `bench_dedup_index` in docs/PERFORMANCE.md), so it
/// is bounded by 2 x horizon x rate.
///
/// Decisions taken since the last [`remember_pending`](Self::remember_pending)
/// are pending: they already answer later questions (duplicates inside one
/// object, or across objects applied in one transaction), and are either
/// kept once their transaction commits or taken back if it does not.
///
/// Ids that start with a [`unique prefix`](Self::with_unique_prefix) are
/// counted without being remembered: the local server's own assigned ids
/// are unique by construction, and its pipeline never repeats a record, so
/// only producer ids need the index.
#[derive(Default, Clone)]
pub struct SeenIndex {
    horizon_ms: i64,
    /// Remembered keys of the current generation, pending ones included.
    current: KeySet,
    current_since_ms: i64,
    previous: KeySet,
    /// Keys inserted into `current` since the last commit, in order.
    pending: Vec<HitKey>,
    unique_prefix: Option<String>,
}

impl SeenIndex {
    pub fn new(horizon_ms: i64) -> SeenIndex {
        SeenIndex {
            horizon_ms,
            current_since_ms: i64::MIN,
            ..SeenIndex::default()
        }
    }

    /// Counts ids starting with `prefix` without remembering them.
    pub fn with_unique_prefix(mut self, prefix: impl Into<String>) -> SeenIndex {
        self.unique_prefix = Some(prefix.into());
        self
    }

    pub fn horizon_ms(&self) -> i64 {
        self.horizon_ms
    }

    /// Identities remembered (both generations; pending ones excluded).
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len() - self.pending.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `key` counts (and, if so, holds it as pending).
    #[inline]
    pub fn first_sighting_key(&mut self, key: HitKey) -> bool {
        if !self.previous.is_empty() && self.previous.contains(&key) {
            return false;
        }
        if !self.current.insert(key) {
            return false;
        }
        self.pending.push(key);
        true
    }

    /// The pending identities, in the order they were first seen.
    pub fn pending(&self) -> &[HitKey] {
        &self.pending
    }

    /// Takes the pending decisions back (their transaction did not commit).
    pub fn discard_pending(&mut self) {
        for key in self.pending.drain(..) {
            self.current.remove(&key);
        }
    }

    /// Keeps the pending decisions, as counted at `at_ms` (their commit time).
    pub fn remember_pending(&mut self, at_ms: i64) {
        // They are in `current` already; a rotation moves them to
        // `previous`, which still answers.
        self.pending.clear();
        self.rotate(at_ms);
    }

    /// Remembers `keys` as counted at `at_ms` (rebuilding the index from
    /// the store at start-up). Call with no decision pending.
    pub fn remember(&mut self, keys: &[HitKey], at_ms: i64) {
        debug_assert!(self.pending.is_empty(), "remember with pending decisions");
        self.rotate(at_ms);
        self.current.extend(keys.iter().copied());
    }

    /// Retires the older generation once the current one is a horizon old.
    fn rotate(&mut self, at_ms: i64) {
        if self.current_since_ms == i64::MIN {
            self.current_since_ms = at_ms;
        } else if at_ms.saturating_sub(self.current_since_ms) >= self.horizon_ms {
            let stale = at_ms.saturating_sub(self.current_since_ms) >= 2 * self.horizon_ms;
            self.previous = if stale {
                KeySet::default()
            } else {
                std::mem::take(&mut self.current)
            };
            self.current = KeySet::default();
            self.current_since_ms = at_ms;
        }
    }

    /// The oldest commit time whose keys can still answer: the store drops
    /// persisted keys older than this.
    pub fn oldest_kept_ms(&self, now_ms: i64) -> i64 {
        now_ms.saturating_sub(2 * self.horizon_ms)
    }
}

impl HitFilter for SeenIndex {
    #[inline]
    fn first_sighting(&mut self, clientid: &str, hitid: &str) -> bool {
        if let Some(prefix) = &self.unique_prefix
            && hitid.starts_with(prefix.as_str())
        {
            return true;
        }
        self.first_sighting_key(HitKey::of(clientid, hitid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOUR: i64 = 3_600_000;

    #[test]
    fn keys_separate_clientid_from_hitid() {
        assert_ne!(HitKey::of("ab", "c"), HitKey::of("a", "bc"));
        assert_eq!(HitKey::of("a", "b"), HitKey::of("a", "b"));
        assert_ne!(HitKey::of("a", "b"), HitKey::of("b", "a"));
    }

    #[test]
    fn pack_round_trips_and_rejects_torn_lengths() {
        let keys = [HitKey::of("a", "1"), HitKey::of("b", "2")];
        assert_eq!(HitKey::unpack(&HitKey::pack(&keys)).unwrap(), keys);
        assert!(HitKey::unpack(&[0; 17]).is_none());
    }

    #[test]
    fn a_pending_decision_answers_until_discarded() {
        let mut index = SeenIndex::new(HOUR);
        assert!(index.first_sighting("v", "h1"));
        assert!(!index.first_sighting("v", "h1"), "same object");
        assert!(index.first_sighting("w", "h1"), "other visitor");
        index.discard_pending();
        assert!(index.first_sighting("v", "h1"), "the transaction was lost");
        index.remember_pending(0);
        assert!(index.pending().is_empty());
        assert!(!index.first_sighting("v", "h1"));
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn ids_with_the_unique_prefix_always_count_and_take_no_memory() {
        let mut index = SeenIndex::new(HOUR).with_unique_prefix("abc.");
        assert!(index.first_sighting("v", "abc.1"));
        assert!(index.first_sighting("v", "abc.1"));
        assert!(index.pending().is_empty());
        assert!(index.first_sighting("v", "abd.1"));
        assert!(!index.first_sighting("v", "abd.1"));
    }

    #[test]
    fn a_rotation_at_commit_keeps_the_committed_decisions_answering() {
        let mut index = SeenIndex::new(HOUR);
        index.remember(&[HitKey::of("v", "a")], 0);
        assert!(index.first_sighting("v", "b"));
        index.remember_pending(HOUR);
        assert!(!index.first_sighting("v", "a"));
        assert!(!index.first_sighting("v", "b"));
        assert_eq!(index.len(), 2);
    }

    #[test]
    fn identities_are_remembered_for_at_least_the_horizon_and_at_most_twice_it() {
        let mut index = SeenIndex::new(HOUR);
        index.remember(&[HitKey::of("v", "old")], 0);
        index.remember(&[HitKey::of("v", "mid")], HOUR - 1);
        // A commit one horizon later retires nothing yet: both still answer.
        index.remember(&[], HOUR);
        assert!(!index.first_sighting("v", "old"));
        assert!(!index.first_sighting("v", "mid"));
        // Two horizons after the first generation began, it is gone.
        index.remember(&[], 2 * HOUR);
        assert!(index.first_sighting("v", "old"));
        index.discard_pending();
        // A long pause retires both generations at once.
        index.remember(&[HitKey::of("v", "new")], 10 * HOUR);
        assert_eq!(index.len(), 1);
    }
}
