//! A fault-injecting HTTP proxy in front of moto: the errors real AWS
//! raises under load, which moto never does, with AWS's wire shapes.
//!
//! [`FaultProxy::start`] listens on a loopback port (its own thread and
//! runtime, so it serves blocking tests and child processes alike) and
//! forwards every request to the moto server, bytes and headers as sent
//! (the signed `Host` included; hop-by-hop headers dropped, `Content-Length`
//! set to the buffered body, so `aws-chunked` S3 uploads pass unchanged).
//! Give SDK clients [`FaultProxy::endpoint`] (`endpoint_url`, or
//! `AWS_ENDPOINT_URL` for a child process, see [`FaultProxy::env`]); S3
//! needs path-style addressing, as `gender_aws::s3::client` does with an
//! endpoint set. Requests are identified by the service of their SigV4
//! credential scope and the operation of `X-Amz-Target` (JSON protocols)
//! or of the S3 REST request.
//!
//! [`Rule`]s say what to inject where and how often: a rate in `0..=1`
//! drawn from a seeded RNG (same seed, same requests: same faults), an
//! optional cap on the count, replaceable while the proxy runs. What it can
//! inject ([`Fault`]):
//! - DynamoDB: `TransactionConflictException` on PutItem/UpdateItem/
//!   DeleteItem (a plain write meeting an item of an ongoing transaction),
//!   `TransactionCanceledException` with one `TransactionConflict`
//!   cancellation reason on TransactWriteItems,
//!   `ProvisionedThroughputExceededException`, `ThrottlingException`,
//!   `RequestLimitExceeded`, `InternalServerError` (500); partial answers of
//!   BatchGetItem/BatchWriteItem: some keys/requests are held back and
//!   returned as `UnprocessedKeys`/`UnprocessedItems`, only the others reach
//!   moto;
//! - S3: `503 SlowDown` and `500 InternalError` (XML bodies);
//! - Kinesis: per-record `ProvisionedThroughputExceededException` inside a
//!   `200` PutRecords answer (the failed records never reach moto, as
//!   Kinesis stores none of them; the answer is merged in request order),
//!   `ProvisionedThroughputExceededException` on GetRecords/PutRecord,
//!   `InternalFailure` (500);
//! - SSM: `ThrottlingException`, `InternalServerError`;
//! - any operation: a stalled answer (the request IS forwarded and applied,
//!   the answer held back longer than the client waits): the lost response
//!   that makes a client retry a write that succeeded.
//!
//! Errors are answered without forwarding: the request has no effect, as
//! with AWS. Control-plane calls (CreateTable, CreateBucket, ...) are never
//! failed except by a `Stall` rule naming them. [`FaultProxy::injected`] and
//! [`FaultProxy::requests`] count what happened, per kind and operation.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request;
use hyper::{Method, Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type Body = BoxBody<Bytes, BoxError>;

/// DynamoDB's item operations: the only ones faults apply to ("*").
const DYNAMODB_ITEM_OPS: &[&str] = &[
    "GetItem",
    "PutItem",
    "UpdateItem",
    "DeleteItem",
    "Query",
    "Scan",
    "BatchGetItem",
    "BatchWriteItem",
    "TransactWriteItems",
    "TransactGetItems",
];
/// S3's object and listing operations: the only ones faults apply to ("*").
const S3_DATA_OPS: &[&str] = &[
    "GetObject",
    "HeadObject",
    "PutObject",
    "CopyObject",
    "DeleteObject",
    "DeleteObjects",
    "ListObjectsV2",
    "ListObjects",
    "CreateMultipartUpload",
    "UploadPart",
    "CompleteMultipartUpload",
];
const KINESIS_DATA_OPS: &[&str] = &["PutRecord", "PutRecords", "GetRecords"];
const DYNAMODB_ERROR_PREFIX: &str = "com.amazonaws.dynamodb.v20120810#";

/// What the proxy injects. See the module documentation for the shapes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Fault {
    /// DynamoDB PutItem/UpdateItem/DeleteItem: `400 TransactionConflictException`.
    TransactionConflict,
    /// DynamoDB TransactWriteItems: `400 TransactionCanceledException`, one
    /// item's reason `TransactionConflict`, the others `None`.
    TransactionCanceled,
    /// DynamoDB item operations (not transactions) and Kinesis
    /// GetRecords/PutRecord: `400 ProvisionedThroughputExceededException`.
    ProvisionedThroughputExceeded,
    /// DynamoDB item operations, SSM: `400 ThrottlingException`.
    Throttling,
    /// DynamoDB item operations: `400 RequestLimitExceeded` (account limit).
    RequestLimitExceeded,
    /// DynamoDB `500 InternalServerError`, S3 `500 InternalError`, Kinesis
    /// `500 InternalFailure`, SSM `500 InternalServerError`.
    ServerError,
    /// DynamoDB BatchGetItem/BatchWriteItem: each key or request held back
    /// with the rule's rate and answered as unprocessed (at least one is
    /// always forwarded: AWS answers none-processed with
    /// `ProvisionedThroughputExceededException`, its own fault here).
    Unprocessed,
    /// S3 object and listing operations: `503 SlowDown`.
    SlowDown,
    /// Kinesis PutRecords: each record failed with the rule's rate
    /// (`ErrorCode` `ProvisionedThroughputExceededException` in a `200`).
    RecordThrottled,
    /// Any operation: forwarded (so applied), its answer held this long.
    Stall(Duration),
}

