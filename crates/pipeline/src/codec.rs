//! Parquet layouts of SPEC 6 and 7. Writer properties are built once; every
//! call encodes one complete file in memory.

use crate::PipelineError;
use arrow_array::{
    Array, ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use bytes::Bytes;
use gender_core::daily::DailyRow;
use gender_core::{Gender, Hit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::WriterProperties;
use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

static HITS_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("clientid", DataType::Utf8, false),
        Field::new("page_gender", DataType::Utf8, false),
        Field::new(
            "event_time",
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
    ]))
});

static DAILY_SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    Arc::new(Schema::new(vec![
        Field::new("clientid", DataType::Utf8, false),
        Field::new("m", DataType::Int64, false),
        Field::new("f", DataType::Int64, false),
    ]))
});

static WRITER_PROPERTIES: LazyLock<WriterProperties> = LazyLock::new(|| {
    WriterProperties::builder()
        // Level 1: most of zstd's ratio on low-cardinality columns at a fraction of the CPU.
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(1).expect("valid zstd level"),
        ))
        .set_dictionary_enabled(true)
        .build()
});

pub fn hits_schema() -> SchemaRef {
    HITS_SCHEMA.clone()
}

pub fn daily_schema() -> SchemaRef {
    DAILY_SCHEMA.clone()
}

fn encode(batch: &RecordBatch, key: &str) -> Result<Vec<u8>, PipelineError> {
    let parquet = |source| PipelineError::Parquet {
        key: key.to_owned(),
        source,
    };
    let mut writer =
        ArrowWriter::try_new(Vec::new(), batch.schema(), Some(WRITER_PROPERTIES.clone()))
            .map_err(parquet)?;
    writer.write(batch).map_err(parquet)?;
    writer.into_inner().map_err(parquet)
}

/// One complete Parquet file holding `hits` (SPEC 6 schema).
pub fn encode_hits(hits: &[&Hit<'_>], key: &str) -> Result<Vec<u8>, PipelineError> {
    let clientid: StringArray = hits.iter().map(|h| Some(h.clientid.as_ref())).collect();
    let page_gender: StringArray = hits.iter().map(|h| Some(h.gender.as_str())).collect();
    let event_time = TimestampMillisecondArray::from_iter_values(hits.iter().map(|h| h.event_ms))
        .with_timezone("UTC");
    let columns: Vec<ArrayRef> = vec![
        Arc::new(clientid),
        Arc::new(page_gender),
        Arc::new(event_time),
    ];
    let batch =
        RecordBatch::try_new(hits_schema(), columns).map_err(|source| PipelineError::Arrow {
            key: key.to_owned(),
            source,
        })?;
    encode(&batch, key)
}

pub fn encode_daily(rows: &[DailyRow], key: &str) -> Result<Vec<u8>, PipelineError> {
    let clientid: StringArray = rows.iter().map(|r| Some(r.clientid.as_str())).collect();
    let m = Int64Array::from_iter_values(rows.iter().map(|r| r.m));
    let f = Int64Array::from_iter_values(rows.iter().map(|r| r.f));
    let columns: Vec<ArrayRef> = vec![Arc::new(clientid), Arc::new(m), Arc::new(f)];
    let batch =
        RecordBatch::try_new(daily_schema(), columns).map_err(|source| PipelineError::Arrow {
            key: key.to_owned(),
            source,
        })?;
    encode(&batch, key)
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
            });
        }
    }
    Ok(hits)
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
            },
            Hit {
                clientid: "b".into(),
                gender: Gender::F,
                event_ms: 1_795_514_400_123,
            },
        ];
        let bytes = encode_hits(&hits.iter().collect::<Vec<_>>(), "t").unwrap();
        assert_eq!(&bytes[..4], b"PAR1");
        let builder = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(bytes.clone())).unwrap();
        assert_eq!(builder.schema().as_ref(), hits_schema().as_ref());
        let meta = builder.metadata().row_group(0).column(0).compression();
        assert!(matches!(meta, Compression::ZSTD(_)));
        assert_eq!(decode_hits(bytes, "t").unwrap(), hits);
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
