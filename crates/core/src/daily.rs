//! The daily job's window (SPEC 7), and the rules that let it write only the
//! window sums that change without reading the stored ones back: the stored
//! sums are those of the last window applied, computed from rollups whose
//! digests were recorded ([`AppliedWindows`]); a run merges the rollups of
//! that window and of its own, and compares the two sums per visitor
//! ([`window_write`]).

use crate::{Date, Gender};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
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

/// Where a daily run stopped before its end (near its deadline), its
/// progress saved: a run asked for the same date resumes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DailyStop {
    /// The date whose window was being written.
    pub date: String,
    /// The date the run was asked for.
    pub requested: String,
    /// Window writes done so far (sets and clears), and the clears among them.
    pub windows_written: u64,
    pub signals_cleared: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RollupSummary {
    pub date: String,
    pub visitors: usize,
    pub hits: u64,
}

/// What the profile store's window sums were computed from: every visitor
/// with hits in `window_dates(date)` holds its sums over those dates, no
/// other visitor holds any, and each rollup of the window had the digest
/// (its `sources`) recorded here.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedWindows {
    pub date: Date,
    pub rollups: BTreeMap<Date, String>,
}

/// How far a daily run that has not finished got. Its writes go out in
/// clientid order, so "done up to `after`" says which visitors hold the new
/// sums already.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DailyProgress {
    /// The date whose window is being written.
    pub date: Date,
    /// The date the run was asked for (an unfinished run of another date is
    /// finished first, on its behalf).
    pub requested: Date,
    /// [`inputs_digest`] of the run: only a run with the same inputs resumes.
    pub inputs: String,
    /// The last clientid whose write is done; none yet when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Clientids up to this one may hold the sums of an abandoned run: each
    /// of them the merge meets is written whatever its sums.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unknown_upto: Option<String>,
    pub written: u64,
    pub cleared: u64,
}

/// The format of [`DailyState`]'s JSON; another value is refused.
const STATE_FORMAT: u32 = 1;

/// The daily job's state object (`layout::DAILY_APPLIED_KEY`): the window
/// applied, and the progress of a run that has not finished.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DailyState {
    pub applied: Option<AppliedWindows>,
    pub run: Option<DailyProgress>,
}

#[derive(Serialize, Deserialize)]
struct StateJson {
    format: u32,
    #[serde(default)]
    applied: Option<AppliedWindows>,
    #[serde(default)]
    run: Option<DailyProgress>,
}

impl DailyState {
    pub fn to_json(&self) -> Vec<u8> {
        let json = StateJson {
            format: STATE_FORMAT,
            applied: self.applied.clone(),
            run: self.run.clone(),
        };
        serde_json::to_vec_pretty(&json).expect("plain data serializes")
    }

    /// Reads the state object; anything but format 1 is an error (a wrong
    /// state would leave stale sums in the store, so it is never guessed).
    pub fn from_json(bytes: &[u8]) -> Result<DailyState, String> {
        let json: StateJson = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
        if json.format != STATE_FORMAT {
            return Err(format!(
                "format {} (this version reads {STATE_FORMAT})",
                json.format
            ));
        }
        Ok(DailyState {
            applied: json.applied,
            run: json.run,
        })
    }
}

fn in_window(dt: Date, end: Date) -> bool {
    dt <= end && dt > end.add_days(-WINDOW_DAYS)
}

/// The dates whose rollups a run for `date` merges, oldest first: its own
/// window and the window applied before (the same, overlapping, or, after
/// a gap or for a backfill, disjoint).
pub fn merge_dates(date: Date, applied: Option<&AppliedWindows>) -> Vec<Date> {
    let mut dates = window_dates(date);
    if let Some(applied) = applied {
        dates.extend(window_dates(applied.date));
    }
    dates.sort_unstable();
    dates.dedup();
    dates
}

