//! The archive stage end to end, with real files and a local-directory object store: build, seal,
//! spool, rescan, upload (through failures), read back by frame with ranged GETs, and recover the
//! spool after a crash.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use crate::archive_support::*;
use scrubd::archive::keys;
use scrubd::archive::{
    ArchiveBuilder, ArchiveError, Manifest, RecordMeta, RetryPolicy, Sealed, Spool, Uploader, read_frame, read_record,
    read_seek_table, verify_archive,
};
use scrubd::scrub::Scrubbed;
use scrubd::store::{LocalDir, ObjectStore};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

const ZSTD: &str = "/usr/bin/zstd";

fn fast_policy() -> RetryPolicy {
    RetryPolicy {
        initial_backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(20),
        permanent_backoff: Duration::from_millis(5),
        attempt_timeout: Duration::from_millis(500),
        ..RetryPolicy::default()
    }
}

fn no_findings() -> Arc<dyn scrubd::archive::Rescan> {
    Arc::new(|_: &[u8]| BTreeMap::new())
}

/// Runs an uploader over `entries` (as the startup scan) until done.
async fn upload_all(store: Arc<dyn ObjectStore>, spool: Arc<Spool>, entries: Vec<Sealed>) -> Uploader2 {
    let uploader = Uploader::new(store, spool, no_findings(), fast_policy());
    let counters = uploader.counters();
    let (tx, rx) = mpsc::channel(4);
    drop(tx);
    uploader.run(entries, rx, CancellationToken::new()).await;
    Uploader2 { counters }
}

struct Uploader2 {
    counters: Arc<scrubd::archive::UploadCounters>,
}

/// The keys of the archives in the bucket, sorted.
async fn archive_keys(store: &dyn ObjectStore) -> Vec<String> {
    let mut keys: Vec<String> = store
        .list("archives/")
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.key)
        .collect();
    keys.sort();
    keys
}

fn concat(records: &[(RecordMeta, Scrubbed)]) -> Vec<u8> {
    records.iter().flat_map(|(_, s)| s.bytes.iter().copied()).collect()
}

