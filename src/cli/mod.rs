//! The subcommands, one file each. `main.rs` parses flags and dispatches here; this module owns the
//! flag definitions and the async runtime.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::config::LogFormat;

pub mod check_config;
pub mod compact;
pub mod fetch;
pub mod pseudonym;
pub mod reindex;
pub mod run;
pub mod scrub;
pub mod search;
pub mod synth;

/// scrubd: scrub personal data and secrets out of webhook logs, archive them to S3, search them.
#[derive(Debug, Parser)]
#[command(name = "scrubd", version, about, propagate_version = true)]
pub struct Cli {
    /// Configuration file, layered over the embedded default (see `config/scrubd.toml`).
    #[arg(long, short = 'c', global = true, env = "SCRUBD_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter for scrubd's own logs (tracing `EnvFilter` syntax), e.g. `info` or `scrubd=debug`.
    #[arg(long, global = true, env = "SCRUBD_LOG", default_value = "info")]
    pub log: String,
    /// Format of scrubd's own logs on stderr.
    #[arg(long, global = true, value_parser = parse_log_format, default_value = "text")]
    pub log_format: LogFormat,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// The daemon: watch log directories, scrub, archive, upload and index.
    Run(run::RunArgs),
    /// Scrub log files (or stdin) and write the result to stdout.
    Scrub(scrub::ScrubArgs),
    /// Validate a configuration and print the effective rule table.
    CheckConfig(check_config::CheckConfigArgs),
    /// Find records in the bucket by id, type, time, level, host, source, pseudonym or text.
    Search(search::SearchArgs),
    /// Print or save matching records, or whole archives, from the bucket.
    Fetch(fetch::FetchArgs),
    /// Rebuild index segments from the archives' manifests.
    Reindex(reindex::ReindexArgs),
    /// Merge the index segments of closed days into one per host and day.
    Compact(compact::CompactArgs),
    /// Print the pseudonym token the `hash` action gives a value (needs the pseudonym key).
    Pseudonym(pseudonym::PseudonymArgs),
    /// Generate synthetic webhook logs with planted fake personal data.
    Synth(synth::SynthArgs),
}

fn parse_log_format(s: &str) -> Result<LogFormat, String> {
    match s {
        "text" => Ok(LogFormat::Text),
        "json" => Ok(LogFormat::Json),
        _ => Err(format!("unknown log format {s:?} (expected text or json)")),
    }
}

/// scrubd's own logs go to stderr (journald picks them up under systemd); stdout is for output.
pub fn init_tracing(cli: &Cli) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(&cli.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match cli.log_format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// A bucket-side command: loads the config, opens the store, runs `$module::run` on a runtime.
macro_rules! bucket_command {
    ($config:expr, $module:ident, $args:expr) => {{
        let cfg = crate::config::load($config)?;
        runtime()?.block_on(async {
            let store = crate::store::open(&cfg.raw.store).await?;
            $module::run($args, &cfg.raw, store).await
        })?;
        Ok(ExitCode::SUCCESS)
    }};
}

/// Runs the subcommand; the exit code on success (a failed check can still be a non-zero code).
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.config.as_deref();
    match cli.command {
        Command::Run(args) => run::run(args, cli.config.clone()),
        Command::Scrub(args) => scrub::run(&args, config),
        Command::CheckConfig(args) => check_config::run(&args, config),
        Command::Pseudonym(args) => pseudonym::run(&args, config),
        Command::Synth(args) => synth::run(&args).map(|()| ExitCode::SUCCESS),
        Command::Search(args) => bucket_command!(config, search, args),
        Command::Fetch(args) => bucket_command!(config, fetch, args),
        Command::Reindex(args) => bucket_command!(config, reindex, args),
        Command::Compact(args) => bucket_command!(config, compact, args),
    }
}

/// The async runtime of the subcommands that need one.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    use anyhow::Context;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}
