//! The local server's keys (SPEC 18): one per scope, each either given by a
//! flag / env var or kept in a file of the data directory (mode 0600),
//! created with a random key on first start:
//!
//! | scope | file | flag / env |
//! |---|---|---|
//! | admin | `api-key` (SPEC 4's key) | `--api-key` / `GENDER_API_KEY` |
//! | ingest | `ingest-key` | `--ingest-key` / `GENDER_INGEST_KEY` |
//! | read | `read-key` | `--read-key` / `GENDER_READ_KEY` |
//!
//! [`rotate`] replaces a file-kept key and moves the old one to
//! `<file>.previous` with the time until which it is still accepted (the
//! grace period, [`DEFAULT_ROTATION_GRACE`]). A second rotation within the
//! grace period ends the first one's: only one previous key is kept.

use crate::config::{API_KEY_FILE, generate_key, read_key_file};
use gender_api::{Scope, ScopeKeys};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The file of the ingest key.
pub const INGEST_KEY_FILE: &str = "ingest-key";
/// The file of the read key.
pub const READ_KEY_FILE: &str = "read-key";
/// Appended to a key file's name: the replaced key and its end of grace.
pub const PREVIOUS_SUFFIX: &str = ".previous";
/// How long a replaced key stays valid by default: a day, so that pages
/// cached with the old ingest key (CDNs, browsers) and server-side clients
/// have time to pick up the new one.
pub const DEFAULT_ROTATION_GRACE: Duration = Duration::from_secs(24 * 3600);

/// The file in the data directory that keeps `scope`'s key.
pub fn key_file(scope: Scope) -> &'static str {
    match scope {
        Scope::Admin => API_KEY_FILE,
        Scope::Ingest => INGEST_KEY_FILE,
        Scope::Read => READ_KEY_FILE,
    }
}

/// Keys given by flags or env vars; the others live in the data directory.
#[derive(Debug, Clone, Default)]
pub struct ExplicitKeys {
    pub admin: Option<String>,
    pub ingest: Option<String>,
    pub read: Option<String>,
}

impl ExplicitKeys {
    pub fn get(&self, scope: Scope) -> Option<&str> {
        match scope {
            Scope::Admin => self.admin.as_deref(),
            Scope::Ingest => self.ingest.as_deref(),
            Scope::Read => self.read.as_deref(),
        }
        .filter(|k| !k.is_empty())
    }
}

/// One scope's keys as the server starts with them.
#[derive(Debug, Clone)]
pub struct ResolvedKey {
    pub scope: Scope,
    pub keys: ScopeKeys,
    /// Where it is kept; `None` when given by flag or env (not rotatable).
    pub file: Option<PathBuf>,
}

/// Every scope's keys: the explicit one, else the one kept in `data_dir`
/// (with its previous key while its grace lasts), else a new one written
/// there. In [`Scope::ALL`] order.
pub fn resolve_keys(
    data_dir: &Path,
    explicit: &ExplicitKeys,
    now_ms: i64,
) -> std::io::Result<Vec<ResolvedKey>> {
    Scope::ALL
        .into_iter()
        .map(|scope| {
            if let Some(key) = explicit.get(scope) {
                return Ok(ResolvedKey {
                    scope,
                    keys: ScopeKeys::only(key),
                    file: None,
                });
            }
            let file = data_dir.join(key_file(scope));
            let current = crate::config::resolve_key_file(&file)?;
            let previous = read_previous(&file)?.filter(|(_, until)| *until > now_ms);
            Ok(ResolvedKey {
                scope,
                keys: ScopeKeys { current, previous },
                file: Some(file),
            })
        })
        .collect()
}

fn previous_file(file: &Path) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(PREVIOUS_SUFFIX);
    PathBuf::from(name)
}

/// `<file>.previous`: `KEY VALID_UNTIL_EPOCH_MS`.
fn read_previous(file: &Path) -> std::io::Result<Option<(String, i64)>> {
    let text = match std::fs::read_to_string(previous_file(file)) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    let mut words = text.split_whitespace();
    match (words.next(), words.next().and_then(|w| w.parse().ok())) {
        (Some(key), Some(until)) => Ok(Some((key.to_owned(), until))),
        _ => Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is damaged; delete it (the previous key then stops working)",
                previous_file(file).display()
            ),
        )),
    }
}

