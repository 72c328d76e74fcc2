//! `scrubd fetch`: the scrubbed text of matching records, a whole archive (checked against its
//! manifest), or a presigned URL for one archive.
//!
//! Must not: write to the bucket, or hand out an archive whose checksum does not match.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context;
use clap::Args;

use super::search::QueryArgs;
use crate::config::RawConfig;
use crate::index::{fetch, search};
use crate::store::ObjectStore;

#[derive(Args, Clone, Debug)]
pub struct FetchArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    /// A whole archive by key (`archives/…/….zst`) instead of records.
    #[arg(long, value_name = "KEY")]
    pub archive: Option<String>,
    /// Save to this file instead of printing: records as text, an archive as stored (zstd).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Print a time-limited URL for the archive given by `--archive` instead of fetching it.
    #[arg(long, requires = "archive")]
    pub presign: bool,
    /// How long a presigned URL stays valid.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    pub expires: std::time::Duration,
    /// At most this many records.
    #[arg(long)]
    pub limit: Option<usize>,
}

/// Runs `scrubd fetch` against `store`.
pub async fn run(args: FetchArgs, cfg: &RawConfig, store: Arc<dyn ObjectStore>) -> anyhow::Result<()> {
    if let Some(key) = &args.archive {
        if args.presign {
            let url = fetch::presign(&store, key, args.expires)
                .await
                .context("cannot presign")?;
            println!("{url}");
            return Ok(());
        }
        let (body, _) = fetch::fetch_archive(&store, key)
            .await
            .context("cannot fetch archive")?;
        return match &args.out {
            Some(path) => write_file(path, &body),
            None => {
                let text = zstd::decode_all(&body[..]).with_context(|| format!("cannot decompress {key}"))?;
                write_stdout(&text)
            }
        };
    }
    if args.query.is_empty() {
        anyhow::bail!("give at least one filter (--id, --type, --since, …) or --archive KEY");
    }
    let query = args.query.query()?;
    let opts = args.query.options(cfg, args.limit, true);
    let hits = search(store, query, &opts).await.context("search failed")?;
    if let Some(p) = &opts.progress {
        p.finish_and_clear();
    }
    let mut text = Vec::new();
    for h in &hits {
        let t = h.text.as_ref().with_context(|| {
            format!(
                "cannot read the record at {} frame {} (see the warnings above)",
                h.row.archive_key, h.row.frame
            )
        })?;
        text.extend_from_slice(t);
        if !t.ends_with(b"\n") {
            text.push(b'\n');
        }
    }
    match &args.out {
        Some(path) => write_file(path, &text)?,
        None => write_stdout(&text)?,
    }
    eprintln!("{} records", hits.len());
    Ok(())
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.context("cannot write to stdout"),
    }
}

/// Writes through a temp file next to `path` and renames, so `path` is never half-written.
fn write_file(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| format!("cannot write in {}", dir.display()))?;
    tmp.write_all(bytes)
        .and_then(|()| tmp.as_file().sync_all())
        .with_context(|| format!("cannot write {}", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}
