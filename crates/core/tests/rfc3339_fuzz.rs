//! Fuzzing the hand-written RFC 3339 parser and formatter (and the
//! `YYYY-MM-DD` date parser) differentially against the `time` crate's
//! strict RFC 3339 implementation.
//!
//! Bounded: each property runs the case count given below in a normal
//! `cargo test`; `PROPTEST_CASES=N` (proptest's own variable) runs N cases of
//! every property instead, for a long hunt.
//!
//! Where the product and `time` differ on purpose (SPEC 13 and RFC 3339 leave
//! the choice open), the test says so and checks the product's rule:
//!
//! - Separator: RFC 3339 names `T` (case-insensitive) and lets applications
//!   choose another, such as a space; `time` accepts any byte there. The
//!   product accepts only `T` and `t`.
//! - Leap second (`:60`): `time` accepts it only where it could be a real one
//!   (23:59:60 UTC on the last day of a month) and reads it as
//!   23:59:59.999999999. The product accepts second 60 in any minute and reads
//!   it as the first second of the next minute, so `hh:mm:60.f` is exactly one
//!   second after `hh:mm:59.f`.
//! - Sub-millisecond digits are truncated (SPEC 13): both parsers keep every
//!   digit; the product's millisecond is the floor of `time`'s nanoseconds.

use gender_core::time::{
    Date, MIN_EVENT_MS, MS_PER_DAY, format_rfc3339_millis, parse_normalized_millis,
    parse_rfc3339_millis, rfc3339_millis_bytes, write_rfc3339_millis,
};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use time::format_description::well_known::Rfc3339;
use time::{Month, OffsetDateTime};

/// `cases` per property in a normal test run; `PROPTEST_CASES` overrides it.
/// Failing inputs are kept in `tests/<this file>.proptest-regressions` and
/// re-run first.
fn config(cases: u32) -> ProptestConfig {
    let default = ProptestConfig {
        failure_persistence: Some(Box::new(FileFailurePersistence::WithSource(
            "proptest-regressions",
        ))),
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_CASES").is_some() {
        default
    } else {
        ProptestConfig { cases, ..default }
    }
}

/// `0000-01-01T00:00:00.000Z`, the first instant RFC 3339 can write.
const FIRST_MS: i64 = -62_167_219_200_000;
/// `9999-12-31T23:59:59.999Z`, the last one.
const LAST_MS: i64 = 253_402_300_799_999;

/// The instant `time` reads from `s`, in epoch ms (floor of its nanoseconds).
fn reference_millis(s: &str) -> Option<i64> {
    let dt = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    Some(dt.unix_timestamp_nanos().div_euclid(1_000_000) as i64)
}

/// `time`'s civil fields of an instant, formatted the product's way.
fn reference_format(ms: i64) -> String {
    let dt = OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        dt.year(),
        dt.month() as u8,
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second(),
        dt.millisecond()
    )
}

/// What the product must answer for `s`, from `time`'s answer and the
/// intentional differences listed at the top of this file.
fn expected(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() >= 20 && b.get(10).is_some_and(|&c| c != b'T' && c != b't') {
        // Any other separator: the product refuses what `time` may accept.
        return None;
    }
    if b.len() >= 20 && &b[17..19] == b"60" && b[13] == b':' && b[16] == b':' {
        // Second 60: one second after second 59 (if that one is valid).
        let mut at_59 = b.to_vec();
        at_59[17..19].copy_from_slice(b"59");
        let at_59 = std::str::from_utf8(&at_59).ok()?;
        return reference_millis(at_59).map(|ms| ms + 1000);
    }
    reference_millis(s)
}

/// Any i64, weighted towards the edges: the range RFC 3339 can write, and
/// the instants whose day number is near the ends of i32 (where calendar
/// arithmetic overflows) or of i64.
fn any_instant() -> impl Strategy<Value = i64> {
    let day_edge = prop_oneof![
        (i32::MAX as i64 - 800_000)..=(i32::MAX as i64 + 800_000),
        (i32::MIN as i64 - 800_000)..=(i32::MIN as i64 + 800_000),
    ];
    prop_oneof![
        any::<i64>(),
        (day_edge, 0..MS_PER_DAY).prop_map(|(d, r)| d * MS_PER_DAY + r),
        (FIRST_MS - 2 * MS_PER_DAY)..(FIRST_MS + 2 * MS_PER_DAY),
        (LAST_MS - 2 * MS_PER_DAY)..(LAST_MS + 2 * MS_PER_DAY),
        (i64::MIN..i64::MIN + 2 * MS_PER_DAY),
        (i64::MAX - 2 * MS_PER_DAY..=i64::MAX),
    ]
}

