//! Request admission of the local server: which requests may take memory
//! for their bodies (issue 26, SPEC 14). One total bound on the request-body
//! bytes held in memory at once, across every connection: a request is
//! charged its body before a byte of it is read, and gives the charge back
//! when its response is ready (the body and what was parsed from it are
//! dropped by then). A request the bound cannot take gets a JSON `503` with
//! `Retry-After` at once, before its body is read, so nothing is stored and
//! no `202` is ever given for it.
//!
//! What a request is charged:
//! - its `Content-Length` when that is within the body limit (a larger one is
//!   refused with `413` by the handler without reading it, so it costs nothing);
//! - the body limit when its length is not declared (chunked): it may grow to that;
//! - nothing when it has no body.
//!
//! Later admission rules (fair shares, goodput under flood) belong here too.

use axum::extract::Request;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;

/// The default bound on request-body bytes held in memory at once: 64 MiB,
/// a dozen bodies of the 5 MiB limit, thousands of typical (few KiB) ones.
pub const DEFAULT_MAX_BODY_MEMORY_BYTES: u64 = 64 * 1024 * 1024;

/// The memory request bodies may hold at once, shared by every connection.
#[derive(Clone)]
pub struct BodyBudget {
    permits: Arc<Semaphore>,
    total: usize,
    /// The body limit of the routes behind the budget (what an undeclared
    /// length is charged).
    max_body_bytes: usize,
    /// Requests refused because the budget was spent.
    refused: Arc<AtomicU64>,
}

impl BodyBudget {
    /// A budget of `total_bytes` for bodies of at most `max_body_bytes`.
    /// A budget below one body limit would refuse the largest bodies
    /// forever, so it is raised to that.
    pub fn new(total_bytes: u64, max_body_bytes: usize) -> BodyBudget {
        let total = usize::try_from(total_bytes)
            .unwrap_or(usize::MAX)
            .clamp(max_body_bytes, Semaphore::MAX_PERMITS);
        BodyBudget {
            permits: Arc::new(Semaphore::new(total)),
            total,
            max_body_bytes,
            refused: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The bound, in bytes.
    pub fn total(&self) -> usize {
        self.total
    }

    /// Bytes charged to requests being handled now.
    pub fn held(&self) -> usize {
        self.total - self.permits.available_permits()
    }

    /// Requests refused so far because the bound was reached.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// What a request with these headers is charged (module docs).
    fn charge(&self, request: &Request) -> usize {
        let headers = request.headers();
        if let Some(length) = headers.get(header::CONTENT_LENGTH) {
            return match length.to_str().ok().and_then(|v| v.parse::<u64>().ok()) {
                Some(n) if n <= self.max_body_bytes as u64 => n as usize,
                // Refused unread by the handler (413), or unparsable (400 from hyper).
                _ => 0,
            };
        }
        if headers.contains_key(header::TRANSFER_ENCODING) {
            return self.max_body_bytes;
        }
        0
    }
}

/// The middleware: charges each request its body (module docs) for as long
/// as it is handled, or answers `503` when the bound is reached.
pub async fn admit_body(
    axum::extract::State(budget): axum::extract::State<BodyBudget>,
    request: Request,
    next: Next,
) -> Response {
    let charge = budget.charge(&request);
    if charge == 0 {
        return next.run(request).await;
    }
    let permit = match budget
        .permits
        .clone()
        .try_acquire_many_owned(u32::try_from(charge).unwrap_or(u32::MAX))
    {
        Ok(permit) => permit,
        Err(_) => {
            let refused = budget.refused.fetch_add(1, Ordering::Relaxed) + 1;
            if refused.is_power_of_two() {
                tracing::warn!(
                    refused,
                    held = budget.held(),
                    bound = budget.total,
                    "request bodies hold their memory bound; refusing more"
                );
            }
            return gender_api::JsonError::unavailable(format!(
                "request bodies being read hold the server's memory bound ({} bytes); \
                 nothing was stored, retry",
                budget.total
            ))
            .with("retryable", true)
            .into_response();
        }
    };
    let response = next.run(request).await;
    drop(permit);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(headers: &[(&str, &str)]) -> Request {
        let mut builder = axum::http::Request::post("/hits");
        for (name, value) in headers {
            builder = builder.header(*name, *value);
        }
        builder.body(axum::body::Body::empty()).unwrap()
    }

    #[test]
    fn a_request_is_charged_its_declared_body_or_the_limit_when_undeclared() {
        let budget = BodyBudget::new(1 << 20, 1000);
        assert_eq!(budget.charge(&request(&[("content-length", "700")])), 700);
        assert_eq!(budget.charge(&request(&[("content-length", "1001")])), 0);
        assert_eq!(
            budget.charge(&request(&[("transfer-encoding", "chunked")])),
            1000
        );
        assert_eq!(budget.charge(&request(&[])), 0);
    }

    #[test]
    fn the_bound_is_at_least_one_body() {
        assert_eq!(BodyBudget::new(10, 1000).total(), 1000);
        assert_eq!(BodyBudget::new(5000, 1000).total(), 5000);
    }
}
