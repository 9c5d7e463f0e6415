//! Compaction in the data directory (SPEC 14): a date's small files are
//! merged into files of about the target size, and the date's new set of
//! files replaces the old one in one atomic step
//! ([`gender_embedded::partitions::replace_partition`]: readers see the old
//! files or the new ones, whatever moment the process is killed at).
//!
//! Two kinds of partition are compacted the same way:
//! - curated hits (`curated/hits/dt=<event date>`), Parquet merged row
//!   group by row group. Only files whose raw objects are fully curated
//!   are merged (compaction runs in the delivery thread after a cycle that
//!   left no object pending), so a retried curate can never write a file
//!   that a merge already holds;
//! - raw objects (`raw/dt=<arrival date>`), NDJSON concatenated in log
//!   order, so raw/ gains files with volume, not with time (delivery writes
//!   one object a cycle, thousands a day; issue 26). An object still queued
//!   for curate is never merged: curate reads it by its name.

use crate::error::CycleError;
use gender_core::Date;
use gender_core::layout;
use gender_embedded::EmbeddedError;
use gender_embedded::partitions::{
    PartitionFile, date_partitions, log_range_files, place_file, replace_partition,
};
use gender_pipeline::compact::merge_hits_files;
use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::Path;

/// When a date is compacted and how large the results are.
#[derive(Debug, Clone, Copy)]
pub struct CompactionPolicy {
    /// Files smaller than this take part; merged files are about this size.
    pub target_bytes: u64,
    /// A date is compacted once it has at least this many small files.
    pub min_files: usize,
}

impl Default for CompactionPolicy {
    fn default() -> Self {
        CompactionPolicy {
            target_bytes: 64 * 1024 * 1024,
            min_files: 8,
        }
    }
}

/// What one date's compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compacted {
    pub files_before: usize,
    pub files_after: usize,
}

/// Every date that has a curated hits directory (looked at after a restart).
pub fn dates_with_curated_hits(data_dir: &Path) -> Result<Vec<Date>, CycleError> {
    dates_under(data_dir, layout::CURATED_HITS_PREFIX)
}

/// Every arrival date that has a raw directory (looked at after a restart).
pub fn dates_with_raw(data_dir: &Path) -> Result<Vec<Date>, CycleError> {
    dates_under(data_dir, layout::RAW_PREFIX)
}

fn dates_under(data_dir: &Path, prefix: &str) -> Result<Vec<Date>, CycleError> {
    Ok(date_partitions(&data_dir.join(prefix))?
        .into_iter()
        .map(|(date, _)| date)
        .collect())
}

/// Groups of consecutive small files (by log range) to merge, each of about
/// `target_bytes` at most and of two files at least.
fn plan(files: &[PartitionFile], policy: CompactionPolicy) -> Vec<Vec<usize>> {
    let small: Vec<usize> = (0..files.len())
        .filter(|&i| files[i].size < policy.target_bytes)
        .collect();
    if small.len() < policy.min_files.max(2) {
        return Vec::new();
    }
    let mut groups = Vec::new();
    let mut group: Vec<usize> = Vec::new();
    let mut bytes = 0;
    for i in small {
        if !group.is_empty() && bytes + files[i].size > policy.target_bytes {
            groups.push(std::mem::take(&mut group));
            bytes = 0;
        }
        bytes += files[i].size;
        group.push(i);
    }
    groups.push(group);
    groups.retain(|g| g.len() >= 2);
    groups
}

/// Compacts one date of curated hits if its small files call for it.
pub fn compact_date(
    data_dir: &Path,
    date: Date,
    policy: CompactionPolicy,
) -> Result<Compacted, CycleError> {
    let dir = data_dir.join(layout::curated_hits_prefix(date));
    let files = log_range_files(&dir)?;
    compact_partition(
        data_dir,
        &dir,
        files,
        &[],
        policy,
        |files, staging, (start, end)| {
            let name = layout::merged_hits_name(start, end);
            let inputs = files
                .iter()
                .map(|file| file.open().map(|f| (f, file.name.clone())))
                .collect::<Result<Vec<_>, _>>()?;
            let out = merge_hits_files(inputs, name.clone())?;
            place_file(out.temp.path(), &staging.join(&name))?;
            Ok(())
        },
    )
}

/// Compacts one arrival date of raw objects if its small objects call for
/// it, leaving alone the ones in `pending` (keys queued for curate).
pub fn compact_raw_date(
    data_dir: &Path,
    date: Date,
    policy: CompactionPolicy,
    pending: &HashSet<String>,
) -> Result<Compacted, CycleError> {
    let prefix = layout::raw_key(date, "");
    let dir = data_dir.join(&prefix);
    // Queued objects stay as they are; they are the newest (the queue is
    // in log order), so the rest is still one run of log ranges.
    let (queued, files): (Vec<PartitionFile>, Vec<PartitionFile>) = log_range_files(&dir)?
        .into_iter()
        .partition(|f| pending.contains(&format!("{prefix}{}", f.name)));
    let queued: Vec<&str> = queued.iter().map(|f| f.name.as_str()).collect();
    compact_partition(
        data_dir,
        &dir,
        files,
        &queued,
        policy,
        |files, staging, (start, end)| {
            let target = staging.join(layout::merged_raw_name(start, end));
            concatenate_lines(files, &target).map_err(CycleError::from)
        },
    )
}

