//! End to end on Garage, the second S3-compatible engine (`scripts/garage-server.sh`, started by
//! `scripts/test.sh`): stricter than SeaweedFS about signed payloads, with no tagging, versioning
//! or Object Lock. The whole daemon ships a log to it (`scrubd run --once`, credentials from files,
//! archives uploaded from spool files), then an engineer's `scrubd search` and `scrubd fetch` find
//! one event by id through the index, after `scrubd compact` and `scrubd reindex` too. The
//! conformance suite (`tests/it/store_conformance.rs`) runs the store contract on Garage as well.
//!
//! Must not: skip. Without `SCRUBD_TEST_GARAGE_*` the test panics.

use crate::common;

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
        std::fs::write(
            &p,
            std::env::var(var).unwrap_or_else(|_| panic!("{var} is not set: run scripts/test.sh")),
        )
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
    assert!(
        !text.contains("@example.org") && !text.contains("198.51.100."),
        "unscrubbed: {text}"
    );
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
            assert!(
                !r.contains("@example.org") && !r.contains("198.51.100."),
                "unscrubbed record: {r}"
            );
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

// ---- credentials from the standard chain ----
//
// With no key files in `[store]`, scrubd takes credentials from the AWS chain: environment,
// profile files, web identity (STS), instance metadata. Garage accepts the session token such
// credentials carry (SeaweedFS refuses tokens it did not issue), so each path is shown end to end:
// `scrubd run --once` ships a small log with credentials from one source only, and the archives
// are then read back with the test's own key. STS and the instance metadata service cannot run
// here; a loopback stand-in speaks their protocol and hands out the Garage key with a token, and
// the test checks that it was asked.

/// A loopback HTTP server answering with `respond(method, path, body)`; counts the requests.
struct StandIn {
    addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

async fn stand_in(respond: fn(&str, &str, &str) -> (u16, String)) -> StandIn {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let log = log.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let head_end = loop {
                    if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        break p + 4;
                    }
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
                let len: usize = head
                    .lines()
                    .find_map(|l| {
                        let (k, v) = l.split_once(':')?;
                        k.eq_ignore_ascii_case("content-length")
                            .then(|| v.trim().parse().ok())?
                    })
                    .unwrap_or(0);
                while buf.len() < head_end + len {
                    match conn.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
                let mut parts = head.split_whitespace();
                let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
                log.lock().unwrap().push(format!("{method} {path}"));
                let (status, reply) = respond(method, path, &body);
                // The TTL header is what the instance metadata service sends with a session token;
                // STS ignores it.
                let resp = format!(
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nContent-Type: text/plain\r\n\
                     x-aws-ec2-metadata-token-ttl-seconds: 21600\r\nConnection: close\r\n\r\n{reply}",
                    reply.len()
                );
                let _ = conn.write_all(resp.as_bytes()).await;
            });
        }
    });
    StandIn { addr, seen }
}

/// Runs `cmd` to its end, killing it after `limit` (a hung run fails the test instead of CI).
fn output_within(mut cmd: Command, limit: std::time::Duration) -> Output {
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id() as libc::pid_t;
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = done.clone();
    std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + limit;
        while std::time::Instant::now() < deadline {
            if watch.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
        // SAFETY: kill(2) on our own child, which has not been reaped (`done` is unset).
        unsafe { libc::kill(pid, libc::SIGKILL) };
    });
    let out = child.wait_with_output().unwrap();
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    out
}

fn garage_key() -> (String, String) {
    (
        std::env::var("SCRUBD_TEST_GARAGE_ACCESS_KEY").expect("SCRUBD_TEST_GARAGE_ACCESS_KEY: run scripts/test.sh"),
        std::env::var("SCRUBD_TEST_GARAGE_SECRET_KEY").expect("SCRUBD_TEST_GARAGE_SECRET_KEY: run scripts/test.sh"),
    )
}

