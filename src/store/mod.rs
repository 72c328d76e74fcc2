//! Object stores: the [`ObjectStore`] trait and its implementations (S3-compatible, local
//! directory), plus a failure-injecting wrapper used by the tests.
//!
//! Must not: retry on its own (retries with backoff belong to the caller, which knows whether a
//! write is idempotent), or log object contents.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;

pub mod local_dir;
pub use local_dir::LocalDir;

use async_trait::async_trait;
use bytes::Bytes;

/// Metadata of one stored object.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// User metadata (`x-amz-meta-*`), keys lowercase.
    pub metadata: BTreeMap<String, String>,
}

/// Options of a put.
#[derive(Clone, Debug, Default)]
pub struct PutOptions {
    /// Hex sha256 of the body. The store verifies it (S3: `x-amz-checksum-sha256`) and the put
    /// fails if the stored bytes differ.
    pub sha256: String,
    pub content_type: Option<String>,
    /// User metadata, keys lowercase ASCII.
    pub metadata: BTreeMap<String, String>,
    /// Object tags, where the store supports them (ignored elsewhere).
    pub tags: BTreeMap<String, String>,
}

/// Why a store operation failed. `is_permanent` tells the caller whether retrying can help.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("object not found: {key}")]
    NotFound { key: String },
    #[error("access denied for {key}: {message}")]
    AccessDenied { key: String, message: String },
    #[error("bucket does not exist: {bucket}")]
    NoSuchBucket { bucket: String },
    #[error("checksum mismatch for {key}")]
    ChecksumMismatch { key: String },
    #[error("invalid request for {key}: {message}")]
    Invalid { key: String, message: String },
    #[error("transient failure on {key}: {message}")]
    Transient { key: String, message: String },
    #[error("i/o error on {key}: {source}")]
    Io { key: String, source: std::io::Error },
}

impl StoreError {
    /// Permanent errors (bad credentials, missing bucket, invalid request) will not go away by
    /// retrying; the caller should say so loudly and keep spooling.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            StoreError::AccessDenied { .. } | StoreError::NoSuchBucket { .. } | StoreError::Invalid { .. }
        )
    }
}

/// An object store. Keys are `/`-separated relative paths without `..` components.
#[async_trait]
pub trait ObjectStore: Send + Sync + std::fmt::Debug {
    /// Stores the file at `path` under `key`, replacing any object with that key. Returns only once
    /// the object is durable and its checksum confirmed against `opts.sha256`. Large files may be
    /// uploaded in parts. Idempotent: putting the same bytes twice leaves one object.
    async fn put_file(&self, key: &str, path: &Path, opts: &PutOptions) -> Result<(), StoreError>;

    /// Like [`ObjectStore::put_file`] for a body in memory.
    async fn put_bytes(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<(), StoreError>;

    /// Reads the whole object, or the byte range `range` of it (ranged GET).
    /// `NotFound` if there is no object with that key.
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StoreError>;

    /// Metadata of the object, or `None` if there is none with that key.
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError>;

    /// Every object whose key starts with `prefix`, in lexicographic key order, following
    /// pagination to the end. `metadata` is empty in listings.
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError>;

    /// Deletes the object. Idempotent: deleting a missing key succeeds.
    async fn delete(&self, key: &str) -> Result<(), StoreError>;

    /// A URL that allows a GET of `key` without credentials until `expires` has passed, where the
    /// store can make one.
    async fn presign_get(&self, key: &str, expires: std::time::Duration) -> Result<String, StoreError>;
}

/// `[store]`. Placeholder, replaced by the store implementations.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {}
