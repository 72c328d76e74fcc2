//! The rules engine: detectors, key rules, actions. Takes a record's bytes and the compiled rules,
//! returns scrubbed bytes and counts.
//!
//! - `config.rs`: the raw schema of `[scrub]` and `[rules.NAME]` (serde).
//! - `rules.rs`: compiles it once (key-path globs, regexes, actions, pseudonym key, digest).
//! - `tokenize.rs`: a lenient, iterative, byte-preserving JSON / Python-dict tokenizer.
//! - `engine.rs`: one record: structures are walked (key rules, person-name context, `drop`),
//!   text is scanned (`key=value`, `Key: value`, `"key": "value"`), detectors and user regexes run
//!   over the free-text zones, the propagation window removes values seen in structured fields,
//!   then the record is rebuilt with the replacements and everything else byte for byte.
//! - `propagate.rs`: [`SourceState`], the bounded propagation window of one source.
//! - `detect/`: the built-in shape detectors (email, IPs, secrets, signatures, ...).
//!
//! Must not: fail, panic, allocate without bound, or log a value. Input it cannot parse takes the
//! fail-closed path (text-mode detection plus `"key": "value"` patterns), counted as a fallback.
//! Replacements are markers (`[REDACTED:rule]`, `[MASKED:rule]`, `[PSEUDONYM:ps_…]`) that no rule
//! matches again, so scrubbing is idempotent and [`Scrubber::rescan`] of clean output is empty.

use std::collections::BTreeMap;

/// What the scrubber made of one record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scrubbed {
    /// The scrubbed record: the input byte for byte, except the scrubbed values.
    pub bytes: Vec<u8>,
    /// Number of values each rule removed, by rule name (only rules that fired).
    pub counts: BTreeMap<String, u64>,
    /// Object ids found in the record (`evt_…`, `cus_…`, …), deduplicated, in order of appearance.
    pub ids: Vec<String>,
    /// The provider's event id (`evt_…` of a Stripe event), when the record is an event.
    pub event_id: Option<String>,
    /// The provider's event type (`invoice.paid`), when the record is an event.
    pub event_type: Option<String>,
    /// Pseudonym tokens the `hash` action produced in this record.
    pub pseudonyms: Vec<String>,
    /// Timestamp found in the record body (e.g. a Stripe event's `created`), in ms since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The record could not be parsed as its structure claims and was scrubbed in text mode.
    pub fallback: bool,
}

pub mod config;
pub mod detect;
mod engine;
mod propagate;
mod rules;
mod tokenize;

#[cfg(test)]
mod tests;

pub use config::{RawRule, ScrubConfig};
pub use propagate::SourceState;
pub use rules::RuleError;

/// The small fast hasher of the key cache, for other hot paths that hash short strings.
pub(crate) use engine::FxHasher;

use hmac::{KeyInit, Mac};

/// The compiled rule set and detectors: built once, shared between threads (`Arc<Scrubber>`).
#[derive(Debug)]
pub struct Scrubber {
    set: rules::RuleSet,
    detectors: detect::Detectors,
    all_active: Vec<bool>,
    max_depth: usize,
    window: propagate::Window,
    version: String,
    /// Unique per instance: a `SourceState` caches key lookups of one scrubber.
    id: u64,
}

static NEXT_ID: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

