//! Search benchmark: 30 days × 3 hosts of synthetic webhook archives (about 1.08 million records
//! by default) in a local-directory bucket; find one event by id with a cold and a warm cache,
//! before and after compaction, and compare with the naive way (download and decompress every
//! archive, scan for the id). Reports time, requests and bytes downloaded.
//!
//! ```text
//! cargo bench --bench search                       # full size
//! cargo bench --bench search -- --quick            # 30 days × 3 hosts × 2 400 records
//! SCRUBD_BENCH_DIR=/tmp/b cargo bench --bench search   # keep (and reuse) the generated bucket
//! SCRUBD_BENCH_RECORDS_PER_DAY_HOST=12000          # size per day and host
//! SCRUBD_BENCH_ROW_GROUP_ROWS=8192                 # `[index] row_group_rows`
//! rm -r $SCRUBD_BENCH_DIR/bucket-*/index             # then a run reindexes from the manifests
//! ```

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{Datelike, Days, Utc};
use futures::StreamExt;
use scrubd::index::cache::RangeCache;
use scrubd::index::compact::{compact_closed_days, reindex};
use scrubd::index::testkit::{self, Rng};
use scrubd::index::{CountingStore, IndexConfig, SearchOptions, SearchQuery, StoreStats, search, write_segment_for};
use scrubd::store::{LocalDir, ObjectStore};

const DAYS: u64 = 30;
const HOSTS: [&str; 3] = ["web-1", "web-2", "web-3"];
const SOURCES: [&str; 2] = ["stripe", "app"];
/// Archives per day, host and source (sealed every 6 hours).
const ARCHIVES: usize = 4;

struct Row {
    case: &'static str,
    time: Duration,
    stats: StoreStats,
    found: usize,
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let per_day_host: usize = std::env::var("SCRUBD_BENCH_RECORDS_PER_DAY_HOST")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(if quick { 2_400 } else { 12_000 });
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    rt.block_on(run(per_day_host));
}

