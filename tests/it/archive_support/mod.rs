//! Shared helpers of the archive tests: synthetic scrubbed Stripe-like records, archive building,
//! and an object store wrapper that fails, hangs or records calls on demand.
//!
//! (A shared `store::faulty` wrapper is being written on another branch; this one stays local to
//! the archive tests until then.)

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use async_trait::async_trait;
use bytes::Bytes;
use scrubd::archive::{ArchiveBuilder, ArchiveConfig, ArchiveIdentity, RecordMeta, Sealed, Spool};
use scrubd::record::Level;
use scrubd::scrub::Scrubbed;
use scrubd::store::{LocalDir, ObjectMeta, ObjectStore, PutOptions, StoreError};

/// A small deterministic PRNG (xorshift64*), so the corpus is the same in every run.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    /// A Stripe-style object id: `prefix_` + 24 base62 characters.
    pub fn id(&mut self, prefix: &str) -> String {
        const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        let tail: String = (0..24).map(|_| B62[self.below(62) as usize] as char).collect();
        format!("{prefix}_{tail}")
    }
}

/// One scrubbed Stripe webhook record as it would leave the scrubber: a `REQ: {json}` line whose
/// personal data was replaced (emails, names, addresses redacted; the customer hashed to a
/// pseudonym). Returns the record and its `Scrubbed`.
pub fn stripe_record(rng: &mut Rng, created_s: i64) -> Scrubbed {
    let types = [
        "invoice.paid",
        "invoice.payment_succeeded",
        "customer.subscription.updated",
        "charge.succeeded",
        "payment_intent.succeeded",
        "checkout.session.completed",
    ];
    let event_type = rng.pick(&types).to_string();
    let evt = rng.id("evt");
    let cus = rng.id("cus");
    let sub = rng.id("sub");
    let inv = rng.id("in");
    let price = rng.id("price");
    let pseudonym = format!("pz_{:016x}", rng.next());
    let amount = 100 * (1 + rng.below(500));
    let currency = rng.pick(&["usd", "eur", "gbp"]);
    let interval = rng.pick(&["month", "year"]);
    let mut lines = String::new();
    for i in 0..1 + rng.below(4) {
        let li = rng.id("il");
        lines.push_str(&format!(
            r#"{}{{ "id": "{li}", "object": "line_item", "amount": {amount}, "currency": "{currency}", "description": "1 × Pro plan (at ${}.00 / {interval})", "discountable": true, "livemode": true, "period": {{ "end": {}, "start": {created_s} }}, "plan": {{ "id": "{price}", "object": "plan", "active": true, "amount": {amount}, "billing_scheme": "per_unit", "interval": "{interval}", "interval_count": 1, "product": "prod_{:08x}" }}, "proration": false, "quantity": 1, "type": "subscription" }}"#,
            if i > 0 { ", " } else { "" },
            amount / 100,
            created_s + 2_592_000,
            rng.next() as u32,
        ));
    }
    let json = format!(
        r#"REQ: {{ "id": "{evt}", "object": "event", "api_version": "2024-06-20", "created": {created_s}, "data": {{ "object": {{ "id": "{inv}", "object": "invoice", "account_country": "US", "account_name": "Example Co", "amount_due": {amount}, "amount_paid": {amount}, "amount_remaining": 0, "attempt_count": 1, "attempted": true, "billing_reason": "subscription_cycle", "collection_method": "charge_automatically", "currency": "{currency}", "customer": "{cus}", "customer_address": {{ "city": "[REDACTED:address]", "country": "US", "line1": "[REDACTED:address]", "line2": null, "postal_code": "[REDACTED:address]", "state": "CA" }}, "customer_email": "[REDACTED:email]", "customer_name": "{pseudonym}", "customer_phone": null, "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1/[REDACTED:url_token]", "lines": {{ "object": "list", "data": [{lines}], "has_more": false, "total_count": 1 }}, "livemode": true, "number": "{:08X}-{:04}", "paid": true, "period_end": {created_s}, "period_start": {}, "status": "paid", "subscription": "{sub}", "subtotal": {amount}, "tax": null, "total": {amount} }} }}, "livemode": true, "pending_webhooks": 1, "request": {{ "id": null, "idempotency_key": null }}, "type": "{event_type}" }}
"#,
        rng.next() as u32,
        rng.below(10_000),
        created_s - 2_592_000,
    );
    Scrubbed {
        bytes: json.into_bytes(),
        counts: BTreeMap::from([
            ("email".to_string(), 1),
            ("address".to_string(), 3),
            ("name".to_string(), 1),
        ]),
        ids: vec![evt.clone(), inv, cus, sub],
        event_id: Some(evt),
        event_type: Some(event_type),
        pseudonyms: vec![pseudonym],
        timestamp_ms: Some(created_s * 1000),
        fallback: false,
    }
}

