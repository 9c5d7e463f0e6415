//! An open-addressing hash table for 16-byte inline clientid keys that can
//! prefetch a key's bucket ahead of the lookup.
//!
//! Per-visitor maps outgrow the CPU caches (100k visitors for one raw
//! object, a million for a daily window), so each lookup waits for memory.
//! Callers that know the next few keys ([`Pipelined`]) start those loads
//! early and overlap the waits; that is the whole point of this type over a
//! `HashMap`. Linear probing, power-of-two capacity, at most half full.
//!
//! The inline keys ([`InlineKey`]) are defined here with the table; the
//! aggregator's visitor map and the state store's overlay key by them too.

/// A clientid of at most `N - 1` bytes as a fixed-size hash key: the bytes
/// zero-padded, the length in the last byte. Comparing two keys is a couple
/// of vector compares with no pointer to follow, which is what keeps a
/// per-visitor hash map fast once it outgrows the caches. Since clientids
/// never contain a zero byte, comparing keys as byte arrays orders them like
/// their strings.
pub type InlineKey<const N: usize> = [u8; N];

#[inline]
pub fn inline_key<const N: usize>(clientid: &str) -> Option<InlineKey<N>> {
    let bytes = clientid.as_bytes();
    if bytes.len() >= N {
        return None;
    }
    let mut key = [0u8; N];
    key[..bytes.len()].copy_from_slice(bytes);
    key[N - 1] = bytes.len() as u8;
    Some(key)
}

/// The bytes of the clientid an [`InlineKey`] holds.
#[inline]
pub fn inline_key_bytes<const N: usize>(key: &InlineKey<N>) -> &[u8] {
    &key[..(key[N - 1] as usize).min(N - 1)]
}

/// The clientid an [`InlineKey`] holds.
#[inline]
pub fn inline_key_str<const N: usize>(key: &InlineKey<N>) -> &str {
    // Built from a `&str` by `inline_key`; a key from anywhere else that is
    // not UTF-8 reads as empty rather than panicking.
    std::str::from_utf8(inline_key_bytes(key)).unwrap_or_default()
}

/// Marks an empty bucket: no inline key has 0xFF as its length byte.
const EMPTY: InlineKey<16> = [0xFF; 16];

#[derive(Debug, Clone)]
pub struct InlineTable<V> {
    buckets: Vec<(InlineKey<16>, V)>,
    len: usize,
    /// `64 - log2(buckets.len())`: the hash's top bits pick the bucket.
    shift: u32,
}

#[inline]
fn hash(key: &InlineKey<16>) -> u64 {
    let a = u64::from_le_bytes(key[..8].try_into().expect("8 bytes"));
    let b = u64::from_le_bytes(key[8..].try_into().expect("8 bytes"));
    // Two rounds of the FxHash step: multiply-rotate, good in the top bits.
    let h = (a.rotate_left(5) ^ b).wrapping_mul(0x517c_c1b7_2722_0a95);
    (h.rotate_left(5) ^ a).wrapping_mul(0x517c_c1b7_2722_0a95)
}

/// Asks the CPU to bring the cache line at `ptr` in without waiting for it
/// (a hint: it never faults), so several cache misses overlap. A no-op off
/// x86_64.
#[inline]
pub fn prefetch<T>(ptr: *const T) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: SSE is part of the x86_64 baseline, and a prefetch never
    // faults, whatever the address.
    unsafe {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        _mm_prefetch::<_MM_HINT_T0>(ptr.cast());
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = ptr;
}

impl<V: Default + Clone> Default for InlineTable<V> {
    fn default() -> Self {
        InlineTable::with_capacity(0)
    }
}

