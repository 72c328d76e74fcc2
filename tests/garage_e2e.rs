//! End to end on Garage, the second S3-compatible engine (`scripts/garage-server.sh`, started by
//! `scripts/test.sh`): stricter than SeaweedFS about signed payloads, with no tagging, versioning
//! or Object Lock. The whole daemon ships a log to it (`scrubd run --once`, credentials from files,
//! archives uploaded from spool files), then an engineer's `scrubd search` and `scrubd fetch` find
//! one event by id through the index, after `scrubd compact` and `scrubd reindex` too. The
//! conformance suite (`tests/store_conformance.rs`) runs the store contract on Garage as well.
//!
//! Must not: skip. Without `SCRUBD_TEST_GARAGE_*` the test panics.

mod common;

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use scrubd::archive::manifest::Manifest;
use scrubd::store::ObjectStore;

const RECORDS: u64 = 3000;

fn line(seq: u64) -> String {
    format!(
        "{{\"ts\":\"2025-06-0{day}T10:{:02}:{:02}.000Z\",\"seq\":{seq},\"id\":\"evt_1Gar{seq:016}\",\"object\":\"event\",\"type\":\"invoice.paid\",\"customer\":\"cus_Gar{seq:010}\",\"email\":\"person{seq}@example.org\",\"ip\":\"198.51.100.{}\"}}\n",
        (seq / 60) % 60,
        seq % 60,
        seq % 250,
        day = 1 + seq * 3 / RECORDS,
    )
}

struct Setup {
    dir: tempfile::TempDir,
    config: PathBuf,
    bucket: String,
    store: scrubd::store::S3Store,
}

