//! Erasure of visitors from stored data (SPEC 17), shared by both
//! deployments: find whether a curated hits file holds a visitor's rows and
//! copy it without them, rewrite a daily rollup without them, and rewrite a
//! raw NDJSON object without their lines (locally; on AWS raw objects go by
//! retention). Making a rewritten file visible atomically is the
//! deployment's part, as for compaction.

use crate::PipelineError;
use crate::codec::{
    HitRows, HitsFile, daily_batches, daily_sources, encode_daily_batch, for_each_hit_file_row,
};
use crate::compact::copy_hits_rows;
use arrow_array::{Array, BooleanArray, RecordBatch, StringArray};
use bytes::Bytes;
use gender_core::{Gender, PortError};
use rustc_hash::FxHashSet;
use std::fs::File;
use std::path::Path;

/// The clientids to erase.
#[derive(Debug, Clone, Default)]
pub struct Visitors(FxHashSet<String>);

impl Visitors {
    pub fn new<I: IntoIterator<Item = S>, S: Into<String>>(clientids: I) -> Visitors {
        Visitors(clientids.into_iter().map(Into::into).collect())
    }

    pub fn contains(&self, clientid: &str) -> bool {
        self.0.contains(clientid)
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Counts the rows of `visitors`, looking each dictionary value up once.
struct RowsOf<'a> {
    visitors: &'a Visitors,
    matching: Vec<bool>,
    rows: u64,
}

impl HitRows for RowsOf<'_> {
    fn dictionary(&mut self, clientids: &StringArray) {
        self.matching.clear();
        self.matching.extend(
            clientids
                .iter()
                .map(|id| id.is_some_and(|id| self.visitors.contains(id))),
        );
    }

    fn row(&mut self, clientid: usize, _gender: Gender) {
        if self.matching.get(clientid).copied().unwrap_or(false) {
            self.rows += 1;
        }
    }
}

/// How many rows of the curated hits file belong to `visitors` (reads only
/// the clientid and gender columns).
pub fn rows_of_visitors(file: File, key: &str, visitors: &Visitors) -> Result<u64, PipelineError> {
    let mut sink = RowsOf {
        visitors,
        matching: Vec::new(),
        rows: 0,
    };
    for_each_hit_file_row(file, key, &mut sink)?;
    Ok(sink.rows)
}

/// A copy of the curated hits file `key` without the rows of `visitors`,
/// for `out_key`, and how many rows it left out.
pub fn hits_without_visitors(
    file: File,
    key: &str,
    out_key: String,
    visitors: &Visitors,
) -> Result<(HitsFile, u64), PipelineError> {
    copy_hits_rows([(file, key.to_owned())], out_key, |id| {
        !visitors.contains(id)
    })
}

/// The curated hits file at `path` (named `key`) copied without the rows of
/// `visitors`, with how many rows that left out; `None` when it holds none
/// of their rows. Most files a rerun finds hold none, so two columns are
/// scanned first and the file is copied only when they hold some.
pub fn hits_file_without_visitors(
    path: &Path,
    key: &str,
    visitors: &Visitors,
) -> Result<Option<(HitsFile, u64)>, PipelineError> {
    let open = || {
        File::open(path).map_err(|e| PortError::unavailable(format!("read local file {key}"), e))
    };
    if rows_of_visitors(open()?, key, visitors)? == 0 {
        return Ok(None);
    }
    hits_without_visitors(open()?, key, key.to_owned(), visitors).map(Some)
}

/// A raw NDJSON object without the lines of `visitors`, with how many lines
/// that left out; `None` when it has none of theirs. The transform writes
/// every line as `{"clientid":"<id>",...`, and a clientid holds no quote or
/// escape, so the prefix identifies the visitor exactly.
pub fn raw_without_visitors(body: &[u8], visitors: &Visitors) -> Option<(Vec<u8>, u64)> {
    const PREFIX: &[u8] = b"{\"clientid\":\"";
    let mut kept = Vec::with_capacity(body.len());
    let mut removed = 0u64;
    for line in body.split_inclusive(|&b| b == b'\n') {
        let of_visitor = line
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.iter().position(|&b| b == b'"').map(|end| &rest[..end]))
            .and_then(|id| std::str::from_utf8(id).ok())
            .is_some_and(|id| visitors.contains(id));
        if of_visitor {
            removed += 1;
        } else {
            kept.extend_from_slice(line);
        }
    }
    (removed > 0).then_some((kept, removed))
}

