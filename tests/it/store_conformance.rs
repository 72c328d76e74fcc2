//! The `ObjectStore` conformance suite: one set of generic checks over `&dyn ObjectStore`, run
//! against every implementation: the local directory, and S3 on the real test servers (SeaweedFS
//! and Garage on loopback, see `scripts/test.sh`) in both checksum modes. Then the S3-only checks (credentials,
//! buckets, tags, multipart on the wire) and the `Faulty` wrapper.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use scrubd::store::{
    self, ChecksumKind, Fault, Faulty, LocalDir, ObjectStore, Op, PutOptions, S3Store, StoreConfig, StoreError,
    StoreKind,
};

use common::{fetch_url, pattern, sha256_hex};

const MIB: usize = 1024 * 1024;

fn opts(body: &[u8]) -> PutOptions {
    PutOptions {
        sha256: sha256_hex(body),
        ..PutOptions::default()
    }
}

/// Writes `body` to a temp file (uploads from files are the real path).
fn temp_file(body: &[u8]) -> tempfile::NamedTempFile {
    use std::io::Write;
    let mut f = tempfile::NamedTempFile::new().expect("temp file");
    f.write_all(body).expect("write temp file");
    f.flush().expect("flush temp file");
    f
}

/// The generic checks. Each takes a store that is empty at the start.
mod checks {
    use super::*;

    pub async fn round_trip(s: &dyn ObjectStore) {
        let small = pattern(1000, 1);
        s.put_bytes("rt/bytes", Bytes::from(small.clone()), &opts(&small))
            .await
            .unwrap();
        assert_eq!(s.get("rt/bytes", None).await.unwrap(), small);

        let body = pattern(300_000, 2);
        let file = temp_file(&body);
        s.put_file("rt/deep/er/file.zst", file.path(), &opts(&body))
            .await
            .unwrap();
        assert_eq!(s.get("rt/deep/er/file.zst", None).await.unwrap(), body);

        s.put_file("rt/empty", temp_file(b"").path(), &opts(b"")).await.unwrap();
        assert_eq!(s.get("rt/empty", None).await.unwrap(), Bytes::new());
        assert_eq!(s.head("rt/empty").await.unwrap().map(|m| m.size), Some(0));

        // Without a sha256 the store computes one itself.
        s.put_bytes("rt/nosum", Bytes::from_static(b"abc"), &PutOptions::default())
            .await
            .unwrap();
        assert_eq!(s.get("rt/nosum", None).await.unwrap(), Bytes::from_static(b"abc"));
    }

    pub async fn ranged_get(s: &dyn ObjectStore) {
        let body = pattern(1000, 3);
        s.put_file("range/obj", temp_file(&body).path(), &opts(&body))
            .await
            .unwrap();
        let check = |range: std::ops::Range<u64>, expect: Option<&[u8]>| {
            let expect = expect.map(<[u8]>::to_vec);
            async move {
                let got = s.get("range/obj", Some(range.clone())).await;
                match (got, expect) {
                    (Ok(b), Some(e)) => assert_eq!(b.to_vec(), e, "range {range:?}"),
                    (Err(e), None) => assert!(e.is_permanent(), "range {range:?}: {e} should be permanent"),
                    (got, _) => panic!("range {range:?}: unexpected {got:?}"),
                }
            }
        };
        check(0..10, Some(&body[0..10])).await;
        check(500..600, Some(&body[500..600])).await;
        check(990..1000, Some(&body[990..1000])).await;
        check(999..1000, Some(&body[999..1000])).await;
        check(990..5000, Some(&body[990..1000])).await; // past the end: cut at the end
        check(10..10, Some(&[])).await;
        check(1000..1010, None).await; // starts at the end
        check(2000..3000, None).await; // beyond the end
    }

    pub async fn head_and_missing(s: &dyn ObjectStore) {
        let body = b"{\"x\":1}".to_vec();
        let mut o = opts(&body);
        o.content_type = Some("application/json".into());
        o.metadata = BTreeMap::from([
            ("source".to_string(), "stripe".to_string()),
            ("record-count".to_string(), "42".to_string()),
        ]);
        s.put_bytes("head/obj", Bytes::from(body.clone()), &o).await.unwrap();
        let meta = s.head("head/obj").await.unwrap().expect("object exists");
        assert_eq!(meta.key, "head/obj");
        assert_eq!(meta.size, body.len() as u64);
        assert_eq!(meta.metadata, o.metadata);

        assert_eq!(s.head("head/missing").await.unwrap(), None);
        match s.get("head/missing", None).await {
            Err(StoreError::NotFound { key }) => assert_eq!(key, "head/missing"),
            other => panic!("get of a missing key: {other:?}"),
        }
        match s.get("head/missing", Some(0..4)).await {
            Err(StoreError::NotFound { .. }) => {}
            other => panic!("ranged get of a missing key: {other:?}"),
        }
    }

