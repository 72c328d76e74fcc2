//! Compaction (the many small segments of a closed day merged into one per host) and reindexing
//! (segments rebuilt from the manifests alone).
//!
//! Compaction is atomic for readers: the compacted segment is written first, naming in its footer
//! (`scrubd.replaces`) every segment it replaces, and only then are those deleted. A reader that
//! lists both skips the replaced ones; an interrupted run leaves a state readers handle and that a
//! re-run finishes.
//!
//! Must not: touch a day that is not closed (today or later, UTC), or delete a segment that no
//! compacted segment in the store replaces.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use chrono::{Days, NaiveDate, Utc};
use futures::StreamExt;
use sha2::{Digest, Sha256};

use super::search::{Reader, live_segments};
use super::segment::{self, IndexRow};
use super::{IndexConfig, IndexError, keys, put_segment, write_segment_for};
use crate::archive::manifest::Manifest;
use crate::store::{ObjectMeta, ObjectStore};

/// What a compaction did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct CompactReport {
    /// Compacted segments written.
    pub written: Vec<String>,
    /// Segments merged into them.
    pub merged: usize,
    /// Replaced segments deleted (including leftovers of interrupted runs).
    pub deleted: usize,
    /// Rows in the segments written.
    pub rows: u64,
}

/// Compacts every host of `day`. Errors if the day is not closed.
pub async fn compact_day(
    store: &Arc<dyn ObjectStore>,
    day: NaiveDate,
    cfg: &IndexConfig,
) -> Result<CompactReport, IndexError> {
    let today = Utc::now().date_naive();
    if day >= today {
        return Err(IndexError::Query(format!(
            "day {day} is not closed yet (only days before {today} UTC can be compacted)"
        )));
    }
    let objects = store.list(&keys::day_prefix(day)).await?;
    let mut parts: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
    for o in objects.into_iter().filter(|o| keys::is_segment(&o.key)) {
        parts.entry(keys::partition_of(&o.key).to_string()).or_default().push(o);
    }
    let mut report = CompactReport::default();
    for (prefix, objects) in parts {
        let r = compact_partition(store, &prefix, objects, cfg).await?;
        report.written.extend(r.written);
        report.merged += r.merged;
        report.deleted += r.deleted;
        report.rows += r.rows;
    }
    Ok(report)
}

/// Compacts every closed day that has more than one live segment or leftovers, from `since` on
/// (all days when `None`).
pub async fn compact_closed_days(
    store: &Arc<dyn ObjectStore>,
    since: Option<NaiveDate>,
    cfg: &IndexConfig,
) -> Result<CompactReport, IndexError> {
    let today = Utc::now().date_naive();
    let days: BTreeSet<NaiveDate> = store
        .list(keys::INDEX_PREFIX)
        .await?
        .iter()
        .filter_map(|o| keys::key_day(&o.key))
        .filter(|d| *d < today && since.is_none_or(|s| *d >= s))
        .collect();
    let mut report = CompactReport::default();
    for day in days {
        let r = compact_day(store, day, cfg).await?;
        report.written.extend(r.written);
        report.merged += r.merged;
        report.deleted += r.deleted;
        report.rows += r.rows;
    }
    Ok(report)
}

async fn compact_partition(
    store: &Arc<dyn ObjectStore>,
    prefix: &str,
    objects: Vec<ObjectMeta>,
    cfg: &IndexConfig,
) -> Result<CompactReport, IndexError> {
    let reader = Reader::new(store.clone(), None, cfg.concurrency);
    let (live, _, replaced) = live_segments(&reader, &objects).await?;
    let leftovers: Vec<String> = objects
        .iter()
        .filter(|o| replaced.contains(&o.key))
        .map(|o| o.key.clone())
        .collect();
    let mut report = CompactReport::default();
    let done = live.len() == 1 && keys::is_compacted(&live[0].key);
    if !done && live.len() > 1 {
        let mut inputs: Vec<String> = live.iter().map(|o| o.key.clone()).collect();
        inputs.sort();
        let mut h = Sha256::new();
        for k in &inputs {
            h.update(k.as_bytes());
            h.update([0]);
        }
        let key = format!(
            "{prefix}{}{}{}",
            keys::COMPACTED_PREFIX,
            &hex::encode(h.finalize())[..24],
            keys::SEGMENT_SUFFIX
        );
        let read = futures::stream::iter(inputs.iter().map(|k| {
            let store = store.clone();
            async move {
                let body = store.get(k, None).await?;
                let k2 = k.clone();
                tokio::task::spawn_blocking(move || segment::read_segment(body))
                    .await
                    .map_err(|e| e.to_string())
                    .and_then(|r| r.map_err(|e| e.to_string()))
                    .map(|(rows, _)| rows)
                    .map_err(|message| IndexError::Segment { key: k2, message })
            }
        }))
        .buffered(cfg.concurrency.max(1))
        .collect::<Vec<Result<Vec<IndexRow>, IndexError>>>()
        .await;
        let mut rows = Vec::new();
        for r in read {
            rows.extend(r?);
        }
        segment::sort_rows(&mut rows);
        report.rows = rows.len() as u64;
        // Every listed segment but the new one: the live inputs and the leftovers of earlier runs.
        let replaces: Vec<String> = objects.iter().map(|o| o.key.clone()).filter(|k| *k != key).collect();
        let names: Vec<&str> = replaces.iter().filter_map(|k| k.strip_prefix(prefix)).collect();
        let kv = vec![(
            segment::REPLACES_KEY.to_string(),
            serde_json::to_string(&names).unwrap_or_else(|_| "[]".into()),
        )];
        let rg = cfg.row_group_rows;
        let key2 = key.clone();
        let body = tokio::task::spawn_blocking(move || segment::write_rows(rows, rg, &kv))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| e.to_string()))
            .map_err(|message| IndexError::Segment { key: key2, message })?;
        put_segment(store, &key, body).await?;
        report.written.push(key);
        report.merged = inputs.len();
        for k in &replaces {
            store.delete(k).await?;
            report.deleted += 1;
        }
        tracing::info!(
            partition = prefix,
            merged = report.merged,
            rows = report.rows,
            "compacted index segments"
        );
    } else {
        // Nothing to merge; finish what an interrupted run left.
        for k in &leftovers {
            store.delete(k).await?;
            report.deleted += 1;
        }
    }
    Ok(report)
}

