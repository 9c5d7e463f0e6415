//! Visitor ids and request bodies. Every id is made of the `clientid` alphabet
//! (SPEC 2), so bodies are formatted directly without JSON escaping.

use std::fmt::Write;

/// Seeded visitors; a fixed prefix so repeated runs reuse the same profiles.
pub fn known_id(index: u32) -> String {
    format!("loadtest-known-{index}")
}

pub fn visitor_id(index: u64) -> String {
    format!("loadtest-visitor-{index}")
}

/// A visitor of the random ingest pool to erase: never a known visitor, so the
/// lookups that expect `200` for those stay right.
pub fn erase_target(visitors: u64) -> String {
    visitor_id(fastrand::u64(..visitors.max(1)))
}

/// An id that is never ingested, so its lookup must answer 404.
pub fn unknown_id() -> String {
    format!("loadtest-unknown-{:016x}", fastrand::u64(..))
}

fn random_gender() -> char {
    if fastrand::bool() { 'M' } else { 'F' }
}

/// One hit object; no timestamp, so the server uses the arrival time and the
/// hit is always valid.
pub fn hit_json(clientid: &str) -> String {
    format!(
        r#"{{"clientid":"{clientid}","pageGender":"{}"}}"#,
        random_gender()
    )
}

/// A JSON array with one hit for each id.
pub fn batch_json<I, S>(clientids: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut body = String::from("[");
    for (position, clientid) in clientids.into_iter().enumerate() {
        if position > 0 {
            body.push(',');
        }
        let _ = write!(
            body,
            r#"{{"clientid":"{}","pageGender":"{}"}}"#,
            clientid.as_ref(),
            random_gender()
        );
    }
    body.push(']');
    body
}

/// True with the given chance in percent.
pub fn chance(percent: u8) -> bool {
    fastrand::u8(0..100) < percent
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_is_a_json_array_of_hits() {
        let body = batch_json(["a", "b"]);
        let hits: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        assert_eq!(hits.len(), 2);
        assert_eq!(hits[1]["clientid"], "b");
        assert!(matches!(hits[0]["pageGender"].as_str(), Some("M" | "F")));
    }

    #[test]
    fn ids_follow_the_clientid_rule() {
        for id in [known_id(7), visitor_id(u64::MAX), unknown_id()] {
            assert!(id.len() <= 64, "{id}");
            assert!(
                id.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
            );
        }
    }

    #[test]
    fn erase_targets_are_pool_visitors_never_known_ones() {
        let known: Vec<String> = (0..1000).map(known_id).collect();
        for _ in 0..1000 {
            let target = erase_target(100);
            assert!(target.starts_with("loadtest-visitor-"), "{target}");
            assert!(!known.contains(&target));
        }
        assert_eq!(erase_target(0), visitor_id(0));
    }

    #[test]
    fn chance_bounds() {
        assert!((0..1000).all(|_| !chance(0)));
        assert!((0..1000).all(|_| chance(100)));
    }
}