#[tokio::test]
async fn round_trip_build_spool_upload_read_back() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Arc::new(spool_in(tmp.path(), 1 << 30));
    let store = Arc::new(Flaky::new(&tmp.path().join("bucket")));
    let frame_bytes = 16 * 1024;
    let mut records = corpus(1, 600, 1000, 1_795_449_196);
    // One record bigger than a frame: it must be a frame of its own.
    records[300].1.bytes = [b"REQ: ".as_slice(), &vec![b'x'; 3 * frame_bytes as usize], b"\n"].concat();
    // A text-mode fallback and an untimed record.
    records[10].1.fallback = true;
    records[11].1.timestamp_ms = None;
    let sealed = seal(&spool, identity("web-1", "801-42-abc"), &config(frame_bytes), &records);
    let m = sealed.manifest.clone();

    // Manifest.
    assert_eq!(m.record_count, records.len() as u64);
    assert_eq!(m.first_offset, 1000);
    let last = &records.last().unwrap().0;
    assert_eq!(m.end_offset, last.offset + last.source_len);
    let ts: Vec<i64> = records.iter().filter_map(|(_, s)| s.timestamp_ms).collect();
    assert_eq!(m.first_timestamp_ms, ts.iter().min().copied());
    assert_eq!(m.last_timestamp_ms, ts.iter().max().copied());
    assert_eq!(m.fallbacks, 1);
    let mut counts = BTreeMap::new();
    for (_, s) in &records {
        for (r, n) in &s.counts {
            *counts.entry(r.clone()).or_insert(0) += n;
        }
    }
    assert_eq!(m.rule_counts, counts);
    let content = concat(&records);
    assert_eq!(m.decompressed_bytes, content.len() as u64);
    let object = std::fs::read(&sealed.archive_path).unwrap();
    assert_eq!(m.sha256, hex::encode(Sha256::digest(&object)));
    assert_eq!(m.compressed_bytes, object.len() as u64);
    assert_eq!(
        m.key,
        keys::archive_key(&keys::KeyParts {
            host: "web-1",
            source: "stripe",
            file_id: "801-42-abc",
            first_offset: 1000,
            date_ms: records[0].1.timestamp_ms.unwrap(),
        })
    );
    assert!(
        m.key.starts_with("archives/dt=2026-11-23/host=web-1/source=stripe/"),
        "{}",
        m.key
    );
    // Frames: whole records, bounded unless a single record, tiling the content.
    assert!(m.frames.len() > 10, "{} frames", m.frames.len());
    for (i, f) in m.frames.iter().enumerate() {
        let in_frame: Vec<_> = m.records.iter().filter(|r| r.frame as usize == i).collect();
        assert!(!in_frame.is_empty());
        assert!(
            f.decompressed_len <= frame_bytes || in_frame.len() == 1,
            "frame {i}: {f:?}"
        );
        assert_eq!(in_frame.iter().map(|r| r.len).sum::<u64>(), f.decompressed_len);
    }
    let big = &m.records[300];
    assert_eq!(m.frames[big.frame as usize].decompressed_len, big.len);
    for ((meta, s), r) in records.iter().zip(&m.records) {
        assert_eq!(
            (r.source_offset, r.len, r.level),
            (meta.offset, s.bytes.len() as u64, meta.level)
        );
        assert_eq!(
            (&r.event_id, &r.event_type, &r.ids, &r.pseudonyms),
            (&s.event_id, &s.event_type, &s.ids, &s.pseudonyms)
        );
        assert_eq!(&content[r.start as usize..(r.start + r.len) as usize], &s.bytes[..]);
    }
    verify_archive(&object, &m).unwrap();

    // Upload.
    let up = upload_all(store.clone(), spool.clone(), vec![sealed]).await;
    assert_eq!(up.counters.uploaded.load(Ordering::SeqCst), 1);
    assert_eq!(up.counters.records.load(Ordering::SeqCst), records.len() as u64);
    assert!(spool.scan().unwrap().is_empty());
    assert_eq!(spool.used_bytes(), 0);
    let manifest_key = keys::manifest_key_for(&m.key).unwrap();
    let stored: Vec<String> = store.list("").await.unwrap().into_iter().map(|o| o.key).collect();
    assert_eq!(stored, vec![m.key.clone(), manifest_key.clone()]);
    let stored_manifest: Manifest = serde_json::from_slice(&store.get(&manifest_key, None).await.unwrap()).unwrap();
    assert_eq!(stored_manifest, *m);

    // Read every record back through a ranged GET of its frame only.
    store.gets.lock().unwrap().clear();
    for ((_, s), r) in records.iter().zip(&m.records) {
        assert_eq!(read_record(store.as_ref(), &m, r).await.unwrap(), s.bytes);
    }
    let gets = store.gets.lock().unwrap().clone();
    assert_eq!(gets.len(), records.len());
    for ((key, range), r) in gets.iter().zip(&m.records) {
        let f = m.frames[r.frame as usize];
        assert_eq!(
            (key, range.clone()),
            (
                &m.key,
                Some(f.compressed_offset..f.compressed_offset + f.compressed_len)
            )
        );
    }
    assert_eq!(
        read_frame(store.as_ref(), &m.key, &m.frames[0]).await.unwrap().len() as u64,
        m.frames[0].decompressed_len
    );

    // The seek table parses from the object's tail alone.
    store.gets.lock().unwrap().clear();
    assert_eq!(read_seek_table(store.as_ref(), &m.key).await.unwrap(), m.frames);
    assert!(
        store
            .gets
            .lock()
            .unwrap()
            .iter()
            .all(|(_, r)| r.as_ref().is_some_and(|r| r.end == m.compressed_bytes))
    );

    // `zstd -d` of the whole stored object gives the concatenated records.
    assert!(std::path::Path::new(ZSTD).exists(), "{ZSTD} is required by this test");
    let out = std::process::Command::new(ZSTD)
        .args(["-d", "-c", "-q"])
        .arg(store.inner.root().join(&m.key))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "zstd -d failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.stdout.len(), content.len());
    assert!(out.stdout == content, "zstd -d output differs from the records");

    // Corruption is caught.
    let mut bad = object.clone();
    bad[object.len() / 2] ^= 1;
    assert!(matches!(verify_archive(&bad, &m), Err(ArchiveError::Corrupt { .. })));
}

