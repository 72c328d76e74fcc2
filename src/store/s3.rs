//! The S3-compatible object store (AWS, MinIO, Garage, Ceph, R2, SeaweedFS), on `aws-sdk-s3`.
//!
//! Every put carries an explicit checksum (`x-amz-checksum-sha256`, or `Content-MD5` with
//! `checksum = "md5"`) that the store verifies, and the checksum the store reports back is
//! compared with ours before the put counts as done; a store that confirms nothing is an error, not
//! a success. Large bodies go up in parts, read from the file one part at a time.
//!
//! Must not: retry (the SDK's retries are off; the caller retries with backoff), let the SDK
//! stream bodies `aws-chunked` unless configured to (see [`super::ChecksumCalculation`]), log
//! object contents or credentials, or create buckets.

use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::retry::RetryConfig;
use aws_sdk_s3::config::timeout::TimeoutConfig;
use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region, RequestChecksumCalculation};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::presigning::PresigningConfig;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{
    ChecksumAlgorithm, ChecksumMode, CompletedMultipartUpload, CompletedPart, ServerSideEncryption, StorageClass,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use bytes::Bytes;
use md5::Md5;
use sha2::{Digest, Sha256};
use tracing::{debug, warn};

use super::{ChecksumCalculation, ChecksumKind, ObjectMeta, ObjectStore, PutOptions, Sse, StoreConfig, StoreError};

/// S3's smallest part (all but the last) and largest part.
const MIN_PART: u64 = 5 * 1024 * 1024;
const MAX_PART: u64 = 5 * 1024 * 1024 * 1024;
/// S3 allows at most this many parts in one upload.
const MAX_PARTS: u64 = 10_000;

/// An S3 bucket (under an optional key prefix) as an [`ObjectStore`].
#[derive(Clone, Debug)]
pub struct S3Store {
    client: Client,
    bucket: String,
    /// Empty or ending with `/`.
    prefix: String,
    settings: Settings,
}

/// The parts of `[store]` used per request.
#[derive(Clone, Debug)]
struct Settings {
    multipart_threshold: u64,
    part_size: u64,
    sse: Sse,
    kms_key_id: String,
    storage_class: String,
    tags: std::collections::BTreeMap<String, String>,
    checksum: ChecksumKind,
    list_page_size: i32,
}

/// The body of a put: a file (read part by part) or bytes in memory.
enum Body<'a> {
    File(&'a Path),
    Bytes(Bytes),
}

impl Body<'_> {
    async fn len(&self, key: &str) -> Result<u64, StoreError> {
        match self {
            Body::File(p) => tokio::fs::metadata(p)
                .await
                .map(|m| m.len())
                .map_err(|source| StoreError::Io {
                    key: key.to_string(),
                    source,
                }),
            Body::Bytes(b) => Ok(b.len() as u64),
        }
    }

    /// Reads `len` bytes at `offset`.
    async fn read(&self, key: &str, offset: u64, len: u64) -> Result<Bytes, StoreError> {
        match self {
            Body::Bytes(b) => Ok(b.slice(offset as usize..(offset + len) as usize)),
            Body::File(p) => {
                let path = p.to_path_buf();
                let key = key.to_string();
                tokio::task::spawn_blocking(move || read_at(&path, offset, len))
                    .await
                    .map_err(|e| StoreError::Io {
                        key: key.clone(),
                        source: std::io::Error::other(e),
                    })?
                    .map(Bytes::from)
                    .map_err(|source| StoreError::Io { key, source })
            }
        }
    }

    /// The whole body as a stream for one PutObject: from the file, not through memory.
    async fn stream(&self, key: &str) -> Result<ByteStream, StoreError> {
        match self {
            Body::Bytes(b) => Ok(ByteStream::from(b.clone())),
            Body::File(p) => ByteStream::from_path(p).await.map_err(|e| StoreError::Io {
                key: key.to_string(),
                source: std::io::Error::other(e),
            }),
        }
    }

    /// sha256 and md5 of the whole body (the file is read in blocking chunks).
    async fn digests(&self, key: &str) -> Result<([u8; 32], [u8; 16]), StoreError> {
        match self {
            Body::Bytes(b) => Ok((Sha256::digest(b).into(), Md5::digest(b).into())),
            Body::File(p) => {
                let path = p.to_path_buf();
                let key = key.to_string();
                tokio::task::spawn_blocking(move || digest_file(&path))
                    .await
                    .map_err(|e| StoreError::Io {
                        key: key.clone(),
                        source: std::io::Error::other(e),
                    })?
                    .map_err(|source| StoreError::Io { key, source })
            }
        }
    }
}

