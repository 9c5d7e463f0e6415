//! The storage key layout shared by both deployments (SPEC 5, 6, 7, 13): the
//! S3 buckets and the local data directory use the same keys, built only here.

use crate::Date;

/// Where delivery writes raw NDJSON objects.
pub const RAW_PREFIX: &str = "raw/";
/// Where curate writes one Parquet object per raw object and event date.
pub const CURATED_HITS_PREFIX: &str = "curated/hits/";
/// Where the daily job writes one rollup per date.
pub const CURATED_DAILY_PREFIX: &str = "curated/daily/";
/// The archive index of AWS curate (`gender_core::archive_index`): which
/// hits each recent raw object wrote, in the curated bucket beside the data.
pub const ARCHIVE_INDEX_KEY: &str = "dedup/index";
/// Records the transform rejected (Firehose's error output prefix).
pub const PROCESSING_FAILED_PREFIX: &str = "errors/processing-failed/";

/// `raw/dt=D/<name>`.
pub fn raw_key(dt: Date, name: &str) -> String {
    format!("{RAW_PREFIX}dt={dt}/{name}")
}

/// `curated/hits/dt=D/`: every curated hits object of one date.
pub fn curated_hits_prefix(dt: Date) -> String {
    format!("{CURATED_HITS_PREFIX}dt={dt}/")
}

/// The deterministic Parquet key for the hits of `raw_key` dated `dt`, so a
/// retry overwrites instead of duplicating: `curated/hits/dt=D/<raw stem>.parquet`.
pub fn curated_hits_key(raw_key: &str, dt: Date) -> String {
    let name = raw_key.rsplit('/').next().unwrap_or(raw_key);
    let stem = name.strip_suffix(".gz").unwrap_or(name);
    let stem = stem
        .strip_suffix(".ndjson")
        .or_else(|| stem.strip_suffix(".json"))
        .unwrap_or(stem);
    format!("{}{stem}.parquet", curated_hits_prefix(dt))
}

/// The date partition (`.../dt=D/...`) a key lies in.
pub fn date_of_key(key: &str) -> Option<Date> {
    let (_, rest) = key.split_once("dt=")?;
    Date::parse(rest.split('/').next()?)
}

/// `curated/daily/dt=D/daily.parquet`.
pub fn daily_rollup_key(dt: Date) -> String {
    format!("{CURATED_DAILY_PREFIX}dt={dt}/daily.parquet")
}

/// The daily job's record of what the profile store's window sums were
/// computed from, and how far an unfinished run got (SPEC 7): beside the
/// rollups, hidden from Parquet readers by its `_` (SPEC 13).
pub const DAILY_APPLIED_KEY: &str = "curated/daily/_applied.json";

/// `errors/processing-failed/dt=D/<name>`, dated by when the records failed.
pub fn processing_failed_key(failed_on: Date, name: &str) -> String {
    format!("{PROCESSING_FAILED_PREFIX}dt={failed_on}/{name}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_the_bucket_layout() {
        let dt = Date::from_ymd(2026, 11, 24).unwrap();
        assert_eq!(raw_key(dt, "a.ndjson"), "raw/dt=2026-11-24/a.ndjson");
        assert_eq!(
            curated_hits_key("raw/dt=2026-11-24/00000000000000000001.ndjson", dt),
            "curated/hits/dt=2026-11-24/00000000000000000001.parquet"
        );
        assert_eq!(
            curated_hits_key("raw/dt=2026-11-24/gs-1-2026-11-24-abc.gz", dt),
            "curated/hits/dt=2026-11-24/gs-1-2026-11-24-abc.parquet"
        );
        assert_eq!(
            daily_rollup_key(dt),
            "curated/daily/dt=2026-11-24/daily.parquet"
        );
        assert!(DAILY_APPLIED_KEY.starts_with(CURATED_DAILY_PREFIX));
        assert_eq!(
            processing_failed_key(dt, "x.ndjson"),
            "errors/processing-failed/dt=2026-11-24/x.ndjson"
        );
    }
}
