//! Which curated objects hold the visitors of a batch: one Athena query
//! over both Glue tables, instead of reading every curated object.
//!
//! The query must not carry the clientids: Athena keeps every query's text
//! in its history (45 days) for anyone with `athena:GetQueryExecution` in
//! the account. So each query draws a fresh random key and compares
//! `hmac_sha256(clientid, key)` with the HMACs of the batch's clientids;
//! the text then holds the key and opaque digests, which tell nothing about
//! a clientid nobody already suspects (and the key is used once).

use gender_core::layout::{CURATED_DAILY_PREFIX, CURATED_HITS_PREFIX};
use sha2::{Digest, Sha256};
use std::fmt::Write;

/// The most visitors one query names: 70 characters each (`X'<64 hex>', `)
/// keep the text far below Athena's 262,144-byte limit.
pub const MAX_VISITORS_PER_QUERY: usize = 1000;

/// HMAC-SHA256 (RFC 2104) with a key of at most one block (64 bytes).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    assert!(
        key.len() <= 64,
        "keys longer than a block are not used here"
    );
    let mut block = [0u8; 64];
    block[..key.len()].copy_from_slice(key);
    let pad = |byte: u8| block.map(|b| b ^ byte);
    let inner = Sha256::new()
        .chain_update(pad(0x36))
        .chain_update(message)
        .finalize();
    Sha256::new()
        .chain_update(pad(0x5c))
        .chain_update(inner)
        .finalize()
        .into()
}

fn hex_literal(out: &mut String, bytes: &[u8]) {
    out.push_str("X'");
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out.push('\'');
}

/// The query listing the curated hits objects and daily rollups (`$path`)
/// that hold a row of one of `clientids`, with `key` as the HMAC key.
/// `database` is the Glue database (Terraform makes it `[a-z0-9_]+`).
/// With `dates`, only those `dt` partitions are read: Athena bills the
/// clientid column of the partitions it scans, and the visitors' dates are
/// a few of the 400 kept (docs/DEPLOY.md, "Erasure").
pub fn paths_query<'a>(
    database: &str,
    clientids: impl IntoIterator<Item = &'a str>,
    key: &[u8; 32],
    dates: Option<&[gender_core::Date]>,
) -> String {
    let mut digests = String::new();
    for (i, id) in clientids.into_iter().enumerate() {
        if i > 0 {
            digests.push_str(", ");
        }
        hex_literal(&mut digests, &hmac_sha256(key, id.as_bytes()));
    }
    let mut key_literal = String::new();
    hex_literal(&mut key_literal, key);
    let partitions = match dates {
        None => String::new(),
        Some(dates) => {
            let list: Vec<String> = dates.iter().map(|d| format!("'{d}'")).collect();
            format!(" AND dt IN ({})", list.join(", "))
        }
    };
    let select = |table: &str| {
        format!(
            "SELECT DISTINCT \"$path\" AS path FROM \"{database}\".\"{table}\" \
             WHERE hmac_sha256(to_utf8(clientid), {key_literal}) IN (SELECT h FROM gone){partitions}"
        )
    };
    format!(
        "WITH gone (h) AS (VALUES {digests})\n{}\nUNION\n{}",
        select("hits"),
        select("daily")
    )
}

/// A curated object the query found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Found {
    /// `curated/hits/dt=D/<name>.parquet`
    Hits(String),
    /// `curated/daily/dt=D/daily.parquet`
    Rollup(String),
}

impl Found {
    pub fn key(&self) -> &str {
        match self {
            Found::Hits(key) | Found::Rollup(key) => key,
        }
    }
}

/// The key of an Athena `$path` (`s3://<bucket>/<key>`) in `bucket`, as a
/// hits object or a rollup; `None` for anything else (another bucket or
/// prefix: nothing this function may rewrite).
pub fn found_object(bucket: &str, path: &str) -> Option<Found> {
    let key = path
        .strip_prefix("s3://")?
        .strip_prefix(bucket)?
        .strip_prefix('/')?;
    if key.starts_with(CURATED_HITS_PREFIX) {
        Some(Found::Hits(key.to_owned()))
    } else if key.starts_with(CURATED_DAILY_PREFIX) {
        Some(Found::Rollup(key.to_owned()))
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_matches_rfc_4231() {
        // Test case 2.
        assert_eq!(
            hex(&hmac_sha256(b"Jefe", b"what do ya want for nothing?")),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
        // Test case 1: a 20-byte key of 0x0b.
        assert_eq!(
            hex(&hmac_sha256(&[0x0b; 20], b"Hi There")),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn the_query_names_no_clientid_and_covers_both_tables() {
        let key = [7u8; 32];
        let sql = paths_query("gender_dev", ["visitor-1", "visitor-2"], &key, None);
        assert!(!sql.contains("visitor"), "{sql}");
        assert!(
            sql.contains("\"gender_dev\".\"hits\"") && sql.contains("\"gender_dev\".\"daily\"")
        );
        assert!(sql.contains(&format!("X'{}'", hex(&hmac_sha256(&key, b"visitor-1")))));
        assert!(sql.contains(&format!("X'{}'", "07".repeat(32))));
        // The most visitors a query names still fits Athena's limit.
        let many: Vec<String> = (0..MAX_VISITORS_PER_QUERY)
            .map(|i| format!("v{i}"))
            .collect();
        let len = paths_query("gender_dev", many.iter().map(String::as_str), &key, None).len();
        assert!(len < 262_144 / 2, "{len}");
        // With a year of dates too.
        let year: Vec<gender_core::Date> = (0..400).map(gender_core::Date::from_days).collect();
        let len = paths_query(
            "gender_dev",
            many.iter().map(String::as_str),
            &key,
            Some(&year),
        )
        .len();
        assert!(len < 262_144 / 2, "{len}");
    }

    #[test]
    fn the_query_reads_only_the_partitions_of_the_visitors_dates() {
        let dates = [
            gender_core::Date::parse("2026-11-20").unwrap(),
            gender_core::Date::parse("2026-11-23").unwrap(),
        ];
        let sql = paths_query("gender_dev", ["v"], &[1; 32], Some(&dates));
        assert_eq!(
            sql.matches("AND dt IN ('2026-11-20', '2026-11-23')")
                .count(),
            2,
            "both tables: {sql}"
        );
    }

    #[test]
    fn paths_map_to_keys_of_the_curated_bucket_only() {
        let bucket = "gs-curated";
        assert_eq!(
            found_object(
                bucket,
                "s3://gs-curated/curated/hits/dt=2026-11-20/a.parquet"
            ),
            Some(Found::Hits("curated/hits/dt=2026-11-20/a.parquet".into()))
        );
        assert_eq!(
            found_object(
                bucket,
                "s3://gs-curated/curated/daily/dt=2026-11-20/daily.parquet"
            ),
            Some(Found::Rollup(
                "curated/daily/dt=2026-11-20/daily.parquet".into()
            ))
        );
        assert_eq!(
            found_object(bucket, "s3://gs-curated-2/curated/hits/x"),
            None
        );
        assert_eq!(
            found_object(bucket, "s3://gs-curated/raw/dt=2026-11-20/x"),
            None
        );
        assert_eq!(found_object(bucket, "path"), None);
    }
}
