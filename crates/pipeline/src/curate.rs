//! Curate (SPEC 6): one raw NDJSON object -> Parquet per event date + one
//! exactly-once counter update, then optionally delete the raw object.
//!
//! The object streams through: chunks from the store, gunzip on the fly,
//! lines parsed as they complete, each hit appended to its date's Parquet
//! writer (a row group at a time, into a local temporary file) and folded
//! into its visitor's delta. Memory is bounded by the visitors of the object
//! and one row group per date, never by its size.

use crate::PipelineError;
use crate::codec::{HitsFile, HitsFileWriter};
use gender_core::dedup::{CountAll, HitFilter};
use gender_core::ports::{ApplyOutcome, CounterStore, ObjectStore};
use gender_core::{
    Aggregator, Date, Hit, HitError, LineSplitter, VisitorDelta, layout, parse_raw_line,
};
use std::io::Write;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CurateReport {
    pub raw_key: String,
    pub hits: usize,
    /// Hits whose identity was counted before (SPEC 15): neither counted
    /// nor written again.
    pub duplicates: usize,
    pub invalid_lines: usize,
    pub visitors: usize,
    pub curated_keys: Vec<String>,
    pub outcome: ApplyOutcome,
    /// Times the decision was redone after a concurrent change (AWS
    /// deduplication; always 0 otherwise).
    pub redos: u32,
}

/// One raw object made durable in curated/: its Parquet files are written,
/// its counter deltas not yet applied. Applying them (with the object's
/// idempotency marker) is the caller's next step, alone ([`curate_object`])
/// or together with other objects in one transaction (the local runtime).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PreparedObject {
    pub raw_key: String,
    pub hits: usize,
    pub duplicates: usize,
    pub invalid_lines: usize,
    pub deltas: Vec<VisitorDelta>,
    pub curated_keys: Vec<String>,
}

/// Compressed input is gunzipped this much at a time, so that the plain
/// text in memory stays small whatever the compression ratio.
const GZIP_INPUT_PIECE: usize = 16 * 1024;

/// How the raw bytes are decoded: not known until the first two bytes.
enum Decoding {
    Undecided(Vec<u8>),
    Plain,
    /// Raw objects may be gzip'ed (SPEC 5, a Firehose option): recognised by
    /// the gzip magic bytes rather than the key, which Firehose does not change.
    Gzip(Box<flate2::write::MultiGzDecoder<Vec<u8>>>),
}

/// Where parsed lines go: the per-visitor fold and one writer per date,
/// for the hits the filter lets through.
struct Sink<'f> {
    raw_key: String,
    /// `None`: every hit counts.
    filter: Option<&'f mut dyn HitFilter>,
    duplicates: usize,
    aggregator: Aggregator,
    /// Usually one date (Firehose partitions by `dt`); a mixed object is
    /// still filed correctly, one Parquet per date.
    writers: Vec<(Date, HitsFileWriter)>,
    /// The writer of the last hit.
    last_writer: usize,
    hits: usize,
    invalid_lines: usize,
    first_invalid: Option<(usize, HitError)>,
    error: Option<PipelineError>,
}

