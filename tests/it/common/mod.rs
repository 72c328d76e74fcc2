//! Shared test harness: stores on the S3-compatible test server (SeaweedFS on loopback, started by
//! `scripts/test.sh`), one fresh bucket per test, and small helpers.
//!
//! Must not: skip. Without the server's environment every S3 test panics with a message saying
//! how to start it.

#![allow(dead_code)] // not every test uses every helper

use std::sync::atomic::{AtomicU32, Ordering};

use scrubd::store::{S3Store, StoreConfig, StoreKind};

/// Where the test server is and the keys it accepts, from the `SCRUBD_TEST_S3_*` variables.
#[derive(Clone, Debug)]
pub struct S3Env {
    pub endpoint: String,
    pub region: String,
    pub access_key: String,
    pub secret_key: String,
    pub ro_access_key: String,
    pub ro_secret_key: String,
}

fn var(name: &str) -> String {
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => v,
        _ => panic!("{name} is not set: start the test S3 servers: run scripts/test.sh (it runs cargo test for you)"),
    }
}

/// The test server's coordinates. Panics when `scripts/test.sh` did not set them.
pub fn s3_env() -> S3Env {
    S3Env {
        endpoint: var("SCRUBD_TEST_S3_ENDPOINT"),
        region: std::env::var("SCRUBD_TEST_S3_REGION").unwrap_or_else(|_| "us-east-1".into()),
        access_key: var("SCRUBD_TEST_S3_ACCESS_KEY"),
        secret_key: var("SCRUBD_TEST_S3_SECRET_KEY"),
        ro_access_key: var("SCRUBD_TEST_S3_RO_ACCESS_KEY"),
        ro_secret_key: var("SCRUBD_TEST_S3_RO_SECRET_KEY"),
    }
}

/// A bucket name unique to this run and test: lowercase, digits and hyphens, at most 63 chars.
pub fn unique_bucket(test_name: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let mut name: String = test_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    name.truncate(30);
    let name = name.trim_matches('-');
    format!("t-{name}-{}-{n}-{nanos:x}", std::process::id())
}

/// `[store]` for the test server and `bucket`, path-style, with the admin key given as files
/// are not needed: stores are built with [`S3Store::with_credentials`].
pub fn s3_config(bucket: &str) -> StoreConfig {
    let env = s3_env();
    StoreConfig {
        kind: StoreKind::S3,
        bucket: bucket.to_string(),
        endpoint: env.endpoint,
        region: env.region,
        force_path_style: true,
        ..StoreConfig::default()
    }
}

/// A store on a fresh, empty bucket of its own, with the admin key.
pub async fn s3_store(test_name: &str) -> S3Store {
    s3_store_with(test_name, |_| {}).await
}

/// Like [`s3_store`], with `tweak` applied to the config first (page size, thresholds...).
pub async fn s3_store_with(test_name: &str, tweak: impl FnOnce(&mut StoreConfig)) -> S3Store {
    let env = s3_env();
    let bucket = unique_bucket(test_name);
    let mut cfg = s3_config(&bucket);
    tweak(&mut cfg);
    let store = S3Store::with_credentials(&cfg, &env.access_key, &env.secret_key).expect("valid test store config");
    create_bucket(store).await
}

/// Creates the store's bucket on its server; returns the store.
async fn create_bucket(store: S3Store) -> S3Store {
    let bucket = store.bucket().to_string();
    store
        .client()
        .create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .unwrap_or_else(|e| panic!("cannot create bucket {bucket}: {e:?}"));
    store
}

/// A store on `bucket` with the read-only key (Read + List).
pub fn s3_readonly_store(bucket: &str) -> S3Store {
    let env = s3_env();
    S3Store::with_credentials(&s3_config(bucket), &env.ro_access_key, &env.ro_secret_key)
        .expect("valid test store config")
}

/// `len` bytes that differ from position to position (so misplaced ranges show), from `seed`.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    // xorshift64*: deterministic, cheap, not compressible into a pattern S3 could dedupe.
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(bytes))
}

