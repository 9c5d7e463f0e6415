//! Retention (SPEC 17): raw objects (and the transform's rejected records),
//! curated hits and daily rollups are deleted once their date partition
//! (`dt=`, the event date) is older than the configured age.
//!
//! A partition is removed in one step for readers (it is renamed out of
//! sight, then deleted: [`gender_embedded::partitions::remove_partition`]),
//! so they see the whole date or none of it. Raw objects
//! still waiting for curate are kept whatever their date (deleting one would
//! lose its hits); they go on a later pass. Counters in profiles are not
//! touched: retention forgets files, erasure forgets visitors.

use gender_core::{Date, layout};
use gender_embedded::EmbeddedError;
use gender_embedded::partitions::{date_partitions, remove_partition};
use std::collections::HashSet;
use std::path::Path;

/// Ages in days; `None` keeps that kind of data forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetentionPolicy {
    /// `raw/` and `errors/` (the record of truth curate reads once).
    pub raw_days: Option<u32>,
    /// `curated/hits/`; at least [`MIN_CURATED_DAYS`].
    pub curated_hits_days: Option<u32>,
    /// `curated/daily/`; at least [`MIN_CURATED_DAYS`].
    pub daily_rollups_days: Option<u32>,
}

/// The daily job rebuilds the rollups of D-6..=D for D = yesterday, so a
/// curated partition must live 8 days (and a rollup as long) to be read.
pub const MIN_CURATED_DAYS: u32 = 8;

impl Default for RetentionPolicy {
    /// Raw 90 days (curate has long read it), curated hits and rollups 400
    /// days (a year of history plus a month).
    fn default() -> Self {
        RetentionPolicy {
            raw_days: Some(90),
            curated_hits_days: Some(400),
            daily_rollups_days: Some(400),
        }
    }
}

impl RetentionPolicy {
    /// Why the policy cannot be used, if it cannot.
    pub fn check(&self) -> Result<(), String> {
        for (name, days, min) in [
            ("raw", self.raw_days, 1),
            ("curated hits", self.curated_hits_days, MIN_CURATED_DAYS),
            ("daily rollups", self.daily_rollups_days, MIN_CURATED_DAYS),
        ] {
            if let Some(days) = days
                && days < min
            {
                return Err(format!(
                    "{name} retention must be at least {min} days (or 0 to keep forever), got {days}"
                ));
            }
        }
        Ok(())
    }
}

/// What one pass deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct RetentionReport {
    /// Partitions removed, as `prefix dt=…` keys (e.g. `curated/hits/dt=2025-01-01`).
    pub partitions: Vec<String>,
    /// Raw objects kept past their age because curate has not read them yet.
    pub raw_kept_pending: usize,
}

/// Removes what is older than the policy allows on `today` (the caller's
/// clock, so tests can set it). `pending` are raw keys curate still needs.
pub fn enforce(
    data_dir: &Path,
    policy: &RetentionPolicy,
    today: Date,
    pending: &HashSet<String>,
) -> Result<RetentionReport, EmbeddedError> {
    let mut report = RetentionReport::default();
    let kinds = [
        (layout::RAW_PREFIX, policy.raw_days, true),
        (layout::PROCESSING_FAILED_PREFIX, policy.raw_days, false),
        (layout::CURATED_HITS_PREFIX, policy.curated_hits_days, false),
        (
            layout::CURATED_DAILY_PREFIX,
            policy.daily_rollups_days,
            false,
        ),
    ];
    for (prefix, days, may_be_pending) in kinds {
        let Some(days) = days else { continue };
        let oldest_kept = today.add_days(-(days as i32));
        for (date, dir) in date_partitions(&data_dir.join(prefix))? {
            if date >= oldest_kept {
                continue;
            }
            let key = layout::date_partition(prefix, date);
            if may_be_pending {
                let dir_prefix = format!("{key}/");
                let waiting = pending
                    .iter()
                    .filter(|k| k.starts_with(&dir_prefix))
                    .count();
                if waiting > 0 {
                    report.raw_kept_pending += waiting;
                    continue;
                }
            }
            remove_partition(data_dir, &dir)?;
            report.partitions.push(key);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn touch(root: &Path, key: &str) {
        let path = root.join(key);
        fs::create_dir_all(path.parent().unwrap()).unwrap();
        fs::write(path, b"x").unwrap();
    }

    fn exists(root: &Path, key: &str) -> bool {
        root.join(key).exists()
    }

    #[test]
    fn partitions_older_than_their_age_go_and_pending_raw_stays() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for key in [
            "raw/dt=2026-01-01/1-2.ndjson",
            "raw/dt=2026-01-02/3-4.ndjson",
            "raw/dt=2026-11-20/5-6.ndjson",
            "errors/processing-failed/dt=2026-01-01/1-2.ndjson",
            "curated/hits/dt=2025-10-01/1-2.parquet",
            "curated/hits/dt=2025-10-02/c-1-9.parquet",
            "curated/hits/dt=2026-11-01/3-4.parquet",
            "curated/daily/dt=2025-10-01/daily.parquet",
            "curated/daily/dt=2026-11-01/daily.parquet",
        ] {
            touch(root, key);
        }
        let policy = RetentionPolicy {
            raw_days: Some(30),
            curated_hits_days: Some(400),
            daily_rollups_days: None,
        };
        // "Today" is whatever the caller's clock says.
        let today = Date::parse("2026-11-06").unwrap();
        let pending: HashSet<String> = ["raw/dt=2026-01-02/3-4.ndjson".to_owned()].into();
        let report = enforce(root, &policy, today, &pending).unwrap();
        assert_eq!(
            report.partitions,
            [
                "raw/dt=2026-01-01",
                "errors/processing-failed/dt=2026-01-01",
                "curated/hits/dt=2025-10-01",
            ]
        );
        assert_eq!(report.raw_kept_pending, 1);
        assert!(!exists(root, "raw/dt=2026-01-01"));
        assert!(
            exists(root, "raw/dt=2026-01-02/3-4.ndjson"),
            "curate still needs it"
        );
        assert!(exists(root, "raw/dt=2026-11-20/5-6.ndjson"));
        // 400 days before 2026-11-06 is 2025-10-02: that day is kept.
        assert!(exists(root, "curated/hits/dt=2025-10-02/c-1-9.parquet"));
        assert!(
            exists(root, "curated/daily/dt=2025-10-01/daily.parquet"),
            "kept forever"
        );
        // A later day moves the line; once curated, the raw object goes too.
        let later = enforce(root, &policy, today.add_days(1), &HashSet::new()).unwrap();
        assert_eq!(
            later.partitions,
            ["raw/dt=2026-01-02", "curated/hits/dt=2025-10-02"]
        );
        assert!(!exists(root, ".retention/curated_hits_dt=2025-10-02"));
    }

    #[test]
    fn ages_below_what_the_daily_job_reads_are_refused() {
        let short = RetentionPolicy {
            curated_hits_days: Some(7),
            ..RetentionPolicy::default()
        };
        assert!(short.check().unwrap_err().contains("at least 8 days"));
        assert!(RetentionPolicy::default().check().is_ok());
    }
}
