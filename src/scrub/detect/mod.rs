//! Built-in detectors: find sensitive values by their shape, in free text or in one value.
//!
//! Every detector is a hand-written scanner that jumps to a trigger (memchr on `@`, `.`, `:`,
//! one Aho-Corasick pass over secret prefixes, a digit-run scan for phones and cards) and expands
//! around it; `std::net` parsers, Luhn and base64 validate the few candidates. `find_all` runs the
//! enabled scanners, then sorts and resolves overlaps in place in the caller's vector.
//!
//! Code map: `email` (emails), `ip` (IPv4, IPv6), `number` (phones, cards), `prefixed` (client
//! secrets, API keys, bearer credentials, JWTs, webhook signatures, token URLs), `ids`
//! (`find_ids`), `name` (`looks_like_person_name`).
//!
//! Must not: know about keys, rules or actions (that is the engine), or allocate per byte of
//! input; detectors run on every byte scrubd reads. Never panic, on any bytes.

mod email;
mod ids;
mod ip;
mod name;
mod number;
mod prefixed;

/// A built-in detector, named in rules as `detector = "NAME"`. The order is the tie-break when
/// two detectors match the same span (the first wins).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    /// `ada@example.com`, also percent-encoded (`ada%40example.com`).
    Email,
    /// Dotted quad, octets validated; a `:port` is not part of the match.
    Ipv4,
    /// Any notation (full, `::`, IPv4-mapped, upper case); brackets and port are not part of the
    /// match, a zone index (`%eth0`) is.
    Ipv6,
    /// `pi_…_secret_…`, `seti_…_secret_…`, `pm_`/`src_`/`cs_` client secrets (the whole value).
    StripeClientSecret,
    /// Stripe `sk_`/`rk_`/`pk_` live and test keys, `whsec_`; GitHub `ghp_`…, `github_pat_`; GitLab
    /// `glpat-`; Slack `xox?-`, `xapp-`; AWS `AKIA`/`ASIA`; Google `AIza`; `sk-` (OpenAI-style);
    /// SendGrid `SG.`; Shopify `shpat_`…; npm `npm_`.
    ApiKey,
    /// The credential after `Bearer `, `Basic ` (only if it decodes to `user:password`) or
    /// `token `; the scheme word is not part of the match.
    BearerToken,
    /// `eyJ….eyJ….sig` (three or five base64url segments).
    Jwt,
    /// Self-describing signatures: Stripe `t=…,v1=…,v0=…` (from `t=`), Slack `v0=…`, GitHub
    /// `sha256=…`/`sha1=…`, Standard Webhooks `v1,…` lists. Base64 HMACs without a marker
    /// (Shopify, Twilio, PayPal) are recognisable only by header name: that is the engine's job.
    WebhookSignature,
    /// A URL carrying a credential: `user:pass@` in its authority, a credential query parameter
    /// (`token`, `access_token`, `sig`, `signature`, `X-Amz-Signature`, `key`, `secret`, …), or a
    /// link on a host whose paths are tokens (Stripe invoices, receipts, file links, checkout and
    /// portal sessions; Slack and Discord webhooks). The match is the whole URL.
    TokenUrl,
    /// `+` numbers (E.164, with or without separators), North-American `(415) 555-0123` shapes,
    /// national numbers starting with `0` in separated groups.
    Phone,
    /// 13–19 digits, contiguous or in space/dash groups, Luhn-valid, with a known issuer prefix.
    CardNumber,
}

impl Detector {
    /// Every detector, in declaration order.
    pub const ALL: &'static [Detector] = &[
        Detector::Email,
        Detector::Ipv4,
        Detector::Ipv6,
        Detector::StripeClientSecret,
        Detector::ApiKey,
        Detector::BearerToken,
        Detector::Jwt,
        Detector::WebhookSignature,
        Detector::TokenUrl,
        Detector::Phone,
        Detector::CardNumber,
    ];

    /// The name used in rules (`email`, `ipv4`, `stripe_client_secret`, …).
    pub fn name(self) -> &'static str {
        match self {
            Detector::Email => "email",
            Detector::Ipv4 => "ipv4",
            Detector::Ipv6 => "ipv6",
            Detector::StripeClientSecret => "stripe_client_secret",
            Detector::ApiKey => "api_key",
            Detector::BearerToken => "bearer_token",
            Detector::Jwt => "jwt",
            Detector::WebhookSignature => "webhook_signature",
            Detector::TokenUrl => "token_url",
            Detector::Phone => "phone",
            Detector::CardNumber => "card_number",
        }
    }

    /// The detector a rule names, if it exists.
    pub fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL.iter().copied().find(|d| d.name() == name)
    }
}

/// One sensitive span found in text: `text[start..end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    /// First byte of the match.
    pub start: usize,
    /// One past the last byte of the match.
    pub end: usize,
    /// The detector that found it.
    pub detector: Detector,
}

/// A compiled set of enabled detectors, built once and shared between threads.
///
/// Cheap to build and to share: the trigger automaton is process-wide; a `Detectors` is a bit set.
#[derive(Clone, Debug)]
pub struct Detectors {
    /// Bit `1 << (detector as u32)` per enabled detector.
    enabled: u32,
}

impl Detectors {
    /// A set running the `enabled` detectors (duplicates are harmless).
    pub fn new(enabled: &[Detector]) -> Detectors {
        prefixed::warm_up();
        Detectors {
            enabled: enabled.iter().fold(0, |acc, &d| acc | bit(d)),
        }
    }

    fn has(&self, d: Detector) -> bool {
        self.enabled & bit(d) != 0
    }

