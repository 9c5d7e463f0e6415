//! The HTTP API of SPEC 3, 4 and 17 as one axum `Router` ([`router`]):
//! served by `axum::serve` in the local binary and by `lambda_http::run` on
//! AWS. Every status code is chosen here, at the edge; the core only says
//! what happened. Each route is registered once, from its handler's
//! `#[utoipa::path]` annotation, which also makes its part of the OpenAPI
//! document ([`api_doc`]).

mod auth;
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

pub use auth::{API_KEY_HEADER, ApiKey, require_api_key};
pub use errors::{JsonError, RETRY_AFTER_SECONDS, with_edge_layers, with_request_deadline};
pub use metrics::{ApiMetrics, ErrorsFamily, Labels};
pub use router::{api_doc, router, router_with_docs};
pub use state::ApiState;

#[cfg(test)]
mod tests;
