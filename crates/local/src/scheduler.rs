//! The daily job as the local deployment runs it, and its in-process
//! schedule (EventBridge's role locally).

use crate::housekeeping::CuratedLock;
use crate::metrics::PipelineMetrics;
use gender_core::time::{MS_PER_DAY, system_now_ms};
use gender_core::{DailySummary, Date};
use gender_embedded::{DirObjectStore, StateStore};
use gender_pipeline::PipelineError;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// The daily job (`pipeline::run_daily`), run by the schedule and by
/// `POST /admin/daily`: one run at a time, never while curated files are
/// rewritten (it holds the [`CuratedLock`] while it reads them).
#[derive(Clone)]
pub(crate) struct DailyJob {
    pub(crate) store: DirObjectStore,
    pub(crate) state: StateStore,
    pub(crate) metrics: Arc<PipelineMetrics>,
    pub(crate) curated: CuratedLock,
    /// Now, for the default date (yesterday, UTC).
    pub(crate) clock: fn() -> i64,
}

impl DailyJob {
    pub(crate) async fn run(&self, date: Date) -> Result<DailySummary, PipelineError> {
        let _one_at_a_time = self.curated.read().await;
        let result =
            gender_pipeline::run_daily(&self.store, &self.state, date, system_now_ms()).await;
        let counter = match &result {
            Ok(_) => &self.metrics.daily_runs,
            Err(_) => &self.metrics.daily_errors,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        result
    }
}

/// Runs the daily job for yesterday (UTC) at `minute_of_day` every day.
pub(crate) async fn daily_schedule(daily: DailyJob, minute_of_day: u32) {
    loop {
        let now = system_now_ms();
        let next = next_run_ms(now, minute_of_day);
        tokio::time::sleep(Duration::from_millis((next - now) as u64)).await;
        let date = gender_core::default_daily_date(system_now_ms());
        match daily.run(date).await {
            Ok(summary) => {
                tracing::info!(%date, visitors = summary.visitors_in_window, "scheduled daily run done")
            }
            Err(e) => tracing::error!(%date, error = %e, "scheduled daily run failed"),
        }
    }
}

/// The next instant (epoch ms) at `minute_of_day` UTC strictly after `now_ms`.
pub fn next_run_ms(now_ms: i64, minute_of_day: u32) -> i64 {
    let today = now_ms.div_euclid(MS_PER_DAY) * MS_PER_DAY + minute_of_day as i64 * 60_000;
    if today > now_ms {
        today
    } else {
        today + MS_PER_DAY
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY_START: i64 = 1_795_478_400_000; // 2026-11-24T00:00:00Z

    #[test]
    fn fires_at_one_am_today_or_tomorrow() {
        assert_eq!(next_run_ms(DAY_START, 60), DAY_START + 3_600_000);
        assert_eq!(
            next_run_ms(DAY_START + 3_600_000, 60),
            DAY_START + MS_PER_DAY + 3_600_000
        );
        assert_eq!(
            next_run_ms(DAY_START + 10 * 3_600_000, 60),
            DAY_START + MS_PER_DAY + 3_600_000
        );
    }
}
