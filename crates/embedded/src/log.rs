//! The durable local hit log: append-only segment files of CRC-framed
//! records ([`crate::frame`]). One writer thread batches concurrent appends
//! into a single write and `fsync` (group commit); an append is acknowledged
//! only after its fsync, which is what makes a `202` durable. Offsets are byte
//! positions in the log's whole history; a segment file is named by the
//! offset it starts at.
//!
//! Damage (SPEC 16): a frame that fails its checks is skipped, never the
//! frames after it: readers resume at the next intact frame and report the
//! damaged range with its offsets and how many records it held. Only an
//! incomplete frame at the very end of the newest segment (a write torn by a
//! crash, never acknowledged) is cut off at open, its bytes kept beside the
//! segment as evidence.

use crate::EmbeddedError;
use crate::frame::{HEADER_LEN, HIT_LOG, Parsed};
use async_trait::async_trait;
use gender_core::PortError;
use gender_core::ports::{HitLog, LogRecord};
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot, watch};

const SEGMENT_TARGET_BYTES: u64 = 64 * 1024 * 1024;
/// One group commit writes at most about this much.
const GROUP_COMMIT_BYTES: usize = 8 * 1024 * 1024;
pub use crate::frame::MAX_RECORD_BYTES;

/// One record read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    pub offset: u64,
    pub arrival_ms: i64,
    pub payload: Vec<u8>,
}

/// When and where an append became durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendAck {
    pub end_offset: u64,
    pub arrival_ms: i64,
}

type Reply = oneshot::Sender<Result<AppendAck, EmbeddedError>>;

struct AppendRequest {
    records: Vec<Vec<u8>>,
    reply: Reply,
    /// Start a new segment once these records are durable ([`LogRoller`]).
    roll: bool,
}

/// The writing side. Dropping it (or [`HitLogFile::close`]) lets the writer
/// thread finish every queued append and exit.
pub struct HitLogFile {
    tx: Option<mpsc::Sender<AppendRequest>>,
    durable_end: watch::Receiver<u64>,
    writer: Option<std::thread::JoinHandle<()>>,
}

fn segment_path(dir: &Path, base: u64) -> PathBuf {
    dir.join(format!("{base:020}.seg"))
}

fn list_segments(dir: &Path) -> Result<Vec<u64>, EmbeddedError> {
    let mut bases = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| EmbeddedError::io("list log", dir, e))? {
        let entry = entry.map_err(|e| EmbeddedError::io("list log", dir, e))?;
        let name = entry.file_name();
        let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        if let Ok(base) = stem.parse::<u64>() {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

fn sync_dir(dir: &Path) -> Result<(), EmbeddedError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| EmbeddedError::io("sync log dir", dir, e))
}

/// A range of the log whose bytes are not intact frames.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DamagedRange {
    pub start: u64,
    pub end: u64,
    /// Records it most likely held (frame starts seen in it, at least one).
    pub records: usize,
}

impl std::fmt::Display for DamagedRange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "log bytes {}..{} damaged (about {} record(s) lost)",
            self.start, self.end, self.records
        )
    }
}

/// What one segment's bytes hold, from a scan of the whole of them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentScan {
    pub base: u64,
    pub bytes: u64,
    pub intact_records: usize,
    pub damaged: Vec<DamagedRange>,
    /// Bytes after the last intact frame that are an incomplete frame (or
    /// zeros): a torn, never acknowledged write, when in the newest segment.
    pub torn_tail: Option<u64>,
}

impl SegmentScan {
    /// Where the intact part of the segment ends (its length without the torn tail).
    pub fn intact_end(&self) -> u64 {
        self.base + self.bytes - self.torn_tail.unwrap_or(0)
    }
}

