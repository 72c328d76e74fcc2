//! The searchable index: one Parquet segment per archive under `index/`, compaction, search and
//! fetch straight from the bucket.
//!
//! Must not: need the daemon's state; everything comes from the bucket (and a local cache). Must
//! not write anything but `index/` objects (search and fetch only read, so read-only credentials
//! are enough for them).
//!
//! # Layout in the bucket
//!
//! ```text
//! archives/dt=YYYY-MM-DD/host=H/source=S/<file_id>-<first_offset:020>.zst    (archive stage)
//! manifests/dt=YYYY-MM-DD/host=H/source=S/<file_id>-<first_offset:020>.json  (archive stage)
//! index/dt=YYYY-MM-DD/host=H/<source>-<file_id>-<first_offset:020>.parquet   one per archive
//! index/dt=YYYY-MM-DD/host=H/compacted-<digest>.parquet                      one per closed day
//! ```
//!
//! The `dt=` and `host=` of a segment are those of its archive. A compacted segment lists the
//! segments it replaces in its footer key-value metadata (`scrubd.replaces`, a JSON array of file
//! names in the same partition); readers skip every segment that a compacted segment in the same partition replaces, so a reader
//! that lists the partition while compaction runs sees neither a gap nor a duplicate.
//!
//! # Segment schema (Apache Parquet)
//!
//! One row per record, rows sorted by `ts`. Columns are zstd-compressed and carry min/max
//! statistics (except `ids`, `pseudonyms`, `event_id`, `archive_key` and `archive_sha256`, where
//! they would only make the footer bigger); `ids`, `event_id` and `pseudonyms` carry split-block
//! bloom filters (fpp 0.1 %, written at the end of the file, before the footer). `ts`,
//! `record_start`, `record_len` and `source_offset`, nearly unique per row, are delta-encoded
//! (`DELTA_BINARY_PACKED`) instead of dictionary-encoded: half the size of the Django sample's
//! segment, and less work to write. The Arrow schema
//! is not embedded; the Parquet logical types (UTC timestamp, UTF-8 strings, unsigned integers,
//! lists) say everything a reader needs. Any Parquet engine can read the segments, e.g. DuckDB:
//! `select * from read_parquet('index/dt=*/host=*/*.parquet') where list_contains(ids, 'cus_…')`.
//! (Skip the segments named in a compacted segment's `scrubd.replaces` when a partition holds both.)
//!
//! | column | type | meaning |
//! | --- | --- | --- |
//! | `ts` | timestamp(ms, UTC), not null | record timestamp; a record without one takes the timestamp of the record before it in its archive (or the archive's first timestamp, or its seal time) |
//! | `level` | string, null | `trace` `debug` `info` `notice` `warning` `error` `critical` |
//! | `host` | string | host label of the source |
//! | `source` | string | source label |
//! | `event_id` | string, null | provider event id (e.g. Stripe `evt_…`) |
//! | `event_type` | string, null | provider event type (e.g. `invoice.paid`) |
//! | `ids` | list<string> | every object id found in the record, event id included, sorted, unique |
//! | `archive_key` | string | key of the archive object holding the record |
//! | `frame` | uint32 | index of the zstd frame holding the record |
//! | `frame_offset` | uint64 | offset of that frame in the archive object (compressed bytes) |
//! | `frame_len` | uint64 | length of that frame in the archive object |
//! | `frame_content_offset` | uint64 | offset of the frame's first byte in the decompressed content |
//! | `record_start` | uint64 | offset of the record in the archive's decompressed content |
//! | `record_len` | uint64 | length of the record |
//! | `source_offset` | uint64 | offset of the record in its source file (raw bytes) |
//! | `archive_sha256` | string | hex sha256 of the archive object |
//! | `pseudonyms` | list<string> | pseudonym tokens produced by the `hash` action |
//!
//! To read one record: GET `archive_key` bytes `[frame_offset, frame_offset + frame_len)`,
//! decompress that zstd frame alone, and take `[record_start - frame_content_offset, + record_len)`.
//! `pseudonyms` is the last column so that reading every other column of a row group is one
//! contiguous range.
//!
//! # Reading only what is needed
//!
//! [`search::search`] lists only the `dt=` partitions of the time range (one day earlier too, as an
//! archive may run past midnight), and only `host=` prefixes asked for; reads each segment's
//! footer with one ranged GET of its tail; skips row groups by their `ts` min/max, then by the
//! bloom filters of the id columns, reading only the one 32-byte block of a filter that a value
//! hashes to (see [`bloom`]); reads the columns of the surviving row groups; and finally reads the
//! matching records with one ranged GET per zstd frame. Every range it reads is cached on disk
//! ([`cache`]), as segments and archives never change once written, so a repeated search makes
//! only its LIST requests. With a limit, days are searched a week at a time, earliest first,
//! stopping once the limit is reached (records of a later `dt=` are never earlier than the start
//! of that day).
//!
//! Cost of one search by id over 30 days × 3 hosts, 1.08 million records, 171.6 MiB of archives
//! (benches/search.rs, local directory, debug build, `row_group_rows = 4096`): compacted index,
//! cold cache 0.25 s, 484 requests and 1.1 MiB (0.66 % of the archive bytes); warm cache 0.15 s,
//! 32 LISTs and nothing downloaded; the naive scan downloads and decompresses all 171.6 MiB in
//! 11-17 s.

