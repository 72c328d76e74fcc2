//! Durable checkpoints: per file, the offset up to which its bytes are safely in the spool.
//!
//! **Architecture Invariant:** [`Checkpointer::commit`] is called by the pipeline ONLY after the
//! records before that offset are durably in the spool (fsynced, renamed, directory fsynced).
//! Nothing in `source` commits: the tailer only reads checkpoints, to know where to resume.
//!
//! The file (`checkpoints.json` in the state directory) is a versioned serde enum, written to a
//! temp file, fsynced, renamed over the old one, and the directory fsynced, so a crash leaves
//! either the old or the new checkpoints, never a mix. A leftover temp file is ignored.
//!
//! Must not: move a file's offset backwards, or forget a file that still has bytes to read.

use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use tracing::{debug, info};

use super::{FileId, SourceError};

/// Name of the checkpoint file in the state directory.
pub const CHECKPOINT_FILE_NAME: &str = "checkpoints.json";

/// The checkpoint file's content. New versions are new variants; old ones stay readable.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "version")]
pub enum CheckpointFile {
    #[serde(rename = "1")]
    V1 { files: Vec<CheckpointEntry> },
}

/// One file's checkpoint.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CheckpointEntry {
    pub file: FileId,
    /// Name of the source that tails the file.
    pub source: String,
    /// Where the file was last seen; after a restart, rotated copies are looked for next to it.
    pub path: String,
    /// Committed offset: everything before it is durably in the spool.
    pub offset: u64,
    /// Set once the tailer is done with the file (rotated away and read to its end, or deleted):
    /// the offset after its last byte. The file is fully archived once `offset` reaches it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub closed_at: Option<u64>,
}

impl CheckpointEntry {
    /// Closed and committed to its end: nothing of this file is left to archive.
    pub fn is_done(&self) -> bool {
        self.closed_at.is_some_and(|end| self.offset >= end)
    }
}

/// For metrics: how far the committed offset is behind the end of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckpointLag {
    pub file: FileId,
    pub source: String,
    pub path: String,
    /// Last size the tailer saw minus the committed offset.
    pub lag_bytes: u64,
}

#[derive(Default)]
struct State {
    entries: HashMap<FileId, CheckpointEntry>,
    /// Last size seen by the tailer, for the lag metric (not persisted).
    sizes: HashMap<FileId, u64>,
}

/// The checkpoints of all sources, shared by the tailers (read) and the pipeline (commit).
///
/// Every method that changes the durable state writes the whole file before returning; they do
/// blocking I/O and belong in `spawn_blocking` when called from async code.
pub struct Checkpointer {
    path: PathBuf,
    previous_write: Option<std::time::SystemTime>,
    dir: PathBuf,
    state: Mutex<State>,
}

