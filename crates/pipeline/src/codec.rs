//! Parquet layouts of SPEC 6 and 7. Writer properties are built once.
//! Curate writes hits files row group by row group into a local temporary
//! file ([`HitsFileWriter`]), and the daily job reads them back one row group
//! at a time ([`for_each_hit_file_row`]): neither holds a whole object.

use crate::PipelineError;
use arrow_array::builder::StringBuilder;
use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, DictionaryArray, Int64Array, RecordBatch, StringArray,
    TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use gender_core::daily::DailyRow;
use gender_core::{Gender, Hit};
use parquet::arrow::arrow_reader::{
    ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder,
};
use parquet::arrow::{ArrowWriter, ProjectionMask};
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;
use std::borrow::Cow;
use std::fs::File;
use std::sync::{Arc, LazyLock};

/// Rows per row group of a curated hits file: what a writer buffers and a
/// reader decodes at a time.
pub const ROW_GROUP_ROWS: usize = 128 * 1024;
/// The rows a new hits file's buffers hold before they first grow.
const FIRST_ROWS: usize = 64;

/// Key-value metadata of a daily rollup naming the curated hits it was
/// built from (see [`crate::daily`]).
pub const ROLLUP_SOURCES_KEY: &str = "gender.curated_sources";
/// Key-value metadata of the window sums file: what it was computed from
/// (`gender_core::daily::WindowFileMeta` as JSON).
pub const WINDOW_META_KEY: &str = "gender.window";

static HITS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("clientid", DataType::Utf8, false),
        Field::new("page_gender", DataType::Utf8, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        // Null only for hits without an identity (SPEC 15): records that
        // entered behind the API, or raw data from before `hitid`.
        Field::new("hit_id", DataType::Utf8, true),
    ]))
});

static DAILY_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("clientid", DataType::Utf8, false),
        Field::new("m", DataType::Int64, false),
        Field::new("f", DataType::Int64, false),
    ]))
});

fn base_properties() -> WriterPropertiesBuilder {
    WriterProperties::builder()
        // Level 1: most of zstd's ratio on low-cardinality columns at a fraction of the CPU.
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid zstd level"),
        ))
        .set_dictionary_enabled(true)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
}

#[cfg(test)]
static WRITER_PROPERTIES: LazyLock<WriterProperties> = LazyLock::new(|| base_properties().build());

static HITS_WRITER_PROPERTIES: LazyLock<WriterProperties> = LazyLock::new(|| {
    base_properties()
        // Millisecond times barely repeat: a dictionary only costs time.
        .set_column_dictionary_enabled(ColumnPath::from("event_time"), false)
        // Hit ids are unique by design: a dictionary would hold every value,
        // and min/max of random ids prune nothing (computing them is a string
        // comparison per row).
        .set_column_dictionary_enabled(ColumnPath::from("hit_id"), false)
        .set_column_statistics_enabled(ColumnPath::from("hit_id"), EnabledStatistics::None)
        // Lengths apart from the bytes: in plain encoding each id's 4-byte
        // length prefix gives zstd short false matches with the random
        // characters after it, which cost more time than they save bytes.
        // Curate with UUID ids: 3.5 -> 4.2 M hits/s, and 5 % smaller files.
        .set_column_encoding(
            ColumnPath::from("hit_id"),
            Encoding::DELTA_LENGTH_BYTE_ARRAY,
        )
        // Min/max per row group, not per page: enough for pruning by time or id.
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .build()
});

pub fn hits_schema() -> SchemaRef {
    HITS_SCHEMA.clone()
}

pub fn daily_schema() -> SchemaRef {
    DAILY_SCHEMA.clone()
}

fn encode(
    batch: &RecordBatch,
    key: &str,
    properties: WriterProperties,
) -> Result<Vec<u8>, PipelineError> {
    let parquet = |source| PipelineError::Parquet {
        key: key.to_owned(),
        source,
    };
    let mut writer =
        ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties)).map_err(parquet)?;
    writer.write(batch).map_err(parquet)?;
    writer.into_inner().map_err(parquet)
}

