//! Whether a short value has the shape of a person's name.
//!
//! The heuristic, in order:
//! 1. 2 to 80 bytes after trimming, at most 5 words (names with particles: "María de los Ángeles").
//! 2. Only letters (any script), spaces and the name punctuation `'`, `’`, `-`, `.`, `,`; no
//!    digits, `@`, `/`, `#`, `$`, `(`, `×`, `_`, … (emails, URLs, ids, amounts, order numbers).
//! 3. Every word starts with a letter; a word ending in `.` is an initial (`L.`) or a title
//!    (`Dr.`); other inner dots refuse the value (`acme.io`).
//! 4. No word is a product, plan, tier or company word ("Pro", "Plan", "Monthly", "Premium",
//!    "Tier", "Inc", "LTD", "Test", …); words that are also names ("Gold", "Silver", "Price",
//!    "Max") refuse only a one-word value.
//! 5. In a mixed-case value, an all-caps word of 2+ letters is an acronym ("ASR Premium"), not a
//!    name; an all-caps value ("JENNY ROSEN", as on cards) is a name.
//!
//! Limits: a single unknown word ("Acme", "Widget") passes, and a made-up product named like a
//! person ("Ada Lovelace Edition" is refused only for "Edition") cannot be told apart by shape.
//! The engine adds context (parent object, sibling keys such as email or phone) before trusting
//! this; fail-closed, a false "yes" costs a scrubbed product name, a false "no" leaks a name.
//!
//! Must not: allocate beyond a lowercase copy of one word.

/// Words that make a value a product, plan, tier, order or company name (compared lowercase).
const NOT_NAME_WORDS: &[&str] = &[
    "access",
    "account",
    "add-on",
    "addon",
    "agency",
    "ag",
    "annual",
    "annually",
    "api",
    "app",
    "basic",
    "bonus",
    "bundle",
    "business",
    "bv",
    "co",
    "company",
    "corp",
    "corporation",
    "coupon",
    "credit",
    "credits",
    "daily",
    "default",
    "digital",
    "discount",
    "edition",
    "elite",
    "enterprise",
    "essential",
    "essentials",
    "fee",
    "fees",
    "free",
    "gmbh",
    "group",
    "growth",
    "holdings",
    "hourly",
    "inc",
    "international",
    "invoice",
    "labs",
    "license",
    "licence",
    "lifetime",
    "limited",
    "lite",
    "llc",
    "llp",
    "ltd",
    "media",
    "member",
    "membership",
    "mini",
    "month",
    "monthly",
    "order",
    "pack",
    "package",
    "payment",
    "plan",
    "plans",
    "platinum",
    "plc",
    "plus",
    "premium",
    "pro",
    "product",
    "pty",
    "quarterly",
    "sarl",
    "scale",
    "seat",
    "seats",
    "service",
    "services",
    "shipping",
    "shop",
    "software",
    "solutions",
    "standard",
    "starter",
    "store",
    "studio",
    "subscription",
    "support",
    "systems",
    "tax",
    "team",
    "teams",
    "technologies",
    "test",
    "tier",
    "trial",
    "ultimate",
    "ultra",
    "unlimited",
    "upgrade",
    "usage",
    "user",
    "users",
    "week",
    "weekly",
    "widget",
    "widgets",
    "year",
    "yearly",
];

/// Product words that are also surnames or first names ("Nate Silver", "Vincent Price", "Max
/// Weber"): they refuse a value only when they are the whole value ("Gold").
const ALONE_NOT_NAME_WORDS: &[&str] = &["bronze", "diamond", "gold", "kit", "max", "price", "silver"];

/// Titles allowed before a name (with or without the dot).
const TITLES: &[&str] = &["dr", "mr", "mrs", "ms", "mx", "prof", "sir", "dame", "jr", "sr"];

pub(super) fn looks_like_person_name(value: &str) -> bool {
    let value = value.trim();
    if value.len() < 2 || value.len() > 80 {
        return false;
    }
    let allowed = |c: char| c.is_alphabetic() || matches!(c, ' ' | '\'' | '’' | '-' | '.' | ',');
    if !value.chars().all(allowed) {
        return false;
    }
    let words: Vec<&str> = value.split([' ', ',']).filter(|w| !w.is_empty()).collect();
    if words.is_empty() || words.len() > 5 {
        return false;
    }
    let all_caps = !value.chars().any(char::is_lowercase);
    let mut letters_total = 0;
    for (i, word) in words.iter().enumerate() {
        if !word.chars().next().is_some_and(char::is_alphabetic) {
            return false;
        }
        let bare = word.strip_suffix('.').unwrap_or(word);
        if bare.contains('.') {
            return false;
        }
        let lower = bare.to_lowercase();
        let alone = words.len() == 1 && ALONE_NOT_NAME_WORDS.contains(&lower.as_str());
        if alone || NOT_NAME_WORDS.contains(&lower.as_str()) {
            return false;
        }
        let letters = bare.chars().filter(|c| c.is_alphabetic()).count();
        letters_total += letters;
        let is_title = TITLES.contains(&lower.as_str());
        // A dot ends only an initial or a title.
        if word.ends_with('.') && letters > 1 && !is_title {
            return false;
        }
        let acronym = letters >= 2 && !bare.chars().any(char::is_lowercase);
        if acronym && !all_caps && !(is_title && i == 0) {
            return false;
        }
    }
    letters_total >= 2
}
