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
//!
//! Here: the handle, opening and replaying the journal, lookups, curate
//! transactions and the delivery bookkeeping. The checkpoint is in
//! `state/checkpoint.rs`, the tables and the profile encoding (the file's format)
//! in `state/tables.rs`, the erasure log's operations in `erasures.rs`.

mod checkpoint;
pub(crate) mod tables;
#[cfg(test)]
mod tests;
pub(crate) mod windows;

use crate::journal::{self, JournalWriter};
use crate::overlay::{Layer, MetaKey, Pending, RecordView, SeenBytes, Visitors, decode_record};
use crate::{EmbeddedError, blocking};
use async_trait::async_trait;
use gender_core::dedup::HitKey;
use gender_core::ports::{ApplyOutcome, CounterStore, HealthProbe, ProfileReader, WindowStore};
use gender_core::{PortError, Profile, VisitorDelta, WindowSums};
use redb::{Database, ReadableDatabase, ReadableTable};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, RwLock};
use std::time::Duration;
use tables::{
    APPLIED, ERASURES, META, PENDING, PROFILES, SECRETS, SEEN, SEEN_SEQ, WINDOWED, covered_seq,
    decode_profile, encode_profile, meta_name,
};
use windows::{Change, WINDOW_BLOCKS};

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
/// The list is shared: the store keeps it until its checkpoint instead of a
/// copy (a large object counts a million of them, 16 bytes each).
#[derive(Debug, Clone, Default)]
pub struct SeenKeys {
    pub keys: Arc<Vec<HitKey>>,
    /// Identities committed before this time are deleted.
    pub keep_since_ms: i64,
}

impl SeenKeys {
    /// No identities, nothing deleted (deduplication off).
    pub fn none() -> SeenKeys {
        SeenKeys {
            keys: Arc::default(),
            keep_since_ms: i64::MIN,
        }
    }
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
    /// redb's page cache at most ([`DEFAULT_CACHE_BYTES`]): the store's
    /// memory besides the overlay. Half of it at most holds a checkpoint's
    /// dirty pages before they are written out early, so a checkpoint of
    /// more visitors than fit takes longer, but memory stays within it.
    pub cache_bytes: usize,
}

/// The default of [`CheckpointPolicy::cache_bytes`]: 1 GiB (redb's own
/// default), the pages of about 5 M profiles; it only grows as pages are
/// read or written, so a smaller store uses no more than its file's size.
pub const DEFAULT_CACHE_BYTES: usize = 1 << 30;

impl Default for CheckpointPolicy {
    fn default() -> Self {
        CheckpointPolicy {
            max_visitors: 4_000_000,
            max_journal_bytes: 1024 * 1024 * 1024,
            interval: Duration::from_secs(60),
            cache_bytes: DEFAULT_CACHE_BYTES,
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

/// Opens redb with a page cache of `cache_bytes` ([`CheckpointPolicy::cache_bytes`]).
fn open_database(path: &Path, cache_bytes: usize) -> Result<Database, EmbeddedError> {
    let db = Database::builder()
        .set_cache_size(cache_bytes)
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
    txn.open_table(WINDOW_BLOCKS)?;
    migrate_windowed(&txn)?;
    txn.open_table(APPLIED)?;
    txn.open_table(PENDING)?;
    txn.open_table(META)?;
    txn.open_table(ERASURES)?;
    txn.open_table(SECRETS)?;
    txn.commit()?;
    Ok(db)
}

/// A file written before the window blocks kept each visitor's window sums
/// in its profile, listed in the table `windowed`: they move into blocks
/// (with the profile's time) and that table is deleted, once.
fn migrate_windowed(txn: &redb::WriteTransaction) -> Result<(), EmbeddedError> {
    use redb::TableHandle;
    if !txn.list_tables()?.any(|t| t.name() == WINDOWED.name()) {
        return Ok(());
    }
    let mut moved: Vec<(String, WindowSums, i64)> = Vec::new();
    {
        let windowed = txn.open_table(WINDOWED)?;
        let mut profiles = txn.open_table(PROFILES)?;
        for row in windowed.iter()? {
            let (id, _) = row?;
            let id = id.value();
            let stored = profiles.get(id)?.map(|v| v.value().to_vec());
            let Some(bytes) = stored else { continue };
            let mut profile = decode_profile(id, &bytes)?;
            if let Some(window) = profile.window.take() {
                moved.push((id.to_owned(), window, profile.updated_at_ms));
                profiles.insert(id, encode_profile(&profile).as_slice())?;
            }
        }
    }
    {
        let mut blocks = txn.open_table(WINDOW_BLOCKS)?;
        for (id, window, at) in &moved {
            let change = [(id.as_str(), Change::Window(Some(*window)))];
            windows::apply(&mut blocks, &change, |_| Ok(true), *at)?;
        }
    }
    txn.delete_table(WINDOWED)?;
    tracing::info!(
        visitors = moved.len(),
        "state store: window sums moved into window blocks"
    );
    Ok(())
}

/// Which clientids have a profile, asked in clientid order: one pass over
/// the profile table's keys instead of a lookup each.
struct ProfileCursor<'t> {
    table: &'t redb::Table<'t, &'static str, &'static [u8]>,
    range: Option<redb::Range<'t, &'static str, &'static [u8]>>,
    current: Option<String>,
}

impl<'t> ProfileCursor<'t> {
    fn new(table: &'t redb::Table<'t, &'static str, &'static [u8]>) -> ProfileCursor<'t> {
        ProfileCursor {
            table,
            range: None,
            current: None,
        }
    }

    fn step(&mut self) -> Result<(), EmbeddedError> {
        let Some(range) = self.range.as_mut() else {
            return Ok(());
        };
        match range.next() {
            Some(row) => {
                let (key, _) = row?;
                let current = self.current.get_or_insert_with(String::new);
                current.clear();
                current.push_str(key.value());
            }
            None => self.current = None,
        }
        Ok(())
    }

    /// Whether `id` has a profile; `id` is at least the one asked before.
    fn has(&mut self, id: &str) -> Result<bool, EmbeddedError> {
        if self.range.is_none() {
            self.range = Some(self.table.range::<&str>(id..)?);
            self.step()?;
        }
        while self.current.as_deref().is_some_and(|c| c < id) {
            self.step()?;
        }
        Ok(self.current.as_deref() == Some(id))
    }
}

/// The journal's directory beside the database file (`state.journal`).
fn journal_dir(path: &Path) -> PathBuf {
    path.with_extension("journal")
}

fn poisoned() -> EmbeddedError {
    EmbeddedError::CorruptState("state store lock poisoned".into())
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
        let db = open_database(path, policy.cache_bytes)?;
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
        let db = Arc::new(open_database(
            &self.shared.path,
            self.shared.policy.cache_bytes,
        )?);
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
            return with_window(&txn, clientid, profile);
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
        with_window(&txn, clientid, profile)
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
        Ok(self.apply_objects_blocking(&[object], SeenKeys::none(), now_ms)?[0])
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
        seen: SeenKeys,
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
        let mut applied_deltas = Vec::with_capacity(objects.len());
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
                applied_deltas.push(object.deltas);
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
        record.visitors = Visitors::Deltas {
            objects: applied_deltas,
            now_ms,
        };
        let has_seen = !seen.keys.is_empty();
        if has_seen {
            // Not copied: the journal writes them from where they are and the
            // layer keeps them.
            record.seen = Some((writer.next_seen_seq, SeenBytes::shared(seen.keys)));
        }
        self.append(&mut writer, record)?;
        if has_seen {
            writer.next_seen_seq += 1;
        }
        self.after_append(&mut writer);
        Ok(outcomes)
    }

