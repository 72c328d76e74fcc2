//! Built-in detectors: find sensitive values by their shape, in free text or in one value.
//!
//! Must not: know about keys, rules or actions (that is the engine), or allocate per byte of
//! input; detectors run on every byte scrubd reads.
//!
//! STUB: the signatures below are the contract between the engine and the detectors.

/// A built-in detector, named in rules as `detector = "NAME"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Detector {
    Email,
    Ipv4,
    Ipv6,
    StripeClientSecret,
    ApiKey,
    BearerToken,
    Jwt,
    WebhookSignature,
    TokenUrl,
    Phone,
    CardNumber,
}

impl Detector {
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

    pub fn from_name(name: &str) -> Option<Detector> {
        Detector::ALL.iter().copied().find(|d| d.name() == name)
    }
}

/// One sensitive span found in text: `text[start..end]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Match {
    pub start: usize,
    pub end: usize,
    pub detector: Detector,
}

/// A compiled set of enabled detectors, built once and shared between threads.
#[derive(Debug)]
pub struct Detectors {
    enabled: Vec<Detector>,
}

impl Detectors {
    pub fn new(enabled: &[Detector]) -> Detectors {
        Detectors {
            enabled: enabled.to_vec(),
        }
    }

    /// Appends to `out` every match of the enabled detectors in `text`, sorted by start and
    /// non-overlapping (on overlap the longer match wins). `text` may be any bytes (invalid UTF-8,
    /// binary); matches never split a UTF-8 sequence.
    pub fn find_all(&self, text: &[u8], out: &mut Vec<Match>) {
        let _ = (text, out, &self.enabled);
    }

    /// The detector that matches the whole of `value` (a JSON string value, a header value), if
    /// any. Cheaper than `find_all` when the value is known to be one token.
    pub fn classify(&self, value: &[u8]) -> Option<Detector> {
        let _ = value;
        None
    }
}

/// Whether `value` has the shape of a person's name ("Ada Lovelace", "ada l", "O'Brien-Smith",
/// "José García"), as opposed to a product, plan, repository or order name ("Pro Plan",
/// "acme/widgets", "Order #1234", "1 × Monthly Plan (at $25.00 / month)").
pub fn looks_like_person_name(value: &str) -> bool {
    let _ = value;
    false
}

/// Appends to `out` the object ids in `text` (`evt_…`, `cus_…`, `sub_…`, `in_…`, `pi_…`, `ch_…`,
/// `req_…`, … and other providers' ids), as byte ranges, in order of appearance.
pub fn find_ids(text: &[u8], out: &mut Vec<std::ops::Range<usize>>) {
    let _ = (text, out);
}
