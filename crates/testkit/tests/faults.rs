//! The fault proxy against moto, seen through the SDK clients: each fault
//! parses as the error AWS sends, an error changes nothing, a partial
//! answer stores exactly what it says it stored, a stalled answer is
//! applied all the same, and what passes through arrives byte for byte.

use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::error::ProvideErrorMetadata;
use aws_sdk_dynamodb::types::{
    AttributeValue, KeysAndAttributes, Put, PutRequest, TransactWriteItem, WriteRequest,
};
use gender_testkit::{Fault, FaultProxy, Moto, Rule, resources};
use std::collections::{BTreeSet, HashMap};
use std::time::Duration;

const TABLE: &str = "profiles";

/// The proxy's configuration without the SDK's own retries, so that each
/// injected fault reaches the caller.
async fn no_retries(proxy: &FaultProxy) -> aws_config::SdkConfig {
    proxy
        .sdk_config()
        .await
        .to_builder()
        .retry_config(RetryConfig::disabled())
        .build()
}

fn key(pk: &str) -> HashMap<String, AttributeValue> {
    HashMap::from([("pk".to_owned(), AttributeValue::S(pk.to_owned()))])
}

async fn exists(client: &aws_sdk_dynamodb::Client, pk: &str) -> bool {
    client
        .get_item()
        .table_name(TABLE)
        .set_key(Some(key(pk)))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .is_some()
}

#[tokio::test]
async fn dynamodb_errors_parse_as_aws_sends_them_and_change_nothing() {
    let moto = Moto::start();
    let direct = resources::create_table(&moto.sdk_config().await, TABLE).await;
    direct
        .put_item()
        .table_name(TABLE)
        .set_item(Some(key("a")))
        .item("n", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap();
    let proxy = FaultProxy::start(&moto.endpoint, 1);
    let client = aws_sdk_dynamodb::Client::new(&no_retries(&proxy).await);

    proxy.inject(Rule::new("dynamodb", "UpdateItem", Fault::TransactionConflict).times(1));
    let err = client
        .update_item()
        .table_name(TABLE)
        .set_key(Some(key("a")))
        .update_expression("ADD n :one")
        .expression_attribute_values(":one", AttributeValue::N("1".into()))
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_transaction_conflict_exception()),
        "{err:?}"
    );
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 400);

    for (fault, code) in [
        (
            Fault::ProvisionedThroughputExceeded,
            "ProvisionedThroughputExceededException",
        ),
        (Fault::Throttling, "ThrottlingException"),
        (Fault::RequestLimitExceeded, "RequestLimitExceeded"),
        (Fault::ServerError, "InternalServerError"),
    ] {
        proxy.inject(Rule::new("dynamodb", "DeleteItem", fault).times(1));
        let err = client
            .delete_item()
            .table_name(TABLE)
            .set_key(Some(key("a")))
            .send()
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(code), "{err:?}");
        assert_eq!(proxy.injected(fault, "DeleteItem"), 1);
    }
    // None of them reached moto: the item is as it was.
    let item = direct
        .get_item()
        .table_name(TABLE)
        .set_key(Some(key("a")))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    assert_eq!(item["n"], AttributeValue::N("1".into()));
    // Rules used up: requests pass again.
    client
        .delete_item()
        .table_name(TABLE)
        .set_key(Some(key("a")))
        .send()
        .await
        .unwrap();
    assert!(!exists(&direct, "a").await);
    assert_eq!(proxy.requests("DeleteItem"), 5);
    assert_eq!(proxy.injected_total(), 5);
}

