//! Compaction of curated hits in the data directory (SPEC 14): a date's
//! small Parquet files are merged into files of about the target size.
//!
//! Readers must see either the old files of a date or the new ones, never
//! both and never neither, whatever moment the process is killed at. A date
//! is one directory, so the new set is built beside it in
//! `DATA_DIR/.compaction/dt=D` (hard links to the files that stay, the merged
//! files written and fsync'ed), and the two directories are swapped in one
//! `renameat2(RENAME_EXCHANGE)`. The old set then sits in the staging place
//! and is deleted. Anything found under `.compaction/` at start is a leftover
//! of an interrupted run, on either side of the swap, and is deleted.
//!
//! Only files whose raw objects are fully curated are merged (compaction
//! runs in the delivery thread after a cycle that left no object pending),
//! so a retried curate can never write a file that a merge already holds.

use gender_core::Date;
use gender_core::layout;
use gender_pipeline::PipelineError;
use gender_pipeline::compact::merge_hits_files;
use std::fs;
use std::path::{Path, PathBuf};

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

#[derive(Debug, thiserror::Error)]
pub enum CompactionError {
    #[error("compaction of {date}: {what}")]
    Io {
        date: Date,
        what: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Merge(#[from] PipelineError),
}

/// What one date's compaction did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Compacted {
    pub files_before: usize,
    pub files_after: usize,
}

const STAGING: &str = ".compaction";

/// Removes `dir` and everything in it; `Ok(false)` if there was none.
pub(crate) fn remove_dir_if_present(dir: &Path) -> std::io::Result<bool> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
}

/// Deletes what an interrupted compaction left (either side of its swap).
pub fn clean_up_interrupted(data_dir: &Path) -> std::io::Result<()> {
    if remove_dir_if_present(&data_dir.join(STAGING))? {
        tracing::info!("removed what an interrupted compaction left");
    }
    Ok(())
}

/// The `dt=YYYY-MM-DD` directories under `dir` with their dates, oldest
/// first (none if `dir` does not exist).
pub(crate) fn date_partitions(dir: &Path) -> std::io::Result<Vec<(Date, PathBuf)>> {
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry?;
        if let Some(date) = entry.file_name().to_str().and_then(layout::partition_date) {
            out.push((date, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Every date that has a curated hits directory (looked at after a restart).
pub fn dates_with_curated_hits(data_dir: &Path) -> std::io::Result<Vec<Date>> {
    Ok(
        date_partitions(&data_dir.join(layout::CURATED_HITS_PREFIX))?
            .into_iter()
            .map(|(date, _)| date)
            .collect(),
    )
}

pub(crate) struct CuratedFile {
    pub(crate) name: String,
    size: u64,
    range: (u64, u64),
}

/// The visible files of a date directory, oldest log range first.
pub(crate) fn curated_files(dir: &Path) -> std::io::Result<Vec<CuratedFile>> {
    let mut files = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.') || name.starts_with('_') || !entry.file_type()?.is_file() {
            continue;
        }
        if let Some(range) = layout::log_range(&name) {
            files.push(CuratedFile {
                name,
                size: entry.metadata()?.len(),
                range,
            });
        }
    }
    files.sort_by_key(|f| f.range);
    Ok(files)
}

/// Groups of consecutive small files (by log range) to merge, each of about
/// `target_bytes` at most and of two files at least.
fn plan(files: &[CuratedFile], policy: CompactionPolicy) -> Vec<Vec<usize>> {
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

fn fsync_dir(path: &Path) -> std::io::Result<()> {
    fs::File::open(path)?.sync_all()
}

/// Swaps two directories in one step (Linux `renameat2(RENAME_EXCHANGE)`).
fn exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let a = CString::new(a.as_os_str().as_bytes())?;
    let b = CString::new(b.as_os_str().as_bytes())?;
    // SAFETY: both paths are valid NUL-terminated strings for the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            libc::RENAME_EXCHANGE,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// Copies a finished Parquet file into the staging directory and fsyncs it.
pub(crate) fn place(
    date: Date,
    file: &gender_pipeline::codec::HitsFile,
    target: &Path,
) -> Result<(), CompactionError> {
    let io = |what: &'static str| move |source| CompactionError::Io { date, what, source };
    fs::copy(file.temp.path(), target).map_err(io("writing a new file"))?;
    fs::File::open(target)
        .and_then(|f| f.sync_all())
        .map_err(io("syncing a new file"))
}

/// Replaces the files of the date directory `dir` in one atomic step: the
/// new set is built in the staging directory (`keep` hard-linked from
/// `dir`, the rest written by `write`), fsync'ed, swapped with `dir`, and
/// the old set deleted. Used by compaction and by erasure.
pub(crate) fn replace_date_dir(
    data_dir: &Path,
    date: Date,
    dir: &Path,
    keep: &[&str],
    write: impl FnOnce(&Path) -> Result<(), CompactionError>,
) -> Result<(), CompactionError> {
    let io = |what: &'static str| move |source| CompactionError::Io { date, what, source };
    let staging_root = data_dir.join(STAGING);
    let staging = staging_root.join(format!("dt={date}"));
    clean_up_interrupted(data_dir).map_err(io("clearing the staging directory"))?;
    fs::create_dir_all(&staging).map_err(io("creating the staging directory"))?;
    for name in keep {
        fs::hard_link(dir.join(name), staging.join(name)).map_err(io("linking a kept file"))?;
    }
    write(&staging)?;
    fsync_dir(&staging).map_err(io("syncing the staging directory"))?;
    exchange(&staging, dir).map_err(io("swapping the date directory"))?;
    // Both parents record the swap durably before the old set goes.
    fsync_dir(dir.parent().unwrap_or(data_dir)).map_err(io("syncing the date's parent"))?;
    fsync_dir(&staging_root).map_err(io("syncing the staging root"))?;
    fs::remove_dir_all(&staging_root).map_err(io("deleting the replaced files"))?;
    Ok(())
}

/// Compacts one date if its small files call for it.
pub fn compact_date(
    data_dir: &Path,
    date: Date,
    policy: CompactionPolicy,
) -> Result<Compacted, CompactionError> {
    let io = |what: &'static str| move |source| CompactionError::Io { date, what, source };
    let dir: PathBuf = data_dir.join(layout::curated_hits_prefix(date));
    let files = curated_files(&dir).map_err(io("listing the date"))?;
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
    replace_date_dir(data_dir, date, &dir, &kept, |staging| {
        for group in &groups {
            let start = group.iter().map(|&i| files[i].range.0).min().unwrap_or(0);
            let end = group.iter().map(|&i| files[i].range.1).max().unwrap_or(0);
            let name = layout::merged_hits_name(start, end);
            let inputs = group
                .iter()
                .map(|&i| {
                    let path = dir.join(&files[i].name);
                    fs::File::open(&path).map(|f| (f, files[i].name.clone()))
                })
                .collect::<Result<Vec<_>, _>>()
                .map_err(io("opening a file to merge"))?;
            let out = merge_hits_files(inputs, name.clone())?;
            place(date, &out, &staging.join(&name))?;
        }
        Ok(())
    })?;
    result.files_after = files.len() - merged.len() + groups.len();
    Ok(result)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(name: &str, size: u64) -> CuratedFile {
        CuratedFile {
            name: name.into(),
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
