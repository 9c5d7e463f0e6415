//! The HTTP API of SPEC 3 and 4 as one axum [`Router`]: served by
//! `axum::serve` in the local binary and by `lambda_http::run` on AWS. Every
//! status code is chosen here, at the edge; the core only says what happened.

mod auth;
mod errors;
mod hits;
mod lookup;
mod metrics;

use axum::Router;
use axum::routing::{get, post};
use gender_core::ports::{HealthProbe, HitLog, ProfileReader};
use std::sync::Arc;

pub use auth::{ApiKey, require_api_key};
pub use errors::{JsonError, with_edge_layers, with_request_deadline};
pub use metrics::{ApiMetrics, ErrorsFamily, Labels};

const OPENAPI_JSON: &str = include_str!("openapi.json");
const DOCS_HTML: &str = include_str!("docs.html");

/// Everything the API handlers need, behind ports.
#[derive(Clone)]
pub struct ApiState {
    pub log: Arc<dyn HitLog>,
    pub profiles: Arc<dyn ProfileReader>,
    pub health: Arc<dyn HealthProbe>,
    pub api_key: ApiKey,
    pub metrics: Arc<ApiMetrics>,
    /// Epoch milliseconds; injected so tests can pin "now".
    pub clock: fn() -> i64,
    /// The `POST /hits` body limit of this deployment: SPEC 3's 5 MiB
    /// ([`gender_core::ingest::MAX_BODY_BYTES`]) locally, less on Lambda
    /// (whose 6 MB payload limit holds the base64'ed body and its envelope).
    pub max_body_bytes: usize,
}

/// The public routes. Callers add their own routes, then [`with_edge_layers`].
pub fn router(state: ApiState) -> Router {
    let protected = Router::new()
        .route("/hits", post(hits::post_hits))
        .route("/gender/{clientid}", get(lookup::get_gender))
        .route("/gender/", get(lookup::empty_clientid))
        .route_layer(axum::middleware::from_fn_with_state(
            state.api_key.clone(),
            require_api_key,
        ))
        .with_state(state.clone());
    Router::new()
        .route("/health", get(lookup::health))
        .route("/openapi.json", get(openapi))
        .route("/docs", get(docs))
        .with_state(state)
        .merge(protected)
}

async fn openapi() -> impl axum::response::IntoResponse {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        OPENAPI_JSON,
    )
}

async fn docs() -> axum::response::Html<&'static str> {
    axum::response::Html(DOCS_HTML)
}

#[cfg(test)]
mod tests;
