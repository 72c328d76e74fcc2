//! Throughput of the built-in detectors (`Detectors::find_all`, `find_ids`) over ~10 MB of
//! synthetic webhook log text: Stripe-like JSON events in Django-style log records, header dumps
//! and access-log lines, with a sprinkle of sensitive values (emails, IPs, client secrets, keys,
//! signatures, invoice URLs, phones).
//!
//! Run: `cargo bench --bench detect`. Everything here is generated; nothing is read from disk.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scrubd::scrub::detect::{Detector, Detectors, find_ids};

/// A small deterministic generator (xorshift), so every run measures the same text.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn id(&mut self, len: usize) -> String {
        const B62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
        (0..len).map(|_| B62[self.below(62) as usize] as char).collect()
    }

    fn hex(&mut self, len: usize) -> String {
        (0..len)
            .map(|_| char::from_digit(self.below(16) as u32, 16).unwrap_or('0'))
            .collect()
    }
}

fn event(rng: &mut Rng, n: u64) -> String {
    let ts = 1_733_000_000 + rng.below(1_000_000);
    let cus = rng.id(14);
    let sub = rng.id(24);
    let sensitive = n.is_multiple_of(4);
    let email = if sensitive {
        format!("\"user{n}@example.com\"")
    } else {
        "null".to_string()
    };
    let secret = if sensitive {
        format!("\"pi_3{}_secret_{}\"", rng.id(20), rng.id(25))
    } else {
        "null".to_string()
    };
    let sig = rng.hex(64);
    let uuid = format!(
        "{}-{}-4{}-8{}-{}",
        rng.hex(8),
        rng.hex(4),
        rng.hex(3),
        rng.hex(3),
        rng.hex(12)
    );
    format!(
        r#"DEBUG 2024-12-04 04:07:22,426 views Request Headers: {{"Content-Length": "8124", "Content-Type": "application/json; charset=utf-8", "Host": "hooks.example.com", "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)", "Stripe-Signature": "t={ts},v1={sig},v0={sig}", "X-Forwarded-For": "203.0.113.{oct}"}}
INFO 2024-12-04 04:07:22,447 views {{
"api_version": "2024-09-30.acacia",
"created": {ts},
"data": {{
"object": {{
"id": "sub_1{sub}",
"object": "subscription",
"billing_cycle_anchor": {ts},
"cancel_at_period_end": false,
"collection_method": "charge_automatically",
"created": {ts},
"currency": "usd",
"current_period_end": {ts},
"customer": "cus_{cus}",
"customer_email": {email},
"client_secret": {secret},
"description": "1 × Monthly Plan (at $25.00 / month)",
"hosted_invoice_url": "https://invoice.stripe.com/i/acct_1{acct}/test_{tok}?s=ap",
"items": {{
"data": [
{{
"id": "si_{si}",
"metadata": {{}},
"plan": {{
"active": true,
"amount": 24900,
"amount_decimal": "24900",
"billing_scheme": "per_unit",
"id": "price_1{price}",
"interval": "year",
"product": "prod_{prod}",
"usage_type": "licensed"
}},
"quantity": 1,
"subscription": "sub_1{sub}"
}}
],
"url": "/v1/subscription_items?subscription=sub_1{sub}"
}},
"livemode": false,
"phone": "{phone}",
"status": "active"
}}
}},
"id": "evt_1{evt}",
"request": {{
"id": "req_{req}",
"idempotency_key": "{uuid}"
}},
"type": "customer.subscription.updated"
}}
203.0.113.{oct} - - [04/Dec/2024:04:07:22 +0000] "POST /api/payment/webhook/ HTTP/1.1" 200 17 "-" "Stripe/1.0 (+https://stripe.com/docs/webhooks)"
"#,
        oct = rng.below(250) + 1,
        acct = rng.id(15),
        tok = rng.id(60),
        si = rng.id(14),
        price = rng.id(23),
        prod = rng.id(14),
        phone = if sensitive { "+14155550123" } else { "" },
        evt = rng.id(23),
        req = rng.id(14),
    )
}

fn corpus(bytes: usize) -> Vec<u8> {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut out = String::with_capacity(bytes + 4096);
    let mut n = 0;
    while out.len() < bytes {
        out.push_str(&event(&mut rng, n));
        n += 1;
    }
    out.into_bytes()
}

fn bench(c: &mut Criterion) {
    let text = corpus(10 * 1024 * 1024);
    let all = Detectors::new(Detector::ALL);
    let mut group = c.benchmark_group("detect");
    group.throughput(Throughput::Bytes(text.len() as u64));
    group.sample_size(20);
    let mut out = Vec::new();
    group.bench_function("find_all/all", |b| {
        b.iter(|| {
            out.clear();
            all.find_all(black_box(&text), &mut out);
            black_box(out.len())
        })
    });
    for &d in Detector::ALL {
        let one = Detectors::new(&[d]);
        group.bench_function(format!("find_all/{}", d.name()), |b| {
            b.iter(|| {
                out.clear();
                one.find_all(black_box(&text), &mut out);
                black_box(out.len())
            })
        });
    }
    let mut ids = Vec::new();
    group.bench_function("find_ids", |b| {
        b.iter(|| {
            ids.clear();
            find_ids(black_box(&text), &mut ids);
            black_box(ids.len())
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