fn read_at(path: &Path, offset: u64, len: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::with_capacity(len as usize);
    f.take(len).read_to_end(&mut buf)?;
    if (buf.len() as u64) != len {
        return Err(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            format!("{} shrank while being uploaded", path.display()),
        ));
    }
    Ok(buf)
}

fn digest_file(path: &Path) -> std::io::Result<([u8; 32], [u8; 16])> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    let (mut sha, mut md5) = (Sha256::new(), Md5::new());
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        md5.update(&buf[..n]);
    }
    Ok((sha.finalize().into(), md5.finalize().into()))
}

impl S3Store {
    /// Builds the client `[store]` describes: credentials from the configured files or systemd
    /// credential, else from the standard chain; the SDK's retries off; timeouts per request.
    pub async fn new(cfg: &StoreConfig) -> Result<S3Store, StoreError> {
        let static_creds = static_credentials(cfg)?;
        let mut loader = aws_config::defaults(BehaviorVersion::latest());
        if !cfg.region.is_empty() {
            loader = loader.region(Region::new(cfg.region.clone()));
        }
        if let Some(creds) = &static_creds {
            // Keeps the chain from probing env/profile/IMDS for credentials we already have.
            loader = loader.credentials_provider(creds.clone());
        }
        let sdk = loader.load().await;
        let mut b = aws_sdk_s3::config::Builder::from(&sdk);
        if sdk.region().is_none() {
            b = b.region(Region::new("us-east-1"));
        }
        Self::build(cfg, b)
    }

    /// A store with the given static credentials, without consulting the environment (tests, and
    /// tools that were handed keys).
    pub fn with_credentials(
        cfg: &StoreConfig,
        access_key_id: &str,
        secret_access_key: &str,
    ) -> Result<S3Store, StoreError> {
        let region = if cfg.region.is_empty() {
            "us-east-1"
        } else {
            &cfg.region
        };
        let b = aws_sdk_s3::config::Builder::new()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .credentials_provider(Credentials::new(
                access_key_id,
                secret_access_key,
                None,
                None,
                "scrubd-static",
            ));
        Self::build(cfg, b)
    }

    fn build(cfg: &StoreConfig, mut b: aws_sdk_s3::config::Builder) -> Result<S3Store, StoreError> {
        let settings = validate(cfg)?;
        if !cfg.endpoint.is_empty() {
            b = b.endpoint_url(cfg.endpoint.clone());
        }
        let calc = match cfg.request_checksum_calculation {
            ChecksumCalculation::WhenRequired => RequestChecksumCalculation::WhenRequired,
            ChecksumCalculation::WhenSupported => RequestChecksumCalculation::WhenSupported,
        };
        let timeouts = TimeoutConfig::builder()
            .connect_timeout(cfg.connect_timeout)
            .operation_attempt_timeout(cfg.request_timeout)
            .build();
        let conf = b
            .force_path_style(cfg.force_path_style)
            .request_checksum_calculation(calc)
            .retry_config(RetryConfig::disabled())
            .timeout_config(timeouts)
            .build();
        let mut prefix = cfg.prefix.trim_start_matches('/').to_string();
        if !prefix.is_empty() && !prefix.ends_with('/') {
            prefix.push('/');
        }
        Ok(S3Store {
            client: Client::from_conf(conf),
            bucket: cfg.bucket.clone(),
            prefix,
            settings,
        })
    }