fn hits_batch(
    clientid: StringArray,
    genders: &[Gender],
    times: Vec<i64>,
    hit_ids: StringArray,
    key: &str,
) -> Result<RecordBatch, PipelineError> {
    let page_gender = StringArray::from_iter_values(genders.iter().map(|g| g.as_str()));
    let event_time = TimestampMillisecondArray::from(times).with_timezone("UTC");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(clientid),
        Arc::new(page_gender),
        Arc::new(event_time),
        Arc::new(hit_ids),
    ];
    RecordBatch::try_new(hits_schema(), columns).map_err(|source| PipelineError::Arrow {
        key: key.to_owned(),
        source,
    })
}

/// One complete Parquet file holding `hits` (SPEC 6 schema), in memory.
pub fn encode_hits(hits: &[&Hit<'_>], key: &str) -> Result<Vec<u8>, PipelineError> {
    let clientid: StringArray = hits.iter().map(|h| Some(h.clientid.as_ref())).collect();
    let genders: Vec<Gender> = hits.iter().map(|h| h.gender).collect();
    let times = hits.iter().map(|h| h.event_ms).collect();
    let hit_ids: StringArray = hits.iter().map(|h| h.hitid.as_deref()).collect();
    let batch = hits_batch(clientid, &genders, times, hit_ids, key)?;
    encode(&batch, key, HITS_WRITER_PROPERTIES.clone())
}

/// A curated hits file being written to a local temporary file, one row
/// group at a time: memory holds one row group, whatever the file's size.
/// The file is opened when the first row group is written (full, or at
/// [`finish`](HitsFileWriter::finish)), so a batch spread over a thousand
/// dates with a few hits each holds rows, not a thousand open files (issue 26).
pub struct HitsFileWriter {
    key: String,
    output: Option<(tempfile::NamedTempFile, ArrowWriter<File>)>,
    ids: StringBuilder,
    genders: Vec<Gender>,
    times: Vec<i64>,
    hit_ids: StringBuilder,
    rows: usize,
}

/// A Parquet writer into a new local temporary file (deleted on drop), for
/// the object `key`.
fn temp_parquet_writer(
    key: &str,
    schema: SchemaRef,
    properties: &WriterProperties,
) -> Result<(tempfile::NamedTempFile, ArrowWriter<File>), PipelineError> {
    let io = |e: std::io::Error| PipelineError::BadObject {
        key: key.to_owned(),
        detail: format!("local temporary file: {e}"),
    };
    let temp = tempfile::NamedTempFile::new().map_err(io)?;
    let file = temp.as_file().try_clone().map_err(io)?;
    let writer =
        ArrowWriter::try_new(file, schema, Some(properties.clone())).map_err(|source| {
            PipelineError::Parquet {
                key: key.to_owned(),
                source,
            }
        })?;
    Ok((temp, writer))
}

/// A finished hits file: its key and the local file holding it (deleted on drop).
pub struct HitsFile {
    pub key: String,
    pub rows: usize,
    pub temp: tempfile::NamedTempFile,
}

impl HitsFileWriter {
    pub fn create(key: String) -> Result<HitsFileWriter, PipelineError> {
        Ok(HitsFileWriter {
            key,
            output: None,
            // Grown as rows come: most of a fan-out's dates hold a few hits.
            ids: StringBuilder::with_capacity(FIRST_ROWS, FIRST_ROWS * 16),
            genders: Vec::with_capacity(FIRST_ROWS),
            times: Vec::with_capacity(FIRST_ROWS),
            hit_ids: StringBuilder::with_capacity(FIRST_ROWS, FIRST_ROWS * 24),
            rows: 0,
        })
    }

    fn open(&mut self) -> Result<&mut ArrowWriter<File>, PipelineError> {
        if self.output.is_none() {
            self.output = Some(temp_parquet_writer(
                &self.key,
                hits_schema(),
                &HITS_WRITER_PROPERTIES,
            )?);
        }
        Ok(&mut self.output.as_mut().expect("opened above").1)
    }

    #[inline]
    pub fn push(
        &mut self,
        clientid: &str,
        gender: Gender,
        event_ms: i64,
        hit_id: Option<&str>,
    ) -> Result<(), PipelineError> {
        self.ids.append_value(clientid);
        self.genders.push(gender);
        self.times.push(event_ms);
        self.hit_ids.append_option(hit_id);
        if self.times.len() == ROW_GROUP_ROWS {
            self.write_row_group()?;
        }
        Ok(())
    }

    fn write_row_group(&mut self) -> Result<(), PipelineError> {
        if self.times.is_empty() {
            return Ok(());
        }
        let times = std::mem::replace(&mut self.times, Vec::with_capacity(ROW_GROUP_ROWS));
        self.rows += times.len();
        let batch = hits_batch(
            self.ids.finish(),
            &self.genders,
            times,
            self.hit_ids.finish(),
            &self.key,
        )?;
        self.genders.clear();
        let writer = self.open()?;
        writer
            .write(&batch)
            .and_then(|()| writer.flush())
            .map_err(|source| PipelineError::Parquet {
                key: self.key.clone(),
                source,
            })
    }

    /// Writes the last row group and the footer.
    pub fn finish(mut self) -> Result<HitsFile, PipelineError> {
        self.write_row_group()?;
        self.open()?; // a file without rows still has its schema
        let (temp, writer) = self.output.take().expect("opened above");
        writer.close().map_err(|source| PipelineError::Parquet {
            key: self.key.clone(),
            source,
        })?;
        Ok(HitsFile {
            key: self.key,
            rows: self.rows,
            temp,
        })
    }
}

/// Receives the rows of a curated hits file ([`for_each_hit_file_row`]).
pub trait HitRows {
    /// The distinct clientids of the rows that follow, until the next call.
    fn dictionary(&mut self, clientids: &StringArray);
    /// One row: its clientid as an index into the last dictionary.
    fn row(&mut self, clientid: usize, gender: Gender);
}

/// Reads the `clientid` and `page_gender` of every row of a curated hits
/// file, one row group at a time. Dictionary pages stay dictionaries, so a
/// clientid is looked at once per dictionary, not once per row.
/// Returns the number of rows.
pub fn for_each_hit_file_row(
    file: File,
    key: &str,
    sink: &mut impl HitRows,
) -> Result<u64, PipelineError> {
    let parquet = |source| PipelineError::Parquet {
        key: key.to_owned(),
        source,
    };
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let metadata = ArrowReaderMetadata::load(&file, ArrowReaderOptions::new()).map_err(parquet)?;
    // A row group of many distinct clientids outgrows the dictionary page and
    // goes on in plain pages; read as a dictionary, those would be interned
    // again value by value (a third of a rollup's rebuild), so such a file's
    // clientids are read as plain strings, each row its own "dictionary" entry.
    let plain_ids = !all_dictionary_encoded(metadata.metadata(), "clientid");
    // The hint must list every column the file has: files written before
    // `hit_id` existed have three.
    let hinted: Vec<Field> = metadata
        .schema()
        .fields()
        .iter()
        .map(|field| match field.name().as_str() {
            "clientid" if plain_ids => field.as_ref().clone(),
            "clientid" | "page_gender" => Field::new(field.name(), dictionary.clone(), false),
            _ => field.as_ref().clone(),
        })
        .collect();
    let metadata = ArrowReaderMetadata::try_new(
        metadata.metadata().clone(),
        ArrowReaderOptions::new().with_schema(Arc::new(Schema::new(hinted))),
    )
    .map_err(parquet)?;
    let builder = ParquetRecordBatchReaderBuilder::new_with_metadata(file, metadata);
    let mask = ProjectionMask::columns(builder.parquet_schema(), ["clientid", "page_gender"]);
    let reader = builder
        .with_projection(mask)
        .with_batch_size(ROW_GROUP_ROWS)
        .build()
        .map_err(parquet)?;
    let bad = |detail: String| PipelineError::BadObject {
        key: key.to_owned(),
        detail,
    };
    let mut rows = 0u64;
    let mut last_dictionary: Option<ArrayRef> = None;
    for batch in reader {
        let batch = batch.map_err(|source| PipelineError::Arrow {
            key: key.to_owned(),
            source,
        })?;
        let genders = column::<DictionaryArray<Int32Type>>(&batch, "page_gender", key)?;
        if genders.null_count() > 0 {
            return Err(bad("null values".into()));
        }
        let positions: Vec<i32>;
        let ids: &[i32] = if plain_ids {
            let values = column::<StringArray>(&batch, "clientid", key)?;
            if values.null_count() > 0 {
                return Err(bad("null values".into()));
            }
            sink.dictionary(values);
            positions = (0..values.len() as i32).collect();
            &positions
        } else {
            let ids = column::<DictionaryArray<Int32Type>>(&batch, "clientid", key)?;
            if ids.null_count() > 0 {
                return Err(bad("null values".into()));
            }
            // Batches of one column chunk share its dictionary: map it once.
            let same = last_dictionary
                .as_ref()
                .is_some_and(|last| last.to_data().ptr_eq(&ids.values().to_data()));
            if !same {
                let values = ids
                    .values()
                    .as_any()
                    .downcast_ref::<StringArray>()
                    .ok_or_else(|| bad("clientid dictionary is not utf8".into()))?;
                sink.dictionary(values);
                last_dictionary = Some(ids.values().clone());
            }
            ids.keys().values()
        };
        let gender_values = genders
            .values()
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| bad("page_gender dictionary is not utf8".into()))?;
        let gender_of: Vec<Option<Gender>> = gender_values
            .iter()
            .map(|v| v.and_then(Gender::parse))
            .collect();
        for (id, g) in ids.iter().zip(genders.keys().values()) {
            let gender = gender_of
                .get(*g as usize)
                .copied()
                .flatten()
                .ok_or_else(|| bad("page_gender is not M or F".into()))?;
            sink.row(*id as usize, gender);
        }
        rows += batch.num_rows() as u64;
    }
    Ok(rows)
}

