//! Synthetic archives for the index tests and the search benchmark: records in, archive bytes
//! (independent zstd frames and a seekable-format seek table) and their manifest out, plus a
//! generator of webhook-like records with known ids.
//!
//! Must not: be used by the daemon; archives in production come from `archive`.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

use crate::archive::manifest::{FrameEntry, MANIFEST_VERSION, Manifest, RecordEntry};
use crate::record::Level;
use crate::store::{ObjectStore, PutOptions, StoreError};

/// One record to put in a synthetic archive.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TestRecord {
    pub text: String,
    pub ts_ms: Option<i64>,
    pub level: Option<Level>,
    pub event_id: Option<String>,
    pub event_type: Option<String>,
    pub ids: Vec<String>,
    pub pseudonyms: Vec<String>,
}

/// An archive and its manifest, ready to upload.
#[derive(Clone, Debug)]
pub struct BuiltArchive {
    pub bytes: Vec<u8>,
    pub manifest: Manifest,
}

/// `archives/dt=…/host=…/source=…/<file_id>-<first_offset:020>.zst`, the day taken from `ts_ms`.
pub fn archive_key(ts_ms: i64, host: &str, source: &str, file_id: &str, first_offset: u64) -> String {
    let day = DateTime::<Utc>::from_timestamp_millis(ts_ms)
        .map(|t| t.date_naive())
        .unwrap_or_default();
    format!(
        "archives/dt={}/host={host}/source={source}/{file_id}-{first_offset:020}.zst",
        day.format("%Y-%m-%d")
    )
}

/// Builds an archive of `records` in frames of about `frame_bytes` decompressed bytes.
pub fn build_archive(
    host: &str,
    source: &str,
    file_id: &str,
    first_offset: u64,
    records: &[TestRecord],
    frame_bytes: usize,
) -> BuiltArchive {
    let first_ts = records.iter().find_map(|r| r.ts_ms);
    let last_ts = records.iter().rev().find_map(|r| r.ts_ms);
    let key = archive_key(first_ts.unwrap_or(0), host, source, file_id, first_offset);
    let mut bytes = Vec::new();
    let mut frames = Vec::new();
    let mut entries = Vec::new();
    let mut content_offset = 0u64;
    let mut source_offset = first_offset;
    let mut i = 0;
    while i < records.len() {
        let mut raw = Vec::new();
        let frame = frames.len() as u32;
        while i < records.len() && (raw.is_empty() || raw.len() + records[i].text.len() <= frame_bytes) {
            let r = &records[i];
            entries.push(RecordEntry {
                frame,
                start: content_offset + raw.len() as u64,
                len: r.text.len() as u64,
                source_offset,
                timestamp_ms: r.ts_ms,
                level: r.level,
                event_id: r.event_id.clone(),
                event_type: r.event_type.clone(),
                ids: r.ids.clone(),
                pseudonyms: r.pseudonyms.clone(),
            });
            raw.extend_from_slice(r.text.as_bytes());
            source_offset += r.text.len() as u64;
            i += 1;
        }
        let compressed = zstd::bulk::compress(&raw, 3).expect("zstd compresses in memory");
        frames.push(FrameEntry {
            compressed_offset: bytes.len() as u64,
            compressed_len: compressed.len() as u64,
            decompressed_offset: content_offset,
            decompressed_len: raw.len() as u64,
        });
        bytes.extend_from_slice(&compressed);
        content_offset += raw.len() as u64;
    }
    // The zstd seekable format's seek table: a skippable frame listing the frames' sizes.
    let mut table = Vec::new();
    for f in &frames {
        table.extend_from_slice(&(f.compressed_len as u32).to_le_bytes());
        table.extend_from_slice(&(f.decompressed_len as u32).to_le_bytes());
    }
    table.extend_from_slice(&(frames.len() as u32).to_le_bytes());
    table.push(0);
    table.extend_from_slice(&0x8F92_EAB1u32.to_le_bytes());
    bytes.extend_from_slice(&0x184D_2A5Eu32.to_le_bytes());
    bytes.extend_from_slice(&(table.len() as u32).to_le_bytes());
    bytes.extend_from_slice(&table);
    let manifest = Manifest {
        version: MANIFEST_VERSION,
        key,
        host: host.into(),
        source: source.into(),
        file_id: file_id.into(),
        first_offset,
        end_offset: source_offset,
        record_count: records.len() as u64,
        first_timestamp_ms: first_ts,
        last_timestamp_ms: last_ts,
        sha256: hex::encode(Sha256::digest(&bytes)),
        compressed_bytes: bytes.len() as u64,
        decompressed_bytes: content_offset,
        ruleset_version: "test".into(),
        ruleset_digest: "0".repeat(64),
        rule_counts: BTreeMap::new(),
        fallbacks: 0,
        frames,
        records: entries,
        sealed_at_ms: last_ts.unwrap_or(0),
    };
    BuiltArchive { bytes, manifest }
}

