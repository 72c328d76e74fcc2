//! The manifest of one archive: what it holds, where each record is, and how it was scrubbed.
//! Stored as a JSON sidecar under `manifests/` next to the archive under `archives/`, and the only
//! input `index` needs besides the archive itself.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::record::Level;

/// Version of the manifest format; bumped on incompatible changes.
pub const MANIFEST_VERSION: u32 = 1;

/// One record inside an archive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordEntry {
    /// Index of the zstd frame holding the record (frames hold whole records).
    pub frame: u32,
    /// Byte range of the record in the archive's decompressed content.
    pub start: u64,
    pub len: u64,
    /// Offset of the record in its source file (raw bytes, before scrubbing).
    pub source_offset: u64,
    // Absent values are left out rather than written as `null` (a missing field reads as `None`):
    // most records of line-oriented logs have no event, and manifests were mostly nulls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timestamp_ms: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub level: Option<Level>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_type: Option<String>,
    pub ids: Vec<String>,
    pub pseudonyms: Vec<String>,
}

/// Byte range of one zstd frame, in the compressed object and in the decompressed content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FrameEntry {
    pub compressed_offset: u64,
    pub compressed_len: u64,
    pub decompressed_offset: u64,
    pub decompressed_len: u64,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    pub version: u32,
    /// Object key of the archive (`archives/…`).
    pub key: String,
    pub host: String,
    pub source: String,
    /// Stable identity of the source file (device, inode and fingerprint of its first bytes).
    pub file_id: String,
    /// Range of source-file offsets the archive covers: `[first_offset, end_offset)`.
    pub first_offset: u64,
    pub end_offset: u64,
    pub record_count: u64,
    pub first_timestamp_ms: Option<i64>,
    pub last_timestamp_ms: Option<i64>,
    /// Hex sha256 of the archive object (compressed bytes, exactly as stored).
    pub sha256: String,
    pub compressed_bytes: u64,
    pub decompressed_bytes: u64,
    /// Version and digest of the rule set that scrubbed the records.
    pub ruleset_version: String,
    pub ruleset_digest: String,
    /// Values removed per rule, summed over the records.
    pub rule_counts: BTreeMap<String, u64>,
    /// Records the scrubber could only scrub in text mode.
    pub fallbacks: u64,
    pub frames: Vec<FrameEntry>,
    pub records: Vec<RecordEntry>,
    /// When the archive was sealed, ms since the epoch.
    pub sealed_at_ms: i64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn absent_record_fields_are_left_out_and_read_back_either_way() {
        let entry = RecordEntry {
            frame: 0,
            start: 0,
            len: 83,
            source_offset: 0,
            timestamp_ms: None,
            level: None,
            event_id: None,
            event_type: None,
            ids: vec![],
            pseudonyms: vec![],
        };
        let json = serde_json::to_string(&entry).unwrap();
        assert_eq!(
            json,
            r#"{"frame":0,"start":0,"len":83,"source_offset":0,"ids":[],"pseudonyms":[]}"#
        );
        assert_eq!(serde_json::from_str::<RecordEntry>(&json).unwrap(), entry);
        // Manifests written before absent fields were left out.
        let old = r#"{"frame":0,"start":0,"len":83,"source_offset":0,"timestamp_ms":null,"level":null,
            "event_id":null,"event_type":null,"ids":[],"pseudonyms":[]}"#;
        assert_eq!(serde_json::from_str::<RecordEntry>(old).unwrap(), entry);
        let full = RecordEntry {
            timestamp_ms: Some(1),
            level: Some(Level::Info),
            event_id: Some("evt_1".into()),
            event_type: Some("customer.created".into()),
            ..entry
        };
        let json = serde_json::to_string(&full).unwrap();
        assert_eq!(serde_json::from_str::<RecordEntry>(&json).unwrap(), full);
    }
}
