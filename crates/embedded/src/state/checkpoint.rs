//! The checkpoint: the overlay's frozen layers merged into redb in one
//! transaction that records the last journal sequence it holds, then the
//! journal files it covered deleted; in the background when the overlay is
//! large or old enough ([`super::CheckpointPolicy`]), or first thing before
//! an operation that needs redb current.

use super::tables::{
    APPLIED, JOURNAL_SEQ, META, PENDING, PROFILES, SEEN, SEEN_SEQ, decode_profile, encode_profile,
    meta_name,
};
use super::{Shared, StateStore, Wake, Writer, journal_dir, poisoned};
use crate::EmbeddedError;
use crate::journal::{self, JournalWriter};
use crate::overlay::{Layer, PLACE_BITS, Packed};
use redb::ReadableTable;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, Instant};

impl StateStore {
    /// Moves the active layer to the frozen ones and starts a journal file
    /// for the records after it. The caller holds the writer.
    pub(super) fn freeze(&self, writer: &mut Writer) -> Result<(), EmbeddedError> {
        let active = self
            .shared
            .layers
            .read()
            .map_err(|_| poisoned())?
            .active
            .clone();
        if active.is_empty() {
            return Ok(());
        }
        writer.journal = JournalWriter::create(writer.journal.dir(), writer.next_seq)?;
        let mut layers = self.shared.layers.write().map_err(|_| poisoned())?;
        let frozen = std::mem::replace(&mut layers.active, Arc::new(Layer::new(writer.next_seq)));
        frozen.freeze()?;
        layers.frozen.push(frozen);
        Ok(())
    }

    /// Merges every frozen layer into redb in one transaction that records
    /// the last journal sequence it holds, then drops those layers and the
    /// journal files they came from. Returns whether there was anything.
    pub(super) fn checkpoint_frozen(&self) -> Result<bool, EmbeddedError> {
        let _one = self.shared.checkpointing.lock().map_err(|_| poisoned())?;
        let frozen = self
            .shared
            .layers
            .read()
            .map_err(|_| poisoned())?
            .frozen
            .clone();
        let Some(newest) = frozen.last() else {
            return Ok(false);
        };
        let started = Instant::now();
        let covered = newest.last_seq();
        let visitors = SortedVisitors::new(&frozen);
        let merged = visitors.len();
        let sorted_ms = started.elapsed().as_millis() as u64;
        let txn = self.begin_write()?;
        {
            let mut profiles = txn.open_table(PROFILES)?;
            let mut i = 0;
            while i < visitors.len() {
                let (clientid, first) = visitors.get(i);
                let mut pending = first.get();
                i += 1;
                while i < visitors.len() {
                    let (next, delta) = visitors.get(i);
                    if next != clientid {
                        break;
                    }
                    pending.then(&delta.get());
                    i += 1;
                }
                let stored = profiles
                    .get(clientid)?
                    .map(|v| decode_profile(clientid, v.value()))
                    .transpose()?;
                let profile = match stored {
                    Some(mut p) => {
                        pending.apply_to(&mut p);
                        p
                    }
                    None => pending.into_profile(clientid),
                };
                profiles.insert(clientid, encode_profile(&profile).as_slice())?;
            }
        }
        drop(visitors);
        {
            let mut applied = txn.open_table(APPLIED)?;
            let mut pending = txn.open_table(PENDING)?;
            let mut meta = txn.open_table(META)?;
            let mut seen = txn.open_table(SEEN)?;
            let mut seen_seq = meta.get(SEEN_SEQ)?.map_or(0, |v| v.value());
            let mut keep_since = None;
            for layer in &frozen {
                let misc = layer.misc()?;
                let mut markers: Vec<(&str, i64)> =
                    misc.applied.iter().map(|(k, v)| (&**k, *v)).collect();
                markers.sort_unstable();
                for (id, at) in markers {
                    applied.insert(id, at)?;
                }
                for (key, op) in &misc.pending {
                    match op {
                        Some(offset) => pending.insert(&**key, *offset)?,
                        None => pending.remove(&**key)?,
                    };
                }
                for (key, value) in &misc.meta {
                    match value {
                        Some(v) => meta.insert(meta_name(*key), *v)?,
                        None => meta.remove(meta_name(*key))?,
                    };
                }
                for (at_ms, seq, packed) in &misc.seen {
                    seen.insert((*at_ms, *seq), packed.as_bytes())?;
                    seen_seq = seen_seq.max(*seq);
                }
                keep_since = keep_since.max(misc.keep_since_ms);
            }
            if let Some(keep_since) = keep_since {
                let expired: Vec<(i64, u64)> = seen
                    .range(..(keep_since, 0))?
                    .map(|row| row.map(|(key, _)| key.value()))
                    .collect::<Result<_, _>>()?;
                for key in expired {
                    seen.remove(key)?;
                }
            }
            meta.insert(SEEN_SEQ, seen_seq)?;
            meta.insert(JOURNAL_SEQ, covered)?;
        }
        let written_ms = started.elapsed().as_millis() as u64;
        let generation = &self.shared.generation;
        generation.fetch_add(1, Ordering::SeqCst);
        let committed = txn.commit();
        if committed.is_ok() {
            match self.shared.layers.write() {
                Ok(mut layers) => layers
                    .frozen
                    .retain(|l| !frozen.iter().any(|f| Arc::ptr_eq(l, f))),
                Err(_) => {
                    generation.fetch_add(1, Ordering::SeqCst);
                    return Err(poisoned());
                }
            }
        }
        generation.fetch_add(1, Ordering::SeqCst);
        committed?;
        let keep_from = {
            let layers = self.shared.layers.read().map_err(|_| poisoned())?;
            layers.all().next().map_or(covered + 1, |l| l.first_seq)
        };
        // Files left behind are harmless: their records are at or before
        // the covered sequence, so a replay skips them.
        if let Err(e) = journal::remove_before(&journal_dir(&self.shared.path), keep_from) {
            tracing::warn!(error = %e, "could not delete checkpointed state journal files");
        }
        tracing::info!(
            visitors = merged,
            covered,
            sorted_ms,
            written_ms,
            ms = started.elapsed().as_millis() as u64,
            "state checkpoint"
        );
        Ok(true)
    }

