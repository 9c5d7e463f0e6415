//! The state store: visitor profiles, curate idempotency markers, and the
//! local delivery bookkeeping (checkpoint, in-flight batch, curate queue).
//!
//! Log-structured: every change (a curate transaction, a delivery step) is
//! one record appended to the journal ([`crate::journal`]) and fsync'ed
//! before it is acknowledged, then merged into an in-memory overlay
//! ([`crate::overlay`]) that lookups read together with redb, the
//! checkpointed base. A checkpoint (in the background, when the overlay
//! holds too many visitors or journal bytes, or is old enough; and first
//! thing before an operation that needs the base current) writes the
//! overlay into redb in ONE transaction that also records the last journal
//! sequence it covers, then deletes the journal files it covered. At open,
//! the records after that sequence are replayed and checkpointed; a torn
//! tail (a record being written when the process died, never acknowledged)
//! is ignored.
//!
//! Why: a curate transaction touching hundreds of thousands of visitors
//! spread over a store of millions rewrote most of redb's leaf pages at
//! every commit. Now it appends a few bytes per visitor, and a checkpoint
//! rewrites each touched page once for every change it merged.

use crate::journal::{self, JournalWriter};
use crate::overlay::{Layer, MetaKey, Packed, Pending, RecordView, decode_record};
use crate::{EmbeddedError, blocking};
use async_trait::async_trait;
use gender_core::dedup::HitKey;
use gender_core::ports::{ApplyOutcome, CounterStore, HealthProbe, ProfileReader, WindowStore};
use gender_core::{Date, Gender, PortError, Profile, VisitorDelta, WindowSums};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock, Weak};
use std::time::{Duration, Instant};

pub(crate) const PROFILES: TableDefinition<&str, &[u8]> = TableDefinition::new("profiles");
/// Visitors whose profile holds window sums, so clearing does not scan every profile.
pub(crate) const WINDOWED: TableDefinition<&str, i32> = TableDefinition::new("windowed");
/// Curate idempotency markers: object id -> time applied (ms).
const APPLIED: TableDefinition<&str, i64> = TableDefinition::new("applied_objects");
/// Raw objects delivered but not yet curated: key -> log offset where they start.
const PENDING: TableDefinition<&str, u64> = TableDefinition::new("pending_curate");
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Hit identities counted by each curate transaction (SPEC 15), as packed
/// [`HitKey`]s under (commit time ms, sequence number): what rebuilds the
/// in-memory dedup index at start-up. Rows older than twice the horizon are
/// deleted by later transactions.
const SEEN: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new("seen_hits");
const SEEN_SEQ: &str = "seen_seq";
/// The last journal record merged into the tables above.
const JOURNAL_SEQ: &str = "journal_checkpoint_seq";

const DELIVERED: &str = "delivered_offset";
const INTENT_START: &str = "delivery_intent_start";
const INTENT_END: &str = "delivery_intent_end";

fn meta_name(key: MetaKey) -> &'static str {
    match key {
        MetaKey::Delivered => DELIVERED,
        MetaKey::IntentStart => INTENT_START,
        MetaKey::IntentEnd => INTENT_END,
    }
}

/// Where local delivery stands, as recovered at start-up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryState {
    pub delivered_offset: u64,
    /// A batch that was cut but whose objects may not all be written.
    pub intent: Option<(u64, u64)>,
    /// Raw keys waiting for curate, oldest first.
    pub pending: Vec<String>,
}

/// One object's counter deltas for [`StateStore::apply_objects_blocking`].
#[derive(Debug, Clone, Copy)]
pub struct ObjectDeltas<'a> {
    /// The idempotency marker (for raw objects: their key).
    pub object_id: &'a str,
    pub deltas: &'a [VisitorDelta],
    /// The local curate queue entry this application acknowledges.
    pub ack_queued: Option<&'a str>,
}

/// The hit identities a curate transaction counted, persisted with its
/// counters, and how far back the persisted identities are still needed.
#[derive(Debug, Clone, Copy)]
pub struct SeenKeys<'a> {
    pub keys: &'a [HitKey],
    /// Identities committed before this time are deleted.
    pub keep_since_ms: i64,
}

impl SeenKeys<'_> {
    /// No identities, nothing deleted (deduplication off).
    pub const NONE: SeenKeys<'static> = SeenKeys {
        keys: &[],
        keep_since_ms: i64::MIN,
    };
}

/// When the overlay is merged into redb in the background.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointPolicy {
    /// Visitors in the overlay that start a checkpoint. Each costs about
    /// 100-150 bytes of memory; at twice this, a curate transaction waits
    /// for a checkpoint itself, which bounds the overlay.
    pub max_visitors: usize,
    /// Journal bytes since the last checkpoint that start one (bounds the
    /// replay at start-up).
    pub max_journal_bytes: u64,
    /// A checkpoint at least this often while anything changes.
    pub interval: Duration,
}

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            max_visitors: 4_000_000,
            max_journal_bytes: 1024 * 1024 * 1024,
            interval: Duration::from_secs(60),
        }
    }
}

/// Cheap to clone: every clone shares one database, journal and overlay.
#[derive(Clone)]
pub struct StateStore {
    shared: Arc<Shared>,
}

struct Layers {
    /// Layers being (or waiting to be) checkpointed, oldest first.
    frozen: Vec<Arc<Layer>>,
    /// The layer new records merge into.
    active: Arc<Layer>,
}

impl Layers {
    fn all(&self) -> impl Iterator<Item = &Arc<Layer>> {
        self.frozen.iter().chain(std::iter::once(&self.active))
    }
}

struct Writer {
    journal: JournalWriter,
    next_seq: u64,
    next_seen_seq: u64,
}

struct Wake {
    stop: Mutex<bool>,
    cv: Condvar,
}

struct Shared {
    path: PathBuf,
    /// `None` while a reopen after an I/O error has not succeeded yet.
    db: RwLock<Option<Arc<Database>>>,
    policy: CheckpointPolicy,
    layers: RwLock<Layers>,
    /// Odd while a checkpoint commits (until its layers are dropped): a
    /// lookup that saw it odd, or saw it change, asks redb which journal
    /// sequence its snapshot covers instead of assuming the overlay's
    /// layers are all newer than redb.
    generation: AtomicU64,
    /// Serializes journal appends, and freezing the active layer.
    writer: Mutex<Writer>,
    /// One checkpoint at a time. Lock order: `writer`, then this.
    checkpointing: Mutex<()>,
    wake: Arc<Wake>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Ok(mut stop) = self.wake.stop.lock() {
            *stop = true;
        }
        self.wake.cv.notify_all();
    }
}