    /// The SDK client, for what the trait does not cover (bucket setup in tests, tagging reads).
    pub fn client(&self) -> &Client {
        &self.client
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key in the bucket of the store key `key` (with the configured prefix).
    pub fn full_key(&self, key: &str) -> Result<String, StoreError> {
        if !super::valid_key(key) {
            return Err(StoreError::Invalid {
                key: key.to_string(),
                message: "invalid object key".into(),
            });
        }
        Ok(format!("{}{key}", self.prefix))
    }

    fn err<E>(&self, key: &str) -> impl Fn(SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> StoreError + '_
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let key = key.to_string();
        move |e| map_sdk_error(e, &self.bucket, &key)
    }

    async fn put(&self, key: &str, body: Body<'_>, opts: &PutOptions) -> Result<(), StoreError> {
        let full = self.full_key(key)?;
        let expected = decode_sha256(key, &opts.sha256)?;
        let len = body.len(key).await?;
        if len >= self.settings.multipart_threshold && len > 0 {
            return self.put_multipart(key, &full, &body, len, expected, opts).await;
        }
        // What we send: the caller's sha256 (the store checks the bytes against it), or with md5,
        // an md5 of the body we read here after checking it against the caller's sha256.
        let (sha256, md5) = match (self.settings.checksum, expected) {
            (ChecksumKind::Sha256, Some(sha)) => (sha, None),
            _ => {
                let (sha, md5) = body.digests(key).await?;
                if expected.is_some_and(|e| e != sha) {
                    return Err(StoreError::ChecksumMismatch { key: key.to_string() });
                }
                (sha, Some(md5))
            }
        };
        let mut req = self
            .client
            .put_object()
            .bucket(&self.bucket)
            .key(&full)
            .content_length(len as i64)
            .body(body.stream(key).await?)
            .set_metadata(Some(metadata(opts)))
            .set_content_type(opts.content_type.clone())
            .set_tagging(self.tagging(opts));
        req = match (self.settings.checksum, md5) {
            (ChecksumKind::Md5, Some(md5)) => req.content_md5(B64.encode(md5)),
            _ => req.checksum_sha256(B64.encode(sha256)),
        };
        req = self.with_put_settings(req);
        let out = req.send().await.map_err(self.err(key))?;
        match self.settings.checksum {
            ChecksumKind::Sha256 => {
                let want = B64.encode(sha256);
                let got = match out.checksum_sha256() {
                    Some(c) => Some(c.to_string()),
                    // Not echoed by this store: ask for the stored checksum.
                    None => self.stored_sha256(key, &full).await?,
                };
                self.confirm(key, &full, got.as_deref(), &want).await
            }
            ChecksumKind::Md5 => {
                // The store checked Content-MD5; where the ETag is the plain md5 (no SSE-KMS),
                // compare it too.
                let etag = out.e_tag().unwrap_or_default().trim_matches('"').to_ascii_lowercase();
                let want = hex::encode(md5.unwrap_or_default());
                if self.settings.sse != Sse::AwsKms && etag.len() == 32 && etag != want {
                    return self.confirm(key, &full, Some(&etag), &want).await;
                }
                Ok(())
            }
        }
    }

    /// Compares the checksum the store reports (`got`) with ours; on a mismatch the stored object
    /// is deleted so no corrupted object remains, and the put fails.
    async fn confirm(&self, key: &str, full: &str, got: Option<&str>, want: &str) -> Result<(), StoreError> {
        match got {
            Some(got) if got == want => Ok(()),
            Some(_) => {
                warn!(bucket = %self.bucket, key = %full, "stored checksum differs from the uploaded one, deleting the object");
                let _ = self.client.delete_object().bucket(&self.bucket).key(full).send().await;
                Err(StoreError::ChecksumMismatch { key: key.to_string() })
            }
            None => Err(StoreError::Invalid {
                key: key.to_string(),
                message: "the store did not confirm the sha256 checksum; use checksum = \"md5\" with this store".into(),
            }),
        }
    }

    async fn stored_sha256(&self, key: &str, full: &str) -> Result<Option<String>, StoreError> {
        let out = self
            .client
            .head_object()
            .bucket(&self.bucket)
            .key(full)
            .checksum_mode(ChecksumMode::Enabled)
            .send()
            .await
            .map_err(self.err(key))?;
        Ok(out.checksum_sha256().map(str::to_string))
    }

    async fn put_multipart(
        &self,
        key: &str,
        full: &str,
        body: &Body<'_>,
        len: u64,
        expected: Option<[u8; 32]>,
        opts: &PutOptions,
    ) -> Result<(), StoreError> {
        // Parts grow if the file would need more than S3's 10,000.
        let part_size = self.settings.part_size.max(len.div_ceil(MAX_PARTS));
        let mut req = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .set_metadata(Some(metadata(opts)))
            .set_content_type(opts.content_type.clone())
            .set_tagging(self.tagging(opts));
        if self.settings.checksum == ChecksumKind::Sha256 {
            req = req.checksum_algorithm(ChecksumAlgorithm::Sha256);
        }
        if let Some(sse) = sse(self.settings.sse) {
            req = req.server_side_encryption(sse);
        }
        if self.settings.sse == Sse::AwsKms && !self.settings.kms_key_id.is_empty() {
            req = req.ssekms_key_id(&self.settings.kms_key_id);
        }
        if !self.settings.storage_class.is_empty() {
            req = req.storage_class(StorageClass::from(self.settings.storage_class.as_str()));
        }
        let created = req.send().await.map_err(self.err(key))?;
        let Some(upload_id) = created.upload_id().map(str::to_string) else {
            return Err(StoreError::Transient {
                key: key.to_string(),
                message: "CreateMultipartUpload returned no upload id".into(),
            });
        };
        let result = self
            .upload_parts(key, full, &upload_id, body, len, part_size, expected)
            .await;
        if result.is_err() {
            // Best effort: an incomplete upload costs storage until a lifecycle rule removes it.
            if let Err(e) = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(&upload_id)
                .send()
                .await
            {
                warn!(bucket = %self.bucket, key = %full, error = %map_sdk_error(e, &self.bucket, key), "cannot abort multipart upload");
            }
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn upload_parts(
        &self,
        key: &str,
        full: &str,
        upload_id: &str,
        body: &Body<'_>,
        len: u64,
        part_size: u64,
        expected: Option<[u8; 32]>,
    ) -> Result<(), StoreError> {
        let mut whole = Sha256::new();
        let mut parts = Vec::new();
        // Composite checksums: sha256 (or md5) of the concatenated part digests.
        let mut composite_sha = Sha256::new();
        let mut composite_md5 = Md5::new();
        let mut offset = 0u64;
        let mut number = 1i32;
        while offset < len {
            let n = part_size.min(len - offset);
            let bytes = body.read(key, offset, n).await?;
            whole.update(&bytes);
            let mut req = self
                .client
                .upload_part()
                .bucket(&self.bucket)
                .key(full)
                .upload_id(upload_id)
                .part_number(number)
                .content_length(n as i64);
            let mut part = CompletedPart::builder().part_number(number);
            let want;
            match self.settings.checksum {
                ChecksumKind::Sha256 => {
                    let sha: [u8; 32] = Sha256::digest(&bytes).into();
                    composite_sha.update(sha);
                    want = B64.encode(sha);
                    req = req.checksum_sha256(&want);
                    part = part.checksum_sha256(&want);
                }
                ChecksumKind::Md5 => {
                    let md5: [u8; 16] = Md5::digest(&bytes).into();
                    composite_md5.update(md5);
                    want = hex::encode(md5);
                    req = req.content_md5(B64.encode(md5));
                }
            }
            let out = req.body(ByteStream::from(bytes)).send().await.map_err(self.err(key))?;
            // The store verified the part against our header; where it echoes a checksum, it
            // must be ours.
            let echoed = match self.settings.checksum {
                ChecksumKind::Sha256 => out.checksum_sha256().map(str::to_string),
                ChecksumKind::Md5 => out.e_tag().map(|e| e.trim_matches('"').to_ascii_lowercase()),
            };
            if echoed.as_deref().is_some_and(|e| e != want) && self.settings.sse != Sse::AwsKms {
                return Err(StoreError::ChecksumMismatch { key: key.to_string() });
            }
            parts.push(part.set_e_tag(out.e_tag().map(str::to_string)).build());
            offset += n;
            number += 1;
        }
        let whole: [u8; 32] = whole.finalize().into();
        if expected.is_some_and(|e| e != whole) {
            return Err(StoreError::ChecksumMismatch { key: key.to_string() });
        }
        let count = parts.len();
        let out = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(full)
            .upload_id(upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build())
            .send()
            .await
            .map_err(self.err(key))?;
        match self.settings.checksum {
            ChecksumKind::Sha256 => {
                let want = format!("{}-{count}", B64.encode(composite_sha.finalize()));
                // Some stores report the composite without the `-N` suffix.
                let got = out.checksum_sha256().map(str::to_string);
                match got {
                    Some(g) if g == want || want.starts_with(&format!("{g}-")) => Ok(()),
                    Some(g) => self.confirm(key, full, Some(&g), &want).await,
                    None => {
                        debug!(key = %full, "multipart checksum not echoed; every part was confirmed");
                        Ok(())
                    }
                }
            }
            ChecksumKind::Md5 => {
                let want = format!("{}-{count}", hex::encode(composite_md5.finalize()));
                let etag = out.e_tag().unwrap_or_default().trim_matches('"').to_ascii_lowercase();
                if self.settings.sse != Sse::AwsKms && etag.contains('-') && etag != want {
                    return self.confirm(key, full, Some(&etag), &want).await;
                }
                Ok(())
            }
        }
    }

    fn with_put_settings(
        &self,
        mut req: aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        if let Some(sse) = sse(self.settings.sse) {
            req = req.server_side_encryption(sse);
        }
        if self.settings.sse == Sse::AwsKms && !self.settings.kms_key_id.is_empty() {
            req = req.ssekms_key_id(&self.settings.kms_key_id);
        }
        if !self.settings.storage_class.is_empty() {
            req = req.storage_class(StorageClass::from(self.settings.storage_class.as_str()));
        }
        req
    }

    /// The `x-amz-tagging` value: configured tags, overridden by the put's.
    fn tagging(&self, opts: &PutOptions) -> Option<String> {
        let mut tags = self.settings.tags.clone();
        tags.extend(opts.tags.iter().map(|(k, v)| (k.clone(), v.clone())));
        if tags.is_empty() {
            return None;
        }
        let pairs: Vec<String> = tags
            .iter()
            .map(|(k, v)| format!("{}={}", percent_encode(k), percent_encode(v)))
            .collect();
        Some(pairs.join("&"))
    }
}

fn sse(sse: Sse) -> Option<ServerSideEncryption> {
    match sse {
        Sse::None => None,
        Sse::Aes256 => Some(ServerSideEncryption::Aes256),
        Sse::AwsKms => Some(ServerSideEncryption::AwsKms),
    }
}

fn metadata(opts: &PutOptions) -> HashMap<String, String> {
    opts.metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The caller's hex sha256 as bytes; empty means "compute it".
fn decode_sha256(key: &str, hex_sha: &str) -> Result<Option<[u8; 32]>, StoreError> {
    if hex_sha.is_empty() {
        return Ok(None);
    }
    let mut out = [0u8; 32];
    hex::decode_to_slice(hex_sha, &mut out).map_err(|_| StoreError::Invalid {
        key: key.to_string(),
        message: "sha256 is not 64 hex digits".into(),
    })?;
    Ok(Some(out))
}

/// Percent-encoding of everything but RFC 3986's unreserved characters.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Checks the S3 parts of `[store]` and turns them into per-request settings.
fn validate(cfg: &StoreConfig) -> Result<Settings, StoreError> {
    let bad = |field, message: String| Err(StoreError::Config { field, message });
    if cfg.bucket.is_empty() {
        return bad("bucket", "required with kind = \"s3\"".into());
    }
    let part = cfg.part_size.as_u64();
    if !(MIN_PART..=MAX_PART).contains(&part) {
        return bad("part_size", format!("{} is outside S3's 5 MiB to 5 GiB", cfg.part_size));
    }
    if !cfg.kms_key_id.is_empty() && cfg.sse != Sse::AwsKms {
        return bad("kms_key_id", "only used with sse = \"aws:kms\"".into());
    }
    if !(1..=1000).contains(&cfg.list_page_size) {
        return bad("list_page_size", format!("{} is outside 1 to 1000", cfg.list_page_size));
    }
    let scheme_ok = cfg.endpoint.starts_with("http://") || cfg.endpoint.starts_with("https://");
    if !cfg.endpoint.is_empty() && !scheme_ok {
        return bad("endpoint", format!("{:?} is not an http(s) URL", cfg.endpoint));
    }
    Ok(Settings {
        multipart_threshold: cfg.multipart_threshold.as_u64(),
        part_size: part,
        sse: cfg.sse,
        kms_key_id: cfg.kms_key_id.clone(),
        storage_class: cfg.storage_class.clone(),
        tags: cfg.tags.clone(),
        checksum: cfg.checksum,
        list_page_size: cfg.list_page_size as i32,
    })
}

/// Credentials from `access_key_id_file` + `secret_access_key_file` or from the systemd credential
/// `credential`; `None` means the standard chain.
fn static_credentials(cfg: &StoreConfig) -> Result<Option<Credentials>, StoreError> {
    let read = |field: &'static str, path: &Path| {
        std::fs::read_to_string(path).map_err(|e| StoreError::Config {
            field,
            message: format!("cannot read {}: {e}", path.display()),
        })
    };
    match (&cfg.access_key_id_file, &cfg.secret_access_key_file, &cfg.credential) {
        (None, None, None) => Ok(None),
        (Some(id), Some(secret), None) => {
            let id = read("access_key_id_file", id)?.trim().to_string();
            let secret = read("secret_access_key_file", secret)?.trim().to_string();
            if id.is_empty() || secret.is_empty() {
                return Err(StoreError::Config {
                    field: "access_key_id_file",
                    message: "empty access key id or secret".into(),
                });
            }
            Ok(Some(Credentials::new(id, secret, None, None, "scrubd-files")))
        }
        (None, None, Some(name)) => {
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| StoreError::Config {
                field: "credential",
                message: "$CREDENTIALS_DIRECTORY is not set (LoadCredential= in the unit)".into(),
            })?;
            if name.is_empty() || name.contains('/') {
                return Err(StoreError::Config {
                    field: "credential",
                    message: format!("{name:?} is not a credential name"),
                });
            }
            let text = read("credential", &PathBuf::from(dir).join(name))?;
            parse_credentials_file(&text).map(Some)
        }
        _ => Err(StoreError::Config {
            field: "credential",
            message: "give either access_key_id_file with secret_access_key_file, or credential".into(),
        }),
    }
}

/// The AWS credentials-file format: `aws_access_key_id = ...`, `aws_secret_access_key = ...`,
/// optional `aws_session_token = ...`; `[section]` lines and `#` comments are ignored.
pub fn parse_credentials_file(text: &str) -> Result<Credentials, StoreError> {
    let (mut id, mut secret, mut token) = (None, None, None);
    for line in text.lines().map(str::trim) {
        let Some((k, v)) = line.split_once('=') else { continue };
        let v = v.trim().to_string();
        match k.trim() {
            "aws_access_key_id" => id = Some(v),
            "aws_secret_access_key" => secret = Some(v),
            "aws_session_token" => token = Some(v),
            _ => {}
        }
    }
    match (id, secret) {
        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
            Ok(Credentials::new(id, secret, token, None, "scrubd-credential"))
        }
        _ => Err(StoreError::Config {
            field: "credential",
            message: "needs aws_access_key_id and aws_secret_access_key lines".into(),
        }),
    }
}

/// Maps an SDK error to a [`StoreError`] kind, so `is_permanent` is right: bad credentials,
/// missing buckets and invalid requests are permanent; 5xx, throttling, timeouts and connection
/// failures are transient.
pub fn map_sdk_error<E>(err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>, bucket: &str, key: &str) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let key = key.to_string();
    let transient = |message: String| StoreError::Transient {
        key: key.clone(),
        message,
    };
    match &err {
        SdkError::TimeoutError(_) => return transient("request timed out".into()),
        SdkError::DispatchFailure(_) if caused_by_credentials(&err) => {
            return StoreError::AccessDenied {
                key,
                message: format!("no usable credentials: {}", error_chain(&err)),
            };
        }
        SdkError::DispatchFailure(f) => {
            return if f.is_user() {
                StoreError::Invalid {
                    key,
                    message: format!("request could not be sent: {}", error_chain(&err)),
                }
            } else {
                transient(format!("connection failed: {}", error_chain(&err)))
            };
        }
        SdkError::ResponseError(_) => return transient(format!("unreadable response: {}", error_chain(&err))),
        SdkError::ConstructionFailure(_) => {
            return StoreError::Invalid {
                key,
                message: format!("request could not be built: {}", error_chain(&err)),
            };
        }
        _ => {}
    }
    let status = err.raw_response().map(|r| r.status().as_u16()).unwrap_or(0);
    let code = err.code().unwrap_or_default().to_string();
    let message = match err.message() {
        Some(m) => format!("{code} ({status}): {m}"),
        None => format!("{code} ({status})"),
    };
    match code.as_str() {
        "NoSuchBucket" => StoreError::NoSuchBucket {
            bucket: bucket.to_string(),
        },
        "NoSuchKey" | "NotFound" => StoreError::NotFound { key },
        "AccessDenied"
        | "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "AllAccessDisabled"
        | "AccountProblem"
        | "ExpiredToken"
        | "InvalidToken"
        | "TokenRefreshRequired"
        | "InvalidSecurity" => StoreError::AccessDenied { key, message },
        "BadDigest" | "InvalidDigest" | "XAmzContentSHA256Mismatch" | "XAmzContentChecksumMismatch" => {
            StoreError::ChecksumMismatch { key }
        }
        "SlowDown"
        | "Throttling"
        | "ThrottlingException"
        | "RequestTimeout"
        | "RequestTimeTooSkewed"
        | "InternalError"
        | "ServiceUnavailable"
        | "OperationAborted" => StoreError::Transient { key, message },
        _ => match status {
            404 => StoreError::NotFound { key },
            401 | 403 => StoreError::AccessDenied { key, message },
            408 | 429 | 500..=599 => StoreError::Transient { key, message },
            // Includes S3's checksum errors that some stores send as InvalidRequest.
            400 if message.to_ascii_lowercase().contains("checksum") || message.contains("digest") => {
                StoreError::ChecksumMismatch { key }
            }
            400..=499 => StoreError::Invalid { key, message },
            _ => StoreError::Transient { key, message },
        },
    }
}

