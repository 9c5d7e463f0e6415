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

use crate::EmbeddedError;
use gender_core::{Gender, Profile, VisitorDelta};
use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Instant;

const SHARDS: usize = 64;
const RECORD_VERSION: u8 = 1;

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
    /// Counted hit identities: (sequence number, packed keys).
    pub seen: Option<(u64, &'a [u8])>,
    pub keep_since_ms: i64,
    pub visitors: Vec<(&'a str, Pending)>,
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
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(64 + self.visitors.len() * 40);
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
        match self.seen {
            Some((seq, packed)) => {
                out.push(1);
                out.extend_from_slice(&seq.to_le_bytes());
                out.extend_from_slice(&(packed.len() as u32).to_le_bytes());
                out.extend_from_slice(packed);
            }
            None => out.push(0),
        }
        out.extend_from_slice(&self.keep_since_ms.to_le_bytes());
        out.extend_from_slice(&(self.visitors.len() as u32).to_le_bytes());
        for (clientid, p) in &self.visitors {
            put_str(&mut out, clientid);
            put_varint(&mut out, p.m);
            put_varint(&mut out, p.f);
            out.push(p.last_gender as u8);
            out.extend_from_slice(&p.last_seen_ms.to_le_bytes());
        }
        out
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
            Some((seq, r.take(len)?))
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
        visitors,
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
    pub seen: Vec<(i64, u64, Vec<u8>)>,
    pub keep_since_ms: Option<i64>,
}

/// Visitor -> merged delta.
type Visitors = HashMap<Box<str>, Pending>;

/// The changes of consecutive journal records, from `first_seq` on.
pub(crate) struct Layer {
    pub first_seq: u64,
    last_seq: AtomicU64,
    hasher: RandomState,
    shards: Box<[Mutex<Visitors>]>,
    /// The visitors once the layer is frozen (moved out of `shards`, which
    /// are then empty): read without locks, never changed again.
    frozen: OnceLock<Box<[Visitors]>>,
    visitors: AtomicUsize,
    bytes: AtomicU64,
    created: Instant,
    misc: Mutex<Misc>,
}

fn poisoned() -> EmbeddedError {
    EmbeddedError::CorruptState("state store overlay lock poisoned".into())
}

impl Layer {
    pub fn new(first_seq: u64) -> Layer {
        Layer {
            first_seq,
            last_seq: AtomicU64::new(0),
            hasher: RandomState::new(),
            shards: (0..SHARDS).map(|_| Mutex::new(HashMap::new())).collect(),
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

    fn shard_of(&self, clientid: &str) -> usize {
        (self.hasher.hash_one(clientid) as usize) % SHARDS
    }

    /// The visitor's merged delta. Callers hold the store's layer list
    /// (read), so a [`Layer::freeze`] never happens in the middle.
    pub fn visitor(&self, clientid: &str) -> Result<Option<Pending>, EmbeddedError> {
        let at = self.shard_of(clientid);
        if let Some(frozen) = self.frozen.get() {
            return Ok(frozen[at].get(clientid).copied());
        }
        let shard = self.shards[at].lock().map_err(|_| poisoned())?;
        Ok(shard.get(clientid).copied())
    }

    pub fn misc(&self) -> Result<std::sync::MutexGuard<'_, Misc>, EmbeddedError> {
        self.misc.lock().map_err(|_| poisoned())
    }

    /// Merges record `seq` (of `bytes` journal bytes) in.
    pub fn merge(
        &self,
        seq: u64,
        record: &RecordView<'_>,
        bytes: u64,
    ) -> Result<(), EmbeddedError> {
        let mut by_shard: Vec<Vec<usize>> = vec![Vec::new(); SHARDS];
        for (i, (clientid, _)) in record.visitors.iter().enumerate() {
            by_shard[self.shard_of(clientid)].push(i);
        }
        let mut added = 0;
        for (shard, indices) in self.shards.iter().zip(&by_shard) {
            if indices.is_empty() {
                continue;
            }
            let mut shard = shard.lock().map_err(|_| poisoned())?;
            for &i in indices {
                let (clientid, delta) = &record.visitors[i];
                match shard.get_mut(*clientid) {
                    Some(pending) => pending.then(delta),
                    None => {
                        shard.insert((*clientid).into(), *delta);
                        added += 1;
                    }
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
                misc.seen.push((record.now_ms, seq, packed.to_vec()));
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
        let mut maps = Vec::with_capacity(SHARDS);
        for shard in self.shards.iter() {
            maps.push(std::mem::take(&mut *shard.lock().map_err(|_| poisoned())?));
        }
        self.frozen
            .set(maps.into_boxed_slice())
            .map_err(|_| EmbeddedError::CorruptState("state overlay layer frozen twice".into()))
    }

    /// Every visitor of a frozen layer with its merged delta, in no
    /// particular order (empty before [`Layer::freeze`]).
    pub fn frozen_visitors(&self) -> impl Iterator<Item = (&str, &Pending)> {
        self.frozen
            .get()
            .into_iter()
            .flat_map(|maps| maps.iter())
            .flat_map(|map| map.iter().map(|(k, v)| (&**k, v)))
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
    fn a_record_round_trips_and_damage_does_not_decode() {
        let packed = [7u8; 32];
        let record = RecordView {
            now_ms: 123,
            applied: vec!["raw/a", "raw/b"],
            pending: vec![("raw/a", None), ("raw/c", Some(99))],
            meta: vec![(MetaKey::Delivered, Some(5)), (MetaKey::IntentEnd, None)],
            seen: Some((4, &packed)),
            keep_since_ms: -5,
            visitors: vec![(
                "visitor-1",
                Pending {
                    m: 300,
                    f: 1,
                    last_seen_ms: -1,
                    updated_at_ms: 123,
                    last_gender: Gender::F,
                },
            )],
        };
        let bytes = record.encode();
        assert_eq!(decode_record(&bytes).unwrap(), record);
        assert!(decode_record(&bytes[..bytes.len() - 1]).is_err());
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(decode_record(&longer).is_err());
    }
}
