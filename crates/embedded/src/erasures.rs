//! The erasure log (SPEC 17) in the state store. A pending entry holds the
//! clientid, because the work needs it, and the log offset up to which the
//! visitor's hits are to be erased (everything accepted before the request);
//! completing the entry drops both in the same transaction, so a completed
//! entry keeps only the id, the times and the salted hash. A pending entry
//! also records whether the profile is already gone: that happens once, at
//! the request's log offset, and must not be redone after a restart (the
//! profile may by then hold hits counted afresh).

use crate::EmbeddedError;
use crate::state::StateStore;
use crate::state::tables::{ERASURES, PROFILES, SECRETS};
use crate::state::windows::{self, Change, WINDOW_BLOCKS};
use gender_core::{ErasureRecord, ErasureStatus};
use redb::ReadableTable;

const SALT: &str = "erasure_salt";

const VERSION: u8 = 1;
const HASH_LEN: usize = 64;
const FIXED_LEN: usize = 1 + 1 + 8 + 8 + 8 + HASH_LEN;

/// An erasure still to carry out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingErasure {
    pub id: String,
    pub clientid: String,
    /// The hits of the visitor before this log offset are erased.
    pub log_offset: u64,
    pub requested_ms: i64,
    /// The profile was deleted at `log_offset`; the files are what is left.
    pub profile_forgotten: bool,
}

struct Entry {
    record: ErasureRecord,
    log_offset: u64,
    clientid: String,
    profile_forgotten: bool,
}

fn encode(entry: &Entry) -> Vec<u8> {
    let r = &entry.record;
    let mut out = Vec::with_capacity(FIXED_LEN + entry.clientid.len());
    out.push(VERSION);
    out.push(match (r.status, entry.profile_forgotten) {
        (ErasureStatus::Pending, false) => 0,
        (ErasureStatus::Complete, _) => 1,
        (ErasureStatus::Pending, true) => 2,
    });
    out.extend_from_slice(&r.requested_ms.to_le_bytes());
    out.extend_from_slice(&r.completed_ms.unwrap_or(i64::MIN).to_le_bytes());
    out.extend_from_slice(&entry.log_offset.to_le_bytes());
    let mut hash = [b'0'; HASH_LEN];
    let given = r.clientid_hash.as_bytes();
    hash[..given.len().min(HASH_LEN)].copy_from_slice(&given[..given.len().min(HASH_LEN)]);
    out.extend_from_slice(&hash);
    out.extend_from_slice(entry.clientid.as_bytes());
    out
}

fn decode(id: &str, b: &[u8]) -> Result<Entry, EmbeddedError> {
    let corrupt = || EmbeddedError::CorruptState(format!("erasure {id}: bad encoding"));
    if b.len() < FIXED_LEN || b[0] != VERSION {
        return Err(corrupt());
    }
    let i64_at = |i: usize| i64::from_le_bytes(b[i..i + 8].try_into().expect("8 bytes"));
    let (status, profile_forgotten) = match b[1] {
        0 => (ErasureStatus::Pending, false),
        1 => (ErasureStatus::Complete, true),
        2 => (ErasureStatus::Pending, true),
        _ => return Err(corrupt()),
    };
    let completed = i64_at(10);
    let hash = std::str::from_utf8(&b[26..26 + HASH_LEN]).map_err(|_| corrupt())?;
    let clientid = std::str::from_utf8(&b[FIXED_LEN..]).map_err(|_| corrupt())?;
    Ok(Entry {
        record: ErasureRecord {
            id: id.to_owned(),
            status,
            requested_ms: i64_at(2),
            completed_ms: (completed != i64::MIN).then_some(completed),
            clientid_hash: hash.to_owned(),
        },
        log_offset: i64_at(18) as u64,
        clientid: clientid.to_owned(),
        profile_forgotten,
    })
}

impl StateStore {
    /// The salt, stored on first use as `candidate` (fresh random bytes
    /// from the caller); the same salt ever after.
    pub fn erasure_salt_blocking(&self, candidate: &[u8]) -> Result<Vec<u8>, EmbeddedError> {
        if let Some(salt) = self.begin_read()?.open_table(SECRETS)?.get(SALT)? {
            return Ok(salt.value().to_vec());
        }
        let txn = self.begin_write()?;
        let salt = {
            let mut secrets = txn.open_table(SECRETS)?;
            let existing = secrets.get(SALT)?.map(|v| v.value().to_vec());
            match existing {
                Some(salt) => salt,
                None => {
                    secrets.insert(SALT, candidate)?;
                    candidate.to_vec()
                }
            }
        };
        txn.commit()?;
        Ok(salt)
    }

    /// Records a pending erasure (durable when this returns).
    pub fn record_erasure_blocking(
        &self,
        record: &ErasureRecord,
        clientid: &str,
        log_offset: u64,
    ) -> Result<(), EmbeddedError> {
        let entry = Entry {
            record: record.clone(),
            log_offset,
            clientid: clientid.to_owned(),
            profile_forgotten: false,
        };
        let txn = self.begin_write()?;
        txn.open_table(ERASURES)?
            .insert(record.id.as_str(), encode(&entry).as_slice())?;
        txn.commit()?;
        Ok(())
    }

    pub fn erasure_blocking(&self, id: &str) -> Result<Option<ErasureRecord>, EmbeddedError> {
        let txn = self.begin_read()?;
        let table = txn.open_table(ERASURES)?;
        let value = table.get(id)?;
        value
            .map(|v| decode(id, v.value()).map(|e| e.record))
            .transpose()
    }

