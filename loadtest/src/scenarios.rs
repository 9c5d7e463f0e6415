//! The Goose scenarios: ingest and lookup, plus the eraser when asked for.
//! Requests are named with placeholders (`/gender/{id} known`; Goose
//! prefixes the method), so metrics group by route rather than by id.

use std::sync::Arc;
use std::time::Instant;

use goose::goose::GooseResponse;
use goose::prelude::*;
use reqwest::header::{CONTENT_TYPE, HeaderMap, LOCATION};

use crate::duplicates::Ledger;
use crate::erasure::{Eraser, ErasureLog, Step};
use crate::options::WorkloadOptions;
use crate::{validate, workload};

pub const INGEST_SINGLE: &str = "/hits single";
pub const INGEST_BATCH: &str = "/hits batch";
pub const INGEST_RESEND: &str = "/hits resend";
pub const LOOKUP_KNOWN: &str = "/gender/{id} known";
pub const LOOKUP_UNKNOWN: &str = "/gender/{id} unknown";
pub const ERASE: &str = "/visitors/{id} erase";
pub const ERASURE_STATUS: &str = "/erasures/{id}";

/// Scenario weights: (ingest, lookup, eraser).
///
/// Without the eraser, the mix's percentages (Goose divides them by their
/// greatest common divisor and hands users out in that ratio). With it, the
/// weights are user counts that add up to `users` exactly, the eraser's
/// being 1: Goose's weighted list is then as long as the user count, so each
/// scenario gets exactly its weight in users (Goose only hands out whole
/// users, and a weight of 1 among percentages would take one user in every
/// hundred-odd, or none).
pub fn weights(options: &WorkloadOptions, users: usize) -> (usize, usize, usize) {
    let (ingest, lookup) = (
        usize::from(options.ingest_percent()),
        usize::from(options.lookup_percent),
    );
    if !options.erases() {
        return (ingest, lookup, 0);
    }
    let traffic = users.saturating_sub(1);
    let ingest_users = if ingest == 0 {
        0
    } else if lookup == 0 {
        traffic
    } else {
        // Rounded, and at least one user each.
        ((traffic * ingest + 50) / 100).clamp(1, traffic.saturating_sub(1).max(1))
    };
    (ingest_users, traffic - ingest_users, 1)
}