#[tokio::test]
async fn a_canceled_transaction_names_the_conflicting_item_and_writes_nothing() {
    let moto = Moto::start();
    let direct = resources::create_table(&moto.sdk_config().await, TABLE).await;
    let proxy = FaultProxy::start(&moto.endpoint, 2);
    let client = aws_sdk_dynamodb::Client::new(&no_retries(&proxy).await);
    proxy.inject(Rule::new("dynamodb", "TransactWriteItems", Fault::TransactionCanceled).times(1));
    let items: Vec<TransactWriteItem> = ["a", "b", "c"]
        .into_iter()
        .map(|pk| {
            let put = Put::builder()
                .table_name(TABLE)
                .set_item(Some(key(pk)))
                .build()
                .unwrap();
            TransactWriteItem::builder().put(put).build()
        })
        .collect();
    let err = client
        .transact_write_items()
        .set_transact_items(Some(items.clone()))
        .send()
        .await
        .unwrap_err();
    let reasons: Vec<String> = match err.as_service_error() {
        Some(aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError::TransactionCanceledException(c)) => c
            .cancellation_reasons()
            .iter()
            .map(|r| r.code().unwrap_or_default().to_owned())
            .collect(),
        _ => panic!("{err:?}"),
    };
    assert_eq!(reasons.len(), 3);
    assert_eq!(
        reasons
            .iter()
            .filter(|r| *r == "TransactionConflict")
            .count(),
        1
    );
    assert_eq!(reasons.iter().filter(|r| *r == "None").count(), 2);
    for pk in ["a", "b", "c"] {
        assert!(!exists(&direct, pk).await, "{pk}");
    }
    client
        .transact_write_items()
        .set_transact_items(Some(items))
        .send()
        .await
        .unwrap();
    assert!(exists(&direct, "b").await);
}

#[tokio::test]
async fn a_partial_batch_write_stores_exactly_the_processed_requests() {
    let moto = Moto::start();
    let direct = resources::create_table(&moto.sdk_config().await, TABLE).await;
    let proxy = FaultProxy::start(&moto.endpoint, 3);
    let client = aws_sdk_dynamodb::Client::new(&no_retries(&proxy).await);
    proxy.inject(Rule::new("dynamodb", "BatchWriteItem", Fault::Unprocessed).rate(0.5));
    let ids: Vec<String> = (0..25).map(|i| format!("v{i:02}")).collect();
    let requests: Vec<WriteRequest> = ids
        .iter()
        .map(|id| {
            let put = PutRequest::builder()
                .set_item(Some(key(id)))
                .build()
                .unwrap();
            WriteRequest::builder().put_request(put).build()
        })
        .collect();
    let output = client
        .batch_write_item()
        .request_items(TABLE, requests)
        .send()
        .await
        .unwrap();
    let unprocessed: BTreeSet<String> = output
        .unprocessed_items()
        .and_then(|u| u.get(TABLE))
        .into_iter()
        .flatten()
        .map(|w| {
            let item = w.put_request().unwrap().item();
            item["pk"].as_s().unwrap().clone()
        })
        .collect();
    assert!(!unprocessed.is_empty() && unprocessed.len() < ids.len());
    assert_eq!(
        unprocessed.len() as u64,
        proxy.injected(Fault::Unprocessed, "BatchWriteItem")
    );
    for id in &ids {
        assert_eq!(exists(&direct, id).await, !unprocessed.contains(id), "{id}");
    }
}

#[tokio::test]
async fn a_partial_batch_get_returns_the_rest_as_unprocessed_keys() {
    let moto = Moto::start();
    let direct = resources::create_table(&moto.sdk_config().await, TABLE).await;
    let ids: Vec<String> = (0..30).map(|i| format!("v{i:02}")).collect();
    for id in &ids {
        direct
            .put_item()
            .table_name(TABLE)
            .set_item(Some(key(id)))
            .item("m", AttributeValue::N("1".into()))
            .send()
            .await
            .unwrap();
    }
    let proxy = FaultProxy::start(&moto.endpoint, 4);
    let client = aws_sdk_dynamodb::Client::new(&no_retries(&proxy).await);
    proxy.inject(Rule::new("dynamodb", "*", Fault::Unprocessed).rate(0.4));
    let request = KeysAndAttributes::builder()
        .set_keys(Some(ids.iter().map(|id| key(id)).collect()))
        .consistent_read(true)
        .projection_expression("#pk, m")
        .expression_attribute_names("#pk", "pk")
        .build()
        .unwrap();
    let output = client
        .batch_get_item()
        .request_items(TABLE, request)
        .send()
        .await
        .unwrap();
    let found: BTreeSet<String> = output.responses().unwrap()[TABLE]
        .iter()
        .map(|item| item["pk"].as_s().unwrap().clone())
        .collect();
    let left = &output.unprocessed_keys().unwrap()[TABLE];
    // Sent back as they were asked for, so they can be sent again as they are.
    assert_eq!(left.projection_expression(), Some("#pk, m"));
    assert_eq!(left.consistent_read(), Some(true));
    let unprocessed: BTreeSet<String> = left
        .keys()
        .iter()
        .map(|k| k["pk"].as_s().unwrap().clone())
        .collect();
    assert!(!unprocessed.is_empty() && !found.is_empty());
    assert!(found.is_disjoint(&unprocessed));
    let all: BTreeSet<String> = found.union(&unprocessed).cloned().collect();
    assert_eq!(all, ids.iter().cloned().collect());
    assert_eq!(
        unprocessed.len() as u64,
        proxy.injected(Fault::Unprocessed, "BatchGetItem")
    );
}

