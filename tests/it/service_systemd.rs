//! The systemd unit: scripts/check-systemd.sh passes on it (real `systemd-analyze verify` and
//! `systemd-analyze security`), fails on a weakened or broken copy, and the unit carries the
//! directives the daemon relies on.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn shipped_unit() -> String {
    std::fs::read_to_string(repo().join("systemd/scrubd.service")).expect("read systemd/scrubd.service")
}

/// Runs the check script on `unit` against the binary cargo built for these tests.
fn run_check(unit: &Path) -> Output {
    Command::new(repo().join("scripts/check-systemd.sh"))
        .env("SCRUBD_UNIT", unit)
        .env("SCRUBD_BIN", env!("CARGO_BIN_EXE_scrubd"))
        .output()
        .expect("run scripts/check-systemd.sh")
}

fn text(out: &Output) -> String {
    format!(
        "stdout:\n{}\nstderr:\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Writes `contents` as `scrubd.service` in a fresh temp dir.
fn unit_file(contents: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("scrubd.service");
    std::fs::write(&path, contents).expect("write unit");
    (dir, path)
}

#[test]
fn shipped_unit_passes_verify_and_security() {
    let out = run_check(&repo().join("systemd/scrubd.service"));
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let score: f64 = stdout
        .lines()
        .find_map(|l| l.strip_prefix("check-systemd: exposure "))
        .and_then(|l| l.split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no exposure score printed\n{}", text(&out)));
    assert!(score <= 2.0, "exposure {score}");
}

#[test]
fn weakened_unit_fails_security() {
    // Keep only the [Unit] and the directives needed to start: no sandboxing at all.
    let weak = "[Unit]\nDescription=scrubd\n\n[Service]\nType=notify\n\
                ExecStart=/usr/local/bin/scrubd run --config /etc/scrubd/scrubd.toml\n";
    let (_dir, path) = unit_file(weak);
    let out = run_check(&path);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("is above 2.0"),
        "{}",
        text(&out)
    );
}

#[test]
fn unknown_directive_fails_verify() {
    let broken = shipped_unit().replace("[Service]\n", "[Service]\nProtectEverything=yes\n");
    let (_dir, path) = unit_file(&broken);
    let out = run_check(&path);
    assert!(!out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("verify failed"),
        "{}",
        text(&out)
    );
}

/// The value of `key=` in the unit; `None` when absent. Repeated keys are joined with `|`.
fn directive(unit: &str, key: &str) -> Option<String> {
    let values: Vec<&str> = unit
        .lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .collect();
    (!values.is_empty()).then(|| values.join("|"))
}

fn check(key: &str, expect: &str) {
    let unit = shipped_unit();
    assert_eq!(
        directive(&unit, key).as_deref(),
        Some(expect),
        "{key}= in systemd/scrubd.service"
    );
}

#[test]
fn unit_has_what_the_daemon_relies_on() {
    check("Type", "notify");
    check("NotifyAccess", "main");
    check(
        "ExecStart",
        "/usr/local/bin/scrubd run --config /etc/scrubd/scrubd.toml",
    );
    check("ExecReload", "/bin/kill -HUP $MAINPID");
    check("Restart", "on-failure");
    check("StateDirectory", "scrubd");
    check(
        "LoadCredential",
        "s3-secret-access-key:/etc/scrubd/credentials/s3-secret-access-key|pseudonym-key:/etc/scrubd/credentials/pseudonym-key",
    );
    check("ProtectSystem", "strict");
    check("CapabilityBoundingSet", "");
    check("RestrictAddressFamilies", "AF_UNIX AF_INET AF_INET6");
}

fn duration(unit: &str, key: &str) -> Duration {
    let value = directive(unit, key).unwrap_or_else(|| panic!("{key}= missing"));
    humantime::parse_duration(&value).unwrap_or_else(|e| panic!("{key}={value}: {e}"))
}

#[test]
fn stop_timeout_exceeds_the_default_shutdown_grace() {
    let unit = shipped_unit();
    let grace = scrubd::config::DaemonConfig::default().shutdown_grace;
    let stop = duration(&unit, "TimeoutStopSec");
    assert!(
        stop > grace,
        "TimeoutStopSec={stop:?} must exceed the shutdown grace {grace:?}"
    );
    // Without systemd's watchdog the daemon still detects stalls, with the same timing.
    let watchdog = duration(&unit, "WatchdogSec");
    assert_eq!(
        watchdog,
        scrubd::notify::WatchdogTiming::DEFAULT.timeout,
        "WatchdogSec="
    );
}
