//! Secrets that announce themselves with a literal: Stripe client secrets (`_secret_`), API keys
//! (`sk_live_`, `whsec_`, `ghp_`, `AKIA`, …), `Bearer`/`Basic`/`token` credentials, JWTs (`eyJ`),
//! self-describing webhook signatures (`t=…,v1=…`, `sha256=…`, `v1,…`) and URLs that carry an
//! access token (`?token=`, `X-Amz-Signature=`, Stripe invoice/receipt links, `user:pass@host`).
//!
//! One Aho-Corasick pass finds the literals ("triggers"); a small hand-written scanner then
//! expands around each trigger. Every scanner remembers how far it looked, so a trigger inside a
//! span already examined is skipped and the work stays linear in the input.
//!
//! Must not: run a regex over the whole input, allocate per byte, or look further than a bounded
//! window to the left of a trigger.

use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind, packed};
use base64::Engine as _;

use super::{Detector, is_word, skip_escape};

/// What a trigger literal starts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    ClientSecret,
    Key(KeySpec),
    Scheme(Scheme),
    Jwt,
    /// `v1=`/`v0=` (Stripe, Slack).
    SigVersion,
    /// `sha1=`, `sha256=`, `sha512=` (GitHub and others).
    SigSha,
    /// `v1,` / `v1a,` (Standard Webhooks / svix).
    SigSvix,
    /// `://`: credentials in the authority, or a host whose links carry tokens.
    Url,
    /// `token=`, `sig=`, …: a query parameter that carries a credential.
    Param,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Scheme {
    Bearer,
    Basic,
    Token,
}

/// The body that must follow an API key prefix.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct KeySpec {
    class: Class,
    min: usize,
    /// The body has exactly `min` bytes (AWS, Google keys).
    exact: bool,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Class {
    Alnum,
    /// Alphanumerics and `_` (GitHub fine-grained tokens).
    Word,
    /// Alphanumerics and `-` (Slack).
    Dash,
    /// Alphanumerics, `-`, `_` (Google, OpenAI-style).
    Url,
    Upper,
    Hex,
    /// SendGrid `SG.<22>.<43>`: url-safe base64 with one inner `.`.
    Dotted,
}

impl Class {
    fn has(self, b: u8) -> bool {
        match self {
            Class::Alnum => b.is_ascii_alphanumeric(),
            Class::Word => b.is_ascii_alphanumeric() || b == b'_',
            Class::Dash => b.is_ascii_alphanumeric() || b == b'-',
            Class::Url => b.is_ascii_alphanumeric() || b == b'-' || b == b'_',
            Class::Upper => b.is_ascii_uppercase() || b.is_ascii_digit(),
            Class::Hex => b.is_ascii_hexdigit(),
            Class::Dotted => b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'),
        }
    }
}

const fn key(class: Class, min: usize) -> Kind {
    Kind::Key(KeySpec {
        class,
        min,
        exact: false,
    })
}

const fn key_exact(class: Class, min: usize) -> Kind {
    Kind::Key(KeySpec {
        class,
        min,
        exact: true,
    })
}

/// One trigger literal: `lead` lists the bytes one of which must stand right before the literal
/// (and starts the match, e.g. `s`/`r`/`p` before `k_live_`), `tail` the strings one of which must
/// follow it (and is part of the prefix, e.g. `b-` after `xox`). Leads and tails keep the
/// automaton small: Teddy, its SIMD prefilter, slows down with each literal added.
struct Trigger {
    literal: &'static str,
    kind: Kind,
    lead: &'static [u8],
    tail: &'static [&'static str],
}

const fn t(literal: &'static str, kind: Kind) -> Trigger {
    Trigger {
        literal,
        kind,
        lead: b"",
        tail: &[],
    }
}

const fn led(literal: &'static str, lead: &'static [u8], kind: Kind) -> Trigger {
    Trigger {
        literal,
        kind,
        lead,
        tail: &[],
    }
}

