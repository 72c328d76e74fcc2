//! Shared fixture of the index tests: synthetic archives over several days, hosts and sources
//! uploaded and indexed, with the ground truth of every record, on either backend: a local
//! directory or a fresh bucket on the S3-compatible test server (written with the admin key,
//! read back with the read-only key, as engineers do).
//!
//! Must not: skip. Without the test server's environment the S3 fixtures panic (see
//! `tests/it/common`).
#![allow(dead_code)] // not every test uses every helper

/// Runs each named check (an `async fn(Backend)`) once per backend: `local::NAME` and `s3::NAME`.
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod local {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::Local).await
                }
            )*
        }
        mod s3 {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    super::$name(super::Backend::S3).await
                }
            )*
        }
    };
}

use crate::common;

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use chrono::NaiveDate;

use scrubd::index::testkit::{self, Rng, TestRecord};
use scrubd::index::{IndexConfig, SearchOptions, SearchQuery, search, write_segment_for};
use scrubd::store::{LocalDir, ObjectMeta, ObjectStore, PutOptions, StoreError};

/// One record as the fixture wrote it.
#[derive(Clone, Debug)]
pub struct Truth {
    pub host: String,
    pub source: String,
    pub archive_key: String,
    pub start: u64,
    /// The timestamp the index gives it (its own, or the one of the record before it).
    pub ts_ms: i64,
    pub record: TestRecord,
}

/// Where the fixture's bucket lives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// A local directory (`dir/bucket`).
    Local,
    /// A fresh bucket on the S3-compatible test server.
    S3,
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    /// The store with write access: uploads, compaction, reindex.
    pub store: Arc<dyn ObjectStore>,
    /// The store engineers search and fetch with: the read-only key on S3, the same directory
    /// on the local backend.
    pub reader: Arc<dyn ObjectStore>,
    /// The S3 bucket name (S3 backend only).
    pub bucket: Option<String>,
    pub truth: Vec<Truth>,
    pub cfg: IndexConfig,
    /// Total size of the archive objects.
    pub archive_bytes: u64,
}

pub struct Shape {
    pub days: Vec<NaiveDate>,
    pub hosts: Vec<&'static str>,
    pub sources: Vec<&'static str>,
    pub archives: usize,
    pub records: usize,
    pub row_group_rows: usize,
}

pub fn day(s: &str) -> NaiveDate {
    NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
}

/// The standard shape: 3 days, 2 hosts, 2 sources, 2 archives of 40 records each.
pub fn small() -> Shape {
    Shape {
        days: vec![day("2026-01-10"), day("2026-01-11"), day("2026-01-12")],
        hosts: vec!["h1", "h2"],
        sources: vec!["s1", "s2"],
        archives: 2,
        records: 40,
        row_group_rows: 16,
    }
}

/// [`fixture_on`] a local directory.
pub async fn fixture(shape: &Shape) -> Fixture {
    fixture_on(Backend::Local, "local", shape).await
}

/// A store on the test server's `bucket` with the read-only key (Read + List).
pub fn s3_readonly(bucket: &str) -> Arc<dyn ObjectStore> {
    Arc::new(common::s3_readonly_store(bucket))
}

