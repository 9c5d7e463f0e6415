//! Who may call what (SPEC 18), in one place: the three key scopes, the
//! keys of a deployment ([`Keys`]), the rule that turns a request's
//! credential into "go on", `401` or `403` ([`authorize`]), and the one
//! middleware that applies it to a group of routes ([`require_scope`]).
//! Handlers never look at keys.
//!
//! - `ingest` may only `POST /hits`, and is the only key that may travel in
//!   a URL (`POST /hits?key=...`): it is meant to be published in pages.
//! - `read` may `GET /gender/{clientid}` and `GET /erasures/{id}`.
//! - `admin` may call every route; SPEC 4's single key is the admin key.
//!
//! A missing or unknown key is `401`; a key of the wrong scope is `403`
//! naming the scope the route needs. A presented key is compared with every
//! configured key in constant time (no early exit, so the time does not say
//! which key, or which prefix, matched); only its length is not hidden, and
//! every generated key has the same length. Keys are never logged.

use crate::errors::JsonError;
use crate::metrics::ApiMetrics;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use std::sync::{Arc, RwLock};
use subtle::{Choice, ConstantTimeEq};

pub const API_KEY_HEADER: &str = "x-api-key";
/// The query parameter that may carry an ingest key on `POST /hits`.
pub const URL_KEY_PARAMETER: &str = "key";

/// What a key may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Only `POST /hits`; safe to publish in a web page.
    Ingest,
    /// `GET /gender/{clientid}`, `GET /erasures/{id}`.
    Read,
    /// Every route.
    Admin,
}

impl Scope {
    pub const ALL: [Scope; 3] = [Scope::Ingest, Scope::Read, Scope::Admin];

    pub fn name(self) -> &'static str {
        match self {
            Scope::Ingest => "ingest",
            Scope::Read => "read",
            Scope::Admin => "admin",
        }
    }

    pub fn parse(text: &str) -> Option<Scope> {
        Scope::ALL.into_iter().find(|s| s.name() == text)
    }

    /// Whether a key of this scope may call a route that needs `needed`.
    pub fn allows(self, needed: Scope) -> bool {
        self == Scope::Admin || self == needed
    }
}

impl std::fmt::Display for Scope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One accepted key: the current key of a scope, or a replaced one still
/// accepted before `not_after_ms` (the end of the rotation's grace period).
#[derive(Clone)]
struct Entry {
    scope: Scope,
    key: Box<[u8]>,
    not_after_ms: Option<i64>,
}

/// A scope's keys as a deployment configures them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScopeKeys {
    pub current: String,
    /// The key replaced by a rotation and the epoch milliseconds at which it
    /// stops being accepted.
    pub previous: Option<(String, i64)>,
}

impl ScopeKeys {
    pub fn only(current: impl Into<String>) -> ScopeKeys {
        ScopeKeys {
            current: current.into(),
            previous: None,
        }
    }
}

/// The keys of a deployment. Cheap to clone; the clones share the keys, so
/// a rotation ([`Keys::set`]) is seen by every route at once.
#[derive(Clone)]
pub struct Keys {
    entries: Option<Arc<RwLock<Vec<Entry>>>>,
    clock: fn() -> i64,
}

impl Keys {
    /// No key configured yet: every credential is refused until [`Keys::set`].
    pub fn new(clock: fn() -> i64) -> Keys {
        Keys {
            entries: Some(Arc::new(RwLock::new(Vec::new()))),
            clock,
        }
    }

    /// SPEC 4's single key, which is the admin key.
    pub fn admin_only(key: &str, clock: fn() -> i64) -> Keys {
        let keys = Keys::new(clock);
        keys.set(Scope::Admin, &ScopeKeys::only(key));
        keys
    }

    /// No check at all: only for describing the routes (the OpenAPI
    /// document), never for serving them.
    pub fn disabled() -> Keys {
        Keys {
            entries: None,
            clock: || 0,
        }
    }

    /// Replaces the keys of `scope`. An empty key is never accepted.
    pub fn set(&self, scope: Scope, keys: &ScopeKeys) {
        let Some(entries) = &self.entries else {
            return;
        };
        let mut entries = entries.write().unwrap_or_else(|e| e.into_inner());
        entries.retain(|e| e.scope != scope);
        let mut add = |key: &str, not_after_ms| {
            if !key.is_empty() {
                entries.push(Entry {
                    scope,
                    key: key.as_bytes().into(),
                    not_after_ms,
                });
            }
        };
        add(&keys.current, None);
        if let Some((previous, until)) = &keys.previous {
            add(previous, Some(*until));
        }
    }

    /// The current key of `scope` (not a replaced one in its grace period),
    /// if one is set. For showing the ingest key where it is published.
    pub fn current(&self, scope: Scope) -> Option<String> {
        let entries = self.entries.as_ref()?;
        let entries = entries.read().unwrap_or_else(|e| e.into_inner());
        entries
            .iter()
            .find(|e| e.scope == scope && e.not_after_ms.is_none())
            .map(|e| String::from_utf8_lossy(&e.key).into_owned())
    }

