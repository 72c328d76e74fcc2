//! [`Uploader`]: ships sealed archives from the spool to the object store.
//!
//! For each entry, in order: re-scan every record with the detectors (last line of defence; a
//! finding sends the archive to quarantine), upload the archive (`put_file` with its sha256), then
//! its manifest, confirm both with a HEAD, run the after-upload hook (the index), and only then
//! delete the entry from the spool. Every store call is retried with exponential backoff and full
//! jitter under a per-attempt timeout; transient errors forever, permanent ones (credentials,
//! bucket) with a loud error and a long pause, the entry staying spooled.
//!
//! Must not: delete a spool entry before its objects are confirmed; upload an archive the rescan
//! flags; log a scrubbed or found value (only keys, rule names and counts).

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use futures::future::BoxFuture;
use sha2::{Digest, Sha256};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use super::keys;
use super::seekable::{self, FrameDecoder};
use super::spool::{Prescan, Sealed, Spool};
use super::{ArchiveError, Manifest};
use crate::store::{ObjectStore, PutOptions, StoreError};

/// The last-line-of-defence detector pass: values found per rule in one scrubbed record (empty
/// when clean). Implemented for any `Fn(&[u8]) -> BTreeMap<String, u64>`.
pub trait Rescan: Send + Sync {
    fn rescan(&self, record: &[u8]) -> BTreeMap<String, u64>;

    /// Like [`Rescan::rescan`], for a record of `source` (whose rules may differ).
    fn rescan_source(&self, source: &str, record: &[u8]) -> BTreeMap<String, u64> {
        let _ = source;
        self.rescan(record)
    }

    /// Identifies the rules `rescan_source(source, …)` applies now, if they have an identity: an
    /// entry whose [`Prescan`] was made with these very rules is not rescanned.
    fn rules_of(&self, source: &str) -> Option<u64> {
        let _ = source;
        None
    }
}

impl<F: Fn(&[u8]) -> BTreeMap<String, u64> + Send + Sync> Rescan for F {
    fn rescan(&self, record: &[u8]) -> BTreeMap<String, u64> {
        self(record)
    }
}

/// Called after an archive and its manifest are stored, before the spool entry is deleted (the
/// index stage writes its segment here). Retried like a store call.
pub type AfterUpload = Arc<dyn Fn(Arc<Manifest>) -> BoxFuture<'static, Result<(), StoreError>> + Send + Sync>;

/// Backoff and timeouts of store calls.
#[derive(Clone, Debug)]
pub struct RetryPolicy {
    /// First backoff; doubles with each attempt up to `max_backoff`; the actual sleep is uniform
    /// in `[0, backoff]` (full jitter), so many hosts do not retry in step.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// Pause after a permanent error (bad credentials, missing bucket) before trying again: a
    /// reload may have fixed it.
    pub permanent_backoff: Duration,
    /// Deadline of one attempt of one call.
    pub attempt_timeout: Duration,
    /// Stop at the first permanent error instead of pausing and trying again (`run --once`: a
    /// backfill should fail loudly, not wait for an operator). The entry stays spooled.
    pub stop_on_permanent: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(60),
            permanent_backoff: Duration::from_secs(300),
            attempt_timeout: Duration::from_secs(120),
            stop_on_permanent: false,
        }
    }
}

impl RetryPolicy {
    /// Sleep before retry number `attempt` (0-based) of a transient failure.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let cap = self
            .initial_backoff
            .saturating_mul(1u32.checked_shl(attempt.min(31)).unwrap_or(u32::MAX))
            .min(self.max_backoff);
        let ms = cap.as_millis().min(u64::MAX as u128) as u64;
        Duration::from_millis(rand::random_range(0..=ms))
    }
}

/// What the uploader did, for metrics. Shared; read with `load(Ordering::Relaxed)`.
#[derive(Debug, Default)]
pub struct UploadCounters {
    /// Archives uploaded and removed from the spool.
    pub uploaded: AtomicU64,
    /// Compressed bytes of those archives.
    pub bytes: AtomicU64,
    /// Records in those archives.
    pub records: AtomicU64,
    /// Failed attempts of store calls (and of the hook) that were retried.
    pub retries: AtomicU64,
    /// Attempts that failed with a permanent error.
    pub permanent_errors: AtomicU64,
    /// Archives moved to quarantine (rescan findings or corruption).
    pub quarantined: AtomicU64,
}

/// The upload stage. Build with [`Uploader::new`], then [`Uploader::run`].
pub struct Uploader {
    store: Arc<dyn ObjectStore>,
    spool: Arc<Spool>,
    rescan: Arc<dyn Rescan>,
    policy: RetryPolicy,
    counters: Arc<UploadCounters>,
    after_upload: Option<AfterUpload>,
    metrics: Option<crate::metrics::Metrics>,
}

