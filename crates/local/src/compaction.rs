//! Compaction of curated hits in the data directory (SPEC 14): a date's
//! small Parquet files are merged into files of about the target size, and
//! the date's new set of files replaces the old one in one atomic step
//! ([`gender_embedded::partitions::replace_partition`]: readers see the old
//! files or the new ones, whatever moment the process is killed at).
//!
//! Only files whose raw objects are fully curated are merged (compaction
//! runs in the delivery thread after a cycle that left no object pending),
//! so a retried curate can never write a file that a merge already holds.

use crate::error::CycleError;
use gender_core::Date;
use gender_core::layout;
use gender_embedded::partitions::{
    PartitionFile, date_partitions, log_range_files, place_file, replace_partition,
};
use gender_pipeline::compact::merge_hits_files;
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
    Ok(
        date_partitions(&data_dir.join(layout::CURATED_HITS_PREFIX))?
            .into_iter()
            .map(|(date, _)| date)
            .collect(),
    )
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

/// Compacts one date if its small files call for it.
pub fn compact_date(
    data_dir: &Path,
    date: Date,
    policy: CompactionPolicy,
) -> Result<Compacted, CycleError> {
    let dir = data_dir.join(layout::curated_hits_prefix(date));
    let files = log_range_files(&dir)?;
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
        .collect();
    replace_partition(data_dir, &dir, &kept, |staging| {
        for group in &groups {
            let start = group.iter().map(|&i| files[i].range.0).min().unwrap_or(0);
            let end = group.iter().map(|&i| files[i].range.1).max().unwrap_or(0);
            let name = layout::merged_hits_name(start, end);
            let inputs = group
                .iter()
                .map(|&i| files[i].open().map(|f| (f, files[i].name.clone())))
                .collect::<Result<Vec<_>, _>>()?;
            let out = merge_hits_files(inputs, name.clone())?;
            place_file(out.temp.path(), &staging.join(&name))?;
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
