//! The local HTTP server's connections (SPEC 16): slow or idle clients
//! cannot exhaust it. Headers must arrive within a deadline (which also
//! closes idle keep-alive connections, since hyper arms it whenever it waits
//! for the next request), a request must be answered within another one (a
//! body trickling in is cut off with a JSON 408), and the number of open
//! connections is bounded below the file-descriptor limit, which is raised to
//! its hard maximum at start. Past the bound, new connections wait in the
//! kernel's accept queue instead of taking descriptors the log and the state
//! store need.

use axum::Router;
use axum::extract::Request;
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::IntoResponse;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

/// Limits on connections and requests.
#[derive(Debug, Clone, Copy)]
pub struct ConnectionLimits {
    /// Open connections at most (also capped by the descriptor limit).
    pub max_connections: usize,
    /// A request's headers, and the next request on an idle keep-alive
    /// connection, must arrive within this.
    pub header_timeout: Duration,
    /// A public API request (body included) must be done within this.
    pub request_timeout: Duration,
    /// A request's head (request line and every header) in bytes at most;
    /// more gets a JSON `431` and the connection is closed.
    pub max_header_bytes: usize,
}

/// The default total size of a request's head: 64 KiB, far above what a
/// browser or SDK sends (a few KiB), and the most a connection buffers
/// before a route runs.
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;

/// Headers per request at most (hyper's own default, stated here so it is
/// documented): more gets a JSON `431` too.
pub const MAX_HEADERS: usize = 100;

/// hyper's read buffer may not be smaller than this.
const MIN_HEADER_BYTES: usize = 8192;

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
        }
    }
}

/// Descriptors kept for the log, the state store, objects being written and
/// the process itself.
const RESERVED_FDS: u64 = 256;

/// Raises the soft open-file limit to the hard one; returns the soft limit.
pub fn raise_fd_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit with a valid pointer to an rlimit.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// How many connections may be open at once under `fd_limit`.
pub fn connection_bound(limits: &ConnectionLimits, fd_limit: u64) -> usize {
    let by_fds = fd_limit.saturating_sub(RESERVED_FDS).max(16) as usize;
    limits.max_connections.min(by_fds)
}

/// The JSON 408 for a request not done within `timeout`.
pub fn with_request_timeout(router: Router, timeout: Duration) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: Request, next: Next| async move {
            match tokio::time::timeout(timeout, next.run(request)).await {
                Ok(response) => response,
                Err(_) => gender_api::JsonError::new(
                    StatusCode::REQUEST_TIMEOUT,
                    format!("request not complete within {} s", timeout.as_secs()),
                )
                .into_response(),
            }
        },
    ))
}

/// Serves `app` on `listener` until `shutdown` resolves, then lets open
/// requests finish for up to `drain`.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: ConnectionLimits,
    max_connections: usize,
    shutdown: impl Future<Output = ()>,
    drain: Duration,
) -> std::io::Result<()> {
    let slots = Arc::new(Semaphore::new(max_connections));
    let graceful = GracefulShutdown::new();
    let mut http = hyper::server::conn::http1::Builder::new();
    http.timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        // The head's total size, checked on every read and on the parsed
        // head, so a header of any size is refused past it (JSON 431 below);
        // the read buffer stays that small too while a head is incomplete.
        .max_header_size(limits.max_header_bytes.max(MIN_HEADER_BYTES))
        .max_buf_size(limits.max_header_bytes.max(MIN_HEADER_BYTES))
        .max_headers(MAX_HEADERS)
        .keep_alive(true)
        // One buffer per write, so that JsonParseErrors sees a whole head.
        .writev(false);
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors or a reset before accept: wait a moment, go on.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        let service =
            hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                // The client address, for per-address limits (rate_limit).
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(peer));
                tower::ServiceExt::oneshot(app.clone(), request)
            });
        let io = TokioIo::new(JsonParseErrors::new(stream));
        let connection = graceful.watch(http.serve_connection(io, service));
        tokio::spawn(async move {
            // Timeouts and clients that go away end here; neither is news.
            let _ = connection.await;
            drop(slot);
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("in-flight requests did not finish in time");
    }
    Ok(())
}

/// The responses hyper writes by itself when it cannot parse a request
/// (before any route runs) have no body. This gives them the JSON error body
/// every other error has: a `400`, `414` or `431` with `content-length: 0`
/// can only come from hyper, since every error response of the Router
/// carries a JSON body.
struct JsonParseErrors<S> {
    inner: S,
    /// A rewritten response being written: bytes, how many are written, and
    /// the length of hyper's original (what the write reports).
    pending: Option<(Vec<u8>, usize, usize)>,
}

impl<S> JsonParseErrors<S> {
    fn new(inner: S) -> Self {
        JsonParseErrors {
            inner,
            pending: None,
        }
    }
}

/// The JSON version of one of hyper's automatic error responses, if `head` is one.
fn json_parse_error(head: &[u8]) -> Option<Vec<u8>> {
    let (status, reason, message) = [
        (400u16, "Bad Request", "the request could not be parsed"),
        (414, "URI Too Long", "the request URI is too long"),
        (
            431,
            "Request Header Fields Too Large",
            "the request headers are too large",
        ),
    ]
    .into_iter()
    .find(|(status, _, _)| head.starts_with(format!("HTTP/1.1 {status} ").as_bytes()))?;
    let text = std::str::from_utf8(head).ok()?;
    let bodyless = text.ends_with("\r\n\r\n")
        && text
            .lines()
            .any(|l| l.eq_ignore_ascii_case("content-length: 0"));
    if !bodyless {
        return None;
    }
    let body = serde_json::json!({ "error": message }).to_string();
    Some(
        format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        )
        .into_bytes(),
    )
}

impl<S: tokio::io::AsyncRead + Unpin> tokio::io::AsyncRead for JsonParseErrors<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: tokio::io::AsyncWrite + Unpin> tokio::io::AsyncWrite for JsonParseErrors<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        use std::task::Poll;
        if self.pending.is_none()
            && let Some(rewritten) = json_parse_error(buf)
        {
            self.pending = Some((rewritten, 0, buf.len()));
        }
        let this = &mut *self;
        let Some((bytes, written, original)) = &mut this.pending else {
            return std::pin::Pin::new(&mut this.inner).poll_write(cx, buf);
        };
        while *written < bytes.len() {
            match std::pin::Pin::new(&mut this.inner).poll_write(cx, &bytes[*written..]) {
                Poll::Ready(Ok(0)) => {
                    return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
                }
                Poll::Ready(Ok(n)) => *written += n,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        let original = *original;
        this.pending = None;
        Poll::Ready(Ok(original))
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_bodyless_parse_errors_are_rewritten() {
        let hyper_400 = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\ndate: Thu, 26 Nov 2026 00:00:00 GMT\r\n\r\n";
        let rewritten = String::from_utf8(json_parse_error(hyper_400).unwrap()).unwrap();
        assert!(
            rewritten.starts_with("HTTP/1.1 400 Bad Request\r\ncontent-type: application/json")
        );
        assert!(rewritten.ends_with(r#"{"error":"the request could not be parsed"}"#));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\ncontent-length: 20\r\n\r\n";
        assert_eq!(json_parse_error(ours), None);
        assert_eq!(
            json_parse_error(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"),
            None
        );
    }
}