    /// Journals `record` and merges it into the active layer.
    fn append(&self, writer: &mut Writer, record: RecordView<'_>) -> Result<(), EmbeddedError> {
        let head = record.encode_head();
        let seq = writer.next_seq;
        let bytes = writer
            .journal
            .append_streamed(seq, &[&head, record.seen_keys()], &|each| {
                record.encode_tail(each)
            })?;
        drop(head);
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
        self.append(&mut writer, record)
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

    /// Every visitor with window sums, with them, in clientid order: a full
    /// read, for tests and inspection (the daily job never reads them back).
    /// Window sums live in redb only (the overlay holds hit counts).
    pub fn stored_windows_blocking(&self) -> Result<Vec<(String, WindowSums)>, EmbeddedError> {
        let txn = self.begin_read()?;
        windows::all_windows(&txn.open_table(WINDOW_BLOCKS)?)
    }

    /// Sets or clears the window sums of visitors that have a profile (others
    /// are skipped: daily never creates a visitor), in one transaction. In
    /// clientid order (as the daily job sends them) each window block is
    /// read and written once; another order is sorted first, and of one
    /// clientid given twice the later write counts.
    pub fn set_windows_blocking(
        &self,
        updates: &[(String, Option<WindowSums>)],
        now_ms: i64,
    ) -> Result<(), EmbeddedError> {
        let mut changes: Vec<(&str, Change)> = updates
            .iter()
            .map(|(id, w)| (id.as_str(), Change::Window(*w)))
            .collect();
        if !changes.is_sorted_by(|a, b| a.0 < b.0) {
            // Stable: of equal clientids the later stays last, and is kept.
            changes.sort_by(|a, b| a.0.cmp(b.0));
            let mut kept: Vec<(&str, Change)> = Vec::with_capacity(changes.len());
            for change in changes {
                match kept.last_mut() {
                    Some(last) if last.0 == change.0 => *last = change,
                    _ => kept.push(change),
                }
            }
            changes = kept;
        }
        // Checkpointed first, so every visitor with a profile is in redb.
        self.with_checkpoint(|s| {
            let txn = s.begin_write()?;
            {
                let profiles = txn.open_table(PROFILES)?;
                let mut blocks = txn.open_table(WINDOW_BLOCKS)?;
                let mut cursor = ProfileCursor::new(&profiles);
                windows::apply(&mut blocks, &changes, |id| cursor.has(id), now_ms)?;
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

/// A profile with its window sums from the window blocks, and the later of
/// its own time and the daily job's last write of them.
fn with_window(
    txn: &redb::ReadTransaction,
    clientid: &str,
    profile: Option<Profile>,
) -> Result<Option<Profile>, EmbeddedError> {
    let Some(mut profile) = profile else {
        return Ok(None);
    };
    let blocks = txn.open_table(WINDOW_BLOCKS)?;
    let (window, at) = windows::lookup(&blocks, clientid)?.unwrap_or((None, i64::MIN));
    profile.window = window;
    profile.updated_at_ms = profile.updated_at_ms.max(at);
    Ok(Some(profile))
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
            layer.merge(record.seq, view, record.payload.len() as u64)?;
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