fn days_in_month(year: i32, month: u8) -> u8 {
    Month::try_from(month).unwrap().length(year)
}

/// A valid RFC 3339 timestamp (years 2000..=9999, every offset, leap days,
/// second 60 now and then, 0..=12 fraction digits, `T`/`t`, `Z`/`z`).
fn valid_timestamp() -> impl Strategy<Value = String> {
    (2000i32..=9999, 1u8..=12, any::<u8>())
        .prop_map(|(y, m, d)| (y, m, 1 + d % days_in_month(y, m)))
        .prop_flat_map(|(y, m, d)| {
            (
                Just((y, m, d)),
                prop_oneof![Just('T'), Just('t')],
                (
                    0u8..24,
                    0u8..60,
                    prop_oneof![20 => 0u8..60, 1 => Just(60u8)],
                ),
                proptest::option::of("[0-9]{1,12}"),
                prop_oneof![
                    Just("Z".to_owned()),
                    Just("z".to_owned()),
                    (prop_oneof![Just('+'), Just('-')], 0u8..24, 0u8..60)
                        .prop_map(|(s, h, m)| format!("{s}{h:02}:{m:02}")),
                ],
            )
        })
        .prop_map(|((y, m, d), t, (hh, mm, ss), frac, offset)| {
            let frac = frac.map(|f| format!(".{f}")).unwrap_or_default();
            format!("{y:04}-{m:02}-{d:02}{t}{hh:02}:{mm:02}:{ss:02}{frac}{offset}")
        })
}

/// Characters that make near misses: the grammar's own, look-alikes, and
/// multi-byte UTF-8 (which must never be sliced mid-character).
const NEAR: &[char] = &[
    '0', '1', '2', '3', '5', '6', '9', '-', ':', '.', ',', 'T', 't', ' ', 'Z', 'z', '+', '_', '\0',
    'é', '٣', '０', '\u{2212}', 'Ｔ',
];

#[derive(Debug, Clone)]
enum Edit {
    Delete(usize),
    Insert(usize, char),
    Replace(usize, char),
    Truncate(usize),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = proptest::sample::select(NEAR);
    prop_oneof![
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), c.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        (any::<usize>(), c).prop_map(|(i, c)| Edit::Replace(i, c)),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 1usize..4).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