async fn run(per_day_host: usize) {
    let keep = std::env::var_os("SCRUBD_BENCH_DIR").map(std::path::PathBuf::from);
    let tmp = tempfile::tempdir().expect("temp dir");
    let root = keep.clone().unwrap_or_else(|| tmp.path().to_path_buf());
    let bucket_dir = root.join(format!("bucket-{per_day_host}"));
    let fresh = !bucket_dir.join(".complete").exists();
    let local: Arc<dyn ObjectStore> = Arc::new(LocalDir::new(&bucket_dir).expect("bucket dir"));
    let mut cfg = IndexConfig::default();
    if let Some(n) = std::env::var("SCRUBD_BENCH_ROW_GROUP_ROWS")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        cfg.row_group_rows = n;
    }
    // The last day is two days ago, so that every day is closed and can be compacted.
    let last = Utc::now().date_naive() - Days::new(2);
    let first = last - Days::new(DAYS - 1);
    let per_archive = per_day_host / SOURCES.len() / ARCHIVES;
    let total_records = per_archive * ARCHIVES * SOURCES.len() * HOSTS.len() * DAYS as usize;

    // A target: one record in the middle of the range, found again from its seed.
    let target_day = first + Days::new(DAYS / 2);
    let mut target: Option<String> = None;
    let started = Instant::now();
    let mut jobs = Vec::new();
    for (hi, host) in HOSTS.iter().enumerate() {
        for d in 0..DAYS {
            for (si, source) in SOURCES.iter().enumerate() {
                for a in 0..ARCHIVES {
                    jobs.push((hi, *host, first + Days::new(d), si, *source, a));
                }
            }
        }
    }
    let gen_one =
        move |(hi, host, day, si, source, a): (usize, &'static str, chrono::NaiveDate, usize, &'static str, usize)| {
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
            let pick =
                (day == target_day && hi == 1 && si == 0 && a == 2).then(|| records[per_archive / 2].event_id.clone());
            (built, pick.flatten())
        };
    // Generated again on reuse to find the target, but only uploaded when fresh.
    let results: Vec<(Option<String>, u64)> = futures::stream::iter(jobs.into_iter().map(|job| {
        let local = local.clone();
        let cfg = cfg.clone();
        async move {
            let needs_pick = job.2 == target_day && job.0 == 1 && job.3 == 0 && job.5 == 2;
            if !fresh && !needs_pick {
                return (None, 0);
            }
            let (built, pick) = tokio::task::spawn_blocking(move || gen_one(job))
                .await
                .expect("generator");
            if fresh {
                testkit::upload(&local, &built).await.expect("upload");
                write_segment_for(&local, &built.manifest, &cfg).await.expect("segment");
            }
            (pick, built.bytes.len() as u64)
        }
    }))
    .buffer_unordered(4)
    .collect()
    .await;
    for (p, _) in &results {
        if p.is_some() {
            target = p.clone();
        }
    }
    let target = target.expect("target picked");
    let archive_bytes: u64 = local
        .list("archives/")
        .await
        .expect("list")
        .iter()
        .map(|o| o.size)
        .sum();
    let index_bytes = |local: Arc<dyn ObjectStore>| async move {
        local
            .list("index/")
            .await
            .expect("list")
            .iter()
            .map(|o| o.size)
            .sum::<u64>()
    };
    if fresh {
        std::fs::write(bucket_dir.join(".complete"), b"").expect("marker");
        println!(
            "generated {total_records} records in {:.1} s: {} of archives",
            started.elapsed().as_secs_f64(),
            human(archive_bytes)
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
    if local.list("index/").await.expect("list").is_empty() {
        // The index was deleted (by hand, to measure this): rebuild it from the manifests.
        let t = Instant::now();
        let r = reindex(&local, None, false, &cfg).await.expect("reindex");
        println!(
            "reindexed {} manifests in {:.1} s",
            r.written,
            t.elapsed().as_secs_f64()
        );
    }
    let mut rows = Vec::new();
    let compacted = local
        .list("index/")
        .await
        .expect("list")
        .iter()
        .any(|o| o.key.contains("/compacted-"));
    if !compacted {
        let idx = index_bytes(local.clone()).await;
        println!(
            "index before compaction: {} in {} segments",
            human(idx),
            local.list("index/").await.expect("list").len()
        );
        rows.extend(search_cases("per-archive segments", &local, &query, &root.join("cache-a")).await);
        let t = Instant::now();
        let report = compact_closed_days(&local, None, &cfg).await.expect("compaction");
        println!(
            "compacted {} segments into {} in {:.1} s",
            report.merged,
            report.written.len(),
            t.elapsed().as_secs_f64()
        );
    }
    let idx = index_bytes(local.clone()).await;
    println!(
        "index after compaction: {} in {} segments",
        human(idx),
        local.list("index/").await.expect("list").len()
    );
    rows.extend(search_cases("compacted", &local, &query, &root.join("cache-b")).await);
    rows.push(naive(&local, &target, first, last).await);

    println!();
    println!(
        "find one event by id over {DAYS} days × {} hosts: {total_records} records, {} of archives",
        HOSTS.len(),
        human(archive_bytes)
    );
    println!();
    println!("| case | time | requests (GET + LIST) | downloaded | share of archive bytes | found |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    for r in &rows {
        println!(
            "| {} | {:.3} s | {} ({} + {}) | {} | {:.3} % | {} |",
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

async fn search_cases(
    label: &'static str,
    local: &Arc<dyn ObjectStore>,
    q: &SearchQuery,
    cache_dir: &std::path::Path,
) -> Vec<Row> {
    let _ = std::fs::remove_dir_all(cache_dir);
    let cache = RangeCache::new(cache_dir, 4 << 30).expect("cache dir");
    let counting = CountingStore::new(local.clone());
    let opts = SearchOptions {
        cache: Some(cache),
        ..Default::default()
    };
    let mut rows = Vec::new();
    for case in ["cold cache", "warm cache"] {
        counting.reset();
        let t = Instant::now();
        let hits = search(counting.clone(), q.clone(), &opts).await.expect("search");
        let time = t.elapsed();
        assert_eq!(hits.len(), 1, "the target event is found once");
        assert!(hits[0].text.is_some(), "its text is read");
        rows.push(Row {
            case: if label == "compacted" {
                if case == "cold cache" {
                    "index, compacted, cold cache"
                } else {
                    "index, compacted, warm cache"
                }
            } else if case == "cold cache" {
                "index, per-archive segments, cold cache"
            } else {
                "index, per-archive segments, warm cache"
            },
            time,
            stats: counting.stats(),
            found: hits.len(),
        });
    }
    rows
}

/// The naive way: download and decompress every archive of the range, scan for the id.
async fn naive(local: &Arc<dyn ObjectStore>, id: &str, first: chrono::NaiveDate, last: chrono::NaiveDate) -> Row {
    let counting = CountingStore::new(local.clone());
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
    Row {
        case: "naive: download + decompress every archive",
        time: t.elapsed(),
        stats: counting.stats(),
        found: found.min(1),
    }
}

fn human(b: u64) -> String {
    bytesize::ByteSize::b(b).display().iec().to_string()
}