/// Scans one segment's bytes. A bad frame followed by an intact one is
/// damage; a trailing incomplete frame or zeros is a torn tail; a trailing
/// complete frame with a wrong CRC is damage too (it was written whole).
pub fn scan_segment(base: u64, buf: &[u8]) -> SegmentScan {
    let mut scan = SegmentScan {
        base,
        bytes: buf.len() as u64,
        intact_records: 0,
        damaged: Vec::new(),
        torn_tail: None,
    };
    let mut pos = 0;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let parsed = HIT_LOG.parse(rest);
        if let Parsed::Frame { len, .. } = parsed {
            scan.intact_records += 1;
            pos += len;
            continue;
        }
        match HIT_LOG.next_intact(rest) {
            Some(skip) => {
                scan.damaged.push(DamagedRange {
                    start: base + pos as u64,
                    end: base + (pos + skip) as u64,
                    records: HIT_LOG.frames_started_in(&rest[..skip]),
                });
                pos += skip;
            }
            None if parsed == Parsed::Incomplete || rest.iter().all(|&b| b == 0) => {
                scan.torn_tail = Some(rest.len() as u64);
                break;
            }
            None => {
                scan.damaged.push(DamagedRange {
                    start: base + pos as u64,
                    end: base + buf.len() as u64,
                    records: HIT_LOG.frames_started_in(rest),
                });
                break;
            }
        }
    }
    scan
}

fn read_file(path: &Path) -> Result<Vec<u8>, EmbeddedError> {
    fs::read(path).map_err(|e| EmbeddedError::io("read log", path, e))
}

/// Opens the newest segment after a crash: keeps every whole frame (damaged
/// ones too: readers skip and report them), moves a torn tail aside and cuts
/// it off. Returns the segment's length.
fn recover_segment(path: &Path, base: u64) -> Result<u64, EmbeddedError> {
    let buf = read_file(path)?;
    let scan = scan_segment(base, &buf);
    for damage in &scan.damaged {
        tracing::error!(
            segment = base,
            start = damage.start,
            end = damage.end,
            records = damage.records,
            "log damage found at open; readers will skip it"
        );
    }
    let Some(torn) = scan.torn_tail else {
        return Ok(buf.len() as u64);
    };
    let keep = buf.len() - torn as usize;
    let evidence = path.with_extension(format!("seg.torn-{}", base + keep as u64));
    fs::write(&evidence, &buf[keep..])
        .map_err(|e| EmbeddedError::io("keep torn log tail", &evidence, e))?;
    tracing::warn!(segment = base, offset = base + keep as u64, bytes = torn, evidence = %evidence.display(), "cutting off a torn, never acknowledged log tail");
    let file = OpenOptions::new()
        .write(true)
        .open(path)
        .map_err(|e| EmbeddedError::io("open log", path, e))?;
    file.set_len(keep as u64)
        .and_then(|()| file.sync_all())
        .map_err(|e| EmbeddedError::io("truncate log", path, e))?;
    Ok(keep as u64)
}

struct Writer {
    dir: PathBuf,
    file: File,
    segment_base: u64,
    end: u64,
    clock: fn() -> i64,
}

