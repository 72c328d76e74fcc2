//! Object keys: where an archive, its manifest and its index segment live in the bucket.
//!
//! Keys are a pure function of (host, source, file id, first offset, date), so a retry after a
//! crash writes the same key instead of a duplicate, and two hosts never collide. The prefixes
//! `archives/`, `manifests/` and `index/` are separate so bucket policies can treat them apart.
//!
//! Must not: depend on anything that changes between two attempts (the clock, a random number).

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// The identity of one archive, from which all its keys derive.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyParts<'a> {
    pub host: &'a str,
    pub source: &'a str,
    pub file_id: &'a str,
    pub first_offset: u64,
    /// Day partition: the first record's timestamp, or the caller's stable fallback (ms since epoch).
    pub date_ms: i64,
}

/// Longest sanitized component; longer names are cut and marked with a hash.
const MAX_COMPONENT: usize = 96;

/// Maps `name` to `[A-Za-z0-9._-]+`, not starting with `.`. If anything had to change, a short
/// hash of the original is appended, so two different names never map to the same component.
pub fn sanitize(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.starts_with('.') {
        out.replace_range(0..1, "_");
    }
    let changed = out != name || out.is_empty() || out.len() > MAX_COMPONENT;
    if changed {
        out.truncate(MAX_COMPONENT);
        let digest = hex::encode(Sha256::digest(name.as_bytes()));
        out.push('~');
        out.push_str(&digest[..8]);
    }
    out
}

/// `YYYY-MM-DD` (UTC) of a time in ms since the epoch; times chrono cannot represent map to
/// `1970-01-01`, deterministically.
pub fn date_partition(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .unwrap_or(DateTime::<Utc>::UNIX_EPOCH)
        .format("%Y-%m-%d")
        .to_string()
}

fn partition(p: &KeyParts) -> String {
    format!(
        "dt={}/host={}/source={}",
        date_partition(p.date_ms),
        sanitize(p.host),
        sanitize(p.source)
    )
}

/// `archives/dt=YYYY-MM-DD/host=H/source=S/<file_id>-<first_offset:020>.zst`
pub fn archive_key(p: &KeyParts) -> String {
    format!(
        "archives/{}/{}-{:020}.zst",
        partition(p),
        sanitize(p.file_id),
        p.first_offset
    )
}

/// `manifests/dt=YYYY-MM-DD/host=H/source=S/<file_id>-<first_offset:020>.json`
pub fn manifest_key(p: &KeyParts) -> String {
    format!(
        "manifests/{}/{}-{:020}.json",
        partition(p),
        sanitize(p.file_id),
        p.first_offset
    )
}

/// `index/dt=YYYY-MM-DD/host=H/<source>-<file_id>-<first_offset:020>.parquet`
pub fn index_key(p: &KeyParts) -> String {
    format!(
        "index/dt={}/host={}/{}-{}-{:020}.parquet",
        date_partition(p.date_ms),
        sanitize(p.host),
        sanitize(p.source),
        sanitize(p.file_id),
        p.first_offset
    )
}

/// The manifest key that belongs to an archive key (`archives/….zst` → `manifests/….json`).
pub fn manifest_key_for(archive_key: &str) -> Option<String> {
    let rest = archive_key.strip_prefix("archives/")?.strip_suffix(".zst")?;
    Some(format!("manifests/{rest}.json"))
}

/// The index key that belongs to an archive key.
pub fn index_key_for(archive_key: &str) -> Option<String> {
    let rest = archive_key.strip_prefix("archives/")?.strip_suffix(".zst")?;
    let (partition, name) = rest.rsplit_once('/')?;
    let (dt_host, source) = partition.rsplit_once("/source=")?;
    Some(format!("index/{dt_host}/{source}-{name}.parquet"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(parts: KeyParts, expect: [&str; 3]) {
        let got = [archive_key(&parts), manifest_key(&parts), index_key(&parts)];
        assert_eq!(got, expect.map(String::from), "{parts:?}");
        assert_eq!(manifest_key_for(&got[0]).as_deref(), Some(expect[1]));
        assert_eq!(index_key_for(&got[0]).as_deref(), Some(expect[2]));
    }

    #[test]
    fn keys() {
        // 2026-11-23T15:53:16Z
        let ms = 1_795_449_196_000;
        check(
            KeyParts {
                host: "web-1",
                source: "stripe",
                file_id: "801-1234-abcd",
                first_offset: 42,
                date_ms: ms,
            },
            [
                "archives/dt=2026-11-23/host=web-1/source=stripe/801-1234-abcd-00000000000000000042.zst",
                "manifests/dt=2026-11-23/host=web-1/source=stripe/801-1234-abcd-00000000000000000042.json",
                "index/dt=2026-11-23/host=web-1/stripe-801-1234-abcd-00000000000000000042.parquet",
            ],
        );
        check(
            KeyParts {
                host: "h",
                source: "s",
                file_id: "f",
                first_offset: u64::MAX,
                date_ms: i64::MAX,
            },
            [
                "archives/dt=1970-01-01/host=h/source=s/f-18446744073709551615.zst",
                "manifests/dt=1970-01-01/host=h/source=s/f-18446744073709551615.json",
                "index/dt=1970-01-01/host=h/s-f-18446744073709551615.parquet",
            ],
        );
    }

    #[test]
    fn sanitize_is_safe_and_injective_on_examples() {
        let names = [
            "a/b",
            "a_b",
            "../etc",
            "..",
            "",
            "ü",
            "x y",
            "a=b",
            ".hidden",
            "ok-name.1",
        ];
        let out: Vec<String> = names.iter().map(|n| sanitize(n)).collect();
        for (n, s) in names.iter().zip(&out) {
            assert!(!s.is_empty() && !s.starts_with('.'), "{n:?} -> {s:?}");
            assert!(
                s.chars().all(|c| c.is_ascii_alphanumeric() || "._-~".contains(c)),
                "{n:?} -> {s:?}"
            );
        }
        assert_eq!(out[9], "ok-name.1");
        let unique: std::collections::BTreeSet<_> = out.iter().collect();
        assert_eq!(unique.len(), names.len(), "{out:?}");
        assert!(sanitize(&"x".repeat(500)).len() <= MAX_COMPONENT + 9);
    }
}