impl Fault {
    /// The name counters use ([`FaultProxy::injected`], [`FaultProxy::counts`]).
    pub fn name(&self) -> &'static str {
        match self {
            Fault::TransactionConflict => "TransactionConflict",
            Fault::TransactionCanceled => "TransactionCanceled",
            Fault::ProvisionedThroughputExceeded => "ProvisionedThroughputExceeded",
            Fault::Throttling => "Throttling",
            Fault::RequestLimitExceeded => "RequestLimitExceeded",
            Fault::ServerError => "ServerError",
            Fault::Unprocessed => "Unprocessed",
            Fault::SlowDown => "SlowDown",
            Fault::RecordThrottled => "RecordThrottled",
            Fault::Stall(_) => "Stall",
        }
    }

    /// Whether AWS can answer `operation` of `service` this way.
    pub fn applies_to(&self, service: &str, operation: &str) -> bool {
        let dynamodb_item = service == "dynamodb" && DYNAMODB_ITEM_OPS.contains(&operation);
        match self {
            Fault::TransactionConflict => {
                service == "dynamodb"
                    && matches!(operation, "PutItem" | "UpdateItem" | "DeleteItem")
            }
            Fault::TransactionCanceled => {
                service == "dynamodb" && operation == "TransactWriteItems"
            }
            Fault::ProvisionedThroughputExceeded => {
                (dynamodb_item && !operation.starts_with("Transact"))
                    || (service == "kinesis" && matches!(operation, "GetRecords" | "PutRecord"))
            }
            Fault::Throttling => dynamodb_item || service == "ssm",
            Fault::RequestLimitExceeded => dynamodb_item,
            Fault::ServerError => {
                dynamodb_item
                    || service == "ssm"
                    || (service == "s3" && S3_DATA_OPS.contains(&operation))
                    || (service == "kinesis" && KINESIS_DATA_OPS.contains(&operation))
            }
            Fault::Unprocessed => {
                service == "dynamodb" && matches!(operation, "BatchGetItem" | "BatchWriteItem")
            }
            Fault::SlowDown => service == "s3" && S3_DATA_OPS.contains(&operation),
            Fault::RecordThrottled => service == "kinesis" && operation == "PutRecords",
            Fault::Stall(_) => true,
        }
    }

    /// Whether some operation of `service` can get this fault.
    fn applies_to_service(&self, service: &str) -> bool {
        let ops: &[&str] = match service {
            "dynamodb" => DYNAMODB_ITEM_OPS,
            "s3" => S3_DATA_OPS,
            "kinesis" => KINESIS_DATA_OPS,
            // SSM faults apply to any operation.
            _ => &["GetParameters"],
        };
        ops.iter().any(|op| self.applies_to(service, op))
    }

    /// Faults decided record by record (or key by key).
    fn per_record(&self) -> bool {
        matches!(self, Fault::RecordThrottled | Fault::Unprocessed)
    }
}

/// A fault to inject into the requests of one operation (or `"*"`: every
/// operation of the service it [applies to](Fault::applies_to)), at a rate.
#[derive(Debug, Clone)]
pub struct Rule {
    service: String,
    operation: String,
    fault: Fault,
    rate: f64,
    limit: Option<u64>,
}

impl Rule {
    /// `fault` on `operation` of `service` (the SigV4 service name:
    /// `dynamodb`, `s3`, `kinesis`, `ssm`, ...), every time until
    /// [`rate`](Rule::rate) or [`times`](Rule::times) say otherwise. Panics
    /// if AWS never answers that operation that way (a test's mistake).
    pub fn new(service: &str, operation: &str, fault: Fault) -> Rule {
        let possible = if operation == "*" {
            fault.applies_to_service(service)
        } else {
            fault.applies_to(service, operation)
        };
        assert!(
            possible,
            "{} is not an answer AWS gives to {service} {operation}",
            fault.name()
        );
        Rule {
            service: service.to_owned(),
            operation: operation.to_owned(),
            fault,
            rate: 1.0,
            limit: None,
        }
    }

    /// The probability that a matching request (for per-record faults:
    /// each record or key) gets the fault.
    pub fn rate(mut self, rate: f64) -> Rule {
        assert!((0.0..=1.0).contains(&rate), "rate {rate} is not in 0..=1");
        self.rate = rate;
        self
    }

    /// At most `n` injections (records or keys, for per-record faults), then
    /// the rule lets everything through.
    pub fn times(mut self, n: u64) -> Rule {
        self.limit = Some(n);
        self
    }

    /// Every fault except `Stall` on every operation it applies to, each at
    /// `rate` (tried in turn, so a DynamoDB write fails with about 5 x
    /// `rate`): what an AWS-shaped run under load injects.
    pub fn standard_mix(rate: f64) -> Vec<Rule> {
        [
            ("dynamodb", "*", Fault::TransactionConflict),
            ("dynamodb", "TransactWriteItems", Fault::TransactionCanceled),
            ("dynamodb", "*", Fault::ProvisionedThroughputExceeded),
            ("dynamodb", "*", Fault::Throttling),
            ("dynamodb", "*", Fault::RequestLimitExceeded),
            ("dynamodb", "*", Fault::ServerError),
            ("dynamodb", "*", Fault::Unprocessed),
            ("s3", "*", Fault::SlowDown),
            ("s3", "*", Fault::ServerError),
            ("kinesis", "PutRecords", Fault::RecordThrottled),
            ("kinesis", "*", Fault::ProvisionedThroughputExceeded),
            ("kinesis", "*", Fault::ServerError),
            ("ssm", "*", Fault::Throttling),
        ]
        .into_iter()
        .map(|(service, operation, fault)| Rule::new(service, operation, fault).rate(rate))
        .collect()
    }

    fn matches(&self, call: &Call) -> bool {
        self.service == call.service
            && (self.operation == "*" || self.operation == call.operation)
            && self.fault.applies_to(&call.service, &call.operation)
    }

