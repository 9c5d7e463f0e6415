//! The state store on redb: visitor profiles, curate idempotency markers, and
//! the local delivery bookkeeping (checkpoint, in-flight batch, curate queue).
//! Every change is one ACID write transaction, fsync'ed on commit.

use crate::{EmbeddedError, blocking};
use async_trait::async_trait;
use gender_core::dedup::HitKey;
use gender_core::ports::{ApplyOutcome, CounterStore, HealthProbe, ProfileReader, WindowStore};
use gender_core::{Date, Gender, PortError, Profile, VisitorDelta, WindowSums};
use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

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

const DELIVERED: &str = "delivered_offset";
const INTENT_START: &str = "delivery_intent_start";
const INTENT_END: &str = "delivery_intent_end";

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

/// Cheap to clone: every clone shares one database.
#[derive(Clone)]
pub struct StateStore {
    shared: Arc<Shared>,
}

struct Shared {
    path: PathBuf,
    /// `None` while a reopen after an I/O error has not succeeded yet.
    db: RwLock<Option<Arc<Database>>>,
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

fn open_database(path: &Path) -> Result<Database, EmbeddedError> {
    let db = Database::create(path).map_err(|e| match e {
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
        let db = open_database(path.as_ref())?;
        Ok(StateStore {
            shared: Arc::new(Shared {
                path: path.as_ref().to_owned(),
                db: RwLock::new(Some(Arc::new(db))),
            }),
        })
    }

    fn database(&self) -> Result<Arc<Database>, EmbeddedError> {
        let current = self
            .shared
            .db
            .read()
            .map_err(|_| EmbeddedError::CorruptState("state store lock poisoned".into()))?
            .clone();
        match current {
            Some(db) => Ok(db),
            None => self.reopen(None),
        }
    }

    /// Replaces `failed` (or a closed database) with a freshly opened one.
    fn reopen(&self, failed: Option<Arc<Database>>) -> Result<Arc<Database>, EmbeddedError> {
        let mut slot = self
            .shared
            .db
            .write()
            .map_err(|_| EmbeddedError::CorruptState("state store lock poisoned".into()))?;
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

    pub fn get_profile_blocking(&self, clientid: &str) -> Result<Option<Profile>, EmbeddedError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(PROFILES)?;
        let value = table.get(clientid)?;
        value
            .map(|v| decode_profile(clientid, v.value()))
            .transpose()
    }

    pub fn profile_count(&self) -> Result<u64, EmbeddedError> {
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

    /// Applies several objects in one transaction, in order, each exactly
    /// once (an object whose marker exists changes nothing), and acknowledges
    /// their queue entries. Each visitor's profile is read and written once
    /// however many objects touch it: the cost of a commit (its fsync and
    /// the B-tree pages it rewrites) is shared by all of them. The hit
    /// identities the objects counted are stored in the same transaction.
    pub fn apply_objects_blocking(
        &self,
        objects: &[ObjectDeltas<'_>],
        seen: SeenKeys<'_>,
        now_ms: i64,
    ) -> Result<Vec<ApplyOutcome>, EmbeddedError> {
        let txn = self.begin_write()?;
        let mut outcomes = Vec::with_capacity(objects.len());
        {
            let mut rows = txn.open_table(SEEN)?;
            let expired: Vec<(i64, u64)> = rows
                .range(..(seen.keep_since_ms, 0))?
                .map(|row| row.map(|(key, _)| key.value()))
                .collect::<Result<_, _>>()?;
            for key in expired {
                rows.remove(key)?;
            }
            if !seen.keys.is_empty() {
                let mut meta = txn.open_table(META)?;
                let seq = meta.get(SEEN_SEQ)?.map_or(0, |v| v.value()) + 1;
                meta.insert(SEEN_SEQ, seq)?;
                rows.insert((now_ms, seq), HitKey::pack(seen.keys).as_slice())?;
            }
        }
        {
            let mut applied = txn.open_table(APPLIED)?;
            let mut profiles = txn.open_table(PROFILES)?;
            let mut pending = txn.open_table(PENDING)?;
            // Sorted, so the writes below walk the B-tree in key order.
            let mut touched: BTreeMap<&str, Profile> = BTreeMap::new();
            for object in objects {
                if applied.get(object.object_id)?.is_some() {
                    outcomes.push(ApplyOutcome::AlreadyApplied);
                } else {
                    for delta in object.deltas {
                        let clientid = delta.clientid.as_str();
                        if let Some(profile) = touched.get_mut(clientid) {
                            profile.apply(delta, now_ms);
                            continue;
                        }
                        let stored = profiles.get(clientid)?.map(|v| v.value().to_vec());
                        let profile = match stored {
                            Some(bytes) => {
                                let mut p = decode_profile(clientid, &bytes)?;
                                p.apply(delta, now_ms);
                                p
                            }
                            None => Profile::from_delta(delta, now_ms),
                        };
                        touched.insert(clientid, profile);
                    }
                    applied.insert(object.object_id, now_ms)?;
                    outcomes.push(ApplyOutcome::Applied);
                }
                if let Some(key) = object.ack_queued {
                    pending.remove(key)?;
                }
            }
            for (clientid, profile) in &touched {
                profiles.insert(*clientid, encode_profile(profile).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(outcomes)
    }

    /// The hit identities committed at or after `since_ms`, oldest first,
    /// each batch with its commit time.
    pub fn seen_since_blocking(
        &self,
        since_ms: i64,
    ) -> Result<Vec<(i64, Vec<HitKey>)>, EmbeddedError> {
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
        let txn = self.begin_write()?;
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
    }

    pub fn delivery_state(&self) -> Result<DeliveryState, EmbeddedError> {
        let txn = self.begin_read()?;
        let meta = txn.open_table(META)?;
        let get =
            |k: &str| -> Result<Option<u64>, EmbeddedError> { Ok(meta.get(k)?.map(|v| v.value())) };
        let intent = match (get(INTENT_START)?, get(INTENT_END)?) {
            (Some(start), Some(end)) => Some((start, end)),
            _ => None,
        };
        let mut pending = Vec::new();
        for entry in txn.open_table(PENDING)?.iter()? {
            let (key, offset) = entry?;
            pending.push((offset.value(), key.value().to_owned()));
        }
        pending.sort();
        Ok(DeliveryState {
            delivered_offset: get(DELIVERED)?.unwrap_or(0),
            intent,
            pending: pending.into_iter().map(|(_, key)| key).collect(),
        })
    }

    /// Records the batch `[start, end)` before its objects are written, so a
    /// crash re-delivers exactly that batch under the same object names.
    pub fn begin_delivery(&self, start: u64, end: u64) -> Result<(), EmbeddedError> {
        let txn = self.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(INTENT_START, start)?;
            meta.insert(INTENT_END, end)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Moves the checkpoint to `end` and queues the batch's objects for curate.
    pub fn finish_delivery(
        &self,
        start: u64,
        end: u64,
        keys: &[String],
    ) -> Result<(), EmbeddedError> {
        let txn = self.begin_write()?;
        {
            let mut meta = txn.open_table(META)?;
            meta.insert(DELIVERED, end)?;
            meta.remove(INTENT_START)?;
            meta.remove(INTENT_END)?;
            let mut pending = txn.open_table(PENDING)?;
            for key in keys {
                pending.insert(key.as_str(), start)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    /// Drops a queued object that can never be curated (its raw object is gone).
    pub fn drop_pending(&self, key: &str) -> Result<(), EmbeddedError> {
        let txn = self.begin_write()?;
        txn.open_table(PENDING)?.remove(key)?;
        txn.commit()?;
        Ok(())
    }
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
    async fn stored_windows(&self) -> Result<Vec<(String, WindowSums)>, PortError> {
        let this = self.clone();
        blocking(move || this.stored_windows_blocking()).await
    }

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