const fn tailed(literal: &'static str, tail: &'static [&'static str], kind: Kind) -> Trigger {
    Trigger {
        literal,
        kind,
        lead: b"",
        tail,
    }
}

/// Every trigger, found in one pass (one pass over 30 literals cost 1.5% fewer instructions than
/// two over 16 and 10). Each literal has at least three bytes, so the prefilter keys on
/// three-byte fingerprints (two-byte ones such as `gh` fire all over English text). Where a
/// literal of one kind could overlap another's (`AKIA` then `ASIC `), the second needs a lead
/// byte the first cannot end with, so the leftmost-first pass loses no trigger.
///
/// API keys and client secrets first. Publishable keys (`pk_live_`, `pk_test_`) are public by
/// design, but they name the account and nothing in a webhook log needs them: fail-closed, they
/// are scrubbed too.
const TRIGGERS: &[Trigger] = &[
    t("_secret_", Kind::ClientSecret),
    led("k_live_", b"srp", key(Class::Alnum, 8)),
    led("k_test_", b"srp", key(Class::Alnum, 8)),
    t("whsec_", key(Class::Alnum, 16)),
    t("ghp_", key(Class::Alnum, 20)),
    t("gho_", key(Class::Alnum, 20)),
    t("ghu_", key(Class::Alnum, 20)),
    t("ghs_", key(Class::Alnum, 20)),
    t("ghr_", key(Class::Alnum, 20)),
    t("github_pat_", key(Class::Word, 20)),
    t("glpat-", key(Class::Url, 20)),
    tailed("xox", &["b-", "p-", "a-", "r-", "s-", "e-"], key(Class::Dash, 10)),
    t("xapp-", key(Class::Dash, 10)),
    t("AKIA", key_exact(Class::Upper, 16)),
    t("ASIA", key_exact(Class::Upper, 16)),
    t("AIza", key_exact(Class::Url, 35)),
    t("sk-", key(Class::Url, 20)),
    t("SG.", key(Class::Dotted, 40)),
    tailed("shp", &["at_", "ss_", "ca_", "pa_"], key_exact(Class::Hex, 32)),
    t("npm_", key_exact(Class::Alnum, 36)),
    // Credentials, JWTs, svix signatures and absolute URLs.
    led("earer ", b"Bb", Kind::Scheme(Scheme::Bearer)),
    led("EARER ", b"B", Kind::Scheme(Scheme::Bearer)),
    led("asic ", b"Bb", Kind::Scheme(Scheme::Basic)),
    led("ASIC ", b"B", Kind::Scheme(Scheme::Basic)),
    led("oken ", b"Tt", Kind::Scheme(Scheme::Token)),
    t("eyJ", Kind::Jwt),
    t("v1,", Kind::SigSvix),
    t("v1a,", Kind::SigSvix),
    t("://", Kind::Url),
    t(":\\/\\/", Kind::Url),
];

/// Finds the trigger literals, leftmost first. `AhoCorasick` picks slim Teddy (8 buckets) as its
/// prefilter for these 30 literals, and on JSON text most 32-byte blocks then hold a false
/// candidate to verify; fat Teddy (16 buckets, AVX2) has about half as many and scans the
/// benchmark corpus 1.5 to 1.8 times as fast. Where the CPU has no AVX2, the automaton.
enum Finder {
    FatTeddy(packed::Searcher),
    Automaton(AhoCorasick),
}

impl Finder {
    /// Fat Teddy if `fat` and the CPU has AVX2, else the automaton.
    fn new(literals: &[&str], fat: bool) -> Finder {
        let teddy = fat.then(|| {
            packed::Config::new()
                .match_kind(packed::MatchKind::LeftmostFirst)
                .only_teddy_fat(Some(true))
                .builder()
                .extend(literals)
                .build()
        });
        match teddy.flatten() {
            Some(searcher) => Finder::FatTeddy(searcher),
            None => Finder::Automaton(
                AhoCorasickBuilder::new()
                    .match_kind(MatchKind::LeftmostFirst)
                    .build(literals)
                    .expect("the trigger literals are a valid, small automaton"),
            ),
        }
    }

    /// Each match as (literal index, start, end).
    fn find_iter<'a>(&'a self, text: &'a [u8]) -> impl Iterator<Item = (usize, usize, usize)> + 'a {
        let (teddy, automaton) = match self {
            Finder::FatTeddy(s) => (
                Some(s.find_iter(text).map(|m| (m.pattern().as_usize(), m.start(), m.end()))),
                None,
            ),
            Finder::Automaton(a) => (
                None,
                Some(a.find_iter(text).map(|m| (m.pattern().as_usize(), m.start(), m.end()))),
            ),
        };
        teddy.into_iter().flatten().chain(automaton.into_iter().flatten())
    }
}

static TRIGGER_FINDER: LazyLock<Finder> =
    LazyLock::new(|| Finder::new(&TRIGGERS.iter().map(|t| t.literal).collect::<Vec<_>>(), true));

/// Builds the finder now rather than on the first record.
pub(super) fn warm_up() {
    LazyLock::force(&TRIGGER_FINDER);
}

/// Hosts whose links carry an access token in the path (Stripe hosted invoices, receipts, file
/// links, checkout and customer-portal sessions) or are themselves a secret (chat webhooks).
const TOKEN_HOSTS: &[(&[u8], &[u8])] = &[
    (b"invoice.stripe.com", b"/"),
    (b"pay.stripe.com", b"/"),
    (b"files.stripe.com", b"/links/"),
    (b"checkout.stripe.com", b"/"),
    (b"billing.stripe.com", b"/"),
    (b"hooks.slack.com", b"/"),
    (b"discord.com", b"/api/webhooks/"),
    (b"discordapp.com", b"/api/webhooks/"),
];

/// Which detectors of this module are enabled.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Enabled {
    pub client_secret: bool,
    pub api_key: bool,
    pub bearer: bool,
    pub jwt: bool,
    pub signature: bool,
    pub token_url: bool,
}

