//! The spool: a directory where sealed archives wait, durably, until they are uploaded.
//!
//! An entry is two files, `<stem>.zst` (the archive object) and `<stem>.json` (its manifest),
//! where the stem is the archive key with `/` flattened to `+`. Each is written to a temp file,
//! fsynced and renamed; the manifest goes last and commits the entry; then the directory is
//! fsynced. Removal goes the other way (manifest first), so after a crash an archive without a
//! manifest is never a committed entry and can be deleted.
//!
//! Must not: delete a committed entry except after its upload (or move to quarantine); refuse a
//! write because it is full (the caller checks [`Spool::has_room`] and stops reading instead).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;
use tracing::{info, warn};

use super::{ArchiveError, Manifest, SpoolConfig};

const TMP_PREFIX: &str = ".tmp-";
const ARCHIVE_EXT: &str = "zst";
const MANIFEST_EXT: &str = "json";
const NOTE_SUFFIX: &str = ".note.json";

/// A sealed archive, durably in the spool.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sealed {
    pub archive_path: PathBuf,
    pub manifest_path: PathBuf,
    /// Shared with the rescan and the after-upload hook without copying its record table.
    pub manifest: Arc<Manifest>,
    /// The rescan of the records as they were sealed, if the sealer ran it. In memory only: an
    /// entry found in the spool at startup has none.
    pub prescan: Option<Prescan>,
}

/// What the pre-upload rescan found in an archive's records, run by the sealer on the records
/// it had in hand (no decompression) with the rules `rules` ([`crate::archive::Rescan::rules_of`]).
/// The uploader takes it instead of rescanning only while those are still the current rules,
/// and only after the archive's sha256 matches its manifest.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prescan {
    pub rules: u64,
    /// Rule name → count; empty means clean.
    pub findings: BTreeMap<String, u64>,
}

/// The spool directory and its quarantine. Shared (`Arc`) between the archiver that writes and
/// the uploader that removes.
#[derive(Debug)]
pub struct Spool {
    dir: PathBuf,
    quarantine_dir: PathBuf,
    max_bytes: u64,
    min_free_bytes: u64,
    used: AtomicU64,
}

/// Why an archive was quarantined, written next to it. Rule names and counts only, never values.
#[derive(Debug, Serialize)]
struct QuarantineNote<'a> {
    key: &'a str,
    reason: &'a str,
    /// Values found per rule by the rescan.
    findings: &'a BTreeMap<String, u64>,
    record_count: u64,
    quarantined_at_ms: i64,
}

impl Spool {
    /// Opens (creating) the spool and quarantine directories. Call [`Spool::scan`] once at startup,
    /// before the first write, to clean up after a crash and find the entries still to upload.
    pub fn open(
        dir: impl Into<PathBuf>,
        quarantine_dir: impl Into<PathBuf>,
        max_bytes: u64,
        min_free_bytes: u64,
    ) -> Result<Spool, ArchiveError> {
        let (dir, quarantine_dir) = (dir.into(), quarantine_dir.into());
        std::fs::create_dir_all(&dir).map_err(ArchiveError::io(&dir))?;
        std::fs::create_dir_all(&quarantine_dir).map_err(ArchiveError::io(&quarantine_dir))?;
        let spool = Spool {
            dir,
            quarantine_dir,
            max_bytes,
            min_free_bytes,
            used: AtomicU64::new(0),
        };
        spool.used.store(spool.measure()?, Ordering::SeqCst);
        Ok(spool)
    }

