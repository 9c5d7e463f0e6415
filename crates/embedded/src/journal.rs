//! The state store's journal: append-only files of CRC-framed records, one
//! record per state change (a curate transaction, a delivery step), each
//! `fdatasync`'ed before the change is acknowledged. A checkpoint merges the
//! records into redb and deletes the files it covers (see [`crate::state`]).
//!
//! ```text
//! [magic "GSJ1"][u32 LE payload length][u32 LE CRC-32][u64 LE sequence][payload]
//! ```
//!
//! The CRC covers the length, the sequence and the payload. Files live in
//! one directory, each named by the sequence of the first record it may hold
//! (`<seq, 20 digits>.jnl`); a new file is started at every checkpoint.
//!
//! Damage: an incomplete frame at the end of a file is a write torn by a
//! crash (never acknowledged) and is ignored; a bad frame followed by intact
//! ones is reported and skipped, the records after it kept.

use crate::EmbeddedError;
use crate::frame::{Format, Parsed};
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

/// The journal's frames; the 8-byte word is the record's sequence number.
const JOURNAL: Format = Format {
    magic: *b"GSJ1",
    // Larger claims are damage, not records.
    max_payload: 1 << 30,
};

/// Appends one frame to `out` (tests write frames of their own).
#[cfg(test)]
pub(crate) fn encode_frame(seq: u64, payload: &[u8], out: &mut Vec<u8>) {
    JOURNAL.encode(seq, payload, out);
}

/// Produces a payload piece by piece: calls its argument with each chunk.
pub(crate) type PayloadStream<'a> = dyn Fn(&mut dyn FnMut(&[u8])) + 'a;

/// One intact record read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct JournalRecord {
    pub seq: u64,
    pub payload: Vec<u8>,
}

/// What a scan of the journal found besides the intact records.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct ScanReport {
    /// Bytes of torn (incomplete, never acknowledged) tails ignored.
    pub torn_bytes: u64,
    /// Damaged ranges skipped (file, byte offset, length).
    pub damaged: Vec<(PathBuf, u64, u64)>,
}

/// Parses one file's bytes into records, skipping damage.
fn scan_bytes(path: &Path, buf: &[u8], out: &mut Vec<JournalRecord>, report: &mut ScanReport) {
    let mut pos = 0;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let parsed = JOURNAL.parse(rest);
        if let Parsed::Frame { word, payload, len } = parsed {
            out.push(JournalRecord {
                seq: word,
                payload: payload.to_vec(),
            });
            pos += len;
            continue;
        }
        match JOURNAL.next_intact(rest) {
            Some(skip) => {
                report
                    .damaged
                    .push((path.to_owned(), pos as u64, skip as u64));
                pos += skip;
            }
            None if matches!(parsed, Parsed::Incomplete) || rest.iter().all(|&b| b == 0) => {
                report.torn_bytes += rest.len() as u64;
                break;
            }
            None => {
                report
                    .damaged
                    .push((path.to_owned(), pos as u64, rest.len() as u64));
                break;
            }
        }
    }
}

fn file_path(dir: &Path, first_seq: u64) -> PathBuf {
    dir.join(format!("{first_seq:020}.jnl"))
}

/// The journal files in `dir`, by the sequence they start at.
pub(crate) fn list_files(dir: &Path) -> Result<Vec<(u64, PathBuf)>, EmbeddedError> {
    let mut files = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(files),
        Err(e) => return Err(EmbeddedError::io("list state journal", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| EmbeddedError::io("list state journal", dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".jnl")) else {
            continue;
        };
        if let Ok(seq) = stem.parse::<u64>() {
            files.push((seq, entry.path()));
        }
    }
    files.sort();
    Ok(files)
}

/// Every intact record of every file in `dir`, in file and write order.
pub(crate) fn scan(dir: &Path) -> Result<(Vec<JournalRecord>, ScanReport), EmbeddedError> {
    let mut records = Vec::new();
    let mut report = ScanReport::default();
    for (_, path) in list_files(dir)? {
        let buf = fs::read(&path).map_err(|e| EmbeddedError::io("read state journal", &path, e))?;
        scan_bytes(&path, &buf, &mut records, &mut report);
    }
    Ok((records, report))
}

fn sync_dir(dir: &Path) -> Result<(), EmbeddedError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| EmbeddedError::io("sync state journal dir", dir, e))
}

/// Deletes the files that start before `keep_from` (their records are all
/// checkpointed).
pub(crate) fn remove_before(dir: &Path, keep_from: u64) -> Result<usize, EmbeddedError> {
    let mut removed = 0;
    for (seq, path) in list_files(dir)? {
        if seq < keep_from {
            fs::remove_file(&path)
                .map_err(|e| EmbeddedError::io("remove state journal file", &path, e))?;
            removed += 1;
        }
    }
    if removed > 0 {
        sync_dir(dir)?;
    }
    Ok(removed)
}

