//! Counters of the API routes as `prometheus-client` metrics. The local
//! server registers them ([`ApiMetrics::register`]) in the registry its
//! `/metrics` renders; on Lambda they stay in memory, unexported.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// The labels of a one-label metric family, e.g. `[("stage", "ingest")]`.
pub type Labels = [(&'static str, &'static str); 1];

/// `gender_errors_total{stage=...}`: failures by stage. The API counts
/// `ingest` and `lookup`; an embedding server adds its own stages
/// ([`ApiMetrics::error_counter`]) so the family is rendered once.
pub type ErrorsFamily = Family<Labels, Counter>;

/// Counters of the API routes. Each labelled series is resolved once here,
/// so recording is one atomic add.
#[derive(Debug, Clone)]
pub struct ApiMetrics {
    pub hits_accepted: Counter,
    pub hits_rejected: Counter,
    pub ingest_requests_failed: Counter,
    lookups: Family<Labels, Counter>,
    pub lookups_found: Counter,
    pub lookups_not_found: Counter,
    pub lookups_invalid: Counter,
    errors: ErrorsFamily,
    pub ingest_errors: Counter,
    pub lookup_errors: Counter,
    refused: Family<Labels, Counter>,
    /// `401`: no key, an unknown key, or a key where it may not be sent.
    pub refused_unauthorized: Counter,
    /// `403`: a key of the wrong scope, or a read/admin key in a URL.
    pub refused_forbidden: Counter,
    /// `403`: `POST /hits` from an origin outside the CORS list (SPEC 18).
    pub refused_origin: Counter,
    /// `429`: an ingest key's `POST /hits` past the per-client-address rate
    /// (the local server's `--ingest-rate-per-ip`).
    pub refused_rate_limited: Counter,
    /// `POST /hits` requests let in with the ingest key in the URL (`?key=`,
    /// as `tracker.js` sends hits from browsers).
    pub url_key_requests: Counter,
}

impl Default for ApiMetrics {
    fn default() -> ApiMetrics {
        let lookups = Family::<Labels, Counter>::default();
        let errors = ErrorsFamily::default();
        let lookup = |result| lookups.get_or_create(&[("result", result)]).clone();
        let error = |stage| errors.get_or_create(&[("stage", stage)]).clone();
        let refused = Family::<Labels, Counter>::default();
        let refusal = |reason| refused.get_or_create(&[("reason", reason)]).clone();
        ApiMetrics {
            hits_accepted: Counter::default(),
            hits_rejected: Counter::default(),
            ingest_requests_failed: Counter::default(),
            lookups_found: lookup("found"),
            lookups_not_found: lookup("not_found"),
            lookups_invalid: lookup("invalid"),
            ingest_errors: error("ingest"),
            lookup_errors: error("lookup"),
            lookups,
            errors,
            refused_unauthorized: refusal("unauthorized"),
            refused_forbidden: refusal("forbidden"),
            refused_origin: refusal("origin"),
            refused_rate_limited: refusal("rate_limited"),
            refused,
            url_key_requests: Counter::default(),
        }
    }
}

impl ApiMetrics {
    /// Registers every API metric, `gender_errors_total` included.
    /// (Counter names get their `_total` suffix from the encoder.)
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "gender_hits_accepted",
            "Hits accepted by POST /hits (durable)",
            self.hits_accepted.clone(),
        );
        registry.register(
            "gender_hits_rejected",
            "Hits rejected by validation",
            self.hits_rejected.clone(),
        );
        registry.register(
            "gender_ingest_requests_failed",
            "POST /hits requests answered with an error status",
            self.ingest_requests_failed.clone(),
        );
        registry.register(
            "gender_lookups",
            "GET /gender requests by result",
            self.lookups.clone(),
        );
        registry.register("gender_errors", "Failures by stage", self.errors.clone());
        registry.register(
            "gender_requests_refused",
            "Requests refused before their route ran, by reason (unauthorized: 401, \
             forbidden: wrong key scope, origin: POST /hits from outside the CORS origins, \
             rate_limited: an ingest key's POST /hits past the per-client-address rate)",
            self.refused.clone(),
        );
        registry.register(
            "gender_url_key_requests",
            "POST /hits requests let in with the ingest key in the URL (?key=, as tracker.js \
             sends hits from browsers), whatever their answer",
            self.url_key_requests.clone(),
        );
    }

    /// The `gender_errors_total{stage="<stage>"}` counter, for stages of the
    /// embedding server.
    pub fn error_counter(&self, stage: &'static str) -> Counter {
        self.errors.get_or_create(&[("stage", stage)]).clone()
    }
}
