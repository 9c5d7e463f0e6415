//! Lambda entry point of the HTTP API: the same axum Router as the local
//! server, served by `lambda_http::run`.

use gender_http::{Config, SDK_TIMEOUTS, app, read_api_key, read_erasure_salt};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    gender_lambda::init_tracing();
    let config = Config::from_env()?;
    let sdk = gender_lambda::load_sdk_config(Some(SDK_TIMEOUTS)).await;
    let ssm = aws_sdk_ssm::Client::new(&sdk);
    let api_key = read_api_key(&ssm, &config.api_key_parameter).await?;
    let erasure_salt = read_erasure_salt(&ssm, &config.erasure_salt_parameter).await?;
    lambda_http::run(app(&config, &api_key, &erasure_salt, &sdk)).await
}
