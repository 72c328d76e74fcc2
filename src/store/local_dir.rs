//! A local directory as an object store: the embedded default for `scrubd run` on a fresh machine,
//! and a place to archive to on hosts without a bucket.
//!
//! Objects are files under the root, at their key; user metadata is a `.meta.json` sidecar next to
//! the object. Writes go to a temp file, are fsynced and renamed, and the directory is fsynced, so
//! a crash leaves either the old object or the new one.

use std::collections::BTreeMap;
use std::io::{Read, Seek, SeekFrom, Write};
use std::ops::Range;
use std::path::{Component, Path, PathBuf};

use async_trait::async_trait;
use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{ObjectMeta, ObjectStore, PutOptions, StoreError};

const META_SUFFIX: &str = ".meta.json";
const TMP_PREFIX: &str = ".tmp-";

#[derive(Debug, Clone)]
pub struct LocalDir {
    root: PathBuf,
}

impl LocalDir {
    /// A store rooted at `root`, created if missing.
    pub fn new(root: impl Into<PathBuf>) -> std::io::Result<LocalDir> {
        let root = root.into();
        std::fs::create_dir_all(&root)?;
        Ok(LocalDir { root })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        let rel = Path::new(key);
        // `Path::components` would normalise `a//b` and `a/./b` away: check the segments first.
        let valid = super::valid_key(key)
            && !key.ends_with(META_SUFFIX)
            && rel
                .components()
                .all(|c| matches!(c, Component::Normal(s) if !s.to_string_lossy().starts_with(TMP_PREFIX)));
        if !valid {
            return Err(StoreError::Invalid {
                key: key.to_string(),
                message: "invalid object key".into(),
            });
        }
        Ok(self.root.join(rel))
    }

    /// Copies `body` into a temp file next to the object while hashing it, checks the sha256,
    /// then makes the metadata sidecar and the object durable. Memory stays bounded whatever the
    /// size of the body.
    fn write_atomic(&self, key: &str, body: &mut dyn Read, opts: &PutOptions) -> Result<(), StoreError> {
        let io = |source| StoreError::Io {
            key: key.to_string(),
            source,
        };
        let path = self.path(key)?;
        let dir = path.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&dir).map_err(io)?;
        let mut tmp = tempfile::Builder::new()
            .prefix(TMP_PREFIX)
            .tempfile_in(&dir)
            .map_err(io)?;
        let mut hasher = Sha256::new();
        // On the stack: a fresh heap buffer of this size is a new mapping, its every page
        // faulted in again on each put.
        let mut buf = [0u8; 64 * 1024];
        loop {
            let n = match body.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(io(e)),
            };
            hasher.update(&buf[..n]);
            tmp.write_all(&buf[..n]).map_err(io)?;
        }
        let actual = hex::encode(hasher.finalize());
        if !opts.sha256.is_empty() && !actual.eq_ignore_ascii_case(&opts.sha256) {
            // The temp file is removed on drop: nothing of the rejected body remains.
            return Err(StoreError::ChecksumMismatch { key: key.to_string() });
        }
        tmp.as_file().sync_all().map_err(io)?;
        let meta = serde_json::to_vec(&opts.metadata).map_err(|e| io(std::io::Error::other(e)))?;
        let meta_path = PathBuf::from(format!("{}{META_SUFFIX}", path.display()));
        write_file_durably(&dir, &meta_path, &meta).map_err(io)?;
        tmp.persist(&path).map_err(|e| io(e.error))?;
        std::fs::File::open(&dir).and_then(|d| d.sync_all()).map_err(io)?;
        Ok(())
    }
}

/// Writes `body` to `path` through a temp file in `dir`: write, fsync, rename, fsync the directory.
fn write_file_durably(dir: &Path, path: &Path, body: &[u8]) -> std::io::Result<()> {
    let mut tmp = tempfile::Builder::new().prefix(TMP_PREFIX).tempfile_in(dir)?;
    tmp.write_all(body)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    std::fs::File::open(dir)?.sync_all()
}

/// A panicked blocking task as a store error instead of a panic in the caller.
fn joined<T>(key: &str, r: Result<Result<T, StoreError>, tokio::task::JoinError>) -> Result<T, StoreError> {
    r.unwrap_or_else(|e| {
        Err(StoreError::Io {
            key: key.to_string(),
            source: std::io::Error::other(format!("local store task failed: {e}")),
        })
    })
}

