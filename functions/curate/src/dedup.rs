//! Curate with deduplication on AWS (SPEC 15): a hit whose `(clientid,
//! hitid)` was counted within the horizon is neither counted nor written
//! again, whatever brought it back (a `PutRecords` retry, a Kinesis or
//! Firehose redelivery, a producer resend, the same object twice).
//!
//! The state is in each visitor's profile item: `seen`, the fingerprints
//! counted within the horizon ([`SeenSet`]), and `ver`, its version. One
//! object is curated in two passes:
//!
//! 1. Stream the raw object once and collect, per visitor, the identities of
//!    its hits that carry a `hitid` (8 bytes a hit). The sorted list of all
//!    the object's visitors is cut into chunks of 99: the same chunks, and so
//!    the same marker keys, on every run, whatever is decided.
//! 2. Read the markers of the chunks (consistently): an applied chunk's
//!    marker lists the identities it found counted before, which is its
//!    decision. Read `seen, ver, last_seen` of the other chunks' visitors
//!    (consistent `BatchGetItem`) and decide: a hit counts iff its
//!    fingerprint is not live in its visitor's set and it is the first
//!    occurrence of its identity in the object.
//! 3. Stream the object again through the pipeline's `prepare_object` with
//!    that decision as its filter: Parquet (same keys, overwritten) and the
//!    deltas of the counted hits only.
//! 4. Apply each unapplied chunk in one transaction: its marker (with the
//!    identities counted before), plain `ADD`s for visitors without
//!    `hitid`s, and for the others `ADD`s plus the new set and `ver + 1`,
//!    conditional on the `ver` read. A failed condition means another curate
//!    changed a visitor (or applied this chunk) since the read: everything
//!    from step 2 is redone, a bounded number of times, then the object is
//!    returned to the queue as a retryable failure.

use gender_aws::AwsError;
use gender_aws::Backoff;
use gender_aws::dynamodb::{
    ChunkOutcome, DynamoProfiles, SeenItem, SeenWrite, VISITORS_PER_TRANSACTION,
};
use gender_core::dedup::HitFilter;
use gender_core::ports::{ApplyOutcome, ObjectStore};
use gender_core::seen_set::{self, Horizon, ObjectDecision, SeenSet};
use gender_core::{PortError, VisitorDelta};
use gender_pipeline::{CurateReport, CurateStream, PipelineError, prepare_object};
use std::collections::{HashMap, HashSet};

/// Decisions redone after version conflicts before the object goes back to
/// the queue (which retries it later).
pub const MAX_REDOS: u32 = 8;

/// Pass 1: every hit with a `hitid`, by visitor; answers "not counted", so
/// nothing is aggregated or written for those hits.
#[derive(Default)]
struct Recorder {
    by_visitor: HashMap<String, Vec<u64>>,
}

impl HitFilter for Recorder {
    fn first_sighting(&mut self, clientid: &str, hitid: &str) -> bool {
        let id = seen_set::identity(clientid, hitid);
        match self.by_visitor.get_mut(clientid) {
            Some(ids) => ids.push(id),
            None => {
                self.by_visitor.insert(clientid.to_owned(), vec![id]);
            }
        }
        false
    }
}

struct Scan {
    /// Every visitor with a valid line, sorted.
    visitors: Vec<String>,
    /// The identities of each visitor's hits with a `hitid`, in line order.
    hits: HashMap<String, Vec<u64>>,
}

async fn scan(raw: &dyn ObjectStore, raw_key: &str) -> Result<Scan, PipelineError> {
    let mut body = raw
        .get_stream(raw_key)
        .await?
        .ok_or_else(|| PipelineError::RawMissing(raw_key.to_owned()))?;
    let mut recorder = Recorder::default();
    let mut stream = CurateStream::with_filter(raw_key, &mut recorder);
    while let Some(chunk) = body.next_chunk().await? {
        stream.push(&chunk)?;
    }
    // The deltas are those of hits without a hitid (the rest were refused).
    let object = stream.finish()?;
    let mut visitors: Vec<String> = object
        .deltas
        .into_iter()
        .map(|d| d.clientid)
        .chain(recorder.by_visitor.keys().cloned())
        .collect();
    visitors.sort_unstable();
    visitors.dedup();
    Ok(Scan {
        visitors,
        hits: recorder.by_visitor,
    })
}

fn port(e: AwsError) -> PipelineError {
    PipelineError::Port(e.into())
}

/// One unapplied chunk's decision: the identities found counted before, and
/// per visitor with `hitid`s, what was read and its set.
struct ChunkPlan {
    index: usize,
    before: Vec<u64>,
    reads: HashMap<String, (SeenItem, SeenSet, HashSet<u64>)>,
}

