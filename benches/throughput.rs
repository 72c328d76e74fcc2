//! Scrub throughput and memory, side by side with `zstd -3` on the same input, in the same run.
//!
//! ```text
//! cargo bench --bench throughput -- [CORPUS]
//! ```
//! CORPUS is a log file (or a directory of them); build a ≥100 MB one from your own logs with
//! `scripts/make-corpus.sh`, or let the bench generate a synthetic one (`scrubd synth`). It reports:
//! - split + scrub on one core, in process (MB/s), and zstd level 3 on one core over the same bytes;
//! - the `scrubd scrub` binary on the corpus: wall time and peak RSS, beside the `zstd -3` CLI;
//! - `scrubd scrub` on a single 1 GiB line fed through a pipe: peak RSS (memory must stay bounded).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use scrubd::record::{Format, Splitter};
use scrubd::scrub::{Scrubber, SourceState};

const MB: f64 = 1_000_000.0;

fn main() {
    // `cargo test --all-targets` runs benches without `--bench`: then only a small smoke run.
    let smoke = !std::env::args().any(|a| a == "--bench");
    let arg = std::env::args().skip(1).find(|a| !a.starts_with('-'));
    let (corpus, _tmp) = match arg.or_else(|| std::env::var("SCRUBD_BENCH_CORPUS").ok()) {
        Some(p) => (PathBuf::from(p), None),
        None => {
            let tmp = tempfile::tempdir().expect("temp dir");
            let path = tmp.path().join("synthetic.log");
            let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create corpus"));
            let size = if smoke { 1_000_000 } else { 120_000_000 };
            scrubd::synth::write_corpus(Format::Django, size, 42, &mut f).expect("write corpus");
            f.flush().expect("flush corpus");
            eprintln!(
                "no corpus given: generated {} MB of synthetic Django logs",
                size / 1_000_000
            );
            (path, Some(tmp))
        }
    };
    let files = corpus_files(&corpus);
    // The binaries first, while this process is small: a child's peak RSS (ru_maxrss) includes
    // the parent's pages at spawn time.
    let total_files: u64 = files
        .iter()
        .map(|f| std::fs::metadata(f).map(|m| m.len()).unwrap_or(0))
        .sum();
    let total = total_files as usize;
    // The binaries, for peak memory.
    let scrubd = env!("CARGO_BIN_EXE_scrubd");
    println!("\n| binary on the corpus | wall s | MB/s | peak RSS MiB |\n|---|---:|---:|---:|");
    let mut args = vec!["scrub".to_string()];
    args.extend(files.iter().map(|f| f.display().to_string()));
    let (wall, rss) = run_measured(scrubd, &args, None);
    println!(
        "| scrubd scrub | {:.2} | {:.0} | {:.1} |",
        wall.as_secs_f64(),
        rate(total, wall),
        rss
    );
    let mut zargs = vec!["-3".to_string(), "-c".to_string(), "-q".to_string(), "-T1".to_string()];
    zargs.extend(files.iter().map(|f| f.display().to_string()));
    match which("zstd") {
        Some(z) => {
            let (wall, rss) = run_measured(&z, &zargs, None);
            println!(
                "| zstd -3 -T1 | {:.2} | {:.0} | {:.1} |",
                wall.as_secs_f64(),
                rate(total, wall),
                rss
            );
        }
        None => println!("| zstd -3 | (zstd CLI not installed) | | |"),
    }

    // One 1 GiB line, streamed through a pipe.
    let line = if smoke { 8 << 20 } else { 1 << 30 };
    let (wall, rss) = run_measured(scrubd, &["scrub".to_string()], Some(line));
    println!(
        "| scrubd scrub, one {} MiB line on stdin | {:.2} | {:.0} | {:.1} |",
        line >> 20,
        wall.as_secs_f64(),
        rate(line, wall),
        rss
    );
    let data: Vec<Vec<u8>> = files
        .iter()
        .map(|f| std::fs::read(f).expect("read corpus file"))
        .collect();
    println!(
        "corpus: {} ({} files, {:.1} MB)",
        corpus.display(),
        files.len(),
        total as f64 / MB
    );

    // In process, one core.
    let scrubber = Scrubber::builtin();
    let rounds = if smoke { 1 } else { 3 };
    let (t_scrub, out_bytes, records) = best_of(rounds, || {
        let mut out = 0usize;
        let mut n = 0usize;
        for d in &data {
            let mut splitter = Splitter::new(Format::Auto, 4 << 20, 0);
            let mut state = SourceState::default();
            let mut recs = Vec::new();
            for chunk in d.chunks(256 * 1024) {
                splitter.push(chunk, &mut recs);
                for r in recs.drain(..) {
                    out += scrubber.scrub(&r, "bench", &mut state).bytes.len();
                    n += 1;
                }
            }
            splitter.finish(&mut recs);
            for r in recs.drain(..) {
                out += scrubber.scrub(&r, "bench", &mut state).bytes.len();
                n += 1;
            }
        }
        (out, n)
    });
    let (t_zstd, compressed, _) = best_of(rounds, || {
        let n: usize = data
            .iter()
            .map(|d| zstd::bulk::compress(d, 3).expect("zstd").len())
            .sum();
        (n, 0)
    });
    println!("\n| in process, one core | MB/s | notes |\n|---|---:|---|");
    println!(
        "| split + scrub (default rules) | {:.0} | {records} records, output {:.1} MB |",
        rate(total, t_scrub),
        out_bytes as f64 / MB
    );
    println!(
        "| zstd level 3 (baseline) | {:.0} | ratio {:.2} |",
        rate(total, t_zstd),
        total as f64 / compressed as f64
    );
    archives(&scrubber, &data, rounds);
}