impl<V: Default + Clone> InlineTable<V> {
    /// Room for `n` entries without growing.
    pub fn with_capacity(n: usize) -> Self {
        let buckets = (n.max(8) * 2).next_power_of_two();
        InlineTable {
            buckets: vec![(EMPTY, V::default()); buckets],
            len: 0,
            shift: 64 - buckets.trailing_zeros(),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    #[inline]
    fn slot(&self, h: u64) -> usize {
        (h >> self.shift) as usize
    }

    /// Starts loading the bucket `key` would be found in.
    #[inline]
    pub fn prefetch(&self, key: &InlineKey<16>) {
        prefetch(&self.buckets[self.slot(hash(key))]);
    }

    fn grow(&mut self) {
        let mut bigger = InlineTable::with_capacity(self.buckets.len());
        for (key, value) in std::mem::take(&mut self.buckets) {
            if key != EMPTY {
                *bigger.entry(key, V::default) = value;
            }
        }
        *self = bigger;
    }

    /// The value of `key`, inserted as `new()` when absent.
    #[inline]
    pub fn entry(&mut self, key: InlineKey<16>, new: impl FnOnce() -> V) -> &mut V {
        if (self.len + 1) * 2 > self.buckets.len() {
            self.grow();
        }
        let mask = self.buckets.len() - 1;
        let mut i = self.slot(hash(&key));
        loop {
            let bucket_key = self.buckets[i].0;
            if bucket_key == key {
                return &mut self.buckets[i].1;
            }
            if bucket_key == EMPTY {
                self.len += 1;
                self.buckets[i] = (key, new());
                return &mut self.buckets[i].1;
            }
            i = (i + 1) & mask;
        }
    }

    pub fn get(&self, key: &InlineKey<16>) -> Option<&V> {
        let mask = self.buckets.len() - 1;
        let mut i = self.slot(hash(key));
        loop {
            let (bucket_key, value) = &self.buckets[i];
            if bucket_key == key {
                return Some(value);
            }
            if *bucket_key == EMPTY {
                return None;
            }
            i = (i + 1) & mask;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&InlineKey<16>, &V)> {
        self.buckets
            .iter()
            .filter(|(k, _)| *k != EMPTY)
            .map(|(k, v)| (k, v))
    }

    /// The entries in the order of their keys' bytes, sorted in the
    /// table's own memory: the empty slots (at least half) are dropped and
    /// their memory given back first, so a table of a million visitors is
    /// not copied into a second list to be sorted.
    pub fn into_sorted(self) -> Vec<(InlineKey<16>, V)> {
        let mut entries = self.buckets;
        entries.retain(|(key, _)| *key != EMPTY);
        entries.shrink_to_fit();
        // An inline key is the id's bytes, zero-padded, its length last:
        // as big-endian numbers, keys compare as the ids do.
        entries.sort_unstable_by_key(|(key, _)| u128::from_be_bytes(*key));
        entries
    }
}

/// How many lookups a [`Pipelined`] keeps in flight.
pub const PIPELINE_DEPTH: usize = 8;

/// Applies `f(value, item)` to the entry of each key pushed, a few pushes
/// later, after prefetching its bucket: items of one key are applied in the
/// order they were pushed (so "the later hit wins" rules still hold).
#[derive(Debug)]
pub struct Pipelined<T> {
    ring: [Option<(InlineKey<16>, T)>; PIPELINE_DEPTH],
    next: usize,
}

impl<T> Default for Pipelined<T> {
    fn default() -> Self {
        Pipelined {
            ring: std::array::from_fn(|_| None),
            next: 0,
        }
    }
}

impl<T> Pipelined<T> {
    /// Queues `item` for `key`; returns the oldest queued one once the
    /// ring is full, for the caller to apply now.
    #[inline]
    pub fn push<V: Default + Clone>(
        &mut self,
        table: &InlineTable<V>,
        key: InlineKey<16>,
        item: T,
    ) -> Option<(InlineKey<16>, T)> {
        table.prefetch(&key);
        let slot = &mut self.ring[self.next];
        self.next = (self.next + 1) % PIPELINE_DEPTH;
        slot.replace((key, item))
    }

    /// Every queued item, oldest first.
    pub fn drain(&mut self) -> impl Iterator<Item = (InlineKey<16>, T)> + '_ {
        let start = self.next;
        self.next = 0;
        (0..PIPELINE_DEPTH).filter_map(move |i| self.ring[(start + i) % PIPELINE_DEPTH].take())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn behaves_like_a_map_through_growth() {
        let mut table: InlineTable<u64> = InlineTable::default();
        let mut reference = std::collections::HashMap::new();
        let mut rng = 1u64;
        for _ in 0..50_000 {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let id = format!("v{}", (rng >> 33) % 5_000);
            *table.entry(inline_key(&id).unwrap(), || 0) += 1;
            *reference.entry(id).or_insert(0u64) += 1;
        }
        assert_eq!(table.len(), reference.len());
        for (id, count) in &reference {
            assert_eq!(table.get(&inline_key(id).unwrap()), Some(count));
        }
        assert_eq!(table.get(&inline_key("absent").unwrap()), None);
        assert_eq!(table.iter().count(), reference.len());
        // Sorted in place: the ids in string order ("v10" before "v9").
        let sorted: Vec<(String, u64)> = table
            .into_sorted()
            .iter()
            .map(|(key, count)| (inline_key_str(key).to_owned(), *count))
            .collect();
        let want: Vec<(String, u64)> = reference
            .into_iter()
            .collect::<std::collections::BTreeMap<_, _>>()
            .into_iter()
            .collect();
        assert_eq!(sorted, want);
    }

    #[test]
    fn the_pipeline_keeps_push_order() {
        let table: InlineTable<u32> = InlineTable::default();
        let mut pipe = Pipelined::default();
        let mut out = Vec::new();
        for i in 0..20u32 {
            if let Some((_, item)) = pipe.push(&table, inline_key("a").unwrap(), i) {
                out.push(item);
            }
        }
        out.extend(pipe.drain().map(|(_, item)| item));
        assert_eq!(out, (0..20).collect::<Vec<_>>());
    }
}