/// Whether every data page of `column` in every row group is dictionary
/// encoded (unknown, without page encoding statistics: taken as yes).
fn all_dictionary_encoded(
    metadata: &parquet::file::metadata::ParquetMetaData,
    column: &str,
) -> bool {
    metadata.row_groups().iter().all(|group| {
        group
            .columns()
            .iter()
            .filter(|chunk| chunk.column_path().string() == column)
            .all(|chunk| {
                chunk.page_encoding_stats_mask().is_none_or(|mask| {
                    chunk.dictionary_page_offset().is_some()
                        && (mask.is_only(Encoding::RLE_DICTIONARY)
                            || mask.is_only(Encoding::PLAIN_DICTIONARY))
                })
            })
    })
}

pub fn encode_daily(rows: &[DailyRow], key: &str) -> Result<Vec<u8>, PipelineError> {
    let rows = rows.iter().map(|r| (r.clientid.as_str(), r.m, r.f));
    encode_daily_rows(rows, key, None)
}

/// A daily rollup file from `(clientid, m, f)` rows; `sources` (the digest
/// of the curated hits it was built from) goes into its key-value metadata.
pub fn encode_daily_rows<'a>(
    rows: impl Iterator<Item = (&'a str, i64, i64)>,
    key: &str,
    sources: Option<&str>,
) -> Result<Vec<u8>, PipelineError> {
    encode_daily_batch(&daily_batch(rows, key)?, key, sources)
}

