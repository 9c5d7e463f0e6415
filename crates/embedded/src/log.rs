//! The durable local hit log: append-only segment files of CRC-framed
//! records. One writer thread batches concurrent appends into a single write
//! and `fsync` (group commit); an append is acknowledged only after its fsync,
//! which is what makes a `202` durable. Offsets are byte positions in the
//! log's whole history; a segment file is named by the offset it starts at.

use crate::EmbeddedError;
use async_trait::async_trait;
use gender_core::PortError;
use gender_core::ports::{HitLog, LogRecord};
use std::fs::{self, File, OpenOptions};
use std::io::{BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, oneshot, watch};

/// `[u32 payload len][u32 crc32 of the rest][i64 arrival ms][payload]`
const HEADER_LEN: usize = 16;
const SEGMENT_TARGET_BYTES: u64 = 64 * 1024 * 1024;
/// One group commit writes at most about this much.
const GROUP_COMMIT_BYTES: usize = 8 * 1024 * 1024;
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;

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

fn frame(payload: &[u8], arrival_ms: i64, out: &mut Vec<u8>) {
    let arrival = arrival_ms.to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&arrival);
    crc.update(payload);
    out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc.finalize().to_le_bytes());
    out.extend_from_slice(&arrival);
    out.extend_from_slice(payload);
}

/// Reads the frame at the reader's position. `Ok(None)` at a clean end, and
/// also for a torn or corrupt frame (callers decide what that means).
fn read_frame(reader: &mut impl Read) -> std::io::Result<Option<(i64, Vec<u8>)>> {
    let mut header = [0u8; HEADER_LEN];
    match reader.read_exact(&mut header) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let len = u32::from_le_bytes(header[0..4].try_into().expect("4 bytes")) as usize;
    if len > MAX_RECORD_BYTES {
        return Ok(None);
    }
    let mut payload = vec![0u8; len];
    match reader.read_exact(&mut payload) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(e) => return Err(e),
    }
    let mut crc = crc32fast::Hasher::new();
    crc.update(&header[8..16]);
    crc.update(&payload);
    if crc.finalize() != u32::from_le_bytes(header[4..8].try_into().expect("4 bytes")) {
        return Ok(None);
    }
    Ok(Some((
        i64::from_le_bytes(header[8..16].try_into().expect("8 bytes")),
        payload,
    )))
}

/// Drops a torn tail left by a crash: everything after the last whole frame
/// was never acknowledged, because acks follow the fsync.
fn recover_segment(path: &Path) -> Result<u64, EmbeddedError> {
    let file = File::open(path).map_err(|e| EmbeddedError::io("open log", path, e))?;
    let total = file
        .metadata()
        .map_err(|e| EmbeddedError::io("stat log", path, e))?
        .len();
    let mut reader = BufReader::with_capacity(256 * 1024, file);
    let mut valid = 0u64;
    while let Some((_, payload)) =
        read_frame(&mut reader).map_err(|e| EmbeddedError::io("read log", path, e))?
    {
        valid += (HEADER_LEN + payload.len()) as u64;
    }
    if valid < total {
        tracing::warn!(path = %path.display(), dropped_bytes = total - valid, "truncating unacknowledged log tail");
        let file = OpenOptions::new()
            .write(true)
            .open(path)
            .map_err(|e| EmbeddedError::io("open log", path, e))?;
        file.set_len(valid)
            .and_then(|()| file.sync_all())
            .map_err(|e| EmbeddedError::io("truncate log", path, e))?;
    }
    Ok(valid)
}

struct Writer {
    dir: PathBuf,
    file: File,
    segment_base: u64,
    end: u64,
    clock: fn() -> i64,
}

