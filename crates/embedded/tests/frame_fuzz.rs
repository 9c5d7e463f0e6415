//! Fuzzing the hit log's frames (SPEC 16): the frame reader never panics,
//! frames round-trip, and damage anywhere costs exactly the frames it
//! touched: every untouched frame is still found (and never reported as
//! damaged), a truncated tail is a torn tail, and the real log read back
//! after bytes of its file were flipped delivers every untouched record
//! exactly once, in order, reporting the touched ones.
//!
//! Bounded: each property runs the case count given below in a normal
//! `cargo test`; `PROPTEST_CASES=N` (proptest's own variable) runs N cases of
//! every property instead, for a long hunt.

use gender_embedded::frame::{HEADER_LEN, HIT_LOG, MAX_RECORD_BYTES, Parsed};
use gender_embedded::log::scan_segment;
use gender_embedded::{HitLogFile, LogEntry, SegmentScan};
use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, FileFailurePersistence};
use std::ops::Range;

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

/// Where frames were written: each one's byte range in the buffer.
fn encode_all(payloads: &[Vec<u8>], arrival_ms: i64) -> (Vec<u8>, Vec<Range<usize>>) {
    let mut buf = Vec::new();
    let mut ranges = Vec::new();
    for p in payloads {
        let start = buf.len();
        HIT_LOG.encode(arrival_ms as u64, p, &mut buf);
        ranges.push(start..buf.len());
    }
    (buf, ranges)
}

fn count_magic(buf: &[u8]) -> usize {
    buf.windows(HIT_LOG.magic.len())
        .filter(|w| *w == HIT_LOG.magic)
        .count()
}

/// Where the intact frames of a scanned buffer are, walking it the way the
/// scan says: intact frames back to back, damaged ranges skipped, the torn
/// tail last. Fails if the scan's account of the bytes does not add up.
fn intact_positions(base: u64, buf: &[u8], scan: &SegmentScan) -> Result<Vec<usize>, String> {
    let mut positions = Vec::new();
    let mut damaged = scan.damaged.iter().peekable();
    let end = buf.len() - scan.torn_tail.unwrap_or(0) as usize;
    let mut pos = 0;
    while pos < end {
        if let Some(d) = damaged.next_if(|d| d.start == base + pos as u64) {
            if d.end <= d.start || d.end > base + end as u64 || d.records == 0 {
                return Err(format!("bad damaged range {d:?}"));
            }
            pos = (d.end - base) as usize;
            continue;
        }
        match HIT_LOG.parse(&buf[pos..end]) {
            Parsed::Frame { len, .. } => {
                positions.push(pos);
                pos += len;
            }
            other => return Err(format!("at {pos}: {other:?}, not an intact frame")),
        }
    }
    if pos != end || damaged.next().is_some() || positions.len() != scan.intact_records {
        return Err(format!("the scan does not add up: {scan:?}"));
    }
    Ok(positions)
}

fn payloads(max_len: usize, max_frames: usize) -> impl Strategy<Value = Vec<Vec<u8>>> {
    let payload = prop_oneof![
        4 => proptest::collection::vec(any::<u8>(), 0..max_len),
        // JSON-ish text, what the log really holds.
        2 => "[ -~]{0,40}".prop_map(String::into_bytes),
        // Payloads that hold the magic. (Not a whole frame of their own:
        // after damage before it, the reader would take that for a record.
        // Hit payloads are JSON text, which cannot hold a frame header.)
        1 => proptest::collection::vec(any::<u8>(), 0..8).prop_map(|mut p| {
            p.extend_from_slice(&HIT_LOG.magic);
            p
        }),
    ];
    proptest::collection::vec(payload, 1..max_frames)
}

/// One change to the bytes of a buffer.
#[derive(Debug, Clone)]
enum Damage {
    /// Bytes overwritten in place with these.
    Overwrite { at: usize, bytes: Vec<u8> },
    /// One bit flipped.
    Flip { at: usize, bit: u8 },
    /// Bytes zeroed in place.
    Zero { at: usize, len: usize },
    /// `delete` bytes removed and `insert` put in their place.
    Splice {
        at: usize,
        delete: usize,
        insert: Vec<u8>,
    },
}

