//! `gender-transform`: the Kinesis Data Firehose transformation Lambda.
//! The work lives in [`handler`]; this file only wires it to the runtime.

mod handler;

use aws_lambda_events::event::firehose::KinesisFirehoseResponse;
use lambda_runtime::{LambdaEvent, service_fn};
use std::convert::Infallible;

// One invocation at a time and no I/O in the handler: a single thread is enough.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    init_tracing();
    // No configuration or clients: the transform is a pure function.
    lambda_runtime::run(service_fn(handle)).await
}

async fn handle(
    event: LambdaEvent<handler::TransformEvent>,
) -> Result<KinesisFirehoseResponse, Infallible> {
    Ok(handler::transform_event(event.payload))
}

/// Logs to stdout for CloudWatch, following Lambda's advanced logging
/// controls (`AWS_LAMBDA_LOG_FORMAT=JSON`, `AWS_LAMBDA_LOG_LEVEL`), else
/// `RUST_LOG`, else `info`. No timestamps or colours: CloudWatch stamps each
/// line and shows escape codes verbatim.
fn init_tracing() {
    use tracing_subscriber::EnvFilter;
    let level = std::env::var("AWS_LAMBDA_LOG_LEVEL")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    let filter =
        EnvFilter::try_new(level.to_lowercase()).unwrap_or_else(|_| EnvFilter::new("info"));
    let logger = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(false)
        .without_time();
    let json = std::env::var("AWS_LAMBDA_LOG_FORMAT").is_ok_and(|f| f.eq_ignore_ascii_case("json"));
    if json {
        logger.json().flatten_event(true).init();
    } else {
        logger.init();
    }
}