impl Writer {
    fn open(dir: &Path, clock: fn() -> i64, floor: u64) -> Result<Writer, EmbeddedError> {
        fs::create_dir_all(dir).map_err(|e| EmbeddedError::io("create log dir", dir, e))?;
        let segments = list_segments(dir)?;
        let (mut segment_base, mut len) = match segments.last() {
            Some(&base) => (base, recover_segment(&segment_path(dir, base), base)?),
            None => (0, 0),
        };
        if segment_base + len < floor {
            // The log is shorter than what was already delivered from it
            // (files lost or cut outside this process): continue above the
            // checkpoint, or new hits would hide below it and never be read.
            tracing::error!(
                log_end = segment_base + len,
                delivered = floor,
                "log ends below the delivery checkpoint; continuing at the checkpoint"
            );
            (segment_base, len) = (floor, 0);
        }
        let created = !segments.contains(&segment_base);
        let path = segment_path(dir, segment_base);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| EmbeddedError::io("open log", &path, e))?;
        if created {
            sync_dir(dir)?;
        }
        Ok(Writer {
            dir: dir.to_owned(),
            file,
            segment_base,
            end: segment_base + len,
            clock,
        })
    }

    fn rotate_if_full(&mut self) -> Result<(), EmbeddedError> {
        if self.end - self.segment_base < SEGMENT_TARGET_BYTES {
            return Ok(());
        }
        self.rotate()
    }

    /// Continues in a new segment starting at the end (unless the current
    /// one is empty), so the old one can be deleted once delivered.
    fn rotate(&mut self) -> Result<(), EmbeddedError> {
        if self.end == self.segment_base {
            return Ok(());
        }
        let path = segment_path(&self.dir, self.end);
        self.file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| EmbeddedError::io("open log", &path, e))?;
        self.segment_base = self.end;
        sync_dir(&self.dir)
    }

    fn write_durably(&mut self, buf: &[u8]) -> Result<(), EmbeddedError> {
        self.rotate_if_full()?;
        let path = || segment_path(&self.dir, self.segment_base);
        // A segment deleted under us (the data directory removed) still takes
        // writes through its open descriptor: they would be acknowledged and
        // lost. One fstat per group commit tells.
        let linked = std::os::unix::fs::MetadataExt::nlink(
            &self
                .file
                .metadata()
                .map_err(|e| EmbeddedError::io("stat log", path(), e))?,
        ) > 0;
        if !linked {
            let gone = std::io::Error::new(
                std::io::ErrorKind::NotFound,
                "the log segment was deleted while open",
            );
            return Err(EmbeddedError::io("append log", path(), gone));
        }
        if let Err(e) = self
            .file
            .write_all(buf)
            .and_then(|()| self.file.sync_data())
        {
            // Cut off whatever part landed so the next frame starts clean.
            let _ = self.file.set_len(self.end - self.segment_base);
            return Err(EmbeddedError::io("append log", path(), e));
        }
        self.end += buf.len() as u64;
        Ok(())
    }

    fn run(mut self, mut rx: mpsc::Receiver<AppendRequest>, durable_end: watch::Sender<u64>) {
        let mut buf = Vec::with_capacity(GROUP_COMMIT_BYTES);
        let mut batch: Vec<AppendRequest> = Vec::new();
        while let Some(first) = rx.blocking_recv() {
            batch.push(first);
            let mut bytes: usize = batch[0].records.iter().map(Vec::len).sum();
            while bytes < GROUP_COMMIT_BYTES {
                let Ok(next) = rx.try_recv() else { break };
                bytes += next.records.iter().map(Vec::len).sum::<usize>();
                batch.push(next);
            }
            let roll = batch.iter().any(|request| request.roll);
            let arrival_ms = (self.clock)();
            buf.clear();
            for request in &batch {
                for record in &request.records {
                    HIT_LOG.encode(arrival_ms as u64, record, &mut buf);
                }
            }
            let written = self
                .write_durably(&buf)
                .and_then(|()| if roll { self.rotate() } else { Ok(()) });
            match written {
                Ok(()) => {
                    durable_end.send_replace(self.end);
                    let ack = AppendAck {
                        end_offset: self.end,
                        arrival_ms,
                    };
                    for request in batch.drain(..) {
                        let _ = request.reply.send(Ok(ack));
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "log append failed");
                    let message = e.to_string();
                    for request in batch.drain(..) {
                        let err = std::io::Error::other(message.clone());
                        let _ = request.reply.send(Err(EmbeddedError::io(
                            "append log",
                            &self.dir,
                            err,
                        )));
                    }
                }
            }
        }
    }
}

impl HitLogFile {
    /// Opens (or creates) the log in `dir`, recovering from a crash, and
    /// starts the writer thread. `clock` gives the append (arrival) time.
    pub fn open(
        dir: impl AsRef<Path>,
        clock: fn() -> i64,
    ) -> Result<(HitLogFile, LogReader), EmbeddedError> {
        HitLogFile::open_above(dir, clock, 0)
    }

