//! Wiring of the HTTP API Lambda: configuration read once at cold start, the
//! keys of the three scopes (SPEC 18) and the erasure salt from SSM Parameter
//! Store (one `GetParameters` call per execution environment), and the Router over the Kinesis,
//! DynamoDB and erasure (DynamoDB + SQS) adapters. All request handling (and
//! its tests) lives in `gender-api`.

use gender_api::{ApiMetrics, ApiState, CorsOrigins, Keys, Scope, ScopeKeys};
use gender_aws::dynamodb::DynamoProfiles;
use gender_aws::erasure::{ErasureLog, ErasureRequests};
use gender_aws::kinesis::KinesisHitLog;
use gender_aws::{AwsError, Backoff, is_retryable_sdk_error};
use gender_core::hitid::HitIds;
use gender_lambda::{ConfigError, SdkTimeouts, parsed_env, required_env};
use std::sync::Arc;
use std::time::Duration;

/// Lambda's synchronous invocation payload limit, read as decimal megabytes
/// (the stricter reading of AWS's "6 MB"): the whole API Gateway event, body
/// included, must fit.
pub const LAMBDA_PAYLOAD_LIMIT_BYTES: usize = 6_000_000;

/// The default `POST /hits` limit on AWS. API Gateway may base64-encode the
/// body (4/3 larger): 4 MiB becomes 5,592,408 bytes, which leaves room for the
/// event's envelope under [`LAMBDA_PAYLOAD_LIMIT_BYTES`]. SPEC 3's 5 MiB would
/// not fit, so a larger valid body would fail in API Gateway, not as our JSON 413.
pub const DEFAULT_MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// SDK limits per call, so that Kinesis' retry loop (6 attempts) and a
/// lookup finish well inside [`REQUEST_DEADLINE`].
pub const SDK_TIMEOUTS: SdkTimeouts = SdkTimeouts {
    attempt: Duration::from_secs(2),
    operation: Duration::from_secs(3),
};

/// Every request is answered by then, with a JSON 503 if storage hangs:
/// below API Gateway's 30 s integration timeout and the function's timeout.
pub const REQUEST_DEADLINE: Duration = Duration::from_secs(25);

/// Environment of the function (see the README's table).
#[derive(Debug, Clone)]
pub struct Config {
    /// `HITS_STREAM_NAME`: the Kinesis stream `POST /hits` writes to.
    pub stream_name: String,
    /// `PROFILES_TABLE_NAME`: the DynamoDB table `GET /gender` reads.
    pub table_name: String,
    /// `API_KEY_PARAMETER`: the SSM SecureString holding the admin key
    /// (SPEC 4's `x-api-key` credential), read once at cold start.
    pub api_key_parameter: String,
    /// `INGEST_KEY_PARAMETER`: the SSM SecureString holding the ingest key
    /// (SPEC 18: `POST /hits` only), read with the others.
    pub ingest_key_parameter: String,
    /// `READ_KEY_PARAMETER`: the SSM SecureString holding the read key
    /// (`GET /gender`, `GET /erasures`), read with the others.
    pub read_key_parameter: String,
    /// `CORS_ORIGINS`: comma-separated origins whose pages may `POST /hits`
    /// (the same list API Gateway's `cors_configuration` holds); requests
    /// from other origins are refused. Empty or unset: none.
    pub cors: CorsOrigins,
    /// `MAX_BODY_BYTES` (default [`DEFAULT_MAX_BODY_BYTES`]).
    pub max_body_bytes: usize,
    /// `ERASURE_QUEUE_URL`: where `DELETE /visitors/{clientid}` queues the
    /// erasure id for gender-erase (SPEC 17).
    pub erasure_queue_url: String,
    /// `ERASURE_SALT_PARAMETER`: the SSM SecureString holding the secret
    /// salt of the erasure log's clientid hashes, read once at cold start.
    pub erasure_salt_parameter: String,
}