impl Writer {
    fn open(dir: &Path, clock: fn() -> i64) -> Result<Writer, EmbeddedError> {
        fs::create_dir_all(dir).map_err(|e| EmbeddedError::io("create log dir", dir, e))?;
        let segments = list_segments(dir)?;
        let (segment_base, len) = match segments.last() {
            Some(&base) => (base, recover_segment(&segment_path(dir, base))?),
            None => (0, 0),
        };
        let path = segment_path(dir, segment_base);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|e| EmbeddedError::io("open log", &path, e))?;
        if segments.is_empty() {
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
            let arrival_ms = (self.clock)();
            buf.clear();
            for request in &batch {
                for record in &request.records {
                    frame(record, arrival_ms, &mut buf);
                }
            }
            match self.write_durably(&buf) {
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
        let writer = Writer::open(dir.as_ref(), clock)?;
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
        tx.send(AppendRequest { records, reply })
            .await
            .map_err(|_| EmbeddedError::LogClosed)?;
        answer.await.map_err(|_| EmbeddedError::LogClosed)?
    }

    pub fn durable_end(&self) -> u64 {
        *self.durable_end.borrow()
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

#[async_trait]
impl HitLog for HitLogFile {
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<usize>, PortError> {
        // One local log keeps total order, so the partition key is not needed.
        let payloads = records.into_iter().map(|r| r.data).collect();
        self.append_payloads(payloads).await?;
        Ok(Vec::new())
    }
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
    /// about `max_bytes` were read. Returns the records and the next offset.
    pub fn read(&self, from: u64, max_bytes: usize) -> Result<(Vec<LogEntry>, u64), EmbeddedError> {
        let end = self.durable_end();
        let mut entries = Vec::new();
        let mut offset = from;
        let mut read_bytes = 0usize;
        while offset < end && read_bytes < max_bytes {
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
            let path = segment_path(&self.dir, base);
            let mut file =
                File::open(&path).map_err(|e| EmbeddedError::io("open log", &path, e))?;
            file.seek(SeekFrom::Start(offset - base))
                .map_err(|e| EmbeddedError::io("seek log", &path, e))?;
            let mut reader = BufReader::with_capacity(256 * 1024, file);
            while offset < segment_end && read_bytes < max_bytes {
                let Some((arrival_ms, payload)) =
                    read_frame(&mut reader).map_err(|e| EmbeddedError::io("read log", &path, e))?
                else {
                    return Err(EmbeddedError::CorruptLog {
                        offset,
                        detail: "bad frame below the durable end".into(),
                    });
                };
                let len = HEADER_LEN + payload.len();
                entries.push(LogEntry {
                    offset,
                    arrival_ms,
                    payload,
                });
                offset += len as u64;
                read_bytes += len;
            }
        }
        Ok((entries, offset))
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

    fn clock() -> i64 {
        1_795_514_400_000
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
            let (entries, next) = reader.read(0, usize::MAX).unwrap();
            assert_eq!(
                entries
                    .iter()
                    .map(|e| e.payload.as_slice())
                    .collect::<Vec<_>>(),
                [b"one", b"two"]
            );
            assert_eq!(next, ack.end_offset);
        }
        let (log, reader) = HitLogFile::open(dir.path(), clock).unwrap();
        assert_eq!(log.durable_end(), 2 * HEADER_LEN as u64 + 6);
        log.append_payloads(vec![b"three".to_vec()]).await.unwrap();
        let (entries, _) = reader.read(HEADER_LEN as u64 + 3, usize::MAX).unwrap();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[1].payload, b"three");
    }

    #[tokio::test]
    async fn a_torn_tail_is_truncated_on_open() {
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
        frame(b"never acknowledged", clock(), &mut torn);
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(&torn[..torn.len() - 3]).unwrap();
        drop(file);

        let (log, reader) = HitLogFile::open(dir.path(), clock).unwrap();
        assert_eq!(log.durable_end(), end);
        assert_eq!(fs::metadata(&path).unwrap().len(), end);
        let (entries, _) = reader.read(0, usize::MAX).unwrap();
        assert_eq!(entries.len(), 1);
    }

    #[tokio::test]
    async fn reads_stop_near_max_bytes_and_delete_keeps_the_newest_segment() {
        let dir = tempfile::tempdir().unwrap();
        let (log, reader) = HitLogFile::open(dir.path(), clock).unwrap();
        for i in 0..10u8 {
            log.append_payloads(vec![vec![i; 10]]).await.unwrap();
        }
        let (first, next) = reader.read(0, 30).unwrap();
        assert_eq!(
            first.len(),
            2,
            "26-byte frames: stops after crossing 30 bytes"
        );
        let (rest, end) = reader.read(next, usize::MAX).unwrap();
        assert_eq!(rest.len(), 8);
        assert_eq!(end, log.durable_end());
        assert_eq!(
            reader.delete_before(end).unwrap(),
            0,
            "a single segment is never deleted"
        );
    }
}
