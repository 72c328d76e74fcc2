//! The `/metrics` and `/healthz` endpoint, served on 127.0.0.1:0 and scraped with a plain TCP
//! client speaking HTTP/1.1.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use scrubd::metrics::{Health, Metrics, MetricsServer, OPENMETRICS_CONTENT_TYPE, UploadErrorKind};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

/// A response: status code, the lowercased header block, and the body.
struct Reply {
    status: u16,
    headers: String,
    body: String,
}

async fn get(addr: SocketAddr, method: &str, path: &str) -> Reply {
    let mut stream = TcpStream::connect(addr).await.expect("connect to the metrics endpoint");
    let request = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).await.expect("send request");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(30), stream.read_to_end(&mut raw))
        .await
        .expect("response within 30 s")
        .expect("read response");
    let raw = String::from_utf8(raw).expect("utf-8 response");
    let (head, body) = raw.split_once("\r\n\r\n").expect("header/body separator");
    let (status_line, headers) = head.split_once("\r\n").unwrap_or((head, ""));
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    Reply {
        status,
        headers: headers.to_ascii_lowercase(),
        body: body.to_owned(),
    }
}

/// Starts the server on a free loopback port.
async fn start(metrics: &Metrics, health: &Health) -> (SocketAddr, CancellationToken, tokio::task::JoinHandle<()>) {
    let server = MetricsServer::bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    let addr = server.local_addr();
    assert_ne!(addr.port(), 0);
    let cancel = CancellationToken::new();
    let task = tokio::spawn(server.run(metrics.clone(), health.clone(), cancel.clone()));
    (addr, cancel, task)
}

/// The value of the sample whose line starts with `series ` (name and labels exactly).
fn sample(body: &str, series: &str) -> Option<f64> {
    body.lines()
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.split(' ').next()?.parse().ok())
}

