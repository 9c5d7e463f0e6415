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

/// The `# HELP` and `# TYPE` lines of one Prometheus metric.
pub fn write_header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// A metric with a single unlabelled sample, in Prometheus text format.
pub fn write_metric(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    value: impl std::fmt::Display,
) {
    write_header(out, name, kind, help);
    let _ = writeln!(out, "{name} {value}");
}

pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl ApiMetrics {
    pub fn render(&self, out: &mut String) {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        write_metric(
            out,
            "gender_hits_accepted_total",
            "counter",
            "Hits accepted by POST /hits (durable).",
            get(&self.hits_accepted),
        );
        write_metric(
            out,
            "gender_hits_rejected_total",
            "counter",
            "Hits rejected by validation.",
            get(&self.hits_rejected),
        );
        write_metric(
            out,
            "gender_ingest_requests_failed_total",
            "counter",
            "POST /hits requests answered with an error status.",
            get(&self.ingest_requests_failed),
        );
        write_header(
            out,
            "gender_lookups_total",
            "counter",
            "GET /gender requests by result.",
        );
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