    /// With the S3 test stores' page size of 3, listing `list/a/` takes 4 pages.
    pub async fn list_paginated(s: &dyn ObjectStore) {
        let keys = [
            "list/a/1",
            "list/a/10",
            "list/a/2",
            "list/a/20",
            "list/a/3",
            "list/a/b/1",
            "list/a/b/2",
            "list/a/c",
            "list/a/d",
            "list/a/e",
        ];
        let others = ["list/a-b", "list/ab", "list/b/1", "lisz", "other/list/a/1"];
        for (i, k) in keys.iter().chain(others.iter()).enumerate() {
            let body = pattern(i + 1, i as u64);
            s.put_bytes(k, Bytes::from(body.clone()), &opts(&body)).await.unwrap();
        }
        let listed = s.list("list/a/").await.unwrap();
        let mut expect: Vec<&str> = keys.to_vec();
        expect.sort();
        assert_eq!(listed.iter().map(|m| m.key.as_str()).collect::<Vec<_>>(), expect);
        for m in &listed {
            let i = keys.iter().position(|k| *k == m.key).unwrap();
            assert_eq!(m.size, i as u64 + 1, "size of {}", m.key);
        }
        let all = s.list("list/").await.unwrap();
        assert_eq!(all.len(), keys.len() + 3);
        assert!(all.windows(2).all(|w| w[0].key < w[1].key), "lexicographic order");
        assert!(s.list("nothing/").await.unwrap().is_empty());
        assert_eq!(s.list("").await.unwrap().len(), keys.len() + others.len());
    }

    pub async fn delete_idempotent(s: &dyn ObjectStore) {
        let body = pattern(10, 4);
        s.put_bytes("del/obj", Bytes::from(body.clone()), &opts(&body))
            .await
            .unwrap();
        s.delete("del/obj").await.unwrap();
        assert_eq!(s.head("del/obj").await.unwrap(), None);
        assert!(matches!(s.get("del/obj", None).await, Err(StoreError::NotFound { .. })));
        s.delete("del/obj").await.unwrap();
        s.delete("del/never-existed").await.unwrap();
        assert!(s.list("del/").await.unwrap().is_empty());
    }

    pub async fn wrong_sha256_rejected(s: &dyn ObjectStore) {
        let good = pattern(2000, 5);
        s.put_bytes("sum/obj", Bytes::from(good.clone()), &opts(&good))
            .await
            .unwrap();

        // Overwriting with bytes that do not match the sha256: rejected, the old object intact.
        let bad = pattern(2000, 6);
        let wrong = opts(&good);
        match s.put_bytes("sum/obj", Bytes::from(bad.clone()), &wrong).await {
            Err(StoreError::ChecksumMismatch { key }) => assert_eq!(key, "sum/obj"),
            other => panic!("put_bytes with a wrong sha256: {other:?}"),
        }
        match s.put_file("sum/obj", temp_file(&bad).path(), &wrong).await {
            Err(StoreError::ChecksumMismatch { .. }) => {}
            other => panic!("put_file with a wrong sha256: {other:?}"),
        }
        assert_eq!(s.get("sum/obj", None).await.unwrap(), good);

        // A new key with a wrong sha256: no object at all.
        match s.put_file("sum/new", temp_file(&bad).path(), &wrong).await {
            Err(StoreError::ChecksumMismatch { .. }) => {}
            other => panic!("put_file of a new key with a wrong sha256: {other:?}"),
        }
        assert_eq!(s.head("sum/new").await.unwrap(), None);

        // Same for a body big enough to go multipart on S3.
        let big = pattern(11 * MIB, 7);
        match s.put_file("sum/big", temp_file(&big).path(), &wrong).await {
            Err(StoreError::ChecksumMismatch { .. }) => {}
            other => panic!("multipart put with a wrong sha256: {other:?}"),
        }
        assert_eq!(s.head("sum/big").await.unwrap(), None);
        assert_eq!(
            s.list("sum/")
                .await
                .unwrap()
                .iter()
                .map(|m| m.key.as_str())
                .collect::<Vec<_>>(),
            ["sum/obj"]
        );

        // Not hex at all: an invalid request, permanent. (LocalDir reports a mismatch.)
        let mut garbage = opts(&good);
        garbage.sha256 = "not-hex".into();
        assert!(
            s.put_bytes("sum/garbage", Bytes::from(good.clone()), &garbage)
                .await
                .is_err()
        );
        assert_eq!(s.head("sum/garbage").await.unwrap(), None);
    }

