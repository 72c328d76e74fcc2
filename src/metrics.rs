//! Prometheus metrics of the daemon, the pipeline's health, and the HTTP endpoint serving both.
//!
//! [`Metrics`] is a cheap-to-clone handle (an `Arc` inside) with one typed method per event; the
//! stages hold a clone each. [`Health`] collects the reasons the pipeline is unhealthy (uploads
//! failing permanently, a stalled stage) and [`MetricsServer`] serves `/metrics` (OpenMetrics
//! text) and `/healthz` (`200 ok`, or `503` with the reasons) until cancelled.
//!
//! What it must not do: put record content into a label or a health reason. Labels are source
//! names and rule names from the configuration, file paths (paths are not scrubbed values) and
//! `&'static str` kinds; health reasons are `&'static str`, so no runtime value can reach them.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::metrics::info::Info;
use prometheus_client::registry::{Registry, Unit};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::{debug, info, warn};

/// The content type of the OpenMetrics text exposition format.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// A slow or idle client cannot hold a connection open longer than this while sending headers.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabels {
    rule: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct KindLabels {
    kind: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabels {
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct FileLabels {
    source: String,
    file: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: &'static str,
}

/// Whether a failed upload will be retried (`transient`) or not (`permanent`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UploadErrorKind {
    /// Worth retrying: timeouts, throttling, 5xx, connection resets.
    Transient,
    /// Retrying will not help: access denied, no such bucket, invalid request.
    Permanent,
}

impl UploadErrorKind {
    fn label(self) -> &'static str {
        match self {
            UploadErrorKind::Transient => "transient",
            UploadErrorKind::Permanent => "permanent",
        }
    }
}

/// The daemon's metrics. Cloning is cheap; every clone updates the same series.
#[derive(Clone, Debug)]
pub struct Metrics {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    records_in: Family<SourceLabels, Counter>,
    records_out: Family<SourceLabels, Counter>,
    bytes_in: Family<SourceLabels, Counter>,
    bytes_out: Family<SourceLabels, Counter>,
    scrubs: Family<RuleLabels, Counter>,
    scrub_fallbacks: Family<SourceLabels, Counter>,
    archives_sealed: Counter,
    archives_uploaded: Counter,
    archives_quarantined: Counter,
    spool_bytes: Gauge,
    upload_duration: Histogram,
    upload_errors: Family<KindLabels, Counter>,
    retries: Family<OperationLabels, Counter>,
    checkpoint_lag: Family<FileLabels, Gauge>,
    last_upload: Gauge<f64, AtomicU64>,
    config_reloads: Family<ResultLabels, Counter>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// Creates and registers every metric family, all prefixed `scrubd_`.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("scrubd");
        let records_in = Family::<SourceLabels, Counter>::default();
        let records_out = Family::<SourceLabels, Counter>::default();
        let bytes_in = Family::<SourceLabels, Counter>::default();
        let bytes_out = Family::<SourceLabels, Counter>::default();
        let scrubs = Family::<RuleLabels, Counter>::default();
        let scrub_fallbacks = Family::<SourceLabels, Counter>::default();
        let archives_sealed = Counter::default();
        let archives_uploaded = Counter::default();
        let archives_quarantined = Counter::default();
        let spool_bytes = Gauge::default();
        // 10 ms .. ~82 s: a small archive on loopback up to a large one over a slow link.
        let upload_duration = Histogram::new(exponential_buckets(0.01, 2.0, 14));
        let upload_errors = Family::<KindLabels, Counter>::default();
        let retries = Family::<OperationLabels, Counter>::default();
        let checkpoint_lag = Family::<FileLabels, Gauge>::default();
        let last_upload = Gauge::<f64, AtomicU64>::default();
        let config_reloads = Family::<ResultLabels, Counter>::default();

