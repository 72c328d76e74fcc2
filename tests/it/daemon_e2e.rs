//! End to end, against the real S3-compatible test server: an application writes records into a
//! watched file while the file rotates (rename + create, and copytruncate), `scrubd run` is killed
//! with SIGKILL at random moments and restarted, and at the end the bucket holds every record
//! exactly once, scrubbed, in order per file. Also: the daemon tells systemd it is ready, and
//! SIGTERM makes it upload what it has and exit 0.

use crate::common;

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rand::{RngExt, SeedableRng};
use scrubd::archive::manifest::Manifest;
use scrubd::store::ObjectStore;

const RECORDS: u64 = 4000;
const ROTATE_EVERY: u64 = 400;

struct Env {
    dir: tempfile::TempDir,
    config: PathBuf,
    bucket: String,
}

impl Env {
    async fn new(name: &str) -> Env {
        let store = common::s3_store(name).await;
        let bucket = store.bucket().to_owned();
        let env = common::s3_env();
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("logs")).unwrap();
        let config = dir.path().join("scrubd.toml");
        std::fs::write(
            &config,
            format!(
                r#"host = "e2e-host"
[daemon]
state_dir = "{state}"
flush_interval = "1s"
idle_timeout = "300ms"
shutdown_grace = "20s"
metrics_addr = ""
[[sources]]
name = "app"
paths = ["{logs}/*.log"]
format = "json_lines"
poll_interval = "100ms"
[archive]
max_archive_bytes = "64 KiB"
frame_bytes = "8 KiB"
[store]
kind = "s3"
bucket = "{bucket}"
endpoint = "{endpoint}"
region = "{region}"
force_path_style = true
"#,
                state = dir.path().join("state").display(),
                logs = dir.path().join("logs").display(),
                endpoint = env.endpoint,
                region = env.region,
            ),
        )
        .unwrap();
        Env { dir, config, bucket }
    }

    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn scrubd(&self, args: &[&str]) -> Command {
        let env = common::s3_env();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_scrubd"));
        cmd.arg("--config")
            .arg(&self.config)
            .args(args)
            .env("AWS_ACCESS_KEY_ID", env.access_key)
            .env("AWS_SECRET_ACCESS_KEY", env.secret_key)
            .env_remove("NOTIFY_SOCKET")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(self.dir.path().join("scrubd.log"))
                    .unwrap(),
            ));
        cmd
    }
}

fn line(seq: u64) -> String {
    // A timestamp per record keeps the archives' day partition deterministic.
    format!(
        "{{\"ts\":\"2025-06-01T10:{:02}:{:02}.000Z\",\"seq\":{seq},\"event\":\"evt_1E2e{seq:016}\",\"customer\":\"cus_E2e{seq:010}\",\"email\":\"person{seq}@example.org\",\"ip\":\"198.51.100.{}\"}}\n",
        (seq / 60) % 60,
        seq % 60,
        seq % 250
    )
}

/// The application: appends records, rotating the file every `ROTATE_EVERY` records, alternating
/// rename + create and copytruncate; rotated files get increasing numbers (nothing overwritten).
fn write_logs(logs: &Path, seed: u64) {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let live = logs.join("app.log");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&live)
        .unwrap();
    let mut rotation = 0;
    for seq in 0..RECORDS {
        file.write_all(line(seq).as_bytes()).unwrap();
        if seq % 20 == 19 {
            std::thread::sleep(Duration::from_millis(rng.random_range(5..40)));
        }
        if seq % ROTATE_EVERY == ROTATE_EVERY - 1 {
            rotation += 1;
            let rotated = logs.join(format!("app.log.{rotation}"));
            if rotation % 2 == 1 {
                std::fs::rename(&live, &rotated).unwrap();
                file = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&live)
                    .unwrap();
            } else {
                std::fs::copy(&live, &rotated).unwrap();
                file.set_len(0).unwrap();
            }
        }
    }
}

fn kill9(child: &mut Child) {
    // SAFETY: plain kill(2) on our own child's pid.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGKILL) };
    let _ = child.wait();
}