/// The rows of a daily rollup as one batch (SPEC 7 schema), in one pass
/// over `rows`: a rebuilt rollup's visitors come sorted, in an order
/// unrelated to where their counts lie, so each is looked up once.
pub fn daily_batch<'a>(
    rows: impl Iterator<Item = (&'a str, i64, i64)>,
    key: &str,
) -> Result<RecordBatch, PipelineError> {
    let n = rows.size_hint().0;
    let mut ids = StringBuilder::with_capacity(n, n * 16);
    let (mut m, mut f) = (Vec::with_capacity(n), Vec::with_capacity(n));
    for (id, row_m, row_f) in rows {
        ids.append_value(id);
        m.push(row_m);
        f.push(row_f);
    }
    daily_columns(ids.finish(), m, f, key)
}

fn daily_columns(
    ids: StringArray,
    m: Vec<i64>,
    f: Vec<i64>,
    key: &str,
) -> Result<RecordBatch, PipelineError> {
    let columns: Vec<ArrayRef> = vec![
        Arc::new(ids),
        Arc::new(Int64Array::from(m)),
        Arc::new(Int64Array::from(f)),
    ];
    RecordBatch::try_new(daily_schema(), columns).map_err(|source| PipelineError::Arrow {
        key: key.to_owned(),
        source,
    })
}