    /// Every pending erasure, oldest request first.
    pub fn pending_erasures_blocking(&self) -> Result<Vec<PendingErasure>, EmbeddedError> {
        let txn = self.begin_read()?;
        let mut pending = Vec::new();
        for row in txn.open_table(ERASURES)?.iter()? {
            let (id, value) = row?;
            let entry = decode(id.value(), value.value())?;
            if entry.record.status == ErasureStatus::Pending {
                pending.push(PendingErasure {
                    id: entry.record.id,
                    clientid: entry.clientid,
                    log_offset: entry.log_offset,
                    requested_ms: entry.record.requested_ms,
                    profile_forgotten: entry.profile_forgotten,
                });
            }
        }
        pending.sort_by_key(|p| (p.requested_ms, p.log_offset));
        Ok(pending)
    }

    /// Deletes the profiles (with their window sums) of the erasures' visitors
    /// and records that they are gone, in one transaction.
    /// The journaled changes are checkpointed first, and nothing is appended
    /// meanwhile: the profile goes with every count it had.
    pub fn forget_profiles_blocking(&self, ids: &[&str]) -> Result<u64, EmbeddedError> {
        self.exclusive(|s| s.forget_profiles_checkpointed(ids))
    }

    fn forget_profiles_checkpointed(&self, ids: &[&str]) -> Result<u64, EmbeddedError> {
        let txn = self.begin_write()?;
        let mut removed = 0;
        let mut forgotten: Vec<String> = Vec::new();
        {
            let mut table = txn.open_table(ERASURES)?;
            let mut profiles = txn.open_table(PROFILES)?;
            for id in ids {
                let stored = table.get(*id)?.map(|v| v.value().to_vec());
                let Some(bytes) = stored else { continue };
                let mut entry = decode(id, &bytes)?;
                if entry.profile_forgotten {
                    continue;
                }
                removed += u64::from(profiles.remove(entry.clientid.as_str())?.is_some());
                forgotten.push(entry.clientid.clone());
                entry.profile_forgotten = true;
                table.insert(*id, encode(&entry).as_slice())?;
            }
            forgotten.sort_unstable();
            forgotten.dedup();
            let changes: Vec<(&str, Change)> = forgotten
                .iter()
                .map(|id| (id.as_str(), Change::Forget))
                .collect();
            let mut blocks = txn.open_table(WINDOW_BLOCKS)?;
            windows::apply(&mut blocks, &changes, |_| Ok(false), 0)?;
        }
        txn.commit()?;
        Ok(removed)
    }

    /// Marks the erasures complete at `now_ms`, dropping their clientids.
    pub fn complete_erasures_blocking(
        &self,
        ids: &[&str],
        now_ms: i64,
    ) -> Result<(), EmbeddedError> {
        let txn = self.begin_write()?;
        {
            let mut table = txn.open_table(ERASURES)?;
            for id in ids {
                let stored = table.get(*id)?.map(|v| v.value().to_vec());
                let Some(bytes) = stored else { continue };
                let mut entry = decode(id, &bytes)?;
                if entry.record.status == ErasureStatus::Complete {
                    continue;
                }
                entry.record.status = ErasureStatus::Complete;
                entry.record.completed_ms = Some(now_ms);
                entry.clientid.clear();
                entry.log_offset = 0;
                table.insert(*id, encode(&entry).as_slice())?;
            }
        }
        txn.commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gender_core::erasure::{clientid_hash, new_erasure_id};

    #[test]
    fn an_erasure_is_recorded_completed_and_then_holds_no_clientid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state.redb");
        let store = StateStore::open(&path).unwrap();
        let salt = store.erasure_salt_blocking(b"first").unwrap();
        assert_eq!(store.erasure_salt_blocking(b"second").unwrap(), salt);
        let record = ErasureRecord {
            id: new_erasure_id([7; 16]),
            status: ErasureStatus::Pending,
            requested_ms: 1_000,
            completed_ms: None,
            clientid_hash: clientid_hash(&salt, "visitor-secret"),
        };
        store
            .record_erasure_blocking(&record, "visitor-secret", 4242)
            .unwrap();
        assert_eq!(
            store.pending_erasures_blocking().unwrap(),
            [PendingErasure {
                id: record.id.clone(),
                clientid: "visitor-secret".into(),
                log_offset: 4242,
                requested_ms: 1_000,
                profile_forgotten: false,
            }]
        );
        assert_eq!(store.forget_profiles_blocking(&[&record.id]).unwrap(), 0);
        assert!(store.pending_erasures_blocking().unwrap()[0].profile_forgotten);
        assert_eq!(
            store.erasure_blocking(&record.id).unwrap(),
            Some(record.clone())
        );

        store
            .complete_erasures_blocking(&[&record.id], 2_000)
            .unwrap();
        let done = store.erasure_blocking(&record.id).unwrap().unwrap();
        assert_eq!(done.status, ErasureStatus::Complete);
        assert_eq!(done.completed_ms, Some(2_000));
        assert_eq!(done.clientid_hash, record.clientid_hash);
        assert!(store.pending_erasures_blocking().unwrap().is_empty());
        drop(store);
        // Nothing of the clientid is left in the file once complete
        // (redb may keep freed pages until they are reused, so compact first).
        let mut db = redb::Database::create(&path).unwrap();
        db.compact().unwrap();
        drop(db);
        let bytes = std::fs::read(&path).unwrap();
        assert!(
            !bytes.windows(14).any(|w| w == b"visitor-secret"),
            "the clientid survived in the state file"
        );
        assert!(store_unknown_is_none(&path));
    }

    fn store_unknown_is_none(path: &std::path::Path) -> bool {
        let store = StateStore::open(path).unwrap();
        store.erasure_blocking(&"0".repeat(32)).unwrap().is_none()
    }
}