    /// Opens the spool `config` describes, defaults resolved under `state_dir`.
    pub fn from_config(config: &SpoolConfig, state_dir: &Path) -> Result<Spool, ArchiveError> {
        Spool::open(
            config.resolved_dir(state_dir),
            config.resolved_quarantine_dir(state_dir),
            config.max_bytes.as_u64(),
            config.min_free_bytes.as_u64(),
        )
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn quarantine_dir(&self) -> &Path {
        &self.quarantine_dir
    }

    /// Bytes of the files in the spool (archives, manifests, leftovers).
    pub fn used_bytes(&self) -> u64 {
        self.used.load(Ordering::SeqCst)
    }

    /// Free bytes on the spool's file system, for an unprivileged user.
    pub fn free_bytes(&self) -> Result<u64, ArchiveError> {
        free_bytes(&self.dir).map_err(ArchiveError::io(&self.dir))
    }

    /// False when the spool holds `max_bytes` or more, or its file system has less than
    /// `min_free_bytes` free: the caller must stop reading until it is true again. Also false when
    /// the free space cannot be read (fail closed: pausing loses nothing).
    pub fn has_room(&self) -> bool {
        if self.used_bytes() >= self.max_bytes {
            return false;
        }
        match self.free_bytes() {
            Ok(free) => free >= self.min_free_bytes,
            Err(error) => {
                warn!(dir = %self.dir.display(), %error, "cannot read free space of the spool; pausing");
                false
            }
        }
    }

    fn measure(&self) -> Result<u64, ArchiveError> {
        let mut total = 0;
        for entry in std::fs::read_dir(&self.dir).map_err(ArchiveError::io(&self.dir))? {
            let entry = entry.map_err(ArchiveError::io(&self.dir))?;
            if let Ok(meta) = entry.metadata()
                && meta.is_file()
            {
                total += meta.len();
            }
        }
        Ok(total)
    }

    /// `<stem>` of the spool files of an archive key.
    pub fn stem(key: &str) -> String {
        let inner = key.strip_prefix("archives/").unwrap_or(key);
        let inner = inner.strip_suffix(".zst").unwrap_or(inner);
        // Key components are sanitized to `[A-Za-z0-9._~=-]`, so `+` cannot clash.
        inner.replace('/', "+")
    }

    /// Writes an archive and its manifest durably (temp, fsync, rename; manifest last; fsync of
    /// the directory). An entry with the same key is replaced.
    ///
    /// Callers: after a restart, resume each file after the `end_offset` of its entries found by
    /// [`Spool::scan`] (even if the checkpoint is behind, when the crash came between sealing and
    /// checkpointing), so that a spooled entry is never re-sealed while the uploader works on it.
    pub fn write(&self, manifest: Manifest, object: &[u8]) -> Result<Sealed, ArchiveError> {
        let stem = Spool::stem(&manifest.key);
        let archive_path = self.dir.join(format!("{stem}.{ARCHIVE_EXT}"));
        let manifest_path = self.dir.join(format!("{stem}.{MANIFEST_EXT}"));
        let replaced = file_len(&archive_path) + file_len(&manifest_path);
        write_durably(&self.dir, &archive_path, object)?;
        // Streamed to the file: a manifest is several times the size of its archive on logs of
        // small records, and a buffer that size would only be faulted in to be thrown away.
        let json_len = write_durably_with(&self.dir, &manifest_path, |w| {
            serde_json::to_writer(w, &manifest).map_err(std::io::Error::other)
        })?;
        sync_dir(&self.dir)?;
        self.used.fetch_add(object.len() as u64 + json_len, Ordering::SeqCst);
        self.sub_used(replaced);
        Ok(Sealed {
            archive_path,
            manifest_path,
            manifest: Arc::new(manifest),
            prescan: None,
        })
    }

    /// Removes an uploaded entry: manifest first (uncommitting it), then the archive.
    pub fn remove(&self, entry: &Sealed) -> Result<(), ArchiveError> {
        let freed = file_len(&entry.manifest_path) + file_len(&entry.archive_path);
        remove_if_exists(&entry.manifest_path)?;
        remove_if_exists(&entry.archive_path)?;
        sync_dir(&self.dir)?;
        self.sub_used(freed);
        Ok(())
    }

    fn sub_used(&self, n: u64) {
        let _ = self
            .used
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |u| Some(u.saturating_sub(n)));
    }

