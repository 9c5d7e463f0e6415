//! Visitor profiles in DynamoDB (SPEC 4, 6, 7), one item per visitor keyed
//! by `pk`: the lookup's read, the daily job's window sums. The stream
//! consumer's counting reads and writes are in [`crate::counting`].
//!
//! The daily job's writes are single `UpdateItem`s of the window attributes,
//! retried through throttling and transaction conflicts; its lease is the
//! item `#lease#<name>` (see [`Lease`]).

use crate::error::is_retryable_sdk_error;
use crate::{AwsError, Backoff};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt, stream};
use gender_core::ports::{HealthProbe, Lease, LeaseGrant, ProfileReader, WindowStore};
use gender_core::{Date, Gender, PortError, Profile, WindowSums};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

pub const KEY: &str = "pk";
/// BatchGetItem reads at most 100 keys per call.
const KEYS_PER_BATCH_GET: usize = 100;
/// Daily window writes in flight: at ~6 ms each, 64 write about 10,000 a
/// second, so the few million changed windows of a day take minutes.
const CONCURRENT_UPDATES: usize = 64;
/// Attempts of a lookup's `GetItem` (each with the SDK's own 3): a request
/// waits for it, and gender-http's SDK timeouts (3 s an operation) times 3
/// stay inside its 25 s request deadline.
const LOOKUP_ATTEMPTS: u32 = 3;
/// Lease items (`#lease#<name>`), beside the profiles: no clientid contains `#`.
const LEASE_PREFIX: &str = "#lease#";
/// A released lease is deleted; one left behind by a crash is expired by
/// then, and the table's TTL removes the item a day later.
const LEASE_TTL_SECONDS: i64 = 86_400;

#[derive(Clone)]
pub struct DynamoProfiles {
    pub(crate) client: Client,
    pub(crate) table: String,
    pub(crate) backoff: Backoff,
}

pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn sdk<E>(operation: &'static str, err: aws_sdk_dynamodb::error::SdkError<E>) -> AwsError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let retryable = is_retryable_sdk_error(&err);
    AwsError::sdk(operation, retryable, err)
}

pub(crate) fn is_condition_failure<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

pub(crate) fn number<T: std::str::FromStr>(
    item: &HashMap<String, AttributeValue>,
    name: &str,
    key: &str,
) -> Result<Option<T>, AwsError> {
    match item.get(name) {
        None => Ok(None),
        Some(AttributeValue::N(text)) => text.parse().map(Some).map_err(|_| AwsError::BadItem {
            key: key.to_owned(),
            detail: format!("{name} = {text}"),
        }),
        Some(other) => Err(AwsError::BadItem {
            key: key.to_owned(),
            detail: format!("{name} is {other:?}"),
        }),
    }
}

pub(crate) fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|v| v.as_s().ok())
        .map(String::as_str)
}

/// The window sums an item holds, if it holds them.
fn window_of(
    item: &HashMap<String, AttributeValue>,
    clientid: &str,
) -> Result<Option<WindowSums>, AwsError> {
    match (
        number::<u64>(item, "w_m", clientid)?,
        number::<u64>(item, "w_f", clientid)?,
        text(item, "w_date"),
    ) {
        (Some(m), Some(f), Some(date)) => Ok(Some(WindowSums {
            m,
            f,
            date: Date::parse(date).ok_or_else(|| AwsError::BadItem {
                key: clientid.to_owned(),
                detail: "w_date".into(),
            })?,
        })),
        _ => Ok(None),
    }
}

