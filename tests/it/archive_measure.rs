//! Measures the archive writer on a synthetic scrubbed Stripe-webhook corpus, side by side with
//! plain zstd -3 and gzip of the same bytes, and whether a trained zstd dictionary pays.
//!
//! Run with `cargo test --test it archive_measure -- --nocapture` to see the table. Throughput is
//! printed, never asserted; the assertions are on sizes (the seekable format must stay close to
//! plain zstd, everything must round-trip).
//!
//! One run (2026-11-23, 2 busy cores, dev profile with libzstd at -O3; 34 MiB, 14 000 records of
//! ~2.5 KiB): archive writer 16 KiB frames 6.47x, 64 KiB 9.00x, 256 KiB (default) 9.82x, 1 MiB
//! 9.88x; plain zstd -3 one frame 9.74x; gzip -6 9.65x (flate2) / 9.29x (CLI). Writer ~90-160
//! MB/s, zstd -3 ~90 MB/s, gzip CLI ~22 MB/s on that loaded machine. A 112 KiB trained dictionary:
//! one record per frame 2.61x → 8.97x, 16 KiB 6.50x → 9.69x, 64 KiB 9.01x → 10.04x, 256 KiB
//! 9.82x → 10.06x (+2.4%). At the default frame size it does not pay for what it costs (plain
//! `zstd -d` would need `-D dict`, and the dictionary would have to be versioned in the bucket), so
//! the writer uses none.

use std::io::Write;
use std::time::Instant;

use crate::archive_support::*;
use scrubd::archive::{ArchiveBuilder, verify_archive};

const CORPUS_BYTES: usize = 32 << 20;

struct Row {
    name: String,
    compressed: usize,
    secs: f64,
}

fn row(name: impl Into<String>, input: usize, compressed: usize, secs: f64) -> Row {
    let r = Row {
        name: name.into(),
        compressed,
        secs,
    };
    println!(
        "{:<46} {:>12} {:>8.2}x {:>9.1} MB/s",
        r.name,
        r.compressed,
        input as f64 / r.compressed as f64,
        input as f64 / 1e6 / r.secs
    );
    r
}

fn time<T>(f: impl FnOnce() -> T) -> (T, f64) {
    let t = Instant::now();
    let v = f();
    (v, t.elapsed().as_secs_f64())
}

/// Compresses `records` in frames of at most `frame_bytes` (whole records), each frame alone,
/// optionally with a dictionary; returns the total compressed size.
fn framed(records: &[&[u8]], frame_bytes: usize, dict: Option<&[u8]>) -> usize {
    let mut c = match dict {
        Some(d) => zstd::bulk::Compressor::with_dictionary(3, d).unwrap(),
        None => zstd::bulk::Compressor::new(3).unwrap(),
    };
    let (mut total, mut frame) = (0, Vec::new());
    for r in records {
        if !frame.is_empty() && frame.len() + r.len() > frame_bytes {
            total += c.compress(&frame).unwrap().len();
            frame.clear();
        }
        frame.extend_from_slice(r);
    }
    if !frame.is_empty() {
        total += c.compress(&frame).unwrap().len();
    }
    total
}

