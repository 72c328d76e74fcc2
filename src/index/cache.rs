//! A local on-disk cache of byte ranges of immutable objects (segment footers, bloom filter
//! blocks, column chunks, archive frames), bounded in size.
//!
//! Entries are files named by a digest of (key, range). Writes go to a temp file in the cache dir
//! and are renamed into place, so two processes sharing the cache never see a partial entry. A hit
//! touches the entry's mtime; [`RangeCache::evict`] deletes the oldest entries beyond the bound.
//!
//! Must not: cache anything mutable (listings, manifests are fine as they never change, but the
//! callers decide), or fail a search because the cache is broken: every cache error is a miss.

use std::io::Write;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::SystemTime;

use bytes::Bytes;
use sha2::{Digest, Sha256};

#[derive(Clone, Debug)]
pub struct RangeCache {
    dir: PathBuf,
    max_bytes: u64,
    /// Bytes this process has added; eviction (a scan of the whole cache) only runs after adds.
    added: Arc<AtomicU64>,
}

impl RangeCache {
    /// A cache in `dir` (created if missing) holding at most about `max_bytes`.
    pub fn new(dir: impl Into<PathBuf>, max_bytes: u64) -> std::io::Result<RangeCache> {
        let dir = dir.into().join("ranges-v1");
        std::fs::create_dir_all(&dir)?;
        Ok(RangeCache {
            dir,
            max_bytes,
            added: Arc::new(AtomicU64::new(0)),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, key: &str, range: &Range<u64>) -> PathBuf {
        let mut h = Sha256::new();
        h.update(key.as_bytes());
        h.update(range.start.to_le_bytes());
        h.update(range.end.to_le_bytes());
        let name = hex::encode(&h.finalize()[..16]);
        self.dir.join(&name[..2]).join(name)
    }

    /// The cached bytes of `key` at `range`, if any.
    pub fn get(&self, key: &str, range: &Range<u64>) -> Option<Bytes> {
        let path = self.path(key, range);
        let bytes = std::fs::read(&path).ok()?;
        if bytes.len() as u64 != range.end - range.start {
            return None;
        }
        // Mark as recently used; failing to is harmless.
        if let Ok(f) = std::fs::File::options().append(true).open(&path) {
            let _ = f.set_modified(SystemTime::now());
        }
        Some(Bytes::from(bytes))
    }

    /// Stores `bytes` as `key` at `range`. Errors are ignored: the cache is only an optimisation.
    pub fn put(&self, key: &str, range: &Range<u64>, bytes: &[u8]) {
        if bytes.len() as u64 != range.end - range.start || bytes.len() as u64 > self.max_bytes {
            return;
        }
        let path = self.path(key, range);
        let Some(parent) = path.parent() else { return };
        let write = || -> std::io::Result<()> {
            std::fs::create_dir_all(parent)?;
            let mut tmp = tempfile::Builder::new().prefix(".tmp-").tempfile_in(parent)?;
            tmp.write_all(bytes)?;
            tmp.persist(&path).map_err(|e| e.error)?;
            Ok(())
        };
        match write() {
            Ok(()) => {
                self.added.fetch_add(bytes.len() as u64, Ordering::Relaxed);
            }
            Err(error) => tracing::debug!(path = %path.display(), %error, "cannot write cache entry"),
        }
    }

    /// Total size of the entries.
    pub fn size(&self) -> u64 {
        self.entries().iter().map(|e| e.1).sum()
    }

    fn entries(&self) -> Vec<(PathBuf, u64, SystemTime)> {
        let mut out = Vec::new();
        let Ok(dirs) = std::fs::read_dir(&self.dir) else {
            return out;
        };
        for d in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(d.path()) else {
                continue;
            };
            for f in files.flatten() {
                let Ok(m) = f.metadata() else { continue };
                if !m.is_file() {
                    continue;
                }
                let name = f.file_name();
                let stale_tmp = name.to_string_lossy().starts_with(".tmp-")
                    && m.modified()
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .is_some_and(|a| a.as_secs() > 3600);
                if name.to_string_lossy().starts_with(".tmp-") && !stale_tmp {
                    continue;
                }
                out.push((f.path(), m.len(), m.modified().unwrap_or(SystemTime::UNIX_EPOCH)));
            }
        }
        out
    }

    /// [`RangeCache::evict`] if this process added anything since the last eviction, so that a
    /// search served from the cache does not scan it.
    pub fn evict_if_added(&self) {
        if self.added.swap(0, Ordering::Relaxed) > 0 {
            self.evict();
        }
    }

    /// Deletes the least recently used entries until the cache fits its bound (down to 90% of it,
    /// so that eviction does not run on every search).
    pub fn evict(&self) {
        let mut entries = self.entries();
        let mut total: u64 = entries.iter().map(|e| e.1).sum();
        if total <= self.max_bytes {
            return;
        }
        entries.sort_by_key(|e| e.2);
        let target = self.max_bytes / 10 * 9;
        for (path, size, _) in entries {
            if total <= target {
                break;
            }
            // Another process may have deleted it already.
            let _ = std::fs::remove_file(&path);
            total = total.saturating_sub(size);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stores_and_evicts_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let cache = RangeCache::new(dir.path(), 2500).unwrap();
        let body = vec![7u8; 1000];
        cache.put("a", &(0..1000), &body);
        cache.put("b", &(0..1000), &body);
        assert_eq!(cache.get("a", &(0..1000)).as_deref(), Some(&body[..]));
        assert_eq!(cache.get("a", &(0..999)), None, "a different range is a miss");
        // Make `b` the oldest, then overflow the bound.
        let old = SystemTime::now() - std::time::Duration::from_secs(100);
        std::fs::File::options()
            .append(true)
            .open(cache.path("b", &(0..1000)))
            .unwrap()
            .set_modified(old)
            .unwrap();
        cache.put("c", &(0..1000), &body);
        cache.evict();
        assert!(cache.get("b", &(0..1000)).is_none(), "oldest evicted");
        assert!(cache.get("a", &(0..1000)).is_some());
        assert!(cache.get("c", &(0..1000)).is_some());
        assert!(cache.size() <= 2500);
    }
}
