//! Lambda entry point of the daily job.

use gender_daily::{Config, Daily, SDK_TIMEOUTS};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    gender_lambda::init_tracing();
    let daily = Daily::new(
        Config::from_env()?,
        &gender_lambda::load_sdk_config(Some(SDK_TIMEOUTS)).await,
    );
    let daily = &daily;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<serde_json::Value>| async move {
        daily.handle(&event.payload).await
    }))
    .await
}
