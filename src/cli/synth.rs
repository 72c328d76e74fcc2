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
    #[arg(long, default_value = "django", value_name = "FORMAT")]
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

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SynthArgs,
    }

    fn parse(argv: &[&str]) -> Result<SynthArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("synth").chain(argv.iter().copied())).map(|c| c.args)
    }

    #[test]
    fn flags() {
        let a = parse(&["--format", "req", "--records", "5", "--seed", "9"]).map_err(|e| e.to_string());
        let a = a.as_ref().map(|a| (a.format, a.records, a.seed, a.bytes));
        assert_eq!(a, Ok((Format::Req, 5, 9, None)));
        let b = parse(&["--format", "json-lines", "--bytes", "2KB"]).map(|a| (a.format, a.bytes.map(|b| b.as_u64())));
        assert_eq!(b.ok(), Some((Format::JsonLines, Some(2000))));
        assert!(parse(&["--format", "xml"]).is_err());
        assert!(
            parse(&["--records", "5", "--bytes", "1KB"]).is_err(),
            "--records and --bytes conflict"
        );
    }

    #[test]
    fn writes_the_generated_log_to_a_file() -> anyhow::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("out.log");
        let mut args = parse(&["--format", "syslog", "--records", "7", "--seed", "3"])?;
        args.out = Some(path.clone());
        run(&args)?;
        assert_eq!(std::fs::read(&path)?, synth::generate(Format::Syslog, 7, 3).bytes);
        args.bytes = Some(bytesize::ByteSize::kb(50));
        run(&args)?;
        let len = std::fs::metadata(&path)?.len();
        assert!((50_000..60_000).contains(&len), "{len}");
        Ok(())
    }
}
