//! `scrubd synth`: writes a synthetic webhook log (fake personal data and secrets in realistic
//! places) for trying scrubd without real logs, for tests and for benchmarks.
//!
//! Must not: write anything but the generated log to the output.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;

use anyhow::Context;

use crate::record::Format;
use crate::synth;

/// Flags of `scrubd synth`.
#[derive(clap::Args, Debug, Clone)]
pub struct SynthArgs {
    /// Log format to generate: django, req, json_lines, json, syslog, access_log, text.
    #[arg(long, default_value = "django")]
    pub format: Format,
    /// Number of webhook events to generate.
    #[arg(long, default_value_t = 100, conflicts_with = "bytes")]
    pub records: usize,
    /// Seed of the generator: the same seed gives the same log.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Generate at least this much instead of a number of records (e.g. `100MB`); streamed.
    #[arg(long)]
    pub bytes: Option<bytesize::ByteSize>,
    /// Output file (default: stdout).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

impl clap::ValueEnum for Format {
    fn value_variants<'a>() -> &'a [Self] {
        &Format::ALL
    }

    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.name()))
    }
}

/// Runs `scrubd synth`.
pub fn run(args: &SynthArgs) -> anyhow::Result<()> {
    let out: Box<dyn Write> = match &args.out {
        Some(path) => {
            Box::new(File::create(path).with_context(|| format!("cannot create output file {}", path.display()))?)
        }
        None => Box::new(std::io::stdout().lock()),
    };
    let mut w = BufWriter::with_capacity(256 * 1024, out);
    let target = args
        .out
        .as_ref()
        .map_or_else(|| "stdout".to_owned(), |p| p.display().to_string());
    match args.bytes {
        Some(size) => {
            synth::write_corpus(args.format, size.as_u64(), args.seed, &mut w)
                .with_context(|| format!("cannot write synthetic log to {target}"))?;
        }
        None => {
            let log = synth::generate(args.format, args.records, args.seed);
            w.write_all(&log.bytes)
                .with_context(|| format!("cannot write synthetic log to {target}"))?;
        }
    }
    w.flush()
        .with_context(|| format!("cannot write synthetic log to {target}"))?;
    Ok(())
}
