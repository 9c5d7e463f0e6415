//! A directory with the same key layout as the S3 buckets. Writes go to a
//! dot-named temporary file that is fsync'ed and renamed, so a reader (or a
//! crash) never sees a half-written object under its final name.

use crate::EmbeddedError;
use async_trait::async_trait;
use gender_core::PortError;
use gender_core::ports::{ObjectInfo, ObjectRead, ObjectStore};
use std::fs;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// Cheap to clone: clones share the root and the temp-name counter.
#[derive(Debug, Clone)]
pub struct DirObjectStore {
    root: Arc<PathBuf>,
    tmp_counter: Arc<AtomicU64>,
}

fn is_hidden(name: &str) -> bool {
    name.starts_with('.') || name.starts_with('_')
}

impl DirObjectStore {
    pub fn new(root: impl Into<PathBuf>) -> DirObjectStore {
        DirObjectStore {
            root: Arc::new(root.into()),
            tmp_counter: Arc::new(AtomicU64::new(0)),
        }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_of(&self, key: &str) -> Result<PathBuf, EmbeddedError> {
        let valid = !key.is_empty()
            && key
                .split('/')
                .all(|part| !part.is_empty() && part != "." && part != "..");
        if !valid {
            let err = std::io::Error::new(std::io::ErrorKind::InvalidInput, "invalid object key");
            return Err(EmbeddedError::io("object key", key, err));
        }
        Ok(self.root.join(key))
    }

    /// Atomic, durable write: temp file, fsync, rename, fsync the directory.
    pub fn put_blocking(&self, key: &str, body: &[u8]) -> Result<(), EmbeddedError> {
        self.write_atomically(key, Durability::Each, |file| file.write_all(body))
    }

    fn write_atomically(
        &self,
        key: &str,
        durability: Durability,
        fill: impl FnOnce(&mut fs::File) -> std::io::Result<()>,
    ) -> Result<(), EmbeddedError> {
        let path = self.path_of(key)?;
        let dir = path.parent().expect("keys have a parent");
        fs::create_dir_all(dir).map_err(|e| EmbeddedError::io("create dir", dir, e))?;
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or("object");
        let n = self.tmp_counter.fetch_add(1, Ordering::Relaxed);
        let tmp = dir.join(format!(".{name}.{}.{n}.tmp", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut file = fs::File::create(&tmp)?;
            fill(&mut file)?;
            if durability == Durability::Later {
                return fs::rename(&tmp, &path);
            }
            file.sync_all()?;
            fs::rename(&tmp, &path)?;
            fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| {
            let _ = fs::remove_file(&tmp);
            EmbeddedError::io("write object", &path, e)
        })
    }

    pub fn get_blocking(&self, key: &str) -> Result<Option<Vec<u8>>, EmbeddedError> {
        let path = self.path_of(key)?;
        match fs::read(&path) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EmbeddedError::io("read object", &path, e)),
        }
    }

    pub fn list_blocking(&self, prefix: &str) -> Result<Vec<String>, EmbeddedError> {
        let mut keys = Vec::new();
        self.walk(prefix, |key, _| {
            keys.push(key);
            Ok(())
        })?;
        keys.sort();
        Ok(keys)
    }

    /// Keys with size and version: the file's change time and inode, which
    /// every atomic replace (a new file renamed over the old) changes.
    pub fn list_info_blocking(&self, prefix: &str) -> Result<Vec<ObjectInfo>, EmbeddedError> {
        let mut infos = Vec::new();
        self.walk(prefix, |key, path| {
            let meta = match fs::metadata(path) {
                Ok(meta) => meta,
                // Deleted between the directory read and now: not listed.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(EmbeddedError::io("list objects", path, e)),
            };
            infos.push(ObjectInfo {
                key,
                size: meta.len(),
                version: file_version(&meta),
            });
            Ok(())
        })?;
        infos.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(infos)
    }

