//! Local-only routes: the flush barrier, on-demand daily run, metrics,
//! console, the files of Swagger UI; and the OpenAPI document and `/docs`
//! page the local server serves (the API's plus these routes).
//!
//! - [`control`]: what makes the pipeline act, `POST /admin/flush` and
//!   `POST /admin/daily`;
//! - [`views`]: what shows its state, `GET /admin/split`,
//!   `GET /admin/visitors/{clientid}/days`, `/metrics` and the console;
//! - [`docs`]: Swagger UI served from the binary.

mod control;
mod docs;
mod views;

use crate::LocalState;
use axum::Router;
use axum::routing::{get, post};
use gender_api::require_api_key;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;

pub use docs::docs_page;

pub fn routes(state: LocalState) -> Router {
    let admin = Router::new()
        .route("/admin/flush", post(control::flush))
        .route("/admin/daily", post(control::daily))
        .route("/admin/split", get(views::split))
        .route("/admin/visitors/{clientid}/days", get(views::visitor_days))
        .route_layer(axum::middleware::from_fn_with_state(
            state.api.api_key.clone(),
            require_api_key,
        ));
    Router::new()
        .route("/metrics", get(views::prometheus))
        .route("/", get(views::console))
        .route("/docs/{*file}", get(docs::docs_file))
        .merge(admin)
        .with_state(state)
}

#[derive(OpenApi)]
#[openapi(
    paths(
        control::flush,
        control::daily,
        views::split,
        views::visitor_days,
        views::prometheus,
        views::console,
        docs::docs_file
    ),
    components(schemas(
        control::FlushResult,
        control::DailyRequest,
        control::DailySummary,
        control::DailyRollup,
        views::SplitResult,
        views::DaySplitDoc,
        views::VisitorDaysResult,
        views::VisitorDayDoc
    )),
    tags((name = "local", description = "Local server only (`gender-service serve`): the \
        admin triggers, metrics and the web console. Not deployed on AWS."))
)]
struct LocalDoc;

/// The document the local server serves: the API's routes and these.
pub fn openapi(max_body_bytes: usize) -> Document {
    let mut doc = gender_api::api_doc(max_body_bytes);
    doc.merge(LocalDoc::openapi());
    doc
}

#[cfg(test)]
mod tests;
