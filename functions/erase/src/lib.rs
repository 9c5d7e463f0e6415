//! Erase on AWS (SPEC 17): each SQS message carries one erasure id that
//! gender-http queued. One invocation takes a batch of them and, for the
//! erasures still pending:
//!
//! 1. deletes each visitor's profile item;
//! 2. asks Athena, once for the whole batch, which curated hits objects and
//!    daily rollups hold a row of any of these visitors (`find`);
//! 3. rewrites each of those objects without the batch's visitors (the
//!    shared pipeline code), replacing it only if it did not change since it
//!    was read (S3 `If-Match`), so concurrent writers never lose rows;
//! 4. marks each erasure complete, removing its clientid.
//!
//! Every step is idempotent: a rerun finds the profile gone, and the query
//! no longer finds the rewritten objects. If the batch cannot finish (an
//! error, or the invocation's deadline close), its pending erasures are
//! reported as batch item failures and SQS delivers them again; the work
//! already done stays done.

use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use futures::{StreamExt, TryStreamExt, stream};
use gender_aws::AwsError;
use gender_aws::athena::{AthenaQueries, QueryError};
use gender_aws::erasure::{CuratedObjects, ErasureLog, PendingErasure, Replaced, VisitorDates};
use gender_core::erasure::is_erasure_id;
use gender_lambda::{ConfigError, SdkTimeouts, required_env};
use gender_pipeline::PipelineError;
use gender_pipeline::erase::{Visitors, hits_file_without_visitors, rollup_without_visitors};
use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

pub mod find;

use find::{Found, MAX_VISITORS_PER_QUERY, found_object, paths_query};

/// No new object is started closer than this to the deadline: a rollup of
/// a busy date (a few tens of MB) takes seconds to fetch, rewrite and put,
/// and completing the erasures afterwards needs a moment too.
pub const DEADLINE_MARGIN: Duration = Duration::from_secs(60);
/// SDK limits per call. The largest is a rollup's conditional `PutObject`
/// (tens of MB on a busy date, sent within the attempt): 20 s is ample at
/// S3's tens of MB/s per connection. An operation (the SDK's 3 attempts and
/// its pauses) ends within 50 s, inside [`DEADLINE_MARGIN`]: a call started
/// before the margin ends before the function's timeout.
pub const SDK_TIMEOUTS: SdkTimeouts = SdkTimeouts {
    attempt: Duration::from_secs(20),
    operation: Duration::from_secs(50),
};
/// Curated hits objects rewritten at once. One is about 1 MB (a minute of
/// Firehose at 1,000 hits/s) and takes a GET, a PUT and some 50 ms of
/// Parquet work, so S3 round trips dominate; each holds one row group in
/// memory and two copies in `/tmp`.
const CONCURRENT_HITS_OBJECTS: usize = 16;
/// Daily rollups rewritten at once. A busy date's rollup (2 M visitors) is
/// tens of MB, decoded whole: two at a time keep `/tmp` (512 MB) and memory
/// safe.
const CONCURRENT_ROLLUPS: usize = 2;
/// DynamoDB calls in flight (entries read, profiles deleted, completions).
const CONCURRENT_ITEMS: usize = 16;
/// Conditional replacements retried after the object changed under us.
const REPLACE_ATTEMPTS: u32 = 5;

#[derive(Debug, Clone)]
pub struct Config {
    /// `CURATED_BUCKET`: holds `curated/hits/` and `curated/daily/`.
    pub curated_bucket: String,
    /// `PROFILES_TABLE_NAME`: profiles and the erasure log.
    pub table_name: String,
    /// `GLUE_DATABASE`: the database of the `hits` and `daily` tables.
    pub glue_database: String,
    /// `ATHENA_WORKGROUP`: fixes the result location and the scan cutoff.
    pub athena_workgroup: String,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        let glue_database = required_env("GLUE_DATABASE")?;
        // It is quoted into the query: allow only what Terraform makes.
        if !glue_database
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            return Err(ConfigError::InvalidEnv {
                name: "GLUE_DATABASE",
                detail: format!("{glue_database:?}: use [a-z0-9_]"),
            });
        }
        Ok(Config {
            curated_bucket: required_env("CURATED_BUCKET")?,
            table_name: required_env("PROFILES_TABLE_NAME")?,
            glue_database,
            athena_workgroup: required_env("ATHENA_WORKGROUP")?,
        })
    }
}

