//! `scrubd scrub [FILE...]`: scrub files (or stdin) to stdout, with per-rule counts on request.

use std::collections::BTreeMap;
use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

use crate::record::{Format, Splitter};
use crate::scrub::{Scrubber, SourceState};

#[derive(Debug, clap::Args)]
pub struct ScrubArgs {
    /// Log format of the input (default: detected per file).
    #[arg(long, value_parser = parse_format, default_value = "auto")]
    pub format: Format,
    /// Source name the input belongs to (rules can be scoped to sources).
    #[arg(long, default_value = "cli")]
    pub source: String,
    /// Print per-rule counts to stderr (counts only, never values).
    #[arg(long)]
    pub stats: bool,
    /// Files to scrub; none or `-` reads stdin.
    pub files: Vec<PathBuf>,
}

/// Parses a format name as written in the config (`django`, `req`, `json_lines`, ...).
pub fn parse_format(s: &str) -> Result<Format, String> {
    serde_json::from_value(serde_json::Value::String(s.replace('-', "_"))).map_err(|_| {
        format!("unknown format {s:?} (expected auto, django, req, json_lines, json, syslog, access_log or text)")
    })
}

pub fn run(args: &ScrubArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let cfg = crate::config::load(config)?;
    let max_record = cfg.raw.records.max_record_bytes.as_u64() as usize;
    let stdout = std::io::stdout().lock();
    let mut out = BufWriter::with_capacity(1 << 20, stdout);
    let mut totals = Totals::default();
    let files: Vec<PathBuf> = if args.files.is_empty() {
        vec![PathBuf::from("-")]
    } else {
        args.files.clone()
    };
    for file in &files {
        let name = file.display().to_string();
        let input: Box<dyn Read> = if name == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            Box::new(std::fs::File::open(file).with_context(|| format!("cannot open {name}"))?)
        };
        scrub_stream(&cfg.scrubber, args, max_record, input, &mut out, &mut totals)
            .with_context(|| format!("cannot scrub {name}"))?;
    }
    out.flush().context("cannot write to stdout")?;
    if args.stats {
        totals.print(&mut std::io::stderr().lock())?;
    }
    Ok(ExitCode::SUCCESS)
}

#[derive(Default)]
struct Totals {
    records: u64,
    bytes_in: u64,
    bytes_out: u64,
    fallbacks: u64,
    by_rule: BTreeMap<String, u64>,
}

impl Totals {
    fn print(&self, w: &mut impl Write) -> std::io::Result<()> {
        writeln!(
            w,
            "records: {}  bytes in: {}  bytes out: {}  fallbacks: {}",
            self.records, self.bytes_in, self.bytes_out, self.fallbacks
        )?;
        let width = self.by_rule.keys().map(String::len).max().unwrap_or(0);
        for (rule, n) in &self.by_rule {
            writeln!(w, "{rule:width$}  {n}")?;
        }
        Ok(())
    }
}

/// Splits and scrubs one stream, writing the scrubbed records as they complete (memory stays
/// bounded by the splitter's `max_record_bytes`).
fn scrub_stream(
    scrubber: &Scrubber,
    args: &ScrubArgs,
    max_record: usize,
    mut input: impl Read,
    out: &mut impl Write,
    totals: &mut Totals,
) -> anyhow::Result<()> {
    let mut splitter = Splitter::new(args.format, max_record, 0);
    let mut state = SourceState::default();
    let mut buf = vec![0u8; 256 * 1024];
    let mut records = Vec::new();
    loop {
        let n = match input.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e).context("read error"),
        };
        splitter.push(&buf[..n], &mut records);
        emit(scrubber, &args.source, &mut state, &mut records, out, totals)?;
    }
    splitter.finish(&mut records);
    emit(scrubber, &args.source, &mut state, &mut records, out, totals)
}

fn emit(
    scrubber: &Scrubber,
    source: &str,
    state: &mut SourceState,
    records: &mut Vec<crate::record::Record>,
    out: &mut impl Write,
    totals: &mut Totals,
) -> anyhow::Result<()> {
    for record in records.drain(..) {
        let scrubbed = scrubber.scrub(&record, source, state);
        totals.records += 1;
        totals.bytes_in += record.bytes.len() as u64;
        totals.bytes_out += scrubbed.bytes.len() as u64;
        totals.fallbacks += u64::from(scrubbed.fallback);
        for (rule, n) in scrubbed.counts {
            *totals.by_rule.entry(rule).or_default() += n;
        }
        out.write_all(&scrubbed.bytes).context("cannot write to stdout")?;
    }
    Ok(())
}
