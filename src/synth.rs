//! A generator of synthetic webhook logs in the sample formats, with known injected sensitive values.
//!
//! Realistic Stripe webhook traffic (and, in some formats, other providers' deliveries) in the
//! shapes a webhook host writes: Django logging with pretty JSON bodies, concatenated `REQ:`
//! records, JSON lines, pretty documents with surrounding text, syslog, access logs, plain text
//! with Python tracebacks. Every value is fake, but personal data and secrets are put wherever
//! they hide in real logs, and reported in [`SynthLog::sensitive`] so tests can assert that none
//! survives scrubbing, while [`SynthLog::ids`] and [`SynthLog::keep`] must survive.
//!
//! The output is a pure function of (format, size, seed): a seeded [`StdRng`] and a base time
//! derived from the seed; no clock, no environment.
//!
//! Must not: contain anything copied from real logs, or read any file.

use std::collections::HashSet;
use std::io::Write;

use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{RngExt, SeedableRng};

use crate::record::Format;

/// A generated log and what a scrubber must do with it.
#[derive(Debug, Clone, Default)]
pub struct SynthLog {
    pub bytes: Vec<u8>,
    /// Every injected sensitive value, exactly as it appears in `bytes` (deduplicated, in order of
    /// first injection). None may survive scrubbing. Values too short for a meaningful substring
    /// check (card last4, expiry month/year, two-letter country codes) are injected but not listed.
    pub sensitive: Vec<String>,
    /// Object and event ids (`evt_`, `cus_`, `sub_`, `in_`, `ch_`, `pi_`, `price_`, `prod_`,
    /// `req_`, ...) that appear outside any sensitive value and must survive (deduplicated).
    pub ids: Vec<String>,
    /// The Stripe event type of each generated event, in order (one entry per event).
    pub event_types: Vec<String>,
    /// Other values that must survive although they sit next to personal data: product and plan
    /// names (some under `name` keys) and event types (deduplicated).
    pub keep: Vec<String>,
    /// How many records `record::Splitter` must find in `bytes` for this format.
    pub records: usize,
}

/// Generates `records` webhook events in `format` (`Auto` means `Django`), deterministically from
/// `seed`. Some formats add lines around an event (errors, other providers' deliveries); see
/// [`SynthLog::records`] for the number of split records.
pub fn generate(format: Format, records: usize, seed: u64) -> SynthLog {
    let mut g = Gen::new(format, seed, true);
    let mut bytes = Vec::new();
    for _ in 0..records {
        g.event(&mut bytes);
    }
    g.end(&mut bytes);
    // Values are registered when made; keep those the chosen format actually wrote.
    SynthLog {
        sensitive: present(&bytes, g.sensitive.items),
        ids: present(&bytes, g.ids.items),
        keep: present(&bytes, g.keep.items),
        event_types: g.event_types,
        records: g.split_records,
        bytes,
    }
}

/// Streams a corpus of at least `target_bytes` (whole events; e.g. 100 MB for benchmarks) to `w`
/// without holding it in memory. Returns the number of bytes written.
pub fn write_corpus(format: Format, target_bytes: u64, seed: u64, w: &mut impl Write) -> std::io::Result<u64> {
    let mut g = Gen::new(format, seed, false);
    let mut buf = Vec::with_capacity(64 * 1024);
    let mut written = 0u64;
    while written < target_bytes {
        buf.clear();
        while buf.len() < 32 * 1024 && written + (buf.len() as u64) < target_bytes {
            g.event(&mut buf);
        }
        w.write_all(&buf)?;
        written += buf.len() as u64;
    }
    buf.clear();
    g.end(&mut buf);
    w.write_all(&buf)?;
    written += buf.len() as u64;
    w.flush()?;
    Ok(written)
}

/// The items that occur in `bytes`, in their original order.
fn present(bytes: &[u8], items: Vec<String>) -> Vec<String> {
    let Ok(ac) = aho_corasick::AhoCorasick::new(&items) else {
        return items;
    };
    let mut found = vec![false; items.len()];
    for m in ac.find_overlapping_iter(bytes) {
        found[m.pattern().as_usize()] = true;
    }
    items
        .into_iter()
        .zip(found)
        .filter_map(|(v, f)| f.then_some(v))
        .collect()
}

/// An insertion-ordered set of strings (collection can be switched off for large corpora).
struct Collected {
    on: bool,
    seen: HashSet<String>,
    items: Vec<String>,
}

impl Collected {
    fn new(on: bool) -> Self {
        Collected {
            on,
            seen: HashSet::new(),
            items: Vec::new(),
        }
    }

    fn add(&mut self, v: &str) {
        if self.on && !self.seen.contains(v) {
            self.seen.insert(v.to_owned());
            self.items.push(v.to_owned());
        }
    }
}

// --- A small JSON tree that keeps key order and renders in the styles logs use. ---