    /// Calls `each(key, path)` for every visible file under `prefix`.
    fn walk(
        &self,
        prefix: &str,
        mut each: impl FnMut(String, &Path) -> Result<(), EmbeddedError>,
    ) -> Result<(), EmbeddedError> {
        // Walk from the deepest directory the prefix names, then filter.
        let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let start = if dir_part.is_empty() {
            self.root.to_path_buf()
        } else {
            self.root.join(dir_part)
        };
        let mut stack = vec![(start, dir_part.to_owned())];
        while let Some((dir, key_prefix)) = stack.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(EmbeddedError::io("list objects", &dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| EmbeddedError::io("list objects", &dir, e))?;
                let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                    continue;
                };
                if is_hidden(&name) {
                    continue;
                }
                let key = if key_prefix.is_empty() {
                    name
                } else {
                    format!("{key_prefix}/{name}")
                };
                let file_type = entry
                    .file_type()
                    .map_err(|e| EmbeddedError::io("list objects", &dir, e))?;
                if file_type.is_dir() {
                    if key.starts_with(prefix) || prefix.starts_with(&format!("{key}/")) {
                        stack.push((entry.path(), key));
                    }
                } else if key.starts_with(prefix) {
                    each(key, &entry.path())?;
                }
            }
        }
        Ok(())
    }

    /// Atomic, durable write of a local file's content under `key` (copied
    /// into a temporary name beside the target, fsync'ed, renamed).
    pub fn put_file_blocking(&self, key: &str, source: &Path) -> Result<(), EmbeddedError> {
        self.write_atomically(key, Durability::Each, copy_from(source))
    }

    /// [`put_file_blocking`](Self::put_file_blocking) for many files, made
    /// durable together: each is moved into place (renamed, when it is on
    /// the data directory's filesystem: no copy, and no second inode, which
    /// is most of a small object's cost) or else copied beside its target
    /// and renamed, with no fsync of its own; then one `syncfs(2)` writes back
    /// every file and directory entry of the filesystem at once (on other
    /// systems each file and directory is fsync'ed after all are placed).
    /// Thousands of small objects (a batch fanned out over many event
    /// dates, issue 26) cost one flush of the disk instead of two each.
    /// Readers in the meantime see whole files (the page cache); only a
    /// crash before this returns can leave one short, which is why the port
    /// restricts it to objects that are written again when work is redone.
    pub fn put_files_blocking(&self, files: &[(String, PathBuf)]) -> Result<(), EmbeddedError> {
        for (key, source) in files {
            if !self.move_into_place(key, source)? {
                self.write_atomically(key, Durability::Later, copy_from(source))?;
            }
        }
        if files.is_empty() {
            return Ok(());
        }
        self.sync_placed(files)
    }

    /// Renames `source` to `key`'s path; `false` when they are on different
    /// filesystems (the caller copies instead).
    fn move_into_place(&self, key: &str, source: &Path) -> Result<bool, EmbeddedError> {
        let path = self.path_of(key)?;
        let dir = path.parent().expect("keys have a parent");
        fs::create_dir_all(dir).map_err(|e| EmbeddedError::io("create dir", dir, e))?;
        match fs::rename(source, &path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::CrossesDevices => return Ok(false),
            Err(e) => return Err(EmbeddedError::io("move object into place", &path, e)),
        }
        // A temporary file is private (0600); objects get the mode a written
        // one gets under the usual umask, so readers of the directory (a
        // query tool under another user) see them alike.
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
                .map_err(|e| EmbeddedError::io("set object mode", &path, e))?;
        }
        Ok(true)
    }

    #[cfg(target_os = "linux")]
    fn sync_placed(&self, _files: &[(String, PathBuf)]) -> Result<(), EmbeddedError> {
        use std::os::fd::AsRawFd;
        let root = fs::File::open(&*self.root)
            .map_err(|e| EmbeddedError::io("open root", &*self.root, e))?;
        // SAFETY: the descriptor stays open for the whole call, which only
        // writes back the filesystem's dirty data.
        if unsafe { libc::syncfs(root.as_raw_fd()) } != 0 {
            let e = std::io::Error::last_os_error();
            return Err(EmbeddedError::io("sync objects", &*self.root, e));
        }
        Ok(())
    }

    #[cfg(not(target_os = "linux"))]
    fn sync_placed(&self, files: &[(String, PathBuf)]) -> Result<(), EmbeddedError> {
        let mut dirs = std::collections::BTreeSet::new();
        for (key, _) in files {
            let path = self.path_of(key)?;
            let sync = |p: &Path| fs::File::open(p).and_then(|f| f.sync_all());
            sync(&path).map_err(|e| EmbeddedError::io("sync object", &path, e))?;
            dirs.insert(path.parent().expect("keys have a parent").to_owned());
        }
        for dir in dirs {
            fs::File::open(&dir)
                .and_then(|d| d.sync_all())
                .map_err(|e| EmbeddedError::io("sync directory", &dir, e))?;
        }
        Ok(())
    }

    /// Opens an object for reading in chunks; `None` if it does not exist.
    pub fn open_blocking(&self, key: &str) -> Result<Option<fs::File>, EmbeddedError> {
        let path = self.path_of(key)?;
        match fs::File::open(&path) {
            Ok(file) => Ok(Some(file)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(EmbeddedError::io("read object", &path, e)),
        }
    }

    /// Checks that the root can still be written: a hidden probe file is
    /// created, synced and removed.
    pub fn probe_writable_blocking(&self) -> std::io::Result<()> {
        let probe = self.root.join(".write-probe");
        let mut file = fs::File::create(&probe)?;
        file.write_all(b"probe")?;
        file.sync_all()?;
        fs::remove_file(&probe)
    }

    pub fn delete_blocking(&self, key: &str) -> Result<(), EmbeddedError> {
        let path = self.path_of(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EmbeddedError::io("delete object", &path, e)),
        }
    }

    /// [`delete_blocking`](Self::delete_blocking), durable when it returns
    /// (the directory is synced): a crash does not bring the object back.
    pub fn delete_durably_blocking(&self, key: &str) -> Result<(), EmbeddedError> {
        self.delete_blocking(key)?;
        let path = self.path_of(key)?;
        let dir = path.parent().expect("keys have a parent");
        match fs::File::open(dir).and_then(|d| d.sync_all()) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EmbeddedError::io("sync dir", dir, e)),
        }
    }
}