/// Writes the NDJSON objects `files` one after the other into `target`,
/// each ending with a newline, and fsyncs it.
fn concatenate_lines(files: &[&PartitionFile], target: &Path) -> Result<(), EmbeddedError> {
    let io = |e| EmbeddedError::io("writing a merged raw object", target, e);
    let mut out = std::io::BufWriter::new(std::fs::File::create(target).map_err(io)?);
    let mut buffer = Vec::new();
    for file in files {
        buffer.clear();
        file.open()?
            .read_to_end(&mut buffer)
            .map_err(|e| EmbeddedError::io("reading a raw object", &file.path, e))?;
        out.write_all(&buffer).map_err(io)?;
        if buffer.last().is_some_and(|&b| b != b'\n') {
            out.write_all(b"\n").map_err(io)?;
        }
    }
    let file = out.into_inner().map_err(|e| io(e.into_error()))?;
    file.sync_all().map_err(io)
}

/// Merges the groups [`plan`] picks among `files` of the partition `dir`,
/// each by `merge(group, staging dir, its log range)`, and swaps the new
/// set in.
fn compact_partition(
    data_dir: &Path,
    dir: &Path,
    files: Vec<PartitionFile>,
    untouched: &[&str],
    policy: CompactionPolicy,
    merge: impl Fn(&[&PartitionFile], &Path, (u64, u64)) -> Result<(), CycleError>,
) -> Result<Compacted, CycleError> {
    let groups = plan(&files, policy);
    let mut result = Compacted {
        files_before: files.len(),
        files_after: files.len(),
    };
    if groups.is_empty() {
        return Ok(result);
    }
    let merged: std::collections::BTreeSet<usize> = groups.iter().flatten().copied().collect();
    let kept: Vec<&str> = (0..files.len())
        .filter(|i| !merged.contains(i))
        .map(|i| files[i].name.as_str())
        .chain(untouched.iter().copied())
        .collect();
    replace_partition(data_dir, dir, &kept, |staging| {
        for group in &groups {
            let start = group.iter().map(|&i| files[i].range.0).min().unwrap_or(0);
            let end = group.iter().map(|&i| files[i].range.1).max().unwrap_or(0);
            let members: Vec<&PartitionFile> = group.iter().map(|&i| &files[i]).collect();
            merge(&members, staging, (start, end))?;
        }
        Ok::<_, CycleError>(())
    })?;
    result.files_after = files.len() - merged.len() + groups.len();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> PartitionFile {
        PartitionFile {
            name: name.into(),
            path: name.into(),
            size,
            range: layout::log_range(name).unwrap(),
        }
    }

    #[test]
    fn raw_objects_are_concatenated_in_log_order_and_queued_ones_stay() {
        let data = tempfile::tempdir().unwrap();
        let date = Date::from_ymd(2026, 12, 7).unwrap();
        let prefix = layout::raw_key(date, "");
        let dir = data.path().join(&prefix);
        std::fs::create_dir_all(&dir).unwrap();
        let mut pending = HashSet::new();
        for i in 0..6u64 {
            let name = layout::raw_object_name(i * 10, i * 10 + 10);
            // The third object lacks its last newline; the merge adds it.
            let body = if i == 2 {
                format!("{{\"n\":{i}}}")
            } else {
                format!("{{\"n\":{i}}}\n")
            };
            std::fs::write(dir.join(&name), body).unwrap();
            if i >= 4 {
                pending.insert(format!("{prefix}{name}"));
            }
        }
        let policy = CompactionPolicy {
            target_bytes: 1 << 20,
            min_files: 2,
        };
        let done = compact_raw_date(data.path(), date, policy, &pending).unwrap();
        assert_eq!((done.files_before, done.files_after), (4, 1));
        let mut names: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let merged = layout::merged_raw_name(0, 40);
        assert_eq!(
            names,
            [
                layout::raw_object_name(40, 50),
                layout::raw_object_name(50, 60),
                merged.clone()
            ]
        );
        assert_eq!(
            std::fs::read_to_string(dir.join(&merged)).unwrap(),
            "{\"n\":0}\n{\"n\":1}\n{\"n\":2}\n{\"n\":3}\n"
        );
        assert_eq!(
            layout::log_range(&merged),
            Some((0, 40)),
            "erasure reads its range"
        );
        // Once curated, the rest joins the merged object.
        let done = compact_raw_date(data.path(), date, policy, &HashSet::new()).unwrap();
        assert_eq!((done.files_before, done.files_after), (3, 1));
        assert!(dir.join(layout::merged_raw_name(0, 60)).exists());
    }

    #[test]
    fn small_files_are_grouped_up_to_the_target_and_big_ones_stay() {
        let policy = CompactionPolicy {
            target_bytes: 100,
            min_files: 3,
        };
        let files = vec![
            file("1-2.parquet", 40),
            file("2-3.parquet", 40),
            file("3-4.parquet", 500),
            file("4-5.parquet", 40),
            file("5-6.parquet", 10),
        ];
        assert_eq!(plan(&files, policy), [vec![0, 1], vec![3, 4]]);
        assert!(plan(&files[..2], policy).is_empty(), "fewer than min_files");
    }
}