enum J {
    Null,
    B(bool),
    I(i64),
    S(String),
    O(Vec<(&'static str, J)>),
    A(Vec<J>),
}

fn s(v: impl Into<String>) -> J {
    J::S(v.into())
}

fn o(fields: Vec<(&'static str, J)>) -> J {
    J::O(fields)
}

fn opt_s(v: Option<String>) -> J {
    v.map_or(J::Null, J::S)
}

/// How to lay out JSON.
#[derive(Clone, Copy)]
struct Style {
    /// One value per line, without indentation (like Django's and the gist's dumps).
    pretty: bool,
    /// Spaces inside brackets: `{ "a": 1 }` (like the `REQ:` records).
    spaced: bool,
    /// `[ ]` and `{ }` for empty containers.
    spaced_empty: bool,
    /// Keys sorted (Python's `sort_keys=True`).
    sorted: bool,
}

fn render(v: &J, st: Style, out: &mut Vec<u8>) {
    match v {
        J::Null => out.extend_from_slice(b"null"),
        J::B(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        J::I(i) => out.extend_from_slice(i.to_string().as_bytes()),
        J::S(t) => render_str(t, out),
        J::O(fields) => {
            let mut refs: Vec<&(&str, J)> = fields.iter().collect();
            if st.sorted {
                refs.sort_by_key(|(k, _)| *k);
            }
            container(b'{', b'}', refs.len(), st, out, |i, out| {
                render_str(refs[i].0, out);
                out.extend_from_slice(b": ");
                render(&refs[i].1, st, out);
            });
        }
        J::A(items) => container(b'[', b']', items.len(), st, out, |i, out| render(&items[i], st, out)),
    }
}

fn container(open: u8, close: u8, n: usize, st: Style, out: &mut Vec<u8>, mut item: impl FnMut(usize, &mut Vec<u8>)) {
    out.push(open);
    if n == 0 {
        if st.spaced_empty {
            out.push(b' ');
        }
        out.push(close);
        return;
    }
    let (first, sep, last): (&[u8], &[u8], &[u8]) = match (st.pretty, st.spaced) {
        (true, _) => (b"\n", b",\n", b"\n"),
        (false, true) => (b" ", b", ", b" "),
        (false, false) => (b"", b", ", b""),
    };
    out.extend_from_slice(first);
    for i in 0..n {
        if i > 0 {
            out.extend_from_slice(sep);
        }
        item(i, out);
    }
    out.extend_from_slice(last);
    out.push(close);
}

fn render_str(t: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for c in t.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            c if (c as u32) < 0x20 => out.extend_from_slice(format!("\\u{:04x}", c as u32).as_bytes()),
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

// --- Fake data pools (invented; none taken from real logs). ---

const FIRST: &[&str] = &[
    "Margot",
    "Tobias",
    "Ingrid",
    "Desmond",
    "Priyanka",
    "Oluwaseun",
    "Henrike",
    "Mateo",
    "Yasmin",
    "Leopold",
    "Anneliese",
    "Rafael",
    "Siobhan",
    "Kenji",
    "Beatriz",
    "Dmitri",
    "Freya",
    "Lorenzo",
    "Amara",
    "Quentin",
    "Astrid",
    "Ignacio",
    "Noor",
    "Cornelius",
    "Élodie",
    "Søren",
];
const LAST: &[&str] = &[
    "Fairweather",
    "Okonkwo",
    "Lindqvist",
    "Castellanos",
    "Whitcombe",
    "Nakamura",
    "Abernathy",
    "van der Berg",
    "Delacroix",
    "Ferreira-Lopes",
    "Hargreaves",
    "Montgomery",
    "Kowalczyk",
    "Papadopoulos",
    "Rasmussen",
    "Thistlewood",
    "O'Callaghan",
    "Bellweather",
];
const DOMAINS: &[&str] = &[
    "example.com",
    "example.org",
    "example.net",
    "mailbox.test",
    "inbox-demo.example",
    "corp.example",
];
const STREETS: &[&str] = &[
    "Maple Avenue",
    "Brookside Summit",
    "Harbour Lane",
    "Kingsway",
    "Quarry Road",
    "Lindenstraße",
    "Rue des Lilas",
    "Juniper Court",
    "Old Mill Way",
];
const CITIES: &[(&str, &str, &str)] = &[
    ("Clearwater", "Florida", "US"),
    ("Springfield", "Illinois", "US"),
    ("Portland", "Oregon", "US"),
    ("Brighton", "East Sussex", "GB"),
    ("Mannheim", "Baden-Württemberg", "DE"),
    ("Villeurbanne", "Auvergne-Rhône-Alpes", "FR"),
    ("Hamilton", "Ontario", "CA"),
];
const PRODUCTS: &[(&str, &str, i64)] = &[
    ("Lead Finder Pro", "Pro Monthly", 2997),
    ("Lead Finder Pro", "Pro Annual", 24900),
    ("Starter Seat Pack", "Starter Monthly", 1997),
    ("Super Simulations Tiered", "Monthly Plan", 5991),
    ("Enterprise Data Export", "Enterprise Quarterly", 59900),
];
const EVENT_TYPES: &[&str] = &[
    "invoice.paid",
    "invoice.payment_succeeded",
    "invoice.created",
    "customer.subscription.updated",
    "customer.subscription.created",
    "payment_intent.succeeded",
    "payment_intent.created",
    "charge.succeeded",
    "checkout.session.completed",
    "customer.created",
    "setup_intent.created",
];
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const HEX: &[u8] = b"0123456789abcdef";
const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
const B64URL: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/// A fake customer: everything personal about one person.
struct Person {
    name: String,
    email: String,
    phone: String,
    line1: String,
    line2: Option<String>,
    city: &'static str,
    state: &'static str,
    country: &'static str,
    postal: String,
    ip: String,
    customer: String,
}

/// The generator state.
struct Gen {
    format: Format,
    rng: StdRng,
    /// Seconds since the epoch of the current event.
    now: i64,
    /// Ten characters every id of the fake account shares (as Stripe ids do).
    acct_tag: String,
    acct: String,
    /// `[ ]` or `[]` in `REQ:` records: one per log, as in the samples.
    spaced_empty: bool,
    sensitive: Collected,
    ids: Collected,
    keep: Collected,
    event_types: Vec<String>,
    collect: bool,
    split_records: usize,
    /// Events written so far.
    events: usize,
    pid: u32,
    /// Sub-second part of the current line's time.
    ms: i64,
}

impl Gen {
    fn new(format: Format, seed: u64, collect: bool) -> Gen {
        let mut rng = StdRng::seed_from_u64(seed);
        let acct_tag = rand_str(&mut rng, ALNUM, 10);
        // 2024-01-01 plus up to a year, from the seed.
        let now = 1_704_067_200 + rng.random_range(0..365 * 86_400);
        let acct = format!("acct_1{}", rand_str(&mut rng, ALNUM, 15));
        let spaced_empty = rng.random_bool(0.5);
        let pid = rng.random_range(1000..60000);
        Gen {
            format: if format == Format::Auto { Format::Django } else { format },
            rng,
            now,
            acct_tag,
            acct,
            spaced_empty,
            sensitive: Collected::new(collect),
            ids: Collected::new(collect),
            keep: Collected::new(collect),
            event_types: Vec::new(),
            collect,
            split_records: 0,
            events: 0,
            pid,
            ms: 0,
        }
    }

    // --- value makers ---

    fn pick<T: Copy>(&mut self, xs: &[T]) -> T {
        *xs.choose(&mut self.rng).unwrap_or(&xs[0])
    }

    fn chance(&mut self, p: f64) -> bool {
        self.rng.random_bool(p)
    }

    fn rand(&mut self, alphabet: &[u8], n: usize) -> String {
        rand_str(&mut self.rng, alphabet, n)
    }

    fn secret(&mut self, v: String) -> String {
        self.sensitive.add(&v);
        v
    }

    /// A Stripe-style id: `prefix` + `1` + 7 random + the account tag + 6 random characters.
    fn id(&mut self, prefix: &str) -> String {
        let lead = if matches!(prefix, "ch_" | "pi_" | "py_") {
            "3"
        } else {
            "1"
        };
        let a = self.rand(ALNUM, 7);
        let b = self.rand(ALNUM, 6);
        let v = format!("{prefix}{lead}{a}{}{b}", self.acct_tag);
        self.ids.add(&v);
        v
    }

    /// A short Stripe id (`cus_`, `si_`, `prod_`, `req_`: 14 random characters).
    fn short_id(&mut self, prefix: &str) -> String {
        let v = format!("{prefix}{}", self.rand(ALNUM, 14));
        self.ids.add(&v);
        v
    }

    fn ipv4(&mut self) -> String {
        let o: [u8; 4] = [
            self.pick(&[23, 31, 45, 62, 77, 84, 91, 104, 151, 178, 185, 203, 212]),
            self.rng.random_range(10..=254),
            self.rng.random_range(10..=254),
            self.rng.random_range(10..=254),
        ];
        format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])
    }

    /// A global-unicast IPv6 address, full or `::`-compressed.
    fn ipv6(&mut self) -> String {
        let head = self.pick(&["2a02:8108", "2001:db8", "2600:1700", "2a01:4f8"]);
        let compressed = self.chance(0.5);
        // The head is two groups; `::` must stand for at least one zero group.
        let (n, tail) = if compressed {
            (self.rng.random_range(1..=3), 1)
        } else {
            (6, 0)
        };
        let mut parts = vec![head.to_owned()];
        for _ in 0..n {
            parts.push(format!("{:x}", self.rng.random_range(0x1000..0xffffu32)));
        }
        let mut ip = parts.join(":");
        for _ in 0..tail {
            ip.push_str(&format!("::{:x}", self.rng.random_range(0x100..0xffffu32)));
        }
        ip
    }

    fn client_ip(&mut self) -> String {
        let ip = if self.chance(0.25) { self.ipv6() } else { self.ipv4() };
        self.secret(ip)
    }

    fn person(&mut self) -> Person {
        let first = self.pick(FIRST);
        let last = self.pick(LAST);
        let name = self.secret(format!("{first} {last}"));
        let local = format!("{}.{}", ascii_fold(first), ascii_fold(last)).to_lowercase();
        let domain = self.pick(DOMAINS);
        let tag = self.rng.random_range(10..9999);
        let email = {
            let v = if self.chance(0.2) {
                format!("{local}+billing{tag}@{domain}")
            } else {
                format!("{local}{tag}@{domain}")
            };
            self.secret(v)
        };
        let (city, state, country) = self.pick(CITIES);
        self.sensitive.add(city);
        self.sensitive.add(state);
        let phone = {
            let v = match country {
                "GB" => format!("+44 20 7946 {:04}", self.rng.random_range(0..10000)),
                "DE" => format!("+49 621 {:07}", self.rng.random_range(0..10_000_000)),
                "FR" => format!(
                    "+33 4 72 {:02} {:02} {:02}",
                    self.rng.random_range(0..100),
                    self.rng.random_range(0..100),
                    self.rng.random_range(0..100)
                ),
                _ => {
                    if self.chance(0.5) {
                        format!(
                            "+1{}555{:04}",
                            self.rng.random_range(201..990),
                            self.rng.random_range(100..10000)
                        )
                    } else {
                        format!(
                            "({}) 555-{:04}",
                            self.rng.random_range(201..990),
                            self.rng.random_range(100..10000)
                        )
                    }
                }
            };
            self.secret(v)
        };
        let street = self.pick(STREETS);
        let line1 = {
            let v = format!("{} {street}", self.rng.random_range(12..9800));
            self.secret(v)
        };
        let line2 = if self.chance(0.3) {
            Some({
                let v = format!("Apartment {}B", self.rng.random_range(2..90));
                self.secret(v)
            })
        } else {
            None
        };
        let postal = {
            let v = match country {
                "GB" => format!(
                    "BN{} {}{}",
                    self.rng.random_range(1..45),
                    self.rng.random_range(1..10),
                    self.rand(b"ABDEFGHJLNPQRSTUWXYZ", 2)
                ),
                "CA" => format!(
                    "L{}{} {}{}{}",
                    self.rng.random_range(1..10),
                    self.rand(b"ABCEGHJKLMNPRSTVXY", 1),
                    self.rng.random_range(1..10),
                    self.rand(b"ABCEGHJKLMNPRSTVXY", 1),
                    self.rng.random_range(1..10)
                ),
                "US" => format!(
                    "{:05}-{:04}",
                    self.rng.random_range(10000..99999),
                    self.rng.random_range(1000..9999)
                ),
                _ => format!("{}-{:05}", country, self.rng.random_range(10000..99999)),
            };
            self.secret(v)
        };
        let ip = self.client_ip();
        let customer = self.short_id("cus_");
        Person {
            name,
            email,
            phone,
            line1,
            line2,
            city,
            state,
            country,
            postal,
            ip,
            customer,
        }
    }

    fn address(&self, p: &Person) -> J {
        o(vec![
            ("city", s(p.city)),
            ("country", s(p.country)),
            ("line1", s(p.line1.clone())),
            ("line2", opt_s(p.line2.clone())),
            ("postal_code", s(p.postal.clone())),
            ("state", s(p.state)),
        ])
    }

    fn tracking_metadata(&mut self) -> J {
        let mut m = Vec::new();
        if self.chance(0.6) {
            let v = self.rand(HEX, 40);
            m.push(("tr_sid", s(self.secret(v))));
            let v = self.rand(b"abcdefghijklmnopqrstuvwxyz0123456789", 8);
            m.push(("tr_tid", s(self.secret(v))));
        }
        if self.chance(0.5) {
            let v = format!(
                "{}{}",
                self.rand(b"abcdefghijklmnopqrstuvwxyz", 6),
                self.rng.random_range(100..9999)
            );
            m.push(("tr_cid", s(self.secret(v))));
        }
        if self.chance(0.3) {
            let url = self.landing_url(false);
            m.push(("landing_page", s(url)));
        }
        o(m)
    }

    /// A marketing URL with utm_* parameters, a click id and sometimes an email.
    fn landing_url(&mut self, email: bool) -> String {
        let campaign = format!(
            "{}_{}",
            self.pick(&["black_friday", "spring_promo", "retarget", "webinar"]),
            self.rand(b"abcdefghijklmnopqrstuvwxyz0123456789", 6)
        );
        let campaign = self.secret(campaign);
        let term = format!("lead+lists+{}", self.rand(b"abcdefghijklmnopqrstuvwxyz", 7));
        let term = self.secret(term);
        let (click_key, click) = if self.chance(0.5) {
            ("gclid", format!("Cj0KCQiA{}", self.rand(B64URL, 60)))
        } else {
            ("fbclid", format!("IwAR{}", self.rand(B64URL, 56)))
        };
        let click = self.secret(click);
        let source = self.pick(&["google", "facebook", "newsletter", "bing"]);
        let mut url = format!(
            "https://app.leadfinder.example/pricing?utm_source={source}&utm_medium=cpc&utm_campaign={campaign}&utm_term={term}&{click_key}={click}"
        );
        if email {
            let local = format!("{}.{}", ascii_fold(self.pick(FIRST)), ascii_fold(self.pick(LAST))).to_lowercase();
            let enc = format!("{local}{}%40{}", self.rng.random_range(10..9999), self.pick(DOMAINS));
            let enc = self.secret(enc);
            url.push_str("&email=");
            url.push_str(&enc);
        }
        url
    }

    fn card(&mut self, p: &Person) -> J {
        let brand = self.pick(&["visa", "mastercard", "amex"]);
        let fp = self.rand(ALNUM, 16);
        let fp = self.secret(fp);
        o(vec![
            ("brand", s(brand)),
            (
                "checks",
                o(vec![
                    ("address_line1_check", J::Null),
                    ("address_postal_code_check", s("pass")),
                    ("cvc_check", s("pass")),
                ]),
            ),
            ("country", s(p.country)),
            ("exp_month", J::I(self.rng.random_range(1..=12))),
            ("exp_year", J::I(self.rng.random_range(2026..=2032))),
            ("fingerprint", s(fp)),
            ("funding", s("credit")),
            ("last4", s(format!("{:04}", self.rng.random_range(0..10000)))),
            ("network", s(brand)),
            ("wallet", J::Null),
        ])
    }

    fn billing_details(&mut self, p: &Person) -> J {
        o(vec![
            ("address", self.address(p)),
            ("email", s(p.email.clone())),
            ("name", s(p.name.clone())),
            ("phone", s(p.phone.clone())),
        ])
    }

    fn receipt_url(&mut self) -> String {
        let tok = self.rand(B64URL, 88);
        let tok = self.secret(tok);
        format!("https://pay.stripe.com/receipts/invoices/{tok}?s=ap")
    }

    fn product(&mut self) -> (&'static str, &'static str, i64, String, String) {
        let (name, nick, amount) = self.pick(PRODUCTS);
        self.keep.add(name);
        self.keep.add(nick);
        let prod = format!("prod_{}", &self.acct_tag[..4].to_owned());
        let prod = format!("{prod}{}", stable_suffix(name));
        self.ids.add(&prod);
        let price = format!("price_1{}{}", self.acct_tag, stable_suffix(nick));
        self.ids.add(&price);
        (name, nick, amount, prod, price)
    }

    fn price_obj(&mut self, nick: &str, amount: i64, prod: &str, price: &str, object: &'static str) -> J {
        o(vec![
            ("id", s(price)),
            ("object", s(object)),
            ("active", J::B(true)),
            ("billing_scheme", s("per_unit")),
            ("created", J::I(self.now - 9_000_000)),
            ("currency", s("usd")),
            ("livemode", J::B(true)),
            ("metadata", o(vec![])),
            ("nickname", s(nick)),
            ("product", s(prod)),
            (
                "recurring",
                o(vec![
                    ("interval", s("month")),
                    ("interval_count", J::I(1)),
                    ("usage_type", s("licensed")),
                ]),
            ),
            ("tax_behavior", s("unspecified")),
            ("unit_amount", J::I(amount)),
            ("unit_amount_decimal", s(amount.to_string())),
        ])
    }

    // --- Stripe objects ---

    fn subscription(&mut self, p: &Person) -> J {
        let (_, nick, amount, prod, price) = self.product();
        let sub = self.id("sub_");
        let si = self.short_id("si_");
        let inv = self.id("in_");
        let meta = self.tracking_metadata();
        o(vec![
            ("id", s(sub.clone())),
            ("object", s("subscription")),
            ("application", J::Null),
            (
                "automatic_tax",
                o(vec![("enabled", J::B(false)), ("liability", J::Null)]),
            ),
            ("billing_cycle_anchor", J::I(self.now - 2)),
            ("cancel_at_period_end", J::B(false)),
            ("canceled_at", J::Null),
            (
                "cancellation_details",
                o(vec![("comment", J::Null), ("feedback", J::Null), ("reason", J::Null)]),
            ),
            ("collection_method", s("charge_automatically")),
            ("created", J::I(self.now - 2)),
            ("currency", s("usd")),
            ("current_period_end", J::I(self.now + 2_592_000)),
            ("current_period_start", J::I(self.now - 2)),
            ("customer", s(p.customer.clone())),
            ("default_tax_rates", J::A(vec![])),
            ("description", J::Null),
            ("discounts", J::A(vec![])),
            (
                "items",
                o(vec![
                    ("object", s("list")),
                    (
                        "data",
                        J::A(vec![o(vec![
                            ("id", s(si)),
                            ("object", s("subscription_item")),
                            ("created", J::I(self.now - 1)),
                            ("metadata", o(vec![])),
                            ("plan", self.price_obj(nick, amount, &prod, &price, "plan")),
                            ("price", self.price_obj(nick, amount, &prod, &price, "price")),
                            ("quantity", J::I(1)),
                            ("subscription", s(sub.clone())),
                            ("tax_rates", J::A(vec![])),
                        ])]),
                    ),
                    ("has_more", J::B(false)),
                    ("total_count", J::I(1)),
                    ("url", s(format!("/v1/subscription_items?subscription={sub}"))),
                ]),
            ),
            ("latest_invoice", s(inv)),
            ("livemode", J::B(true)),
            ("metadata", meta),
            (
                "payment_settings",
                o(vec![
                    ("payment_method_types", J::A(vec![s("card")])),
                    ("save_default_payment_method", s("off")),
                ]),
            ),
            ("status", s("active")),
            ("trial_end", J::Null),
        ])
    }

    fn invoice(&mut self, p: &Person) -> J {
        let (name, nick, amount, prod, price) = self.product();
        let inv = self.id("in_");
        let ch = self.id("ch_");
        let pi = self.id("pi_");
        let sub = self.id("sub_");
        let il = self.id("il_");
        let tok = self.rand(B64URL, 72);
        let tok = self.secret(tok);
        let hosted = format!("https://invoice.stripe.com/i/{}/live_{tok}?s=ap", self.acct);
        let pdf = format!("https://pay.stripe.com/invoice/{}/live_{tok}/pdf?s=ap", self.acct);
        let number = format!(
            "{}-{:04}",
            self.rand(b"0123456789ABCDEF", 8),
            self.rng.random_range(1..3000)
        );
        self.ids.add(&number);
        let shipping = if self.chance(0.3) {
            o(vec![
                ("address", self.address(p)),
                ("name", s(p.name.clone())),
                ("phone", s(p.phone.clone())),
            ])
        } else {
            J::Null
        };
        let description = if self.chance(0.4) {
            s(format!("Invoice for {} <{}>", p.name, p.email))
        } else {
            J::Null
        };
        o(vec![
            ("id", s(inv.clone())),
            ("object", s("invoice")),
            ("account_country", s("US")),
            ("account_name", s("Lead Finder Inc.")),
            ("amount_due", J::I(amount)),
            ("amount_paid", J::I(amount)),
            ("amount_remaining", J::I(0)),
            ("attempt_count", J::I(1)),
            ("billing_reason", s("subscription_cycle")),
            ("charge", s(ch)),
            ("collection_method", s("charge_automatically")),
            ("created", J::I(self.now - 3)),
            ("currency", s("usd")),
            ("customer", s(p.customer.clone())),
            ("customer_address", self.address(p)),
            ("customer_email", s(p.email.clone())),
            ("customer_name", s(p.name.clone())),
            ("customer_phone", s(p.phone.clone())),
            ("customer_shipping", shipping),
            ("description", description),
            ("hosted_invoice_url", s(hosted)),
            ("invoice_pdf", s(pdf)),
            (
                "lines",
                o(vec![
                    ("object", s("list")),
                    (
                        "data",
                        J::A(vec![o(vec![
                            ("id", s(il)),
                            ("object", s("line_item")),
                            ("amount", J::I(amount)),
                            ("currency", s("usd")),
                            (
                                "description",
                                s(format!("1 × {name} (at ${}.{:02} / month)", amount / 100, amount % 100)),
                            ),
                            ("metadata", o(vec![])),
                            (
                                "period",
                                o(vec![("end", J::I(self.now + 2_592_000)), ("start", J::I(self.now))]),
                            ),
                            ("plan", self.price_obj(nick, amount, &prod, &price, "plan")),
                            ("quantity", J::I(1)),
                            ("subscription", s(sub.clone())),
                            ("type", s("subscription")),
                        ])]),
                    ),
                    ("has_more", J::B(false)),
                    ("total_count", J::I(1)),
                    ("url", s(format!("/v1/invoices/{inv}/lines"))),
                ]),
            ),
            ("livemode", J::B(true)),
            ("metadata", o(vec![])),
            ("number", s(number)),
            ("paid", J::B(true)),
            ("payment_intent", s(pi)),
            ("status", s("paid")),
            ("subscription", s(sub)),
            ("total", J::I(amount)),
        ])
    }

    fn payment_intent(&mut self, p: &Person) -> J {
        let pi = self.id("pi_");
        let secret = self.rand(ALNUM, 25);
        let client_secret = self.secret(format!("{pi}_secret_{secret}"));
        let pm = self.id("pm_");
        let (_, _, amount, _, _) = self.product();
        let receipt = if self.chance(0.5) { s(p.email.clone()) } else { J::Null };
        let shipping = if self.chance(0.3) {
            o(vec![
                ("address", self.address(p)),
                ("name", s(p.name.clone())),
                ("phone", s(p.phone.clone())),
            ])
        } else {
            J::Null
        };
        let meta = self.tracking_metadata();
        o(vec![
            ("id", s(pi)),
            ("object", s("payment_intent")),
            ("amount", J::I(amount)),
            ("amount_received", J::I(amount)),
            ("capture_method", s("automatic_async")),
            ("client_secret", s(client_secret)),
            ("confirmation_method", s("automatic")),
            ("created", J::I(self.now - 1)),
            ("currency", s("usd")),
            ("customer", s(p.customer.clone())),
            ("description", s("Subscription creation")),
            ("livemode", J::B(true)),
            ("metadata", meta),
            ("payment_method", s(pm)),
            ("payment_method_types", J::A(vec![s("card")])),
            ("receipt_email", receipt),
            ("shipping", shipping),
            ("status", s("succeeded")),
        ])
    }

    fn charge(&mut self, p: &Person) -> J {
        let ch = self.id("ch_");
        let pi = self.id("pi_");
        let pm = self.id("pm_");
        let (_, _, amount, _, _) = self.product();
        let card = self.card(p);
        let bd = self.billing_details(p);
        let receipt = self.receipt_url();
        o(vec![
            ("id", s(ch.clone())),
            ("object", s("charge")),
            ("amount", J::I(amount)),
            ("amount_captured", J::I(amount)),
            ("billing_details", bd),
            ("captured", J::B(true)),
            ("created", J::I(self.now - 1)),
            ("currency", s("usd")),
            ("customer", s(p.customer.clone())),
            ("description", s(format!("Payment from {}", p.email))),
            ("livemode", J::B(true)),
            ("metadata", o(vec![])),
            (
                "outcome",
                o(vec![
                    ("network_status", s("approved_by_network")),
                    ("risk_level", s("normal")),
                    ("type", s("authorized")),
                ]),
            ),
            ("paid", J::B(true)),
            ("payment_intent", s(pi)),
            ("payment_method", s(pm)),
            ("payment_method_details", o(vec![("card", card), ("type", s("card"))])),
            ("receipt_email", s(p.email.clone())),
            ("receipt_url", s(receipt)),
            ("refunded", J::B(false)),
            (
                "refunds",
                o(vec![
                    ("object", s("list")),
                    ("data", J::A(vec![])),
                    ("has_more", J::B(false)),
                    ("url", s(format!("/v1/charges/{ch}/refunds"))),
                ]),
            ),
            ("status", s("succeeded")),
        ])
    }

    fn checkout_session(&mut self, p: &Person) -> J {
        let cs = format!("cs_live_a1{}", self.rand(ALNUM, 56));
        self.ids.add(&cs);
        let sub = self.id("sub_");
        let inv = self.id("in_");
        let (_, _, amount, _, _) = self.product();
        let meta = self.tracking_metadata();
        o(vec![
            ("id", s(cs)),
            ("object", s("checkout.session")),
            ("amount_subtotal", J::I(amount)),
            ("amount_total", J::I(amount)),
            ("cancel_url", s("https://app.leadfinder.example/pricing")),
            ("client_reference_id", J::Null),
            ("created", J::I(self.now - 40)),
            ("currency", s("usd")),
            ("customer", s(p.customer.clone())),
            ("customer_creation", s("always")),
            (
                "customer_details",
                o(vec![
                    ("address", self.address(p)),
                    ("email", s(p.email.clone())),
                    ("name", s(p.name.clone())),
                    ("phone", s(p.phone.clone())),
                    ("tax_exempt", s("none")),
                ]),
            ),
            ("customer_email", s(p.email.clone())),
            ("invoice", s(inv)),
            ("livemode", J::B(true)),
            ("metadata", meta),
            ("mode", s("subscription")),
            ("payment_status", s("paid")),
            ("status", s("complete")),
            ("subscription", s(sub)),
            (
                "success_url",
                s("https://app.leadfinder.example/welcome?session_id={CHECKOUT_SESSION_ID}"),
            ),
        ])
    }

    fn customer(&mut self, p: &Person) -> J {
        let meta = self.tracking_metadata();
        o(vec![
            ("id", s(p.customer.clone())),
            ("object", s("customer")),
            ("address", self.address(p)),
            ("balance", J::I(0)),
            ("created", J::I(self.now - 1)),
            ("currency", J::Null),
            ("description", s(format!("Customer for {}", p.email))),
            ("email", s(p.email.clone())),
            ("invoice_prefix", s(self.rand(b"0123456789ABCDEF", 8))),
            ("livemode", J::B(true)),
            ("metadata", meta),
            ("name", s(p.name.clone())),
            ("phone", s(p.phone.clone())),
            ("preferred_locales", J::A(vec![s("en-US")])),
            ("shipping", J::Null),
            ("tax_exempt", s("none")),
        ])
    }

    fn setup_intent(&mut self, p: &Person) -> J {
        let seti = self.id("seti_");
        let secret = self.rand(ALNUM, 25);
        let client_secret = self.secret(format!("{seti}_secret_{secret}"));
        let ua = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15";
        o(vec![
            ("id", s(seti)),
            ("object", s("setup_intent")),
            ("client_secret", s(client_secret)),
            ("created", J::I(self.now - 1)),
            ("customer", s(p.customer.clone())),
            ("livemode", J::B(true)),
            (
                "mandate_data",
                o(vec![(
                    "customer_acceptance",
                    o(vec![
                        (
                            "online",
                            o(vec![("ip_address", s(p.ip.clone())), ("user_agent", s(ua))]),
                        ),
                        ("type", s("online")),
                    ]),
                )]),
            ),
            ("metadata", o(vec![])),
            ("payment_method_types", J::A(vec![s("card")])),
            ("status", s("requires_payment_method")),
            ("usage", s("off_session")),
        ])
    }

    /// One Stripe event: (type, event id, the event as JSON, the person it is about).
    /// One Stripe event and its JSON (for the formats that log the body).
    fn stripe_event(&mut self) -> (&'static str, String, J, Person) {
        self.stripe_event_with(true)
    }

    /// `with_body: false` skips building the body (formats that only log a line about the event);
    /// the JSON returned is then just `{"id": <object id>}`.
    fn stripe_event_with(&mut self, with_body: bool) -> (&'static str, String, J, Person) {
        self.now += self.rng.random_range(1..240);
        self.ms = self.rng.random_range(0..500);
        let ty = self.pick(EVENT_TYPES);
        if self.collect {
            self.event_types.push(ty.to_owned());
        }
        self.keep.add(ty);
        let p = self.person();
        let object = if !with_body {
            let prefix = match ty.split('.').next() {
                Some("invoice") => "in_",
                Some("customer") if ty.starts_with("customer.subscription") => "sub_",
                Some("customer") => "",
                Some("payment_intent") => "pi_",
                Some("charge") => "ch_",
                Some("checkout") => "cs_",
                _ => "seti_",
            };
            let id = match prefix {
                "" => p.customer.clone(),
                "cs_" => {
                    let v = format!("cs_live_a1{}", self.rand(ALNUM, 56));
                    self.ids.add(&v);
                    v
                }
                _ => self.id(prefix),
            };
            o(vec![("id", s(id))])
        } else {
            match ty {
                "invoice.paid" | "invoice.payment_succeeded" | "invoice.created" => self.invoice(&p),
                "customer.subscription.updated" | "customer.subscription.created" => self.subscription(&p),
                "payment_intent.succeeded" | "payment_intent.created" => self.payment_intent(&p),
                "charge.succeeded" => self.charge(&p),
                "checkout.session.completed" => self.checkout_session(&p),
                "customer.created" => self.customer(&p),
                _ => self.setup_intent(&p),
            }
        };
        let evt = self.id("evt_");
        let req = self.short_id("req_");
        let idem = uuid(&mut self.rng);
        let ev = o(vec![
            ("id", s(evt.clone())),
            ("object", s("event")),
            (
                "api_version",
                s(self.pick(&["2024-06-20", "2024-09-30.acacia", "2022-08-01"])),
            ),
            ("created", J::I(self.now)),
            ("data", o(vec![("object", object)])),
            ("livemode", J::B(true)),
            ("pending_webhooks", J::I(self.rng.random_range(1..4))),
            ("request", o(vec![("id", s(req)), ("idempotency_key", s(idem))])),
            ("type", s(ty)),
        ]);
        (ty, evt, ev, p)
    }

    fn stripe_signature(&mut self) -> String {
        let v1 = self.rand(HEX, 64);
        let v0 = self.rand(HEX, 64);
        let v1 = self.secret(v1);
        let v0 = self.secret(v0);
        format!("t={},v1={v1},v0={v0}", self.now)
    }

    fn jwt(&mut self, p: &Person) -> String {
        use base64::Engine;
        let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
        let head = b64.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let body = b64.encode(format!(
            r#"{{"sub":"{}","email":"{}","iat":{}}}"#,
            p.customer, p.email, self.now
        ));
        let sig = self.rand(B64URL, 43);
        self.secret(format!("{head}.{body}.{sig}"))
    }

    fn api_key(&mut self) -> String {
        let prefix = self.pick(&["sk_live_", "sk_test_", "rk_live_"]);
        let body = self.rand(ALNUM, 99);
        {
            let v = format!("{prefix}51{}{body}", self.acct_tag);
            self.secret(v)
        }
    }

    fn webhook_secret(&mut self) -> String {
        let v = self.rand(ALNUM, 32);
        self.secret(format!("whsec_{v}"))
    }

    fn ga_cookie(&mut self) -> String {
        let ga = format!(
            "GA1.2.{}.{}",
            self.rng.random_range(100_000_000..2_000_000_000u32),
            self.now - self.rng.random_range(1000..9_000_000)
        );
        let ga = self.secret(ga);
        let session = self.rand(b"abcdefghijklmnopqrstuvwxyz0123456789", 32);
        let session = self.secret(session);
        format!("_ga={ga}; sessionid={session}; csrftoken=public")
    }

    /// Request headers of a Stripe delivery, sometimes with extra proxy/auth headers.
    fn stripe_headers(&mut self, p: &Person, len: usize) -> Vec<(&'static str, String)> {
        let sig = self.stripe_signature();
        let proxy = self.ipv4();
        let proxy = self.secret(proxy);
        let mut h = vec![
            ("Content-Length", len.to_string()),
            ("Content-Type", "application/json; charset=utf-8".to_owned()),
            ("Host", "hooks.leadfinder.example".to_owned()),
            ("Cache-Control", "no-cache".to_owned()),
            (
                "User-Agent",
                "Stripe/1.0 (+https://stripe.com/docs/webhooks)".to_owned(),
            ),
            ("Accept", "*/*; q=0.5, application/xml".to_owned()),
            ("Stripe-Signature", sig),
            ("X-Forwarded-For", format!("{}, {proxy}", p.ip)),
            ("X-Real-Ip", p.ip.clone()),
            ("X-Forwarded-Host", "hooks.leadfinder.example".to_owned()),
        ];
        if self.chance(0.15) {
            let cookie = self.ga_cookie();
            h.push(("Cookie", cookie));
        }
        if self.chance(0.1) {
            let tok = if self.chance(0.5) { self.jwt(p) } else { self.api_key() };
            h.push(("Authorization", format!("Bearer {tok}")));
        }
        h
    }

    /// Headers of another provider's delivery: (provider, event, headers).
    fn foreign_headers(&mut self) -> (&'static str, &'static str, Vec<(&'static str, String)>) {
        let ip = self.client_ip();
        let mut h = vec![("Content-Type", "application/json".to_owned()), ("X-Forwarded-For", ip)];
        let (provider, event) = match self.rng.random_range(0..6) {
            0 => {
                let v = self.rand(HEX, 64);
                h.push(("X-Hub-Signature-256", format!("sha256={}", self.secret(v))));
                let v = self.rand(HEX, 40);
                h.push(("X-Hub-Signature", format!("sha1={}", self.secret(v))));
                h.push(("X-GitHub-Event", "push".to_owned()));
                ("github", "push")
            }
            1 => {
                let v = format!("{}=", self.rand(B64, 43));
                h.push(("X-Shopify-Hmac-Sha256", self.secret(v)));
                h.push(("X-Shopify-Topic", "orders/create".to_owned()));
                ("shopify", "orders/create")
            }
            2 => {
                let v = self.rand(HEX, 64);
                h.push(("X-Slack-Signature", format!("v0={}", self.secret(v))));
                h.push(("X-Slack-Request-Timestamp", self.now.to_string()));
                ("slack", "event_callback")
            }
            3 => {
                let v = format!("{}=", self.rand(B64, 43));
                h.push(("svix-id", format!("msg_{}", self.rand(ALNUM, 27))));
                h.push(("svix-signature", format!("v1,{}", self.secret(v))));
                ("svix", "message.attempt")
            }
            4 => {
                let v = format!("{}=", self.rand(B64, 27));
                h.push(("X-Twilio-Signature", self.secret(v)));
                ("twilio", "sms.received")
            }
            _ => {
                let v = format!("{}==", self.rand(B64, 342));
                h.push(("Paypal-Transmission-Sig", self.secret(v)));
                h.push(("Paypal-Transmission-Id", uuid(&mut self.rng)));
                ("paypal", "PAYMENT.CAPTURE.COMPLETED")
            }
        };
        (provider, event, h)
    }

    // --- formats ---

    fn event(&mut self, out: &mut Vec<u8>) {
        match self.format {
            Format::Req => self.req_event(out),
            Format::JsonLines => self.jsonl_event(out),
            Format::Json => self.json_event(out),
            Format::Syslog => self.syslog_event(out),
            Format::AccessLog => self.access_event(out),
            Format::Text => self.text_event(out),
            Format::Django | Format::Auto => self.django_event(out),
        }
        self.events += 1;
    }

    /// What closes the log (the `REQ:` format ends with an empty marker, as real files do).
    fn end(&mut self, out: &mut Vec<u8>) {
        if self.format == Format::Req {
            out.extend_from_slice(b" REQ:");
            self.split_records += 1;
        }
    }

    /// Milliseconds within the current second, increasing from line to line.
    fn tick_ms(&mut self) -> i64 {
        self.ms = (self.ms + self.rng.random_range(0..40)).min(999);
        self.ms
    }

    fn django_ts(&mut self) -> String {
        let ms = self.tick_ms();
        let dt = chrono::DateTime::from_timestamp(self.now, 0).unwrap_or_default();
        format!("{},{ms:03}", dt.format("%Y-%m-%d %H:%M:%S"))
    }

    fn django_line(&mut self, level: &str, msg: &str, out: &mut Vec<u8>) {
        let ts = self.django_ts();
        out.extend_from_slice(format!("{level} {ts} views {msg}\n").as_bytes());
        self.split_records += 1;
    }

    fn headers_dict(h: &[(&'static str, String)]) -> String {
        let mut out = Vec::new();
        render(
            &o(h.iter().map(|(k, v)| (*k, s(v.clone()))).collect()),
            STYLE_PY,
            &mut out,
        );
        String::from_utf8_lossy(&out).into_owned()
    }

    fn django_event(&mut self, out: &mut Vec<u8>) {
        if self.chance(0.08) {
            let (_, event, h) = self.foreign_headers();
            self.django_line("DEBUG", &format!("Request Headers: {}", Self::headers_dict(&h)), out);
            self.django_line(
                "DEBUG",
                "Request data: <WSGIRequest: POST '/api/integrations/webhook/'>",
                out,
            );
            let delivery = uuid(&mut self.rng);
            self.django_line("INFO", &format!("ignored delivery {delivery} ({event})"), out);
        }
        let (ty, _, ev, p) = self.stripe_event();
        let mut body = Vec::new();
        render(&ev, STYLE_DJANGO, &mut body);
        let h = self.stripe_headers(&p, body.len());
        self.django_line("DEBUG", &format!("Request Headers: {}", Self::headers_dict(&h)), out);
        self.django_line(
            "DEBUG",
            "Request data: <WSGIRequest: POST '/api/payment/webhook/'>",
            out,
        );
        self.django_line("DEBUG", ty, out);
        let ts = self.django_ts();
        out.extend_from_slice(format!("INFO {ts} views ").as_bytes());
        out.extend_from_slice(&body);
        out.push(b'\n');
        self.split_records += 1;
        if ty == "invoice.paid" && self.chance(0.5) {
            self.django_line("DEBUG", "Invoice payment", out);
            let ts = self.django_ts();
            out.extend_from_slice(format!("DEBUG {ts} views ").as_bytes());
            if let J::O(fields) = &ev
                && let Some((_, J::O(data))) = fields.iter().find(|(k, _)| *k == "data")
                && let Some((_, obj)) = data.first()
            {
                render(obj, STYLE_DJANGO, out);
            }
            out.push(b'\n');
            self.split_records += 1;
        }
        if self.chance(0.05) {
            self.django_line(
                "ERROR",
                &format!("Customer with Stripe ID {} not found.", p.customer),
                out,
            );
        }
    }

    fn req_event(&mut self, out: &mut Vec<u8>) {
        let (_, _, ev, _) = self.stripe_event();
        if self.events > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(if self.chance(0.03) { b"REQ: REQ: " } else { b"REQ: " });
        let st = Style {
            pretty: false,
            spaced: true,
            spaced_empty: self.spaced_empty,
            sorted: false,
        };
        render(&ev, st, out);
        self.split_records += 1;
    }

    fn iso_ms(&mut self) -> String {
        let ms = self.tick_ms();
        let dt = chrono::DateTime::from_timestamp(self.now, 0).unwrap_or_default();
        format!("{}.{ms:03}Z", dt.format("%Y-%m-%dT%H:%M:%S"))
    }

    fn jsonl_event(&mut self, out: &mut Vec<u8>) {
        let (ty, evt, ev, p) = self.stripe_event();
        let len = self.rng.random_range(2000..9000);
        let h = self.stripe_headers(&p, len);
        let ts = self.iso_ms();
        let line = o(vec![
            ("ts", s(ts)),
            ("level", s("info")),
            ("logger", s("webhooks.stripe")),
            ("msg", s(format!("received {ty}"))),
            ("remote_addr", s(p.ip.clone())),
            ("headers", o(h.into_iter().map(|(k, v)| (k, s(v))).collect())),
            ("event", ev),
        ]);
        render(&line, STYLE_PY, out);
        out.push(b'\n');
        self.split_records += 1;
        if self.chance(0.15) {
            let (name, _, _, prod, _) = self.product();
            let ts = self.iso_ms();
            let line = o(vec![
                ("ts", s(ts)),
                ("level", s("warning")),
                ("logger", s("billing.sync")),
                (
                    "msg",
                    s(format!("customer {} not in CRM, created from {evt}", p.customer)),
                ),
                ("customer_email", s(p.email.clone())),
                ("customer_name", s(p.name.clone())),
                ("client_ip", s(p.ip.clone())),
                ("product", o(vec![("id", s(prod)), ("name", s(name))])),
            ]);
            render(&line, STYLE_PY, out);
            out.push(b'\n');
            self.split_records += 1;
        }
    }

    fn json_event(&mut self, out: &mut Vec<u8>) {
        let (ty, _, ev, p) = self.stripe_event();
        out.extend_from_slice(format!("stripe_event: {ty}\n").as_bytes());
        render(&ev, STYLE_GIST, out);
        out.push(b'\n');
        self.split_records += 2;
        if self.chance(0.2) {
            out.extend_from_slice(format!("processed for {} from {}\n", p.email, p.ip).as_bytes());
            self.split_records += 1;
        }
    }

    fn syslog_event(&mut self, out: &mut Vec<u8>) {
        let (ty, evt, ev, p) = self.stripe_event_with(false);
        let obj_id = match &ev {
            J::O(f) => match f.iter().find(|(k, _)| *k == "data") {
                Some((_, J::O(d))) => match d.first() {
                    Some((_, J::O(of))) => match of.first() {
                        Some((_, J::S(id))) => id.clone(),
                        _ => String::new(),
                    },
                    _ => String::new(),
                },
                _ => String::new(),
            },
            _ => String::new(),
        };
        let dt = chrono::DateTime::from_timestamp(self.now, 0).unwrap_or_default();
        let host = "web-01";
        let msg = format!(
            "stripe webhook {evt} type={ty} object={obj_id} customer={} email={} ip={} status=200",
            p.customer, p.email, p.ip
        );
        if self.chance(0.5) {
            let ms = self.rng.random_range(0..1000);
            let ts = format!("{}.{ms:03}Z", dt.format("%Y-%m-%dT%H:%M:%S"));
            out.extend_from_slice(format!("<134>1 {ts} {host} webhooks {} - - {msg}\n", self.pid).as_bytes());
        } else {
            let ts = dt.format("%b %e %H:%M:%S");
            out.extend_from_slice(format!("<134>{ts} {host} webhooks[{}]: {msg}\n", self.pid).as_bytes());
        }
        self.split_records += 1;
        if self.chance(0.1) {
            let ts = dt.format("%b %e %H:%M:%S");
            let (what, secret) = if self.chance(0.5) {
                ("signing secret", self.webhook_secret())
            } else {
                ("api key", self.api_key())
            };
            out.extend_from_slice(
                format!(
                    "<132>{ts} {host} webhooks[{}]: warning: {what} {secret} loaded from environment\n",
                    self.pid
                )
                .as_bytes(),
            );
            self.split_records += 1;
        }
    }

    fn access_event(&mut self, out: &mut Vec<u8>) {
        let (_, _, _, p) = self.stripe_event_with(false);
        let dt = chrono::DateTime::from_timestamp(self.now, 0).unwrap_or_default();
        let ts = dt.format("%d/%b/%Y:%H:%M:%S +0000");
        let stripe_ip = self.ipv4();
        let stripe_ip = self.secret(stripe_ip);
        let len = self.rng.random_range(2..40);
        out.extend_from_slice(
            format!(
                "{stripe_ip} - - [{ts}] \"POST /api/payment/webhook/ HTTP/1.1\" 200 {len} \"-\" \"Stripe/1.0 (+https://stripe.com/docs/webhooks)\"\n"
            )
            .as_bytes(),
        );
        self.split_records += 1;
        if self.chance(0.6) {
            let with_email = self.chance(0.5);
            let url = self.landing_url(with_email);
            let path = url.trim_start_matches("https://app.leadfinder.example");
            let referer = if self.chance(0.5) {
                let fb = format!("IwAR{}", self.rand(B64URL, 56));
                format!(
                    "https://l.facebook.com/l.php?u=https%3A%2F%2Fapp.leadfinder.example%2F&fbclid={}",
                    self.secret(fb)
                )
            } else {
                "-".to_owned()
            };
            let user = if self.chance(0.2) {
                p.email.clone()
            } else {
                "-".to_owned()
            };
            out.extend_from_slice(
                format!(
                    "{} - {user} [{ts}] \"GET {path} HTTP/2.0\" 200 {} \"{referer}\" \"Mozilla/5.0 (X11; Linux x86_64; rv:132.0) Gecko/20100101 Firefox/132.0\"\n",
                    p.ip,
                    self.rng.random_range(1000..90000)
                )
                .as_bytes(),
            );
            self.split_records += 1;
        }
    }

    fn text_event(&mut self, out: &mut Vec<u8>) {
        let (ty, evt, _, p) = self.stripe_event_with(false);
        let dt = chrono::DateTime::from_timestamp(self.now, 0).unwrap_or_default();
        let ms = self.rng.random_range(0..1000);
        let ts = format!("[{},{ms:03}]", dt.format("%Y-%m-%d %H:%M:%S"));
        out.extend_from_slice(
            format!(
                "{ts} web.1 | received {ty} {evt} for {} <{}> from {}\n",
                p.name, p.email, p.ip
            )
            .as_bytes(),
        );
        self.split_records += 1;
        match self.rng.random_range(0..10) {
            0 => {
                out.extend_from_slice(format!("{ts} web.1 | error handling {evt}\n").as_bytes());
                out.extend_from_slice(b"Traceback (most recent call last):\n");
                out.extend_from_slice(b"  File \"/app/payments/webhooks.py\", line 88, in handle\n");
                out.extend_from_slice(b"    customer = Customer.objects.get(email=obj[\"customer_email\"])\n");
                out.extend_from_slice(b"  File \"/usr/lib/python3.12/site-packages/django/db/models/manager.py\", line 87, in manager_method\n");
                out.extend_from_slice(b"    return getattr(self.get_queryset(), name)(*args, **kwargs)\n");
                out.extend_from_slice(
                    format!("payments.models.Customer.DoesNotExist: Customer matching query does not exist. email='{}', phone='{}'\n", p.email, p.phone)
                        .as_bytes(),
                );
                self.split_records += 1;
            }
            1 => {
                let key = self.api_key();
                out.extend_from_slice(format!("{ts} worker.2 | syncing {} to billing\n", p.customer).as_bytes());
                out.extend_from_slice(b"Traceback (most recent call last):\n");
                out.extend_from_slice(b"  File \"/app/billing/sync.py\", line 41, in sync_customer\n");
                out.extend_from_slice(b"    stripe.Customer.modify(customer_id, name=full_name)\n");
                out.extend_from_slice(
                    format!("stripe._error.AuthenticationError: Invalid API Key provided: {key}\n").as_bytes(),
                );
                out.extend_from_slice(b"\nDuring handling of the above exception, another exception occurred:\n\n");
                out.extend_from_slice(b"Traceback (most recent call last):\n");
                out.extend_from_slice(b"  File \"/app/billing/sync.py\", line 47, in sync_customer\n");
                out.extend_from_slice(
                    format!("    raise SyncError(f\"cannot update {{full_name}}\")\nbilling.errors.SyncError: cannot update {}\n", p.name)
                        .as_bytes(),
                );
                self.split_records += 1;
            }
            2 => {
                let cookie = self.ga_cookie();
                out.extend_from_slice(
                    format!(
                        "{ts} web.1 | request headers:\n    Cookie: {cookie}\n    Referer: {}\n",
                        self.landing_url(false)
                    )
                    .as_bytes(),
                );
                self.split_records += 1;
            }
            3 => {
                let w = self.webhook_secret();
                out.extend_from_slice(
                    format!("{ts} web.1 | config STRIPE_WEBHOOK_SECRET={w} phone={}\n", p.phone).as_bytes(),
                );
                self.split_records += 1;
            }
            _ => {}
        }
    }
}

/// Python's `json.dumps` default separators (`", "`, `": "`), on one line.
const STYLE_PY: Style = Style {
    pretty: false,
    spaced: false,
    spaced_empty: false,
    sorted: false,
};
/// Django's pretty dump: one value per line, no indentation, sorted keys.
const STYLE_DJANGO: Style = Style {
    pretty: true,
    spaced: false,
    spaced_empty: false,
    sorted: true,
};
/// A pretty dump in Stripe's key order, no indentation.
const STYLE_GIST: Style = Style {
    pretty: true,
    spaced: false,
    spaced_empty: false,
    sorted: false,
};

fn rand_str(rng: &mut StdRng, alphabet: &[u8], n: usize) -> String {
    (0..n)
        .map(|_| char::from(alphabet[rng.random_range(0..alphabet.len())]))
        .collect()
}

fn uuid(rng: &mut StdRng) -> String {
    let h = rand_str(rng, HEX, 32);
    format!(
        "{}-{}-4{}-a{}-{}",
        &h[0..8],
        &h[8..12],
        &h[13..16],
        &h[17..20],
        &h[20..32]
    )
}

/// A deterministic 10-character suffix for a catalogue entry, so a product keeps its id.
fn stable_suffix(name: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in name.bytes() {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    (0..10)
        .map(|i| char::from(ALNUM[((h >> (i * 6)) % ALNUM.len() as u64) as usize]))
        .collect()
}

/// Email-safe ASCII for a name part (`Élodie` → `elodie`, `van der Berg` → `vanderberg`).
fn ascii_fold(s: &str) -> String {
    s.chars()
        .filter_map(|c| match c {
            'É' | 'é' | 'è' => Some('e'),
            'ø' | 'ö' => Some('o'),
            'ü' => Some('u'),
            c if c.is_ascii_alphanumeric() => Some(c),
            _ => None,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::{Record, Splitter};

    /// Every concrete format (all but `Auto`).
    const FORMATS: [Format; 7] = {
        let all = Format::ALL;
        [all[1], all[2], all[3], all[4], all[5], all[6], all[7]]
    };

    fn split(format: Format, bytes: &[u8], chunk: usize) -> (Format, Vec<Record>) {
        let mut s = Splitter::new(format, 4 << 20, 0);
        let mut out = Vec::new();
        for c in bytes.chunks(chunk) {
            s.push(c, &mut out);
        }
        s.finish(&mut out);
        (s.format(), out)
    }

    #[test]
    fn deterministic_from_the_seed() {
        for f in FORMATS {
            let a = generate(f, 20, 7);
            let b = generate(f, 20, 7);
            assert_eq!(a.bytes, b.bytes);
            assert_eq!(a.sensitive, b.sensitive);
            assert_ne!(generate(f, 20, 8).bytes, a.bytes, "{f}: the seed must matter");
        }
    }

    #[test]
    fn the_splitter_round_trips_every_synthetic_format() {
        for f in FORMATS {
            let log = generate(f, 60, 42);
            let (detected, recs) = split(Format::Auto, &log.bytes, 3001);
            assert_eq!(detected, f, "detection");
            let joined: Vec<u8> = recs.iter().flat_map(|r| r.bytes.iter().copied()).collect();
            assert!(joined == log.bytes, "{f}: concatenation must equal the input");
            assert_eq!(recs.len(), log.records, "{f}: record count");
            assert!(recs.iter().all(|r| !r.fragment));
            assert_eq!(log.event_types.len(), 60);
            let (_, explicit) = split(f, &log.bytes, 1 << 20);
            assert_eq!(explicit, recs, "{f}: explicit format and chunking must not matter");
        }
    }

    #[test]
    fn injected_values_are_present_and_meaningful() {
        for f in FORMATS {
            let log = generate(f, 40, 3);
            let text = String::from_utf8_lossy(&log.bytes);
            assert!(
                log.sensitive.len() > 40,
                "{f}: only {} sensitive values",
                log.sensitive.len()
            );
            for v in &log.sensitive {
                assert!(v.chars().count() >= 4, "{f}: {v:?} too short for a substring check");
                assert!(text.contains(v.as_str()), "{f}: sensitive value missing from the log");
            }
            for id in &log.ids {
                assert!(text.contains(id.as_str()), "{f}: id {id} missing");
                assert!(
                    !log.sensitive
                        .iter()
                        .any(|v| v.contains(id.as_str()) && !outside(&text, id, v)),
                    "{f}: id {id} only inside a sensitive value"
                );
            }
            for k in &log.keep {
                assert!(!log.sensitive.iter().any(|v| v == k));
            }
        }
    }

    /// Whether `id` occurs in `text` somewhere not covered by an occurrence of `v`.
    fn outside(text: &str, id: &str, v: &str) -> bool {
        text.matches(id).count() > text.matches(v).count()
    }

    #[test]
    fn covers_the_personal_data_shapes() {
        let all: Vec<SynthLog> = FORMATS.iter().map(|f| generate(*f, 200, 11)).collect();
        let text: String = all
            .iter()
            .map(|l| String::from_utf8_lossy(&l.bytes).into_owned())
            .collect();
        for needle in [
            "\"customer_email\"",
            "\"receipt_email\"",
            "\"billing_details\"",
            "\"shipping\"",
            "\"client_secret\": \"pi_",
            "_secret_",
            "seti_",
            "sk_live_",
            "whsec_",
            "Stripe-Signature",
            "X-Hub-Signature-256",
            "X-Shopify-Hmac-Sha256",
            "svix-signature",
            "Authorization",
            "Bearer ",
            "_ga=GA1.",
            "X-Forwarded-For",
            "ip_address",
            "client_ip",
            "\"tr_sid\"",
            "utm_campaign=",
            "gclid=",
            "fbclid=",
            "\"phone\"",
            "\"line1\"",
            "\"postal_code\"",
            "\"fingerprint\"",
            "\"last4\"",
            "\"exp_year\"",
            "receipts/invoices/",
            "hosted_invoice_url",
            "eyJ",
            "Invoice for ",
            "Traceback",
            "%40",
        ] {
            assert!(text.contains(needle), "no {needle:?} in any format");
        }
    }

    #[test]
    fn corpus_streams_to_the_target_size() {
        for f in [Format::Req, Format::Django] {
            let mut out = Vec::new();
            let n = write_corpus(f, 300_000, 5, &mut out).unwrap_or(0);
            assert_eq!(n as usize, out.len());
            assert!(out.len() >= 300_000 && out.len() < 400_000, "{}", out.len());
            let (detected, recs) = split(Format::Auto, &out, 65536);
            assert_eq!(detected, f);
            assert!(recs.len() > 10);
        }
    }
}
