//! `/docs/{file}`: the files of Swagger UI, served from the binary (the
//! vendored `utoipa-swagger-ui` crate), and the local `/docs` page.

use axum::extract::Path;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use gender_api::JsonError;
use gender_api::schema::{Error, MethodNotAllowed};
use std::sync::{Arc, LazyLock};
use utoipa_swagger_ui::Config;

/// Swagger UI of the `utoipa-swagger-ui` crate (vendored: its files are
/// compiled into the binary, nothing is fetched at build or run time), the
/// release and settings of the API's CDN page.
static SWAGGER_UI: LazyLock<Arc<Config<'static>>> = LazyLock::new(|| {
    // From `/docs/`, `../openapi.json` is `/openapi.json` under any prefix.
    let options: serde_json::Value =
        serde_json::from_str(&format!("{{{}}}", gender_api::docs::SWAGGER_UI_OPTIONS))
            .expect("the options are JSON");
    let flag = |name: &str| options[name].as_bool().unwrap_or_default();
    Arc::new(
        Config::new(["../openapi.json"])
            .deep_linking(flag("deepLinking"))
            .try_it_out_enabled(flag("tryItOutEnabled"))
            .persist_authorization(flag("persistAuthorization"))
            .display_request_duration(flag("displayRequestDuration"))
            .filter(flag("filter"))
            .validator_url(options["validatorUrl"].as_str().unwrap_or("none")),
    )
});

pub(super) fn swagger_file(path: &str) -> Option<(Vec<u8>, String)> {
    match utoipa_swagger_ui::serve(path, SWAGGER_UI.clone()) {
        Ok(Some(file)) => Some((file.bytes.into_owned(), file.content_type)),
        Ok(None) => None,
        Err(e) => {
            tracing::error!(error = %e, path, "swagger ui file");
            None
        }
    }
}

/// The `/docs` page of the local server: Swagger UI's `index.html`, whose
/// files are relative (`./swagger-ui.css`), with `<base href="docs/">` so
/// that at `/docs` (no trailing slash) they load from `/docs/`.
pub fn docs_page() -> String {
    let (index, _) = swagger_file("index.html").expect("Swagger UI has an index.html");
    String::from_utf8_lossy(&index).replacen(
        "<head>",
        "<head>\n    <base href=\"docs/\">\n    <meta name=\"robots\" content=\"noindex\">",
        1,
    )
}

/// A file of the viewer (scripts, styles, icons).
#[utoipa::path(
    get,
    path = "/docs/{file}",
    tag = "docs",
    operation_id = "getDocsFile",
    summary = "A file of the API documentation page (local server only)",
    description = "Scripts, styles and icons of Swagger UI, served from the binary. No \
        authentication.",
    params(("file" = String, Path, description = "File name, e.g. `swagger-ui.css`.")),
    responses(
        (status = 200, description = "The file.", content(
            (String = "text/html"),
            (String = "text/css"),
            (String = "text/javascript"),
            (String = "application/javascript"),
            (String = "application/json"),
            (String = "image/png"),
        )),
        (status = 404, description = "No such file.", body = Error,
            example = json!({"error": "no such documentation file", "file": "nope.js"})),
        (status = 405, response = MethodNotAllowed),
    )
)]
pub(super) async fn docs_file(Path(path): Path<String>) -> Response {
    let Some((bytes, content_type)) = swagger_file(&path) else {
        return JsonError::new(StatusCode::NOT_FOUND, "no such documentation file")
            .with("file", path)
            .into_response();
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    // The files change only with the binary.
    headers.insert(
        header::CACHE_CONTROL,
        HeaderValue::from_static("public, max-age=3600"),
    );
    response
}
