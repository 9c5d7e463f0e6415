//! Lambda entry point of the HTTP API: the same axum Router as the local
//! server, served by `lambda_http::run`.

use gender_fn_http::{Config, app};

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    gender_lambda::init_tracing();
    let config = Config::from_env()?;
    let router = app(&config, &gender_aws::load_sdk_config().await);
    lambda_http::run(router).await
}