    /// Moves an entry out of the upload path into the quarantine directory, with a note naming the
    /// rules that fired and their counts (never values). Returns the quarantined archive's path.
    pub fn quarantine(
        &self,
        entry: &Sealed,
        findings: &BTreeMap<String, u64>,
        reason: &str,
    ) -> Result<PathBuf, ArchiveError> {
        let stem = Spool::stem(&entry.manifest.key);
        let q = &self.quarantine_dir;
        let note = QuarantineNote {
            key: &entry.manifest.key,
            reason,
            findings,
            record_count: entry.manifest.record_count,
            quarantined_at_ms: chrono::Utc::now().timestamp_millis(),
        };
        let note_path = q.join(format!("{stem}{NOTE_SUFFIX}"));
        let json = serde_json::to_vec_pretty(&note).map_err(|e| ArchiveError::Io {
            path: note_path.clone(),
            source: std::io::Error::other(e),
        })?;
        let freed = file_len(&entry.manifest_path) + file_len(&entry.archive_path);
        write_durably(q, &note_path, &json)?;
        // Archive first: a crash in between leaves a manifest without archive, which scan
        // finishes moving (see `scan`).
        let q_archive = q.join(format!("{stem}.{ARCHIVE_EXT}"));
        move_file(&entry.archive_path, &q_archive, q)?;
        move_file(&entry.manifest_path, &q.join(format!("{stem}.{MANIFEST_EXT}")), q)?;
        sync_dir(q)?;
        sync_dir(&self.dir)?;
        self.sub_used(freed);
        Ok(q_archive)
    }

    /// Cleans up after a crash and returns the committed entries, oldest first: temp files are
    /// removed, an archive without a manifest is removed (never committed, so nothing upstream
    /// treated its records as done), a manifest whose archive was already moved to quarantine is
    /// moved after it, and an entry whose files disagree is quarantined rather than lost.
    pub fn scan(&self) -> Result<Vec<Sealed>, ArchiveError> {
        let mut names = Vec::new();
        for entry in std::fs::read_dir(&self.dir).map_err(ArchiveError::io(&self.dir))? {
            let entry = entry.map_err(ArchiveError::io(&self.dir))?;
            if entry.file_type().map(|t| t.is_file()).unwrap_or(false) {
                names.push(entry.file_name().to_string_lossy().into_owned());
            }
        }
        names.sort();
        let present: std::collections::HashSet<&str> = names.iter().map(String::as_str).collect();
        let mut entries = Vec::new();
        let mut changed = false;
        for name in &names {
            let path = self.dir.join(name);
            if name.starts_with(TMP_PREFIX) {
                info!(path = %path.display(), "removing temp file left by a crash");
                remove_if_exists(&path)?;
                changed = true;
            } else if let Some(stem) = name.strip_suffix(&format!(".{ARCHIVE_EXT}")) {
                if !present.contains(format!("{stem}.{MANIFEST_EXT}").as_str()) {
                    info!(path = %path.display(), "removing archive without manifest (never committed)");
                    remove_if_exists(&path)?;
                    changed = true;
                }
            } else if let Some(stem) = name.strip_suffix(&format!(".{MANIFEST_EXT}")) {
                changed |= self.scan_manifest(stem, &path, &mut entries)?;
            } else {
                warn!(path = %path.display(), "unexpected file in the spool; leaving it");
            }
        }
        if changed {
            sync_dir(&self.dir)?;
        }
        self.used.store(self.measure()?, Ordering::SeqCst);
        entries.sort_by(|a: &Sealed, b| {
            (a.manifest.sealed_at_ms, &a.manifest.key).cmp(&(b.manifest.sealed_at_ms, &b.manifest.key))
        });
        Ok(entries)
    }