/// Fetches `url` without credentials: `http://` with a plain HTTP/1.1 request over a TCP socket,
/// `file://` from the file. Returns the status and the body.
pub fn fetch_url(url: &str) -> (u16, Vec<u8>) {
    use std::io::{Read, Write};
    if let Some(path) = url.strip_prefix("file://") {
        return match std::fs::read(path) {
            Ok(b) => (200, b),
            Err(_) => (404, Vec::new()),
        };
    }
    let rest = url.strip_prefix("http://").expect("http:// or file:// url");
    let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let mut sock = std::net::TcpStream::connect(host).expect("connect to presigned url host");
    write!(sock, "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n").expect("send request");
    let mut raw = Vec::new();
    sock.read_to_end(&mut raw).expect("read response");
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("response has headers");
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = raw[split + 4..].to_vec();
    let status: u16 = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status line");
    let chunked = head.lines().any(|l| {
        let l = l.to_ascii_lowercase();
        l.starts_with("transfer-encoding:") && l.contains("chunked")
    });
    (status, if chunked { dechunk(&body) } else { body })
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = body.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size_str = String::from_utf8_lossy(&body[..eol]);
        let size = usize::from_str_radix(size_str.split(';').next().unwrap_or("").trim(), 16).expect("chunk size");
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&body[eol + 2..eol + 2 + size]);
        body = &body[eol + 2 + size + 2..];
    }
}

/// A TCP proxy on loopback to `upstream` that cuts each connection (both directions) once the
/// client has sent `cut_after` bytes on it: a connection lost mid-upload. Runs until the test's
/// runtime ends.
pub async fn cutting_proxy(upstream: std::net::SocketAddr, cut_after: u64) -> std::net::SocketAddr {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let up = async {
                    let mut sent = 0u64;
                    let mut buf = vec![0u8; 64 * 1024];
                    loop {
                        let n = match cr.read(&mut buf).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        let allowed = (cut_after - sent).min(n as u64) as usize;
                        if sw.write_all(&buf[..allowed]).await.is_err() {
                            return;
                        }
                        sent += allowed as u64;
                        if sent >= cut_after {
                            return; // cut: dropping the halves closes both sockets
                        }
                    }
                };
                let down = async {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                };
                // Whichever direction ends first ends the connection.
                tokio::select! {
                    _ = up => {}
                    _ = down => {}
                }
            });
        }
    });
    addr
}

/// The test server's socket address, from `SCRUBD_TEST_S3_ENDPOINT`.
pub fn s3_addr() -> std::net::SocketAddr {
    let endpoint = s3_env().endpoint;
    let hostport = endpoint.trim_start_matches("http://").trim_end_matches('/');
    std::net::ToSocketAddrs::to_socket_addrs(hostport)
        .ok()
        .and_then(|mut a| a.next())
        .unwrap_or_else(|| panic!("SCRUBD_TEST_S3_ENDPOINT {endpoint} is not host:port"))
}

/// A store on an existing `bucket` with the admin key.
pub fn s3_store_for_bucket(bucket: &str) -> S3Store {
    let env = s3_env();
    S3Store::with_credentials(&s3_config(bucket), &env.access_key, &env.secret_key).expect("valid test store config")
}

/// A store on a fresh bucket of its own on Garage, the second S3 engine (`scripts/garage-server.sh`,
/// started by `scripts/test.sh`), from the `SCRUBD_TEST_GARAGE_*` variables; `tweak` applies to
/// the config first. Panics (never skips) when they are not set.
pub async fn garage_store_with(test_name: &str, tweak: impl FnOnce(&mut StoreConfig)) -> S3Store {
    let mut cfg = StoreConfig {
        kind: StoreKind::S3,
        bucket: unique_bucket(test_name),
        endpoint: var("SCRUBD_TEST_GARAGE_ENDPOINT"),
        region: std::env::var("SCRUBD_TEST_GARAGE_REGION").unwrap_or_else(|_| "garage".into()),
        force_path_style: true,
        ..StoreConfig::default()
    };
    tweak(&mut cfg);
    let store = S3Store::with_credentials(
        &cfg,
        &var("SCRUBD_TEST_GARAGE_ACCESS_KEY"),
        &var("SCRUBD_TEST_GARAGE_SECRET_KEY"),
    )
    .expect("valid test store config");
    create_bucket(store).await
}
