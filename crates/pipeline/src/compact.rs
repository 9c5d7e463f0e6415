//! Compaction of curated hits (SPEC 14): several small Parquet files of one
//! date merged into one, row group by row group, so memory holds one row
//! group whatever the files' sizes. Rows keep their order (file by file).
//! Erasure (SPEC 17) copies a file the same way, leaving some visitors out.
//! Making the result visible atomically is the deployment's part.

use crate::PipelineError;
use crate::codec::{HitsFile, HitsFileWriter, ROW_GROUP_ROWS, batch_reader};
use arrow_array::{Array, StringArray, TimestampMillisecondArray};
use gender_core::Gender;
use std::fs::File;

/// Merges the curated hits files `inputs` (opened files with their keys)
/// into one new file for `out_key`.
pub fn merge_hits_files(
    inputs: impl IntoIterator<Item = (File, String)>,
    out_key: String,
) -> Result<HitsFile, PipelineError> {
    copy_hits_rows(inputs, out_key, |_| true).map(|(file, _)| file)
}

/// Copies the rows of `inputs` whose clientid `keep` accepts into one new
/// file for `out_key`, in order; also returns how many rows were left out.
pub fn copy_hits_rows(
    inputs: impl IntoIterator<Item = (File, String)>,
    out_key: String,
    mut keep: impl FnMut(&str) -> bool,
) -> Result<(HitsFile, u64), PipelineError> {
    let mut out = HitsFileWriter::create(out_key)?;
    let mut left_out = 0u64;
    for (file, key) in inputs {
        let reader = batch_reader(file, &key, ROW_GROUP_ROWS)?;
        for batch in reader {
            let batch = batch.map_err(|source| PipelineError::Arrow {
                key: key.clone(),
                source,
            })?;
            let bad = |detail: &str| PipelineError::BadObject {
                key: key.clone(),
                detail: detail.to_owned(),
            };
            let ids = batch
                .column_by_name("clientid")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| bad("clientid missing or not utf8"))?;
            let genders = batch
                .column_by_name("page_gender")
                .and_then(|c| c.as_any().downcast_ref::<StringArray>())
                .ok_or_else(|| bad("page_gender missing or not utf8"))?;
            let times = batch
                .column_by_name("event_time")
                .and_then(|c| c.as_any().downcast_ref::<TimestampMillisecondArray>())
                .ok_or_else(|| bad("event_time missing or not a millisecond timestamp"))?;
            // Files written before `hit_id` existed have no such column.
            let hit_ids = match batch.column_by_name("hit_id") {
                None => None,
                Some(c) => Some(
                    c.as_any()
                        .downcast_ref::<StringArray>()
                        .ok_or_else(|| bad("hit_id not utf8"))?,
                ),
            };
            if ids.null_count() + genders.null_count() + times.null_count() > 0 {
                return Err(bad("null values"));
            }
            for row in 0..batch.num_rows() {
                let clientid = ids.value(row);
                if !keep(clientid) {
                    left_out += 1;
                    continue;
                }
                let gender = Gender::parse(genders.value(row))
                    .ok_or_else(|| bad("page_gender is not M or F"))?;
                let hit_id = hit_ids.filter(|h| h.is_valid(row)).map(|h| h.value(row));
                out.push(clientid, gender, times.value(row), hit_id)?;
            }
        }
    }
    Ok((out.finish()?, left_out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{decode_hits, encode_hits};
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

    fn hit(id: &str, gender: Gender, ms: i64) -> Hit<'static> {
        Hit {
            clientid: Cow::Owned(id.to_owned()),
            gender,
            event_ms: ms,
            // Every other row without an id, as a mix of old and new data.
            hitid: (ms % 2 == 0).then(|| Cow::Owned(format!("h{ms}"))),
        }
    }

    #[test]
    fn merged_file_holds_every_row_of_every_input_in_order() {
        let a = vec![hit("a", Gender::M, 1), hit("b", Gender::F, 2)];
        let b: Vec<Hit> = (0..(ROW_GROUP_ROWS + 10))
            .map(|i| hit(&format!("v{}", i % 7), Gender::F, 10 + i as i64))
            .collect();
        let merged = merge_hits_files(
            [(file_of(&a), "a".to_owned()), (file_of(&b), "b".to_owned())],
            "curated/hits/dt=2026-11-24/c.parquet".to_owned(),
        )
        .unwrap();
        assert_eq!(merged.rows, a.len() + b.len());
        let bytes = std::fs::read(merged.temp.path()).unwrap();
        let back = decode_hits(bytes, "merged").unwrap();
        assert_eq!(back, [a, b].concat());
    }
}