/// Whether the request failed because no credentials could be loaded for a reason that waiting
/// does not fix: no provider in the chain had any, or one is misconfigured. (A provider that
/// timed out or answered with an error, such as STS being down, is an outage: transient.)
fn caused_by_credentials(err: &(dyn std::error::Error + 'static)) -> bool {
    use aws_credential_types::provider::error::CredentialsError;
    let mut cur = Some(err);
    while let Some(e) = cur {
        if let Some(c) = e.downcast_ref::<CredentialsError>() {
            return matches!(
                c,
                CredentialsError::CredentialsNotLoaded(_) | CredentialsError::InvalidConfiguration(_)
            );
        }
        cur = e.source();
    }
    false
}

/// The error and its sources, `: `-separated (the SDK's top-level messages say little).
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut s = err.to_string();
    let mut cur = err.source();
    while let Some(e) = cur {
        s.push_str(": ");
        s.push_str(&e.to_string());
        cur = e.source();
    }
    s
}

#[async_trait]
impl ObjectStore for S3Store {
    async fn put_file(&self, key: &str, path: &Path, opts: &PutOptions) -> Result<(), StoreError> {
        self.put(key, Body::File(path), opts).await
    }

    async fn put_bytes(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        self.put(key, Body::Bytes(body), opts).await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StoreError> {
        let full = self.full_key(key)?;
        if let Some(r) = &range {
            if r.start > r.end {
                return Err(StoreError::Invalid {
                    key: key.to_string(),
                    message: format!("range {r:?} is reversed"),
                });
            }
            if r.start == r.end {
                // `bytes=5-4` is no range at all to S3 (it would send the whole object).
                let meta = self
                    .head(key)
                    .await?
                    .ok_or_else(|| StoreError::NotFound { key: key.to_string() })?;
                if r.start >= meta.size {
                    return Err(StoreError::Invalid {
                        key: key.to_string(),
                        message: format!("range {r:?} outside object of {} bytes", meta.size),
                    });
                }
                return Ok(Bytes::new());
            }
        }
        let mut req = self.client.get_object().bucket(&self.bucket).key(&full);
        if let Some(r) = &range {
            req = req.range(format!("bytes={}-{}", r.start, r.end - 1));
        }
        let out = req.send().await.map_err(self.err(key))?;
        let ranged_reply = out.content_range().is_some();
        let body = out
            .body
            .collect()
            .await
            .map_err(|e| StoreError::Transient {
                key: key.to_string(),
                message: format!("body cut short: {}", error_chain(&e)),
            })?
            .into_bytes();
        match range {
            // A store that ignored the Range header sent the whole object: cut it here.
            Some(r) if !ranged_reply => {
                let size = body.len() as u64;
                if r.start >= size {
                    return Err(StoreError::Invalid {
                        key: key.to_string(),
                        message: format!("range {r:?} outside object of {size} bytes"),
                    });
                }
                Ok(body.slice(r.start as usize..r.end.min(size) as usize))
            }
            _ => Ok(body),
        }
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        let full = self.full_key(key)?;
        match self.client.head_object().bucket(&self.bucket).key(&full).send().await {
            Ok(out) => Ok(Some(ObjectMeta {
                key: key.to_string(),
                size: out.content_length().unwrap_or(0).max(0) as u64,
                metadata: out
                    .metadata()
                    .map(|m| m.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect())
                    .unwrap_or_default(),
            })),
            Err(e) => match map_sdk_error(e, &self.bucket, key) {
                StoreError::NotFound { .. } => Ok(None),
                other => Err(other),
            },
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        let full_prefix = format!("{}{prefix}", self.prefix);
        let mut out = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let page = self
                .client
                .list_objects_v2()
                .bucket(&self.bucket)
                .prefix(&full_prefix)
                .max_keys(self.settings.list_page_size)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(self.err(prefix))?;
            for obj in page.contents() {
                let Some(k) = obj.key() else { continue };
                let Some(k) = k.strip_prefix(&self.prefix) else {
                    continue;
                };
                out.push(ObjectMeta {
                    key: k.to_string(),
                    size: obj.size().unwrap_or(0).max(0) as u64,
                    metadata: Default::default(),
                });
            }
            if !page.is_truncated().unwrap_or(false) {
                break;
            }
            match page.next_continuation_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => {
                    return Err(StoreError::Transient {
                        key: prefix.to_string(),
                        message: "truncated listing without a continuation token".into(),
                    });
                }
            }
        }
        // S3 lists in UTF-8 byte order already; the sort makes the contract independent of it.
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let full = self.full_key(key)?;
        match self.client.delete_object().bucket(&self.bucket).key(&full).send().await {
            Ok(_) => Ok(()),
            Err(e) => match map_sdk_error(e, &self.bucket, key) {
                StoreError::NotFound { .. } => Ok(()),
                other => Err(other),
            },
        }
    }

