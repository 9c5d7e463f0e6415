//! The storage key layout shared by both deployments (SPEC 5, 6, 7, 13): the
//! S3 buckets and the local data directory use the same keys, built only here.
//! So are the names the local deployment gives its objects, which carry the
//! log range they hold, and the one parser of those names ([`log_range`]).

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

/// The name of the local raw objects (and rejected records) of the log
/// range `[start, end)`: `<start>-<end>.ndjson`, 20 digits each, so a batch
/// redone after a crash gets the same names.
pub fn raw_object_name(start: u64, end: u64) -> String {
    format!("{start:020}-{end:020}.ndjson")
}

/// The name of a local curated file merged from files of the log range
/// `[start, end)`: `c-<start>-<end>.parquet`.
pub fn merged_hits_name(start: u64, end: u64) -> String {
    format!("c-{start:020}-{end:020}.parquet")
}

/// The name of a local raw object merged from raw objects of the log range
/// `[start, end)`: `c-<start>-<end>.ndjson`.
pub fn merged_raw_name(start: u64, end: u64) -> String {
    format!("c-{start:020}-{end:020}.ndjson")
}

/// The log range a local object's name (or key) carries: raw
/// `<start>-<end>.ndjson`, curated `<start>-<end>.parquet`, merged
/// `c-<start>-<end>.parquet`. `None` for any other name (`daily.parquet`).
pub fn log_range(name: &str) -> Option<(u64, u64)> {
    let name = name.rsplit('/').next().unwrap_or(name);
    let stem = name
        .strip_suffix(".parquet")
        .or_else(|| name.strip_suffix(".ndjson"))?;
    let stem = stem.strip_prefix("c-").unwrap_or(stem);
    let (start, end) = stem.split_once('-')?;
    Some((start.parse().ok()?, end.parse().ok()?))
}

/// `<prefix>dt=D`, one date partition under `prefix` (e.g.
/// `curated/hits/dt=2025-01-01`), without the trailing `/`.
pub fn date_partition(prefix: &str, dt: Date) -> String {
    format!("{prefix}dt={dt}")
}

/// The date a partition's directory name `dt=YYYY-MM-DD` stands for.
pub fn partition_date(dir_name: &str) -> Option<Date> {
    Date::parse(dir_name.strip_prefix("dt=")?)
}

/// `curated/hits/dt=D/`: every curated hits object of one date.
pub fn curated_hits_prefix(dt: Date) -> String {
    format!("{CURATED_HITS_PREFIX}dt={dt}/")
}

/// `curated/hits/dt=D/<name>`.
pub fn curated_hits_file_key(dt: Date, name: &str) -> String {
    format!("{}{name}", curated_hits_prefix(dt))
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

/// Every visitor's sums over the window applied last (`core::daily::WindowFileMeta`):
/// the next day's run starts from it. Parquet with the rollup's columns,
/// hidden from readers of the rollups by its `_`.
pub const DAILY_WINDOW_KEY: &str = "curated/daily/_window.parquet";

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
        assert!(DAILY_WINDOW_KEY.starts_with(CURATED_DAILY_PREFIX));
        assert_eq!(
            processing_failed_key(dt, "x.ndjson"),
            "errors/processing-failed/dt=2026-11-24/x.ndjson"
        );
        assert_eq!(
            curated_hits_file_key(dt, "c-1-2.parquet"),
            "curated/hits/dt=2026-11-24/c-1-2.parquet"
        );
        assert_eq!(
            date_partition(CURATED_HITS_PREFIX, dt),
            "curated/hits/dt=2026-11-24"
        );
        assert_eq!(partition_date("dt=2026-11-24"), Some(dt));
        assert_eq!(partition_date("2026-11-24"), None);
    }

    #[test]
    fn names_carry_their_log_range() {
        assert_eq!(
            raw_object_name(10, 20),
            "00000000000000000010-00000000000000000020.ndjson"
        );
        assert_eq!(
            merged_hits_name(10, 90),
            "c-00000000000000000010-00000000000000000090.parquet"
        );
        assert_eq!(
            log_range("00000000000000000010-00000000000000000020.parquet"),
            Some((10, 20))
        );
        assert_eq!(
            log_range("c-00000000000000000010-00000000000000000090.parquet"),
            Some((10, 90))
        );
        assert_eq!(
            log_range("00000000000000000010-00000000000000000020.ndjson"),
            Some((10, 20))
        );
        assert_eq!(
            log_range(&raw_key(Date::from_days(0), &raw_object_name(3, 4))),
            Some((3, 4))
        );
        assert_eq!(log_range("other.parquet"), None);
        assert_eq!(log_range("daily.parquet"), None);
    }
}