    pub async fn overwrite_same_bytes(s: &dyn ObjectStore) {
        let body = pattern(5000, 8);
        let file = temp_file(&body);
        s.put_file("ow/obj", file.path(), &opts(&body)).await.unwrap();
        s.put_file("ow/obj", file.path(), &opts(&body)).await.unwrap();
        let listed = s.list("ow/").await.unwrap();
        assert_eq!(listed.len(), 1, "{listed:?}");
        assert_eq!(listed[0].size, body.len() as u64);
        assert_eq!(s.get("ow/obj", None).await.unwrap(), body);

        // Different bytes replace the object.
        let other = pattern(100, 9);
        s.put_bytes("ow/obj", Bytes::from(other.clone()), &opts(&other))
            .await
            .unwrap();
        assert_eq!(s.get("ow/obj", None).await.unwrap(), other);
        assert_eq!(s.list("ow/").await.unwrap().len(), 1);
    }

    /// ~11 MiB: three parts of 5 MiB on the S3 test stores (threshold 8 MiB).
    pub async fn multipart_round_trip(s: &dyn ObjectStore) {
        let body = pattern(11 * MIB + 12345, 10);
        let mut o = opts(&body);
        o.metadata = BTreeMap::from([("kind".to_string(), "archive".to_string())]);
        s.put_file("mp/big.zst", temp_file(&body).path(), &o).await.unwrap();
        let meta = s.head("mp/big.zst").await.unwrap().expect("uploaded");
        assert_eq!(meta.size, body.len() as u64);
        assert_eq!(meta.metadata, o.metadata);
        assert_eq!(sha256_hex(&s.get("mp/big.zst", None).await.unwrap()), o.sha256);
        // Across the first part boundary, and the tail of the last part.
        let b = 5 * MIB as u64;
        assert_eq!(
            s.get("mp/big.zst", Some(b - 10..b + 10)).await.unwrap(),
            body[b as usize - 10..b as usize + 10]
        );
        let end = body.len() as u64;
        assert_eq!(
            s.get("mp/big.zst", Some(end - 7..end)).await.unwrap(),
            body[body.len() - 7..]
        );

        // Multipart from memory too.
        s.put_bytes("mp/big2", Bytes::from(body.clone()), &o).await.unwrap();
        assert_eq!(sha256_hex(&s.get("mp/big2", None).await.unwrap()), o.sha256);
    }

    pub async fn presigned_get(s: &dyn ObjectStore) {
        let body = pattern(4321, 11);
        s.put_file("pre/obj name+x", temp_file(&body).path(), &opts(&body))
            .await
            .unwrap();
        let url = s.presign_get("pre/obj name+x", Duration::from_secs(300)).await.unwrap();
        let (status, got) = tokio::task::spawn_blocking(move || fetch_url(&url)).await.unwrap();
        assert_eq!(status, 200);
        assert_eq!(got, body);
    }

    pub async fn invalid_keys(s: &dyn ObjectStore) {
        for key in ["", "../escape", "a/../b", "/abs", "a//b"] {
            match s.put_bytes(key, Bytes::from_static(b"x"), &opts(b"x")).await {
                Err(e) => assert!(e.is_permanent(), "{key:?}: {e}"),
                Ok(()) => panic!("{key:?} was accepted"),
            }
        }
    }
}

/// Runs every check against one backend, each as its own test with a fresh store.
macro_rules! conformance {
    ($backend:ident, $make:expr) => {
        mod $backend {
            use super::*;
            conformance!(@tests $make; round_trip, ranged_get, head_and_missing, list_paginated, delete_idempotent,
                wrong_sha256_rejected, overwrite_same_bytes, multipart_round_trip, presigned_get, invalid_keys);
        }
    };
    (@tests $make:expr; $($check:ident),*) => {
        $(
            #[tokio::test]
            async fn $check() {
                let (store, _guard) = $make(stringify!($check)).await;
                checks::$check(&store).await;
            }
        )*
    };
}

async fn local_store(_name: &str) -> (LocalDir, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    (LocalDir::new(dir.path().join("store")).expect("local store"), dir)
}

