//! Erasure of a visitor on AWS (SPEC 17): the erasure log in the profiles
//! table, the request that starts the background work, and the conditional
//! rewrite of curated objects the worker does.
//!
//! The log's items live beside the profiles under `erasure#<id>`: clientids
//! match `[A-Za-z0-9._:-]{1,64}`, so no key with `#` can ever be a
//! visitor's. An item holds `status`, `requested_at`, `clientid_hash` and,
//! only while pending, `clientid` (the worker needs it to find the rows);
//! completing the erasure removes it in the same conditional update that
//! sets `status = complete`, so a complete entry never names the visitor.

#[cfg(feature = "dynamodb")]
pub use log::{ErasureLog, PendingErasure, VisitorDates, erasure_key};
#[cfg(all(feature = "dynamodb", feature = "sqs"))]
pub use requests::ErasureRequests;
#[cfg(feature = "s3")]
pub use rewrite::{CuratedObject, CuratedObjects, Replaced};

#[cfg(feature = "dynamodb")]
mod log {
    use crate::dynamodb::{is_condition_failure, number, sdk, text};
    use crate::{AwsError, Backoff};
    use aws_sdk_dynamodb::Client;
    use aws_sdk_dynamodb::operation::put_item::PutItemError;
    use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
    use gender_core::erasure::is_erasure_id;
    use gender_core::stream::HitDates;
    use gender_core::{Date, ErasureRecord, ErasureStatus};
    use std::collections::HashMap;

    const KEY: &str = crate::dynamodb::KEY;
    /// Key prefix of erasure log items; `#` never occurs in a clientid.
    const ERASURE_PREFIX: &str = "erasure#";

    /// The table key of erasure `id`'s log item.
    pub fn erasure_key(id: &str) -> String {
        format!("{ERASURE_PREFIX}{id}")
    }

