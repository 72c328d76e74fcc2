//! `scrubd fetch` and `scrubd search` through their CLI entry points, on a local-directory bucket
//! and on the S3-compatible test server with the read-only key: records saved to a file, whole
//! archives checked against their manifest (a tampered one is refused), presigned URLs that
//! answer with the archive, and the table and JSON output.

use crate::index_common::{self, Backend, fixture_on, small};
use clap::Parser;
use scrubd::cli::fetch::FetchArgs;
use scrubd::cli::search::{SearchArgs, print_json, print_table};
use scrubd::config::RawConfig;
use scrubd::index::{SearchOptions, SearchQuery, search};
use scrubd::store::PutOptions;

on_both_backends!(fetch_records_archives_and_urls, search_output);

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

async fn fetch_records_archives_and_urls(backend: Backend) {
    let f = fixture_on(backend, "fetch", &small()).await;
    let cfg = config(&f.dir.path().join("cache"));
    let cus = f.truth[5].record.ids[1].clone();

    // Records by id, saved to a file, in time order.
    let out = f.dir.path().join("records.txt");
    let args = Fetch::parse_from(["fetch", "--id", &cus, "--out", out.to_str().unwrap()]).args;
    scrubd::cli::fetch::run(args, &cfg, f.reader.clone()).await.unwrap();
    let mut want: Vec<&index_common::Truth> = f.truth.iter().filter(|t| t.record.ids.contains(&cus)).collect();
    want.sort_by_key(|t| (t.ts_ms, t.archive_key.clone(), t.start));
    let want: String = want.iter().map(|t| t.record.text.as_str()).collect();
    assert!(!want.is_empty());
    assert_eq!(std::fs::read_to_string(&out).unwrap(), want);

    // No filter at all is refused rather than dumping the bucket.
    let args = Fetch::parse_from(["fetch"]).args;
    assert!(scrubd::cli::fetch::run(args, &cfg, f.reader.clone()).await.is_err());

    // A whole archive, byte for byte, checked against its manifest.
    let key = f.truth[0].archive_key.clone();
    let saved = f.dir.path().join("archive.zst");
    let args = Fetch::parse_from(["fetch", "--archive", &key, "--out", saved.to_str().unwrap()]).args;
    scrubd::cli::fetch::run(args, &cfg, f.reader.clone()).await.unwrap();
    let stored = f.store.get(&key, None).await.unwrap().to_vec();
    assert_eq!(std::fs::read(&saved).unwrap(), stored);
    let text = zstd::decode_all(&stored[..]).unwrap();
    assert!(
        text.starts_with(f.truth[0].record.text.as_bytes()),
        "plain zstd -d reads the archive"
    );

    // A presigned URL for it.
    let args = Fetch::parse_from(["fetch", "--archive", &key, "--presign", "--expires", "10m"]).args;
    scrubd::cli::fetch::run(args, &cfg, f.reader.clone()).await.unwrap();
    let url = scrubd::index::fetch::presign(&f.reader, &key, std::time::Duration::from_secs(600))
        .await
        .unwrap();
    // S3 percent-encodes the `=` of the partitions.
    assert!(url.replace("%3D", "=").contains(&key), "{url}");
    // Anyone holding it gets the archive, without credentials.
    let got = tokio::task::spawn_blocking(move || crate::common::fetch_url(&url))
        .await
        .unwrap();
    assert_eq!(got, (200, stored.clone()));
    let missing = key.replace(".zst", "-missing.zst");
    assert!(
        scrubd::index::fetch::presign(&f.reader, &missing, std::time::Duration::from_secs(60))
            .await
            .is_err()
    );

    // Tampered with: refused.
    let mut bad = stored.clone();
    let n = bad.len() / 2;
    bad[n] ^= 0x55;
    let opts = PutOptions {
        sha256: hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bad)),
        ..Default::default()
    };
    f.store.put_bytes(&key, bad.into(), &opts).await.unwrap();
    let err = scrubd::index::fetch::fetch_archive(&f.reader, &key).await.unwrap_err();
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    let args = Fetch::parse_from(["fetch", "--archive", &key, "--out", saved.to_str().unwrap()]).args;
    assert!(scrubd::cli::fetch::run(args, &cfg, f.reader.clone()).await.is_err());
}

async fn search_output(backend: Backend) {
    let f = fixture_on(backend, "search-output", &small()).await;
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
    scrubd::cli::search::run(args, &cfg, f.reader.clone()).await.unwrap();

    let hits = search(
        f.reader.clone(),
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
