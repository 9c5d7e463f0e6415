//! A directory with the same key layout as the S3 buckets. Writes go to a
//! dot-named temporary file that is fsync'ed and renamed, so a reader (or a
//! crash) never sees a half-written object under its final name.

use crate::EmbeddedError;
use async_trait::async_trait;
use gender_core::PortError;
use gender_core::ports::ObjectStore;
use std::fs;
use std::io::Write;
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
            file.write_all(body)?;
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
        // Walk from the deepest directory the prefix names, then filter.
        let dir_part = prefix.rfind('/').map_or("", |i| &prefix[..i]);
        let mut keys = Vec::new();
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
                    keys.push(key);
                }
            }
        }
        keys.sort();
        Ok(keys)
    }

    pub fn delete_blocking(&self, key: &str) -> Result<(), EmbeddedError> {
        let path = self.path_of(key)?;
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(EmbeddedError::io("delete object", &path, e)),
        }
    }
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
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn rejects_keys_that_escape_the_root() {
        let dir = tempfile::tempdir().unwrap();
        let store = DirObjectStore::new(dir.path());
        for bad in ["", "../x", "a//b", "/abs", "a/./b"] {
            assert!(store.put_blocking(bad, b"").is_err(), "{bad}");
        }
    }
}
