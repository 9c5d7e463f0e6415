//! The HTTP API of SPEC 3, 4 and 17 as one axum [`Router`]: served by
//! `axum::serve` in the local binary and by `lambda_http::run` on AWS. Every
//! status code is chosen here, at the edge; the core only says what happened.
//! The OpenAPI document is generated from the handlers (see [`openapi`]).

mod auth;
pub mod docs;
mod erasure;
mod errors;
mod hits;
mod lookup;
mod metrics;
pub mod openapi;
pub mod schema;

use axum::Router;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use gender_core::hitid::HitIds;
use gender_core::ports::{Erasures, HealthProbe, HitLog, ProfileReader};
use std::sync::Arc;

pub use auth::{API_KEY_HEADER, ApiKey, require_api_key};
pub use errors::{JsonError, RETRY_AFTER_SECONDS, with_edge_layers, with_request_deadline};
pub use metrics::{ApiMetrics, ErrorsFamily, Labels};
pub use openapi::api_doc;

/// Everything the API handlers need, behind ports.
#[derive(Clone)]
pub struct ApiState {
    pub log: Arc<dyn HitLog>,
    pub profiles: Arc<dyn ProfileReader>,
    pub health: Arc<dyn HealthProbe>,
    /// Erasure requests (SPEC 17), carried out in the background.
    pub erasures: Arc<dyn Erasures>,
    pub api_key: ApiKey,
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
}

/// The public routes, serving the API's own OpenAPI document ([`api_doc`])
/// and a Swagger UI page loaded from a CDN ([`docs::swagger_ui_from_cdn`]).
/// Callers add their own routes, then [`with_edge_layers`].
pub fn router(state: ApiState) -> Router {
    let doc = api_doc(state.max_body_bytes);
    router_with_docs(state, &doc, docs::swagger_ui_from_cdn())
}

/// [`router`], serving `doc` at `/openapi.json` and `docs_page` at `/docs`:
/// a deployment with routes of its own merges their description into
/// [`api_doc`], and may serve its own viewer page.
pub fn router_with_docs(
    state: ApiState,
    doc: &utoipa::openapi::OpenApi,
    docs_page: String,
) -> Router {
    let json = axum::body::Bytes::from(doc.to_json().expect("the OpenAPI document serializes"));
    let protected = Router::new()
        .route("/hits", post(hits::post_hits))
        .route("/gender/{clientid}", get(lookup::get_gender))
        .route("/gender/", get(lookup::empty_clientid))
        .route("/visitors/{clientid}", delete(erasure::delete_visitor))
        .route("/visitors/", delete(erasure::delete_empty_clientid))
        .route("/erasures/{id}", get(erasure::get_erasure))
        .route_layer(axum::middleware::from_fn_with_state(
            state.api_key.clone(),
            require_api_key,
        ))
        .with_state(state.clone());
    let documentation = Router::new()
        .route("/openapi.json", get(openapi_json))
        .with_state(OpenApiJson(json))
        .merge(
            Router::new()
                .route("/docs", get(docs::index))
                .with_state(docs::DocsPage(docs_page.into())),
        );
    Router::new()
        .route("/health", get(lookup::health))
        .with_state(state)
        .merge(protected)
        .merge(documentation)
}

/// The serialized document.
#[derive(Clone)]
struct OpenApiJson(axum::body::Bytes);

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    operation_id = "getOpenApi",
    summary = "This OpenAPI document",
    description = "The OpenAPI 3.1 description of every route of this server. No authentication.",
    responses(
        (status = 200, description = "The OpenAPI document.", content_type = "application/json",
            body = Object),
        (status = 405, response = openapi::MethodNotAllowed),
    )
)]
async fn openapi_json(State(OpenApiJson(json)): State<OpenApiJson>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json)
}

#[cfg(test)]
mod tests;