impl Enabled {
    pub(super) fn any(self) -> bool {
        self.client_secret || self.api_key || self.bearer || self.jwt || self.signature || self.token_url
    }

    fn wants(self, kind: Kind) -> bool {
        match kind {
            Kind::ClientSecret => self.client_secret,
            Kind::Key(_) => self.api_key,
            Kind::Scheme(_) => self.bearer,
            Kind::Jwt => self.jwt,
            Kind::SigVersion | Kind::SigSha | Kind::SigSvix => self.signature,
            Kind::Url | Kind::Param => self.token_url,
        }
    }
}

const SLOTS: usize = 7;

/// Index into the per-scanner "examined up to" table.
fn slot(kind: Kind) -> usize {
    match kind {
        Kind::ClientSecret => 0,
        Kind::Key(_) => 1,
        Kind::Scheme(_) => 2,
        Kind::Jwt => 3,
        Kind::SigVersion | Kind::SigSha | Kind::SigSvix => 4,
        Kind::Url => 5,
        Kind::Param => 6,
    }
}

/// How far left of a trigger a URL is looked for.
const MAX_URL_LEFT: usize = 8 * 1024;
/// How long a URL match may be (the credential is near its start in any real URL).
const MAX_URL: usize = 64 * 1024;

pub(super) fn scan(text: &[u8], on: Enabled, emit: &mut impl FnMut(usize, usize, Detector)) {
    if on.client_secret || on.api_key || on.bearer || on.jwt || on.signature || on.token_url {
        scan_triggers(text, on, emit);
    }
    if on.signature || on.token_url {
        scan_assignments(text, on, emit);
    }
}