    fn same_target(&self, other: &Rule) -> bool {
        self.service == other.service
            && self.operation == other.operation
            && self.fault.name() == other.fault.name()
    }
}

/// A fault-injecting proxy in front of a moto server (see the module
/// documentation). Stops when dropped.
pub struct FaultProxy {
    /// `http://127.0.0.1:<port>`: the endpoint to give SDK clients.
    pub endpoint: String,
    shared: Arc<Shared>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

struct Shared {
    /// `host:port` of the moto server.
    upstream: String,
    control: Mutex<Control>,
    request_ids: AtomicU64,
}

struct ActiveRule {
    rule: Rule,
    injected: u64,
}

impl ActiveRule {
    fn left(&self) -> u64 {
        self.rule
            .limit
            .map_or(u64::MAX, |limit| limit.saturating_sub(self.injected))
    }
}

struct Control {
    rules: Vec<ActiveRule>,
    rng: fastrand::Rng,
    injected: BTreeMap<(&'static str, String), u64>,
    requests: BTreeMap<String, u64>,
}

impl FaultProxy {
    /// A proxy on a free loopback port forwarding to `upstream` (moto's
    /// endpoint, `http://127.0.0.1:<port>`), drawing its faults from an RNG
    /// seeded with `seed`. It injects nothing until [`inject`](Self::inject).
    pub fn start(upstream: &str, seed: u64) -> FaultProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_owned();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        listener
            .set_nonblocking(true)
            .expect("non-blocking listener");
        let port = listener.local_addr().expect("proxy address").port();
        let shared = Arc::new(Shared {
            upstream,
            control: Mutex::new(Control {
                rules: Vec::new(),
                rng: fastrand::Rng::with_seed(seed),
                injected: BTreeMap::new(),
                requests: BTreeMap::new(),
            }),
            request_ids: AtomicU64::new(0),
        });
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let serving = shared.clone();
        let thread = std::thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .expect("proxy runtime");
                runtime.block_on(serve(listener, serving, stopped));
                // Held (stalled) answers are dropped, not awaited.
                runtime.shutdown_background();
            })
            .expect("proxy thread");
        FaultProxy {
            endpoint: format!("http://127.0.0.1:{port}"),
            shared,
            stop: Some(stop),
            thread: Some(thread),
        }
    }

    /// Adds `rule`, replacing the rule for the same service, operation and
    /// kind of fault (its count starts again): rates change while running.
    pub fn inject(&self, rule: Rule) {
        let mut control = self.shared.control.lock().unwrap();
        control
            .rules
            .retain(|active| !active.rule.same_target(&rule));
        control.rules.push(ActiveRule { rule, injected: 0 });
    }

    /// Removes every rule: from now on every request passes unchanged.
    pub fn clear(&self) {
        self.shared.control.lock().unwrap().rules.clear();
    }

    /// How many times `fault` (any `Stall` duration alike) was injected into
    /// `operation`: answers for whole-request faults, records or keys for
    /// `RecordThrottled` and `Unprocessed`.
    pub fn injected(&self, fault: Fault, operation: &str) -> u64 {
        let control = self.shared.control.lock().unwrap();
        control
            .injected
            .get(&(fault.name(), operation.to_owned()))
            .copied()
            .unwrap_or(0)
    }

    /// Everything injected so far, keyed by (fault name, operation).
    pub fn counts(&self) -> BTreeMap<(String, String), u64> {
        let control = self.shared.control.lock().unwrap();
        control
            .injected
            .iter()
            .map(|((fault, operation), n)| ((fault.to_string(), operation.clone()), *n))
            .collect()
    }

    /// All injections of every kind.
    pub fn injected_total(&self) -> u64 {
        self.shared.control.lock().unwrap().injected.values().sum()
    }

    /// Requests received for `operation` (of any service), faulted or not.
    pub fn requests(&self, operation: &str) -> u64 {
        let control = self.shared.control.lock().unwrap();
        control.requests.get(operation).copied().unwrap_or(0)
    }

    /// The SDK configuration the Lambdas would load, aimed at this proxy,
    /// with the SDK's standard retry (3 attempts) but short pauses (10 ms
    /// growing to 100 ms rather than 1 s to 20 s) to keep tests fast.
    pub async fn sdk_config(&self) -> aws_config::SdkConfig {
        aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(crate::REGION))
            .endpoint_url(&self.endpoint)
            .test_credentials()
            .retry_config(
                aws_config::retry::RetryConfig::standard()
                    .with_initial_backoff(Duration::from_millis(10))
                    .with_max_backoff(Duration::from_millis(100)),
            )
            .load()
            .await
    }

    /// Environment for a child process (a function binary, say) whose SDK
    /// calls go through this proxy.
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", self.endpoint.clone()),
            ("AWS_REGION", crate::REGION.to_owned()),
            ("AWS_ACCESS_KEY_ID", "testing".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "testing".to_owned()),
        ]
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(
    listener: std::net::TcpListener,
    shared: Arc<Shared>,
    mut stopped: tokio::sync::oneshot::Receiver<()>,
) {
    let listener = tokio::net::TcpListener::from_std(listener).expect("proxy listener");
    loop {
        tokio::select! {
            _ = &mut stopped => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let shared = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        handle(shared.clone(), request)
                    });
                    // A client that hangs up (an attempt timeout) ends its
                    // connection; the forwarded request has run regardless.
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

/// Which service and operation a request is.
#[derive(Debug, Clone)]
struct Call {
    service: String,
    operation: String,
}

impl Call {
    fn of(parts: &request::Parts, body: &[u8]) -> Call {
        let headers = &parts.headers;
        let service = signed_service(headers).unwrap_or_else(|| "unknown".to_owned());
        let operation = if let Some(target) = text(headers, "x-amz-target") {
            target.rsplit('.').next().unwrap_or(target).to_owned()
        } else if service == "s3" {
            s3_operation(
                &parts.method,
                parts.uri.path(),
                parts.uri.query().unwrap_or(""),
                headers,
            )
        } else {
            form_action(body).unwrap_or_else(|| "unknown".to_owned())
        };
        Call { service, operation }
    }
}

fn text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The service of the SigV4 credential scope:
/// `Credential=<key>/<date>/<region>/<service>/aws4_request`.
fn signed_service(headers: &HeaderMap) -> Option<String> {
    let authorization = text(headers, "authorization")?;
    let credential = authorization.split("Credential=").nth(1)?;
    let scope = credential.split([',', ' ']).next()?;
    scope.split('/').nth(3).map(str::to_owned)
}

/// The query protocol's `Action=` (SQS before its JSON protocol, STS).
fn form_action(body: &[u8]) -> Option<String> {
    std::str::from_utf8(body)
        .ok()?
        .split('&')
        .find_map(|pair| pair.strip_prefix("Action="))
        .map(str::to_owned)
}

/// The S3 operation of a path-style REST request. The Rust SDK names some
/// itself (`x-id=GetObject`); the others follow from the method, whether a
/// key is addressed, the sub-resources and `x-amz-copy-source`.
fn s3_operation(method: &Method, path: &str, query: &str, headers: &HeaderMap) -> String {
    let params: Vec<(&str, &str)> = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| p.split_once('=').unwrap_or((p, "")))
        .collect();
    let has = |name: &str| params.iter().any(|(k, _)| *k == name);
    if let Some((_, id)) = params.iter().find(|(k, _)| *k == "x-id") {
        return (*id).to_owned();
    }
    let path = path.trim_start_matches('/');
    let (bucket, key) = match path.split_once('/') {
        Some((bucket, key)) if !key.is_empty() => (bucket, Some(key)),
        _ => (path.trim_end_matches('/'), None),
    };
    let copy = headers.contains_key("x-amz-copy-source");
    let op = match (method.as_str(), key.is_some()) {
        ("GET", false) if bucket.is_empty() => "ListBuckets",
        ("GET", false) if has("list-type") => "ListObjectsV2",
        ("GET", false) if has("uploads") => "ListMultipartUploads",
        ("GET", false) if has("versions") => "ListObjectVersions",
        ("GET", false) if has("location") => "GetBucketLocation",
        ("GET", false) => "ListObjects",
        ("HEAD", false) => "HeadBucket",
        ("PUT", false) if params.is_empty() => "CreateBucket",
        ("PUT", false) => "PutBucketConfiguration",
        ("DELETE", false) if params.is_empty() => "DeleteBucket",
        ("DELETE", false) => "DeleteBucketConfiguration",
        ("POST", false) if has("delete") => "DeleteObjects",
        ("GET", true) if has("uploadId") => "ListParts",
        ("GET", true) if has("tagging") => "GetObjectTagging",
        ("GET", true) => "GetObject",
        ("HEAD", true) => "HeadObject",
        ("PUT", true) if has("partNumber") && copy => "UploadPartCopy",
        ("PUT", true) if has("partNumber") => "UploadPart",
        ("PUT", true) if has("tagging") => "PutObjectTagging",
        ("PUT", true) if copy => "CopyObject",
        ("PUT", true) => "PutObject",
        ("DELETE", true) if has("uploadId") => "AbortMultipartUpload",
        ("DELETE", true) => "DeleteObject",
        ("POST", true) if has("uploads") => "CreateMultipartUpload",
        ("POST", true) if has("uploadId") => "CompleteMultipartUpload",
        _ => "unknown",
    };
    op.to_owned()
}