#[tokio::test]
async fn scrape_shows_what_was_counted() {
    let metrics = Metrics::new();
    let health = Health::new();
    let (addr, cancel, task) = start(&metrics, &health).await;

    metrics.records_in("stripe", 3, 300);
    metrics.records_in("stripe", 2, 200);
    metrics.records_in("github", 1, 10);
    metrics.records_out("stripe", 5, 480);
    metrics.scrubbed("email", 4);
    metrics.scrubbed("card_number", 1);
    metrics.scrub_fallback("stripe");
    metrics.archive_sealed();
    metrics.archive_sealed();
    metrics.archive_uploaded(Duration::from_millis(250));
    metrics.archive_quarantined();
    metrics.set_spool_bytes(12_345);
    metrics.upload_error(UploadErrorKind::Transient);
    metrics.upload_error(UploadErrorKind::Transient);
    metrics.upload_error(UploadErrorKind::Permanent);
    metrics.retry("upload");
    metrics.set_checkpoint_lag("stripe", Path::new("/var/log/webhooks/stripe \"a\".log"), 4096);
    metrics.config_reload(true);
    metrics.config_reload(false);
    metrics.config_reload(false);

    let reply = get(addr, "GET", "/metrics").await;
    assert_eq!(reply.status, 200);
    assert!(
        reply
            .headers
            .contains(&format!("content-type: {OPENMETRICS_CONTENT_TYPE}")),
        "{}",
        reply.headers
    );
    let body = &reply.body;
    let expect = [
        (r#"scrubd_input_records_total{source="stripe"}"#, 5.0),
        (r#"scrubd_input_records_total{source="github"}"#, 1.0),
        (r#"scrubd_input_bytes_total{source="stripe"}"#, 500.0),
        (r#"scrubd_output_records_total{source="stripe"}"#, 5.0),
        (r#"scrubd_output_bytes_total{source="stripe"}"#, 480.0),
        (r#"scrubd_scrubs_total{rule="email"}"#, 4.0),
        (r#"scrubd_scrubs_total{rule="card_number"}"#, 1.0),
        (r#"scrubd_scrub_fallbacks_total{source="stripe"}"#, 1.0),
        ("scrubd_archives_sealed_total", 2.0),
        ("scrubd_archives_uploaded_total", 1.0),
        ("scrubd_archives_quarantined_total", 1.0),
        ("scrubd_spool_bytes", 12_345.0),
        ("scrubd_upload_duration_seconds_count", 1.0),
        ("scrubd_upload_duration_seconds_sum", 0.25),
        (r#"scrubd_upload_duration_seconds_bucket{le="0.32"}"#, 1.0),
        (r#"scrubd_upload_duration_seconds_bucket{le="0.16"}"#, 0.0),
        (r#"scrubd_upload_errors_total{kind="transient"}"#, 2.0),
        (r#"scrubd_upload_errors_total{kind="permanent"}"#, 1.0),
        (r#"scrubd_retries_total{operation="upload"}"#, 1.0),
        (
            r#"scrubd_checkpoint_lag_bytes{source="stripe",file="/var/log/webhooks/stripe \"a\".log"}"#,
            4096.0,
        ),
        (r#"scrubd_config_reloads_total{result="ok"}"#, 1.0),
        (r#"scrubd_config_reloads_total{result="failed"}"#, 2.0),
        (
            &format!(r#"scrubd_build_info{{version="{}"}}"#, env!("CARGO_PKG_VERSION")),
            1.0,
        ),
    ];
    for (series, value) in expect {
        assert_eq!(sample(body, series), Some(value), "series {series} in:\n{body}");
    }
    let last_upload = sample(body, "scrubd_last_upload_timestamp_seconds").expect("last upload time");
    assert!(last_upload > 1.6e9, "a unix time in seconds, got {last_upload}");
    assert!(body.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");

    cancel.cancel();
    task.await.expect("server task");
}

#[tokio::test]
async fn healthz_flips_to_503_and_back() {
    let metrics = Metrics::new();
    let health = Health::new();
    let (addr, cancel, task) = start(&metrics, &health).await;

    let reply = get(addr, "GET", "/healthz").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));

    health.set_unhealthy("upload", "uploads failing permanently");
    let reply = get(addr, "GET", "/healthz").await;
    assert_eq!(reply.status, 503);
    assert_eq!(reply.body, "upload: uploads failing permanently\n");

    health.set_healthy("upload");
    let reply = get(addr, "GET", "/healthz").await;
    assert_eq!((reply.status, reply.body.as_str()), (200, "ok\n"));

    cancel.cancel();
    task.await.expect("server task");
}

#[tokio::test]
async fn other_paths_and_methods_are_refused() {
    let (metrics, health) = (Metrics::new(), Health::new());
    let (addr, cancel, task) = start(&metrics, &health).await;
    assert_eq!(get(addr, "GET", "/").await.status, 404);
    assert_eq!(get(addr, "GET", "/metrics/x").await.status, 404);
    assert_eq!(get(addr, "POST", "/metrics").await.status, 405);
    assert_eq!(get(addr, "HEAD", "/healthz").await.status, 200);
    cancel.cancel();
    task.await.expect("server task");
}

#[tokio::test]
async fn cancel_stops_the_server_and_frees_the_port() {
    let (metrics, health) = (Metrics::new(), Health::new());
    let (addr, cancel, task) = start(&metrics, &health).await;
    // A client that connected but never sent a request must not keep the server alive.
    let idle = TcpStream::connect(addr).await.expect("connect");
    assert_eq!(get(addr, "GET", "/healthz").await.status, 200);
    cancel.cancel();
    tokio::time::timeout(Duration::from_secs(30), task)
        .await
        .expect("server stops after cancel")
        .expect("server task");
    drop(idle);
    // The listener is closed: binding the same port works again.
    MetricsServer::bind(addr).await.expect("port is free after shutdown");
}