#[test]
fn keys_are_deterministic() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(8 * 1024);
    let records = corpus(2, 50, 0, 1_795_449_196);
    let build = |id, sealed_at| {
        let mut b = ArchiveBuilder::new(id, &cfg).unwrap();
        for (meta, s) in &records {
            b.push(*meta, s).unwrap();
        }
        b.finish(sealed_at).unwrap()
    };
    // A retry (same records, sealed later) writes the same key and the same bytes.
    let (m1, o1) = build(identity("web-1", "f1"), 1);
    let (m2, o2) = build(identity("web-1", "f1"), 2);
    assert_eq!((m1.key.clone(), &o1), (m2.key.clone(), &o2));
    // Two hosts, or two files of one host, never collide.
    let (m3, _) = build(identity("web-2", "f1"), 1);
    let (m4, _) = build(identity("web-1", "f2"), 1);
    let (m5, _) = build(identity("web/1", "f1"), 1);
    let (m6, _) = build(identity("web_1", "f1"), 1);
    let keys: std::collections::BTreeSet<_> = [&m1.key, &m3.key, &m4.key, &m5.key, &m6.key].into_iter().collect();
    assert_eq!(keys.len(), 5, "{keys:?}");
    // Without any timestamp, the caller's fallback decides the day.
    let untimed: Vec<_> = records
        .iter()
        .map(|(m, s)| {
            (
                *m,
                Scrubbed {
                    timestamp_ms: None,
                    ..s.clone()
                },
            )
        })
        .collect();
    let mut b = ArchiveBuilder::new(identity("web-1", "f1"), &cfg).unwrap();
    for (meta, s) in &untimed {
        b.push(*meta, s).unwrap();
    }
    let (m7, _) = b.finish(3).unwrap();
    assert!(m7.key.starts_with("archives/dt=2023-11-14/"), "{}", m7.key);
    assert_eq!(m7.first_timestamp_ms, None);
    // A header timestamp wins over the body's.
    let mut b = ArchiveBuilder::new(identity("web-1", "f1"), &cfg).unwrap();
    let (meta, s) = &records[0];
    b.push(
        RecordMeta {
            timestamp_ms: Some(0),
            ..*meta
        },
        s,
    )
    .unwrap();
    assert!(b.finish(0).unwrap().0.key.starts_with("archives/dt=1970-01-01/"));
    drop(tmp);
}

#[test]
fn builder_rejects_out_of_order_and_empty() {
    let cfg = config(8 * 1024);
    let records = corpus(3, 3, 100, 1_795_449_196);
    let mut b = ArchiveBuilder::new(identity("h", "f"), &cfg).unwrap();
    assert!(
        !b.should_seal(Instant::now() + Duration::from_secs(86_400)),
        "empty archives never seal"
    );
    b.push(records[1].0, &records[1].1).unwrap();
    assert!(matches!(
        b.push(records[0].0, &records[0].1),
        Err(ArchiveError::OutOfOrder { .. })
    ));
    assert!(matches!(
        ArchiveBuilder::new(identity("h", "f"), &cfg).unwrap().finish(0),
        Err(ArchiveError::Empty)
    ));
}