/// What to do with one request, decided under the lock.
enum Plan {
    Forward,
    /// Answer with an error; nothing is forwarded.
    Fail(Fault),
    /// TransactWriteItems canceled: this item's reason is the conflict.
    Cancel {
        items: usize,
        conflict: usize,
    },
    Stall(Duration),
    /// Kinesis PutRecords: these records fail, the others are forwarded.
    FailRecords(BTreeSet<usize>),
    /// BatchGetItem/BatchWriteItem: per table, the indexes held back.
    HoldBack(BTreeMap<String, BTreeSet<usize>>),
}

impl Control {
    fn decide(&mut self, call: &Call, request: Option<&Value>) -> Plan {
        *self.requests.entry(call.operation.clone()).or_default() += 1;
        let Control {
            rules,
            rng,
            injected,
            ..
        } = self;
        for active in rules.iter_mut() {
            if !active.rule.matches(call) || active.left() == 0 {
                continue;
            }
            let rate = active.rule.rate;
            let fault = active.rule.fault;
            let plan = if fault.per_record() {
                let Some(request) = request else { continue };
                let mut left = active.left();
                let mut pick = || {
                    let picked = left > 0 && rng.f64() < rate;
                    left -= u64::from(picked);
                    picked
                };
                match fault {
                    Fault::RecordThrottled => {
                        let records = request["Records"].as_array().map_or(0, Vec::len);
                        let failed: BTreeSet<usize> = (0..records).filter(|_| pick()).collect();
                        (!failed.is_empty()).then_some((failed.len(), Plan::FailRecords(failed)))
                    }
                    _ => {
                        let mut held = BTreeMap::new();
                        let mut total = 0;
                        for (table, entries) in batch_entries(&call.operation, request) {
                            total += entries;
                            let picked: BTreeSet<usize> = (0..entries).filter(|_| pick()).collect();
                            if !picked.is_empty() {
                                held.insert(table, picked);
                            }
                        }
                        let mut count: usize = held.values().map(BTreeSet::len).sum();
                        if count > 0 && count == total {
                            // Forward one: AWS answers "none processed" with
                            // ProvisionedThroughputExceededException instead.
                            let first = held.keys().next().cloned().unwrap();
                            let set = held.get_mut(&first).unwrap();
                            set.pop_first();
                            if set.is_empty() {
                                held.remove(&first);
                            }
                            count -= 1;
                        }
                        (count > 0).then_some((count, Plan::HoldBack(held)))
                    }
                }
            } else if rng.f64() < rate {
                Some((
                    1,
                    match fault {
                        Fault::Stall(hold) => Plan::Stall(hold),
                        Fault::TransactionCanceled => {
                            let items = request
                                .and_then(|r| r["TransactItems"].as_array())
                                .map_or(1, Vec::len)
                                .max(1);
                            Plan::Cancel {
                                items,
                                conflict: rng.usize(..items),
                            }
                        }
                        other => Plan::Fail(other),
                    },
                ))
            } else {
                None
            };
            if let Some((count, plan)) = plan {
                active.injected += count as u64;
                *injected
                    .entry((fault.name(), call.operation.clone()))
                    .or_default() += count as u64;
                return plan;
            }
        }
        Plan::Forward
    }
}

