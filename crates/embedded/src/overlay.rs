//! The in-memory side of the state store: the changes journaled since the
//! last checkpoint, in layers (see [`crate::state`]). A layer holds, per
//! visitor, the merged counter deltas of every curate transaction it saw
//! (never a profile read from redb: applying a delta needs no read), plus
//! the idempotency markers, queue changes, delivery bookkeeping and counted
//! hit identities of its records.
//!
//! Merged deltas compose: `m` and `f` add up, and the later-or-equal event
//! time wins `last_*`, so folding two deltas and applying the result gives
//! what applying them one after the other gives (`Profile::apply`).
//!
//! A layer's visitors are spread over 64 shards, each an open-addressing
//! table of 64-byte slots holding the clientid inline (up to 31 bytes;
//! longer ids go to a small map) and the packed delta: finding a visitor
//! costs one cache line and no pointer chase. A record's deltas are hashed
//! first, grouped by shard, and each slot is prefetched a few deltas ahead
//! of its merge, so the misses of a table of millions overlap.

use crate::EmbeddedError;
use gender_core::dedup::HitKey;
use gender_core::table::{InlineKey, inline_key, inline_key_str, prefetch};
use gender_core::{Gender, Profile, VisitorDelta};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Instant;

const SHARDS: usize = 64;
const RECORD_VERSION: u8 = 1;
/// The size of the chunks a record's visitors are encoded in.
const TAIL_CHUNK: usize = 256 * 1024;

/// A visitor's counter changes not yet checkpointed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pending {
    pub m: u64,
    pub f: u64,
    pub last_seen_ms: i64,
    pub updated_at_ms: i64,
    pub last_gender: Gender,
}

impl Pending {
    pub fn from_delta(d: &VisitorDelta, now_ms: i64) -> Pending {
        Pending {
            m: d.m,
            f: d.f,
            last_seen_ms: d.last_seen_ms,
            updated_at_ms: now_ms,
            last_gender: d.last_gender,
        }
    }

    /// Folds `later` (applied after `self`) into `self`.
    pub fn then(&mut self, later: &Pending) {
        self.m += later.m;
        self.f += later.f;
        if later.last_seen_ms >= self.last_seen_ms {
            self.last_seen_ms = later.last_seen_ms;
            self.last_gender = later.last_gender;
        }
        self.updated_at_ms = later.updated_at_ms;
    }

    /// What `Profile::apply` does with the same delta.
    pub fn apply_to(&self, p: &mut Profile) {
        p.m += self.m;
        p.f += self.f;
        if self.last_seen_ms >= p.last_seen_ms {
            p.last_seen_ms = self.last_seen_ms;
            p.last_gender = self.last_gender;
        }
        p.updated_at_ms = self.updated_at_ms;
    }

    pub fn into_profile(self, clientid: &str) -> Profile {
        Profile {
            clientid: clientid.to_owned(),
            m: self.m,
            f: self.f,
            last_gender: self.last_gender,
            last_seen_ms: self.last_seen_ms,
            window: None,
            updated_at_ms: self.updated_at_ms,
        }
    }
}

/// The delivery bookkeeping values a record can set or clear.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum MetaKey {
    Delivered = 0,
    IntentStart = 1,
    IntentEnd = 2,
}

impl MetaKey {
    fn from_u8(v: u8) -> Option<MetaKey> {
        match v {
            0 => Some(MetaKey::Delivered),
            1 => Some(MetaKey::IntentStart),
            2 => Some(MetaKey::IntentEnd),
            _ => None,
        }
    }
}

/// One journal record, borrowed from its encoded bytes.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct RecordView<'a> {
    pub now_ms: i64,
    /// Idempotency markers of the objects it applied.
    pub applied: Vec<&'a str>,
    /// Curate queue changes, in order: `Some(offset)` queues, `None` removes.
    pub pending: Vec<(&'a str, Option<u64>)>,
    pub meta: Vec<(MetaKey, Option<u64>)>,
    /// Counted hit identities: (sequence number, packed keys). The dedup
    /// index's own list when the store made them, so that the layer keeps
    /// them without a copy.
    pub seen: Option<(u64, SeenBytes<'a>)>,
    pub keep_since_ms: i64,
    pub visitors: Visitors<'a>,
}

/// Hit identities packed back to back, 16 bytes each (little-endian).
#[derive(Debug, Clone)]
pub(crate) enum SeenBytes<'a> {
    /// In a journal record read back.
    Borrowed(&'a [u8]),
    Owned(Vec<u8>),
    /// The dedup index's list: where the machine is little-endian, its
    /// memory is the packed form ([`HitKey::packed_view`]).
    Shared(Arc<Vec<HitKey>>),
}

impl SeenBytes<'_> {
    /// `keys` as they are where that is their packed form, else packed.
    pub fn shared(keys: Arc<Vec<HitKey>>) -> SeenBytes<'static> {
        match HitKey::packed_view(&keys) {
            Some(_) => SeenBytes::Shared(keys),
            None => SeenBytes::Owned(HitKey::pack(&keys)),
        }
    }

    pub fn as_bytes(&self) -> &[u8] {
        match self {
            SeenBytes::Borrowed(bytes) => bytes,
            SeenBytes::Owned(bytes) => bytes,
            SeenBytes::Shared(keys) => {
                HitKey::packed_view(keys).expect("shared only where they are their packed form")
            }
        }
    }

    /// The same bytes, no longer borrowed from a record.
    pub fn into_owned(self) -> SeenBytes<'static> {
        match self {
            SeenBytes::Borrowed(bytes) => SeenBytes::Owned(bytes.to_vec()),
            SeenBytes::Owned(bytes) => SeenBytes::Owned(bytes),
            SeenBytes::Shared(keys) => SeenBytes::Shared(keys),
        }
    }
}

