//! Search: which records match a query, read from the index segments with as few and as small
//! requests as the query allows, and their scrubbed text read with ranged GETs of their frames.
//!
//! Must not: write to the store (read-only credentials are enough), or read a whole segment or
//! archive when ranges will do.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::io::{Cursor, Read};
use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Days, NaiveDate, Utc};
use futures::StreamExt;
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder};
use parquet::file::metadata::{ParquetMetaData, ParquetMetaDataReader, RowGroupMetaData};
use parquet::file::reader::{ChunkReader, Length};
use parquet::file::statistics::Statistics;
use tokio::sync::Semaphore;

use super::IndexError;
use super::bloom::{self, BlockRef};
use super::cache::RangeCache;
use super::keys;
use super::segment::{self, IndexRow, col};
use crate::record::Level;
use crate::store::{ObjectMeta, ObjectStore, StoreError};

/// What to look for. Filters are combined with AND; the values of one filter with OR (a record
/// matches `ids = [a, b]` if it holds `a` or `b`). Empty filters match everything.
#[derive(Clone, Debug, Default)]
pub struct SearchQuery {
    /// Any id in the record (`evt_…`, `cus_…`, …; the event id included).
    pub ids: Vec<String>,
    /// Glob over the event type, e.g. `invoice.*`.
    pub event_type: Option<String>,
    /// Records at or after this instant.
    pub since: Option<DateTime<Utc>>,
    /// Records before this instant.
    pub until: Option<DateTime<Utc>>,
    pub levels: Vec<Level>,
    pub hosts: Vec<String>,
    pub sources: Vec<String>,
    /// Pseudonym tokens produced by the `hash` action.
    pub pseudonyms: Vec<String>,
    /// Substring of the scrubbed text.
    pub grep: Option<String>,
}

/// How to search.
#[derive(Clone, Debug)]
pub struct SearchOptions {
    /// At most this many hits (the earliest ones).
    pub limit: Option<usize>,
    /// Read the scrubbed text of the hits.
    pub with_text: bool,
    pub cache: Option<RangeCache>,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Advanced once per segment.
    pub progress: Option<indicatif::ProgressBar>,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            limit: None,
            with_text: true,
            cache: None,
            concurrency: 32,
            progress: None,
        }
    }
}

/// One matching record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SearchHit {
    pub row: IndexRow,
    /// The record's scrubbed text, when asked for and readable.
    pub text: Option<Bytes>,
}

/// Parses a `--since`/`--until` value: RFC 3339 (`2026-01-02T03:04:05Z`), a day (`2026-01-02`,
/// midnight UTC), or a duration before `now` (`30m`, `2h`, `7d`, `1h 30m`).
pub fn parse_time(s: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, IndexError> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc());
    }
    let d = humantime::parse_duration(s).map_err(|_| {
        IndexError::Query(format!(
            "invalid time {s:?}: expected RFC 3339, YYYY-MM-DD or a duration such as 2h or 7d"
        ))
    })?;
    let d = chrono::Duration::from_std(d).map_err(|_| IndexError::Query(format!("duration {s:?} is too large")))?;
    now.checked_sub_signed(d)
        .ok_or_else(|| IndexError::Query(format!("duration {s:?} is too large")))
}

/// A query with its glob compiled.
struct Compiled {
    q: SearchQuery,
    glob: Option<globset::GlobMatcher>,
    since_ms: Option<i64>,
    until_ms: Option<i64>,
}

impl Compiled {
    fn new(q: SearchQuery) -> Result<Compiled, IndexError> {
        let glob = match &q.event_type {
            Some(g) => Some(
                globset::Glob::new(g)
                    .map_err(|e| IndexError::Query(format!("invalid --type glob {g:?}: {e}")))?
                    .compile_matcher(),
            ),
            None => None,
        };
        if let (Some(s), Some(u)) = (q.since, q.until)
            && s > u
        {
            return Err(IndexError::Query(format!("--since {s} is after --until {u}")));
        }
        Ok(Compiled {
            since_ms: q.since.map(|t| t.timestamp_millis()),
            until_ms: q.until.map(|t| t.timestamp_millis()),
            glob,
            q,
        })
    }