        registry.register("input_records", "Records read from watched files", records_in.clone());
        registry.register(
            "output_records",
            "Scrubbed records written to archives",
            records_out.clone(),
        );
        registry.register_with_unit("input", "Bytes read from watched files", Unit::Bytes, bytes_in.clone());
        registry.register_with_unit(
            "output",
            "Scrubbed bytes written to archives",
            Unit::Bytes,
            bytes_out.clone(),
        );
        registry.register("scrubs", "Values removed or replaced, per rule", scrubs.clone());
        registry.register(
            "scrub_fallbacks",
            "Records scrubbed on the fail-closed path (unparseable, oversized or unexpected)",
            scrub_fallbacks.clone(),
        );
        registry.register(
            "archives_sealed",
            "Archives sealed into the spool",
            archives_sealed.clone(),
        );
        registry.register(
            "archives_uploaded",
            "Archives uploaded to the bucket",
            archives_uploaded.clone(),
        );
        registry.register(
            "archives_quarantined",
            "Archives set aside because they cannot be uploaded or verified",
            archives_quarantined.clone(),
        );
        registry.register_with_unit("spool", "Bytes waiting in the spool", Unit::Bytes, spool_bytes.clone());
        registry.register_with_unit(
            "upload_duration",
            "Time to upload one archive",
            Unit::Seconds,
            upload_duration.clone(),
        );
        registry.register(
            "upload_errors",
            "Failed upload attempts, by kind",
            upload_errors.clone(),
        );
        registry.register("retries", "Retried operations", retries.clone());
        registry.register_with_unit(
            "checkpoint_lag",
            "Bytes between the checkpoint and the end of each watched file",
            Unit::Bytes,
            checkpoint_lag.clone(),
        );
        registry.register_with_unit(
            "last_upload_timestamp",
            "Unix time of the last successful upload",
            Unit::Seconds,
            last_upload.clone(),
        );
        registry.register(
            "config_reloads",
            "Configuration reloads, by result",
            config_reloads.clone(),
        );
        registry.register(
            "build",
            "Build information",
            Info::new(BuildLabels {
                version: env!("CARGO_PKG_VERSION"),
            }),
        );