#[test]
fn compression_ratio_and_throughput() {
    let mut records = Vec::new();
    let mut size = 0;
    let (mut seed, mut offset) = (100, 0);
    while size < CORPUS_BYTES {
        for r in corpus(seed, 1000, offset, 1_795_449_196) {
            size += r.1.bytes.len();
            offset = r.0.offset + r.0.source_len;
            records.push(r);
        }
        seed += 1;
    }
    let content: Vec<u8> = records.iter().flat_map(|(_, s)| s.bytes.iter().copied()).collect();
    let n = content.len();
    println!(
        "\ncorpus: {} scrubbed Stripe-like records, {} bytes ({} bytes/record on average)",
        records.len(),
        n,
        n / records.len()
    );
    println!("{:<46} {:>12} {:>9} {:>14}", "method", "bytes", "ratio", "throughput");

    // The archive writer: frames, per-record entries, seek table, sha256.
    let mut ours = Vec::new();
    for frame_kib in [16u64, 64, 256, 1024] {
        let mut cfg = config(frame_kib * 1024);
        cfg.max_archive_bytes = bytesize::ByteSize::gib(1);
        let ((manifest, object), secs) = time(|| {
            let mut b = ArchiveBuilder::new(identity("h", "f"), &cfg).unwrap();
            for (meta, s) in &records {
                b.push(*meta, s).unwrap();
            }
            b.finish(0).unwrap()
        });
        verify_archive(&object, &manifest).unwrap();
        assert_eq!(manifest.decompressed_bytes as usize, n);
        assert_eq!(zstd::stream::decode_all(&object[..]).unwrap(), content);
        ours.push((
            frame_kib,
            row(
                format!("archive writer, zstd -3, {frame_kib} KiB frames"),
                n,
                object.len(),
                secs,
            ),
        ));
    }

    // Plain zstd -3, one frame, in process and through the CLI.
    let (plain, secs) = time(|| zstd::bulk::compress(&content, 3).unwrap());
    let plain = row("plain zstd -3 (libzstd, one frame)", n, plain.len(), secs);
    let tmp = tempfile::tempdir().unwrap();
    let input = tmp.path().join("corpus");
    std::fs::write(&input, &content).unwrap();
    let (out, secs) = time(|| {
        std::process::Command::new("/usr/bin/zstd")
            .args(["-3", "-q", "-c"])
            .arg(&input)
            .output()
            .unwrap()
    });
    assert!(out.status.success());
    row("plain zstd -3 (/usr/bin/zstd CLI)", n, out.stdout.len(), secs);

    // gzip -6 (flate2, and the CLI for a throughput not skewed by a debug build).
    let (gz, secs) = time(|| {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(6));
        e.write_all(&content).unwrap();
        e.finish().unwrap()
    });
    row("gzip -6 (flate2)", n, gz.len(), secs);
    let (out, secs) = time(|| {
        std::process::Command::new("gzip")
            .args(["-6", "-c"])
            .arg(&input)
            .output()
            .unwrap()
    });
    assert!(out.status.success());
    row("gzip -6 (gzip CLI)", n, out.stdout.len(), secs);

    // Dictionary: trained on other records of the same shape (a different seed), 112 KiB.
    let training: Vec<Vec<u8>> = corpus(7, 4000, 0, 1_795_449_196)
        .into_iter()
        .map(|(_, s)| s.bytes)
        .collect();
    let (dict, secs) = time(|| zstd::dict::from_samples(&training, 112 * 1024).unwrap());
    println!(
        "dictionary: {} bytes, trained in {secs:.2} s on {} records",
        dict.len(),
        training.len()
    );
    let slices: Vec<&[u8]> = records.iter().map(|(_, s)| s.bytes.as_slice()).collect();
    for frame_bytes in [1usize, 16 << 10, 64 << 10, 256 << 10] {
        let label = if frame_bytes == 1 {
            "one record per frame".to_string()
        } else {
            format!("{} KiB frames", frame_bytes >> 10)
        };
        let (without, s1) = time(|| framed(&slices, frame_bytes, None));
        let (with, s2) = time(|| framed(&slices, frame_bytes, Some(&dict)));
        row(format!("frames only, {label}, no dictionary"), n, without, s1);
        row(format!("frames only, {label}, dictionary"), n, with, s2);
    }

    // The seekable format costs little against one big frame at the default frame size.
    let (_, default) = ours.iter().find(|(kib, _)| *kib == 256).unwrap();
    assert!(
        (default.compressed as f64) < plain.compressed as f64 * 1.25,
        "256 KiB frames: {} bytes vs {} for one frame",
        default.compressed,
        plain.compressed
    );
    // Smaller frames never compress better than larger ones here.
    for w in ours.windows(2) {
        assert!(
            w[0].1.compressed >= w[1].1.compressed,
            "{} < {}",
            w[0].1.name,
            w[1].1.name
        );
    }
    assert!(gz.len() > plain.compressed / 2);
}
