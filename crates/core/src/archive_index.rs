//! Which hits of a raw object go into the curated archive on AWS (SPEC 6,
//! 15): each `(clientid, hitid)` once within the horizon, as the stream
//! consumer counts it, so the curated Parquet holds one row per counted hit.
//!
//! Curate keeps one index object for this (in the curated bucket): per raw
//! object curated, the identities it wrote and the object's time (when S3
//! created it). Deciding for a new object: a hit is written when its
//! identity is in no other object's group within the horizon of this
//! object's time, and it is the first of its identity in the object. The
//! object's own group, once committed, *is* its decision: curating it again
//! (a redelivered event, a retry after a crash, a redrive) writes exactly
//! the same rows. Groups further than the horizon (plus a margin for objects
//! curated late) behind the newest one are dropped when an object commits.
//!
//! Encoding (little-endian):
//!
//! ```text
//! ["GSAI"][format = 1 (u8)] then groups:
//!   [owner (u64)][minute since the epoch (u32)][entries (u32)][entries x identity (u64), sorted]
//! ```

use crate::dedup::HitFilter;
use crate::seen_set::{Horizon, identity};
use rustc_hash::FxHashSet;

const MAGIC: &[u8; 4] = b"GSAI";
const FORMAT: u8 = 1;
const GROUP_HEADER: usize = 16;
/// Objects curated this late after the newest one still find the groups
/// they need (a Firehose buffer is at most 15 minutes; redeliveries and
/// retries come within minutes).
const LATE_MARGIN_MINUTES: u32 = 30;

/// The owner of a group: a digest of the raw object's identity (bucket,
/// key and ETag).
pub fn owner_of(object_id: &str) -> u64 {
    xxhash_rust::xxh3::xxh3_64(object_id.as_bytes())
}

