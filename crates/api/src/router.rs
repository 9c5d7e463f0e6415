//! The API's routes, each registered once from its `#[utoipa::path]`
//! annotation (`utoipa-axum`'s `OpenApiRouter`), so the router and the
//! OpenAPI document's paths are one list.

use crate::auth::{Keys, Rule, guarded};
use crate::cors::{Cors, cors_for_hits};
use crate::docs::{self, Docs};
use crate::metrics::ApiMetrics;
use crate::state::ApiState;
use crate::{erasure, hits, lookup, openapi, tracker};
use axum::Router;
use axum::body::Bytes;
use axum::routing::{delete, get};
use std::sync::Arc;
use utoipa::openapi::OpenApi as Document;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

/// The API's routes with their description, each group behind the key
/// scope it needs (SPEC 18, [`crate::auth`]): `POST /hits` ingest (and
/// CORS, [`crate::cors`]), the lookups read, erasure admin; `/health` and
/// `/tracker.js` public.
fn api_routes(keys: &Keys, cors: Cors) -> OpenApiRouter<ApiState> {
    let metrics = cors.metrics.clone();
    let ingest = guarded(
        OpenApiRouter::default().routes(routes!(hits::post_hits)),
        keys,
        Rule::INGEST,
        &metrics,
    )
    // Outside the key check: a preflight carries no key.
    .layer(axum::middleware::from_fn_with_state(cors, cors_for_hits));
    let read = guarded(
        OpenApiRouter::default()
            .routes(routes!(lookup::get_gender))
            // An empty id: documented with `/gender/{clientid}` (a 400).
            .route("/gender/", get(lookup::empty_clientid))
            .routes(routes!(erasure::get_erasure)),
        keys,
        Rule::READ,
        &metrics,
    );
    let admin = guarded(
        OpenApiRouter::default()
            .routes(routes!(erasure::delete_visitor))
            .route("/visitors/", delete(erasure::delete_empty_clientid)),
        keys,
        Rule::ADMIN,
        &metrics,
    );
    OpenApiRouter::with_openapi(openapi::base())
        .merge(ingest)
        .merge(read)
        .merge(admin)
        .routes(routes!(lookup::health))
        .routes(routes!(tracker::tracker_js))
}

/// `/openapi.json` and `/docs`, with their description.
fn docs_routes() -> OpenApiRouter<Docs> {
    OpenApiRouter::default()
        .routes(routes!(docs::openapi_json))
        .routes(routes!(docs::index))
}

/// The document of the API routes for a deployment whose `POST /hits` body
/// limit is `max_body_bytes`.
pub fn api_doc(max_body_bytes: usize) -> Document {
    let cors = Cors {
        origins: Default::default(),
        metrics: Arc::new(ApiMetrics::default()),
    };
    let mut doc = api_routes(&Keys::disabled(), cors).into_openapi();
    doc.merge(docs_routes().into_openapi());
    openapi::with_body_limit(doc, max_body_bytes)
}

/// The public routes, serving the API's own OpenAPI document ([`api_doc`])
/// and a Swagger UI page loaded from a CDN ([`docs::swagger_ui_from_cdn`]).
/// Callers add their own routes, then [`crate::with_edge_layers`].
pub fn router(state: ApiState) -> Router {
    let doc = api_doc(state.max_body_bytes);
    router_with_docs(state, &doc, docs::swagger_ui_from_cdn())
}

/// [`router`], serving `doc` at `/openapi.json` and `docs_page` at `/docs`:
/// a deployment with routes of its own merges their description into
/// [`api_doc`], and may serve its own viewer page.
pub fn router_with_docs(state: ApiState, doc: &Document, docs_page: String) -> Router {
    let docs = Docs {
        json: Bytes::from(doc.to_json().expect("the OpenAPI document serializes")),
        page: docs_page.into(),
    };
    let cors = Cors {
        origins: state.cors.clone(),
        metrics: state.metrics.clone(),
    };
    let (api, _) = api_routes(&state.keys, cors).split_for_parts();
    let (documentation, _) = docs_routes().split_for_parts();
    api.with_state(state).merge(documentation.with_state(docs))
}