#[test]
fn should_seal_by_size_and_age() {
    let mut cfg = config(4 * 1024);
    cfg.max_archive_bytes = bytesize::ByteSize::kib(64);
    cfg.max_archive_age = Duration::from_secs(300);
    let records = corpus(4, 200, 0, 1_795_449_196);
    let mut b = ArchiveBuilder::new(identity("h", "f"), &cfg).unwrap();
    let t0 = Instant::now();
    b.push(records[0].0, &records[0].1).unwrap();
    assert!(!b.should_seal(t0));
    assert!(b.should_seal(t0 + Duration::from_secs(301)));
    let mut pushed = 1;
    while !b.should_seal(Instant::now()) {
        b.push(records[pushed].0, &records[pushed].1).unwrap();
        pushed += 1;
    }
    assert!(b.decompressed_len() >= 64 * 1024);
    let before_last = b.decompressed_len() - records[pushed - 1].1.bytes.len() as u64;
    assert!(before_last < 64 * 1024, "sealed one record too late");
}

#[test]
fn spool_scan_after_crash_recovers_exactly_the_complete_entries() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(8 * 1024);
    let spool = spool_in(tmp.path(), 1 << 30);
    let mut complete = Vec::new();
    for i in 0..3 {
        complete.push(seal(
            &spool,
            identity("h", &format!("f{i}")),
            &cfg,
            &corpus(i, 20, 0, 1_795_449_196),
        ));
    }
    // Crash between the archive's rename and the manifest's: archive without manifest.
    let torn = seal(&spool, identity("h", "torn"), &cfg, &corpus(9, 20, 0, 1_795_449_196));
    std::fs::remove_file(&torn.manifest_path).unwrap();
    // Crash mid-write: temp files.
    std::fs::write(spool.dir().join(".tmp-abc123"), b"partial").unwrap();
    // A manifest whose archive disagrees with it (size): quarantined, not lost, not uploaded.
    let bad = seal(&spool, identity("h", "bad"), &cfg, &corpus(10, 20, 0, 1_795_449_196));
    let mut truncated = std::fs::read(&bad.archive_path).unwrap();
    truncated.truncate(truncated.len() - 1);
    std::fs::write(&bad.archive_path, truncated).unwrap();

    // "Restart".
    drop(spool);
    let spool = spool_in(tmp.path(), 1 << 30);
    let found = spool.scan().unwrap();
    let mut want: Vec<_> = complete.iter().map(|e| e.manifest.key.clone()).collect();
    let mut got: Vec<_> = found.iter().map(|e| e.manifest.key.clone()).collect();
    want.sort();
    got.sort();
    assert_eq!(got, want);
    for e in &found {
        let orig = complete.iter().find(|c| c.manifest.key == e.manifest.key).unwrap();
        assert_eq!(e, orig);
    }
    let mut left: Vec<String> = std::fs::read_dir(spool.dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    left.sort();
    let mut expect: Vec<String> = complete
        .iter()
        .flat_map(|e| [&e.archive_path, &e.manifest_path])
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    expect.sort();
    assert_eq!(left, expect);
    let on_disk: u64 = complete
        .iter()
        .flat_map(|e| [&e.archive_path, &e.manifest_path])
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    assert_eq!(spool.used_bytes(), on_disk);
    let stem = Spool::stem(&bad.manifest.key);
    assert!(spool.quarantine_dir().join(format!("{stem}.zst")).exists());
    assert!(spool.quarantine_dir().join(format!("{stem}.json")).exists());
    assert!(spool.quarantine_dir().join(format!("{stem}.note.json")).exists());
    // A second scan finds the same and changes nothing.
    assert_eq!(spool.scan().unwrap(), found);
}

