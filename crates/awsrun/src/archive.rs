//! Reading the buckets back (straight from the emulator): listings, the
//! curated Parquet's rows, the raw objects' lines.

use std::collections::BTreeMap;

/// Every key under `prefix` of `bucket`.
pub async fn list(s3: &aws_sdk_s3::Client, bucket: &str, prefix: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let out = s3
            .list_objects_v2()
            .bucket(bucket)
            .prefix(prefix)
            .set_continuation_token(token.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("list s3://{bucket}/{prefix}: {e}"));
        keys.extend(
            out.contents()
                .iter()
                .filter_map(|o| o.key().map(str::to_owned)),
        );
        match out.next_continuation_token() {
            Some(next) if out.is_truncated() == Some(true) => token = Some(next.to_owned()),
            _ => return keys,
        }
    }
}

pub async fn get(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Vec<u8> {
    s3.get_object()
        .bucket(bucket)
        .key(key)
        .send()
        .await
        .unwrap_or_else(|e| panic!("get s3://{bucket}/{key}: {e}"))
        .body
        .collect()
        .await
        .unwrap_or_else(|e| panic!("read s3://{bucket}/{key}: {e}"))
        .into_bytes()
        .to_vec()
}

/// The clientid of every row of a curated hits object or rollup.
pub fn clientids(bytes: Vec<u8>, key: &str) -> Vec<String> {
    if key.starts_with(gender_core::layout::CURATED_DAILY_PREFIX) {
        gender_pipeline::codec::decode_daily(bytes, key)
            .unwrap_or_else(|e| panic!("{key} is not a rollup: {e}"))
            .into_iter()
            .map(|r| r.clientid)
            .collect()
    } else {
        gender_pipeline::codec::decode_hits(bytes, key)
            .unwrap_or_else(|e| panic!("{key} is not a curated hits object: {e}"))
            .into_iter()
            .map(|h| h.clientid.into_owned())
            .collect()
    }
}

/// A curated hits row's identity and gender.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Row {
    pub clientid: String,
    pub hitid: String,
    pub gender: String,
}

/// Every row of the curated hits, with the object it is in.
pub async fn curated_rows(s3: &aws_sdk_s3::Client, bucket: &str) -> Vec<(Row, String)> {
    let mut rows = Vec::new();
    for key in list(s3, bucket, gender_core::layout::CURATED_HITS_PREFIX).await {
        if !key.ends_with(".parquet") {
            continue;
        }
        let bytes = get(s3, bucket, &key).await;
        for hit in gender_pipeline::codec::decode_hits(bytes, &key)
            .unwrap_or_else(|e| panic!("{key} is not a curated hits object: {e}"))
        {
            rows.push((
                Row {
                    clientid: hit.clientid.into_owned(),
                    hitid: hit.hitid.map(|h| h.into_owned()).unwrap_or_default(),
                    gender: hit.gender.as_str().to_owned(),
                },
                key.clone(),
            ));
        }
    }
    rows
}

/// Per visitor, `(m, f)` rows of the curated hits.
pub fn rows_per_visitor(rows: &[(Row, String)]) -> BTreeMap<String, (u64, u64)> {
    let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
    for (row, _) in rows {
        let entry = out.entry(row.clientid.clone()).or_default();
        if row.gender == "M" {
            entry.0 += 1;
        } else {
            entry.1 += 1;
        }
    }
    out
}
