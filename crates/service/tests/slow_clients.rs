//! Slow and idle clients against a real server (SPEC 16): headers that never
//! finish, bodies that trickle, idle keep-alive connections, and more of
//! them than the process has file descriptors for.

mod common;

use common::Server;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

const FAST: [&str; 6] = [
    "--header-timeout-ms",
    "500",
    "--request-timeout-ms",
    "1500",
    "--flush-interval-ms",
    "100",
];

fn connect(url: &str) -> TcpStream {
    let addr = url.trim_start_matches("http://");
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// True when the server closed the connection (EOF or reset) within `within`.
fn closed_within(stream: &mut TcpStream, within: Duration) -> bool {
    stream.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue, // a response; keep reading until the close
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[tokio::test]
async fn half_sent_headers_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &FAST).await;
    let mut slow: Vec<TcpStream> = (0..50)
        .map(|_| {
            let mut s = connect(&server.url);
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                .unwrap();
            s
        })
        .collect();
    let mut idle = connect(&server.url);
    idle.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Meanwhile a normal client is served.
    assert_eq!(server.get("/health").await.0, 200);
    for s in &mut slow {
        assert!(
            closed_within(s, Duration::from_secs(5)),
            "slow header kept open"
        );
    }
    assert!(
        closed_within(&mut idle, Duration::from_secs(5)),
        "idle keep-alive connection kept open"
    );
}

#[tokio::test]
async fn a_trickling_body_gets_a_json_408_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &FAST).await;
    let mut s = connect(&server.url);
    let body = br#"[{"clientid":"trickle","pageGender":"F"}]"#;
    write!(
        s,
        "POST /hits HTTP/1.1\r\nHost: x\r\nx-api-key: {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
        common::KEY,
        body.len()
    )
    .unwrap();
    let started = Instant::now();
    let mut response = Vec::new();
    s.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    for byte in &body[..body.len() - 1] {
        s.write_all(&[*byte]).unwrap();
        let mut buf = [0u8; 1024];
        if let Ok(n @ 1..) = s.read(&mut buf) {
            response.extend_from_slice(&buf[..n]);
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "no answer to a trickling body"
        );
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    let json_body = text.split("\r\n\r\n").nth(1).unwrap_or_default();
    let parsed: Value = serde_json::from_str(json_body).unwrap_or(Value::Null);
    assert!(parsed["error"].is_string(), "{text}");
    server.flush().await;
    assert_eq!(server.get("/gender/trickle").await.0, 404, "nothing stored");
}

#[tokio::test]
async fn more_idle_connections_than_file_descriptors_do_not_lock_clients_out() {
    let dir = tempfile::tempdir().unwrap();
    // The server runs under a 300-descriptor limit (soft and hard).
    let server = Server::start_with_fd_limit(dir.path(), &FAST, 300).await;
    let held: Vec<TcpStream> = (0..600)
        .filter_map(|_| {
            let addr = server.url.trim_start_matches("http://").to_owned();
            TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).ok()
        })
        .collect();
    assert!(held.len() >= 300, "opened {} connections", held.len());
    // Clients are still served (the idle ones are closed after the header
    // timeout; until then new ones wait in the accept queue).
    let (status, body) = server
        .post_hits(
            json!([{"clientid": "fd-limit", "pageGender": "M"}]).to_string(),
            "application/json",
        )
        .await;
    assert_eq!(status, 202, "{body}");
    server.flush().await;
    assert_eq!(server.get("/gender/fd-limit").await.0, 200);
    assert_eq!(server.get("/health").await.0, 200);
    drop(held);
}

/// Sends raw bytes, returns the status line and the body of the answer.
fn raw_exchange(url: &str, request: &[u8]) -> (String, String) {
    let mut s = connect(url);
    let _ = s.write_all(request);
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

#[tokio::test]
async fn requests_that_cannot_be_parsed_get_json_errors_too() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &FAST).await;
    let long_uri = format!(
        "GET /gender/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "a".repeat(100_000)
    );
    let big_header = format!(
        "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(500_000)
    );
    for (request, status) in [
        (b"GET /hea\0lth HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(), "400"),
        // The request line counts toward the head's 64 KiB: 431, not 414.
        (long_uri.into_bytes(), "431"),
        (big_header.into_bytes(), "431"),
    ] {
        let (line, body) = raw_exchange(&server.url, &request);
        assert!(line.starts_with(&format!("HTTP/1.1 {status}")), "{line}");
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert!(parsed["error"].is_string(), "{line}: {body:?}");
    }
    assert_eq!(server.get("/health").await.0, 200);
}

fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap()
}

/// Opens `n` connections that each send one request and then stay idle,
/// waits for the answers, then drops them all.
fn connection_round(url: &str, n: usize) {
    let mut streams: Vec<TcpStream> = (0..n)
        .filter_map(|_| {
            let mut s = TcpStream::connect(url.trim_start_matches("http://")).ok()?;
            s.write_all(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
                .ok()?;
            Some(s)
        })
        .collect();
    for s in &mut streams {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut buf = [0u8; 512];
        let _ = s.read(&mut buf);
    }
}

#[tokio::test]
async fn memory_is_given_back_after_many_connections() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &FAST).await;
    let pid = server.child.id();
    let mut after = Vec::new();
    for _ in 0..4 {
        let url = server.url.clone();
        tokio::task::spawn_blocking(move || connection_round(&url, 1000))
            .await
            .unwrap();
        // Past the idle timeout, every connection is gone.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        after.push(rss_kib(pid));
    }
    eprintln!("RSS after each round of 1000 connections (KiB): {after:?}");
    let growth = after[3].saturating_sub(after[1]);
    assert!(growth < 16 * 1024, "RSS keeps growing: {after:?}");
    assert!(after[3] < 128 * 1024, "RSS not given back: {after:?}");
}

/// Sends `request` in `piece`-byte writes from a thread of its own (the
/// server may answer and close before reading it all) and reads the answer.
fn piecewise_exchange(url: &str, request: Vec<u8>, piece: usize) -> (String, String) {
    let mut s = connect(url);
    let mut writer = s.try_clone().unwrap();
    let sending = std::thread::spawn(move || {
        for chunk in request.chunks(piece) {
            if writer.write_all(chunk).is_err() {
                return;
            }
        }
    });
    let mut answer = Vec::new();
    let _ = s.read_to_end(&mut answer);
    let _ = sending.join();
    let text = String::from_utf8_lossy(&answer).into_owned();
    let status = text.lines().next().unwrap_or_default().to_owned();
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    (status, body)
}

/// The request head's documented total limit (64 KiB by default): past it
/// a JSON 431, whatever the shape (one huge header, many mid-sized ones)
/// and however the head arrives (at once, in pieces); within it, served.
#[tokio::test]
async fn request_heads_over_64_kib_get_a_json_431_whatever_their_shape() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &FAST).await;
    let one_header = |bytes: usize| {
        format!(
            "GET /health HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
            "b".repeat(bytes)
        )
        .into_bytes()
    };
    let many_headers = {
        let headers: String = (0..40)
            .map(|i| format!("X-H{i}: {}\r\n", "h".repeat(2000)))
            .collect();
        format!("GET /health HTTP/1.1\r\nHost: x\r\n{headers}\r\n").into_bytes()
    };
    let post_with_big_header = {
        let body = r#"{"clientid":"big-head","pageGender":"F"}"#;
        format!(
            "POST /hits HTTP/1.1\r\nHost: x\r\nx-api-key: {}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nX-Big: {}\r\n\r\n{body}",
            common::KEY,
            body.len(),
            "c".repeat(500_000)
        )
        .into_bytes()
    };
    for (what, request, piece) in [
        ("one 70 KB header", one_header(70_000), usize::MAX),
        ("one 70 KB header in pieces", one_header(70_000), 4096),
        ("40 headers of 2 KB", many_headers, usize::MAX),
        ("one 500 KB header", one_header(500_000), usize::MAX),
        ("one 500 KB header in pieces", one_header(500_000), 16_384),
        (
            "an authenticated POST with a 500 KB header",
            post_with_big_header,
            65_536,
        ),
    ] {
        let url = server.url.clone();
        let (line, body) =
            tokio::task::spawn_blocking(move || piecewise_exchange(&url, request, piece))
                .await
                .unwrap();
        assert!(line.starts_with("HTTP/1.1 431"), "{what}: {line}");
        let parsed: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        assert!(parsed["error"].is_string(), "{what}: {body:?}");
    }
    // Within the limit, a large head is served.
    let url = server.url.clone();
    let (line, _) =
        tokio::task::spawn_blocking(move || piecewise_exchange(&url, one_header(60_000), 8192))
            .await
            .unwrap();
    assert!(line.starts_with("HTTP/1.1 200"), "60 KB head: {line}");
    // Nothing of the refused POST was stored.
    server.flush().await;
    assert_eq!(server.get("/gender/big-head").await.0, 404);
}
