//! Lambda entry point of the daily job.

use gender_daily::{Config, Daily, Invocation, SDK_TIMEOUTS};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    gender_lambda::init_tracing();
    // The runtime's own view of the environment: Lambda sets
    // AWS_LAMBDA_FUNCTION_NAME, the name a continuation invokes.
    let function = lambda_runtime::Config::from_env().function_name;
    let daily = Daily::new(
        Config::from_env()?,
        &gender_lambda::load_sdk_config(Some(SDK_TIMEOUTS)).await,
        &function,
    );
    let daily = &daily;
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<serde_json::Value>| async move {
            daily
                .handle(&event.payload, &Invocation::from(&event.context))
                .await
        },
    ))
    .await
}