pub mod bloom;
pub mod cache;
pub mod compact;
pub mod counting;
pub mod fetch;
pub mod keys;
pub mod search;
pub mod segment;
pub mod testkit;

use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;

use crate::archive::manifest::Manifest;
use crate::store::{ObjectStore, PutOptions, StoreError};

pub use counting::{CountingStore, StoreStats};
pub use search::{SearchHit, SearchOptions, SearchQuery, search};
pub use segment::{IndexRow, write_segment};

/// `[index]`: the index segments and the local cache used by `search` and `fetch`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IndexConfig {
    /// Where `search` and `fetch` cache the parts of segments and archives they read (segments
    /// and archives never change, so the cache needs no invalidation). Empty means the XDG cache
    /// dir (`$XDG_CACHE_HOME/scrubd`, usually `~/.cache/scrubd`).
    pub cache_dir: Option<PathBuf>,
    /// Size bound of the cache; the least recently used entries are evicted beyond it. Zero
    /// disables the cache.
    pub cache_max_bytes: bytesize::ByteSize,
    /// Rows per Parquet row group. Smaller groups let a search skip more (and read less per
    /// match) at the cost of a larger footer and one more bloom filter read per group; 4096 read
    /// 30 % fewer bytes than 8192 in the benchmark.
    pub row_group_rows: usize,
    /// How many requests `search` and `fetch` have in flight at once.
    pub concurrency: usize,
}

impl Default for IndexConfig {
    fn default() -> Self {
        IndexConfig {
            cache_dir: None,
            cache_max_bytes: bytesize::ByteSize::gib(1),
            row_group_rows: 4096,
            concurrency: 32,
        }
    }
}

impl IndexConfig {
    /// The cache directory: the configured one, or the XDG cache dir; `None` if the cache is
    /// disabled or no cache dir can be found.
    pub fn cache_path(&self) -> Option<PathBuf> {
        if self.cache_max_bytes.as_u64() == 0 {
            return None;
        }
        match &self.cache_dir {
            Some(p) if !p.as_os_str().is_empty() => Some(p.clone()),
            _ => dirs::cache_dir().map(|d| d.join("scrubd")),
        }
    }
}

/// Why an index operation failed.
#[derive(Debug, thiserror::Error)]
pub enum IndexError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("invalid segment {key}: {message}")]
    Segment { key: String, message: String },
    #[error("invalid manifest {key}: {message}")]
    Manifest { key: String, message: String },
    #[error("cannot read record from {key} frame {frame}: {message}")]
    Frame { key: String, frame: u32, message: String },
    #[error("checksum mismatch for archive {key}: manifest says {expected}, object has {actual}")]
    Checksum {
        key: String,
        expected: String,
        actual: String,
    },
    #[error("cache dir {path}: {source}")]
    Cache { path: PathBuf, source: std::io::Error },
    #[error("invalid query: {0}")]
    Query(String),
}

impl IndexError {
    /// Whether retrying may help (only transient store errors).
    pub fn is_retryable(&self) -> bool {
        matches!(self, IndexError::Store(e) if !e.is_permanent() && !matches!(e, StoreError::NotFound { .. }))
    }
}

/// Writes the index segment of an archive whose manifest is `manifest`; to be called once the
/// archive is uploaded. Idempotent: the key and the content depend only on the manifest.
/// Returns the segment's key.
pub async fn write_segment_for(
    store: &Arc<dyn ObjectStore>,
    manifest: impl Into<Arc<Manifest>>,
    cfg: &IndexConfig,
) -> Result<String, IndexError> {
    let manifest = manifest.into();
    let key = keys::segment_key(&manifest);
    let rg = cfg.row_group_rows;
    let segment_error = |key: &str, message: String| IndexError::Segment {
        key: key.to_string(),
        message,
    };
    let k = key.clone();
    let body = tokio::task::spawn_blocking(move || {
        let rows = segment::rows_from_manifest(&manifest).map_err(|message| IndexError::Manifest {
            key: manifest.key.clone(),
            message,
        })?;
        segment::write_rows(rows, rg, &[]).map_err(|e| segment_error(&k, e.to_string()))
    })
    .await
    .map_err(|e| segment_error(&key, format!("writer task failed: {e}")))??;
    put_segment(store, &key, body).await?;
    Ok(key)
}

pub(crate) async fn put_segment(store: &Arc<dyn ObjectStore>, key: &str, body: Vec<u8>) -> Result<(), IndexError> {
    use sha2::Digest;
    let opts = PutOptions {
        sha256: hex::encode(sha2::Sha256::digest(&body)),
        content_type: Some("application/vnd.apache.parquet".into()),
        ..Default::default()
    };
    store.put_bytes(key, bytes::Bytes::from(body), &opts).await?;
    Ok(())
}