fn damage() -> impl Strategy<Value = Damage> {
    prop_oneof![
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..24)
        )
            .prop_map(|(at, bytes)| Damage::Overwrite { at, bytes }),
        (any::<usize>(), 0u8..8).prop_map(|(at, bit)| Damage::Flip { at, bit }),
        (any::<usize>(), 1usize..64).prop_map(|(at, len)| Damage::Zero { at, len }),
        (
            any::<usize>(),
            0usize..40,
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..24),
                Just(HIT_LOG.magic.to_vec()),
                proptest::collection::vec(any::<u8>(), 0..8).prop_map(|mut v| {
                    v.splice(0..0, HIT_LOG.magic);
                    v
                }),
            ]
        )
            .prop_map(|(at, delete, insert)| Damage::Splice { at, delete, insert }),
    ]
}

/// A damaged copy of `buf`, and what became of each frame: its new start if
/// none of its bytes changed, else `None` (touched).
fn apply_damage(
    buf: &[u8],
    frames: &[Range<usize>],
    damage: &[Damage],
) -> (Vec<u8>, Vec<Option<usize>>) {
    let mut out = buf.to_vec();
    // For every byte of `out`, the original position it came from.
    let mut origin: Vec<Option<usize>> = (0..buf.len()).map(Some).collect();
    let mut touched = vec![false; frames.len()];
    let frame_of = |pos: usize| frames.iter().position(|r| r.contains(&pos));
    let mark = |origin: &[Option<usize>], at: usize, touched: &mut Vec<bool>| {
        if let Some(Some(o)) = origin.get(at)
            && let Some(f) = frame_of(*o)
        {
            touched[f] = true;
        }
    };
    for d in damage {
        let n = out.len();
        if n == 0 {
            break;
        }
        match d {
            Damage::Overwrite { at, bytes } => {
                let at = at % n;
                for (i, &b) in bytes.iter().enumerate().take(n - at) {
                    if out[at + i] != b {
                        mark(&origin, at + i, &mut touched);
                        out[at + i] = b;
                        origin[at + i] = None;
                    }
                }
            }
            Damage::Flip { at, bit } => {
                let at = at % n;
                mark(&origin, at, &mut touched);
                out[at] ^= 1 << bit;
                origin[at] = None;
            }
            Damage::Zero { at, len } => {
                let at = at % n;
                for i in at..(at + len).min(n) {
                    if out[i] != 0 {
                        mark(&origin, i, &mut touched);
                        out[i] = 0;
                        origin[i] = None;
                    }
                }
            }
            Damage::Splice { at, delete, insert } => {
                let at = at % (n + 1);
                let end = (at + delete).min(n);
                for i in at..end {
                    mark(&origin, i, &mut touched);
                }
                // Bytes put inside a frame break it; between frames they don't.
                if !insert.is_empty()
                    && at > 0
                    && at < n
                    && let (Some(before), Some(after)) = (origin[at - 1], origin[end.min(n - 1)])
                    && frame_of(before).is_some()
                    && frame_of(before) == frame_of(after)
                {
                    mark(&origin, at - 1, &mut touched);
                }
                out.splice(at..end, insert.iter().copied());
                origin.splice(at..end, insert.iter().map(|_| None));
            }
        }
    }
    // A frame is untouched if all its bytes are still there, in one piece.
    let starts = frames
        .iter()
        .enumerate()
        .map(|(f, r)| {
            if touched[f] {
                return None;
            }
            let start = origin.iter().position(|&o| o == Some(r.start))?;
            let whole = (0..r.len()).all(|i| origin.get(start + i) == Some(&Some(r.start + i)));
            whole.then_some(start)
        })
        .collect();
    (out, starts)
}

