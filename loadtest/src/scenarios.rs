//! The two Goose scenarios. Requests are named with placeholders
//! (`/gender/{id} known`; Goose prefixes the method), so metrics
//! group by route rather than by id.

use std::sync::Arc;

use goose::goose::GooseResponse;
use goose::prelude::*;
use reqwest::header::{CONTENT_TYPE, HeaderMap};

use crate::duplicates::Ledger;
use crate::options::WorkloadOptions;
use crate::{validate, workload};

pub const INGEST_SINGLE: &str = "/hits single";
pub const INGEST_BATCH: &str = "/hits batch";
pub const INGEST_RESEND: &str = "/hits resend";
pub const LOOKUP_KNOWN: &str = "/gender/{id} known";
pub const LOOKUP_UNKNOWN: &str = "/gender/{id} unknown";

/// The scenarios for the configured mix; the mix sets how users are split.
pub fn scenarios(
    options: &WorkloadOptions,
    ledger: Arc<Ledger>,
) -> Result<Vec<Scenario>, GooseError> {
    let options = Arc::new(options.clone());
    let mut scenarios = Vec::new();
    if options.ingest_percent() > 0 {
        let workload = Arc::clone(&options);
        let ingest: TransactionFunction = Arc::new(move |user| {
            Box::pin(ingest(user, Arc::clone(&workload), Arc::clone(&ledger)))
        });
        scenarios.push(
            scenario!("ingest")
                .set_weight(options.ingest_percent().into())?
                .register_transaction(Transaction::new(ingest).set_name("ingest")),
        );
    }
    if options.lookup_percent > 0 {
        let workload = Arc::clone(&options);
        let lookup: TransactionFunction =
            Arc::new(move |user| Box::pin(lookup(user, Arc::clone(&workload))));
        scenarios.push(
            scenario!("lookup")
                .set_weight(options.lookup_percent.into())?
                .register_transaction(Transaction::new(lookup).set_name("lookup")),
        );
    }
    Ok(scenarios)
}

async fn ingest(
    user: &mut GooseUser,
    options: Arc<WorkloadOptions>,
    ledger: Arc<Ledger>,
) -> TransactionResult {
    if options.duplicate_percent > 0 {
        return ingest_with_hitids(user, &options, &ledger).await;
    }
    let random_visitor = || workload::visitor_id(fastrand::u64(..options.visitors.max(1)));
    let (name, body, sent) = if workload::chance(options.batch_percent) {
        let size = usize::from(options.batch_size);
        let body = workload::batch_json((0..size).map(|_| random_visitor()));
        (INGEST_BATCH, body, size)
    } else {
        (INGEST_SINGLE, workload::hit_json(&random_visitor()), 1)
    };
    post_hits(user, &options, name, body, sent).await.map(drop)
}

/// The duplicate mix: a new body (every hit with a producer hitid), or an
/// accepted one sent again.
async fn ingest_with_hitids(
    user: &mut GooseUser,
    options: &WorkloadOptions,
    ledger: &Ledger,
) -> TransactionResult {
    if workload::chance(options.duplicate_percent)
        && let Some(earlier) = ledger.body_to_resend()
    {
        let (body, sent) = (earlier.0.clone(), earlier.1);
        if post_hits(user, options, INGEST_RESEND, body, sent).await? {
            ledger.resent(sent);
        }
        return Ok(());
    }
    let size = if workload::chance(options.batch_percent) {
        usize::from(options.batch_size)
    } else {
        1
    };
    let visitors = (0..size).map(|_| ledger.visitor_id(fastrand::u64(..options.visitors.max(1))));
    let (body, hits) = ledger.new_body(visitors);
    let name = if size == 1 {
        INGEST_SINGLE
    } else {
        INGEST_BATCH
    };
    if post_hits(user, options, name, body.clone(), size).await? {
        ledger.accepted(body, hits);
    }
    Ok(())
}

/// Sends one `POST /hits`; `Ok(true)` when it was answered `202`.
async fn post_hits(
    user: &mut GooseUser,
    options: &WorkloadOptions,
    name: &'static str,
    body: String,
    sent: usize,
) -> Result<bool, Box<TransactionError>> {
    let builder = user
        .get_request_builder(&GooseMethod::Post, "/hits")?
        .header("x-api-key", &options.api_key)
        .header(CONTENT_TYPE, "application/json")
        .body(body);
    let request = GooseRequest::builder()
        .method(GooseMethod::Post)
        .path("/hits")
        .name(name)
        .expect_status_code(202)
        .set_request_builder(builder)
        .build();
    let response = user.request(request).await?;
    let accepted = response.request.status_code == 202;
    check_body(user, name, response, |body| {
        validate::ingest_accepted(body, sent)
    })
    .await?;
    Ok(accepted)
}

async fn lookup(user: &mut GooseUser, options: Arc<WorkloadOptions>) -> TransactionResult {
    let (name, clientid, status) = if workload::chance(options.unknown_percent) {
        (LOOKUP_UNKNOWN, workload::unknown_id(), 404)
    } else {
        let index = fastrand::u32(..options.known_visitors);
        (LOOKUP_KNOWN, workload::known_id(index), 200)
    };
    let path = format!("/gender/{clientid}");
    let builder = user
        .get_request_builder(&GooseMethod::Get, &path)?
        .header("x-api-key", &options.api_key);
    let request = GooseRequest::builder()
        .method(GooseMethod::Get)
        .path(path.as_str())
        .name(name)
        .expect_status_code(status)
        .set_request_builder(builder)
        .build();
    let response = user.request(request).await?;
    check_body(user, name, response, |body| {
        if status == 200 {
            validate::profile(body, &clientid)
        } else {
            validate::unknown(body, &clientid)
        }
    })
    .await
}

/// Marks the request failed when its body breaks the contract. A wrong status
/// or a transport error is already counted by Goose.
async fn check_body(
    user: &mut GooseUser,
    name: &str,
    mut goose: GooseResponse,
    check: impl FnOnce(&str) -> Result<(), validate::BodyError>,
) -> TransactionResult {
    if !goose.request.success {
        return Ok(());
    }
    let Ok(response) = goose.response else {
        return Ok(());
    };
    let headers: HeaderMap = response.headers().clone();
    let outcome = match response.text().await {
        Ok(body) => check(&body).map_err(|error| (error.to_string(), body)),
        Err(error) => Err((format!("reading the body: {error}"), String::new())),
    };
    match outcome {
        Ok(()) => Ok(()),
        Err((reason, body)) => user.set_failure(
            &format!("{name}: {reason}"),
            &mut goose.request,
            Some(&headers),
            Some(&body),
        ),
    }
}