fn apply(s: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = s.chars().collect();
    for e in edits {
        let n = chars.len();
        match *e {
            Edit::Delete(i) if n > 0 => {
                chars.remove(i % n);
            }
            Edit::Insert(i, c) => chars.insert(i % (n + 1), c),
            Edit::Replace(i, c) if n > 0 => chars[i % n] = c,
            Edit::Truncate(i) => chars.truncate(i % (n + 1)),
            Edit::Duplicate(i, len) if n > 0 => {
                let start = i % n;
                let end = (start + len).min(n);
                let copy: Vec<char> = chars[start..end].to_vec();
                chars.splice(end..end, copy);
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

fn check_against_reference(s: &str) -> Result<(), TestCaseError> {
    let got = parse_rfc3339_millis(s).ok();
    let want = expected(s);
    prop_assert_eq!(got, want, "input {:?}", s);
    Ok(())
}

proptest! {
    #![proptest_config(config(5000))]

    #[test]
    fn valid_timestamps_parse_like_the_reference(s in valid_timestamp()) {
        let got = parse_rfc3339_millis(&s);
        prop_assert!(got.is_ok(), "{s:?} rejected");
        check_against_reference(&s)?;
        // Parsing is independent of the fraction's length past milliseconds.
        if let Some(dot) = s.find('.') {
            let digits = s[dot + 1..].bytes().take_while(u8::is_ascii_digit).count();
            if digits > 3 {
                let cut = format!("{}{}", &s[..dot + 4], &s[dot + 1 + digits..]);
                prop_assert_eq!(parse_rfc3339_millis(&cut), got);
            }
        }
    }

    #[test]
    fn near_misses_are_accepted_or_refused_like_the_reference(
        s in valid_timestamp(),
        edits in proptest::collection::vec(edit(), 1..4),
    ) {
        check_against_reference(&apply(&s, &edits))?;
    }

    #[test]
    fn the_normalized_shape_with_any_digits_parses_like_the_reference(
        digits in proptest::collection::vec(0u8..10, 17),
        separator in prop_oneof![8 => Just(b'T'), 1 => Just(b't'), 1 => Just(b' ')],
        zone in prop_oneof![8 => Just(b'Z'), 1 => Just(b'z')],
    ) {
        // `YYYY-MM-DDTHH:MM:SS.mmmZ` with every digit free: months 00..99,
        // days 00..99, hours 00..99, ...: the fast path's checks.
        let mut b = *b"0000-00-00T00:00:00.000Z";
        let positions = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18, 20, 21, 22];
        for (&p, &d) in positions.iter().zip(&digits) {
            b[p] = b'0' + d;
        }
        b[10] = separator;
        b[23] = zone;
        let s = std::str::from_utf8(&b).unwrap();
        check_against_reference(s)?;
        // The fast path, when it answers, answers like the whole parser.
        if let Some(ms) = parse_normalized_millis(&b) {
            prop_assert_eq!(parse_rfc3339_millis(s), Ok(ms));
        }
    }

    #[test]
    fn strings_of_the_grammar_alphabet_parse_like_the_reference(
        s in "[0-9:.TtZz+ -]{0,40}",
    ) {
        check_against_reference(&s)?;
    }

    #[test]
    fn any_string_never_panics(s in any::<String>()) {
        let _ = parse_rfc3339_millis(&s);
        let _ = parse_normalized_millis(s.as_bytes());
        let _ = Date::parse(&s);
    }

    #[test]
    fn any_bytes_never_panic_the_fast_path(b in proptest::collection::vec(any::<u8>(), 0..40)) {
        let _ = parse_normalized_millis(&b);
    }

    #[test]
    fn formatting_matches_the_reference_and_parses_back(ms in FIRST_MS..=LAST_MS) {
        let text = format_rfc3339_millis(ms);
        prop_assert_eq!(&text, &reference_format(ms));
        prop_assert_eq!(&rfc3339_millis_bytes(ms)[..], text.as_bytes());
        let mut out = b"prefix".to_vec();
        write_rfc3339_millis(ms, &mut out);
        prop_assert_eq!(&out[6..], text.as_bytes());
        prop_assert_eq!(parse_rfc3339_millis(&text), Ok(ms));
        prop_assert_eq!(parse_normalized_millis(text.as_bytes()), Some(ms));
        prop_assert_eq!(reference_millis(&text), Some(ms));
        // The date part is the instant's UTC date.
        let date = Date::of_millis(ms);
        prop_assert_eq!(date.to_string(), &text[..10]);
        prop_assert_eq!(Date::parse(&text[..10]), Some(date));
        prop_assert!(date.start_millis() <= ms && ms < date.start_millis() + MS_PER_DAY);
    }

    #[test]
    fn formatting_any_instant_never_panics(ms in any_instant()) {
        // Outside 0000..=9999 the text is clamped to the range's edges.
        let text = format_rfc3339_millis(ms);
        prop_assert_eq!(&text, &format_rfc3339_millis(ms.clamp(FIRST_MS, LAST_MS)));
    }

    #[test]
    fn dates_parse_like_the_reference(
        digits in proptest::collection::vec(0u8..10, 8),
        edits in proptest::collection::vec(edit(), 0..2),
    ) {
        let mut b = *b"0000-00-00";
        for (&p, &d) in [0, 1, 2, 3, 5, 6, 8, 9].iter().zip(&digits) {
            b[p] = b'0' + d;
        }
        let s = apply(std::str::from_utf8(&b).unwrap(), &edits);
        prop_assert_eq!(Date::parse(&s), reference_date(&s), "input {:?}", s);
        if let Some(date) = Date::parse(&s) {
            prop_assert_eq!(date.to_string(), s.clone());
            let mut out = Vec::new();
            date.write_to(&mut out);
            prop_assert_eq!(out, s.as_bytes());
        }
    }

    #[test]
    fn days_convert_like_the_reference(days in -719_528i32..=2_932_896) {
        // 0000-01-01 ..= 9999-12-31.
        let date = Date::from_days(days);
        let want = time::Date::from_julian_day(days + UNIX_EPOCH_JULIAN_DAY).unwrap();
        prop_assert_eq!(date.ymd(), (want.year(), want.month() as u32, want.day() as u32));
        prop_assert_eq!(Date::from_ymd(want.year(), want.month() as u32, want.day() as u32), Some(date));
        prop_assert_eq!(date.start_millis(), days as i64 * MS_PER_DAY);
        prop_assert_eq!(Date::of_millis(date.start_millis() + MS_PER_DAY - 1), date);
    }
}

const UNIX_EPOCH_JULIAN_DAY: i32 = 2_440_588;

/// `YYYY-MM-DD` exactly, checked by `time`.
fn reference_date(s: &str) -> Option<Date> {
    let b = s.as_bytes();
    let shape = b.len() == 10
        && b[4] == b'-'
        && b[7] == b'-'
        && b.iter()
            .enumerate()
            .all(|(i, c)| i == 4 || i == 7 || c.is_ascii_digit());
    if !shape {
        return None;
    }
    let year: i32 = s[0..4].parse().ok()?;
    let month = Month::try_from(s[5..7].parse::<u8>().ok()?).ok()?;
    let day: u8 = s[8..10].parse().ok()?;
    let date = time::Date::from_calendar_date(year, month, day).ok()?;
    Some(Date::from_days(
        date.to_julian_day() - UNIX_EPOCH_JULIAN_DAY,
    ))
}

/// Every millisecond of the seconds where calendars go wrong: around leap
/// days, year, century and era ends, the epoch, and the range's edges.
#[test]
fn every_millisecond_of_the_tricky_seconds_round_trips() {
    let seconds = [
        "0000-01-01T00:00:00Z",
        "1969-12-31T23:59:59Z",
        "1970-01-01T00:00:00Z",
        "1999-12-31T23:59:59Z",
        "2000-01-01T00:00:00Z",
        "2000-02-28T23:59:59Z",
        "2000-02-29T23:59:59Z",
        "2024-02-29T00:00:00Z",
        "2100-02-28T23:59:59Z",
        "2100-03-01T00:00:00Z",
        "2400-02-29T12:00:00Z",
        "9999-12-31T23:59:59Z",
    ];
    for second in seconds {
        let start = reference_millis(second).unwrap();
        for ms in start..start + 1000 {
            let text = format_rfc3339_millis(ms);
            assert_eq!(text, reference_format(ms));
            assert_eq!(parse_rfc3339_millis(&text), Ok(ms), "{text}");
        }
    }
    assert_eq!(
        parse_rfc3339_millis("2000-01-01T00:00:00Z"),
        Ok(MIN_EVENT_MS)
    );
}

/// The leap second rule of this file's header, on the cases `time` accepts.
#[test]
fn a_leap_second_is_the_first_second_of_the_next_minute() {
    let leap = "2016-12-31T23:59:60.5Z";
    assert_eq!(
        parse_rfc3339_millis(leap),
        Ok(reference_millis("2017-01-01T00:00:00.5Z").unwrap())
    );
    // `time` reads it as the last nanosecond of 23:59:59 instead.
    assert_eq!(
        reference_millis(leap),
        reference_millis("2016-12-31T23:59:59.999Z")
    );
    // In any minute, and through an offset.
    assert_eq!(
        parse_rfc3339_millis("2026-11-24T11:30:60+01:00"),
        parse_rfc3339_millis("2026-11-24T10:31:00Z")
    );
}

/// Found by `formatting_any_instant_never_panics`: instants whose day number
/// is near the ends of i32 overflowed the calendar arithmetic (a panic in
/// debug builds, a wrong date in release). Now clamped to 0000..=9999.
#[test]
fn regression_formatting_far_instants_does_not_overflow() {
    for ms in [
        -9_223_372_036_681_975_810,
        (i32::MAX as i64 - 10) * MS_PER_DAY,
        185_542_587_100_000_000,
        i64::MIN,
        i64::MAX,
    ] {
        let want = if ms < 0 {
            "0000-01-01T00:00:00.000Z"
        } else {
            "9999-12-31T23:59:59.999Z"
        };
        assert_eq!(format_rfc3339_millis(ms), want, "{ms}");
    }
}