    /// Runs every enabled scanner over `text`: those that start from a byte (`@`, `.`, `:`, a
    /// digit), then those that start from a trigger literal. Matches come in no particular order.
    fn scan(&self, text: &[u8], emit: &mut impl FnMut(usize, usize, Detector)) {
        if self.has(Detector::Email) {
            email::scan(text, emit);
        }
        if self.has(Detector::Ipv4) {
            ip::scan_ipv4(text, emit);
        }
        if self.has(Detector::Ipv6) {
            ip::scan_ipv6(text, emit);
        }
        let (phone, card) = (self.has(Detector::Phone), self.has(Detector::CardNumber));
        if phone || card {
            number::scan(text, phone, card, emit);
        }
        self.scan_prefixed(text, emit);
    }

    /// The scanners that start from a trigger literal (`sk_live_`, `Bearer`, `v1=`…), found by an
    /// automaton whose start-up costs more than a short string.
    fn scan_prefixed(&self, text: &[u8], emit: &mut impl FnMut(usize, usize, Detector)) {
        let on = prefixed::Enabled {
            client_secret: self.has(Detector::StripeClientSecret),
            api_key: self.has(Detector::ApiKey),
            bearer: self.has(Detector::BearerToken),
            jwt: self.has(Detector::Jwt),
            signature: self.has(Detector::WebhookSignature),
            token_url: self.has(Detector::TokenUrl),
        };
        if on.any() {
            prefixed::scan(text, on, emit);
        }
    }

    /// Appends to `out` every match of the enabled detectors in `text`, sorted by start and
    /// non-overlapping (on overlap the longer match wins). `text` may be any bytes (invalid UTF-8,
    /// binary); matches never split a UTF-8 sequence.
    ///
    /// When two matches overlap without one containing the other, the longer one's detector names
    /// the union of both spans: no byte either detector flagged is left out (fail-closed).
    pub fn find_all(&self, text: &[u8], out: &mut Vec<Match>) {
        let base = out.len();
        self.scan(text, &mut |s, e, d| push_match(out, 0, text.len(), s, e, d));
        resolve(out, base);
    }

    /// [`Detectors::find_all`] inside `zones` (ranges of `text`, sorted by start) only: what lies
    /// between zones is never scanned, and matches there are not wanted.
    ///
    /// The zones are laid end to end with a `"` before and after each (touching or overlapping
    /// zones as one) and every scanner runs once over them: one pass per scanner and record,
    /// instead of a scanner's start-up per zone, most of them a few bytes long.
    ///
    /// Each zone starts and ends at a zone's edge (inside a string's quotes, at a structure's
    /// bracket or the record's edge), where no match or look-behind can continue; the `"` between
    /// two zones is such an edge. So this finds inside the zones what a scan of the whole text
    /// finds. Offsets are into `text`; sorted by start and non-overlapping, as from `find_all`.
    pub fn find_in_zones(&self, text: &[u8], zones: &[(usize, usize)], out: &mut Vec<Match>) {
        let base = out.len();
        /// The zones end to end, and where each lies: (offset in `joined`, range of `text`).
        type Joined = (Vec<u8>, Vec<(usize, usize, usize)>);
        thread_local! {
            static JOINED: std::cell::RefCell<Joined> = Default::default();
        }
        JOINED.with(|j| {
            let (joined, at) = &mut *j.borrow_mut();
            joined.clear();
            at.clear();
            joined.push(b'"');
            let mut i = 0;
            while i < zones.len() {
                let (zs, mut ze) = zones[i];
                i += 1;
                while i < zones.len() && zones[i].0 <= ze {
                    ze = ze.max(zones[i].1);
                    i += 1;
                }
                at.push((joined.len(), zs, ze));
                joined.extend_from_slice(&text[zs..ze]);
                joined.push(b'"');
            }
            self.scan(joined, &mut |s, e, d| {
                // The zone the match starts in; one that runs past its zone's end is dropped, as a
                // scan of the zone alone would not have seen it.
                let Some(&(js, zs, ze)) = at.get(at.partition_point(|&(js, ..)| js <= s).wrapping_sub(1)) else {
                    return;
                };
                push_match(out, zs, ze, s - js, e.saturating_sub(js), d);
            });
        });
        resolve(out, base);
    }

    /// The detector that matches the whole of `value` (a JSON string value, a header value), if
    /// any. Cheaper than `find_all` when the value is known to be one token.
    ///
    /// ASCII whitespace around the value is ignored; a bearer credential may be preceded by its
    /// scheme (`Bearer abc…` is a `bearer_token`). When several detectors match the whole value, the
    /// first in `Detector::ALL` order wins.
    pub fn classify(&self, value: &[u8]) -> Option<Detector> {
        let s = value.iter().position(|b| !b.is_ascii_whitespace())?;
        let e = value.iter().rposition(|b| !b.is_ascii_whitespace())? + 1;
        let mut best: Option<Detector> = None;
        self.scan(value, &mut |start, end, detector| {
            let whole = end == e
                && (start == s
                    || detector == Detector::BearerToken
                        && value[s..start].iter().all(|b| b.is_ascii_alphabetic() || *b == b' ')
                        && value[start - 1] == b' ');
            if whole && best.is_none_or(|b| detector < b) {
                best = Some(detector);
            }
        });
        best
    }
}

/// Appends the match `s..e` of a scan of `text[from..to]`, as offsets into `text`; drops a
/// scanner's empty or out-of-range span.
fn push_match(out: &mut Vec<Match>, from: usize, to: usize, s: usize, e: usize, detector: Detector) {
    if s < e && from + e <= to {
        out.push(Match {
            start: from + s,
            end: from + e,
            detector,
        });
    }
}

fn bit(d: Detector) -> u32 {
    1 << (d as u32)
}