/// The file being appended to.
pub(crate) struct JournalWriter {
    dir: PathBuf,
    file: File,
    path: PathBuf,
    /// Bytes known durable: everything written and fsync'ed so far.
    len: u64,
    /// An append failed after writing some bytes: they are cut off before
    /// anything else is written, so no unacknowledged record stays in the
    /// file with acknowledged ones after it.
    dirty: bool,
    frame: Vec<u8>,
}

impl JournalWriter {
    /// Starts a new, empty file for records from `first_seq` on.
    pub(crate) fn create(dir: &Path, first_seq: u64) -> Result<JournalWriter, EmbeddedError> {
        fs::create_dir_all(dir).map_err(|e| EmbeddedError::io("create state journal", dir, e))?;
        let path = file_path(dir, first_seq);
        let file = OpenOptions::new()
            .create(true)
            .write(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| EmbeddedError::io("create state journal file", &path, e))?;
        file.sync_all()
            .map_err(|e| EmbeddedError::io("sync state journal file", &path, e))?;
        sync_dir(dir)?;
        Ok(JournalWriter {
            dir: dir.to_owned(),
            file,
            path,
            len: 0,
            dirty: false,
            frame: Vec::new(),
        })
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// One record whose payload is in one piece (tests).
    #[cfg(test)]
    pub(crate) fn append(&mut self, seq: u64, payload: &[u8]) -> Result<u64, EmbeddedError> {
        self.append_parts(seq, &[payload])
    }

    /// Appends one record, its payload the `parts` one after another, and
    /// makes it durable; on error nothing of it remains once the next append
    /// (or [`JournalWriter::repair`]) succeeds. Large parts are written from
    /// where they are: a record of a million hit identities is not copied
    /// into a frame first.
    #[cfg(test)]
    pub(crate) fn append_parts(&mut self, seq: u64, parts: &[&[u8]]) -> Result<u64, EmbeddedError> {
        self.append_streamed(seq, parts, &|_| {})
    }

    /// [`append_parts`](Self::append_parts) with more of the payload after
    /// the parts: what `stream` hands its callback, chunk by chunk. It is
    /// called twice and must produce the same bytes both times: once to
    /// checksum them for the frame's header, once to write them. So a record
    /// of a million visitors is never encoded whole in memory.
    pub(crate) fn append_streamed(
        &mut self,
        seq: u64,
        parts: &[&[u8]],
        stream: &PayloadStream<'_>,
    ) -> Result<u64, EmbeddedError> {
        /// Parts up to this size are gathered with the header into one write.
        const GATHERED: usize = 64 * 1024;
        let mut crc = crc32fast::Hasher::new();
        let mut stream_len = 0;
        for part in parts {
            crc.update(part);
        }
        stream(&mut |chunk| {
            crc.update(chunk);
            stream_len += chunk.len();
        });
        let len = parts.iter().map(|p| p.len()).sum::<usize>() + stream_len;
        if len > JOURNAL.max_payload {
            return Err(EmbeddedError::io(
                "append state journal",
                &self.path,
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    format!(
                        "a record of {len} bytes, more than the journal's {} per record",
                        JOURNAL.max_payload
                    ),
                ),
            ));
        }
        self.repair()?;
        self.frame.clear();
        self.frame
            .extend_from_slice(&JOURNAL.header_of(seq, len, &crc));
        self.dirty = true;
        let mut written = Ok(());
        for part in parts {
            if part.len() <= GATHERED {
                self.frame.extend_from_slice(part);
            } else {
                written = written
                    .and_then(|()| self.file.write_all(&self.frame))
                    .and_then(|()| self.file.write_all(part));
                self.frame.clear();
            }
        }
        written = written.and_then(|()| self.file.write_all(&self.frame));
        let (file, mut streamed) = (&mut self.file, 0);
        stream(&mut |chunk| {
            streamed += chunk.len();
            if written.is_ok() {
                written = file.write_all(chunk);
            }
        });
        let total = (len + crate::frame::HEADER_LEN) as u64;
        let written = written
            .and_then(|()| {
                // A stream that changed between the two calls would leave a
                // frame its header does not describe.
                if streamed == stream_len {
                    Ok(())
                } else {
                    Err(std::io::Error::other(
                        "a journal record changed while written",
                    ))
                }
            })
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Try to cut the partial record off right away; if that fails
            // too, the next append tries again before writing.
            let _ = self.repair();
            return Err(EmbeddedError::io("append state journal", &self.path, e));
        }
        self.dirty = false;
        self.len += total;
        Ok(total)
    }

    /// Cuts off what a failed append left behind.
    fn repair(&mut self) -> Result<(), EmbeddedError> {
        if !self.dirty {
            return Ok(());
        }
        use std::io::Seek;
        self.file
            .set_len(self.len)
            .and_then(|()| self.file.sync_all())
            .and_then(|()| {
                self.file
                    .seek(std::io::SeekFrom::Start(self.len))
                    .map(|_| ())
            })
            .map_err(|e| {
                EmbeddedError::io("cut off a failed state journal append", &self.path, e)
            })?;
        self.dirty = false;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::HEADER_LEN;

    fn payloads(records: &[JournalRecord]) -> Vec<(u64, &[u8])> {
        records
            .iter()
            .map(|r| (r.seq, r.payload.as_slice()))
            .collect()
    }

    #[test]
    fn records_round_trip_across_files_and_a_torn_tail_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let jdir = dir.path().join("j");
        let mut w = JournalWriter::create(&jdir, 1).unwrap();
        w.append(1, b"one").unwrap();
        w.append(2, b"two").unwrap();
        let mut w = JournalWriter::create(&jdir, 3).unwrap();
        w.append(3, b"three").unwrap();
        // A crash in the middle of the next append.
        let mut torn = Vec::new();
        encode_frame(4, b"four, never acknowledged", &mut torn);
        let mut f = OpenOptions::new()
            .append(true)
            .open(file_path(&jdir, 3))
            .unwrap();
        f.write_all(&torn[..torn.len() - 3]).unwrap();
        let (records, report) = scan(&jdir).unwrap();
        assert_eq!(
            payloads(&records),
            [(1, &b"one"[..]), (2, b"two"), (3, b"three")]
        );
        assert_eq!(report.torn_bytes, torn.len() as u64 - 3);
        assert!(report.damaged.is_empty());
        assert_eq!(remove_before(&jdir, 3).unwrap(), 1);
        assert_eq!(payloads(&scan(&jdir).unwrap().0), [(3, &b"three"[..])]);
    }

    #[test]
    fn a_damaged_record_is_skipped_and_the_next_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = JournalWriter::create(dir.path(), 1).unwrap();
        for (seq, p) in [(1, &b"first"[..]), (2, b"second"), (3, b"third")] {
            w.append(seq, p).unwrap();
        }
        let path = file_path(dir.path(), 1);
        let mut bytes = fs::read(&path).unwrap();
        let second = HEADER_LEN + 5;
        bytes[second + HEADER_LEN + 1] ^= 0x40;
        fs::write(&path, &bytes).unwrap();
        let (records, report) = scan(dir.path()).unwrap();
        assert_eq!(payloads(&records), [(1, &b"first"[..]), (3, b"third")]);
        assert_eq!(report.damaged.len(), 1);
        assert_eq!(report.damaged[0].1, second as u64);
    }

    #[test]
    fn a_streamed_record_is_one_frame_and_a_stream_that_changes_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = JournalWriter::create(dir.path(), 1).unwrap();
        let big = vec![5u8; 100_000];
        let chunks = |each: &mut dyn FnMut(&[u8])| {
            for i in 0..50u8 {
                each(&[i; 1000]);
            }
        };
        w.append_streamed(1, &[b"head", &big], &chunks).unwrap();
        // A stream that differs between its two calls: refused, nothing of
        // it left behind, the next record written as usual.
        let calls = std::cell::Cell::new(0);
        let changing = |each: &mut dyn FnMut(&[u8])| {
            calls.set(calls.get() + 1);
            each(&vec![1; 10 * calls.get()]);
        };
        assert!(w.append_streamed(2, &[b"x"], &changing).is_err());
        w.append(3, b"three").unwrap();
        let (records, report) = scan(dir.path()).unwrap();
        let mut want = b"head".to_vec();
        want.extend_from_slice(&big);
        (0..50u8).for_each(|i| want.extend_from_slice(&[i; 1000]));
        assert_eq!(payloads(&records), [(1, &want[..]), (3, b"three")]);
        assert_eq!(report, ScanReport::default());
    }

    #[test]
    fn an_empty_or_missing_journal_has_no_records() {
        let dir = tempfile::tempdir().unwrap();
        assert!(scan(&dir.path().join("none")).unwrap().0.is_empty());
        JournalWriter::create(dir.path(), 7).unwrap();
        let (records, report) = scan(dir.path()).unwrap();
        assert!(records.is_empty());
        assert_eq!(report, ScanReport::default());
    }
}
