//! The on-disk frame of the hit log (format 2; docs/ARCHITECTURE.md) and of
//! the state store's journal:
//!
//! ```text
//! [magic][u32 LE payload length][u32 LE CRC-32][8-byte LE word][payload]
//! ```
//!
//! The hit log's magic is "GSL2" and its word the arrival time in ms; the
//! journal's are "GSJ1" and the record's sequence number. The CRC covers the
//! length, the word and the payload. The magic
//! lets a reader find the next intact frame after damaged bytes, so damage
//! costs the frames it hit and never the ones after it.

/// A framing: the four bytes every frame starts with and the largest
/// payload a frame may carry (a larger length is damage). The hit log and
/// the state store's journal share the layout with different magics, so a
/// file of one never parses as the other.
#[derive(Debug, Clone, Copy)]
pub struct Format {
    pub magic: [u8; 4],
    pub max_payload: usize,
}

/// The hit log's frames; the 8-byte word is the arrival time in ms.
pub const HIT_LOG: Format = Format {
    magic: *b"GSL2",
    max_payload: MAX_RECORD_BYTES,
};

/// Magic, length, CRC, the 8-byte word.
pub const HEADER_LEN: usize = 20;
/// The largest payload a hit-log frame may carry.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

fn checksum(len: &[u8], word: &[u8], payload: &[&[u8]]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(len);
    crc.update(word);
    for part in payload {
        crc.update(part);
    }
    crc.finalize()
}

/// What the bytes at a position hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// An intact frame of `len` bytes in all.
    Frame {
        /// The header's 8-byte word (the hit log's arrival time, the
        /// journal's sequence number).
        word: u64,
        payload: &'a [u8],
        len: usize,
    },
    /// The bytes end inside a frame whose header looks right: more bytes
    /// are needed (or, at the end of a file, a write was torn).
    Incomplete,
    /// Not an intact frame: wrong magic, impossible length or wrong CRC.
    Bad,
}

impl Format {
    /// Appends one frame to `out`.
    pub fn encode(&self, word: u64, payload: &[u8], out: &mut Vec<u8>) {
        out.reserve(HEADER_LEN + payload.len());
        out.extend_from_slice(&self.header(word, &[payload]));
        out.extend_from_slice(payload);
    }

    /// The header of a frame whose payload is `parts` one after another:
    /// a large payload can then be written from where it is, uncopied.
    pub fn header(&self, word: u64, parts: &[&[u8]]) -> [u8; HEADER_LEN] {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        let len = (total as u32).to_le_bytes();
        let word = word.to_le_bytes();
        // One CRC over the header's fields and the parts in order: combining
        // a separate CRC of the payload (`header_of`) costs more than the
        // CRC itself for a hit-log frame of some 50 KB.
        self.assemble(&len, &word, checksum(&len, &word, parts))
    }

    /// The header of a frame whose payload of `len` bytes was hashed into
    /// `payload` (a CRC-32 of the payload alone): a payload produced piece by
    /// piece is checksummed without being held whole.
    pub fn header_of(
        &self,
        word: u64,
        len: usize,
        payload: &crc32fast::Hasher,
    ) -> [u8; HEADER_LEN] {
        let len = (len as u32).to_le_bytes();
        let word = word.to_le_bytes();
        let mut crc = crc32fast::Hasher::new();
        crc.update(&len);
        crc.update(&word);
        crc.combine(payload);
        self.assemble(&len, &word, crc.finalize())
    }

