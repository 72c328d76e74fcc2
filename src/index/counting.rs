//! An [`ObjectStore`] wrapper that counts requests and bytes downloaded, so that `search --stats`
//! and the benchmark can say what a query cost.
//!
//! Must not: change the behaviour of the store it wraps.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;

use crate::store::{ObjectMeta, ObjectStore, PutOptions, StoreError};

/// Requests made and bytes downloaded through a [`CountingStore`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Serialize)]
pub struct StoreStats {
    /// GETs (whole or ranged).
    pub gets: u64,
    /// LISTs (one per prefix; pagination inside the store is not visible here).
    pub lists: u64,
    /// HEADs, PUTs, DELETEs and presigns.
    pub others: u64,
    /// Bytes of object bodies downloaded.
    pub bytes: u64,
}

impl StoreStats {
    pub fn requests(&self) -> u64 {
        self.gets + self.lists + self.others
    }
}

#[derive(Debug)]
pub struct CountingStore {
    inner: Arc<dyn ObjectStore>,
    gets: AtomicU64,
    lists: AtomicU64,
    others: AtomicU64,
    bytes: AtomicU64,
}

impl CountingStore {
    pub fn new(inner: Arc<dyn ObjectStore>) -> Arc<CountingStore> {
        Arc::new(CountingStore {
            inner,
            gets: AtomicU64::new(0),
            lists: AtomicU64::new(0),
            others: AtomicU64::new(0),
            bytes: AtomicU64::new(0),
        })
    }

    pub fn stats(&self) -> StoreStats {
        StoreStats {
            gets: self.gets.load(Ordering::Relaxed),
            lists: self.lists.load(Ordering::Relaxed),
            others: self.others.load(Ordering::Relaxed),
            bytes: self.bytes.load(Ordering::Relaxed),
        }
    }

    pub fn reset(&self) {
        for c in [&self.gets, &self.lists, &self.others, &self.bytes] {
            c.store(0, Ordering::Relaxed);
        }
    }

    fn other(&self) {
        self.others.fetch_add(1, Ordering::Relaxed);
    }
}

#[async_trait]
impl ObjectStore for CountingStore {
    async fn put_file(&self, key: &str, path: &Path, opts: &PutOptions) -> Result<(), StoreError> {
        self.other();
        self.inner.put_file(key, path, opts).await
    }

    async fn put_bytes(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        self.other();
        self.inner.put_bytes(key, body, opts).await
    }

    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StoreError> {
        self.gets.fetch_add(1, Ordering::Relaxed);
        let body = self.inner.get(key, range).await?;
        self.bytes.fetch_add(body.len() as u64, Ordering::Relaxed);
        Ok(body)
    }

    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.other();
        self.inner.head(key).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.lists.fetch_add(1, Ordering::Relaxed);
        self.inner.list(prefix).await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.other();
        self.inner.delete(key).await
    }

    async fn presign_get(&self, key: &str, expires: std::time::Duration) -> Result<String, StoreError> {
        self.other();
        self.inner.presign_get(key, expires).await
    }
}