fn scan_triggers(text: &[u8], on: Enabled, emit: &mut impl FnMut(usize, usize, Detector)) {
    let mut examined = [0usize; SLOTS];
    for (literal, mut p, mut q) in TRIGGER_FINDER.find_iter(text) {
        let trigger = &TRIGGERS[literal];
        let kind = trigger.kind;
        let slot = slot(kind);
        if !on.wants(kind) || p < examined[slot] {
            continue;
        }
        if !trigger.lead.is_empty() {
            if p == 0 || !trigger.lead.contains(&text[p - 1]) {
                continue;
            }
            p -= 1;
        }
        if !trigger.tail.is_empty() {
            match trigger.tail.iter().find(|t| text[q..].starts_with(t.as_bytes())) {
                Some(t) => q += t.len(),
                None => continue,
            }
        }
        let (found, until) = match kind {
            Kind::ClientSecret => client_secret(text, p, q),
            Kind::Key(spec) => api_key(text, p, q, spec),
            Kind::Scheme(scheme) => credential(text, p, q, scheme),
            Kind::Jwt => jwt(text, p),
            Kind::SigSvix => sig_svix(text, p, q),
            Kind::Url => url_authority(text, p, q),
            Kind::SigVersion | Kind::SigSha | Kind::Param => (None, q),
        };
        examined[slot] = examined[slot].max(until);
        if let Some((s, e, d)) = found {
            emit(s, e, d);
        }
    }
}

/// Query parameters that carry a credential, by the end of their name (case-insensitive):
/// `access_token`, `X-Amz-Signature`, `sig`, `api_key`, `client_secret`, `password`, …
const SECRET_PARAMS: &[&[u8]] = &[
    b"token",
    b"sig",
    b"signature",
    b"key",
    b"secret",
    b"password",
    b"passwd",
    b"credential",
];

/// `name=value` assignments, found by their `=`: webhook signatures (`v1=`, `sha256=`) and
/// credential-carrying query parameters.
fn scan_assignments(text: &[u8], on: Enabled, emit: &mut impl FnMut(usize, usize, Detector)) {
    let mut examined = [0usize; SLOTS];
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'=', &text[from..]) {
        let eq = from + off;
        from = eq + 1;
        let n = (eq.saturating_sub(64)..eq)
            .rev()
            .take_while(|&i| text[i].is_ascii_alphanumeric() || matches!(text[i], b'_' | b'-' | b'.'))
            .last();
        let Some(n) = n else { continue };
        let name = &text[n..eq];
        let kind = match name {
            [b'v', d] if d.is_ascii_digit() => Kind::SigVersion,
            _ if name.eq_ignore_ascii_case(b"sha1")
                || name.eq_ignore_ascii_case(b"sha256")
                || name.eq_ignore_ascii_case(b"sha512") =>
            {
                Kind::SigSha
            }
            _ if SECRET_PARAMS
                .iter()
                .any(|k| name.len() >= k.len() && name[name.len() - k.len()..].eq_ignore_ascii_case(k)) =>
            {
                Kind::Param
            }
            _ => continue,
        };
        let slot = slot(kind);
        if !on.wants(kind) || n < examined[slot] {
            continue;
        }
        let (found, until) = match kind {
            Kind::SigVersion => sig_version(text, n, eq + 1),
            Kind::SigSha => sig_sha(text, n, eq + 1),
            _ => url_param(text, n, eq, examined[slot]),
        };
        examined[slot] = examined[slot].max(until);
        if let Some((s, e, d)) = found {
            emit(s, e, d);
        }
    }
}

type Found = (Option<(usize, usize, Detector)>, usize);

fn run(text: &[u8], from: usize, class: impl Fn(u8) -> bool, max: usize) -> usize {
    let mut e = from;
    while e < text.len() && e - from < max && class(text[e]) {
        e += 1;
    }
    e
}

fn starts_clean(text: &[u8], p: usize) -> bool {
    p == 0 || !is_word(text[p - 1])
}

/// `pi_…_secret_…`, `seti_…_secret_…`, `pm_`, `src_`, `cs_` (also `cs_live_…_secret_…`).
fn client_secret(text: &[u8], p: usize, q: usize) -> Found {
    let e = run(text, q, |b| b.is_ascii_alphanumeric(), 256);
    let miss = (None, e.max(q));
    if e - q < 8 {
        return miss;
    }
    let body = (p.saturating_sub(64)..p)
        .rev()
        .take_while(|&i| text[i].is_ascii_alphanumeric())
        .last();
    let Some(mut b) = body else { return miss };
    for _ in 0..2 {
        if b < 2 || text[b - 1] != b'_' {
            return miss;
        }
        let us = b - 1;
        let s = (us.saturating_sub(8)..us)
            .rev()
            .take_while(|&i| text[i].is_ascii_lowercase())
            .last();
        let Some(s) = s else { return miss };
        let prefix = &text[s..us];
        if matches!(prefix, b"live" | b"test") {
            b = s;
            continue;
        }
        if matches!(prefix, b"pi" | b"seti" | b"pm" | b"src" | b"cs") && starts_clean(text, s) {
            return (Some((s, e, Detector::StripeClientSecret)), e);
        }
        return miss;
    }
    miss
}