    /// The scope of `presented`, comparing it with every key in constant
    /// time; `None` for an unknown key or one whose grace period is over.
    fn scope_of(&self, presented: &[u8]) -> Option<Scope> {
        let entries = self.entries.as_ref()?;
        let now = (self.clock)();
        let entries = entries.read().unwrap_or_else(|e| e.into_inner());
        let mut found: Option<Scope> = None;
        for entry in entries.iter() {
            let same: Choice = entry.key.as_ref().ct_eq(presented);
            let live = entry.not_after_ms.is_none_or(|until| now < until);
            if bool::from(same) && live {
                found = Some(entry.scope);
            }
        }
        found
    }
}

/// What a group of routes requires.
#[derive(Clone, Copy, Debug)]
pub struct Rule {
    pub needs: Scope,
    /// Whether an (ingest) key may come as `?key=` instead of the header.
    pub key_in_url: bool,
}

impl Rule {
    pub const INGEST: Rule = Rule {
        needs: Scope::Ingest,
        key_in_url: true,
    };
    pub const READ: Rule = Rule {
        needs: Scope::Read,
        key_in_url: false,
    };
    pub const ADMIN: Rule = Rule {
        needs: Scope::Admin,
        key_in_url: false,
    };
}

fn unauthorized(message: &str) -> JsonError {
    JsonError::new(StatusCode::UNAUTHORIZED, message)
}

fn forbidden(message: String, scope: Scope, needed: Scope) -> JsonError {
    JsonError::new(StatusCode::FORBIDDEN, message)
        .with("scope", scope)
        .with("required_scope", needed)
}

/// The decision for a request to a route under `rule`: the key's scope, or
/// the error to answer. `header` is `x-api-key`, `url_key` the `key` query
/// parameter; neither is ever logged.
pub fn authorize(
    keys: &Keys,
    rule: Rule,
    header: Option<&[u8]>,
    url_key: Option<&str>,
) -> Result<Scope, JsonError> {
    if keys.entries.is_none() {
        return Ok(Scope::Admin);
    }
    let (presented, in_url) = match (header, url_key) {
        (Some(_), Some(_)) => {
            return Err(unauthorized(
                "send the key either in the x-api-key header or as ?key=, not both",
            ));
        }
        (Some(header), None) => (header, false),
        (None, Some(_)) if !rule.key_in_url => {
            return Err(unauthorized(
                "a key in the URL (?key=) is accepted only on POST /hits, and only an ingest \
                 key; send this key in the x-api-key header",
            ));
        }
        (None, Some(url)) => (url.as_bytes(), true),
        (None, None) => return Err(unauthorized("missing API key (header x-api-key)")),
    };
    let Some(scope) = keys.scope_of(presented) else {
        return Err(unauthorized("invalid API key"));
    };
    if in_url && scope != Scope::Ingest {
        return Err(forbidden(
            format!(
                "only an ingest key may be sent in a URL; this {scope} key was not used: send it \
                 in the x-api-key header, and rotate it, since URLs end up in logs and histories"
            ),
            scope,
            Scope::Ingest,
        ));
    }
    if !scope.allows(rule.needs) {
        return Err(forbidden(
            format!(
                "this {scope} key may not call this route; it needs a {} key",
                rule.needs
            ),
            scope,
            rule.needs,
        ));
    }
    Ok(scope)
}

/// The value of `?key=` in `query`, percent-decoded; `Some("")` when the
/// parameter is there but empty (then it is an invalid key, not a missing one).
pub fn url_key(query: Option<&str>) -> Option<String> {
    query?.split('&').find_map(|pair| {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        (name == URL_KEY_PARAMETER).then(|| {
            percent_encoding::percent_decode_str(&value.replace('+', " "))
                .decode_utf8_lossy()
                .into_owned()
        })
    })
}

/// The middleware's state: the keys and the rule of the routes it guards.
#[derive(Clone)]
pub struct Guard {
    pub keys: Keys,
    pub rule: Rule,
    pub metrics: Arc<ApiMetrics>,
}

/// Middleware: the request goes on only if [`authorize`] says so;
/// otherwise its JSON `401`/`403` is the answer and nothing else runs.
pub async fn require_scope(State(guard): State<Guard>, request: Request, next: Next) -> Response {
    let header = request.headers().get(API_KEY_HEADER).map(|v| v.as_bytes());
    let in_url = url_key(request.uri().query());
    match authorize(&guard.keys, guard.rule, header, in_url.as_deref()) {
        Ok(_) => {
            if in_url.is_some() {
                guard.metrics.url_key_requests.inc();
            }
            next.run(request).await
        }
        Err(refused) => {
            if refused.status == StatusCode::FORBIDDEN {
                guard.metrics.refused_forbidden.inc();
            } else {
                guard.metrics.refused_unauthorized.inc();
            }
            refused.into_response()
        }
    }
}