/// After an I/O error (a full disk, say) redb refuses every later
/// operation until the database is reopened; the store reopens it by itself,
/// so the pipeline resumes without a restart once the fault clears.
fn needs_reopen(e: &redb::TransactionError) -> bool {
    matches!(
        e,
        redb::TransactionError::Storage(redb::StorageError::PreviousIo | redb::StorageError::Io(_))
    )
}

/// redb's page cache (its default is 1 GiB). Half of it at most holds a
/// transaction's dirty pages before they are written out early; a
/// checkpoint that touches most of a large profile table dirties most of
/// its pages, so the cache is sized for a few million profiles (it only
/// grows as pages are read or written).
const CACHE_BYTES: usize = 4 << 30;

fn open_database(path: &Path) -> Result<Database, EmbeddedError> {
    let db = Database::builder()
        .set_cache_size(CACHE_BYTES)
        .create(path)
        .map_err(|e| match e {
            redb::DatabaseError::DatabaseAlreadyOpen => {
                EmbeddedError::InUse(path.display().to_string())
            }
            other => other.into(),
        })?;
    let txn = db.begin_write()?;
    // Create every table up front so read transactions never miss one.
    txn.open_table(PROFILES)?;
    txn.open_table(WINDOWED)?;
    txn.open_table(APPLIED)?;
    txn.open_table(PENDING)?;
    txn.open_table(META)?;
    txn.open_table(crate::erasures::ERASURES)?;
    txn.open_table(crate::erasures::SECRETS)?;
    txn.commit()?;
    Ok(db)
}

/// The journal's directory beside the database file (`state.journal`).
fn journal_dir(path: &Path) -> PathBuf {
    path.with_extension("journal")
}

fn poisoned() -> EmbeddedError {
    EmbeddedError::CorruptState("state store lock poisoned".into())
}

/// The last journal record the snapshot `txn` holds.
fn covered_seq(txn: &redb::ReadTransaction) -> Result<u64, EmbeddedError> {
    Ok(txn
        .open_table(META)?
        .get(JOURNAL_SEQ)?
        .map_or(0, |v| v.value()))
}

const ENCODED_LEN: usize = 1 + 8 + 8 + 1 + 8 + 1 + 8 + 8 + 4 + 8;
const FORMAT_VERSION: u8 = 1;

fn encode_profile(p: &Profile) -> [u8; ENCODED_LEN] {
    let mut out = [0u8; ENCODED_LEN];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&[FORMAT_VERSION]);
    put(&p.m.to_le_bytes());
    put(&p.f.to_le_bytes());
    put(&[p.last_gender as u8]);
    put(&p.last_seen_ms.to_le_bytes());
    let window = p.window.unwrap_or(WindowSums {
        m: 0,
        f: 0,
        date: Date::from_days(0),
    });
    put(&[u8::from(p.window.is_some())]);
    put(&window.m.to_le_bytes());
    put(&window.f.to_le_bytes());
    put(&window.date.days().to_le_bytes());
    put(&p.updated_at_ms.to_le_bytes());
    out
}

fn decode_profile(clientid: &str, b: &[u8]) -> Result<Profile, EmbeddedError> {
    if b.len() != ENCODED_LEN || b[0] != FORMAT_VERSION {
        return Err(EmbeddedError::CorruptState(format!(
            "profile {clientid}: bad encoding"
        )));
    }
    let u64_at = |i: usize| u64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let gender = |v: u8| {
        if v == Gender::F as u8 {
            Gender::F
        } else {
            Gender::M
        }
    };
    let window = (b[26] == 1).then(|| WindowSums {
        m: u64_at(27),
        f: u64_at(35),
        date: Date::from_days(i32::from_le_bytes(b[43..47].try_into().expect("4 bytes"))),
    });
    Ok(Profile {
        clientid: clientid.to_owned(),
        m: u64_at(1),
        f: u64_at(9),
        last_gender: gender(b[17]),
        last_seen_ms: u64_at(18) as i64,
        window,
        updated_at_ms: u64_at(47) as i64,
    })
}

impl StateStore {
    pub fn open(path: impl AsRef<Path>) -> Result<StateStore, EmbeddedError> {
        StateStore::open_with(path, CheckpointPolicy::default())
    }

    /// Opens the database, replays the journal records it does not hold yet
    /// and checkpoints them, then starts the background checkpoints.
    pub fn open_with(
        path: impl AsRef<Path>,
        policy: CheckpointPolicy,
    ) -> Result<StateStore, EmbeddedError> {
        let path = path.as_ref();
        let db = open_database(path)?;
        let dir = journal_dir(path);
        let (replayed, next_seq) = replay(&db, &dir)?;
        // Named after the next record: never an older file's name unless that
        // file held nothing intact at or after it.
        let journal = JournalWriter::create(&dir, next_seq)?;
        let mut layers = Layers {
            frozen: Vec::new(),
            active: Arc::new(Layer::new(next_seq)),
        };
        if let Some(layer) = replayed {
            layer.freeze()?;
            layers.frozen.push(Arc::new(layer));
        }
        let store = StateStore {
            shared: Arc::new(Shared {
                path: path.to_owned(),
                db: RwLock::new(Some(Arc::new(db))),
                policy,
                layers: RwLock::new(layers),
                generation: AtomicU64::new(0),
                writer: Mutex::new(Writer {
                    journal,
                    next_seq,
                    next_seen_seq: 0,
                }),
                checkpointing: Mutex::new(()),
                wake: Arc::new(Wake {
                    stop: Mutex::new(false),
                    cv: Condvar::new(),
                }),
            }),
        };
        store.checkpoint_frozen()?;
        let seen_seq = store
            .begin_read()?
            .open_table(META)?
            .get(SEEN_SEQ)?
            .map_or(0, |v| v.value());
        store.writer()?.next_seen_seq = seen_seq + 1;
        store.spawn_checkpointer();
        Ok(store)
    }

    fn database(&self) -> Result<Arc<Database>, EmbeddedError> {
        let current = self.shared.db.read().map_err(|_| poisoned())?.clone();
        match current {
            Some(db) => Ok(db),
            None => self.reopen(None),
        }
    }

    /// Replaces `failed` (or a closed database) with a freshly opened one.
    fn reopen(&self, failed: Option<Arc<Database>>) -> Result<Arc<Database>, EmbeddedError> {
        let mut slot = self.shared.db.write().map_err(|_| poisoned())?;
        match (&*slot, &failed) {
            (Some(current), Some(failed)) if !Arc::ptr_eq(current, failed) => {
                return Ok(current.clone()); // another caller reopened it already
            }
            _ => {}
        }
        // The old handle must be gone before the file can be opened again.
        *slot = None;
        drop(failed);
        let db = Arc::new(open_database(&self.shared.path)?);
        tracing::info!(path = %self.shared.path.display(), "state store reopened after an I/O error");
        *slot = Some(db.clone());
        Ok(db)
    }