/// A rollup's clientids are unique (one row per visitor): a dictionary would
/// hold every value, and reading it back costs a lookup per row.
fn rollup_properties() -> WriterPropertiesBuilder {
    base_properties().set_column_dictionary_enabled(ColumnPath::from("clientid"), false)
}

static WINDOW_WRITER_PROPERTIES: LazyLock<WriterProperties> =
    LazyLock::new(|| rollup_properties().build());

/// The window sums file being written as the daily merge goes, one batch of
/// `(clientid, m, f)` at a time into a local temporary file, in clientid
/// order like a rollup (and read back like one).
pub struct WindowFileWriter {
    key: String,
    temp: tempfile::NamedTempFile,
    writer: ArrowWriter<File>,
    ids: StringBuilder,
    m: Vec<i64>,
    f: Vec<i64>,
    batch_rows: usize,
    pub rows: usize,
}

impl WindowFileWriter {
    pub fn create(key: &str, batch_rows: usize) -> Result<WindowFileWriter, PipelineError> {
        let (temp, writer) = temp_parquet_writer(key, daily_schema(), &WINDOW_WRITER_PROPERTIES)?;
        Ok(WindowFileWriter {
            key: key.to_owned(),
            temp,
            writer,
            ids: StringBuilder::with_capacity(batch_rows, batch_rows * 16),
            m: Vec::with_capacity(batch_rows),
            f: Vec::with_capacity(batch_rows),
            batch_rows,
            rows: 0,
        })
    }

    #[inline]
    pub fn push(&mut self, clientid: &str, m: i64, f: i64) -> Result<(), PipelineError> {
        self.ids.append_value(clientid);
        self.m.push(m);
        self.f.push(f);
        if self.m.len() >= self.batch_rows {
            self.write_batch()?;
        }
        Ok(())
    }

    fn write_batch(&mut self) -> Result<(), PipelineError> {
        if self.m.is_empty() {
            return Ok(());
        }
        self.rows += self.m.len();
        let m = std::mem::replace(&mut self.m, Vec::with_capacity(self.batch_rows));
        let f = std::mem::replace(&mut self.f, Vec::with_capacity(self.batch_rows));
        let batch = daily_columns(self.ids.finish(), m, f, &self.key)?;
        self.writer
            .write(&batch)
            .map_err(|source| PipelineError::Parquet {
                key: self.key.clone(),
                source,
            })
    }

    /// Writes the last batch and the footer with `meta` in its key-value
    /// metadata; the local file holding it (deleted on drop).
    pub fn finish(mut self, meta: String) -> Result<tempfile::NamedTempFile, PipelineError> {
        self.write_batch()?;
        self.writer
            .append_key_value_metadata(KeyValue::new(WINDOW_META_KEY.to_owned(), meta));
        self.writer
            .close()
            .map_err(|source| PipelineError::Parquet {
                key: self.key.clone(),
                source,
            })?;
        Ok(self.temp)
    }
}

/// A daily rollup file from its batch, with `sources` in its metadata.
pub fn encode_daily_batch(
    batch: &RecordBatch,
    key: &str,
    sources: Option<&str>,
) -> Result<Vec<u8>, PipelineError> {
    let rollup = rollup_properties;
    let properties = match sources {
        None => rollup().build(),
        Some(sources) => rollup()
            .set_key_value_metadata(Some(vec![KeyValue::new(
                ROLLUP_SOURCES_KEY.to_owned(),
                sources.to_owned(),
            )]))
            .build(),
    };
    encode(batch, key, properties)
}

/// Record batches of `batch_size` rows from a Parquet file (bytes or a file).
pub(crate) fn batch_reader<T: parquet::file::reader::ChunkReader + 'static>(
    input: T,
    key: &str,
    batch_size: usize,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, PipelineError> {
    let parquet = |source| PipelineError::Parquet {
        key: key.to_owned(),
        source,
    };
    ParquetRecordBatchReaderBuilder::try_new(input)
        .map_err(parquet)?
        .with_batch_size(batch_size)
        .build()
        .map_err(parquet)
}