/// Sorts `out[base..]` by start and makes it non-overlapping, in place: on overlap the longer
/// match's detector is kept and its span grows to cover both (on equal lengths, the first).
fn resolve(out: &mut Vec<Match>, base: usize) {
    let tail = &mut out[base..];
    // Equal spans: the detector first in `Detector::ALL` wins, so the outcome is deterministic
    // and the more specific detector (`api_key`) beats the generic one (`bearer_token`).
    tail.sort_unstable_by(|a, b| {
        a.start
            .cmp(&b.start)
            .then(b.end.cmp(&a.end))
            .then(a.detector.cmp(&b.detector))
    });
    let mut w = base;
    for r in base..out.len() {
        let m = out[r];
        if w > base && m.start < out[w - 1].end {
            let last = &mut out[w - 1];
            if m.end - m.start > last.end - last.start {
                last.detector = m.detector;
            }
            last.end = last.end.max(m.end);
            continue;
        }
        out[w] = m;
        w += 1;
    }
    out.truncate(w);
}

/// Whether `b` is part of a word (ASCII letter, digit, `_`): a match may not start or end inside
/// one.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Moves a match start `s` (found by expanding left over letters and digits) past the rest of a
/// JSON/C escape it would otherwise cut (`\u003cada@…`, `\nada@…`), never beyond `limit`.
fn skip_escape(text: &[u8], s: usize, limit: usize) -> usize {
    let backslashes = text[..s].iter().rev().take_while(|&&b| b == b'\\').count();
    // Only an ASCII byte can be escaped; stepping over a non-ASCII one would split a character.
    if backslashes % 2 == 0 || s >= limit || !text[s].is_ascii() {
        return s;
    }
    let unicode = text[s] == b'u' && s + 5 <= limit && text[s + 1..s + 5].iter().all(u8::is_ascii_hexdigit);
    if unicode { s + 5 } else { s + 1 }
}

/// Whether `value` has the shape of a person's name ("Ada Lovelace", "ada l", "O'Brien-Smith",
/// "José García"), as opposed to a product, plan, repository or order name ("Pro Plan",
/// "acme/widgets", "Order #1234", "1 × Monthly Plan (at $25.00 / month)").
///
/// The heuristic and its limits are described in the `name` module: word shapes plus a list of
/// product, plan and company words. The engine adds context before trusting it.
pub fn looks_like_person_name(value: &str) -> bool {
    name::looks_like_person_name(value)
}

/// Appends to `out` the object ids in `text` (`evt_…`, `cus_…`, `sub_…`, `in_…`, `pi_…`, `ch_…`,
/// `req_…`, … and other providers' ids), as byte ranges, in order of appearance.
///
/// UUIDs are ids too (GitHub delivery ids, request ids). A client secret `pi_X_secret_Y` yields
/// only `pi_X`: an id range never contains a secret.
pub fn find_ids(text: &[u8], out: &mut Vec<std::ops::Range<usize>>) {
    ids::find(text, out);
}

#[cfg(test)]
mod tests {
    use super::*;
    use Detector::*;

    /// Runs every detector over `text` and compares the matched substrings with `expect`.
    #[track_caller]
    fn check(text: &str, expect: &[(Detector, &str)]) {
        let detectors = Detectors::new(Detector::ALL);
        let mut out = Vec::new();
        detectors.find_all(text.as_bytes(), &mut out);
        let got: Vec<(Detector, &str)> = out.iter().map(|m| (m.detector, &text[m.start..m.end])).collect();
        assert_eq!(got, expect, "in {text:?}");
    }