/// The S3 test store: small list pages (pagination is exercised), multipart above 8 MiB in 5 MiB
/// parts, and the checksum mode given.
fn s3_tweak(checksum: ChecksumKind) -> impl FnOnce(&mut StoreConfig) {
    move |c: &mut StoreConfig| {
        c.list_page_size = 3;
        c.multipart_threshold = bytesize::ByteSize::mib(8);
        c.part_size = bytesize::ByteSize::mib(5);
        c.checksum = checksum;
    }
}

async fn s3_sha256(name: &str) -> (S3Store, ()) {
    (common::s3_store_with(name, s3_tweak(ChecksumKind::Sha256)).await, ())
}

async fn s3_md5(name: &str) -> (S3Store, ()) {
    (
        common::s3_store_with(&format!("md5-{name}"), s3_tweak(ChecksumKind::Md5)).await,
        (),
    )
}

/// Garage, the second engine, stricter about signed payloads: archives are uploaded from files
/// with the checksum calculation the defaults give (`when_required`).
async fn garage_sha256(name: &str) -> (S3Store, ()) {
    (
        common::garage_store_with(name, s3_tweak(ChecksumKind::Sha256)).await,
        (),
    )
}

async fn garage_md5(name: &str) -> (S3Store, ()) {
    (
        common::garage_store_with(&format!("md5-{name}"), s3_tweak(ChecksumKind::Md5)).await,
        (),
    )
}

/// With a key prefix: everything must behave the same under it.
async fn s3_prefixed(name: &str) -> (S3Store, ()) {
    let tweak = |c: &mut StoreConfig| {
        s3_tweak(ChecksumKind::Sha256)(c);
        c.prefix = "deploy/one".into();
    };
    (common::s3_store_with(&format!("pfx-{name}"), tweak).await, ())
}

conformance!(local, local_store);
conformance!(s3, s3_sha256);
conformance!(s3_md5, s3_md5);
conformance!(s3_prefix, s3_prefixed);
conformance!(garage, garage_sha256);
conformance!(garage_md5, garage_md5);

// ---- S3 only -------------------------------------------------------------------------------

mod s3_only {
    use super::*;
    use aws_sdk_s3::operation::head_object::HeadObjectOutput;
    use aws_sdk_s3::types::ServerSideEncryption;

    #[tokio::test]
    async fn tags_land() {
        let store = common::s3_store_with("tags", |c| {
            c.tags = BTreeMap::from([("team".into(), "ops".into()), ("retention".into(), "90d".into())]);
        })
        .await;
        let body = pattern(100, 12);
        let mut o = opts(&body);
        o.tags = BTreeMap::from([
            ("retention".into(), "1 y&more".into()),
            ("source".into(), "stripe".into()),
        ]);
        store.put_bytes("t/obj", Bytes::from(body), &o).await.unwrap();
        let out = store
            .client()
            .get_object_tagging()
            .bucket(store.bucket())
            .key("t/obj")
            .send()
            .await
            .unwrap();
        let tags: BTreeMap<&str, &str> = out.tag_set().iter().map(|t| (t.key(), t.value())).collect();
        assert_eq!(
            tags,
            BTreeMap::from([("retention", "1 y&more"), ("source", "stripe"), ("team", "ops")])
        );
    }

    #[tokio::test]
    async fn multipart_is_multipart_on_the_wire() {
        let store = common::s3_store_with("mp-wire", s3_tweak(ChecksumKind::Sha256)).await;
        let body = pattern(11 * MIB, 13);
        store
            .put_file("big", temp_file(&body).path(), &opts(&body))
            .await
            .unwrap();
        let head = store
            .client()
            .head_object()
            .bucket(store.bucket())
            .key("big")
            .send()
            .await
            .unwrap();
        let etag = head.e_tag().unwrap_or_default();
        assert!(
            etag.trim_matches('"').ends_with("-3"),
            "three parts expected, etag {etag}"
        );
        // Below the threshold: one PutObject.
        let small = pattern(7 * MIB, 14);
        store
            .put_file("small", temp_file(&small).path(), &opts(&small))
            .await
            .unwrap();
        let head = store
            .client()
            .head_object()
            .bucket(store.bucket())
            .key("small")
            .send()
            .await
            .unwrap();
        assert!(!head.e_tag().unwrap_or_default().contains('-'));
    }

    /// The conformance listing is really paginated: the server honours max-keys.
    #[tokio::test]
    async fn server_paginates_small_pages() {
        let store = common::s3_store_with("pages", s3_tweak(ChecksumKind::Sha256)).await;
        for i in 0..7 {
            store
                .put_bytes(&format!("p/{i}"), Bytes::from_static(b"x"), &opts(b"x"))
                .await
                .unwrap();
        }
        let page = store
            .client()
            .list_objects_v2()
            .bucket(store.bucket())
            .max_keys(3)
            .send()
            .await
            .unwrap();
        assert_eq!(page.contents().len(), 3);
        assert_eq!(page.is_truncated(), Some(true));
        assert_eq!(store.list("p/").await.unwrap().len(), 7);
    }

