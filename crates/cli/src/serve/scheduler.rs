//! The in-process daily schedule (EventBridge's role locally).

use gender_core::time::MS_PER_DAY;

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
