//! The whole daemon, append → in the bucket (a local-directory bucket, so the network is not what
//! is measured), side by side with `zstd -3` on the same input in the same run.
//!
//! ```text
//! cargo bench --bench pipeline -- [CORPUS_FILE_OR_DIR] [--runs N]
//! ```
//! 1. Throughput: `scrubd run --once` over the corpus: wall time, CPU time (user + sys), MB/s per
//!    core (input bytes / CPU seconds) and peak RSS; then `zstd -3 -T1` over the same file. Five
//!    runs of each, alternated (`--runs N` to change): the median, the range, the highest RSS.
//! 2. Latency: `scrubd run` with `flush_interval = 1s`, records appended at a steady rate; for each
//!    appended batch, the time until an archive holding it is listed in the bucket.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scrubd::record::Format;

const MB: f64 = 1_000_000.0;

fn main() {
    let smoke = !std::env::args().any(|a| a == "--bench");
    let tmp = tempfile::tempdir().expect("temp dir");
    let logs = tmp.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let runs_at = args.iter().position(|a| a == "--runs");
    let runs: usize = match runs_at {
        Some(i) => args.get(i + 1).and_then(|n| n.parse().ok()).expect("--runs N"),
        None if smoke => 1,
        None => 5,
    };
    let positional = args
        .iter()
        .enumerate()
        .find(|&(i, a)| !a.starts_with('-') && runs_at.is_none_or(|r| i != r + 1))
        .map(|(_, a)| PathBuf::from(a));
    // The corpus: a file, or a directory of files (all watched by one source, each file's format
    // detected on its own); without one, a synthetic Django log.
    let mut corpus = Vec::new();
    match positional.or_else(|| std::env::var_os("SCRUBD_BENCH_CORPUS").map(PathBuf::from)) {
        Some(p) if p.is_dir() => {
            let mut files: Vec<PathBuf> = std::fs::read_dir(&p)
                .expect("read corpus directory")
                .map(|e| e.expect("corpus entry").path())
                .filter(|f| f.is_file())
                .collect();
            files.sort();
            for (i, f) in files.iter().enumerate() {
                let to = logs.join(format!("{i:03}.log"));
                std::fs::copy(f, &to).expect("copy corpus");
                corpus.push(to);
            }
        }
        Some(p) => {
            corpus.push(logs.join("app.log"));
            std::fs::copy(&p, &corpus[0]).expect("copy corpus");
        }
        None => {
            corpus.push(logs.join("app.log"));
            let size = if smoke { 2_000_000 } else { 120_000_000 };
            let mut f = std::io::BufWriter::new(std::fs::File::create(&corpus[0]).unwrap());
            scrubd::synth::write_corpus(Format::Django, size, 7, &mut f).unwrap();
            f.flush().unwrap();
        }
    }
    let bytes: u64 = corpus.iter().map(|f| std::fs::metadata(f).unwrap().len()).sum();
    println!("corpus: {:.1} MB in {} file(s)", bytes as f64 / MB, corpus.len());

    let config = write_config(tmp.path(), "60s");
    let scrubd = env!("CARGO_BIN_EXE_scrubd");
    // This machine's speed drifts from run to run: several runs, scrubd and zstd alternated, and
    // the median with the range.
    let (mut ours, mut zstd) = (Vec::new(), Vec::new());
    for _ in 0..runs {
        for dir in ["state", "bucket"] {
            let _ = std::fs::remove_dir_all(tmp.path().join(dir));
        }
        ours.push(measure(
            Command::new(scrubd)
                .arg("--config")
                .arg(&config)
                .args(["--log", "warn", "run", "--once"]),
        ));
        zstd.push(measure(
            Command::new("zstd").args(["-3", "-T1", "-q", "-c"]).args(&corpus),
        ));
    }
    println!(
        "\n| pipeline, median of {runs} runs (range) | wall s | CPU s | MB/s per core | peak RSS MiB |\n|---|---:|---:|---:|---:|"
    );
    for (name, mut m) in [
        ("scrubd run --once (split, scrub, compress, spool, upload, index)", ours),
        ("zstd -3 -T1 (baseline)", zstd),
    ] {
        m.sort_by_key(|m| m.cpu);
        let per_core = |m: &Measured| bytes as f64 / MB / m.cpu.as_secs_f64();
        let mid = &m[m.len() / 2];
        println!(
            "| {name} | {:.2} | {:.2} | {:.0} ({:.0}–{:.0}) | {:.1} |",
            mid.wall.as_secs_f64(),
            mid.cpu.as_secs_f64(),
            per_core(mid),
            per_core(&m[m.len() - 1]),
            per_core(&m[0]),
            m.iter().map(|m| m.max_rss_mib).fold(0.0, f64::max)
        );
    }
    let archived: u64 = walk(&tmp.path().join("bucket/archives"))
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    println!(
        "bucket: {:.1} MB of archives (ratio {:.2})",
        archived as f64 / MB,
        bytes as f64 / archived as f64
    );

    latency(tmp.path(), scrubd, if smoke { 3 } else { 30 });
}

