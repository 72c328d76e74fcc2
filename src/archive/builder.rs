//! [`ArchiveBuilder`]: the scrubbed records of one (host, source, file) on their way into one
//! archive, compressed frame by frame, with the per-record entries of the manifest.
//!
//! Memory is about one frame of content plus the compressed output so far plus the record
//! entries. Must not: see raw (unscrubbed) bytes; it only takes [`Scrubbed`] output.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use super::keys::{self, KeyParts};
use super::manifest::MANIFEST_VERSION;
use super::seekable::FrameEncoder;
use super::spool::{Sealed, Spool};
use super::{ArchiveConfig, ArchiveError, Manifest, RecordEntry};
use crate::record::{Level, Record};
use crate::scrub::Scrubbed;

/// What an archive belongs to and how its records were scrubbed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ArchiveIdentity {
    pub host: String,
    pub source: String,
    /// Stable identity of the source file (device, inode, fingerprint of its first bytes).
    pub file_id: String,
    pub ruleset_version: String,
    pub ruleset_digest: String,
    /// Day partition used when no record carries a timestamp, in ms since the epoch. For a retry
    /// after a crash to write the same key it must be stable for the file (e.g. the time the file
    /// was first seen, kept in its checkpoint), not the current time.
    pub fallback_time_ms: i64,
}

/// What the archive needs to know about a record besides its scrubbed bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordMeta {
    /// Offset of the record's first byte in the source file.
    pub offset: u64,
    /// Length of the raw record in the source file (the scrubbed length may differ).
    pub source_len: u64,
    /// Timestamp from the record's header; the body's (`Scrubbed::timestamp_ms`) is the fallback.
    pub timestamp_ms: Option<i64>,
    pub level: Option<Level>,
}

impl RecordMeta {
    pub fn of(record: &Record) -> RecordMeta {
        RecordMeta {
            offset: record.offset,
            source_len: record.bytes.len() as u64,
            timestamp_ms: record.timestamp_ms,
            level: record.level,
        }
    }
}

/// One archive being built. Create with [`ArchiveBuilder::new`], [`push`](ArchiveBuilder::push)
/// records in source order, [`seal`](ArchiveBuilder::seal) when [`should_seal`](ArchiveBuilder::should_seal).
#[derive(Debug)]
pub struct ArchiveBuilder {
    id: ArchiveIdentity,
    frame_bytes: usize,
    max_archive_bytes: u64,
    max_age: Duration,
    encoder: FrameEncoder,
    /// Content of the frame being filled.
    frame: Vec<u8>,
    records: Vec<RecordEntry>,
    rule_counts: BTreeMap<String, u64>,
    fallbacks: u64,
    first_offset: Option<u64>,
    end_offset: u64,
    /// Timestamp of the first record that has one: the day partition.
    first_ts: Option<i64>,
    min_ts: Option<i64>,
    max_ts: Option<i64>,
    first_push: Option<Instant>,
}

/// The strings of a record's manifest entry, copied or moved from its [`Scrubbed`].
struct EntryStrings {
    event_id: Option<String>,
    event_type: Option<String>,
    ids: Vec<String>,
    pseudonyms: Vec<String>,
}

impl ArchiveBuilder {
    pub fn new(id: ArchiveIdentity, config: &ArchiveConfig) -> Result<ArchiveBuilder, ArchiveError> {
        config.validate()?;
        Ok(ArchiveBuilder {
            id,
            frame_bytes: config.frame_bytes.as_u64() as usize,
            max_archive_bytes: config.max_archive_bytes.as_u64(),
            max_age: config.max_archive_age,
            encoder: FrameEncoder::new(config.zstd_level)?,
            frame: Vec::new(),
            records: Vec::new(),
            rule_counts: BTreeMap::new(),
            fallbacks: 0,
            first_offset: None,
            end_offset: 0,
            first_ts: None,
            min_ts: None,
            max_ts: None,
            first_push: None,
        })
    }

