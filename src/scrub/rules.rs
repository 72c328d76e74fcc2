//! Compiles the raw rule set (`[rules.*]`, `[scrub]`) into matchers, once: key-path globs, user
//! regexes, the detector set, actions and the pseudonym key.
//!
//! Must not: scrub anything (that is `engine.rs`), or put a key or a scrubbed value in an error.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use sha2::Digest;

use super::config::{RawRule, ScrubConfig};
use super::detect::Detector;
use crate::record::Format;

/// A rule set that cannot be compiled. Permanent: the configuration must be fixed.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// A field of one rule is invalid.
    #[error("rule \"{rule}\": field \"{field}\": {message}")]
    Rule {
        rule: String,
        field: &'static str,
        message: String,
    },
    /// A field of `[scrub]` is invalid.
    #[error("[scrub]: field \"{field}\": {message}")]
    Scrub { field: &'static str, message: String },
    /// The pseudonym key cannot be used.
    #[error("pseudonym key {path}: {message}")]
    Key { path: String, message: String },
}

/// What a rule does with a value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Redact,
    Mask(Keep),
    Hash,
    Drop,
}

/// The part of a value the `mask` action keeps.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Keep {
    EmailDomain,
    Ipv4Prefix,
    SignatureTimestamp,
    Last(usize),
}

/// One compiled rule.
#[derive(Debug)]
pub struct Rule {
    pub name: String,
    pub action: Action,
    pub whole: bool,
    pub propagate: bool,
    pub propagate_words: bool,
    pub regex: Option<regex::bytes::Regex>,
    /// Index of the capture group holding the value (0: the whole match).
    pub regex_group: usize,
    pub sources: Option<Vec<String>>,
    pub formats: Option<Vec<Format>>,
    /// `redact` marker, prebuilt (`[REDACTED:name]`).
    pub marker: Vec<u8>,
    /// For `rule_table`.
    pub matches: String,
}

impl Rule {
    /// Whether the rule applies to `source` (None: any) and `format`.
    pub fn in_scope(&self, source: Option<&str>, format: Format) -> bool {
        if let (Some(list), Some(src)) = (&self.sources, source)
            && !list.iter().any(|s| s == src)
        {
            return false;
        }
        if let Some(list) = &self.formats
            && format != Format::Auto
            && !list.contains(&format)
        {
            return false;
        }
        true
    }
}

/// One segment of a key pattern.
#[derive(Debug, Clone)]
enum Glob {
    Exact(Box<[u8]>),
    Pattern(Box<[u8]>),
}

impl Glob {
    fn new(seg: &[u8]) -> Glob {
        if seg.iter().any(|&b| b == b'*' || b == b'?') {
            Glob::Pattern(seg.into())
        } else {
            Glob::Exact(seg.into())
        }
    }
    fn matches(&self, s: &[u8]) -> bool {
        match self {
            Glob::Exact(e) => **e == *s,
            Glob::Pattern(p) => glob_match(p, s),
        }
    }
}