proptest! {
    #![proptest_config(config(2000))]

    #[test]
    fn arbitrary_bytes_never_panic_and_scans_add_up(
        bytes in prop_oneof![
            proptest::collection::vec(any::<u8>(), 0..200),
            // Bytes rich in magics and headers, so that the parser goes deep.
            proptest::collection::vec(
                prop_oneof![
                    proptest::collection::vec(any::<u8>(), 0..12),
                    Just(HIT_LOG.magic.to_vec()),
                    (any::<u8>(), any::<u8>()).prop_map(|(a, b)| {
                        let mut v = HIT_LOG.magic.to_vec();
                        v.extend_from_slice(&[a, b, 0, 0]);
                        v
                    }),
                    (proptest::collection::vec(any::<u8>(), 0..16), any::<i64>()).prop_map(|(p, t)| {
                        let mut v = Vec::new();
                        HIT_LOG.encode(t as u64, &p, &mut v);
                        v
                    }),
                ],
                0..12,
            ).prop_map(|parts| parts.concat()),
        ],
        base in prop_oneof![Just(0u64), any::<u32>().prop_map(u64::from)],
    ) {
        let _ = HIT_LOG.parse(&bytes);
        if let Some(at) = HIT_LOG.next_intact(&bytes) {
            prop_assert!(at > 0 && at < bytes.len());
            let intact = matches!(HIT_LOG.parse(&bytes[at..]), Parsed::Frame { .. });
            prop_assert!(intact, "next_intact gave {}, not a frame", at);
        }
        prop_assert!(HIT_LOG.frames_started_in(&bytes) >= 1);
        let scan = scan_segment(base, &bytes);
        prop_assert_eq!(scan.bytes, bytes.len() as u64);
        prop_assert!(scan.intact_end() <= base + bytes.len() as u64);
        intact_positions(base, &bytes, &scan).map_err(TestCaseError::fail)?;
    }

    #[test]
    fn frames_round_trip(
        payload in prop_oneof![
            8 => proptest::collection::vec(any::<u8>(), 0..256),
            1 => proptest::collection::vec(any::<u8>(), 0..8192),
        ],
        arrival_ms in any::<i64>(),
        trailing in proptest::collection::vec(any::<u8>(), 0..32),
    ) {
        let mut buf = Vec::new();
        HIT_LOG.encode(arrival_ms as u64, &payload, &mut buf);
        let len = HEADER_LEN + payload.len();
        prop_assert_eq!(buf.len(), len);
        let want = Parsed::Frame { word: arrival_ms as u64, payload: &payload, len };
        prop_assert_eq!(HIT_LOG.parse(&buf), want.clone());
        // Whatever follows a frame does not change it.
        let mut longer = buf.clone();
        longer.extend_from_slice(&trailing);
        prop_assert_eq!(HIT_LOG.parse(&longer), want);
        // Every strict prefix needs more bytes.
        for cut in (0..len).step_by(1 + len / 64) {
            prop_assert_eq!(HIT_LOG.parse(&buf[..cut]), Parsed::Incomplete, "cut at {}", cut);
        }
        prop_assert_eq!(HIT_LOG.parse(&buf[..len - 1]), Parsed::Incomplete);
        let scan = scan_segment(0, &buf);
        prop_assert_eq!((scan.intact_records, scan.damaged.len(), scan.torn_tail), (1, 0, None));
    }

    #[test]
    fn damage_costs_only_the_frames_it_touches(
        payloads in payloads(64, 12),
        arrival_ms in any::<i64>(),
        damage in proptest::collection::vec(damage(), 1..4),
        base in prop_oneof![Just(0u64), (1u64..1 << 40)],
    ) {
        let (buf, frames) = encode_all(&payloads, arrival_ms);
        let (damaged, starts) = apply_damage(&buf, &frames, &damage);
        let scan = scan_segment(base, &damaged);
        let found = intact_positions(base, &damaged, &scan).map_err(TestCaseError::fail)?;
        let untouched: Vec<usize> = starts.iter().flatten().copied().collect();
        // Every untouched frame is found intact, and nothing else is: no
        // touched frame passes its CRC, no frame is conjured from the bytes.
        for &at in &untouched {
            prop_assert!(found.contains(&at), "untouched frame at {} not found: {:?}", at, scan);
        }
        // (A splice may leave a frame's bytes as they were: then it is the
        // frame that was written, and may be found.)
        let written = |at: usize| {
            frames.iter().any(|r| damaged.get(at..at + r.len()) == Some(&buf[r.clone()]))
        };
        let conjured: Vec<&usize> =
            found.iter().filter(|&&at| !untouched.contains(&at) && !written(at)).collect();
        prop_assert!(conjured.is_empty(), "frames at {:?} were never written", conjured);
        // Damaged ranges hold no untouched frame's byte.
        for d in &scan.damaged {
            let range = (d.start - base) as usize..(d.end - base) as usize;
            for (&at, r) in starts.iter().zip(&frames) {
                if let Some(at) = at {
                    let frame = at..at + r.len();
                    prop_assert!(range.end <= frame.start || frame.end <= range.start,
                        "damage {:?} overlaps the untouched frame {:?}", d, frame);
                }
            }
        }
        // When the damage kept every frame's magic in place and made no new
        // one, the counts add up: intact + lost (damaged or torn) = written.
        let in_place = damage.iter().all(|d| !matches!(d, Damage::Splice { .. }));
        let magic_at = |b: &[u8], at: usize| b.get(at..at + 4) == Some(&HIT_LOG.magic[..]);
        if in_place
            && count_magic(&buf) == frames.len()
            && count_magic(&damaged) == frames.len()
            && frames.iter().all(|r| magic_at(&damaged, r.start))
        {
            let torn = scan.torn_tail.map_or(0, |t| count_magic(&damaged[damaged.len() - t as usize..]));
            let lost: usize = scan.damaged.iter().map(|d| d.records).sum();
            prop_assert_eq!(scan.intact_records + lost + torn, frames.len(), "{:?}", scan);
        }
    }

    #[test]
    fn a_truncated_tail_is_a_torn_tail(
        payloads in payloads(64, 8),
        cut in any::<prop::sample::Index>(),
        zeros in prop_oneof![Just(0usize), 1usize..64],
    ) {
        let (buf, frames) = encode_all(&payloads, 7);
        let last = frames.last().unwrap().clone();
        // Cut inside the last frame (keeping 0..len-1 of its bytes), then
        // maybe zeros (blocks allocated but never written by a crash): any
        // number after a frame boundary; after a whole header, as long as
        // they do not reach the frame's end. (A cut inside the header then
        // zeros, or zeros up to the frame's length, read as a damaged last
        // frame: reported, not cut, as a frame written whole and damaged
        // since must be; nothing intact is lost either way.)
        let keep = last.start + cut.index(last.len());
        let mut torn = buf[..keep].to_vec();
        let zeros = if keep == last.start {
            zeros
        } else if keep >= last.start + HEADER_LEN {
            zeros.min(last.end - keep - 1)
        } else {
            0
        };
        torn.resize(keep + zeros, 0);
        let scan = scan_segment(0, &torn);
        prop_assert!(scan.damaged.is_empty(), "{:?}", scan);
        prop_assert_eq!(scan.intact_records, frames.len() - 1);
        let tail = (torn.len() - last.start) as u64;
        prop_assert_eq!(scan.torn_tail, (tail > 0).then_some(tail));
        prop_assert_eq!(scan.intact_end(), last.start as u64);
    }
}