    /// Whether a row matches every filter but `grep`.
    fn matches(&self, r: &IndexRow) -> bool {
        let q = &self.q;
        self.since_ms.is_none_or(|s| r.ts_ms >= s)
            && self.until_ms.is_none_or(|u| r.ts_ms < u)
            && (q.ids.is_empty() || q.ids.iter().any(|id| r.ids.contains(id)))
            && (q.pseudonyms.is_empty() || q.pseudonyms.iter().any(|p| r.pseudonyms.contains(p)))
            && (q.levels.is_empty() || r.level.is_some_and(|l| q.levels.contains(&l)))
            && (q.hosts.is_empty() || q.hosts.contains(&r.host))
            && (q.sources.is_empty() || q.sources.contains(&r.source))
            && self
                .glob
                .as_ref()
                .is_none_or(|g| r.event_type.as_deref().is_some_and(|t| g.is_match(t)))
    }
}

/// Reads ranges of immutable objects through the cache, with a bound on requests in flight.
#[derive(Clone, Debug)]
pub struct Reader {
    store: Arc<dyn ObjectStore>,
    cache: Option<RangeCache>,
    sem: Arc<Semaphore>,
}

/// A segment's footer, with the tail bytes fetched to get it (which often hold the bloom filters
/// too, as they are written just before the footer).
#[derive(Clone, Debug)]
pub struct Footer {
    pub key: String,
    pub size: u64,
    pub meta: Arc<ParquetMetaData>,
    tail: (u64, Bytes),
}

impl Footer {
    /// The keys of the segments a compacted segment replaces (empty for others).
    pub fn replaces(&self) -> Vec<String> {
        let kv = self.meta.file_metadata().key_value_metadata();
        let names: Vec<String> = kv
            .and_then(|kv| kv.iter().find(|e| e.key == segment::REPLACES_KEY))
            .and_then(|e| e.value.as_deref())
            .and_then(|v| serde_json::from_str(v).ok())
            .unwrap_or_default();
        let partition = keys::partition_of(&self.key);
        names
            .into_iter()
            .filter(|n| !n.contains('/'))
            .map(|n| format!("{partition}{n}"))
            .collect()
    }
}

/// Size of the tail read to find a footer: enough for the footer of a compacted day of a host
/// (a second request reads the rest of a bigger one).
const TAIL_BYTES: u64 = 4 * 1024;
/// Column chunk ranges closer than this are read with one request.
const COALESCE_GAP: u64 = 8 * 1024;

