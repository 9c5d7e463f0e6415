//! The date partitions of the data directory (`<prefix>dt=YYYY-MM-DD/`) and
//! how they are changed on disk: listing the partitions and the files of
//! one, replacing a partition's files in one atomic step, removing a
//! partition, and cleaning up what an interrupted replace or removal left.
//! What to change (compaction, retention, erasure) is the local
//! deployment's decision; this module only makes sure that no reader and
//! no crash ever sees half of it.
//!
//! A partition is one directory, so readers see either its old files or
//! its new ones, never both and never neither: the new set is built beside
//! it in `DATA_DIR/.compaction/dt=D` (hard links to the files that stay,
//! new files copied in and fsync'ed), and the two directories are swapped
//! in one `renameat2(RENAME_EXCHANGE)`; the old set then sits in the
//! staging place and is deleted. A partition is removed by renaming it into
//! `DATA_DIR/.retention` (one `rename`) and deleting it there. Anything
//! found in either staging place at start is a leftover of an interrupted
//! run, on either side of its rename, and is deleted.

use crate::error::EmbeddedError;
use gender_core::{Date, layout};
use std::fs;
use std::path::{Path, PathBuf};

/// Where the new set of a partition's files is built before the swap.
const REPLACING: &str = ".compaction";
/// Where a partition is renamed to before it is deleted.
const REMOVING: &str = ".retention";

/// A visible file of a partition whose name carries a log range
/// ([`layout::log_range`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionFile {
    pub name: String,
    pub path: PathBuf,
    pub size: u64,
    /// The `[start, end)` log range its name carries.
    pub range: (u64, u64),
}

impl PartitionFile {
    pub fn open(&self) -> Result<fs::File, EmbeddedError> {
        fs::File::open(&self.path).map_err(|e| EmbeddedError::io("opening a file", &self.path, e))
    }
}