/// Builds, uploads and indexes the archives of `shape` on `backend` (an S3 bucket named after
/// `test_name`). Each archive also holds one record without timestamp, level or ids (a
/// traceback line) with a marker to grep for.
pub async fn fixture_on(backend: Backend, test_name: &str, shape: &Shape) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (store, reader, bucket): (Arc<dyn ObjectStore>, Arc<dyn ObjectStore>, Option<String>) = match backend {
        Backend::Local => {
            let s: Arc<dyn ObjectStore> = Arc::new(LocalDir::new(dir.path().join("bucket")).unwrap());
            (s.clone(), s, None)
        }
        Backend::S3 => {
            let admin = common::s3_store(test_name).await;
            let bucket = admin.bucket().to_string();
            (Arc::new(admin), s3_readonly(&bucket), Some(bucket))
        }
    };
    let cfg = IndexConfig {
        cache_dir: Some(dir.path().join("cache")),
        row_group_rows: shape.row_group_rows,
        ..Default::default()
    };
    let mut rng = Rng::new(7);
    let mut truth = Vec::new();
    let mut archive_bytes = 0;
    for host in &shape.hosts {
        let customers: Vec<String> = (0..25).map(|_| rng.id("cus")).collect();
        for d in &shape.days {
            let day_ms = d.and_hms_opt(0, 0, 0).unwrap().and_utc().timestamp_millis();
            for source in &shape.sources {
                let span = 86_400_000 / shape.archives as i64;
                for a in 0..shape.archives {
                    let start = day_ms + a as i64 * span + 1000;
                    let mut records =
                        testkit::webhook_records(&mut rng, host, start, span - 2000, shape.records, &customers);
                    records.insert(
                        shape.records / 2,
                        TestRecord {
                            text: format!(
                                "Traceback (most recent call last):\n  KeyError: 'marker-{host}-{source}-{d}-{a}'\n"
                            ),
                            ..Default::default()
                        },
                    );
                    let file_id = format!("{source}file{a}");
                    let built = testkit::build_archive(host, source, &file_id, a as u64 * 1_000_000, &records, 4096);
                    testkit::upload(&store, &built).await.unwrap();
                    write_segment_for(&store, built.manifest.clone(), &cfg).await.unwrap();
                    archive_bytes += built.bytes.len() as u64;
                    let mut last = built.manifest.first_timestamp_ms.unwrap();
                    for (r, e) in records.iter().zip(&built.manifest.records) {
                        last = r.ts_ms.unwrap_or(last);
                        truth.push(Truth {
                            host: host.to_string(),
                            source: source.to_string(),
                            archive_key: built.manifest.key.clone(),
                            start: e.start,
                            ts_ms: last,
                            record: r.clone(),
                        });
                    }
                }
            }
        }
    }
    Fixture {
        dir,
        store,
        reader,
        bucket,
        truth,
        cfg,
        archive_bytes,
    }
}

/// Searches with `q` and asserts that the hits are exactly the records `expect` selects, each
/// once, in time order, with their exact text. Returns the number of hits.
pub async fn check(
    store: &Arc<dyn ObjectStore>,
    name: &str,
    q: SearchQuery,
    truth: &[Truth],
    expect: &dyn Fn(&Truth) -> bool,
) -> usize {
    let opts = SearchOptions::default();
    let hits = search(store.clone(), q, &opts)
        .await
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    let got: Vec<(String, u64, String)> = hits
        .iter()
        .map(|h| {
            let text = String::from_utf8(h.text.clone().expect("text read").to_vec()).unwrap();
            (h.row.archive_key.clone(), h.row.record_start, text)
        })
        .collect();
    let mut want: Vec<(String, u64, String)> = truth
        .iter()
        .filter(|t| expect(t))
        .map(|t| (t.archive_key.clone(), t.start, t.record.text.clone()))
        .collect();
    let mut sorted_got = got.clone();
    sorted_got.sort();
    want.sort();
    assert_eq!(
        sorted_got.len(),
        got.iter().collect::<BTreeSet<_>>().len(),
        "{name}: duplicate hits"
    );
    assert_eq!(sorted_got, want, "{name}: hits differ from the expected records");
    let ts: Vec<i64> = hits.iter().map(|h| h.row.ts_ms).collect();
    assert!(ts.windows(2).all(|w| w[0] <= w[1]), "{name}: hits not in time order");
    got.len()
}

/// Keys of the objects under `prefix`.
pub async fn keys(store: &Arc<dyn ObjectStore>, prefix: &str) -> Vec<String> {
    store.list(prefix).await.unwrap().into_iter().map(|o| o.key).collect()
}

/// A store whose deletes fail, to interrupt a compaction between its write and its deletes.
#[derive(Debug)]
pub struct FailingDeletes(pub Arc<dyn ObjectStore>);

#[async_trait]
impl ObjectStore for FailingDeletes {
    async fn put_file(&self, key: &str, path: &Path, opts: &PutOptions) -> Result<(), StoreError> {
        self.0.put_file(key, path, opts).await
    }
    async fn put_bytes(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        self.0.put_bytes(key, body, opts).await
    }
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StoreError> {
        self.0.get(key, range).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.0.head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.0.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        Err(StoreError::Transient {
            key: key.to_string(),
            message: "injected failure".into(),
        })
    }
    async fn presign_get(&self, key: &str, expires: std::time::Duration) -> Result<String, StoreError> {
        self.0.presign_get(key, expires).await
    }
}