/// How one rollup's rows count in a run's merge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MergeRole {
    /// In the applied window: its rows add to the stored (old) sums.
    pub old: bool,
    /// In the run's window: its rows add to the new sums.
    pub new: bool,
    /// In the applied window but not the rollup the stored sums were
    /// computed from (late hits, an erasure): its visitors' old sums are
    /// unknown, so each of them is written.
    pub changed: bool,
    /// Counted by the window sums file but not in the run's window (a date
    /// that left it, or the rollup a changed date had): its rows are taken
    /// off the new sums ([`WindowFileMeta`]).
    pub removes: bool,
}

/// The role of the rollup of `dt`, whose digest is now `digest`, in a run for `date`.
pub fn merge_role(
    dt: Date,
    date: Date,
    applied: Option<&AppliedWindows>,
    digest: &str,
) -> MergeRole {
    let old = applied.is_some_and(|a| in_window(dt, a.date));
    let recorded = applied.and_then(|a| a.rollups.get(&dt)).map(String::as_str);
    MergeRole {
        old,
        new: in_window(dt, date),
        changed: old && recorded != Some(digest),
        removes: false,
    }
}

/// The rollup of a date the window sums file counts; the visitors and hits
/// are the run summary's, kept so that a run that does not read the rollup
/// still reports them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowRollup {
    pub digest: String,
    /// The rollup object's version when the file was written (see
    /// `ObjectInfo::version`): a rollup replaced since (rewritten by an
    /// erasure, deleted, rebuilt by another version) is not what was counted.
    pub version: String,
    pub visitors: usize,
    pub hits: u64,
}

/// The format of [`WindowFileMeta`]'s JSON; another value is not used.
const WINDOW_FILE_FORMAT: u32 = 1;

/// What the window sums file (`layout::DAILY_WINDOW_KEY`) holds: every
/// visitor's sums over `window_dates(date)`, computed from the rollups with
/// these digests. It is what the last complete run gave the store, so the
/// next day's run starts from it: new sums = its sums, minus the rollup of
/// the date that left, plus the rollup of the date that entered (and, for a
/// date whose curated hits changed, minus its old rollup plus its new one),
/// instead of merging every rollup of both windows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WindowFileMeta {
    pub format: u32,
    pub date: Date,
    pub rollups: BTreeMap<Date, WindowRollup>,
}

impl WindowFileMeta {
    pub fn new(date: Date, rollups: BTreeMap<Date, WindowRollup>) -> WindowFileMeta {
        WindowFileMeta {
            format: WINDOW_FILE_FORMAT,
            date,
            rollups,
        }
    }

    pub fn to_json(&self) -> String {
        serde_json::to_string(self).expect("plain data serializes")
    }

    /// `None` for anything but this version's JSON (the file is then simply
    /// not used).
    pub fn from_json(json: &str) -> Option<WindowFileMeta> {
        serde_json::from_str::<WindowFileMeta>(json)
            .ok()
            .filter(|meta| meta.format == WINDOW_FILE_FORMAT)
    }

    /// Whether the file holds exactly the sums of the applied window: the
    /// same end date and the same rollup digest for each of its dates.
    pub fn holds(&self, applied: &AppliedWindows) -> bool {
        self.date == applied.date
            && self.rollups.len() == applied.rollups.len()
            && applied
                .rollups
                .iter()
                .all(|(dt, digest)| self.rollups.get(dt).is_some_and(|r| &r.digest == digest))
    }
}

/// One visitor as the merge sees it: `[m, f]` over the applied window and
/// over the run's window.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MergedSums {
    pub old: [u64; 2],
    pub new: [u64; 2],
    /// What the store holds for this visitor is not known (see
    /// [`MergeRole::changed`] and [`DailyProgress::unknown_upto`]).
    pub old_unknown: bool,
}

/// The write a visitor needs so that the store holds its sums over the
/// window ending on `date` (SPEC 7 steps 2 and 3): `None` when what it holds
/// is right already, `Some(None)` to clear (no hits in the window),
/// `Some(Some(sums))` to set. Equal sums are left alone, so their stored
/// date stays that of the run that last changed them.
pub fn window_write(visitor: &MergedSums, date: Date) -> Option<Option<WindowSums>> {
    if !visitor.old_unknown && visitor.old == visitor.new {
        return None;
    }
    let [m, f] = visitor.new;
    Some((m + f > 0).then_some(WindowSums { m, f, date }))
}