#[tokio::test]
async fn backpressure_when_the_spool_is_full_and_room_after_upload() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(8 * 1024);
    let spool = Arc::new(spool_in(tmp.path(), 200 * 1024));
    assert!(spool.has_room());
    let mut sealed = Vec::new();
    let mut i = 0;
    while spool.has_room() {
        sealed.push(seal(
            &spool,
            identity("h", &format!("f{i}")),
            &cfg,
            &corpus(i, 100, 0, 1_795_449_196),
        ));
        i += 1;
        assert!(i < 1000, "spool never filled");
    }
    assert!(spool.used_bytes() >= 200 * 1024);
    assert!(sealed.len() >= 2);
    let store = Arc::new(LocalDir::new(tmp.path().join("bucket")).unwrap());
    let up = upload_all(store.clone(), spool.clone(), sealed.clone()).await;
    assert_eq!(up.counters.uploaded.load(Ordering::SeqCst), sealed.len() as u64);
    assert!(spool.has_room());
    assert_eq!(spool.used_bytes(), 0);
    assert_eq!(store.list("archives/").await.unwrap().len(), sealed.len());

    // Free disk below the threshold stops reading too.
    let starved = Spool::open(tmp.path().join("s2"), tmp.path().join("q2"), 1 << 40, u64::MAX).unwrap();
    assert!(!starved.has_room());
    assert!(starved.free_bytes().unwrap() > 0);
}

