//! Search benchmark: 30 days × 3 hosts of synthetic webhook archives (about 1.08 million records
//! by default) in a bucket; find one event by id with a cold and a warm cache, before and after
//! compaction, and compare with the naive way (download and decompress every archive, scan for
//! the id). Reports time, requests and bytes downloaded.
//!
//! The bucket is a local directory, a bucket on an S3-compatible server, or both side by side
//! (same archives, generated once). With `SCRUBD_TEST_S3_ENDPOINT` set (see
//! `scripts/s3-server.sh env`) the default is both; archives are written with the admin key
//! (`SCRUBD_TEST_S3_ACCESS_KEY`) and searched with the read-only key (`SCRUBD_TEST_S3_RO_*`) when
//! it is given.
//!
//! ```text
//! cargo bench --bench search                       # full size
//! cargo bench --bench search -- --quick            # 30 days × 3 hosts × 2 400 records
//! cargo bench --bench search -- --store=s3         # local | s3 | both (or SCRUBD_BENCH_STORE)
//! SCRUBD_BENCH_DIR=/tmp/b cargo bench --bench search   # keep (and reuse) the local bucket
//! SCRUBD_BENCH_BUCKET=bench cargo bench --bench search # keep (and reuse) the S3 bucket
//! SCRUBD_BENCH_RECORDS_PER_DAY_HOST=12000          # size per day and host
//! SCRUBD_BENCH_DAYS=30                             # days
//! SCRUBD_BENCH_ROW_GROUP_ROWS=8192                 # `[index] row_group_rows`
//! rm -r $SCRUBD_BENCH_DIR/bucket-*/index             # then a run reindexes from the manifests
//! ```
//!
//! Without `--bench` (as `cargo test --all-targets` runs it) it is a smoke run of a few seconds:
//! 2 days, 80 records per day and host, with the same checks (the event is found exactly once,
//! by the index and by the naive scan).

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{Datelike, Days, NaiveDate, Utc};
use futures::StreamExt;
use scrubd::index::cache::RangeCache;
use scrubd::index::compact::{compact_closed_days, reindex};
use scrubd::index::testkit::{self, Rng};
use scrubd::index::{CountingStore, IndexConfig, SearchOptions, SearchQuery, StoreStats, search, write_segment_for};
use scrubd::store::{LocalDir, ObjectStore, PutOptions, S3Store, StoreConfig, StoreKind};

const HOSTS: [&str; 3] = ["web-1", "web-2", "web-3"];
const SOURCES: [&str; 2] = ["stripe", "app"];
/// Archives per day, host and source (sealed every 6 hours).
const ARCHIVES: usize = 4;

struct Row {
    store: &'static str,
    case: &'static str,
    time: Duration,
    stats: StoreStats,
    found: usize,
}

/// One bucket under test.
struct Bucket {
    name: &'static str,
    /// Uploads, segments, compaction, reindex.
    writer: Arc<dyn ObjectStore>,
    /// Searches and the naive scan.
    reader: Arc<dyn ObjectStore>,
    /// Where the range caches go.
    cache_root: std::path::PathBuf,
    fresh: bool,
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this binary without it.
    let smoke = !args.iter().any(|a| a == "--bench");
    let quick = args.iter().any(|a| a == "--quick");
    let env_num = |name: &str| std::env::var(name).ok().and_then(|v| v.parse::<usize>().ok());
    let per_day_host = env_num("SCRUBD_BENCH_RECORDS_PER_DAY_HOST").unwrap_or(if smoke {
        80
    } else if quick {
        2_400
    } else {
        12_000
    });
    let days = env_num("SCRUBD_BENCH_DAYS")
        .unwrap_or(if smoke { 2 } else { 30 })
        .max(1) as u64;
    let store = args
        .iter()
        .find_map(|a| a.strip_prefix("--store=").map(str::to_string))
        .or_else(|| std::env::var("SCRUBD_BENCH_STORE").ok())
        .unwrap_or_else(|| {
            if std::env::var_os("SCRUBD_TEST_S3_ENDPOINT").is_some() {
                "both".into()
            } else {
                "local".into()
            }
        });
    let (local, s3) = match store.as_str() {
        "local" => (true, false),
        "s3" => (false, true),
        "both" => (true, true),
        other => panic!("--store={other}: expected local, s3 or both"),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(per_day_host, days, local, s3));
}

fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set: run scripts/s3-server.sh start and eval \"$(scripts/s3-server.sh env)\""),
    }
}

/// The bucket on the S3-compatible server: created with the admin key if missing.
async fn s3_bucket(per_day_host: usize, days: u64, root: &std::path::Path) -> Bucket {
    let name = std::env::var("SCRUBD_BENCH_BUCKET").unwrap_or_else(|_| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        format!("bench-search-{nanos:x}")
    });
    let cfg = StoreConfig {
        kind: StoreKind::S3,
        bucket: name.clone(),
        endpoint: env("SCRUBD_TEST_S3_ENDPOINT"),
        region: std::env::var("SCRUBD_TEST_S3_REGION").unwrap_or_else(|_| "us-east-1".into()),
        force_path_style: true,
        ..StoreConfig::default()
    };
    let admin = S3Store::with_credentials(
        &cfg,
        &env("SCRUBD_TEST_S3_ACCESS_KEY"),
        &env("SCRUBD_TEST_S3_SECRET_KEY"),
    )
    .expect("s3 store config");
    if admin.client().head_bucket().bucket(&name).send().await.is_err() {
        admin
            .client()
            .create_bucket()
            .bucket(&name)
            .send()
            .await
            .unwrap_or_else(|e| panic!("cannot create bucket {name}: {e:?}"));
    }
    let reader: Arc<dyn ObjectStore> = match (
        std::env::var("SCRUBD_TEST_S3_RO_ACCESS_KEY"),
        std::env::var("SCRUBD_TEST_S3_RO_SECRET_KEY"),
    ) {
        (Ok(k), Ok(s)) if !k.is_empty() => Arc::new(S3Store::with_credentials(&cfg, &k, &s).expect("s3 store config")),
        _ => {
            println!("SCRUBD_TEST_S3_RO_* not set: searching with the admin key");
            Arc::new(admin.clone())
        }
    };
    let writer: Arc<dyn ObjectStore> = Arc::new(admin);
    let fresh = writer
        .head(&marker(per_day_host, days))
        .await
        .expect("head marker")
        .is_none();
    Bucket {
        name: "s3",
        writer,
        reader,
        cache_root: root.join(format!("cache-s3-{name}")),
        fresh,
    }
}

/// The object that says a bucket holds a complete data set of this size.
fn marker(per_day_host: usize, days: u64) -> String {
    format!("bench/complete-{days}x{per_day_host}")
}