/// `*` (any run) and `?` (one byte) glob matching, iterative with single backtrack point.
fn glob_match(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (usize::MAX, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = pi;
            mark = si;
            pi += 1;
        } else if star != usize::MAX {
            pi = star + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Normalises a key byte for matching: ASCII lowercase, `-` is `_`.
#[inline]
pub fn norm(b: u8) -> u8 {
    if b == b'-' { b'_' } else { b.to_ascii_lowercase() }
}

#[derive(Debug)]
struct KeyPattern {
    segs: Vec<Glob>,
    rule: u16,
    context: bool,
}

/// A key rule hit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeyHit {
    pub rule: u16,
    /// Only when the context says "person" (a `context_keys` pattern).
    pub context: bool,
}

/// Matches key paths against the key patterns of all rules.
#[derive(Debug, Default)]
pub struct KeyMatcher {
    by_last: HashMap<Box<[u8]>, Vec<u32>>,
    glob_last: Vec<u32>,
    pats: Vec<KeyPattern>,
}

impl KeyMatcher {
    fn add(&mut self, pattern: &str, rule: u16, context: bool) -> Result<(), String> {
        let normalised: Vec<u8> = pattern.bytes().map(norm).collect();
        if normalised.is_empty() || normalised.split(|&b| b == b'.').any(|s| s.is_empty()) {
            return Err(format!("invalid key pattern {pattern:?}: empty segment"));
        }
        let segs: Vec<Glob> = normalised.split(|&b| b == b'.').map(Glob::new).collect();
        let idx = self.pats.len() as u32;
        match segs.last() {
            Some(Glob::Exact(e)) => self.by_last.entry(e.clone()).or_default().push(idx),
            _ => self.glob_last.push(idx),
        }
        self.pats.push(KeyPattern { segs, rule, context });
        Ok(())
    }

    /// The best hit for a key path given as normalised segments (innermost last). A definite
    /// hit beats a context hit, a longer pattern beats a shorter one, then the rule order.
    #[cfg(test)]
    pub fn lookup(&self, path: &[&[u8]]) -> Option<KeyHit> {
        let last = *path.last()?;
        let mut cands = Vec::new();
        self.candidates(last, &mut cands);
        self.resolve(&cands, path)
    }

    /// The patterns whose last segment matches `last` (the expensive part of a lookup, which
    /// depends only on the key itself and can be cached by it).
    pub fn candidates(&self, last: &[u8], out: &mut Vec<u32>) {
        let collect = |last: &[u8], out: &mut Vec<u32>| {
            if let Some(list) = self.by_last.get(last) {
                out.extend_from_slice(list);
            }
            for &pi in &self.glob_last {
                if let Some(g) = self.pats[pi as usize].segs.last()
                    && g.matches(last)
                {
                    out.push(pi);
                }
            }
        };
        collect(last, out);
        if out.is_empty() && last.len() > 5 && last.starts_with(b"http_") {
            // Django's request.META spelling of a header: HTTP_STRIPE_SIGNATURE.
            collect(&last[5..], out);
        }
    }

    /// The best hit among `cands` (from [`KeyMatcher::candidates`] of the path's last segment).
    pub fn resolve(&self, cands: &[u32], path: &[&[u8]]) -> Option<KeyHit> {
        // (definite, segments, exact segments, rule): a definite hit beats a context one, a
        // longer path a shorter one, `client_secret` beats `*_secret`, then the rule order.
        let mut best: Option<(bool, usize, usize, u16)> = None;
        for &pi in cands {
            let p = &self.pats[pi as usize];
            let n = p.segs.len();
            if n > path.len() {
                continue;
            }
            let base = path.len() - n;
            if !p.segs[..n - 1]
                .iter()
                .enumerate()
                .all(|(k, g)| g.matches(path[base + k]))
            {
                continue;
            }
            let exact = p.segs.iter().filter(|g| matches!(g, Glob::Exact(_))).count();
            let cand = (!p.context, n, exact, p.rule);
            let better = match best {
                None => true,
                Some((d, l, x, r)) => {
                    (cand.0, cand.1, cand.2, std::cmp::Reverse(cand.3)) > (d, l, x, std::cmp::Reverse(r))
                }
            };
            if better {
                best = Some(cand);
            }
        }
        best.map(|(d, _, _, rule)| KeyHit { rule, context: !d })
    }

    pub fn is_empty(&self) -> bool {
        self.pats.is_empty()
    }
}

/// The compiled rule set.
#[derive(Debug)]
pub struct RuleSet {
    pub rules: Vec<Rule>,
    pub keys: KeyMatcher,
    /// For each detector (by `Detector::ALL` index), the rules naming it.
    pub by_detector: Vec<Vec<u16>>,
    pub detectors: Vec<Detector>,
    pub regex_rules: Vec<u16>,
    pub any_scoped: bool,
    pub pseudonym_key: Option<Vec<u8>>,
    pub digest: String,
}

fn rule_err(rule: &str, field: &'static str, message: impl Into<String>) -> RuleError {
    RuleError::Rule {
        rule: rule.to_string(),
        field,
        message: message.into(),
    }
}

fn parse_format(s: &str) -> Option<Format> {
    Some(match s {
        "django" => Format::Django,
        "req" => Format::Req,
        "json_lines" => Format::JsonLines,
        "json" => Format::Json,
        "syslog" => Format::Syslog,
        "access_log" => Format::AccessLog,
        "text" => Format::Text,
        _ => return None,
    })
}

/// Reads the pseudonym key from the configured file or systemd credential.
fn load_key(scrub: &ScrubConfig) -> Result<Option<Vec<u8>>, RuleError> {
    let path = match (&scrub.pseudonym_key_file, &scrub.pseudonym_key_credential) {
        (Some(_), Some(_)) => {
            return Err(RuleError::Scrub {
                field: "pseudonym_key_file",
                message: "set either pseudonym_key_file or pseudonym_key_credential, not both".into(),
            });
        }
        (Some(p), None) => {
            check_permissions(p)?;
            p.clone()
        }
        (None, Some(name)) => {
            if name.is_empty() || name.contains('/') {
                return Err(RuleError::Scrub {
                    field: "pseudonym_key_credential",
                    message: format!("invalid credential name {name:?}"),
                });
            }
            let dir = std::env::var_os("CREDENTIALS_DIRECTORY").ok_or_else(|| RuleError::Scrub {
                field: "pseudonym_key_credential",
                message: "CREDENTIALS_DIRECTORY is not set (is LoadCredential= configured?)".into(),
            })?;
            Path::new(&dir).join(name)
        }
        (None, None) => return Ok(None),
    };
    let key = std::fs::read(&path).map_err(|e| RuleError::Key {
        path: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })?;
    let trimmed = key.trim_ascii();
    if trimmed.len() < 16 {
        return Err(RuleError::Key {
            path: path.display().to_string(),
            message: "key is shorter than 16 bytes".into(),
        });
    }
    Ok(Some(trimmed.to_vec()))
}

fn check_permissions(path: &Path) -> Result<(), RuleError> {
    use std::os::unix::fs::PermissionsExt;
    let meta = std::fs::metadata(path).map_err(|e| RuleError::Key {
        path: path.display().to_string(),
        message: format!("cannot read: {e}"),
    })?;
    let mode = meta.permissions().mode();
    if mode & 0o077 != 0 {
        return Err(RuleError::Key {
            path: path.display().to_string(),
            message: format!("readable by group or others (mode {:o}); chmod 600 it", mode & 0o777),
        });
    }
    Ok(())
}

impl RuleSet {
    pub fn compile(scrub: &ScrubConfig, raw: &BTreeMap<String, RawRule>) -> Result<RuleSet, RuleError> {
        if scrub.max_json_depth == 0 {
            return Err(RuleError::Scrub {
                field: "max_json_depth",
                message: "must be at least 1".into(),
            });
        }
        let pseudonym_key = load_key(scrub)?;
        let mut set = RuleSet {
            rules: Vec::new(),
            keys: KeyMatcher::default(),
            by_detector: vec![Vec::new(); Detector::ALL.len()],
            detectors: Vec::new(),
            regex_rules: Vec::new(),
            any_scoped: false,
            pseudonym_key,
            digest: String::new(),
        };
        let mut canonical = String::new();
        canonical.push_str(&format!(
            "scrub window_records={} window_bytes={} min_len={} max_values={} depth={}\n",
            scrub.propagation_window_records,
            scrub.propagation_window_bytes.as_u64(),
            scrub.min_propagated_len,
            scrub.max_propagated_values,
            scrub.max_json_depth
        ));
        for (name, r) in raw {
            if !r.enabled.unwrap_or(true) {
                continue;
            }
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            {
                return Err(rule_err(
                    name,
                    "name",
                    "rule names use only letters, digits, '_' and '-'",
                ));
            }
            if set.rules.len() >= u16::MAX as usize {
                return Err(rule_err(name, "name", "too many rules"));
            }
            let idx = set.rules.len() as u16;
            let detector = match &r.detector {
                None => None,
                Some(d) => Some(Detector::from_name(d).ok_or_else(|| {
                    let known: Vec<&str> = Detector::ALL.iter().map(|d| d.name()).collect();
                    rule_err(
                        name,
                        "detector",
                        format!("unknown detector {d:?} (known: {})", known.join(", ")),
                    )
                })?),
            };
            let keep = match r.keep.as_deref() {
                None => None,
                Some("email_domain") => Some(Keep::EmailDomain),
                Some("ipv4_prefix") => Some(Keep::Ipv4Prefix),
                Some("signature_timestamp") => Some(Keep::SignatureTimestamp),
                Some("last") => Some(Keep::Last(r.keep_last.unwrap_or(4))),
                Some(k) => {
                    return Err(rule_err(
                        name,
                        "keep",
                        format!("unknown value {k:?} (known: email_domain, ipv4_prefix, signature_timestamp, last)"),
                    ));
                }
            };
            let action = match r.action.as_deref().unwrap_or("redact") {
                "redact" => Action::Redact,
                "mask" => Action::Mask(keep.ok_or_else(|| rule_err(name, "keep", "action \"mask\" needs keep"))?),
                "hash" => {
                    if set.pseudonym_key.is_none() {
                        return Err(rule_err(
                            name,
                            "action",
                            "action \"hash\" needs a pseudonym key ([scrub] pseudonym_key_file or \
                             pseudonym_key_credential); scrubd never hashes without a key",
                        ));
                    }
                    Action::Hash
                }
                "drop" => Action::Drop,
                a => {
                    return Err(rule_err(
                        name,
                        "action",
                        format!("unknown action {a:?} (known: redact, mask, hash, drop)"),
                    ));
                }
            };
            if keep.is_some() && !matches!(action, Action::Mask(_)) {
                return Err(rule_err(name, "keep", "keep is only valid with action \"mask\""));
            }
            if r.keep_last.is_some() && !matches!(keep, Some(Keep::Last(_))) {
                return Err(rule_err(
                    name,
                    "keep_last",
                    "keep_last is only valid with keep = \"last\"",
                ));
            }
            let (regex, regex_group) = match &r.regex {
                None => (None, 0),
                Some(re) => {
                    let compiled = regex::bytes::RegexBuilder::new(re)
                        .size_limit(10 << 20)
                        .build()
                        .map_err(|e| rule_err(name, "regex", format!("invalid regex: {e}")))?;
                    if compiled.is_match(b"") {
                        return Err(rule_err(name, "regex", "regex matches the empty string"));
                    }
                    let group = compiled
                        .capture_names()
                        .position(|n| n == Some("value"))
                        .unwrap_or(if compiled.captures_len() > 1 { 1 } else { 0 });
                    (Some(compiled), group)
                }
            };
            let formats = match &r.formats {
                None => None,
                Some(list) => Some(
                    list.iter()
                        .map(|f| {
                            parse_format(f).ok_or_else(|| rule_err(name, "formats", format!("unknown format {f:?}")))
                        })
                        .collect::<Result<Vec<_>, _>>()?,
                ),
            };
            let keys = r.keys.clone().unwrap_or_default();
            let context_keys = r.context_keys.clone().unwrap_or_default();
            for k in &keys {
                set.keys.add(k, idx, false).map_err(|m| rule_err(name, "keys", m))?;
            }
            for k in &context_keys {
                set.keys
                    .add(k, idx, true)
                    .map_err(|m| rule_err(name, "context_keys", m))?;
            }
            if detector.is_none() && regex.is_none() && keys.is_empty() && context_keys.is_empty() {
                return Err(rule_err(
                    name,
                    "detector",
                    "the rule matches nothing: set detector, keys, context_keys or regex",
                ));
            }
            if let Some(d) = detector {
                let di = Detector::ALL.iter().position(|x| *x == d).unwrap_or(0);
                set.by_detector[di].push(idx);
                if !set.detectors.contains(&d) {
                    set.detectors.push(d);
                }
            }
            if regex.is_some() {
                set.regex_rules.push(idx);
            }
            if r.sources.is_some() || formats.is_some() {
                set.any_scoped = true;
            }
            let mut matches = Vec::new();
            if let Some(d) = detector {
                matches.push(format!("detector {}", d.name()));
            }
            if !keys.is_empty() {
                matches.push(format!("keys {}", keys.join(", ")));
            }
            if !context_keys.is_empty() {
                matches.push(format!("person-context keys {}", context_keys.join(", ")));
            }
            if let Some(re) = &r.regex {
                matches.push(format!("regex {re}"));
            }
            if let Some(s) = &r.sources {
                matches.push(format!("sources {}", s.join(", ")));
            }
            if let Some(f) = &r.formats {
                matches.push(format!("formats {}", f.join(", ")));
            }
            let whole = r.whole.unwrap_or(false);
            let propagate = r.propagate.unwrap_or(false);
            let propagate_words = propagate && r.propagate_words.unwrap_or(false);
            if whole {
                matches.push("whole containers".into());
            }
            if propagate {
                matches.push("propagated".into());
            }
            canonical.push_str(&format!(
                "rule {name:?} detector={:?} keys={keys:?} context_keys={context_keys:?} regex={:?} \
                 sources={:?} formats={:?} action={action:?} whole={whole} propagate={propagate} words={propagate_words}\n",
                r.detector, r.regex, r.sources, r.formats
            ));
            set.rules.push(Rule {
                marker: format!("[REDACTED:{name}]").into_bytes(),
                name: name.clone(),
                action,
                whole,
                propagate,
                propagate_words,
                regex,
                regex_group,
                sources: r.sources.clone(),
                formats,
                matches: matches.join("; "),
            });
        }
        set.digest = hex::encode(sha2::Sha256::digest(canonical.as_bytes()));
        Ok(set)
    }

    /// The first in-scope rule naming detector `d`.
    #[inline]
    pub fn detector_rule(&self, d: Detector, active: &[bool]) -> Option<u16> {
        let di = Detector::ALL.iter().position(|x| *x == d)?;
        self.by_detector[di].iter().copied().find(|&r| active[r as usize])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, s, want) in [
            ("tr_*", "tr_source", true),
            ("tr_*", "xtr_source", false),
            ("*_email", "customer_email", true),
            ("*_email", "email", false),
            ("a?c", "abc", true),
            ("*sig*", "x_signature_256", true),
            ("*", "", true),
        ] {
            assert_eq!(glob_match(p.as_bytes(), s.as_bytes()), want, "{p} {s}");
        }
    }

    #[test]
    fn key_paths() {
        let mut m = KeyMatcher::default();
        m.add("metadata.tr_*", 0, false).unwrap();
        m.add("name", 1, true).unwrap();
        m.add("billing_details.name", 1, false).unwrap();
        m.add("Stripe-Signature", 2, false).unwrap();
        let look = |p: &str| {
            let segs: Vec<&[u8]> = p.split('.').map(|s| s.as_bytes()).collect();
            m.lookup(&segs)
        };
        assert_eq!(
            look("data.object.metadata.tr_src"),
            Some(KeyHit {
                rule: 0,
                context: false
            })
        );
        assert_eq!(look("tr_src"), None);
        assert_eq!(
            look("x.billing_details.name"),
            Some(KeyHit {
                rule: 1,
                context: false
            })
        );
        assert_eq!(look("product.name"), Some(KeyHit { rule: 1, context: true }));
        assert_eq!(
            look("stripe_signature"),
            Some(KeyHit {
                rule: 2,
                context: false
            })
        );
        assert_eq!(
            look("http_stripe_signature"),
            Some(KeyHit {
                rule: 2,
                context: false
            })
        );
    }
}