/// The scenarios for the configured mix over `users` users.
pub fn scenarios(
    options: &WorkloadOptions,
    users: usize,
    ledger: Arc<Ledger>,
    erasures: Arc<ErasureLog>,
) -> Result<Vec<Scenario>, GooseError> {
    let (ingest_weight, lookup_weight, erase_weight) = weights(options, users);
    let options = Arc::new(options.clone());
    let mut scenarios = Vec::new();
    if ingest_weight > 0 {
        let workload = Arc::clone(&options);
        let ingest: TransactionFunction = Arc::new(move |user| {
            Box::pin(ingest(user, Arc::clone(&workload), Arc::clone(&ledger)))
        });
        scenarios.push(
            scenario!("ingest")
                .set_weight(ingest_weight)?
                .register_transaction(Transaction::new(ingest).set_name("ingest")),
        );
    }
    if lookup_weight > 0 {
        let workload = Arc::clone(&options);
        let lookup: TransactionFunction =
            Arc::new(move |user| Box::pin(lookup(user, Arc::clone(&workload))));
        scenarios.push(
            scenario!("lookup")
                .set_weight(lookup_weight)?
                .register_transaction(Transaction::new(lookup).set_name("lookup")),
        );
    }
    if erase_weight > 0 {
        let workload = Arc::clone(&options);
        let erase: TransactionFunction = Arc::new(move |user| {
            Box::pin(erase(user, Arc::clone(&workload), Arc::clone(&erasures)))
        });
        scenarios.push(
            scenario!("erase")
                .set_weight(erase_weight)?
                .register_transaction(Transaction::new(erase).set_name("erase")),
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

/// Sends one request with the API key, named `name` in the metrics and
/// expected to answer `status`; `body` is a JSON body.
async fn send(
    user: &mut GooseUser,
    options: &WorkloadOptions,
    method: GooseMethod,
    path: &str,
    name: &'static str,
    status: u16,
    body: Option<String>,
) -> Result<GooseResponse, Box<TransactionError>> {
    let mut builder = user
        .get_request_builder(&method, path)?
        .header("x-api-key", &options.api_key);
    if let Some(body) = body {
        builder = builder.header(CONTENT_TYPE, "application/json").body(body);
    }
    let request = GooseRequest::builder()
        .method(method)
        .path(path)
        .name(name)
        .expect_status_code(status)
        .set_request_builder(builder)
        .build();
    user.request(request).await
}

/// Sends one `POST /hits`; `Ok(true)` when it was answered `202`.
async fn post_hits(
    user: &mut GooseUser,
    options: &WorkloadOptions,
    name: &'static str,
    body: String,
    sent: usize,
) -> Result<bool, Box<TransactionError>> {
    let response = send(
        user,
        options,
        GooseMethod::Post,
        "/hits",
        name,
        202,
        Some(body),
    )
    .await?;
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
    let response = send(user, &options, GooseMethod::Get, &path, name, status, None).await?;
    check_body(user, name, response, |body| {
        if status == 200 {
            validate::profile(body, &clientid)
        } else {
            validate::unknown(body, &clientid)
        }
    })
    .await
}

/// One step of the eraser (see [`crate::erasure`]): a short wait, a
/// `DELETE /visitors/{id}` for a visitor of the ingest pool, or one poll of
/// the erasure in flight.
async fn erase(
    user: &mut GooseUser,
    options: Arc<WorkloadOptions>,
    log: Arc<ErasureLog>,
) -> TransactionResult {
    if user.get_session_data::<Eraser>().is_none() {
        let eraser = Eraser::new(
            options.erase_every(),
            options.erasure_bound(),
            Instant::now(),
        );
        user.set_session_data(eraser);
    }
    let step = user
        .get_session_data_unchecked::<Eraser>()
        .next_step(Instant::now());
    match step {
        Step::Wait(pause) => tokio::time::sleep(pause).await,
        Step::Request => {
            let clientid = workload::erase_target(options.visitors);
            let accepted = request_erasure(user, &options, &clientid).await?;
            let now = Instant::now();
            log.requested(accepted.is_some().then_some(now));
            user.get_session_data_unchecked_mut::<Eraser>()
                .requested(now, accepted);
        }
        Step::Poll(pause) => {
            tokio::time::sleep(pause).await;
            let eraser = user.get_session_data_unchecked::<Eraser>();
            let Some(in_flight) = eraser.in_flight().cloned() else {
                return Ok(());
            };
            // A failed poll (already counted by Goose) is just polled again.
            if poll_erasure(user, &options, &in_flight.id).await? == Some(true) {
                log.completed(in_flight.accepted.elapsed());
                user.get_session_data_unchecked_mut::<Eraser>().finished();
            }
        }
        Step::GiveUp => {
            user.get_session_data_unchecked_mut::<Eraser>().finished();
            log.given_up();
        }
    }
    Ok(())
}

/// `DELETE /visitors/{clientid}`; the erasure id when it got a valid `202`.
async fn request_erasure(
    user: &mut GooseUser,
    options: &WorkloadOptions,
    clientid: &str,
) -> Result<Option<String>, Box<TransactionError>> {
    let path = format!("/visitors/{clientid}");
    let response = send(user, options, GooseMethod::Delete, &path, ERASE, 202, None).await?;
    check_response(user, ERASE, response, |headers, body| {
        let location = headers.get(LOCATION).and_then(|l| l.to_str().ok());
        validate::erasure_accepted(body, location)
    })
    .await
}

/// `GET /erasures/{id}`; `Some(true)` once it is complete.
async fn poll_erasure(
    user: &mut GooseUser,
    options: &WorkloadOptions,
    id: &str,
) -> Result<Option<bool>, Box<TransactionError>> {
    let path = format!("/erasures/{id}");
    let response = send(
        user,
        options,
        GooseMethod::Get,
        &path,
        ERASURE_STATUS,
        200,
        None,
    )
    .await?;
    check_response(user, ERASURE_STATUS, response, |_, body| {
        validate::erasure_status(body, id)
    })
    .await
}

/// Marks the request failed when its body breaks the contract. A wrong status
/// or a transport error is already counted by Goose.
async fn check_body(
    user: &mut GooseUser,
    name: &str,
    goose: GooseResponse,
    check: impl FnOnce(&str) -> Result<(), validate::BodyError>,
) -> TransactionResult {
    check_response(user, name, goose, |_, body| check(body))
        .await
        .map(drop)
}

/// Like [`check_body`], with the headers too; gives what `check` found
/// (`None` when the request or the check failed).
async fn check_response<T>(
    user: &mut GooseUser,
    name: &str,
    mut goose: GooseResponse,
    check: impl FnOnce(&HeaderMap, &str) -> Result<T, validate::BodyError>,
) -> Result<Option<T>, Box<TransactionError>> {
    if !goose.request.success {
        return Ok(None);
    }
    let Ok(response) = goose.response else {
        return Ok(None);
    };
    let headers: HeaderMap = response.headers().clone();
    let outcome = match response.text().await {
        Ok(body) => check(&headers, &body).map_err(|error| (error.to_string(), body)),
        Err(error) => Err((format!("reading the body: {error}"), String::new())),
    };
    match outcome {
        Ok(found) => Ok(Some(found)),
        Err((reason, body)) => user
            .set_failure(
                &format!("{name}: {reason}"),
                &mut goose.request,
                Some(&headers),
                Some(&body),
            )
            .map(|()| None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::Cli;
    use clap::Parser;

    fn options(args: &[&str]) -> WorkloadOptions {
        let base = ["gender-loadtest", "--api-key", "k"];
        Cli::try_parse_from(base.iter().chain(args))
            .unwrap()
            .workload
    }

    #[test]
    fn without_the_eraser_the_weights_are_the_mix() {
        assert_eq!(weights(&options(&[]), 32), (20, 80, 0));
        assert_eq!(
            weights(&options(&["--lookup-percent", "100"]), 8),
            (0, 100, 0)
        );
    }

    #[test]
    fn the_eraser_gets_exactly_one_user_and_the_rest_keep_the_mix() {
        let erasing = |args: &[&str], users| {
            let mut all = vec!["--erase-every-secs", "5"];
            all.extend_from_slice(args);
            weights(&options(&all), users)
        };
        // 31 traffic users at 20 % ingest: 6.2, rounded to 6.
        assert_eq!(erasing(&[], 32), (6, 25, 1));
        assert_eq!(erasing(&[], 3), (1, 1, 1));
        assert_eq!(erasing(&["--lookup-percent", "1"], 3), (1, 1, 1));
        assert_eq!(erasing(&["--lookup-percent", "99"], 3), (1, 1, 1));
        assert_eq!(erasing(&["--lookup-percent", "0"], 4), (3, 0, 1));
        for users in 3..200 {
            let (ingest, lookup, erase) = erasing(&[], users);
            assert_eq!(ingest + lookup + erase, users);
            assert!(ingest >= 1 && lookup >= 1 && erase == 1);
        }
    }
}
