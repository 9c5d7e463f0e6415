//! A full disk under a real server (SPEC 16): the data directory lives on a
//! small tmpfs that the test fills and frees. Needs root (mount); without
//! it the test says so and passes vacuously only outside CI.

mod common;

use common::Server;
use serde_json::{Value, json};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const VISITORS: usize = 20;

struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI runs as root and must be able to mount a tmpfs"
            );
            eprintln!("skipped: cannot mount a tmpfs here (not root)");
            return None;
        }
        Some(Tmpfs(dir.to_owned()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem, then gives back `leave` bytes.
fn fill(dir: &Path, leave: u64) -> PathBuf {
    let path = dir.join("filler");
    let mut file = std::fs::File::create(&path).unwrap();
    let chunk = vec![0xA5u8; 64 * 1024];
    let mut written = 0u64;
    loop {
        match file.write(&chunk) {
            Ok(0) => break,
            Ok(n) => written += n as u64,
            Err(_) => break,
        }
    }
    let _ = file.flush();
    file.set_len(written.saturating_sub(leave)).unwrap();
    path
}

async fn post(server: &Server, n: usize, round: usize) -> (u16, Value) {
    let hits: Vec<Value> = (0..n)
        .map(|i| json!({"clientid": format!("d-{}", i % VISITORS), "pageGender": (["M", "F"][(i + round) % 2])}))
        .collect();
    server
        .post_hits(Value::Array(hits).to_string(), "application/json")
        .await
}

async fn counted(server: &Server) -> u64 {
    let mut total = 0;
    for v in 0..VISITORS {
        let (status, body) = server.get(&format!("/gender/d-{v}")).await;
        if status == 200 {
            total += body["hits"]["M"].as_u64().unwrap() + body["hits"]["F"].as_u64().unwrap();
        }
    }
    total
}

/// Flushes until it succeeds (the pipeline heals by itself), at most 30 s.
async fn flush_until_ok(server: &Server) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, body) = server.post("/admin/flush", Value::Null).await;
        if status == 200 {
            return;
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "pipeline did not resume: {body}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn a_full_disk_fails_the_stage_it_hits_and_the_pipeline_resumes_without_a_restart() {
    let mnt = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(mnt.path(), "24m") else {
        return;
    };
    let data = mnt.path().join("data");
    // No space kept for the backlog: the disk fills inside the pipeline.
    let hold = [
        "--flush-interval-ms",
        "3600000",
        "--buffer-bytes",
        "1000000000",
        "--min-free-bytes",
        "0",
    ];
    let server = Server::start(&data, &hold).await;
    let mut accepted = 0u64;
    let mut saw_stage_failure = false;
    // Leave different amounts of room, so the first write to fail lands in
    // different stages: raw objects, Parquet, the state store.
    for (round, leave) in [0u64, 16 << 10, 64 << 10, 256 << 10, 1 << 20]
        .into_iter()
        .enumerate()
    {
        for _ in 0..5 {
            let (status, body) = post(&server, 400, round).await;
            assert_eq!(status, 202, "{body}");
            accepted += 400;
        }
        let filler = fill(mnt.path(), leave);
        let (status, body) = server.post("/admin/flush", Value::Null).await;
        if status != 200 {
            assert_eq!(status, 503, "{body}");
            let (health_status, health) = server.get("/health").await;
            assert_eq!(
                health_status, 503,
                "a failing stage shows in /health: {health}"
            );
            let text = health.to_string();
            assert!(
                ["delivery", "curate"]
                    .iter()
                    .any(|stage| text.contains(stage)),
                "{text}"
            );
            assert!(
                !text.contains(mnt.path().to_str().unwrap()),
                "no paths in HTTP bodies: {text}"
            );
            saw_stage_failure = true;
        }
        // While the disk is full, ingest answers 503 (nothing stored) or 202 (stored).
        let (status, body) = post(&server, 10, round).await;
        match status {
            202 => accepted += 10,
            503 => assert!(body["error"].is_string(), "{body}"),
            other => panic!("{other}: {body}"),
        }
        std::fs::remove_file(filler).unwrap();
        flush_until_ok(&server).await;
        assert_eq!(counted(&server).await, accepted, "round {round}");
        // Healthy again once the data-dir probe (every second) has seen
        // the freed space.
        health_becomes(&server, 200).await;
    }
    assert!(saw_stage_failure, "no round failed inside the pipeline");
}

/// Polls `/health` until it answers `want` (the data-dir probe runs every second).
async fn health_becomes(server: &Server, want: u16) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = server.get("/health").await;
        if status == want {
            return body;
        }
        assert!(Instant::now() < deadline, "health stayed {status}: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `/health` until its body mentions `what` (the data-dir probe runs every second).
async fn health_names(server: &Server, what: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (status, body) = server.get("/health").await;
        if status == 503 && body.to_string().contains(what) {
            return body;
        }
        assert!(
            Instant::now() < deadline,
            "health never named {what}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_removed_data_directory_stops_ingest_and_fails_health() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let server = Server::start(&data, &[]).await;
    assert_eq!(post(&server, 10, 0).await.0, 202);
    std::fs::remove_dir_all(&data).unwrap();
    let (status, body) = post(&server, 10, 0).await;
    assert_eq!(
        status, 503,
        "no 202 for hits written to a deleted log: {body}"
    );
    let health = health_names(&server, "data directory").await;
    assert!(
        !health.to_string().contains(dir.path().to_str().unwrap()),
        "{health}"
    );
}

/// The server runs as an unprivileged user, so that taking the write
/// permission away from its data directory bites (root would ignore it).
#[tokio::test]
async fn a_read_only_data_directory_stops_ingest_until_it_is_writable_again() {
    use std::os::unix::fs::PermissionsExt;
    if !nix_is_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        eprintln!("skipped: needs root to run the server as another user");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir(&data).unwrap();
    // A copy of the binary the other user may run, wherever the checkout is.
    let binary = dir.path().join("gender-service");
    std::fs::copy(env!("CARGO_BIN_EXE_gender-service"), &binary).unwrap();
    let chown = |path: &Path| {
        assert!(
            Command::new("chown")
                .args(["-R", "65534:65534"])
                .arg(path)
                .status()
                .unwrap()
                .success()
        )
    };
    chown(&data);
    let wrapper = [
        "setpriv",
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
    ];
    let server = Server::start_wrapped(&data, &[], &wrapper, binary.to_str().unwrap()).await;
    assert_eq!(post(&server, 10, 0).await.0, 202);

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o555)).unwrap();
    health_names(&server, "data directory").await;
    let (status, body) = post(&server, 10, 0).await;
    assert_eq!(status, 503, "{body}");

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o755)).unwrap();
    health_becomes(&server, 200).await;
    assert_eq!(post(&server, 10, 0).await.0, 202);
    flush_until_ok(&server).await;
    assert_eq!(counted(&server).await, 20);
}

