//! Visitor profiles in DynamoDB (SPEC 6), one item per visitor keyed by `pk`.
//!
//! Exactly once without read-modify-write: a raw object's deltas are split
//! into deterministic chunks of 99 visitors; each chunk is one
//! `TransactWriteItems` holding an idempotency marker (`Put` with
//! `attribute_not_exists`) plus one atomic `ADD m, f` per visitor. A replayed
//! chunk fails its marker condition and changes nothing. `last_gender` /
//! `last_seen` then move forward with conditional updates (`last_seen <= t`),
//! which are idempotent by nature and so are simply re-run on every retry.
//!
//! The daily job's writes are single `UpdateItem`s of the window attributes,
//! retried through throttling and transaction conflicts; its lease is the
//! item `#lease#<name>` (see [`Lease`]).

use crate::error::is_retryable_sdk_error;
use crate::{AwsError, Backoff};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, KeysAndAttributes, Put, TransactWriteItem, Update};
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt, stream};
use gender_core::ports::{
    ApplyOutcome, CounterStore, HealthProbe, Lease, LeaseGrant, ProfileReader, WindowStore,
};
use gender_core::seen_set;
use gender_core::{Date, Gender, PortError, Profile, VisitorDelta, WindowSums};
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};

pub const KEY: &str = "pk";
/// DynamoDB allows 100 items per transaction: one marker + 99 visitors.
pub const VISITORS_PER_TRANSACTION: usize = 99;
/// BatchGetItem reads at most 100 keys per call.
const KEYS_PER_BATCH_GET: usize = 100;
/// Markers expire (table TTL on `expires_at`) long after any retry could come.
const MARKER_TTL_SECONDS: i64 = 30 * 86_400;
/// Daily window writes in flight: at ~6 ms each, 64 write about 10,000 a
/// second, so the few million changed windows of a day take minutes.
const CONCURRENT_UPDATES: usize = 64;
/// Marker keys start with `#`, which no clientid can contain.
const MARKER_PREFIX: &str = "#applied#";
/// Lease items (`#lease#<name>`), beside the profiles for the same reason.
const LEASE_PREFIX: &str = "#lease#";
/// A released lease is deleted; one left behind by a crash is expired by
/// then, and the table's TTL removes the item a day later.
const LEASE_TTL_SECONDS: i64 = 86_400;

#[derive(Clone)]
pub struct DynamoProfiles {
    client: Client,
    table: String,
    backoff: Backoff,
}

fn build_error(e: aws_sdk_dynamodb::error::BuildError) -> AwsError {
    AwsError::sdk("TransactWriteItems", false, e)
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn sdk<E, R>(
    operation: &'static str,
    err: aws_sdk_dynamodb::error::SdkError<E, R>,
) -> AwsError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
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

/// Whether a plain write is worth another attempt: what
/// [`is_retryable_sdk_error`] retries, plus `TransactionConflictException`
/// (a `PutItem`/`UpdateItem`/`DeleteItem` that meets an item in an ongoing
/// `TransactWriteItems`, as the DynamoDB developer guide's "transaction
/// conflict handling" documents) and `TransactionInProgressException`.
fn is_retryable_write<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    let code = err.as_service_error().and_then(|e| e.code());
    matches!(
        code,
        Some("TransactionConflictException" | "TransactionInProgressException")
    ) || is_retryable_sdk_error(err)
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

/// What one chunk's transaction did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChunkOutcome {
    Applied,
    /// Its marker exists: applied before (by an earlier run or a concurrent one).
    AlreadyApplied,
    /// A visitor's version (or `last_seen`) changed since it was read: nothing
    /// was written; the caller reads again and decides again.
    Conflict,
}

/// What a visitor's item holds for deduplication (SPEC 15), read consistently.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeenItem {
    /// `ver`: bumped by every versioned write; `None` before the first.
    pub ver: Option<u64>,
    /// `seen`: a [`gender_core::seen_set::SeenSet`], encoded; empty if none.
    pub seen: Vec<u8>,
    pub last_seen_ms: Option<i64>,
}

/// One visitor's versioned write: its delta, what was read, and its new set.
#[derive(Debug, Clone)]
pub struct SeenWrite<'a> {
    pub delta: &'a VisitorDelta,
    pub read: &'a SeenItem,
    pub seen: Vec<u8>,
}