    /// A log entry with the clientid it still holds while pending.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct PendingErasure {
        pub record: ErasureRecord,
        /// `Some` while the erasure is pending, `None` once complete.
        pub clientid: Option<String>,
        /// The dates the visitor had hits on, as its profile said when the
        /// worker deleted it (recorded first, so a rerun still knows them).
        pub dates: VisitorDates,
    }

    /// Which dates of the curated data can hold a visitor's rows.
    #[derive(Debug, Clone, Default, PartialEq, Eq)]
    pub enum VisitorDates {
        /// No profile seen: none known (an unknown visitor, or one not yet
        /// read by the worker).
        #[default]
        None,
        /// These dates, oldest first.
        Some(Vec<Date>),
        /// Any date: the profile predates the hit dates (`dd`), or the
        /// worker recorded it so.
        All,
    }

    impl VisitorDates {
        /// The union of two answers.
        pub fn union(self, other: VisitorDates) -> VisitorDates {
            match (self, other) {
                (VisitorDates::All, _) | (_, VisitorDates::All) => VisitorDates::All,
                (VisitorDates::None, other) | (other, VisitorDates::None) => other,
                (VisitorDates::Some(mut a), VisitorDates::Some(b)) => {
                    a.extend(b);
                    a.sort();
                    a.dedup();
                    VisitorDates::Some(a)
                }
            }
        }
    }

    /// The erasure log (DynamoDB, the profiles table) and the worker's
    /// writes: deleting a profile, completing an entry. Every call is
    /// retried with the backoff on throttling, 5xx, timeouts and
    /// `TransactionConflictException` (a write that meets an item of an
    /// ongoing transaction), and each is safe to repeat after a lost answer.
    #[derive(Clone)]
    pub struct ErasureLog {
        client: Client,
        table: String,
        pub(crate) backoff: Backoff,
    }

    fn entry_from_item(
        id: &str,
        item: &HashMap<String, AttributeValue>,
    ) -> Result<PendingErasure, AwsError> {
        let key = erasure_key(id);
        let bad = |detail: &str| AwsError::BadItem {
            key: key.clone(),
            detail: detail.to_owned(),
        };
        let status = text(item, "status")
            .and_then(ErasureStatus::parse)
            .ok_or_else(|| bad("status missing or unknown"))?;
        Ok(PendingErasure {
            record: ErasureRecord {
                id: id.to_owned(),
                status,
                requested_ms: number(item, "requested_at", &key)?
                    .ok_or_else(|| bad("requested_at missing"))?,
                completed_ms: number(item, "completed_at", &key)?,
                clientid_hash: text(item, "clientid_hash")
                    .ok_or_else(|| bad("clientid_hash missing"))?
                    .to_owned(),
            },
            clientid: text(item, "clientid").map(str::to_owned),
            dates: if item.contains_key("dates_all") {
                VisitorDates::All
            } else {
                match item.get("dates") {
                    None => VisitorDates::None,
                    Some(AttributeValue::Ns(days)) => {
                        let mut dates = days
                            .iter()
                            .map(|d| d.parse::<i32>().map(Date::from_days))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|_| bad("dates is not a set of day numbers"))?;
                        dates.sort();
                        VisitorDates::Some(dates)
                    }
                    Some(_) => return Err(bad("dates is not a number set")),
                }
            },
        })
    }

    impl ErasureLog {
        pub fn new(client: Client, table: impl Into<String>) -> Self {
            ErasureLog {
                client,
                table: table.into(),
                backoff: Backoff::default(),
            }
        }

        pub fn with_backoff(mut self, backoff: Backoff) -> Self {
            self.backoff = backoff;
            self
        }

        /// Records a pending erasure. The condition only guards against an
        /// id drawn twice (128 random bits: never in practice). An attempt
        /// whose answer was lost (a timeout) may have written the entry: the
        /// next attempt then fails the condition on our own item, which
        /// DynamoDB returns (`ReturnValuesOnConditionCheckFailure`), and that
        /// counts as done.
        pub async fn put_pending(
            &self,
            id: &str,
            clientid: &str,
            clientid_hash: &str,
            now_ms: i64,
        ) -> Result<(), AwsError> {
            let requested_at = &now_ms.to_string();
            let ours = &|item: &HashMap<String, AttributeValue>| {
                text(item, "clientid_hash") == Some(clientid_hash)
                    && item.get("requested_at").and_then(|v| v.as_n().ok()) == Some(requested_at)
            };
            self.backoff
                .retry("PutItem", || async move {
                    let result = self
                        .client
                        .put_item()
                        .table_name(&self.table)
                        .item(KEY, AttributeValue::S(erasure_key(id)))
                        .item(
                            "status",
                            AttributeValue::S(ErasureStatus::Pending.as_str().into()),
                        )
                        .item("requested_at", AttributeValue::N(requested_at.clone()))
                        .item("clientid_hash", AttributeValue::S(clientid_hash.into()))
                        .item("clientid", AttributeValue::S(clientid.into()))
                        .condition_expression("attribute_not_exists(#pk)")
                        .expression_attribute_names("#pk", KEY)
                        .return_values_on_condition_check_failure(
                            ReturnValuesOnConditionCheckFailure::AllOld,
                        )
                        .send()
                        .await;
                    match result {
                        Ok(_) => Ok(()),
                        Err(err) => match err.as_service_error() {
                            Some(PutItemError::ConditionalCheckFailedException(failed))
                                if failed.item().is_some_and(ours) =>
                            {
                                Ok(())
                            }
                            _ => Err(sdk("PutItem", err)),
                        },
                    }
                })
                .await
        }

        /// The entry of erasure `id` (consistent read: a `GET` right after
        /// the `202` finds it), `None` for an unknown or malformed id.
        pub async fn entry(&self, id: &str) -> Result<Option<PendingErasure>, AwsError> {
            if !is_erasure_id(id) {
                return Ok(None);
            }
            let output = self
                .backoff
                .retry("GetItem", || async move {
                    self.client
                        .get_item()
                        .table_name(&self.table)
                        .key(KEY, AttributeValue::S(erasure_key(id)))
                        .consistent_read(true)
                        .send()
                        .await
                        .map_err(|e| sdk("GetItem", e))
                })
                .await?;
            output
                .item()
                .map(|item| entry_from_item(id, item))
                .transpose()
        }

        /// The dates the visitor's profile says it has hits on (its `dd`,
        /// written by the stream consumer); [`VisitorDates::All`] for a
        /// profile without them, [`VisitorDates::None`] without a profile.
        pub async fn profile_dates(&self, clientid: &str) -> Result<VisitorDates, AwsError> {
            let output = self
                .backoff
                .retry("GetItem", || async move {
                    self.client
                        .get_item()
                        .table_name(&self.table)
                        .key(KEY, AttributeValue::S(clientid.to_owned()))
                        .consistent_read(true)
                        .projection_expression("#pk, dd")
                        .expression_attribute_names("#pk", KEY)
                        .send()
                        .await
                        .map_err(|e| sdk("GetItem", e))
                })
                .await?;
            let Some(item) = output.item() else {
                return Ok(VisitorDates::None);
            };
            Ok(match item.get("dd") {
                Some(AttributeValue::B(blob)) => match HitDates::decode(blob.as_ref()) {
                    Some(dates) => VisitorDates::Some(dates.dates()),
                    None => VisitorDates::All,
                },
                _ => VisitorDates::All,
            })
        }

        /// Adds `dates` to the pending entry of erasure `id`, before the
        /// profile that told them goes. Unconditional on the status: a
        /// complete entry is never read for its dates again.
        pub async fn record_dates(&self, id: &str, dates: &VisitorDates) -> Result<(), AwsError> {
            let (expression, value) = match dates {
                VisitorDates::None => return Ok(()),
                VisitorDates::Some(days) if days.is_empty() => return Ok(()),
                VisitorDates::Some(days) => (
                    "ADD dates :d",
                    AttributeValue::Ns(days.iter().map(|d| d.days().to_string()).collect()),
                ),
                VisitorDates::All => ("SET dates_all = :d", AttributeValue::Bool(true)),
            };
            self.backoff
                .retry("UpdateItem", || {
                    let value = value.clone();
                    async move {
                        self.client
                            .update_item()
                            .table_name(&self.table)
                            .key(KEY, AttributeValue::S(erasure_key(id)))
                            .update_expression(expression)
                            .expression_attribute_values(":d", value)
                            .condition_expression("attribute_exists(#pk)")
                            .expression_attribute_names("#pk", KEY)
                            .send()
                            .await
                            .map_err(|e| sdk("UpdateItem", e))
                    }
                })
                .await?;
            Ok(())
        }

        /// Deletes the visitor's profile item (counters, window, dedup set).
        /// Deleting a missing item succeeds, so a rerun changes nothing.
        pub async fn delete_profile(&self, clientid: &str) -> Result<(), AwsError> {
            // A stored clientid was validated by the API; this guards the
            // key space of markers and log entries all the same.
            if clientid.contains('#') || clientid.is_empty() {
                return Err(AwsError::BadItem {
                    key: clientid.to_owned(),
                    detail: "not a clientid".into(),
                });
            }
            self.backoff
                .retry("DeleteItem", || async move {
                    self.client
                        .delete_item()
                        .table_name(&self.table)
                        .key(KEY, AttributeValue::S(clientid.to_owned()))
                        .send()
                        .await
                        .map_err(|e| sdk("DeleteItem", e))
                })
                .await?;
            Ok(())
        }

        /// Marks erasure `id` complete and removes the clientid and the
        /// visitor's dates, in one update conditional on the entry being
        /// pending. An entry already
        /// complete (a rerun, or an attempt whose answer was lost) or
        /// missing is left as it is.
        pub async fn complete(&self, id: &str, now_ms: i64) -> Result<(), AwsError> {
            self.backoff
                .retry("UpdateItem", || async move {
                    let result = self
                        .client
                        .update_item()
                        .table_name(&self.table)
                        .key(KEY, AttributeValue::S(erasure_key(id)))
                        .update_expression(
                            "SET #status = :complete, completed_at = :now REMOVE clientid, dates, dates_all",
                        )
                        .condition_expression("#status = :pending")
                        .expression_attribute_names("#status", "status")
                        .expression_attribute_values(
                            ":complete",
                            AttributeValue::S(ErasureStatus::Complete.as_str().into()),
                        )
                        .expression_attribute_values(
                            ":pending",
                            AttributeValue::S(ErasureStatus::Pending.as_str().into()),
                        )
                        .expression_attribute_values(":now", AttributeValue::N(now_ms.to_string()))
                        .send()
                        .await;
                    match result {
                        Ok(_) => Ok(()),
                        Err(err) if is_condition_failure(&err) => Ok(()),
                        Err(err) => Err(sdk("UpdateItem", err)),
                    }
                })
                .await
        }
    }
}

