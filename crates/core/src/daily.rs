//! The daily job's window (SPEC 7).

use crate::{Date, Gender};
use serde::Serialize;
use std::collections::BTreeMap;

pub const WINDOW_DAYS: i32 = 7;

/// A visitor's hit sums over the window ending on `date`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WindowSums {
    pub m: u64,
    pub f: u64,
    pub date: Date,
}

/// The dates `D-6 ..= D`, oldest first.
pub fn window_dates(d: Date) -> Vec<Date> {
    (0..WINDOW_DAYS)
        .rev()
        .map(|back| d.add_days(-back))
        .collect()
}

/// The default date of a daily run: yesterday (UTC) relative to `now_ms`.
pub fn default_daily_date(now_ms: i64) -> Date {
    Date::of_millis(now_ms).add_days(-1)
}

/// One visitor's hits on one date: a row of `curated/daily/dt=.../daily.parquet`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DailyRow {
    pub clientid: String,
    pub m: i64,
    pub f: i64,
}

/// Folds per-date rollups into per-visitor window sums.
pub fn window_sums<'a>(
    rollups: impl IntoIterator<Item = &'a DailyRow>,
    date: Date,
) -> BTreeMap<String, WindowSums> {
    let mut sums: BTreeMap<String, WindowSums> = BTreeMap::new();
    for row in rollups {
        let entry = sums
            .entry(row.clientid.clone())
            .or_insert(WindowSums { m: 0, f: 0, date });
        entry.m += row.m as u64;
        entry.f += row.f as u64;
    }
    sums
}

/// Counts hits per visitor for one date, sorted by clientid.
pub fn rollup<'a>(hits: impl IntoIterator<Item = (&'a str, Gender)>) -> Vec<DailyRow> {
    let mut per_visitor: BTreeMap<&str, (i64, i64)> = BTreeMap::new();
    for (clientid, gender) in hits {
        let counts = per_visitor.entry(clientid).or_default();
        match gender {
            Gender::M => counts.0 += 1,
            Gender::F => counts.1 += 1,
        }
    }
    per_visitor
        .into_iter()
        .map(|(clientid, (m, f))| DailyRow {
            clientid: clientid.to_owned(),
            m,
            f,
        })
        .collect()
}

/// What a daily run did, returned by `POST /admin/daily` and the Lambda.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailySummary {
    pub date: String,
    pub window_from: String,
    pub window_to: String,
    pub rollups: Vec<RollupSummary>,
    pub visitors_in_window: usize,
    pub signals_set: usize,
    pub signals_cleared: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollupSummary {
    pub date: String,
    pub visitors: usize,
    pub hits: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn window_is_seven_dates_ending_on_d() {
        let d = Date::parse("2026-03-02").unwrap();
        let dates: Vec<String> = window_dates(d).iter().map(Date::to_string).collect();
        assert_eq!(
            dates,
            [
                "2026-02-24",
                "2026-02-25",
                "2026-02-26",
                "2026-02-27",
                "2026-02-28",
                "2026-03-01",
                "2026-03-02"
            ]
        );
    }

    #[test]
    fn default_date_is_yesterday_utc() {
        let now = 1_795_514_400_000; // 2026-11-24T10:00Z
        assert_eq!(default_daily_date(now).to_string(), "2026-11-23");
    }

    #[test]
    fn rollup_and_window_sums() {
        let day1 = rollup([
            ("a", Gender::M),
            ("b", Gender::F),
            ("a", Gender::F),
            ("a", Gender::M),
        ]);
        assert_eq!(
            day1[0],
            DailyRow {
                clientid: "a".into(),
                m: 2,
                f: 1
            }
        );
        let day2 = rollup([("a", Gender::F)]);
        let d = Date::from_days(5);
        let sums = window_sums(day1.iter().chain(&day2), d);
        assert_eq!(
            sums["a"],
            WindowSums {
                m: 2,
                f: 2,
                date: d
            }
        );
        assert_eq!(
            sums["b"],
            WindowSums {
                m: 0,
                f: 1,
                date: d
            }
        );
    }
}
