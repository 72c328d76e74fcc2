//! Object stores: the [`ObjectStore`] trait and its implementations (S3-compatible in [`s3`], local
//! directory in [`local_dir`]), [`open`] to build one from `[store]`, and [`Faulty`], a
//! failure-injecting wrapper for the tests of the stages that use a store.
//!
//! Must not: retry on its own (retries with backoff belong to the caller, which knows whether a
//! write is idempotent), log object contents, or log credentials.

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

pub mod faulty;
pub mod local_dir;
pub mod s3;
pub use faulty::{Fault, Faulty, Op};
pub use local_dir::LocalDir;
pub use s3::S3Store;

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
    /// The `[store]` configuration cannot work (missing bucket, unreadable credential file...).
    #[error("invalid store configuration: {field}: {message}")]
    Config { field: &'static str, message: String },
}

impl StoreError {
    /// Permanent errors (bad credentials, missing bucket, invalid request) will not go away by
    /// retrying; the caller should say so loudly and keep spooling.
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            StoreError::AccessDenied { .. }
                | StoreError::NoSuchBucket { .. }
                | StoreError::Invalid { .. }
                | StoreError::Config { .. }
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

/// Whether `key` is a valid object key: `/`-separated segments, none of them empty, `.` or `..`
/// (so no leading or trailing `/` either). Stores reject other keys as [`StoreError::Invalid`].
pub fn valid_key(key: &str) -> bool {
    !key.is_empty() && key.split('/').all(|c| !c.is_empty() && c != "." && c != "..")
}

/// A shared store is a store: lets [`Faulty`] wrap an `Arc<dyn ObjectStore>`.
#[async_trait]
impl<T: ObjectStore + ?Sized> ObjectStore for Arc<T> {
    async fn put_file(&self, key: &str, path: &Path, opts: &PutOptions) -> Result<(), StoreError> {
        (**self).put_file(key, path, opts).await
    }
    async fn put_bytes(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        (**self).put_bytes(key, body, opts).await
    }
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StoreError> {
        (**self).get(key, range).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        (**self).head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        (**self).list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        (**self).delete(key).await
    }
    async fn presign_get(&self, key: &str, expires: std::time::Duration) -> Result<String, StoreError> {
        (**self).presign_get(key, expires).await
    }
}

/// Builds the store `[store]` describes. For S3 this resolves credentials and the region (which
/// may ask the instance metadata service) but sends no request to the bucket.
pub async fn open(cfg: &StoreConfig) -> Result<Arc<dyn ObjectStore>, StoreError> {
    match cfg.kind {
        StoreKind::Local => {
            let store = LocalDir::new(&cfg.path).map_err(|e| StoreError::Config {
                field: "path",
                message: format!("cannot create {}: {e}", cfg.path.display()),
            })?;
            Ok(Arc::new(store))
        }
        StoreKind::S3 => Ok(Arc::new(S3Store::new(cfg).await?)),
    }
}

/// `[store]`: where archives and index segments go.
#[derive(Clone, Debug, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreConfig {
    /// `local` (a directory, the default: works on a fresh machine) or `s3` (any S3-compatible
    /// store: AWS, MinIO, Garage, Ceph, R2, SeaweedFS).
    pub kind: StoreKind,
    /// `local`: the directory objects are written under.
    pub path: PathBuf,
    /// `s3`: the bucket. It must exist; scrubd never creates buckets.
    pub bucket: String,
    /// `s3`: a key prefix under which everything is stored (`/` is appended if missing), so one
    /// bucket can hold several deployments.
    pub prefix: String,
    /// `s3`: endpoint URL of a non-AWS store (`http://127.0.0.1:8333`); empty means AWS.
    pub endpoint: String,
    /// `s3`: region; empty means the standard chain (`AWS_REGION`, profile, IMDS), then
    /// `us-east-1`.
    pub region: String,
    /// `s3`: path-style addressing (`endpoint/bucket/key`), which most self-hosted stores need.
    pub force_path_style: bool,
    /// `s3`: file holding the access key id (with `secret_access_key_file`). Without these and
    /// without `credential`, credentials come from the standard chain: environment, profile, web
    /// identity, instance metadata.
    pub access_key_id_file: Option<PathBuf>,
    /// `s3`: file holding the secret access key (with `access_key_id_file`).
    pub secret_access_key_file: Option<PathBuf>,
    /// `s3`: name of a systemd credential (`LoadCredential=`), read from
    /// `$CREDENTIALS_DIRECTORY/<name>`, in the AWS credentials-file format
    /// (`aws_access_key_id = ...`, `aws_secret_access_key = ...`, optional `aws_session_token`).
    pub credential: Option<String>,
    /// `s3`: bodies of at least this size are uploaded in parts (multipart upload).
    pub multipart_threshold: bytesize::ByteSize,
    /// `s3`: size of one part of a multipart upload (5 MiB to 5 GiB); also bounds the memory one
    /// upload takes, since each part is read and hashed before it is sent.
    pub part_size: bytesize::ByteSize,
    /// `s3`: server-side encryption: `none`, `aes256` (SSE-S3) or `aws:kms` (SSE-KMS).
    pub sse: Sse,
    /// `s3`: KMS key id or ARN for `sse = "aws:kms"`; empty means the bucket's default key.
    pub kms_key_id: String,
    /// `s3`: storage class of new objects (`STANDARD`, `STANDARD_IA`, ...); empty means the
    /// bucket's default.
    pub storage_class: String,
    /// `s3`: tags put on every object, where the store supports tagging (per-put tags override
    /// these).
    pub tags: BTreeMap<String, String>,
    /// `s3`: how the integrity of a put is confirmed: `sha256` (`x-amz-checksum-sha256`, checked
    /// by the store and read back) or `md5` (`Content-MD5`, which Object Lock buckets require and
    /// every store supports).
    pub checksum: ChecksumKind,
    /// `s3`: when the SDK adds its own checksums to requests. `when_required` (default) sends the
    /// body plainly with our explicit checksum header; `when_supported` lets the SDK stream it
    /// `aws-chunked` with a CRC32 trailer, which some stores reject or store corrupted over
    /// plain http.
    pub request_checksum_calculation: ChecksumCalculation,
    /// `s3`: time to establish a connection.
    #[serde(with = "crate::config::humantime_serde_compat")]
    pub connect_timeout: Duration,
    /// `s3`: time one request (one attempt, e.g. one part of a multipart upload) may take.
    #[serde(with = "crate::config::humantime_serde_compat")]
    pub request_timeout: Duration,
    /// `s3`: keys asked for per list request (`max-keys`, at most 1000).
    pub list_page_size: u32,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            kind: StoreKind::Local,
            path: PathBuf::from("scrubd-state/store"),
            bucket: String::new(),
            prefix: String::new(),
            endpoint: String::new(),
            region: String::new(),
            force_path_style: false,
            access_key_id_file: None,
            secret_access_key_file: None,
            credential: None,
            multipart_threshold: bytesize::ByteSize::mib(64),
            part_size: bytesize::ByteSize::mib(16),
            sse: Sse::None,
            kms_key_id: String::new(),
            storage_class: String::new(),
            tags: BTreeMap::new(),
            checksum: ChecksumKind::Sha256,
            request_checksum_calculation: ChecksumCalculation::WhenRequired,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(300),
            list_page_size: 1000,
        }
    }
}