    /// With the SDK's own checksums (aws-chunked, CRC32 trailer) uploads from files must still
    /// land intact on this store; `when_required` is the default because some stores fail here.
    #[tokio::test]
    async fn when_supported_checksums_round_trip() {
        let store = common::s3_store_with("when-supported", |c| {
            s3_tweak(ChecksumKind::Sha256)(c);
            c.request_checksum_calculation = scrubd::store::ChecksumCalculation::WhenSupported;
        })
        .await;
        for (key, len) in [("small", 300_000), ("big", 11 * MIB)] {
            let body = pattern(len, len as u64);
            store
                .put_file(key, temp_file(&body).path(), &opts(&body))
                .await
                .unwrap();
            assert_eq!(
                sha256_hex(&store.get(key, None).await.unwrap()),
                sha256_hex(&body),
                "{key}"
            );
        }
    }

    #[tokio::test]
    async fn wrong_secret_is_permanent_access_denied() {
        let admin = common::s3_store("wrong-secret").await;
        admin
            .put_bytes("k", Bytes::from_static(b"v"), &opts(b"v"))
            .await
            .unwrap();
        let env = common::s3_env();
        let cfg = common::s3_config(admin.bucket());
        let bad = S3Store::with_credentials(&cfg, &env.access_key, "not-the-secret").unwrap();
        let unknown = S3Store::with_credentials(&cfg, "NOSUCHKEY", &env.secret_key).unwrap();
        for s in [&bad, &unknown] {
            for err in [
                s.put_bytes("k2", Bytes::from_static(b"v"), &opts(b"v"))
                    .await
                    .unwrap_err(),
                s.get("k", None).await.unwrap_err(),
                s.list("").await.unwrap_err(),
            ] {
                assert!(matches!(err, StoreError::AccessDenied { .. }), "{err:?}");
                assert!(err.is_permanent());
            }
        }
        assert_eq!(admin.head("k2").await.unwrap(), None);
    }

    #[tokio::test]
    async fn missing_bucket_is_permanent() {
        let env = common::s3_env();
        let bucket = common::unique_bucket("never-created");
        let s = S3Store::with_credentials(&common::s3_config(&bucket), &env.access_key, &env.secret_key).unwrap();
        for err in [
            s.put_bytes("k", Bytes::from_static(b"v"), &opts(b"v"))
                .await
                .unwrap_err(),
            s.list("").await.unwrap_err(),
            s.get("k", None).await.unwrap_err(),
        ] {
            match &err {
                StoreError::NoSuchBucket { bucket: b } => assert_eq!(b, &bucket),
                other => panic!("expected NoSuchBucket, got {other:?}"),
            }
            assert!(err.is_permanent());
        }
    }

    #[tokio::test]
    async fn readonly_key_reads_but_cannot_write() {
        let admin = common::s3_store("readonly").await;
        let body = pattern(300, 15);
        admin
            .put_bytes("ro/obj", Bytes::from(body.clone()), &opts(&body))
            .await
            .unwrap();
        let ro = common::s3_readonly_store(admin.bucket());
        assert_eq!(ro.get("ro/obj", None).await.unwrap(), body);
        assert_eq!(ro.get("ro/obj", Some(10..20)).await.unwrap(), body[10..20]);
        assert_eq!(ro.list("ro/").await.unwrap().len(), 1);
        let err = ro
            .put_bytes("ro/new", Bytes::from(body.clone()), &opts(&body))
            .await
            .unwrap_err();
        assert!(err.is_permanent(), "{err:?}");
        assert!(matches!(err, StoreError::AccessDenied { .. }), "{err:?}");
        let err = ro.delete("ro/obj").await.unwrap_err();
        assert!(err.is_permanent(), "{err:?}");
        assert_eq!(admin.get("ro/obj", None).await.unwrap(), body);
        assert_eq!(admin.head("ro/new").await.unwrap(), None);
    }

