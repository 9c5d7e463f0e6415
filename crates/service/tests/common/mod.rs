//! Spawns the real `gender-service serve` binary on a loopback port.
#![allow(dead_code)]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const KEY: &str = "integration-test-key";

pub struct Server {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    pub client: reqwest::Client,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Server {
    pub async fn start(data_dir: &Path, extra: &[&str]) -> Server {
        Server::start_wrapped(data_dir, extra, &[], env!("CARGO_BIN_EXE_gender-service")).await
    }

    /// Like [`Server::start`], under an open-file limit (soft and hard), as
    /// `ulimit -n` would set it.
    pub async fn start_with_fd_limit(data_dir: &Path, extra: &[&str], fd_limit: u64) -> Server {
        let limit = format!("--nofile={fd_limit}:{fd_limit}");
        let binary = env!("CARGO_BIN_EXE_gender-service");
        Server::start_wrapped(data_dir, extra, &["prlimit", &limit], binary).await
    }

    /// Starts `binary serve …` behind a wrapper command (`prlimit`, `setpriv`, …).
    pub async fn start_wrapped(
        data_dir: &Path,
        extra: &[&str],
        wrapper: &[&str],
        binary: &str,
    ) -> Server {
        let port = free_port();
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(binary);
                c
            }
            None => Command::new(binary),
        };
        let child = command
            .args(["serve", "--data-dir"])
            .arg(data_dir)
            .args(["--addr", &format!("127.0.0.1:{port}"), "--api-key", KEY])
            .args(extra)
            .env(
                "GENDER_LOG",
                std::env::var("TEST_SERVER_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn gender-service");
        let server = Server {
            child,
            url: format!("http://127.0.0.1:{port}"),
            data_dir: data_dir.to_owned(),
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                // Below the shortest idle timeout a test gives the server, so
                // a pooled connection is never reused just as the server closes it.
                .pool_idle_timeout(Duration::from_millis(200))
                .build()
                .unwrap(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = server
                .client
                .get(format!("{}/health", server.url))
                .send()
                .await;
            // Serving: tests that expect a degraded server (503) check /health themselves.
            if health.is_ok_and(|r| r.status() == 200 || r.status() == 503) {
                return server;
            }
            assert!(Instant::now() < deadline, "server did not become healthy");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    pub async fn post_hits(
        &self,
        body: impl Into<reqwest::Body>,
        content_type: &str,
    ) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}/hits", self.url))
            .header("x-api-key", KEY)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .unwrap();
        read(r).await
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .get(format!("{}{path}", self.url))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap();
        read(r).await
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .client
            .post(format!("{}{path}", self.url))
            .header("x-api-key", KEY)
            .json(&body)
            .send()
            .await
            .unwrap();
        read(r).await
    }

    pub async fn delete(&self, path: &str) -> (u16, Value) {
        let r = self
            .client
            .delete(format!("{}{path}", self.url))
            .header("x-api-key", KEY)
            .send()
            .await
            .unwrap();
        read(r).await
    }

    /// The Prometheus text of `/metrics`.
    pub async fn metrics_text(&self) -> String {
        self.client
            .get(format!("{}/metrics", self.url))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// One unlabelled sample of `/metrics`.
    pub async fn metric(&self, name: &str) -> f64 {
        let text = self.metrics_text().await;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in /metrics:\n{text}"))
    }

    pub async fn flush(&self) -> Value {
        let (status, body) = self.post("/admin/flush", Value::Null).await;
        assert_eq!(status, 200, "flush: {body}");
        body
    }

    pub fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then the exit status and how long it took.
    pub fn terminate(mut self) -> (std::process::ExitStatus, Duration) {
        let started = Instant::now();
        let pid = self.child.id().to_string();
        assert!(
            Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let deadline = started + Duration::from_secs(40);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, started.elapsed());
            }
            assert!(Instant::now() < deadline, "server ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn read(r: reqwest::Response) -> (u16, Value) {
    let status = r.status().as_u16();
    let text = r.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("non-JSON body for {status}: {text}")),
    )
}

/// Every file under `dir`, at any depth (none if `dir` does not exist).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                out.push(entry.path());
            }
        }
    }
    out
}

/// Every file under curated/ except in-progress names: (key, rows).
pub fn curated_files(
    data_dir: &Path,
    prefix: &str,
) -> Vec<(String, Vec<gender_core::Hit<'static>>)> {
    let root = data_dir.join(prefix);
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries {
            let entry = entry.unwrap();
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || name.starts_with('_') {
                continue;
            }
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
            } else {
                let key = entry
                    .path()
                    .strip_prefix(data_dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let bytes = std::fs::read(entry.path()).unwrap();
                assert_parquet_schema(&bytes, &key);
                let hits = gender_pipeline::codec::decode_hits(bytes, &key)
                    .unwrap_or_else(|e| panic!("{key}: {e}"));
                out.push((key, hits));
            }
        }
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

/// Exactly the four columns of SPEC 6, compressed.
pub fn assert_parquet_schema(bytes: &[u8], key: &str) {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::copy_from_slice(bytes))
        .unwrap_or_else(|e| panic!("{key} is not complete Parquet: {e}"));
    let schema = builder.schema();
    let fields: Vec<String> = schema
        .fields()
        .iter()
        .map(|f| format!("{}:{}", f.name(), f.data_type()))
        .collect();
    assert_eq!(
        fields,
        [
            "clientid:Utf8",
            "page_gender:Utf8",
            "event_time:Timestamp(ms, \"UTC\")",
            "hit_id:Utf8"
        ],
        "{key}"
    );
    for rg in builder.metadata().row_groups() {
        for col in rg.columns() {
            assert_ne!(
                col.compression(),
                parquet::basic::Compression::UNCOMPRESSED,
                "{key}"
            );
        }
    }
}