    /// One `<stem>.json` of the scan; returns whether it changed the directory.
    fn scan_manifest(&self, stem: &str, path: &Path, entries: &mut Vec<Sealed>) -> Result<bool, ArchiveError> {
        let archive_path = self.dir.join(format!("{stem}.{ARCHIVE_EXT}"));
        let manifest: Option<Manifest> = std::fs::read(path)
            .map_err(ArchiveError::io(path))
            .map(|b| serde_json::from_slice(&b).ok())?;
        let archive_len = std::fs::metadata(&archive_path).ok().map(|m| m.len());
        let q_archive = self.quarantine_dir.join(format!("{stem}.{ARCHIVE_EXT}"));
        match (manifest, archive_len) {
            (Some(m), Some(len)) if len == m.compressed_bytes && Spool::stem(&m.key) == stem => {
                entries.push(Sealed {
                    archive_path,
                    manifest_path: path.to_path_buf(),
                    manifest: Arc::new(m),
                    prescan: None,
                });
                Ok(false)
            }
            (_, None) if q_archive.exists() => {
                info!(path = %path.display(), "finishing an interrupted quarantine");
                move_file(
                    path,
                    &self.quarantine_dir.join(format!("{stem}.{MANIFEST_EXT}")),
                    &self.quarantine_dir,
                )?;
                sync_dir(&self.quarantine_dir)?;
                Ok(true)
            }
            (_, None) => {
                // Only removal (after upload) leaves this: it deletes the manifest first, so this
                // cannot normally be seen; without an archive there is nothing to upload.
                warn!(path = %path.display(), "removing manifest without archive");
                remove_if_exists(path)?;
                Ok(true)
            }
            (m, Some(_)) => {
                let key = m.map(|m| m.key).unwrap_or_else(|| stem.to_string());
                warn!(path = %path.display(), "spool entry is inconsistent; quarantining it");
                let note = QuarantineNote {
                    key: &key,
                    reason: "manifest unreadable or disagreeing with its archive in the spool",
                    findings: &BTreeMap::new(),
                    record_count: 0,
                    quarantined_at_ms: chrono::Utc::now().timestamp_millis(),
                };
                let q = &self.quarantine_dir;
                let json = serde_json::to_vec_pretty(&note).unwrap_or_default();
                write_durably(q, &q.join(format!("{stem}{NOTE_SUFFIX}")), &json)?;
                move_file(&archive_path, &q_archive, q)?;
                move_file(path, &q.join(format!("{stem}.{MANIFEST_EXT}")), q)?;
                sync_dir(q)?;
                Ok(true)
            }
        }
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Writes `body` to `path` through a temp file in `dir`: write, fsync, rename. The caller fsyncs
/// the directory.
fn write_durably(dir: &Path, path: &Path, body: &[u8]) -> Result<(), ArchiveError> {
    write_durably_with(dir, path, |w| w.write_all(body)).map(|_| ())
}

/// [`write_durably`], the body written by `write` through a buffer; returns its length.
fn write_durably_with(
    dir: &Path,
    path: &Path,
    write: impl FnOnce(&mut std::io::BufWriter<&std::fs::File>) -> std::io::Result<()>,
) -> Result<u64, ArchiveError> {
    let tmp = tempfile::Builder::new()
        .prefix(TMP_PREFIX)
        .tempfile_in(dir)
        .map_err(ArchiveError::io(dir))?;
    let mut w = std::io::BufWriter::with_capacity(64 * 1024, tmp.as_file());
    write(&mut w)
        .and_then(|()| w.flush())
        .map_err(ArchiveError::io(tmp.path()))?;
    drop(w);
    let len = tmp.as_file().metadata().map_err(ArchiveError::io(tmp.path()))?.len();
    tmp.as_file().sync_all().map_err(ArchiveError::io(tmp.path()))?;
    tmp.persist(path).map_err(|e| ArchiveError::Io {
        path: path.to_path_buf(),
        source: e.error,
    })?;
    Ok(len)
}

fn sync_dir(dir: &Path) -> Result<(), ArchiveError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(ArchiveError::io(dir))
}

fn remove_if_exists(path: &Path) -> Result<(), ArchiveError> {
    match std::fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(ArchiveError::Io {
            path: path.to_path_buf(),
            source: e,
        }),
        _ => Ok(()),
    }
}

/// Renames `from` to `to`; across file systems, copies durably into `to_dir` and removes `from`.
fn move_file(from: &Path, to: &Path, to_dir: &Path) -> Result<(), ArchiveError> {
    match std::fs::rename(from, to) {
        Ok(()) => Ok(()),
        Err(e) if e.raw_os_error() == Some(libc::EXDEV) => {
            let body = std::fs::read(from).map_err(ArchiveError::io(from))?;
            write_durably(to_dir, to, &body)?;
            sync_dir(to_dir)?;
            remove_if_exists(from)
        }
        Err(source) => Err(ArchiveError::Io {
            path: from.to_path_buf(),
            source,
        }),
    }
}

fn free_bytes(dir: &Path) -> std::io::Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c` is a valid NUL-terminated path and `st` a valid, writable statvfs.
    let rc = unsafe { libc::statvfs(c.as_ptr(), &mut st) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok((st.f_bavail as u64).saturating_mul(st.f_frsize as u64))
}