impl Checkpointer {
    /// Opens (creating the directory if needed) the checkpoints in `state_dir`.
    pub fn open(state_dir: &Path) -> Result<Checkpointer, SourceError> {
        let path = state_dir.join(CHECKPOINT_FILE_NAME);
        let io_err = |error| SourceError::CheckpointIo {
            path: path.display().to_string(),
            error,
        };
        std::fs::create_dir_all(state_dir).map_err(io_err)?;
        let tmp = tmp_path(&path);
        if tmp.exists() {
            // A crash between writing the temp file and renaming it: the real file is intact.
            info!(path = %tmp.display(), "removing leftover temporary checkpoint file");
            std::fs::remove_file(&tmp).map_err(io_err)?;
        }
        let mut state = State::default();
        let previous_write = std::fs::metadata(&path).and_then(|m| m.modified()).ok();
        match std::fs::read(&path) {
            Ok(bytes) => {
                for entry in parse(&path, &bytes)? {
                    state.entries.insert(entry.file, entry);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(e)),
        }
        Ok(Checkpointer {
            path,
            previous_write,
            dir: state_dir.to_owned(),
            state: Mutex::new(state),
        })
    }

    /// When the checkpoint file was last written before this process opened it (`None` on a
    /// first start): roughly when the previous scrubd stopped.
    pub fn previous_write(&self) -> Option<std::time::SystemTime> {
        self.previous_write
    }

    /// Path of the checkpoint file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave the map half-updated (each method makes
        // one insert or remove), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The committed offset of `file`, if it has a checkpoint.
    pub fn get(&self, file: &FileId) -> Option<u64> {
        self.lock().entries.get(file).map(|e| e.offset)
    }

    /// A copy of `file`'s entry.
    pub fn entry(&self, file: &FileId) -> Option<CheckpointEntry> {
        self.lock().entries.get(file).cloned()
    }

    /// A copy of all entries.
    pub fn entries(&self) -> Vec<CheckpointEntry> {
        let mut v: Vec<_> = self.lock().entries.values().cloned().collect();
        v.sort_by(|a, b| a.path.cmp(&b.path).then(a.file.cmp(&b.file)));
        v
    }

    /// Records that `source` tails `file` at `path` (offset 0 if it is new). In memory only: a
    /// new file lost in a crash starts at 0 again, which is where it would start anyway.
    pub fn track(&self, file: &FileId, source: &str, path: &Path) {
        let mut st = self.lock();
        let path = path.to_string_lossy();
        let entry = st.entries.entry(*file).or_insert_with(|| CheckpointEntry {
            file: *file,
            source: source.to_owned(),
            path: path.to_string(),
            offset: 0,
            closed_at: None,
        });
        if entry.path != path {
            entry.path = path.into_owned();
        }
    }

    /// Records the last size the tailer saw, for [`Checkpointer::lag`].
    pub fn observe_size(&self, file: &FileId, size: u64) {
        self.lock().sizes.insert(*file, size);
    }

    /// Marks everything before `offset` in `file` as durably in the spool, and writes the
    /// checkpoint file.
    ///
    /// **Call this ONLY after the records before `offset` are durably in the spool.** Offsets
    /// never go backwards (an older commit arriving late is ignored). A file the checkpointer no
    /// longer knows (forgotten after it was fully committed) is ignored.
    pub fn commit(&self, file: &FileId, offset: u64) -> Result<(), SourceError> {
        self.commit_many([(*file, offset)])
    }

    /// [`Checkpointer::commit`] for several files, with one write.
    pub fn commit_many(&self, commits: impl IntoIterator<Item = (FileId, u64)>) -> Result<(), SourceError> {
        let mut st = self.lock();
        for (file, offset) in commits {
            let Some(entry) = st.entries.get_mut(&file) else {
                debug!(file = %file, offset, "commit for a file without checkpoint ignored");
                continue;
            };
            entry.offset = entry.offset.max(offset);
        }
        self.write(&st)
    }

    /// Records that the tailer is done with `file`, whose last byte ends at `end`.
    ///
    /// The entry stays after it is committed to `end` (fully archived), for as long as the file
    /// exists (the tailer forgets it once it is gone): its fingerprint is how a restarted tailer
    /// tells a rotated file it already read (`x.log.2`, `x.log.2.gz`) from one written while it
    /// was stopped.
    pub fn mark_closed(&self, file: &FileId, end: u64) -> Result<(), SourceError> {
        let mut st = self.lock();
        let Some(entry) = st.entries.get_mut(file) else {
            return Ok(());
        };
        entry.closed_at = Some(end);
        self.write(&st)
    }

    /// Whether `file` is closed and committed to its end.
    pub fn is_done(&self, file: &FileId) -> bool {
        self.lock().entries.get(file).is_some_and(CheckpointEntry::is_done)
    }

    /// Forgets `file` (it is gone, or was removed) and writes the checkpoint file.
    pub fn forget(&self, file: &FileId) -> Result<(), SourceError> {
        let mut st = self.lock();
        st.sizes.remove(file);
        if st.entries.remove(file).is_some() {
            self.write(&st)?;
        }
        Ok(())
    }

    /// Writes the checkpoint file now.
    pub fn flush(&self) -> Result<(), SourceError> {
        let st = self.lock();
        self.write(&st)
    }

    /// Checkpoint lag per file (last size seen minus committed offset), for metrics.
    pub fn lag(&self) -> Vec<CheckpointLag> {
        let st = self.lock();
        let mut v: Vec<_> = st
            .entries
            .values()
            .map(|e| {
                let size = st.sizes.get(&e.file).copied().or(e.closed_at).unwrap_or(e.offset);
                CheckpointLag {
                    file: e.file,
                    source: e.source.clone(),
                    path: e.path.clone(),
                    lag_bytes: size.saturating_sub(e.offset),
                }
            })
            .collect();
        v.sort_by(|a, b| a.path.cmp(&b.path).then(a.file.cmp(&b.file)));
        v
    }

    /// Temp file, fsync, rename, fsync of the directory.
    fn write(&self, st: &State) -> Result<(), SourceError> {
        let io_err = |error| SourceError::CheckpointIo {
            path: self.path.display().to_string(),
            error,
        };
        let mut files: Vec<_> = st.entries.values().cloned().collect();
        files.sort_by_key(|e| e.file);
        let content = CheckpointFile::V1 { files };
        let bytes = serde_json::to_vec_pretty(&content).map_err(|e| SourceError::CheckpointCorrupt {
            path: self.path.display().to_string(),
            message: e.to_string(),
        })?;
        let tmp = tmp_path(&self.path);
        {
            let mut f = File::create(&tmp).map_err(io_err)?;
            f.write_all(&bytes).map_err(io_err)?;
            f.sync_all().map_err(io_err)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io_err)?;
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(io_err)?;
        Ok(())
    }
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(".tmp");
    PathBuf::from(s)
}

/// Parses the checkpoint file, with a clear error for a version this build does not know.
fn parse(path: &Path, bytes: &[u8]) -> Result<Vec<CheckpointEntry>, SourceError> {
    let corrupt = |message: String| SourceError::CheckpointCorrupt {
        path: path.display().to_string(),
        message,
    };
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
    let version = match value.get("version") {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => return Err(corrupt("no \"version\" field".into())),
    };
    if version != "1" {
        return Err(SourceError::CheckpointVersion {
            path: path.display().to_string(),
            version,
        });
    }
    match serde_json::from_value::<CheckpointFile>(value) {
        Ok(CheckpointFile::V1 { files }) => Ok(files),
        Err(e) => Err(corrupt(e.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::Fingerprint;

    fn id(ino: u64) -> FileId {
        FileId {
            dev: 1,
            ino,
            fingerprint: Fingerprint::of(format!("file {ino}").as_bytes()),
        }
    }

    #[test]
    fn commit_persists_and_never_goes_back() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpointer::open(dir.path()).unwrap();
        cp.track(&id(1), "s", Path::new("/x/a.log"));
        cp.commit(&id(1), 100).unwrap();
        cp.commit(&id(1), 50).unwrap();
        cp.commit(&id(9), 50).unwrap();
        assert_eq!(cp.get(&id(1)), Some(100));
        assert_eq!(cp.get(&id(9)), None);
        let again = Checkpointer::open(dir.path()).unwrap();
        assert_eq!(again.get(&id(1)), Some(100));
        assert_eq!(again.entries()[0].path, "/x/a.log");
    }

    #[test]
    fn done_files_are_kept_until_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let cp = Checkpointer::open(dir.path()).unwrap();
        assert_eq!(cp.previous_write(), None);
        for i in [1, 2] {
            cp.track(&id(i), "s", Path::new("/x/a.log"));
            cp.commit(&id(i), 10).unwrap();
        }
        cp.mark_closed(&id(1), 20).unwrap();
        assert!(!cp.is_done(&id(1)));
        cp.observe_size(&id(1), 20);
        cp.observe_size(&id(2), 15);
        assert_eq!(cp.lag().iter().map(|l| l.lag_bytes).collect::<Vec<_>>(), vec![10, 5]);
        cp.commit_many([(id(1), 20), (id(2), 20)]).unwrap();
        assert!(cp.is_done(&id(1)));
        assert!(!cp.is_done(&id(2)));
        let again = Checkpointer::open(dir.path()).unwrap();
        assert!(again.previous_write().is_some());
        assert_eq!(again.entry(&id(1)).unwrap().closed_at, Some(20));
        again.forget(&id(1)).unwrap();
        assert_eq!(Checkpointer::open(dir.path()).unwrap().get(&id(1)), None);
    }
}
