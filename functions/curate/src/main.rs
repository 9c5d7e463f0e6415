//! Lambda entry point of curate: SQS batches of S3 object-created events.

use gender_curate::{Config, Curate, SDK_TIMEOUTS};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    gender_lambda::init_tracing();
    let curate = Curate::new(
        Config::from_env()?,
        &gender_lambda::load_sdk_config(Some(SDK_TIMEOUTS)).await,
    );
    let curate = &curate;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        Ok::<_, lambda_runtime::Error>(curate.handle(event.payload).await)
    }))
    .await
}
