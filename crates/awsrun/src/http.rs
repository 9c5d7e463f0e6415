//! The HTTP API function, served on loopback: its real configuration, its
//! secrets read from SSM Parameter Store at start (one `GetParameters`,
//! through the proxy's throttling), its AWS calls through the proxy with
//! its own timeouts. API Gateway itself is not emulated: the same Router
//! answers the same requests.

use crate::api::Api;
use crate::stack::{Stack, names};

pub const KEY: &str = "awsrun-aws-key";
const KEY_PARAMETER: &str = "/gs-run/api-key";
const SALT_PARAMETER: &str = "/gs-run/erasure-salt";
const INGEST_KEY_PARAMETER: &str = "/gs-run/ingest-key";
const READ_KEY_PARAMETER: &str = "/gs-run/read-key";

/// Serves the function's Router until the runtime ends; its client.
pub async fn serve(stack: &Stack) -> Api {
    let ssm = aws_sdk_ssm::Client::new(&stack.direct);
    for (name, value) in [
        (KEY_PARAMETER, KEY),
        (INGEST_KEY_PARAMETER, "awsrun-ingest-key"),
        (READ_KEY_PARAMETER, "awsrun-read-key"),
        (SALT_PARAMETER, "awsrun-salt"),
    ] {
        ssm.put_parameter()
            .name(name)
            .value(value)
            .r#type(aws_sdk_ssm::types::ParameterType::SecureString)
            .send()
            .await
            .expect("put an SSM parameter");
    }
    let config = gender_http::Config {
        stream_name: names::STREAM.into(),
        table_name: names::TABLE.into(),
        api_key_parameter: KEY_PARAMETER.into(),
        ingest_key_parameter: INGEST_KEY_PARAMETER.into(),
        read_key_parameter: READ_KEY_PARAMETER.into(),
        cors: Default::default(),
        max_body_bytes: gender_http::DEFAULT_MAX_BODY_BYTES,
        erasure_queue_url: stack.queues.erase.clone(),
        erasure_salt_parameter: SALT_PARAMETER.into(),
    };
    let sdk = stack.function_sdk(gender_http::SDK_TIMEOUTS);
    let secrets = gender_http::Secrets::read(
        &aws_sdk_ssm::Client::new(&sdk),
        &config,
        &gender_http::SSM_BACKOFF,
    )
    .await
    .expect("the http function's cold start reads its secrets");
    let router = gender_http::app(&config, &secrets, &sdk);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a loopback port");
    let addr = listener.local_addr().expect("its address");
    tokio::spawn(async move {
        axum::serve(listener, router)
            .await
            .expect("serve the http function");
    });
    Api::new(&format!("http://{addr}"), KEY)
}
