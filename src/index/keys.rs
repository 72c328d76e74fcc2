//! Object keys of index segments and their partitions, derived from archive keys and manifests.
//!
//! Must not: invent a layout of its own for archives and manifests; it only parses theirs
//! (`archives/dt=…/host=…/source=…/<file_id>-<first_offset:020>.zst`).

use chrono::{DateTime, NaiveDate, Utc};

use crate::archive::manifest::Manifest;

pub const INDEX_PREFIX: &str = "index/";
pub const MANIFEST_PREFIX: &str = "manifests/";
pub const ARCHIVE_PREFIX: &str = "archives/";
pub const COMPACTED_PREFIX: &str = "compacted-";
pub const SEGMENT_SUFFIX: &str = ".parquet";

/// A label as one safe key component: the same mapping as the archive keys use, so the `host=`
/// of an index segment is the `host=` of its archive.
pub fn sanitize(label: &str) -> String {
    crate::archive::keys::sanitize(label)
}

/// The value of the `name=` component of `key`, if it has one.
pub fn component<'a>(key: &'a str, name: &str) -> Option<&'a str> {
    key.split('/').find_map(|c| c.strip_prefix(name)?.strip_prefix('='))
}

/// The day partition of an archive: its key's `dt=`, or else the day of its first record (or of
/// its sealing).
pub fn manifest_day(m: &Manifest) -> NaiveDate {
    if let Some(d) = component(&m.key, "dt").and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok()) {
        return d;
    }
    let ms = m.first_timestamp_ms.unwrap_or(m.sealed_at_ms);
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(|t| t.date_naive())
        .unwrap_or_default()
}

/// `index/dt=YYYY-MM-DD/`
pub fn day_prefix(day: NaiveDate) -> String {
    format!("{INDEX_PREFIX}dt={}/", day.format("%Y-%m-%d"))
}

/// `index/dt=YYYY-MM-DD/host=H/`
pub fn host_prefix(day: NaiveDate, host: &str) -> String {
    format!("{}host={}/", day_prefix(day), sanitize(host))
}

/// `index/dt=…/host=H/<source>-<file_id>-<first_offset:020>.parquet`: the archive's partition and
/// name (`archives/dt=…/host=H/source=S/<file_id>-<first_offset:020>.zst`), or, for an archive key
/// of another shape, the same built from the manifest's fields.
pub fn segment_key(m: &Manifest) -> String {
    if let Some(k) = segment_key_for_archive(&m.key) {
        return k;
    }
    let name = format!("{}-{:020}", sanitize(&m.file_id), m.first_offset);
    build_segment_key(manifest_day(m), &sanitize(&m.host), &sanitize(&m.source), &name)
}

/// The segment key of an archive key of the standard layout.
pub fn segment_key_for_archive(archive_key: &str) -> Option<String> {
    let rest = archive_key.strip_prefix(ARCHIVE_PREFIX)?;
    let parts: Vec<&str> = rest.split('/').collect();
    let [dt, host, source, name] = parts[..] else {
        return None;
    };
    let day = NaiveDate::parse_from_str(dt.strip_prefix("dt=")?, "%Y-%m-%d").ok()?;
    let host = host.strip_prefix("host=")?;
    let source = source.strip_prefix("source=")?;
    let name = name.strip_suffix(".zst")?;
    Some(build_segment_key(
        day,
        &sanitize(host),
        &sanitize(source),
        &sanitize(name),
    ))
}

/// The segment key of a manifest key of the standard layout.
pub fn segment_key_for_manifest(manifest_key: &str) -> Option<String> {
    let rest = manifest_key.strip_prefix(MANIFEST_PREFIX)?.strip_suffix(".json")?;
    segment_key_for_archive(&format!("{ARCHIVE_PREFIX}{rest}.zst"))
}

fn build_segment_key(day: NaiveDate, host: &str, source: &str, name: &str) -> String {
    // A source called `compacted…` must not look like a compacted segment.
    let source = if source.starts_with("compacted") {
        format!("_{source}")
    } else {
        source.to_string()
    };
    format!(
        "{INDEX_PREFIX}dt={}/host={host}/{source}-{name}{SEGMENT_SUFFIX}",
        day.format("%Y-%m-%d")
    )
}

/// The partition (`index/dt=…/host=…/`) a segment key lives in.
pub fn partition_of(key: &str) -> &str {
    match key.rfind('/') {
        Some(i) => &key[..=i],
        None => "",
    }
}

/// Whether `key` names a compacted segment.
pub fn is_compacted(key: &str) -> bool {
    key.rsplit('/').next().is_some_and(|n| n.starts_with(COMPACTED_PREFIX))
}

/// Whether `key` names a segment at all (and not some other object under `index/`).
pub fn is_segment(key: &str) -> bool {
    key.starts_with(INDEX_PREFIX) && key.ends_with(SEGMENT_SUFFIX)
}

/// The manifest key of an archive key: `archives/…/x.zst` → `manifests/…/x.json`.
pub fn manifest_key_for_archive(archive_key: &str) -> Option<String> {
    let rest = archive_key.strip_prefix(ARCHIVE_PREFIX)?;
    let stem = rest.strip_suffix(".zst").unwrap_or(rest);
    Some(format!("{MANIFEST_PREFIX}{stem}.json"))
}

/// The day of a key's `dt=` component.
pub fn key_day(key: &str) -> Option<NaiveDate> {
    component(key, "dt").and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(input: &str, expect: &str) {
        assert_eq!(sanitize(input), expect, "sanitize({input:?})");
    }

    #[test]
    fn sanitizes_labels_like_the_archive_keys() {
        check("web-1.example.com", "web-1.example.com");
        for label in ["a/b", "..", "", "host name", "web/1", "web_1"] {
            let s = sanitize(label);
            assert_eq!(s, crate::archive::keys::sanitize(label), "{label:?}");
            assert!(
                !s.is_empty() && !s.contains('/') && !s.starts_with('.'),
                "{label:?} -> {s:?}"
            );
        }
        // Labels that differ stay different.
        assert_ne!(sanitize("web/1"), sanitize("web_1"));
    }

    #[test]
    fn derives_keys() {
        assert_eq!(
            manifest_key_for_archive("archives/dt=2026-01-02/host=h/source=s/f-00000000000000000007.zst").as_deref(),
            Some("manifests/dt=2026-01-02/host=h/source=s/f-00000000000000000007.json")
        );
        assert_eq!(
            segment_key_for_manifest("manifests/dt=2026-01-02/host=h/source=s/f-00000000000000000007.json").as_deref(),
            Some("index/dt=2026-01-02/host=h/s-f-00000000000000000007.parquet")
        );
        assert_eq!(
            segment_key_for_archive("archives/dt=2026-01-02/host=h/source=compacted/f-7.zst").as_deref(),
            Some("index/dt=2026-01-02/host=h/_compacted-f-7.parquet")
        );
        assert_eq!(component("index/dt=2026-01-02/host=h1/x.parquet", "host"), Some("h1"));
        assert_eq!(
            partition_of("index/dt=2026-01-02/host=h1/x.parquet"),
            "index/dt=2026-01-02/host=h1/"
        );
        assert!(is_compacted("index/dt=2026-01-02/host=h1/compacted-ab.parquet"));
        assert!(!is_compacted("index/dt=2026-01-02/host=h1/src-compacted-ab.parquet"));
    }
}
