//! The HTTP API Lambda's Router, fed real-shaped API Gateway HTTP API (v2)
//! events, over Kinesis, DynamoDB and SQS in moto server.

use base64::Engine;
use gender_api::CorsOrigins;
use gender_http::{
    Config, DEFAULT_MAX_BODY_BYTES, LAMBDA_PAYLOAD_LIMIT_BYTES, SSM_BACKOFF, Secrets, app,
    read_parameters,
};
use gender_testkit::{Moto, fixture, resources};
use serde_json::{Value, json};
use tower::ServiceExt;

const POST_HITS: &str = "apigw-v2-post-hits.json";
const GET_GENDER: &str = "apigw-v2-get-gender.json";
const INGEST_KEY: &str = "fixture-ingest-key";
const READ_KEY: &str = "fixture-read-key";
const SITE: &str = "https://site.example";

struct Stack {
    _moto: Moto,
    router: axum::Router,
    kinesis: aws_sdk_kinesis::Client,
    dynamo: aws_sdk_dynamodb::Client,
    sqs: aws_sdk_sqs::Client,
    queue_url: String,
}

async fn stack() -> Stack {
    let moto = Moto::start();
    let sdk = moto.sdk_config().await;
    let kinesis = resources::create_stream(&sdk, "gs-test-hits").await;
    let dynamo = resources::create_table(&sdk, "gs-test-profiles").await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    ssm.put_parameter()
        .name("/gs/test/api-key")
        .value("fixture-api-key")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    for (name, value) in [
        ("/gs/test/erasure-salt", "fixture-salt"),
        ("/gs/test/ingest-key", INGEST_KEY),
        ("/gs/test/read-key", READ_KEY),
    ] {
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .unwrap();
    }
    let (sqs, queue_url) = resources::create_queue(&sdk, "gs-test-erase").await;
    let config = Config {
        stream_name: "gs-test-hits".into(),
        table_name: "gs-test-profiles".into(),
        api_key_parameter: "/gs/test/api-key".into(),
        ingest_key_parameter: "/gs/test/ingest-key".into(),
        read_key_parameter: "/gs/test/read-key".into(),
        cors: CorsOrigins::parse(SITE).unwrap(),
        max_body_bytes: DEFAULT_MAX_BODY_BYTES,
        erasure_queue_url: queue_url.clone(),
        erasure_salt_parameter: "/gs/test/erasure-salt".into(),
    };
    // As at cold start: the keys and the salt come from SecureString parameters.
    let secrets = Secrets::read(&ssm, &config, &SSM_BACKOFF).await.unwrap();
    assert_eq!(
        [
            secrets.api_key.as_str(),
            &secrets.ingest_key,
            &secrets.read_key,
            &secrets.erasure_salt
        ],
        ["fixture-api-key", INGEST_KEY, READ_KEY, "fixture-salt"]
    );
    Stack {
        router: app(&config, &secrets, &sdk),
        kinesis,
        dynamo,
        sqs,
        queue_url,
        _moto: moto,
    }
}

/// Runs an API Gateway event through the Router the way lambda_http does.
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

fn event(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).unwrap()
}

fn get_event(path: &str) -> Value {
    let mut e = event(GET_GENDER);
    e["rawPath"] = path.into();
    e["requestContext"]["http"]["path"] = path.into();
    e
}

