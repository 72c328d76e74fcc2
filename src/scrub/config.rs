//! Raw configuration of the scrub engine, as the user typed it (`[scrub]` and `[rules.NAME]`).
//!
//! Every field of a rule is optional so that a user file layered over the defaults can change one
//! field of a default rule (`[rules.email] action = "mask"`) or disable it (`enabled = false`)
//! without copying it. Validation (unknown detectors, actions, bad regexes, `hash` without a key)
//! happens when the rules are compiled by [`crate::scrub::Scrubber::new`].
//!
//! Must not: read files or compile anything (that is `rules.rs`).

use std::path::PathBuf;

use serde::Deserialize;

/// `[scrub]`: engine settings.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScrubConfig {
    /// Version label of the rule set, recorded with every archive so that compliance can tell
    /// which rules scrubbed a record. Bump it when the rules change.
    pub ruleset_version: String,
    /// A value removed from a structured field is also removed from the next this-many records
    /// of the same source (0: only within its own record).
    pub propagation_window_records: u64,
    /// ... and from the next this-many bytes of the same source; a value leaves the window when
    /// either limit is passed.
    pub propagation_window_bytes: bytesize::ByteSize,
    /// Values (and words of names) shorter than this many bytes are not propagated: too short to
    /// be found elsewhere without destroying unrelated text.
    pub min_propagated_len: usize,
    /// At most this many distinct values are remembered per source (oldest leave first); bounds
    /// the memory of the propagation window.
    pub max_propagated_values: usize,
    /// JSON (or Python-dict) nested deeper than this is scrubbed in text mode (fail-closed).
    pub max_json_depth: usize,
    /// File holding the secret key of the `hash` action (pseudonyms). Refused when readable by
    /// group or others.
    pub pseudonym_key_file: Option<PathBuf>,
    /// Name of a systemd credential (`LoadCredential=`) holding the key of the `hash` action,
    /// read from `$CREDENTIALS_DIRECTORY/NAME`.
    pub pseudonym_key_credential: Option<String>,
}

impl Default for ScrubConfig {
    fn default() -> Self {
        ScrubConfig {
            ruleset_version: "unversioned".into(),
            propagation_window_records: 100,
            propagation_window_bytes: bytesize::ByteSize::mib(16),
            min_propagated_len: 4,
            max_propagated_values: 1024,
            max_json_depth: 256,
            pseudonym_key_file: None,
            pseudonym_key_credential: None,
        }
    }
}

/// `[rules.NAME]`: one rule. A rule matches by `detector`, by `keys`/`context_keys`, by `regex`,
/// or any combination; each field is optional so that a layered file can override one of them.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RawRule {
    /// `false` disables the rule (default `true`).
    pub enabled: Option<bool>,
    /// Free text for humans; shown by `scrubd check-config`.
    pub description: Option<String>,
    /// A built-in detector finding values by their shape anywhere (free text, any JSON string
    /// value): `email`, `ipv4`, `ipv6`, `stripe_client_secret`, `api_key`, `bearer_token`, `jwt`,
    /// `webhook_signature`, `token_url`, `phone`, `card_number`.
    pub detector: Option<String>,
    /// Keys or key paths whose values the rule removes, as globs (`email`, `*_email`,
    /// `metadata.tr_*`, `billing_details.name`). Case-insensitive; `-` and `_` are the same, so
    /// `Stripe-Signature` also matches `stripe_signature` and `HTTP_STRIPE_SIGNATURE`. A path
    /// matches the last segments of a value's key path (array indices do not count). The same
    /// keys apply to `key=value` text, `Key: value` lines, URL query parameters and Python dicts.
    pub keys: Option<Vec<String>>,
    /// Keys whose value is removed only when the context says it is a person's: the parent
    /// object (`billing_details`, `shipping`, an object of type `customer`), sibling keys
    /// (`email`, `phone`, `address`) or, without context, the value's shape. For ambiguous keys
    /// such as `name` (product, plan and repository names must survive).
    pub context_keys: Option<Vec<String>>,
    /// When a key matches an object or array, remove every string and number inside it (e.g.
    /// `geo`, `coordinates`). Default `false`: only scalar values at the key are removed and the
    /// keys inside a container are matched on their own.
    pub whole: Option<bool>,
    /// A regular expression (Rust `regex` syntax) matched in free text and string values. If it
    /// has a capture group named `value` (or else a first group), only that group is removed.
    pub regex: Option<String>,
    /// Apply the rule only to these sources (by source name); default: all sources.
    pub sources: Option<Vec<String>>,
    /// Apply the rule only to records of these formats (`django`, `req`, `json_lines`, `json`,
    /// `syslog`, `access_log`, `text`); default: all formats.
    pub formats: Option<Vec<String>>,
    /// `redact` (default; `[REDACTED:rule]`), `mask` (keep the part named by `keep`), `hash`
    /// (keyed HMAC-SHA256 pseudonym `[PSEUDONYM:ps_…]`; needs a pseudonym key) or `drop`
    /// (remove key and value from JSON; redact elsewhere).
    pub action: Option<String>,
    /// With `action = "mask"`: what to keep. `email_domain` (`[MASKED:rule]@example.com`),
    /// `ipv4_prefix` (the /24: `203.0.113.[MASKED:rule]`), `signature_timestamp` (a signature
    /// header's `t=…,`), `last` (the last `keep_last` characters).
    pub keep: Option<String>,
    /// With `keep = "last"`: how many trailing characters to keep (default 4).
    pub keep_last: Option<usize>,
    /// Also remove the values this rule takes from structured fields wherever they appear in the
    /// same record and, within the propagation window, in later records of the same source
    /// (names: also their words). Default `false`.
    pub propagate: Option<bool>,
    /// With `propagate`: also propagate each word of the value (person names: "Ada Lovelace"
    /// also removes a lone "Lovelace"), case-insensitively. Default `false`.
    pub propagate_words: Option<bool>,
}
