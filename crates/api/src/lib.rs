//! The HTTP API of SPEC 3, 4, 17 and 18 as one axum `Router` ([`router`]):
//! served by `axum::serve` in the local binary and by `lambda_http::run` on
//! AWS. Every status code is chosen here, at the edge; the core only says
//! what happened. Each route is registered once, from its handler's
//! `#[utoipa::path]` annotation, which also makes its part of the OpenAPI
//! document ([`api_doc`]).

mod auth;
mod cors;
pub mod docs;
mod erasure;
mod errors;
mod hits;
mod lookup;
mod metrics;
pub mod openapi;
mod router;
pub mod schema;
mod state;
mod tracker;

pub use auth::{
    API_KEY_HEADER, Guard, Keys, Rule, Scope, ScopeKeys, URL_KEY_PARAMETER, authorize, guarded,
    require_scope, url_key,
};
pub use cors::{CorsOrigins, PREFLIGHT_MAX_AGE_SECONDS};
pub use errors::{JsonError, RETRY_AFTER_SECONDS, with_edge_layers, with_request_deadline};
pub use metrics::{ApiMetrics, ErrorsFamily, Labels};
pub use router::{api_doc, router, router_with_docs};
pub use state::{ApiState, ParseExecutor};
pub use tracker::{TRACKER_JS, TRACKER_MAX_AGE_SECONDS};

#[cfg(test)]
mod tests;
