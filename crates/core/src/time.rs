//! Calendar arithmetic and strict RFC 3339 handling, hand-written because the
//! transform formats and parses one timestamp per record and must stay cheap.

use crate::HitError;
use std::fmt;

pub const MS_PER_DAY: i64 = 86_400_000;
/// `2000-01-01T00:00:00Z`: the earliest accepted event time (SPEC 2).
pub const MIN_EVENT_MS: i64 = 946_684_800_000;
/// `9999-12-31T23:59:59.999Z`: the last instant RFC 3339 can write, so the
/// latest event time accepted anywhere (raw lines have no reference time).
pub const MAX_EVENT_MS: i64 = 253_402_300_799_999;
/// `0000-01-01T00:00:00.000Z`: the first instant RFC 3339 can write.
const FIRST_RFC3339_MS: i64 = -62_167_219_200_000;
/// How far past the reference time ("now" or the arrival time) an event may lie.
pub const MAX_FUTURE_MS: i64 = MS_PER_DAY;

/// The wall clock in epoch milliseconds: the `clock: fn() -> i64` every
/// deployment hands its handlers (tests hand them a fixed one instead).
pub fn system_now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A UTC calendar date, stored as days since 1970-01-01.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i32);

impl Date {
    pub fn from_days(days: i32) -> Date {
        Date(days)
    }

    pub fn days(self) -> i32 {
        self.0
    }

    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        if !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return None;
        }
        Some(Date(days_from_civil(year, month, day)))
    }

    /// The UTC date containing the instant `ms` (epoch milliseconds).
    pub fn of_millis(ms: i64) -> Date {
        Date(ms.div_euclid(MS_PER_DAY) as i32)
    }

    pub fn start_millis(self) -> i64 {
        self.0 as i64 * MS_PER_DAY
    }

    pub fn add_days(self, n: i32) -> Date {
        Date(self.0 + n)
    }

    pub fn ymd(self) -> (i32, u32, u32) {
        civil_from_days(self.0)
    }

    /// Parses exactly `YYYY-MM-DD`.
    pub fn parse(s: &str) -> Option<Date> {
        let b = s.as_bytes();
        if b.len() != 10 || b[4] != b'-' || b[7] != b'-' {
            return None;
        }
        let year = digits(&b[0..4])? as i32;
        let month = digits(&b[5..7])?;
        let day = digits(&b[8..10])?;
        Date::from_ymd(year, month, day)
    }

    /// Writes `YYYY-MM-DD` into `out` without allocating.
    pub fn write_to(self, out: &mut Vec<u8>) {
        let (y, m, d) = self.ymd();
        push_digits(out, y as u32, 4);
        out.push(b'-');
        push_digits(out, m, 2);
        out.push(b'-');
        push_digits(out, d, 2);
    }
}

impl fmt::Display for Date {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (y, m, d) = self.ymd();
        write!(f, "{y:04}-{m:02}-{d:02}")
    }
}

/// As `YYYY-MM-DD` (the daily job's state object keeps dates this way).
impl serde::Serialize for Date {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Date {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Date, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Date::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("{text:?} is not a YYYY-MM-DD date")))
    }
}

fn is_leap(year: i32) -> bool {
    (year % 4 == 0 && year % 100 != 0) || year % 400 == 0
}

fn days_in_month(year: i32, month: u32) -> u32 {
    match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        _ if is_leap(year) => 29,
        _ => 28,
    }
}

// Howard Hinnant's days_from_civil / civil_from_days.
fn days_from_civil(y: i32, m: u32, d: u32) -> i32 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = (y - era * 400) as u32;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe as i32 - 719_468
}

fn civil_from_days(z: i32) -> (i32, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = (z - era * 146_097) as u32;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe as i32 + era * 400 + i32::from(m <= 2);
    (y, m, d)
}

fn digits(b: &[u8]) -> Option<u32> {
    let mut v = 0u32;
    for &c in b {
        if !c.is_ascii_digit() {
            return None;
        }
        v = v * 10 + (c - b'0') as u32;
    }
    Some(v)
}

