//! `scrubd compact [--day YYYY-MM-DD]`: merges the index segments of closed days, one segment per
//! host and day.
//!
//! Must not: compact today (UTC) or later: those days still get new segments.

use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::config::RawConfig;
use crate::index::compact::{compact_closed_days, compact_day};
use crate::store::ObjectStore;

#[derive(Args, Clone, Debug)]
pub struct CompactArgs {
    /// Only this day (YYYY-MM-DD); default: every closed day.
    #[arg(long, value_name = "DAY")]
    pub day: Option<chrono::NaiveDate>,
}

/// Runs `scrubd compact` against `store`.
pub async fn run(args: CompactArgs, cfg: &RawConfig, store: Arc<dyn ObjectStore>) -> anyhow::Result<()> {
    let report = match args.day {
        Some(day) => compact_day(&store, day, &cfg.index).await,
        None => compact_closed_days(&store, None, &cfg.index).await,
    }
    .context("compaction failed")?;
    eprintln!(
        "{} compacted segments written from {} segments ({} rows); {} old segments deleted",
        report.written.len(),
        report.merged,
        report.rows,
        report.deleted
    );
    Ok(())
}