        Metrics {
            inner: Arc::new(Inner {
                registry,
                records_in,
                records_out,
                bytes_in,
                bytes_out,
                scrubs,
                scrub_fallbacks,
                archives_sealed,
                archives_uploaded,
                archives_quarantined,
                spool_bytes,
                upload_duration,
                upload_errors,
                retries,
                checkpoint_lag,
                last_upload,
                config_reloads,
            }),
        }
    }

    /// The counters of one source, resolved once: for hot paths, where looking up the label
    /// set on every call would cost a hash and an allocation.
    pub fn source(&self, source: &str) -> SourceMetrics {
        let labels = source_labels(source);
        SourceMetrics {
            records_in: self.inner.records_in.get_or_create_owned(&labels),
            bytes_in: self.inner.bytes_in.get_or_create_owned(&labels),
            records_out: self.inner.records_out.get_or_create_owned(&labels),
            bytes_out: self.inner.bytes_out.get_or_create_owned(&labels),
            fallbacks: self.inner.scrub_fallbacks.get_or_create_owned(&labels),
        }
    }

    /// The counter of one scrub rule, resolved once (see [`Metrics::source`]).
    pub fn rule(&self, rule: &str) -> RuleMetrics {
        RuleMetrics {
            scrubs: self
                .inner
                .scrubs
                .get_or_create_owned(&RuleLabels { rule: rule.to_owned() }),
        }
    }

    /// `records` records of `bytes` bytes in total were read from `source`.
    pub fn records_in(&self, source: &str, records: u64, bytes: u64) {
        let labels = source_labels(source);
        self.inner.records_in.get_or_create(&labels).inc_by(records);
        self.inner.bytes_in.get_or_create(&labels).inc_by(bytes);
    }

    /// `records` scrubbed records of `bytes` bytes in total from `source` went into an archive.
    pub fn records_out(&self, source: &str, records: u64, bytes: u64) {
        let labels = source_labels(source);
        self.inner.records_out.get_or_create(&labels).inc_by(records);
        self.inner.bytes_out.get_or_create(&labels).inc_by(bytes);
    }

    /// Rule `rule` (its configured name, never the value it matched) fired `count` times.
    pub fn scrubbed(&self, rule: &str, count: u64) {
        self.inner
            .scrubs
            .get_or_create(&RuleLabels { rule: rule.to_owned() })
            .inc_by(count);
    }

    /// A record from `source` took the fail-closed path.
    pub fn scrub_fallback(&self, source: &str) {
        self.inner.scrub_fallbacks.get_or_create(&source_labels(source)).inc();
    }

    /// An archive was sealed into the spool.
    pub fn archive_sealed(&self) {
        self.inner.archives_sealed.inc();
    }

    /// An archive was uploaded after `duration`; also sets the last-upload time to now.
    pub fn archive_uploaded(&self, duration: Duration) {
        self.inner.archives_uploaded.inc();
        self.inner.upload_duration.observe(duration.as_secs_f64());
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        self.inner.last_upload.set(now.as_secs_f64());
    }

    /// An archive was quarantined.
    pub fn archive_quarantined(&self) {
        self.inner.archives_quarantined.inc();
    }

    /// The spool now holds `bytes` bytes.
    pub fn set_spool_bytes(&self, bytes: u64) {
        self.inner.spool_bytes.set(i64::try_from(bytes).unwrap_or(i64::MAX));
    }

    /// An upload attempt failed.
    pub fn upload_error(&self, kind: UploadErrorKind) {
        self.inner
            .upload_errors
            .get_or_create(&KindLabels { kind: kind.label() })
            .inc();
    }

    /// `operation` (a fixed name such as `"upload"`) is being retried.
    pub fn retry(&self, operation: &'static str) {
        self.inner.retries.get_or_create(&OperationLabels { operation }).inc();
    }

    /// The checkpoint of `file` (watched by `source`) is `lag` bytes behind the file's end.
    pub fn set_checkpoint_lag(&self, source: &str, file: &Path, lag: u64) {
        let labels = file_labels(source, file);
        self.inner
            .checkpoint_lag
            .get_or_create(&labels)
            .set(i64::try_from(lag).unwrap_or(i64::MAX));
    }

    /// `file` is no longer watched (rotated away and drained, or deleted): drop its series so the
    /// label set does not grow without bound.
    pub fn forget_file(&self, source: &str, file: &Path) {
        self.inner.checkpoint_lag.remove(&file_labels(source, file));
    }

    /// A configuration reload succeeded (`ok = true`) or was rejected.
    pub fn config_reload(&self, ok: bool) {
        let result = if ok { "ok" } else { "failed" };
        self.inner.config_reloads.get_or_create(&ResultLabels { result }).inc();
    }

    /// The metrics in the OpenMetrics text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an error here would be a bug in an encoder.
        if let Err(error) = prometheus_client::encoding::text::encode(&mut out, &self.inner.registry) {
            warn!(%error, "cannot encode metrics");
        }
        out
    }
}

/// The per-source counters, updating the same series as [`Metrics`]' methods. Cheap to clone.
#[derive(Clone, Debug)]
pub struct SourceMetrics {
    records_in: Counter,
    bytes_in: Counter,
    records_out: Counter,
    bytes_out: Counter,
    fallbacks: Counter,
}

impl SourceMetrics {
    /// `records` records of `bytes` bytes in total were read.
    pub fn records_in(&self, records: u64, bytes: u64) {
        self.records_in.inc_by(records);
        self.bytes_in.inc_by(bytes);
    }

    /// `records` scrubbed records of `bytes` bytes in total went into an archive.
    pub fn records_out(&self, records: u64, bytes: u64) {
        self.records_out.inc_by(records);
        self.bytes_out.inc_by(bytes);
    }

    /// A record took the fail-closed path.
    pub fn scrub_fallback(&self) {
        self.fallbacks.inc();
    }
}

/// One rule's counter, updating the same series as [`Metrics::scrubbed`]. Cheap to clone.
#[derive(Clone, Debug)]
pub struct RuleMetrics {
    scrubs: Counter,
}

impl RuleMetrics {
    /// The rule fired `count` times.
    pub fn scrubbed(&self, count: u64) {
        if count > 0 {
            self.scrubs.inc_by(count);
        }
    }
}

fn source_labels(source: &str) -> SourceLabels {
    SourceLabels {
        source: source.to_owned(),
    }
}