#[tokio::test]
async fn post_hits_puts_valid_hits_on_the_stream_and_lists_the_rest() {
    let s = stack().await;
    let (status, body) = invoke(&s.router, &event(POST_HITS)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["rejected"][0]["index"], 2);
    let records = resources::read_stream(&s.kinesis, "gs-test-hits").await;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].0, "visitor-1", "partition key is the clientid");
    // The normalized hit, with the hitid the API assigned before PutRecords
    // (so every retry of the record carries the same one).
    let stored = String::from_utf8(records[0].1.clone()).unwrap();
    let hitid = stored
        .strip_prefix(
            r#"{"clientid":"visitor-1","pageGender":"F","timestamp":"2026-11-24T08:59:58.120Z","hitid":""#,
        )
        .and_then(|rest| rest.strip_suffix(r#""}"#))
        .unwrap_or_else(|| panic!("{stored}"));
    gender_core::validate_hitid(hitid).unwrap();
}

#[tokio::test]
async fn get_gender_answers_from_dynamodb() {
    let s = stack().await;
    let (status, body) = invoke(&s.router, &get_event("/gender/visitor-1")).await;
    assert_eq!(
        (status, body),
        (
            404,
            json!({"clientid": "visitor-1", "error": "unknown clientid"})
        )
    );

    resources::put_profile(
        &s.dynamo,
        "gs-test-profiles",
        "visitor-1",
        (1, 3),
        "M",
        1_795_514_400_000,
    )
    .await;
    let (status, body) = invoke(&s.router, &event(GET_GENDER)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["gender"], "F");
    assert_eq!(body["hits"], json!({"M": 1, "F": 3}));
    assert_eq!(
        body["signals"],
        json!({"last": "M", "lifetime": "F", "last_7_days": null})
    );
    assert_eq!(body["last_seen"], "2026-11-24T10:00:00.000Z");

    let (status, body) = invoke(&s.router, &get_event("/gender/bad!id")).await;
    assert_eq!((status, body["clientid"].clone()), (400, json!("bad!id")));
}

#[tokio::test]
async fn credentials_and_health() {
    let s = stack().await;
    let mut no_key = event(POST_HITS);
    no_key["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-api-key");
    assert_eq!(invoke(&s.router, &no_key).await.0, 401);
    assert!(
        resources::read_stream(&s.kinesis, "gs-test-hits")
            .await
            .is_empty(),
        "nothing stored"
    );

    let mut health = get_event("/health");
    health["headers"]
        .as_object_mut()
        .unwrap()
        .remove("x-api-key");
    assert_eq!(
        invoke(&s.router, &health).await,
        (200, json!({"status": "ok"}))
    );
}

/// `event` with `x-api-key` set to `key` (or removed).
fn with_key(mut event: Value, key: Option<&str>) -> Value {
    let headers = event["headers"].as_object_mut().unwrap();
    match key {
        Some(key) => headers.insert("x-api-key".into(), key.into()),
        None => headers.remove("x-api-key"),
    };
    event
}

#[tokio::test]
async fn each_key_reaches_only_its_scope_routes() {
    let s = stack().await;
    let id = "0".repeat(32);
    let routes = [
        event(POST_HITS),
        get_event("/gender/visitor-1"),
        event_at("GET", &format!("/erasures/{id}")),
        event_at("DELETE", "/visitors/visitor-1"),
    ];
    // Per route: the status of the ingest, read and admin key.
    let expected = [
        [202, 403, 202],
        [403, 404, 404],
        [403, 404, 404],
        [403, 403, 202],
    ];
    for (route, expected) in routes.iter().zip(expected) {
        let mut got = Vec::new();
        for key in [INGEST_KEY, READ_KEY, "fixture-api-key"] {
            let (status, body) = invoke(&s.router, &with_key(route.clone(), Some(key))).await;
            if status == 403 {
                assert!(body["required_scope"].is_string(), "{body}");
            }
            got.push(status);
        }
        assert_eq!(got, expected, "{}", route["routeKey"]);
    }
}

#[tokio::test]
async fn a_browser_sends_hits_with_the_ingest_key_in_the_url_and_a_text_body() {
    let s = stack().await;
    let beacon = |key: &str, origin: &str| {
        let mut e = with_key(event(POST_HITS), None);
        e["rawQueryString"] = format!("key={key}").into();
        e["queryStringParameters"] = json!({ "key": key });
        e["headers"]["content-type"] = "text/plain;charset=UTF-8".into();
        e["headers"]["origin"] = origin.into();
        e
    };
    let (status, body) = invoke(&s.router, &beacon(INGEST_KEY, SITE)).await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (202, json!(2)),
        "{body}"
    );
    // A read or admin key in a URL is refused, as is another origin.
    for key in [READ_KEY, "fixture-api-key"] {
        let (status, body) = invoke(&s.router, &beacon(key, SITE)).await;
        assert_eq!(
            (status, body["required_scope"].clone()),
            (403, json!("ingest"))
        );
    }
    let (status, _) = invoke(&s.router, &beacon(INGEST_KEY, "https://evil.example")).await;
    assert_eq!(status, 403);
    let records = resources::read_stream(&s.kinesis, "gs-test-hits").await;
    assert_eq!(records.len(), 2, "only the first request stored hits");
}