/// Maps a stored item back to the domain profile.
pub fn profile_from_item(
    clientid: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<Profile, AwsError> {
    let bad = |detail: &str| AwsError::BadItem {
        key: clientid.to_owned(),
        detail: detail.to_owned(),
    };
    let last_gender = text(item, "last_gender")
        .and_then(Gender::parse)
        .ok_or_else(|| bad("last_gender missing"))?;
    let window = window_of(item, clientid)?;
    Ok(Profile {
        clientid: clientid.to_owned(),
        m: number(item, "m", clientid)?.unwrap_or(0),
        f: number(item, "f", clientid)?.unwrap_or(0),
        last_gender,
        last_seen_ms: number(item, "last_seen", clientid)?
            .ok_or_else(|| bad("last_seen missing"))?,
        window,
        updated_at_ms: number(item, "updated_at", clientid)?.unwrap_or(0),
    })
}

impl DynamoProfiles {
    pub fn new(client: Client, table: impl Into<String>) -> Self {
        DynamoProfiles {
            client,
            table: table.into(),
            backoff: Backoff::default(),
        }
    }

    pub fn with_backoff(mut self, backoff: Backoff) -> Self {
        self.backoff = backoff;
        self
    }

    /// Consistent reads of `keys` (projected), 100 per `BatchGetItem`,
    /// following unprocessed keys with backoff. Missing items are absent.
    pub(crate) async fn batch_get(
        &self,
        keys: &[String],
        projection: &str,
        names: &[(&str, &str)],
    ) -> Result<HashMap<String, HashMap<String, AttributeValue>>, AwsError> {
        let mut found = HashMap::with_capacity(keys.len());
        for group in keys.chunks(KEYS_PER_BATCH_GET) {
            let mut pending: Vec<HashMap<String, AttributeValue>> = group
                .iter()
                .map(|k| HashMap::from([(KEY.to_owned(), s(k))]))
                .collect();
            let mut attempt = 0;
            while !pending.is_empty() {
                if attempt > 0 {
                    if attempt >= self.backoff.attempts {
                        return Err(AwsError::Exhausted {
                            operation: "BatchGetItem",
                            attempts: attempt,
                            last: format!("{} keys unprocessed", pending.len()),
                        });
                    }
                    self.backoff.pause(attempt).await;
                }
                attempt += 1;
                let mut request = KeysAndAttributes::builder()
                    .set_keys(Some(std::mem::take(&mut pending)))
                    .consistent_read(true)
                    .projection_expression(projection);
                for (name, attribute) in names {
                    request = request.expression_attribute_names(*name, *attribute);
                }
                let request = request
                    .build()
                    .map_err(|e| AwsError::sdk("BatchGetItem", false, e))?;
                let keys_sent = request.keys().to_vec();
                let output = match self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, request)
                    .send()
                    .await
                {
                    Ok(output) => output,
                    Err(err) if is_retryable_sdk_error(&err) => {
                        pending = keys_sent;
                        continue;
                    }
                    Err(err) => return Err(sdk("BatchGetItem", err)),
                };
                for item in output
                    .responses()
                    .and_then(|r| r.get(&self.table))
                    .into_iter()
                    .flatten()
                {
                    if let Some(key) = text(item, KEY) {
                        found.insert(key.to_owned(), item.clone());
                    }
                }
                pending = output
                    .unprocessed_keys()
                    .and_then(|u| u.get(&self.table))
                    .map(|k| k.keys().to_vec())
                    .unwrap_or_default();
            }
        }
        Ok(found)
    }

    /// A visitor's profile (`GET /gender`). Throttling and 5xx are retried
    /// a few times only ([`LOOKUP_ATTEMPTS`]): a client waits for the answer.
    /// A consistent read: an eventually consistent one can miss a write of
    /// the last second (DynamoDB: "usually reached within a second"), a
    /// large part of the 2 s in which a hit must become visible (SPEC 19),
    /// for 0.5 read units more per lookup.
    pub async fn profile(&self, clientid: &str) -> Result<Option<Profile>, AwsError> {
        let backoff = Backoff {
            attempts: self.backoff.attempts.min(LOOKUP_ATTEMPTS),
            ..self.backoff
        };
        let output = backoff
            .retry("GetItem", move || async move {
                self.client
                    .get_item()
                    .table_name(&self.table)
                    .key(KEY, s(clientid))
                    .consistent_read(true)
                    .send()
                    .await
                    .map_err(|e| sdk("GetItem", e))
            })
            .await?;
        output
            .item()
            .map(|item| profile_from_item(clientid, item))
            .transpose()
    }

    /// One window write (`UpdateItem`, conditional on the profile existing),
    /// retried with backoff when throttled or when it meets a transaction;
    /// `retries` counts the retries.
    async fn set_window(
        &self,
        clientid: &str,
        window: Option<WindowSums>,
        now_ms: i64,
        retries: &AtomicU64,
    ) -> Result<(), AwsError> {
        let tried = std::sync::atomic::AtomicBool::new(false);
        let tried = &tried;
        self.backoff
            .retry("UpdateItem", || async move {
                if tried.swap(true, Ordering::Relaxed) {
                    retries.fetch_add(1, Ordering::Relaxed);
                }
                let request = self
                    .client
                    .update_item()
                    .table_name(&self.table)
                    .key(KEY, s(clientid))
                    .condition_expression("attribute_exists(#pk)")
                    .expression_attribute_names("#pk", KEY)
                    .expression_attribute_values(":now", n(now_ms));
                let request = match window {
                    Some(w) => request
                        .update_expression("SET w_m = :m, w_f = :f, w_date = :d, updated_at = :now")
                        .expression_attribute_values(":m", n(w.m))
                        .expression_attribute_values(":f", n(w.f))
                        .expression_attribute_values(":d", s(w.date.to_string())),
                    None => {
                        request.update_expression("REMOVE w_m, w_f, w_date SET updated_at = :now")
                    }
                };
                match request.send().await {
                    Ok(_) => Ok(()),
                    // Daily never creates profiles: no item, nothing to set.
                    Err(err) if is_condition_failure(&err) => Ok(()),
                    Err(err) => Err(sdk("UpdateItem", err)),
                }
            })
            .await
    }

    /// Takes or extends lease `name` (see [`Lease::acquire`]): one
    /// conditional `PutItem`, which tells who holds it when it is taken.
    /// Safe to retry: a retry after a lost answer finds the lease held by
    /// `owner`, which the condition lets through.
    pub async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<LeaseGrant, AwsError> {
        let key = &format!("{LEASE_PREFIX}{name}");
        self.backoff
            .retry("PutItem", || async move {
                let result = self
                    .client
                    .put_item()
                    .table_name(&self.table)
                    .item(KEY, s(key))
                    .item("lease_owner", s(owner))
                    .item("lease_until", n(until_ms))
                    .item("expires_at", n(until_ms / 1000 + LEASE_TTL_SECONDS))
                    .condition_expression(
                        "attribute_not_exists(#pk) OR lease_until < :now OR lease_owner = :owner",
                    )
                    .expression_attribute_names("#pk", KEY)
                    .expression_attribute_values(":now", n(now_ms))
                    .expression_attribute_values(":owner", s(owner))
                    .return_values_on_condition_check_failure(
                        aws_sdk_dynamodb::types::ReturnValuesOnConditionCheckFailure::AllOld,
                    )
                    .send()
                    .await;
                let err = match result {
                    Ok(_) => return Ok(LeaseGrant::Granted),
                    Err(err) => err,
                };
                if let Some(aws_sdk_dynamodb::operation::put_item::PutItemError::ConditionalCheckFailedException(held)) =
                    err.as_service_error()
                {
                    let item = held.item().cloned().unwrap_or_default();
                    return Ok(LeaseGrant::HeldBy {
                        owner: text(&item, "lease_owner").unwrap_or_default().to_owned(),
                        until_ms: number(&item, "lease_until", key)?.unwrap_or(0),
                    });
                }
                Err(sdk("PutItem", err))
            })
            .await
    }

    /// Gives lease `name` up if `owner` holds it (a conditional `DeleteItem`).
    pub async fn release_lease(&self, name: &str, owner: &str) -> Result<(), AwsError> {
        let key = &format!("{LEASE_PREFIX}{name}");
        self.backoff
            .retry("DeleteItem", || async move {
                let result = self
                    .client
                    .delete_item()
                    .table_name(&self.table)
                    .key(KEY, s(key))
                    .condition_expression("lease_owner = :owner")
                    .expression_attribute_values(":owner", s(owner))
                    .send()
                    .await;
                match result {
                    Ok(_) => Ok(()),
                    // Expired and taken by another run (or gone): not ours to delete.
                    Err(err) if is_condition_failure(&err) => Ok(()),
                    Err(err) => Err(sdk("DeleteItem", err)),
                }
            })
            .await
    }
}

