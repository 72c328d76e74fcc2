//! Index segments: turning a manifest into rows, rows into a Parquet file, and Arrow batches read
//! back from one into rows. The schema is documented in the parent module.
//!
//! Must not: do I/O; the callers fetch and store the bytes.

use std::sync::Arc;

use arrow_array::builder::{ListBuilder, StringBuilder, StringDictionaryBuilder};
use arrow_array::types::Int32Type;
use arrow_array::{
    Array, ArrayRef, DictionaryArray, Int32Array, ListArray, RecordBatch, StringArray, TimestampMillisecondArray,
    UInt32Array, UInt64Array,
};
use arrow_schema::{DataType, Field, Schema, SchemaRef, TimeUnit};
use parquet::arrow::ArrowWriter;
use parquet::arrow::arrow_writer::ArrowWriterOptions;
use parquet::basic::{Compression, ZstdLevel};
use parquet::errors::ParquetError;
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{BloomFilterPosition, EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;

use crate::archive::manifest::Manifest;
use crate::record::Level;

/// Footer key-value metadata naming the segments a compacted segment replaces: a JSON array of
/// their file names (keys relative to the compacted segment's partition).
pub const REPLACES_KEY: &str = "scrubd.replaces";
/// Footer key-value metadata with the segment format version.
pub const VERSION_KEY: &str = "scrubd.index_version";
pub const INDEX_VERSION: &str = "1";

/// Bloom filter false positive rate. Low, because a false positive costs reading a row group's
/// columns while a check costs a 32-byte read.
const BLOOM_FPP: f64 = 0.001;

/// Column names, in file order.
pub mod col {
    pub const TS: &str = "ts";
    pub const LEVEL: &str = "level";
    pub const HOST: &str = "host";
    pub const SOURCE: &str = "source";
    pub const EVENT_ID: &str = "event_id";
    pub const EVENT_TYPE: &str = "event_type";
    pub const IDS: &str = "ids";
    pub const ARCHIVE_KEY: &str = "archive_key";
    pub const FRAME: &str = "frame";
    pub const FRAME_OFFSET: &str = "frame_offset";
    pub const FRAME_LEN: &str = "frame_len";
    pub const FRAME_CONTENT_OFFSET: &str = "frame_content_offset";
    pub const RECORD_START: &str = "record_start";
    pub const RECORD_LEN: &str = "record_len";
    pub const SOURCE_OFFSET: &str = "source_offset";
    pub const ARCHIVE_SHA256: &str = "archive_sha256";
    pub const PSEUDONYMS: &str = "pseudonyms";
}

/// One record of the index: what it is and where it lives. Rows read back from a segment own
/// their strings; rows about to be written borrow them from the manifest (`IndexRow<&str>`), as
/// most are the same for every row of an archive.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct IndexRow<S = String> {
    pub ts_ms: i64,
    pub level: Option<Level>,
    pub host: S,
    pub source: S,
    pub event_id: Option<S>,
    pub event_type: Option<S>,
    pub ids: Vec<S>,
    pub archive_key: S,
    pub frame: u32,
    pub frame_offset: u64,
    pub frame_len: u64,
    pub frame_content_offset: u64,
    pub record_start: u64,
    pub record_len: u64,
    pub source_offset: u64,
    pub archive_sha256: S,
    pub pseudonyms: Vec<S>,
}

pub fn level_str(l: Level) -> &'static str {
    match l {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Notice => "notice",
        Level::Warning => "warning",
        Level::Error => "error",
        Level::Critical => "critical",
    }
}

/// Parses a level name; accepts the usual aliases (`warn`, `err`, `crit`, `fatal`).
pub fn parse_level(s: &str) -> Option<Level> {
    Some(match s.to_ascii_lowercase().as_str() {
        "trace" => Level::Trace,
        "debug" => Level::Debug,
        "info" => Level::Info,
        "notice" => Level::Notice,
        "warning" | "warn" => Level::Warning,
        "error" | "err" => Level::Error,
        "critical" | "crit" | "fatal" => Level::Critical,
        _ => return None,
    })
}