    pub(crate) fn begin_read(&self) -> Result<redb::ReadTransaction, EmbeddedError> {
        let db = self.database()?;
        match db.begin_read() {
            Err(e) if needs_reopen(&e) => Ok(self.reopen(Some(db))?.begin_read()?),
            other => Ok(other?),
        }
    }

    pub(crate) fn begin_write(&self) -> Result<redb::WriteTransaction, EmbeddedError> {
        let db = self.database()?;
        match db.begin_write() {
            Err(e) if needs_reopen(&e) => Ok(self.reopen(Some(db))?.begin_write()?),
            other => Ok(other?),
        }
    }

    fn writer(&self) -> Result<MutexGuard<'_, Writer>, EmbeddedError> {
        self.shared.writer.lock().map_err(|_| poisoned())
    }

    /// The overlay's layers, oldest first.
    fn layers(&self) -> Result<Vec<Arc<Layer>>, EmbeddedError> {
        let layers = self.shared.layers.read().map_err(|_| poisoned())?;
        Ok(layers.all().cloned().collect())
    }

    /// The layers a snapshot of redb does not hold yet: those whose records
    /// all come after the sequence it covers (a checkpoint covers whole layers).
    fn newer_than(
        layers: &[Arc<Layer>],
        txn: &redb::ReadTransaction,
    ) -> Result<Vec<Arc<Layer>>, EmbeddedError> {
        let covered = covered_seq(txn)?;
        Ok(layers
            .iter()
            .filter(|l| l.first_seq > covered)
            .cloned()
            .collect())
    }

    pub fn get_profile_blocking(&self, clientid: &str) -> Result<Option<Profile>, EmbeddedError> {
        // The overlay first, then redb: a layer is dropped only after redb
        // holds it, so nothing is missed; `generation` tells whether a
        // checkpoint may have committed in between (then redb says which
        // layers it already holds).
        let mut found: Vec<(u64, Pending)> = Vec::new();
        let before = {
            let layers = self.shared.layers.read().map_err(|_| poisoned())?;
            let generation = self.shared.generation.load(Ordering::SeqCst);
            for layer in layers.all() {
                if let Some(pending) = layer.visitor(clientid)? {
                    found.push((layer.first_seq, pending));
                }
            }
            generation
        };
        let txn = self.begin_read()?;
        let mut profile = {
            let table = txn.open_table(PROFILES)?;
            let value = table.get(clientid)?;
            value
                .map(|v| decode_profile(clientid, v.value()))
                .transpose()?
        };
        if found.is_empty() {
            return Ok(profile);
        }
        let after = self.shared.generation.load(Ordering::SeqCst);
        let covered = if before == after && before % 2 == 0 {
            0
        } else {
            covered_seq(&txn)?
        };
        for (first_seq, pending) in found {
            if first_seq <= covered {
                continue;
            }
            match &mut profile {
                Some(p) => pending.apply_to(p),
                None => profile = Some(pending.into_profile(clientid)),
            }
        }
        Ok(profile)
    }

    /// Visitors with a profile, exactly (checkpoints first).
    pub fn profile_count(&self) -> Result<u64, EmbeddedError> {
        self.with_checkpoint(|s| s.checkpointed_profile_count())
    }

    /// Visitors with a profile as of the last checkpoint: no waiting, for
    /// metrics.
    pub fn checkpointed_profile_count(&self) -> Result<u64, EmbeddedError> {
        use redb::ReadableTableMetadata;
        let txn = self.begin_read()?;
        Ok(txn.open_table(PROFILES)?.len()?)
    }

    /// Applies one object's deltas and its idempotency marker in one
    /// transaction; with `ack_queued`, also removes that key from the local
    /// curate queue in the same transaction.
    pub fn apply_object_blocking(
        &self,
        object_id: &str,
        deltas: &[VisitorDelta],
        now_ms: i64,
        ack_queued: Option<&str>,
    ) -> Result<ApplyOutcome, EmbeddedError> {
        let object = ObjectDeltas {
            object_id,
            deltas,
            ack_queued,
        };
        Ok(self.apply_objects_blocking(&[object], SeenKeys::NONE, now_ms)?[0])
    }

    /// Applies several objects in one journal record, in order, each exactly
    /// once (an object whose marker exists, in redb or in the overlay,
    /// changes nothing), and acknowledges their queue entries. The deltas
    /// are folded into the overlay's entry of each visitor, and nothing is
    /// read from redb but the markers. The hit identities
    /// the objects counted are stored in the same record. Durable when this
    /// returns; on an error nothing of it is applied.
    pub fn apply_objects_blocking(
        &self,
        objects: &[ObjectDeltas<'_>],
        seen: SeenKeys<'_>,
        now_ms: i64,
    ) -> Result<Vec<ApplyOutcome>, EmbeddedError> {
        let mut writer = self.writer()?;
        let layers = self.layers()?;
        let txn = self.begin_read()?;
        let newer = Self::newer_than(&layers, &txn)?;
        let markers = txn.open_table(APPLIED)?;
        let mut outcomes = Vec::with_capacity(objects.len());
        let mut record = RecordView {
            now_ms,
            keep_since_ms: seen.keep_since_ms,
            ..RecordView::default()
        };
        let mut fresh: HashSet<&str> = HashSet::new();
        for object in objects {
            let id = object.object_id;
            let mut already = fresh.contains(id);
            for layer in &newer {
                already = already || layer.misc()?.applied.contains_key(id);
            }
            already = already || markers.get(id)?.is_some();
            if already {
                outcomes.push(ApplyOutcome::AlreadyApplied);
            } else {
                // Not folded here: the layer folds them as it merges.
                record.visitors.extend(
                    object
                        .deltas
                        .iter()
                        .map(|d| (d.clientid.as_str(), Pending::from_delta(d, now_ms))),
                );
                fresh.insert(id);
                record.applied.push(id);
                outcomes.push(ApplyOutcome::Applied);
            }
            if let Some(key) = object.ack_queued {
                record.pending.push((key, None));
            }
        }
        drop(markers);
        drop(txn);
        let packed = HitKey::pack(seen.keys);
        if !seen.keys.is_empty() {
            record.seen = Some((writer.next_seen_seq, &packed));
        }
        self.append(&mut writer, &record)?;
        if record.seen.is_some() {
            writer.next_seen_seq += 1;
        }
        self.after_append(&mut writer);
        Ok(outcomes)
    }

    /// Journals `record` and merges it into the active layer.
    fn append(&self, writer: &mut Writer, record: &RecordView<'_>) -> Result<(), EmbeddedError> {
        let payload = record.encode();
        let seq = writer.next_seq;
        let bytes = writer.journal.append(seq, &payload)?;
        writer.next_seq += 1;
        let active = self
            .shared
            .layers
            .read()
            .map_err(|_| poisoned())?
            .active
            .clone();
        active.merge(seq, record, bytes)
    }

    /// Wakes the background checkpoint when a bound is passed; past twice
    /// the bound (the background one cannot keep up), checkpoints here.
    fn after_append(&self, writer: &mut Writer) {
        let policy = &self.shared.policy;
        let (visitors, bytes) = match self.shared.layers.read() {
            Ok(layers) => (layers.active.visitors(), layers.active.journal_bytes()),
            Err(_) => return,
        };
        if visitors >= 2 * policy.max_visitors || bytes >= 2 * policy.max_journal_bytes {
            let done = self
                .freeze(writer)
                .and_then(|()| self.checkpoint_frozen().map(|_| ()));
            if let Err(e) = done {
                tracing::warn!(error = %e, "state checkpoint failed; will retry");
            }
        } else if visitors >= policy.max_visitors || bytes >= policy.max_journal_bytes {
            self.shared.wake.cv.notify_all();
        }
    }

    /// Journals a change that is not a curate transaction.
    fn journal_change(&self, record: RecordView<'_>) -> Result<(), EmbeddedError> {
        let mut writer = self.writer()?;
        self.append(&mut writer, &record)
    }

    /// Moves the active layer to the frozen ones and starts a journal file
    /// for the records after it. The caller holds the writer.
    fn freeze(&self, writer: &mut Writer) -> Result<(), EmbeddedError> {
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
    fn checkpoint_frozen(&self) -> Result<bool, EmbeddedError> {
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
        let visitors = sorted_visitors(&frozen);
        let merged = visitors.len();
        let sorted_ms = started.elapsed().as_millis() as u64;
        let txn = self.begin_write()?;
        {
            let mut profiles = txn.open_table(PROFILES)?;
            let mut i = 0;
            while i < visitors.len() {
                let clientid = visitors[i].clientid;
                let mut pending = visitors[i].pending.get();
                i += 1;
                while i < visitors.len() && visitors[i].clientid == clientid {
                    pending.then(&visitors[i].pending.get());
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
                    seen.insert((*at_ms, *seq), packed.as_slice())?;
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
    fn with_checkpoint<T>(
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

    fn background_checkpoint(&self) -> Result<(), EmbeddedError> {
        {
            let mut writer = self.writer()?;
            self.freeze(&mut writer)?;
        }
        self.checkpoint_frozen().map(|_| ())
    }

    /// A thread that checkpoints when due; it ends with the last clone of
    /// the store.
    fn spawn_checkpointer(&self) {
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

    /// The hit identities committed at or after `since_ms`, oldest first,
    /// each batch with its commit time.
    pub fn seen_since_blocking(
        &self,
        since_ms: i64,
    ) -> Result<Vec<(i64, Vec<HitKey>)>, EmbeddedError> {
        self.checkpoint_blocking()?;
        let txn = self.begin_read()?;
        let rows = match txn.open_table(SEEN) {
            Ok(rows) => rows,
            // A store from before deduplication: nothing remembered yet.
            Err(redb::TableError::TableDoesNotExist(_)) => return Ok(Vec::new()),
            Err(e) => return Err(e.into()),
        };
        let mut out = Vec::new();
        for row in rows.range((since_ms, 0)..)? {
            let (key, value) = row?;
            let (at_ms, _) = key.value();
            let keys = HitKey::unpack(value.value()).ok_or_else(|| {
                EmbeddedError::CorruptState(format!(
                    "seen_hits: a row of {} bytes is not whole 16-byte keys",
                    value.value().len()
                ))
            })?;
            out.push((at_ms, keys));
        }
        Ok(out)
    }

    /// Every visitor with window sums, with them: a full read, for tests and
    /// inspection (the daily job never reads them back). Window sums live in
    /// redb only (the overlay holds hit counts).
    pub fn stored_windows_blocking(&self) -> Result<Vec<(String, WindowSums)>, EmbeddedError> {
        let txn = self.begin_read()?;
        let windowed = txn.open_table(WINDOWED)?;
        let profiles = txn.open_table(PROFILES)?;
        let mut stored = Vec::new();
        for entry in windowed.iter()? {
            let (id, _) = entry?;
            let id = id.value();
            let window = match profiles.get(id)? {
                Some(bytes) => decode_profile(id, bytes.value())?.window,
                None => None,
            };
            if let Some(window) = window {
                stored.push((id.to_owned(), window));
            }
        }
        Ok(stored)
    }

    pub fn set_windows_blocking(
        &self,
        updates: &[(String, Option<WindowSums>)],
        now_ms: i64,
    ) -> Result<(), EmbeddedError> {
        // Checkpointed first, so every visitor with a profile is in redb.
        self.with_checkpoint(|s| {
            let txn = s.begin_write()?;
            {
                let mut profiles = txn.open_table(PROFILES)?;
                let mut windowed = txn.open_table(WINDOWED)?;
                for (clientid, window) in updates {
                    let existing = profiles.get(clientid.as_str())?.map(|v| v.value().to_vec());
                    // Only visitors with a profile: curate creates profiles, daily never does.
                    let Some(bytes) = existing else { continue };
                    let mut profile = decode_profile(clientid, &bytes)?;
                    profile.window = *window;
                    profile.updated_at_ms = now_ms;
                    profiles.insert(clientid.as_str(), encode_profile(&profile).as_slice())?;
                    match window {
                        Some(w) => windowed.insert(clientid.as_str(), w.date.days())?,
                        None => windowed.remove(clientid.as_str())?,
                    };
                }
            }
            txn.commit()?;
            Ok(())
        })
    }

    pub fn delivery_state(&self) -> Result<DeliveryState, EmbeddedError> {
        let layers = self.layers()?;
        let txn = self.begin_read()?;
        let newer = Self::newer_than(&layers, &txn)?;
        let table = txn.open_table(META)?;
        let mut meta: HashMap<MetaKey, Option<u64>> = HashMap::new();
        for key in [MetaKey::Delivered, MetaKey::IntentStart, MetaKey::IntentEnd] {
            meta.insert(key, table.get(meta_name(key))?.map(|v| v.value()));
        }
        let mut pending: HashMap<String, u64> = HashMap::new();
        for entry in txn.open_table(PENDING)?.iter()? {
            let (key, offset) = entry?;
            pending.insert(key.value().to_owned(), offset.value());
        }
        for layer in &newer {
            let misc = layer.misc()?;
            for (key, op) in &misc.pending {
                match op {
                    Some(offset) => pending.insert(key.to_string(), *offset),
                    None => pending.remove(&**key),
                };
            }
            meta.extend(misc.meta.iter().map(|(k, v)| (*k, *v)));
        }
        let get = |k| meta.get(&k).copied().flatten();
        let intent = match (get(MetaKey::IntentStart), get(MetaKey::IntentEnd)) {
            (Some(start), Some(end)) => Some((start, end)),
            _ => None,
        };
        let mut pending: Vec<(u64, String)> = pending.into_iter().map(|(k, o)| (o, k)).collect();
        pending.sort();
        Ok(DeliveryState {
            delivered_offset: get(MetaKey::Delivered).unwrap_or(0),
            intent,
            pending: pending.into_iter().map(|(_, key)| key).collect(),
        })
    }

    /// Records the batch `[start, end)` before its objects are written, so a
    /// crash re-delivers exactly that batch under the same object names.
    pub fn begin_delivery(&self, start: u64, end: u64) -> Result<(), EmbeddedError> {
        self.journal_change(RecordView {
            meta: vec![
                (MetaKey::IntentStart, Some(start)),
                (MetaKey::IntentEnd, Some(end)),
            ],
            keep_since_ms: i64::MIN,
            ..RecordView::default()
        })
    }

    /// Moves the checkpoint to `end` and queues the batch's objects for curate.
    pub fn finish_delivery(
        &self,
        start: u64,
        end: u64,
        keys: &[String],
    ) -> Result<(), EmbeddedError> {
        self.journal_change(RecordView {
            meta: vec![
                (MetaKey::Delivered, Some(end)),
                (MetaKey::IntentStart, None),
                (MetaKey::IntentEnd, None),
            ],
            pending: keys.iter().map(|k| (k.as_str(), Some(start))).collect(),
            keep_since_ms: i64::MIN,
            ..RecordView::default()
        })
    }

    /// Drops a queued object that can never be curated (its raw object is gone).
    pub fn drop_pending(&self, key: &str) -> Result<(), EmbeddedError> {
        self.journal_change(RecordView {
            pending: vec![(key, None)],
            keep_since_ms: i64::MIN,
            ..RecordView::default()
        })
    }

    /// Runs `op` on redb with everything journaled checkpointed first and
    /// no record appended meanwhile (for erasures).
    pub(crate) fn exclusive<T>(
        &self,
        op: impl FnOnce(&StateStore) -> Result<T, EmbeddedError>,
    ) -> Result<T, EmbeddedError> {
        self.with_checkpoint(op)
    }
}

struct SortEntry<'a> {
    /// Eight bytes of the clientid after the prefix all share, big-endian:
    /// most comparisons end here, without reading the strings.
    key: u64,
    clientid: &'a str,
    layer: usize,
    pending: &'a Packed,
}

/// The frozen layers' visitors in clientid order (the order of redb's
/// B-tree), a visitor's entries in layer order.
fn sorted_visitors(frozen: &[Arc<Layer>]) -> Vec<SortEntry<'_>> {
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
    let mut out = Vec::with_capacity(frozen.iter().map(|l| l.visitors()).sum());
    for (layer, frozen) in frozen.iter().enumerate() {
        for (clientid, pending) in frozen.frozen_visitors() {
            let mut key = [0u8; 8];
            let rest = &clientid.as_bytes()[skip..];
            let n = rest.len().min(8);
            key[..n].copy_from_slice(&rest[..n]);
            out.push(SortEntry {
                key: u64::from_be_bytes(key),
                clientid,
                layer,
                pending,
            });
        }
    }
    out.sort_unstable_by(|a, b| {
        a.key
            .cmp(&b.key)
            .then_with(|| a.clientid.cmp(b.clientid))
            .then(a.layer.cmp(&b.layer))
    });
    out
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

/// Reads the journal records redb does not hold yet (after the sequence
/// it covers) into a layer, each once: a record whose objects are already
/// applied is skipped. Returns the layer (if any record) and the next sequence.
fn replay(db: &Database, dir: &Path) -> Result<(Option<Layer>, u64), EmbeddedError> {
    let (records, report) = journal::scan(dir)?;
    if report.torn_bytes > 0 {
        tracing::warn!(
            bytes = report.torn_bytes,
            "state journal: ignoring a torn, never acknowledged tail"
        );
    }
    for (path, offset, len) in &report.damaged {
        tracing::error!(file = %path.display(), offset, len, "state journal: damaged bytes skipped; the records after them are replayed");
    }
    let txn = db.begin_read()?;
    let covered = covered_seq(&txn)?;
    let markers = txn.open_table(APPLIED)?;
    let layer = Layer::new(covered + 1);
    let mut last = covered;
    let mut replayed = 0;
    for record in &records {
        if record.seq <= last {
            continue;
        }
        let view = decode_record(&record.payload)?;
        let mut duplicate = false;
        for id in &view.applied {
            duplicate =
                duplicate || layer.misc()?.applied.contains_key(*id) || markers.get(*id)?.is_some();
        }
        if duplicate {
            tracing::warn!(
                seq = record.seq,
                "state journal: a record whose objects are already applied is skipped"
            );
        } else {
            layer.merge(record.seq, &view, record.payload.len() as u64)?;
            replayed += 1;
        }
        last = record.seq;
    }
    if replayed > 0 {
        tracing::info!(records = replayed, covered, last, "state journal replayed");
    }
    Ok(((!layer.is_empty()).then_some(layer), last + 1))
}

#[async_trait]
impl ProfileReader for StateStore {
    async fn get_profile(&self, clientid: &str) -> Result<Option<Profile>, PortError> {
        // A read transaction is a few microseconds on cached pages: no thread hop.
        self.get_profile_blocking(clientid).map_err(Into::into)
    }
}

#[async_trait]
impl HealthProbe for StateStore {
    async fn ping(&self) -> Result<(), PortError> {
        let txn = self.begin_read()?;
        txn.open_table(META).map_err(EmbeddedError::from)?;
        Ok(())
    }
}

#[async_trait]
impl CounterStore for StateStore {
    async fn apply_object(
        &self,
        object_id: &str,
        deltas: &[VisitorDelta],
        now_ms: i64,
    ) -> Result<ApplyOutcome, PortError> {
        let (this, id, deltas) = (self.clone(), object_id.to_owned(), deltas.to_vec());
        blocking(move || this.apply_object_blocking(&id, &deltas, now_ms, None)).await
    }
}

#[async_trait]
impl WindowStore for StateStore {
    async fn set_windows(
        &self,
        updates: &[(String, Option<WindowSums>)],
        now_ms: i64,
    ) -> Result<(), PortError> {
        let (this, updates) = (self.clone(), updates.to_vec());
        blocking(move || this.set_windows_blocking(&updates, now_ms)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn delta(id: &str, m: u64, f: u64, last: Gender, at: i64) -> VisitorDelta {
        VisitorDelta {
            clientid: id.into(),
            m,
            f,
            last_gender: last,
            last_seen_ms: at,
        }
    }

    fn store() -> (tempfile::TempDir, StateStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open(dir.path().join("state.redb")).unwrap();
        (dir, store)
    }

    /// No background checkpoint during a test: only the ones it asks for.
    const MANUAL: CheckpointPolicy = CheckpointPolicy {
        max_visitors: usize::MAX / 4,
        max_journal_bytes: u64::MAX / 4,
        interval: Duration::from_secs(3600),
    };

    fn profiles_of(store: &StateStore, ids: &[String]) -> Vec<Option<Profile>> {
        ids.iter()
            .map(|id| store.get_profile_blocking(id).unwrap())
            .collect()
    }

    /// Objects o0..o{n} touching overlapping visitors, applied one per call.
    fn apply_some(store: &StateStore, from: usize, to: usize) -> Vec<String> {
        let mut ids = Vec::new();
        for i in from..to {
            let deltas: Vec<VisitorDelta> = (0..5)
                .map(|j| {
                    let g = if (i + j) % 3 == 0 {
                        Gender::F
                    } else {
                        Gender::M
                    };
                    delta(
                        &format!("v{}", (i * 3 + j) % 11),
                        1 + j as u64,
                        (i % 2) as u64,
                        g,
                        (i * 7 % 5) as i64,
                    )
                })
                .collect();
            ids.extend(deltas.iter().map(|d| d.clientid.clone()));
            let outcome = store
                .apply_object_blocking(&format!("o{i}"), &deltas, 100 + i as i64, None)
                .unwrap();
            assert_eq!(outcome, ApplyOutcome::Applied);
        }
        ids.sort();
        ids.dedup();
        ids
    }

    fn journal_files(path: &Path) -> Vec<PathBuf> {
        journal::list_files(&journal_dir(path))
            .unwrap()
            .into_iter()
            .map(|(_, p)| p)
            .collect()
    }

    #[test]
    fn checkpoints_write_visitors_in_clientid_order() {
        let layers: Vec<Arc<Layer>> = [
            &["v-10", "v-9", "v-1", "v-100000000x"][..],
            &["v-9", "v-", "v-100000000"],
        ]
        .iter()
        .enumerate()
        .map(|(n, ids)| {
            let layer = Layer::new(n as u64 * 10 + 1);
            let pending = Pending::from_delta(&delta("x", 1, 0, Gender::M, 1), n as i64);
            let record = RecordView {
                visitors: ids.iter().map(|id| (*id, pending)).collect(),
                keep_since_ms: i64::MIN,
                ..RecordView::default()
            };
            layer.merge(n as u64 * 10 + 1, &record, 0).unwrap();
            layer.freeze().unwrap();
            Arc::new(layer)
        })
        .collect();
        let order: Vec<(&str, i64)> = sorted_visitors(&layers)
            .iter()
            .map(|e| (e.clientid, e.pending.get().updated_at_ms))
            .collect();
        assert_eq!(
            order,
            [
                ("v-", 1),
                ("v-1", 0),
                ("v-10", 0),
                ("v-100000000", 1),
                ("v-100000000x", 0),
                ("v-9", 0),
                ("v-9", 1)
            ]
        );
    }

    #[test]
    fn lookups_see_the_overlay_on_top_of_the_base() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open_with(dir.path().join("state.redb"), MANUAL).unwrap();
        store
            .apply_object_blocking("o1", &[delta("a", 2, 0, Gender::M, 10)], 1, None)
            .unwrap();
        store.checkpoint_blocking().unwrap();
        assert_eq!(store.checkpointed_profile_count().unwrap(), 1);
        store
            .apply_object_blocking(
                "o2",
                &[
                    delta("a", 0, 1, Gender::F, 20),
                    delta("b", 1, 0, Gender::M, 5),
                ],
                2,
                None,
            )
            .unwrap();
        // Not in redb yet, but visible.
        assert_eq!(store.checkpointed_profile_count().unwrap(), 1);
        let a = store.get_profile_blocking("a").unwrap().unwrap();
        assert_eq!(
            (a.m, a.f, a.last_gender, a.last_seen_ms, a.updated_at_ms),
            (2, 1, Gender::F, 20, 2)
        );
        let b = store.get_profile_blocking("b").unwrap().unwrap();
        assert_eq!((b.m, b.f, b.updated_at_ms), (1, 0, 2));
        assert_eq!(store.profile_count().unwrap(), 2);
        assert_eq!(store.get_profile_blocking("a").unwrap().unwrap(), a);
    }

    #[test]
    fn a_marker_still_in_the_journal_makes_an_object_already_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let deltas = [delta("a", 1, 0, Gender::M, 10)];
        {
            let store = StateStore::open_with(&path, MANUAL).unwrap();
            assert_eq!(
                store.apply_object_blocking("o1", &deltas, 1, None).unwrap(),
                ApplyOutcome::Applied
            );
            assert_eq!(
                store.apply_object_blocking("o1", &deltas, 2, None).unwrap(),
                ApplyOutcome::AlreadyApplied
            );
            // A frozen layer (checkpoint started, not finished) counts too.
            let mut writer = store.writer().unwrap();
            store.freeze(&mut writer).unwrap();
            drop(writer);
            assert_eq!(
                store.apply_object_blocking("o1", &deltas, 3, None).unwrap(),
                ApplyOutcome::AlreadyApplied
            );
            assert_eq!(store.get_profile_blocking("a").unwrap().unwrap().m, 1);
        }
        // Reopened from the journal alone (no checkpoint before the "crash").
        let store = StateStore::open_with(&path, MANUAL).unwrap();
        assert_eq!(
            store.apply_object_blocking("o1", &deltas, 4, None).unwrap(),
            ApplyOutcome::AlreadyApplied
        );
        assert_eq!(store.get_profile_blocking("a").unwrap().unwrap().m, 1);
    }

    #[test]
    fn checkpoint_then_reopen_gives_identical_profiles() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = StateStore::open_with(&path, MANUAL).unwrap();
        let ids = apply_some(&store, 0, 10);
        store.checkpoint_blocking().unwrap();
        let more = apply_some(&store, 10, 20);
        let ids: Vec<String> = ids.into_iter().chain(more).collect();
        // Two layers frozen before one checkpoint merges both, in order.
        let mut writer = store.writer().unwrap();
        store.freeze(&mut writer).unwrap();
        drop(writer);
        let more = apply_some(&store, 20, 25);
        let ids: Vec<String> = ids.into_iter().chain(more).collect();
        let before = profiles_of(&store, &ids);
        assert!(before.iter().all(Option::is_some));
        store.checkpoint_blocking().unwrap();
        assert_eq!(profiles_of(&store, &ids), before);
        assert_eq!(
            journal_files(&path).len(),
            1,
            "checkpointed files are deleted"
        );
        drop(store);
        let store = StateStore::open_with(&path, MANUAL).unwrap();
        assert_eq!(profiles_of(&store, &ids), before);
        // The same objects applied one by one in a store that checkpoints at
        // every step give the same profiles.
        let other = tempfile::tempdir().unwrap();
        let each = StateStore::open_with(other.path().join("state.redb"), MANUAL).unwrap();
        for i in 0..25 {
            apply_some(&each, i, i + 1);
            each.checkpoint_blocking().unwrap();
        }
        assert_eq!(profiles_of(&each, &ids), before);
    }

    #[test]
    fn replay_ignores_a_torn_tail_and_keeps_everything_acknowledged() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let (ids, before, delivery) = {
            let store = StateStore::open_with(&path, MANUAL).unwrap();
            store.begin_delivery(0, 10).unwrap();
            store
                .finish_delivery(0, 10, &["raw/x".into(), "raw/y".into()])
                .unwrap();
            store.checkpoint_blocking().unwrap();
            let ids = apply_some(&store, 0, 6);
            store
                .apply_object_blocking(
                    "raw/x",
                    &[delta("v1", 5, 0, Gender::M, 1)],
                    9,
                    Some("raw/x"),
                )
                .unwrap();
            store.begin_delivery(10, 20).unwrap();
            (
                ids.clone(),
                profiles_of(&store, &ids),
                store.delivery_state().unwrap(),
            )
        };
        assert_eq!(delivery.pending, ["raw/y"]);
        assert_eq!(delivery.intent, Some((10, 20)));
        // The record being written when the process died.
        let record = one_visitor_record("o-torn");
        let mut frame = Vec::new();
        journal::encode_frame(1_000, &record.encode(), &mut frame);
        let newest = journal_files(&path).pop().unwrap();
        let mut bytes = std::fs::read(&newest).unwrap();
        bytes.extend_from_slice(&frame[..frame.len() - 5]);
        std::fs::write(&newest, bytes).unwrap();

        let store = StateStore::open_with(&path, MANUAL).unwrap();
        assert_eq!(profiles_of(&store, &ids), before);
        assert_eq!(store.delivery_state().unwrap(), delivery);
        assert_eq!(
            store.apply_object_blocking("o-torn", &[], 1, None).unwrap(),
            ApplyOutcome::Applied,
            "the torn record never happened"
        );
        // Replayed into redb at open: the journal starts afresh.
        assert_eq!(journal_files(&path).len(), 1);
        assert_eq!(
            store.checkpointed_profile_count().unwrap(),
            ids.len() as u64
        );
    }

    /// A record applying object `object`: 100 M hits for `v1`.
    fn one_visitor_record(object: &str) -> RecordView<'_> {
        RecordView {
            now_ms: 1,
            applied: vec![object],
            visitors: vec![(
                "v1",
                Pending::from_delta(&delta("v1", 100, 0, Gender::M, 1), 1),
            )],
            keep_since_ms: i64::MIN,
            ..RecordView::default()
        }
    }

    #[test]
    fn replay_is_idempotent() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let jdir = journal_dir(&path);
        let saved = dir.path().join("saved");
        let (ids, before) = {
            let store = StateStore::open_with(&path, MANUAL).unwrap();
            let ids = apply_some(&store, 0, 8);
            (ids.clone(), profiles_of(&store, &ids))
        };
        // A crash right after the replay's checkpoint committed, before the
        // journal files were deleted: the same records are there again.
        std::fs::create_dir(&saved).unwrap();
        for file in journal_files(&path) {
            std::fs::copy(&file, saved.join(file.file_name().unwrap())).unwrap();
        }
        drop(StateStore::open_with(&path, MANUAL).unwrap());
        for file in std::fs::read_dir(&saved).unwrap() {
            let file = file.unwrap();
            std::fs::copy(file.path(), jdir.join(file.file_name())).unwrap();
        }
        let store = StateStore::open_with(&path, MANUAL).unwrap();
        assert_eq!(profiles_of(&store, &ids), before);

        // A record redb already holds, under a sequence it does not cover
        // (it cannot happen; the objects' markers still stop it).
        let next = store.writer().unwrap().next_seq;
        drop(store);
        let record = one_visitor_record("o3");
        JournalWriter::create(&jdir, next)
            .unwrap()
            .append(next, &record.encode())
            .unwrap();
        let store = StateStore::open_with(&path, MANUAL).unwrap();
        assert_eq!(profiles_of(&store, &ids), before);
    }

    #[test]
    fn lookups_during_checkpoints_count_every_delta_once() {
        let dir = tempfile::tempdir().unwrap();
        let store = StateStore::open_with(dir.path().join("state.redb"), MANUAL).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let reader = {
            let (store, stop) = (store.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut last = 0;
                let mut reads = 0;
                while !stop.load(Ordering::Relaxed) {
                    let m = store.get_profile_blocking("a").unwrap().map_or(0, |p| p.m);
                    // Every object adds 1: never counted twice, never lost.
                    assert!(m >= last, "went back from {last} to {m}");
                    last = m;
                    reads += 1;
                }
                (last, reads)
            })
        };
        for i in 0..300 {
            store
                .apply_object_blocking(&format!("o{i}"), &[delta("a", 1, 0, Gender::M, i)], i, None)
                .unwrap();
            let m = store.get_profile_blocking("a").unwrap().unwrap().m;
            assert_eq!(m, i as u64 + 1);
            if i % 7 == 0 {
                store.background_checkpoint().unwrap();
            }
        }
        stop.store(true, Ordering::Relaxed);
        let (last, reads) = reader.join().unwrap();
        assert!(last <= 300 && reads > 0);
        assert_eq!(store.get_profile_blocking("a").unwrap().unwrap().m, 300);
    }

    #[test]
    fn the_background_checkpoint_runs_when_the_overlay_is_full() {
        let dir = tempfile::tempdir().unwrap();
        let policy = CheckpointPolicy {
            max_visitors: 5,
            ..MANUAL
        };
        let store = StateStore::open_with(dir.path().join("state.redb"), policy).unwrap();
        // Five visitors: the bound, not twice it (that would checkpoint here).
        let ids = apply_some(&store, 0, 1);
        assert_eq!(ids.len(), 5);
        let deadline = Instant::now() + Duration::from_secs(20);
        while store.checkpointed_profile_count().unwrap() < ids.len() as u64 {
            assert!(Instant::now() < deadline, "no checkpoint");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn objects_applied_together_equal_objects_applied_one_by_one() {
        let objects: Vec<(String, Vec<VisitorDelta>)> = (0..6)
            .map(|i| {
                let deltas = vec![
                    delta(
                        "a",
                        i,
                        1,
                        if i % 2 == 0 { Gender::M } else { Gender::F },
                        10 + (i as i64 % 3),
                    ),
                    delta(&format!("v{i}"), 1, 0, Gender::M, 7),
                ];
                (format!("obj-{i}"), deltas)
            })
            .collect();
        let (_one, one_by_one) = store();
        for (id, deltas) in &objects {
            one_by_one
                .apply_object_blocking(id, deltas, 50, None)
                .unwrap();
        }
        let (_together, together) = store();
        // obj-0 twice in the batch: applied once.
        let mut batch: Vec<ObjectDeltas> = objects
            .iter()
            .map(|(id, deltas)| ObjectDeltas {
                object_id: id,
                deltas,
                ack_queued: None,
            })
            .collect();
        batch.push(batch[0]);
        let outcomes = together
            .apply_objects_blocking(&batch, SeenKeys::NONE, 50)
            .unwrap();
        assert_eq!(outcomes[..6], [ApplyOutcome::Applied; 6]);
        assert_eq!(outcomes[6], ApplyOutcome::AlreadyApplied);
        for clientid in ["a", "v0", "v3", "v5"] {
            assert_eq!(
                together.get_profile_blocking(clientid).unwrap(),
                one_by_one.get_profile_blocking(clientid).unwrap(),
                "{clientid}"
            );
        }
        assert_eq!(together.profile_count().unwrap(), 7);
    }

    #[test]
    fn the_same_object_applied_twice_counts_once() {
        let (_dir, store) = store();
        let deltas = [
            delta("a", 2, 1, Gender::M, 10),
            delta("b", 0, 1, Gender::F, 5),
        ];
        assert_eq!(
            store
                .apply_object_blocking("obj-1", &deltas, 100, None)
                .unwrap(),
            ApplyOutcome::Applied
        );
        assert_eq!(
            store
                .apply_object_blocking("obj-1", &deltas, 200, None)
                .unwrap(),
            ApplyOutcome::AlreadyApplied
        );
        store
            .apply_object_blocking("obj-2", &[delta("a", 0, 3, Gender::F, 9)], 300, None)
            .unwrap();
        let a = store.get_profile_blocking("a").unwrap().unwrap();
        assert_eq!(
            (a.m, a.f, a.last_gender, a.last_seen_ms, a.updated_at_ms),
            (2, 4, Gender::M, 10, 300)
        );
        assert_eq!(store.get_profile_blocking("nobody").unwrap(), None);
        assert_eq!(store.profile_count().unwrap(), 2);
    }

    #[test]
    fn windows_are_set_cleared_and_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        {
            let store = StateStore::open(&path).unwrap();
            store
                .apply_object_blocking("o", &[delta("a", 1, 0, Gender::M, 1)], 1, None)
                .unwrap();
            let w = WindowSums {
                m: 1,
                f: 0,
                date: Date::from_days(3),
            };
            store
                .set_windows_blocking(&[("a".into(), Some(w)), ("ghost".into(), Some(w))], 2)
                .unwrap();
            assert_eq!(store.stored_windows_blocking().unwrap(), [("a".into(), w)]);
            assert_eq!(
                store.get_profile_blocking("ghost").unwrap(),
                None,
                "daily never creates profiles"
            );
        }
        let store = StateStore::open(&path).unwrap();
        assert_eq!(
            store
                .get_profile_blocking("a")
                .unwrap()
                .unwrap()
                .window
                .unwrap()
                .m,
            1
        );
        store
            .set_windows_blocking(&[("a".into(), None)], 3)
            .unwrap();
        assert!(store.stored_windows_blocking().unwrap().is_empty());
        assert_eq!(
            store.get_profile_blocking("a").unwrap().unwrap().window,
            None
        );
    }

    #[test]
    fn delivery_bookkeeping_round_trip() {
        let (_dir, store) = store();
        assert_eq!(
            store.delivery_state().unwrap(),
            DeliveryState {
                delivered_offset: 0,
                intent: None,
                pending: vec![]
            }
        );
        store.begin_delivery(0, 100).unwrap();
        assert_eq!(store.delivery_state().unwrap().intent, Some((0, 100)));
        store
            .finish_delivery(0, 100, &["raw/b".into(), "raw/a".into()])
            .unwrap();
        store.begin_delivery(100, 150).unwrap();
        store.finish_delivery(100, 150, &["raw/c".into()]).unwrap();
        let state = store.delivery_state().unwrap();
        assert_eq!((state.delivered_offset, state.intent), (150, None));
        assert_eq!(state.pending, ["raw/a", "raw/b", "raw/c"]);
        store
            .apply_object_blocking("raw/a", &[], 1, Some("raw/a"))
            .unwrap();
        store.drop_pending("raw/b").unwrap();
        assert_eq!(store.delivery_state().unwrap().pending, ["raw/c"]);
        // Only an explicit acknowledgement leaves the queue.
        store.apply_object_blocking("raw/c", &[], 1, None).unwrap();
        assert_eq!(store.delivery_state().unwrap().pending, ["raw/c"]);
    }

    #[test]
    fn seen_keys_commit_with_the_counters_survive_reopen_and_expire() {
        let (dir, store) = store();
        let key = |n: u8| HitKey(u128::from(n));
        let object = |id| ObjectDeltas {
            object_id: id,
            deltas: &[],
            ack_queued: None,
        };
        let seen = |keys, keep_since_ms| SeenKeys {
            keys,
            keep_since_ms,
        };
        let (first, second) = ([key(1), key(2)], [key(3)]);
        store
            .apply_objects_blocking(&[object("o1")], seen(&first, 0), 100)
            .unwrap();
        store
            .apply_objects_blocking(&[object("o2")], seen(&second, 0), 200)
            .unwrap();
        assert_eq!(
            store.seen_since_blocking(0).unwrap(),
            [(100, vec![key(1), key(2)]), (200, vec![key(3)])]
        );
        assert_eq!(store.seen_since_blocking(150).unwrap().len(), 1);
        drop(store);
        let store = StateStore::open(dir.path().join("state.redb")).unwrap();
        // A later transaction deletes what is older than it keeps.
        store
            .apply_objects_blocking(&[object("o3")], seen(&[], 150), 300)
            .unwrap();
        assert_eq!(store.seen_since_blocking(0).unwrap(), [(200, vec![key(3)])]);
    }
}
