//! `scrubd search`: find records in the bucket's index and print them as a table or JSON lines.
//!
//! Must not: write to the bucket (read-only credentials are enough).

use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use clap::Args;

use crate::config::RawConfig;
use crate::index::cache::RangeCache;
use crate::index::search::parse_time;
use crate::index::segment::{level_str, parse_level};
use crate::index::{CountingStore, SearchHit, SearchOptions, SearchQuery, StoreStats, search};
use crate::store::ObjectStore;

/// The filters shared by `search` and `fetch`. Filters combine with AND; repeating one (e.g.
/// `--id a --id b`) matches any of its values.
#[derive(Args, Clone, Debug, Default)]
pub struct QueryArgs {
    /// Any id in the record (`evt_…`, `cus_…`, `sub_…`, `in_…`, `pi_…`, `ch_…`, `req_…`, …).
    #[arg(long = "id", value_name = "ID")]
    pub ids: Vec<String>,
    /// Event type glob, e.g. `invoice.*`.
    #[arg(long = "type", value_name = "GLOB")]
    pub event_type: Option<String>,
    /// Records at or after: RFC 3339, YYYY-MM-DD, or a duration ago (`30m`, `2h`, `7d`).
    #[arg(long, value_name = "TIME")]
    pub since: Option<String>,
    /// Records before: RFC 3339, YYYY-MM-DD, or a duration ago.
    #[arg(long, value_name = "TIME")]
    pub until: Option<String>,
    /// Log level (`error`, `warning`, `info`, …).
    #[arg(long = "level", value_name = "LEVEL")]
    pub levels: Vec<String>,
    #[arg(long = "host", value_name = "HOST")]
    pub hosts: Vec<String>,
    #[arg(long = "source", value_name = "SOURCE")]
    pub sources: Vec<String>,
    /// Pseudonym token of a value (`scrubd pseudonym VALUE` computes it).
    #[arg(long = "pseudonym", value_name = "TOKEN")]
    pub pseudonyms: Vec<String>,
    /// Substring of the scrubbed text of the records.
    #[arg(long, value_name = "TEXT")]
    pub grep: Option<String>,
    /// Do not use or fill the local cache.
    #[arg(long)]
    pub no_cache: bool,
}

impl QueryArgs {
    /// The query these flags describe.
    pub fn query(&self) -> anyhow::Result<SearchQuery> {
        let now = chrono::Utc::now();
        let time = |s: &Option<String>| s.as_deref().map(|s| parse_time(s, now)).transpose();
        let levels = self
            .levels
            .iter()
            .map(|l| parse_level(l).with_context(|| format!("unknown level {l:?}")))
            .collect::<anyhow::Result<_>>()?;
        Ok(SearchQuery {
            ids: self.ids.clone(),
            event_type: self.event_type.clone(),
            since: time(&self.since)?,
            until: time(&self.until)?,
            levels,
            hosts: self.hosts.clone(),
            sources: self.sources.clone(),
            pseudonyms: self.pseudonyms.clone(),
            grep: self.grep.clone(),
        })
    }

    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
            && self.event_type.is_none()
            && self.since.is_none()
            && self.until.is_none()
            && self.levels.is_empty()
            && self.hosts.is_empty()
            && self.sources.is_empty()
            && self.pseudonyms.is_empty()
            && self.grep.is_none()
    }

    /// Search options from the config: the cache, the concurrency, a progress bar on a terminal.
    pub fn options(&self, cfg: &RawConfig, limit: Option<usize>, with_text: bool) -> SearchOptions {
        let cache = if self.no_cache {
            None
        } else {
            cfg.index.cache_path().and_then(|dir| match RangeCache::new(&dir, cfg.index.cache_max_bytes.as_u64()) {
                Ok(c) => Some(c),
                Err(error) => {
                    tracing::warn!(path = %dir.display(), %error, "cannot use the cache dir, searching without cache");
                    None
                }
            })
        };
        let progress = std::io::stderr().is_terminal().then(|| {
            let p = indicatif::ProgressBar::new(0);
            p.set_style(
                indicatif::ProgressStyle::with_template("{spinner} segments {pos}/{len} {elapsed}")
                    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
            );
            p
        });
        SearchOptions {
            limit,
            with_text,
            cache,
            concurrency: cfg.index.concurrency,
            progress,
        }
    }
}