    #[test]
    fn emails() {
        check("contact ada@example.com now", &[(Email, "ada@example.com")]);
        check(
            r#""email": "Ada.Lovelace+tag@mail.example.co.uk""#,
            &[(Email, "Ada.Lovelace+tag@mail.example.co.uk")],
        );
        check("/cb?email=ada%40example.com&x=1", &[(Email, "ada%40example.com")]);
        check("ada%2Bx%40example.org", &[(Email, "ada%2Bx%40example.org")]);
        check("josé@exämple.com.", &[(Email, "josé@exämple.com")]);
        check(r#""\u003cada@example.com\u003e""#, &[(Email, "ada@example.com")]);
        check(r#"line\nada@example.com"#, &[(Email, "ada@example.com")]);
        check("<ada@example.com>", &[(Email, "ada@example.com")]);
        // Regression: the local-part length cap cut a UTF-8 sequence.
        let long = format!("{}@example.com", "€".repeat(50));
        check(&long, &[(Email, &format!("{}@example.com", "€".repeat(42)))]);
        // Regression: a backslash before a non-ASCII local part split the character.
        check("\\ወ@example.com", &[(Email, "ወ@example.com")]);
        for no in [
            "@property",
            "user@localhost",
            "icon@2x.png",
            "a @ b.com",
            "x@y",
            "[email protected]",
            "ada@.com",
        ] {
            check(no, &[]);
        }
    }

    #[test]
    fn ipv4() {
        check("from 203.0.113.36 via", &[(Ipv4, "203.0.113.36")]);
        check(
            r#""X-Forwarded-For": "203.0.113.7, 198.51.100.22""#,
            &[(Ipv4, "203.0.113.7"), (Ipv4, "198.51.100.22")],
        );
        check("1.2.3.4:443", &[(Ipv4, "1.2.3.4")]);
        check("ip=10.0.0.1.", &[(Ipv4, "10.0.0.1")]);
        check("[203.0.113.9]", &[(Ipv4, "203.0.113.9")]);
        let no = [
            "1.2.3.4.5",
            "v1.2.3.4",
            "version 1.2.3.4.5 released",
            "256.1.1.1",
            "01.2.3.4",
            "1.2.3",
            "2024-09-30.acacia",
            "10:00:28,835",
            "$25.00",
            "12.34.56.789",
            "a1.2.3.4",
        ];
        for no in no {
            check(no, &[]);
        }
    }

    #[test]
    fn ipv6() {
        let yes = [
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "2001:db8::1",
            "2001:DB8::FF00:42:8329",
            "::ffff:192.0.2.1",
            "fe80::1",
            "2001:db8::",
            "64:ff9b::198.51.100.1",
        ];
        for ip in yes {
            check(&format!("addr {ip} end"), &[(Ipv6, ip)]);
            check(&format!(r#""ip":"{ip}""#), &[(Ipv6, ip)]);
        }
        check("[2001:db8::1]:443", &[(Ipv6, "2001:db8::1")]);
        check("fe80::1%eth0 up", &[(Ipv6, "fe80::1%eth0")]);
        check("for=\"[2001:db8:cafe::17]\"", &[(Ipv6, "2001:db8:cafe::17")]);
        check("ip:2001:db8::2", &[(Ipv6, "2001:db8::2")]);
        let no = [
            "10:00:28",
            "04:07:22,426",
            "2024-12-04T04:07:22.426Z",
            "00:1a:2b:3c:4d:5e",
            r#"{"key": "value", "a":"b"}"#,
            "::",
            "a::b",
            "x[::2]",
            "std::vec::Vec",
            "ratio 16:9",
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
            "62e4d70143930c12d774f436b79df644",
            "::1",
        ];
        for no in no {
            check(no, &[]);
        }
    }

    #[test]
    fn stripe_client_secrets() {
        check(
            r#""client_secret": "pi_3ABCdefGHIjkl012_secret_XyZ012abcDEF345ghiJKL""#,
            &[(StripeClientSecret, "pi_3ABCdefGHIjkl012_secret_XyZ012abcDEF345ghiJKL")],
        );
        check(
            "seti_1AbCdEfGhIjKlMnO_secret_AbCdEfGhIjKlMnOpQrStUv",
            &[(
                StripeClientSecret,
                "seti_1AbCdEfGhIjKlMnO_secret_AbCdEfGhIjKlMnOpQrStUv",
            )],
        );
        check(
            "src_client_secret_AbCdEfGhIjKlMnOp",
            &[(StripeClientSecret, "src_client_secret_AbCdEfGhIjKlMnOp")],
        );
        check(
            "cs_live_a1B2c3D4e5_secret_Zz9Yy8Xx7W",
            &[(StripeClientSecret, "cs_live_a1B2c3D4e5_secret_Zz9Yy8Xx7W")],
        );
        for no in [
            "pi_3ABCdefGHIjkl012",
            "client_secret_key",
            "my_secret_abc",
            "xpi_3ABC_secret_AbCdEfGhIj",
        ] {
            check(no, &[]);
        }
    }

    #[test]
    fn api_keys() {
        let yes = [
            "sk_live_51AbCdEfGhIjKlMnOpQrStUv",
            "sk_test_4eC39HqLyjWDarjtT1zdp7dc",
            "rk_live_AbCdEfGh12345678",
            "rk_test_AbCdEfGh12345678",
            "pk_live_AbCdEfGh12345678",
            "whsec_AbCdEfGhIjKlMnOpQrStUvWx",
            "ghp_AbCdEfGhIjKlMnOpQrStUvWxYz0123456789",
            "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
            "xoxb-1234567890-abcdefABCDEF",
            "AKIAABCDEFGHIJKLMNOP",
            "AIzaSyA-bcdefghijklmnopqrstuvwxyz012345",
            "shpat_0123456789abcdef0123456789abcdef",
            "SG.abcdefghijklmnopqrstuv.ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq",
            "sk-proj-AbCdEfGhIjKlMnOpQrStUvWx",
        ];
        for key in yes {
            check(&format!("key: {key}."), &[(ApiKey, key)]);
            check(&format!(r#"{{"k":"{key}"}}"#), &[(ApiKey, key)]);
        }
        for no in [
            "sk_live_",
            "task_live_AbCdEfGh12345678",
            "risk_test_abcdefghijk",
            "AKIA123",
            "disk-space-is-low-on-the-host",
            "whsec_short",
        ] {
            check(no, &[]);
        }
    }

    #[test]
    fn bearer_tokens() {
        check(
            "Authorization: Bearer abc123DEF456ghi789",
            &[(BearerToken, "abc123DEF456ghi789")],
        );
        check(
            "authorization: bearer AbC-dEf_GhI.jKl~123+/=",
            &[(BearerToken, "AbC-dEf_GhI.jKl~123+/=")],
        );
        // "ada:s3cret" in base64.
        check(
            "Authorization: Basic YWRhOnMzY3JldA==",
            &[(BearerToken, "YWRhOnMzY3JldA==")],
        );
        check(
            "Authorization: token ghx0123456789abcdefABCDEF",
            &[(BearerToken, "ghx0123456789abcdefABCDEF")],
        );
        let no = [
            "Basic Plan",
            "the Basic tier",
            "Bearer authentication.",
            "use a Bearer token",
            "the token is expired",
            "Basic dGVzdA==",
            "XBearer abc123DEF456ghi789",
        ];
        for no in no {
            check(no, &[]);
        }
    }

    #[test]
    fn jwts() {
        let jwt = "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0In0.dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        check(&format!("Bearer {jwt}"), &[(BearerToken, jwt)]);
        check(&format!("id_token: {jwt} ok"), &[(Jwt, jwt)]);
        check(
            "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.",
            &[(Jwt, "eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.")],
        );
        for no in [
            "eyJhbGciOiJIUzI1NiJ9",
            "eyJhbGciOiJIUzI1NiJ9.",
            "xeyJhbGciOiJIUzI1NiJ9.eyJz.abc",
            "eyJ.eyJ.x",
        ] {
            check(no, &[]);
        }
    }

    #[test]
    fn webhook_signatures() {
        let hex64 = "62e4d70143930c12d774f436b79df644a0ddcfe3beb73a85ee0fcc1a50110557";
        let stripe = format!("t=1733285241,v1={hex64},v0={hex64}");
        check(
            &format!(r#""Stripe-Signature": "{stripe}""#),
            &[(WebhookSignature, &stripe)],
        );
        check(&format!("v0={hex64}"), &[(WebhookSignature, &format!("v0={hex64}"))]);
        check(
            &format!("X-Hub-Signature-256: sha256={hex64}"),
            &[(WebhookSignature, &format!("sha256={hex64}"))],
        );
        let sha1 = "sha1=0123456789abcdef0123456789abcdef01234567";
        check(sha1, &[(WebhookSignature, sha1)]);
        let svix = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4= v1,bm9wZW5vcGVub3BlbnBvZW5vcGVub3Blbm9wZQ==";
        check(&format!("webhook-signature: {svix}"), &[(WebhookSignature, svix)]);
        for no in [
            "v1=abc",
            "/v1/customers?limit=3",
            "v1, v2 and v3",
            hex64,
            "sha256=abc",
            "xv1=0123456789abcdef0123456789abcdef",
        ] {
            check(no, &[]);
        }
    }

    #[test]
    fn token_urls() {
        let yes = [
            "https://invoice.stripe.com/i/acct_1AbCdEfGhIjKlMnO/test_YWNjdF8xQWJDZEVm?s=ap",
            "https://pay.stripe.com/invoice/acct_1AbCdEfGhIjKlMnO/live_YWNjdF8xQWJDZEVm/pdf?s=ap",
            "https://pay.stripe.com/receipts/invoices/CAcQARoXChVhY2N0XzFBYkNk?s=ap",
            "https://files.stripe.com/links/MDB8YWNjdF8xQWJDZEVmR2hJ",
            "https://billing.stripe.com/p/session/live_YWNjdF8xQWJDZEVm",
            "https://hooks.slack.com/services/T000/B000/XXXXXXXX",
            "https://example.com/cb?code=1&access_token=abc.def",
            "https://bucket.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4&X-Amz-Signature=abcdef0123",
            "https://maps.example.com/api?key=AbCdEf012",
            "https://ada:s3cret@db.example.com:5432/app",
            "/oauth/callback?token=abc123",
        ];
        for url in yes {
            check(&format!("GET {url} HTTP/1.1"), &[(TokenUrl, url)]);
            check(&format!(r#"{{"url": "{url}"}}"#), &[(TokenUrl, url)]);
        }
        check(
            "see https://example.com/x?token=abc.",
            &[(TokenUrl, "https://example.com/x?token=abc")],
        );
        check(
            "redirect=https://example.com/x?sig=abc",
            &[(TokenUrl, "https://example.com/x?sig=abc")],
        );
        check(
            r#"{"url": "https://example.com/cb?a=1\u0026access_token=abc"}"#,
            &[(TokenUrl, r#"https://example.com/cb?a=1\u0026access_token=abc"#)],
        );
        check("a=1&amp;token=abc", &[(TokenUrl, "a=1&amp;token=abc")]);
        check(
            r#""https:\/\/files.stripe.com\/links\/MDB8YWNj""#,
            &[(TokenUrl, r#"https:\/\/files.stripe.com\/links\/MDB8YWNj"#)],
        );
        let no = [
            "https://stripe.com/docs/webhooks",
            "https://invoice.stripe.com/",
            "/v1/subscription_items?subscription=sub_1AbCdEfGhIjKlMnO",
            "https://example.com/a?page=2",
            "api_key=abc",
            "monkey business",
            "https://example.com/a?token=",
        ];
        for no in no {
            check(no, &[]);
        }
    }

    #[test]
    fn phones() {
        let yes = [
            "+14155550123",
            "+1 (415) 555-0123",
            "+44 20 7946 0958",
            "+33 1 23 45 67 89",
            "(415) 555-0123",
            "(415)555-0123",
            "415-555-0123",
            "415.555.0123",
            "1-415-555-0123",
            "020 7946 0958",
            "06 12 34 56 78",
        ];
        for phone in yes {
            check(&format!("call {phone} now"), &[(Phone, phone)]);
            check(&format!(r#""phone":"{phone}""#), &[(Phone, phone)]);
        }
        let no = [
            "1733285241",
            "created: 1733285241,",
            "2024-12-04",
            "2024-12-04 10:00:28,835",
            "2024-12-04T04:07:22Z",
            "amount 24900",
            "$1,234.56",
            "v1.2.3",
            "Order #41555501234",
            "order 4155550123",
            "+0100",
            "+1.5",
            "415-555-01234",
            "sub_1QRS2MGYEFDoancgD17y9T85",
            "1 000 000",
        ];
        for no in no {
            check(no, &[]);
        }
    }

    #[test]
    fn cards() {
        let yes = [
            "4242424242424242",
            "4242 4242 4242 4242",
            "4242-4242-4242-4242",
            "378282246310005",
            "3782 822463 10005",
            "5555555555554444",
            "2223003122003222",
            "6011111111111117",
            "4000056655665556",
        ];
        for card in yes {
            check(&format!("card {card} exp"), &[(CardNumber, card)]);
            check(&format!(r#""number":"{card}""#), &[(CardNumber, card)]);
        }
        check("4242 4242 4242 4242 12/34", &[(CardNumber, "4242 4242 4242 4242")]);
        check("card=%204242424242424242", &[(CardNumber, "4242424242424242")]);
        let no = [
            "4242424242424241",
            "1733285241123",
            "1733285241123456",
            "7242424242424242",
            "4242 4242-4242 4242",
            "42424242424242424242424",
            "ch_4242424242424242",
            "4242424242424242abc",
            "4242.4242.4242.4242",
            "x=1%260811962778281972%26y",
        ];
        for no in no {
            check(no, &[]);
        }
    }

    #[test]
    fn overlaps_and_order() {
        // An email inside a token URL: the URL (longer) wins.
        check(
            "https://example.com/cb?email=ada@example.com&token=abc",
            &[(TokenUrl, "https://example.com/cb?email=ada@example.com&token=abc")],
        );
        // IPv4 inside an IPv6: the IPv6 wins.
        check("::ffff:192.0.2.1", &[(Ipv6, "::ffff:192.0.2.1")]);
        check(
            "ada@example.com from 203.0.113.1 key sk_test_AbCdEfGh12345678",
            &[
                (Email, "ada@example.com"),
                (Ipv4, "203.0.113.1"),
                (ApiKey, "sk_test_AbCdEfGh12345678"),
            ],
        );
    }

    #[test]
    fn stripe_event_survives() {
        let event = r#"{"id": "evt_1AbCdEfGhIjKlMnO", "object": "event", "api_version": "2024-09-30.acacia",
"created": 1733285241, "data": {"object": {"id": "sub_1QRS2MGYEFDoancgD17y9T85", "customer": "cus_RHxR2SFCU8TU4C",
"amount": 24900, "amount_decimal": "24900", "description": "1 × Monthly Plan (at $25.00 / month)",
"metadata": {"tr_cid": "x"}, "url": "/v1/subscription_items?subscription=sub_1QRS2MGYEFDoancgD17y9T85",
"request": {"id": "req_AbCdEfGhIjKl12", "idempotency_key": "0f8e9c1a-3b2d-4c5e-8f7a-6b5c4d3e2f1a"},
"period": {"end": 1764821239, "start": 1733285239}, "ms": 1733285241123, "ratio": "16:9"}}}"#;
        check(event, &[]);
    }

    #[test]
    fn classify_whole_values() {
        let d = Detectors::new(Detector::ALL);
        let cases: &[(&str, Option<Detector>)] = &[
            ("ada@example.com", Some(Email)),
            (" ada@example.com ", Some(Email)),
            ("203.0.113.36", Some(Ipv4)),
            ("2001:db8::1", Some(Ipv6)),
            ("Bearer abc123DEF456ghi789", Some(BearerToken)),
            (
                "pi_3ABCdefGHIjkl012_secret_XyZ012abcDEF345ghiJKL",
                Some(StripeClientSecret),
            ),
            ("+14155550123", Some(Phone)),
            ("4242 4242 4242 4242", Some(CardNumber)),
            (
                "t=1733285241,v1=62e4d70143930c12d774f436b79df644a0ddcfe3beb73a85ee0fcc1a50110557",
                Some(WebhookSignature),
            ),
            ("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln", Some(Jwt)),
            ("https://pay.stripe.com/receipts/payment/CAcaFwoVYWNjdA", Some(TokenUrl)),
            ("sk_live_AbCdEfGh12345678", Some(ApiKey)),
            ("Bearer sk_live_AbCdEfGh12345678", Some(BearerToken)),
            ("Basic Plan", None),
            ("write to ada@example.com", None),
            ("203.0.113.7, 198.51.100.22", None),
            ("cus_RHxR2SFCU8TU4C", None),
            ("", None),
            ("   ", None),
        ];
        for &(value, expect) in cases {
            assert_eq!(d.classify(value.as_bytes()), expect, "classify({value:?})");
        }
        let emails_only = Detectors::new(&[Email]);
        assert_eq!(emails_only.classify(b"203.0.113.36"), None);
        assert_eq!(emails_only.classify(b"ada@example.com"), Some(Email));
    }

    /// Inputs built to make expanding scanners rescan the same bytes; each must stay linear (a
    /// quadratic scanner makes this test hang rather than fail, which is visible in CI).
    #[test]
    fn adversarial_repetitions_stay_well_formed() {
        let d = Detectors::new(Detector::ALL);
        let units = [
            "a@",
            "a.b@",
            "%40a.",
            "1.1.",
            "1:",
            "a::",
            "fe80::1%",
            "_secret_a",
            "sk_live_",
            "eyJ",
            "eyJa.",
            "Bearer ",
            "Basic ",
            "v1=",
            ",v1=",
            "t=1,v1=",
            "sha256=",
            "v1,",
            "://",
            "?token=",
            "&key=",
            "+1 ",
            "(1) ",
            "4242 ",
            "1-",
            "pi_",
            "evt_AbCdEf12",
            "-0000-",
        ];
        for unit in units {
            let text = unit.repeat(200_000 / unit.len());
            let mut out = Vec::new();
            d.find_all(text.as_bytes(), &mut out);
            let mut last = 0;
            for m in &out {
                assert!(
                    m.start >= last && m.start < m.end && m.end <= text.len(),
                    "{unit:?}: {m:?}"
                );
                last = m.end;
            }
            let mut ids = Vec::new();
            find_ids(text.as_bytes(), &mut ids);
            assert!(ids.iter().all(|r| r.end <= text.len()), "{unit:?}");
        }
    }

    #[test]
    fn detectors_are_shareable_between_threads() {
        fn shareable<T: Send + Sync + 'static>(_: &T) {}
        let d = std::sync::Arc::new(Detectors::new(Detector::ALL));
        shareable(&d);
        let worker = std::thread::spawn({
            let d = d.clone();
            move || d.classify(b"ada@example.com")
        });
        assert_eq!(worker.join().ok().flatten(), Some(Email));
    }

    #[test]
    fn disabled_detectors_stay_silent() {
        let d = Detectors::new(&[Ipv4]);
        let mut out = Vec::new();
        d.find_all(b"ada@example.com 203.0.113.1 sk_test_AbCdEfGh12345678", &mut out);
        assert_eq!(
            out,
            vec![Match {
                start: 16,
                end: 27,
                detector: Ipv4
            }]
        );
    }

    #[test]
    fn find_all_appends_after_existing_matches() {
        let d = Detectors::new(Detector::ALL);
        let sentinel = Match {
            start: 100,
            end: 101,
            detector: Email,
        };
        let mut out = vec![sentinel];
        d.find_all(b"ip 203.0.113.1", &mut out);
        assert_eq!(
            out,
            vec![
                sentinel,
                Match {
                    start: 3,
                    end: 14,
                    detector: Ipv4
                }
            ]
        );
    }

    #[test]
    fn find_in_zones_finds_what_find_all_finds_in_the_zones() {
        let values = [
            "ada@example.com",
            "from 203.0.113.9 via 2001:db8::1",
            "call +1 415-555-0100",
            "card 4242 4242 4242 4242",
            "sk_live_51HqLyjWDarjtT1zdp7dcXkH1",
            "Bearer abc.def.ghi",
            "t=1733285241,v1=62e4d70143930c12d774f436b79df644a0ddcfe3beb73a85ee0fcc1a50110557",
            "https://x.example/cb?token=Zk3mQ9w&x=1",
            "kim%40example.org",
            "plain",
            // Short zones.
            "10.0.0.1",
            "ada@ex.io",
            "bo%40ex.io",
            "fe80::1",
            "+14155550100",
        ];
        for filler in ["", r#""n": 1769871674, "t": "10:00:28", "#, &"1, ".repeat(80)] {
            let (zoned, whole) = zoned_and_whole(values.iter().map(|&v| (v, '"', filler)));
            assert_eq!(zoned, whole, "filler {filler:?}");
            assert!(whole.len() >= 9, "{whole:?}");
        }
    }

    /// For a JSON object of `values` (each value in its quote, then a comma and its filler): what
    /// `find_in_zones` finds in the values, and what `find_all` finds in the whole object that lies
    /// inside one of them.
    pub(super) fn zoned_and_whole<'a>(
        values: impl IntoIterator<Item = (&'a str, char, &'a str)>,
    ) -> (Vec<Match>, Vec<Match>) {
        let mut text = String::from("{");
        let mut zones = Vec::new();
        for (i, (v, q, filler)) in values.into_iter().enumerate() {
            text.push_str(&format!("{q}k{i}{q}: {q}"));
            zones.push((text.len(), text.len() + v.len()));
            text.push_str(&format!("{v}{q}, {filler}"));
        }
        text.push('}');
        let d = Detectors::new(Detector::ALL);
        let mut whole = Vec::new();
        d.find_all(text.as_bytes(), &mut whole);
        whole.retain(|m| zones.iter().any(|&(s, e)| m.start >= s && m.end <= e));
        let mut zoned = Vec::new();
        d.find_in_zones(text.as_bytes(), &zones, &mut zoned);
        (zoned, whole)
    }

    #[track_caller]
    fn check_ids(text: &str, expect: &[&str]) {
        let mut out = Vec::new();
        find_ids(text.as_bytes(), &mut out);
        let got: Vec<&str> = out.iter().map(|r| &text[r.clone()]).collect();
        assert_eq!(got, expect, "in {text:?}");
    }

    #[test]
    fn ids() {
        check_ids(
            r#"{"id": "evt_1PpJjaGFzsjrzPXD0sZGnSCc", "customer": "cus_Qgh7k0TrQU17UV", "price": "price_1PouS8GFzsjrzPXDS6r0LHBS"}"#,
            &[
                "evt_1PpJjaGFzsjrzPXD0sZGnSCc",
                "cus_Qgh7k0TrQU17UV",
                "price_1PouS8GFzsjrzPXDS6r0LHBS",
            ],
        );
        check_ids(
            "pi_3ABCdefGHIjkl012_secret_XyZ012abcDEF345ghiJKL",
            &["pi_3ABCdefGHIjkl012"],
        );
        check_ids("cs_test_a1B2c3D4e5F6g7H8", &["cs_test_a1B2c3D4e5F6g7H8"]);
        check_ids(
            "X-GitHub-Delivery: 0f8e9c1a-3b2d-4c5e-8f7a-6b5c4d3e2f1a",
            &["0f8e9c1a-3b2d-4c5e-8f7a-6b5c4d3e2f1a"],
        );
        check_ids(
            "/v1/subscription_items?subscription=sub_1PpJjZGFzsjrzPXDorJF71eC",
            &["sub_1PpJjZGFzsjrzPXDorJF71eC"],
        );
        check_ids("ctm_01h8441jn5pcwrfhwh78jqt8hk", &["ctm_01h8441jn5pcwrfhwh78jqt8hk"]);
        let no = [
            r#""tr_cid": "abc""#,
            "sk_live_51AbCdEfGhIjKlMnOpQrStUv",
            "whsec_AbCdEfGhIjKlMnOpQrStUvWx",
            "usage_type",
            "billing_cycle_anchor",
            "prod_something",
            "xevt_1PpJjaGFzsjrzPXD0sZGnSCc",
            "0f8e9c1a-3b2d-4c5e-8f7a-6b5c4d3e2f1ab",
        ];
        for no in no {
            check_ids(no, &[]);
        }
    }

    #[test]
    fn person_names() {
        let yes = [
            "Ada Lovelace",
            "ada l",
            "Orlando L",
            "tobias sutton",
            "O'Brien-Smith",
            "José García",
            "Dr. Jane Doe",
            "JENNY ROSEN",
            "María de los Ángeles García",
            "Jane A. Doe",
            "Doe, Jane",
            "Nate Silver",
            "Vincent Price",
            "Max Weber",
        ];
        for name in yes {
            assert!(looks_like_person_name(name), "{name:?} should look like a name");
        }
        let no = [
            "Pro Plan",
            "Monthly Plan",
            "1 × Monthly Plan (at $25.00 / month)",
            "acme/widgets",
            "Order #1234",
            "Premium",
            "Gold Tier",
            "ASR Premium",
            "test product",
            "Daily Usage Plan 2",
            "Hotspotty LTD",
            "Acme Inc.",
            "ada@example.com",
            "https://example.com",
            "cus_RHxR2SFCU8TU4C",
            "",
            "a",
            "acme.io",
            "Super Simulations Tier 1",
            "One Two Three Four Five Six",
            "NASA Launch",
            "Gold",
            "Silver Plan",
            "Diamond Tier",
        ];
        for value in no {
            assert!(!looks_like_person_name(value), "{value:?} should not look like a name");
        }
    }
}

#[cfg(test)]
mod properties {
    use proptest::prelude::*;

    use super::*;

    /// Fragments that reach deep into the scanners when glued together at random.
    const FRAGMENTS: &[&str] = &[
        "@",
        "%40",
        ".",
        ":",
        "::",
        "_secret_",
        "sk_live_",
        "whsec_",
        "eyJ",
        "Bearer ",
        "Basic ",
        "token ",
        "v1=",
        "t=1,",
        "sha256=",
        "v1,",
        "://",
        ":\\/\\/",
        "?token=",
        "&key=",
        "+",
        "(",
        ")",
        "-",
        " ",
        "\\u0026",
        "\\",
        "%",
        "pi_",
        "cus_",
        "0123",
        "4242",
        "ffff",
        "1.2.3.4",
        "2001:db8",
        "é",
        "€",
        "ada",
        "example.com",
        "AKIA",
        "aGVsbG86d29ybGQ=",
        "\"",
        "=",
        "&",
        "?",
        "/",
        "[",
        "]",
        "%25",
        "0",
        "99999",
    ];

    fn glued() -> impl Strategy<Value = String> {
        let piece = prop_oneof![
            proptest::sample::select(FRAGMENTS).prop_map(str::to_string),
            "[a-zA-Z0-9]{0,12}",
            "\\PC{0,4}",
        ];
        proptest::collection::vec(piece, 0..48).prop_map(|v| v.concat())
    }

    fn assert_well_formed(text: &[u8], out: &[Match]) {
        let mut last_end = 0;
        for m in out {
            assert!(m.start < m.end && m.end <= text.len(), "out of bounds: {m:?}");
            assert!(m.start >= last_end, "unsorted or overlapping: {out:?}");
            last_end = m.end;
        }
    }

    proptest! {
        // Failures become explicit regression tests above, not files outside this module.
        #![proptest_config(ProptestConfig { cases: 2000, failure_persistence: None, ..ProptestConfig::default() })]

        /// Zones laid end to end find what a scan of the whole text finds in them: values of every
        /// shape, double- or single-quoted, near and far from each other.
        #[test]
        fn zones_end_to_end_find_what_the_whole_text_has_in_them(
            values in proptest::collection::vec((glued(), any::<bool>(), 0usize..3), 1..8),
        ) {
            let fillers = ["", "\"n\": 1769871674, ", "\"pad\": \"............................................................\", "];
            let values: Vec<(String, char, &str)> = values
                .iter()
                .map(|(v, single, filler)| {
                    let q = if *single { '\'' } else { '"' };
                    // A string's interior: no quote of its own, no backslash escaping the closing one.
                    let mut v: String = v.chars().filter(|&c| c != q).collect();
                    while v.ends_with('\\') {
                        v.pop();
                    }
                    (v, q, fillers[*filler])
                })
                .collect();
            let (zoned, whole) = super::tests::zoned_and_whole(values.iter().map(|(v, q, f)| (v.as_str(), *q, *f)));
            prop_assert_eq!(zoned, whole);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            let d = Detectors::new(Detector::ALL);
            let mut out = Vec::new();
            d.find_all(&bytes, &mut out);
            assert_well_formed(&bytes, &out);
            let _ = d.classify(&bytes);
            let mut ids = Vec::new();
            find_ids(&bytes, &mut ids);
            for r in ids {
                prop_assert!(r.start < r.end && r.end <= bytes.len());
            }
        }

        #[test]
        fn utf8_matches_on_char_boundaries(text in glued()) {
            let d = Detectors::new(Detector::ALL);
            let mut out = Vec::new();
            d.find_all(text.as_bytes(), &mut out);
            assert_well_formed(text.as_bytes(), &out);
            for m in &out {
                prop_assert!(text.is_char_boundary(m.start) && text.is_char_boundary(m.end), "{m:?} in {text:?}");
            }
            let mut ids = Vec::new();
            find_ids(text.as_bytes(), &mut ids);
            let mut last = 0;
            for r in ids {
                prop_assert!(r.start >= last && text.is_char_boundary(r.start) && text.is_char_boundary(r.end));
                prop_assert!(!text[r.clone()].contains("secret"), "an id range holds a secret: {:?}", &text[r.clone()]);
                last = r.end;
            }
            let _ = d.classify(text.as_bytes());
            let _ = looks_like_person_name(&text);
        }

        #[test]
        fn known_values_between_words_are_covered(
            before in proptest::collection::vec("[a-z]{1,8}", 0..6),
            after in proptest::collection::vec("[a-z]{1,8}", 0..6),
            which in 0..KNOWN.len(),
        ) {
            let (detector, value) = KNOWN[which];
            let head = before.join(" ");
            let text = format!("{head} {value} {}", after.join(" "));
            let (vs, ve) = (head.len() + 1, head.len() + 1 + value.len());
            let d = Detectors::new(Detector::ALL);
            let mut out = Vec::new();
            d.find_all(text.as_bytes(), &mut out);
            prop_assert!(
                out.iter().any(|m| m.start <= vs && m.end >= ve && m.detector == detector),
                "{value:?} not found as {detector:?} in {text:?}: {out:?}"
            );
        }
    }

    const KNOWN: &[(Detector, &str)] = &[
        (Detector::Email, "ada.l@example.org"),
        (Detector::Ipv4, "198.51.100.7"),
        (Detector::Ipv6, "2001:db8:0:1::a"),
        (Detector::StripeClientSecret, "pi_3AbCdEfGh123_secret_ZyXwVuTs987"),
        (Detector::ApiKey, "sk_live_AbCdEfGh12345678"),
        (Detector::Jwt, "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"),
        (
            Detector::WebhookSignature,
            "sha256=0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
        ),
        (
            Detector::TokenUrl,
            "https://pay.stripe.com/receipts/payment/CAcaFwoVYWNjdA",
        ),
        (Detector::Phone, "+44 20 7946 0958"),
        (Detector::Phone, "(415) 555-0123"),
        (Detector::CardNumber, "4242 4242 4242 4242"),
    ];
}