/// A batch request's tables, each with its number of keys or requests.
fn batch_entries(operation: &str, request: &Value) -> Vec<(String, usize)> {
    let Some(tables) = request["RequestItems"].as_object() else {
        return Vec::new();
    };
    tables
        .iter()
        .map(|(table, entry)| {
            let list = if operation == "BatchGetItem" {
                &entry["Keys"]
            } else {
                entry
            };
            (table.clone(), list.as_array().map_or(0, Vec::len))
        })
        .collect()
}

/// The operations whose request body the decision (or the splice) reads.
fn reads_body(operation: &str) -> bool {
    matches!(
        operation,
        "PutRecords"
            | "BatchGetItem"
            | "BatchWriteItem"
            | "TransactWriteItems"
            | "PutRecord"
            | "GetRecords"
    )
}

async fn handle(
    shared: Arc<Shared>,
    request: Request<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let (parts, body) = request.into_parts();
    let body = match body.collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(e) => return Ok(bad_gateway(&e.into())),
    };
    let call = Call::of(&parts, &body);
    let json: Option<Value> = if reads_body(&call.operation) {
        serde_json::from_slice(&body).ok()
    } else {
        None
    };
    let plan = shared.control.lock().unwrap().decide(&call, json.as_ref());
    let response = match plan {
        Plan::Forward => shared.forward(&parts, body).await.map(passthrough),
        Plan::Fail(fault) => Ok(shared.error_answer(&parts, &call, fault, json.as_ref())),
        Plan::Cancel { items, conflict } => Ok(shared.canceled(items, conflict)),
        Plan::Stall(hold) => match shared.forward_collected(&parts, body).await {
            Ok((head, bytes)) => {
                tokio::time::sleep(hold).await;
                Ok(answer(head, bytes))
            }
            Err(e) => Err(e),
        },
        Plan::FailRecords(failed) => {
            let request = json.expect("PutRecords decided from its body");
            shared.put_records(&parts, request, failed).await
        }
        Plan::HoldBack(held) => {
            let request = json.expect("batch decided from its body");
            shared.batch(&parts, &call.operation, request, held).await
        }
    };
    Ok(response.unwrap_or_else(|e| bad_gateway(&e)))
}

/// Headers that belong to one connection, not to the message.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "proxy-connection"
            | "transfer-encoding"
            | "te"
            | "trailer"
            | "upgrade"
            // The proxy already read the whole body from the client.
            | "expect"
    )
}

impl Shared {
    fn request_id(&self) -> String {
        let n = self.request_ids.fetch_add(1, Ordering::Relaxed);
        format!("FAULTPROXY{n:020}")
    }

