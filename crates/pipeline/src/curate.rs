//! Curate (SPEC 6): one raw NDJSON object -> Parquet per event date + one
//! exactly-once counter update, then optionally delete the raw object.

use crate::{PipelineError, codec};
use gender_core::aggregate::parse_raw_object;
use gender_core::ports::{ApplyOutcome, CounterStore, ObjectStore};
use gender_core::{Date, Hit, VisitorDelta, aggregate_hits, layout};
use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurateReport {
    pub raw_key: String,
    pub hits: usize,
    pub invalid_lines: usize,
    pub visitors: usize,
    pub curated_keys: Vec<String>,
    pub outcome: ApplyOutcome,
}

/// Raw objects may be gzip'ed (SPEC 5, a Firehose option): recognised by
/// the gzip magic bytes rather than the key, which Firehose does not change.
fn gunzip_if_compressed(bytes: Vec<u8>, key: &str) -> Result<Vec<u8>, PipelineError> {
    if !bytes.starts_with(&[0x1f, 0x8b]) {
        return Ok(bytes);
    }
    let mut plain = Vec::with_capacity(bytes.len() * 4);
    std::io::Read::read_to_end(
        &mut flate2::read::MultiGzDecoder::new(bytes.as_slice()),
        &mut plain,
    )
    .map_err(|e| PipelineError::BadObject {
        key: key.to_owned(),
        detail: format!("gzip: {e}"),
    })?;
    Ok(plain)
}

/// Curates one raw object. `object_id` names it for the idempotency marker
/// (the key locally; bucket, key and ETag on AWS).
/// One raw object made durable in curated/: its Parquet files are written,
/// its counter deltas not yet applied. Applying them (with the object's
/// idempotency marker) is the caller's next step, alone ([`curate_object`])
/// or together with other objects in one transaction (the local runtime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedObject {
    pub raw_key: String,
    pub hits: usize,
    pub invalid_lines: usize,
    pub deltas: Vec<VisitorDelta>,
    pub curated_keys: Vec<String>,
}

/// Reads `raw_key`, writes its hits as Parquet (one object per event date,
/// deterministic names, so a retry overwrites) and aggregates its deltas.
pub async fn prepare_object(
    raw: &dyn ObjectStore,
    curated: &dyn ObjectStore,
    raw_key: &str,
) -> Result<PreparedObject, PipelineError> {
    let stored = raw
        .get(raw_key)
        .await?
        .ok_or_else(|| PipelineError::RawMissing(raw_key.to_owned()))?;
    let bytes = gunzip_if_compressed(stored, raw_key)?;
    let parsed = parse_raw_object(&bytes);
    if !parsed.invalid_lines.is_empty() {
        let (line, error) = &parsed.invalid_lines[0];
        tracing::warn!(raw_key, invalid = parsed.invalid_lines.len(), first_line = line, %error, "raw object has invalid lines");
    }

    // Firehose partitions by dt, so one date is the norm; a mixed object is
    // still filed correctly, one Parquet per date.
    let mut by_date: BTreeMap<Date, Vec<&Hit>> = BTreeMap::new();
    for hit in &parsed.hits {
        by_date
            .entry(Date::of_millis(hit.event_ms))
            .or_default()
            .push(hit);
    }
    let mut curated_keys = Vec::with_capacity(by_date.len());
    for (dt, hits) in &by_date {
        let key = layout::curated_hits_key(raw_key, *dt);
        let body = codec::encode_hits(hits, &key)?;
        curated.put(&key, body).await?;
        curated_keys.push(key);
    }
    Ok(PreparedObject {
        raw_key: raw_key.to_owned(),
        hits: parsed.hits.len(),
        invalid_lines: parsed.invalid_lines.len(),
        deltas: aggregate_hits(&parsed.hits),
        curated_keys,
    })
}

/// Curate of SPEC 6 for one object: [`prepare_object`], then its deltas and
/// marker `object_id` in one exactly-once step, then (unless `keep_raw`) the
/// raw object deleted.
pub async fn curate_object(
    raw: &dyn ObjectStore,
    curated: &dyn ObjectStore,
    counters: &dyn CounterStore,
    raw_key: &str,
    object_id: &str,
    keep_raw: bool,
    now_ms: i64,
) -> Result<CurateReport, PipelineError> {
    let prepared = prepare_object(raw, curated, raw_key).await?;
    let outcome = counters
        .apply_object(object_id, &prepared.deltas, now_ms)
        .await?;
    if !keep_raw {
        raw.delete(raw_key).await?;
    }
    Ok(CurateReport {
        raw_key: prepared.raw_key,
        hits: prepared.hits,
        invalid_lines: prepared.invalid_lines,
        visitors: prepared.deltas.len(),
        curated_keys: prepared.curated_keys,
        outcome,
    })
}
