//! Throughput of `Scrubber::scrub` with the default rules on Stripe-like webhook records built
//! here (synthetic: invoice, charge and subscription events, 3–10 KB each, compact `REQ:` lines
//! and pretty-printed Django records with header dumps).
//!
//! `cargo bench --bench scrub` prints criterion's MB/s (throughput is set in bytes).

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use scrubd::record::{Format, Record};
use scrubd::scrub::{Scrubber, SourceState};

const FIRST: &[&str] = &[
    "ada", "grace", "lorenzo", "marco", "ingrid", "tobias", "matilda", "rupert",
];
const LAST: &[&str] = &[
    "lovelace",
    "hopper",
    "keller",
    "ford",
    "sutton",
    "wu",
    "li",
    "brookside",
];

fn id(prefix: &str, n: u64) -> String {
    const A: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut x = n.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let s: String = (0..24)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            A[(x % A.len() as u64) as usize] as char
        })
        .collect();
    format!("{prefix}_{s}")
}

fn invoice(n: u64) -> String {
    let first = FIRST[(n % 8) as usize];
    let last = LAST[(n / 8 % 8) as usize];
    let lines: Vec<String> = (0..(1 + n % 4))
        .map(|k| {
            format!(
                r#"{{"id": "{}", "object": "line_item", "amount": {}, "currency": "usd", "description": "1 × Pro Plan (at $25.00 / month)", "discountable": true, "livemode": false, "metadata": {{}}, "period": {{"end": 1764821239, "start": 1733285239}}, "plan": {{"id": "{}", "object": "plan", "active": true, "amount": 2500, "billing_scheme": "per_unit", "created": 1732189573, "currency": "usd", "interval": "month", "interval_count": 1, "nickname": "Pro Plan", "product": "{}", "usage_type": "licensed"}}, "price": {{"id": "{}", "object": "price", "active": true, "billing_scheme": "per_unit", "currency": "usd", "lookup_key": null, "nickname": "Pro Plan", "product": "{}", "recurring": {{"interval": "month", "interval_count": 1}}, "type": "recurring", "unit_amount": 2500, "unit_amount_decimal": "2500"}}, "proration": false, "quantity": 1, "subscription": "{}", "type": "subscription"}}"#,
                id("il", n * 10 + k),
                2500 * (k + 1),
                id("price", k),
                id("prod", k),
                id("price", k),
                id("prod", k),
                id("sub", n)
            )
        })
        .collect();
    format!(
        r#"{{"id": "{evt}", "object": "event", "api_version": "2024-06-20", "created": {created}, "data": {{"object": {{"id": "{inv}", "object": "invoice", "account_country": "US", "account_name": "Example Widgets Inc", "amount_due": 2500, "amount_paid": 2500, "amount_remaining": 0, "attempt_count": 1, "attempted": true, "billing_reason": "subscription_cycle", "charge": "{ch}", "collection_method": "charge_automatically", "created": {created}, "currency": "usd", "customer": "{cus}", "customer_address": {{"city": "Springfield", "country": "US", "line1": "{n} Main Street", "line2": null, "postal_code": "6{n:04}", "state": "IL"}}, "customer_email": "{first}.{last}@example.com", "customer_name": "{First} {Last}", "customer_phone": "+1 555 01{p:02}", "customer_shipping": null, "customer_tax_exempt": "none", "default_payment_method": null, "description": null, "hosted_invoice_url": "https://invoice.stripe.com/i/acct_1Example/test_YWNjdF8xRXhhbXBsZSxfUkg{n}?s=ap", "invoice_pdf": "https://pay.stripe.com/invoice/acct_1Example/test_YWNjdF8xRXhhbXBsZSxfUkg{n}/pdf?s=ap", "lines": {{"object": "list", "data": [{lines}], "has_more": false, "total_count": {nl}, "url": "/v1/invoices/{inv}/lines"}}, "livemode": false, "metadata": {{"tr_source": "newsletter", "tr_campaign": "spring-{n}", "plan_tier": "pro"}}, "number": "ABCD-{n:04}", "paid": true, "payment_intent": "{pi}", "period_end": {created}, "period_start": 1733285239, "status": "paid", "subscription": "{sub}", "subtotal": 2500, "total": 2500}}}}, "livemode": false, "pending_webhooks": 1, "request": {{"id": "{req}", "idempotency_key": "8a9b{n}"}}, "type": "invoice.paid"}}"#,
        evt = id("evt", n),
        inv = id("in", n),
        ch = id("ch", n),
        cus = id("cus", n % 50),
        pi = id("pi", n),
        sub = id("sub", n),
        req = id("req", n),
        created = 1_733_285_241 + n,
        First = capitalise(first),
        Last = capitalise(last),
        p = n % 100,
        nl = lines.len(),
        lines = lines.join(", "),
    )
}