/// The Arrow schema of a segment.
pub fn schema() -> SchemaRef {
    let list = || DataType::List(Arc::new(Field::new("element", DataType::Utf8, false)));
    let dict = || DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    Arc::new(Schema::new(vec![
        Field::new(
            col::TS,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            false,
        ),
        Field::new(col::LEVEL, dict(), true),
        Field::new(col::HOST, dict(), false),
        Field::new(col::SOURCE, dict(), false),
        Field::new(col::EVENT_ID, DataType::Utf8, true),
        Field::new(col::EVENT_TYPE, dict(), true),
        Field::new(col::IDS, list(), false),
        Field::new(col::ARCHIVE_KEY, dict(), false),
        Field::new(col::FRAME, DataType::UInt32, false),
        Field::new(col::FRAME_OFFSET, DataType::UInt64, false),
        Field::new(col::FRAME_LEN, DataType::UInt64, false),
        Field::new(col::FRAME_CONTENT_OFFSET, DataType::UInt64, false),
        Field::new(col::RECORD_START, DataType::UInt64, false),
        Field::new(col::RECORD_LEN, DataType::UInt64, false),
        Field::new(col::SOURCE_OFFSET, DataType::UInt64, false),
        Field::new(col::ARCHIVE_SHA256, dict(), false),
        Field::new(col::PSEUDONYMS, list(), false),
    ]))
}

/// The rows of an archive, sorted by timestamp, borrowing from the manifest. Errors if a record
/// names a frame the manifest does not have.
pub fn rows_from_manifest(m: &Manifest) -> Result<Vec<IndexRow<&str>>, String> {
    let mut last_ts = m.first_timestamp_ms.unwrap_or(m.sealed_at_ms);
    let mut rows = Vec::with_capacity(m.records.len());
    let sorted = |v: &mut Vec<&str>| {
        v.sort_unstable();
        v.dedup();
    };
    for (i, r) in m.records.iter().enumerate() {
        let frame = m
            .frames
            .get(r.frame as usize)
            .ok_or_else(|| format!("record {i} names frame {} of {}", r.frame, m.frames.len()))?;
        let inside = r.start >= frame.decompressed_offset
            && r.start.saturating_add(r.len) <= frame.decompressed_offset.saturating_add(frame.decompressed_len);
        if !inside {
            return Err(format!("record {i} lies outside its frame {}", r.frame));
        }
        // A record without a timestamp (a continuation line, say) takes the one before it.
        let ts = r.timestamp_ms.unwrap_or(last_ts);
        last_ts = ts;
        let mut ids: Vec<&str> = r.ids.iter().chain(&r.event_id).map(String::as_str).collect();
        sorted(&mut ids);
        let mut pseudonyms: Vec<&str> = r.pseudonyms.iter().map(String::as_str).collect();
        sorted(&mut pseudonyms);
        rows.push(IndexRow {
            ts_ms: ts,
            level: r.level,
            host: m.host.as_str(),
            source: m.source.as_str(),
            event_id: r.event_id.as_deref(),
            event_type: r.event_type.as_deref(),
            ids,
            archive_key: m.key.as_str(),
            frame: r.frame,
            frame_offset: frame.compressed_offset,
            frame_len: frame.compressed_len,
            frame_content_offset: frame.decompressed_offset,
            record_start: r.start,
            record_len: r.len,
            source_offset: r.source_offset,
            archive_sha256: &m.sha256,
            pseudonyms,
        });
    }
    // One archive: the same order as `sort_rows`, without comparing the (equal) archive keys.
    rows.sort_by_key(|r| (r.ts_ms, r.record_start));
    Ok(rows)
}

/// Sorts by timestamp, then by place, so equal inputs give byte-identical segments.
pub fn sort_rows(rows: &mut [IndexRow]) {
    rows.sort_by(|a, b| (a.ts_ms, &a.archive_key, a.record_start).cmp(&(b.ts_ms, &b.archive_key, b.record_start)));
}

/// The Parquet segment of one archive.
pub fn write_segment(m: &Manifest, row_group_rows: usize) -> Result<Vec<u8>, ParquetError> {
    let rows = rows_from_manifest(m).map_err(ParquetError::General)?;
    write_rows(rows, row_group_rows, &[])
}