impl PartialEq for SeenBytes<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl Eq for SeenBytes<'_> {}

/// A record's visitor deltas: decoded from the journal, or the deltas of
/// the objects a curate transaction applies, read where they are (a record
/// of a million visitors makes no second list of them).
#[derive(Debug, Clone)]
pub(crate) enum Visitors<'a> {
    Decoded(Vec<(&'a str, Pending)>),
    Deltas {
        objects: Vec<&'a [VisitorDelta]>,
        /// The transaction's time, each delta's `updated_at_ms`.
        now_ms: i64,
    },
}

impl Default for Visitors<'_> {
    fn default() -> Self {
        Visitors::Decoded(Vec::new())
    }
}

impl PartialEq for Visitors<'_> {
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for Visitors<'_> {}

impl<'a> Visitors<'a> {
    pub fn len(&self) -> usize {
        match self {
            Visitors::Decoded(visitors) => visitors.len(),
            Visitors::Deltas { objects, .. } => objects.iter().map(|o| o.len()).sum(),
        }
    }

    /// Each visitor's delta, in record order.
    pub fn iter(&self) -> impl Iterator<Item = (&'a str, Pending)> + '_ {
        let no_objects: &[&[VisitorDelta]] = &[];
        let (decoded, objects, now_ms) = match self {
            Visitors::Decoded(visitors) => (visitors.as_slice(), no_objects, 0),
            Visitors::Deltas { objects, now_ms } => (&[][..], objects.as_slice(), *now_ms),
        };
        decoded.iter().copied().chain(
            objects
                .iter()
                .flat_map(|deltas| deltas.iter())
                .map(move |d| (d.clientid.as_str(), Pending::from_delta(d, now_ms))),
        )
    }
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(&(s.len() as u32).to_le_bytes());
    out.extend_from_slice(s.as_bytes());
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

impl RecordView<'_> {
    /// The whole encoding in one buffer (the store writes it in parts).
    #[cfg(test)]
    pub fn encode(&self) -> Vec<u8> {
        let mut out = self.encode_head();
        out.extend_from_slice(self.seen_keys());
        self.encode_tail(&mut |chunk| out.extend_from_slice(chunk));
        out
    }

    /// The packed hit identities, empty if none.
    pub fn seen_keys(&self) -> &[u8] {
        self.seen
            .as_ref()
            .map_or(&[], |(_, packed)| packed.as_bytes())
    }

    /// The encoding is three parts: this head, the
    /// [`seen_keys`](Self::seen_keys) (written where they are) and the
    /// [`encode_tail`](Self::encode_tail).
    pub fn encode_head(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.applied.len() * 40 + self.pending.len() * 40);
        out.push(RECORD_VERSION);
        out.extend_from_slice(&self.now_ms.to_le_bytes());
        out.extend_from_slice(&(self.applied.len() as u32).to_le_bytes());
        for id in &self.applied {
            put_str(&mut out, id);
        }
        out.extend_from_slice(&(self.pending.len() as u32).to_le_bytes());
        for (key, op) in &self.pending {
            match op {
                Some(offset) => {
                    out.push(1);
                    put_str(&mut out, key);
                    out.extend_from_slice(&offset.to_le_bytes());
                }
                None => {
                    out.push(0);
                    put_str(&mut out, key);
                }
            }
        }
        out.push(self.meta.len() as u8);
        for (key, value) in &self.meta {
            out.push(*key as u8);
            match value {
                Some(v) => {
                    out.push(1);
                    out.extend_from_slice(&v.to_le_bytes());
                }
                None => out.push(0),
            }
        }
        match &self.seen {
            Some((seq, packed)) => {
                out.push(1);
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&(packed.as_bytes().len() as u32).to_le_bytes());
            }
            None => out.push(0),
        }
        out
    }

    /// The visitors' part of the encoding, handed to `each` in chunks of
    /// about [`TAIL_CHUNK`] bytes: the record of a large object is never
    /// encoded whole. The same bytes every call.
    pub fn encode_tail(&self, each: &mut dyn FnMut(&[u8])) {
        let mut out = Vec::with_capacity(TAIL_CHUNK + 64);
        out.extend_from_slice(&self.keep_since_ms.to_le_bytes());
        out.extend_from_slice(&(self.visitors.len() as u32).to_le_bytes());
        for (clientid, p) in self.visitors.iter() {
            if out.len() >= TAIL_CHUNK {
                each(&out);
                out.clear();
            }
            put_str(&mut out, clientid);
            put_varint(&mut out, p.m);
            put_varint(&mut out, p.f);
            out.push(p.last_gender as u8);
            out.extend_from_slice(&p.last_seen_ms.to_le_bytes());
        }
        each(&out);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let end = self.at.checked_add(n)?;
        let bytes = self.buf.get(self.at..end)?;
        self.at = end;
        Some(bytes)
    }
    fn u8(&mut self) -> Option<u8> {
        Some(self.take(1)?[0])
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
    fn i64(&mut self) -> Option<i64> {
        Some(self.u64()? as i64)
    }
    fn str(&mut self) -> Option<&'a str> {
        let len = self.u32()? as usize;
        std::str::from_utf8(self.take(len)?).ok()
    }
    fn varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.u8()?;
            v |= u64::from(b & 0x7f) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }
    /// A count of items each at least `min_len` bytes long, checked against
    /// what is left so damage cannot ask for a huge allocation.
    fn count(&mut self, min_len: usize) -> Option<usize> {
        let n = self.u32()? as usize;
        (n.saturating_mul(min_len) <= self.buf.len() - self.at).then_some(n)
    }
}