    /// `store::open` with credentials from files, as an operator configures it.
    #[tokio::test]
    async fn open_with_credential_files() {
        let admin = common::s3_store("cred-files").await;
        let env = common::s3_env();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("id"), format!("{}\n", env.access_key)).unwrap();
        std::fs::write(dir.path().join("secret"), format!("{}\n", env.secret_key)).unwrap();
        let mut cfg = common::s3_config(admin.bucket());
        cfg.access_key_id_file = Some(dir.path().join("id"));
        cfg.secret_access_key_file = Some(dir.path().join("secret"));
        cfg.prefix = "p".into();
        let s = store::open(&cfg).await.unwrap();
        s.put_bytes("k", Bytes::from_static(b"hello"), &opts(b"hello"))
            .await
            .unwrap();
        assert_eq!(admin.get("p/k", None).await.unwrap(), Bytes::from_static(b"hello"));
        assert_eq!(s.list("").await.unwrap().len(), 1);

        cfg.secret_access_key_file = Some(dir.path().join("missing"));
        match store::open(&cfg).await {
            Err(e @ StoreError::Config { field, .. }) => {
                assert_eq!(field, "secret_access_key_file");
                assert!(e.is_permanent());
            }
            other => panic!("missing secret file: {other:?}"),
        }
        cfg.secret_access_key_file = None;
        assert!(matches!(store::open(&cfg).await, Err(StoreError::Config { .. })));
    }

    /// A connection cut mid-upload (single put and multipart): a transient error, no object, no
    /// multipart upload left open; the retry then lands exactly one object.
    #[tokio::test]
    async fn connection_cut_mid_upload() {
        let direct = common::s3_store_with("cut", s3_tweak(ChecksumKind::Sha256)).await;
        let proxy = common::cutting_proxy(common::s3_addr(), 6 * MIB as u64).await;
        let env = common::s3_env();
        let mut cfg = common::s3_config(direct.bucket());
        s3_tweak(ChecksumKind::Sha256)(&mut cfg);
        cfg.endpoint = format!("http://{proxy}");
        let cut = S3Store::with_credentials(&cfg, &env.access_key, &env.secret_key).unwrap();

        for (key, len) in [("single", 7 * MIB), ("multi", 16 * MIB)] {
            let body = pattern(len, 17);
            let file = temp_file(&body);
            let err = cut.put_file(key, file.path(), &opts(&body)).await.unwrap_err();
            assert!(!err.is_permanent(), "{key}: {err:?}");
            assert_eq!(direct.head(key).await.unwrap(), None, "{key}");
            direct.put_file(key, file.path(), &opts(&body)).await.unwrap();
            assert_eq!(sha256_hex(&direct.get(key, None).await.unwrap()), sha256_hex(&body));
        }
        assert_eq!(direct.list("").await.unwrap().len(), 2);
        let uploads = direct
            .client()
            .list_multipart_uploads()
            .bucket(direct.bucket())
            .send()
            .await
            .unwrap();
        assert!(
            uploads.uploads().is_empty(),
            "aborted upload left open: {:?}",
            uploads.uploads()
        );
    }

    /// Puts a small and a multipart object from files, checks they read back whole, and returns
    /// their HEADs (for what the store reports about them).
    async fn put_small_and_multipart(store: &S3Store) -> Vec<(&'static str, HeadObjectOutput)> {
        let mut heads = Vec::new();
        for (key, len) in [("small", 1000), ("big", 11 * MIB)] {
            let body = pattern(len, 18);
            store
                .put_file(key, temp_file(&body).path(), &opts(&body))
                .await
                .unwrap();
            assert_eq!(
                sha256_hex(&store.get(key, None).await.unwrap()),
                sha256_hex(&body),
                "{key}"
            );
            let head = store
                .client()
                .head_object()
                .bucket(store.bucket())
                .key(key)
                .send()
                .await
                .unwrap();
            heads.push((key, head));
        }
        heads
    }

    /// SSE-S3 and a storage class are sent and reported back, single and multipart.
    #[tokio::test]
    async fn sse_and_storage_class() {
        let store = common::s3_store_with("sse", |c| {
            s3_tweak(ChecksumKind::Sha256)(c);
            c.sse = scrubd::store::Sse::Aes256;
            c.storage_class = "STANDARD_IA".into();
        })
        .await;
        for (key, head) in put_small_and_multipart(&store).await {
            assert_eq!(
                head.server_side_encryption(),
                Some(&ServerSideEncryption::Aes256),
                "{key}"
            );
            assert_eq!(
                head.storage_class(),
                Some(&aws_sdk_s3::types::StorageClass::StandardIa),
                "{key}"
            );
        }
    }

    /// SSE-KMS with a key id (SeaweedFS's local KMS) is sent and reported back, single and
    /// multipart.
    #[tokio::test]
    async fn sse_kms_with_key_id() {
        let store = common::s3_store_with("sse-kms", |c| {
            s3_tweak(ChecksumKind::Sha256)(c);
            c.sse = scrubd::store::Sse::AwsKms;
            c.kms_key_id = "scrubd-test-key".into();
        })
        .await;
        for (key, head) in put_small_and_multipart(&store).await {
            assert_eq!(
                head.server_side_encryption(),
                Some(&ServerSideEncryption::AwsKms),
                "{key}"
            );
            assert_eq!(head.ssekms_key_id(), Some("scrubd-test-key"), "{key}");
        }
    }

    /// A bucket with Object Lock and a default retention accepts our puts in both checksum modes
    /// (it requires Content-MD5 or a checksum header), and the objects are locked.
    #[tokio::test]
    async fn object_lock_bucket_accepts_puts() {
        use aws_sdk_s3::types::{
            DefaultRetention, ObjectLockConfiguration, ObjectLockEnabled, ObjectLockRetentionMode, ObjectLockRule,
        };
        let env = common::s3_env();
        let bucket = common::unique_bucket("lock");
        for checksum in [ChecksumKind::Md5, ChecksumKind::Sha256] {
            let mut cfg = common::s3_config(&bucket);
            s3_tweak(checksum)(&mut cfg);
            let store = S3Store::with_credentials(&cfg, &env.access_key, &env.secret_key).unwrap();
            if checksum == ChecksumKind::Md5 {
                let c = store.client();
                c.create_bucket()
                    .bucket(&bucket)
                    .object_lock_enabled_for_bucket(true)
                    .send()
                    .await
                    .unwrap();
                let rule = ObjectLockRule::builder()
                    .default_retention(
                        DefaultRetention::builder()
                            .mode(ObjectLockRetentionMode::Governance)
                            .days(1)
                            .build(),
                    )
                    .build();
                let lock = ObjectLockConfiguration::builder()
                    .object_lock_enabled(ObjectLockEnabled::Enabled)
                    .rule(rule)
                    .build();
                c.put_object_lock_configuration()
                    .bucket(&bucket)
                    .object_lock_configuration(lock)
                    .send()
                    .await
                    .unwrap();
            }
            for (name, len) in [("small", 1000), ("big", 11 * MIB)] {
                let key = format!("{checksum:?}/{name}");
                let body = pattern(len, 19);
                store
                    .put_file(&key, temp_file(&body).path(), &opts(&body))
                    .await
                    .unwrap();
                let retention = store
                    .client()
                    .get_object_retention()
                    .bucket(&bucket)
                    .key(&key)
                    .send()
                    .await
                    .unwrap();
                let mode = retention.retention().and_then(|r| r.mode()).cloned();
                assert_eq!(mode, Some(ObjectLockRetentionMode::Governance), "{key}");
            }
        }
    }

    #[tokio::test]
    async fn unreachable_endpoint_is_transient() {
        // A loopback port nothing listens on: connection refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let cfg = StoreConfig {
            kind: StoreKind::S3,
            bucket: "b".into(),
            endpoint: format!("http://127.0.0.1:{port}"),
            force_path_style: true,
            ..StoreConfig::default()
        };
        let s = S3Store::with_credentials(&cfg, "a", "b").unwrap();
        let err = s
            .put_bytes("k", Bytes::from_static(b"v"), &opts(b"v"))
            .await
            .unwrap_err();
        assert!(matches!(err, StoreError::Transient { .. }), "{err:?}");
        assert!(!err.is_permanent());
    }
}