impl Setup {
    fn scrubd(&self, args: &[&str]) -> Output {
        let out = Command::new(env!("CARGO_BIN_EXE_scrubd"))
            .arg("--config")
            .arg(&self.config)
            .args(["--log", "warn"])
            .args(args)
            // The keys come from the files named in the config, not from the environment.
            .env_remove("AWS_ACCESS_KEY_ID")
            .env_remove("AWS_SECRET_ACCESS_KEY")
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .output()
            .expect("run scrubd");
        assert!(
            out.status.success(),
            "scrubd {args:?} failed: {}\n{}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

async fn setup() -> Setup {
    let store = common::garage_store_with("garage-e2e", |_| {}).await;
    let bucket = store.bucket().to_string();
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let log: String = (0..RECORDS).map(line).collect();
    std::fs::write(logs.join("app.log"), log).unwrap();
    let key_file = |name: &str, var: &str| -> PathBuf {
        let p = dir.path().join(name);
        std::fs::write(&p, std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run scripts/test.sh")))
            .unwrap();
        p
    };
    let (id_file, secret_file) = (
        key_file("access-key-id", "SCRUBD_TEST_GARAGE_ACCESS_KEY"),
        key_file("secret-access-key", "SCRUBD_TEST_GARAGE_SECRET_KEY"),
    );
    let config = dir.path().join("scrubd.toml");
    std::fs::write(
        &config,
        format!(
            r#"host = "garage-host"
[daemon]
state_dir = "{state}"
idle_timeout = "200ms"
metrics_addr = ""
[[sources]]
name = "stripe"
paths = ["{logs}/*.log"]
format = "json_lines"
[archive]
max_archive_bytes = "64 KiB"
frame_bytes = "8 KiB"
[store]
kind = "s3"
bucket = "{bucket}"
endpoint = "{endpoint}"
region = "{region}"
force_path_style = true
access_key_id_file = "{id_file}"
secret_access_key_file = "{secret_file}"
[index]
cache_dir = "{cache}"
"#,
            state = dir.path().join("state").display(),
            logs = logs.display(),
            endpoint = std::env::var("SCRUBD_TEST_GARAGE_ENDPOINT").unwrap(),
            region = std::env::var("SCRUBD_TEST_GARAGE_REGION").unwrap_or_else(|_| "garage".into()),
            id_file = id_file.display(),
            secret_file = secret_file.display(),
            cache = dir.path().join("cache").display(),
        ),
    )
    .unwrap();
    Setup {
        dir,
        config,
        bucket,
        store,
    }
}

/// Every record in the bucket, read through the manifests and decompressed with plain zstd.
async fn bucket_records(store: &dyn ObjectStore) -> Vec<String> {
    let mut out = Vec::new();
    for obj in store.list("manifests/").await.unwrap() {
        let manifest: Manifest = serde_json::from_slice(&store.get(&obj.key, None).await.unwrap()).unwrap();
        let archive = store.get(&manifest.key, None).await.unwrap();
        assert_eq!(archive.len() as u64, manifest.compressed_bytes, "{}", manifest.key);
        assert_eq!(common::sha256_hex(&archive), manifest.sha256, "{}", manifest.key);
        let content = zstd::decode_all(&archive[..]).expect("archive decompresses with plain zstd");
        for r in &manifest.records {
            out.push(String::from_utf8(content[r.start as usize..(r.start + r.len) as usize].to_vec()).unwrap());
        }
    }
    out
}

fn search_hits(s: &Setup, id: &str) -> Vec<serde_json::Value> {
    let out = s.scrubd(&["search", "--id", id, "--since", "2025-05-30", "--json", "--no-cache"]);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn check_found(s: &Setup, seq: u64) {
    let id = format!("evt_1Gar{seq:016}");
    let hits = search_hits(s, &id);
    assert_eq!(hits.len(), 1, "search --id {id}: {hits:?}");
    assert_eq!(hits[0]["event_id"], id);
    assert_eq!(hits[0]["host"], "garage-host");
    let out = s.scrubd(&["fetch", "--id", &id, "--since", "2025-05-30", "--no-cache"]);
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains(&format!("\"seq\":{seq},")), "fetch --id {id}: {text}");
    assert!(!text.contains("@example.org") && !text.contains("198.51.100."), "unscrubbed: {text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn daemon_ships_to_garage_and_search_finds_by_id() {
    let s = setup().await;
    s.scrubd(&["run", "--once"]);

    // Every record exactly once, in order, scrubbed; the spool is empty.
    let records = bucket_records(&s.store).await;
    assert_eq!(records.len() as u64, RECORDS, "records in bucket {}", s.bucket);
    let mut seqs: Vec<u64> = records
        .iter()
        .map(|r| {
            assert!(!r.contains("@example.org") && !r.contains("198.51.100."), "unscrubbed record: {r}");
            let v: serde_json::Value = serde_json::from_str(r.trim_end()).unwrap();
            v["seq"].as_u64().unwrap()
        })
        .collect();
    seqs.sort_unstable();
    assert_eq!(seqs, (0..RECORDS).collect::<Vec<_>>());
    let spooled = std::fs::read_dir(s.dir.path().join("state/spool"))
        .map(|d| d.filter_map(Result::ok).filter(|e| e.path().is_file()).count())
        .unwrap_or(0);
    assert_eq!(spooled, 0, "spool not drained");
    assert!(!s.store.list("index/").await.unwrap().is_empty(), "no index segments");

    for seq in [0, 1234, RECORDS - 1] {
        check_found(&s, seq);
    }

    // Compaction merges each closed day's segments (new one first, old ones deleted), then a
    // rebuild from the archives alone: the same answers each time.
    let before = segment_count(&s.store).await;
    s.scrubd(&["compact"]);
    let after = segment_count(&s.store).await;
    assert!(after < before, "compaction left {after} of {before} segments");
    check_found(&s, 777);
    for o in s.store.list("index/").await.unwrap() {
        s.store.delete(&o.key).await.unwrap();
    }
    s.scrubd(&["reindex"]);
    assert!(segment_count(&s.store).await > 0);
    check_found(&s, 2999);
    assert!(search_hits(&s, "evt_1Gar9999999999999999").is_empty());
}

async fn segment_count(store: &dyn ObjectStore) -> usize {
    store.list("index/").await.unwrap().len()
}
