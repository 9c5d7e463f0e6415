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
mod rotation;
mod views;

use crate::delivery::DeliveryHandle;
use crate::scheduler::DailyJob;
use axum::Router;
use gender_api::{ApiMetrics, Rule, guarded};
use prometheus_client::registry::Registry;
use std::sync::Arc;
use utoipa::OpenApi;
use utoipa::openapi::OpenApi as Document;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub(crate) use docs::docs_page;
pub(crate) use rotation::KeyRotation;
pub(crate) use views::Reports;

/// What the local routes work with.
pub(crate) struct Parts {
    pub(crate) delivery: DeliveryHandle,
    pub(crate) daily: DailyJob,
    pub(crate) reports: Reports,
    /// What `/metrics` renders.
    pub(crate) registry: Arc<Registry>,
    /// The keys (the `/admin/*` routes need the admin scope), and their
    /// rotation.
    pub(crate) keys: KeyRotation,
    /// Where refused requests are counted.
    pub(crate) metrics: Arc<ApiMetrics>,
}

/// The local routes, each registered once from its `#[utoipa::path]`
/// annotation, and their part of the OpenAPI document.
pub(crate) fn routes(parts: Parts) -> (Router, Document) {
    let keys = parts.keys.keys.clone();
    let unguarded = OpenApiRouter::default()
        .merge(
            OpenApiRouter::default()
                .routes(routes!(control::flush))
                .with_state(parts.delivery),
        )
        .merge(
            OpenApiRouter::default()
                .routes(routes!(control::daily))
                .with_state(parts.daily),
        )
        .merge(
            OpenApiRouter::default()
                .routes(routes!(views::split))
                .routes(routes!(views::visitor_days))
                .with_state(parts.reports),
        )
        .merge(
            OpenApiRouter::default()
                .routes(routes!(rotation::rotate_key))
                .routes(routes!(rotation::ingest_key))
                .with_state(parts.keys),
        );
    let protected = guarded(unguarded, &keys, Rule::ADMIN, &parts.metrics);
    OpenApiRouter::with_openapi(LocalDoc::openapi())
        .merge(protected)
        .merge(
            OpenApiRouter::default()
                .routes(routes!(views::prometheus))
                .with_state(parts.registry),
        )
        .routes(routes!(views::console))
        .routes(routes!(docs::docs_file))
        .split_for_parts()
}

/// The local document's tags and body schemas (the paths come from the
/// routes).
#[derive(OpenApi)]
#[openapi(
    components(schemas(
        control::FlushResult,
        control::DailyRequest,
        control::DailySummary,
        control::DailyRollup,
        views::SplitResult,
        views::DaySplitDoc,
        views::VisitorDaysResult,
        views::VisitorDayDoc,
        rotation::RotateRequest,
        rotation::RotateResult,
        rotation::IngestKeyResult,
        gender_api::Scope
    )),
    tags((name = "local", description = "Local server only (`gender-service serve`): the \
        admin triggers, metrics and the web console. Not deployed on AWS."))
)]
struct LocalDoc;

#[cfg(test)]
mod tests;
