//! `gender-transform`: the Kinesis Data Firehose transformation Lambda.
//! The work lives in the library; this file only wires it to the runtime.

use gender_transform::{TransformEvent, TransformResponse, transform_event};
use lambda_runtime::{LambdaEvent, service_fn};
use std::convert::Infallible;

// One invocation at a time and no I/O in the handler: a single thread is enough.
#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), lambda_runtime::Error> {
    gender_lambda::init_tracing();
    // No configuration or clients: the transform is a pure function.
    lambda_runtime::run(service_fn(handle)).await
}

async fn handle(event: LambdaEvent<TransformEvent>) -> Result<TransformResponse, Infallible> {
    Ok(transform_event(event.payload))
}
