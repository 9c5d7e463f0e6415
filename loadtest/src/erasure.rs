//! The erasure option (SPEC 17): one user that every `--erase-every-secs`
//! sends `DELETE /visitors/{id}` for a visitor of the random ingest pool,
//! then polls `GET /erasures/{id}` until it is `complete`.
//!
//! Goose waits for a user's current transaction before it ends a run, so the
//! user never blocks for long: each transaction is one step of [`Eraser`]
//! (a short wait, one `DELETE` or one poll), and the state lives in the
//! user's session data between steps. What happened is gathered in an
//! [`ErasureLog`] shared with the end of the run.

use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Pause between two polls of one erasure (the resolution of the time to complete).
pub const POLL_EVERY: Duration = Duration::from_millis(100);
/// The longest a step waits before it returns to Goose.
const LONGEST_WAIT: Duration = Duration::from_millis(250);

/// What the eraser does next.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Wait this long, then ask again.
    Wait(Duration),
    /// Send `DELETE /visitors/{id}` now.
    Request,
    /// Wait this long, then send `GET /erasures/{id}` for the erasure in flight.
    Poll(Duration),
    /// The erasure in flight is past the bound: give it up.
    GiveUp,
}

/// The eraser's state: when the next erasure is due, and the one in flight.
#[derive(Clone, Debug)]
pub struct Eraser {
    every: Duration,
    bound: Duration,
    next_due: Instant,
    in_flight: Option<InFlight>,
}

/// An erasure answered `202` and not yet seen complete.
#[derive(Clone, Debug)]
pub struct InFlight {
    pub id: String,
    pub accepted: Instant,
}

impl Eraser {
    /// The first erasure is due `every` after `start`.
    pub fn new(every: Duration, bound: Duration, start: Instant) -> Eraser {
        Eraser {
            every,
            bound,
            next_due: start + every,
            in_flight: None,
        }
    }

    pub fn next_step(&self, now: Instant) -> Step {
        match &self.in_flight {
            Some(erasure) if now.duration_since(erasure.accepted) > self.bound => Step::GiveUp,
            Some(_) => Step::Poll(POLL_EVERY),
            None if now >= self.next_due => Step::Request,
            None => Step::Wait((self.next_due - now).min(LONGEST_WAIT)),
        }
    }

    pub fn in_flight(&self) -> Option<&InFlight> {
        self.in_flight.as_ref()
    }

    /// The `DELETE` was sent (whatever its answer): the next one is due one
    /// period after this one was, or at once if that is already past.
    pub fn requested(&mut self, now: Instant, accepted_id: Option<String>) {
        self.next_due = (self.next_due + self.every).max(now);
        self.in_flight = accepted_id.map(|id| InFlight { id, accepted: now });
    }

    /// The erasure in flight is complete or given up.
    pub fn finished(&mut self) -> Option<InFlight> {
        self.in_flight.take()
    }
}

/// Every erasure of the run, shared by the eraser and the summary.
#[derive(Default)]
pub struct ErasureLog {
    state: Mutex<LogState>,
}

#[derive(Default)]
struct LogState {
    requested: usize,
    refused: usize,
    completed: Vec<Duration>,
    given_up: usize,
    in_flight: Option<Instant>,
}

impl ErasureLog {
    fn state(&self) -> std::sync::MutexGuard<'_, LogState> {
        self.state.lock().expect("erasure log lock")
    }

    /// A `DELETE` was sent; `accepted` when it got a valid `202`.
    pub fn requested(&self, accepted: Option<Instant>) {
        let mut state = self.state();
        state.requested += 1;
        match accepted {
            Some(at) => state.in_flight = Some(at),
            None => state.refused += 1,
        }
    }

    pub fn completed(&self, took: Duration) {
        let mut state = self.state();
        state.completed.push(took);
        state.in_flight = None;
    }

    pub fn given_up(&self) {
        let mut state = self.state();
        state.given_up += 1;
        state.in_flight = None;
    }

    /// The summary as of `now` (an erasure still in flight counts as given
    /// up when it is already older than `bound`).
    pub fn report(&self, now: Instant, bound: Duration) -> ErasureReport {
        let state = self.state();
        let mut completed = state.completed.clone();
        completed.sort_unstable();
        let pending_age = state.in_flight.map(|at| now.duration_since(at));
        let overdue = pending_age.is_some_and(|age| age > bound);
        ErasureReport {
            requested: state.requested,
            refused: state.refused,
            completed,
            never_completed: state.given_up + usize::from(overdue),
            still_pending: pending_age.filter(|_| !overdue),
        }
    }
}

/// What the erasures of a run came to.
#[derive(Debug, Default, PartialEq)]
pub struct ErasureReport {
    /// `DELETE` requests sent.
    pub requested: usize,
    /// Of those, the ones not answered with a valid `202`.
    pub refused: usize,
    /// Time from each `202` until a poll saw `complete`, sorted.
    pub completed: Vec<Duration>,
    /// Erasures not complete within the bound.
    pub never_completed: usize,
    /// An erasure still pending (within the bound) when the run ended: its age.
    pub still_pending: Option<Duration>,
}