    /// Sends the request to moto on a fresh connection, in a task of its
    /// own: it completes (the write happens) even if the client hangs up.
    async fn forward(
        &self,
        parts: &request::Parts,
        body: Bytes,
    ) -> Result<Response<Incoming>, BoxError> {
        let mut builder = Request::builder()
            .method(parts.method.clone())
            .uri(parts.uri.path_and_query().map_or("/", |p| p.as_str()))
            .version(Version::HTTP_11);
        let headers = builder.headers_mut().expect("a fresh builder");
        for (name, value) in &parts.headers {
            if !is_hop_by_hop(name) && name != header::CONTENT_LENGTH {
                headers.append(name.clone(), value.clone());
            }
        }
        let had_body = parts.headers.contains_key(header::CONTENT_LENGTH)
            || parts.headers.contains_key(header::TRANSFER_ENCODING);
        if had_body || !body.is_empty() {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        }
        let request = builder.body(Full::new(body))?;
        let upstream = self.upstream.clone();
        tokio::spawn(async move {
            let stream = tokio::net::TcpStream::connect(&upstream).await?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = connection.await;
            });
            Ok::<_, BoxError>(sender.send_request(request).await?)
        })
        .await?
    }

    /// [`forward`](Self::forward) with the whole answer read, also in its
    /// own task.
    async fn forward_collected(
        &self,
        parts: &request::Parts,
        body: Bytes,
    ) -> Result<(hyper::http::response::Parts, Bytes), BoxError> {
        let response = self.forward(parts, body).await?;
        tokio::spawn(async move {
            let (head, body) = response.into_parts();
            Ok::<_, BoxError>((head, body.collect().await?.to_bytes()))
        })
        .await?
    }

    fn json_error(&self, service: &str, status: u16, code: &str, message: &str) -> Response<Body> {
        let kind = match (service, code) {
            ("dynamodb", "ThrottlingException") => {
                "com.amazon.coral.availability#ThrottlingException".to_owned()
            }
            ("dynamodb", _) => format!("{DYNAMODB_ERROR_PREFIX}{code}"),
            _ => code.to_owned(),
        };
        self.json_answer(
            service,
            StatusCode::from_u16(status).expect("a valid status"),
            &json!({"__type": kind, "message": message}),
        )
    }

    fn json_answer(&self, service: &str, status: StatusCode, body: &Value) -> Response<Body> {
        let bytes = Bytes::from(serde_json::to_vec(body).expect("JSON"));
        let content_type = if service == "dynamodb" {
            "application/x-amz-json-1.0"
        } else {
            "application/x-amz-json-1.1"
        };
        let mut response = Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, content_type)
            .header("x-amzn-requestid", self.request_id());
        if service == "dynamodb" {
            response = response.header("x-amz-crc32", crc32fast::hash(&bytes).to_string());
        }
        response.body(full(bytes)).expect("a valid answer")
    }

    fn s3_error(
        &self,
        method: &Method,
        status: StatusCode,
        code: &str,
        message: &str,
    ) -> Response<Body> {
        let id = self.request_id();
        let body = if method == Method::HEAD {
            Bytes::new()
        } else {
            Bytes::from(format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
                 <Message>{message}</Message><RequestId>{id}</RequestId>\
                 <HostId>fault-proxy/{id}</HostId></Error>"
            ))
        };
        Response::builder()
            .status(status)
            .header(header::CONTENT_TYPE, "application/xml")
            .header("x-amz-request-id", &id)
            .header("x-amz-id-2", format!("fault-proxy/{id}"))
            .body(full(body))
            .expect("a valid answer")
    }

    fn error_answer(
        &self,
        parts: &request::Parts,
        call: &Call,
        fault: Fault,
        request: Option<&Value>,
    ) -> Response<Body> {
        let service = call.service.as_str();
        match (fault, service) {
            (Fault::TransactionConflict, _) => self.json_error(
                service,
                400,
                "TransactionConflictException",
                "Transaction is ongoing for the item",
            ),
            (Fault::ProvisionedThroughputExceeded, "kinesis") => self.json_error(
                service,
                400,
                "ProvisionedThroughputExceededException",
                &format!(
                    "Rate exceeded for shard shardId-000000000000 in stream {} under account 123456789012.",
                    stream_name(request)
                ),
            ),
            (Fault::ProvisionedThroughputExceeded, _) => self.json_error(
                service,
                400,
                "ProvisionedThroughputExceededException",
                "The level of configured provisioned throughput for the table was exceeded. \
                 Consider increasing your provisioning level with the UpdateTable API.",
            ),
            (Fault::Throttling, "dynamodb") => self.json_error(
                service,
                400,
                "ThrottlingException",
                "Rate of requests exceeds the allowed throughput.",
            ),
            (Fault::Throttling, _) => {
                self.json_error(service, 400, "ThrottlingException", "Rate exceeded")
            }
            (Fault::RequestLimitExceeded, _) => self.json_error(
                service,
                400,
                "RequestLimitExceeded",
                "Throughput exceeds the current throughput limit for your account. \
                 Please contact AWS Support at https://aws.amazon.com/support request a limit increase",
            ),
            (Fault::ServerError, "s3") => self.s3_error(
                &parts.method,
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalError",
                "We encountered an internal error. Please try again.",
            ),
            (Fault::ServerError, "kinesis") => {
                self.json_error(service, 500, "InternalFailure", "Internal service failure.")
            }
            (Fault::ServerError, _) => {
                self.json_error(service, 500, "InternalServerError", "Internal server error")
            }
            (Fault::SlowDown, _) => self.s3_error(
                &parts.method,
                StatusCode::SERVICE_UNAVAILABLE,
                "SlowDown",
                "Please reduce your request rate.",
            ),
            (other, _) => unreachable!("{} is not answered as an error", other.name()),
        }
    }

    fn canceled(&self, items: usize, conflict: usize) -> Response<Body> {
        let codes: Vec<&str> = (0..items)
            .map(|i| {
                if i == conflict {
                    "TransactionConflict"
                } else {
                    "None"
                }
            })
            .collect();
        let reasons: Vec<Value> = codes
            .iter()
            .map(|&code| match code {
                "None" => json!({"Code": "None"}),
                _ => json!({"Code": code, "Message": "Transaction is ongoing for the item"}),
            })
            .collect();
        self.json_answer(
            "dynamodb",
            StatusCode::BAD_REQUEST,
            &json!({
                "__type": format!("{DYNAMODB_ERROR_PREFIX}TransactionCanceledException"),
                "CancellationReasons": reasons,
                "Message": format!(
                    "Transaction cancelled, please refer cancellation reasons for specific reasons [{}]",
                    codes.join(", ")
                ),
            }),
        )
    }

    /// Kinesis PutRecords with `failed` records throttled: only the others
    /// reach moto (Kinesis stores no failed record), and the answer lists
    /// every record in request order.
    async fn put_records(
        &self,
        parts: &request::Parts,
        mut request: Value,
        failed: BTreeSet<usize>,
    ) -> Result<Response<Body>, BoxError> {
        let records = request["Records"].as_array().cloned().unwrap_or_default();
        let failure = json!({
            "ErrorCode": "ProvisionedThroughputExceededException",
            "ErrorMessage": format!(
                "Rate exceeded for shard shardId-000000000000 in stream {} under account 123456789012.",
                stream_name(Some(&request))
            ),
        });
        if failed.len() == records.len() {
            let results = vec![failure; records.len()];
            return Ok(self.json_answer(
                "kinesis",
                StatusCode::OK,
                &json!({"FailedRecordCount": records.len(), "Records": results}),
            ));
        }
        request["Records"] = records
            .iter()
            .enumerate()
            .filter(|(i, _)| !failed.contains(i))
            .map(|(_, record)| record.clone())
            .collect();
        let (head, bytes) = self
            .forward_collected(parts, Bytes::from(serde_json::to_vec(&request)?))
            .await?;
        if head.status != StatusCode::OK {
            return Ok(answer(head, bytes));
        }
        let mut merged: Value = serde_json::from_slice(&bytes)?;
        let mut stored = merged["Records"]
            .as_array()
            .cloned()
            .unwrap_or_default()
            .into_iter();
        let results: Vec<Value> = (0..records.len())
            .map(|i| match failed.contains(&i) {
                true => failure.clone(),
                false => stored.next().unwrap_or(Value::Null),
            })
            .collect();
        merged["FailedRecordCount"] =
            (merged["FailedRecordCount"].as_u64().unwrap_or(0) + failed.len() as u64).into();
        merged["Records"] = results.into();
        Ok(self.spliced(head, &merged))
    }

    /// BatchGetItem/BatchWriteItem with the `held` keys or requests held
    /// back: the others reach moto, the held ones come back unprocessed
    /// (with the table's projection and read settings, as AWS returns them).
    async fn batch(
        &self,
        parts: &request::Parts,
        operation: &str,
        request: Value,
        held: BTreeMap<String, BTreeSet<usize>>,
    ) -> Result<Response<Body>, BoxError> {
        let get = operation == "BatchGetItem";
        let list_of = |entry: &Value| -> Vec<Value> {
            let list = if get { &entry["Keys"] } else { entry };
            list.as_array().cloned().unwrap_or_default()
        };
        let with_list = |entry: &Value, list: Vec<Value>| -> Value {
            if get {
                let mut entry = entry.clone();
                entry["Keys"] = list.into();
                entry
            } else {
                list.into()
            }
        };
        let mut forwarded = request.clone();
        let mut unprocessed = serde_json::Map::new();
        if let Some(tables) = request["RequestItems"].as_object() {
            let mut kept_tables = serde_json::Map::new();
            for (table, entry) in tables {
                let none = BTreeSet::new();
                let hold = held.get(table).unwrap_or(&none);
                let (back, kept): (Vec<_>, Vec<_>) = list_of(entry)
                    .into_iter()
                    .enumerate()
                    .partition(|(i, _)| hold.contains(i));
                let strip = |items: Vec<(usize, Value)>| -> Vec<Value> {
                    items.into_iter().map(|(_, v)| v).collect()
                };
                if !back.is_empty() {
                    unprocessed.insert(table.clone(), with_list(entry, strip(back)));
                }
                if !kept.is_empty() {
                    kept_tables.insert(table.clone(), with_list(entry, strip(kept)));
                }
            }
            forwarded["RequestItems"] = kept_tables.into();
        }
        let (head, bytes) = self
            .forward_collected(parts, Bytes::from(serde_json::to_vec(&forwarded)?))
            .await?;
        if head.status != StatusCode::OK {
            return Ok(answer(head, bytes));
        }
        let mut merged: Value = serde_json::from_slice(&bytes)?;
        let field = if get {
            "UnprocessedKeys"
        } else {
            "UnprocessedItems"
        };
        if !merged[field].is_object() {
            merged[field] = json!({});
        }
        for (table, mut entry) in unprocessed {
            // Whatever moto left unprocessed stays so too.
            let moto_left = list_of(&merged[field][&table]);
            if !moto_left.is_empty() {
                let mut list = list_of(&entry);
                list.extend(moto_left);
                entry = with_list(&entry, list);
            }
            merged[field][&table] = entry;
        }
        Ok(self.spliced(head, &merged))
    }

    /// moto's answer head with a rewritten JSON body.
    fn spliced(&self, mut head: hyper::http::response::Parts, body: &Value) -> Response<Body> {
        let bytes = Bytes::from(serde_json::to_vec(body).expect("JSON"));
        head.headers.remove(header::CONTENT_LENGTH);
        if head.headers.contains_key("x-amz-crc32") {
            head.headers
                .insert("x-amz-crc32", HeaderValue::from(crc32fast::hash(&bytes)));
        }
        answer(head, bytes)
    }
}