/// What [`rotate`] did.
#[derive(Debug, Clone)]
pub struct Rotated {
    pub scope: Scope,
    pub keys: ScopeKeys,
    /// Until when (epoch ms) the replaced key is accepted.
    pub previous_valid_until_ms: i64,
}

/// Replaces `scope`'s key kept in `data_dir` with a new random one; the old
/// one is accepted until `now_ms + grace` (a grace of 0: not at all). Each file is replaced atomically
/// (written beside, fsync'ed, renamed), the previous key first, so a crash
/// leaves either the old state or the new one (at worst the old key also
/// as its own previous).
pub fn rotate(
    data_dir: &Path,
    scope: Scope,
    grace: Duration,
    now_ms: i64,
) -> std::io::Result<Rotated> {
    let file = data_dir.join(key_file(scope));
    let old = read_key_file(&file)?;
    let until = now_ms.saturating_add(i64::try_from(grace.as_millis()).unwrap_or(i64::MAX));
    let new = generate_key()?;
    replace_private(&previous_file(&file), &format!("{old} {until}"))?;
    replace_private(&file, &new)?;
    Ok(Rotated {
        scope,
        keys: ScopeKeys {
            current: new,
            previous: Some((old, until)),
        },
        previous_valid_until_ms: until,
    })
}

/// Writes `contents` to `path` atomically, mode 0600.
fn replace_private(path: &Path, contents: &str) -> std::io::Result<()> {
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    let _ = std::fs::remove_file(&temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&temporary)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    #[test]
    fn each_scope_gets_its_own_private_file_unless_given_explicitly() {
        let dir = tempfile::tempdir().unwrap();
        let explicit = ExplicitKeys {
            read: Some("my-read-key".into()),
            ..ExplicitKeys::default()
        };
        let keys = resolve_keys(dir.path(), &explicit, NOW).unwrap();
        let scopes: Vec<Scope> = keys.iter().map(|k| k.scope).collect();
        assert_eq!(scopes, Scope::ALL);
        let (ingest, read, admin) = (&keys[0], &keys[1], &keys[2]);
        assert_eq!(read.keys, ScopeKeys::only("my-read-key"));
        assert!(read.file.is_none());
        assert!(!dir.path().join(READ_KEY_FILE).exists());
        assert_ne!(ingest.keys.current, admin.keys.current);
        for key in [ingest, admin] {
            let file = key.file.as_ref().unwrap();
            assert_eq!(read_key_file(file).unwrap(), key.keys.current);
            #[cfg(unix)]
            {
                use std::os::unix::fs::PermissionsExt;
                let mode = std::fs::metadata(file).unwrap().permissions().mode();
                assert_eq!(mode & 0o777, 0o600, "{}", file.display());
            }
        }
        // The next start finds the same keys.
        let again = resolve_keys(dir.path(), &explicit, NOW).unwrap();
        assert_eq!(again[0].keys, ingest.keys);
        assert_eq!(again[2].keys, admin.keys);
    }

    #[test]
    fn a_rotated_key_is_kept_as_previous_until_its_grace_ends() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve_keys(dir.path(), &ExplicitKeys::default(), NOW).unwrap();
        let old = first[0].keys.current.clone();
        let rotated = rotate(dir.path(), Scope::Ingest, Duration::from_secs(60), NOW).unwrap();
        assert_ne!(rotated.keys.current, old);
        assert_eq!(rotated.previous_valid_until_ms, NOW + 60_000);
        let at = |now| resolve_keys(dir.path(), &ExplicitKeys::default(), now).unwrap();
        assert_eq!(at(NOW + 59_999)[0].keys, rotated.keys);
        assert_eq!(
            at(NOW + 60_000)[0].keys,
            ScopeKeys::only(rotated.keys.current.clone())
        );
        // The other scopes are untouched.
        assert_eq!(at(NOW)[2].keys, first[2].keys);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let previous = dir
                .path()
                .join(format!("{INGEST_KEY_FILE}{PREVIOUS_SUFFIX}"));
            let mode = std::fs::metadata(previous).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }

    #[test]
    fn rotating_a_key_that_was_never_created_fails() {
        let dir = tempfile::tempdir().unwrap();
        let err = rotate(dir.path(), Scope::Read, DEFAULT_ROTATION_GRACE, NOW).unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    }
}