#[cfg(all(feature = "dynamodb", feature = "sqs"))]
mod requests {
    use super::ErasureLog;
    use crate::AwsError;
    use crate::error::is_retryable_sdk_error;
    use async_trait::async_trait;
    use gender_core::erasure::{clientid_hash, new_erasure_id};
    use gender_core::ports::Erasures;
    use gender_core::{ErasureRecord, ErasureStatus, PortError};

    /// The [`Erasures`] port on AWS: the log entry in DynamoDB and the
    /// erasure id on the erasure queue, which the erase function consumes.
    #[derive(Clone)]
    pub struct ErasureRequests {
        log: ErasureLog,
        sqs: aws_sdk_sqs::Client,
        queue_url: String,
        salt: Vec<u8>,
    }

    impl ErasureRequests {
        /// `salt`: the deployment's secret for [`clientid_hash`] (SSM).
        pub fn new(
            log: ErasureLog,
            sqs: aws_sdk_sqs::Client,
            queue_url: impl Into<String>,
            salt: impl Into<Vec<u8>>,
        ) -> Self {
            ErasureRequests {
                log,
                sqs,
                queue_url: queue_url.into(),
                salt: salt.into(),
            }
        }

        /// Queues erasure `id` for the worker. The message carries the id
        /// only; the clientid stays in the table. A retry after a lost
        /// answer may queue it twice, which the worker takes as a rerun.
        async fn enqueue(&self, id: &str) -> Result<(), AwsError> {
            self.log
                .backoff
                .retry("SendMessage", || async move {
                    self.sqs
                        .send_message()
                        .queue_url(&self.queue_url)
                        .message_body(id)
                        .send()
                        .await
                        .map_err(|err| {
                            let retryable = is_retryable_sdk_error(&err);
                            AwsError::sdk("SendMessage", retryable, err)
                        })
                })
                .await?;
            Ok(())
        }
    }

