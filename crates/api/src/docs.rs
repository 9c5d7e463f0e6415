//! `/openapi.json`, this server's OpenAPI document, and `/docs`, Swagger UI
//! rendering it. The page is the deployment's: the local server serves
//! Swagger UI from its binary (`gender-local`, the `utoipa-swagger-ui`
//! crate); the Lambda serves [`swagger_ui_from_cdn`], the same Swagger UI
//! release loaded by the browser from a CDN, so the function's zip does not
//! carry ~3 MiB of it.

use crate::schema::MethodNotAllowed;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;

/// The Swagger UI release both pages use (`swagger-ui-dist` on npm).
pub const SWAGGER_UI_VERSION: &str = "5.17.14";

/// Subresource integrity of the release's files, so the browser runs
/// nothing else under those URLs.
const SWAGGER_UI_CSS_SRI: &str =
    "sha384-wxLW6kwyHktdDGr6Pv1zgm/VGJh99lfUbzSn6HNHBENZlCN7W602k9VkGdxuFvPn";
const SWAGGER_UI_BUNDLE_SRI: &str =
    "sha384-wmyclcVGX/WhUkdkATwhaK1X1JtiNrr2EoYJ+diV3vj4v6OC5yCeSu+yW13SYJep";

/// The Swagger UI settings of both pages, as the options of `SwaggerUIBundle`
/// without `url`. No badge is fetched from the public validator.
pub const SWAGGER_UI_OPTIONS: &str = r##""dom_id": "#swagger-ui", "deepLinking": true, "tryItOutEnabled": true, "persistAuthorization": true, "displayRequestDuration": true, "filter": true, "validatorUrl": "none""##;

/// A `/docs` page that loads Swagger UI from jsDelivr (pinned release,
/// integrity-checked) and renders `/openapi.json`: the browser needs to reach
/// the CDN, the server ships no viewer files.
pub fn swagger_ui_from_cdn() -> String {
    let base = format!("https://cdn.jsdelivr.net/npm/swagger-ui-dist@{SWAGGER_UI_VERSION}");
    format!(
        r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="robots" content="noindex">
<title>Gender Service API</title>
<link rel="stylesheet" href="{base}/swagger-ui.css" integrity="{SWAGGER_UI_CSS_SRI}" crossorigin="anonymous">
</head>
<body>
<div id="swagger-ui"></div>
<script src="{base}/swagger-ui-bundle.js" integrity="{SWAGGER_UI_BUNDLE_SRI}" crossorigin="anonymous"></script>
<script>
window.onload = function () {{
  window.ui = SwaggerUIBundle({{ "url": "openapi.json", {SWAGGER_UI_OPTIONS} }});
}};
</script>
</body>
</html>
"#
    )
}

/// What the two routes serve: the serialized document and the page.
#[derive(Clone)]
pub(crate) struct Docs {
    pub(crate) json: Bytes,
    pub(crate) page: Bytes,
}

#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    operation_id = "getOpenApi",
    summary = "This OpenAPI document",
    description = "The OpenAPI 3.1 description of every route of this server. No authentication.",
    responses(
        (status = 200, description = "The OpenAPI document.", content_type = "application/json",
            body = Object),
        (status = 405, response = MethodNotAllowed),
    )
)]
pub(crate) async fn openapi_json(State(docs): State<Docs>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], docs.json)
}

#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    operation_id = "getDocs",
    summary = "API documentation (Swagger UI)",
    description = "Swagger UI rendering `/openapi.json`: served from the binary by the local \
        server, loaded from a CDN (pinned release, integrity-checked) on AWS. Use *Authorize* \
        with the API key to try the protected routes. No authentication.",
    responses(
        (status = 200, description = "HTML page.", content_type = "text/html", body = String),
        (status = 405, response = MethodNotAllowed),
    )
)]
pub(crate) async fn index(State(docs): State<Docs>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        docs.page,
    )
}
