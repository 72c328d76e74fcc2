//! Fetching whole archives (checked against their manifest's sha256) and presigned URLs.
//! Fetching single records is [`super::search::search`] with text.
//!
//! Must not: hand out an archive whose bytes do not match its manifest.

use std::sync::Arc;

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::{IndexError, keys};
use crate::archive::manifest::Manifest;
use crate::store::{ObjectStore, StoreError};

/// The manifest of the archive `archive_key`.
pub async fn manifest_of(store: &Arc<dyn ObjectStore>, archive_key: &str) -> Result<Manifest, IndexError> {
    let mkey = keys::manifest_key_for_archive(archive_key)
        .ok_or_else(|| IndexError::Query(format!("{archive_key} is not an archive key (archives/…/….zst)")))?;
    let body = store.get(&mkey, None).await?;
    serde_json::from_slice(&body).map_err(|e| IndexError::Manifest {
        key: mkey,
        message: e.to_string(),
    })
}

/// The archive `archive_key`, whole, after checking its sha256 against the manifest's.
pub async fn fetch_archive(store: &Arc<dyn ObjectStore>, archive_key: &str) -> Result<(Bytes, Manifest), IndexError> {
    let manifest = manifest_of(store, archive_key).await?;
    let body = store.get(archive_key, None).await?;
    let b = body.clone();
    let actual = tokio::task::spawn_blocking(move || hex::encode(Sha256::digest(&b)))
        .await
        .map_err(|e| IndexError::Query(format!("hash task failed: {e}")))?;
    if !actual.eq_ignore_ascii_case(&manifest.sha256) {
        return Err(IndexError::Checksum {
            key: archive_key.to_string(),
            expected: manifest.sha256.clone(),
            actual,
        });
    }
    Ok((body, manifest))
}

/// A URL that lets anyone holding it GET `archive_key` until `expires` has passed.
pub async fn presign(
    store: &Arc<dyn ObjectStore>,
    archive_key: &str,
    expires: std::time::Duration,
) -> Result<String, IndexError> {
    // Say so now rather than hand out a URL that answers 404.
    if store.head(archive_key).await?.is_none() {
        return Err(StoreError::NotFound {
            key: archive_key.to_string(),
        }
        .into());
    }
    Ok(store.presign_get(archive_key, expires).await?)
}