/// The invocation's deadline (Lambda gives milliseconds since the epoch)
/// as an `Instant`.
pub fn deadline_instant(deadline_epoch_ms: u64) -> Instant {
    let now_ms = gender_core::time::system_now_ms().max(0) as u64;
    Instant::now() + Duration::from_millis(deadline_epoch_ms.saturating_sub(now_ms))
}

/// Why a batch could not finish; its pending erasures are retried.
#[derive(Debug, thiserror::Error)]
pub enum EraseError {
    #[error(transparent)]
    Aws(#[from] AwsError),
    #[error("finding the visitors' objects")]
    Query(#[from] QueryError),
    #[error("rewriting {key}")]
    Rewrite {
        key: String,
        #[source]
        source: PipelineError,
    },
    #[error("{key} kept changing while it was rewritten")]
    Contended { key: String },
    #[error("local file for {key}")]
    Local {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the deadline came with {left} objects left")]
    Deadline { left: usize },
}

/// What one invocation did: logged as one line.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    pub messages: usize,
    /// Bodies that are not erasure ids (dropped: they can never succeed).
    pub invalid: usize,
    /// Ids without a log entry (the request failed after queueing it).
    pub unknown: usize,
    pub already_complete: usize,
    pub pending: usize,
    pub objects_found: usize,
    pub objects_rewritten: usize,
    /// Hits rows removed from curated hits objects.
    pub hit_rows_removed: u64,
    pub completed: usize,
    pub failed: usize,
    /// The `dt` partitions the last query read (`None`: all of them, for a
    /// profile from before the stream consumer recorded hit dates).
    pub dates_queried: Option<usize>,
}

pub struct Erase {
    log: ErasureLog,
    athena: AthenaQueries,
    curated: CuratedObjects,
}

impl Erase {
    pub fn new(config: Config, sdk: &aws_config::SdkConfig) -> Erase {
        Erase::from_parts(
            ErasureLog::new(aws_sdk_dynamodb::Client::new(sdk), config.table_name),
            AthenaQueries::new(
                aws_sdk_athena::Client::new(sdk),
                config.athena_workgroup,
                config.glue_database,
            ),
            CuratedObjects::new(gender_aws::s3::client(sdk), config.curated_bucket),
        )
    }

    pub fn from_parts(log: ErasureLog, athena: AthenaQueries, curated: CuratedObjects) -> Erase {
        Erase {
            log,
            athena,
            curated,
        }
    }

    /// Erases the batch; messages whose erasure did not complete are
    /// returned so that SQS delivers them again.
    pub async fn handle(&self, event: SqsEvent, deadline: Instant) -> SqsBatchResponse {
        let (response, report) = self
            .handle_at(event, gender_core::time::system_now_ms(), deadline)
            .await;
        tracing::info!(
            messages = report.messages,
            invalid = report.invalid,
            unknown = report.unknown,
            already_complete = report.already_complete,
            pending = report.pending,
            objects_found = report.objects_found,
            objects_rewritten = report.objects_rewritten,
            hit_rows_removed = report.hit_rows_removed,
            completed = report.completed,
            failed = report.failed,
            dates_queried = ?report.dates_queried,
            "erase batch"
        );
        response
    }

    /// [`handle`](Self::handle) with the completion time given, returning
    /// what it did.
    pub async fn handle_at(
        &self,
        event: SqsEvent,
        now_ms: i64,
        deadline: Instant,
    ) -> (SqsBatchResponse, Report) {
        let mut report = Report {
            messages: event.records.len(),
            ..Report::default()
        };
        // Erasure id -> the messages carrying it (SQS may deliver one twice).
        let mut messages: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for message in &event.records {
            let body = message.body.as_deref().unwrap_or_default().trim();
            if is_erasure_id(body) {
                messages
                    .entry(body.to_owned())
                    .or_default()
                    .push(message.message_id.clone().unwrap_or_default());
            } else {
                report.invalid += 1;
            }
        }

        let mut failed: BTreeSet<String> = BTreeSet::new();
        let entries = self.entries(messages.keys()).await;
        let mut pending: Vec<(String, String, VisitorDates)> = Vec::new();
        for (id, entry) in entries {
            match entry {
                Err(error) => {
                    tracing::error!(%error, "reading an erasure entry failed");
                    failed.insert(id);
                }
                Ok(None) => report.unknown += 1,
                Ok(Some(PendingErasure {
                    clientid: Some(clientid),
                    dates,
                    ..
                })) => pending.push((id, clientid, dates)),
                Ok(Some(_)) => report.already_complete += 1,
            }
        }
        report.pending = pending.len();

        // One pass per query-sized group: a batch larger than a query may
        // name still finishes in one invocation.
        for group in pending.chunks(MAX_VISITORS_PER_QUERY) {
            match self.erase_group(group, now_ms, deadline, &mut report).await {
                Ok(()) => report.completed += group.len(),
                Err(error) => {
                    tracing::error!(
                        error = %error_chain(&error),
                        erasures = group.len(),
                        "erasure batch unfinished; SQS will deliver it again"
                    );
                    failed.extend(group.iter().map(|(id, _, _)| id.clone()));
                }
            }
        }

        report.failed = failed.len();
        let mut response = SqsBatchResponse::default();
        for id in &failed {
            for message_id in messages.get(id).into_iter().flatten() {
                let mut failure = BatchItemFailure::default();
                failure.item_identifier = message_id.clone();
                response.batch_item_failures.push(failure);
            }
        }
        (response, report)
    }

    async fn entries<'a>(
        &self,
        ids: impl Iterator<Item = &'a String>,
    ) -> Vec<(String, Result<Option<PendingErasure>, AwsError>)> {
        let reads: Vec<_> = ids
            .map(|id| async move { (id.clone(), self.log.entry(id).await) })
            .collect();
        stream::iter(reads)
            .buffer_unordered(CONCURRENT_ITEMS)
            .collect()
            .await
    }

    /// Steps 1-4 for up to [`MAX_VISITORS_PER_QUERY`] pending erasures.
    async fn erase_group(
        &self,
        group: &[(String, String, VisitorDates)],
        now_ms: i64,
        deadline: Instant,
        report: &mut Report,
    ) -> Result<(), EraseError> {
        // Each profile's hit dates are recorded in the entry before the
        // profile goes, so a rerun after a failure still knows them.
        let deletes: Vec<_> = group
            .iter()
            .map(|(id, clientid, recorded)| async move {
                let dates = self.log.profile_dates(clientid).await?;
                self.log.record_dates(id, &dates).await?;
                self.log.delete_profile(clientid).await?;
                Ok::<_, AwsError>(recorded.clone().union(dates))
            })
            .collect();
        let dates: Vec<VisitorDates> = stream::iter(deletes)
            .buffer_unordered(CONCURRENT_ITEMS)
            .try_collect()
            .await?;
        let dates = dates
            .into_iter()
            .fold(VisitorDates::None, VisitorDates::union);
        let dates = match &dates {
            // No profile held hits: nothing of theirs is in the curated data.
            VisitorDates::None => Some(Vec::new()),
            VisitorDates::Some(dates) => Some(dates.clone()),
            VisitorDates::All => None,
        };
        report.dates_queried = dates.as_ref().map(Vec::len);

        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(|e| EraseError::Local {
            key: "query key".into(),
            source: std::io::Error::other(e.to_string()),
        })?;
        let sql = paths_query(
            self.athena.database(),
            group.iter().map(|(_, clientid, _)| clientid.as_str()),
            &key,
            dates.as_deref(),
        );
        let paths = if dates.as_ref().is_some_and(Vec::is_empty) {
            Vec::new()
        } else {
            self.athena
                .first_column(
                    &sql,
                    deadline.checked_sub(DEADLINE_MARGIN).unwrap_or(deadline),
                )
                .await?
        };
        let found: BTreeSet<Found> = paths
            .iter()
            .filter_map(|p| found_object(self.curated.bucket(), p))
            .collect();
        report.objects_found += found.len();

        let visitors = Arc::new(Visitors::new(group.iter().map(|(_, c, _)| c.as_str())));
        let (hits, rollups): (Vec<&Found>, Vec<&Found>) =
            found.iter().partition(|o| matches!(o, Found::Hits(_)));
        let mut left = 0;
        for (objects, concurrency) in [
            (hits, CONCURRENT_HITS_OBJECTS),
            (rollups, CONCURRENT_ROLLUPS),
        ] {
            let rewrites: Vec<_> = objects
                .into_iter()
                .map(|object| {
                    let visitors = visitors.clone();
                    async move {
                        if Instant::now() + DEADLINE_MARGIN >= deadline {
                            return Ok(None);
                        }
                        self.rewrite(object, visitors).await.map(Some)
                    }
                })
                .collect();
            // `None`: not started, the deadline was too close.
            let outcomes: Vec<Option<Option<u64>>> = stream::iter(rewrites)
                .buffer_unordered(concurrency)
                .try_collect()
                .await?;
            left += outcomes.iter().filter(|o| o.is_none()).count();
            for removed in outcomes.iter().flatten().flatten() {
                report.objects_rewritten += 1;
                report.hit_rows_removed += removed;
            }
        }
        if left > 0 {
            return Err(EraseError::Deadline { left });
        }

        let completions: Vec<_> = group
            .iter()
            .map(|(id, _, _)| self.log.complete(id, now_ms))
            .collect();
        stream::iter(completions)
            .buffer_unordered(CONCURRENT_ITEMS)
            .try_collect::<()>()
            .await?;
        Ok(())
    }

    /// Rewrites one object without `visitors`' rows, retrying when it
    /// changed between read and write. `Some(hits removed)` when it was
    /// rewritten, `None` when it held none of their rows (e.g. a rerun
    /// after it was already rewritten, or it expired since the query).
    async fn rewrite(
        &self,
        object: &Found,
        visitors: Arc<Visitors>,
    ) -> Result<Option<u64>, EraseError> {
        let key = object.key();
        for _ in 0..REPLACE_ATTEMPTS {
            let Some(current) = self.curated.fetch(key).await? else {
                return Ok(None);
            };
            let local = |source| EraseError::Local {
                key: key.to_owned(),
                source,
            };
            let path = current.file.path().to_owned();
            let object = object.clone();
            let visitors = visitors.clone();
            // Parquet decoding and encoding are CPU work: off the runtime.
            let rewritten =
                tokio::task::spawn_blocking(move || rewritten(&object, &path, &visitors))
                    .await
                    .map_err(|e| local(std::io::Error::other(e.to_string())))??;
            let Some((file, removed)) = rewritten else {
                return Ok(None);
            };
            match self
                .curated
                .replace(key, file.path(), &current.etag)
                .await?
            {
                Replaced::Yes => return Ok(Some(removed)),
                Replaced::Changed => continue,
            }
        }
        Err(EraseError::Contended {
            key: key.to_owned(),
        })
    }
}

/// The object at `path` without `visitors`' rows, in a temporary file, and
/// how many hits that removed (0 for a rollup); `None` when it holds none
/// of their rows.
fn rewritten(
    object: &Found,
    path: &std::path::Path,
    visitors: &Visitors,
) -> Result<Option<(tempfile::NamedTempFile, u64)>, EraseError> {
    let key = object.key();
    let rewrite = |source| EraseError::Rewrite {
        key: key.to_owned(),
        source,
    };
    let local = |source| EraseError::Local {
        key: key.to_owned(),
        source,
    };
    match object {
        Found::Hits(_) => Ok(hits_file_without_visitors(path, key, visitors)
            .map_err(rewrite)?
            .map(|(file, removed)| (file.temp, removed))),
        Found::Rollup(_) => {
            let bytes = bytes::Bytes::from(std::fs::read(path).map_err(local)?);
            let Some(body) =
                rollup_without_visitors(bytes, key, visitors, true).map_err(rewrite)?
            else {
                return Ok(None);
            };
            let mut file = tempfile::NamedTempFile::new().map_err(local)?;
            file.write_all(&body).map_err(local)?;
            file.flush().map_err(local)?;
            // Rollup rows are per visitor, not hits: not counted as removed hits.
            Ok(Some((file, 0)))
        }
    }
}

/// An error with its sources, for the one log line.
fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_deadline_is_taken_from_lambdas_epoch_milliseconds() {
        let now = gender_core::time::system_now_ms() as u64;
        let at = deadline_instant(now + 900_000);
        let left = at.saturating_duration_since(Instant::now());
        assert!(left > Duration::from_secs(890) && left <= Duration::from_secs(900));
        assert!(deadline_instant(0) <= Instant::now() + Duration::from_millis(1));
    }

    #[test]
    fn errors_are_logged_with_their_sources() {
        let error = EraseError::Local {
            key: "k".into(),
            source: std::io::Error::other("disk full"),
        };
        assert_eq!(error_chain(&error), "local file for k: disk full");
    }

    #[test]
    fn config_names_the_missing_variable() {
        // None of the function's variables is set under `cargo test`.
        let err = Config::from_env().unwrap_err().to_string();
        assert!(err.contains("GLUE_DATABASE"), "{err}");
    }
}