#[tokio::test]
async fn open_local_store() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = StoreConfig {
        kind: StoreKind::Local,
        path: dir.path().join("objs"),
        ..StoreConfig::default()
    };
    let s = store::open(&cfg).await.unwrap();
    s.put_bytes("a/b", Bytes::from_static(b"x"), &opts(b"x")).await.unwrap();
    assert!(dir.path().join("objs/a/b").is_file());
    let bad = StoreConfig {
        kind: StoreKind::S3,
        ..StoreConfig::default()
    };
    match store::open(&bad).await {
        Err(StoreError::Config { field, .. }) => assert_eq!(field, "bucket"),
        other => panic!("s3 without a bucket: {other:?}"),
    }
}

// ---- Faulty --------------------------------------------------------------------------------

mod faulty {
    use super::*;

    /// A put retried until it succeeds, the way the uploader does (without the backoff).
    async fn put_with_retries(s: &dyn ObjectStore, key: &str, body: &[u8], attempts: u32) -> Result<u32, StoreError> {
        let file = temp_file(body);
        let mut n = 0;
        loop {
            n += 1;
            match s.put_file(key, file.path(), &opts(body)).await {
                Ok(()) => return Ok(n),
                Err(e) if !e.is_permanent() && n < attempts => continue,
                Err(e) => return Err(e),
            }
        }
    }

