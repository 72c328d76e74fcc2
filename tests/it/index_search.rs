//! Search over a bucket, run on both backends (a local directory and a bucket on the
//! S3-compatible test server, where writes use the admin key and every search the read-only
//! key): every filter returns exactly the expected records, before and after compaction and after
//! a reindex from the manifests; an interrupted compaction leaves no duplicates; a search by id
//! reads a small fraction of the bucket, and nothing but listings once the cache is warm. On S3,
//! the read-only key searches and fetches but cannot write, and compaction or reindex with it
//! fail with an error.

use std::sync::Arc;

use crate::index_common::{self, Backend, FailingDeletes, Truth, check, fixture_on, keys, small};
use chrono::{DateTime, Duration, Utc};
use scrubd::index::cache::RangeCache;
use scrubd::index::compact::{compact_closed_days, compact_day, reindex};
use scrubd::index::{CountingStore, SearchOptions, SearchQuery, search};
use scrubd::record::Level;
use scrubd::store::{ObjectStore, PutOptions, StoreError};

on_both_backends!(
    every_filter_before_and_after_compaction_and_reindex,
    interrupted_compaction_leaves_no_duplicates,
    search_by_id_reads_little_and_nothing_when_warm,
);

type Expect = Box<dyn Fn(&Truth) -> bool>;

/// The queries every phase must answer, with what each must return.
fn queries(truth: &[Truth]) -> Vec<(&'static str, SearchQuery, Expect)> {
    let evt = truth[17].record.event_id.clone().unwrap();
    let cus = truth[5].record.ids[1].clone();
    let other = truth[300].record.ids[4].clone();
    let ps = truth[33].record.pseudonyms[0].clone();
    let t0 = DateTime::<Utc>::from_timestamp_millis(truth[0].ts_ms).unwrap();
    let since = t0 + Duration::hours(30);
    let until = since + Duration::hours(5);
    let marker = "marker-h2-s1-2026-01-11-1".to_string();
    let has = |t: &Truth, id: &str| t.record.ids.iter().any(|i| i == id);
    let (evt2, cus2, other2, ps2, marker2) = (evt.clone(), cus.clone(), other.clone(), ps.clone(), marker.clone());
    vec![
        (
            "event id",
            SearchQuery {
                ids: vec![evt.clone()],
                ..Default::default()
            },
            Box::new(move |t| has(t, &evt2)),
        ),
        (
            "customer id",
            SearchQuery {
                ids: vec![cus.clone()],
                ..Default::default()
            },
            Box::new(move |t| has(t, &cus2)),
        ),
        (
            "two ids",
            SearchQuery {
                ids: vec![cus.clone(), other.clone()],
                ..Default::default()
            },
            Box::new(move |t| has(t, &cus) || has(t, &other2)),
        ),
        (
            "unknown id",
            SearchQuery {
                ids: vec!["cus_doesnotexist".into()],
                ..Default::default()
            },
            Box::new(|_| false),
        ),
        (
            "type glob",
            SearchQuery {
                event_type: Some("invoice.*".into()),
                ..Default::default()
            },
            Box::new(|t| {
                t.record
                    .event_type
                    .as_deref()
                    .is_some_and(|e| e.starts_with("invoice."))
            }),
        ),
        (
            "since/until",
            SearchQuery {
                since: Some(since),
                until: Some(until),
                ..Default::default()
            },
            Box::new(move |t| t.ts_ms >= since.timestamp_millis() && t.ts_ms < until.timestamp_millis()),
        ),
        (
            "since only",
            SearchQuery {
                since: Some(until + Duration::hours(20)),
                ..Default::default()
            },
            Box::new(move |t| t.ts_ms >= (until + Duration::hours(20)).timestamp_millis()),
        ),
        (
            "level",
            SearchQuery {
                levels: vec![Level::Error],
                ..Default::default()
            },
            Box::new(|t| t.record.level == Some(Level::Error)),
        ),
        (
            "host",
            SearchQuery {
                hosts: vec!["h1".into()],
                ..Default::default()
            },
            Box::new(|t| t.host == "h1"),
        ),
        (
            "source",
            SearchQuery {
                sources: vec!["s2".into()],
                ..Default::default()
            },
            Box::new(|t| t.source == "s2"),
        ),
        (
            "pseudonym",
            SearchQuery {
                pseudonyms: vec![ps.clone()],
                ..Default::default()
            },
            Box::new(move |t| t.record.pseudonyms.contains(&ps2)),
        ),
        (
            "grep",
            SearchQuery {
                grep: Some(marker.clone()),
                ..Default::default()
            },
            Box::new(move |t| t.record.text.contains(&marker2)),
        ),
        (
            "type glob, host, level and time",
            SearchQuery {
                event_type: Some("customer.subscription.*".into()),
                hosts: vec!["h2".into()],
                levels: vec![Level::Info, Level::Warning],
                since: Some(since),
                ..Default::default()
            },
            Box::new(move |t| {
                t.host == "h2"
                    && t.record
                        .event_type
                        .as_deref()
                        .is_some_and(|e| e.starts_with("customer.subscription."))
                    && matches!(t.record.level, Some(Level::Info | Level::Warning))
                    && t.ts_ms >= since.timestamp_millis()
            }),
        ),
    ]
}