    /// Like [`HitLogFile::open`], but the log continues at `floor` (the
    /// delivery checkpoint) at least, should its files end below it.
    pub fn open_above(
        dir: impl AsRef<Path>,
        clock: fn() -> i64,
        floor: u64,
    ) -> Result<(HitLogFile, LogReader), EmbeddedError> {
        let writer = Writer::open(dir.as_ref(), clock, floor)?;
        let (tx, rx) = mpsc::channel(4096);
        let (end_tx, end_rx) = watch::channel(writer.end);
        let reader = LogReader {
            dir: dir.as_ref().to_owned(),
            durable_end: end_rx.clone(),
        };
        let thread = std::thread::Builder::new()
            .name("hit-log-writer".into())
            .spawn(move || writer.run(rx, end_tx))
            .map_err(|e| EmbeddedError::io("start log writer", dir.as_ref(), e))?;
        Ok((
            HitLogFile {
                tx: Some(tx),
                durable_end: end_rx,
                writer: Some(thread),
            },
            reader,
        ))
    }

    /// Appends records durably; resolves after their fsync.
    pub async fn append_payloads(&self, records: Vec<Vec<u8>>) -> Result<AppendAck, EmbeddedError> {
        if let Some(too_big) = records.iter().find(|r| r.len() > MAX_RECORD_BYTES) {
            let err = std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("record of {} bytes", too_big.len()),
            );
            return Err(EmbeddedError::io("append log", "record", err));
        }
        let (reply, answer) = oneshot::channel();
        let tx = self.tx.as_ref().ok_or(EmbeddedError::LogClosed)?;
        tx.send(AppendRequest {
            records,
            reply,
            roll: false,
        })
        .await
        .map_err(|_| EmbeddedError::LogClosed)?;
        answer.await.map_err(|_| EmbeddedError::LogClosed)?
    }

    pub fn durable_end(&self) -> u64 {
        *self.durable_end.borrow()
    }

    /// A handle that closes the current segment on request; it does not
    /// keep the writer alive ([`close`](Self::close) still ends it).
    pub fn roller(&self) -> LogRoller {
        LogRoller(self.tx.as_ref().map(mpsc::Sender::downgrade))
    }

    /// Stops accepting, lets the writer finish queued appends, and waits for it.
    pub fn close(&mut self) {
        self.tx.take();
        if let Some(thread) = self.writer.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for HitLogFile {
    fn drop(&mut self) {
        self.close();
    }
}

/// Closes the log's current segment (see [`HitLogFile::roller`]): after an
/// erasure, so that the segment holding the erased hits is deleted once
/// delivered instead of living on until it fills up.
#[derive(Clone)]
pub struct LogRoller(Option<mpsc::WeakSender<AppendRequest>>);

impl LogRoller {
    /// Starts a new segment at the durable end and returns that offset.
    pub async fn roll(&self) -> Result<u64, EmbeddedError> {
        let tx = self
            .0
            .as_ref()
            .and_then(mpsc::WeakSender::upgrade)
            .ok_or(EmbeddedError::LogClosed)?;
        let (reply, answer) = oneshot::channel();
        tx.send(AppendRequest {
            records: Vec::new(),
            reply,
            roll: true,
        })
        .await
        .map_err(|_| EmbeddedError::LogClosed)?;
        drop(tx);
        Ok(answer
            .await
            .map_err(|_| EmbeddedError::LogClosed)??
            .end_offset)
    }
}

#[async_trait]
impl HitLog for HitLogFile {
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<usize>, PortError> {
        // One local log keeps total order, so the partition key is not needed.
        let payloads = records.into_iter().map(|r| r.data).collect();
        self.append_payloads(payloads).await?;
        Ok(Vec::new())
    }
}

/// What one [`LogReader::read`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LogRead {
    pub entries: Vec<LogEntry>,
    /// Where the next read starts.
    pub next: u64,
    /// Damaged ranges skipped on the way, in order.
    pub damaged: Vec<DamagedRange>,
}