impl Sink<'_> {
    /// A run of consecutive lines: all parsed, then the filter decides the
    /// run at once (its memory fetched together), then each hit is kept.
    fn lines(&mut self, run: &[(usize, &[u8])]) {
        if self.error.is_some() {
            return;
        }
        let parsed: Vec<Option<Result<Hit<'_>, HitError>>> =
            run.iter().map(|(_, line)| parse_raw_line(line)).collect();
        let mut counted = vec![true; run.len()];
        if let Some(filter) = self.filter.as_deref_mut() {
            let ids: Vec<Option<(&str, &str)>> = parsed
                .iter()
                .map(|parsed| match parsed {
                    Some(Ok(hit)) => hit.hitid.as_deref().map(|hitid| (&*hit.clientid, hitid)),
                    _ => None,
                })
                .collect();
            filter.first_sightings(&ids, &mut counted);
        }
        for ((parsed, &(index, _)), counted) in parsed.into_iter().zip(run).zip(counted) {
            match parsed {
                None => {}
                Some(Ok(hit)) => {
                    if counted {
                        self.hit(hit);
                    } else {
                        self.duplicates += 1;
                    }
                }
                Some(Err(e)) => {
                    self.invalid_lines += 1;
                    self.first_invalid.get_or_insert((index, e));
                }
            }
            if self.error.is_some() {
                return;
            }
        }
    }

    /// A hit that counts: into the fold and its date's Parquet writer.
    #[inline]
    fn hit(&mut self, hit: Hit<'_>) {
        self.hits += 1;
        self.aggregator.add(&hit.clientid, hit.gender, hit.event_ms);
        let dt = Date::of_millis(hit.event_ms);
        // Local raw objects keep a date's lines together: the last date first.
        let slot = match self
            .writers
            .get(self.last_writer)
            .filter(|(d, _)| *d == dt)
            .map(|_| self.last_writer)
            .or_else(|| self.writers.iter().position(|(d, _)| *d == dt))
        {
            Some(i) => i,
            None => {
                let key = layout::curated_hits_key(&self.raw_key, dt);
                match HitsFileWriter::create(key) {
                    Ok(writer) => self.writers.push((dt, writer)),
                    Err(e) => {
                        self.error = Some(e);
                        return;
                    }
                }
                self.writers.len() - 1
            }
        };
        self.last_writer = slot;
        if let Err(e) = self.writers[slot].1.push(
            &hit.clientid,
            hit.gender,
            hit.event_ms,
            hit.hitid.as_deref(),
        ) {
            self.error = Some(e);
        }
    }
}

/// Curate's CPU part over a raw object fed in chunks of any size (the
/// port-free core of [`prepare_object`], also what the benchmarks drive).
pub struct CurateStream<'f> {
    decoding: Decoding,
    lines: LineSplitter,
    sink: Sink<'f>,
}

/// What a [`CurateStream`] produced: the deltas and one local Parquet file per date.
pub struct CuratedObject {
    pub raw_key: String,
    /// Hits counted (and written).
    pub hits: usize,
    pub duplicates: usize,
    pub invalid_lines: usize,
    pub first_invalid: Option<(usize, HitError)>,
    pub deltas: Vec<VisitorDelta>,
    /// Sorted by date, so by key.
    pub files: Vec<HitsFile>,
}

impl CurateStream<'static> {
    /// A stream that counts every hit (no deduplication).
    pub fn new(raw_key: &str) -> CurateStream<'static> {
        CurateStream::build(raw_key, None)
    }
}