/// Result of checking a spooled archive before upload.
enum Check {
    Clean,
    /// Rule name → count, summed over the records.
    Findings(BTreeMap<String, u64>),
    Corrupt(String),
    /// The archive file is gone from the spool (removed by hand?): nothing left to upload.
    Missing,
}

fn verdict(findings: BTreeMap<String, u64>) -> Check {
    if findings.is_empty() {
        Check::Clean
    } else {
        Check::Findings(findings)
    }
}

/// The entry could not be finished because the uploader was cancelled.
struct Cancelled;

impl Uploader {
    pub fn new(store: Arc<dyn ObjectStore>, spool: Arc<Spool>, rescan: Arc<dyn Rescan>, policy: RetryPolicy) -> Self {
        Uploader {
            store,
            spool,
            rescan,
            policy,
            counters: Arc::default(),
            after_upload: None,
            metrics: None,
        }
    }

    pub fn with_after_upload(mut self, hook: AfterUpload) -> Self {
        self.after_upload = Some(hook);
        self
    }

    /// Reports uploads, their latency, errors, retries and quarantines to the daemon's metrics.
    pub fn with_metrics(mut self, metrics: crate::metrics::Metrics) -> Self {
        self.metrics = Some(metrics);
        self
    }

    pub fn counters(&self) -> Arc<UploadCounters> {
        self.counters.clone()
    }

    /// Uploads `startup` (the spool's scan) and then every entry from `rx`, one at a time, until
    /// `rx` is closed and drained or `cancel` fires. An entry interrupted by cancellation stays in
    /// the spool for the next start.
    pub async fn run(self, startup: Vec<Sealed>, mut rx: mpsc::Receiver<Sealed>, cancel: CancellationToken) {
        for entry in startup {
            if self.process(entry, &cancel).await.is_err() {
                return;
            }
        }
        loop {
            let entry = tokio::select! {
                _ = cancel.cancelled() => return,
                entry = rx.recv() => match entry {
                    Some(e) => e,
                    None => return,
                },
            };
            if self.process(entry, &cancel).await.is_err() {
                return;
            }
        }
    }