/// `len` bytes of `path` from `start` (fewer if the file is shorter).
fn read_range(path: &Path, start: u64, len: u64) -> Result<Vec<u8>, EmbeddedError> {
    let mut file = File::open(path).map_err(|e| EmbeddedError::io("open log", path, e))?;
    file.seek(SeekFrom::Start(start))
        .map_err(|e| EmbeddedError::io("seek log", path, e))?;
    let mut buf = Vec::with_capacity(len as usize);
    file.take(len)
        .read_to_end(&mut buf)
        .map_err(|e| EmbeddedError::io("read log", path, e))?;
    Ok(buf)
}

/// Scans every segment of the log in `dir` without changing anything: what
/// an offline check reports.
pub fn scan_log(dir: &Path) -> Result<Vec<SegmentScan>, EmbeddedError> {
    list_segments(dir)?
        .into_iter()
        .map(|base| Ok(scan_segment(base, &read_file(&segment_path(dir, base))?)))
        .collect()
}

/// The reading side: sees only what is durable.
#[derive(Clone)]
pub struct LogReader {
    dir: PathBuf,
    durable_end: watch::Receiver<u64>,
}

impl LogReader {
    pub fn durable_end(&self) -> u64 {
        *self.durable_end.borrow()
    }

    /// A receiver that changes whenever more of the log becomes durable.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.durable_end.clone()
    }

    /// Reads whole records from `from` up to the durable end, stopping once
    /// about `max_bytes` were read. Damaged bytes on the way are skipped and
    /// reported in [`LogRead::damaged`]; the records after them are read.
    pub fn read(&self, from: u64, max_bytes: usize) -> Result<LogRead, EmbeddedError> {
        self.read_to(from, u64::MAX, max_bytes)
    }

    /// [`read`](Self::read), stopping at `until` too (a record boundary:
    /// the durable end at some earlier moment).
    pub fn read_to(
        &self,
        from: u64,
        until: u64,
        max_bytes: usize,
    ) -> Result<LogRead, EmbeddedError> {
        let end = self.durable_end().min(until);
        let mut read = LogRead {
            entries: Vec::new(),
            next: from,
            damaged: Vec::new(),
        };
        let mut read_bytes = 0usize;
        while read.next < end && read_bytes < max_bytes {
            let offset = read.next;
            let segments = list_segments(&self.dir)?;
            let Some(&base) = segments.iter().rev().find(|&&b| b <= offset) else {
                return Err(EmbeddedError::CorruptLog {
                    offset,
                    detail: "no segment holds this offset".into(),
                });
            };
            let segment_end = segments
                .iter()
                .find(|&&b| b > base)
                .copied()
                .unwrap_or(u64::MAX)
                .min(end);
            // Enough for `max_bytes` and the whole frame that crosses it.
            let window = (segment_end - offset)
                .min((max_bytes - read_bytes).saturating_add(HEADER_LEN + MAX_RECORD_BYTES) as u64);
            let path = segment_path(&self.dir, base);
            let buf = read_range(&path, offset - base, window)?;
            let mut pos = 0usize;
            let mut resume_at = None;
            while pos < window as usize && read_bytes < max_bytes {
                match HIT_LOG.parse(&buf[pos.min(buf.len())..]) {
                    Parsed::Frame { word, payload, len } => {
                        read.entries.push(LogEntry {
                            offset: offset + pos as u64,
                            // The word is the arrival time's bits.
                            arrival_ms: word as i64,
                            payload: payload.to_vec(),
                        });
                        pos += len;
                        read_bytes += len;
                    }
                    Parsed::Bad | Parsed::Incomplete => {
                        // Below the durable end nothing is torn: this is
                        // damage (or bytes gone from a short file). Resume
                        // at the next intact frame, else at the segment's end.
                        let at = offset + pos as u64;
                        let rest = read_range(&path, at - base, segment_end - at)?;
                        let skip = HIT_LOG
                            .next_intact(&rest)
                            .map_or(segment_end - at, |s| s as u64);
                        let seen = &rest[..(skip as usize).min(rest.len())];
                        read.damaged.push(DamagedRange {
                            start: at,
                            end: at + skip,
                            records: HIT_LOG.frames_started_in(seen),
                        });
                        read_bytes += skip as usize;
                        resume_at = Some(at + skip);
                        break;
                    }
                }
            }
            read.next = resume_at.unwrap_or(offset + pos as u64);
        }
        Ok(read)
    }

    /// Deletes segments that lie wholly below `offset` (already delivered).
    /// The newest segment is always kept: its name carries the log's end.
    pub fn delete_before(&self, offset: u64) -> Result<usize, EmbeddedError> {
        let segments = list_segments(&self.dir)?;
        let mut deleted = 0;
        for pair in segments.windows(2) {
            if pair[1] <= offset {
                let path = segment_path(&self.dir, pair[0]);
                fs::remove_file(&path)
                    .map_err(|e| EmbeddedError::io("delete log segment", &path, e))?;
                deleted += 1;
            }
        }
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::HIT_LOG;

    fn clock() -> i64 {
        1_795_514_400_000
    }

    fn payloads(read: &LogRead) -> Vec<&[u8]> {
        read.entries.iter().map(|e| e.payload.as_slice()).collect()
    }

    fn frame_len(payload: &[u8]) -> u64 {
        (HEADER_LEN + payload.len()) as u64
    }

    #[tokio::test]
    async fn appended_records_read_back_after_reopen() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, reader) = HitLogFile::open(dir.path(), clock).unwrap();
            let ack = log
                .append_payloads(vec![b"one".to_vec(), b"two".to_vec()])
                .await
                .unwrap();
            assert_eq!(ack.end_offset, 2 * HEADER_LEN as u64 + 6);
            assert_eq!(ack.arrival_ms, clock());
            let read = reader.read(0, usize::MAX).unwrap();
            assert_eq!(payloads(&read), [b"one", b"two"]);
            assert_eq!(read.next, ack.end_offset);
            assert!(read.damaged.is_empty());
        }
        let (log, reader) = HitLogFile::open(dir.path(), clock).unwrap();
        assert_eq!(log.durable_end(), 2 * HEADER_LEN as u64 + 6);
        log.append_payloads(vec![b"three".to_vec()]).await.unwrap();
        let read = reader.read(HEADER_LEN as u64 + 3, usize::MAX).unwrap();
        assert_eq!(payloads(&read), [b"two".as_slice(), b"three"]);
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_off_on_open_and_kept_as_evidence() {
        let dir = tempfile::tempdir().unwrap();
        let end = {
            let (log, _) = HitLogFile::open(dir.path(), clock).unwrap();
            log.append_payloads(vec![b"kept".to_vec()])
                .await
                .unwrap()
                .end_offset
        };
        let path = segment_path(dir.path(), 0);
        let mut torn = Vec::new();
        HIT_LOG.encode(clock() as u64, b"never acknowledged", &mut torn);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&torn[..torn.len() - 3]).unwrap();
        drop(file);

        let (log, reader) = HitLogFile::open(dir.path(), clock).unwrap();
        assert_eq!(log.durable_end(), end);
        assert_eq!(fs::metadata(&path).unwrap().len(), end);
        let evidence = path.with_extension(format!("seg.torn-{end}"));
        assert_eq!(fs::read(evidence).unwrap(), &torn[..torn.len() - 3]);
        let read = reader.read(0, usize::MAX).unwrap();
        assert_eq!(payloads(&read), [b"kept"]);
    }

    /// Appends `n` records of 10 bytes, `first`, `first + 1`, … each, and closes the log.
    async fn write_records_from(dir: &Path, n: u8, first: u8) {
        let (log, _) = HitLogFile::open(dir, clock).unwrap();
        for i in 0..n {
            log.append_payloads(vec![vec![first + i; 10]])
                .await
                .unwrap();
        }
    }

    async fn write_records(dir: &Path, n: u8) {
        write_records_from(dir, n, 0).await;
    }

    /// Writes `n` records of 10 bytes each, flips one bit at `flip` (an
    /// offset into the log), reopens, and reads everything.
    async fn flip_and_read(n: u8, flip: u64) -> (LogRead, u64) {
        let dir = tempfile::tempdir().unwrap();
        write_records_from(dir.path(), n, b'a').await;
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes[flip as usize] ^= 0x10;
        fs::write(&path, bytes).unwrap();
        let (log, reader) = HitLogFile::open(dir.path(), clock).unwrap();
        let end = log.durable_end();
        (reader.read(0, usize::MAX).unwrap(), end)
    }

    #[tokio::test]
    async fn a_flipped_bit_costs_its_record_and_every_record_after_it_is_read() {
        let len = frame_len(&[0; 10]);
        for (record, byte_in_frame) in [(3u64, 0u64), (3, 5), (3, 13), (3, 25), (0, 2)] {
            let (read, end) = flip_and_read(10, record * len + byte_in_frame).await;
            assert_eq!(end, 10 * len, "nothing was cut off");
            assert_eq!(
                read.entries.len(),
                9,
                "record {record} byte {byte_in_frame}"
            );
            assert!(
                !read
                    .entries
                    .iter()
                    .any(|e| e.payload[0] == b'a' + record as u8)
            );
            assert_eq!(
                read.damaged,
                [DamagedRange {
                    start: record * len,
                    end: (record + 1) * len,
                    records: 1
                }]
            );
            assert_eq!(read.next, end);
        }
    }

    #[tokio::test]
    async fn a_flipped_bit_in_the_last_record_is_reported_not_cut_off_as_torn() {
        let len = frame_len(&[0; 10]);
        let (read, end) = flip_and_read(4, 3 * len + HEADER_LEN as u64 + 4).await;
        assert_eq!(end, 4 * len, "the damaged last record is not a torn write");
        assert_eq!(read.entries.len(), 3);
        assert_eq!(
            read.damaged,
            [DamagedRange {
                start: 3 * len,
                end: 4 * len,
                records: 1
            }]
        );
    }

    #[tokio::test]
    async fn hits_appended_after_damage_are_read_and_the_log_never_moves_back() {
        let dir = tempfile::tempdir().unwrap();
        let len = frame_len(&[0; 10]);
        write_records(dir.path(), 3).await;
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        bytes[len as usize + 7] ^= 1;
        fs::write(&path, bytes).unwrap();
        let (log, reader) = HitLogFile::open(dir.path(), clock).unwrap();
        log.append_payloads(vec![vec![9; 10]]).await.unwrap();
        assert_eq!(log.durable_end(), 4 * len);
        let read = reader.read(0, usize::MAX).unwrap();
        assert_eq!(
            read.entries
                .iter()
                .map(|e| e.payload[0])
                .collect::<Vec<_>>(),
            [0, 2, 9]
        );
    }

    #[tokio::test]
    async fn damage_at_a_segment_boundary_ends_at_the_segment() {
        let dir = tempfile::tempdir().unwrap();
        let len = frame_len(&[0; 10]);
        write_records(dir.path(), 3).await;
        // A second segment, as rotation leaves it, starting at the first one's end.
        let mut second = Vec::new();
        HIT_LOG.encode(clock() as u64, &[7; 10], &mut second);
        fs::write(segment_path(dir.path(), 3 * len), &second).unwrap();
        // Damage the last frame of the first segment.
        let path = segment_path(dir.path(), 0);
        let mut bytes = fs::read(&path).unwrap();
        let last = bytes.len() - 3;
        bytes[last] ^= 1;
        fs::write(&path, bytes).unwrap();

        let (log, reader) = HitLogFile::open(dir.path(), clock).unwrap();
        assert_eq!(log.durable_end(), 4 * len);
        let read = reader.read(0, usize::MAX).unwrap();
        assert_eq!(
            read.entries
                .iter()
                .map(|e| e.payload[0])
                .collect::<Vec<_>>(),
            [0, 1, 7]
        );
        assert_eq!(
            read.damaged,
            [DamagedRange {
                start: 2 * len,
                end: 3 * len,
                records: 1
            }]
        );
        let scans = scan_log(dir.path()).unwrap();
        assert_eq!(scans.len(), 2);
        assert_eq!((scans[0].intact_records, scans[0].damaged.len()), (2, 1));
        assert_eq!((scans[1].intact_records, scans[1].torn_tail), (1, None));
    }

    #[tokio::test]
    async fn a_log_cut_below_the_checkpoint_continues_above_it() {
        let dir = tempfile::tempdir().unwrap();
        {
            let (log, _) = HitLogFile::open(dir.path(), clock).unwrap();
            log.append_payloads(vec![vec![1; 10]]).await.unwrap();
        }
        fs::write(segment_path(dir.path(), 0), b"").unwrap();
        let (log, reader) = HitLogFile::open_above(dir.path(), clock, 500).unwrap();
        assert_eq!(log.durable_end(), 500);
        log.append_payloads(vec![vec![2; 10]]).await.unwrap();
        let read = reader.read(500, usize::MAX).unwrap();
        assert_eq!(read.entries.len(), 1);
        assert_eq!(read.entries[0].offset, 500);
    }

    #[test]
    fn zeros_after_the_last_frame_are_a_torn_tail() {
        let mut buf = Vec::new();
        HIT_LOG.encode(1, b"x", &mut buf);
        let whole = buf.len() as u64;
        buf.extend_from_slice(&[0; 4096]);
        let scan = scan_segment(0, &buf);
        assert_eq!((scan.intact_records, scan.torn_tail), (1, Some(4096)));
        assert_eq!(scan.intact_end(), whole);
        assert!(scan.damaged.is_empty());
        assert_eq!(&buf[..4], HIT_LOG.magic);
    }

    #[tokio::test]
    async fn a_roll_closes_the_segment_so_it_can_be_deleted_once_delivered() {
        let dir = tempfile::tempdir().unwrap();
        let (log, reader) = HitLogFile::open(dir.path(), clock).unwrap();
        log.append_payloads(vec![b"erase-me".to_vec()])
            .await
            .unwrap();
        let end = log.durable_end();
        assert_eq!(log.roller().roll().await.unwrap(), end);
        assert_eq!(
            log.roller().roll().await.unwrap(),
            end,
            "an empty segment stays"
        );
        assert_eq!(list_segments(dir.path()).unwrap(), [0, end]);
        assert_eq!(reader.delete_before(end).unwrap(), 1);
        log.append_payloads(vec![b"later".to_vec()]).await.unwrap();
        let read = reader.read(end, usize::MAX).unwrap();
        assert_eq!(read.entries.len(), 1);
        assert_eq!(read.entries[0].payload, b"later");
        let roller = log.roller();
        drop(log);
        assert!(matches!(roller.roll().await, Err(EmbeddedError::LogClosed)));
    }

    #[tokio::test]
    async fn reads_stop_near_max_bytes_and_delete_keeps_the_newest_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (log, reader) = HitLogFile::open(dir.path(), clock).unwrap();
        for i in 0..10u8 {
            log.append_payloads(vec![vec![i; 10]]).await.unwrap();
        }
        let first = reader.read(0, 40).unwrap();
        assert_eq!(
            first.entries.len(),
            2,
            "30-byte frames: stops after crossing 40 bytes"
        );
        let rest = reader.read(first.next, usize::MAX).unwrap();
        let capped = reader.read_to(0, first.next, usize::MAX).unwrap();
        assert_eq!(capped.entries, first.entries, "stops at a record boundary");
        assert_eq!(capped.next, first.next);
        assert_eq!(rest.entries.len(), 8);
        assert_eq!(rest.next, log.durable_end());
        assert_eq!(
            reader.delete_before(rest.next).unwrap(),
            0,
            "a single segment is never deleted"
        );
    }
}