fn corpus_files(path: &Path) -> Vec<PathBuf> {
    if path.is_dir() {
        let mut v: Vec<PathBuf> = std::fs::read_dir(path)
            .expect("read corpus dir")
            .map(|e| e.expect("dir entry").path())
            .filter(|p| p.is_file())
            .collect();
        v.sort();
        v
    } else {
        vec![path.to_owned()]
    }
}

fn rate(bytes: usize, t: Duration) -> f64 {
    bytes as f64 / MB / t.as_secs_f64()
}

fn best_of(n: usize, mut f: impl FnMut() -> (usize, usize)) -> (Duration, usize, usize) {
    let mut best = Duration::MAX;
    let mut last = (0, 0);
    for _ in 0..n {
        let t = Instant::now();
        last = f();
        best = best.min(t.elapsed());
    }
    (best, last.0, last.1)
}

fn which(name: &str) -> Option<String> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
        .map(|p| p.display().to_string())
}

/// Runs a command with stdout discarded; if `stdin_line_bytes` is set, feeds it one line of that
/// many bytes (webhook-like JSON fragments, no newline). Returns wall time and the child's peak RSS.
// The child is reaped with wait4 (for its rusage), which clippy cannot see.
#[allow(clippy::zombie_processes)]
fn run_measured(program: &str, args: &[String], stdin_line_bytes: Option<usize>) -> (Duration, f64) {
    let start = Instant::now();
    let mut child = Command::new(program)
        .args(args)
        .stdin(if stdin_line_bytes.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    if let Some(total) = stdin_line_bytes {
        let mut stdin = child.stdin.take().expect("stdin");
        let piece = br#"{"customer_email": "pat.doe@example.com", "client_ip": "198.51.100.7", "amount": 2500, "note": "lorem ipsum dolor sit amet"}, "#;
        let block: Vec<u8> = piece.iter().copied().cycle().take(1 << 20).collect();
        let mut sent = 0;
        while sent < total {
            let n = block.len().min(total - sent);
            stdin.write_all(&block[..n]).expect("feed stdin");
            sent += n;
        }
    }
    let pid = child.id() as libc::pid_t;
    let mut status = 0;
    // SAFETY: a zeroed rusage is a valid out-parameter; pid is our own child, reaped exactly once here.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let rc = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(rc, pid, "wait4 failed");
    assert!(
        libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0,
        "{program} failed: status {status}"
    );
    (start.elapsed(), usage.ru_maxrss as f64 / 1024.0)
}

/// The archive format on the scrubbed corpus (what the daemon ships), in process on one core:
/// the archive writer with its default settings (zstd -3 in 256 KiB frames, seek table, sha256,
/// per-record manifest entries; a new archive every 64 MiB) beside plain zstd -3 in one frame and
/// gzip -6 over the same scrubbed bytes.
fn archives(scrubber: &Scrubber, data: &[Vec<u8>], rounds: usize) {
    use scrubd::archive::{ArchiveBuilder, ArchiveConfig, ArchiveIdentity, RecordMeta};
    // Per file, as the daemon archives them.
    let files: Vec<Vec<(RecordMeta, scrubd::scrub::Scrubbed)>> = data
        .iter()
        .map(|d| {
            let mut splitter = Splitter::new(Format::Auto, 4 << 20, 0);
            let mut state = SourceState::default();
            let mut recs = Vec::new();
            splitter.push(d, &mut recs);
            splitter.finish(&mut recs);
            recs.iter()
                .map(|r| (RecordMeta::of(r), scrubber.scrub(r, "bench", &mut state)))
                .collect()
        })
        .collect();
    let content: Vec<u8> = files
        .iter()
        .flatten()
        .flat_map(|(_, s)| s.bytes.iter().copied())
        .collect();
    let n = content.len();
    let records: usize = files.iter().map(Vec::len).sum();
    let cfg = ArchiveConfig::default();
    let (t_archive, archived, objects) = best_of(rounds, || {
        let (mut bytes, mut objects) = (0, 0);
        for (i, file) in files.iter().enumerate() {
            let id = ArchiveIdentity {
                host: "bench".into(),
                source: "bench".into(),
                file_id: format!("f{i}"),
                ruleset_version: scrubber.ruleset_version().into(),
                ruleset_digest: scrubber.ruleset_digest().into(),
                fallback_time_ms: 1_700_000_000_000,
            };
            let new = || ArchiveBuilder::new(id.clone(), &cfg).expect("archive builder");
            let mut b = new();
            for (meta, s) in file {
                b.push(*meta, s).expect("push");
                if b.decompressed_len() >= cfg.max_archive_bytes.as_u64() {
                    bytes += std::mem::replace(&mut b, new()).finish(0).expect("finish").1.len();
                    objects += 1;
                }
            }
            if !b.is_empty() {
                bytes += b.finish(0).expect("finish").1.len();
                objects += 1;
            }
        }
        (bytes, objects)
    });
    let (t_zstd, zstd_bytes, _) = best_of(rounds, || (zstd::bulk::compress(&content, 3).expect("zstd").len(), 0));
    let (t_gzip, gzip_bytes, _) = best_of(rounds, || {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&content).expect("gzip");
        (e.finish().expect("gzip").len(), 0)
    });
    println!(
        "\n| the scrubbed corpus ({:.1} MB, {} records), one core | ratio | MB/s |\n|---|---:|---:|",
        n as f64 / MB,
        records
    );
    println!(
        "| archive writer: zstd -3, 256 KiB frames + seek table + manifest ({objects} archives) | {:.2} | {:.0} |",
        n as f64 / archived as f64,
        rate(n, t_archive)
    );
    println!(
        "| plain zstd -3, one frame | {:.2} | {:.0} |",
        n as f64 / zstd_bytes as f64,
        rate(n, t_zstd)
    );
    println!(
        "| gzip -6 (flate2) | {:.2} | {:.0} |",
        n as f64 / gzip_bytes as f64,
        rate(n, t_gzip)
    );
}