/// A daily rollup's batches, with the SPEC 7 columns checked (clientid
/// utf8, m and f int64, in that order).
pub fn daily_batches(bytes: Bytes, key: &str) -> Result<Vec<RecordBatch>, PipelineError> {
    let reader = batch_reader(bytes, key, 64 * 1024)?;
    let mut batches = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|source| PipelineError::Arrow {
            key: key.to_owned(),
            source,
        })?;
        let fields = batch.schema();
        let ok = batch.num_columns() == 3
            && fields.field(0).name() == "clientid"
            && fields.field(1).name() == "m"
            && fields.field(2).name() == "f";
        if !ok {
            return Err(PipelineError::BadObject {
                key: key.to_owned(),
                detail: "not a daily rollup".into(),
            });
        }
        column::<StringArray>(&batch, "clientid", key)?;
        column::<Int64Array>(&batch, "m", key)?;
        column::<Int64Array>(&batch, "f", key)?;
        batches.push(batch);
    }
    Ok(batches)
}

/// A daily rollup file opened for reading, one batch at a time.
pub struct DailyFile {
    /// The `sources` it was written with, if any.
    pub sources: Option<String>,
    /// A window sums file's record of what it holds, if it is one.
    pub window: Option<String>,
    /// Rows, from its footer.
    pub rows: usize,
    pub reader: parquet::arrow::arrow_reader::ParquetRecordBatchReader,
}

/// Opens a daily rollup in a local file: its footer read, its columns
/// checked (clientid utf8, m and f int64, in that order), nothing decoded yet.
pub fn open_daily_file(
    file: File,
    key: &str,
    batch_size: usize,
) -> Result<DailyFile, PipelineError> {
    let parquet = |source| PipelineError::Parquet {
        key: key.to_owned(),
        source,
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(parquet)?;
    let fields = builder.schema().fields();
    let columns: Vec<(&str, &DataType)> = fields
        .iter()
        .map(|f| (f.name().as_str(), f.data_type()))
        .collect();
    if columns
        != [
            ("clientid", &DataType::Utf8),
            ("m", &DataType::Int64),
            ("f", &DataType::Int64),
        ]
    {
        return Err(PipelineError::BadObject {
            key: key.to_owned(),
            detail: "not a daily rollup".into(),
        });
    }
    let metadata = builder.metadata().file_metadata();
    let value = |key: &str| {
        metadata
            .key_value_metadata()
            .and_then(|kv| kv.iter().find(|e| e.key == key))
            .and_then(|e| e.value.clone())
    };
    let (sources, window) = (value(ROLLUP_SOURCES_KEY), value(WINDOW_META_KEY));
    let rows = usize::try_from(metadata.num_rows()).unwrap_or(0);
    let reader = builder
        .with_batch_size(batch_size)
        .build()
        .map_err(parquet)?;
    Ok(DailyFile {
        sources,
        window,
        rows,
        reader,
    })
}

/// The `sources` a rollup was written with, if any.
pub fn daily_sources(bytes: &Bytes, key: &str) -> Result<Option<String>, PipelineError> {
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes.clone()).map_err(|source| {
        PipelineError::Parquet {
            key: key.to_owned(),
            source,
        }
    })?;
    Ok(builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .and_then(|kv| kv.iter().find(|e| e.key == ROLLUP_SOURCES_KEY))
        .and_then(|e| e.value.clone()))
}

fn read_batches(bytes: Vec<u8>, key: &str) -> Result<Vec<RecordBatch>, PipelineError> {
    let parquet = |source| PipelineError::Parquet {
        key: key.to_owned(),
        source,
    };
    let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes))
        .map_err(parquet)?
        .with_batch_size(64 * 1024)
        .build()
        .map_err(parquet)?;
    reader
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| PipelineError::Arrow {
            key: key.to_owned(),
            source,
        })
}

fn column<'a, T: 'static>(
    batch: &'a RecordBatch,
    name: &str,
    key: &str,
) -> Result<&'a T, PipelineError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| PipelineError::BadObject {
            key: key.to_owned(),
            detail: format!("column {name} missing or mistyped"),
        })
}