fn minute_of(ms: i64) -> u32 {
    u32::try_from(ms.max(0) / 60_000).unwrap_or(u32::MAX)
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Group {
    owner: u64,
    minute: u32,
    identities: Vec<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("archive index: {0}")]
pub struct ArchiveIndexError(&'static str);

/// The index: one group per curated raw object within the horizon.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ArchiveIndex {
    groups: Vec<Group>,
}

impl ArchiveIndex {
    pub fn decode(bytes: &[u8]) -> Result<ArchiveIndex, ArchiveIndexError> {
        let rest = bytes
            .strip_prefix(MAGIC.as_slice())
            .ok_or(ArchiveIndexError("not an archive index"))?;
        let (&format, mut rest) = rest.split_first().ok_or(ArchiveIndexError("no format"))?;
        if format != FORMAT {
            return Err(ArchiveIndexError("unknown format"));
        }
        let mut groups = Vec::new();
        while !rest.is_empty() {
            if rest.len() < GROUP_HEADER {
                return Err(ArchiveIndexError("torn group header"));
            }
            let owner = u64::from_le_bytes(rest[0..8].try_into().expect("8 bytes"));
            let minute = u32::from_le_bytes(rest[8..12].try_into().expect("4 bytes"));
            let count = u32::from_le_bytes(rest[12..16].try_into().expect("4 bytes")) as usize;
            rest = &rest[GROUP_HEADER..];
            let len = count
                .checked_mul(8)
                .filter(|&len| len <= rest.len())
                .ok_or(ArchiveIndexError("torn group"))?;
            let identities = rest[..len]
                .chunks_exact(8)
                .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
                .collect();
            rest = &rest[len..];
            groups.push(Group {
                owner,
                minute,
                identities,
            });
        }
        Ok(ArchiveIndex { groups })
    }

    pub fn encode(&self) -> Vec<u8> {
        let len = 5 + self
            .groups
            .iter()
            .map(|g| GROUP_HEADER + 8 * g.identities.len())
            .sum::<usize>();
        let mut out = Vec::with_capacity(len);
        out.extend_from_slice(MAGIC);
        out.push(FORMAT);
        for group in &self.groups {
            out.extend_from_slice(&group.owner.to_le_bytes());
            out.extend_from_slice(&group.minute.to_le_bytes());
            out.extend_from_slice(&(group.identities.len() as u32).to_le_bytes());
            for id in &group.identities {
                out.extend_from_slice(&id.to_le_bytes());
            }
        }
        out
    }

    /// Identities held, over all groups.
    pub fn len(&self) -> usize {
        self.groups.iter().map(|g| g.identities.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.groups.is_empty()
    }

    /// Whether the object of `owner` committed its decision already.
    pub fn has(&self, owner: u64) -> bool {
        self.groups.iter().any(|g| g.owner == owner)
    }

    /// The decision for the object of `owner`, created at `created_ms`.
    pub fn decision(&self, owner: u64, created_ms: i64, horizon: Horizon) -> ArchiveDecision {
        if let Some(own) = self.groups.iter().find(|g| g.owner == owner) {
            return ArchiveDecision {
                rule: Rule::Replay(own.identities.iter().copied().collect()),
                in_object: FxHashSet::default(),
                written: Vec::new(),
            };
        }
        let minute = minute_of(created_ms);
        let others = self
            .groups
            .iter()
            .filter(|g| g.minute.abs_diff(minute) <= horizon.minutes())
            .flat_map(|g| g.identities.iter().copied())
            .collect();
        ArchiveDecision {
            rule: Rule::Fresh(others),
            in_object: FxHashSet::default(),
            written: Vec::new(),
        }
    }

    /// Records `decision` as the object's group (unless it was a replay),
    /// then drops the groups too old to matter.
    pub fn commit(
        &mut self,
        owner: u64,
        created_ms: i64,
        decision: &ArchiveDecision,
        horizon: Horizon,
    ) {
        if !self.has(owner) {
            let mut identities = decision.written.clone();
            identities.sort_unstable();
            self.groups.push(Group {
                owner,
                minute: minute_of(created_ms),
                identities,
            });
        }
        let newest = self.groups.iter().map(|g| g.minute).max().unwrap_or(0);
        let oldest_kept = newest.saturating_sub(horizon.minutes() + LATE_MARGIN_MINUTES);
        self.groups.retain(|g| g.minute >= oldest_kept);
    }
}

#[derive(Debug, Clone)]
enum Rule {
    /// Identities other objects wrote within the horizon.
    Fresh(FxHashSet<u64>),
    /// This object's own recorded decision: exactly these identities.
    Replay(FxHashSet<u64>),
}

/// A [`HitFilter`] for curating one object: which of its hits are written.
#[derive(Debug, Clone)]
pub struct ArchiveDecision {
    rule: Rule,
    in_object: FxHashSet<u64>,
    written: Vec<u64>,
}

impl ArchiveDecision {
    /// The identities written (fresh decision) or replayed, in line order.
    pub fn written(&self) -> &[u64] {
        &self.written
    }

    pub fn is_replay(&self) -> bool {
        matches!(self.rule, Rule::Replay(_))
    }
}

impl HitFilter for ArchiveDecision {
    fn first_sighting(&mut self, clientid: &str, hitid: &str) -> bool {
        let id = identity(clientid, hitid);
        let allowed = match &self.rule {
            Rule::Fresh(others) => !others.contains(&id),
            Rule::Replay(own) => own.contains(&id),
        };
        let first = allowed && self.in_object.insert(id);
        if first {
            self.written.push(id);
        }
        first
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_795_514_400_000;
    const MIN: i64 = 60_000;

    fn hour() -> Horizon {
        Horizon::from_seconds(3600).unwrap()
    }

    /// Curates `hits` of object `name` against `index` and commits it.
    fn curate(index: &mut ArchiveIndex, name: &str, at: i64, hits: &[(&str, &str)]) -> Vec<String> {
        let owner = owner_of(name);
        let mut decision = index.decision(owner, at, hour());
        let kept = hits
            .iter()
            .filter(|(c, h)| decision.first_sighting(c, h))
            .map(|(c, h)| format!("{c}/{h}"))
            .collect();
        index.commit(owner, at, &decision, hour());
        kept
    }

    #[test]
    fn an_identity_is_written_once_across_objects_and_replays_decide_the_same() {
        let mut index = ArchiveIndex::default();
        let first = curate(&mut index, "o1", T0, &[("a", "1"), ("a", "1"), ("b", "1")]);
        assert_eq!(first, ["a/1", "b/1"]);
        // A PutRecords retry landed in the next object, with a new hit.
        let second = curate(&mut index, "o2", T0 + MIN, &[("b", "1"), ("b", "2")]);
        assert_eq!(second, ["b/2"]);
        // o1 again (a redelivered event): the same rows, although o2's
        // identities are now in the index too.
        let again = curate(&mut index, "o1", T0, &[("a", "1"), ("a", "1"), ("b", "1")]);
        assert_eq!(again, first);
        assert_eq!(index.len(), 3);
        let decoded = ArchiveIndex::decode(&index.encode()).unwrap();
        assert_eq!(decoded, index);
    }

    #[test]
    fn objects_out_of_order_keep_one_copy_and_the_horizon_bounds_it() {
        let mut index = ArchiveIndex::default();
        // The later object is curated first: the earlier one drops its copy.
        assert_eq!(
            curate(&mut index, "late", T0 + 5 * MIN, &[("a", "1")]),
            ["a/1"]
        );
        assert_eq!(
            curate(&mut index, "early", T0, &[("a", "1")]),
            Vec::<String>::new()
        );
        // Two hours later the identity is a new hit.
        assert_eq!(
            curate(&mut index, "next", T0 + 125 * MIN, &[("a", "1")]),
            ["a/1"]
        );
        // And the old groups are gone.
        assert_eq!(index.groups.len(), 1);
    }

    #[test]
    fn damaged_indexes_are_refused() {
        assert!(ArchiveIndex::decode(b"").is_err());
        assert!(ArchiveIndex::decode(b"GSAI\x02").is_err());
        let mut bytes = ArchiveIndex::default().encode();
        bytes.extend_from_slice(&[0; 20]); // a header claiming 0 entries, then 4 stray bytes
        assert!(ArchiveIndex::decode(&bytes).is_err());
    }
}