fn api_key(text: &[u8], p: usize, q: usize, spec: KeySpec) -> Found {
    let e = run(text, q, |b| spec.class.has(b), 512);
    let mut e2 = e;
    // Trailing dots are punctuation, not SendGrid key bytes.
    while spec.class == Class::Dotted && e2 > q && text[e2 - 1] == b'.' {
        e2 -= 1;
    }
    let n = e2 - q;
    let sized = if spec.exact { n == spec.min } else { n >= spec.min };
    let clean_end = e >= text.len() || !is_word(text[e]);
    if sized && clean_end && starts_clean(text, p) {
        (Some((p, e2, Detector::ApiKey)), e)
    } else {
        (None, e)
    }
}

fn token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~' | b'+' | b'/' | b'=')
}

/// The credential after `Bearer `, `Basic ` or `token ` (the match is the credential only).
fn credential(text: &[u8], p: usize, q: usize, scheme: Scheme) -> Found {
    let s = run(text, q, |b| b == b' ', 16);
    let mut e = run(text, s, token_byte, 16 * 1024);
    let until = e;
    while e > s && matches!(text[e - 1], b'.' | b'/') {
        e -= 1;
    }
    let token = &text[s..e];
    if !starts_clean(text, p) || token.is_empty() {
        return (None, until.max(q));
    }
    let digit = token.iter().any(u8::is_ascii_digit);
    let letter = token.iter().any(u8::is_ascii_alphabetic);
    let symbol = token.iter().any(|b| !b.is_ascii_alphanumeric());
    let ok = match scheme {
        Scheme::Bearer => token.len() >= 8 && (digit || symbol || token.len() >= 20),
        // A Basic credential decodes to `user:password`; "Basic plan" does not.
        Scheme::Basic => token.len() >= 4 && basic_decodes(token),
        Scheme::Token => token.len() >= 16 && digit && letter,
    };
    if ok {
        (Some((s, e, Detector::BearerToken)), until)
    } else {
        (None, until.max(q))
    }
}

fn basic_decodes(token: &[u8]) -> bool {
    if token.len() > 2048 || !token.len().is_multiple_of(4) {
        return false;
    }
    let mut buf = [0u8; 1536];
    match base64::engine::general_purpose::STANDARD.decode_slice(token, &mut buf) {
        Ok(n) => buf[..n].contains(&b':'),
        Err(_) => false,
    }
}