fn push_digits(out: &mut Vec<u8>, mut v: u32, width: usize) {
    let start = out.len();
    out.resize(start + width, b'0');
    for i in (0..width).rev() {
        out[start + i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
}

/// Parses RFC 3339 (`YYYY-MM-DDTHH:MM:SS[.frac](Z|±hh:mm)`) into epoch
/// milliseconds UTC. Sub-millisecond digits are truncated (SPEC 13).
pub fn parse_rfc3339_millis(s: &str) -> Result<i64, HitError> {
    parse_normalized_millis(s.as_bytes())
        .or_else(|| parse_rfc3339(s.as_bytes()))
        .ok_or(HitError::InvalidTimestamp)
}

fn parse_rfc3339(b: &[u8]) -> Option<i64> {
    if b.len() < 20 || b[4] != b'-' || b[7] != b'-' || b[13] != b':' || b[16] != b':' {
        return None;
    }
    if !matches!(b[10], b'T' | b't') {
        return None;
    }
    let date = Date::from_ymd(
        digits(&b[0..4])? as i32,
        digits(&b[5..7])?,
        digits(&b[8..10])?,
    )?;
    let (hour, minute, second) = (
        digits(&b[11..13])?,
        digits(&b[14..16])?,
        digits(&b[17..19])?,
    );
    // Second 60 is a leap second in RFC 3339; it rolls into the next minute.
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &b[19..];
    let mut millis = 0u32;
    if let [b'.', tail @ ..] = rest {
        let n = tail.iter().take_while(|c| c.is_ascii_digit()).count();
        if n == 0 {
            return None;
        }
        for (i, &c) in tail[..n.min(3)].iter().enumerate() {
            millis += (c - b'0') as u32 * [100, 10, 1][i];
        }
        rest = &tail[n..];
    }
    let offset_minutes: i64 = match rest {
        [b'Z' | b'z'] => 0,
        [sign @ (b'+' | b'-'), h1, h2, b':', m1, m2] => {
            let (oh, om) = (digits(&[*h1, *h2])?, digits(&[*m1, *m2])?);
            if oh > 23 || om > 59 {
                return None;
            }
            let total = (oh * 60 + om) as i64;
            if *sign == b'-' { -total } else { total }
        }
        _ => return None,
    };
    let seconds_of_day = (hour * 3600 + minute * 60 + second) as i64;
    Some(date.start_millis() + seconds_of_day * 1000 + millis as i64 - offset_minutes * 60_000)
}

/// Writes `YYYY-MM-DDTHH:MM:SS.mmmZ` (always millisecond precision, UTC).
pub fn write_rfc3339_millis(ms: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(&rfc3339_millis_bytes(ms));
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ` as a fixed-size array (no allocation).
#[inline]
pub fn rfc3339_millis_bytes(ms: i64) -> [u8; 24] {
    #[inline]
    fn two(out: &mut [u8], v: u32) {
        out[0] = b'0' + (v / 10) as u8;
        out[1] = b'0' + (v % 10) as u8;
    }
    // Outside the years 0000..=9999 the text is clamped to the range's edges
    // (which also keeps the calendar arithmetic from overflowing).
    let ms = ms.clamp(FIRST_RFC3339_MS, MAX_EVENT_MS);
    let (y, m, d) = Date::of_millis(ms).ymd();
    let in_day = ms.rem_euclid(MS_PER_DAY) as u32;
    let mut b = *b"0000-00-00T00:00:00.000Z";
    let y = y.clamp(0, 9999) as u32;
    two(&mut b[0..2], y / 100);
    two(&mut b[2..4], y % 100);
    two(&mut b[5..7], m);
    two(&mut b[8..10], d);
    two(&mut b[11..13], in_day / 3_600_000);
    two(&mut b[14..16], in_day / 60_000 % 60);
    two(&mut b[17..19], in_day / 1000 % 60);
    let milli = in_day % 1000;
    b[20] = b'0' + (milli / 100) as u8;
    two(&mut b[21..23], milli % 100);
    b
}

/// The exact shape [`write_rfc3339_millis`] produces, parsed without the
/// general grammar; `None` for anything else (callers fall back to
/// [`parse_rfc3339_millis`], which accepts the same instants).
#[inline]
pub fn parse_normalized_millis(b: &[u8]) -> Option<i64> {
    let b: &[u8; 24] = b.try_into().ok()?;
    if b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[23] != b'Z'
    {
        return None;
    }
    #[inline]
    fn d(c: u8) -> Option<u32> {
        let v = c.wrapping_sub(b'0');
        (v < 10).then_some(v as u32)
    }
    let two = |i: usize| Some(d(b[i])? * 10 + d(b[i + 1])?);
    let year = two(0)? * 100 + two(2)?;
    let (month, day) = (two(5)?, two(8)?);
    let (hour, minute, second) = (two(11)?, two(14)?, two(17)?);
    let millis = d(b[20])? * 100 + two(21)?;
    if hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let date = Date::from_ymd(year as i32, month, day)?;
    let seconds_of_day = (hour * 3600 + minute * 60 + second) as i64;
    Some(date.start_millis() + seconds_of_day * 1000 + millis as i64)
}

pub fn format_rfc3339_millis(ms: i64) -> String {
    let mut out = Vec::with_capacity(24);
    write_rfc3339_millis(ms, &mut out);
    String::from_utf8(out).expect("ASCII digits and separators")
}

/// The event-time bounds of SPEC 2 relative to a reference instant.
pub fn check_event_bounds(event_ms: i64, reference_ms: i64) -> Result<(), HitError> {
    if event_ms < MIN_EVENT_MS {
        Err(HitError::TimestampTooOld)
    } else if event_ms > reference_ms.saturating_add(MAX_FUTURE_MS) {
        Err(HitError::TimestampInFuture)
    } else {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_round_trip_over_centuries() {
        for days in (-800_000..800_000).step_by(97) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
        assert_eq!(Date::parse("1970-01-01").unwrap().days(), 0);
        assert_eq!(Date::parse("2000-02-29").unwrap().to_string(), "2000-02-29");
        assert!(Date::parse("1900-02-29").is_none());
        assert!(Date::parse("2026-13-01").is_none());
        assert!(Date::parse("2026-1-01").is_none());
    }

    #[test]
    fn parses_offsets_fractions_and_truncates_sub_millis() {
        let base = parse_rfc3339_millis("2026-11-24T10:00:00Z").unwrap();
        assert_eq!(base, 1_795_514_400_000);
        assert_eq!(parse_rfc3339_millis("2026-11-24T12:00:00+02:00"), Ok(base));
        assert_eq!(parse_rfc3339_millis("2026-11-24T05:30:00-04:30"), Ok(base));
        assert_eq!(parse_rfc3339_millis("2026-11-24t10:00:00z"), Ok(base));
        assert_eq!(
            parse_rfc3339_millis("2026-11-24T10:00:00.5Z"),
            Ok(base + 500)
        );
        assert_eq!(
            parse_rfc3339_millis("2026-11-24T10:00:00.123999999Z"),
            Ok(base + 123)
        );
        assert_eq!(
            parse_rfc3339_millis("2000-01-01T00:00:00Z"),
            Ok(MIN_EVENT_MS)
        );
    }

    #[test]
    fn rejects_dates_without_time_or_offset() {
        for bad in [
            "2026-11-24",
            "2026-11-24T10:00:00",
            "2026-11-24T10:00Z",
            "2026-11-24 10:00:00Z",
            "2026-11-24T10:00:00.Z",
            "2026-11-24T24:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-11-24T10:00:00+0200",
            "2026-11-24T10:00:00+24:00",
            "2026-11-24T10:00:00Zjunk",
            "",
        ] {
            assert!(parse_rfc3339_millis(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn formats_millisecond_utc() {
        assert_eq!(format_rfc3339_millis(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339_millis(1_795_514_400_123),
            "2026-11-24T10:00:00.123Z"
        );
        assert_eq!(
            format_rfc3339_millis(MIN_EVENT_MS - 1),
            "1999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn the_normalized_shape_parses_like_the_general_grammar() {
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            let ms = MIN_EVENT_MS + (rng % (300 * 365 * MS_PER_DAY as u64)) as i64;
            let text = rfc3339_millis_bytes(ms);
            assert_eq!(parse_normalized_millis(&text), Some(ms));
            assert_eq!(parse_rfc3339(&text), Some(ms));
        }
        for bad in [
            &b"2026-02-30T10:00:00.000Z"[..],
            b"2026-11-24T24:00:00.000Z",
            b"2026-11-24T10:00:00.000+",
            b"2026-11-24T10:00:0a.000Z",
        ] {
            assert_eq!(parse_normalized_millis(bad), None);
            assert_eq!(parse_rfc3339(bad), None);
        }
        // A leap second rolls over in both.
        assert_eq!(
            parse_normalized_millis(b"2026-12-31T23:59:60.000Z"),
            parse_rfc3339(b"2026-12-31T23:59:60.000Z")
        );
    }

    #[test]
    fn bounds_are_inclusive_at_both_ends() {
        let now = 1_795_514_400_000;
        assert_eq!(check_event_bounds(MIN_EVENT_MS, now), Ok(()));
        assert_eq!(
            check_event_bounds(MIN_EVENT_MS - 1, now),
            Err(HitError::TimestampTooOld)
        );
        assert_eq!(check_event_bounds(now + MAX_FUTURE_MS, now), Ok(()));
        assert_eq!(
            check_event_bounds(now + MAX_FUTURE_MS + 1, now),
            Err(HitError::TimestampInFuture)
        );
    }
}