fn charge(n: u64) -> String {
    format!(
        r#"{{"id": "{evt}", "object": "event", "api_version": "2024-06-20", "created": {created}, "data": {{"object": {{"id": "{ch}", "object": "charge", "amount": 4900, "amount_captured": 4900, "amount_refunded": 0, "balance_transaction": "{txn}", "billing_details": {{"address": {{"city": "Springfield", "country": "US", "line1": "{n} Elm Road", "line2": null, "postal_code": "62704", "state": "IL"}}, "email": "buyer{n}@example.org", "name": "{First} {Last}", "phone": null}}, "calculated_statement_descriptor": "EXAMPLE WIDGETS", "captured": true, "created": {created}, "currency": "usd", "customer": "{cus}", "description": "Subscription creation", "disputed": false, "livemode": false, "metadata": {{}}, "outcome": {{"network_status": "approved_by_network", "reason": null, "risk_level": "normal", "risk_score": 12, "seller_message": "Payment complete.", "type": "authorized"}}, "paid": true, "payment_intent": "{pi}", "payment_method": "{pm}", "payment_method_details": {{"card": {{"amount_authorized": 4900, "brand": "visa", "checks": {{"address_line1_check": null, "address_postal_code_check": "pass", "cvc_check": "pass"}}, "country": "US", "exp_month": 12, "exp_year": 2030, "fingerprint": "Xt5EWLLDS7FJjR1c", "funding": "credit", "last4": "4242", "network": "visa", "three_d_secure": null, "wallet": null}}, "type": "card"}}, "receipt_email": "buyer{n}@example.org", "receipt_url": "https://pay.stripe.com/receipts/invoices/CAcaFwoVYWNjdF8xRXhhbXBsZQ{n}?s=ap", "refunded": false, "status": "succeeded"}}}}, "livemode": false, "pending_webhooks": 2, "request": {{"id": null, "idempotency_key": null}}, "type": "charge.succeeded"}}"#,
        evt = id("evt", n + 1_000_000),
        ch = id("ch", n),
        txn = id("txn", n),
        cus = id("cus", n % 50),
        pi = id("pi", n),
        pm = id("pm", n),
        created = 1_733_285_241 + n,
        First = capitalise(FIRST[(n % 8) as usize]),
        Last = capitalise(LAST[(n / 3 % 8) as usize]),
    )
}

fn capitalise(s: &str) -> String {
    let mut c = s.chars();
    match c.next() {
        Some(f) => f.to_uppercase().chain(c).collect(),
        None => String::new(),
    }
}

/// Pretty-prints compact JSON with one key per line, as Django logs do.
fn pretty(json: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(json).expect("bench fixture is valid JSON");
    serde_json::to_string_pretty(&v).expect("serialisable")
}

fn records() -> Vec<Record> {
    let mut out = Vec::new();
    for n in 0..200u64 {
        let body = if n % 2 == 0 { invoice(n) } else { charge(n) };
        let bytes = if n % 3 == 0 {
            format!(
                "DEBUG 2024-12-04 04:07:22,426 views Request Headers: {{\"Content-Type\": \"application/json; charset=utf-8\", \"User-Agent\": \"Stripe/1.0 (+https://stripe.com/docs/webhooks)\", \"Stripe-Signature\": \"t={},v1=62e4d70143930c12d774f436b79df644a0ddcfe3beb73a85ee0fcc1a50110557\", \"X-Forwarded-For\": \"203.0.113.{}\"}}\nINFO 2024-12-04 04:07:22,447 views {}\n",
                1_733_285_241 + n,
                n % 250,
                pretty(&body)
            )
        } else {
            format!("REQ: {body}")
        };
        out.push(Record {
            offset: 0,
            bytes: bytes.into_bytes().into(),
            format: if n % 3 == 0 { Format::Django } else { Format::Req },
            timestamp_ms: None,
            level: None,
            fragment: false,
        });
    }
    out
}

fn bench(c: &mut Criterion) {
    let scrubber = Scrubber::builtin();
    let recs = records();
    let total: usize = recs.iter().map(|r| r.bytes.len()).sum();
    let mut group = c.benchmark_group("scrub");
    group.throughput(Throughput::Bytes(total as u64));
    group.bench_function("stripe_webhook_records", |b| {
        b.iter(|| {
            let mut state = SourceState::default();
            let mut n = 0usize;
            for r in &recs {
                n += scrubber.scrub(black_box(r), "bench", &mut state).bytes.len();
            }
            n
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