/// Captures tracing output, to check that logs name rules but never values.
#[derive(Clone, Default)]
struct LogBuf(Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogBuf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn rescan_finding_quarantines_and_the_pipeline_goes_on() {
    let logs = LogBuf::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(8 * 1024);
    let spool = Arc::new(spool_in(tmp.path(), 1 << 30));
    let store = Arc::new(LocalDir::new(tmp.path().join("bucket")).unwrap());
    let leaked = "4242424242424242";
    let clean_a = seal(&spool, identity("h", "a"), &cfg, &corpus(1, 30, 0, 1_795_449_196));
    let mut dirty_records = corpus(2, 30, 0, 1_795_449_196);
    dirty_records[17].1.bytes = format!("REQ: {{\"card\": \"{leaked}\"}}\n").into_bytes();
    let dirty = seal(&spool, identity("h", "b"), &cfg, &dirty_records);
    let clean_c = seal(&spool, identity("h", "c"), &cfg, &corpus(3, 30, 0, 1_795_449_196));

    let rescan = move |record: &[u8]| {
        let n = record.windows(leaked.len()).filter(|w| *w == leaked.as_bytes()).count() as u64;
        if n > 0 {
            BTreeMap::from([("card_number".to_string(), n)])
        } else {
            BTreeMap::new()
        }
    };
    let uploader = Uploader::new(store.clone(), spool.clone(), Arc::new(rescan), fast_policy());
    let counters = uploader.counters();
    let (tx, rx) = mpsc::channel(1);
    let run = tokio::spawn(uploader.run(vec![clean_a.clone()], rx, CancellationToken::new()));
    tx.send(dirty.clone()).await.unwrap();
    tx.send(clean_c.clone()).await.unwrap();
    drop(tx);
    run.await.unwrap();

    assert_eq!(counters.quarantined.load(Ordering::SeqCst), 1);
    assert_eq!(counters.uploaded.load(Ordering::SeqCst), 2);
    let mut want = vec![clean_a.manifest.key.clone(), clean_c.manifest.key.clone()];
    want.sort();
    assert_eq!(archive_keys(store.as_ref()).await, want);
    assert!(
        store
            .head(&keys::manifest_key_for(&dirty.manifest.key).unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(spool.scan().unwrap().is_empty());
    let stem = Spool::stem(&dirty.manifest.key);
    let q = spool.quarantine_dir();
    assert_eq!(
        std::fs::read(q.join(format!("{stem}.zst"))).unwrap().len() as u64,
        dirty.manifest.compressed_bytes
    );
    let note = std::fs::read_to_string(q.join(format!("{stem}.note.json"))).unwrap();
    let note_json: serde_json::Value = serde_json::from_str(&note).unwrap();
    assert_eq!(note_json["findings"]["card_number"], 1);
    assert!(!note.contains(leaked));
    let logs = String::from_utf8(logs.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("quarantined") && logs.contains("card_number=1"), "{logs}");
    assert!(!logs.contains(leaked), "a log line contains the value");
}

#[tokio::test]
async fn failing_store_is_retried_without_duplicates() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(8 * 1024);
    let spool = Arc::new(spool_in(tmp.path(), 1 << 30));
    let store = Arc::new(Flaky::new(&tmp.path().join("bucket")));
    store.fail_puts.store(5, Ordering::SeqCst);
    store.fail_after_put.store(3, Ordering::SeqCst);
    store.hang_puts.store(1, Ordering::SeqCst);
    let entries: Vec<Sealed> = (0..4)
        .map(|i| {
            seal(
                &spool,
                identity("h", &format!("f{i}")),
                &cfg,
                &corpus(i, 40, 0, 1_795_449_196),
            )
        })
        .collect();
    let up = upload_all(store.clone(), spool.clone(), entries.clone()).await;

    assert_eq!(up.counters.uploaded.load(Ordering::SeqCst), 4);
    assert!(up.counters.retries.load(Ordering::SeqCst) >= 9);
    assert!(store.puts.load(Ordering::SeqCst) >= 8 + 9);
    let archives = store.list("archives/").await.unwrap();
    let manifests = store.list("manifests/").await.unwrap();
    assert_eq!(archives.len(), 4);
    assert_eq!(manifests.len(), 4);
    assert_eq!(
        store.list("").await.unwrap().len(),
        8,
        "nothing but archives and manifests"
    );
    for e in &entries {
        scrubd::archive::read_archive(store.as_ref(), &e.manifest)
            .await
            .unwrap();
    }
    assert!(spool.scan().unwrap().is_empty());
    assert_eq!(spool.used_bytes(), 0);
}

#[tokio::test]
async fn permanent_error_keeps_the_entry_spooled_until_fixed() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(8 * 1024);
    let spool = Arc::new(spool_in(tmp.path(), 1 << 30));
    let store = Arc::new(Flaky::new(&tmp.path().join("bucket")));
    store.deny.store(true, Ordering::SeqCst);
    let entry = seal(&spool, identity("h", "f"), &cfg, &corpus(5, 40, 0, 1_795_449_196));

    let uploader = Uploader::new(store.clone(), spool.clone(), no_findings(), fast_policy());
    let counters = uploader.counters();
    let cancel = CancellationToken::new();
    let (_tx, rx) = mpsc::channel(1);
    let run = tokio::spawn(uploader.run(vec![entry.clone()], rx, cancel.clone()));
    while counters.permanent_errors.load(Ordering::SeqCst) < 3 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    cancel.cancel();
    run.await.unwrap();
    assert_eq!(counters.uploaded.load(Ordering::SeqCst), 0);
    assert!(store.list("").await.unwrap().is_empty());
    assert_eq!(spool.scan().unwrap(), vec![entry.clone()]);

    // Credentials fixed (a reload): the restarted uploader finishes the spooled entry.
    store.deny.store(false, Ordering::SeqCst);
    let up = upload_all(store.clone(), spool.clone(), spool.scan().unwrap()).await;
    assert_eq!(up.counters.uploaded.load(Ordering::SeqCst), 1);
    assert!(spool.scan().unwrap().is_empty());
    assert_eq!(store.list("archives/").await.unwrap().len(), 1);
}

#[tokio::test]
async fn after_upload_hook_runs_before_the_spool_entry_goes() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Arc::new(spool_in(tmp.path(), 1 << 30));
    let store = Arc::new(LocalDir::new(tmp.path().join("bucket")).unwrap());
    let entry = seal(
        &spool,
        identity("h", "f"),
        &config(8 * 1024),
        &corpus(6, 10, 0, 1_795_449_196),
    );
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let fails = Arc::new(std::sync::atomic::AtomicU64::new(2));
    let (seen2, fails2, spool2, store2) = (seen.clone(), fails.clone(), spool.clone(), store.clone());
    let hook: scrubd::archive::AfterUpload = Arc::new(move |m: Arc<Manifest>| {
        let (seen, fails, spool, store) = (seen2.clone(), fails2.clone(), spool2.clone(), store2.clone());
        Box::pin(async move {
            // The objects are in the store and the entry is still spooled when the hook runs.
            assert!(store.head(&m.key).await?.is_some());
            assert_eq!(spool.scan().unwrap().len(), 1);
            if fails
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
                .is_ok()
            {
                return Err(scrubd::store::StoreError::Transient {
                    key: m.key.clone(),
                    message: "index write failed".into(),
                });
            }
            seen.lock().unwrap().push(m.key.clone());
            Ok(())
        })
    });
    let uploader = Uploader::new(store.clone(), spool.clone(), no_findings(), fast_policy()).with_after_upload(hook);
    let counters = uploader.counters();
    let (tx, rx) = mpsc::channel(1);
    drop(tx);
    uploader.run(vec![entry.clone()], rx, CancellationToken::new()).await;
    assert_eq!(*seen.lock().unwrap(), vec![entry.manifest.key.clone()]);
    assert_eq!(counters.retries.load(Ordering::SeqCst), 2);
    assert!(spool.scan().unwrap().is_empty());
}

