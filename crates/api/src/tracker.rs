//! `GET /tracker.js` (SPEC 18): the page script that sends hits from the
//! browser. The file (`assets/tracker.js`) is written minified by hand so
//! that it stays at most 1 KB gzipped (tested below); what it does, in the
//! order of its code:
//!
//! - reads its own tag: `data-key` (the ingest key, sent as `?key=`, so the
//!   request is "simple" and needs no preflight), `data-page-gender`
//!   (`M`/`F`, read again at each page view, so a single-page app updates
//!   the attribute before `history.pushState`), `data-respect-dnt`
//!   (present: nothing is sent when `navigator.doNotTrack` is "1" or Global
//!   Privacy Control is on);
//! - the visitor id `gs_vid` (128 random bits, hex) in `localStorage`, or a
//!   first-party cookie of a year when storage is unavailable;
//! - one hit per page view (the load, each `pushState`, each `popstate`),
//!   with a `hitid` of 128 random bits and the view's time, queued in
//!   `localStorage` (`gs_q`, at most 500 hits) until a `2xx` answers it;
//! - sends the queue in batches of up to 100 with `fetch(..., {keepalive})`
//!   and a `text/plain` body; a `408`, `429`, `5xx` or a network failure
//!   keeps the hits and retries after `Retry-After`, else after a jittered
//!   backoff doubling up to 5 minutes; other `4xx` drop them (a resend
//!   cannot fix them); while offline it waits for the `online` event;
//! - on `pagehide` hands what is still queued to `navigator.sendBeacon`
//!   (else `fetch` keepalive), and keeps it queued: the next page resends it,
//!   and the `hitid` makes the server count it once (SPEC 15).

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use std::sync::LazyLock;

/// The script as served.
pub const TRACKER_JS: &str = include_str!("../assets/tracker.js");

/// Browsers and CDNs may keep the script this long, then revalidate with
/// the ETag.
pub const TRACKER_MAX_AGE_SECONDS: u32 = 3600;

/// A strong ETag of the script's bytes (FNV-1a 64).
static ETAG: LazyLock<HeaderValue> = LazyLock::new(|| {
    let hash = TRACKER_JS.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    HeaderValue::from_str(&format!("\"{hash:016x}\"")).expect("hex is a valid header")
});

fn not_modified(headers: &HeaderMap) -> bool {
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ETAG.to_str().unwrap_or(""))
}

#[utoipa::path(
    get,
    path = "/tracker.js",
    tag = "ingest",
    operation_id = "getTracker",
    summary = "The page script that sends hits from browsers",
    description = "A dependency-free script (at most 1 KB gzipped) for a page's tag: \
        `<script defer src=\"https://HOST/tracker.js\" data-key=\"INGEST_KEY\" \
        data-page-gender=\"F\"></script>`. It sends one hit per page view to `POST /hits?key=` \
        with a first-party visitor id and a `hitid` per hit, resending with backoff. Needs no \
        key. Served with `Cache-Control` and an `ETag`; `If-None-Match` gets `304`.",
    responses(
        (status = 200, description = "The script.", content_type = "text/javascript",
            body = String,
            headers(("ETag" = String), ("Cache-Control" = String))),
        (status = 304, description = "The script has the ETag given in `If-None-Match`."),
    )
)]
pub async fn tracker_js(headers: HeaderMap) -> Response {
    let cache = HeaderValue::from_str(&format!("public, max-age={TRACKER_MAX_AGE_SECONDS}"))
        .expect("a valid header");
    let common = [(header::ETAG, ETAG.clone()), (header::CACHE_CONTROL, cache)];
    if not_modified(&headers) {
        return (StatusCode::NOT_MODIFIED, common).into_response();
    }
    (
        common,
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/javascript; charset=utf-8"),
            ),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
        ],
        TRACKER_JS,
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn the_script_is_at_most_one_kilobyte_gzipped() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(TRACKER_JS.as_bytes()).unwrap();
        let size = gz.finish().unwrap().len();
        assert!(size <= 1024, "tracker.js is {size} bytes gzipped");
    }

    #[test]
    fn the_script_sends_what_the_api_expects() {
        // The names the server parses (SPEC 2) and the routes it serves.
        for needle in [
            "clientid:",
            "pageGender:",
            "hitid:",
            "timestamp:",
            "hits?key=",
            "keepalive",
            "sendBeacon",
            "pushState",
            "retry-after",
            "data-",
        ] {
            assert!(TRACKER_JS.contains(needle), "{needle}");
        }
    }

    #[test]
    fn if_none_match_with_the_etag_or_a_star_is_not_modified() {
        let mut headers = HeaderMap::new();
        assert!(!not_modified(&headers));
        headers.insert(header::IF_NONE_MATCH, ETAG.clone());
        assert!(not_modified(&headers));
        headers.insert(
            header::IF_NONE_MATCH,
            HeaderValue::from_static("\"other\", W/\"x\""),
        );
        assert!(!not_modified(&headers));
    }
}
