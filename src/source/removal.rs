//! Compliance removal: delete or truncate raw source files once they are fully archived.
//!
//! Off unless `remove_archived_after` is set. A file is removable only when its checkpoint is at
//! its end (every byte durably in the spool), it is not the file the application writes to now,
//! and it was last modified longer ago than the configured age. The tailer applies this; the
//! decision and the removal itself are here so they can be tested on their own.
//!
//! Must not: remove a file with a single byte not yet committed, or a different file that took
//! its path (the device and inode are checked right before removing).

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::time::{Duration, SystemTime};

use super::{RemoveMode, SourceError};

/// The facts [`is_removable`] decides on.
#[derive(Clone, Debug)]
pub struct RemovalCheck {
    /// `remove_archived_after`; `None` means removal is off.
    pub after: Option<Duration>,
    /// Committed offset of the file.
    pub committed: u64,
    /// Current size of the file.
    pub size: u64,
    /// The file still sits at a watched path and is the newest of its source (the application
    /// may still write to it).
    pub active: bool,
    pub modified: SystemTime,
    pub now: SystemTime,
}

/// Whether the file is fully archived, not active and old enough to be removed.
pub fn is_removable(c: &RemovalCheck) -> bool {
    let Some(after) = c.after else { return false };
    let old_enough = c.now.duration_since(c.modified).is_ok_and(|age| age >= after);
    !c.active && c.size > 0 && c.committed >= c.size && old_enough
}

/// Deletes or truncates `path`, if it still is the file with device and inode `expect`.
/// Returns `false` (and does nothing) when the path is gone or now holds another file.
pub fn remove_file(path: &Path, expect: (u64, u64), mode: RemoveMode) -> Result<bool, SourceError> {
    let err = |error| SourceError::Remove {
        path: path.display().to_string(),
        error,
    };
    let md = match std::fs::symlink_metadata(path) {
        Ok(md) => md,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(err(e)),
    };
    if (md.dev(), md.ino()) != expect || !md.is_file() {
        return Ok(false);
    }
    match mode {
        RemoveMode::Delete => std::fs::remove_file(path).map_err(err)?,
        RemoveMode::Truncate => {
            let f = std::fs::OpenOptions::new().write(true).open(path).map_err(err)?;
            if f.metadata().map(|m| (m.dev(), m.ino())).map_err(err)? != expect {
                return Ok(false);
            }
            f.set_len(0).map_err(err)?;
            f.sync_all().map_err(err)?;
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(after_s: Option<u64>, committed: u64, size: u64, active: bool, age_s: u64, expect: bool) {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let c = RemovalCheck {
            after: after_s.map(Duration::from_secs),
            committed,
            size,
            active,
            modified: now - Duration::from_secs(age_s),
            now,
        };
        assert_eq!(is_removable(&c), expect, "{c:?}");
    }

    #[test]
    fn removable_only_when_archived_inactive_and_old() {
        check(Some(60), 100, 100, false, 61, true);
        check(Some(60), 100, 100, false, 60, true);
        check(None, 100, 100, false, 1_000, false);
        check(Some(60), 99, 100, false, 61, false);
        check(Some(60), 100, 100, true, 61, false);
        check(Some(60), 100, 100, false, 59, false);
        check(Some(60), 0, 0, false, 61, false);
    }

    #[test]
    fn remove_checks_identity() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.log");
        std::fs::write(&p, b"data").unwrap();
        let md = std::fs::metadata(&p).unwrap();
        let key = (md.dev(), md.ino());
        assert!(!remove_file(&p, (key.0, key.1 + 1), RemoveMode::Delete).unwrap());
        assert!(p.exists());
        assert!(remove_file(&p, key, RemoveMode::Truncate).unwrap());
        assert_eq!(std::fs::metadata(&p).unwrap().len(), 0);
        assert!(remove_file(&p, key, RemoveMode::Delete).unwrap());
        assert!(!p.exists());
        assert!(!remove_file(&p, key, RemoveMode::Delete).unwrap());
    }
}
