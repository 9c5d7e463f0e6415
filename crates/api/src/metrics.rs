use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};

/// Counters of the API routes, rendered in Prometheus text format by the
/// local server's `/metrics` (on Lambda they stay in memory, unexported).
#[derive(Debug, Default)]
pub struct ApiMetrics {
    pub hits_accepted: AtomicU64,
    pub hits_rejected: AtomicU64,
    pub ingest_requests_failed: AtomicU64,
    pub lookups_found: AtomicU64,
    pub lookups_not_found: AtomicU64,
    pub lookups_invalid: AtomicU64,
    pub ingest_errors: AtomicU64,
    pub lookup_errors: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl ApiMetrics {
    pub fn render(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP gender_hits_accepted_total Hits accepted by POST /hits (durable)."
        );
        let _ = writeln!(out, "# TYPE gender_hits_accepted_total counter");
        let _ = writeln!(
            out,
            "gender_hits_accepted_total {}",
            get(&self.hits_accepted)
        );
        let _ = writeln!(
            out,
            "# HELP gender_hits_rejected_total Hits rejected by validation."
        );
        let _ = writeln!(out, "# TYPE gender_hits_rejected_total counter");
        let _ = writeln!(
            out,
            "gender_hits_rejected_total {}",
            get(&self.hits_rejected)
        );
        let _ = writeln!(
            out,
            "# HELP gender_ingest_requests_failed_total POST /hits requests answered with an error status."
        );
        let _ = writeln!(out, "# TYPE gender_ingest_requests_failed_total counter");
        let _ = writeln!(
            out,
            "gender_ingest_requests_failed_total {}",
            get(&self.ingest_requests_failed)
        );
        let _ = writeln!(
            out,
            "# HELP gender_lookups_total GET /gender requests by result."
        );
        let _ = writeln!(out, "# TYPE gender_lookups_total counter");
        for (result, counter) in [
            ("found", &self.lookups_found),
            ("not_found", &self.lookups_not_found),
            ("invalid", &self.lookups_invalid),
        ] {
            let _ = writeln!(
                out,
                "gender_lookups_total{{result=\"{result}\"}} {}",
                get(counter)
            );
        }
    }

    /// Error counts by stage; the embedding server renders `gender_errors_total`
    /// once with its own stages added.
    pub fn error_counts(&self) -> [(&'static str, u64); 2] {
        [
            ("ingest", self.ingest_errors.load(Ordering::Relaxed)),
            ("lookup", self.lookup_errors.load(Ordering::Relaxed)),
        ]
    }
}