/// Reads a curated hits file back (daily job, tests).
pub fn decode_hits(bytes: Vec<u8>, key: &str) -> Result<Vec<Hit<'static>>, PipelineError> {
    let mut hits = Vec::new();
    for batch in read_batches(bytes, key)? {
        let clientid = column::<StringArray>(&batch, "clientid", key)?;
        let gender = column::<StringArray>(&batch, "page_gender", key)?;
        let time = column::<TimestampMillisecondArray>(&batch, "event_time", key)?;
        // Absent in files written before `hit_id` existed.
        let hit_id = batch
            .column_by_name("hit_id")
            .map(|_| column::<StringArray>(&batch, "hit_id", key))
            .transpose()?;
        if clientid.null_count() + gender.null_count() + time.null_count() > 0 {
            return Err(PipelineError::BadObject {
                key: key.to_owned(),
                detail: "null values".into(),
            });
        }
        for i in 0..batch.num_rows() {
            let gender =
                Gender::parse(gender.value(i)).ok_or_else(|| PipelineError::BadObject {
                    key: key.to_owned(),
                    detail: format!("page_gender {:?} at row {i}", gender.value(i)),
                })?;
            hits.push(Hit {
                clientid: Cow::Owned(clientid.value(i).to_owned()),
                gender,
                event_ms: time.value(i),
                hitid: hit_id
                    .filter(|ids| ids.is_valid(i))
                    .map(|ids| Cow::Owned(ids.value(i).to_owned())),
            });
        }
    }
    Ok(hits)
}

/// Calls `each(clientid, m, f)` for every row of a daily rollup.
pub fn for_each_daily_row(
    bytes: Bytes,
    key: &str,
    mut each: impl FnMut(&str, i64, i64),
) -> Result<(), PipelineError> {
    let reader = batch_reader(bytes, key, 64 * 1024)?;
    for batch in reader {
        let batch = batch.map_err(|source| PipelineError::Arrow {
            key: key.to_owned(),
            source,
        })?;
        let clientid = column::<StringArray>(&batch, "clientid", key)?;
        let m = column::<Int64Array>(&batch, "m", key)?;
        let f = column::<Int64Array>(&batch, "f", key)?;
        for i in 0..batch.num_rows() {
            each(clientid.value(i), m.value(i), f.value(i));
        }
    }
    Ok(())
}