fn file_labels(source: &str, file: &Path) -> FileLabels {
    FileLabels {
        source: source.to_owned(),
        file: file.to_string_lossy().into_owned(),
    }
}

/// Whether the pipeline is healthy, as `/healthz` reports it.
///
/// Components report problems with a fixed component name and a fixed reason; the pipeline is
/// healthy when no component reports one. Both are `&'static str` on purpose: no runtime value
/// (and so no record content) can end up in the response.
#[derive(Clone, Debug, Default)]
pub struct Health {
    problems: Arc<Mutex<BTreeMap<&'static str, &'static str>>>,
}

impl Health {
    /// A healthy pipeline.
    pub fn new() -> Health {
        Health::default()
    }

    /// `component` is unhealthy because of `reason` (replaces its previous reason).
    pub fn set_unhealthy(&self, component: &'static str, reason: &'static str) {
        self.lock().insert(component, reason);
    }

    /// `component` is healthy again.
    pub fn set_healthy(&self, component: &'static str) {
        self.lock().remove(component);
    }

    /// `Ok` when healthy, otherwise the reasons, one `component: reason` per line.
    pub fn check(&self) -> Result<(), String> {
        let problems = self.lock();
        if problems.is_empty() {
            return Ok(());
        }
        Err(problems.iter().map(|(c, r)| format!("{c}: {r}\n")).collect())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, &'static str>> {
        // The map stays consistent whatever panicked while holding the lock.
        self.problems.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// An error of the metrics endpoint.
#[derive(Debug, thiserror::Error)]
pub enum MetricsError {
    /// The configured address is not `host:port`.
    #[error("invalid metrics address {addr:?}: {source}")]
    Address {
        addr: String,
        source: std::net::AddrParseError,
    },
    /// The address cannot be bound (in use, not local, no permission).
    #[error("cannot bind metrics endpoint {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
}

/// Parses `daemon.metrics_addr`: `None` when empty (the endpoint is disabled).
pub fn endpoint_addr(addr: &str) -> Result<Option<SocketAddr>, MetricsError> {
    let addr = addr.trim();
    if addr.is_empty() {
        return Ok(None);
    }
    addr.parse().map(Some).map_err(|source| MetricsError::Address {
        addr: addr.to_owned(),
        source,
    })
}

/// The `/metrics` and `/healthz` endpoint, bound but not yet serving.
///
/// Binding and serving are separate so that a caller (a test binding port 0) can learn the
/// address before the first request.
#[derive(Debug)]
pub struct MetricsServer {
    listener: TcpListener,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Binds `addr`; port 0 picks a free port (see [`MetricsServer::local_addr`]).
    pub async fn bind(addr: SocketAddr) -> Result<MetricsServer, MetricsError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| MetricsError::Bind { addr, source })?;
        let addr = listener
            .local_addr()
            .map_err(|source| MetricsError::Bind { addr, source })?;
        if !addr.ip().is_loopback() {
            warn!(%addr, "metrics endpoint is not on a loopback address");
        }
        Ok(MetricsServer { listener, addr })
    }

    /// The address actually bound.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Serves until `cancel` fires, then lets in-flight requests finish and returns.
    ///
    /// Accept errors (too many open files...) are logged and do not stop the server: the
    /// endpoint is for observing the daemon and must not take it down.
    pub async fn run(self, metrics: Metrics, health: Health, cancel: CancellationToken) {
        info!(addr = %self.addr, "serving /metrics and /healthz");
        let tracker = TaskTracker::new();
        loop {
            let accepted = tokio::select! {
                _ = cancel.cancelled() => break,
                accepted = self.listener.accept() => accepted,
            };
            let stream = match accepted {
                Ok((stream, _peer)) => stream,
                Err(error) => {
                    warn!(%error, "cannot accept a metrics connection");
                    // Back off so a persistent error (EMFILE) does not spin a core.
                    tokio::select! {
                        _ = cancel.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
                    }
                }
            };
            let metrics = metrics.clone();
            let health = health.clone();
            let cancel = cancel.clone();
            tracker.spawn(async move {
                let service = hyper::service::service_fn(move |req| {
                    let response = respond(&req, &metrics, &health);
                    async move { Ok::<_, Infallible>(response) }
                });
                let mut builder = hyper::server::conn::http1::Builder::new();
                builder
                    .timer(TokioTimer::new())
                    .header_read_timeout(HEADER_READ_TIMEOUT);
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                tokio::pin!(conn);
                let result = tokio::select! {
                    result = conn.as_mut() => result,
                    _ = cancel.cancelled() => {
                        conn.as_mut().graceful_shutdown();
                        conn.await
                    }
                };
                if let Err(error) = result {
                    debug!(%error, "metrics connection ended with an error");
                }
            });
        }
        tracker.close();
        tracker.wait().await;
        info!(addr = %self.addr, "metrics endpoint stopped");
    }
}