pub(crate) fn decode_record(payload: &[u8]) -> Result<RecordView<'_>, EmbeddedError> {
    decode_inner(payload).ok_or_else(|| {
        EmbeddedError::CorruptState(
            "state journal: a record with an intact CRC does not decode".into(),
        )
    })
}

fn decode_inner(payload: &[u8]) -> Option<RecordView<'_>> {
    let mut r = Reader {
        buf: payload,
        at: 0,
    };
    if r.u8()? != RECORD_VERSION {
        return None;
    }
    let now_ms = r.i64()?;
    let n = r.count(4)?;
    let mut applied = Vec::with_capacity(n);
    for _ in 0..n {
        applied.push(r.str()?);
    }
    let n = r.count(5)?;
    let mut pending = Vec::with_capacity(n);
    for _ in 0..n {
        let op = r.u8()?;
        let key = r.str()?;
        pending.push((
            key,
            match op {
                1 => Some(r.u64()?),
                0 => None,
                _ => return None,
            },
        ));
    }
    let n = r.u8()?;
    let mut meta = Vec::with_capacity(n.into());
    for _ in 0..n {
        let key = MetaKey::from_u8(r.u8()?)?;
        meta.push((
            key,
            match r.u8()? {
                1 => Some(r.u64()?),
                0 => None,
                _ => return None,
            },
        ));
    }
    let seen = match r.u8()? {
        1 => {
            let seq = r.u64()?;
            let len = r.u32()? as usize;
            Some((seq, SeenBytes::Borrowed(r.take(len)?)))
        }
        0 => None,
        _ => return None,
    };
    let keep_since_ms = r.i64()?;
    let n = r.count(4 + 1 + 1 + 1 + 8)?;
    let mut visitors = Vec::with_capacity(n);
    for _ in 0..n {
        let clientid = r.str()?;
        let m = r.varint()?;
        let f = r.varint()?;
        let last_gender = match r.u8()? {
            g if g == Gender::M as u8 => Gender::M,
            g if g == Gender::F as u8 => Gender::F,
            _ => return None,
        };
        let last_seen_ms = r.i64()?;
        visitors.push((
            clientid,
            Pending {
                m,
                f,
                last_seen_ms,
                updated_at_ms: now_ms,
                last_gender,
            },
        ));
    }
    (r.at == payload.len()).then_some(RecordView {
        now_ms,
        applied,
        pending,
        meta,
        seen,
        keep_since_ms,
        visitors: Visitors::Decoded(visitors),
    })
}

