//! What the OpenAPI 3.1 document holds besides its paths: the title and
//! description, the tags, the shared components (the body types of
//! [`crate::schema`] and the shared responses) and the `x-api-key` scheme.
//! The paths come from the handlers' `#[utoipa::path]` annotations as the
//! router registers them ([`crate::router::api_doc`]); a deployment with
//! routes of its own merges their description in (the local server).

use crate::schema::{
    ClientIdError, Erasure, ErasureIdError, ErasureState, Error, Forbidden, GenderLetter,
    GenderProfile, Health, HealthDown, HealthOk, HealthUnavailable, HitBatch, HitCounts,
    IngestError, IngestResult, MethodNotAllowed, RejectedHit, Signals, Unauthorized,
};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, SecurityScheme};
use utoipa::openapi::{OpenApi as Document, RefOr};
use utoipa::{Modify, OpenApi};

/// The name of the `x-api-key` security scheme, for `security((...))`.
pub const API_KEY_SCHEME: &str = "ApiKey";
/// The name of the `?key=` scheme of `POST /hits` (ingest keys only).
pub const INGEST_KEY_IN_URL_SCHEME: &str = "IngestKeyInUrl";

const DESCRIPTION: &str = "\
Ingests page hits (which visitor viewed a page aimed at which gender) and answers, per \
visitor, a running estimate of the visitor's gender.

**Authentication.** Every route but `/health`, `/tracker.js`, `/openapi.json` and `/docs` \
needs a key in the `x-api-key` header (*Authorize* in `/docs`), and each key has a scope \
(SPEC 18): `ingest` may only `POST /hits` (it is meant to be published in web pages, and is \
the only key that may also be sent as `POST /hits?key=...`); `read` may `GET /gender/{clientid}` \
and `GET /erasures/{id}`; `admin` may call every route (`DELETE /visitors/{clientid}` and the \
local server's `/admin/*` routes only with it). A missing or unknown key gets `401`, a key of \
another scope `403` naming the scope needed (`required_scope`); either way nothing is done. \
The local server (`gender-service serve`) creates one key per scope on first start, prints \
them and keeps them in `DATA_DIR/api-key` (admin, the one key of earlier versions), \
`DATA_DIR/ingest-key` and `DATA_DIR/read-key`.

**Errors.** Every error of every route is JSON, `{\"error\": \"...\"}` plus fields named in \
each response, with its status; never an HTML page. In addition to the responses listed per \
operation: an unknown path gets `404` `{\"error\": \"no such route\"}`; a known path with \
another method gets `405` with an `Allow` header; a bug gets `500` \
`{\"error\": \"internal error\"}`. A request the HTTP layer cannot parse at all \
(a malformed request line, a request head over the local server's 64 KiB or 100 headers) \
gets `400` or `431` with a JSON error body from the local server, which then closes the \
connection; on AWS, API Gateway answers such requests itself.

**Retries.** A `503` with `Retry-After` (seconds) is temporary: send the same request again \
after that time. For `POST /hits` it means no hit of the request was stored, except after \
the AWS deployment's request deadline, when it is unknown.";

#[derive(OpenApi)]
#[openapi(
    info(title = "Gender Service API"),
    components(
        schemas(
            HitBatch, IngestResult, RejectedHit, IngestError, GenderProfile, GenderLetter,
            Signals, HitCounts, ClientIdError, Health, HealthOk, HealthUnavailable, HealthDown,
            Error, Erasure, ErasureState, ErasureIdError,
        ),
        responses(Unauthorized, Forbidden, MethodNotAllowed),
    ),
    modifiers(&ApiKeyHeader),
    tags(
        (name = "ingest", description = "Send page hits."),
        (name = "lookup", description = "A visitor's gender estimate."),
        (name = "erasure", description = "Forget a visitor (SPEC 17)."),
        (name = "ops", description = "Health."),
        (name = "docs", description = "This document and its viewer."),
    )
)]
struct ApiDoc;

struct ApiKeyHeader;

impl Modify for ApiKeyHeader {
    fn modify(&self, doc: &mut Document) {
        let components = doc.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            API_KEY_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::with_description(
                crate::auth::API_KEY_HEADER,
                "A key of the scope the route needs (ingest, read or admin). Locally: \
                 printed by `gender-service serve` at start, kept in `DATA_DIR/api-key` (admin), \
                 `DATA_DIR/ingest-key`, `DATA_DIR/read-key`, or set with `--api-key`, \
                 `--ingest-key`, `--read-key`.",
            ))),
        );
        components.add_security_scheme(
            INGEST_KEY_IN_URL_SCHEME,
            SecurityScheme::ApiKey(ApiKey::Query(ApiKeyValue::with_description(
                crate::auth::URL_KEY_PARAMETER,
                "An ingest key in the URL, on `POST /hits` only (for browsers: \
                 `navigator.sendBeacon` cannot set a header). A read or admin key here is \
                 refused with `403`.",
            ))),
        );
    }
}

/// The document without paths: the router adds them as it registers the
/// routes.
pub(crate) fn base() -> Document {
    let mut doc = ApiDoc::openapi();
    doc.info.description = Some(DESCRIPTION.to_owned());
    doc.info.version = env!("CARGO_PKG_VERSION").to_owned();
    doc
}

/// `doc` with the `POST /hits` texts naming `max_body_bytes`, the body
/// limit of the deployment that serves it.
pub(crate) fn with_body_limit(mut doc: Document, max_body_bytes: usize) -> Document {
    let limit = body_limit_text(max_body_bytes);
    if let Some(post) = doc
        .paths
        .paths
        .get_mut("/hits")
        .and_then(|item| item.post.as_mut())
    {
        if let Some(body) = post.request_body.as_mut() {
            body.description = body
                .description
                .as_ref()
                .map(|d| d.replace(BODY_LIMIT, &limit));
        }
        if let Some(RefOr::T(too_large)) = post.responses.responses.get_mut("413") {
            too_large.description = too_large.description.replace(BODY_LIMIT, &limit);
        }
        post.description = post
            .description
            .as_ref()
            .map(|d| d.replace(BODY_LIMIT, &limit));
    }
    doc
}

/// Stands for the deployment's body limit in the `POST /hits` texts.
pub(crate) const BODY_LIMIT: &str = "{max_body}";

fn body_limit_text(bytes: usize) -> String {
    const MIB: usize = 1024 * 1024;
    let mib = bytes / MIB;
    if mib * MIB == bytes {
        format!("{mib} MiB ({bytes} bytes)")
    } else {
        format!("{bytes} bytes")
    }
}