/// Binds `addr` and serves until `cancel` fires.
pub async fn serve(
    addr: SocketAddr,
    metrics: Metrics,
    health: Health,
    cancel: CancellationToken,
) -> Result<(), MetricsError> {
    MetricsServer::bind(addr).await?.run(metrics, health, cancel).await;
    Ok(())
}

fn respond(req: &Request<Incoming>, metrics: &Metrics, health: &Health) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n".into());
    }
    match req.uri().path() {
        "/metrics" => {
            let mut response = text(StatusCode::OK, metrics.encode());
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static(OPENMETRICS_CONTENT_TYPE));
            response
        }
        "/healthz" => match health.check() {
            Ok(()) => text(StatusCode::OK, "ok\n".into()),
            Err(reasons) => text(StatusCode::SERVICE_UNAVAILABLE, reasons),
        },
        _ => text(StatusCode::NOT_FOUND, "not found\n".into()),
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(addr: &str, expect: Result<Option<&str>, ()>) {
        let got = endpoint_addr(addr).map(|a| a.map(|a| a.to_string())).map_err(|_| ());
        assert_eq!(got, expect.map(|a| a.map(str::to_owned)), "address {addr:?}");
    }

    #[test]
    fn endpoint_addresses() {
        check("", Ok(None));
        check("  ", Ok(None));
        check("127.0.0.1:9779", Ok(Some("127.0.0.1:9779")));
        check("[::1]:9779", Ok(Some("[::1]:9779")));
        check("localhost:9779", Err(()));
        check("127.0.0.1", Err(()));
    }

    #[test]
    fn health_lists_reasons_and_recovers() {
        let health = Health::new();
        assert_eq!(health.check(), Ok(()));
        health.set_unhealthy("upload", "uploads failing permanently");
        health.set_unhealthy("watchdog", "a pipeline stage stalled");
        assert_eq!(
            health.check(),
            Err("upload: uploads failing permanently\nwatchdog: a pipeline stage stalled\n".into())
        );
        health.set_healthy("upload");
        health.set_healthy("watchdog");
        assert_eq!(health.check(), Ok(()));
    }

    #[test]
    fn resolved_handles_update_the_same_series() {
        let metrics = Metrics::new();
        let stripe = metrics.source("stripe");
        stripe.records_in(2, 20);
        metrics.records_in("stripe", 1, 5);
        stripe.scrub_fallback();
        metrics.rule("email").scrubbed(3);
        metrics.scrubbed("email", 1);
        let out = metrics.encode();
        for line in [
            r#"scrubd_input_records_total{source="stripe"} 3"#,
            r#"scrubd_input_bytes_total{source="stripe"} 25"#,
            r#"scrubd_scrub_fallbacks_total{source="stripe"} 1"#,
            r#"scrubd_scrubs_total{rule="email"} 4"#,
        ] {
            assert!(out.lines().any(|l| l == line), "{line} in\n{out}");
        }
    }

    #[test]
    fn forgotten_files_leave_the_output() {
        let metrics = Metrics::new();
        metrics.set_checkpoint_lag("stripe", Path::new("/var/log/a.log"), 7);
        assert!(metrics.encode().contains(r#"file="/var/log/a.log""#));
        metrics.forget_file("stripe", Path::new("/var/log/a.log"));
        assert!(!metrics.encode().contains("/var/log/a.log"));
    }
}