/// Every record in the bucket, as (archive key, record bytes), read through the manifests.
async fn bucket_records(bucket: &str) -> Vec<(Manifest, Vec<Vec<u8>>)> {
    let store = common::s3_store_for_bucket(bucket);
    let mut out = Vec::new();
    for obj in store.list("manifests/").await.unwrap() {
        let manifest: Manifest = serde_json::from_slice(&store.get(&obj.key, None).await.unwrap()).unwrap();
        let archive = store.get(&manifest.key, None).await.unwrap();
        let content = zstd::decode_all(&archive[..]).expect("archive decompresses with plain zstd");
        let records = manifest
            .records
            .iter()
            .map(|r| content[r.start as usize..(r.start + r.len) as usize].to_vec())
            .collect();
        out.push((manifest, records));
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn kill9_and_rotation_lose_and_duplicate_nothing() {
    let env = Env::new("e2e-kill").await;
    let seed: u64 = std::env::var("SCRUBD_E2E_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random);
    eprintln!("seed {seed} (set SCRUBD_E2E_SEED to replay)");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);

    let logs = env.logs();
    let writer = std::thread::spawn(move || write_logs(&logs, seed));
    let mut kills = 0;
    while !writer.is_finished() {
        let mut child = env.scrubd(&["run"]).spawn().unwrap();
        std::thread::sleep(Duration::from_millis(rng.random_range(200..1500)));
        kill9(&mut child);
        kills += 1;
    }
    writer.join().unwrap();
    // One more kill in the middle of catching up, then a clean run to the end.
    let mut child = env.scrubd(&["run"]).spawn().unwrap();
    std::thread::sleep(Duration::from_millis(rng.random_range(100..800)));
    kill9(&mut child);
    let status = env.scrubd(&["run", "--once"]).status().unwrap();
    assert!(
        status.success(),
        "scrubd run --once failed; see {}",
        env.dir.path().join("scrubd.log").display()
    );
    eprintln!("{kills} kills");

    let mut seen: BTreeMap<u64, usize> = BTreeMap::new();
    let mut by_file: BTreeMap<String, Vec<(u64, Vec<u64>)>> = BTreeMap::new();
    for (manifest, records) in bucket_records(&env.bucket).await {
        let mut seqs = Vec::new();
        for record in &records {
            let text = String::from_utf8_lossy(record);
            assert!(!text.contains("@example.org"), "an email reached the bucket: {text}");
            assert!(!text.contains("198.51.100."), "an IP reached the bucket: {text}");
            let v: serde_json::Value = serde_json::from_str(text.trim()).expect("record is one JSON line");
            let seq = v["seq"].as_u64().unwrap();
            assert_eq!(v["customer"], format!("cus_E2e{seq:010}"), "ids survive");
            *seen.entry(seq).or_default() += 1;
            seqs.push(seq);
        }
        by_file
            .entry(manifest.file_id.clone())
            .or_default()
            .push((manifest.first_offset, seqs));
    }
    let missing: Vec<u64> = (0..RECORDS).filter(|s| !seen.contains_key(s)).collect();
    let dups: Vec<(u64, usize)> = seen.iter().filter(|(_, n)| **n > 1).map(|(s, n)| (*s, *n)).collect();
    assert!(missing.is_empty(), "records lost (seed {seed}): {missing:?}");
    assert!(dups.is_empty(), "records duplicated (seed {seed}): {dups:?}");
    for (file, mut archives) in by_file {
        archives.sort();
        let seqs: Vec<u64> = archives.into_iter().flat_map(|(_, s)| s).collect();
        assert!(
            seqs.windows(2).all(|w| w[0] < w[1]),
            "records of file {file} out of order"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn ready_notification_then_sigterm_uploads_and_exits_zero() {
    let env = Env::new("e2e-term").await;
    let socket_path = env.dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut log = std::fs::File::create(env.logs().join("app.log")).unwrap();
    for seq in 0..25 {
        log.write_all(line(seq).as_bytes()).unwrap();
    }
    let mut child = env.scrubd(&["run"]).env("NOTIFY_SOCKET", &socket_path).spawn().unwrap();

    let mut buf = [0u8; 4096];
    let n = socket.recv(&mut buf).expect("a notification from scrubd");
    let first = String::from_utf8_lossy(&buf[..n]).into_owned();
    assert!(first.contains("READY=1"), "first notification: {first:?}");

    // Records are sealed after the flush interval and uploaded; SIGTERM then stops cleanly.
    let store = common::s3_store_for_bucket(&env.bucket);
    let deadline = Instant::now() + Duration::from_secs(60);
    while store.list("archives/").await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "nothing uploaded within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "exit status after SIGTERM: {status}");
    let mut stopping = false;
    while let Ok(n) = socket.recv(&mut buf) {
        if String::from_utf8_lossy(&buf[..n]).contains("STOPPING=1") {
            stopping = true;
            break;
        }
    }
    assert!(stopping, "no STOPPING=1 notification");
    let records: usize = bucket_records(&env.bucket).await.iter().map(|(_, r)| r.len()).sum();
    assert_eq!(records, 25);
}

/// SIGHUP: an invalid configuration is rejected and the daemon keeps running on the old one; a
/// valid one takes effect for the archives sealed after it.
#[tokio::test(flavor = "multi_thread")]
async fn sighup_rejects_a_bad_config_and_applies_a_good_one() {
    let env = Env::new("e2e-hup").await;
    let original = std::fs::read_to_string(&env.config).unwrap();
    let store = common::s3_store_for_bucket(&env.bucket);
    let mut log = std::fs::File::create(env.logs().join("app.log")).unwrap();
    let mut child = env.scrubd(&["run"]).spawn().unwrap();

    let versions = || async {
        bucket_records(&env.bucket)
            .await
            .into_iter()
            .map(|(m, _)| m.ruleset_version)
            .collect::<Vec<_>>()
    };
    let wait_for = |want: &'static str| async move {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if versions().await.iter().any(|v| v == want) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "no archive with rule set version {want} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };

    let log_path = env.dir.path().join("scrubd.log");
    let wait_log = |needle: &str, count: usize| {
        let deadline = Instant::now() + Duration::from_secs(60);
        while std::fs::read_to_string(&log_path)
            .unwrap_or_default()
            .matches(needle)
            .count()
            < count
        {
            assert!(
                Instant::now() < deadline,
                "{needle:?} not logged {count} times within 60 s"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    };
    let hup = |child: &Child| unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGHUP) };

    for seq in 0..5 {
        log.write_all(line(seq).as_bytes()).unwrap();
    }
    let default_version = scrubd::scrub::Scrubber::builtin().ruleset_version().to_owned();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !versions().await.contains(&default_version) {
        assert!(Instant::now() < deadline, "no first archive within 60 s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A valid reload: archives sealed after it carry the new rule set version.
    std::fs::write(
        &env.config,
        format!("{original}[scrub]\nruleset_version = \"before-reload\"\n"),
    )
    .unwrap();
    hup(&child);
    wait_log("configuration reloaded", 1);
    for seq in 5..10 {
        log.write_all(line(seq).as_bytes()).unwrap();
    }
    wait_for("before-reload").await;

    // A broken rule: rejected, naming the rule; the daemon keeps going with the rules it has.
    std::fs::write(&env.config, format!("{original}[rules.broken]\nregex = \"tok_(\"\n")).unwrap();
    hup(&child);
    wait_log("reload rejected", 1);
    assert!(
        child.try_wait().unwrap().is_none(),
        "scrubd died on a bad config reload"
    );
    let logged = std::fs::read_to_string(&log_path).unwrap();
    assert!(logged.contains("broken"), "the rejection names the rule: {logged}");

    std::fs::write(
        &env.config,
        format!("{original}[scrub]\nruleset_version = \"after-reload\"\n"),
    )
    .unwrap();
    hup(&child);
    wait_log("configuration reloaded", 2);
    for seq in 10..15 {
        log.write_all(line(seq).as_bytes()).unwrap();
    }
    wait_for("after-reload").await;
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    assert!(child.wait().unwrap().success());
    let total: usize = bucket_records(&env.bucket).await.iter().map(|(_, r)| r.len()).sum();
    assert_eq!(total, 15, "every record once across reloads");
    drop(store);
}

/// A source's `host` label names its archives, and its `disable_rules` switch rules off for it
/// (the pre-upload rescan honours that too); an unknown rule name is a config error naming it.
#[test]
fn per_source_host_and_disabled_rules_apply() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    let mut log = std::fs::File::create(dir.path().join("logs/app.log")).unwrap();
    for seq in 0..3 {
        log.write_all(line(seq).as_bytes()).unwrap();
    }
    let config = |disable: &str| {
        let path = dir.path().join("scrubd.toml");
        std::fs::write(
            &path,
            format!(
                "[daemon]\nstate_dir = \"{d}/state\"\nmetrics_addr = \"\"\nidle_timeout = \"200ms\"\n\
                 [[sources]]\nname = \"app\"\npaths = [\"{d}/logs/*.log\"]\nformat = \"json_lines\"\n\
                 host = \"edge-7\"\ndisable_rules = [\"{disable}\"]\n[store]\nkind = \"local\"\npath = \"{d}/bucket\"\n",
                d = dir.path().display()
            ),
        )
        .unwrap();
        path
    };
    let run = |cfg: &Path| {
        Command::new(env!("CARGO_BIN_EXE_scrubd"))
            .arg("--config")
            .arg(cfg)
            .args(["run", "--once"])
            .output()
            .unwrap()
    };

    let out = run(&config("no_such_rule"));
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no_such_rule") && stderr.contains("app"), "{stderr}");

    let out = run(&config("ip_address"));
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let archives = dir.path().join("bucket/archives/dt=2025-06-01/host=edge-7/source=app");
    let mut content = Vec::new();
    for entry in std::fs::read_dir(&archives).expect("archives under the source's host label") {
        let p = entry.unwrap().path();
        if p.extension().is_some_and(|e| e == "zst") {
            content.extend(zstd::decode_all(std::fs::File::open(p).unwrap()).unwrap());
        }
    }
    let text = String::from_utf8_lossy(&content);
    assert_eq!(text.lines().count(), 3, "{text}");
    assert!(
        text.contains("198.51.100."),
        "ip_address is disabled for this source: {text}"
    );
    assert!(!text.contains("@example.org"), "other rules still apply: {text}");
}
