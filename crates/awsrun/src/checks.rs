//! What the run checks, each returning the problems found (empty: holds),
//! worded so that a failing run says what broke and for whom.

use crate::api::Api;
use serde_json::Value;
use std::collections::BTreeMap;

/// The answer of `GET /gender` without `updated_at` (when each deployment
/// wrote the profile is its own business).
pub fn comparable(answer: &Value) -> Value {
    let mut answer = answer.clone();
    if let Some(object) = answer.as_object_mut() {
        object.remove("updated_at");
    }
    answer
}

/// `(m, f)` of a `GET /gender` answer.
pub fn counts(answer: &Value) -> (u64, u64) {
    (
        answer["hits"]["M"].as_u64().unwrap_or(0),
        answer["hits"]["F"].as_u64().unwrap_or(0),
    )
}

/// (a) Every visitor's counters are its hits answered 202, each
/// `(clientid, hitid)` once.
pub async fn counted_once(api: &Api, expected: &BTreeMap<String, (u64, u64)>) -> Vec<String> {
    let mut problems = Vec::new();
    for (clientid, want) in expected {
        let (status, answer) = api.gender(clientid).await;
        if status != 200 {
            problems.push(format!(
                "{clientid}: expected counters {want:?}, GET /gender answered {status} {answer}"
            ));
            continue;
        }
        let got = counts(&answer);
        if got != *want {
            problems.push(format!(
                "{clientid}: counted (M, F) = {got:?}, but the hits answered 202 are {want:?} \
                 ({})",
                if got.0 + got.1 > want.0 + want.1 {
                    "a hit counted twice"
                } else {
                    "a hit lost"
                }
            ));
        }
    }
    problems
}

/// (c) The AWS-shaped stack answers `GET /gender` as the local deployment
/// does, visitor by visitor (status and body, `updated_at` aside).
pub async fn same_answers<'a>(
    aws: &Api,
    local: &Api,
    visitors: impl IntoIterator<Item = &'a String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    for clientid in visitors {
        let (aws_status, aws_answer) = aws.gender(clientid).await;
        let (local_status, local_answer) = local.gender(clientid).await;
        if aws_status != local_status || comparable(&aws_answer) != comparable(&local_answer) {
            problems.push(format!(
                "{clientid}: AWS answered {aws_status} {}, local answered {local_status} {}",
                comparable(&aws_answer),
                comparable(&local_answer)
            ));
        }
    }
    problems
}

/// Fails the run with every problem of a check, named.
pub fn require(check: &str, problems: &[String]) {
    if problems.is_empty() {
        println!("check {check}: ok");
        return;
    }
    let shown: Vec<&String> = problems.iter().take(20).collect();
    panic!(
        "check {check} FAILED ({} problems):\n  {}",
        problems.len(),
        shown
            .iter()
            .map(|p| p.as_str())
            .collect::<Vec<_>>()
            .join("\n  ")
    );
}

/// (b) The curated hits hold each `(clientid, hitid)` once, and per
/// visitor as many rows of each gender as it was counted.
pub fn one_row_per_hit(
    rows: &[(crate::archive::Row, String)],
    expected: &BTreeMap<String, (u64, u64)>,
) -> Vec<String> {
    let mut problems = Vec::new();
    let mut objects: BTreeMap<(&str, &str), Vec<&str>> = BTreeMap::new();
    for (row, key) in rows {
        objects
            .entry((row.clientid.as_str(), row.hitid.as_str()))
            .or_default()
            .push(key.as_str());
    }
    for ((clientid, hitid), keys) in &objects {
        if keys.len() > 1 {
            problems.push(format!(
                "{clientid} hit {hitid}: {} rows in the curated Parquet ({})",
                keys.len(),
                keys.join(", ")
            ));
        }
    }
    let archived = crate::archive::rows_per_visitor(rows);
    for (clientid, want) in expected {
        let got = archived.get(clientid).copied().unwrap_or_default();
        if got != *want {
            problems.push(format!(
                "{clientid}: the curated Parquet holds (M, F) = {got:?} rows, but {want:?} hits \
                 were counted"
            ));
        }
    }
    for clientid in archived.keys() {
        if !expected.contains_key(clientid) {
            problems.push(format!(
                "{clientid}: rows in the curated Parquet, but never counted"
            ));
        }
    }
    problems
}

/// Of the first generated visitors, the one in the most raw objects, and
/// those keys.
pub async fn most_archived(
    s3: &aws_sdk_s3::Client,
    expected: &BTreeMap<String, (u64, u64)>,
) -> (String, Vec<String>) {
    let bucket = crate::stack::names::RAW_BUCKET;
    let mut holding: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for key in crate::archive::list(s3, bucket, "raw/").await {
        let text = String::from_utf8(crate::archive::get(s3, bucket, &key).await)
            .expect("raw objects are NDJSON");
        for clientid in expected
            .keys()
            .filter(|id| id.starts_with("visitor-"))
            .take(20)
        {
            if text.contains(&format!("\"clientid\":\"{clientid}\"")) {
                holding.entry(clientid).or_default().push(key.clone());
            }
        }
    }
    let (clientid, keys) = holding
        .into_iter()
        .max_by_key(|(_, keys)| keys.len())
        .expect("a visitor in the raw objects");
    (clientid.to_owned(), keys)
}

/// `DELETE /visitors/{clientid}`: the erasure id.
pub async fn erase(api: &Api, clientid: &str) -> String {
    let (status, answer) = api.delete(&format!("/visitors/{clientid}")).await;
    assert_eq!(
        status, 202,
        "{}: DELETE /visitors/{clientid}: {answer}",
        api.base
    );
    answer["erasure_id"]
        .as_str()
        .unwrap_or_else(|| panic!("an erasure id in {answer}"))
        .to_owned()
}

pub async fn erasure_complete(api: &Api, id: &str) -> bool {
    let (status, answer) = api.get(&format!("/erasures/{id}")).await;
    assert_eq!(status, 200, "{}: GET /erasures/{id}: {answer}", api.base);
    answer["status"] == "complete"
}

/// (d) The erased visitor: no curated row, `404` from both deployments.
pub async fn erased(
    aws: &Api,
    local: &Api,
    clientid: &str,
    rows: &[(crate::archive::Row, String)],
) -> Vec<String> {
    let mut problems: Vec<String> = rows
        .iter()
        .filter(|(row, _)| row.clientid == clientid)
        .map(|(row, key)| format!("{clientid}: erased, but hit {} is back in {key}", row.hitid))
        .collect();
    for (name, api) in [("AWS", aws), ("local", local)] {
        let (status, answer) = api.gender(clientid).await;
        if status != 404 {
            problems.push(format!(
                "{clientid}: erased, but {name} answers GET /gender with {status} {answer}"
            ));
        }
    }
    problems
}