/// A digest of everything a run's merge is computed from: its date, the
/// applied window, and the digest of each rollup it merges.
pub fn inputs_digest(
    date: Date,
    applied: Option<&AppliedWindows>,
    rollups: &BTreeMap<Date, String>,
) -> String {
    let mut hash = Sha256::new();
    hash.update(format!("date {date}\n"));
    match applied {
        None => hash.update("applied none\n"),
        Some(applied) => {
            hash.update(format!("applied {}\n", applied.date));
            for (dt, digest) in &applied.rollups {
                hash.update(format!("{dt} {digest}\n"));
            }
        }
    }
    for (dt, digest) in rollups {
        hash.update(format!("rollup {dt} {digest}\n"));
    }
    let hex: String = hash.finalize().iter().map(|b| format!("{b:02x}")).collect();
    format!("v1 sha256={hex}")
}

/// The progress a run for `date` (asked for as `requested`) with `inputs`
/// starts from: the unfinished run's when it is the same run (it resumes
/// after the last write done), else a new one. A new one forces the writes
/// of every clientid the unfinished run may have written, since those may
/// hold sums neither window explains.
pub fn start_progress(
    unfinished: Option<DailyProgress>,
    date: Date,
    requested: Date,
    inputs: String,
) -> DailyProgress {
    match unfinished {
        Some(run) if run.date == date && run.inputs == inputs => DailyProgress { requested, ..run },
        other => DailyProgress {
            date,
            requested,
            inputs,
            after: None,
            unknown_upto: other.and_then(|run| run.after.max(run.unknown_upto)),
            written: 0,
            cleared: 0,
        },
    }
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

    /// The daily rules driven over rollups held in memory, as the pipeline
    /// drives them over Parquet: a "store" of window sums, and the writes
    /// each run makes.
    struct Model {
        /// date -> (digest, clientid -> [m, f])
        rollups: BTreeMap<Date, (String, BTreeMap<String, [u64; 2]>)>,
        store: BTreeMap<String, WindowSums>,
        applied: Option<AppliedWindows>,
    }

    impl Model {
        fn new() -> Model {
            Model {
                rollups: BTreeMap::new(),
                store: BTreeMap::new(),
                applied: None,
            }
        }

        /// Hits arriving for `dt` (late ones too): its rollup changes.
        fn hits(&mut self, dt: i32, visitors: &[(&str, u64, u64)]) {
            let (digest, rows) = self
                .rollups
                .entry(Date::from_days(dt))
                .or_insert_with(|| (String::new(), BTreeMap::new()));
            for (id, m, f) in visitors {
                let row = rows.entry((*id).to_owned()).or_default();
                row[0] += m;
                row[1] += f;
            }
            *digest = format!("{digest}+");
        }

        /// An erasure: the visitor's rows and profile go.
        fn erase(&mut self, id: &str) {
            for (digest, rows) in self.rollups.values_mut() {
                if rows.remove(id).is_some() {
                    *digest = format!("{digest}-");
                }
            }
            self.store.remove(id);
        }

        fn digest(&self, dt: Date) -> String {
            self.rollups
                .get(&dt)
                .map_or_else(|| "empty".to_owned(), |(d, _)| d.clone())
        }

        /// A run for `date`: returns how many writes it made.
        fn run(&mut self, date: i32) -> usize {
            let date = Date::from_days(date);
            let applied = self.applied.as_ref();
            let mut ids: BTreeMap<&str, MergedSums> = BTreeMap::new();
            for dt in merge_dates(date, applied) {
                let role = merge_role(dt, date, applied, &self.digest(dt));
                let Some((_, rows)) = self.rollups.get(&dt) else {
                    continue;
                };
                for (id, [m, f]) in rows {
                    let v = ids.entry(id.as_str()).or_default();
                    if role.old {
                        v.old[0] += m;
                        v.old[1] += f;
                    }
                    if role.new {
                        v.new[0] += m;
                        v.new[1] += f;
                    }
                    v.old_unknown |= role.changed;
                }
            }
            let mut writes = 0;
            for (id, v) in ids {
                let Some(write) = window_write(&v, date) else {
                    continue;
                };
                writes += 1;
                match write {
                    Some(sums) => self.store.insert(id.to_owned(), sums),
                    None => self.store.remove(id),
                };
            }
            self.applied = Some(AppliedWindows {
                date,
                rollups: window_dates(date)
                    .into_iter()
                    .map(|dt| (dt, self.digest(dt)))
                    .collect(),
            });
            writes
        }

        /// What the store must hold after a run for `date`: every visitor's
        /// sums over the window, from scratch (dates ignored: equal sums
        /// keep the date of the run that set them).
        fn check(&self, date: i32) {
            let date = Date::from_days(date);
            let mut want: BTreeMap<&str, (u64, u64)> = BTreeMap::new();
            for dt in window_dates(date) {
                for (id, [m, f]) in self.rollups.get(&dt).map(|r| &r.1).into_iter().flatten() {
                    let e = want.entry(id.as_str()).or_default();
                    e.0 += m;
                    e.1 += f;
                }
            }
            let have: BTreeMap<&str, (u64, u64)> = self
                .store
                .iter()
                .map(|(id, w)| (id.as_str(), (w.m, w.f)))
                .collect();
            assert_eq!(have, want, "store after the run for {date}");
        }
    }

    #[test]
    fn windows_follow_the_rollups_without_reading_the_store() {
        let mut model = Model::new();
        model.hits(10, &[("a", 1, 0), ("b", 0, 2)]);
        model.hits(12, &[("a", 0, 1), ("c", 3, 0)]);
        // First run, nothing applied: every visitor of the window is written.
        assert_eq!(model.run(15), 3);
        model.check(15);
        // Re-run of the same date: nothing to write.
        assert_eq!(model.run(15), 0);
        model.check(15);
        // Next day: only the visitors of the dates entering and leaving.
        model.hits(16, &[("d", 1, 0)]);
        assert_eq!(model.run(16), 1, "d is new; D-7 = 9 had no hits");
        model.check(16);
        // The day date 10 leaves: a's sums change, b is cleared.
        assert_eq!(model.run(17), 2);
        model.check(17);
        assert!(!model.store.contains_key("b"));
        // Late hits rebuild a date inside the window: its visitors are
        // written even when their sums did not change (c's did not).
        model.hits(12, &[("e", 0, 1)]);
        assert_eq!(model.run(17), 3, "a, c and e: every visitor of date 12");
        model.check(17);
        // A gap of several days, overlapping and then disjoint.
        model.hits(20, &[("a", 5, 0), ("f", 1, 1)]);
        model.run(21);
        model.check(21);
        model.hits(40, &[("g", 1, 0)]);
        model.run(41);
        model.check(41);
        assert_eq!(model.store.keys().collect::<Vec<_>>(), ["g"]);
        // A backfill of an older date after a newer one, then the newer again.
        model.run(21);
        model.check(21);
        assert_eq!(model.run(21), 0);
        model.run(41);
        model.check(41);
        // An erasure rewrote a date of the applied window.
        model.hits(41, &[("h", 1, 0), ("i", 0, 1)]);
        model.run(41);
        model.erase("h");
        assert_eq!(
            model.run(41),
            1,
            "i, the other visitor of the rewritten date"
        );
        model.check(41);
        assert_eq!(model.run(42), 0, "nothing entered or left");
        model.check(42);
    }

    #[test]
    fn the_diff_rule() {
        let d = Date::from_days(7);
        let visitor = |old, new, old_unknown| MergedSums {
            old,
            new,
            old_unknown,
        };
        assert_eq!(window_write(&visitor([1, 2], [1, 2], false), d), None);
        assert_eq!(
            window_write(&visitor([1, 2], [1, 2], true), d),
            Some(Some(WindowSums {
                m: 1,
                f: 2,
                date: d
            }))
        );
        assert_eq!(
            window_write(&visitor([1, 2], [2, 2], false), d),
            Some(Some(WindowSums {
                m: 2,
                f: 2,
                date: d
            }))
        );
        assert_eq!(window_write(&visitor([1, 2], [0, 0], false), d), Some(None));
        assert_eq!(
            window_write(&visitor([0, 0], [0, 0], true), d),
            Some(None),
            "unknown and no hits now: cleared, in case"
        );
    }

    #[test]
    fn roles_of_the_merged_rollups() {
        let d = Date::from_days(20);
        assert_eq!(merge_dates(d, None), window_dates(d));
        let applied = AppliedWindows {
            date: Date::from_days(18),
            rollups: window_dates(Date::from_days(18))
                .into_iter()
                .map(|dt| (dt, format!("v{}", dt.days())))
                .collect(),
        };
        let dates: Vec<i32> = merge_dates(d, Some(&applied))
            .iter()
            .map(|d| d.days())
            .collect();
        assert_eq!(dates, (12..=20).collect::<Vec<_>>());
        let role =
            |dt: i32, digest: &str| merge_role(Date::from_days(dt), d, Some(&applied), digest);
        let r = |old, new, changed| MergeRole {
            old,
            new,
            changed,
            removes: false,
        };
        assert_eq!(role(12, "v12"), r(true, false, false), "left the window");
        assert_eq!(role(15, "v15"), r(true, true, false));
        assert_eq!(role(15, "rebuilt"), r(true, true, true));
        assert_eq!(role(19, "x"), r(false, true, false), "entered: no old sums");
        assert_eq!(
            merge_role(d, d, None, "x"),
            r(false, true, false),
            "nothing applied: nothing stored"
        );
    }

    #[test]
    fn a_run_resumes_only_its_own_progress() {
        let (d, e) = (Date::from_days(5), Date::from_days(6));
        let run = DailyProgress {
            date: d,
            requested: d,
            inputs: "i1".into(),
            after: Some("m".into()),
            unknown_upto: Some("c".into()),
            written: 10,
            cleared: 2,
        };
        let same = start_progress(Some(run.clone()), d, e, "i1".into());
        assert_eq!(
            same,
            DailyProgress {
                requested: e,
                ..run.clone()
            }
        );
        // Other inputs (late hits, say): from the start, with every clientid
        // the stopped run may have written forced.
        let other = start_progress(Some(run.clone()), d, d, "i2".into());
        assert_eq!(
            (other.after, other.unknown_upto.as_deref()),
            (None, Some("m"))
        );
        assert_eq!((other.written, other.cleared), (0, 0));
        let kept = start_progress(
            Some(DailyProgress {
                after: None,
                ..run.clone()
            }),
            e,
            e,
            "i3".into(),
        );
        assert_eq!(
            kept.unknown_upto.as_deref(),
            Some("c"),
            "an earlier forced range stays"
        );
        assert_eq!(start_progress(None, d, d, "i".into()).unknown_upto, None);
    }

    #[test]
    fn state_round_trips_and_refuses_other_formats() {
        let state = DailyState {
            applied: Some(AppliedWindows {
                date: Date::from_days(3),
                rollups: BTreeMap::from([(Date::from_days(3), "v1 files=1 sha256=ab".to_owned())]),
            }),
            run: None,
        };
        let json = state.to_json();
        assert!(String::from_utf8_lossy(&json).contains("\"1970-01-04\""));
        assert_eq!(DailyState::from_json(&json).unwrap(), state);
        assert!(DailyState::from_json(br#"{"format": 2}"#).is_err());
        assert!(DailyState::from_json(b"{").is_err());
        assert_eq!(
            inputs_digest(Date::from_days(3), None, &BTreeMap::new()),
            inputs_digest(Date::from_days(3), None, &BTreeMap::new())
        );
        assert_ne!(
            inputs_digest(Date::from_days(3), None, &BTreeMap::new()),
            inputs_digest(Date::from_days(3), state.applied.as_ref(), &BTreeMap::new())
        );
    }
}