#[tokio::test]
async fn cancel_mid_upload_leaves_the_entry_spooled() {
    let tmp = tempfile::tempdir().unwrap();
    let spool = Arc::new(spool_in(tmp.path(), 1 << 30));
    let store = Arc::new(Flaky::new(&tmp.path().join("bucket")));
    store.hang_puts.store(1, Ordering::SeqCst);
    let entry = seal(
        &spool,
        identity("h", "f"),
        &config(8 * 1024),
        &corpus(8, 10, 0, 1_795_449_196),
    );
    let policy = RetryPolicy {
        attempt_timeout: Duration::from_secs(3600),
        ..fast_policy()
    };
    let uploader = Uploader::new(store.clone(), spool.clone(), no_findings(), policy);
    let cancel = CancellationToken::new();
    let (_tx, rx) = mpsc::channel(1);
    let run = tokio::spawn(uploader.run(vec![entry.clone()], rx, cancel.clone()));
    while store.puts.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    cancel.cancel();
    run.await.unwrap();
    assert_eq!(spool.scan().unwrap(), vec![entry]);
    assert!(store.list("").await.unwrap().is_empty());
}

/// The store is down: the spool fills, the producer pauses (backpressure), the store comes back,
/// the spool drains, and every archive is in the bucket exactly once.
#[tokio::test]
async fn store_outage_fills_the_spool_then_drains() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(8 * 1024);
    let spool = Arc::new(spool_in(tmp.path(), 150 * 1024));
    let store = Arc::new(Flaky::new(&tmp.path().join("bucket")));
    store.fail_puts.store(u64::MAX, Ordering::SeqCst);
    let uploader = Uploader::new(store.clone(), spool.clone(), no_findings(), fast_policy());
    let counters = uploader.counters();
    let (tx, rx) = mpsc::channel(64);
    let run = tokio::spawn(uploader.run(Vec::new(), rx, CancellationToken::new()));

    let mut keys = Vec::new();
    let mut paused = 0;
    for i in 0..12u64 {
        while !spool.has_room() {
            paused += 1;
            if paused == 1 {
                // Reading paused while the uploader keeps failing; then the store comes back.
                while counters.retries.load(Ordering::SeqCst) < 3 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
                assert_eq!(counters.uploaded.load(Ordering::SeqCst), 0);
                assert!(!spool.has_room());
                store.fail_puts.store(0, Ordering::SeqCst);
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let e = seal(
            &spool,
            identity("h", &format!("f{i}")),
            &cfg,
            &corpus(i, 60, 0, 1_795_449_196),
        );
        keys.push(e.manifest.key.clone());
        tx.send(e).await.unwrap();
    }
    drop(tx);
    run.await.unwrap();
    assert!(paused > 0, "the spool never filled");
    keys.sort();
    assert_eq!(archive_keys(store.as_ref()).await, keys);
    assert_eq!(store.list("manifests/").await.unwrap().len(), 12);
    assert!(spool.scan().unwrap().is_empty());
}

/// A rescan whose rules are `rules`, counting the records it is asked about.
struct CountingRescan {
    rules: u64,
    calls: std::sync::atomic::AtomicU64,
}

impl scrubd::archive::Rescan for CountingRescan {
    fn rescan(&self, _: &[u8]) -> BTreeMap<String, u64> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        BTreeMap::new()
    }

    fn rules_of(&self, _: &str) -> Option<u64> {
        Some(self.rules)
    }
}