/// Which store implementation `[store]` selects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StoreKind {
    #[default]
    Local,
    S3,
}

/// Server-side encryption of new objects.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
pub enum Sse {
    #[default]
    #[serde(rename = "none")]
    None,
    #[serde(rename = "aes256")]
    Aes256,
    #[serde(rename = "aws:kms")]
    AwsKms,
}

/// How a put's integrity is confirmed by the store.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChecksumKind {
    #[default]
    Sha256,
    Md5,
}

/// When the SDK computes request checksums of its own.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumCalculation {
    #[default]
    WhenRequired,
    WhenSupported,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml: &str, expect: Result<(), &str>) {
        let got: Result<StoreConfig, _> = ::config::Config::builder()
            .add_source(::config::File::from_str(toml, ::config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize());
        match (got, expect) {
            (Ok(_), Ok(())) => {}
            (Err(e), Err(needle)) => assert!(e.to_string().contains(needle), "{toml:?}: {e} lacks {needle:?}"),
            (got, expect) => panic!("{toml:?}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn config_parses_and_rejects() {
        check("", Ok(()));
        check("kind = \"local\"\npath = \"/tmp/x\"", Ok(()));
        check(
            "kind = \"s3\"\nbucket = \"b\"\nsse = \"aws:kms\"\nkms_key_id = \"k\"\nchecksum = \"md5\"\n\
             request_checksum_calculation = \"when_supported\"\npart_size = \"8 MiB\"\n\
             request_timeout = \"30s\"\n[tags]\nteam = \"ops\"",
            Ok(()),
        );
        check("kind = \"gcs\"", Err("gcs"));
        check("buckett = \"b\"", Err("buckett"));
        check("sse = \"aes\"", Err("aes"));
        check("request_timeout = \"soon\"", Err("soon"));
    }
}