/// The `dt=YYYY-MM-DD` directories under `dir` with their dates, oldest
/// first (none if `dir` does not exist).
pub fn date_partitions(dir: &Path) -> Result<Vec<(Date, PathBuf)>, EmbeddedError> {
    let io = |e| EmbeddedError::io("listing date partitions", dir, e);
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(io(e)),
    };
    let mut out = Vec::new();
    for entry in entries {
        let entry = entry.map_err(io)?;
        if let Some(date) = entry.file_name().to_str().and_then(layout::partition_date) {
            out.push((date, entry.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// The visible files of the partition `dir` whose names carry a log range,
/// oldest range first (none if `dir` does not exist).
pub fn log_range_files(dir: &Path) -> Result<Vec<PartitionFile>, EmbeddedError> {
    let io = |e| EmbeddedError::io("listing a partition", dir, e);
    let mut files = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(io(e)),
    };
    for entry in entries {
        let entry = entry.map_err(io)?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.starts_with('.')
            || name.starts_with('_')
            || !entry.file_type().map_err(io)?.is_file()
        {
            continue;
        }
        if let Some(range) = layout::log_range(&name) {
            files.push(PartitionFile {
                name,
                path: entry.path(),
                size: entry.metadata().map_err(io)?.len(),
                range,
            });
        }
    }
    files.sort_by_key(|f| f.range);
    Ok(files)
}

/// Replaces the files of the partition `dir` in one atomic step: the new
/// set is built in the staging directory (`keep` hard-linked from `dir`,
/// the rest written there by `write`, e.g. with [`place_file`]), fsync'ed,
/// swapped with `dir`, and the old set deleted.
pub fn replace_partition<E: From<EmbeddedError>>(
    data_dir: &Path,
    dir: &Path,
    keep: &[&str],
    write: impl FnOnce(&Path) -> Result<(), E>,
) -> Result<(), E> {
    let staging_root = data_dir.join(REPLACING);
    let staging = staging_root.join(dir.file_name().unwrap_or_default());
    let at = |what: &'static str, path: &Path| {
        let path = path.to_owned();
        move |e| EmbeddedError::io(what, path, e)
    };
    if remove_dir_if_present(&staging_root)
        .map_err(at("clearing the staging directory", &staging_root))?
    {
        tracing::info!("removed what an interrupted compaction left");
    }
    fs::create_dir_all(&staging).map_err(at("creating the staging directory", &staging))?;
    for name in keep {
        fs::hard_link(dir.join(name), staging.join(name))
            .map_err(at("linking a kept file", &dir.join(name)))?;
    }
    write(&staging)?;
    fsync_dir(&staging).map_err(at("syncing the staging directory", &staging))?;
    exchange(&staging, dir).map_err(at("swapping the partition", dir))?;
    // Both parents record the swap durably before the old set goes.
    let parent = dir.parent().unwrap_or(data_dir);
    fsync_dir(parent).map_err(at("syncing the partition's parent", parent))?;
    fsync_dir(&staging_root).map_err(at("syncing the staging root", &staging_root))?;
    fs::remove_dir_all(&staging_root).map_err(at("deleting the replaced files", &staging_root))?;
    Ok(())
}

/// Copies a finished file to `target` (in the staging directory of
/// [`replace_partition`]) and fsyncs it.
pub fn place_file(source: &Path, target: &Path) -> Result<(), EmbeddedError> {
    fs::copy(source, target).map_err(|e| EmbeddedError::io("writing a new file", target, e))?;
    fs::File::open(target)
        .and_then(|f| f.sync_all())
        .map_err(|e| EmbeddedError::io("syncing a new file", target, e))
}

/// Renames the partition `dir` out of sight in one step, then deletes it.
pub fn remove_partition(data_dir: &Path, dir: &Path) -> Result<(), EmbeddedError> {
    let io = |e| EmbeddedError::io("removing a partition", dir, e);
    let staging = data_dir.join(REMOVING);
    fs::create_dir_all(&staging).map_err(io)?;
    let relative = dir.strip_prefix(data_dir).unwrap_or(dir);
    let parked = staging.join(relative.to_string_lossy().replace('/', "_"));
    remove_dir_if_present(&parked).map_err(io)?;
    fs::rename(dir, &parked).map_err(io)?;
    fs::remove_dir_all(&parked).map_err(io)
}

/// Deletes what an interrupted replace or removal left in the staging
/// directories (either side of its rename).
pub fn clean_up_interrupted(data_dir: &Path) -> Result<(), EmbeddedError> {
    let replacing = data_dir.join(REPLACING);
    if remove_dir_if_present(&replacing)
        .map_err(|e| EmbeddedError::io("removing an interrupted swap", &replacing, e))?
    {
        tracing::info!("removed what an interrupted compaction left");
    }
    let removing = data_dir.join(REMOVING);
    remove_dir_if_present(&removing)
        .map_err(|e| EmbeddedError::io("removing an interrupted removal", &removing, e))?;
    Ok(())
}

/// Removes `dir` and everything in it; `Ok(false)` if there was none.
fn remove_dir_if_present(dir: &Path) -> std::io::Result<bool> {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
        Err(e) => Err(e),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        log_range_files(dir)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    #[test]
    fn a_partition_is_replaced_whole_removed_whole_and_leftovers_go() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        let date = Date::from_ymd(2026, 11, 24).unwrap();
        let part = root.join(layout::curated_hits_prefix(date));
        fs::create_dir_all(&part).unwrap();
        for name in ["2-3.parquet", "1-2.parquet", ".1-2.parquet.tmp", "_started"] {
            fs::write(part.join(name), name).unwrap();
        }
        assert_eq!(names(&part), ["1-2.parquet", "2-3.parquet"]);
        assert_eq!(
            date_partitions(&root.join(layout::CURATED_HITS_PREFIX)).unwrap(),
            [(date, part.clone())]
        );

        let merged = root.join("merged.tmp");
        fs::write(&merged, "merged").unwrap();
        replace_partition::<EmbeddedError>(root, &part, &["2-3.parquet"], |staging| {
            place_file(&merged, &staging.join("c-0-2.parquet"))
        })
        .unwrap();
        assert_eq!(names(&part), ["c-0-2.parquet", "2-3.parquet"]);
        assert_eq!(fs::read(part.join("c-0-2.parquet")).unwrap(), b"merged");
        assert!(!root.join(REPLACING).exists());

        // What a crash leaves on either side of a rename goes at start.
        fs::create_dir_all(root.join(REPLACING).join("dt=2026-11-24")).unwrap();
        fs::create_dir_all(root.join(REMOVING).join("raw_dt=2026-11-24")).unwrap();
        clean_up_interrupted(root).unwrap();
        assert!(!root.join(REPLACING).exists() && !root.join(REMOVING).exists());

        remove_partition(root, &part).unwrap();
        assert!(!part.exists());
        assert!(names(&part).is_empty());
        assert!(
            date_partitions(&root.join(layout::CURATED_HITS_PREFIX))
                .unwrap()
                .is_empty()
        );
    }
}