async fn check_all(phase: &str, store: &Arc<dyn ObjectStore>, truth: &[Truth]) {
    for (name, q, expect) in queries(truth) {
        let n = check(store, &format!("{phase}: {name}"), q, truth, &*expect).await;
        if name != "unknown id" {
            assert!(n > 0, "{phase}: {name}: the fixture should have matching records");
        }
        if name == "event id" || name == "grep" || name == "pseudonym" {
            assert_eq!(n, 1, "{phase}: {name}");
        }
    }
}

async fn every_filter_before_and_after_compaction_and_reindex(backend: Backend) {
    let f = fixture_on(backend, "every-filter", &small()).await;
    check_all("per-archive segments", &f.reader, &f.truth).await;

    // A limit keeps the earliest hits, with or without grep (which searches a day window at a time).
    for (q, n) in [
        (
            SearchQuery {
                event_type: Some("invoice.*".into()),
                ..Default::default()
            },
            7,
        ),
        (
            SearchQuery {
                grep: Some("Traceback".into()),
                ..Default::default()
            },
            5,
        ),
    ] {
        let all = search(f.reader.clone(), q.clone(), &SearchOptions::default())
            .await
            .unwrap();
        assert!(all.len() > n * 3, "{} hits", all.len());
        let opts = SearchOptions {
            limit: Some(n),
            ..Default::default()
        };
        let first = search(f.reader.clone(), q, &opts).await.unwrap();
        assert_eq!(first, all[..n].to_vec());
    }

    let before = keys(&f.store, "index/").await;
    let report = compact_closed_days(&f.store, None, &f.cfg).await.unwrap();
    assert_eq!(report.written.len(), 6, "one segment per host and day: {report:?}");
    assert_eq!(report.rows as usize, f.truth.len());
    let after = keys(&f.store, "index/").await;
    assert_eq!(after, {
        let mut w = report.written.clone();
        w.sort();
        w
    });
    assert!(after.iter().all(|k| !before.contains(k)));
    check_all("compacted", &f.reader, &f.truth).await;

    // Compacting again changes nothing.
    let again = compact_closed_days(&f.store, None, &f.cfg).await.unwrap();
    assert_eq!((again.written.len(), again.deleted), (0, 0));
    assert_eq!(keys(&f.store, "index/").await, after);

    // Lose the index, rebuild it from the manifests.
    for k in &after {
        f.store.delete(k).await.unwrap();
    }
    assert!(keys(&f.store, "index/").await.is_empty());
    let r = reindex(&f.store, None, false, &f.cfg).await.unwrap();
    assert_eq!((r.manifests, r.written, r.skipped), (24, 24, 0));
    assert_eq!(
        keys(&f.store, "index/").await,
        before,
        "reindex writes the same segment keys"
    );
    check_all("reindexed", &f.reader, &f.truth).await;
    let r = reindex(&f.store, Some(index_common::day("2026-01-11")), false, &f.cfg)
        .await
        .unwrap();
    assert_eq!(
        (r.manifests, r.written, r.skipped),
        (16, 0, 16),
        "existing segments are skipped"
    );
}

async fn interrupted_compaction_leaves_no_duplicates(backend: Backend) {
    let f = fixture_on(backend, "interrupted", &small()).await;
    let d = index_common::day("2026-01-11");
    let failing: Arc<dyn ObjectStore> = Arc::new(FailingDeletes(f.store.clone()));
    let err = compact_day(&failing, d, &f.cfg).await.unwrap_err();
    assert!(err.to_string().contains("injected failure"), "{err}");
    // The first partition's compacted segment is written, and nothing was deleted.
    let listed = keys(&f.store, "index/dt=2026-01-11/").await;
    assert_eq!(
        listed.iter().filter(|k| k.contains("/compacted-")).count(),
        1,
        "{listed:?}"
    );
    assert_eq!(listed.len(), 9);
    check_all("interrupted", &f.reader, &f.truth).await;

    // A segment written again after compaction (e.g. the archive re-uploaded) stays hidden.
    let r = reindex(&f.store, None, true, &f.cfg).await.unwrap();
    assert_eq!(r.written, 24);
    check_all("rewritten under a compacted segment", &f.reader, &f.truth).await;

    // Re-running finishes the job.
    compact_day(&f.store, d, &f.cfg).await.unwrap();
    let listed = keys(&f.store, "index/dt=2026-01-11/").await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    assert!(listed.iter().all(|k| k.contains("/compacted-")));
    check_all("finished", &f.reader, &f.truth).await;

    let today = Utc::now().date_naive();
    assert!(
        compact_day(&f.store, today, &f.cfg).await.is_err(),
        "today is not closed"
    );
}