/// Uploads the archive and its manifest (`manifests/…/….json`).
pub async fn upload(store: &Arc<dyn ObjectStore>, a: &BuiltArchive) -> Result<(), StoreError> {
    let put = |body: &[u8]| PutOptions {
        sha256: hex::encode(Sha256::digest(body)),
        ..Default::default()
    };
    store
        .put_bytes(&a.manifest.key, Bytes::from(a.bytes.clone()), &put(&a.bytes))
        .await?;
    let mkey = super::keys::manifest_key_for_archive(&a.manifest.key).unwrap_or_default();
    let json = serde_json::to_vec(&a.manifest).expect("manifest serialises");
    store.put_bytes(&mkey, Bytes::from(json.clone()), &put(&json)).await
}

/// A small deterministic generator (xorshift), so tests and benchmarks need no seed plumbing.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// A Stripe-style id: `prefix_` and 24 base-62 characters.
    pub fn id(&mut self, prefix: &str) -> String {
        const A: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let mut s = String::with_capacity(prefix.len() + 25);
        s.push_str(prefix);
        s.push('_');
        for _ in 0..24 {
            s.push(A[self.below(62) as usize] as char);
        }
        s
    }
}

pub const EVENT_TYPES: &[&str] = &[
    "invoice.paid",
    "invoice.payment_failed",
    "invoice.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "charge.refunded",
    "checkout.session.completed",
];

/// `n` webhook-like records of `host`, timestamps spread evenly from `start_ms` over `span_ms`,
/// with customers drawn from a pool of `customers` (per host) so that customer ids repeat.
pub fn webhook_records(
    rng: &mut Rng,
    host: &str,
    start_ms: i64,
    span_ms: i64,
    n: usize,
    customers: &[String],
) -> Vec<TestRecord> {
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let ts = start_ms + (span_ms as i128 * i as i128 / n.max(1) as i128) as i64;
        let t = DateTime::<Utc>::from_timestamp_millis(ts).unwrap_or_default();
        let event_type = EVENT_TYPES[rng.below(EVENT_TYPES.len() as u64) as usize];
        let evt = rng.id("evt");
        let cus = customers[rng.below(customers.len() as u64) as usize].clone();
        let (inv, pi, ch, req) = (rng.id("in"), rng.id("pi"), rng.id("ch"), rng.id("req"));
        let level = match rng.below(20) {
            0 => Level::Error,
            1 | 2 => Level::Warning,
            _ => Level::Info,
        };
        let pseudonym = format!("ps_{:016x}", rng.next_u64() & 0xFFFF_FFFF);
        let amount = rng.below(100_000);
        let text = format!(
            "{ts} {lvl} webhooks.stripe host={host} received event {{\"id\": \"{evt}\", \"object\": \"event\", \
             \"api_version\": \"2024-06-20\", \"created\": {secs}, \"type\": \"{event_type}\", \"livemode\": true, \
             \"pending_webhooks\": 1, \"request\": {{\"id\": \"{req}\", \"idempotency_key\": \"[REDACTED]\"}}, \
             \"data\": {{\"object\": {{\"id\": \"{inv}\", \"object\": \"invoice\", \"customer\": \"{cus}\", \
             \"customer_email\": \"{pseudonym}\", \"customer_name\": \"[REDACTED]\", \"payment_intent\": \"{pi}\", \
             \"charge\": \"{ch}\", \"amount_due\": {amount}, \"amount_paid\": {amount}, \"currency\": \"usd\", \
             \"status\": \"paid\", \"billing_reason\": \"subscription_cycle\", \"collection_method\": \
             \"charge_automatically\", \"attempt_count\": 1, \"lines\": {{\"object\": \"list\", \"total_count\": 1, \
             \"data\": [{{\"object\": \"line_item\", \"amount\": {amount}, \"description\": \"1 x Pro plan (at $49.00 / month)\", \
             \"period\": {{\"start\": {secs}, \"end\": {secs2}}}}}]}}}}}}}}\n",
            ts = t.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
            lvl = super::segment::level_str(level).to_uppercase(),
            secs = ts / 1000,
            secs2 = ts / 1000 + 2_592_000,
        );
        out.push(TestRecord {
            text,
            ts_ms: Some(ts),
            level: Some(level),
            event_id: Some(evt.clone()),
            event_type: Some(event_type.into()),
            ids: vec![evt, cus, inv, pi, ch, req],
            pseudonyms: vec![pseudonym],
        });
    }
    out
}