/// `scrubd run --once` over a 50-record log into a fresh Garage bucket, with `[store]` naming no
/// keys and `env` as the only source of credentials.
async fn run_with_chain(name: &str, env: &[(&str, String)]) -> (scrubd::store::S3Store, Output) {
    let store = common::garage_store_with(name, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("logs")).unwrap();
    std::fs::write(dir.path().join("logs/app.log"), (0..50).map(line).collect::<String>()).unwrap();
    let config = dir.path().join("scrubd.toml");
    std::fs::write(
        &config,
        format!(
            "host = \"chain\"\n[daemon]\nstate_dir = \"{d}/state\"\nidle_timeout = \"200ms\"\nmetrics_addr = \"\"\n\
             [[sources]]\nname = \"stripe\"\npaths = [\"{d}/logs/*.log\"]\nformat = \"json_lines\"\n\
             [store]\nkind = \"s3\"\nbucket = \"{b}\"\nendpoint = \"{e}\"\nregion = \"garage\"\nforce_path_style = true\n",
            d = dir.path().display(),
            b = store.bucket(),
            e = std::env::var("SCRUBD_TEST_GARAGE_ENDPOINT").unwrap(),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_scrubd"));
    cmd.arg("--config")
        .arg(&config)
        .args(["--log", "warn", "run", "--once"]);
    // Nothing from this machine's own AWS set-up: only what the test gives.
    for var in [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_WEB_IDENTITY_TOKEN_FILE",
        "AWS_ROLE_ARN",
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        "AWS_CONTAINER_CREDENTIALS_FULL_URI",
        "AWS_EC2_METADATA_DISABLED",
        "NOTIFY_SOCKET",
    ] {
        cmd.env_remove(var);
    }
    cmd.env("AWS_CONFIG_FILE", dir.path().join("no-config"))
        .env("AWS_SHARED_CREDENTIALS_FILE", dir.path().join("no-credentials"))
        .env("AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:9");
    for (k, v) in env {
        cmd.env(k, v);
    }
    let out = tokio::task::spawn_blocking(move || output_within(cmd, std::time::Duration::from_secs(120)))
        .await
        .unwrap();
    drop(dir);
    (store, out)
}

/// Like [`run_with_chain`], which must succeed; returns the records then in the bucket.
async fn ship_with_chain(name: &str, env: &[(&str, String)]) -> Vec<String> {
    let (store, out) = run_with_chain(name, env).await;
    assert!(
        out.status.success(),
        "scrubd run --once with {env:?}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    bucket_records(&store).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_credentials_run_once_fails_loudly_and_keeps_the_spool() {
    // Every provider of the chain comes up empty (the metadata endpoint is a closed port).
    let (store, out) = run_with_chain("chain-none", &[]).await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("no usable credentials"), "{stderr}");
    assert!(stderr.contains("stay in the spool"), "{stderr}");
    assert!(store.list("").await.unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_a_profile_file() {
    let (id, secret) = garage_key();
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("credentials");
    std::fs::write(
        &creds,
        format!("[default]\naws_access_key_id = GKwrong\naws_secret_access_key = wrong\n[scrubd]\naws_access_key_id = {id}\naws_secret_access_key = {secret}\n"),
    )
    .unwrap();
    let records = ship_with_chain(
        "chain-profile",
        &[
            ("AWS_SHARED_CREDENTIALS_FILE", creds.display().to_string()),
            ("AWS_PROFILE", "scrubd".into()),
        ],
    )
    .await;
    assert_eq!(records.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_web_identity_via_sts() {
    fn sts(method: &str, _path: &str, body: &str) -> (u16, String) {
        let ok = method == "POST"
            && body.contains("Action=AssumeRoleWithWebIdentity")
            && body.contains("WebIdentityToken=oidc-token-for-scrubd");
        if !ok {
            return (400, format!("unexpected STS request: {method} {body}"));
        }
        let (id, secret) = garage_key();
        (
            200,
            format!(
                "<AssumeRoleWithWebIdentityResponse xmlns=\"https://sts.amazonaws.com/doc/2011-06-15/\">\
                 <AssumeRoleWithWebIdentityResult><Credentials><AccessKeyId>{id}</AccessKeyId>\
                 <SecretAccessKey>{secret}</SecretAccessKey><SessionToken>session-from-sts</SessionToken>\
                 <Expiration>2099-01-01T00:00:00Z</Expiration></Credentials>\
                 <AssumedRoleUser><Arn>arn:aws:sts::123456789012:assumed-role/scrubd/s</Arn>\
                 <AssumedRoleId>AROAEXAMPLE:s</AssumedRoleId></AssumedRoleUser>\
                 </AssumeRoleWithWebIdentityResult><ResponseMetadata><RequestId>r1</RequestId>\
                 </ResponseMetadata></AssumeRoleWithWebIdentityResponse>"
            ),
        )
    }
    let server = stand_in(sts).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "oidc-token-for-scrubd").unwrap();
    let records = ship_with_chain(
        "chain-web-identity",
        &[
            ("AWS_WEB_IDENTITY_TOKEN_FILE", token.display().to_string()),
            ("AWS_ROLE_ARN", "arn:aws:iam::123456789012:role/scrubd".into()),
            ("AWS_ROLE_SESSION_NAME", "scrubd-test".into()),
            ("AWS_ENDPOINT_URL_STS", format!("http://{}", server.addr)),
        ],
    )
    .await;
    assert_eq!(records.len(), 50);
    assert!(!server.seen.lock().unwrap().is_empty(), "STS was never asked");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credentials_from_instance_metadata() {
    const ROLE: &str = "scrubd-instance-role";
    fn imds(method: &str, path: &str, _body: &str) -> (u16, String) {
        match (method, path) {
            ("PUT", "/latest/api/token") => (200, "imds-session-token".into()),
            ("GET", "/latest/meta-data/iam/security-credentials/") => (200, ROLE.into()),
            ("GET", p) if p == format!("/latest/meta-data/iam/security-credentials/{ROLE}") => {
                let (id, secret) = garage_key();
                (
                    200,
                    format!(
                        "{{\"Code\":\"Success\",\"LastUpdated\":\"2026-01-01T00:00:00Z\",\"Type\":\"AWS-HMAC\",\
                         \"AccessKeyId\":\"{id}\",\"SecretAccessKey\":\"{secret}\",\"Token\":\"session-from-imds\",\
                         \"Expiration\":\"2099-01-01T00:00:00Z\"}}"
                    ),
                )
            }
            _ => (404, String::new()),
        }
    }
    let server = stand_in(imds).await;
    let records = ship_with_chain(
        "chain-imds",
        &[("AWS_EC2_METADATA_SERVICE_ENDPOINT", format!("http://{}", server.addr))],
    )
    .await;
    assert_eq!(records.len(), 50);
    let seen = server.seen.lock().unwrap().clone();
    assert!(
        seen.iter().any(|r| r.ends_with(ROLE)),
        "the instance metadata credentials were never fetched: {seen:?}"
    );
}