fn stream_name(request: Option<&Value>) -> String {
    let Some(request) = request else {
        return "unknown".to_owned();
    };
    request["StreamName"]
        .as_str()
        .or_else(|| request["StreamARN"].as_str()?.rsplit('/').next())
        .unwrap_or("unknown")
        .to_owned()
}

fn full(bytes: Bytes) -> Body {
    Full::new(bytes).map_err(|never| match never {}).boxed()
}

/// moto's answer as the client gets it: its headers without the ones that
/// belonged to the connection to moto, as HTTP/1.1 (moto's server may speak
/// 1.0, which would end the client's connection after every answer).
fn clean(head: &mut hyper::http::response::Parts) {
    let names: Vec<HeaderName> = head
        .headers
        .keys()
        .filter(|n| is_hop_by_hop(n))
        .cloned()
        .collect();
    for name in names {
        head.headers.remove(name);
    }
    head.version = Version::HTTP_11;
}

fn passthrough(response: Response<Incoming>) -> Response<Body> {
    let (mut head, body) = response.into_parts();
    clean(&mut head);
    Response::from_parts(head, body.map_err(BoxError::from).boxed())
}

fn answer(mut head: hyper::http::response::Parts, bytes: Bytes) -> Response<Body> {
    clean(&mut head);
    head.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(head, full(bytes))
}

