//! Athena, as far as erase needs it. moto accepts queries but does not
//! run them; it answers each new query with the next result set seeded
//! through `/moto-api/static/athena/query-results`. So erase's Athena
//! client is given this front: every request goes on to the fault proxy
//! unchanged, and a `StartQueryExecution` is first answered the way Athena
//! would: its query (erase's `paths_query`: the HMAC key, the visitors'
//! digests, the `dt` partitions) is run here over the curated Parquet in S3
//! (the Glue tables' data), and the `$path`s it selects are seeded as the
//! query's result before the query reaches moto.

use crate::stack::names;
use axum::body::Bytes;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use gender_erase::find::hmac_sha256;
use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

#[derive(Debug, Default, Clone)]
pub struct AthenaStats {
    pub queries: u64,
    pub partitions_read: u64,
    pub paths_found: u64,
}

/// The front's endpoint and what it answered.
pub struct AthenaFront {
    pub endpoint: String,
    pub stats: Arc<Mutex<AthenaStats>>,
}

impl AthenaFront {
    /// Forwards to `upstream` (the fault proxy), answers queries from the
    /// curated bucket read with `s3`, seeds moto at `moto_endpoint`.
    pub async fn start(upstream: &str, moto_endpoint: &str, s3: aws_sdk_s3::Client) -> AthenaFront {
        let stats = Arc::new(Mutex::new(AthenaStats::default()));
        let client = reqwest::Client::new();
        let (upstream, moto) = (upstream.to_owned(), moto_endpoint.to_owned());
        let counted = stats.clone();
        let app = axum::Router::new().fallback(
            move |method: Method, uri: Uri, headers: HeaderMap, body: Bytes| {
                let (client, upstream, moto, s3, stats) = (
                    client.clone(),
                    upstream.clone(),
                    moto.clone(),
                    s3.clone(),
                    counted.clone(),
                );
                async move {
                    let target = headers
                        .get("x-amz-target")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or("");
                    if target.ends_with("StartQueryExecution") {
                        let request: serde_json::Value =
                            serde_json::from_slice(&body).unwrap_or_default();
                        let query = request["QueryString"].as_str().unwrap_or_default();
                        let paths = run_query(&s3, query, &stats).await;
                        seed(&client, &moto, &paths).await;
                    }
                    let mut forward = client.request(method, format!("{upstream}{uri}"));
                    for (name, value) in &headers {
                        if name != "host" && name != "content-length" {
                            forward = forward.header(name, value);
                        }
                    }
                    match forward.body(body).send().await {
                        Ok(answer) => {
                            let status = answer.status();
                            let mut headers = answer.headers().clone();
                            for hop in ["content-length", "transfer-encoding", "connection"] {
                                headers.remove(hop);
                            }
                            let body = answer.bytes().await.unwrap_or_default();
                            (status, headers, body)
                        }
                        Err(e) => (
                            StatusCode::BAD_GATEWAY,
                            HeaderMap::new(),
                            Bytes::from(e.to_string()),
                        ),
                    }
                }
            },
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a loopback port");
        let endpoint = format!("http://{}", listener.local_addr().expect("its address"));
        tokio::spawn(async move {
            axum::serve(listener, app)
                .await
                .expect("serve the Athena front");
        });
        AthenaFront { endpoint, stats }
    }
}

/// The hex bytes of every `X'...'` literal in `text`.
fn hex_literals(text: &str) -> Vec<Vec<u8>> {
    text.split("X'")
        .skip(1)
        .filter_map(|rest| rest.split('\'').next())
        .map(|hex| {
            (0..hex.len() / 2)
                .map(|i| u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap_or(0))
                .collect()
        })
        .collect()
}

/// What erase's query asks (`gender_erase::find::paths_query`).
#[derive(Debug, PartialEq, Eq)]
struct Query {
    key: [u8; 32],
    digests: BTreeSet<Vec<u8>>,
    /// The `dt` partitions; `None`: all.
    dates: Option<Vec<String>>,
}

fn parse_query(query: &str) -> Query {
    let (values, selects) = query
        .split_once("\nSELECT")
        .expect("erase's query: WITH gone (h) AS (VALUES ...) SELECT ...");
    let digests: BTreeSet<Vec<u8>> = hex_literals(values).into_iter().collect();
    let key: [u8; 32] = hex_literals(selects)
        .first()
        .and_then(|k| k.as_slice().try_into().ok())
        .expect("the query's HMAC key");
    let dates: Option<Vec<String>> = selects.split_once("dt IN (").map(|(_, rest)| {
        rest.split(')')
            .next()
            .unwrap_or_default()
            .split(',')
            .map(|d| d.trim().trim_matches('\'').to_owned())
            .collect()
    });
    Query {
        key,
        digests,
        dates,
    }
}

/// Erase's query run over the curated bucket: the `$path`s of the hits
/// objects and rollups, in the named `dt` partitions (all without a `dt`
/// filter), holding a clientid whose HMAC is among the digests.
async fn run_query(
    s3: &aws_sdk_s3::Client,
    query: &str,
    stats: &Mutex<AthenaStats>,
) -> Vec<String> {
    let Query {
        key,
        digests,
        dates,
    } = parse_query(query);
    let mut prefixes = Vec::new();
    for table_prefix in [
        gender_core::layout::CURATED_HITS_PREFIX,
        gender_core::layout::CURATED_DAILY_PREFIX,
    ] {
        match &dates {
            None => prefixes.push(table_prefix.to_owned()),
            Some(dates) => {
                for date in dates {
                    prefixes.push(format!("{table_prefix}dt={date}/"));
                }
            }
        }
    }
    let mut paths = Vec::new();
    for prefix in &prefixes {
        for key_name in crate::archive::list(s3, names::CURATED_BUCKET, prefix).await {
            if !key_name.ends_with(".parquet") {
                continue;
            }
            let bytes = crate::archive::get(s3, names::CURATED_BUCKET, &key_name).await;
            let clientids = crate::archive::clientids(bytes, &key_name);
            if clientids
                .iter()
                .any(|id| digests.contains(hmac_sha256(&key, id.as_bytes()).as_slice()))
            {
                paths.push(format!("s3://{}/{key_name}", names::CURATED_BUCKET));
            }
        }
    }
    let mut stats = stats.lock().unwrap();
    stats.queries += 1;
    stats.partitions_read += prefixes.len() as u64;
    stats.paths_found += paths.len() as u64;
    paths
}

/// Makes moto's next query answer `paths` (header row first, as a
/// SELECT's first page).
async fn seed(client: &reqwest::Client, moto: &str, paths: &[String]) {
    let mut rows = vec![serde_json::json!({"Data": [{"VarCharValue": "path"}]})];
    rows.extend(
        paths
            .iter()
            .map(|p| serde_json::json!({"Data": [{"VarCharValue": p}]})),
    );
    let body = serde_json::json!({"results": [{"rows": rows, "column_info": [
        {"Name": "path", "Label": "path", "Type": "varchar"}
    ]}]});
    let status = client
        .post(format!("{moto}/moto-api/static/athena/query-results"))
        .json(&body)
        .send()
        .await
        .expect("seed moto's Athena results")
        .status();
    assert_eq!(
        status.as_u16(),
        201,
        "moto refused the seeded Athena results"
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use gender_erase::find::paths_query;

    #[test]
    fn erase_queries_are_read_back_whole() {
        let key = [7u8; 32];
        let dates = [
            gender_core::Date::parse("2026-12-04").unwrap(),
            gender_core::Date::parse("2026-12-06").unwrap(),
        ];
        let query = paths_query("gs_run", ["visitor-1", "visitor-2"], &key, Some(&dates));
        let parsed = parse_query(&query);
        assert_eq!(parsed.key, key);
        let want: BTreeSet<Vec<u8>> = ["visitor-1", "visitor-2"]
            .iter()
            .map(|id| hmac_sha256(&key, id.as_bytes()).to_vec())
            .collect();
        assert_eq!(parsed.digests, want);
        assert_eq!(
            parsed.dates,
            Some(vec!["2026-12-04".to_owned(), "2026-12-06".to_owned()])
        );
        let all = parse_query(&paths_query("gs_run", ["visitor-1"], &key, None));
        assert_eq!(all.dates, None);
        assert_eq!(all.digests.len(), 1);
    }
}
