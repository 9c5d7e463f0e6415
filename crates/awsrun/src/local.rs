//! The local deployment: the `gender-service` binary (`serve` on a temp
//! data directory), fed the same traffic as the AWS-shaped stack.

use crate::api::Api;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const KEY: &str = "awsrun-local-key";

pub struct LocalService {
    child: Child,
    pub api: Api,
    _data: tempfile::TempDir,
}

/// `AWSRUN_LOCAL_BIN`, else `gender-service` beside the test's directory
/// (`target/<profile>/`, which `scripts/build-debug` fills).
pub fn binary() -> PathBuf {
    if let Some(path) = std::env::var_os("AWSRUN_LOCAL_BIN") {
        return path.into();
    }
    let exe = std::env::current_exe().expect("the test's path");
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    dir.join("gender-service")
}

impl LocalService {
    pub async fn start() -> LocalService {
        let binary = binary();
        assert!(
            binary.exists(),
            "{} is missing: run `scripts/build-debug` first (scripts/test does), \
             or set AWSRUN_LOCAL_BIN",
            binary.display()
        );
        let data = tempfile::tempdir().expect("a data directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(&binary)
            .args(["serve", "--data-dir"])
            .arg(data.path())
            .args(["--addr", &format!("127.0.0.1:{port}"), "--api-key", KEY])
            .args(["--flush-interval-ms", "200"])
            .env("GENDER_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()));
        let service = LocalService {
            child,
            api: Api::new(&format!("http://127.0.0.1:{port}"), KEY),
            _data: data,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = reqwest::get(format!("{}/health", service.api.base)).await;
            if health.is_ok_and(|r| r.status() == 200) {
                return service;
            }
            assert!(Instant::now() < deadline, "the local service did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Everything accepted so far is visible (`POST /admin/flush`).
    pub async fn flush(&self) {
        let (status, body) = self.api.post("/admin/flush", serde_json::Value::Null).await;
        assert_eq!(status, 200, "local flush: {body}");
    }
}

impl Drop for LocalService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