    #[async_trait]
    impl Erasures for ErasureRequests {
        async fn request_erasure(
            &self,
            clientid: &str,
            now_ms: i64,
        ) -> Result<ErasureRecord, PortError> {
            let mut random = [0u8; 16];
            getrandom::fill(&mut random).map_err(|e| {
                PortError::unavailable("erasure id", std::io::Error::other(e.to_string()))
            })?;
            let id = new_erasure_id(random);
            let hash = clientid_hash(&self.salt, clientid);
            // The message goes first: if the entry then fails to be written
            // the caller gets an error and the worker finds no entry for the
            // id (nothing to do). The other order could leave a pending entry
            // holding the clientid with no message ever coming for it. The
            // queue's delay (Terraform, >= 60 s) keeps the worker from
            // looking before the entry is written.
            self.enqueue(&id).await?;
            self.log.put_pending(&id, clientid, &hash, now_ms).await?;
            Ok(ErasureRecord {
                id,
                status: ErasureStatus::Pending,
                requested_ms: now_ms,
                completed_ms: None,
                clientid_hash: hash,
            })
        }

        async fn erasure(&self, id: &str) -> Result<Option<ErasureRecord>, PortError> {
            Ok(self.log.entry(id).await?.map(|e| e.record))
        }
    }
}

#[cfg(feature = "s3")]
mod rewrite {
    use crate::error::is_retryable_sdk_error;
    use crate::{AwsError, Backoff};
    use aws_sdk_s3::Client;
    use aws_sdk_s3::primitives::ByteStream;
    use std::io::Write;
    use std::path::Path;

    /// A curated object as read, with the ETag its replacement is
    /// conditional on.
    pub struct CuratedObject {
        /// The body, in a local temporary file (deleted on drop).
        pub file: tempfile::NamedTempFile,
        pub etag: String,
    }