/// A prescan made with the current rules stands (clean: uploaded, findings: quarantined, with no
/// record rescanned); one made with other rules does not; and none stands for an archive whose
/// bytes are not the ones sealed.
#[tokio::test(flavor = "current_thread")]
async fn prescan_with_the_current_rules_replaces_the_rescan() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = config(8 * 1024);
    let spool = Arc::new(spool_in(tmp.path(), 1 << 30));
    let store = Arc::new(LocalDir::new(tmp.path().join("bucket")).unwrap());
    let prescan = |rules, findings: &[(&str, u64)]| {
        Some(scrubd::archive::Prescan {
            rules,
            findings: findings.iter().map(|(r, n)| (r.to_string(), *n)).collect(),
        })
    };
    let sealed = |source: &str, seed, p| Sealed {
        prescan: p,
        ..seal(&spool, identity("h", source), &cfg, &corpus(seed, 20, 0, 1_795_449_196))
    };
    let clean = sealed("clean", 1, prescan(7, &[]));
    let flagged = sealed("flagged", 2, prescan(7, &[("card_number", 2)]));
    let other_rules = sealed("other", 3, prescan(6, &[("card_number", 2)]));
    let tampered = sealed("tampered", 4, prescan(7, &[]));
    let mut bytes = std::fs::read(&tampered.archive_path).unwrap();
    bytes[0] ^= 1;
    std::fs::write(&tampered.archive_path, bytes).unwrap();

    let rescan = Arc::new(CountingRescan {
        rules: 7,
        calls: Default::default(),
    });
    let uploader = Uploader::new(store.clone(), spool.clone(), rescan.clone(), fast_policy());
    let counters = uploader.counters();
    let (tx, rx) = mpsc::channel(1);
    let run = tokio::spawn(uploader.run(vec![clean.clone(), flagged.clone()], rx, CancellationToken::new()));
    tx.send(other_rules.clone()).await.unwrap();
    tx.send(tampered.clone()).await.unwrap();
    drop(tx);
    run.await.unwrap();

    // Only the archive prescanned by other rules was rescanned, record by record.
    assert_eq!(rescan.calls.load(Ordering::SeqCst), other_rules.manifest.record_count);
    assert_eq!(counters.uploaded.load(Ordering::SeqCst), 2);
    assert_eq!(counters.quarantined.load(Ordering::SeqCst), 2);
    let mut want = vec![clean.manifest.key.clone(), other_rules.manifest.key.clone()];
    want.sort();
    assert_eq!(archive_keys(store.as_ref()).await, want);
    let note = |s: &Sealed| {
        let path = spool
            .quarantine_dir()
            .join(format!("{}.note.json", Spool::stem(&s.manifest.key)));
        serde_json::from_slice::<serde_json::Value>(&std::fs::read(path).unwrap()).unwrap()
    };
    assert_eq!(note(&flagged)["findings"]["card_number"], 2);
    assert!(
        note(&tampered)["reason"].as_str().unwrap().contains("sha256"),
        "{}",
        note(&tampered)
    );
}