fn nix_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// EIO from the disk: `fsync`/`fdatasync` fail while a flag file exists (a
/// preloaded shim, `tests/faults/eio_fsync.c`, built here with `cc`). Every
/// stage syncs, so every stage meets it; the pipeline must resume by itself
/// once the flag is gone, with every 202'd hit counted once.
#[tokio::test]
async fn eio_on_sync_fails_the_stages_and_the_pipeline_resumes_without_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let shim = dir.path().join("eio_fsync.so");
    let built = Command::new("cc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&shim)
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/faults/eio_fsync.c"
        ))
        .arg("-ldl")
        .status();
    if !built.is_ok_and(|s| s.success()) {
        assert!(std::env::var_os("CI").is_none(), "CI machines have cc");
        eprintln!("skipped: no C compiler to build the fault shim");
        return;
    }
    let flag = dir.path().join("eio-now");
    let data = dir.path().join("data");
    let preload = format!("LD_PRELOAD={}", shim.display());
    let flag_env = format!("GENDER_TEST_EIO_FLAG={}", flag.display());
    let hold = [
        "--flush-interval-ms",
        "3600000",
        "--buffer-bytes",
        "1000000000",
    ];
    let server = Server::start_wrapped(
        &data,
        &hold,
        &["env", &preload, &flag_env],
        env!("CARGO_BIN_EXE_gender-service"),
    )
    .await;
    let mut accepted = 0u64;
    for round in 0..3 {
        for _ in 0..3 {
            let (status, body) = post(&server, 300, round).await;
            assert_eq!(status, 202, "{body}");
            accepted += 300;
        }
        std::fs::write(&flag, b"").unwrap();
        // Ingest cannot make hits durable: 503, nothing counted.
        let (status, body) = post(&server, 10, round).await;
        assert_eq!(status, 503, "a 202 without a good fsync: {body}");
        let (status, body) = server.post("/admin/flush", Value::Null).await;
        assert_eq!(status, 503, "{body}");
        assert!(body.to_string().contains("Input/output error"), "{body}");
        let (health_status, health) = server.get("/health").await;
        assert_eq!(health_status, 503, "{health}");
        std::fs::remove_file(&flag).unwrap();
        flush_until_ok(&server).await;
        assert_eq!(counted(&server).await, accepted, "round {round}");
        assert_eq!(server.get("/health").await.0, 200);
    }
}