/// The key of an object's chunk marker.
pub fn marker_key(object_id: &str, index: usize) -> String {
    format!("{MARKER_PREFIX}{object_id}#{index}")
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

    fn marker_put(
        &self,
        marker: &str,
        counted_before: &[u64],
        now_ms: i64,
    ) -> Result<TransactWriteItem, AwsError> {
        let mut put = Put::builder()
            .table_name(&self.table)
            .item(KEY, s(marker))
            .item("applied_at", n(now_ms))
            .item("expires_at", n(now_ms / 1000 + MARKER_TTL_SECONDS))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", KEY);
        if !counted_before.is_empty() {
            put = put.item(
                "before",
                AttributeValue::B(Blob::new(seen_set::pack_identities(counted_before))),
            );
        }
        let put = put.build().map_err(build_error)?;
        Ok(TransactWriteItem::builder().put(put).build())
    }

    /// Today's update of a visitor without deduplication: atomic `ADD`s.
    fn plain_update(
        &self,
        delta: &VisitorDelta,
        now_ms: i64,
    ) -> Result<TransactWriteItem, AwsError> {
        // if_not_exists gives a new profile its `last` at once; the
        // conditional update afterwards moves it forward when later.
        let update = Update::builder()
            .table_name(&self.table)
            .key(KEY, s(&delta.clientid))
            .update_expression(
                "ADD m :m, f :f SET updated_at = :now, last_gender = if_not_exists(last_gender, :g), last_seen = if_not_exists(last_seen, :t)",
            )
            .expression_attribute_values(":m", n(delta.m))
            .expression_attribute_values(":f", n(delta.f))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":g", s(delta.last_gender.as_str()))
            .expression_attribute_values(":t", n(delta.last_seen_ms))
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// A versioned write (compare-and-set on `ver`): the `ADD`s, the new
    /// `seen` set and, when this delta is later or equal to what was read,
    /// `last_gender`/`last_seen` (guarded by the `last_seen` read, since
    /// visitors' plain updates move it without a version).
    fn versioned_update(
        &self,
        write: &SeenWrite<'_>,
        now_ms: i64,
    ) -> Result<TransactWriteItem, AwsError> {
        let delta = write.delta;
        let mut set =
            String::from("ADD m :m, f :f SET updated_at = :now, #seen = :seen, #ver = :next");
        let mut condition = match write.read.ver {
            Some(_) => String::from("#ver = :ver"),
            None => String::from("attribute_not_exists(#ver)"),
        };
        let replace_last = write
            .read
            .last_seen_ms
            .is_none_or(|stored| delta.last_seen_ms >= stored);
        let mut update = Update::builder()
            .table_name(&self.table)
            .key(KEY, s(&delta.clientid))
            .expression_attribute_names("#seen", "seen")
            .expression_attribute_names("#ver", "ver")
            .expression_attribute_values(":m", n(delta.m))
            .expression_attribute_values(":f", n(delta.f))
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":seen", AttributeValue::B(Blob::new(write.seen.clone())))
            .expression_attribute_values(":next", n(write.read.ver.unwrap_or(0) + 1));
        if let Some(ver) = write.read.ver {
            update = update.expression_attribute_values(":ver", n(ver));
        }
        if replace_last {
            set.push_str(", last_gender = :g, last_seen = :t");
            update = update
                .expression_attribute_values(":g", s(delta.last_gender.as_str()))
                .expression_attribute_values(":t", n(delta.last_seen_ms));
            match write.read.last_seen_ms {
                Some(stored) => {
                    condition.push_str(" AND last_seen = :read_last");
                    update = update.expression_attribute_values(":read_last", n(stored));
                }
                None => condition.push_str(" AND attribute_not_exists(last_seen)"),
            }
        }
        let update = update
            .update_expression(set)
            .condition_expression(condition)
            .build()
            .map_err(build_error)?;
        Ok(TransactWriteItem::builder().update(update).build())
    }

    /// Runs one chunk's transaction (item 0 is its marker), retrying
    /// conflicts and throttling.
    async fn apply_chunk(
        &self,
        marker: &str,
        items: Vec<TransactWriteItem>,
    ) -> Result<ChunkOutcome, AwsError> {
        let mut last = String::new();
        for attempt in 0..self.backoff.attempts {
            if attempt > 0 {
                self.backoff.pause(attempt).await;
            }
            let err = match self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await
            {
                Ok(_) => return Ok(ChunkOutcome::Applied),
                Err(err) => err,
            };
            let reasons: Vec<String> = err
                .as_service_error()
                .and_then(|e| match e {
                    aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c) => {
                        Some(c.cancellation_reasons().iter().map(|r| r.code().unwrap_or("None").to_owned()).collect())
                    }
                    _ => None,
                })
                .unwrap_or_default();
            // Item 0 is the marker: its condition failing means this chunk was applied before.
            if reasons.first().map(String::as_str) == Some("ConditionalCheckFailed") {
                return Ok(ChunkOutcome::AlreadyApplied);
            }
            // Any other failed condition is a visitor's version check.
            if reasons.iter().any(|r| r == "ConditionalCheckFailed") {
                return Ok(ChunkOutcome::Conflict);
            }
            let conflict = reasons
                .iter()
                .any(|r| r == "TransactionConflict" || r.contains("Throttl"));
            let in_progress = err
                .as_service_error()
                .is_some_and(|e| e.is_transaction_in_progress_exception());
            if !(conflict || in_progress || is_retryable_sdk_error(&err)) {
                return Err(sdk("TransactWriteItems", err));
            }
            last = format!(
                "{} {reasons:?}",
                aws_sdk_dynamodb::error::DisplayErrorContext(&err)
            );
            tracing::warn!(attempt, marker, error = %last, "transaction conflict or throttling; retrying");
        }
        Err(AwsError::Exhausted {
            operation: "TransactWriteItems",
            attempts: self.backoff.attempts,
            last,
        })
    }

    /// Moves `last_gender`/`last_seen` forward if this delta's hit is later
    /// or equal; a failed condition means a later hit is already stored.
    async fn advance_last(&self, delta: &VisitorDelta) -> Result<(), AwsError> {
        for attempt in 0..self.backoff.attempts {
            if attempt > 0 {
                self.backoff.pause(attempt).await;
            }
            let result = self
                .client
                .update_item()
                .table_name(&self.table)
                .key(KEY, s(&delta.clientid))
                .update_expression("SET last_gender = :g, last_seen = :t")
                .condition_expression("attribute_exists(#pk) AND last_seen <= :t")
                .expression_attribute_names("#pk", KEY)
                .expression_attribute_values(":g", s(delta.last_gender.as_str()))
                .expression_attribute_values(":t", n(delta.last_seen_ms))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                Err(err) if is_condition_failure(&err) => return Ok(()),
                Err(err) if is_retryable_sdk_error(&err) => continue,
                Err(err) => return Err(sdk("UpdateItem", err)),
            }
        }
        Err(AwsError::Exhausted {
            operation: "UpdateItem",
            attempts: self.backoff.attempts,
            last: "throttled".into(),
        })
    }

    pub async fn apply(
        &self,
        object_id: &str,
        deltas: &[VisitorDelta],
        now_ms: i64,
    ) -> Result<ApplyOutcome, AwsError> {
        let mut applied_any = false;
        let chunks: Vec<&[VisitorDelta]> = if deltas.is_empty() {
            vec![&[]]
        } else {
            deltas.chunks(VISITORS_PER_TRANSACTION).collect()
        };
        for (index, chunk) in chunks.into_iter().enumerate() {
            let marker = marker_key(object_id, index);
            let mut items = Vec::with_capacity(chunk.len() + 1);
            items.push(self.marker_put(&marker, &[], now_ms)?);
            for delta in chunk {
                items.push(self.plain_update(delta, now_ms)?);
            }
            match self.apply_chunk(&marker, items).await? {
                ChunkOutcome::Applied => applied_any = true,
                ChunkOutcome::AlreadyApplied => {}
                ChunkOutcome::Conflict => {
                    return Err(AwsError::sdk(
                        "TransactWriteItems",
                        true,
                        "a condition failed on an unconditional update",
                    ));
                }
            }
        }
        self.advance_lasts_of(Deltas::Owned(deltas.iter())).await?;
        Ok(if applied_any {
            ApplyOutcome::Applied
        } else {
            ApplyOutcome::AlreadyApplied
        })
    }

    /// Consistent reads of `keys` (projected), 100 per `BatchGetItem`,
    /// following unprocessed keys with backoff. Missing items are absent.
    async fn batch_get(
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

    /// The chunks of `object_id` (out of `chunks`) whose marker exists,
    /// each with the identities it recorded as counted before (SPEC 15).
    pub async fn applied_chunks(
        &self,
        object_id: &str,
        chunks: usize,
    ) -> Result<HashMap<usize, Vec<u64>>, AwsError> {
        let keys: Vec<String> = (0..chunks).map(|i| marker_key(object_id, i)).collect();
        let found = self
            .batch_get(
                &keys,
                "#pk, #before",
                &[("#pk", KEY), ("#before", "before")],
            )
            .await?;
        let mut applied = HashMap::with_capacity(found.len());
        for (index, key) in keys.iter().enumerate() {
            let Some(item) = found.get(key) else { continue };
            let before = match item.get("before") {
                None => Vec::new(),
                Some(AttributeValue::B(blob)) => seen_set::unpack_identities(blob.as_ref())
                    .ok_or_else(|| AwsError::BadItem {
                        key: key.clone(),
                        detail: "before is not a list of 8-byte identities".into(),
                    })?,
                Some(other) => {
                    return Err(AwsError::BadItem {
                        key: key.clone(),
                        detail: format!("before is {other:?}"),
                    });
                }
            };
            applied.insert(index, before);
        }
        Ok(applied)
    }

    /// Consistent reads of the visitors' deduplication state: `seen`, `ver`
    /// and `last_seen`. A visitor without an item gets the default.
    pub async fn read_seen(
        &self,
        clientids: &[String],
    ) -> Result<HashMap<String, SeenItem>, AwsError> {
        let found = self
            .batch_get(
                clientids,
                "#pk, #seen, #ver, last_seen",
                &[("#pk", KEY), ("#seen", "seen"), ("#ver", "ver")],
            )
            .await?;
        let mut out = HashMap::with_capacity(found.len());
        for (id, item) in found {
            let seen = match item.get("seen") {
                None => Vec::new(),
                Some(AttributeValue::B(blob)) => blob.as_ref().to_vec(),
                Some(other) => {
                    return Err(AwsError::BadItem {
                        key: id,
                        detail: format!("seen is {other:?}"),
                    });
                }
            };
            let read = SeenItem {
                ver: number(&item, "ver", &id)?,
                seen,
                last_seen_ms: number(&item, "last_seen", &id)?,
            };
            out.insert(id, read);
        }
        Ok(out)
    }

    /// Applies chunk `index` of `object_id` with deduplication (SPEC 15):
    /// one transaction of the marker (recording the identities found
    /// counted before, so a re-run decides the same way), the plain `ADD`s
    /// of visitors without `hitid`s, and a compare-and-set on `ver` for each
    /// visitor with them.
    ///
    /// This reads before it writes, which SPEC 6's wording ("never
    /// read-modify-write") rules out; it cannot lose an update all the
    /// same: the read is consistent, every write of `seen` is conditional on
    /// the `ver` that was read and increments it, so a concurrent change
    /// makes the whole transaction fail ([`ChunkOutcome::Conflict`]) and the
    /// caller reads and decides again; the counters are still `ADD`s.
    pub async fn apply_seen_chunk(
        &self,
        object_id: &str,
        index: usize,
        counted_before: &[u64],
        plain: &[&VisitorDelta],
        versioned: &[SeenWrite<'_>],
        now_ms: i64,
    ) -> Result<ChunkOutcome, AwsError> {
        let marker = marker_key(object_id, index);
        let mut items = Vec::with_capacity(1 + plain.len() + versioned.len());
        items.push(self.marker_put(&marker, counted_before, now_ms)?);
        for delta in plain {
            items.push(self.plain_update(delta, now_ms)?);
        }
        for write in versioned {
            items.push(self.versioned_update(write, now_ms)?);
        }
        self.apply_chunk(&marker, items).await
    }

    /// `last_gender`/`last_seen` moved forward for each delta (conditional,
    /// idempotent): the second step of a plain update.
    pub async fn advance_lasts(&self, deltas: &[&VisitorDelta]) -> Result<(), AwsError> {
        self.advance_lasts_of(Deltas::Borrowed(deltas.iter())).await
    }

    /// `last_*` moved forward for each delta, `CONCURRENT_UPDATES` at a
    /// time, each request built only when a slot frees up (see
    /// [`LastAdvances`]).
    async fn advance_lasts_of(&self, deltas: Deltas<'_>) -> Result<(), AwsError> {
        stream::iter(LastAdvances {
            profiles: self,
            deltas,
        })
        .buffer_unordered(CONCURRENT_UPDATES)
        .try_collect::<()>()
        .await
    }

    pub async fn profile(&self, clientid: &str) -> Result<Option<Profile>, AwsError> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .key(KEY, s(clientid))
            .send()
            .await
            .map_err(|e| sdk("GetItem", e))?;
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
        let mut last = String::new();
        for attempt in 0..self.backoff.attempts {
            if attempt > 0 {
                retries.fetch_add(1, Ordering::Relaxed);
                self.backoff.pause(attempt).await;
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
                None => request.update_expression("REMOVE w_m, w_f, w_date SET updated_at = :now"),
            };
            match request.send().await {
                Ok(_) => return Ok(()),
                // Daily never creates profiles: no item, nothing to set.
                Err(err) if is_condition_failure(&err) => return Ok(()),
                Err(err) if is_retryable_write(&err) => {
                    last = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
                }
                Err(err) => return Err(sdk("UpdateItem", err)),
            }
        }
        Err(AwsError::Exhausted {
            operation: "UpdateItem",
            attempts: self.backoff.attempts,
            last,
        })
    }

    /// Takes or extends lease `name` (see [`Lease::acquire`]): one
    /// conditional `PutItem`, which tells who holds it when it is taken.
    pub async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        now_ms: i64,
        until_ms: i64,
    ) -> Result<LeaseGrant, AwsError> {
        let key = format!("{LEASE_PREFIX}{name}");
        let mut last = String::new();
        for attempt in 0..self.backoff.attempts {
            if attempt > 0 {
                self.backoff.pause(attempt).await;
            }
            let result = self
                .client
                .put_item()
                .table_name(&self.table)
                .item(KEY, s(&key))
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
                    until_ms: number(&item, "lease_until", &key)?.unwrap_or(0),
                });
            }
            if !is_retryable_write(&err) {
                return Err(sdk("PutItem", err));
            }
            last = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
        }
        Err(AwsError::Exhausted {
            operation: "PutItem",
            attempts: self.backoff.attempts,
            last,
        })
    }

    /// Gives lease `name` up if `owner` holds it (a conditional `DeleteItem`).
    pub async fn release_lease(&self, name: &str, owner: &str) -> Result<(), AwsError> {
        let key = format!("{LEASE_PREFIX}{name}");
        let mut last = String::new();
        for attempt in 0..self.backoff.attempts {
            if attempt > 0 {
                self.backoff.pause(attempt).await;
            }
            let result = self
                .client
                .delete_item()
                .table_name(&self.table)
                .key(KEY, s(&key))
                .condition_expression("lease_owner = :owner")
                .expression_attribute_values(":owner", s(owner))
                .send()
                .await;
            match result {
                Ok(_) => return Ok(()),
                // Expired and taken by another run (or gone): not ours to delete.
                Err(err) if is_condition_failure(&err) => return Ok(()),
                Err(err) if is_retryable_write(&err) => {
                    last = aws_sdk_dynamodb::error::DisplayErrorContext(&err).to_string();
                }
                Err(err) => return Err(sdk("DeleteItem", err)),
            }
        }
        Err(AwsError::Exhausted {
            operation: "DeleteItem",
            attempts: self.backoff.attempts,
            last,
        })
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

/// The `last_*` updates of an object's visitors, made as slots free up for
/// the same reason as [`WindowWrites`]: an object at 1,000 hits/s holds
/// ~30,000 visitors, ~195 MB of futures if all were built first, against
/// curate's 1 GB.
/// Named types rather than a generic iterator, which trips the compiler's
/// `Send` check for async-trait callers.
struct LastAdvances<'a> {
    profiles: &'a DynamoProfiles,
    deltas: Deltas<'a>,
}

enum Deltas<'a> {
    Owned(std::slice::Iter<'a, VisitorDelta>),
    Borrowed(std::slice::Iter<'a, &'a VisitorDelta>),
}

impl<'a> Iterator for LastAdvances<'a> {
    type Item = BoxFuture<'a, Result<(), AwsError>>;

    fn next(&mut self) -> Option<Self::Item> {
        let delta = match &mut self.deltas {
            Deltas::Owned(deltas) => deltas.next()?,
            Deltas::Borrowed(deltas) => *deltas.next()?,
        };
        Some(Box::pin(self.profiles.advance_last(delta)))
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
impl CounterStore for DynamoProfiles {
    async fn apply_object(
        &self,
        object_id: &str,
        deltas: &[VisitorDelta],
        now_ms: i64,
    ) -> Result<ApplyOutcome, PortError> {
        self.apply(object_id, deltas, now_ms)
            .await
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