/// Curates `raw_key` with deduplication over `horizon` (see the module
/// documentation), then deletes the raw object unless `keep_raw`.
#[allow(clippy::too_many_arguments)]
pub async fn curate_deduplicated(
    raw: &dyn ObjectStore,
    curated: &dyn ObjectStore,
    profiles: &DynamoProfiles,
    raw_key: &str,
    object_id: &str,
    keep_raw: bool,
    now_ms: i64,
    horizon: Horizon,
) -> Result<CurateReport, PipelineError> {
    let scan = scan(raw, raw_key).await?;
    let chunks: Vec<&[String]> = if scan.visitors.is_empty() {
        vec![&[]]
    } else {
        scan.visitors.chunks(VISITORS_PER_TRANSACTION).collect()
    };
    let backoff = Backoff::default();
    let mut applied_by_us = false;
    let mut redos = 0;
    loop {
        let applied = profiles
            .applied_chunks(object_id, chunks.len())
            .await
            .map_err(port)?;
        let mut before: HashSet<u64> = applied.values().flatten().copied().collect();
        let to_read: Vec<String> = chunks
            .iter()
            .enumerate()
            .filter(|(i, _)| !applied.contains_key(i))
            .flat_map(|(_, chunk)| chunk.iter())
            .filter(|v| scan.hits.contains_key(*v))
            .cloned()
            .collect();
        let mut stored = profiles.read_seen(&to_read).await.map_err(port)?;
        let mut plans = Vec::new();
        for (index, chunk) in chunks.iter().enumerate() {
            if applied.contains_key(&index) {
                continue;
            }
            let mut plan = ChunkPlan {
                index,
                before: Vec::new(),
                reads: HashMap::new(),
            };
            for visitor in chunk.iter() {
                let Some(ids) = scan.hits.get(visitor) else {
                    continue;
                };
                let read = stored.remove(visitor).unwrap_or_default();
                let set = SeenSet::decode(&read.seen).map_err(|e| {
                    PipelineError::Port(PortError::corrupt(
                        format!("profile {visitor}"),
                        e.to_string(),
                    ))
                })?;
                let visitor_before = seen_set::counted_before(&set.live(horizon, now_ms), ids);
                plan.before.extend_from_slice(&visitor_before);
                before.extend(&visitor_before);
                plan.reads.insert(
                    visitor.clone(),
                    (read, set, visitor_before.into_iter().collect()),
                );
            }
            plans.push(plan);
        }

        let mut decision = ObjectDecision::new(before);
        let prepared = prepare_object(raw, curated, raw_key, &mut decision).await?;
        let deltas: HashMap<&str, &VisitorDelta> = prepared
            .deltas
            .iter()
            .map(|d| (d.clientid.as_str(), d))
            .collect();

        let mut conflict = false;
        for plan in &mut plans {
            let plan = &mut *plan;
            let mut plain = Vec::new();
            let mut sets = Vec::new();
            for visitor in chunks[plan.index].iter() {
                let Some(delta) = deltas.get(visitor.as_str()) else {
                    continue; // nothing counted for this visitor
                };
                match plan.reads.get_mut(visitor) {
                    None => plain.push(*delta),
                    Some((_, set, visitor_before)) => {
                        let counted = seen_set::counted_now(&scan.hits[visitor], visitor_before);
                        set.record(horizon, now_ms, &counted);
                        sets.push((*delta, visitor, set.encode()));
                    }
                }
            }
            let writes: Vec<SeenWrite<'_>> = sets
                .into_iter()
                .map(|(delta, visitor, seen)| SeenWrite {
                    delta,
                    read: &plan.reads[visitor].0,
                    seen,
                })
                .collect();
            let outcome = profiles
                .apply_seen_chunk(object_id, plan.index, &plan.before, &plain, &writes, now_ms)
                .await
                .map_err(port)?;
            match outcome {
                ChunkOutcome::Applied => applied_by_us = true,
                // Applied or changed since the read: decide again.
                ChunkOutcome::AlreadyApplied | ChunkOutcome::Conflict => {
                    conflict = true;
                    break;
                }
            }
        }
        if !conflict {
            // Plain updates move `last_*` afterwards, as without dedup; the
            // versioned ones moved it in their transaction.
            let plain: Vec<&VisitorDelta> = prepared
                .deltas
                .iter()
                .filter(|d| !scan.hits.contains_key(&d.clientid))
                .collect();
            profiles.advance_lasts(&plain).await.map_err(port)?;
            if !keep_raw {
                raw.delete(raw_key).await?;
            }
            return Ok(CurateReport {
                raw_key: prepared.raw_key,
                hits: prepared.hits,
                duplicates: prepared.duplicates,
                invalid_lines: prepared.invalid_lines,
                visitors: prepared.deltas.len(),
                curated_keys: prepared.curated_keys,
                outcome: if applied_by_us {
                    ApplyOutcome::Applied
                } else {
                    ApplyOutcome::AlreadyApplied
                },
                redos,
            });
        }
        redos += 1;
        if redos > MAX_REDOS {
            return Err(PipelineError::Port(PortError::Throttled {
                what: format!(
                    "{raw_key}: visitors changed concurrently {redos} times; retry the object later"
                ),
                source: None,
            }));
        }
        tracing::info!(
            raw_key,
            redos,
            "a visitor changed since it was read; deciding again"
        );
        backoff.pause(redos).await;
    }
}
