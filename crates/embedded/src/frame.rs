//! The on-disk frame of the hit log (format 2; docs/ARCHITECTURE.md):
//!
//! ```text
//! [magic "GSL2"][u32 LE payload length][u32 LE CRC-32][i64 LE arrival ms][payload]
//! ```
//!
//! The CRC covers the length, the arrival time and the payload. The magic
//! lets a reader find the next intact frame after damaged bytes, so damage
//! costs the frames it hit and never the ones after it.

/// The four bytes every frame starts with.
pub const MAGIC: [u8; 4] = *b"GSL2";
/// Magic, length, CRC, arrival time.
pub const HEADER_LEN: usize = 20;
/// The largest payload a frame may carry.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

/// Appends one frame to `out`.
pub fn encode(payload: &[u8], arrival_ms: i64, out: &mut Vec<u8>) {
    let len = (payload.len() as u32).to_le_bytes();
    let arrival = arrival_ms.to_le_bytes();
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&len);
    out.extend_from_slice(&checksum(&len, &arrival, payload).to_le_bytes());
    out.extend_from_slice(&arrival);
    out.extend_from_slice(payload);
}

fn checksum(len: &[u8], arrival: &[u8], payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(len);
    crc.update(arrival);
    crc.update(payload);
    crc.finalize()
}

/// What the bytes at a position hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// An intact frame of `len` bytes in all.
    Frame {
        arrival_ms: i64,
        payload: &'a [u8],
        len: usize,
    },
    /// The bytes end inside a frame whose header looks right: more bytes
    /// are needed (or, at the end of a file, a write was torn).
    Incomplete,
    /// Not an intact frame: wrong magic, impossible length or wrong CRC.
    Bad,
}

/// Parses the frame at the start of `buf`.
pub fn parse(buf: &[u8]) -> Parsed<'_> {
    if buf.len() < HEADER_LEN {
        return if MAGIC.starts_with(&buf[..buf.len().min(MAGIC.len())]) {
            Parsed::Incomplete
        } else {
            Parsed::Bad
        };
    }
    if buf[..4] != MAGIC {
        return Parsed::Bad;
    }
    let len = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes")) as usize;
    if len > MAX_RECORD_BYTES {
        return Parsed::Bad;
    }
    let total = HEADER_LEN + len;
    if buf.len() < total {
        return Parsed::Incomplete;
    }
    let payload = &buf[HEADER_LEN..total];
    let stored = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes"));
    if checksum(&buf[4..8], &buf[12..20], payload) != stored {
        return Parsed::Bad;
    }
    Parsed::Frame {
        arrival_ms: i64::from_le_bytes(buf[12..20].try_into().expect("8 bytes")),
        payload,
        len: total,
    }
}

/// The position of the next intact frame strictly after position 0 of
/// `buf`, if `buf` holds one whole.
pub fn next_intact(buf: &[u8]) -> Option<usize> {
    let mut from = 1;
    while from < buf.len() {
        let at = from + memchr_magic(&buf[from..])?;
        if let Parsed::Frame { .. } = parse(&buf[at..]) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// How many frame starts (magic bytes) lie in `buf`: the number of records a
/// damaged range most likely held (at least one).
pub fn frames_started_in(buf: &[u8]) -> usize {
    let mut count = 0;
    let mut from = 0;
    while let Some(at) = memchr_magic(&buf[from..]) {
        count += 1;
        from += at + 1;
    }
    count.max(1)
}

fn memchr_magic(buf: &[u8]) -> Option<usize> {
    buf.windows(MAGIC.len()).position(|w| w == MAGIC)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode(p, 7, &mut out);
        }
        out
    }

    #[test]
    fn a_frame_round_trips() {
        let buf = frames(&[b"hello"]);
        assert_eq!(
            parse(&buf),
            Parsed::Frame {
                arrival_ms: 7,
                payload: b"hello",
                len: HEADER_LEN + 5
            }
        );
        assert_eq!(parse(&buf[..buf.len() - 1]), Parsed::Incomplete);
        assert_eq!(parse(&buf[..3]), Parsed::Incomplete);
        assert_eq!(parse(&[]), Parsed::Incomplete);
    }

    #[test]
    fn every_single_bit_flip_is_detected_and_the_next_frame_found() {
        let buf = frames(&[b"first record", b"second"]);
        let second = HEADER_LEN + 12;
        for byte in 0..second {
            for bit in 0..8 {
                let mut damaged = buf.clone();
                damaged[byte] ^= 1 << bit;
                assert!(
                    !matches!(parse(&damaged), Parsed::Frame { payload, .. } if payload == b"first record"),
                    "flip at {byte}:{bit} went unnoticed"
                );
                if let Parsed::Frame { .. } = parse(&damaged) {
                    panic!("flip at {byte}:{bit} parsed as a frame");
                }
                assert_eq!(next_intact(&damaged), Some(second), "flip at {byte}:{bit}");
            }
        }
    }

    #[test]
    fn damaged_ranges_count_the_frames_that_started_in_them() {
        let buf = frames(&[b"a", b"b", b"c"]);
        assert_eq!(frames_started_in(&buf), 3);
        assert_eq!(frames_started_in(b"garbage"), 1);
    }
}