impl<'f> CurateStream<'f> {
    /// A stream that counts only the hits `filter` sees for the first time.
    pub fn with_filter(raw_key: &str, filter: &'f mut dyn HitFilter) -> CurateStream<'f> {
        CurateStream::build(raw_key, Some(filter))
    }

    fn build(raw_key: &str, filter: Option<&'f mut dyn HitFilter>) -> CurateStream<'f> {
        CurateStream {
            decoding: Decoding::Undecided(Vec::new()),
            lines: LineSplitter::new(),
            sink: Sink {
                raw_key: raw_key.to_owned(),
                filter,
                duplicates: 0,
                aggregator: Aggregator::new(),
                writers: Vec::new(),
                last_writer: 0,
                hits: 0,
                invalid_lines: 0,
                first_invalid: None,
                error: None,
            },
        }
    }

    fn gzip_error(&self, e: std::io::Error) -> PipelineError {
        PipelineError::BadObject {
            key: self.sink.raw_key.clone(),
            detail: format!("gzip: {e}"),
        }
    }

    fn plain(&mut self, bytes: &[u8]) -> Result<(), PipelineError> {
        let sink = &mut self.sink;
        self.lines.push_runs(bytes, |run| sink.lines(run));
        match self.sink.error.take() {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Feeds the next piece of the raw object.
    pub fn push(&mut self, chunk: &[u8]) -> Result<(), PipelineError> {
        match &mut self.decoding {
            Decoding::Plain => self.plain(chunk),
            Decoding::Undecided(head) => {
                head.extend_from_slice(chunk);
                if head.len() < 2 {
                    return Ok(());
                }
                let head = std::mem::take(head);
                self.decoding = if head.starts_with(&[0x1f, 0x8b]) {
                    Decoding::Gzip(Box::new(flate2::write::MultiGzDecoder::new(Vec::new())))
                } else {
                    Decoding::Plain
                };
                self.push(&head)
            }
            Decoding::Gzip(_) => {
                for piece in chunk.chunks(GZIP_INPUT_PIECE) {
                    let out = self.gunzip(|gz| gz.write_all(piece).and_then(|()| gz.flush()))?;
                    self.plain(&out)?;
                }
                Ok(())
            }
        }
    }

    fn gunzip(
        &mut self,
        step: impl FnOnce(&mut flate2::write::MultiGzDecoder<Vec<u8>>) -> std::io::Result<()>,
    ) -> Result<Vec<u8>, PipelineError> {
        let Decoding::Gzip(gz) = &mut self.decoding else {
            unreachable!("only called while gunzipping")
        };
        let result = step(gz);
        let out = std::mem::take(gz.get_mut());
        result.map_err(|e| self.gzip_error(e))?;
        Ok(out)
    }

    /// Ends the object: the last line, the last row groups and footers.
    pub fn finish(mut self) -> Result<CuratedObject, PipelineError> {
        match &mut self.decoding {
            Decoding::Undecided(head) => {
                let head = std::mem::take(head);
                self.decoding = Decoding::Plain;
                self.plain(&head)?;
            }
            Decoding::Gzip(_) => {
                let out = self.gunzip(|gz| gz.try_finish())?;
                self.plain(&out)?;
            }
            Decoding::Plain => {}
        }
        let sink = &mut self.sink;
        self.lines.finish(|i, line| sink.lines(&[(i, line)]));
        let mut sink = self.sink;
        if let Some(e) = sink.error.take() {
            return Err(e);
        }
        sink.writers.sort_by_key(|(dt, _)| *dt);
        let files = sink
            .writers
            .into_iter()
            .map(|(_, writer)| writer.finish())
            .collect::<Result<Vec<_>, _>>()?;
        Ok(CuratedObject {
            raw_key: sink.raw_key,
            hits: sink.hits,
            duplicates: sink.duplicates,
            invalid_lines: sink.invalid_lines,
            first_invalid: sink.first_invalid,
            deltas: sink.aggregator.finish(),
            files,
        })
    }
}

/// Reads `raw_key` as a stream, writes its hits as Parquet (one object per
/// event date, deterministic names, so a retry overwrites) and aggregates
/// its deltas, skipping the hits `filter` has counted before (SPEC 15).
/// The filter's new decisions are the caller's to keep or discard, with
/// the outcome of applying the deltas.
pub async fn prepare_object(
    raw: &dyn ObjectStore,
    curated: &dyn ObjectStore,
    raw_key: &str,
    filter: &mut dyn HitFilter,
) -> Result<PreparedObject, PipelineError> {
    let mut body = raw
        .get_stream(raw_key)
        .await?
        .ok_or_else(|| PipelineError::RawMissing(raw_key.to_owned()))?;
    let mut stream = CurateStream::with_filter(raw_key, filter);
    while let Some(chunk) = body.next_chunk().await? {
        stream.push(&chunk)?;
    }
    let object = stream.finish()?;
    if let Some((line, error)) = &object.first_invalid {
        tracing::warn!(raw_key, invalid = object.invalid_lines, first_line = line, %error, "raw object has invalid lines");
    }
    // One object per event date: made durable together (a batch spread
    // over thousands of dates is thousands of files, issue 26). The names
    // are deterministic, so a redone object writes the same ones again.
    let files: Vec<(String, std::path::PathBuf)> = object
        .files
        .iter()
        .map(|file| (file.key.clone(), file.temp.path().to_owned()))
        .collect();
    curated.put_files(&files).await?;
    // A file the store moved into place is no longer ours to delete; one
    // it copied still is (dropping it deletes it).
    for file in object.files {
        if !file.temp.path().exists() {
            let _ = file.temp.into_temp_path().keep();
        }
    }
    let curated_keys = files.into_iter().map(|(key, _)| key).collect();
    Ok(PreparedObject {
        raw_key: object.raw_key,
        hits: object.hits,
        duplicates: object.duplicates,
        invalid_lines: object.invalid_lines,
        deltas: object.deltas,
        curated_keys,
    })
}

/// Curate of SPEC 6 for one object: [`prepare_object`], then its deltas and
/// marker `object_id` in one exactly-once step, then (unless `keep_raw`) the
/// raw object deleted.
pub async fn curate_object(
    raw: &dyn ObjectStore,
    curated: &dyn ObjectStore,
    counters: &dyn CounterStore,
    raw_key: &str,
    object_id: &str,
    keep_raw: bool,
    now_ms: i64,
) -> Result<CurateReport, PipelineError> {
    let prepared = prepare_object(raw, curated, raw_key, &mut CountAll).await?;
    let outcome = counters
        .apply_object(object_id, &prepared.deltas, now_ms)
        .await?;
    if !keep_raw {
        raw.delete(raw_key).await?;
    }
    Ok(CurateReport {
        raw_key: prepared.raw_key,
        hits: prepared.hits,
        duplicates: prepared.duplicates,
        invalid_lines: prepared.invalid_lines,
        visitors: prepared.deltas.len(),
        curated_keys: prepared.curated_keys,
        outcome,
        redos: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::ROW_GROUP_ROWS;
    use gender_core::dedup::SeenIndex;
    use gender_core::{Gender, Hit, aggregate_hits, parse_raw_object};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn raw(lines: usize) -> Vec<u8> {
        let mut rng = fastrand::Rng::with_seed(7);
        let mut out = Vec::new();
        for i in 0..lines {
            let hit = Hit {
                clientid: format!("v-{}", rng.u32(0..500)).into(),
                gender: if rng.bool() { Gender::M } else { Gender::F },
                // Three dates, and equal times now and then.
                event_ms: 1_795_478_400_000 + rng.i64(-86_400_000..172_800_000) / 1000 * 1000,
                // Most with an id, some without (raw data from before ids).
                hitid: (i % 5 != 0).then(|| format!("h{i}").into()),
            };
            if i % 97 == 0 {
                out.extend_from_slice(b"{\"clientid\":\"bad id\",\"pageGender\":\"M\"}\r\n\n");
            }
            hit.write_ndjson(&mut out);
        }
        out
    }

    fn run(raw: &[u8], chunk: usize) -> CuratedObject {
        let mut stream = CurateStream::new("raw/dt=2026-11-24/x.ndjson");
        for piece in raw.chunks(chunk) {
            stream.push(piece).unwrap();
        }
        stream.finish().unwrap()
    }

    fn check(got: &CuratedObject, plain: &[u8]) {
        let whole = parse_raw_object(plain);
        assert_eq!(got.deltas, aggregate_hits(&whole.hits));
        assert_eq!(
            (got.hits, got.invalid_lines),
            (whole.hits.len(), whole.invalid_lines.len())
        );
        assert_eq!(got.first_invalid.as_ref().map(|f| f.0), Some(0));
        let rows: usize = got.files.iter().map(|f| f.rows).sum();
        assert_eq!(rows, whole.hits.len());
        let keys: Vec<_> = got.files.iter().map(|f| f.key.clone()).collect();
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(keys, sorted, "one file per date, in key order");
        for file in &got.files {
            let reader = SerializedFileReader::new(file.temp.reopen().unwrap()).unwrap();
            let meta = reader.metadata();
            assert_eq!(meta.file_metadata().num_rows() as usize, file.rows);
            for group in meta.row_groups() {
                assert!(group.num_rows() as usize <= ROW_GROUP_ROWS);
            }
        }
    }

    #[test]
    fn any_chunking_and_gzip_give_the_whole_object_answer() {
        let plain = raw(ROW_GROUP_ROWS + 5_000);
        let big = run(&plain, usize::MAX);
        check(&big, &plain);
        assert_eq!(big.files.len(), 3, "one file per event date");
        assert!(big.files.iter().any(|f| f.rows > ROW_GROUP_ROWS / 4));
        check(&run(&plain, 4093), &plain);
        let small = &plain[..30_001];
        check(&run(small, 1), small);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&plain).unwrap();
        let gz = gz.finish().unwrap();
        check(&run(&gz, 65_536), &plain);
        check(&run(&gz, 1_000), &plain);
    }

    #[test]
    fn a_truncated_gzip_object_is_bad_not_short() {
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&raw(2_000)).unwrap();
        let gz = gz.finish().unwrap();
        let mut stream = CurateStream::new("raw/dt=2026-11-24/x.gz");
        stream.push(&gz[..gz.len() / 2]).unwrap();
        assert!(matches!(
            stream.finish(),
            Err(PipelineError::BadObject { .. })
        ));
    }

    fn lines(hits: &[(&str, &str)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (clientid, hitid)) in hits.iter().enumerate() {
            Hit {
                clientid: (*clientid).into(),
                gender: if i % 2 == 0 { Gender::M } else { Gender::F },
                event_ms: 1_795_514_400_000 + i as i64,
                hitid: Some((*hitid).into()),
            }
            .write_ndjson(&mut out);
        }
        out
    }

    fn curate_with(index: &mut SeenIndex, raw: &[u8]) -> CuratedObject {
        let mut stream = CurateStream::with_filter("raw/dt=2026-11-24/x.ndjson", index);
        stream.push(raw).unwrap();
        stream.finish().unwrap()
    }

    fn rows(object: &CuratedObject) -> Vec<(String, Option<String>)> {
        let mut out = Vec::new();
        for file in &object.files {
            let bytes = std::fs::read(file.temp.path()).unwrap();
            for hit in crate::codec::decode_hits(bytes, &file.key).unwrap() {
                out.push((hit.clientid.into_owned(), hit.hitid.map(|h| h.into_owned())));
            }
        }
        out
    }

    #[test]
    fn an_identity_is_counted_and_written_once_across_objects() {
        let mut index = SeenIndex::new(3_600_000);
        // Duplicates inside one object: the first line of each identity wins.
        let first = curate_with(
            &mut index,
            &lines(&[("a", "1"), ("a", "1"), ("b", "1"), ("a", "2")]),
        );
        assert_eq!((first.hits, first.duplicates), (3, 1));
        assert_eq!(
            rows(&first),
            [("a", "1"), ("b", "1"), ("a", "2")].map(|(c, h)| (c.to_owned(), Some(h.to_owned())))
        );
        let a = first.deltas.iter().find(|d| d.clientid == "a").unwrap();
        // Line 0 is M, line 3 is F; line 1 (F) was the duplicate.
        assert_eq!((a.m, a.f), (1, 1));
        index.remember_pending(0);
        // A partial overlap in a later object: only the new identity counts.
        let second = curate_with(&mut index, &lines(&[("b", "1"), ("b", "2"), ("a", "1")]));
        assert_eq!((second.hits, second.duplicates), (1, 2));
        assert_eq!(rows(&second), [("b".to_owned(), Some("2".to_owned()))]);
        assert_eq!(second.deltas.len(), 1);
    }

    #[test]
    fn a_discarded_object_decides_the_same_way_again() {
        let mut index = SeenIndex::new(3_600_000);
        let raw = lines(&[("a", "1"), ("a", "1"), ("c", "9")]);
        let once = curate_with(&mut index, &raw);
        // Its transaction did not commit (a crash, a full disk): redone.
        index.discard_pending();
        let again = curate_with(&mut index, &raw);
        assert_eq!(rows(&once), rows(&again));
        assert_eq!(once.deltas, again.deltas);
    }
}