/// Writes rows (already sorted) as a Parquet segment with the given footer key-value metadata.
pub fn write_rows<S: AsRef<str>>(
    rows: Vec<IndexRow<S>>,
    row_group_rows: usize,
    kv: &[(String, String)],
) -> Result<Vec<u8>, ParquetError> {
    let rg = row_group_rows.max(1);
    let per_group = rg.min(rows.len()).max(1);
    // Size the bloom filters for one row group; the writer folds them down to the fpp anyway.
    let distinct = |f: &dyn Fn(&IndexRow<S>) -> &[S]| {
        type FxSet<'a> = std::collections::HashSet<&'a str, std::hash::BuildHasherDefault<crate::scrub::FxHasher>>;
        let all: FxSet = rows.iter().flat_map(|r| f(r).iter().map(AsRef::as_ref)).collect();
        let n = all.len() as u64;
        (n * per_group as u64).div_ceil(rows.len().max(1) as u64).max(64)
    };
    let ids_ndv = distinct(&|r| &r.ids);
    let ps_ndv = distinct(&|r| &r.pseudonyms);
    let mut meta = vec![KeyValue::new(VERSION_KEY.to_string(), INDEX_VERSION.to_string())];
    meta.extend(kv.iter().map(|(k, v)| KeyValue::new(k.clone(), v.clone())));
    let ids_path = ColumnPath::new(vec![col::IDS.into(), "list".into(), "element".into()]);
    let ps_path = ColumnPath::new(vec![col::PSEUDONYMS.into(), "list".into(), "element".into()]);
    let ev_path = ColumnPath::new(vec![col::EVENT_ID.into()]);
    // Statistics of columns no query prunes by would only make the footer, which every search
    // reads, larger.
    let no_stats = [col::EVENT_ID, col::ARCHIVE_KEY, col::ARCHIVE_SHA256]
        .map(|c| ColumnPath::new(vec![c.into()]))
        .into_iter()
        .chain([ids_path.clone(), ps_path.clone()]);
    let mut props = WriterProperties::builder();
    for c in no_stats {
        props = props.set_column_statistics_enabled(c, EnabledStatistics::None);
    }
    // Nearly unique per row: a dictionary would only be built to be thrown away.
    for c in [col::TS, col::RECORD_START, col::RECORD_LEN, col::SOURCE_OFFSET] {
        let c = ColumnPath::new(vec![c.into()]);
        props = props
            .set_column_dictionary_enabled(c.clone(), false)
            .set_column_encoding(c, parquet::basic::Encoding::DELTA_BINARY_PACKED);
    }
    let props = props
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_max_row_group_row_count(Some(rg))
        .set_bloom_filter_position(BloomFilterPosition::End)
        .set_column_bloom_filter_fpp(ids_path.clone(), BLOOM_FPP)
        .set_column_bloom_filter_max_ndv(ids_path, ids_ndv)
        .set_column_bloom_filter_fpp(ev_path.clone(), BLOOM_FPP)
        .set_column_bloom_filter_max_ndv(ev_path, per_group as u64)
        .set_column_bloom_filter_fpp(ps_path.clone(), BLOOM_FPP)
        .set_column_bloom_filter_max_ndv(ps_path, ps_ndv)
        .set_statistics_truncate_length(Some(128))
        .set_key_value_metadata(Some(meta))
        .build();
    let schema = schema();
    // No embedded Arrow schema: the Parquet schema says all readers need, and the footer that
    // every search reads stays small.
    let opts = ArrowWriterOptions::new()
        .with_properties(props)
        .with_skip_arrow_metadata(true);
    let mut writer = ArrowWriter::try_new_with_options(Vec::new(), schema.clone(), opts)?;
    for chunk in rows.chunks(rg) {
        let batch = rows_to_batch(&schema, chunk)?;
        writer.write(&batch)?;
        writer.flush()?;
    }
    writer.into_inner()
}