fn bad_gateway(error: &BoxError) -> Response<Body> {
    Response::builder()
        .status(StatusCode::BAD_GATEWAY)
        .header(header::CONTENT_TYPE, "text/plain")
        .body(full(Bytes::from(format!("fault proxy: {error}"))))
        .expect("a valid answer")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(service: &str, operation: &str) -> Call {
        Call {
            service: service.into(),
            operation: operation.into(),
        }
    }

    fn control(seed: u64, rules: Vec<Rule>) -> Control {
        Control {
            rules: rules
                .into_iter()
                .map(|rule| ActiveRule { rule, injected: 0 })
                .collect(),
            rng: fastrand::Rng::with_seed(seed),
            injected: BTreeMap::new(),
            requests: BTreeMap::new(),
        }
    }

    #[test]
    fn s3_operations_follow_from_method_path_and_query() {
        let none = HeaderMap::new();
        let mut copy = HeaderMap::new();
        copy.insert("x-amz-copy-source", HeaderValue::from_static("b/k"));
        for (method, path, query, headers, op) in [
            (
                Method::GET,
                "/b",
                "list-type=2&prefix=raw%2F",
                &none,
                "ListObjectsV2",
            ),
            (Method::GET, "/b/raw/a.ndjson", "", &none, "GetObject"),
            (Method::GET, "/b/k", "x-id=GetObject", &none, "GetObject"),
            (Method::PUT, "/b/k", "", &none, "PutObject"),
            (Method::PUT, "/b/k", "", &copy, "CopyObject"),
            (
                Method::PUT,
                "/b/k",
                "partNumber=1&uploadId=u",
                &none,
                "UploadPart",
            ),
            (Method::PUT, "/b", "", &none, "CreateBucket"),
            (Method::HEAD, "/b/k", "", &none, "HeadObject"),
            (Method::DELETE, "/b/k", "", &none, "DeleteObject"),
            (Method::POST, "/b", "delete", &none, "DeleteObjects"),
            (
                Method::POST,
                "/b/k",
                "uploads",
                &none,
                "CreateMultipartUpload",
            ),
        ] {
            assert_eq!(
                s3_operation(&method, path, query, headers),
                op,
                "{method} {path}?{query}"
            );
        }
    }

    #[test]
    fn the_service_comes_from_the_credential_scope() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "authorization",
            HeaderValue::from_static(
                "AWS4-HMAC-SHA256 Credential=testing/20261124/us-east-1/dynamodb/aws4_request, \
                 SignedHeaders=host;x-amz-date, Signature=abc",
            ),
        );
        assert_eq!(signed_service(&headers).as_deref(), Some("dynamodb"));
        assert_eq!(signed_service(&HeaderMap::new()), None);
        assert_eq!(
            form_action(b"Action=SendMessage&QueueUrl=x").as_deref(),
            Some("SendMessage")
        );
    }

    #[test]
    #[should_panic(expected = "SlowDown is not an answer AWS gives to dynamodb PutItem")]
    fn a_fault_aws_never_gives_is_refused() {
        Rule::new("dynamodb", "PutItem", Fault::SlowDown);
    }

    #[test]
    fn the_same_seed_makes_the_same_decisions() {
        let rules = || vec![Rule::new("dynamodb", "*", Fault::Throttling).rate(0.3)];
        let decisions = |seed| {
            let mut control = control(seed, rules());
            (0..200)
                .map(|_| {
                    matches!(
                        control.decide(&call("dynamodb", "GetItem"), None),
                        Plan::Fail(_)
                    )
                })
                .collect::<Vec<_>>()
        };
        let first = decisions(7);
        assert_eq!(first, decisions(7));
        assert_ne!(first, decisions(8));
        let failed = first.iter().filter(|&&f| f).count();
        assert!((30..90).contains(&failed), "{failed} of 200 at 0.3");
    }

    #[test]
    fn limits_rates_and_kinds_decide_what_is_injected() {
        let mut control = control(
            1,
            vec![
                Rule::new("dynamodb", "UpdateItem", Fault::TransactionConflict).times(2),
                Rule::new("s3", "*", Fault::SlowDown).rate(0.0),
            ],
        );
        let outcomes: Vec<bool> = (0..4)
            .map(|_| {
                matches!(
                    control.decide(&call("dynamodb", "UpdateItem"), None),
                    Plan::Fail(_)
                )
            })
            .collect();
        assert_eq!(outcomes, [true, true, false, false]);
        // Another operation, and rate 0: nothing.
        assert!(matches!(
            control.decide(&call("dynamodb", "PutItem"), None),
            Plan::Forward
        ));
        assert!(matches!(
            control.decide(&call("s3", "PutObject"), None),
            Plan::Forward
        ));
        // Control-plane calls are never failed by "*".
        let mut everything = control_with_mix();
        assert!(matches!(
            everything.decide(&call("dynamodb", "CreateTable"), None),
            Plan::Forward
        ));
        assert!(matches!(
            everything.decide(&call("s3", "CreateBucket"), None),
            Plan::Forward
        ));
        assert_eq!(control.requests.get("UpdateItem"), Some(&4));
        assert_eq!(
            control
                .injected
                .get(&("TransactionConflict", "UpdateItem".to_owned())),
            Some(&2)
        );
    }

    fn control_with_mix() -> Control {
        control(3, Rule::standard_mix(1.0))
    }

    #[test]
    fn a_batch_always_forwards_at_least_one_key() {
        let mut control = control(5, vec![Rule::new("dynamodb", "*", Fault::Unprocessed)]);
        let request =
            json!({"RequestItems": {"t": {"Keys": [{"pk": {"S": "a"}}, {"pk": {"S": "b"}}]}}});
        match control.decide(&call("dynamodb", "BatchGetItem"), Some(&request)) {
            Plan::HoldBack(held) => assert_eq!(held["t"], BTreeSet::from([1])),
            _ => panic!("expected keys held back"),
        }
    }
}