/// What a reindex did.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct ReindexReport {
    pub manifests: usize,
    pub written: usize,
    /// Manifests whose segment exists already (or is merged into a compacted one).
    pub skipped: usize,
}

/// Rebuilds the segments of every manifest from `since` on (all when `None`) whose segment is
/// missing; with `force`, of every manifest. Reads manifests only (archives are not needed: the
/// manifest holds the frame index and the ids). Segments merged into a compacted segment stay
/// hidden behind it, so a forced rebuild never duplicates a row.
pub async fn reindex(
    store: &Arc<dyn ObjectStore>,
    since: Option<NaiveDate>,
    force: bool,
    cfg: &IndexConfig,
) -> Result<ReindexReport, IndexError> {
    let today = Utc::now().date_naive();
    let (manifest_prefixes, index_prefixes): (Vec<String>, Vec<String>) = match since {
        Some(s) if (today - s).num_days() <= 3660 => {
            let n = (today - s).num_days().max(0) as u64 + 1;
            (0..=n)
                .map(|i| s + Days::new(i))
                .map(|d| {
                    let dt = d.format("%Y-%m-%d");
                    (format!("{}dt={dt}/", keys::MANIFEST_PREFIX), keys::day_prefix(d))
                })
                .unzip()
        }
        _ => (vec![keys::MANIFEST_PREFIX.into()], vec![keys::INDEX_PREFIX.into()]),
    };
    let reader = Reader::new(store.clone(), None, cfg.concurrency);
    let mut existing: BTreeSet<String> = BTreeSet::new();
    let mut parts: BTreeMap<String, Vec<ObjectMeta>> = BTreeMap::new();
    for p in &index_prefixes {
        for o in store.list(p).await?.into_iter().filter(|o| keys::is_segment(&o.key)) {
            parts.entry(keys::partition_of(&o.key).to_string()).or_default().push(o);
        }
    }
    for objects in parts.values() {
        let (_, _, replaced) = live_segments(&reader, objects).await?;
        existing.extend(replaced);
        existing.extend(objects.iter().map(|o| o.key.clone()));
    }
    let mut manifests = Vec::new();
    for p in &manifest_prefixes {
        manifests.extend(
            store
                .list(p)
                .await?
                .into_iter()
                .filter(|o| o.key.ends_with(".json"))
                .filter(|o| since.is_none_or(|s| keys::key_day(&o.key).is_none_or(|d| d >= s))),
        );
    }
    let existing = &existing;
    let results = futures::stream::iter(manifests.iter().map(|o| async move {
        if !force
            && let Some(k) = keys::segment_key_for_manifest(&o.key)
            && existing.contains(&k)
        {
            return Ok(false);
        }
        let body = store.get(&o.key, None).await?;
        let m: Manifest = serde_json::from_slice(&body).map_err(|e| IndexError::Manifest {
            key: o.key.clone(),
            message: e.to_string(),
        })?;
        if !force && existing.contains(&keys::segment_key(&m)) {
            return Ok(false);
        }
        write_segment_for(store, m, cfg).await?;
        Ok::<_, IndexError>(true)
    }))
    .buffer_unordered(cfg.concurrency.clamp(1, 8))
    .collect::<Vec<_>>()
    .await;
    let mut report = ReindexReport {
        manifests: manifests.len(),
        ..Default::default()
    };
    for r in results {
        if r? {
            report.written += 1;
        } else {
            report.skipped += 1;
        }
    }
    Ok(report)
}