impl Config {
    pub fn from_env() -> Result<Config, ConfigError> {
        let max_body_bytes = parsed_env("MAX_BODY_BYTES", DEFAULT_MAX_BODY_BYTES)?;
        check_body_limit(max_body_bytes)?;
        Ok(Config {
            stream_name: required_env("HITS_STREAM_NAME")?,
            table_name: required_env("PROFILES_TABLE_NAME")?,
            api_key_parameter: required_env("API_KEY_PARAMETER")?,
            ingest_key_parameter: required_env("INGEST_KEY_PARAMETER")?,
            read_key_parameter: required_env("READ_KEY_PARAMETER")?,
            cors: CorsOrigins::parse(&std::env::var("CORS_ORIGINS").unwrap_or_default()).map_err(
                |detail| ConfigError::InvalidEnv {
                    name: "CORS_ORIGINS",
                    detail,
                },
            )?,
            max_body_bytes,
            erasure_queue_url: required_env("ERASURE_QUEUE_URL")?,
            erasure_salt_parameter: required_env("ERASURE_SALT_PARAMETER")?,
        })
    }
}

/// The size of a body once base64'ed into the API Gateway event.
pub fn base64_len(body_bytes: usize) -> usize {
    body_bytes.div_ceil(3) * 4
}

/// A limit whose base64'ed body alone exceeds Lambda's payload limit would
/// let API Gateway reject bodies the API documents as valid.
fn check_body_limit(limit: usize) -> Result<(), ConfigError> {
    if limit == 0 || base64_len(limit) >= LAMBDA_PAYLOAD_LIMIT_BYTES {
        return Err(ConfigError::InvalidEnv {
            name: "MAX_BODY_BYTES",
            detail: format!(
                "{limit}: must be positive and at most {DEFAULT_MAX_BODY_BYTES} so that the \
                 base64'ed body fits Lambda's {LAMBDA_PAYLOAD_LIMIT_BYTES}-byte payload limit"
            ),
        });
    }
    if limit > DEFAULT_MAX_BODY_BYTES {
        // Room for the event envelope (headers, request context) is needed too.
        return Err(ConfigError::InvalidEnv {
            name: "MAX_BODY_BYTES",
            detail: format!("{limit}: at most {DEFAULT_MAX_BODY_BYTES}"),
        });
    }
    Ok(())
}

/// Why the function could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("reading the SSM parameters {names}")]
    Ssm {
        names: String,
        #[source]
        source: AwsError,
    },
    #[error("SSM parameter {name} {problem}")]
    Parameter { name: String, problem: &'static str },
}

/// Parameter Store serves 40 transactions per second per account and
/// Region by default, shared by `GetParameter`, `GetParameters` and
/// `GetParametersByPath` ("AWS Systems Manager endpoints and quotas":
/// Parameter Store max throughput; higher throughput is a paid setting). A
/// burst of cold starts beyond it is answered `ThrottlingException`: each
/// cold start makes ONE call, and retries it with jitter that spreads the
/// burst over a few seconds (each attempt is the SDK's 3 within
/// [`SDK_TIMEOUTS`]), well inside Lambda's 10 s init phase.
pub const SSM_BACKOFF: Backoff = Backoff {
    attempts: 4,
    base: Duration::from_millis(200),
    cap: Duration::from_secs(2),
};

/// `GetParameters` takes at most 10 names.
pub const MAX_NAMES_PER_GET_PARAMETERS: usize = 10;

/// The function's secrets, read once per execution environment (cold
/// start) and kept for its life.
#[derive(Debug, Clone)]
pub struct Secrets {
    /// The admin key (SPEC 4's key).
    pub api_key: String,
    pub ingest_key: String,
    pub read_key: String,
    pub erasure_salt: String,
}

impl Secrets {
    /// Every secret of `config` in one `GetParameters` call.
    pub async fn read(
        ssm: &aws_sdk_ssm::Client,
        config: &Config,
        backoff: &Backoff,
    ) -> Result<Secrets, StartError> {
        let [api_key, ingest_key, read_key, erasure_salt] = read_parameters(
            ssm,
            [
                &config.api_key_parameter,
                &config.ingest_key_parameter,
                &config.read_key_parameter,
                &config.erasure_salt_parameter,
            ],
            backoff,
        )
        .await?;
        Ok(Secrets {
            api_key,
            ingest_key,
            read_key,
            erasure_salt,
        })
    }