fn rows_to_batch<S: AsRef<str>>(schema: &SchemaRef, rows: &[IndexRow<S>]) -> Result<RecordBatch, ParquetError> {
    let dict = |f: &dyn Fn(&IndexRow<S>) -> Option<&str>| -> ArrayRef {
        // The same value in every row (an archive's host, source, key and digest, borrowed from
        // its manifest): one dictionary entry, without hashing each row's copy.
        if let Some(Some(first)) = rows.first().map(f)
            && rows
                .iter()
                .all(|r| f(r).is_some_and(|v| std::ptr::eq(v, first) || v == first))
        {
            let keys = Int32Array::from(vec![0; rows.len()]);
            let values: ArrayRef = Arc::new(StringArray::from(vec![first]));
            return Arc::new(DictionaryArray::<Int32Type>::new(keys, values));
        }
        let mut b = StringDictionaryBuilder::<Int32Type>::new();
        for r in rows {
            b.append_option(f(r));
        }
        Arc::new(b.finish())
    };
    let list = |f: &dyn Fn(&IndexRow<S>) -> &[S]| -> ArrayRef {
        let mut b = ListBuilder::new(StringBuilder::new()).with_field(Field::new("element", DataType::Utf8, false));
        for r in rows {
            for v in f(r) {
                b.values().append_value(v.as_ref());
            }
            b.append(true);
        }
        Arc::new(b.finish())
    };
    let u64s =
        |f: &dyn Fn(&IndexRow<S>) -> u64| -> ArrayRef { Arc::new(UInt64Array::from_iter_values(rows.iter().map(f))) };
    let columns: Vec<ArrayRef> = vec![
        Arc::new(TimestampMillisecondArray::from_iter_values(rows.iter().map(|r| r.ts_ms)).with_timezone("UTC")),
        dict(&|r| r.level.map(level_str)),
        dict(&|r| Some(r.host.as_ref())),
        dict(&|r| Some(r.source.as_ref())),
        Arc::new(StringArray::from_iter(
            rows.iter().map(|r| r.event_id.as_ref().map(AsRef::as_ref)),
        )),
        dict(&|r| r.event_type.as_ref().map(AsRef::as_ref)),
        list(&|r| &r.ids),
        dict(&|r| Some(r.archive_key.as_ref())),
        Arc::new(UInt32Array::from_iter_values(rows.iter().map(|r| r.frame))),
        u64s(&|r| r.frame_offset),
        u64s(&|r| r.frame_len),
        u64s(&|r| r.frame_content_offset),
        u64s(&|r| r.record_start),
        u64s(&|r| r.record_len),
        u64s(&|r| r.source_offset),
        dict(&|r| Some(r.archive_sha256.as_ref())),
        list(&|r| &r.pseudonyms),
    ];
    RecordBatch::try_new(schema.clone(), columns).map_err(|e| ParquetError::General(e.to_string()))
}

/// A string column of a batch, plain or dictionary-encoded, or absent (not projected).
enum StrCol<'a> {
    Plain(&'a StringArray),
    Dict(&'a arrow_array::DictionaryArray<Int32Type>, &'a StringArray),
    Missing,
}

impl<'a> StrCol<'a> {
    fn new(batch: &'a RecordBatch, name: &str) -> Result<StrCol<'a>, String> {
        let Some(a) = batch.column_by_name(name) else {
            return Ok(StrCol::Missing);
        };
        str_col(a.as_ref()).map_err(|e| format!("column {name}: {e}"))
    }

    fn get(&self, i: usize) -> Option<&'a str> {
        match self {
            StrCol::Plain(a) => a.is_valid(i).then(|| a.value(i)),
            StrCol::Dict(d, values) => {
                let k = d.keys();
                if !k.is_valid(i) {
                    return None;
                }
                usize::try_from(k.value(i))
                    .ok()
                    .filter(|&k| k < values.len())
                    .map(|k| values.value(k))
            }
            StrCol::Missing => None,
        }
    }
}

fn str_col(a: &dyn Array) -> Result<StrCol<'_>, String> {
    if let Some(s) = a.as_any().downcast_ref::<StringArray>() {
        return Ok(StrCol::Plain(s));
    }
    if let Some(d) = a.as_any().downcast_ref::<arrow_array::DictionaryArray<Int32Type>>() {
        let values = d
            .values()
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or("dictionary values are not strings")?;
        return Ok(StrCol::Dict(d, values));
    }
    Err(format!("unexpected type {}", a.data_type()))
}

/// A list-of-strings column of a batch, or absent.
struct ListCol<'a>(Option<(&'a ListArray, StrCol<'a>)>);

