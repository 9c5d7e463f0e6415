//! The HTTP API Lambda through the fault proxy in front of moto: the cold
//! start's one SSM read under Parameter Store throttling, and requests
//! whose storage calls are throttled or meet transaction conflicts.

use gender_aws::Backoff;
use gender_http::{Config, DEFAULT_MAX_BODY_BYTES, Secrets, app};
use gender_testkit::{Fault, FaultProxy, Moto, Rule, fixture, resources};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use tower::ServiceExt;

const STREAM: &str = "gs-test-hits";
const TABLE: &str = "gs-test-profiles";

async fn put_secret(ssm: &aws_sdk_ssm::Client, name: &str, value: &str) {
    ssm.put_parameter()
        .name(name)
        .value(value)
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
}

fn config(queue_url: &str) -> Config {
    Config {
        stream_name: STREAM.into(),
        table_name: TABLE.into(),
        api_key_parameter: "/gs/test/api-key".into(),
        ingest_key_parameter: "/gs/test/ingest-key".into(),
        read_key_parameter: "/gs/test/read-key".into(),
        cors: Default::default(),
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        erasure_queue_url: queue_url.into(),
        erasure_salt_parameter: "/gs/test/erasure-salt".into(),
    }
}

#[tokio::test]
async fn the_cold_start_reads_every_secret_in_one_call_through_throttling() {
    let moto = Moto::start();
    let direct = aws_sdk_ssm::Client::new(&moto.sdk_config().await);
    put_secret(&direct, "/gs/test/api-key", "fixture-api-key").await;
    put_secret(&direct, "/gs/test/erasure-salt", "fixture-salt").await;
    put_secret(&direct, "/gs/test/ingest-key", "fixture-ingest-key").await;
    put_secret(&direct, "/gs/test/read-key", "fixture-read-key").await;
    let proxy = FaultProxy::start(&moto.endpoint, 21);
    // Five throttled answers: more than the SDK's own 3 attempts, so the
    // function's backoff has to make a second call.
    proxy.inject(Rule::new("ssm", "*", Fault::Throttling).times(5));
    let ssm = aws_sdk_ssm::Client::new(&proxy.sdk_config().await);
    let backoff = Backoff {
        attempts: 4,
        base: Duration::from_millis(2),
        cap: Duration::from_millis(20),
    };
    let secrets = Secrets::read(&ssm, &config("unused"), &backoff)
        .await
        .unwrap();
    assert_eq!(secrets.api_key, "fixture-api-key");
    assert_eq!(secrets.erasure_salt, "fixture-salt");
    assert_eq!(secrets.ingest_key, "fixture-ingest-key");
    assert_eq!(secrets.read_key, "fixture-read-key");
    assert_eq!(proxy.injected(Fault::Throttling, "GetParameters"), 5);
    // One operation for both names (its 6 HTTP attempts all GetParameters).
    assert_eq!(proxy.requests("GetParameters"), 6);
    assert_eq!(proxy.requests("GetParameter"), 0);

    // Throttled beyond the attempts: the cold start fails, saying why.
    proxy.inject(Rule::new("ssm", "*", Fault::Throttling));
    let err = Secrets::read(&ssm, &config("unused"), &backoff)
        .await
        .unwrap_err();
    let text = format!("{err}: {}", std::error::Error::source(&err).unwrap());
    assert!(
        text.contains(
            "/gs/test/api-key, /gs/test/ingest-key, /gs/test/read-key, /gs/test/erasure-salt"
        ),
        "{text}"
    );
    assert!(text.contains("gave up after 4 attempts"), "{text}");
}

async fn invoke(router: &axum::Router, event: &Value) -> (u16, Value) {
    let request =
        lambda_http::request::from_str(&event.to_string()).expect("valid API Gateway event");
    let response = router.clone().oneshot(request).await.unwrap();
    let status = response.status().as_u16();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    (status, serde_json::from_slice(&bytes).expect("JSON body"))
}