async fn run(per_day_host: usize, days: u64, with_local: bool, with_s3: bool) {
    let keep = std::env::var_os("SCRUBD_BENCH_DIR").map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let mut buckets = Vec::new();
    if with_local {
        let dir = root.join(format!("bucket-{days}x{per_day_host}"));
        let store: Arc<dyn ObjectStore> = Arc::new(LocalDir::new(&dir).expect("bucket dir"));
        let fresh = store.head(&marker(per_day_host, days)).await.expect("head").is_none();
        buckets.push(Bucket {
            name: "local dir",
            writer: store.clone(),
            reader: store,
            cache_root: root.join("cache-local"),
            fresh,
        });
    }
    if with_s3 {
        buckets.push(s3_bucket(per_day_host, days, &root).await);
    }
    let mut cfg = IndexConfig::default();
    if let Some(n) = std::env::var("SCRUBD_BENCH_ROW_GROUP_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.row_group_rows = n;
    }
    // The last day is two days ago, so that every day is closed and can be compacted.
    let last = Utc::now().date_naive() - Days::new(2);
    let first = last - Days::new(days - 1);
    let per_archive = (per_day_host / SOURCES.len() / ARCHIVES).max(1);
    let total_records = per_archive * ARCHIVES * SOURCES.len() * HOSTS.len() * days as usize;

    // A target: one record in the middle of the range, found again from its seed.
    let target_day = first + Days::new(days / 2);
    let started = Instant::now();
    let mut jobs = Vec::new();
    for (hi, host) in HOSTS.iter().enumerate() {
        for d in 0..days {
            for (si, source) in SOURCES.iter().enumerate() {
                for a in 0..ARCHIVES {
                    jobs.push((hi, *host, first + Days::new(d), si, *source, a));
                }
            }
        }
    }
    let is_target =
        move |day: NaiveDate, hi: usize, si: usize, a: usize| day == target_day && hi == 1 && si == 0 && a == 2;
    let gen_one =
        move |(hi, host, day, si, source, a): (usize, &'static str, NaiveDate, usize, &'static str, usize)| {
            let seed = (hi as u64) << 40 | (day.num_days_from_ce() as u64) << 8 | (si as u64) << 4 | a as u64;
            let mut rng = Rng::new(seed);
            let mut crng = Rng::new(hi as u64 + 1);
            let customers: Vec<String> = (0..5000).map(|_| crng.id("cus")).collect();
            let day_ms = day
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc()
                .timestamp_millis();
            let span = 86_400_000 / ARCHIVES as i64;
            let records =
                testkit::webhook_records(&mut rng, host, day_ms + a as i64 * span, span, per_archive, &customers);
            let file_id = format!("{source}-log-{a}");
            let built = testkit::build_archive(host, source, &file_id, (a as u64) << 32, &records, 64 * 1024);
            let pick = is_target(day, hi, si, a).then(|| records[per_archive / 2].event_id.clone());
            (built, pick.flatten())
        };
    // Generated once for every bucket that needs it; generated again on reuse to find the
    // target, but then uploaded nowhere.
    let writers: Vec<Arc<dyn ObjectStore>> = buckets.iter().filter(|b| b.fresh).map(|b| b.writer.clone()).collect();
    let writers = &writers;
    let cfg_ref = &cfg;
    let picks: Vec<Option<String>> = futures::stream::iter(jobs.into_iter().map(|job| async move {
        if writers.is_empty() && !is_target(job.2, job.0, job.3, job.5) {
            return None;
        }
        let (built, pick) = tokio::task::spawn_blocking(move || gen_one(job))
            .await
            .expect("generator");
        for w in writers {
            testkit::upload(w, &built).await.expect("upload");
            write_segment_for(w, built.manifest.clone(), cfg_ref)
                .await
                .expect("segment");
        }
        pick
    }))
    .buffer_unordered(4)
    .collect()
    .await;
    let target = picks.into_iter().flatten().next().expect("target picked");
    if !writers.is_empty() {
        for w in writers {
            let body = Bytes::from_static(b"complete\n");
            let opts = PutOptions {
                sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&body[..])),
                ..Default::default()
            };
            w.put_bytes(&marker(per_day_host, days), body, &opts)
                .await
                .expect("marker");
        }
        let names: Vec<&str> = buckets.iter().filter(|b| b.fresh).map(|b| b.name).collect();
        println!(
            "generated {total_records} records and uploaded them to {} in {:.1} s",
            names.join(" and "),
            started.elapsed().as_secs_f64(),
        );
    }

    let since = first.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let until = (last + Days::new(1)).and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    let query = SearchQuery {
        ids: vec![target.clone()],
        since: Some(since),
        until: Some(until),
        ..Default::default()
    };
    let mut rows = Vec::new();
    let mut archive_bytes = 0;
    for b in &buckets {
        archive_bytes = size_of(&b.writer, "archives/").await;
        rows.extend(measure(b, &cfg, &query, &target, first, last).await);
    }

    println!();
    println!(
        "find one event by id over {days} days × {} hosts: {total_records} records, {} of archives",
        HOSTS.len(),
        human(archive_bytes)
    );
    println!();
    println!("| store | case | time | requests (GET + LIST) | downloaded | share of archive bytes | found |");
    println!("| --- | --- | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {} | {:.3} s | {} ({} + {}) | {} | {:.3} % | {} |",
            r.store,
            r.case,
            r.time.as_secs_f64(),
            r.stats.requests(),
            r.stats.gets,
            r.stats.lists,
            human(r.stats.bytes),
            r.stats.bytes as f64 * 100.0 / archive_bytes.max(1) as f64,
            r.found
        );
    }
}

async fn size_of(store: &Arc<dyn ObjectStore>, prefix: &str) -> u64 {
    store.list(prefix).await.expect("list").iter().map(|o| o.size).sum()
}

