//! Request bodies under a total memory bound (SPEC 14, issue 26): slow
//! clients sending the largest bodies cannot make the server hold more than
//! `--max-body-memory-bytes` of them, the rest get a JSON `503` before their
//! body is read, and the memory goes back to the OS once they are gone.
//! Real sockets against the real binary; RSS read from /proc.

mod common;

use common::{KEY, Server};
use serde_json::{Value, json};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const CONNECTIONS: usize = 100;
const BODY: usize = 5 * 1024 * 1024;
const BOUND: u64 = 16 * 1024 * 1024;
const MIB: u64 = 1024 * 1024;

fn rss_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap();
    kib * 1024
}

/// What became of one stalled upload.
enum Upload {
    /// The server took the body so far and waits for its last byte.
    Stalled(tokio::net::TcpStream),
    /// The server answered before the body was sent (status line).
    Answered(String),
}

/// Sends the head and all but the last byte of a 5 MiB body, then stalls.
async fn stalled_upload(addr: String) -> Upload {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /hits HTTP/1.1\r\nHost: x\r\nx-api-key: {KEY}\r\ncontent-type: application/json\r\ncontent-length: {BODY}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    // Mostly spaces: JSON whitespace, never finished.
    let mut body = vec![b' '; BODY - 1];
    body[0] = b'[';
    let sent = tokio::time::timeout(Duration::from_secs(60), stream.write_all(&body)).await;
    let mut answer = [0u8; 512];
    match sent {
        Ok(Ok(())) => {
            // All sent: an answer now would mean the body was refused.
            match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut answer)).await {
                Ok(Ok(n)) if n > 0 => {
                    Upload::Answered(String::from_utf8_lossy(&answer[..n]).into_owned())
                }
                _ => Upload::Stalled(stream),
            }
        }
        // The server answered and closed while the body was being sent.
        _ => {
            let n = stream.read(&mut answer).await.unwrap_or(0);
            Upload::Answered(String::from_utf8_lossy(&answer[..n]).into_owned())
        }
    }
}

#[tokio::test]
async fn stalled_large_bodies_hold_at_most_the_bound_and_the_memory_is_returned() {
    let dir = tempfile::tempdir().unwrap();
    let bound = BOUND.to_string();
    let server = Server::start(
        dir.path(),
        &[
            "--max-body-memory-bytes",
            &bound,
            "--request-timeout-ms",
            "600000",
            "--header-timeout-ms",
            "600000",
        ],
    )
    .await;
    let pid = server.child.id();
    // Warm up: the runtime, the log and the state store have their memory.
    for i in 0..20 {
        let hits: Vec<Value> = (0..200)
            .map(|j| json!({"clientid": format!("w-{}", (i * 200 + j) % 50), "pageGender": "F"}))
            .collect();
        let (status, body) = server
            .post_hits(Value::Array(hits).to_string(), "application/json")
            .await;
        assert_eq!(status, 202, "{body}");
    }
    server.flush().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let before = rss_bytes(pid);

    let addr = server.url.trim_start_matches("http://").to_owned();
    let uploads: Vec<_> = (0..CONNECTIONS)
        .map(|_| tokio::spawn(stalled_upload(addr.clone())))
        .collect();
    let mut stalled = Vec::new();
    let mut answered = Vec::new();
    for upload in uploads {
        match upload.await.unwrap() {
            Upload::Stalled(stream) => stalled.push(stream),
            Upload::Answered(line) => answered.push(line),
        }
    }
    // The peak while they stall.
    let mut peak = 0;
    for _ in 0..20 {
        peak = peak.max(rss_bytes(pid));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "RSS before {} MiB, with {} stalled bodies {} MiB ({} answered early)",
        before / MIB,
        stalled.len(),
        peak / MIB,
        answered.len()
    );
    assert!(
        !stalled.is_empty(),
        "the bound admits at least one body: {answered:?}"
    );
    // Refused before their body was read: a 503 with Retry-After (an empty
    // answer is a reset that overtook it, which the kernel may do when the
    // server closes with the unread body in its buffer).
    for line in answered.iter().filter(|l| !l.is_empty()) {
        assert!(line.starts_with("HTTP/1.1 503"), "{line}");
        assert!(line.to_ascii_lowercase().contains("retry-after"), "{line}");
    }
    assert!(
        answered.iter().any(|l| l.starts_with("HTTP/1.1 503")),
        "no refusal seen: {answered:?}"
    );
    assert!(
        peak.saturating_sub(before) <= BOUND + 32 * MIB,
        "RSS rose from {} to {} MiB with a {} MiB bound",
        before / MIB,
        peak / MIB,
        BOUND / MIB
    );

    drop(stalled);
    // Given back to the OS once they are gone (not a timing: at most 30 s).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut after = rss_bytes(pid);
    while after > before + 50 * 1_000_000 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(250)).await;
        after = rss_bytes(pid);
    }
    eprintln!("RSS after they closed: {} MiB", after / MIB);
    assert!(
        after <= before + 50 * 1_000_000,
        "RSS stays at {} MiB (before: {} MiB)",
        after / MIB,
        before / MIB
    );
    // The budget is whole again: a large body is taken.
    let hits: Vec<Value> = (0..500)
        .map(|j| json!({"clientid": format!("after-{}", j % 10), "pageGender": "M", "pad": "p".repeat(1000)}))
        .collect();
    let (status, body) = server
        .post_hits(Value::Array(hits).to_string(), "application/json")
        .await;
    assert_eq!(status, 202, "{body}");
}