/// The space the pipeline needs is kept for it (issue 26): ingest answers
/// `503` while free space is below what the backlog needs to be delivered
/// and curated plus `--min-free-bytes`, so every `202`'d hit becomes visible
/// without the operator freeing anything; after a restart on a full disk,
/// `/health` names what cannot write and a flush answers `503` with the
/// reason within its timeout; once space is freed everything acknowledged
/// is visible.
#[tokio::test]
async fn ingest_keeps_the_space_the_backlog_needs_and_a_full_disk_after_restart_is_reported() {
    let mnt = tempfile::tempdir().unwrap();
    let Some(_tmpfs) = Tmpfs::mount(mnt.path(), "20m") else {
        return;
    };
    let data = mnt.path().join("data");
    let args = [
        "--flush-interval-ms",
        "3600000",
        "--buffer-bytes",
        "1000000000",
        "--min-free-bytes",
        "1048576",
        "--flush-timeout-ms",
        "5000",
    ];
    let server = Server::start(&data, &args).await;
    // 8 MiB left: the log alone would take all of it.
    let filler = fill(mnt.path(), 8 << 20);
    let mut accepted = 0u64;
    let mut refusal = None;
    for round in 0..400 {
        let (status, body) = post(&server, 400, round).await;
        match status {
            202 => accepted += 400,
            503 => {
                refusal = Some(body);
                break;
            }
            other => panic!("{other}: {body}"),
        }
    }
    let refusal = refusal.expect("ingest never refused on a filling disk");
    assert!(
        refusal["error"].as_str().unwrap().contains("disk"),
        "{refusal}"
    );
    assert_eq!(refusal["retryable"], json!(true), "{refusal}");
    let (status, health) = server.get("/health").await;
    assert_eq!(status, 503, "{health}");
    // Nothing freed: what was acknowledged is delivered in the space kept.
    let (status, body) = server.post("/admin/flush", Value::Null).await;
    assert_eq!(status, 200, "the reserved space was not enough: {body}");
    assert_eq!(counted(&server).await, accepted);

    // Room again; acknowledged hits waiting, then the disk fills up under
    // a stopped server.
    std::fs::remove_file(&filler).unwrap();
    for round in 0..20 {
        let (status, body) = post(&server, 400, round).await;
        assert_eq!(status, 202, "{body}");
        accepted += 400;
    }
    server.kill9();
    // Full but for what the state store needs to open.
    let full = fill(mnt.path(), 256 << 10);
    let server = Server::start(&data, &args).await;
    let (status, health) = server.get("/health").await;
    assert_eq!(status, 503, "a full disk after a restart: {health}");
    let (status, body) = server.post("/admin/flush", Value::Null).await;
    assert_eq!(status, 503, "{body}");
    assert!(body["error"].is_string(), "{body}");
    let (status, body) = post(&server, 10, 0).await;
    assert_eq!(status, 503, "{body}");

    std::fs::remove_file(full).unwrap();
    flush_until_ok(&server).await;
    assert_eq!(counted(&server).await, accepted);
    assert_eq!(server.get("/health").await.0, 200);
}