async fn search_by_id_reads_little_and_nothing_when_warm(backend: Backend) {
    let shape = index_common::Shape {
        days: vec![index_common::day("2026-02-01"), index_common::day("2026-02-02")],
        hosts: vec!["h1", "h2"],
        sources: vec!["s1"],
        archives: 4,
        records: 2000,
        row_group_rows: 1024,
    };
    let f = fixture_on(backend, "reads-little", &shape).await;
    compact_closed_days(&f.store, None, &f.cfg).await.unwrap();
    let target = &f.truth[f.truth.len() / 3];
    let q = SearchQuery {
        ids: vec![target.record.event_id.clone().unwrap()],
        ..Default::default()
    };
    let counting = CountingStore::new(f.reader.clone());
    let cache = RangeCache::new(f.dir.path().join("cache"), 1 << 30).unwrap();
    let opts = SearchOptions {
        cache: Some(cache),
        ..Default::default()
    };
    let hits = search(counting.clone(), q.clone(), &opts).await.unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].text.as_deref(), Some(target.record.text.as_bytes()));
    let cold = counting.stats();
    let index_bytes: u64 = f.store.list("index/").await.unwrap().iter().map(|o| o.size).sum();
    eprintln!(
        "{backend:?} cold: {cold:?}, archives {} bytes, index {index_bytes} bytes, {} records",
        f.archive_bytes,
        f.truth.len()
    );
    assert!(
        cold.bytes * 20 < f.archive_bytes,
        "read {} bytes, more than 5% of the {} archive bytes",
        cold.bytes,
        f.archive_bytes
    );
    assert!(
        cold.bytes * 4 < index_bytes,
        "read {} of {index_bytes} index bytes",
        cold.bytes
    );

    counting.reset();
    let warm_hits = search(counting.clone(), q, &opts).await.unwrap();
    assert_eq!(warm_hits, hits);
    let warm = counting.stats();
    assert_eq!((warm.gets, warm.bytes), (0, 0), "warm cache: only listings, {warm:?}");
    assert!(warm.lists > 0);
}

/// Asserts that `r` is a permanent store error (access denied), not a panic or a retryable one.
fn assert_denied<T: std::fmt::Debug>(what: &str, r: Result<T, StoreError>) {
    let err = r.expect_err(&format!("{what} with the read-only key must fail"));
    assert!(err.is_permanent(), "{what}: {err:?} is not permanent");
    assert!(matches!(err, StoreError::AccessDenied { .. }), "{what}: {err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn s3_readonly_key_searches_and_fetches_but_cannot_write() {
    let f = fixture_on(Backend::S3, "readonly", &small()).await;
    let bucket = f.bucket.clone().expect("an S3 fixture");
    let ro = index_common::s3_readonly(&bucket);

    // Search and fetch work.
    check_all("read-only key", &ro, &f.truth).await;
    let key = f.truth[0].archive_key.clone();
    let (bytes, manifest) = scrubd::index::fetch::fetch_archive(&ro, &key).await.unwrap();
    assert_eq!(bytes, f.store.get(&key, None).await.unwrap());
    assert_eq!(manifest.key, key);

    // Writes are refused, permanently, and change nothing.
    let index_before = keys(&f.store, "index/").await;
    let body = bytes::Bytes::from_static(b"not allowed");
    let opts = PutOptions {
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body[..])),
        ..Default::default()
    };
    assert_denied("put_bytes", ro.put_bytes("archives/new.zst", body.clone(), &opts).await);
    let file = f.dir.path().join("body");
    std::fs::write(&file, &body).unwrap();
    assert_denied("put_file", ro.put_file("index/new.parquet", &file, &opts).await);
    assert!(f.store.head("archives/new.zst").await.unwrap().is_none());
    assert!(f.store.head("index/new.parquet").await.unwrap().is_none());
    assert_denied("delete of an archive", ro.delete(&key).await);
    assert_denied("delete of a segment", ro.delete(&index_before[0]).await);
    assert_denied("delete of a missing key", ro.delete("archives/none.zst").await);
    assert!(
        f.store.head(&key).await.unwrap().is_some(),
        "the archive is still there"
    );

    // Compaction and reindex with the read-only key fail with an error (not a panic) and leave
    // the index as it was.
    let err = compact_day(&ro, index_common::day("2026-01-11"), &f.cfg)
        .await
        .unwrap_err();
    assert!(!err.is_retryable(), "compaction: {err}");
    let err = compact_closed_days(&ro, None, &f.cfg).await.unwrap_err();
    assert!(!err.is_retryable(), "compaction: {err}");
    let err = reindex(&ro, None, true, &f.cfg).await.unwrap_err();
    assert!(!err.is_retryable(), "forced reindex: {err}");
    assert_eq!(keys(&f.store, "index/").await, index_before);
    // With the index lost (deleted by an admin), the read-only key cannot rebuild it either.
    f.store.delete(&index_before[0]).await.unwrap();
    let err = reindex(&ro, None, false, &f.cfg).await.unwrap_err();
    assert!(!err.is_retryable(), "reindex: {err}");
    assert_eq!(keys(&f.store, "index/").await, index_before[1..].to_vec());
    let r = reindex(&f.store, None, false, &f.cfg).await.unwrap();
    assert_eq!((r.written, r.skipped), (1, 23), "the admin key can");
    check_all("read-only key after the admin's reindex", &ro, &f.truth).await;
}