/// Everything of a layer but the visitors.
#[derive(Debug, Default)]
pub(crate) struct Misc {
    /// Object id -> time applied (ms).
    pub applied: HashMap<Box<str>, i64>,
    /// Last queue change per key within the layer.
    pub pending: HashMap<Box<str>, Option<u64>>,
    pub meta: HashMap<MetaKey, Option<u64>>,
    /// (commit time ms, sequence number, packed keys).
    pub seen: Vec<(i64, u64, SeenBytes<'static>)>,
    pub keep_since_ms: Option<i64>,
}

/// A clientid of up to 31 bytes, inline (the load test's and usual ids);
/// longer ones, rare, go to a map of boxed strings.
type Key = InlineKey<32>;

/// A visitor's merged delta as stored: 32 bytes, so key and delta fill one
/// cache line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Packed {
    /// `m`, with the last gender in the top bit (`F` set): a hit count never
    /// reaches 2^63.
    m_gender: u64,
    f: u64,
    last_seen_ms: i64,
    updated_at_ms: i64,
}

const GENDER_BIT: u64 = 1 << 63;

impl Packed {
    #[inline]
    fn new(p: &Pending) -> Packed {
        debug_assert!(p.m < GENDER_BIT, "a hit count of 2^63");
        let gender = match p.last_gender {
            Gender::M => 0,
            Gender::F => GENDER_BIT,
        };
        Packed {
            m_gender: p.m | gender,
            f: p.f,
            last_seen_ms: p.last_seen_ms,
            updated_at_ms: p.updated_at_ms,
        }
    }

    #[inline]
    pub fn get(&self) -> Pending {
        Pending {
            m: self.m_gender & !GENDER_BIT,
            f: self.f,
            last_seen_ms: self.last_seen_ms,
            updated_at_ms: self.updated_at_ms,
            last_gender: if self.m_gender & GENDER_BIT == 0 {
                Gender::M
            } else {
                Gender::F
            },
        }
    }

    #[inline]
    fn then(&mut self, later: &Pending) {
        let mut p = self.get();
        p.then(later);
        *self = Packed::new(&p);
    }
}

/// One slot of a shard's table: a visitor's key and merged delta in one
/// cache line, so finding it costs one memory load and no pointer chase.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Bucket {
    key: Key,
    value: Packed,
}

/// Marks an empty bucket: no inline key has 0xFF as its length byte.
const EMPTY: Bucket = Bucket {
    key: [0xFF; 32],
    value: Packed {
        m_gender: 0,
        f: 0,
        last_seen_ms: 0,
        updated_at_ms: 0,
    },
};

impl Bucket {
    #[inline]
    fn is_empty(&self) -> bool {
        self.key[31] == 0xFF
    }
}

/// A keyed hash of inline keys (random seeds per layer, so clientids, which
/// are input, cannot be chosen to collide): two folded multiplies, as in
/// wyhash and foldhash.
#[derive(Debug, Clone, Copy)]
struct KeyHasher {
    seeds: [u64; 5],
}

#[inline]
fn fold_mul(a: u64, b: u64) -> u64 {
    let p = u128::from(a) * u128::from(b);
    (p as u64) ^ ((p >> 64) as u64)
}

impl KeyHasher {
    fn new() -> KeyHasher {
        let random = RandomState::new();
        KeyHasher {
            seeds: std::array::from_fn(|i| random.hash_one(i) | 1),
        }
    }

    #[inline]
    fn hash(&self, key: &Key) -> u64 {
        let word =
            |i: usize| u64::from_le_bytes(key[i * 8..i * 8 + 8].try_into().expect("8 bytes"));
        let s = &self.seeds;
        let a = fold_mul(word(0) ^ s[0], word(1) ^ s[1]);
        let b = fold_mul(word(2) ^ s[2], word(3) ^ s[3]);
        fold_mul(a ^ s[4], b ^ 0x9e37_79b9_7f4a_7c15)
    }
}

/// One shard's visitors: open addressing with linear probing over inline
/// keys (at most three quarters full), and ids too long to be inline in a
/// map. The capacity is any number, not a power of two: a table sized for
/// a large record is not up to twice the size it needs.
struct Table {
    keys: KeyHasher,
    buckets: Vec<Bucket>,
    len: usize,
    long: HashMap<Box<str>, Packed>,
}

impl Table {
    fn new(keys: KeyHasher) -> Table {
        Table {
            keys,
            buckets: Vec::new(),
            len: 0,
            long: HashMap::new(),
        }
    }

    /// The bucket a hash starts at: its top bits scaled to the capacity
    /// (its low bits picked the shard).
    #[inline]
    fn slot(&self, h: u64) -> usize {
        ((u128::from(h) * self.buckets.len() as u128) >> 64) as usize
    }

    #[inline]
    fn next(&self, i: usize) -> usize {
        if i + 1 == self.buckets.len() {
            0
        } else {
            i + 1
        }
    }

