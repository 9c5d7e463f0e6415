use serde::{Deserialize, Serialize};
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Gender {
    M,
    F,
}

impl Gender {
    /// Case-insensitive parse of `M`/`F` (SPEC 2).
    pub fn parse(s: &str) -> Option<Gender> {
        match s.as_bytes() {
            [b'M' | b'm'] => Some(Gender::M),
            [b'F' | b'f'] => Some(Gender::F),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Gender::M => "M",
            Gender::F => "F",
        }
    }

    /// SPEC 8 comparison: the larger count wins, a tie goes to `tie_break`
    /// (the visitor's `last` signal).
    pub fn from_counts(m: u64, f: u64, tie_break: Gender) -> Gender {
        match m.cmp(&f) {
            std::cmp::Ordering::Greater => Gender::M,
            std::cmp::Ordering::Less => Gender::F,
            std::cmp::Ordering::Equal => tie_break,
        }
    }

    /// Majority of three votes; with two values three votes always have one.
    pub fn majority(a: Gender, b: Gender, c: Gender) -> Gender {
        if a == b || a == c { a } else { b }
    }
}

impl fmt::Display for Gender {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::Gender::{self, F, M};

    #[test]
    fn parse_is_case_insensitive_and_strict() {
        assert_eq!(Gender::parse("m"), Some(M));
        assert_eq!(Gender::parse("F"), Some(F));
        for bad in ["", "MF", "male", "x", " M"] {
            assert_eq!(Gender::parse(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn counts_decide_and_ties_go_to_last_not_to_f() {
        assert_eq!(Gender::from_counts(3, 2, F), M);
        assert_eq!(Gender::from_counts(2, 3, M), F);
        assert_eq!(Gender::from_counts(2, 2, M), M);
        assert_eq!(Gender::from_counts(2, 2, F), F);
        assert_eq!(Gender::from_counts(0, 0, M), M);
    }

    #[test]
    fn majority_of_three_votes() {
        for (a, b, c, want) in [
            (M, M, M, M),
            (M, M, F, M),
            (M, F, M, M),
            (F, M, M, M),
            (F, F, M, F),
            (F, M, F, F),
            (M, F, F, F),
            (F, F, F, F),
        ] {
            assert_eq!(Gender::majority(a, b, c), want, "{a} {b} {c}");
        }
    }
}
