//! `scrubd run [--once]`: the daemon.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Process what is in the watched files now, upload it, and exit (backfills, tests).
    #[arg(long)]
    pub once: bool,
}

pub fn run(args: RunArgs, config: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let cfg = crate::config::load(config.as_deref())?;
    let opts = crate::pipeline::RunOptions {
        once: args.once,
        config_path: config,
        progress_bar: args.once && std::io::stderr().is_terminal(),
    };
    super::runtime()?
        .block_on(crate::pipeline::run(cfg, opts))
        .context("scrubd run failed")?;
    Ok(ExitCode::SUCCESS)
}