    /// Room for `more` new keys without growing: exactly what is asked for
    /// a large record, at least twice the size when growing by little.
    fn reserve(&mut self, more: usize) {
        let need = self.len + more;
        if need * 4 <= self.buckets.len() * 3 {
            return;
        }
        let capacity = (need * 4 / 3 + 1).max(2 * self.buckets.len()).max(16);
        let old = std::mem::replace(&mut self.buckets, vec![EMPTY; capacity]);
        for bucket in old.iter().filter(|b| !b.is_empty()) {
            let mut i = self.slot(self.keys.hash(&bucket.key));
            while !self.buckets[i].is_empty() {
                i = self.next(i);
            }
            self.buckets[i] = *bucket;
        }
    }

    /// Starts loading the bucket a key of hash `h` is looked up in.
    #[inline]
    fn prefetch(&self, h: u64) {
        if !self.buckets.is_empty() {
            prefetch(&self.buckets[self.slot(h)]);
        }
    }

    /// Folds `delta` into the entry of `key` (hash `h`); whether it is new.
    /// Room was reserved.
    #[inline]
    fn fold(&mut self, key: &Key, h: u64, delta: &Pending) -> bool {
        let mut i = self.slot(h);
        loop {
            let bucket = &mut self.buckets[i];
            if bucket.key == *key {
                bucket.value.then(delta);
                return false;
            }
            if bucket.is_empty() {
                *bucket = Bucket {
                    key: *key,
                    value: Packed::new(delta),
                };
                self.len += 1;
                return true;
            }
            i = self.next(i);
        }
    }

    fn fold_long(&mut self, clientid: &str, delta: &Pending) -> bool {
        match self.long.get_mut(clientid) {
            Some(value) => {
                value.then(delta);
                false
            }
            None => {
                self.long.insert(clientid.into(), Packed::new(delta));
                true
            }
        }
    }

    #[inline]
    fn get(&self, key: &Key, h: u64) -> Option<&Packed> {
        if self.buckets.is_empty() {
            return None;
        }
        let mut i = self.slot(h);
        loop {
            let bucket = &self.buckets[i];
            if bucket.key == *key {
                return Some(&bucket.value);
            }
            if bucket.is_empty() {
                return None;
            }
            i = self.next(i);
        }
    }

    /// The visitors with inline ids, each with its slot.
    fn slots(&self) -> impl Iterator<Item = (usize, &str, &Packed)> {
        self.buckets
            .iter()
            .enumerate()
            .filter(|(_, b)| !b.is_empty())
            .map(|(i, b)| (i, inline_key_str(&b.key), &b.value))
    }

    fn iter(&self) -> impl Iterator<Item = (&str, &Packed)> {
        let inline = self
            .buckets
            .iter()
            .filter(|b| !b.is_empty())
            .map(|b| (inline_key_str(&b.key), &b.value));
        inline.chain(self.long.iter().map(|(k, v)| (&**k, v)))
    }
}

/// A frozen visitor's place: its shard above its slot's 34 bits (6 bits of
/// shard, 40 in all).
const SLOT_BITS: u32 = 34;
const SLOT_MASK: u64 = (1 << SLOT_BITS) - 1;
/// The bits of a place from [`Layer::frozen_places`].
pub(crate) const PLACE_BITS: u32 = 40;
const _: () = assert!(SHARDS <= 1 << (PLACE_BITS - SLOT_BITS));

/// How many lookups ahead [`Layer::merge`] starts loading buckets.
const AHEAD: usize = 12;
/// Visitors of a record sorted into the shards' work lists at a time.
const MERGE_RUN: usize = 64 * 1024;

/// A visitor delta of a record on its way into a shard.
struct Item {
    key: Key,
    hash: u64,
    delta: Pending,
}

/// The changes of consecutive journal records, from `first_seq` on.
pub(crate) struct Layer {
    pub first_seq: u64,
    last_seq: AtomicU64,
    keys: KeyHasher,
    /// Picks the shard of an id too long to be inline.
    hasher: RandomState,
    shards: Box<[Mutex<Table>]>,
    /// The visitors once the layer is frozen (moved out of `shards`, which
    /// are then empty): read without locks, never changed again.
    frozen: OnceLock<Box<[Table]>>,
    visitors: AtomicUsize,
    bytes: AtomicU64,
    created: Instant,
    misc: Mutex<Misc>,
}

fn poisoned() -> EmbeddedError {
    EmbeddedError::CorruptState("state store overlay lock poisoned".into())
}

/// Where a visitor is: its shard, and its inline key with its hash.
enum Place {
    Inline(usize, Key, u64),
    Long(usize),
}

