//! Lambda entry point of the stream consumer: Kinesis batches from the
//! event source mapping, answered with the records to retry.

use gender_consumer::{Config, Consumer, SDK_TIMEOUTS, StreamEvent};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    gender_lambda::init_tracing();
    let consumer = Consumer::new(
        Config::from_env()?,
        &gender_lambda::load_sdk_config(Some(SDK_TIMEOUTS)).await,
    );
    let consumer = &consumer;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<StreamEvent>| async move {
            Ok::<_, lambda_runtime::Error>(consumer.handle(event.payload).await)
        },
    ))
    .await
}