    async fn process(&self, entry: Sealed, cancel: &CancellationToken) -> Result<(), Cancelled> {
        let started = std::time::Instant::now();
        let key = entry.manifest.key.clone();
        let check = self.retry_local("check", &key, cancel, || self.check(&entry)).await?;
        match check {
            Check::Clean => {}
            Check::Findings(findings) => {
                self.quarantine(
                    &entry,
                    &findings,
                    "the pre-upload rescan found values rules should have removed",
                    cancel,
                )
                .await?;
                let rules: Vec<String> = findings.iter().map(|(r, n)| format!("{r}={n}")).collect();
                error!(key = %key, rules = %rules.join(","), "archive quarantined: rescan found sensitive values; not uploaded");
                return Ok(());
            }
            Check::Missing => {
                error!(key = %key, path = %entry.archive_path.display(), "spooled archive vanished; skipping it");
                return Ok(());
            }
            Check::Corrupt(message) => {
                self.quarantine(&entry, &BTreeMap::new(), &message, cancel).await?;
                error!(key = %key, reason = %message, "archive quarantined: spooled archive is corrupt; not uploaded");
                return Ok(());
            }
        }

        let m = &entry.manifest;
        let manifest_key = keys::manifest_key_for(&key).unwrap_or_else(|| format!("manifests/{key}.json"));
        let archive_opts = PutOptions {
            sha256: m.sha256.clone(),
            content_type: Some("application/zstd".into()),
            metadata: BTreeMap::from([
                // Header values must be ASCII: the same sanitized names as in the key.
                ("host".into(), keys::sanitize(&m.host)),
                ("source".into(), keys::sanitize(&m.source)),
                ("file-id".into(), keys::sanitize(&m.file_id)),
                ("first-offset".into(), m.first_offset.to_string()),
                ("record-count".into(), m.record_count.to_string()),
                ("ruleset-digest".into(), keys::sanitize(&m.ruleset_digest)),
                ("manifest-key".into(), manifest_key.clone()),
            ]),
            tags: BTreeMap::new(),
        };
        self.retry("put archive", &key, cancel, || async {
            self.store.put_file(&key, &entry.archive_path, &archive_opts).await
        })
        .await?;

        // The manifest as spooled, byte for byte.
        let manifest_body = self
            .retry_local("read manifest", &key, cancel, || async {
                tokio::fs::read(&entry.manifest_path)
                    .await
                    .map(bytes::Bytes::from)
                    .map_err(|source| StoreError::Io {
                        key: entry.manifest_path.display().to_string(),
                        source,
                    })
            })
            .await?;
        let manifest_opts = PutOptions {
            sha256: hex::encode(Sha256::digest(&manifest_body)),
            content_type: Some("application/json".into()),
            metadata: BTreeMap::from([("archive-key".into(), key.clone())]),
            tags: BTreeMap::new(),
        };
        self.retry("put manifest", &manifest_key, cancel, || {
            self.store
                .put_bytes(&manifest_key, manifest_body.clone(), &manifest_opts)
        })
        .await?;

        let expected = [
            (key.as_str(), m.compressed_bytes),
            (manifest_key.as_str(), manifest_body.len() as u64),
        ];
        for (k, size) in expected {
            self.retry("confirm", k, cancel, || async {
                match self.store.head(k).await? {
                    Some(meta) if meta.size == size => Ok(()),
                    found => Err(StoreError::Transient {
                        key: k.to_string(),
                        message: format!(
                            "after put, head found {:?} bytes, expected {size}",
                            found.map(|f| f.size)
                        ),
                    }),
                }
            })
            .await?;
        }

        if let Some(hook) = &self.after_upload {
            self.retry("after-upload hook", &key, cancel, || hook(m.clone()))
                .await?;
        }

        self.retry_local("remove from spool", &key, cancel, || async {
            self.spool.remove(&entry).map_err(|e| StoreError::Io {
                key: key.clone(),
                source: std::io::Error::other(e.to_string()),
            })
        })
        .await?;
        self.counters.uploaded.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.archive_uploaded(started.elapsed());
        }
        self.counters.bytes.fetch_add(m.compressed_bytes, Ordering::Relaxed);
        self.counters.records.fetch_add(m.record_count, Ordering::Relaxed);
        info!(key = %key, records = m.record_count, bytes = m.compressed_bytes, "archive uploaded");
        Ok(())
    }

    async fn quarantine(
        &self,
        entry: &Sealed,
        findings: &BTreeMap<String, u64>,
        reason: &str,
        cancel: &CancellationToken,
    ) -> Result<(), Cancelled> {
        let key = &entry.manifest.key;
        self.retry_local("quarantine", key, cancel, || async {
            self.spool
                .quarantine(entry, findings, reason)
                .map(|_| ())
                .map_err(|e| StoreError::Io {
                    key: key.clone(),
                    source: std::io::Error::other(e.to_string()),
                })
        })
        .await?;
        self.counters.quarantined.fetch_add(1, Ordering::Relaxed);
        if let Some(m) = &self.metrics {
            m.archive_quarantined();
        }
        Ok(())
    }

    /// Reads the spooled archive, checks it against its manifest and rescans every record, frame
    /// by frame (memory: one frame), on a blocking thread.
    async fn check(&self, entry: &Sealed) -> Result<Check, StoreError> {
        let (path, manifest, rescan) = (entry.archive_path.clone(), entry.manifest.clone(), self.rescan.clone());
        let prescan = entry.prescan.clone();
        let shown = path.display().to_string();
        let io = |source| StoreError::Io { key: shown, source };
        let join = tokio::task::spawn_blocking(move || -> std::io::Result<Check> {
            let object = match std::fs::read(&path) {
                Ok(o) => o,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Check::Missing),
                Err(e) => return Err(e),
            };
            let corrupt = |e: ArchiveError| Ok(Check::Corrupt(e.to_string()));
            if object.len() as u64 != manifest.compressed_bytes
                || !hex::encode(Sha256::digest(&object)).eq_ignore_ascii_case(&manifest.sha256)
            {
                return Ok(Check::Corrupt(
                    "archive in the spool differs from its manifest's sha256".into(),
                ));
            }
            if let Err(e) = seekable::parse_seek_table(&object, object.len() as u64)
                .map_err(|message| ArchiveError::Corrupt {
                    key: manifest.key.clone(),
                    message,
                })
                .and_then(|frames| {
                    if frames == manifest.frames {
                        Ok(())
                    } else {
                        Err(ArchiveError::Corrupt {
                            key: manifest.key.clone(),
                            message: "seek table differs from the manifest".into(),
                        })
                    }
                })
            {
                return corrupt(e);
            }
            // The bytes are the ones sealed (sha256 above): their rescan at seal time stands while
            // the rules are the same.
            if let Some(Prescan { findings, .. }) =
                prescan.filter(|p| rescan.rules_of(&manifest.source) == Some(p.rules))
            {
                return Ok(verdict(findings));
            }
            let mut findings = BTreeMap::new();
            let mut records = manifest.records.iter().peekable();
            let mut decoder = FrameDecoder::new();
            for (i, frame) in manifest.frames.iter().enumerate() {
                let range = frame.compressed_offset as usize..(frame.compressed_offset + frame.compressed_len) as usize;
                let content = match object.get(range) {
                    Some(c) => match decoder.decompress(c, frame, &manifest.key) {
                        Ok(c) => c,
                        Err(e) => return corrupt(e),
                    },
                    None => return Ok(Check::Corrupt(format!("frame {i} lies outside the archive"))),
                };
                while let Some(r) = records.next_if(|r| r.frame as usize == i) {
                    let start = r.start.wrapping_sub(frame.decompressed_offset) as usize;
                    let Some(bytes) = content.get(start..start.saturating_add(r.len as usize)) else {
                        return Ok(Check::Corrupt(format!("record at {} lies outside its frame", r.start)));
                    };
                    for (rule, n) in rescan.rescan_source(&manifest.source, bytes) {
                        *findings.entry(rule).or_insert(0u64) += n;
                    }
                }
            }
            if records.next().is_some() {
                return Ok(Check::Corrupt("records out of frame order in the manifest".into()));
            }
            Ok(verdict(findings))
        })
        .await;
        match join {
            Ok(r) => r.map_err(io),
            Err(e) => Err(StoreError::Io {
                key: entry.manifest.key.clone(),
                source: std::io::Error::other(format!("rescan task failed: {e}")),
            }),
        }
    }

    /// [`Uploader::retry`] for local work (reading and rescanning the spool): same backoff, no
    /// per-attempt deadline, since rescanning a large archive may legitimately take a while.
    async fn retry_local<T, F, Fut>(
        &self,
        what: &str,
        key: &str,
        cancel: &CancellationToken,
        op: F,
    ) -> Result<T, Cancelled>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.retry_with(what, key, cancel, Duration::MAX, op).await
    }

    /// Runs the store call `op` under the per-attempt timeout until it succeeds or `cancel` fires.
    async fn retry<T, F, Fut>(&self, what: &str, key: &str, cancel: &CancellationToken, op: F) -> Result<T, Cancelled>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        self.retry_with(what, key, cancel, self.policy.attempt_timeout, op)
            .await
    }

    async fn retry_with<T, F, Fut>(
        &self,
        what: &str,
        key: &str,
        cancel: &CancellationToken,
        attempt_timeout: Duration,
        mut op: F,
    ) -> Result<T, Cancelled>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, StoreError>>,
    {
        let mut attempt = 0u32;
        loop {
            let outcome = tokio::select! {
                _ = cancel.cancelled() => return Err(Cancelled),
                r = tokio::time::timeout(attempt_timeout, op()) => r,
            };
            let delay = match outcome {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(e)) if e.is_permanent() => {
                    self.counters.permanent_errors.fetch_add(1, Ordering::Relaxed);
                    self.report_error(crate::metrics::UploadErrorKind::Permanent);
                    if self.policy.stop_on_permanent {
                        error!(
                            op = what, key = %key, error = %e,
                            "permanent store error: check the store's credentials, bucket and permissions; stopping, archives stay spooled"
                        );
                        return Err(Cancelled);
                    }
                    error!(
                        op = what, key = %key, error = %e,
                        retry_in = ?self.policy.permanent_backoff,
                        "permanent store error: check the store's credentials, bucket and permissions; archives stay spooled"
                    );
                    self.policy.permanent_backoff
                }
                Ok(Err(e)) => {
                    self.report_error(crate::metrics::UploadErrorKind::Transient);
                    warn!(op = what, key = %key, error = %e, attempt, "upload step failed; retrying");
                    self.policy.backoff(attempt)
                }
                Err(_) => {
                    self.report_error(crate::metrics::UploadErrorKind::Transient);
                    warn!(op = what, key = %key, timeout = ?attempt_timeout, attempt, "upload step timed out; retrying");
                    self.policy.backoff(attempt)
                }
            };
            self.counters.retries.fetch_add(1, Ordering::Relaxed);
            if let Some(m) = &self.metrics {
                m.retry("upload");
            }
            attempt = attempt.saturating_add(1);
            tokio::select! {
                _ = cancel.cancelled() => return Err(Cancelled),
                _ = tokio::time::sleep(delay) => {}
            }
        }
    }

    fn report_error(&self, kind: crate::metrics::UploadErrorKind) {
        if let Some(m) = &self.metrics {
            m.upload_error(kind);
        }
    }
}