/// `n` records starting at source offset `first_offset`, one second apart from `start_s`. Each
/// comes with the metadata the builder takes (raw length = scrubbed length + 10, as if the
/// scrubber shortened it).
pub fn corpus(seed: u64, n: usize, first_offset: u64, start_s: i64) -> Vec<(RecordMeta, Scrubbed)> {
    let mut rng = Rng::new(seed);
    let mut offset = first_offset;
    (0..n)
        .map(|i| {
            let s = stripe_record(&mut rng, start_s + i as i64);
            let meta = RecordMeta {
                offset,
                source_len: s.bytes.len() as u64 + 10,
                timestamp_ms: None,
                level: Some(if i % 7 == 0 { Level::Warning } else { Level::Info }),
            };
            offset += meta.source_len;
            (meta, s)
        })
        .collect()
}

pub fn identity(host: &str, file_id: &str) -> ArchiveIdentity {
    ArchiveIdentity {
        host: host.into(),
        source: "stripe".into(),
        file_id: file_id.into(),
        ruleset_version: "1".into(),
        ruleset_digest: "d1g3st".into(),
        fallback_time_ms: 1_700_000_000_000,
    }
}

pub fn config(frame_bytes: u64) -> ArchiveConfig {
    ArchiveConfig {
        frame_bytes: bytesize::ByteSize::b(frame_bytes),
        ..ArchiveConfig::default()
    }
}

/// Builds one archive of `records` and seals it into `spool`.
pub fn seal(spool: &Spool, id: ArchiveIdentity, cfg: &ArchiveConfig, records: &[(RecordMeta, Scrubbed)]) -> Sealed {
    let mut b = ArchiveBuilder::new(id, cfg).unwrap();
    for (meta, s) in records {
        b.push(*meta, s).unwrap();
    }
    b.seal(spool, 1_800_000_000_000).unwrap()
}

pub fn spool_in(dir: &Path, max_bytes: u64) -> Spool {
    Spool::open(dir.join("spool"), dir.join("quarantine"), max_bytes, 0).unwrap()
}

/// A [`LocalDir`] that fails, hangs or records calls on demand.
#[derive(Debug)]
pub struct Flaky {
    pub inner: LocalDir,
    /// Puts still to fail with a transient error before writing anything.
    pub fail_puts: AtomicU64,
    /// Puts still to store the object and then report a transient error (a lost response).
    pub fail_after_put: AtomicU64,
    /// Puts still to hang (longer than any test's attempt timeout).
    pub hang_puts: AtomicU64,
    /// Every put fails with `AccessDenied` while set.
    pub deny: AtomicBool,
    pub puts: AtomicU64,
    /// Ranges of every get, in order.
    pub gets: Mutex<Vec<(String, Option<Range<u64>>)>>,
}

impl Flaky {
    pub fn new(root: &Path) -> Flaky {
        Flaky {
            inner: LocalDir::new(root).unwrap(),
            fail_puts: AtomicU64::new(0),
            fail_after_put: AtomicU64::new(0),
            hang_puts: AtomicU64::new(0),
            deny: AtomicBool::new(false),
            puts: AtomicU64::new(0),
            gets: Mutex::new(Vec::new()),
        }
    }

    async fn before_put(&self, key: &str) -> Result<(), StoreError> {
        self.puts.fetch_add(1, Ordering::SeqCst);
        if self.deny.load(Ordering::SeqCst) {
            return Err(StoreError::AccessDenied {
                key: key.into(),
                message: "injected: invalid access key".into(),
            });
        }
        if take(&self.hang_puts) {
            tokio::time::sleep(std::time::Duration::from_secs(3600)).await;
        }
        if take(&self.fail_puts) {
            return Err(StoreError::Transient {
                key: key.into(),
                message: "injected 503".into(),
            });
        }
        Ok(())
    }

    fn after_put(&self, key: &str) -> Result<(), StoreError> {
        if take(&self.fail_after_put) {
            return Err(StoreError::Transient {
                key: key.into(),
                message: "injected: connection reset after upload".into(),
            });
        }
        Ok(())
    }
}

/// Decrements `n` if positive; true if it did.
fn take(n: &AtomicU64) -> bool {
    n.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |v| v.checked_sub(1))
        .is_ok()
}

#[async_trait]
impl ObjectStore for Flaky {
    async fn put_file(&self, key: &str, path: &Path, opts: &PutOptions) -> Result<(), StoreError> {
        self.before_put(key).await?;
        self.inner.put_file(key, path, opts).await?;
        self.after_put(key)
    }
    async fn put_bytes(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<(), StoreError> {
        self.before_put(key).await?;
        self.inner.put_bytes(key, body, opts).await?;
        self.after_put(key)
    }
    async fn get(&self, key: &str, range: Option<Range<u64>>) -> Result<Bytes, StoreError> {
        self.gets.lock().unwrap().push((key.to_string(), range.clone()));
        self.inner.get(key, range).await
    }
    async fn head(&self, key: &str) -> Result<Option<ObjectMeta>, StoreError> {
        self.inner.head(key).await
    }
    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>, StoreError> {
        self.inner.list(prefix).await
    }
    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        self.inner.delete(key).await
    }
    async fn presign_get(&self, key: &str, expires: std::time::Duration) -> Result<String, StoreError> {
        self.inner.presign_get(key, expires).await
    }
}
