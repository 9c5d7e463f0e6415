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