fn write_config(dir: &Path, flush: &str) -> PathBuf {
    let path = dir.join(format!("scrubd-{flush}.toml"));
    std::fs::write(
        &path,
        format!(
            "host = \"bench\"\n[daemon]\nstate_dir = \"{d}/state\"\nflush_interval = \"{flush}\"\nidle_timeout = \"200ms\"\nmetrics_addr = \"\"\n\
             [[sources]]\nname = \"bench\"\npaths = [\"{d}/logs/*.log\"]\nformat = \"auto\"\npoll_interval = \"100ms\"\n\
             [store]\nkind = \"local\"\npath = \"{d}/bucket\"\n",
            d = dir.display()
        ),
    )
    .unwrap();
    path
}

struct Measured {
    wall: Duration,
    cpu: Duration,
    max_rss_mib: f64,
}

// The child is reaped with wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn measure(cmd: &mut Command) -> Measured {
    let start = Instant::now();
    let child = cmd.stdout(Stdio::null()).spawn().expect("spawn");
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: zeroed rusage is a valid out-parameter; `pid` is our child, reaped once here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid);
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "command failed: {cmd:?}"
    );
    let tv = |t: libc::timeval| Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64);
    Measured {
        wall: start.elapsed(),
        cpu: tv(usage.ru_utime) + tv(usage.ru_stime),
        max_rss_mib: usage.ru_maxrss as f64 / 1024.0,
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.extension().is_some_and(|x| x == "zst") {
            out.push(p);
        }
    }
    out
}

/// Appends a batch of synthetic records every 500 ms to a fresh file and measures, per batch, the
/// time until the bucket holds an archive covering the batch's end offset.
fn latency(root: &Path, scrubd: &str, batches: usize) {
    let dir = root.join("latency");
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let config = write_config(&dir, "1s");
    let mut child = Command::new(scrubd)
        .arg("--config")
        .arg(&config)
        .args(["--log", "warn", "run"])
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn scrubd run");
    let log = dir.join("logs/app.log");
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .unwrap();
    let batch = scrubd::synth::generate(Format::Django, 20, 3).bytes;
    let mut pending: Vec<(u64, Instant)> = Vec::new();
    let mut latencies = Vec::new();
    let mut end = 0u64;
    let deadline = Instant::now() + Duration::from_secs(120 + batches as u64);
    let mut next_append = Instant::now();
    let mut appended = 0;
    while (appended < batches || !pending.is_empty()) && Instant::now() < deadline {
        if appended < batches && Instant::now() >= next_append {
            file.write_all(&batch).unwrap();
            end += batch.len() as u64;
            pending.push((end, Instant::now()));
            appended += 1;
            next_append += Duration::from_millis(500);
        }
        let covered = covered_offset(&dir.join("bucket/manifests"));
        pending.retain(|(off, t)| {
            if *off <= covered {
                latencies.push(t.elapsed());
                false
            } else {
                true
            }
        });
        std::thread::sleep(Duration::from_millis(20));
    }
    // SAFETY: kill(2) on our own child.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let _ = child.wait();
    latencies.sort();
    let pct = |p: f64| latencies.get(((latencies.len() as f64 * p) as usize).min(latencies.len().saturating_sub(1)));
    println!(
        "\nappend → visible in the bucket (flush_interval 1s, a batch of 20 records every 500 ms, {} of {} batches seen): p50 {:?}, p95 {:?}, max {:?}",
        latencies.len(),
        batches,
        pct(0.5).copied().unwrap_or_default(),
        pct(0.95).copied().unwrap_or_default(),
        latencies.last().copied().unwrap_or_default()
    );
}

/// The highest source end offset of any uploaded manifest (one file in this benchmark).
fn covered_offset(manifests: &Path) -> u64 {
    let mut best = 0;
    let mut stack = vec![manifests.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else { continue };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "json")
                && !p.to_string_lossy().ends_with(".meta.json")
                && let Ok(m) = serde_json::from_slice::<scrubd::archive::manifest::Manifest>(
                    &std::fs::read(&p).unwrap_or_default(),
                )
            {
                best = best.max(m.end_offset);
            }
        }
    }
    best
}