fn b64url(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// `eyJ<header>.<payload>.<signature>` (and the five segments of an encrypted JWT).
fn jwt(text: &[u8], p: usize) -> Found {
    let e1 = run(text, p, b64url, 64 * 1024);
    if e1 - p < 10 || !(p == 0 || !b64url(text[p - 1]) && text[p - 1] != b'.') {
        return (None, e1);
    }
    let mut e = e1;
    let mut segments = 1;
    while segments < 5 && text.get(e) == Some(&b'.') {
        let next = run(text, e + 1, b64url, 64 * 1024);
        // The third segment (signature) may be empty for unsigned tokens; the payload may not.
        if next == e + 1 && segments != 2 {
            break;
        }
        if next - (e + 1) < 2 && segments == 1 {
            break;
        }
        e = next;
        segments += 1;
    }
    if segments >= 3 {
        (Some((p, e, Detector::Jwt)), e)
    } else {
        (None, e)
    }
}

fn hex_run(text: &[u8], from: usize) -> usize {
    let end = text.len().min(from.saturating_add(1024));
    text.get(from..end).map_or(from, |t| {
        from + t.iter().position(|b| !b.is_ascii_hexdigit()).unwrap_or(t.len())
    })
}

/// `t=<unix>,v1=<hex>,v0=<hex>` (Stripe) or `v0=<hex>` (Slack); the match includes `t=`.
fn sig_version(text: &[u8], p: usize, q: usize) -> Found {
    let h = hex_run(text, q);
    if h - q < 32 || (h < text.len() && is_word(text[h])) {
        return (None, h);
    }
    let mut s = p;
    if p > 0 && text[p - 1] == b',' {
        let comma = p - 1;
        let d = (comma.saturating_sub(12)..comma)
            .rev()
            .take_while(|&i| text[i].is_ascii_digit())
            .last();
        if let Some(d) = d
            && d >= 2
            && &text[d - 2..d] == b"t="
            && starts_clean(text, d - 2)
        {
            s = d - 2;
        }
    }
    if s == p && !starts_clean(text, p) {
        return (None, h);
    }
    let mut e = h;
    // Further `,vN=<hex>` entries of the same header.
    loop {
        let t = &text[e..];
        if t.len() > 4 && t[0] == b',' && t[1] == b'v' && t[2].is_ascii_digit() && t[3] == b'=' {
            let h2 = hex_run(text, e + 4);
            if h2 - (e + 4) >= 32 {
                e = h2;
                continue;
            }
        }
        break;
    }
    (Some((s, e, Detector::WebhookSignature)), e)
}

/// `sha256=<64 hex>`, `sha1=<40 hex>` (GitHub `X-Hub-Signature`, and many others).
fn sig_sha(text: &[u8], p: usize, q: usize) -> Found {
    let h = hex_run(text, q);
    let ok = h - q >= 40 && starts_clean(text, p) && (h >= text.len() || !is_word(text[h]));
    (ok.then_some((p, h, Detector::WebhookSignature)), h)
}

fn b64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')
}

/// `v1,<base64>` (Standard Webhooks, svix), a space-separated list of them.
fn sig_svix(text: &[u8], p: usize, q: usize) -> Found {
    let b = run(text, q, b64, 1024);
    if b - q < 32 || !starts_clean(text, p) {
        return (None, b);
    }
    let mut e = b;
    loop {
        let t = &text[e..];
        let skip = if t.starts_with(b" v1,") {
            4
        } else if t.starts_with(b" v1a,") {
            5
        } else {
            break;
        };
        let b2 = run(text, e + skip, b64, 1024);
        if b2 - (e + skip) < 32 {
            break;
        }
        e = b2;
    }
    (Some((p, e, Detector::WebhookSignature)), e)
}

/// Bytes a URL may contain in logs (`\` included for JSON's `\/`).
fn url_byte(b: u8) -> bool {
    (0x21..0x7f).contains(&b) && !matches!(b, b'"' | b'\'' | b'<' | b'>' | b'`' | b'{' | b'}' | b'|' | b'^')
}

fn url_end(text: &[u8], from: usize, start: usize) -> usize {
    let mut e = run(text, from, url_byte, MAX_URL.saturating_sub(from - start));
    while e > from
        && matches!(
            text[e - 1],
            b'.' | b',' | b';' | b':' | b'!' | b')' | b']' | b'\\' | b'?'
        )
    {
        e -= 1;
    }
    e
}