    /// Checkpoints everything journaled so far, then runs `op` while no
    /// record can be appended: for what needs redb current.
    pub(super) fn with_checkpoint<T>(
        &self,
        op: impl FnOnce(&StateStore) -> Result<T, EmbeddedError>,
    ) -> Result<T, EmbeddedError> {
        let mut writer = self.writer()?;
        self.freeze(&mut writer)?;
        self.checkpoint_frozen()?;
        let out = op(self);
        drop(writer);
        out
    }

    /// Merges everything journaled so far into redb.
    pub fn checkpoint_blocking(&self) -> Result<(), EmbeddedError> {
        self.with_checkpoint(|_| Ok(()))
    }

    fn checkpoint_due(&self) -> bool {
        let policy = &self.shared.policy;
        let Ok(layers) = self.shared.layers.read() else {
            return false;
        };
        let active = &layers.active;
        !layers.frozen.is_empty()
            || active.visitors() >= policy.max_visitors
            || active.journal_bytes() >= policy.max_journal_bytes
            || (!active.is_empty() && active.age() >= policy.interval)
    }

    pub(super) fn background_checkpoint(&self) -> Result<(), EmbeddedError> {
        {
            let mut writer = self.writer()?;
            self.freeze(&mut writer)?;
        }
        self.checkpoint_frozen().map(|_| ())
    }

    /// A thread that checkpoints when due; it ends with the last clone of
    /// the store.
    pub(super) fn spawn_checkpointer(&self) {
        let shared = Arc::downgrade(&self.shared);
        let wake = self.shared.wake.clone();
        let poll = self
            .shared
            .policy
            .interval
            .min(Duration::from_secs(1))
            .max(Duration::from_millis(10));
        let spawned = std::thread::Builder::new()
            .name("state-checkpoint".into())
            .spawn(move || checkpointer(shared, wake, poll));
        if let Err(e) = spawned {
            tracing::error!(error = %e, "state checkpoint thread did not start; checkpoints happen when curate needs them");
        }
    }
}

/// The frozen layers' visitors in clientid order (the order of redb's
/// B-tree), a visitor's entries in layer order. Each entry is 16 bytes: 8
/// of the clientid (after the prefix all share, big-endian: most
/// comparisons end there, without reading the strings) and where the
/// visitor is in its layer, so that the sort of a million visitors takes
/// 16 MiB, not 40.
pub(super) struct SortedVisitors<'a> {
    frozen: &'a [Arc<Layer>],
    /// The visitors whose ids are too long to be inline (rare).
    long: Vec<(&'a str, &'a Packed)>,
    entries: Vec<(u64, u64)>,
}

