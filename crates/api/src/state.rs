//! What the API handlers need, behind ports.

use crate::auth::Keys;
use crate::cors::CorsOrigins;
use crate::metrics::ApiMetrics;
use gender_core::hitid::HitIds;
use gender_core::ports::{Erasures, HealthProbe, HitLog, ProfileReader};
use std::sync::Arc;

/// Everything the API handlers need, behind ports.
#[derive(Clone)]
pub struct ApiState {
    pub log: Arc<dyn HitLog>,
    pub profiles: Arc<dyn ProfileReader>,
    pub health: Arc<dyn HealthProbe>,
    /// Erasure requests (SPEC 17), carried out in the background.
    pub erasures: Arc<dyn Erasures>,
    /// The keys and their scopes (SPEC 18).
    pub keys: Keys,
    /// The origins whose pages may `POST /hits` (SPEC 18); none by default.
    pub cors: CorsOrigins,
    /// Assigns the `hitid` of hits sent without one: one assigner per
    /// process, whose ids the local deduplication knows as this process's.
    pub hit_ids: Arc<HitIds>,
    pub metrics: Arc<ApiMetrics>,
    /// Epoch milliseconds; injected so tests can pin "now".
    pub clock: fn() -> i64,
    /// The `POST /hits` body limit of this deployment: SPEC 3's 5 MiB
    /// ([`gender_core::ingest::MAX_BODY_BYTES`]) locally, less on Lambda
    /// (whose 6 MB payload limit holds the base64'ed body and its envelope).
    pub max_body_bytes: usize,
    /// Where `POST /hits` bodies are parsed. `None`: on the async workers
    /// (large bodies on the blocking pool), right for a Lambda that serves
    /// one request at a time. A server that must keep answering lookups
    /// while ingest is flooded hands them to a pool of its own.
    pub parse_on: Option<ParseExecutor>,
}

/// Runs a parse job somewhere other than the async workers.
pub type ParseExecutor = Arc<dyn Fn(Box<dyn FnOnce() + Send + 'static>) + Send + Sync>;
