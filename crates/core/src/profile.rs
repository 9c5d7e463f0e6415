//! A visitor's stored profile and the gender rule of SPEC 8.

use crate::{Gender, VisitorDelta, WindowSums};

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Profile {
    pub clientid: String,
    pub m: u64,
    pub f: u64,
    pub last_gender: Gender,
    pub last_seen_ms: i64,
    /// Sums over the last daily window; `None` when the visitor had no hits in it.
    pub window: Option<WindowSums>,
    pub updated_at_ms: i64,
}

/// The three votes of SPEC 8.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Signals {
    pub last: Gender,
    pub lifetime: Gender,
    pub last_7_days: Option<Gender>,
}

impl Signals {
    /// Majority of `last`, `lifetime` and `last_7_days` (or `lifetime` standing in).
    pub fn gender(&self) -> Gender {
        Gender::majority(
            self.last,
            self.lifetime,
            self.last_7_days.unwrap_or(self.lifetime),
        )
    }
}

impl Profile {
    pub fn from_delta(delta: &VisitorDelta, now_ms: i64) -> Profile {
        Profile {
            clientid: delta.clientid.clone(),
            m: delta.m,
            f: delta.f,
            last_gender: delta.last_gender,
            last_seen_ms: delta.last_seen_ms,
            window: None,
            updated_at_ms: now_ms,
        }
    }

    /// Adds one object's delta. `last_*` is replaced only by a later-or-equal
    /// event time, so applying objects in arrival order gives "processed last".
    pub fn apply(&mut self, delta: &VisitorDelta, now_ms: i64) {
        self.m += delta.m;
        self.f += delta.f;
        if delta.last_seen_ms >= self.last_seen_ms {
            self.last_seen_ms = delta.last_seen_ms;
            self.last_gender = delta.last_gender;
        }
        self.updated_at_ms = now_ms;
    }

    /// The signals are derived on read, never stored, so they cannot go stale
    /// when `last_gender` changes after a daily run (the 7-day tie-break uses it).
    pub fn signals(&self) -> Signals {
        let last = self.last_gender;
        Signals {
            last,
            lifetime: Gender::from_counts(self.m, self.f, last),
            last_7_days: self.window.map(|w| Gender::from_counts(w.m, w.f, last)),
        }
    }

    pub fn gender(&self) -> Gender {
        self.signals().gender()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Date;
    use Gender::{F, M};

    fn profile(m: u64, f: u64, last: Gender, window: Option<(u64, u64)>) -> Profile {
        Profile {
            clientid: "v".into(),
            m,
            f,
            last_gender: last,
            last_seen_ms: 100,
            window: window.map(|(m, f)| WindowSums {
                m,
                f,
                date: Date::from_days(0),
            }),
            updated_at_ms: 0,
        }
    }

    fn delta(m: u64, f: u64, last: Gender, at: i64) -> VisitorDelta {
        VisitorDelta {
            clientid: "v".into(),
            m,
            f,
            last_gender: last,
            last_seen_ms: at,
        }
    }

    #[test]
    fn lifetime_tie_goes_to_last_not_to_f() {
        assert_eq!(profile(2, 2, M, None).signals().lifetime, M);
        assert_eq!(profile(2, 2, F, None).signals().lifetime, F);
        assert_eq!(profile(3, 1, F, None).signals().lifetime, M);
    }

    #[test]
    fn window_tie_uses_overall_last_even_outside_the_window() {
        let p = profile(0, 9, M, Some((4, 4)));
        assert_eq!(p.signals().last_7_days, Some(M));
        // lifetime F, last M, 7-day tie -> M: majority M.
        assert_eq!(p.gender(), M);
    }

    #[test]
    fn three_vote_majority() {
        // last F, lifetime M, 7 days M -> M
        assert_eq!(profile(5, 1, F, Some((3, 0))).gender(), M);
        // last F, lifetime M, 7 days F -> F
        assert_eq!(profile(5, 1, F, Some((0, 3))).gender(), F);
        // last M, lifetime F, 7 days M -> M
        assert_eq!(profile(1, 5, M, Some((2, 1))).gender(), M);
        // all agree
        assert_eq!(profile(0, 5, F, Some((0, 1))).gender(), F);
    }

    #[test]
    fn without_window_lifetime_takes_the_third_vote() {
        let p = profile(5, 1, F, None);
        assert_eq!(p.signals().last_7_days, None);
        assert_eq!(p.gender(), M, "last F is outvoted by lifetime M twice");
    }

    #[test]
    fn out_of_order_delta_adds_counts_but_keeps_last() {
        let mut p = profile(1, 0, M, None);
        p.apply(&delta(0, 2, F, 50), 7);
        assert_eq!(
            (p.m, p.f, p.last_gender, p.last_seen_ms, p.updated_at_ms),
            (1, 2, M, 100, 7)
        );
    }

    #[test]
    fn equal_time_delta_processed_later_replaces_last() {
        let mut p = profile(1, 0, M, None);
        p.apply(&delta(0, 1, F, 100), 7);
        assert_eq!(p.last_gender, F);
        p.apply(&delta(1, 0, M, 101), 8);
        assert_eq!((p.last_gender, p.last_seen_ms), (M, 101));
    }
}
