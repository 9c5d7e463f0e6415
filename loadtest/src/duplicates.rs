//! The duplicate mix (SPEC 15): every hit carries a producer `hitid`, a
//! share of ingest requests resend an earlier accepted body verbatim (as a
//! producer does after a timeout), and after the run the profiles of a
//! sample of visitors must count each distinct hit exactly once.
//!
//! Visitors get ids unique to the run, so earlier runs against the same
//! server cannot blur the count.

use std::collections::HashMap;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::{LoadTestError, Target};

/// Accepted bodies kept for resending.
const RECENT_BODIES: usize = 1024;

/// One hit as sent: visitor and gender.
type SentHit = (String, char);

#[derive(Default)]
struct State {
    /// Distinct hits accepted per visitor: (M, F).
    distinct: HashMap<String, (u64, u64)>,
    /// Accepted bodies (a ring), with their hit count.
    recent: Vec<Arc<(String, usize)>>,
    next_slot: usize,
    resent_hits: u64,
}

/// What the run sent, shared by every ingest user.
pub struct Ledger {
    run: u32,
    next_hitid: AtomicU64,
    state: Mutex<State>,
}

impl Ledger {
    pub fn new() -> Ledger {
        Ledger {
            run: fastrand::u32(..),
            next_hitid: AtomicU64::new(0),
            state: Mutex::new(State::default()),
        }
    }

    pub fn visitor_id(&self, index: u64) -> String {
        format!("loadtest-d{:08x}-{index}", self.run)
    }

    /// A new body of hits for `visitors`, each with a new producer hitid.
    pub fn new_body(&self, visitors: impl IntoIterator<Item = String>) -> (String, Vec<SentHit>) {
        let mut body = String::from("[");
        let mut hits = Vec::new();
        for (position, clientid) in visitors.into_iter().enumerate() {
            let gender = if fastrand::bool() { 'M' } else { 'F' };
            let hitid = self.next_hitid.fetch_add(1, Ordering::Relaxed);
            if position > 0 {
                body.push(',');
            }
            let _ = write!(
                body,
                r#"{{"clientid":"{clientid}","pageGender":"{gender}","hitid":"lt-{:08x}-{hitid}"}}"#,
                self.run
            );
            hits.push((clientid, gender));
        }
        body.push(']');
        (body, hits)
    }

    /// An accepted body to send again, if there is one.
    pub fn body_to_resend(&self) -> Option<Arc<(String, usize)>> {
        let state = self.state.lock().expect("ledger lock");
        let len = state.recent.len();
        (len > 0).then(|| Arc::clone(&state.recent[fastrand::usize(..len)]))
    }

    /// A new body got its `202`: its hits count, and it may be resent.
    pub fn accepted(&self, body: String, hits: Vec<SentHit>) {
        let mut state = self.state.lock().expect("ledger lock");
        let n = hits.len();
        for (clientid, gender) in hits {
            let counts = state.distinct.entry(clientid).or_default();
            match gender {
                'M' => counts.0 += 1,
                _ => counts.1 += 1,
            }
        }
        let entry = Arc::new((body, n));
        if state.recent.len() < RECENT_BODIES {
            state.recent.push(entry);
        } else {
            let slot = state.next_slot;
            state.recent[slot] = entry;
            state.next_slot = (slot + 1) % RECENT_BODIES;
        }
    }

    /// A resent body got its `202`.
    pub fn resent(&self, hits: usize) {
        self.state.lock().expect("ledger lock").resent_hits += hits as u64;
    }
}

impl Default for Ledger {
    fn default() -> Self {
        Ledger::new()
    }
}

/// A visitor whose profile miscounts: (clientid, its distinct hits (M, F),
/// what the profile counts, if it exists).
pub type Miscount = (String, (u64, u64), Option<(u64, u64)>);

/// What the check after the run found.
#[derive(Debug, Default)]
pub struct DuplicateReport {
    pub distinct_hits: u64,
    pub resent_hits: u64,
    pub visitors_checked: usize,
    /// Visitors whose profile does not count their distinct hits exactly once.
    pub mismatched: Vec<Miscount>,
}

/// Makes the run visible (the local server's flush barrier; elsewhere,
/// waiting up to `settle`), then compares up to `sample` visitors' profiles
/// with the distinct hits accepted for them.
pub async fn check(
    target: &Target,
    ledger: &Ledger,
    sample: usize,
    settle: Duration,
) -> Result<DuplicateReport, LoadTestError> {
    // A 404 (a deployment without the local admin route) just means: wait.
    let _ = target.post("/admin/flush").send().await;
    let (expected, resent_hits) = {
        let state = ledger.state.lock().expect("ledger lock");
        let mut all: Vec<(String, (u64, u64))> = state
            .distinct
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect();
        all.sort();
        fastrand::shuffle(&mut all);
        all.truncate(sample);
        (all, state.resent_hits)
    };
    let mut report = DuplicateReport {
        distinct_hits: ledger
            .state
            .lock()
            .expect("ledger lock")
            .distinct
            .values()
            .map(|(m, f)| m + f)
            .sum(),
        resent_hits,
        visitors_checked: expected.len(),
        mismatched: Vec::new(),
    };
    let deadline = Instant::now() + settle;
    for (clientid, want) in expected {
        loop {
            let found = profile_counts(target, &clientid).await?;
            if found == Some(want) {
                break;
            }
            // Too many is final; too few may still be on its way.
            let over = found.is_some_and(|(m, f)| m > want.0 || f > want.1);
            if over || Instant::now() >= deadline {
                report.mismatched.push((clientid, want, found));
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(report)
}

async fn profile_counts(
    target: &Target,
    clientid: &str,
) -> Result<Option<(u64, u64)>, LoadTestError> {
    let response = target.get(&format!("/gender/{clientid}")).send().await?;
    if response.status() == reqwest::StatusCode::NOT_FOUND {
        return Ok(None);
    }
    let body: serde_json::Value = response.json().await?;
    let count = |g: &str| body["hits"][g].as_u64().unwrap_or(0);
    Ok(Some((count("M"), count("F"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies_carry_valid_distinct_hitids_and_resends_do_not_count() {
        let ledger = Ledger::new();
        let (body, hits) = ledger.new_body([ledger.visitor_id(1), ledger.visitor_id(1)]);
        let parsed: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        let ids: Vec<&str> = parsed
            .iter()
            .map(|h| h["hitid"].as_str().unwrap())
            .collect();
        assert_ne!(ids[0], ids[1]);
        for id in ids {
            assert!(
                id.len() <= 64
                    && id
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || "._:-".contains(c))
            );
        }
        assert!(ledger.body_to_resend().is_none());
        ledger.accepted(body.clone(), hits);
        let again = ledger.body_to_resend().unwrap();
        assert_eq!((again.0.as_str(), again.1), (body.as_str(), 2));
        ledger.resent(2);
        let state = ledger.state.lock().unwrap();
        let (m, f) = state.distinct[&ledger.visitor_id(1)];
        assert_eq!(m + f, 2, "the resend added nothing");
        assert_eq!(state.resent_hits, 2);
    }
}