    pub fn identity(&self) -> &ArchiveIdentity {
        &self.id
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// Scrubbed bytes pushed so far.
    pub fn decompressed_len(&self) -> u64 {
        self.encoder.decompressed_len() + self.frame.len() as u64
    }

    /// End (exclusive) of the source range covered so far: where reading resumes once this archive
    /// is sealed.
    pub fn end_offset(&self) -> u64 {
        self.end_offset
    }

    /// Adds a scrubbed record. Records must come in source order without overlap.
    pub fn push(&mut self, meta: RecordMeta, scrubbed: &Scrubbed) -> Result<(), ArchiveError> {
        let strings = EntryStrings {
            event_id: scrubbed.event_id.clone(),
            event_type: scrubbed.event_type.clone(),
            ids: scrubbed.ids.clone(),
            pseudonyms: scrubbed.pseudonyms.clone(),
        };
        self.append(meta, scrubbed, strings)
    }

    /// [`ArchiveBuilder::push`], moving the record's ids and pseudonyms into the manifest entry
    /// instead of copying them (the pipeline's path: a dozen strings per Stripe event).
    pub fn push_owned(&mut self, meta: RecordMeta, mut scrubbed: Scrubbed) -> Result<(), ArchiveError> {
        let strings = EntryStrings {
            event_id: scrubbed.event_id.take(),
            event_type: scrubbed.event_type.take(),
            ids: std::mem::take(&mut scrubbed.ids),
            pseudonyms: std::mem::take(&mut scrubbed.pseudonyms),
        };
        self.append(meta, &scrubbed, strings)
    }

    fn append(&mut self, meta: RecordMeta, scrubbed: &Scrubbed, strings: EntryStrings) -> Result<(), ArchiveError> {
        if self.first_offset.is_some() && meta.offset < self.end_offset {
            return Err(ArchiveError::OutOfOrder {
                file_id: self.id.file_id.clone(),
                offset: meta.offset,
                end: self.end_offset,
            });
        }
        let bytes = &scrubbed.bytes;
        if !self.frame.is_empty() && self.frame.len() + bytes.len() > self.frame_bytes {
            self.flush_frame()?;
        }
        let ts = meta.timestamp_ms.or(scrubbed.timestamp_ms);
        self.records.push(RecordEntry {
            frame: self.encoder.frame_count(),
            start: self.decompressed_len(),
            len: bytes.len() as u64,
            source_offset: meta.offset,
            timestamp_ms: ts,
            level: meta.level,
            event_id: strings.event_id,
            event_type: strings.event_type,
            ids: strings.ids,
            pseudonyms: strings.pseudonyms,
        });
        self.frame.extend_from_slice(bytes);
        for (rule, n) in &scrubbed.counts {
            // The name is copied only the first time the archive sees the rule.
            match self.rule_counts.get_mut(rule) {
                Some(count) => *count += n,
                None => {
                    self.rule_counts.insert(rule.clone(), *n);
                }
            }
        }
        self.fallbacks += scrubbed.fallback as u64;
        self.first_offset.get_or_insert(meta.offset);
        self.end_offset = meta.offset.saturating_add(meta.source_len);
        if let Some(ts) = ts {
            self.first_ts.get_or_insert(ts);
            self.min_ts = Some(self.min_ts.map_or(ts, |m| m.min(ts)));
            self.max_ts = Some(self.max_ts.map_or(ts, |m| m.max(ts)));
        }
        self.first_push.get_or_insert_with(Instant::now);
        if self.frame.len() >= self.frame_bytes {
            self.flush_frame()?;
        }
        Ok(())
    }

    fn flush_frame(&mut self) -> Result<(), ArchiveError> {
        if self.frame.is_empty() {
            return Ok(());
        }
        self.encoder.write_frame(&self.frame)?;
        self.frame.clear();
        Ok(())
    }

    /// Whether the archive is due: big enough, or its first record old enough. Never for an empty
    /// archive.
    pub fn should_seal(&self, now: Instant) -> bool {
        match self.first_push {
            None => false,
            Some(first) => {
                self.decompressed_len() >= self.max_archive_bytes
                    || now.saturating_duration_since(first) >= self.max_age
            }
        }
    }

    /// Finishes the object and its manifest, in memory.
    pub fn finish(mut self, sealed_at_ms: i64) -> Result<(Manifest, Vec<u8>), ArchiveError> {
        let Some(first_offset) = self.first_offset else {
            return Err(ArchiveError::Empty);
        };
        self.flush_frame()?;
        let decompressed_bytes = self.encoder.decompressed_len();
        let (object, frames) = self.encoder.finish();
        let id = self.id;
        let key = keys::archive_key(&KeyParts {
            host: &id.host,
            source: &id.source,
            file_id: &id.file_id,
            first_offset,
            date_ms: self.first_ts.unwrap_or(id.fallback_time_ms),
        });
        let manifest = Manifest {
            version: MANIFEST_VERSION,
            key,
            host: id.host,
            source: id.source,
            file_id: id.file_id,
            first_offset,
            end_offset: self.end_offset,
            record_count: self.records.len() as u64,
            first_timestamp_ms: self.min_ts,
            last_timestamp_ms: self.max_ts,
            sha256: hex::encode(Sha256::digest(&object)),
            compressed_bytes: object.len() as u64,
            decompressed_bytes,
            ruleset_version: id.ruleset_version,
            ruleset_digest: id.ruleset_digest,
            rule_counts: self.rule_counts,
            fallbacks: self.fallbacks,
            frames,
            records: self.records,
            sealed_at_ms,
        };
        Ok((manifest, object))
    }

    /// Finishes the archive and writes it durably to the spool. Only once this returns may the
    /// records' source range (`..end_offset`) be treated as done upstream.
    pub fn seal(self, spool: &Spool, sealed_at_ms: i64) -> Result<Sealed, ArchiveError> {
        let (manifest, object) = self.finish(sealed_at_ms)?;
        spool.write(manifest, &object)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::archive::seekable::{decompress_frame, verify_archive};

    fn identity() -> ArchiveIdentity {
        ArchiveIdentity {
            host: "h".into(),
            source: "s".into(),
            file_id: "f".into(),
            ruleset_version: "1".into(),
            ruleset_digest: "d".into(),
            fallback_time_ms: 0,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]

        /// Whatever the record sizes and frame bound: frames hold whole records, stay within the
        /// bound unless they hold a single non-empty record, tile the content, and give every
        /// record back.
        #[test]
        fn frames_hold_whole_records(sizes in proptest::collection::vec(0usize..6000, 1..60), frame_kib in 1u64..8) {
            let cfg = ArchiveConfig { frame_bytes: bytesize::ByteSize::kib(frame_kib), ..ArchiveConfig::default() };
            let mut b = ArchiveBuilder::new(identity(), &cfg).unwrap();
            let mut offset = 0;
            let mut records = Vec::new();
            for (i, size) in sizes.iter().enumerate() {
                let bytes: Vec<u8> = (0..*size).map(|j| (i * 31 + j % 251) as u8).collect();
                let s = Scrubbed { bytes, ..Scrubbed::default() };
                b.push(RecordMeta { offset, source_len: *size as u64, timestamp_ms: None, level: None }, &s).unwrap();
                offset += *size as u64;
                records.push(s.bytes);
            }
            let (m, object) = b.finish(0).unwrap();
            verify_archive(&object, &m).unwrap();
            prop_assert_eq!(m.records.len(), records.len());
            let mut next_start = 0;
            for (i, f) in m.frames.iter().enumerate() {
                let content = decompress_frame(
                    &object[f.compressed_offset as usize..(f.compressed_offset + f.compressed_len) as usize], f, "k").unwrap();
                let in_frame: Vec<_> = m.records.iter().enumerate().filter(|(_, r)| r.frame as usize == i).collect();
                prop_assert!(!in_frame.is_empty());
                // Empty records cost nothing to fetch and may share any frame.
                let non_empty = in_frame.iter().filter(|(_, r)| r.len > 0).count();
                prop_assert!(f.decompressed_len <= cfg.frame_bytes.as_u64() || non_empty == 1);
                prop_assert_eq!(f.decompressed_offset, next_start);
                next_start += f.decompressed_len;
                for (j, r) in in_frame {
                    let start = (r.start - f.decompressed_offset) as usize;
                    prop_assert_eq!(&content[start..start + r.len as usize], &records[j][..]);
                }
            }
            prop_assert_eq!(next_start, m.decompressed_bytes);
            prop_assert_eq!(m.end_offset, offset);
        }
    }
}