/// The daily rollup `key` without the rows of `visitors`; `None` when it
/// has no such rows (nothing to rewrite). With `keep_sources` the rewrite
/// keeps the record of the curated hits it was built from (the next daily
/// run recomputes it only if those changed); without, the next daily run
/// recomputes it whatever happened.
pub fn rollup_without_visitors(
    bytes: Bytes,
    key: &str,
    visitors: &Visitors,
    keep_sources: bool,
) -> Result<Option<Vec<u8>>, PipelineError> {
    let sources = if keep_sources {
        daily_sources(&bytes, key)?
    } else {
        None
    };
    let batches = daily_batches(bytes, key)?;
    let mut removed = 0usize;
    let mut kept: Vec<RecordBatch> = Vec::with_capacity(batches.len());
    for batch in &batches {
        let ids = batch
            .column(0)
            .as_any()
            .downcast_ref::<StringArray>()
            .expect("daily_batches checked the clientid column");
        let keep: BooleanArray = ids
            .iter()
            .map(|id| Some(!id.is_some_and(|id| visitors.contains(id))))
            .collect();
        removed += keep.false_count();
        kept.push(
            arrow_select::filter::filter_record_batch(batch, &keep).map_err(|source| {
                PipelineError::Arrow {
                    key: key.to_owned(),
                    source,
                }
            })?,
        );
    }
    if removed == 0 {
        return Ok(None);
    }
    let schema = crate::codec::daily_schema();
    let batch = arrow_select::concat::concat_batches(&schema, &kept).map_err(|source| {
        PipelineError::Arrow {
            key: key.to_owned(),
            source,
        }
    })?;
    encode_daily_batch(&batch, key, sources.as_deref()).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_daily, decode_hits, encode_daily_rows, encode_hits};
    use gender_core::Hit;
    use std::borrow::Cow;
    use std::io::Write;

    fn file_of(hits: &[Hit<'_>]) -> File {
        let refs: Vec<&Hit> = hits.iter().collect();
        let bytes = encode_hits(&refs, "in").unwrap();
        let mut file = tempfile::tempfile().unwrap();
        file.write_all(&bytes).unwrap();
        file
    }

    fn hit(id: &str, ms: i64) -> Hit<'static> {
        Hit {
            clientid: Cow::Owned(id.to_owned()),
            gender: if ms % 3 == 0 { Gender::F } else { Gender::M },
            event_ms: ms,
            hitid: (ms % 2 == 0).then(|| Cow::Owned(format!("h{ms}"))),
        }
    }

    #[test]
    fn a_file_is_copied_without_the_visitors_rows_and_nothing_else_changes() {
        // More than one row group, the erased visitor in each.
        let hits: Vec<Hit> = (0..(crate::codec::ROW_GROUP_ROWS as i64 + 500))
            .map(|i| hit(&format!("v{}", i % 11), i))
            .collect();
        let gone = Visitors::new(["v3", "v7", "never-seen"]);
        let expected: Vec<Hit> = hits
            .iter()
            .filter(|h| !gone.contains(&h.clientid))
            .cloned()
            .collect();
        let removed = (hits.len() - expected.len()) as u64;

        assert_eq!(
            rows_of_visitors(file_of(&hits), "in", &gone).unwrap(),
            removed
        );
        let (out, left_out) =
            hits_without_visitors(file_of(&hits), "in", "out".into(), &gone).unwrap();
        assert_eq!(left_out, removed);
        assert_eq!(out.rows, expected.len());
        let back = decode_hits(std::fs::read(out.temp.path()).unwrap(), "out").unwrap();
        assert_eq!(back, expected);

        let nobody = Visitors::new(["x"]);
        assert_eq!(rows_of_visitors(file_of(&hits), "in", &nobody).unwrap(), 0);

        let refs: Vec<&Hit> = hits.iter().collect();
        let stored = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(stored.path(), encode_hits(&refs, "in").unwrap()).unwrap();
        let (out, left_out) = hits_file_without_visitors(stored.path(), "in", &gone)
            .unwrap()
            .expect("the file holds their rows");
        assert_eq!((left_out, out.rows), (removed, expected.len()));
        assert!(
            hits_file_without_visitors(stored.path(), "in", &nobody)
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn a_raw_object_loses_exactly_the_visitors_lines() {
        let body = concat!(
            "{\"clientid\":\"a\",\"pageGender\":\"M\"}\n",
            "{\"clientid\":\"ab\",\"pageGender\":\"F\"}\n",
            "{\"clientid\":\"a\",\"pageGender\":\"F\"}\n",
            "{\"clientid\":\"b\",\"pageGender\":\"M\"}",
        );
        let (kept, removed) =
            raw_without_visitors(body.as_bytes(), &Visitors::new(["a", "b"])).unwrap();
        assert_eq!(removed, 3);
        assert_eq!(kept, b"{\"clientid\":\"ab\",\"pageGender\":\"F\"}\n");
        assert!(raw_without_visitors(body.as_bytes(), &Visitors::new(["c"])).is_none());
    }

    #[test]
    fn a_rollup_loses_the_visitors_rows_and_keeps_its_sources() {
        let rows = [("a", 1, 0), ("b", 2, 3), ("c", 0, 4)];
        let bytes = encode_daily_rows(rows.iter().copied(), "d", Some("v1 files=2")).unwrap();
        let out =
            rollup_without_visitors(Bytes::from(bytes.clone()), "d", &Visitors::new(["b"]), true)
                .unwrap()
                .expect("b had a row");
        let back = decode_daily(out.clone(), "d").unwrap();
        let ids: Vec<&str> = back.iter().map(|r| r.clientid.as_str()).collect();
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(
            daily_sources(&Bytes::from(out), "d").unwrap().as_deref(),
            Some("v1 files=2")
        );
        assert!(
            rollup_without_visitors(Bytes::from(bytes.clone()), "d", &Visitors::new(["z"]), true)
                .unwrap()
                .is_none()
        );
        let unsourced =
            rollup_without_visitors(Bytes::from(bytes), "d", &Visitors::new(["a"]), false)
                .unwrap()
                .unwrap();
        assert_eq!(daily_sources(&Bytes::from(unsourced), "d").unwrap(), None);
    }
}