/// The real log: append, flip bytes in its segment files, reopen, read.
mod real_log {
    use super::*;
    use gender_embedded::{DamagedRange, LogReader};
    use std::path::{Path, PathBuf};

    fn clock() -> i64 {
        1_795_514_400_000
    }

    fn segment(dir: &Path, base: u64) -> PathBuf {
        dir.join(format!("{base:020}.seg"))
    }

    /// Reads everything from 0 in pages of about `page` bytes.
    fn read_paged(reader: &LogReader, page: usize) -> (Vec<LogEntry>, Vec<DamagedRange>) {
        let (mut entries, mut damaged) = (Vec::new(), Vec::new());
        let mut next = 0;
        while next < reader.durable_end() {
            let read = reader.read(next, page).unwrap();
            assert!(read.next > next, "a read made no progress at {next}");
            entries.extend(read.entries);
            damaged.extend(read.damaged);
            next = read.next;
        }
        (entries, damaged)
    }

    /// Flips bytes of the log's history (`before`: every segment's bytes
    /// back to back) and says which records (offset, payload) it touched:
    /// any of their bytes differ (two flips of one bit cancel out).
    fn flip(
        before: &[u8],
        flips: &[(prop::sample::Index, u8)],
        written: &[(u64, Vec<u8>)],
    ) -> (Vec<u8>, Vec<bool>) {
        let mut after = before.to_vec();
        for (at, mask) in flips {
            after[at.index(before.len())] ^= mask;
        }
        let touched = written
            .iter()
            .map(|(offset, p)| {
                let range = *offset as usize..*offset as usize + HEADER_LEN + p.len();
                after[range.clone()] != before[range]
            })
            .collect();
        (after, touched)
    }