fn event(method: &str, path: &str, body: Option<String>) -> Value {
    let mut e: Value = serde_json::from_str(&fixture("apigw-v2-post-hits.json")).unwrap();
    e["rawPath"] = path.into();
    e["routeKey"] = format!("{method} {path}").into();
    e["requestContext"]["http"]["path"] = path.into();
    e["requestContext"]["http"]["method"] = method.into();
    e["headers"]["content-length"] = body.as_ref().map_or(0, String::len).to_string().into();
    e["body"] = body.map_or(Value::Null, Value::from);
    e
}

#[tokio::test]
async fn requests_are_answered_through_throttling_and_transaction_conflicts() {
    let moto = Moto::start();
    let setup = moto.sdk_config().await;
    let kinesis = resources::create_stream(&setup, STREAM).await;
    let dynamo = resources::create_table(&setup, TABLE).await;
    let (_sqs, queue_url) = resources::create_queue(&setup, "gs-test-erase").await;
    let proxy = FaultProxy::start(&moto.endpoint, 22);
    let secrets = Secrets {
        api_key: "fixture-api-key".into(),
        ingest_key: "fixture-ingest-key".into(),
        read_key: "fixture-read-key".into(),
        erasure_salt: "fixture-salt".into(),
    };
    let router = app(&config(&queue_url), &secrets, &proxy.sdk_config().await);

    // At most 5 throttled records in all: fewer than the 6 attempts each
    // record gets, so every hit must end up accepted.
    proxy.inject(
        Rule::new("kinesis", "PutRecords", Fault::RecordThrottled)
            .rate(0.5)
            .times(5),
    );
    let hits: Vec<Value> = (0..40)
        .map(|i| json!({"clientid": format!("visitor-{i:02}"), "pageGender": "F"}))
        .collect();
    let (status, body) = invoke(
        &router,
        &event("POST", "/hits", Some(json!(hits).to_string())),
    )
    .await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (202, json!(40)),
        "{body}"
    );
    assert_eq!(proxy.injected(Fault::RecordThrottled, "PutRecords"), 5);
    // Each visitor's hit is in the stream once: the throttled records were
    // sent again, the stored ones not.
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for (_, data) in resources::read_stream(&kinesis, STREAM).await {
        let text = String::from_utf8(data).unwrap();
        for line in text.lines() {
            let hit: Value = serde_json::from_str(line).unwrap();
            *seen
                .entry(hit["clientid"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
    }
    assert_eq!(seen.len(), 40);
    assert!(seen.values().all(|&n| n == 1), "{seen:?}");

    // A lookup through a throttled read.
    dynamo
        .put_item()
        .table_name(TABLE)
        .item(
            "pk",
            aws_sdk_dynamodb::types::AttributeValue::S("visitor-01".into()),
        )
        .item("m", aws_sdk_dynamodb::types::AttributeValue::N("1".into()))
        .item("f", aws_sdk_dynamodb::types::AttributeValue::N("4".into()))
        .item(
            "last_gender",
            aws_sdk_dynamodb::types::AttributeValue::S("F".into()),
        )
        .item(
            "last_seen",
            aws_sdk_dynamodb::types::AttributeValue::N("1795514400000".into()),
        )
        .send()
        .await
        .unwrap();
    proxy.inject(Rule::new("dynamodb", "GetItem", Fault::ProvisionedThroughputExceeded).times(4));
    let (status, body) = invoke(&router, &event("GET", "/gender/visitor-01", None)).await;
    assert_eq!(
        (status, body["gender"].clone()),
        (200, json!("F")),
        "{body}"
    );
    assert_eq!(
        proxy.injected(Fault::ProvisionedThroughputExceeded, "GetItem"),
        4
    );

    // An erasure request whose log entry meets a transaction.
    proxy.inject(Rule::new("dynamodb", "PutItem", Fault::TransactionConflict).times(2));
    let (status, body) = invoke(&router, &event("DELETE", "/visitors/visitor-01", None)).await;
    assert_eq!(status, 202, "{body}");
    let id = body["erasure_id"].as_str().unwrap();
    let (status, body) = invoke(&router, &event("GET", &format!("/erasures/{id}"), None)).await;
    assert_eq!(
        (status, body["status"].clone()),
        (200, json!("pending")),
        "{body}"
    );
    assert_eq!(proxy.injected(Fault::TransactionConflict, "PutItem"), 2);
}
