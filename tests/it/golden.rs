//! Golden tests: `scrubd scrub` on one synthetic log per format.
//!
//! For each `fixtures/golden/NAME.{log,jsonl}`:
//! - the output equals `NAME.scrubbed` (regenerate with `UPDATE_GOLDEN=1 cargo test --test it golden`,
//!   then review the diff: it is the spec of what the default rules do);
//! - no line of `NAME.sensitive` survives anywhere in the output;
//! - every line of `NAME.keep` survives byte for byte;
//! - the layout survives: same number of lines, and `--stats` reports counts without values.

use std::path::{Path, PathBuf};
use std::process::Command;

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/golden")
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
        .lines()
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

fn scrub(input: &Path, extra: &[&str]) -> (Vec<u8>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_scrubd"))
        .arg("scrub")
        .args(extra)
        .arg(input)
        .output()
        .expect("run scrubd");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "scrubd scrub {} failed: {stderr}",
        input.display()
    );
    (out.stdout, stderr)
}

fn check(name: &str) {
    let dir = fixtures();
    let input = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_stem().is_some_and(|s| s == name)
                && matches!(p.extension().and_then(|e| e.to_str()), Some("log" | "jsonl"))
        })
        .unwrap_or_else(|| panic!("no input fixture for {name}"));
    let raw = std::fs::read(&input).unwrap();
    let (output, stderr) = scrub(&input, &["--stats"]);
    let text = String::from_utf8_lossy(&output);

    for secret in lines(&dir.join(format!("{name}.sensitive"))) {
        assert!(
            !text.contains(&secret),
            "{name}: sensitive value survived: {secret:?}\n---\n{text}"
        );
        assert!(
            !stderr.contains(&secret),
            "{name}: sensitive value in scrubd's stderr: {secret:?}"
        );
    }
    for keep in lines(&dir.join(format!("{name}.keep"))) {
        assert!(
            text.contains(&keep),
            "{name}: value that must survive is gone: {keep:?}\n---\n{text}"
        );
    }
    assert_eq!(
        raw.iter().filter(|&&b| b == b'\n').count(),
        output.iter().filter(|&&b| b == b'\n').count(),
        "{name}: line layout changed"
    );

    let golden = dir.join(format!("{name}.scrubbed"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&golden, &output).unwrap();
    }
    let expected = std::fs::read(&golden)
        .unwrap_or_else(|e| panic!("cannot read {} ({e}); create it with UPDATE_GOLDEN=1", golden.display()));
    assert!(
        expected == output,
        "{name}: output differs from {}\n---\n{text}",
        golden.display()
    );
}

#[test]
fn django() {
    check("django");
}

#[test]
fn django_timestamp_first_with_traceback() {
    check("django_ts_first");
}

#[test]
fn req_concatenated() {
    check("req");
}

#[test]
fn json_lines() {
    check("events");
}

#[test]
fn json_document_with_text() {
    check("document");
}

#[test]
fn syslog() {
    check("syslog");
}

#[test]
fn access_log() {
    check("access");
}

#[test]
fn text_with_traceback() {
    check("traceback");
}

/// Reading stdin gives the same bytes as reading the file.
#[test]
fn stdin_equals_file() {
    let input = fixtures().join("req.log");
    let (from_file, _) = scrub(&input, &[]);
    let out = Command::new(env!("CARGO_BIN_EXE_scrubd"))
        .arg("scrub")
        .stdin(std::fs::File::open(&input).unwrap())
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(out.stdout, from_file);
}
