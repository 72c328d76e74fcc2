//! `scrubd reindex [--since …]`: rebuilds index segments from the manifests in the bucket.
//!
//! Must not: touch archives or manifests (it only writes under `index/`).

use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use crate::config::RawConfig;
use crate::index::compact::reindex;
use crate::index::search::parse_time;
use crate::store::ObjectStore;

#[derive(Args, Clone, Debug)]
pub struct ReindexArgs {
    /// Only days from this one on: YYYY-MM-DD, RFC 3339, or a duration ago (`7d`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Rewrite segments that exist already.
    #[arg(long)]
    pub force: bool,
}

/// Runs `scrubd reindex` against `store`.
pub async fn run(args: ReindexArgs, cfg: &RawConfig, store: Arc<dyn ObjectStore>) -> anyhow::Result<()> {
    let since = args
        .since
        .as_deref()
        .map(|s| parse_time(s, chrono::Utc::now()))
        .transpose()?
        .map(|t| t.date_naive());
    let report = reindex(&store, since, args.force, &cfg.index)
        .await
        .context("reindex failed")?;
    eprintln!(
        "{} manifests: {} segments written, {} already indexed",
        report.manifests, report.written, report.skipped
    );
    Ok(())
}
