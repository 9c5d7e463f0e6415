//! Lambda entry point of the HTTP API: the same axum Router as the local
//! server, served by `lambda_http::run`.

use gender_http::{Config, SDK_TIMEOUTS, app, read_api_key};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    gender_lambda::init_tracing();
    let config = Config::from_env()?;
    let sdk = gender_lambda::load_sdk_config(Some(SDK_TIMEOUTS)).await;
    let api_key = read_api_key(&aws_sdk_ssm::Client::new(&sdk), &config.api_key_parameter).await?;
    lambda_http::run(app(&config, &api_key, &sdk)).await
}