#[derive(Args, Clone, Debug)]
pub struct SearchArgs {
    #[command(flatten)]
    pub query: QueryArgs,
    /// JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
    /// At most this many records (the earliest).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Print the requests made and bytes downloaded to stderr.
    #[arg(long)]
    pub stats: bool,
}

/// Runs `scrubd search` against `store`.
pub async fn run(args: SearchArgs, cfg: &RawConfig, store: Arc<dyn ObjectStore>) -> anyhow::Result<()> {
    let query = args.query.query()?;
    let opts = args.query.options(cfg, Some(args.limit), true);
    let counting = CountingStore::new(store);
    let started = Instant::now();
    let hits = search(counting.clone(), query, &opts).await.context("search failed")?;
    if let Some(p) = &opts.progress {
        p.finish_and_clear();
    }
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    let res = if args.json {
        print_json(&mut out, &hits)
    } else {
        print_table(&mut out, &hits)
    };
    match res.and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
        r => r.context("cannot write to stdout")?,
    }
    if args.stats {
        eprintln!("{}", stats_line(hits.len(), counting.stats(), started.elapsed()));
    }
    Ok(())
}

/// `12 records · 43 requests (40 GET, 3 LIST) · 1.2 MiB downloaded · 0.31 s`
pub fn stats_line(records: usize, s: StoreStats, elapsed: std::time::Duration) -> String {
    format!(
        "{records} records · {} requests ({} GET, {} LIST) · {} downloaded · {:.3} s",
        s.requests(),
        s.gets,
        s.lists,
        bytesize::ByteSize::b(s.bytes).display().iec(),
        elapsed.as_secs_f64()
    )
}

fn time_str(ms: i64) -> String {
    chrono::DateTime::<chrono::Utc>::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

/// One line of a record's text for the table: control characters as spaces, cut at `max` chars.
fn snippet(text: &[u8], max: usize) -> String {
    let s = String::from_utf8_lossy(text);
    let mut out: String = s
        .trim()
        .chars()
        .take(max)
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    if s.trim().chars().count() > max {
        out.push('…');
    }
    out
}

pub fn print_table(out: &mut impl Write, hits: &[SearchHit]) -> std::io::Result<()> {
    let cells: Vec<[String; 6]> = hits
        .iter()
        .map(|h| {
            let r = &h.row;
            [
                time_str(r.ts_ms),
                r.level.map(level_str).unwrap_or("-").to_string(),
                format!("{}/{}", r.host, r.source),
                r.event_type.clone().unwrap_or_else(|| "-".into()),
                r.event_id.clone().unwrap_or_else(|| "-".into()),
                h.text
                    .as_deref()
                    .map(|t| snippet(t, 120))
                    .unwrap_or_else(|| "(text unavailable)".into()),
            ]
        })
        .collect();
    let header = ["TIME", "LEVEL", "HOST/SOURCE", "TYPE", "EVENT", "RECORD"];
    let mut widths = header.map(str::len);
    for c in &cells {
        for (w, s) in widths.iter_mut().zip(c.iter()).take(5) {
            *w = (*w).max(s.chars().count());
        }
    }
    let line = |out: &mut dyn Write, c: [&str; 6]| -> std::io::Result<()> {
        for i in 0..5 {
            write!(out, "{:<w$}  ", c[i], w = widths[i])?;
        }
        writeln!(out, "{}", c[5])
    };
    line(out, header)?;
    for c in &cells {
        line(out, [&c[0], &c[1], &c[2], &c[3], &c[4], &c[5]])?;
    }
    Ok(())
}

pub fn print_json(out: &mut impl Write, hits: &[SearchHit]) -> std::io::Result<()> {
    for h in hits {
        let r = &h.row;
        let v = serde_json::json!({
            "ts": time_str(r.ts_ms),
            "ts_ms": r.ts_ms,
            "level": r.level.map(level_str),
            "host": r.host,
            "source": r.source,
            "event_id": r.event_id,
            "event_type": r.event_type,
            "ids": r.ids,
            "archive_key": r.archive_key,
            "frame": r.frame,
            "record_start": r.record_start,
            "record_len": r.record_len,
            "source_offset": r.source_offset,
            "text": h.text.as_deref().map(String::from_utf8_lossy),
        });
        serde_json::to_writer(&mut *out, &v)?;
        writeln!(out)?;
    }
    Ok(())
}
