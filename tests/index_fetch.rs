//! `scrubd fetch` and `scrubd search` through their CLI entry points on a local-directory bucket:
//! records saved to a file, whole archives checked against their manifest (a tampered one is
//! refused), presigned URLs, and the table and JSON output.

mod index_common;

use clap::Parser;
use index_common::{fixture, small};
use scrubd::cli::fetch::FetchArgs;
use scrubd::cli::search::{SearchArgs, print_json, print_table};
use scrubd::config::RawConfig;
use scrubd::index::{SearchOptions, SearchQuery, search};

#[derive(Parser)]
struct Fetch {
    #[command(flatten)]
    args: FetchArgs,
}

#[derive(Parser)]
struct Search {
    #[command(flatten)]
    args: SearchArgs,
}

fn config(cache: &std::path::Path) -> RawConfig {
    let mut cfg = RawConfig::default();
    cfg.index.cache_dir = Some(cache.to_path_buf());
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_records_archives_and_urls() {
    let f = fixture(&small()).await;
    let cfg = config(&f.dir.path().join("cache"));
    let cus = f.truth[5].record.ids[1].clone();

    // Records by id, saved to a file, in time order.
    let out = f.dir.path().join("records.txt");
    let args = Fetch::parse_from(["fetch", "--id", &cus, "--out", out.to_str().unwrap()]).args;
    scrubd::cli::fetch::run(args, &cfg, f.store.clone()).await.unwrap();
    let mut want: Vec<&index_common::Truth> = f.truth.iter().filter(|t| t.record.ids.contains(&cus)).collect();
    want.sort_by_key(|t| (t.ts_ms, t.archive_key.clone(), t.start));
    let want: String = want.iter().map(|t| t.record.text.as_str()).collect();
    assert!(!want.is_empty());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), want);

    // No filter at all is refused rather than dumping the bucket.
    let args = Fetch::parse_from(["fetch"]).args;
    assert!(scrubd::cli::fetch::run(args, &cfg, f.store.clone()).await.is_err());

    // A whole archive, byte for byte, checked against its manifest.
    let key = f.truth[0].archive_key.clone();
    let saved = f.dir.path().join("archive.zst");
    let args = Fetch::parse_from(["fetch", "--archive", &key, "--out", saved.to_str().unwrap()]).args;
    scrubd::cli::fetch::run(args, &cfg, f.store.clone()).await.unwrap();
    let stored = std::fs::read(f.dir.path().join("bucket").join(&key)).unwrap();
    assert_eq!(std::fs::read(&saved).unwrap(), stored);
    let text = zstd::decode_all(&stored[..]).unwrap();
    assert!(
        text.starts_with(f.truth[0].record.text.as_bytes()),
        "plain zstd -d reads the archive"
    );

    // A presigned URL for it.
    let args = Fetch::parse_from(["fetch", "--archive", &key, "--presign", "--expires", "10m"]).args;
    scrubd::cli::fetch::run(args, &cfg, f.store.clone()).await.unwrap();
    let url = scrubd::index::fetch::presign(&f.store, &key, std::time::Duration::from_secs(600))
        .await
        .unwrap();
    assert!(url.contains(&key), "{url}");
    let missing = key.replace(".zst", "-missing.zst");
    assert!(
        scrubd::index::fetch::presign(&f.store, &missing, std::time::Duration::from_secs(60))
            .await
            .is_err()
    );

    // Tampered with: refused.
    let mut bad = stored.clone();
    let n = bad.len() / 2;
    bad[n] ^= 0x55;
    std::fs::write(f.dir.path().join("bucket").join(&key), &bad).unwrap();
    let err = scrubd::index::fetch::fetch_archive(&f.store, &key).await.unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    let args = Fetch::parse_from(["fetch", "--archive", &key, "--out", saved.to_str().unwrap()]).args;
    assert!(scrubd::cli::fetch::run(args, &cfg, f.store.clone()).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn search_output() {
    let f = fixture(&small()).await;
    let cfg = config(&f.dir.path().join("cache"));
    let evt = f.truth[17].record.event_id.clone().unwrap();
    let args = Search::parse_from([
        "search",
        "--id",
        &evt,
        "--since",
        "2026-01-01",
        "--level",
        "warn",
        "--stats",
    ])
    .args;
    assert_eq!(args.query.levels, vec!["warn"]);
    scrubd::cli::search::run(args, &cfg, f.store.clone()).await.unwrap();

    let hits = search(
        f.store.clone(),
        SearchQuery {
            ids: vec![evt.clone()],
            ..Default::default()
        },
        &SearchOptions::default(),
    )
    .await
    .unwrap();
    let mut table = Vec::new();
    print_table(&mut table, &hits).unwrap();
    let table = String::from_utf8(table).unwrap();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    assert!(lines[0].starts_with("TIME"));
    assert!(lines[1].contains(&evt) && lines[1].contains("h1/s1"), "{table}");

    let mut json = Vec::new();
    print_json(&mut json, &hits).unwrap();
    let v: serde_json::Value = serde_json::from_slice(&json).unwrap();
    assert_eq!(v["event_id"], evt.as_str());
    assert_eq!(v["text"], f.truth[17].record.text.as_str());
    assert_eq!(v["host"], "h1");
}