    fn assemble(&self, len: &[u8; 4], word: &[u8; 8], crc: u32) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[..4].copy_from_slice(&self.magic);
        out[4..8].copy_from_slice(len);
        out[8..12].copy_from_slice(&crc.to_le_bytes());
        out[12..].copy_from_slice(word);
        out
    }

    /// Parses the frame at the start of `buf`.
    pub fn parse<'a>(&self, buf: &'a [u8]) -> Parsed<'a> {
        let magic = &self.magic;
        if buf.len() < HEADER_LEN {
            return if magic.starts_with(&buf[..buf.len().min(magic.len())]) {
                Parsed::Incomplete
            } else {
                Parsed::Bad
            };
        }
        if buf[..4] != *magic {
            return Parsed::Bad;
        }
        let len = u32::from_le_bytes(buf[4..8].try_into().expect("4 bytes")) as usize;
        if len > self.max_payload {
            return Parsed::Bad;
        }
        let total = HEADER_LEN + len;
        if buf.len() < total {
            return Parsed::Incomplete;
        }
        let payload = &buf[HEADER_LEN..total];
        let stored = u32::from_le_bytes(buf[8..12].try_into().expect("4 bytes"));
        if checksum(&buf[4..8], &buf[12..20], &[payload]) != stored {
            return Parsed::Bad;
        }
        Parsed::Frame {
            word: u64::from_le_bytes(buf[12..20].try_into().expect("8 bytes")),
            payload,
            len: total,
        }
    }

    /// The position of the next intact frame strictly after position 0 of
    /// `buf`, if `buf` holds one whole.
    pub fn next_intact(&self, buf: &[u8]) -> Option<usize> {
        let mut from = 1;
        while from < buf.len() {
            let at = from + self.find_magic(&buf[from..])?;
            if let Parsed::Frame { .. } = self.parse(&buf[at..]) {
                return Some(at);
            }
            from = at + 1;
        }
        None
    }

    /// How many frame starts (magic bytes) lie in `buf`: the number of
    /// records a damaged range most likely held (at least one).
    pub fn frames_started_in(&self, buf: &[u8]) -> usize {
        let mut count = 0;
        let mut from = 0;
        while let Some(at) = self.find_magic(&buf[from..]) {
            count += 1;
            from += at + 1;
        }
        count.max(1)
    }

    fn find_magic(&self, buf: &[u8]) -> Option<usize> {
        buf.windows(self.magic.len()).position(|w| w == self.magic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            HIT_LOG.encode(7, p, &mut out);
        }
        out
    }

    #[test]
    fn a_frame_round_trips() {
        let buf = frames(&[b"hello"]);
        assert_eq!(
            HIT_LOG.parse(&buf),
            Parsed::Frame {
                word: 7,
                payload: b"hello",
                len: HEADER_LEN + 5
            }
        );
        assert_eq!(HIT_LOG.parse(&buf[..buf.len() - 1]), Parsed::Incomplete);
        assert_eq!(HIT_LOG.parse(&buf[..3]), Parsed::Incomplete);
        assert_eq!(HIT_LOG.parse(&[]), Parsed::Incomplete);
    }

    /// A header from the parts themselves and one from a CRC of the payload
    /// computed apart (the journal's streamed records) are the same bytes.
    #[test]
    fn a_header_from_parts_and_from_a_payload_crc_agree() {
        let payload: Vec<u8> = (0..70_000u32).map(|i| (i * 31 % 251) as u8).collect();
        for cut in [0, 1, 4_096, 69_999, 70_000] {
            let (a, b) = payload.split_at(cut);
            let mut crc = crc32fast::Hasher::new();
            crc.update(a);
            crc.update(b);
            let streamed = HIT_LOG.header_of(42, payload.len(), &crc);
            assert_eq!(HIT_LOG.header(42, &[a, b]), streamed, "cut {cut}");
            let mut framed = streamed.to_vec();
            framed.extend_from_slice(&payload);
            assert!(matches!(
                HIT_LOG.parse(&framed),
                Parsed::Frame { word: 42, .. }
            ));
        }
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
                    !matches!(HIT_LOG.parse(&damaged), Parsed::Frame { payload, .. } if payload == b"first record"),
                    "flip at {byte}:{bit} went unnoticed"
                );
                if let Parsed::Frame { .. } = HIT_LOG.parse(&damaged) {
                    panic!("flip at {byte}:{bit} parsed as a frame");
                }
                assert_eq!(
                    HIT_LOG.next_intact(&damaged),
                    Some(second),
                    "flip at {byte}:{bit}"
                );
            }
        }
    }

    #[test]
    fn damaged_ranges_count_the_frames_that_started_in_them() {
        let buf = frames(&[b"a", b"b", b"c"]);
        assert_eq!(HIT_LOG.frames_started_in(&buf), 3);
        assert_eq!(HIT_LOG.frames_started_in(b"garbage"), 1);
    }
}
