//! `scrubd check-config [FILE]`: validate a configuration and print the effective rule table.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct CheckConfigArgs {
    /// The file to check (default: the one given with --config, else the embedded default).
    pub file: Option<PathBuf>,
}

pub fn run(args: &CheckConfigArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let file = args.file.as_deref().or(config);
    let cfg = crate::config::load(file)?;
    let scrubber = &cfg.scrubber;
    let table = scrubber.rule_table();
    let mut out = std::io::stdout().lock();
    // Matches last: it is the long column.
    let w0 = table.iter().map(|r| r.0.len()).max().unwrap_or(4).max(4);
    let w2 = table.iter().map(|r| r.2.len()).max().unwrap_or(6).max(6);
    writeln!(out, "{:w0$}  {:w2$}  MATCHES", "RULE", "ACTION")?;
    for (rule, matches, action) in &table {
        writeln!(out, "{rule:w0$}  {action:w2$}  {matches}")?;
    }
    writeln!(
        out,
        "\n{} rules enabled; rule set {} (digest {})",
        table.len(),
        scrubber.ruleset_version(),
        scrubber.ruleset_digest()
    )
    .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}