#[async_trait]
impl ObjectStore for LocalDir {
    async fn put_file(&self, key: &str, path: &Path, opts: &PutOptions) -> Result<(), StoreError> {
        let this = self.clone();
        let (k, path, opts) = (key.to_string(), path.to_path_buf(), opts.clone());
        let task = tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&path).map_err(|source| StoreError::Io { key: k.clone(), source })?;
            this.write_atomic(&k, &mut file, &opts)
        });
        joined(key, task.await)
    }

    async fn put_bytes(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        let this = self.clone();
        let (k, opts) = (key.to_string(), opts.clone());
        let task = tokio::task::spawn_blocking(move || this.write_atomic(&k, &mut &body[..], &opts));
        joined(key, task.await)
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StoreError> {
        let path = self.path(key)?;
        let outer_key = key;
        let key = key.to_string();
        let task = tokio::task::spawn_blocking(move || {
            let io = |source: std::io::Error| match source.kind() {
                std::io::ErrorKind::NotFound => StoreError::NotFound { key: key.clone() },
                _ => StoreError::Io {
                    key: key.clone(),
                    source,
                },
            };
            let mut file = std::fs::File::open(&path).map_err(io)?;
            let mut buf = Vec::new();
            match range {
                None => {
                    file.read_to_end(&mut buf).map_err(io)?;
                }
                Some(r) => {
                    let size = file.metadata().map_err(io)?.len();
                    if r.start > r.end || r.start >= size {
                        return Err(StoreError::Invalid {
                            key: key.clone(),
                            message: format!("range {r:?} outside object of {size} bytes"),
                        });
                    }
                    file.seek(SeekFrom::Start(r.start)).map_err(io)?;
                    file.take(r.end.min(size) - r.start).read_to_end(&mut buf).map_err(io)?;
                }
            }
            Ok(Bytes::from(buf))
        });
        joined(outer_key, task.await)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let path = self.path(key)?;
        let size = match tokio::fs::metadata(&path).await {
            Ok(m) if m.is_file() => m.len(),
            Ok(_) => return Ok(None),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(source) => {
                return Err(StoreError::Io {
                    key: key.to_string(),
                    source,
                });
            }
        };
        let metadata = match tokio::fs::read(format!("{}{META_SUFFIX}", path.display())).await {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_default(),
            Err(_) => BTreeMap::new(),
        };
        Ok(Some(ObjectMeta {
            key: key.to_string(),
            size,
            metadata,
        }))
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let root = self.root.clone();
        let outer_prefix = prefix;
        let prefix = prefix.to_string();
        let task = tokio::task::spawn_blocking(move || {
            // Only walk the deepest directory the prefix names fully.
            let start = match prefix.rfind('/') {
                Some(i) => root.join(&prefix[..i]),
                None => root.clone(),
            };
            let mut out = Vec::new();
            let mut stack = vec![start];
            while let Some(dir) = stack.pop() {
                let entries = match std::fs::read_dir(&dir) {
                    Ok(e) => e,
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(source) => {
                        return Err(StoreError::Io {
                            key: prefix.clone(),
                            source,
                        });
                    }
                };
                for entry in entries {
                    let entry = entry.map_err(|source| StoreError::Io {
                        key: prefix.clone(),
                        source,
                    })?;
                    let ft = entry.file_type().map_err(|source| StoreError::Io {
                        key: prefix.clone(),
                        source,
                    })?;
                    let path = entry.path();
                    if ft.is_dir() {
                        stack.push(path);
                        continue;
                    }
                    let Ok(rel) = path.strip_prefix(&root) else { continue };
                    let key = rel.to_string_lossy().replace(std::path::MAIN_SEPARATOR, "/");
                    let name = entry.file_name().to_string_lossy().into_owned();
                    if !key.starts_with(&prefix) || name.ends_with(META_SUFFIX) || name.starts_with(TMP_PREFIX) {
                        continue;
                    }
                    let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
                    out.push(ObjectMeta {
                        key,
                        size,
                        metadata: BTreeMap::new(),
                    });
                }
            }
            out.sort_by(|a, b| a.key.cmp(&b.key));
            Ok(out)
        });
        joined(outer_prefix, task.await)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        for p in [PathBuf::from(format!("{}{META_SUFFIX}", path.display())), path] {
            match tokio::fs::remove_file(&p).await {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(StoreError::Io {
                        key: key.to_string(),
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    async fn presign_get(&self, key: &str, _expires: std::time::Duration) -> Result<String, StoreError> {
        Ok(format!("file://{}", self.path(key)?.display()))
    }
}