pub fn decode_daily(bytes: Vec<u8>, key: &str) -> Result<Vec<DailyRow>, PipelineError> {
    let mut rows = Vec::new();
    for batch in read_batches(bytes, key)? {
        let clientid = column::<StringArray>(&batch, "clientid", key)?;
        let m = column::<Int64Array>(&batch, "m", key)?;
        let f = column::<Int64Array>(&batch, "f", key)?;
        for i in 0..batch.num_rows() {
            rows.push(DailyRow {
                clientid: clientid.value(i).to_owned(),
                m: m.value(i),
                f: f.value(i),
            });
        }
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hits_round_trip_with_the_spec_schema() {
        let hits = [
            Hit {
                clientid: "a".into(),
                gender: Gender::M,
                event_ms: 1,
                hitid: Some("h.1".into()),
            },
            Hit {
                clientid: "b".into(),
                gender: Gender::F,
                event_ms: 1_795_514_400_123,
                hitid: None,
            },
        ];
        let bytes = encode_hits(&hits.iter().collect::<Vec<_>>(), "t").unwrap();
        assert_eq!(&bytes[..4], b"PAR1");
        let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(builder.schema().as_ref(), hits_schema().as_ref());
        let meta = builder.metadata().row_group(0).column(0).compression();
        assert!(matches!(meta, Compression::ZSTD(_)));
        // hit_id: lengths apart from the bytes (see HITS_WRITER_PROPERTIES).
        let hit_id = builder.metadata().row_group(0).column(3);
        assert_eq!(hit_id.column_path().string(), "hit_id");
        assert!(
            hit_id
                .encodings()
                .any(|e| e == Encoding::DELTA_LENGTH_BYTE_ARRAY),
            "{:?}",
            hit_id.encodings().collect::<Vec<_>>()
        );
        assert_eq!(decode_hits(bytes, "t").unwrap(), hits);
    }

    /// A file as written before `hit_id` existed: the three SPEC columns.
    fn three_column_file(ids: &[&str]) -> Vec<u8> {
        let schema = Arc::new(Schema::new(hits_schema().fields()[..3].to_vec()));
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from_iter_values(ids.iter())),
            Arc::new(StringArray::from_iter_values(ids.iter().map(|_| "M"))),
            Arc::new(TimestampMillisecondArray::from(vec![7; ids.len()]).with_timezone("UTC")),
        ];
        let batch = RecordBatch::try_new(schema, columns).unwrap();
        encode(&batch, "old", WRITER_PROPERTIES.clone()).unwrap()
    }

    #[test]
    fn files_from_before_hit_id_are_still_read() {
        let bytes = three_column_file(&["a", "b", "a"]);
        let hits = decode_hits(bytes.clone(), "old").unwrap();
        assert_eq!(hits.len(), 3);
        assert!(hits.iter().all(|h| h.hitid.is_none()));
        struct Count(u64, usize);
        impl HitRows for Count {
            fn dictionary(&mut self, ids: &StringArray) {
                self.1 = ids.len();
            }
            fn row(&mut self, _: usize, _: Gender) {
                self.0 += 1;
            }
        }
        let mut file = tempfile::tempfile().unwrap();
        std::io::Write::write_all(&mut file, &bytes).unwrap();
        let mut count = Count(0, 0);
        assert_eq!(for_each_hit_file_row(file, "old", &mut count).unwrap(), 3);
        assert_eq!((count.0, count.1), (3, 2));
    }

    /// Per clientid `[m, f]`, through the dictionary/row interface.
    #[derive(Default)]
    struct PerVisitor {
        current: Vec<String>,
        counts: std::collections::HashMap<String, [u64; 2]>,
    }

    impl HitRows for PerVisitor {
        fn dictionary(&mut self, ids: &StringArray) {
            self.current = ids.iter().map(|id| id.unwrap().to_owned()).collect();
        }
        fn row(&mut self, clientid: usize, gender: Gender) {
            let counts = self
                .counts
                .entry(self.current[clientid].clone())
                .or_default();
            counts[usize::from(gender == Gender::F)] += 1;
        }
    }

    /// A row group of many distinct clientids outgrows its dictionary page
    /// and goes on in plain pages; such a file is read as plain strings, one
    /// of few visitors as a dictionary, with the same counts either way.
    #[test]
    fn clientids_are_counted_alike_whether_dictionary_or_plain_pages() {
        for (visitors, rows, all_dictionary) in
            [(50usize, 20_000usize, true), (100_000, 150_000, false)]
        {
            let mut writer = HitsFileWriter::create("t".into()).unwrap();
            let mut expected: std::collections::HashMap<String, [u64; 2]> = Default::default();
            for row in 0..rows {
                let id = format!("visitor-{:09}", (row * 7919) % visitors);
                let gender = if row % 3 == 0 { Gender::F } else { Gender::M };
                writer.push(&id, gender, 1, None).unwrap();
                expected.entry(id).or_default()[usize::from(gender == Gender::F)] += 1;
            }
            let file = writer.finish().unwrap();
            let metadata =
                ArrowReaderMetadata::load(file.temp.as_file(), ArrowReaderOptions::new()).unwrap();
            assert_eq!(
                all_dictionary_encoded(metadata.metadata(), "clientid"),
                all_dictionary,
                "{visitors} visitors"
            );
            let mut seen = PerVisitor::default();
            let read = for_each_hit_file_row(file.temp.reopen().unwrap(), "t", &mut seen).unwrap();
            assert_eq!(read, rows as u64);
            assert_eq!(seen.counts, expected, "{visitors} visitors");
        }
    }

    #[test]
    fn daily_round_trips() {
        let rows = vec![DailyRow {
            clientid: "a".into(),
            m: 3,
            f: 0,
        }];
        let bytes = encode_daily(&rows, "t").unwrap();
        assert_eq!(decode_daily(bytes, "t").unwrap(), rows);
        assert!(decode_daily(b"not parquet".to_vec(), "t").is_err());
    }
}