/// The window writes of a daily run, each request's future made when a
/// slot of the `CONCURRENT_UPDATES` frees up, not all first: an `UpdateItem`
/// future is 6.5 KB (debug and release builds alike) and a day at 1,000 hits/s
/// changes ~3.8 M windows, so building them all up front would take ~25 GB.
/// A named iterator, not `map` with a closure: the closure trips the
/// compiler's `Send` check for async-trait callers.
struct WindowWrites<'a> {
    profiles: &'a DynamoProfiles,
    updates: std::slice::Iter<'a, (String, Option<WindowSums>)>,
    now_ms: i64,
    retries: &'a AtomicU64,
}

impl<'a> Iterator for WindowWrites<'a> {
    type Item = BoxFuture<'a, Result<(), AwsError>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (id, window) = self.updates.next()?;
        Some(Box::pin(self.profiles.set_window(
            id,
            *window,
            self.now_ms,
            self.retries,
        )))
    }
}

#[async_trait]
impl ProfileReader for DynamoProfiles {
    async fn get_profile(&self, clientid: &str) -> Result<Option<Profile>, PortError> {
        self.profile(clientid).await.map_err(Into::into)
    }
}

#[async_trait]
impl HealthProbe for DynamoProfiles {
    async fn ping(&self) -> Result<(), PortError> {
        // A point read of a key no visitor can have: needs only GetItem.
        self.profile("#health")
            .await
            .map(|_| ())
            .map_err(Into::into)
    }
}

#[async_trait]
impl WindowStore for DynamoProfiles {
    async fn set_windows(
        &self,
        updates: &[(String, Option<WindowSums>)],
        now_ms: i64,
    ) -> Result<(), PortError> {
        let retries = AtomicU64::new(0);
        let writes = WindowWrites {
            profiles: self,
            updates: updates.iter(),
            now_ms,
            retries: &retries,
        };
        let result = stream::iter(writes)
            .buffer_unordered(CONCURRENT_UPDATES)
            .try_collect::<()>()
            .await;
        let retries = retries.into_inner();
        if retries > 0 {
            // Once per batch, not per write: the rate (DAILY_WRITES_PER_SECOND)
            // may be above what the table takes now.
            tracing::warn!(
                retries,
                writes = updates.len(),
                "window writes throttled or in conflict with a transaction; retried"
            );
        }
        result.map_err(Into::into)
    }
}

#[async_trait]
impl Lease for DynamoProfiles {
    async fn acquire(
        &self,
        name: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<LeaseGrant, PortError> {
        self.acquire_lease(name, owner, now_ms, until_ms)
            .await
            .map_err(Into::into)
    }

    async fn release(&self, name: &str, owner: &str) -> Result<(), PortError> {
        self.release_lease(name, owner).await.map_err(Into::into)
    }
}