    /// What a conditional replacement did.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Replaced {
        Yes,
        /// The object changed (or vanished) since it was read: nothing was
        /// written; read it again.
        Changed,
    }

    /// Curated objects read and replaced with `If-Match`, so that a
    /// rewrite never undoes a concurrent one (another erase invocation,
    /// curate rewriting a file, the daily job rebuilding a rollup). Both
    /// calls are retried with the backoff on `SlowDown`, 5xx and timeouts,
    /// above the SDK's own retries (see s3.rs for what is retried where).
    #[derive(Clone)]
    pub struct CuratedObjects {
        client: Client,
        bucket: String,
        backoff: Backoff,
    }

    fn sdk<E>(operation: &'static str, err: aws_sdk_s3::error::SdkError<E>) -> AwsError
    where
        E: aws_sdk_s3::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let retryable = is_retryable_sdk_error(&err);
        AwsError::sdk(operation, retryable, err)
    }

    impl CuratedObjects {
        pub fn new(client: Client, bucket: impl Into<String>) -> Self {
            CuratedObjects {
                client,
                bucket: bucket.into(),
                backoff: Backoff::default(),
            }
        }

        pub fn with_backoff(mut self, backoff: Backoff) -> Self {
            self.backoff = backoff;
            self
        }

        pub fn bucket(&self) -> &str {
            &self.bucket
        }

        /// `GetObject` into a temporary file; `None` when the key is gone
        /// (expired or deleted since it was found). A body that breaks off
        /// is read again from the start, into a new file.
        pub async fn fetch(&self, key: &str) -> Result<Option<CuratedObject>, AwsError> {
            self.backoff
                .retry("GetObject", || async move { self.fetch_once(key).await })
                .await
        }

        async fn fetch_once(&self, key: &str) -> Result<Option<CuratedObject>, AwsError> {
            let output = match self
                .client
                .get_object()
                .bucket(&self.bucket)
                .key(key)
                .send()
                .await
            {
                Ok(output) => output,
                Err(err) if err.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
                    return Ok(None);
                }
                Err(err) => return Err(sdk("GetObject", err)),
            };
            let etag = output.e_tag().unwrap_or_default().to_owned();
            let body_error = |e: Box<dyn std::error::Error + Send + Sync>| {
                AwsError::sdk("GetObject body", true, e)
            };
            let mut file = tempfile::NamedTempFile::new().map_err(|e| body_error(e.into()))?;
            let mut body = output.body;
            while let Some(chunk) = body.try_next().await.map_err(|e| body_error(e.into()))? {
                file.write_all(&chunk).map_err(|e| body_error(e.into()))?;
            }
            file.flush().map_err(|e| body_error(e.into()))?;
            Ok(Some(CuratedObject { file, etag }))
        }

        /// `PutObject` of the file at `path` under `key` if the object's
        /// ETag is still `etag` (S3 conditional write: one atomic step).
        /// An attempt whose answer was lost may have replaced the object:
        /// the next one then finds the ETag moved on and reports
        /// [`Replaced::Changed`], and the caller reads the object again (now
        /// without the rows it removes, so its rewrite changes nothing).
        pub async fn replace(
            &self,
            key: &str,
            path: &Path,
            etag: &str,
        ) -> Result<Replaced, AwsError> {
            self.backoff
                .retry("PutObject", || async move {
                    let body = ByteStream::from_path(path)
                        .await
                        .map_err(|e| AwsError::sdk("PutObject body", false, e))?;
                    match self
                        .client
                        .put_object()
                        .bucket(&self.bucket)
                        .key(key)
                        .if_match(etag)
                        .body(body)
                        .send()
                        .await
                    {
                        Ok(_) => Ok(Replaced::Yes),
                        Err(err) => {
                            let status = err.raw_response().map(|r| r.status().as_u16());
                            // 412: the ETag moved on; 404: the object is gone; 409:
                            // a concurrent conditional write won the race.
                            if matches!(status, Some(412 | 404 | 409)) {
                                Ok(Replaced::Changed)
                            } else {
                                Err(sdk("PutObject", err))
                            }
                        }
                    }
                })
                .await
        }
    }
}