/// When a written object is made durable.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Durability {
    /// fsync of the file and its directory before the write returns.
    Each,
    /// By the caller, once for many ([`DirObjectStore::put_files_blocking`]).
    Later,
}

fn copy_from(source: &Path) -> impl FnOnce(&mut fs::File) -> std::io::Result<()> + '_ {
    move |file| {
        let mut from = fs::File::open(source)?;
        std::io::copy(&mut from, file).map(drop)
    }
}

#[cfg(unix)]
fn file_version(meta: &fs::Metadata) -> String {
    use std::os::unix::fs::MetadataExt;
    format!("{}.{}-{}", meta.ctime(), meta.ctime_nsec(), meta.ino())
}

#[cfg(not(unix))]
fn file_version(meta: &fs::Metadata) -> String {
    let modified = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_nanos());
    format!("{modified}")
}

/// How much of a file one [`ObjectRead::next_chunk`] returns.
const READ_CHUNK: usize = 1 << 20;

/// A file read chunk by chunk off the async workers.
struct FileRead {
    file: Option<fs::File>,
    key: String,
}

#[async_trait]
impl ObjectRead for FileRead {
    async fn next_chunk(&mut self) -> Result<Option<Vec<u8>>, PortError> {
        let Some(mut file) = self.file.take() else {
            return Ok(None);
        };
        let key = self.key.clone();
        let (file, chunk) = blocking(move || {
            let mut chunk = Vec::with_capacity(READ_CHUNK);
            (&mut file)
                .take(READ_CHUNK as u64)
                .read_to_end(&mut chunk)
                .map_err(|e| EmbeddedError::io("read object", &key, e))?;
            Ok((file, chunk))
        })
        .await?;
        if chunk.is_empty() {
            forget_cached_pages(&file);
            return Ok(None);
        }
        self.file = Some(file);
        Ok(Some(chunk))
    }
}

