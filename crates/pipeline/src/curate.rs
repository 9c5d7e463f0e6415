//! Curate (SPEC 6): one raw NDJSON object -> Parquet per event date + one
//! exactly-once counter update, then optionally delete the raw object.

use crate::{PipelineError, codec};
use gender_core::aggregate::parse_raw_object;
use gender_core::ports::{ApplyOutcome, CounterStore, ObjectStore};
use gender_core::{Date, Hit, aggregate_hits, layout};
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
pub async fn curate_object(
    raw: &dyn ObjectStore,
    curated: &dyn ObjectStore,
    counters: &dyn CounterStore,
    raw_key: &str,
    object_id: &str,
    keep_raw: bool,
    now_ms: i64,
) -> Result<CurateReport, PipelineError> {
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

    let deltas = aggregate_hits(&parsed.hits);
    let outcome = counters.apply_object(object_id, &deltas, now_ms).await?;
    if !keep_raw {
        raw.delete(raw_key).await?;
    }
    Ok(CurateReport {
        raw_key: raw_key.to_owned(),
        hits: parsed.hits.len(),
        invalid_lines: parsed.invalid_lines.len(),
        visitors: deltas.len(),
        curated_keys,
        outcome,
    })
}