/// `scheme://` (or JSON-escaped `scheme:\/\/`): a URL with `user:password@` in its authority, or on a token-carrying host.
fn url_authority(text: &[u8], p: usize, q: usize) -> Found {
    let scheme = (p.saturating_sub(16)..p)
        .rev()
        .take_while(|&i| text[i].is_ascii_alphanumeric() || matches!(text[i], b'+' | b'.' | b'-'))
        .last();
    let Some(s) = scheme else { return (None, q) };
    let s = skip_escape(text, s, p);
    if s >= p || !text[s].is_ascii_alphabetic() {
        return (None, q);
    }
    let e = url_end(text, q, s);
    let url = &text[q..e];
    let auth_end = url
        .iter()
        .position(|&b| matches!(b, b'/' | b'?' | b'#' | b'\\'))
        .unwrap_or(url.len());
    let authority = &url[..auth_end];
    let path = &url[auth_end..];
    let (userinfo, host) = match memchr::memrchr(b'@', authority) {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let host = host.split(|&b| b == b':').next().unwrap_or(host);
    let credentials = userinfo.is_some_and(|u| u.contains(&b':'));
    let token_host = TOKEN_HOSTS.iter().any(|(h, prefix)| {
        host.eq_ignore_ascii_case(h) && path.len() > prefix.len() && unescaped_starts_with(path, prefix)
    });
    if credentials || token_host {
        (Some((s, e, Detector::TokenUrl)), e)
    } else {
        (None, e)
    }
}

/// `path.starts_with(prefix)`, also when the path is JSON-escaped (`\/links\/`).
fn unescaped_starts_with(path: &[u8], prefix: &[u8]) -> bool {
    let mut it = path.iter().copied().filter(|&b| b != b'\\');
    prefix.iter().all(|&c| it.next() == Some(c))
}

/// `?token=`, `&access_token=`, `&X-Amz-Signature=`, `?key=`, …: the URL that carries it.
/// `n` is the start of the parameter name, `eq` its `=`.
fn url_param(text: &[u8], n: usize, eq: usize, floor: usize) -> Found {
    let q = eq + 1;
    // JSON escapes `&` as `\u0026`; the name scan then started at its `u`.
    let json_amp =
        n > 0 && text[n - 1] == b'\\' && text[n..eq].len() > 5 && text[n..n + 5].eq_ignore_ascii_case(b"u0026");
    let n = if json_amp { n + 5 } else { n };
    let delimited = json_amp || n > 0 && matches!(text[n - 1], b'?' | b'&' | b';' | b'#');
    let has_value = text.get(q).is_some_and(|&b| url_byte(b) && b != b'&');
    if !delimited || !has_value {
        return (None, q);
    }
    let floor = floor.max(n.saturating_sub(MAX_URL_LEFT));
    let s = (floor..eq)
        .rev()
        .take_while(|&i| url_byte(text[i]))
        .last()
        .unwrap_or(eq);
    let head = &text[s..n];
    // Start at the scheme of an absolute URL, else at the path of a relative one, so that a
    // `url=` key before it survives.
    let s = match memchr::memmem::find(head, b"://") {
        Some(k) => {
            let k = s + k;
            (k.saturating_sub(16)..k)
                .rev()
                .take_while(|&i| text[i].is_ascii_alphabetic())
                .last()
                .unwrap_or(k)
        }
        None => memchr::memchr(b'/', head).map_or(s, |k| s + k),
    };
    let e = url_end(text, q, s);
    (Some((s, e, Detector::TokenUrl)), e)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 2000, failure_persistence: None, ..Default::default() })]

        /// Fat Teddy finds the triggers the automaton finds, leftmost first, overlaps included.
        #[test]
        fn fat_teddy_finds_what_the_automaton_finds(
            picks in proptest::collection::vec((0usize..TRIGGERS.len() + 8, 0usize..6), 0..40),
        ) {
            let filler = ["", " ", "x", "_", "k", "ghp"];
            let mut text = String::new();
            for (pick, fill) in picks {
                text.push_str(TRIGGERS.get(pick).map_or("ab", |t| t.literal));
                text.push_str(filler[fill]);
            }
            let literals: Vec<_> = TRIGGERS.iter().map(|t| t.literal).collect();
            let fat = Finder::new(&literals, true);
            let want: Vec<_> = Finder::new(&literals, false).find_iter(text.as_bytes()).collect();
            let got: Vec<_> = fat.find_iter(text.as_bytes()).collect();
            proptest::prop_assert_eq!(got, want);
        }
    }

    #[test]
    #[cfg(target_arch = "x86_64")]
    fn fat_teddy_is_used_where_the_cpu_has_avx2() {
        let literals: Vec<_> = TRIGGERS.iter().map(|t| t.literal).collect();
        let fat = Finder::new(&literals, true);
        assert_eq!(
            matches!(fat, Finder::FatTeddy(_)),
            std::is_x86_feature_detected!("avx2")
        );
    }
}