impl<'a> ListCol<'a> {
    fn new(batch: &'a RecordBatch, name: &str) -> Result<ListCol<'a>, String> {
        let Some(a) = batch.column_by_name(name) else {
            return Ok(ListCol(None));
        };
        let l = a
            .as_any()
            .downcast_ref::<ListArray>()
            .ok_or_else(|| format!("column {name} is not a list"))?;
        let values = str_col(l.values().as_ref()).map_err(|e| format!("column {name}: {e}"))?;
        Ok(ListCol(Some((l, values))))
    }

    fn iter(&self, i: usize) -> impl Iterator<Item = &'a str> + '_ {
        let range = match &self.0 {
            Some((l, _)) if l.is_valid(i) => {
                let o = l.value_offsets();
                (o[i].max(0) as usize)..(o[i + 1].max(0) as usize)
            }
            _ => 0..0,
        };
        range.filter_map(move |j| self.0.as_ref().and_then(|(_, v)| v.get(j)))
    }

    fn is_present(&self) -> bool {
        self.0.is_some()
    }
}

fn prim<'a, T: 'static>(batch: &'a RecordBatch, name: &str) -> Result<Option<&'a T>, String> {
    match batch.column_by_name(name) {
        None => Ok(None),
        Some(a) => a
            .as_any()
            .downcast_ref::<T>()
            .map(Some)
            .ok_or_else(|| format!("column {name} has type {}", a.data_type())),
    }
}

/// Reads rows back from a batch. Columns missing from the batch (not projected) come back empty.
pub fn batch_to_rows(batch: &RecordBatch) -> Result<Vec<IndexRow>, String> {
    batch_to_rows_where(batch, &[], &[])
}

/// Like [`batch_to_rows`], but only the rows holding one of `ids` (when not empty) and one of
/// `pseudonyms` (when not empty), tested on the Arrow arrays before any row is built.
pub fn batch_to_rows_where(
    batch: &RecordBatch,
    ids: &[String],
    pseudonyms: &[String],
) -> Result<Vec<IndexRow>, String> {
    let ts = prim::<TimestampMillisecondArray>(batch, col::TS)?;
    let frame = prim::<UInt32Array>(batch, col::FRAME)?;
    let u64s = |name| prim::<UInt64Array>(batch, name);
    let (frame_offset, frame_len, frame_content_offset) = (
        u64s(col::FRAME_OFFSET)?,
        u64s(col::FRAME_LEN)?,
        u64s(col::FRAME_CONTENT_OFFSET)?,
    );
    let (record_start, record_len, source_offset) = (
        u64s(col::RECORD_START)?,
        u64s(col::RECORD_LEN)?,
        u64s(col::SOURCE_OFFSET)?,
    );
    let level = StrCol::new(batch, col::LEVEL)?;
    let host = StrCol::new(batch, col::HOST)?;
    let source = StrCol::new(batch, col::SOURCE)?;
    let event_id = StrCol::new(batch, col::EVENT_ID)?;
    let event_type = StrCol::new(batch, col::EVENT_TYPE)?;
    let archive_key = StrCol::new(batch, col::ARCHIVE_KEY)?;
    let sha = StrCol::new(batch, col::ARCHIVE_SHA256)?;
    let id_list = ListCol::new(batch, col::IDS)?;
    let ps_list = ListCol::new(batch, col::PSEUDONYMS)?;
    let has_any = |l: &ListCol, i: usize, wanted: &[String]| {
        wanted.is_empty() || !l.is_present() || l.iter(i).any(|v| wanted.iter().any(|w| w == v))
    };
    let u = |a: Option<&UInt64Array>, i: usize| a.map(|a| a.value(i)).unwrap_or(0);
    let own = |v: Option<&str>| v.map(str::to_string);
    let mut rows = Vec::new();
    for i in 0..batch.num_rows() {
        if !has_any(&id_list, i, ids) || !has_any(&ps_list, i, pseudonyms) {
            continue;
        }
        rows.push(IndexRow {
            ts_ms: ts.map(|a| a.value(i)).unwrap_or(0),
            level: level.get(i).and_then(parse_level),
            host: host.get(i).unwrap_or_default().to_string(),
            source: source.get(i).unwrap_or_default().to_string(),
            event_id: own(event_id.get(i)),
            event_type: own(event_type.get(i)),
            ids: id_list.iter(i).map(str::to_string).collect(),
            archive_key: archive_key.get(i).unwrap_or_default().to_string(),
            frame: frame.map(|a| a.value(i)).unwrap_or(0),
            frame_offset: u(frame_offset, i),
            frame_len: u(frame_len, i),
            frame_content_offset: u(frame_content_offset, i),
            record_start: u(record_start, i),
            record_len: u(record_len, i),
            source_offset: u(source_offset, i),
            archive_sha256: sha.get(i).unwrap_or_default().to_string(),
            pseudonyms: ps_list.iter(i).map(str::to_string).collect(),
        });
    }
    Ok(rows)
}

/// Footer key-value metadata of a segment.
pub type KeyValues = Vec<(String, String)>;

/// Reads every row and the footer key-value metadata of a whole segment file.
pub fn read_segment(bytes: bytes::Bytes) -> Result<(Vec<IndexRow>, KeyValues), ParquetError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder = ParquetRecordBatchReaderBuilder::try_new(bytes)?;
    let kv = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .map(|e| (e.key.clone(), e.value.clone().unwrap_or_default()))
                .collect()
        })
        .unwrap_or_default();
    let mut rows = Vec::new();
    for batch in builder.build()? {
        let batch = batch.map_err(|e| ParquetError::General(e.to_string()))?;
        rows.extend(batch_to_rows(&batch).map_err(ParquetError::General)?);
    }
    Ok((rows, kv))
}
