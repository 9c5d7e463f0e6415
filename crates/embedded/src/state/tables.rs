//! The state store's redb tables, the names of its bookkeeping values, and
//! the encoding of a profile: everything that fixes the file's format. The
//! erasure log's tables (SPEC 17) are here too; [`crate::erasures`] reads
//! and writes them.

use crate::EmbeddedError;
use crate::overlay::MetaKey;
use gender_core::{Date, Gender, Profile, WindowSums};
use redb::TableDefinition;

pub(crate) const PROFILES: TableDefinition<&str, &[u8]> = TableDefinition::new("profiles");
/// Visitors whose profile held window sums, in files written before the
/// window blocks (`state/windows.rs`); moved from at open, then deleted.
pub(crate) const WINDOWED: TableDefinition<&str, i32> = TableDefinition::new("windowed");
/// Curate idempotency markers: object id -> time applied (ms).
pub(crate) const APPLIED: TableDefinition<&str, i64> = TableDefinition::new("applied_objects");
/// Raw objects delivered but not yet curated: key -> log offset where they start.
pub(crate) const PENDING: TableDefinition<&str, u64> = TableDefinition::new("pending_curate");
pub(crate) const META: TableDefinition<&str, u64> = TableDefinition::new("meta");
/// Hit identities counted by each curate transaction (SPEC 15), as packed
/// [`HitKey`]s under (commit time ms, sequence number): what rebuilds the
/// in-memory dedup index at start-up. Rows older than twice the horizon are
/// deleted by later transactions.
pub(crate) const SEEN: TableDefinition<(i64, u64), &[u8]> = TableDefinition::new("seen_hits");
pub(crate) const SEEN_SEQ: &str = "seen_seq";
/// Erasure id -> encoded entry (see `crate::erasures`).
pub(crate) const ERASURES: TableDefinition<&str, &[u8]> = TableDefinition::new("erasures");
/// The deployment's secret salt for [`gender_core::erasure::clientid_hash`].
pub(crate) const SECRETS: TableDefinition<&str, &[u8]> = TableDefinition::new("secrets");
/// The last journal record merged into the tables above.
pub(crate) const JOURNAL_SEQ: &str = "journal_checkpoint_seq";

pub(crate) const DELIVERED: &str = "delivered_offset";
pub(crate) const INTENT_START: &str = "delivery_intent_start";
pub(crate) const INTENT_END: &str = "delivery_intent_end";

pub(crate) fn meta_name(key: MetaKey) -> &'static str {
    match key {
        MetaKey::Delivered => DELIVERED,
        MetaKey::IntentStart => INTENT_START,
        MetaKey::IntentEnd => INTENT_END,
    }
}

/// The last journal record the snapshot `txn` holds.
pub(crate) fn covered_seq(txn: &redb::ReadTransaction) -> Result<u64, EmbeddedError> {
    Ok(txn
        .open_table(META)?
        .get(JOURNAL_SEQ)?
        .map_or(0, |v| v.value()))
}

pub(crate) const ENCODED_LEN: usize = 1 + 8 + 8 + 1 + 8 + 1 + 8 + 8 + 4 + 8;
pub(crate) const FORMAT_VERSION: u8 = 1;

pub(crate) fn encode_profile(p: &Profile) -> [u8; ENCODED_LEN] {
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

pub(crate) fn decode_profile(clientid: &str, b: &[u8]) -> Result<Profile, EmbeddedError> {
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
