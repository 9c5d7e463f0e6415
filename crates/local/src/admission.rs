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
//! Ingest under overload ([`IngestGate`], SPEC 14 "overload costs little"):
//! at most a few `POST /hits` are read, parsed and appended at once; the
//! others wait their turn with their bodies unread, so TCP pushes back on
//! the senders, whatever their number. A request whose turn comes while the
//! pipeline is behind its backlog bound waits for room (holding its turn)
//! before its body is read, so closed-loop senders are paced by the
//! pipeline's drain rate instead of being refused, re-sending and taking
//! the pipeline's CPU; past that wait the handler refuses with `503` and
//! `Retry-After` as before.

use axum::extract::Request;
use axum::http::Method;
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
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
            if let Some(refused) = count_refusal(&budget.refused) {
                tracing::warn!(
                    refused,
                    held = budget.held(),
                    bound = budget.total,
                    "request bodies hold their memory bound; refusing more"
                );
            }
            return refused_unread(format!(
                "request bodies being read hold the server's memory bound ({} bytes)",
                budget.total
            ));
        }
    };
    let response = next.run(request).await;
    drop(permit);
    response
}

/// `POST /hits` handled at once by default: enough to keep the parser and
/// the log's group commit busy on a few cores, few enough that a flood of
/// connections costs no more CPU than a handful do (docs/PERFORMANCE.md,
/// "Closed-loop floods": 4 and 8 were alike, 16 lost more at 1,024
/// connections).
pub const DEFAULT_INGEST_IN_FLIGHT: usize = 8;
/// How long a request waits for its turn before `503`: well inside the
/// request timeout, long enough to ride out a checkpoint.
pub const DEFAULT_INGEST_QUEUE_WAIT: Duration = Duration::from_secs(10);
/// How long a request whose turn came waits for the pipeline to make room.
pub const DEFAULT_INGEST_ROOM_WAIT: Duration = Duration::from_secs(2);
/// How often a request waiting for room looks again (only the requests
/// holding a turn poll: at most `in_flight` of them).
const ROOM_POLL: Duration = Duration::from_millis(2);

/// Turns for `POST /hits` (module docs).
#[derive(Clone)]
pub struct IngestGate {
    turns: Arc<Semaphore>,
    in_flight: usize,
    queue_wait: Duration,
    room_wait: Duration,
    room: Arc<dyn Fn() -> bool + Send + Sync>,
    /// Requests refused because no turn came within `queue_wait`.
    refused: Arc<AtomicU64>,
}

impl IngestGate {
    /// `room`: whether the pipeline would take an append now (not counted
    /// as a refusal when it says no).
    pub fn new(
        in_flight: usize,
        queue_wait: Duration,
        room_wait: Duration,
        room: impl Fn() -> bool + Send + Sync + 'static,
    ) -> IngestGate {
        let in_flight = in_flight.clamp(1, Semaphore::MAX_PERMITS);
        IngestGate {
            turns: Arc::new(Semaphore::new(in_flight)),
            in_flight,
            queue_wait,
            room_wait,
            room: Arc::new(room),
            refused: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Requests handled now.
    pub fn handling(&self) -> usize {
        self.in_flight - self.turns.available_permits()
    }

    /// Requests refused so far because no turn came in time.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Waits until the pipeline has room or `room_wait` has passed.
    async fn wait_for_room(&self) {
        let deadline = tokio::time::Instant::now() + self.room_wait;
        while !(self.room)() && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(ROOM_POLL).await;
        }
    }
}

/// The middleware: `POST /hits` waits for a turn (and then for room), every
/// other request passes.
pub async fn admit_ingest(
    axum::extract::State(gate): axum::extract::State<IngestGate>,
    request: Request,
    next: Next,
) -> Response {
    if request.method() != Method::POST || request.uri().path() != "/hits" {
        return next.run(request).await;
    }
    let turn = match tokio::time::timeout(gate.queue_wait, gate.turns.clone().acquire_owned()).await
    {
        Ok(Ok(turn)) => turn,
        _ => {
            if let Some(refused) = count_refusal(&gate.refused) {
                tracing::warn!(
                    refused,
                    in_flight = gate.in_flight,
                    "ingest requests waited past their turn; refusing"
                );
            }
            return refused_unread(format!(
                "{} ingest requests are being handled and others wait before this one",
                gate.in_flight
            ));
        }
    };
    gate.wait_for_room().await;
    let response = next.run(request).await;
    drop(turn);
    response
}

/// Counts one refusal and returns the count when it is worth a log line
/// (the 1st, 2nd, 4th, ...): a flood of refusals logs a handful of lines.
fn count_refusal(refused: &AtomicU64) -> Option<u64> {
    let count = refused.fetch_add(1, Ordering::Relaxed) + 1;
    count.is_power_of_two().then_some(count)
}

/// The `503` + `Retry-After` of a request refused before its body was read.
fn refused_unread(reason: String) -> Response {
    gender_api::JsonError::unavailable(format!("{reason}; nothing was stored, retry"))
        .with("retryable", true)
        .into_response()
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

    fn gate(in_flight: usize, room: bool) -> IngestGate {
        IngestGate::new(
            in_flight,
            Duration::from_millis(200),
            Duration::from_millis(300),
            move || room,
        )
    }

    async fn post_hits(gate: IngestGate, entered: Arc<AtomicU64>) -> axum::http::StatusCode {
        use tower::ServiceExt;
        let app = axum::Router::new()
            .route(
                "/hits",
                axum::routing::post(move || async move {
                    entered.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    axum::http::StatusCode::ACCEPTED
                }),
            )
            .layer(axum::middleware::from_fn_with_state(gate, admit_ingest));
        app.oneshot(request(&[]))
            .await
            .expect("infallible")
            .status()
    }

    #[tokio::test]
    async fn requests_past_the_in_flight_bound_wait_their_turn_then_are_refused() {
        // One turn, each request holds it 100 ms, a turn is waited for at
        // most 200 ms: of six at once, the first three are served in turn
        // (0, 100, 200 ms) and the rest refused with 503.
        let gate = gate(1, true);
        let entered = Arc::new(AtomicU64::new(0));
        let mut requests = tokio::task::JoinSet::new();
        for _ in 0..6 {
            requests.spawn(post_hits(gate.clone(), entered.clone()));
        }
        let answers = requests.join_all().await;
        let served = answers.iter().filter(|s| s.as_u16() == 202).count();
        let refused = answers.iter().filter(|s| s.as_u16() == 503).count();
        assert_eq!(served + refused, 6, "{answers:?}");
        assert!((1..=3).contains(&served), "{answers:?}");
        assert_eq!(entered.load(Ordering::SeqCst) as usize, served);
        assert_eq!(gate.refused() as usize, refused);
        assert_eq!(gate.handling(), 0);
    }

    #[tokio::test]
    async fn a_request_waits_for_room_then_goes_on_to_the_handler() {
        // No room ever: the request waits room_wait, then the handler (which
        // refuses in the real server) is reached.
        let gate = gate(4, false);
        let entered = Arc::new(AtomicU64::new(0));
        let started = tokio::time::Instant::now();
        assert_eq!(post_hits(gate, entered.clone()).await.as_u16(), 202);
        assert!(started.elapsed() >= Duration::from_millis(300));
        assert_eq!(entered.load(Ordering::SeqCst), 1);
    }
}
