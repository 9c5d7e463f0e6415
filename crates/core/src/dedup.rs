//! Deduplication (SPEC 15). A hit is identified by `(clientid, hitid)`;
//! curate counts an identity once within the horizon, whatever repeated it.
//!
//! Curate asks a [`HitFilter`] about each hit carrying a `hitid`, in line
//! order, before the hit reaches the Parquet file or the counters, so both
//! hold one row / one count per identity. The local runtime's filter is a
//! [`SeenIndex`]: every identity counted in the last horizon, in memory,
//! with the identities of each applied object persisted in the same
//! transaction as its counters (so a restart rebuilds the same index).

use std::sync::Arc;

/// 128 bits of a hit's identity: `xxh3_128(clientid 0xFF hitid)` (`0xFF`
/// occurs in neither id). Two distinct identities share a key with
/// probability 2^-128 per pair: at 10^9 identities in a horizon, about
/// 10^-21 over the lot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(transparent)]
pub struct HitKey(pub u128);

impl HitKey {
    #[inline]
    pub fn of(clientid: &str, hitid: &str) -> HitKey {
        // One-shot hashing of the joined bytes (the same digest as the
        // streaming hasher, several times cheaper for ids this short).
        let mut joined = [0u8; 2 * crate::clientid::MAX_CLIENTID_LEN + 1];
        let (c, h) = (clientid.as_bytes(), hitid.as_bytes());
        if c.len() + 1 + h.len() <= joined.len() {
            joined[..c.len()].copy_from_slice(c);
            joined[c.len()] = 0xFF;
            joined[c.len() + 1..c.len() + 1 + h.len()].copy_from_slice(h);
            return HitKey(xxhash_rust::xxh3::xxh3_128(
                &joined[..c.len() + 1 + h.len()],
            ));
        }
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

    /// The [`pack`](Self::pack)ed form of `keys` without a copy, on a
    /// little-endian machine (where it is their memory); `None` elsewhere.
    pub fn packed_view(keys: &[HitKey]) -> Option<&[u8]> {
        if cfg!(target_endian = "big") {
            return None;
        }
        // SAFETY: a HitKey is a u128 (repr(transparent)): 16 initialized
        // bytes, no padding, so the keys' memory is that many bytes; u8
        // needs no alignment, and the view borrows `keys`.
        Some(unsafe { std::slice::from_raw_parts(keys.as_ptr().cast::<u8>(), size_of_val(keys)) })
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

    /// The same decisions for a run of consecutive hits, in order:
    /// `counted[i]` answers `ids[i]` (`None`: the hit has no `hitid` and
    /// counts). An index may fetch the memory of the whole run first.
    fn first_sightings(&mut self, ids: &[Option<(&str, &str)>], counted: &mut [bool]) {
        for (id, counted) in ids.iter().zip(counted) {
            *counted = id.is_none_or(|(clientid, hitid)| self.first_sighting(clientid, hitid));
        }
    }
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

/// A set of [`HitKey`]s that compares 64 of their 128 bits: open addressing
/// with linear probing over one array of 8-byte slots (`0` marks an empty
/// slot, so a key whose 64 bits are `0` is stored as `1`).
///
/// Two identities whose 64 bits agree are the same here: with `N`
/// identities remembered, a new hit is taken for a repeat with probability
/// `N / 2^64`, about 3 x 10^-13 at 5 M (at 1,400 producer-id hits/s and a
/// one-hour horizon, 5-10 M remembered: once in 40-80 years). That is the
/// risk class of
/// the AWS path's 48-bit fingerprints per visitor, for half the memory and
/// cache misses of 16-byte slots; the state store keeps all 128 bits.
///
/// Built for the index's access pattern: keys are random (they are hashes),
/// so nearly every lookup misses the CPU caches. One array means one miss
/// per lookup (a general hash map touches a control array and a bucket
/// array), and [`prefetch`](Self::prefetch) lets a caller start the misses
/// of keys ahead of the one it decides.
#[derive(Debug, Clone, Default)]
pub struct KeyTable {
    slots: Vec<u64>,
    len: usize,
}

impl KeyTable {
    /// Grow when more than half of the slots are taken. Nearly every key
    /// looked up is new, so each lookup reads its probe run up to an empty
    /// slot: at most 1/2 full that run averages under 2.5 slots and rarely
    /// leaves the prefetched cache line; at 3/4 it averages 8.5 (two lines,
    /// the second one a miss nobody prefetched). 16-32 bytes per key; a
    /// 3/4 bound measured 5-7 % slower in curate (docs/PERFORMANCE.md).
    const MAX_LOAD_NUMERATOR: usize = 1;
    const MAX_LOAD_DENOMINATOR: usize = 2;
    const MIN_SLOTS: usize = 1 << 10;

    /// Room for `keys` keys without growing.
    pub fn with_capacity(keys: usize) -> KeyTable {
        let mut table = KeyTable::default();
        if keys > 0 {
            table.slots = vec![0; Self::slots_for(keys)];
        }
        table
    }

    fn slots_for(keys: usize) -> usize {
        (keys * Self::MAX_LOAD_DENOMINATOR / Self::MAX_LOAD_NUMERATOR + 1)
            .next_power_of_two()
            .max(Self::MIN_SLOTS)
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn stored(key: HitKey) -> u64 {
        (key.0 as u64).max(1)
    }

    #[inline]
    fn home(&self, stored: u64) -> usize {
        (stored as usize) & (self.slots.len() - 1)
    }

    /// The slot holding `stored`, or the empty slot ending its probe run.
    #[inline]
    fn probe(&self, stored: u64) -> usize {
        let mask = self.slots.len() - 1;
        let mut at = self.home(stored);
        loop {
            let slot = self.slots[at];
            if slot == stored || slot == 0 {
                return at;
            }
            at = (at + 1) & mask;
        }
    }

    /// Asks the CPU to bring `key`'s home slot into cache without waiting
    /// for it, so the misses of keys looked up soon after overlap.
    #[inline]
    pub fn prefetch(&self, key: HitKey) {
        if self.slots.is_empty() {
            return;
        }
        crate::table::prefetch(&self.slots[self.home(Self::stored(key))]);
    }

    #[inline]
    pub fn contains(&self, key: HitKey) -> bool {
        !self.slots.is_empty() && self.slots[self.probe(Self::stored(key))] != 0
    }

    /// `true` if `key` was not in the set (and now is).
    #[inline]
    pub fn insert(&mut self, key: HitKey) -> bool {
        if (self.len + 1) * Self::MAX_LOAD_DENOMINATOR > self.slots.len() * Self::MAX_LOAD_NUMERATOR
        {
            self.grow();
        }
        let stored = Self::stored(key);
        let at = self.probe(stored);
        if self.slots[at] != 0 {
            return false;
        }
        self.slots[at] = stored;
        self.len += 1;
        true
    }

    fn grow(&mut self) {
        let old = std::mem::replace(&mut self.slots, vec![0; Self::slots_for(self.len + 1)]);
        for stored in old.into_iter().filter(|&s| s != 0) {
            let at = self.probe(stored);
            self.slots[at] = stored;
        }
    }

    /// `true` if `key` was in the set. Later keys of its probe run move back
    /// into the gap (backward-shift deletion), so no tombstones build up.
    pub fn remove(&mut self, key: HitKey) -> bool {
        if self.slots.is_empty() {
            return false;
        }
        let mask = self.slots.len() - 1;
        let mut gap = self.probe(Self::stored(key));
        if self.slots[gap] == 0 {
            return false;
        }
        let mut at = gap;
        loop {
            at = (at + 1) & mask;
            let slot = self.slots[at];
            if slot == 0 {
                break;
            }
            // A key may fill the gap when its home is not cyclically in (gap, at].
            let home = self.home(slot);
            let stays = if gap <= at {
                gap < home && home <= at
            } else {
                gap < home || home <= at
            };
            if !stays {
                self.slots[gap] = slot;
                gap = at;
            }
        }
        self.slots[gap] = 0;
        self.len -= 1;
        true
    }

    pub fn extend(&mut self, keys: impl IntoIterator<Item = HitKey>) {
        for key in keys {
            self.insert(key);
        }
    }
}

/// The identities counted within the horizon, in two generations: keys
/// remembered at time `t` stay until the generation after `t`'s is
/// retired, so each is remembered for at least the horizon and at most
/// twice it. Memory is about 27-41 bytes per remembered identity (table
/// growth included; `bench_dedup_index` in docs/PERFORMANCE.md), so it is
/// bounded by 2 x horizon x rate.
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
    current: KeyTable,
    current_since_ms: i64,
    previous: KeyTable,
    /// Keys inserted into `current` since the last commit, in order: first
    /// those already handed to the store ([`pending_shared`](Self::pending_shared)),
    /// then the rest.
    shared: Option<Arc<Vec<HitKey>>>,
    pending: Vec<HitKey>,
    /// Scratch space of [`first_sightings`](HitFilter::first_sightings).
    run_keys: Vec<Option<HitKey>>,
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

    #[inline]
    fn is_unique(&self, hitid: &str) -> bool {
        self.unique_prefix
            .as_deref()
            .is_some_and(|prefix| hitid.starts_with(prefix))
    }

    pub fn horizon_ms(&self) -> i64 {
        self.horizon_ms
    }

    /// Identities remembered (both generations; pending ones excluded).
    pub fn len(&self) -> usize {
        self.current.len() + self.previous.len() - self.pending_len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether `key` counts (and, if so, holds it as pending).
    #[inline]
    pub fn first_sighting_key(&mut self, key: HitKey) -> bool {
        if !self.previous.is_empty() && self.previous.contains(key) {
            return false;
        }
        if !self.current.insert(key) {
            return false;
        }
        self.pending.push(key);
        true
    }

    fn pending_len(&self) -> usize {
        self.shared.as_ref().map_or(0, |keys| keys.len()) + self.pending.len()
    }

    /// The pending identities, in the order they were first seen, shared
    /// rather than copied (a large object has a million of them) with the
    /// store that persists them; they stay pending until
    /// [`remember_pending`](Self::remember_pending) or
    /// [`discard_pending`](Self::discard_pending).
    pub fn pending_shared(&mut self) -> Arc<Vec<HitKey>> {
        if !self.pending.is_empty() {
            let mut keys = self
                .shared
                .take()
                .map(Arc::unwrap_or_clone)
                .unwrap_or_default();
            if keys.is_empty() {
                keys = std::mem::take(&mut self.pending);
            } else {
                keys.append(&mut self.pending);
            }
            // The store may keep the list until its checkpoint: without the
            // room it grew into (up to half of it), which a shrink in place
            // gives back.
            keys.shrink_to_fit();
            self.shared = Some(Arc::new(keys));
        }
        self.shared.clone().unwrap_or_default()
    }

    /// Takes the pending decisions back (their transaction did not commit).
    pub fn discard_pending(&mut self) {
        if let Some(shared) = self.shared.take() {
            for key in shared.iter() {
                self.current.remove(*key);
            }
        }
        for key in self.pending.drain(..) {
            self.current.remove(key);
        }
    }

    /// Keeps the pending decisions, as counted at `at_ms` (their commit time).
    pub fn remember_pending(&mut self, at_ms: i64) {
        // They are in `current` already; a rotation moves them to
        // `previous`, which still answers.
        self.shared = None;
        self.pending.clear();
        self.rotate(at_ms);
    }

    /// Remembers `keys` as counted at `at_ms` (rebuilding the index from
    /// the store at start-up). Call with no decision pending.
    pub fn remember(&mut self, keys: &[HitKey], at_ms: i64) {
        debug_assert!(self.pending_len() == 0, "remember with pending decisions");
        self.rotate(at_ms);
        self.current.extend(keys.iter().copied());
    }

    /// Retires the older generation once the current one is a horizon old.
    fn rotate(&mut self, at_ms: i64) {
        if self.current_since_ms == i64::MIN {
            self.current_since_ms = at_ms;
        } else if at_ms.saturating_sub(self.current_since_ms) >= self.horizon_ms {
            let stale = at_ms.saturating_sub(self.current_since_ms) >= 2 * self.horizon_ms;
            // The new generation will likely hold as many keys as the one
            // retiring: size it once instead of growing it step by step.
            let expected = self.current.len();
            self.previous = if stale {
                KeyTable::default()
            } else {
                std::mem::take(&mut self.current)
            };
            self.current = KeyTable::with_capacity(expected);
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
        if self.is_unique(hitid) {
            return true;
        }
        self.first_sighting_key(HitKey::of(clientid, hitid))
    }

    /// Hashes the run, then decides in order (so a duplicate inside the
    /// run is still found) while the slots of the keys a few places ahead
    /// are being fetched: the cache misses overlap instead of following one
    /// another.
    fn first_sightings(&mut self, ids: &[Option<(&str, &str)>], counted: &mut [bool]) {
        /// Keys fetched ahead of the one being decided: enough to cover a
        /// miss's latency with the decisions in between.
        const AHEAD: usize = 16;
        let mut keys = std::mem::take(&mut self.run_keys);
        keys.clear();
        keys.extend(ids.iter().map(|id| {
            id.filter(|(_, hitid)| !self.is_unique(hitid))
                .map(|(clientid, hitid)| HitKey::of(clientid, hitid))
        }));
        for key in keys.iter().take(AHEAD).flatten() {
            self.previous.prefetch(*key);
            self.current.prefetch(*key);
        }
        for (at, counted) in counted.iter_mut().enumerate().take(keys.len()) {
            if let Some(Some(ahead)) = keys.get(at + AHEAD) {
                self.previous.prefetch(*ahead);
                self.current.prefetch(*ahead);
            }
            *counted = keys[at].is_none_or(|key| self.first_sighting_key(key));
        }
        self.run_keys = keys;
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
    fn keys_do_not_depend_on_how_they_are_hashed() {
        // Persisted keys must survive an upgrade: the one-shot path gives
        // the streaming hasher's digest, and over-long ids still hash.
        let streamed = |c: &str, h: &str| {
            let mut hasher = xxhash_rust::xxh3::Xxh3::new();
            hasher.update(c.as_bytes());
            hasher.update(&[0xFF]);
            hasher.update(h.as_bytes());
            HitKey(hasher.digest128())
        };
        let long = "x".repeat(100);
        for (c, h) in [
            ("v", "h"),
            ("visitor-1", "0b8f-uuid"),
            (&long[..], "h"),
            ("v", &long[..]),
        ] {
            assert_eq!(HitKey::of(c, h), streamed(c, h));
        }
        // Pinned: a change of hash would forget every persisted identity.
        assert_eq!(
            format!("{:032x}", HitKey::of("a", "b").0),
            "e5e3a0fcdb3add313c2d4efbd578b52d"
        );
    }

    #[test]
    fn pack_round_trips_and_rejects_torn_lengths() {
        let keys = [HitKey::of("a", "1"), HitKey::of("b", "2")];
        assert_eq!(HitKey::unpack(&HitKey::pack(&keys)).unwrap(), keys);
        assert!(HitKey::unpack(&[0; 17]).is_none());
        if let Some(view) = HitKey::packed_view(&keys) {
            assert_eq!(view, HitKey::pack(&keys));
        }
        assert_eq!(HitKey::packed_view(&[]).map(<[u8]>::len).unwrap_or(0), 0);
    }

    #[test]
    fn the_key_table_behaves_like_a_set() {
        // Few distinct keys in a small table: long probe runs that wrap
        // around the end, inserts and removals interleaved, checked against
        // the standard set after every step.
        let mut rng = fastrand::Rng::with_seed(7);
        let mut table = KeyTable::default();
        let mut model = std::collections::HashSet::new();
        // Keys whose home slots crowd the table's last slots (and key 0).
        let pool: Vec<HitKey> = (0..3000u128)
            .map(|n| {
                HitKey(if n == 0 {
                    0
                } else {
                    (n << 20) | (0xF_FFFF - n % 40)
                })
            })
            .collect();
        for step in 0..60_000 {
            let key = pool[rng.usize(..pool.len())];
            if rng.u8(..3) == 0 {
                assert_eq!(table.remove(key), model.remove(&key), "step {step}");
            } else {
                assert_eq!(table.insert(key), model.insert(key), "step {step}");
            }
            assert_eq!(table.len(), model.len());
            let probe = pool[rng.usize(..pool.len())];
            assert_eq!(table.contains(probe), model.contains(&probe), "step {step}");
        }
        for key in &pool {
            assert_eq!(table.contains(*key), model.contains(key));
        }
        assert!(!KeyTable::default().contains(HitKey(5)));
        assert!(!KeyTable::default().remove(HitKey(5)));
    }

    #[test]
    fn deciding_a_run_gives_the_answers_of_one_by_one() {
        let mut rng = fastrand::Rng::with_seed(3);
        let ids: Vec<(String, String)> = (0..500)
            .map(|_| (format!("v{}", rng.u8(..5)), format!("h{}", rng.u8(..60))))
            .collect();
        let asked: Vec<Option<(&str, &str)>> = ids
            .iter()
            .enumerate()
            .map(|(i, (c, h))| match i % 7 {
                0 => None,
                1 => Some((c.as_str(), "abc.unique")),
                _ => Some((c.as_str(), h.as_str())),
            })
            .collect();
        let mut one_by_one = SeenIndex::new(HOUR).with_unique_prefix("abc.");
        one_by_one.remember(&[HitKey::of("v1", "h1"), HitKey::of("v2", "h7")], 0);
        let mut batched = one_by_one.clone();
        let expected: Vec<bool> = asked
            .iter()
            .map(|id| id.is_none_or(|(c, h)| one_by_one.first_sighting(c, h)))
            .collect();
        let mut counted = vec![false; asked.len()];
        batched.first_sightings(&asked, &mut counted);
        assert_eq!(counted, expected);
        assert_eq!(batched.pending_shared(), one_by_one.pending_shared());
        assert!(counted.iter().any(|c| !c) && counted.iter().any(|c| *c));
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
        assert!(index.pending_shared().is_empty());
        assert!(!index.first_sighting("v", "h1"));
        assert_eq!(index.len(), 1);
    }

    #[test]
    fn shared_pending_keys_stay_pending_in_order_until_committed_or_discarded() {
        let key = |h: &str| HitKey::of("v", h);
        let mut index = SeenIndex::new(HOUR);
        assert!(index.first_sighting("v", "a"));
        assert!(index.first_sighting("v", "b"));
        let handed = index.pending_shared();
        assert_eq!(*handed, [key("a"), key("b")]);
        // Decided after the keys were handed out: still pending, after them.
        assert!(!index.first_sighting("v", "a"));
        assert!(index.first_sighting("v", "c"));
        assert_eq!(*index.pending_shared(), [key("a"), key("b"), key("c")]);
        assert_eq!(
            *handed,
            [key("a"), key("b")],
            "what was handed out is unchanged"
        );
        assert_eq!(index.len(), 0);
        index.discard_pending();
        assert!(index.pending_shared().is_empty());
        for h in ["a", "b", "c"] {
            assert!(index.first_sighting("v", h), "{h} was taken back");
        }
        let committed = index.pending_shared();
        index.remember_pending(0);
        assert_eq!(committed.len(), 3);
        assert!(index.pending_shared().is_empty());
        assert_eq!(index.len(), 3);
        assert!(!index.first_sighting("v", "b"));
    }

    #[test]
    fn ids_with_the_unique_prefix_always_count_and_take_no_memory() {
        let mut index = SeenIndex::new(HOUR).with_unique_prefix("abc.");
        assert!(index.first_sighting("v", "abc.1"));
        assert!(index.first_sighting("v", "abc.1"));
        assert!(index.pending_shared().is_empty());
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