#[tokio::test]
async fn a_stalled_answer_times_the_client_out_but_the_write_happened() {
    let moto = Moto::start();
    let direct = resources::create_table(&moto.sdk_config().await, TABLE).await;
    let proxy = FaultProxy::start(&moto.endpoint, 5);
    let config = no_retries(&proxy)
        .await
        .to_builder()
        .timeout_config(
            TimeoutConfig::builder()
                .operation_attempt_timeout(Duration::from_millis(300))
                .build(),
        )
        .build();
    let client = aws_sdk_dynamodb::Client::new(&config);
    proxy.inject(Rule::new("dynamodb", "PutItem", Fault::Stall(Duration::from_secs(5))).times(1));
    let err = client
        .put_item()
        .table_name(TABLE)
        .set_item(Some(key("lost-answer")))
        .send()
        .await
        .unwrap_err();
    assert!(
        matches!(err, aws_sdk_dynamodb::error::SdkError::TimeoutError(_)),
        "{err:?}"
    );
    assert_eq!(proxy.injected(Fault::Stall(Duration::ZERO), "PutItem"), 1);
    // The proxy forwards before it holds the answer: moto has (or is just
    // finishing) the write. Poll for it rather than time it.
    let mut found = false;
    for _ in 0..100 {
        if exists(&direct, "lost-answer").await {
            found = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(found, "the stalled write reached moto");
}

#[tokio::test]
async fn kinesis_put_records_fails_records_individually_and_stores_only_the_others() {
    let moto = Moto::start();
    let direct = resources::create_stream(&moto.sdk_config().await, "hits").await;
    let proxy = FaultProxy::start(&moto.endpoint, 6);
    let client = aws_sdk_kinesis::Client::new(&no_retries(&proxy).await);
    proxy.inject(Rule::new("kinesis", "PutRecords", Fault::RecordThrottled).rate(0.5));
    let entries: Vec<_> = (0..40)
        .map(|i| {
            aws_sdk_kinesis::types::PutRecordsRequestEntry::builder()
                .data(aws_sdk_kinesis::primitives::Blob::new(format!(
                    "record-{i}"
                )))
                .partition_key(format!("k{i}"))
                .build()
                .unwrap()
        })
        .collect();
    let output = client
        .put_records()
        .stream_name("hits")
        .set_records(Some(entries))
        .send()
        .await
        .unwrap();
    assert_eq!(output.records().len(), 40);
    let failed: Vec<usize> = output
        .records()
        .iter()
        .enumerate()
        .filter(|(_, r)| r.error_code().is_some())
        .map(|(i, _)| i)
        .collect();
    for i in &failed {
        let result = &output.records()[*i];
        assert_eq!(
            result.error_code(),
            Some("ProvisionedThroughputExceededException")
        );
        assert!(result.error_message().unwrap().contains("stream hits"));
        assert_eq!(result.sequence_number(), None);
    }
    assert!(!failed.is_empty() && failed.len() < 40);
    assert_eq!(output.failed_record_count(), Some(failed.len() as i32));
    assert_eq!(
        failed.len() as u64,
        proxy.injected(Fault::RecordThrottled, "PutRecords")
    );
    // The stream holds exactly the others, in request order.
    let stored: Vec<String> = resources::read_stream(&direct, "hits")
        .await
        .into_iter()
        .map(|(_, data)| String::from_utf8(data).unwrap())
        .collect();
    let expected: Vec<String> = (0..40)
        .filter(|i| !failed.contains(i))
        .map(|i| format!("record-{i}"))
        .collect();
    assert_eq!(stored, expected);

    // And GetRecords can be throttled too.
    proxy.inject(Rule::new("kinesis", "*", Fault::ProvisionedThroughputExceeded).times(1));
    let iterator = direct
        .get_shard_iterator()
        .stream_name("hits")
        .shard_id("shardId-000000000000")
        .shard_iterator_type(aws_sdk_kinesis::types::ShardIteratorType::TrimHorizon)
        .send()
        .await
        .unwrap();
    let err = client
        .get_records()
        .shard_iterator(iterator.shard_iterator().unwrap())
        .send()
        .await
        .unwrap_err();
    assert!(
        err.as_service_error()
            .is_some_and(|e| e.is_provisioned_throughput_exceeded_exception()),
        "{err:?}"
    );
}

#[tokio::test]
async fn s3_slow_down_and_internal_errors_are_xml_and_uploads_pass_byte_for_byte() {
    let moto = Moto::start();
    let direct = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&moto.sdk_config().await)
            .force_path_style(true)
            .build(),
    );
    resources::create_bucket(&direct, "curated").await;
    let proxy = FaultProxy::start(&moto.endpoint, 7);
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&no_retries(&proxy).await)
            .force_path_style(true)
            .build(),
    );

    // A 3 MiB streamed upload (aws-chunked with a checksum trailer) and its
    // download pass through unchanged.
    let body: Vec<u8> = (0..3 * 1024 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &body).unwrap();
    client
        .put_object()
        .bucket("curated")
        .key("big.bin")
        .body(
            aws_sdk_s3::primitives::ByteStream::from_path(file.path())
                .await
                .unwrap(),
        )
        .send()
        .await
        .unwrap();
    let stored = direct
        .get_object()
        .bucket("curated")
        .key("big.bin")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert!(stored == body, "moto stored the upload unchanged");
    let read = client
        .get_object()
        .bucket("curated")
        .key("big.bin")
        .send()
        .await
        .unwrap()
        .body
        .collect()
        .await
        .unwrap()
        .into_bytes();
    assert!(read == body, "the download passed through unchanged");

    proxy.inject(Rule::new("s3", "PutObject", Fault::SlowDown).times(1));
    let err = client
        .put_object()
        .bucket("curated")
        .key("slow")
        .body(b"x".to_vec().into())
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("SlowDown"), "{err:?}");
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 503);
    let missing = direct
        .head_object()
        .bucket("curated")
        .key("slow")
        .send()
        .await;
    assert!(missing.is_err(), "a refused PutObject stores nothing");

    proxy.inject(Rule::new("s3", "GetObject", Fault::ServerError).times(1));
    let err = client
        .get_object()
        .bucket("curated")
        .key("big.bin")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InternalError"), "{err:?}");

    proxy.inject(Rule::new("s3", "*", Fault::SlowDown).times(2));
    let err = client
        .list_objects_v2()
        .bucket("curated")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("SlowDown"), "{err:?}");
    // HEAD answers carry no body: the status is what the client sees.
    let err = client
        .head_object()
        .bucket("curated")
        .key("big.bin")
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.raw_response().unwrap().status().as_u16(), 503);
    assert_eq!(proxy.injected(Fault::SlowDown, "ListObjectsV2"), 1);
    assert_eq!(proxy.injected(Fault::SlowDown, "HeadObject"), 1);
}

