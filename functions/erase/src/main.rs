//! Lambda entry point of erase: SQS batches of erasure ids (SPEC 17).

use gender_erase::{Config, Erase, SDK_TIMEOUTS};
use lambda_runtime::{LambdaEvent, service_fn};

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    gender_lambda::init_tracing();
    let erase = Erase::new(
        Config::from_env()?,
        &gender_lambda::load_sdk_config(Some(SDK_TIMEOUTS)).await,
    );
    let erase = &erase;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<_>| async move {
        let deadline = gender_erase::deadline_instant(event.context.deadline);
        Ok::<_, lambda_runtime::Error>(erase.handle(event.payload, deadline).await)
    }))
    .await
}
