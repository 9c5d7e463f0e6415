//! The stream consumer's reads and writes of visitor profiles (SPEC 19, 6,
//! 15): each visitor's counting state read consistently
//! ([`gender_core::stream::CountingState`]), then one conditional
//! `UpdateItem` per visitor and batch with what
//! [`gender_core::stream::decide`] made of it.
//!
//! The write is a compare-and-set on the item's `ver`: `ADD m, f`, the new
//! `seen` set and stream position `sq`, `last_*` when the batch's latest hit
//! is later or equal, `ver + 1`, all conditional on the `ver` read. Nothing
//! else writes `ver`, `seen`, `sq` or the counters (curate only archives;
//! the daily job writes `w_*`; erasure deletes the whole item), so a failed
//! condition means the item changed under the consumer (an erasure, or a
//! second consumer of the same visitor after a reshard) and the visitor is
//! decided again from the item the failure returns
//! (`ReturnValuesOnConditionCheckFailure = ALL_OLD`, free of read units).
//! No transaction: an item under 1 KB costs one write unit.

use crate::dynamodb::{DynamoProfiles, KEY, is_condition_failure, n, number, s, sdk};
use crate::{AwsError, error::is_retryable_sdk_error};
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::{AttributeValue, ReturnValuesOnConditionCheckFailure};
use gender_core::seen_set::SeenSet;
use gender_core::stream::{CountingState, CountingUpdate, HitDates, StreamPosition};
use std::collections::HashMap;

/// What a conditional counting write did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Written {
    Applied,
    /// The item's version is not the one read: nothing was written. Holds
    /// the item as it is now (default when it is gone), to decide again.
    Conflict(CountingState),
}

/// The counting state an item holds.
pub fn counting_state(
    clientid: &str,
    item: &HashMap<String, AttributeValue>,
) -> Result<CountingState, AwsError> {
    let bad = |detail: String| AwsError::BadItem {
        key: clientid.to_owned(),
        detail,
    };
    let seen = match item.get("seen") {
        None => SeenSet::default(),
        Some(AttributeValue::B(blob)) => {
            SeenSet::decode(blob.as_ref()).map_err(|e| bad(e.to_string()))?
        }
        Some(other) => return Err(bad(format!("seen is {other:?}"))),
    };
    let position = match item.get("sq") {
        None => None,
        Some(AttributeValue::B(blob)) => Some(
            StreamPosition::decode(blob.as_ref())
                .ok_or_else(|| bad("sq is not a stream position".into()))?,
        ),
        Some(other) => return Err(bad(format!("sq is {other:?}"))),
    };
    let dates = match item.get("dd") {
        None => HitDates::default(),
        Some(AttributeValue::B(blob)) => {
            HitDates::decode(blob.as_ref()).ok_or_else(|| bad("dd is not a date set".into()))?
        }
        Some(other) => return Err(bad(format!("dd is {other:?}"))),
    };
    Ok(CountingState {
        version: number(item, "ver", clientid)?,
        seen,
        last_seen_ms: number(item, "last_seen", clientid)?,
        position,
        dates,
    })
}

impl DynamoProfiles {
    /// Consistent reads of the visitors' counting state, 100 keys per
    /// `BatchGetItem` (unprocessed keys followed with backoff). A visitor
    /// without an item gets the default state.
    pub async fn counting_states(
        &self,
        clientids: &[String],
    ) -> Result<HashMap<String, CountingState>, AwsError> {
        let found = self
            .batch_get(
                clientids,
                "#pk, #seen, #ver, last_seen, sq, dd",
                &[("#pk", KEY), ("#seen", "seen"), ("#ver", "ver")],
            )
            .await?;
        let mut states = HashMap::with_capacity(clientids.len());
        for id in clientids {
            let state = match found.get(id) {
                Some(item) => counting_state(id, item)?,
                None => CountingState::default(),
            };
            states.insert(id.clone(), state);
        }
        Ok(states)
    }

    /// One visitor's counting write, retried with backoff while DynamoDB
    /// throttles or a transaction holds the item (`TransactionConflict`).
    pub async fn write_counting(
        &self,
        clientid: &str,
        update: &CountingUpdate,
        now_ms: i64,
    ) -> Result<Written, AwsError> {
        let mut set = String::from("SET updated_at = :now, #ver = :next, sq = :sq, #seen = :seen");
        let mut request = self
            .client
            .update_item()
            .table_name(&self.table)
            .key(KEY, s(clientid))
            .expression_attribute_names("#ver", "ver")
            .expression_attribute_names("#seen", "seen")
            .expression_attribute_values(":now", n(now_ms))
            .expression_attribute_values(":next", n(update.expected_version.unwrap_or(0) + 1))
            .expression_attribute_values(
                ":sq",
                AttributeValue::B(Blob::new(update.position.encode())),
            )
            .expression_attribute_values(
                ":seen",
                AttributeValue::B(Blob::new(update.seen.encode())),
            )
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld);
        if let Some((gender, at)) = update.last {
            set.push_str(", last_gender = :g, last_seen = :t");
            request = request
                .expression_attribute_values(":g", s(gender.as_str()))
                .expression_attribute_values(":t", n(at));
        }
        if let Some(dates) = &update.dates {
            set.push_str(", dd = :dd");
            request = request
                .expression_attribute_values(":dd", AttributeValue::B(Blob::new(dates.encode())));
        }
        if update.counted() > 0 {
            set.push_str(" ADD m :m, f :f");
            request = request
                .expression_attribute_values(":m", n(update.m))
                .expression_attribute_values(":f", n(update.f));
        }
        request = match update.expected_version {
            Some(version) => request
                .condition_expression("#ver = :ver")
                .expression_attribute_values(":ver", n(version)),
            None => request.condition_expression("attribute_not_exists(#ver)"),
        };
        let request = request.update_expression(set);

        let mut last = String::new();
        for attempt in 0..self.backoff.attempts {
            if attempt > 0 {
                self.backoff.pause(attempt).await;
            }
            match request.clone().send().await {
                Ok(_) => return Ok(Written::Applied),
                Err(err) if is_condition_failure(&err) => {
                    let now = match err.as_service_error() {
                        Some(UpdateItemError::ConditionalCheckFailedException(e)) => e
                            .item()
                            .map(|item| counting_state(clientid, item))
                            .transpose()?,
                        _ => None,
                    };
                    return Ok(Written::Conflict(match now {
                        Some(state) => state,
                        // No item returned: it is gone (an erasure), or
                        // the service did not send it; read it.
                        None => self
                            .counting_states(&[clientid.to_owned()])
                            .await?
                            .remove(clientid)
                            .unwrap_or_default(),
                    }));
                }
                Err(err) if is_retryable_sdk_error(&err) => {
                    last = format!("{}", aws_sdk_dynamodb::error::DisplayErrorContext(&err));
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
}