/// An entry's place: its layer above [`PLACE_BITS`] bits of place in it
/// (or, with [`LONG`], of index into the long ids).
const LONG: u64 = 1 << 63;
const LAYER_MASK: u64 = (1 << (63 - PLACE_BITS)) - 1;
const IN_LAYER_MASK: u64 = (1 << PLACE_BITS) - 1;

impl<'a> SortedVisitors<'a> {
    pub(super) fn new(frozen: &'a [Arc<Layer>]) -> SortedVisitors<'a> {
        assert!(frozen.len() as u64 <= LAYER_MASK, "too many frozen layers");
        let mut common: Option<&str> = None;
        for layer in frozen {
            for (clientid, _) in layer.frozen_visitors() {
                let prefix = common.get_or_insert(clientid);
                let same = prefix
                    .bytes()
                    .zip(clientid.bytes())
                    .take_while(|(a, b)| a == b)
                    .count();
                *prefix = &prefix[..same];
            }
        }
        let skip = common.map_or(0, str::len);
        let key = |clientid: &str| {
            let mut key = [0u8; 8];
            let rest = &clientid.as_bytes()[skip..];
            let n = rest.len().min(8);
            key[..n].copy_from_slice(&rest[..n]);
            u64::from_be_bytes(key)
        };
        let mut sorted = SortedVisitors {
            frozen,
            long: Vec::new(),
            entries: Vec::with_capacity(frozen.iter().map(|l| l.visitors()).sum()),
        };
        for (n, layer) in frozen.iter().enumerate() {
            let layer_bits = (n as u64) << PLACE_BITS;
            for (place, clientid, _) in layer.frozen_places() {
                sorted.entries.push((key(clientid), layer_bits | place));
            }
            for (clientid, pending) in layer.frozen_long() {
                let at = LONG | layer_bits | sorted.long.len() as u64;
                sorted.long.push((clientid, pending));
                sorted.entries.push((key(clientid), at));
            }
        }
        let mut entries = std::mem::take(&mut sorted.entries);
        entries.sort_unstable_by(|a, b| {
            a.0.cmp(&b.0).then_with(|| {
                let layer = |place: u64| (place >> PLACE_BITS) & LAYER_MASK;
                sorted
                    .at(a.1)
                    .0
                    .cmp(sorted.at(b.1).0)
                    .then(layer(a.1).cmp(&layer(b.1)))
            })
        });
        sorted.entries = entries;
        sorted
    }

    fn at(&self, place: u64) -> (&'a str, &'a Packed) {
        if place & LONG != 0 {
            self.long[(place & IN_LAYER_MASK) as usize]
        } else {
            let layer = ((place >> PLACE_BITS) & LAYER_MASK) as usize;
            self.frozen[layer].frozen_at(place & IN_LAYER_MASK)
        }
    }

    pub(super) fn len(&self) -> usize {
        self.entries.len()
    }

    /// The `i`th visitor entry in order: its clientid and merged delta.
    pub(super) fn get(&self, i: usize) -> (&'a str, &'a Packed) {
        self.at(self.entries[i].1)
    }

    #[cfg(test)]
    pub(super) fn iter(&self) -> impl Iterator<Item = (&'a str, &'a Packed)> + '_ {
        (0..self.len()).map(|i| self.get(i))
    }
}

fn checkpointer(shared: Weak<Shared>, wake: Arc<Wake>, poll: Duration) {
    let mut retry_after: Option<Instant> = None;
    loop {
        {
            let Ok(stop) = wake.stop.lock() else { return };
            if *stop {
                return;
            }
            match wake.cv.wait_timeout(stop, poll) {
                Ok((stop, _)) if !*stop => {}
                _ => return,
            }
        }
        if retry_after.is_some_and(|at| Instant::now() < at) {
            continue;
        }
        let Some(shared) = shared.upgrade() else {
            return;
        };
        let store = StateStore { shared };
        if store.checkpoint_due() {
            match store.background_checkpoint() {
                Ok(()) => retry_after = None,
                Err(e) => {
                    tracing::warn!(error = %e, "state checkpoint failed; will retry");
                    retry_after = Some(Instant::now() + Duration::from_secs(5));
                }
            }
        }
    }
}