impl Scrubber {
    /// Compiles the rule set. Errors name the rule and the field
    /// (`rule "my_rule": field "regex": invalid regex: ...`).
    pub fn new(scrub: &ScrubConfig, rules: &BTreeMap<String, RawRule>) -> Result<Scrubber, RuleError> {
        let set = rules::RuleSet::compile(scrub, rules)?;
        let detectors = detect::Detectors::new(&set.detectors);
        Ok(Scrubber {
            all_active: vec![true; set.rules.len()],
            detectors,
            set,
            max_depth: scrub.max_json_depth,
            window: propagate::Window {
                records: scrub.propagation_window_records,
                bytes: scrub.propagation_window_bytes.as_u64(),
                max_values: scrub.max_propagated_values,
                min_len: scrub.min_propagated_len.max(1),
            },
            version: scrub.ruleset_version.clone(),
            id: NEXT_ID.fetch_add(1, std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// The built-in default rule set: the `[scrub]` and `[rules.*]` tables of the embedded
    /// `config/scrubd.toml` (one source of truth with the documented default).
    pub fn builtin() -> Scrubber {
        let (scrub, rules) = builtin_tables().expect("the embedded default rule set is valid (tested)");
        Scrubber::new(&scrub, &rules).expect("the embedded default rule set compiles (tested)")
    }

    /// Scrubs one record of `source`. `state` carries that source's propagation window between
    /// records. Never fails: input it cannot parse is scrubbed in text mode (`fallback`).
    pub fn scrub(&self, record: &crate::record::Record, source: &str, state: &mut SourceState) -> Scrubbed {
        self.scrub_bytes(&record.bytes, record.format, Some(source), record.fragment, state)
    }

    /// Identifies this rule set instance (and so what [`Scrubber::rescan`] finds): equal only for
    /// the same `Scrubber`, never reused.
    pub fn instance(&self) -> u64 {
        self.id
    }

    /// Last line of defence before upload: would any rule still fire on these (already
    /// scrubbed) bytes? Counts by rule name; empty means clean. Markers and pseudonyms the
    /// engine wrote never count. Rules scoped to sources apply regardless of source here.
    ///
    /// Two stages: every detector and user regex runs over the whole record first, markers
    /// excepted; a record where none matches anywhere is clean (most records, at a fraction of
    /// the cost of scrubbing). A record with a match is rescanned by the whole engine, which
    /// decides in context, as the scrub did (a number in a JSON number field is not a phone
    /// number), so a clean archive is not quarantined for a false alarm.
    pub fn rescan(&self, scrubbed: &[u8], format: crate::record::Format) -> BTreeMap<String, u64> {
        if !self.any_shape(scrubbed) {
            return BTreeMap::new();
        }
        // Each record is rescanned on its own (no propagation between them), but the key cache
        // and working buffers carry over: building them is most of the cost of a small record.
        thread_local! {
            static REUSE: std::cell::RefCell<(engine::KeyCache, engine::Buffers)> = Default::default();
        }
        REUSE.with(|reuse| {
            let mut state = SourceState::default();
            let mut reuse = reuse.borrow_mut();
            state.key_cache = std::mem::take(&mut reuse.0);
            state.buffers = std::mem::take(&mut reuse.1);
            let counts = self.scrub_bytes(scrubbed, format, None, false, &mut state).counts;
            *reuse = (std::mem::take(&mut state.key_cache), std::mem::take(&mut state.buffers));
            counts
        })
    }

    /// Does any detector (of an enabled rule) or user regex match in `bytes` outside the
    /// engine's markers, wherever it is in the record?
    pub(crate) fn any_shape(&self, bytes: &[u8]) -> bool {
        /// Detector matches and marker spans, reused between records.
        type Bufs = (Vec<detect::Match>, Vec<(usize, usize)>);
        thread_local! {
            static BUFS: std::cell::RefCell<Bufs> = Default::default();
        }
        BUFS.with(|bufs| {
            let (matches, markers) = &mut *bufs.borrow_mut();
            matches.clear();
            markers.clear();
            // The markers only once something matched: most records have no match at all.
            let mut marked = false;
            let mut outside = |s: usize, e: usize| {
                if !marked {
                    engine::marker_spans(bytes, markers);
                    marked = true;
                }
                !engine::overlaps_any(markers, s, e)
            };
            if !self.set.detectors.is_empty() {
                self.detectors.find_all(bytes, matches);
                if matches
                    .iter()
                    .any(|m| self.set.detector_rule(m.detector, &self.all_active).is_some() && outside(m.start, m.end))
                {
                    return true;
                }
            }
            self.set.regex_rules.iter().any(|&ri| {
                let rule = &self.set.rules[ri as usize];
                rule.regex.as_ref().is_some_and(|re| {
                    re.captures_iter(bytes).any(|caps| {
                        caps.get(rule.regex_group)
                            .or_else(|| caps.get(0))
                            .is_some_and(|m| m.start() < m.end() && outside(m.start(), m.end()))
                    })
                })
            })
        })
    }

    /// Effective rule table for `scrubd check-config`: (rule name, what it matches, action),
    /// enabled rules only, by name.
    pub fn rule_table(&self) -> Vec<(String, String, String)> {
        self.set
            .rules
            .iter()
            .map(|r| {
                let action = match r.action {
                    rules::Action::Redact => "redact".to_string(),
                    rules::Action::Drop => "drop".to_string(),
                    rules::Action::Hash => "hash (keyed HMAC-SHA256 pseudonym)".to_string(),
                    rules::Action::Mask(k) => match k {
                        rules::Keep::EmailDomain => "mask (keep email domain)".to_string(),
                        rules::Keep::Ipv4Prefix => "mask (keep IPv4 /24)".to_string(),
                        rules::Keep::SignatureTimestamp => "mask (keep signature t= timestamp)".to_string(),
                        rules::Keep::Last(n) => format!("mask (keep last {n} characters)"),
                    },
                };
                (r.name.clone(), r.matches.clone(), action)
            })
            .collect()
    }

    /// `[scrub] ruleset_version`.
    pub fn ruleset_version(&self) -> &str {
        &self.version
    }

    /// Hex SHA-256 of a canonical serialisation of the effective (enabled) rules and the engine
    /// settings that change the output (not the pseudonym key).
    pub fn ruleset_digest(&self) -> &str {
        &self.set.digest
    }

    /// The pseudonym token (`ps_…`) of `value` under the configured key, as the `hash` action
    /// writes it; `None` without a key. Values are trimmed and ASCII-lowercased first, so
    /// `Ada@Example.com` and `ada@example.com` correlate.
    pub fn pseudonym(&self, value: &str) -> Option<String> {
        self.token(value.as_bytes())
    }

    fn token(&self, value: &[u8]) -> Option<String> {
        let key = self.set.pseudonym_key.as_ref()?;
        let mut mac = <hmac::Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key).ok()?;
        mac.update(&value.trim_ascii().to_ascii_lowercase());
        let digest = mac.finalize().into_bytes();
        Some(format!("ps_{}", hex::encode(&digest[..12])))
    }
}

/// The `[scrub]` and `[rules.*]` tables of the embedded default configuration.
pub fn builtin_tables() -> Result<(ScrubConfig, BTreeMap<String, RawRule>), String> {
    let cfg = ::config::Config::builder()
        .add_source(::config::File::from_str(
            crate::config::DEFAULT_TOML,
            ::config::FileFormat::Toml,
        ))
        .build()
        .map_err(|e| e.to_string())?;
    let scrub: ScrubConfig = cfg.get("scrub").map_err(|e| e.to_string())?;
    let rules: BTreeMap<String, RawRule> = cfg.get("rules").map_err(|e| e.to_string())?;
    Ok((scrub, rules))
}