    async fn presign_get(&self, key: &str, expires: std::time::Duration) -> Result<String, StoreError> {
        let full = self.full_key(key)?;
        let conf = PresigningConfig::expires_in(expires).map_err(|e| StoreError::Invalid {
            key: key.to_string(),
            message: format!("cannot presign for {expires:?}: {e}"),
        })?;
        let req = self
            .client
            .get_object()
            .bucket(&self.bucket)
            .key(&full)
            .presigned(conf)
            .await
            .map_err(self.err(key))?;
        Ok(req.uri().to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_file_parses() {
        let check = |text: &str, expect: Option<(&str, &str, Option<&str>)>| {
            let got = parse_credentials_file(text).ok();
            let got = got
                .as_ref()
                .map(|c| (c.access_key_id(), c.secret_access_key(), c.session_token()));
            assert_eq!(got, expect, "{text:?}");
        };
        check(
            "aws_access_key_id = AK\naws_secret_access_key = SK\n",
            Some(("AK", "SK", None)),
        );
        check(
            "[default]\n# comment\naws_access_key_id=AK\naws_secret_access_key=S=K\naws_session_token = T",
            Some(("AK", "S=K", Some("T"))),
        );
        check("aws_access_key_id = AK\n", None);
        check("aws_access_key_id = \naws_secret_access_key = SK", None);
        check("", None);
    }

    #[test]
    fn tags_are_percent_encoded() {
        let check = |input: &str, expect: &str| assert_eq!(percent_encode(input), expect);
        check("plain-key_1.x~", "plain-key_1.x~");
        check("a b&c=d", "a%20b%26c%3Dd");
        check("é", "%C3%A9");
    }
}
