//! Lambda entry point of the HTTP API: the same axum Router as the local
//! server, served by `lambda_http::run`.

use gender_http::{Config, SDK_TIMEOUTS, SSM_BACKOFF, Secrets, app};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    gender_lambda::init_tracing();
    let config = Config::from_env()?;
    let sdk = gender_lambda::load_sdk_config(Some(SDK_TIMEOUTS)).await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    // Read once here, before the first request, and kept for the life of
    // the execution environment.
    let secrets = Secrets::read(&ssm, &config, &SSM_BACKOFF).await?;
    lambda_http::run(app(&config, &secrets, &sdk)).await
}