/// `router`'s routes guarded by `rule` (as a route layer: a wrong method
/// still gets its `405`).
pub fn guarded<S: Clone + Send + Sync + 'static>(
    router: utoipa_axum::router::OpenApiRouter<S>,
    keys: &Keys,
    rule: Rule,
    metrics: &Arc<ApiMetrics>,
) -> utoipa_axum::router::OpenApiRouter<S> {
    router.route_layer(axum::middleware::from_fn_with_state(
        Guard {
            keys: keys.clone(),
            rule,
            metrics: metrics.clone(),
        },
        require_scope,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    fn keys() -> Keys {
        let keys = Keys::new(|| NOW);
        keys.set(Scope::Ingest, &ScopeKeys::only("ik"));
        keys.set(Scope::Read, &ScopeKeys::only("rk"));
        keys.set(
            Scope::Admin,
            &ScopeKeys {
                current: "ak".into(),
                previous: Some(("old-ak".into(), NOW + 1)),
            },
        );
        keys
    }

    fn status(result: Result<Scope, JsonError>) -> u16 {
        match result {
            Ok(_) => 200,
            Err(e) => e.status.as_u16(),
        }
    }

    #[test]
    fn each_scope_reaches_exactly_its_routes() {
        let keys = keys();
        // (key, ingest route, read route, admin route)
        let table = [
            ("ik", 200, 403, 403),
            ("rk", 403, 200, 403),
            ("ak", 200, 200, 200),
            ("old-ak", 200, 200, 200),
            ("nope", 401, 401, 401),
            ("", 401, 401, 401),
        ];
        for (key, ingest, read, admin) in table {
            let got = [Rule::INGEST, Rule::READ, Rule::ADMIN]
                .map(|rule| status(authorize(&keys, rule, Some(key.as_bytes()), None)));
            assert_eq!(got, [ingest, read, admin], "key {key:?}");
        }
        assert_eq!(status(authorize(&keys, Rule::READ, None, None)), 401);
    }

    #[test]
    fn a_wrong_scope_names_the_scope_needed() {
        let e = authorize(&keys(), Rule::READ, Some(b"ik"), None).unwrap_err();
        assert_eq!(e.body["scope"], "ingest");
        assert_eq!(e.body["required_scope"], "read");
        assert!(
            e.body["error"]
                .as_str()
                .unwrap()
                .contains("needs a read key")
        );
        let e = authorize(&keys(), Rule::ADMIN, Some(b"rk"), None).unwrap_err();
        assert_eq!(e.body["required_scope"], "admin");
    }

    #[test]
    fn only_an_ingest_key_travels_in_a_url_and_only_to_post_hits() {
        let keys = keys();
        assert_eq!(
            authorize(&keys, Rule::INGEST, None, Some("ik")).unwrap(),
            Scope::Ingest
        );
        for key in ["rk", "ak"] {
            let e = authorize(&keys, Rule::INGEST, None, Some(key)).unwrap_err();
            assert_eq!(e.status, StatusCode::FORBIDDEN, "{key}");
            assert_eq!(e.body["required_scope"], "ingest");
            // The message never repeats the key.
            assert!(!e.body.to_string().contains(&format!("\"{key}\"")));
        }
        for rule in [Rule::READ, Rule::ADMIN] {
            let e = authorize(&keys, rule, None, Some("ak")).unwrap_err();
            assert_eq!(e.status, StatusCode::UNAUTHORIZED);
            assert!(
                e.body["error"]
                    .as_str()
                    .unwrap()
                    .contains("only on POST /hits")
            );
        }
        assert_eq!(
            status(authorize(&keys, Rule::INGEST, None, Some("nope"))),
            401
        );
        assert_eq!(
            status(authorize(&keys, Rule::INGEST, Some(b"ik"), Some("ik"))),
            401
        );
    }

    #[test]
    fn a_rotated_key_is_accepted_until_its_grace_ends() {
        let keys = Keys::new(|| NOW);
        keys.set(
            Scope::Ingest,
            &ScopeKeys {
                current: "new".into(),
                previous: Some(("old".into(), NOW)),
            },
        );
        assert_eq!(
            status(authorize(&keys, Rule::INGEST, Some(b"old"), None)),
            401
        );
        keys.set(
            Scope::Ingest,
            &ScopeKeys {
                current: "new".into(),
                previous: Some(("old".into(), NOW + 1)),
            },
        );
        assert_eq!(
            status(authorize(&keys, Rule::INGEST, Some(b"old"), None)),
            200
        );
        // A clone sees a later rotation: the routes share one key set.
        let clone = keys.clone();
        keys.set(Scope::Ingest, &ScopeKeys::only("newer"));
        assert_eq!(
            status(authorize(&clone, Rule::INGEST, Some(b"old"), None)),
            401
        );
        assert_eq!(
            status(authorize(&clone, Rule::INGEST, Some(b"newer"), None)),
            200
        );
    }

    #[test]
    fn the_url_key_is_percent_decoded_and_found_among_other_parameters() {
        assert_eq!(url_key(Some("a=1&key=x%2By&b")).as_deref(), Some("x+y"));
        assert_eq!(url_key(Some("key=")).as_deref(), Some(""));
        assert_eq!(url_key(Some("keys=1")), None);
        assert_eq!(url_key(None), None);
    }
}