    async fn check(store: impl ObjectStore, plan: &[(u64, Op, Fault)], expect_attempts: Result<u32, ()>) {
        let mut f = Faulty::new(store);
        for (n, op, fault) in plan {
            f = f.fail_first(*n, *op, fault.clone());
        }
        let body = pattern(1000, 16);
        let got = put_with_retries(&f, "f/obj", &body, 5).await;
        match (got, expect_attempts) {
            (Ok(n), Ok(e)) => {
                assert_eq!(n, e, "attempts");
                // Whatever failed on the way: exactly one object, with the right bytes.
                assert_eq!(f.inner().list("f/").await.unwrap().len(), 1);
                assert_eq!(f.inner().get("f/obj", None).await.unwrap(), body);
            }
            (Err(e), Err(())) => assert!(e.is_permanent() || f.calls(Op::PutFile) == 5, "{e}"),
            (got, expect) => panic!("plan {plan:?}: got {got:?}, expected {expect:?}"),
        }
        assert_eq!(f.calls(Op::PutFile), f.calls(Op::Any), "only puts were made");
    }

    fn local() -> (LocalDir, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        (LocalDir::new(dir.path()).unwrap(), dir)
    }

    #[tokio::test]
    async fn plans() {
        type Plan = Vec<(u64, Op, Fault)>;
        let cases: Vec<(Plan, Result<u32, ()>)> = vec![
            (vec![], Ok(1)),
            (vec![(2, Op::PutFile, Fault::ServerError(503))], Ok(3)),
            (vec![(3, Op::Any, Fault::ServerError(500))], Ok(4)),
            (vec![(3, Op::Get, Fault::ServerError(500))], Ok(1)),
            (vec![(1, Op::PutFile, Fault::LandedButFailed)], Ok(2)),
            (
                vec![
                    (1, Op::PutFile, Fault::ServerError(503)),
                    (2, Op::PutFile, Fault::LandedButFailed),
                ],
                Ok(4),
            ),
            (vec![(1, Op::PutFile, Fault::Timeout(Duration::from_millis(20)))], Ok(2)),
            (vec![(9, Op::PutFile, Fault::ServerError(503))], Err(())),
            (vec![(1, Op::PutFile, Fault::AccessDenied)], Err(())),
        ];
        for (plan, expect) in cases {
            let (store, _dir) = local();
            check(store, &plan, expect).await;
        }
    }

    #[tokio::test]
    async fn landed_but_failed_on_s3_leaves_one_object() {
        let store = common::s3_store("faulty-landed").await;
        check(store, &[(2, Op::PutFile, Fault::LandedButFailed)], Ok(3)).await;
    }

    #[tokio::test]
    async fn counters_and_clear() {
        let (store, _dir) = local();
        let f = Faulty::new(store).fail_first(2, Op::Head, Fault::ServerError(500));
        assert!(f.head("x").await.is_err());
        // Get has no plan: the real store answers.
        assert!(matches!(f.get("x", None).await, Err(StoreError::NotFound { .. })));
        assert_eq!((f.calls(Op::Head), f.injected(Op::Head)), (1, 1));
        assert_eq!((f.calls(Op::Get), f.injected(Op::Get)), (1, 0));
        f.clear_faults();
        assert_eq!(f.head("x").await.unwrap(), None);
        assert_eq!((f.calls(Op::Any), f.injected(Op::Any)), (3, 1));
        f.add_fault(1, Op::Any, Fault::AccessDenied);
        assert!(f.list("").await.unwrap_err().is_permanent());
        assert!(f.list("").await.unwrap().is_empty());
    }

    /// A timed-out call reaches nothing: the caller's deadline fires while it hangs.
    #[tokio::test]
    async fn timeout_outlasts_the_deadline() {
        let (store, _dir) = local();
        let f = Faulty::new(store).fail_first(1, Op::PutBytes, Fault::Timeout(Duration::from_secs(3600)));
        let o = opts(b"v");
        let put = f.put_bytes("k", Bytes::from_static(b"v"), &o);
        assert!(tokio::time::timeout(Duration::from_millis(50), put).await.is_err());
        assert_eq!(f.inner().head("k").await.unwrap(), None);
        f.put_bytes("k", Bytes::from_static(b"v"), &opts(b"v")).await.unwrap();
        assert_eq!(f.calls(Op::PutBytes), 2);
    }
}