#[tokio::test]
async fn a_rule_is_replaced_and_cleared_while_the_proxy_runs() {
    let moto = Moto::start();
    let direct = resources::create_table(&moto.sdk_config().await, TABLE).await;
    let proxy = FaultProxy::start(&moto.endpoint, 8);
    let client = aws_sdk_dynamodb::Client::new(&no_retries(&proxy).await);
    let get = || {
        client
            .get_item()
            .table_name(TABLE)
            .set_key(Some(key("a")))
            .send()
    };
    proxy.inject(Rule::new("dynamodb", "GetItem", Fault::Throttling));
    assert!(get().await.is_err());
    assert!(get().await.is_err());
    proxy.inject(Rule::new("dynamodb", "GetItem", Fault::Throttling).rate(0.0));
    assert!(get().await.is_ok());
    proxy.inject(Rule::new("dynamodb", "GetItem", Fault::ServerError));
    assert!(get().await.is_err());
    proxy.clear();
    assert!(get().await.is_ok());
    assert_eq!(proxy.injected(Fault::Throttling, "GetItem"), 2);
    assert_eq!(proxy.injected(Fault::ServerError, "GetItem"), 1);
    assert_eq!(proxy.requests("GetItem"), 5);
    assert!(!exists(&direct, "a").await);
}