/// Tells the kernel it may drop the file's cached pages. An object is read
/// once after it is written (curate reads each raw object right after
/// delivery writes it): keeping it cached only crowds out the state store's
/// pages, and the freed pages are the cheapest ones for the next write to
/// reuse (on a VM, fresh pages cost a trip to the host; measured in
/// docs/PERFORMANCE.md). Objects are fsync'ed when written, so their pages
/// are clean and go at once. A hint: nothing is lost if it is ignored.
fn forget_cached_pages(file: &fs::File) {
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        // SAFETY: the descriptor is open for the whole call; the advice
        // changes no data.
        let _ = unsafe { libc::posix_fadvise(file.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
    }
    #[cfg(not(target_os = "linux"))]
    let _ = file;
}

/// Runs blocking file work off the async workers so that lookups never wait
/// behind an fsync.
pub(crate) async fn blocking<T: Send + 'static>(
    work: impl FnOnce() -> Result<T, EmbeddedError> + Send + 'static,
) -> Result<T, PortError> {
    match tokio::task::spawn_blocking(work).await {
        Ok(result) => result.map_err(Into::into),
        Err(join) => Err(PortError::unavailable("object store", join)),
    }
}

#[async_trait]
impl ObjectStore for DirObjectStore {
    async fn put(&self, key: &str, body: Vec<u8>) -> Result<(), PortError> {
        let (this, key) = (self.clone(), key.to_owned());
        blocking(move || this.put_blocking(&key, &body)).await
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, PortError> {
        let (this, key) = (self.clone(), key.to_owned());
        blocking(move || this.get_blocking(&key)).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<String>, PortError> {
        let (this, prefix) = (self.clone(), prefix.to_owned());
        blocking(move || this.list_blocking(&prefix)).await
    }

    async fn delete(&self, key: &str) -> Result<(), PortError> {
        let (this, key) = (self.clone(), key.to_owned());
        blocking(move || this.delete_blocking(&key)).await
    }

    async fn get_stream(&self, key: &str) -> Result<Option<Box<dyn ObjectRead>>, PortError> {
        let (this, owned) = (self.clone(), key.to_owned());
        let file = blocking(move || this.open_blocking(&owned)).await?;
        Ok(file.map(|file| {
            Box::new(FileRead {
                file: Some(file),
                key: key.to_owned(),
            }) as Box<dyn ObjectRead>
        }))
    }

    async fn put_file(&self, key: &str, path: &Path) -> Result<(), PortError> {
        let (this, key, path) = (self.clone(), key.to_owned(), path.to_owned());
        blocking(move || this.put_file_blocking(&key, &path)).await
    }

    async fn put_files(&self, files: &[(String, PathBuf)]) -> Result<(), PortError> {
        let (this, files) = (self.clone(), files.to_vec());
        blocking(move || this.put_files_blocking(&files)).await
    }

    async fn list_info(&self, prefix: &str) -> Result<Vec<ObjectInfo>, PortError> {
        let (this, prefix) = (self.clone(), prefix.to_owned());
        blocking(move || this.list_info_blocking(&prefix)).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files_left(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect()
    }

    #[test]
    fn files_put_together_are_all_placed_whole_with_no_temp_names_left() {
        let dir = tempfile::tempdir().unwrap();
        let sources = tempfile::tempdir().unwrap();
        let store = DirObjectStore::new(dir.path().join("data"));
        let files: Vec<(String, PathBuf)> = (0..300)
            .map(|i| {
                let source = sources.path().join(format!("{i}.parquet"));
                fs::write(&source, format!("object {i}").repeat(i + 1)).unwrap();
                (
                    format!("curated/hits/dt=2026-11-{:02}/o-{i}.parquet", i % 28 + 1),
                    source,
                )
            })
            .collect();
        store.put_files_blocking(&files).unwrap();
        for (i, (key, _)) in files.iter().enumerate() {
            let body = store.get_blocking(key).unwrap().unwrap();
            assert_eq!(
                body,
                format!("object {i}").repeat(i + 1).into_bytes(),
                "{key}"
            );
        }
        let mut listed = store.list_blocking("curated/").unwrap();
        let mut keys: Vec<String> = files.into_iter().map(|(key, _)| key).collect();
        listed.sort();
        keys.sort();
        assert_eq!(listed, keys);
        let mut stack = vec![dir.path().join("data")];
        while let Some(d) = stack.pop() {
            for entry in fs::read_dir(d).unwrap() {
                let entry = entry.unwrap();
                let name = entry.file_name().into_string().unwrap();
                assert!(!name.ends_with(".tmp"), "temp file left: {name}");
                if entry.file_type().unwrap().is_dir() {
                    stack.push(entry.path());
                }
            }
        }
        // On the same filesystem the sources were moved, not copied.
        assert!(files_left(sources.path()).is_empty());
        // From another filesystem (a tmpfs, when there is one) they are copied.
        if let Ok(shm) = tempfile::tempdir_in("/dev/shm") {
            let source = shm.path().join("other-fs.parquet");
            fs::write(&source, b"copied").unwrap();
            let files = vec![("curated/other.parquet".to_owned(), source.clone())];
            store.put_files_blocking(&files).unwrap();
            assert_eq!(
                store
                    .get_blocking("curated/other.parquet")
                    .unwrap()
                    .unwrap(),
                b"copied"
            );
            assert!(source.exists(), "a copy leaves the source");
        }
        // A source that cannot be read fails the call and names it.
        let missing = vec![("curated/x.parquet".to_owned(), sources.path().join("gone"))];
        assert!(store.put_files_blocking(&missing).is_err());
    }

    #[test]
    fn put_get_list_delete_with_hidden_names_invisible() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirObjectStore::new(dir.path());
        store
            .put_blocking("curated/hits/dt=2026-11-24/a.parquet", b"A")
            .unwrap();
        store
            .put_blocking("curated/hits/dt=2026-11-25/b.parquet", b"B")
            .unwrap();
        store
            .put_blocking("raw/dt=2026-11-24/x.ndjson", b"X")
            .unwrap();
        fs::write(
            dir.path().join("curated/hits/dt=2026-11-24/.partial.tmp"),
            b"half",
        )
        .unwrap();
        fs::write(dir.path().join("curated/hits/dt=2026-11-24/_started"), b"").unwrap();

        assert_eq!(
            store
                .get_blocking("raw/dt=2026-11-24/x.ndjson")
                .unwrap()
                .as_deref(),
            Some(&b"X"[..])
        );
        assert_eq!(store.get_blocking("raw/missing").unwrap(), None);
        assert_eq!(
            store.list_blocking("curated/hits/").unwrap(),
            [
                "curated/hits/dt=2026-11-24/a.parquet",
                "curated/hits/dt=2026-11-25/b.parquet"
            ]
        );
        assert_eq!(
            store.list_blocking("curated/hits/dt=2026-11-25/").unwrap(),
            ["curated/hits/dt=2026-11-25/b.parquet"]
        );
        assert_eq!(
            store
                .list_blocking("curated/hits/dt=2026-11-2")
                .unwrap()
                .len(),
            2
        );
        assert!(store.list_blocking("nothing/").unwrap().is_empty());

        store.delete_blocking("raw/dt=2026-11-24/x.ndjson").unwrap();
        store.delete_blocking("raw/dt=2026-11-24/x.ndjson").unwrap();
        assert_eq!(
            store.get_blocking("raw/dt=2026-11-24/x.ndjson").unwrap(),
            None
        );
    }

    #[tokio::test]
    async fn streams_puts_files_and_lists_versions() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirObjectStore::new(dir.path().join("store"));
        let body: Vec<u8> = (0..READ_CHUNK * 2 + 7).map(|i| i as u8).collect();
        let source = dir.path().join("local.bin");
        fs::write(&source, &body).unwrap();
        store.put_file("a/b.bin", &source).await.unwrap();
        let mut read = store.get_stream("a/b.bin").await.unwrap().unwrap();
        let mut back = Vec::new();
        let mut chunks = 0;
        while let Some(chunk) = read.next_chunk().await.unwrap() {
            back.extend(chunk);
            chunks += 1;
        }
        assert_eq!((back == body, chunks), (true, 3));
        assert!(store.get_stream("a/none").await.unwrap().is_none());

        let first = store.list_info("a/").await.unwrap();
        assert_eq!(first.len(), 1);
        assert_eq!(
            (first[0].key.as_str(), first[0].size),
            ("a/b.bin", body.len() as u64)
        );
        assert_eq!(
            store.list_info("a/").await.unwrap(),
            first,
            "stable while unchanged"
        );
        store.put("a/b.bin", body.clone()).await.unwrap();
        let replaced = store.list_info("a/").await.unwrap();
        assert_ne!(
            replaced[0].version, first[0].version,
            "a replace changes the version"
        );
    }

    /// Pages of `path` in the page cache (`mincore` over a mapping of it).
    #[cfg(target_os = "linux")]
    fn cached_pages(path: &Path) -> usize {
        use std::os::fd::AsRawFd;
        let file = fs::File::open(path).unwrap();
        let len = file.metadata().unwrap().len() as usize;
        let page = 4096;
        let mut resident = vec![0u8; len.div_ceil(page)];
        // SAFETY: a private read-only mapping of an open file, unmapped
        // before return; mincore writes one byte per page into `resident`.
        unsafe {
            let map = libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                file.as_raw_fd(),
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            assert_eq!(libc::mincore(map, len, resident.as_mut_ptr()), 0);
            libc::munmap(map, len);
        }
        resident.iter().filter(|&&r| r & 1 == 1).count()
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn an_object_read_to_its_end_leaves_the_page_cache() {
        // Under target/, not /tmp: a tmpfs has no disk to drop pages to.
        let base = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/tmp");
        fs::create_dir_all(&base).unwrap();
        let dir = tempfile::tempdir_in(base).unwrap();
        let store = DirObjectStore::new(dir.path());
        let body = vec![7u8; 3 * READ_CHUNK];
        store.put("raw/dt=2026-11-26/x.ndjson", body).await.unwrap();
        let path = dir.path().join("raw/dt=2026-11-26/x.ndjson");
        let before = cached_pages(&path);
        if before == 0 {
            eprintln!("this filesystem keeps no written pages cached; nothing to check");
            return;
        }
        let mut read = store
            .get_stream("raw/dt=2026-11-26/x.ndjson")
            .await
            .unwrap()
            .unwrap();
        let mut bytes = 0;
        while let Some(chunk) = read.next_chunk().await.unwrap() {
            bytes += chunk.len();
        }
        assert_eq!(bytes, 3 * READ_CHUNK);
        assert_eq!(
            cached_pages(&path),
            0,
            "{before} pages were cached after the write"
        );
    }

    #[test]
    fn rejects_keys_that_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirObjectStore::new(dir.path());
        for bad in ["", "../x", "a//b", "/abs", "a/./b"] {
            assert!(store.put_blocking(bad, b"").is_err(), "{bad}");
        }
    }
}