impl Layer {
    pub fn new(first_seq: u64) -> Layer {
        let keys = KeyHasher::new();
        Layer {
            first_seq,
            last_seq: AtomicU64::new(0),
            keys,
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(Table::new(keys))).collect(),
            frozen: OnceLock::new(),
            visitors: AtomicUsize::new(0),
            bytes: AtomicU64::new(0),
            created: Instant::now(),
            misc: Mutex::new(Misc::default()),
        }
    }

    /// The last record merged in; 0 before the first.
    pub fn last_seq(&self) -> u64 {
        self.last_seq.load(Ordering::Acquire)
    }

    pub fn is_empty(&self) -> bool {
        self.last_seq() == 0
    }

    pub fn visitors(&self) -> usize {
        self.visitors.load(Ordering::Relaxed)
    }

    pub fn journal_bytes(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    pub fn age(&self) -> std::time::Duration {
        self.created.elapsed()
    }

    #[inline]
    fn place(&self, clientid: &str) -> Place {
        match inline_key::<32>(clientid) {
            Some(key) => {
                let h = self.keys.hash(&key);
                Place::Inline(h as usize % SHARDS, key, h)
            }
            None => Place::Long((self.hasher.hash_one(clientid) as usize) % SHARDS),
        }
    }

    /// The visitor's merged delta. Callers hold the store's layer list
    /// (read), so a [`Layer::freeze`] never happens in the middle.
    pub fn visitor(&self, clientid: &str) -> Result<Option<Pending>, EmbeddedError> {
        let place = self.place(clientid);
        let find = |table: &Table| match &place {
            Place::Inline(_, key, h) => table.get(key, *h).map(Packed::get),
            Place::Long(_) => table.long.get(clientid).map(Packed::get),
        };
        let at = match place {
            Place::Inline(at, ..) | Place::Long(at) => at,
        };
        if let Some(frozen) = self.frozen.get() {
            return Ok(find(&frozen[at]));
        }
        let shard = self.shards[at].lock().map_err(|_| poisoned())?;
        Ok(find(&shard))
    }

    pub fn misc(&self) -> Result<std::sync::MutexGuard<'_, Misc>, EmbeddedError> {
        self.misc.lock().map_err(|_| poisoned())
    }

    /// Merges record `seq` (of `bytes` journal bytes) in. Each shard's
    /// deltas are hashed first and its buckets loaded [`AHEAD`] of their
    /// use, so the cache misses of a table of millions overlap.
    pub fn merge(&self, seq: u64, record: RecordView<'_>, bytes: u64) -> Result<(), EmbeddedError> {
        let mut added = 0;
        let total = record.visitors.len();
        if total > MERGE_RUN {
            // Grown once for the whole record, not once per run below: its
            // visitors hash evenly over the shards, so a shard gets the mean
            // and rarely more than four standard deviations above it.
            let per_shard = total / SHARDS;
            let room = per_shard + 4 * per_shard.isqrt() + 16;
            for shard in &self.shards {
                shard.lock().map_err(|_| poisoned())?.reserve(room);
            }
        }
        // In runs, so that the shards' work lists of a record of a million
        // visitors do not take tens of MiB at once.
        let per_shard = total.min(MERGE_RUN) / SHARDS * 5 / 4 + 4;
        let mut inline: Vec<Vec<Item>> =
            (0..SHARDS).map(|_| Vec::with_capacity(per_shard)).collect();
        let mut long: Vec<Vec<(&str, Pending)>> = vec![Vec::new(); SHARDS];
        let mut visitors = record.visitors.iter();
        loop {
            inline.iter_mut().for_each(Vec::clear);
            long.iter_mut().for_each(Vec::clear);
            let mut taken = 0;
            for (clientid, delta) in visitors.by_ref().take(MERGE_RUN) {
                taken += 1;
                match self.place(clientid) {
                    Place::Inline(at, key, hash) => inline[at].push(Item { key, hash, delta }),
                    Place::Long(at) => long[at].push((clientid, delta)),
                }
            }
            if taken == 0 {
                break;
            }
            for ((shard, items), long) in self.shards.iter().zip(&inline).zip(&long) {
                if items.is_empty() && long.is_empty() {
                    continue;
                }
                let mut table = shard.lock().map_err(|_| poisoned())?;
                table.reserve(items.len());
                for item in items.iter().take(AHEAD) {
                    table.prefetch(item.hash);
                }
                for (j, item) in items.iter().enumerate() {
                    if let Some(ahead) = items.get(j + AHEAD) {
                        table.prefetch(ahead.hash);
                    }
                    added += usize::from(table.fold(&item.key, item.hash, &item.delta));
                }
                for (clientid, delta) in long {
                    added += usize::from(table.fold_long(clientid, delta));
                }
            }
        }
        {
            let mut misc = self.misc()?;
            for id in &record.applied {
                misc.applied.insert((*id).into(), record.now_ms);
            }
            for (key, op) in &record.pending {
                misc.pending.insert((*key).into(), *op);
            }
            for (key, value) in &record.meta {
                misc.meta.insert(*key, *value);
            }
            if let Some((seq, packed)) = record.seen {
                misc.seen.push((record.now_ms, seq, packed.into_owned()));
            }
            if record.keep_since_ms != i64::MIN {
                misc.keep_since_ms = Some(
                    misc.keep_since_ms
                        .map_or(record.keep_since_ms, |k| k.max(record.keep_since_ms)),
                );
            }
        }
        self.visitors.fetch_add(added, Ordering::Relaxed);
        self.bytes.fetch_add(bytes, Ordering::Relaxed);
        self.last_seq.store(seq, Ordering::Release);
        Ok(())
    }

    /// Stops merging: moves the visitors where they are read without
    /// locks. Called with the store's layer list locked (write), after the
    /// last record was merged.
    pub fn freeze(&self) -> Result<(), EmbeddedError> {
        let mut tables = Vec::with_capacity(SHARDS);
        for shard in self.shards.iter() {
            let mut shard = shard.lock().map_err(|_| poisoned())?;
            tables.push(std::mem::replace(&mut *shard, Table::new(self.keys)));
        }
        self.frozen
            .set(tables.into_boxed_slice())
            .map_err(|_| EmbeddedError::CorruptState("state overlay layer frozen twice".into()))
    }

    /// Every visitor of a frozen layer with its merged delta, in no
    /// particular order (empty before [`Layer::freeze`]).
    /// The frozen visitors with inline ids, each with its place in 40 bits
    /// (shard and slot), for [`frozen_at`](Self::frozen_at): a sort of a
    /// million of them holds 8 bytes each instead of a string's 16 and a
    /// reference's 8.
    pub fn frozen_places(&self) -> impl Iterator<Item = (u64, &str, &Packed)> {
        self.frozen
            .get()
            .into_iter()
            .flat_map(|tables| tables.iter().enumerate())
            .flat_map(|(shard, table)| {
                table.slots().map(move |(slot, id, value)| {
                    (((shard as u64) << SLOT_BITS) | slot as u64, id, value)
                })
            })
    }

    /// The frozen visitors with ids too long to be inline (rare).
    pub fn frozen_long(&self) -> impl Iterator<Item = (&str, &Packed)> {
        self.frozen
            .get()
            .into_iter()
            .flat_map(|tables| tables.iter())
            .flat_map(|table| table.long.iter().map(|(id, value)| (&**id, value)))
    }

    /// The visitor at a place [`frozen_places`](Self::frozen_places) gave.
    pub fn frozen_at(&self, place: u64) -> (&str, &Packed) {
        let tables = self.frozen.get().expect("places come from a frozen layer");
        let bucket = &tables[(place >> SLOT_BITS) as usize].buckets[(place & SLOT_MASK) as usize];
        (inline_key_str(&bucket.key), &bucket.value)
    }

    pub fn frozen_visitors(&self) -> impl Iterator<Item = (&str, &Packed)> {
        self.frozen
            .get()
            .into_iter()
            .flat_map(|tables| tables.iter())
            .flat_map(Table::iter)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(m: u64, f: u64, last: Gender, at: i64) -> VisitorDelta {
        VisitorDelta {
            clientid: "v".into(),
            m,
            f,
            last_gender: last,
            last_seen_ms: at,
        }
    }

    #[test]
    fn folded_deltas_apply_like_deltas_one_after_the_other() {
        let deltas = [
            (delta(1, 0, Gender::M, 50), 1),
            (delta(0, 2, Gender::F, 40), 2),
            (delta(0, 1, Gender::F, 50), 3),
            (delta(3, 0, Gender::M, 45), 4),
        ];
        for base_seen in [0, 45, 50, 60] {
            let base = Profile {
                clientid: "v".into(),
                m: 1,
                f: 1,
                last_gender: Gender::M,
                last_seen_ms: base_seen,
                window: None,
                updated_at_ms: 0,
            };
            let mut one_by_one = base.clone();
            for (d, now) in &deltas {
                one_by_one.apply(d, *now);
            }
            let mut folded = Pending::from_delta(&deltas[0].0, deltas[0].1);
            for (d, now) in &deltas[1..] {
                folded.then(&Pending::from_delta(d, *now));
            }
            let mut at_once = base.clone();
            folded.apply_to(&mut at_once);
            assert_eq!(at_once, one_by_one, "base last seen {base_seen}");
        }
    }

    #[test]
    fn a_layer_folds_like_a_map_through_growth_and_freeze() {
        let layer = Layer::new(1);
        let mut reference: HashMap<String, Pending> = HashMap::new();
        let mut rng = 7u64;
        let mut next = move || {
            rng = rng
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            rng >> 33
        };
        for seq in 1..=40u64 {
            let mut deltas = Vec::new();
            // The last record is merged in more than one run, a visitor's
            // deltas in several of them.
            let count = if seq == 40 { MERGE_RUN + 700 } else { 700 };
            for _ in 0..count {
                let n = next() % 5_000;
                // Short, inline-sized, and too long to be inline (32 bytes and more).
                let id = match n % 7 {
                    0 => format!("a-visitor-id-longer-than-31-bytes-{n}"),
                    1 => format!("v{n}"),
                    _ => format!("loadtest-visitor-{n}"),
                };
                let m = if n % 11 == 0 { 1 << 50 } else { next() % 4 };
                let pending = Pending {
                    m,
                    f: next() % 4,
                    last_seen_ms: next() as i64 % 1_000 - 500,
                    updated_at_ms: seq as i64,
                    last_gender: if next() % 2 == 0 {
                        Gender::M
                    } else {
                        Gender::F
                    },
                };
                deltas.push((id, pending));
            }
            for (id, p) in &deltas {
                reference
                    .entry(id.clone())
                    .and_modify(|r| r.then(p))
                    .or_insert(*p);
            }
            let record = RecordView {
                now_ms: seq as i64,
                visitors: Visitors::Decoded(
                    deltas.iter().map(|(id, p)| (id.as_str(), *p)).collect(),
                ),
                ..RecordView::default()
            };
            layer.merge(seq, record, 0).unwrap();
        }
        let check = |layer: &Layer| {
            assert_eq!(layer.visitors(), reference.len());
            for (id, p) in &reference {
                assert_eq!(layer.visitor(id).unwrap(), Some(*p), "{id}");
            }
            assert_eq!(layer.visitor("absent").unwrap(), None);
            assert_eq!(layer.visitor(&"x".repeat(40)).unwrap(), None);
        };
        check(&layer);
        assert_eq!(layer.frozen_visitors().count(), 0);
        layer.freeze().unwrap();
        check(&layer);
        let frozen: HashMap<String, Pending> = layer
            .frozen_visitors()
            .map(|(id, p)| (id.to_owned(), p.get()))
            .collect();
        assert_eq!(frozen, reference);
    }

    #[test]
    fn a_record_read_from_the_deltas_encodes_in_chunks_as_its_decoded_form() {
        let ids: Vec<String> = (0..20_000).map(|i| format!("visitor-{i:07}")).collect();
        let deltas: Vec<VisitorDelta> = ids
            .iter()
            .enumerate()
            .map(|(i, id)| VisitorDelta {
                clientid: id.clone(),
                ..delta(i as u64, 300, Gender::F, -(i as i64))
            })
            .collect();
        let (first, second) = deltas.split_at(7_000);
        let record = RecordView {
            now_ms: 9,
            applied: vec!["raw/a", "raw/b"],
            keep_since_ms: 3,
            visitors: Visitors::Deltas {
                objects: vec![first, &[], second],
                now_ms: 9,
            },
            ..RecordView::default()
        };
        assert_eq!(record.visitors.len(), deltas.len());
        // More than one chunk, each of about the chunk size.
        let mut chunks = Vec::new();
        record.encode_tail(&mut |chunk| chunks.push(chunk.len()));
        assert!(chunks.len() > 2, "{chunks:?}");
        assert!(chunks.iter().all(|&n| n < TAIL_CHUNK + 64));
        let bytes = record.encode();
        let decoded = decode_record(&bytes).unwrap();
        assert!(matches!(decoded.visitors, Visitors::Decoded(_)));
        assert_eq!(decoded, record);
        let want: Vec<(&str, Pending)> = deltas
            .iter()
            .map(|d| (d.clientid.as_str(), Pending::from_delta(d, 9)))
            .collect();
        assert_eq!(decoded.visitors, Visitors::Decoded(want));
    }

    #[test]
    fn a_record_round_trips_and_damage_does_not_decode() {
        let packed = [7u8; 32];
        let record = RecordView {
            now_ms: 123,
            applied: vec!["raw/a", "raw/b"],
            pending: vec![("raw/a", None), ("raw/c", Some(99))],
            meta: vec![(MetaKey::Delivered, Some(5)), (MetaKey::IntentEnd, None)],
            seen: Some((4, SeenBytes::Borrowed(&packed[..]))),
            keep_since_ms: -5,
            visitors: Visitors::Decoded(vec![(
                "visitor-1",
                Pending {
                    m: 300,
                    f: 1,
                    last_seen_ms: -1,
                    updated_at_ms: 123,
                    last_gender: Gender::F,
                },
            )]),
        };
        let bytes = record.encode();
        assert_eq!(decode_record(&bytes).unwrap(), record);
        assert!(decode_record(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_record(&longer).is_err());
    }
}
