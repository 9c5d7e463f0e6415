//! CORS for `POST /hits` only (SPEC 18). Off by default: with no origins
//! configured nothing changes (no preflight answer, no headers). With a
//! list, a preflight from a listed origin is answered, responses to it carry
//! `Access-Control-Allow-Origin`, and a request from any other origin is
//! refused (`403`) before its key is looked at. Requests without `Origin`
//! (server-to-server producers) are not affected. The lookups and the admin
//! routes never get CORS headers: they stay server-to-server.

use crate::errors::JsonError;
use crate::metrics::ApiMetrics;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::Arc;

/// How long a browser may cache a preflight answer.
pub const PREFLIGHT_MAX_AGE_SECONDS: u32 = 86_400;

/// The origins (`scheme://host[:port]`) whose pages may send hits; `*`
/// stands for every origin.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CorsOrigins(Arc<[String]>);

impl CorsOrigins {
    /// No CORS at all.
    pub fn none() -> CorsOrigins {
        CorsOrigins::default()
    }

    /// A comma-separated list (`https://a.example,https://b.example`);
    /// blanks are skipped, so an empty text is [`CorsOrigins::none`].
    pub fn parse(list: &str) -> Result<CorsOrigins, String> {
        let origins = list
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(|o| check_origin(o).map(|()| o.to_owned()))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CorsOrigins(origins.into()))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn origins(&self) -> &[String] {
        &self.0
    }

    fn allows(&self, origin: &str) -> bool {
        self.0
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }
}

/// An origin as browsers send it: `http(s)://host[:port]`, nothing after;
/// or `*`, every origin.
fn check_origin(origin: &str) -> Result<(), String> {
    if origin == "*" {
        return Ok(());
    }
    let rest = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("{origin:?}: an origin starts with https:// or http://"))?;
    if rest.is_empty() || rest.contains(['/', '?', '#', ' ', '*', '@']) {
        return Err(format!(
            "{origin:?}: an origin is scheme://host[:port], without a path, a trailing slash \
             or wildcards"
        ));
    }
    Ok(())
}

/// The middleware's state.
#[derive(Clone)]
pub struct Cors {
    pub origins: CorsOrigins,
    pub metrics: Arc<ApiMetrics>,
}

fn allow_origin(response: &mut Response, origin: HeaderValue) {
    let headers = response.headers_mut();
    headers.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, origin);
    headers.append(header::VARY, HeaderValue::from_static("Origin"));
    // So that the tracker can honour Retry-After on a 429 / 503.
    headers.insert(
        header::ACCESS_CONTROL_EXPOSE_HEADERS,
        HeaderValue::from_static("Retry-After"),
    );
}

/// Middleware of the `POST /hits` route (outside its key check, so a
/// preflight needs no key and a `401` is readable by the page).
pub async fn cors_for_hits(State(cors): State<Cors>, request: Request, next: Next) -> Response {
    if cors.origins.is_empty() {
        return next.run(request).await;
    }
    let Some(origin) = request.headers().get(header::ORIGIN).cloned() else {
        return next.run(request).await;
    };
    if !origin.to_str().is_ok_and(|o| cors.origins.allows(o)) {
        cors.metrics.refused_origin.inc();
        return JsonError::new(
            StatusCode::FORBIDDEN,
            "this origin may not send hits (not in the server's CORS origins)",
        )
        .into_response();
    }
    if request.method() == Method::OPTIONS {
        let mut response = StatusCode::NO_CONTENT.into_response();
        let headers = response.headers_mut();
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_METHODS,
            HeaderValue::from_static("POST"),
        );
        headers.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("content-type, x-api-key"),
        );
        headers.insert(
            header::ACCESS_CONTROL_MAX_AGE,
            HeaderValue::from(PREFLIGHT_MAX_AGE_SECONDS),
        );
        allow_origin(&mut response, origin);
        return response;
    }
    let mut response = next.run(request).await;
    allow_origin(&mut response, origin);
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_parse_from_a_comma_list_and_bad_ones_are_refused() {
        let list = CorsOrigins::parse(" https://a.example, http://127.0.0.1:8081 ,,").unwrap();
        assert_eq!(
            list.origins(),
            ["https://a.example", "http://127.0.0.1:8081"]
        );
        assert!(list.allows("HTTPS://A.example"));
        assert!(!list.allows("https://b.example"));
        assert!(CorsOrigins::parse("").unwrap().is_empty());
        assert!(
            CorsOrigins::parse("*")
                .unwrap()
                .allows("https://any.example")
        );
        for bad in [
            "a.example",
            "https://a.example/",
            "https://*.a.example",
            "ftp://x",
            "**",
        ] {
            assert!(CorsOrigins::parse(bad).is_err(), "{bad}");
        }
    }
}