impl ErasureReport {
    /// Min, median (lower middle) and max time to complete.
    pub fn spread(&self) -> Option<(Duration, Duration, Duration)> {
        let first = *self.completed.first()?;
        let median = self.completed[(self.completed.len() - 1) / 2];
        Some((first, median, *self.completed.last()?))
    }

    /// The reasons this report fails the run.
    pub fn failures(&self, bound: Duration) -> Vec<String> {
        let mut failures = Vec::new();
        if self.requested == 0 {
            failures.push(
                "erasure: none requested (is the run shorter than --erase-every-secs?)".to_owned(),
            );
        }
        if self.refused > 0 {
            failures.push(format!(
                "erasure: {} of {} DELETE requests not answered with a valid 202",
                self.refused, self.requested
            ));
        }
        if self.never_completed > 0 {
            failures.push(format!(
                "erasure: {} erasures not complete within {} s",
                self.never_completed,
                bound.as_secs()
            ));
        }
        failures
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EVERY: Duration = Duration::from_secs(10);
    const BOUND: Duration = Duration::from_secs(60);

    #[test]
    fn waits_in_short_steps_until_due_then_requests() {
        let start = Instant::now();
        let eraser = Eraser::new(EVERY, BOUND, start);
        assert_eq!(eraser.next_step(start), Step::Wait(LONGEST_WAIT));
        let almost = start + EVERY - Duration::from_millis(40);
        assert_eq!(
            eraser.next_step(almost),
            Step::Wait(Duration::from_millis(40))
        );
        assert_eq!(eraser.next_step(start + EVERY), Step::Request);
    }

    #[test]
    fn polls_while_in_flight_and_gives_up_past_the_bound() {
        let start = Instant::now();
        let mut eraser = Eraser::new(EVERY, BOUND, start);
        let sent = start + EVERY;
        eraser.requested(sent, Some("e1".into()));
        assert_eq!(eraser.in_flight().unwrap().id, "e1");
        assert_eq!(eraser.next_step(sent + BOUND), Step::Poll(POLL_EVERY));
        assert_eq!(
            eraser.next_step(sent + BOUND + Duration::from_millis(1)),
            Step::GiveUp
        );
        assert_eq!(eraser.finished().unwrap().id, "e1");
        // The next one was due one period after the first, long past: at once.
        assert_eq!(eraser.next_step(sent + BOUND), Step::Request);
    }

    #[test]
    fn keeps_the_period_and_skips_polling_a_refused_request() {
        let start = Instant::now();
        let mut eraser = Eraser::new(EVERY, BOUND, start);
        let sent = start + EVERY;
        eraser.requested(sent, None);
        assert!(eraser.in_flight().is_none());
        let later = sent + Duration::from_secs(3);
        assert_eq!(eraser.next_step(later), Step::Wait(LONGEST_WAIT));
        assert_eq!(eraser.next_step(start + 2 * EVERY), Step::Request);
    }

    #[test]
    fn report_spreads_and_fails() {
        let now = Instant::now();
        let log = ErasureLog::default();
        assert_eq!(log.report(now, BOUND).failures(BOUND).len(), 1, "none");
        for ms in [900, 300, 500] {
            log.requested(Some(now));
            log.completed(Duration::from_millis(ms));
        }
        let report = log.report(now, BOUND);
        assert_eq!(
            report.spread(),
            Some((
                Duration::from_millis(300),
                Duration::from_millis(500),
                Duration::from_millis(900)
            ))
        );
        assert!(report.failures(BOUND).is_empty());

        // One still in flight: fine within the bound, a failure past it.
        log.requested(Some(now));
        let within = log.report(now + Duration::from_secs(5), BOUND);
        assert_eq!(within.still_pending, Some(Duration::from_secs(5)));
        assert!(within.failures(BOUND).is_empty());
        let past = log.report(now + BOUND + Duration::from_secs(1), BOUND);
        assert_eq!((past.never_completed, past.still_pending), (1, None));
        assert_eq!(past.failures(BOUND).len(), 1);

        log.given_up();
        log.requested(None);
        let report = log.report(now, BOUND);
        assert_eq!((report.requested, report.refused), (5, 1));
        assert_eq!(report.never_completed, 1);
        assert_eq!(report.failures(BOUND).len(), 2);
    }

    #[test]
    fn median_of_an_even_count_is_the_lower_middle() {
        let report = ErasureReport {
            completed: [1, 2, 3, 4].map(Duration::from_secs).to_vec(),
            ..ErasureReport::default()
        };
        let (_, median, _) = report.spread().unwrap();
        assert_eq!(median, Duration::from_secs(2));
        assert_eq!(ErasureReport::default().spread(), None);
    }
}