    /// Reopens the damaged log in `dir` (whose newest segment starts at
    /// `newest`) and checks what is read back from it.
    fn reopen_and_read(
        dir: &Path,
        written: &[(u64, Vec<u8>)],
        touched: &[bool],
        newest: u64,
        total: u64,
        page: usize,
    ) -> Result<(), TestCaseError> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let (log, reader) = HitLogFile::open(dir, clock).unwrap();
        let end = log.durable_end();
        prop_assert!(end <= total);
        let (entries, damaged) = read_paged(&reader, page);
        // Every untouched record, exactly once, in order, as written.
        let want: Vec<(u64, Vec<u8>)> = written
            .iter()
            .zip(touched)
            .filter(|(_, t)| !**t)
            .map(|(w, _)| w.clone())
            .collect();
        let got: Vec<(u64, Vec<u8>)> = entries
            .iter()
            .map(|e| (e.offset, e.payload.clone()))
            .collect();
        prop_assert_eq!(&got, &want);
        prop_assert!(entries.iter().all(|e| e.arrival_ms == clock()));
        // Every touched record is reported damaged, or was cut off at open
        // as a torn tail of the newest segment (a length field flipped in
        // its last frames looks exactly like a torn write).
        for ((offset, _), _) in written.iter().zip(touched).filter(|(_, t)| **t) {
            let reported = damaged
                .iter()
                .any(|d| d.start <= *offset && *offset < d.end);
            let cut = *offset >= end && *offset >= newest;
            prop_assert!(
                reported || cut,
                "touched record at {} neither reported nor cut: {:?}, end {}",
                offset,
                damaged,
                end
            );
        }
        // What was cut off holds touched records only.
        for ((offset, _), t) in written.iter().zip(touched) {
            prop_assert!(
                *offset < end || *t,
                "untouched record at {} cut off",
                offset
            );
        }
        // The offline scan finds the same intact records and, but for torn
        // tails of older segments (which the reader reports as damage),
        // the same damage.
        let scans = gender_embedded::scan_log(dir).unwrap();
        let intact: usize = scans.iter().map(|s| s.intact_records).sum();
        prop_assert_eq!(intact, want.len());
        let mut scanned: Vec<DamagedRange> = scans.iter().flat_map(|s| s.damaged.clone()).collect();
        scanned.extend(scans.iter().filter_map(|s| {
            let torn = s.torn_tail?;
            Some(DamagedRange {
                start: s.intact_end(),
                end: s.intact_end() + torn,
                records: 0,
            })
        }));
        scanned.sort_by_key(|d| d.start);
        let spans = |r: &[DamagedRange]| r.iter().map(|d| (d.start, d.end)).collect::<Vec<_>>();
        prop_assert_eq!(spans(&scanned), spans(&damaged));
        // The log goes on after the damage, and the new record is read.
        let ack = rt
            .block_on(log.append_payloads(vec![b"after".to_vec()]))
            .unwrap();
        let read = reader.read(end, usize::MAX).unwrap();
        prop_assert_eq!(read.entries.len(), 1);
        prop_assert_eq!(&read.entries[0].payload, b"after");
        prop_assert_eq!(read.next, ack.end_offset);
        Ok(())
    }

    proptest! {
        #![proptest_config(config(100))]

        #[test]
        fn every_untouched_record_is_read_once_in_order_and_touched_ones_reported(
            batches in proptest::collection::vec(payloads(48, 6), 1..4),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
            page in prop_oneof![Just(usize::MAX), 1usize..300],
        ) {
            let dir = tempfile::tempdir().unwrap();
            let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
            let mut written: Vec<(u64, Vec<u8>)> = Vec::new();
            {
                let (log, _) = HitLogFile::open(dir.path(), clock).unwrap();
                let mut offset = 0;
                for batch in &batches {
                    for p in batch {
                        written.push((offset, p.clone()));
                        offset += (HEADER_LEN + p.len()) as u64;
                    }
                    let ack = rt.block_on(log.append_payloads(batch.clone())).unwrap();
                    prop_assert_eq!(ack.end_offset, offset);
                }
            }
            let path = segment(dir.path(), 0);
            let before = std::fs::read(&path).unwrap();
            let (after, touched) = flip(&before, &flips, &written);
            std::fs::write(&path, &after).unwrap();
            reopen_and_read(dir.path(), &written, &touched, 0, before.len() as u64, page)?;
        }

        #[test]
        fn damage_in_any_segment_costs_only_its_records(
            segments in proptest::collection::vec(payloads(48, 5), 1..4),
            flips in proptest::collection::vec((any::<prop::sample::Index>(), 1u8..=255), 1..4),
            page in prop_oneof![Just(usize::MAX), 1usize..300],
        ) {
            // Segments as rotation leaves them, each named by the offset it
            // starts at (rotation itself waits for 64 MiB).
            let dir = tempfile::tempdir().unwrap();
            let mut before = Vec::new();
            let mut written = Vec::new();
            let mut bases = Vec::new();
            for payloads in &segments {
                bases.push(before.len() as u64);
                for p in payloads {
                    written.push((before.len() as u64, p.clone()));
                    HIT_LOG.encode(clock() as u64, p, &mut before);
                }
            }
            let (after, touched) = flip(&before, &flips, &written);
            for (i, &base) in bases.iter().enumerate() {
                let end = bases.get(i + 1).map_or(after.len(), |&b| b as usize);
                std::fs::write(segment(dir.path(), base), &after[base as usize..end]).unwrap();
            }
            let newest = *bases.last().unwrap();
            reopen_and_read(dir.path(), &written, &touched, newest, before.len() as u64, page)?;
        }
    }
}

/// The largest payload round-trips; a length one past it is not a frame.
#[test]
fn the_largest_record_round_trips_and_one_byte_more_is_bad() {
    let payload = vec![0xa5; MAX_RECORD_BYTES];
    let mut buf = Vec::new();
    HIT_LOG.encode(-1i64 as u64, &payload, &mut buf);
    assert_eq!(
        HIT_LOG.parse(&buf),
        Parsed::Frame {
            word: -1i64 as u64,
            payload: &payload,
            len: HEADER_LEN + MAX_RECORD_BYTES
        }
    );
    let mut too_long = buf[..HEADER_LEN].to_vec();
    too_long[4..8].copy_from_slice(&(MAX_RECORD_BYTES as u32 + 1).to_le_bytes());
    assert_eq!(HIT_LOG.parse(&too_long), Parsed::Bad);
}