impl Reader {
    pub fn new(store: Arc<dyn ObjectStore>, cache: Option<RangeCache>, concurrency: usize) -> Reader {
        Reader {
            store,
            cache,
            sem: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    /// `range` of `key`, from the cache or the store.
    pub async fn get_range(&self, key: &str, range: Range<u64>) -> Result<Bytes, StoreError> {
        if let Some(c) = &self.cache
            && let Some(b) = c.get(key, &range)
        {
            return Ok(b);
        }
        let body = {
            let _permit = self.sem.acquire().await.expect("semaphore never closed");
            self.store.get(key, Some(range.clone())).await?
        };
        if body.len() as u64 != range.end - range.start {
            return Err(StoreError::Invalid {
                key: key.to_string(),
                message: format!("short read of range {range:?}: {} bytes", body.len()),
            });
        }
        if let Some(c) = &self.cache {
            c.put(key, &range, &body);
        }
        Ok(body)
    }

    pub async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let _permit = self.sem.acquire().await.expect("semaphore never closed");
        self.store.list(prefix).await
    }

    /// Reads and decodes the footer of the segment `key` of `size` bytes.
    pub async fn footer(&self, key: &str, size: u64) -> Result<Footer, IndexError> {
        let bad = |message: String| IndexError::Segment {
            key: key.to_string(),
            message,
        };
        if size < 12 {
            return Err(bad(format!("too small for parquet ({size} bytes)")));
        }
        let tail_len = size.min(TAIL_BYTES);
        let mut tail = self.get_range(key, size - tail_len..size).await?;
        let n = tail.len();
        if &tail[n - 4..] != b"PAR1" {
            return Err(bad("no parquet magic at the end".into()));
        }
        let meta_len = u64::from(u32::from_le_bytes([tail[n - 8], tail[n - 7], tail[n - 6], tail[n - 5]]));
        if meta_len + 8 > size {
            return Err(bad(format!("footer length {meta_len} exceeds the file")));
        }
        let mut tail_start = size - tail_len;
        if meta_len + 8 > tail_len {
            let start = size - meta_len - 8;
            let head = self.get_range(key, start..tail_start).await?;
            let mut all = Vec::with_capacity(head.len() + tail.len());
            all.extend_from_slice(&head);
            all.extend_from_slice(&tail);
            tail = Bytes::from(all);
            tail_start = start;
        }
        let n = tail.len();
        let meta_bytes = &tail[n - 8 - meta_len as usize..n - 8];
        let meta = ParquetMetaDataReader::decode_metadata(meta_bytes).map_err(|e| bad(e.to_string()))?;
        Ok(Footer {
            key: key.to_string(),
            size,
            meta: Arc::new(meta),
            tail: (tail_start, tail),
        })
    }

    /// `range` of a segment, from the footer's tail if it holds it.
    async fn segment_range(&self, footer: &Footer, range: Range<u64>) -> Result<Bytes, StoreError> {
        let (start, tail) = &footer.tail;
        if range.start >= *start && range.end <= start + tail.len() as u64 {
            return Ok(tail.slice((range.start - start) as usize..(range.end - start) as usize));
        }
        self.get_range(&footer.key, range).await
    }

    /// Whether any of `values` may be in row group `rg`'s column `leaf`, by its bloom filter.
    async fn bloom_may_contain(
        &self,
        footer: &Footer,
        rg: usize,
        leaf: usize,
        values: &[String],
    ) -> Result<bool, IndexError> {
        let c = footer.meta.row_group(rg).column(leaf);
        let (Some(off), Some(len)) = (c.bloom_filter_offset(), c.bloom_filter_length()) else {
            return Ok(true);
        };
        let (Ok(off), Ok(len)) = (u64::try_from(off), u64::try_from(len)) else {
            return Ok(true);
        };
        let checks = values.iter().map(|v| async move {
            match bloom::block_for(off, len, v.as_bytes()) {
                BlockRef::Block(r) => {
                    Ok::<_, StoreError>(bloom::check_block(&self.segment_range(footer, r).await?, v.as_bytes()))
                }
                BlockRef::Whole(r) => Ok(bloom::check_whole(&self.segment_range(footer, r).await?, v.as_bytes())),
            }
        });
        for r in futures::future::join_all(checks).await {
            if r? {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Reads the rows of row groups `rgs` of a segment, only the columns with root indices
    /// `roots`.
    /// Only rows holding one of `ids` (when not empty) and one of `pseudonyms` (when not empty)
    /// are returned.
    pub async fn read_rows(
        &self,
        footer: &Footer,
        rgs: Vec<usize>,
        roots: Vec<usize>,
        ids: Vec<String>,
        pseudonyms: Vec<String>,
    ) -> Result<Vec<IndexRow>, IndexError> {
        if rgs.is_empty() {
            return Ok(Vec::new());
        }
        let schema = footer.meta.file_metadata().schema_descr_ptr();
        let mut ranges: Vec<Range<u64>> = Vec::new();
        for &rg in &rgs {
            for (leaf, c) in footer.meta.row_group(rg).columns().iter().enumerate() {
                if roots.contains(&schema.get_column_root_idx(leaf)) {
                    let (start, len) = c.byte_range();
                    ranges.push(start..start + len);
                }
            }
        }
        ranges.sort_by_key(|r| r.start);
        let mut merged: Vec<Range<u64>> = Vec::new();
        for r in ranges {
            match merged.last_mut() {
                Some(last) if r.start <= last.end + COALESCE_GAP => last.end = last.end.max(r.end),
                _ => merged.push(r),
            }
        }
        let fetched = futures::future::join_all(merged.into_iter().map(|r| async move {
            let b = self.segment_range(footer, r.clone()).await?;
            Ok::<_, StoreError>((r.start, b))
        }))
        .await;
        let mut chunks = vec![footer.tail.clone()];
        for f in fetched {
            chunks.push(f?);
        }
        let sparse = Sparse {
            size: footer.size,
            chunks,
        };
        let meta = footer.meta.clone();
        let key = footer.key.clone();
        let bad = move |e: String| IndexError::Segment {
            key: key.clone(),
            message: e,
        };
        let bad2 = bad.clone();
        tokio::task::spawn_blocking(move || -> Result<Vec<IndexRow>, String> {
            let arrow_meta =
                ArrowReaderMetadata::try_new(meta, ArrowReaderOptions::default()).map_err(|e| e.to_string())?;
            let mask = ProjectionMask::roots(&schema, roots);
            let reader = ParquetRecordBatchReaderBuilder::new_with_metadata(sparse, arrow_meta)
                .with_row_groups(rgs)
                .with_projection(mask)
                .build()
                .map_err(|e| e.to_string())?;
            let mut rows = Vec::new();
            for batch in reader {
                let batch = batch.map_err(|e| e.to_string())?;
                rows.extend(segment::batch_to_rows_where(&batch, &ids, &pseudonyms)?);
            }
            Ok(rows)
        })
        .await
        .map_err(|e| bad2(format!("reader task failed: {e}")))?
        .map_err(bad)
    }

    /// Reads the scrubbed text of `rows`: one ranged GET per distinct frame, each frame
    /// decompressed only as far as its last needed record. The result is in the order of `rows`.
    pub async fn fetch_texts(&self, rows: &[IndexRow]) -> Vec<Result<Bytes, IndexError>> {
        // Group by frame, remembering how far into the frame the records reach.
        let mut frames: BTreeMap<(&str, u64, u64), (u32, u64, u64)> = BTreeMap::new();
        for r in rows {
            let e = frames
                .entry((r.archive_key.as_str(), r.frame_offset, r.frame_len))
                .or_insert((r.frame, r.frame_content_offset, 0));
            e.2 = e.2.max(r.record_start.saturating_add(r.record_len));
        }
        let fetched: HashMap<(&str, u64, u64), Result<Bytes, IndexError>> =
            futures::stream::iter(frames.into_iter().map(|(k, (frame, content_offset, end))| async move {
                let (key, off, len) = k;
                let res = async {
                    let compressed = self.get_range(key, off..off.saturating_add(len)).await?;
                    let need = end.saturating_sub(content_offset);
                    let key_owned = key.to_string();
                    tokio::task::spawn_blocking(move || decompress_prefix(&compressed, need))
                        .await
                        .map_err(|e| e.to_string())
                        .and_then(|r| r)
                        .map_err(|message| IndexError::Frame {
                            key: key_owned,
                            frame,
                            message,
                        })
                }
                .await;
                (k, res)
            }))
            .buffer_unordered(64)
            .collect()
            .await;
        rows.iter()
            .map(|r| {
                let k = (r.archive_key.as_str(), r.frame_offset, r.frame_len);
                let frame_err = |message: String| IndexError::Frame {
                    key: r.archive_key.clone(),
                    frame: r.frame,
                    message,
                };
                match fetched.get(&k) {
                    Some(Ok(content)) => {
                        let start = r.record_start.saturating_sub(r.frame_content_offset) as usize;
                        let end = start.saturating_add(r.record_len as usize);
                        if r.record_start < r.frame_content_offset || end > content.len() {
                            Err(frame_err(format!(
                                "record at {} (+{}) is outside the frame",
                                r.record_start, r.record_len
                            )))
                        } else {
                            Ok(content.slice(start..end))
                        }
                    }
                    Some(Err(e)) => Err(frame_err(e.to_string())),
                    None => Err(frame_err("frame not read".into())),
                }
            })
            .collect()
    }
}

/// Decompresses the first `need` bytes of one zstd frame (never more, whatever the frame claims).
fn decompress_prefix(frame: &[u8], need: u64) -> Result<Bytes, String> {
    let decoder = zstd::stream::read::Decoder::with_buffer(frame).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    decoder
        .single_frame()
        .take(need)
        .read_to_end(&mut out)
        .map_err(|e| format!("cannot decompress: {e}"))?;
    if (out.len() as u64) < need {
        return Err(format!("frame holds {} bytes, records need {need}", out.len()));
    }
    Ok(Bytes::from(out))
}

/// A segment as the byte ranges fetched of it.
struct Sparse {
    size: u64,
    chunks: Vec<(u64, Bytes)>,
}

impl Sparse {
    fn find(&self, start: u64, len: u64) -> parquet::errors::Result<Bytes> {
        for (s, b) in &self.chunks {
            if start >= *s && start + len <= s + b.len() as u64 {
                return Ok(b.slice((start - s) as usize..(start - s + len) as usize));
            }
        }
        Err(parquet::errors::ParquetError::General(format!(
            "range {start}+{len} was not fetched"
        )))
    }
}

impl Length for Sparse {
    fn len(&self) -> u64 {
        self.size
    }
}

impl ChunkReader for Sparse {
    type T = Cursor<Bytes>;

    fn get_read(&self, start: u64) -> parquet::errors::Result<Self::T> {
        for (s, b) in &self.chunks {
            if start >= *s && start < s + b.len() as u64 {
                return Ok(Cursor::new(b.slice((start - s) as usize..)));
            }
        }
        Err(parquet::errors::ParquetError::General(format!(
            "offset {start} was not fetched"
        )))
    }

    fn get_bytes(&self, start: u64, length: usize) -> parquet::errors::Result<Bytes> {
        self.find(start, length as u64)
    }
}

/// The leaf column index whose path starts with `name`.
fn leaf_index(meta: &ParquetMetaData, name: &str) -> Option<usize> {
    meta.file_metadata()
        .schema_descr()
        .columns()
        .iter()
        .position(|c| c.path().parts().first().map(String::as_str) == Some(name))
}

fn i64_range(rg: &RowGroupMetaData, leaf: usize) -> Option<(i64, i64)> {
    match rg.column(leaf).statistics()? {
        Statistics::Int64(s) => Some((*s.min_opt()?, *s.max_opt()?)),
        _ => None,
    }
}

fn bytes_range(rg: &RowGroupMetaData, leaf: usize) -> Option<(Vec<u8>, Vec<u8>)> {
    match rg.column(leaf).statistics()? {
        Statistics::ByteArray(s) => Some((s.min_bytes_opt()?.to_vec(), s.max_bytes_opt()?.to_vec())),
        _ => None,
    }
}

/// The segments in the store that may hold records of `q`, by partition.
async fn list_partitions(reader: &Reader, q: &SearchQuery) -> Result<BTreeMap<String, Vec<ObjectMeta>>, IndexError> {
    let today = Utc::now().date_naive();
    // An archive is filed under the day it starts, so its records may run into the next day:
    // look one day before `since` too.
    let first = q.since.map(|t| t.date_naive() - Days::new(1));
    let last = q.until.map(|t| t.date_naive()).unwrap_or(today + Days::new(1));
    let days: Option<Vec<NaiveDate>> = first.and_then(|f| {
        let n = (last - f).num_days();
        (0..=366)
            .contains(&n)
            .then(|| (0..=n as u64).map(|i| f + Days::new(i)).collect())
    });
    let hosts: Vec<String> = q
        .hosts
        .iter()
        .map(|h| keys::sanitize(h))
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let prefixes: Vec<String> = match &days {
        Some(days) if hosts.is_empty() => days.iter().map(|&d| keys::day_prefix(d)).collect(),
        Some(days) => days
            .iter()
            .flat_map(|&d| hosts.iter().map(move |h| keys::host_prefix(d, h)))
            .collect(),
        None => vec![keys::INDEX_PREFIX.to_string()],
    };
    let listed = futures::future::join_all(prefixes.iter().map(|p| reader.list(p))).await;
    let mut parts: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
    for l in listed {
        for o in l? {
            if !keys::is_segment(&o.key) {
                continue;
            }
            let day = keys::key_day(&o.key);
            if let (Some(d), Some(f)) = (day, first)
                && d < f
            {
                continue;
            }
            if let Some(d) = day
                && d > last
            {
                continue;
            }
            if !hosts.is_empty() && !keys::component(&o.key, "host").is_some_and(|h| hosts.iter().any(|x| x == h)) {
                continue;
            }
            parts.entry(keys::partition_of(&o.key).to_string()).or_default().push(o);
        }
    }
    Ok(parts)
}

/// The segments of a partition that readers should use: every compacted segment's replaced
/// segments are dropped. Returns the live segments with the footers already read.
pub async fn live_segments(
    reader: &Reader,
    objects: &[ObjectMeta],
) -> Result<(Vec<ObjectMeta>, HashMap<String, Footer>, BTreeSet<String>), IndexError> {
    let compacted: Vec<&ObjectMeta> = objects.iter().filter(|o| keys::is_compacted(&o.key)).collect();
    let footers = futures::future::join_all(compacted.iter().map(|o| reader.footer(&o.key, o.size))).await;
    let mut replaced = BTreeSet::new();
    let mut known = HashMap::new();
    for f in footers {
        let f = f?;
        replaced.extend(f.replaces());
        known.insert(f.key.clone(), f);
    }
    let live = objects.iter().filter(|o| !replaced.contains(&o.key)).cloned().collect();
    Ok((live, known, replaced))
}

/// The rows of one segment that match `q` (all filters but grep).
async fn search_segment(
    reader: &Reader,
    q: &Compiled,
    obj: &ObjectMeta,
    known: Option<Footer>,
) -> Result<Vec<IndexRow>, IndexError> {
    let footer = match known {
        Some(f) => f,
        None => reader.footer(&obj.key, obj.size).await?,
    };
    let meta = footer.meta.clone();
    let ts_leaf = leaf_index(&meta, col::TS);
    let host_leaf = leaf_index(&meta, col::HOST);
    let source_leaf = leaf_index(&meta, col::SOURCE);
    let ids_leaf = leaf_index(&meta, col::IDS);
    let ps_leaf = leaf_index(&meta, col::PSEUDONYMS);
    let outside = |range: Option<(Vec<u8>, Vec<u8>)>, wanted: &[String]| {
        !wanted.is_empty()
            && range.is_some_and(|(lo, hi)| wanted.iter().all(|w| w.as_bytes() < &lo[..] || w.as_bytes() > &hi[..]))
    };
    let mut candidates = Vec::new();
    for (i, rg) in meta.row_groups().iter().enumerate() {
        if let Some((lo, hi)) = ts_leaf.and_then(|l| i64_range(rg, l))
            && (q.since_ms.is_some_and(|s| hi < s) || q.until_ms.is_some_and(|u| lo >= u))
        {
            continue;
        }
        if outside(host_leaf.and_then(|l| bytes_range(rg, l)), &q.q.hosts)
            || outside(source_leaf.and_then(|l| bytes_range(rg, l)), &q.q.sources)
        {
            continue;
        }
        candidates.push(i);
    }
    let checks = candidates.iter().map(|&i| {
        let footer = &footer;
        async move {
            if let (false, Some(l)) = (q.q.ids.is_empty(), ids_leaf)
                && !reader.bloom_may_contain(footer, i, l, &q.q.ids).await?
            {
                return Ok::<_, IndexError>(None);
            }
            if let (false, Some(l)) = (q.q.pseudonyms.is_empty(), ps_leaf)
                && !reader.bloom_may_contain(footer, i, l, &q.q.pseudonyms).await?
            {
                return Ok(None);
            }
            Ok(Some(i))
        }
    });
    let mut rgs = Vec::new();
    for r in futures::future::join_all(checks).await {
        if let Some(i) = r? {
            rgs.push(i);
        }
    }
    // Every column but `pseudonyms` (the last, so the rest is one range) unless it is filtered on.
    let roots: Vec<usize> = meta
        .file_metadata()
        .schema_descr()
        .root_schema()
        .get_fields()
        .iter()
        .enumerate()
        .filter(|(_, f)| f.name() != col::PSEUDONYMS || !q.q.pseudonyms.is_empty())
        .map(|(i, _)| i)
        .collect();
    let rows = reader
        .read_rows(&footer, rgs, roots, q.q.ids.clone(), q.q.pseudonyms.clone())
        .await?;
    Ok(rows.into_iter().filter(|r| q.matches(r)).collect())
}

/// The matching rows of one partition; re-lists and starts over if a segment disappears under
/// it (compaction deleted it after writing its replacement), so there is no gap and no duplicate.
async fn search_partition(
    reader: &Reader,
    q: &Compiled,
    prefix: &str,
    mut objects: Vec<ObjectMeta>,
    progress: Option<&indicatif::ProgressBar>,
) -> Result<Vec<IndexRow>, IndexError> {
    let mut attempt = 0;
    loop {
        attempt += 1;
        let res: Result<Vec<IndexRow>, IndexError> = async {
            let (live, mut known, _) = live_segments(reader, &objects).await?;
            let per_segment = futures::future::join_all(live.iter().map(|o| {
                let f = known.remove(&o.key);
                async move {
                    let r = search_segment(reader, q, o, f).await;
                    if let Some(p) = progress {
                        p.inc(1);
                    }
                    r
                }
            }))
            .await;
            let mut rows = Vec::new();
            for r in per_segment {
                rows.extend(r?);
            }
            Ok(rows)
        }
        .await;
        match res {
            Err(IndexError::Store(StoreError::NotFound { .. })) if attempt < 4 => {
                objects = reader
                    .list(prefix)
                    .await?
                    .into_iter()
                    .filter(|o| keys::is_segment(&o.key))
                    .collect();
            }
            other => return other,
        }
    }
}

/// Days searched at once. With a limit, the search goes through the range a window at a time,
/// earliest first, and stops once the limit is reached by records before the next window.
const WINDOW_DAYS: usize = 7;

/// Searches the index in `store` for records matching `query`, earliest first.
pub async fn search(
    store: Arc<dyn ObjectStore>,
    query: SearchQuery,
    opts: &SearchOptions,
) -> Result<Vec<SearchHit>, IndexError> {
    let q = Compiled::new(query)?;
    let reader = Reader::new(store, opts.cache.clone(), opts.concurrency);
    let parts = list_partitions(&reader, &q.q).await?;
    if let Some(p) = &opts.progress {
        p.set_length(parts.values().map(|v| v.len() as u64).sum());
    }
    // Windows of days; partitions without a day (not written by scrubd) come last.
    let mut by_day: BTreeMap<Option<NaiveDate>, Vec<(String, Vec<ObjectMeta>)>> = BTreeMap::new();
    for (prefix, objects) in parts {
        let day = keys::key_day(&prefix).map(Some).unwrap_or(Some(NaiveDate::MAX));
        by_day.entry(day).or_default().push((prefix, objects));
    }
    let days: Vec<_> = by_day.into_iter().collect();
    let limit = opts.limit.unwrap_or(usize::MAX);
    let finder =
        q.q.grep
            .as_ref()
            .map(|g| memchr::memmem::Finder::new(g.as_bytes()).into_owned());
    let mut hits: Vec<SearchHit> = Vec::new();
    for window in days.chunks(WINDOW_DAYS) {
        let boundary = window
            .last()
            .and_then(|(d, _)| *d)
            .and_then(|d| d.succ_opt())
            .and_then(|d| d.and_hms_opt(0, 0, 0))
            .map(|t| t.and_utc().timestamp_millis())
            .unwrap_or(i64::MAX);
        let q = &q;
        let reader_ref = &reader;
        let results: Vec<Result<Vec<IndexRow>, IndexError>> =
            futures::stream::iter(window.iter().flat_map(|(_, parts)| parts.iter()))
                .map(|(prefix, objects)| async move {
                    search_partition(reader_ref, q, prefix, objects.clone(), opts.progress.as_ref()).await
                })
                .buffer_unordered(opts.concurrency.max(1))
                .collect()
                .await;
        let mut rows = Vec::new();
        for r in results {
            rows.extend(r?);
        }
        segment::sort_rows(&mut rows);
        match &finder {
            None => hits.extend(rows.into_iter().map(|row| SearchHit { row, text: None })),
            Some(finder) => {
                // Only records whose text holds the needle; read in time order, a batch at a time.
                for batch in rows.chunks(1024) {
                    let texts = reader.fetch_texts(batch).await;
                    for (row, text) in batch.iter().zip(texts) {
                        if let Some(t) = text_or_warn(text)
                            && finder.find(&t).is_some()
                        {
                            hits.push(SearchHit {
                                row: row.clone(),
                                text: opts.with_text.then_some(t),
                            });
                        }
                    }
                    if hits.len() >= limit {
                        break;
                    }
                }
            }
        }
        // Later windows only hold records at or after the boundary (an archive is filed under the
        // day of its first record), so these are the earliest.
        if hits.iter().filter(|h| h.row.ts_ms < boundary).count() >= limit {
            break;
        }
    }
    hits.sort_by(|a, b| {
        (a.row.ts_ms, &a.row.archive_key, a.row.record_start).cmp(&(
            b.row.ts_ms,
            &b.row.archive_key,
            b.row.record_start,
        ))
    });
    hits.truncate(limit);
    if finder.is_none() && opts.with_text {
        let rows: Vec<IndexRow> = hits.iter().map(|h| h.row.clone()).collect();
        for (h, t) in hits.iter_mut().zip(reader.fetch_texts(&rows).await) {
            h.text = text_or_warn(t);
        }
    }
    if let Some(c) = &reader.cache {
        let c = c.clone();
        let _ = tokio::task::spawn_blocking(move || c.evict_if_added()).await;
    }
    Ok(hits)
}

fn text_or_warn(r: Result<Bytes, IndexError>) -> Option<Bytes> {
    match r {
        Ok(b) => Some(b),
        Err(error) => {
            tracing::warn!(%error, "cannot read record text");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: &str) {
        let now = DateTime::parse_from_rfc3339("2026-03-10T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let got = parse_time(input, now)
            .map(|t| t.to_rfc3339())
            .unwrap_or_else(|e| format!("error: {e}"));
        assert_eq!(got, expect, "parse_time({input:?})");
    }

    #[test]
    fn parses_times() {
        check("2026-01-02T03:04:05Z", "2026-01-02T03:04:05+00:00");
        check("2026-01-02T03:04:05+02:00", "2026-01-02T01:04:05+00:00");
        check("2026-01-02", "2026-01-02T00:00:00+00:00");
        check("2h", "2026-03-10T10:00:00+00:00");
        check("30m", "2026-03-10T11:30:00+00:00");
        check("7d", "2026-03-03T12:00:00+00:00");
        check("1h 30m", "2026-03-10T10:30:00+00:00");
        assert!(parse_time("yesterday-ish", Utc::now()).is_err());
    }
}