fn event_at(method: &str, path: &str) -> Value {
    let mut e = get_event(path);
    e["requestContext"]["http"]["method"] = method.into();
    e
}

#[tokio::test]
async fn delete_visitor_queues_an_erasure_that_get_erasures_follows() {
    let s = stack().await;
    let (status, body) = invoke(&s.router, &event_at("DELETE", "/visitors/visitor-1")).await;
    assert_eq!(status, 202, "{body}");
    let id = body["erasure_id"].as_str().unwrap().to_owned();
    assert_eq!(body["status"], "pending");
    assert_eq!(body["status_url"], format!("/erasures/{id}"));

    // The queue holds the id for gender-erase, not the clientid.
    let bodies = resources::queued_bodies(&s.sqs, &s.queue_url).await;
    assert_eq!(bodies, [id.as_str()]);

    let (status, got) = invoke(&s.router, &event_at("GET", &format!("/erasures/{id}"))).await;
    assert_eq!((status, got.clone()), (200, body), "{got}");

    // What gender-erase does when it is done; the API then reports it.
    let log = gender_aws::erasure::ErasureLog::new(s.dynamo.clone(), "gs-test-profiles");
    log.complete(&id, 1_795_514_400_000).await.unwrap();
    let (status, got) = invoke(&s.router, &event_at("GET", &format!("/erasures/{id}"))).await;
    assert_eq!(status, 200);
    assert_eq!(got["status"], "complete");
    assert_eq!(got["completed_at"], "2026-11-24T10:00:00.000Z");

    let unknown = format!("/erasures/{}", "0".repeat(32));
    assert_eq!(invoke(&s.router, &event_at("GET", &unknown)).await.0, 404);
    let (status, body) = invoke(&s.router, &event_at("DELETE", "/visitors/bad!id")).await;
    assert_eq!((status, body["clientid"].clone()), (400, json!("bad!id")));
}

#[tokio::test]
async fn a_missing_key_parameter_fails_the_cold_start_naming_it() {
    let moto = Moto::start();
    let ssm = aws_sdk_ssm::Client::new(&moto.sdk_config().await);
    ssm.put_parameter()
        .name("/gs/test/present")
        .value("x")
        .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
        .send()
        .await
        .unwrap();
    let err = read_parameters(&ssm, ["/gs/test/present", "/gs/test/missing"], &SSM_BACKOFF)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "SSM parameter /gs/test/missing does not exist"
    );
}

/// A `POST /hits` event whose NDJSON body is exactly `len` bytes, base64'ed
/// as API Gateway may send a non-text body.
fn ndjson_event_of_len(len: usize) -> Value {
    let line = r#"{"clientid":"visitor-1","pageGender":"M"}"#;
    let mut body = String::with_capacity(len);
    body.push_str(line);
    body.push('\n');
    // Blank lines carry no hit: padding keeps the hit count at one.
    body.push_str(&"\n".repeat(len - body.len()));
    let mut e = event(POST_HITS);
    e["headers"]["content-type"] = "application/x-ndjson".into();
    e["headers"]["content-length"] = len.to_string().into();
    e["body"] = base64::engine::general_purpose::STANDARD
        .encode(body.as_bytes())
        .into();
    e["isBase64Encoded"] = true.into();
    e
}

#[tokio::test]
async fn the_largest_accepted_body_fits_the_lambda_payload_and_one_more_byte_is_a_json_413() {
    let s = stack().await;
    let at_limit = ndjson_event_of_len(DEFAULT_MAX_BODY_BYTES);
    let event_bytes = at_limit.to_string().len();
    assert!(
        event_bytes < LAMBDA_PAYLOAD_LIMIT_BYTES,
        "the event API Gateway would send ({event_bytes} bytes) must fit Lambda's payload limit"
    );
    let (status, body) = invoke(&s.router, &at_limit).await;
    assert_eq!(
        (status, body["accepted"].clone()),
        (202, json!(1)),
        "{body}"
    );

    let (status, body) = invoke(&s.router, &ndjson_event_of_len(DEFAULT_MAX_BODY_BYTES + 1)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["limit_bytes"], DEFAULT_MAX_BODY_BYTES);
    assert_eq!(
        resources::read_stream(&s.kinesis, "gs-test-hits")
            .await
            .len(),
        1,
        "only the accepted body was stored"
    );
}
