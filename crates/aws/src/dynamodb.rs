//! Visitor profiles in DynamoDB (SPEC 6), one item per visitor keyed by `pk`.
//!
//! Exactly once without read-modify-write: a raw object's deltas are split
//! into deterministic chunks of 99 visitors; each chunk is one
//! `TransactWriteItems` holding an idempotency marker (`Put` with
//! `attribute_not_exists`) plus one atomic `ADD m, f` per visitor. A replayed
//! chunk fails its marker condition and changes nothing. `last_gender` /
//! `last_seen` then move forward with conditional updates (`last_seen <= t`),
//! which are idempotent by nature and so are simply re-run on every retry.

use crate::error::is_retryable_sdk_error;
use crate::{AwsError, Backoff};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::{AttributeValue, Put, TransactWriteItem, Update};
use futures::{StreamExt, TryStreamExt, stream};
use gender_core::ports::{ApplyOutcome, CounterStore, HealthProbe, ProfileReader, WindowStore};
use gender_core::{Date, Gender, PortError, Profile, VisitorDelta, WindowSums};
use std::collections::HashMap;

pub const KEY: &str = "pk";
/// DynamoDB allows 100 items per transaction: one marker + 99 visitors.
const VISITORS_PER_TRANSACTION: usize = 99;
/// Markers expire (table TTL on `expires_at`) long after any retry could come.
const MARKER_TTL_SECONDS: i64 = 30 * 86_400;
/// Daily window writes in flight: at ~6 ms each, 64 write about 10,000 a
/// second, so the few million changed windows of a day take minutes.
const CONCURRENT_UPDATES: usize = 64;
/// Marker keys start with `#`, which no clientid can contain.
const MARKER_PREFIX: &str = "#applied#";

#[derive(Clone)]
pub struct DynamoProfiles {
    client: Client,
    table: String,
    backoff: Backoff,
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

fn sdk<E, R>(operation: &'static str, err: aws_sdk_dynamodb::error::SdkError<E, R>) -> AwsError
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    R: std::fmt::Debug + Send + Sync + 'static,
{
    let retryable = is_retryable_sdk_error(&err);
    AwsError::sdk(operation, retryable, err)
}

fn is_condition_failure<E, R>(err: &aws_sdk_dynamodb::error::SdkError<E, R>) -> bool
where
    E: aws_sdk_dynamodb::error::ProvideErrorMetadata,
{
    err.as_service_error().and_then(|e| e.code()) == Some("ConditionalCheckFailedException")
}

fn number<T: std::str::FromStr>(
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

fn text<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
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

enum ChunkOutcome {
    Applied,
    AlreadyApplied,
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

    fn chunk_transaction(
        &self,
        marker: &str,
        chunk: &[VisitorDelta],
        now_ms: i64,
    ) -> Result<Vec<TransactWriteItem>, AwsError> {
        let build = |e| AwsError::sdk("TransactWriteItems", false, e);
        let mut items = Vec::with_capacity(chunk.len() + 1);
        let put = Put::builder()
            .table_name(&self.table)
            .item(KEY, s(marker))
            .item("applied_at", n(now_ms))
            .item("expires_at", n(now_ms / 1000 + MARKER_TTL_SECONDS))
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", KEY)
            .build()
            .map_err(build)?;
        items.push(TransactWriteItem::builder().put(put).build());
        for delta in chunk {
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
                .map_err(build)?;
            items.push(TransactWriteItem::builder().update(update).build());
        }
        Ok(items)
    }

    async fn apply_chunk(
        &self,
        marker: &str,
        chunk: &[VisitorDelta],
        now_ms: i64,
    ) -> Result<ChunkOutcome, AwsError> {
        let items = self.chunk_transaction(marker, chunk, now_ms)?;
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
            let marker = format!("{MARKER_PREFIX}{object_id}#{index}");
            if let ChunkOutcome::Applied = self.apply_chunk(&marker, chunk, now_ms).await? {
                applied_any = true;
            }
        }
        // Futures collected first: a closure inside the stream trips the
        // compiler's Send check for async-trait callers.
        let updates: Vec<_> = deltas.iter().map(|d| self.advance_last(d)).collect();
        stream::iter(updates)
            .buffer_unordered(CONCURRENT_UPDATES)
            .try_collect::<()>()
            .await?;
        Ok(if applied_any {
            ApplyOutcome::Applied
        } else {
            ApplyOutcome::AlreadyApplied
        })
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

    /// A full scan for the attribute: once a day, about 1 read unit per 4 KB
    /// of the table. A sparse index would be cheaper at very large scale.
    /// Every visitor with window sums, with them: one Scan (projected to
    /// the key and the window attributes) a day.
    pub async fn stored_windows(&self) -> Result<Vec<(String, WindowSums)>, AwsError> {
        let mut pages = self
            .client
            .scan()
            .table_name(&self.table)
            .filter_expression("attribute_exists(w_date)")
            .projection_expression("#pk, w_m, w_f, w_date")
            .expression_attribute_names("#pk", KEY)
            .into_paginator()
            .send();
        let mut stored = Vec::new();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| sdk("Scan", e))?;
            for item in page.items() {
                let Some(id) = text(item, KEY) else { continue };
                if let Some(window) = window_of(item, id)? {
                    stored.push((id.to_owned(), window));
                }
            }
        }
        Ok(stored)
    }

    async fn set_window(
        &self,
        clientid: &str,
        window: Option<WindowSums>,
        now_ms: i64,
    ) -> Result<(), AwsError> {
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
            Ok(_) => Ok(()),
            // Daily never creates profiles: no item, nothing to set.
            Err(err) if is_condition_failure(&err) => Ok(()),
            Err(err) => Err(sdk("UpdateItem", err)),
        }
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
    async fn stored_windows(&self) -> Result<Vec<(String, WindowSums)>, PortError> {
        DynamoProfiles::stored_windows(self)
            .await
            .map_err(Into::into)
    }

    async fn set_windows(
        &self,
        updates: &[(String, Option<WindowSums>)],
        now_ms: i64,
    ) -> Result<(), PortError> {
        let writes: Vec<_> = updates
            .iter()
            .map(|(id, window)| self.set_window(id, *window, now_ms))
            .collect();
        stream::iter(writes)
            .buffer_unordered(CONCURRENT_UPDATES)
            .try_collect::<()>()
            .await
            .map_err(Into::into)
    }
}