/// Every case on one bucket: the index before compaction (if not compacted yet), after it, and
/// the naive scan.
async fn measure(
    b: &Bucket,
    cfg: &IndexConfig,
    query: &SearchQuery,
    target: &str,
    first: NaiveDate,
    last: NaiveDate,
) -> Vec<Row> {
    let store = &b.writer;
    if store.list("index/").await.expect("list").is_empty() {
        // The index was deleted (by hand, to measure this): rebuild it from the manifests.
        let t = Instant::now();
        let r = reindex(store, None, false, cfg).await.expect("reindex");
        println!(
            "{}: reindexed {} manifests in {:.1} s",
            b.name,
            r.written,
            t.elapsed().as_secs_f64()
        );
    }
    let mut rows = Vec::new();
    let segments = store.list("index/").await.expect("list");
    if !segments.iter().any(|o| o.key.contains("/compacted-")) {
        println!(
            "{}: index before compaction: {} in {} segments",
            b.name,
            human(segments.iter().map(|o| o.size).sum()),
            segments.len()
        );
        rows.extend(search_cases(b, "per-archive segments", query, "cache-a").await);
        let t = Instant::now();
        let report = compact_closed_days(store, None, cfg).await.expect("compaction");
        println!(
            "{}: compacted {} segments into {} in {:.1} s",
            b.name,
            report.merged,
            report.written.len(),
            t.elapsed().as_secs_f64()
        );
    }
    let segments = store.list("index/").await.expect("list");
    println!(
        "{}: index after compaction: {} in {} segments",
        b.name,
        human(segments.iter().map(|o| o.size).sum()),
        segments.len()
    );
    rows.extend(search_cases(b, "compacted", query, "cache-b").await);
    rows.push(naive(b, target, first, last).await);
    rows
}

async fn search_cases(b: &Bucket, label: &'static str, q: &SearchQuery, cache: &str) -> Vec<Row> {
    let cache_dir = b.cache_root.join(cache);
    let _ = std::fs::remove_dir_all(&cache_dir);
    let cache = RangeCache::new(&cache_dir, 4 << 30).expect("cache dir");
    let counting = CountingStore::new(b.reader.clone());
    let opts = SearchOptions {
        cache: Some(cache),
        ..Default::default()
    };
    let mut rows = Vec::new();
    for warm in [false, true] {
        counting.reset();
        let t = Instant::now();
        let hits = search(counting.clone(), q.clone(), &opts).await.expect("search");
        let time = t.elapsed();
        assert_eq!(hits.len(), 1, "the target event is found once");
        assert!(hits[0].text.is_some(), "its text is read");
        rows.push(Row {
            store: b.name,
            case: match (label, warm) {
                ("compacted", false) => "index, compacted, cold cache",
                ("compacted", true) => "index, compacted, warm cache",
                (_, false) => "index, per-archive segments, cold cache",
                (_, true) => "index, per-archive segments, warm cache",
            },
            time,
            stats: counting.stats(),
            found: hits.len(),
        });
    }
    rows
}

/// The naive way: download and decompress every archive of the range, scan for the id.
async fn naive(b: &Bucket, id: &str, first: NaiveDate, last: NaiveDate) -> Row {
    let counting = CountingStore::new(b.reader.clone());
    let store: Arc<dyn ObjectStore> = counting.clone();
    let t = Instant::now();
    let mut keys = Vec::new();
    let mut d = first;
    while d <= last {
        keys.extend(
            store
                .list(&format!("archives/dt={}/", d.format("%Y-%m-%d")))
                .await
                .expect("list"),
        );
        d = d + Days::new(1);
    }
    let needle = id.to_string();
    let found: usize = futures::stream::iter(keys.into_iter().map(|o| {
        let store = store.clone();
        let needle = needle.clone();
        async move {
            let body = store.get(&o.key, None).await.expect("get");
            tokio::task::spawn_blocking(move || {
                let text = zstd::decode_all(&body[..]).expect("decompress");
                memchr::memmem::find_iter(&text, needle.as_bytes()).count()
            })
            .await
            .expect("scan")
        }
    }))
    .buffer_unordered(8)
    .fold(0, |a, n| async move { a + n })
    .await;
    assert!(found >= 1, "the naive scan finds the target");
    Row {
        store: b.name,
        case: "naive: download + decompress every archive",
        time: t.elapsed(),
        stats: counting.stats(),
        found: found.min(1),
    }
}

fn human(b: u64) -> String {
    bytesize::ByteSize::b(b).display().iec().to_string()
}
