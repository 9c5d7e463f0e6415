use anyhow::{Context, Result};
use clap::Args;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Args, Debug)]
pub struct ServeArgs {
    /// Where the log, the state store, raw/ and curated/ live.
    #[arg(long, env = "GENDER_DATA_DIR", default_value = "data")]
    data_dir: PathBuf,
    #[arg(long, env = "GENDER_ADDR", default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// API key for x-api-key; else the one kept in DATA_DIR/api-key, created on first start.
    #[arg(long, env = "GENDER_API_KEY", hide_env_values = true)]
    api_key: Option<String>,
    /// Delivery buffer interval (like Firehose's buffering hint).
    #[arg(long, env = "GENDER_FLUSH_INTERVAL_MS", default_value_t = 1000)]
    flush_interval_ms: u64,
    /// Deliver early once this many log bytes are waiting.
    #[arg(long, env = "GENDER_BUFFER_BYTES", default_value_t = 4 * 1024 * 1024)]
    buffer_bytes: u64,
    /// Delete raw objects once curated (default: keep them as the record of truth).
    #[arg(long, env = "GENDER_DELETE_RAW")]
    delete_raw: bool,
    /// UTC time of the daily job, HH:MM.
    #[arg(long, env = "GENDER_DAILY_AT", default_value = "01:00")]
    daily_at: String,
}

#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    pub addr: SocketAddr,
    pub api_key: String,
    pub flush_interval: Duration,
    pub buffer_bytes: u64,
    pub keep_raw: bool,
    /// Minutes after midnight UTC.
    pub daily_at_minute: u32,
}

fn parse_hh_mm(s: &str) -> Option<u32> {
    let (h, m) = s.split_once(':')?;
    let (h, m): (u32, u32) = (h.parse().ok()?, m.parse().ok()?);
    (h < 24 && m < 60).then_some(h * 60 + m)
}

/// A new random key: 32 hex characters from the OS generator.
fn generate_key() -> Result<String> {
    let mut bytes = [0u8; 16];
    getrandom::fill(&mut bytes).map_err(|e| anyhow::anyhow!("no OS randomness: {e}"))?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The key from the flag or env, else DATA_DIR/api-key, else a new one kept there.
fn resolve_api_key(explicit: Option<String>, data_dir: &Path) -> Result<String> {
    if let Some(key) = explicit.filter(|k| !k.is_empty()) {
        return Ok(key);
    }
    let path = data_dir.join("api-key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let key = existing.trim().to_owned();
        anyhow::ensure!(
            !key.is_empty(),
            "{} is empty; delete it to get a new key",
            path.display()
        );
        return Ok(key);
    }
    let key = generate_key()?;
    write_private(&path, &key).with_context(|| format!("writing {}", path.display()))?;
    Ok(key)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

impl ServeArgs {
    pub fn into_config(self) -> Result<ServeConfig> {
        std::fs::create_dir_all(&self.data_dir)
            .with_context(|| format!("creating data dir {}", self.data_dir.display()))?;
        let daily_at_minute = parse_hh_mm(&self.daily_at).with_context(|| {
            format!(
                "--daily-at / GENDER_DAILY_AT must be HH:MM, got {:?}",
                self.daily_at
            )
        })?;
        anyhow::ensure!(
            self.flush_interval_ms > 0,
            "--flush-interval-ms must be positive"
        );
        Ok(ServeConfig {
            api_key: resolve_api_key(self.api_key, &self.data_dir)?,
            data_dir: self.data_dir,
            addr: self.addr,
            flush_interval: Duration::from_millis(self.flush_interval_ms),
            buffer_bytes: self.buffer_bytes,
            keep_raw: !self.delete_raw,
            daily_at_minute,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn daily_at_parses_hh_mm() {
        assert_eq!(parse_hh_mm("01:00"), Some(60));
        assert_eq!(parse_hh_mm("23:59"), Some(23 * 60 + 59));
        assert_eq!(parse_hh_mm("24:00"), None);
        assert_eq!(parse_hh_mm("1"), None);
    }

    #[test]
    fn key_is_generated_once_then_reused_and_explicit_wins() {
        let dir = tempfile::tempdir().unwrap();
        let first = resolve_api_key(None, dir.path()).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(resolve_api_key(None, dir.path()).unwrap(), first);
        assert_eq!(
            resolve_api_key(Some("mine".into()), dir.path()).unwrap(),
            "mine"
        );
    }
}