    /// The keys the Router checks. Rotation on AWS replaces a parameter's
    /// value; an execution environment keeps the keys it read at its cold
    /// start (DEPLOY.md, "The API key").
    pub fn keys(&self) -> Keys {
        let keys = Keys::new(gender_core::time::system_now_ms);
        keys.set(Scope::Admin, &ScopeKeys::only(self.api_key.as_str()));
        keys.set(Scope::Ingest, &ScopeKeys::only(self.ingest_key.as_str()));
        keys.set(Scope::Read, &ScopeKeys::only(self.read_key.as_str()));
        keys
    }
}

/// The values of the SSM SecureString parameters `names` (decrypted,
/// trimmed), in that order, from ONE `GetParameters` call retried with
/// `backoff` on throttling and 5xx. A name that does not exist or holds
/// only blanks fails the cold start, naming it.
pub async fn read_parameters<const N: usize>(
    ssm: &aws_sdk_ssm::Client,
    names: [&str; N],
    backoff: &Backoff,
) -> Result<[String; N], StartError> {
    const { assert!(N >= 1 && N <= MAX_NAMES_PER_GET_PARAMETERS) };
    let wanted: Vec<String> = names.iter().map(|name| (*name).to_owned()).collect();
    let output = backoff
        .retry("GetParameters", || {
            let names = wanted.clone();
            async move {
                ssm.get_parameters()
                    .set_names(Some(names))
                    .with_decryption(true)
                    .send()
                    .await
                    .map_err(|e| {
                        let retryable = is_retryable_sdk_error(&e);
                        AwsError::sdk("GetParameters", retryable, e)
                    })
            }
        })
        .await
        .map_err(|source| StartError::Ssm {
            names: wanted.join(", "),
            source,
        })?;
    let value = |name: &str| -> Result<String, StartError> {
        let problem = |problem| StartError::Parameter {
            name: name.to_owned(),
            problem,
        };
        let parameter = output
            .parameters()
            .iter()
            .find(|p| p.name() == Some(name))
            .ok_or_else(|| problem("does not exist"))?;
        parameter
            .value()
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| problem("has no value"))
    };
    let mut values = Vec::with_capacity(N);
    for name in names {
        values.push(value(name)?);
    }
    Ok(values.try_into().expect("one value per name"))
}

/// This execution environment's `hitid` assigner (drawn once, at start).
fn hit_ids() -> HitIds {
    let mut instance = [0u8; 8];
    getrandom::fill(&mut instance).expect("the OS random source is available");
    HitIds::new(instance)
}

/// The Router the local server also serves, over the AWS adapters.
pub fn app(config: &Config, secrets: &Secrets, sdk: &aws_config::SdkConfig) -> axum::Router {
    let dynamo = aws_sdk_dynamodb::Client::new(sdk);
    let profiles = Arc::new(DynamoProfiles::new(dynamo.clone(), &config.table_name));
    let erasures = ErasureRequests::new(
        ErasureLog::new(dynamo, &config.table_name),
        aws_sdk_sqs::Client::new(sdk),
        &config.erasure_queue_url,
        secrets.erasure_salt.as_bytes(),
    );
    let state = ApiState {
        log: Arc::new(KinesisHitLog::new(
            aws_sdk_kinesis::Client::new(sdk),
            &config.stream_name,
        )),
        profiles: profiles.clone(),
        health: profiles,
        erasures: Arc::new(erasures),
        keys: secrets.keys(),
        cors: config.cors.clone(),
        hit_ids: Arc::new(hit_ids()),
        metrics: Arc::new(ApiMetrics::default()),
        clock: gender_core::time::system_now_ms,
        max_body_bytes: config.max_body_bytes,
        // One request at a time per instance: nothing to keep free.
        parse_on: None,
    };
    gender_api::with_edge_layers(gender_api::with_request_deadline(
        gender_api::router(state),
        REQUEST_DEADLINE,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_limit_fits_lambda_once_base64_encoded() {
        assert_eq!(base64_len(DEFAULT_MAX_BODY_BYTES), 5_592_408);
        assert!(check_body_limit(DEFAULT_MAX_BODY_BYTES).is_ok());
        assert!(
            check_body_limit(5 * 1024 * 1024).is_err(),
            "SPEC's 5 MiB cannot hold on Lambda"
        );
        assert!(check_body_limit(DEFAULT_MAX_BODY_BYTES + 1).is_err());
        assert!(check_body_limit(0).is_err());
    }
}
