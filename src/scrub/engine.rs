//! The scrub pass over one record: find the structures (JSON, Python dicts) and walk them, scan
//! the text around them, run the detectors and the propagation window, then rebuild the record
//! with every sensitive span replaced and everything else byte for byte.
//!
//! Must not: fail, panic, recurse over the input, or log a value. Anything it cannot parse is
//! scanned in text mode with every sensitive-key pattern treated as sensitive (fail-closed).

use std::borrow::Cow;

use super::detect::{self, Match};
use super::propagate::SourceState;
use super::rules::{Action, Keep, KeyHit, RuleSet, norm};
use super::tokenize::{self, Scalar, Visitor, WalkError};
use super::{Scrubbed, Scrubber};
use crate::record::Format;

/// What to do with a span.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    /// Replace by the rule's action.
    Replace,
    /// Replace, inside double quotes (a JSON number becomes a string, so the JSON stays valid).
    ReplaceQuoted,
    /// Remove (the `drop` action in JSON).
    Remove,
}

#[derive(Clone, Copy, Debug)]
struct Edit {
    start: usize,
    end: usize,
    rule: u16,
    op: Op,
}

/// A value a rule took from a structured field, to propagate.
#[derive(Clone, Copy)]
struct Taken {
    start: usize,
    end: usize,
    rule: u16,
}

/// Working vectors reused from record to record of one source (kept in its `SourceState`), so the
/// hot path does not allocate them per record. Large ones are not kept (bounded memory).
#[derive(Default)]
pub(crate) struct Buffers {
    edits: Vec<Edit>,
    zones: Vec<(usize, usize)>,
    taken: Vec<Taken>,
    markers: Vec<(usize, usize)>,
    segs: Vec<(usize, usize)>,
    normbuf: Vec<u8>,
    matches: Vec<Match>,
}

const KEEP_CAPACITY: usize = 8192;

fn reuse<T>(mut v: Vec<T>) -> Vec<T> {
    v.clear();
    if v.capacity() > KEEP_CAPACITY { Vec::new() } else { v }
}

/// Per-record working state.
struct Ctx<'a> {
    set: &'a RuleSet,
    bytes: &'a [u8],
    active: Cow<'a, [bool]>,
    max_depth: usize,
    edits: Vec<Edit>,
    /// Where detectors, regexes and propagation may act: text regions and string values no key
    /// rule took; sorted, non-overlapping.
    zones: Vec<(usize, usize)>,
    taken: Vec<Taken>,
    /// Markers already present in the input (`[REDACTED:…]`…): never matched again.
    markers: Vec<(usize, usize)>,
    fallback: bool,
    event: Option<EventSpans>,
    cache: KeyCache,
    /// The key path of the current value: raw byte ranges of the keys (arrays add none).
    segs: Vec<(usize, usize)>,
    /// Scratch for normalising a key path.
    normbuf: Vec<u8>,
}

#[derive(Clone, Copy, Default)]
struct EventSpans {
    id: Option<(usize, usize)>,
    ty: Option<(usize, usize)>,
    object_is_event: bool,
    created: Option<(usize, usize)>,
}

const MARKER_PREFIXES: [&[u8]; 3] = [b"[REDACTED:", b"[MASKED:", b"[PSEUDONYM:"];

/// Appends the spans of the markers the engine writes (`[REDACTED:…]`, `[MASKED:…]`,
/// `[PSEUDONYM:…]`) found in `bytes`.
pub(crate) fn marker_spans(bytes: &[u8], out: &mut Vec<(usize, usize)>) {
    let mut i = 0;
    while let Some(off) = memchr::memchr(b'[', &bytes[i..]) {
        let p = i + off;
        i = p + 1;
        let rest = &bytes[p..];
        if rest.len() < 4 || !matches!(rest[1], b'R' | b'M' | b'P') {
            continue;
        }
        if MARKER_PREFIXES.iter().any(|m| rest.starts_with(m)) {
            let lim = rest.len().min(MARKER_REACH);
            if let Some(close) = memchr::memchr(b']', &rest[..lim])
                && rest[1..close].iter().all(|&b| is_marker_body(b))
            {
                out.push((p, p + close + 1));
                i = p + close + 1;
            }
        }
    }
}

/// Whether `bytes[at]` may lie inside a marker that starts before it: a marker's body holds only
/// letters, digits, `:`, `_` and `-` and ends within [`MARKER_REACH`] bytes of its `[`, so the
/// bytes before `at` lead back to that `[` within reach. Exact for a token (an id, say) that holds
/// no `[`: it cannot overlap a marker without starting inside one.
fn may_be_in_marker(bytes: &[u8], at: usize) -> bool {
    bytes[at.saturating_sub(MARKER_REACH)..at]
        .iter()
        .rev()
        .find(|&&b| !is_marker_body(b))
        == Some(&b'[')
}

fn is_marker_body(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b':' | b'_' | b'-')
}

/// A marker's `]` is at most this far from its `[`.
const MARKER_REACH: usize = 200;

pub(crate) fn overlaps_any(spans: &[(usize, usize)], s: usize, e: usize) -> bool {
    if spans.is_empty() {
        return false;
    }
    let idx = spans.partition_point(|&(_, pe)| pe <= s);
    idx < spans.len() && spans[idx].0 < e
}

/// Context class of an object or key for person names.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Class {
    Unknown,
    Person,
    Thing,
}

fn parent_class(key: &[u8]) -> Class {
    const PERSON: &[&[u8]] = &[
        b"billing_details",
        b"shipping",
        b"shipping_details",
        b"customer_details",
        b"customer_shipping",
        b"customer",
        b"owner",
        b"individual",
        b"person",
        b"cardholder",
        b"account_holder",
        b"recipient",
        b"user",
        b"contact",
        b"payer",
        b"buyer",
        b"author",
        b"committer",
        b"pusher",
        b"representative",
        b"bill_to",
        b"ship_to",
        b"billing",
        b"profile",
        b"guest",
        b"attendee",
        b"member",
        b"employee",
        b"patient",
        b"student",
    ];
    const THING: &[&[u8]] = &[
        b"product",
        b"products",
        b"plan",
        b"plans",
        b"price",
        b"prices",
        b"repository",
        b"repo",
        b"organization",
        b"org",
        b"app",
        b"application",
        b"team",
        b"project",
        b"company",
        b"business_profile",
        b"store",
        b"shop",
        b"line_items",
        b"lines",
        b"features",
        b"feature",
        b"coupon",
        b"promotion_code",
        b"tax_rate",
        b"shipping_rate",
        b"merchant",
        b"label",
        b"labels",
        b"branch",
        b"commit",
        b"file",
        b"event",
    ];
    if PERSON.contains(&key) || memchr::memmem::find(key, b"address").is_some() {
        Class::Person
    } else if THING.contains(&key) {
        Class::Thing
    } else {
        Class::Unknown
    }
}

fn object_class(v: &[u8]) -> Class {
    const PERSON: &[&[u8]] = &[
        b"customer",
        b"person",
        b"cardholder",
        b"issuing.cardholder",
        b"user",
        b"User",
        b"contact",
        b"account_holder",
    ];
    const THING: &[&[u8]] = &[
        b"product",
        b"plan",
        b"price",
        b"coupon",
        b"promotion_code",
        b"tax_rate",
        b"shipping_rate",
        b"payment_link",
        b"webhook_endpoint",
        b"file",
        b"tax_code",
        b"feature",
        b"entitlements.feature",
        b"billing.meter",
        b"terminal.location",
        b"repository",
        b"Organization",
        b"organization",
        b"Bot",
        b"team",
        b"app",
    ];
    if PERSON.contains(&v) {
        Class::Person
    } else if THING.contains(&v) {
        Class::Thing
    } else {
        Class::Unknown
    }
}

fn sibling_class(key: &[u8]) -> Class {
    match key {
        b"email" | b"phone" | b"address" | b"first_name" | b"last_name" | b"given_name" | b"family_name"
        | b"birth_date" | b"dob" | b"date_of_birth" | b"phone_number" | b"email_address" | b"login" => Class::Person,
        b"active"
        | b"unit_amount"
        | b"unit_amount_decimal"
        | b"price"
        | b"prices"
        | b"sku"
        | b"images"
        | b"package_dimensions"
        | b"shippable"
        | b"unit_label"
        | b"default_price"
        | b"statement_descriptor"
        | b"tax_code"
        | b"private"
        | b"fork"
        | b"default_branch"
        | b"nickname"
        | b"interval"
        | b"quantity"
        | b"product_id"
        | b"variant_id"
        | b"full_name"
        | b"trial_period_days"
        | b"vendor" => Class::Thing,
        _ => Class::Unknown,
    }
}

/// Which top-level key of an event a value belongs to.
#[derive(Clone, Copy, PartialEq, Eq)]
enum TopKey {
    None,
    Id,
    Type,
    Object,
    Created,
}

/// What the engine knows about one normalised key; depends only on the key, so it is cached.
#[derive(Clone, Copy)]
pub(crate) struct KeyInfo {
    /// Key patterns whose last segment matches this key: `KeyCache::pool[cands.0..cands.1]`.
    cands: (u32, u32),
    parent: Class,
    sib: Class,
    top: TopKey,
}

/// A small fast hasher for short keys (FxHash); the cache is per source and holds key names
/// only, never values.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        // Whole words first: with `chunks(8)` the copy into `b` has a length unknown at compile
        // time, a `memcpy` call per word.
        let mut words = bytes.chunks_exact(8);
        for w in &mut words {
            self.add(u64::from_le_bytes(w.try_into().expect("8 bytes")));
        }
        let rest = words.remainder();
        if !rest.is_empty() {
            let mut b = [0u8; 8];
            b[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(b));
        }
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

/// Key lookups of one scrubber, cached (bounded) in the source's state, by the key's raw bytes:
/// keys up to 24 bytes (nearly all) in a two-way set-associative table compared as three words,
/// longer ones, and those whose set is full, in a map.
#[derive(Default)]
pub(crate) struct KeyCache {
    owner: u64,
    short: Vec<([u64; 3], u8, KeyInfo)>,
    long: std::collections::HashMap<Box<[u8]>, KeyInfo, std::hash::BuildHasherDefault<FxHasher>>,
    pool: Vec<u32>,
    /// For each entry of `short`, the entry looked up right after it last time. Records of one
    /// source repeat their keys in the same order, so that entry is compared first: no hash to
    /// wait for before the table load.
    next: Vec<u16>,
    /// The entry of the previous lookup (`KEY_TABLE` when it was not in `short`).
    last: usize,
}

const KEY_TABLE: usize = 1024;
const KEY_CACHE_MAX: usize = 4096;
const POOL_MAX: usize = 1 << 16;
const EMPTY_INFO: KeyInfo = KeyInfo {
    cands: (0, 0),
    parent: Class::Unknown,
    sib: Class::Unknown,
    top: TopKey::None,
};

/// 24 bytes set then 24 clear: the 24 bytes from `KEEP[24 - n]` keep the first `n` bytes of a
/// 24-byte key and clear the rest.
const KEEP: [u8; 48] = {
    let mut t = [0u8; 48];
    let mut i = 0;
    while i < 24 {
        t[i] = 0xFF;
        i += 1;
    }
    t
};

/// The key `bytes[s..e]` as three little-endian words (zero past its end), if at most 24 bytes.
#[inline]
fn pack(bytes: &[u8], s: usize, e: usize) -> Option<[u64; 3]> {
    let len = e - s;
    if len > 24 {
        return None;
    }
    let word = |chunk: &[u8]| {
        let mut b = [0u8; 8];
        b[..chunk.len()].copy_from_slice(chunk);
        u64::from_le_bytes(b)
    };
    if let Some(w) = bytes.get(s..s + 24) {
        // Fast path: read 24 bytes and mask off what is past the key, without a branch per word
        // (key lengths vary from one key to the next, so branches would be mispredicted).
        let keep = &KEEP[24 - len..48 - len];
        let mut k = [0u64; 3];
        for (i, slot) in k.iter_mut().enumerate() {
            let at = |b: &[u8]| u64::from_le_bytes(b[8 * i..8 * i + 8].try_into().expect("eight bytes"));
            *slot = at(w) & at(keep);
        }
        return Some(k);
    }
    let raw = &bytes[s..e];
    let part = |i: usize| raw.get(8 * i..(8 * i + 8).min(len)).map_or(0, word);
    Some([part(0), part(1), part(2)])
}

/// The first way of the table set of a packed key of `len` bytes.
fn set_of(k: &[u64; 3], len: usize) -> usize {
    let h = (k[0] ^ k[1].rotate_left(21) ^ k[2].rotate_left(42) ^ len as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    ((h >> 52) as usize % KEY_TABLE) & !1
}

impl KeyCache {
    /// What is known about the key `bytes[s..e]`. The lookup of a cached key is inlined into
    /// the walker; the rest (a new key, a long one, the first use) is [`KeyCache::miss`].
    #[inline(always)]
    fn info(&mut self, set: &RuleSet, bytes: &[u8], s: usize, e: usize) -> KeyInfo {
        if let Some(k) = pack(bytes, s, e)
            && !self.short.is_empty()
        {
            let len = e - s;
            // Word by word: comparing the arrays whole makes a 16-byte load of `k`, which the
            // CPU cannot forward from the three 8-byte stores that just wrote it.
            let holds = |e: &([u64; 3], u8, KeyInfo)| {
                (e.0[0] ^ k[0]) | (e.0[1] ^ k[1]) | (e.0[2] ^ k[2]) == 0 && e.1 as usize == len
            };
            if let Some(&guess) = self.next.get(self.last)
                && holds(&self.short[guess as usize])
            {
                self.last = guess as usize;
                return self.short[self.last].2;
            }
            let i = set_of(&k, len);
            for j in [i, i + 1] {
                if holds(&self.short[j]) {
                    self.follow(j);
                    return self.short[j].2;
                }
            }
        }
        self.miss(set, bytes, s, e)
    }

    /// Entry `j` is looked up after the previous one: the guess for next time.
    #[inline(always)]
    fn follow(&mut self, j: usize) {
        if let Some(prev) = self.next.get_mut(self.last) {
            *prev = j as u16;
        }
        self.last = j;
    }

    /// [`KeyCache::info`] for a key not in the table: from the map, or computed and cached.
    #[cold]
    #[inline(never)]
    fn miss(&mut self, set: &RuleSet, bytes: &[u8], s: usize, e: usize) -> KeyInfo {
        let raw = &bytes[s..e];
        let packed = pack(bytes, s, e);
        let mut slot = None;
        if let Some(k) = packed {
            if self.short.is_empty() {
                self.short = vec![([0; 3], u8::MAX, EMPTY_INFO); KEY_TABLE];
                self.next = vec![0; KEY_TABLE];
                self.last = KEY_TABLE;
            }
            // A key goes to the way that is empty; when both are taken, to the map. Evicting
            // would make keys that share a set miss on every record, one after the other.
            let i = set_of(&k, raw.len());
            match [i, i + 1].into_iter().find(|&j| self.short[j].1 == u8::MAX) {
                Some(j) => {
                    self.follow(j);
                    slot = Some(j);
                }
                None => {
                    self.last = KEY_TABLE;
                    if let Some(&info) = self.long.get(raw) {
                        return info;
                    }
                }
            }
        } else {
            self.last = KEY_TABLE;
            if let Some(&info) = self.long.get(raw) {
                return info;
            }
        }
        if self.pool.len() >= POOL_MAX || self.long.len() >= KEY_CACHE_MAX {
            self.short.iter_mut().for_each(|e| e.1 = u8::MAX);
            self.long.clear();
            self.pool.clear();
        }
        let key: Vec<u8> = raw.iter().map(|&b| norm(b)).collect();
        let start = self.pool.len() as u32;
        set.keys.candidates(&key, &mut self.pool);
        let info = KeyInfo {
            cands: (start, self.pool.len() as u32),
            parent: parent_class(&key),
            sib: sibling_class(&key),
            top: match key.as_slice() {
                b"id" => TopKey::Id,
                b"type" => TopKey::Type,
                b"object" => TopKey::Object,
                b"created" => TopKey::Created,
                _ => TopKey::None,
            },
        };
        match (packed, slot) {
            (Some(k), Some(i)) => self.short[i] = (k, raw.len() as u8, info),
            _ => {
                self.long.insert(raw.into(), info);
            }
        }
        info
    }
}

/// Resolves a key hit for the path whose segments are `segs` (raw byte ranges of `bytes`),
/// normalising the segments into `buf` (only done when the last key has candidates).
fn resolve_path(
    set: &RuleSet,
    cache: &KeyCache,
    info: KeyInfo,
    bytes: &[u8],
    segs: &[(usize, usize)],
    buf: &mut Vec<u8>,
) -> Option<KeyHit> {
    let cands = &cache.pool[info.cands.0 as usize..info.cands.1 as usize];
    if cands.is_empty() || segs.is_empty() {
        return None;
    }
    let n = segs.len().min(8);
    buf.clear();
    let mut ranges = [(0usize, 0usize); 8];
    for (i, &(s, e)) in segs[segs.len() - n..].iter().enumerate() {
        let b = buf.len();
        buf.extend(bytes[s..e].iter().map(|&c| norm(c)));
        ranges[i] = (b, buf.len());
    }
    let mut path: [&[u8]; 8] = [&[]; 8];
    for i in 0..n {
        path[i] = &buf[ranges[i].0..ranges[i].1];
    }
    set.keys.resolve(cands, &path[..n])
}

struct Frame {
    is_obj: bool,
    /// segs length at this container's level (its members' keys go after).
    segs_base: usize,
    /// A `whole` rule covering everything inside.
    inherited: Option<u16>,
    /// Everything inside is removed by an enclosing `drop`.
    dead: bool,
    /// Scalars in this array get this rule (the array is the value of a matched key).
    elem_rule: Option<KeyHit>,
    /// This container is the value of a member dropped by this rule; member key start.
    drop_member: Option<(u16, usize)>,
    parent: Class,
    obj_type: Class,
    sib: Class,
    pending_base: usize,
    // member state (objects)
    key_start: usize,
    key_hit: Option<KeyHit>,
    key_class: Class,
    top_key: TopKey,
    kept_member: bool,
    leading_drop: Option<usize>,
    prev_value_end: usize,
}

struct Walker<'c, 'a> {
    cx: &'c mut Ctx<'a>,
    frames: Vec<Frame>,
    /// Context-key values waiting for their object to close: (content start, end, rule).
    pending: Vec<(usize, usize, u16)>,
    event: EventSpans,
}

impl Walker<'_, '_> {
    fn active_hit(&self, hit: Option<KeyHit>) -> Option<KeyHit> {
        hit.filter(|h| self.cx.active[h.rule as usize])
    }

    /// A member (or element) value spanning `start..end` is complete.
    fn member_done(&mut self, start: usize, end: usize, dropped_by: Option<u16>) {
        let Some(f) = self.frames.last_mut() else {
            return;
        };
        if !f.is_obj {
            return;
        }
        let _ = start;
        match dropped_by {
            Some(rule) if !f.dead => {
                if f.kept_member {
                    self.cx.edits.push(Edit {
                        start: f.prev_value_end,
                        end,
                        rule,
                        op: Op::Remove,
                    });
                } else if f.leading_drop.is_none() {
                    f.leading_drop = Some(f.key_start);
                    // Count the drop now; the removal span is completed later.
                    self.cx.edits.push(Edit {
                        start: f.key_start,
                        end: f.key_start,
                        rule,
                        op: Op::Remove,
                    });
                } else {
                    self.cx.edits.push(Edit {
                        start: f.key_start,
                        end: f.key_start,
                        rule,
                        op: Op::Remove,
                    });
                }
            }
            _ => {
                if let Some(s) = f.leading_drop.take() {
                    // Remove the leading dropped members with their commas, up to this key.
                    self.cx.edits.push(Edit {
                        start: s,
                        end: f.key_start,
                        rule: u16::MAX,
                        op: Op::Remove,
                    });
                }
                f.kept_member = true;
            }
        }
        f.prev_value_end = end;
        f.key_hit = None;
        f.top_key = TopKey::None;
    }

    #[inline]
    fn value_rule(&self) -> (Option<KeyHit>, bool) {
        let Some(f) = self.frames.last() else {
            return (None, false);
        };
        if f.dead {
            return (None, true);
        }
        if let Some(r) = f.inherited {
            return (
                Some(KeyHit {
                    rule: r,
                    context: false,
                }),
                false,
            );
        }
        if f.is_obj {
            (self.active_hit(f.key_hit), false)
        } else {
            (self.active_hit(f.elem_rule.filter(|h| !h.context)), false)
        }
    }

    fn take(&mut self, s: usize, e: usize, rule: u16, quote: bool) {
        self.cx.edits.push(Edit {
            start: s,
            end: e,
            rule,
            op: if quote { Op::ReplaceQuoted } else { Op::Replace },
        });
        if self.cx.set.rules[rule as usize].propagate {
            self.cx.taken.push(Taken { start: s, end: e, rule });
        }
    }

    /// A string value no rule took: a zone for detectors, and maybe `key=value` text.
    fn free_string(&mut self, s: usize, e: usize) {
        if s >= e {
            return;
        }
        self.cx.zones.push((s, e));
        if crate::simd::contains2(self.cx.bytes, s, e, b'=', b':') {
            scan_kv(self.cx, s, e, false);
        }
    }
}

// The callbacks run once per token: each is inlined into the tokenizer's loop, where the
// call and its register spills cost as much as a callback's own work.
impl Visitor for Walker<'_, '_> {
    #[inline(always)]
    fn open(&mut self, is_object: bool, start: usize) {
        let (hit, dead) = self.value_rule();
        let segs_base = self.cx.segs.len();
        let mut frame = Frame {
            is_obj: is_object,
            segs_base,
            inherited: None,
            dead,
            elem_rule: None,
            drop_member: None,
            parent: Class::Unknown,
            obj_type: Class::Unknown,
            sib: Class::Unknown,
            pending_base: self.pending.len(),
            key_start: start,
            key_hit: None,
            key_class: Class::Unknown,
            top_key: TopKey::None,
            kept_member: false,
            leading_drop: None,
            prev_value_end: start + 1,
        };
        if let Some(parent) = self.frames.last() {
            frame.inherited = parent.inherited;
            frame.parent = if parent.is_obj { parent.key_class } else { parent.parent };
            if let Some(h) = hit.filter(|h| !h.context) {
                let rule = &self.cx.set.rules[h.rule as usize];
                if rule.action == Action::Drop && parent.is_obj && frame.inherited.is_none() {
                    frame.drop_member = Some((h.rule, parent.key_start));
                    frame.dead = true;
                } else if rule.whole {
                    frame.inherited = Some(h.rule);
                } else if !is_object {
                    frame.elem_rule = Some(h);
                }
            }
        }
        self.frames.push(frame);
    }

    #[inline(always)]
    fn close(&mut self, end: usize) {
        let Some(f) = self.frames.pop() else {
            return;
        };
        self.cx.segs.truncate(f.segs_base);
        if f.is_obj {
            if let Some(s) = f.leading_drop {
                // Every member was dropped: remove from the first key to the last value.
                self.cx.edits.push(Edit {
                    start: s,
                    end: f.prev_value_end,
                    rule: u16::MAX,
                    op: Op::Remove,
                });
            }
            // Decide the pending context-key values (names) now that all siblings are known.
            let person = if f.parent == Class::Person || f.obj_type == Class::Person {
                Some(true)
            } else if f.obj_type == Class::Thing {
                Some(false)
            } else if f.sib == Class::Person {
                Some(true)
            } else if f.parent == Class::Thing || f.sib == Class::Thing {
                Some(false)
            } else {
                None
            };
            for i in f.pending_base..self.pending.len() {
                let (s, e, rule) = self.pending[i];
                let scrub = person.unwrap_or_else(|| match std::str::from_utf8(&self.cx.bytes[s..e]) {
                    Ok(v) => detect::looks_like_person_name(v),
                    Err(_) => true,
                });
                if scrub {
                    self.take(s, e, rule, false);
                } else {
                    self.free_string(s, e);
                }
            }
            self.pending.truncate(f.pending_base);
        }
        let dropped = f.drop_member.map(|(r, _)| r);
        self.member_done(0, end, dropped);
    }

    #[inline(always)]
    fn key(&mut self, start: usize, end: usize) {
        let cx = &mut *self.cx;
        let depth = self.frames.len();
        let Some(f) = self.frames.last_mut() else {
            return;
        };
        f.key_start = start;
        cx.segs.truncate(f.segs_base);
        let (ks, ke) = (start + 1, end.saturating_sub(1).max(start + 1));
        cx.segs.push((ks, ke));
        let info = cx.cache.info(cx.set, cx.bytes, ks, ke);
        f.key_class = info.parent;
        let sib = info.sib;
        if sib == Class::Person || (sib == Class::Thing && f.sib == Class::Unknown) {
            f.sib = sib;
        }
        f.top_key = match info.top {
            t if depth == 1 => t,
            TopKey::Object | TopKey::Type => TopKey::Object,
            _ => TopKey::None,
        };
        if f.dead || f.inherited.is_some() || info.cands.0 == info.cands.1 {
            f.key_hit = None;
            return;
        }
        f.key_hit = resolve_path(cx.set, &cx.cache, info, cx.bytes, &cx.segs, &mut cx.normbuf);
    }

    #[inline(always)]
    fn scalar(&mut self, start: usize, end: usize, kind: Scalar) {
        let (hit, dead) = self.value_rule();
        let depth = self.frames.len();
        let top_key = self.frames.last().map(|f| f.top_key).unwrap_or(TopKey::None);
        let (cs, ce) = if kind == Scalar::Str {
            (start + 1, end - 1)
        } else {
            (start, end)
        };
        if !dead {
            if top_key != TopKey::None {
                let v = &self.cx.bytes[cs..ce];
                match top_key {
                    TopKey::Id if depth == 1 => self.event.id = Some((cs, ce)),
                    TopKey::Type if depth == 1 => self.event.ty = Some((cs, ce)),
                    TopKey::Created if depth == 1 && kind == Scalar::Number => self.event.created = Some((cs, ce)),
                    TopKey::Object => {
                        if depth == 1 && v == b"event" {
                            self.event.object_is_event = true;
                        }
                        let c = object_class(v);
                        if let Some(f) = self.frames.last_mut()
                            && c != Class::Unknown
                        {
                            f.obj_type = c;
                        }
                    }
                    _ => {}
                }
            }
            match (hit, kind) {
                (_, Scalar::Word) => {}
                (Some(h), _) if h.context => {
                    if kind == Scalar::Str && cs < ce {
                        if overlaps_any(&self.cx.markers, cs, ce) {
                            self.free_string(cs, ce);
                        } else {
                            self.pending.push((cs, ce, h.rule));
                        }
                    }
                }
                (Some(h), _) => {
                    let rule = &self.cx.set.rules[h.rule as usize];
                    let is_member = self.frames.last().is_some_and(|f| f.is_obj);
                    if cs >= ce {
                    } else if overlaps_any(&self.cx.markers, cs, ce) {
                        // Already scrubbed (idempotence); detectors still look at the rest.
                        if kind == Scalar::Str {
                            self.free_string(cs, ce);
                        }
                    } else if rule.action == Action::Drop && is_member {
                        self.member_done(start, end, Some(h.rule));
                        return;
                    } else {
                        self.take(cs, ce, h.rule, kind == Scalar::Number);
                    }
                }
                (None, Scalar::Str) => self.free_string(cs, ce),
                (None, _) => {}
            }
        }
        self.member_done(start, end, None);
    }
}

/// Key bytes allowed in `key=value` text (with `[`/`]` for `billing_details[name]=`).
#[inline]
fn is_text_key(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'[' | b']')
}

/// Looks up a text key (`utm_source`, `billing_details[name]`, `X-Forwarded-For`).
fn text_key_hit(cx: &mut Ctx, ks: usize, ke: usize) -> Option<KeyHit> {
    if cx.set.keys.is_empty() || ks >= ke || ke - ks > 256 {
        return None;
    }
    let sbase = cx.segs.len();
    let mut s = ks;
    for i in ks..=ke {
        if i == ke || matches!(cx.bytes[i], b'.' | b'[' | b']') {
            if i > s {
                cx.segs.push((s, i));
            }
            s = i + 1;
        }
    }
    let hit = match cx.segs[sbase..].last() {
        Some(&(ls, le)) => {
            let info = cx.cache.info(cx.set, cx.bytes, ls, le);
            resolve_path(cx.set, &cx.cache, info, cx.bytes, &cx.segs[sbase..], &mut cx.normbuf)
        }
        None => None,
    };
    cx.segs.truncate(sbase);
    hit.filter(|h| cx.active[h.rule as usize])
}

/// Records a key-matched value found in text.
fn take_text_value(cx: &mut Ctx, hit: KeyHit, s: usize, e: usize, fallback: bool) {
    let v = &cx.bytes[s..e];
    let trimmed_len = v.trim_ascii().len();
    if trimmed_len == 0 || overlaps_any(&cx.markers, s, e) {
        return;
    }
    if hit.context && !fallback {
        let decoded: String = String::from_utf8_lossy(v).replace('+', " ");
        if !detect::looks_like_person_name(decoded.trim()) {
            return;
        }
    }
    // Trim surrounding whitespace from the replaced span.
    let lead = v.len() - v.trim_ascii_start().len();
    let (s, e) = (s + lead, s + lead + trimmed_len);
    cx.edits.push(Edit {
        start: s,
        end: e,
        rule: hit.rule,
        op: Op::Replace,
    });
    if cx.set.rules[hit.rule as usize].propagate {
        cx.taken.push(Taken {
            start: s,
            end: e,
            rule: hit.rule,
        });
    }
}

/// End of a quoted value starting at `s` (the opening quote, `q`, or `\q` when `escaped`);
/// returns (content start, content end, after). A value with no closing quote runs to `end`.
fn quoted_value(bytes: &[u8], s: usize, end: usize, escaped: bool) -> (usize, usize, usize) {
    if escaped {
        let q = bytes[s + 1];
        let cs = s + 2;
        let mut i = cs;
        while i + 1 < end {
            if bytes[i] == b'\\' && bytes[i + 1] == q {
                return (cs, i, i + 2);
            }
            i += 1;
        }
        (cs, end, end)
    } else {
        match tokenize::string_end(&bytes[..end], s) {
            Some(after) => (s + 1, after - 1, after),
            None => (s + 1, end, end),
        }
    }
}

/// Scans `bytes[start..end]` for `key=value`, `Key: value`, `"key": "value"` and `'key': value`
/// patterns whose key a rule names. In `fallback` mode context keys (`name`) always count.
fn scan_kv(cx: &mut Ctx, start: usize, end: usize, fallback: bool) {
    let bytes = cx.bytes;
    let mut i = start;
    while i < end {
        let Some(off) = memchr::memchr2(b'=', b':', &bytes[i..end]) else {
            break;
        };
        let p = i + off;
        i = p + 1;
        if bytes[p] == b'=' {
            let mut ks = p;
            while ks > start && is_text_key(bytes[ks - 1]) {
                ks -= 1;
            }
            if ks == p || (p + 1 < end && bytes[p + 1] == b'=') {
                continue;
            }
            let Some(hit) = text_key_hit(cx, ks, p) else {
                continue;
            };
            let vs = p + 1;
            if vs >= end {
                continue;
            }
            let (cs, ce, after) = if matches!(bytes[vs], b'"' | b'\'') {
                quoted_value(bytes, vs, end, false)
            } else if bytes[vs] == b'\\' && vs + 1 < end && matches!(bytes[vs + 1], b'"' | b'\'') {
                quoted_value(bytes, vs, end, true)
            } else {
                let mut e = vs;
                while e < end
                    && !matches!(
                        bytes[e],
                        b'&' | b' '
                            | b'\t'
                            | b'\r'
                            | b'\n'
                            | b';'
                            | b','
                            | b'"'
                            | b'\''
                            | b'<'
                            | b'>'
                            | b')'
                            | b']'
                            | b'}'
                            | b'\\'
                            | b'|'
                    )
                {
                    e += 1;
                }
                (vs, e, e)
            };
            take_text_value(cx, hit, cs, ce, fallback);
            i = after.max(p + 1);
        } else {
            // ':' — a quoted key (`"key": v`, `'key': v`, `\"key\": v`) or a header line.
            let mut j = p;
            while j > start && matches!(bytes[j - 1], b' ' | b'\t') {
                j -= 1;
            }
            if j == start {
                continue;
            }
            let q = bytes[j - 1];
            if q == b'"' || q == b'\'' {
                let escaped = j >= start + 2 && bytes[j - 2] == b'\\';
                let key_end = if escaped { j - 2 } else { j - 1 };
                // find the opening quote
                let lim = key_end.saturating_sub(128).max(start);
                let mut k = key_end;
                let mut key_start = None;
                while k > lim {
                    k -= 1;
                    if bytes[k] == q {
                        let prev_bs = k > start && bytes[k - 1] == b'\\';
                        if escaped == prev_bs {
                            key_start = Some(k + 1);
                        }
                        break;
                    }
                }
                let Some(ks) = key_start else {
                    continue;
                };
                let Some(hit) = text_key_hit(cx, ks, key_end) else {
                    continue;
                };
                let mut vs = p + 1;
                while vs < end && matches!(bytes[vs], b' ' | b'\t') {
                    vs += 1;
                }
                if vs >= end {
                    continue;
                }
                let (cs, ce, after) = if matches!(bytes[vs], b'"' | b'\'') && !escaped {
                    quoted_value(bytes, vs, end, false)
                } else if escaped && bytes[vs] == b'\\' && vs + 1 < end && bytes[vs + 1] == q {
                    quoted_value(bytes, vs, end, true)
                } else if matches!(bytes[vs], b'{' | b'[') {
                    continue;
                } else {
                    let mut e = vs;
                    while e < end && !matches!(bytes[e], b',' | b'}' | b']' | b' ' | b'\t' | b'\r' | b'\n' | b'\\') {
                        e += 1;
                    }
                    // null / true / None are not values
                    let w = &bytes[vs..e];
                    if matches!(w, b"null" | b"None" | b"true" | b"false" | b"True" | b"False") {
                        continue;
                    }
                    (vs, e, e)
                };
                take_text_value(cx, hit, cs, ce, fallback);
                i = after.max(p + 1);
            } else {
                // `Key: value` header line: the key starts a line (or follows whitespace).
                if p + 1 >= end || !matches!(bytes[p + 1], b' ' | b'\t') {
                    continue;
                }
                let mut ks = p;
                while ks > start && (bytes[ks - 1].is_ascii_alphanumeric() || matches!(bytes[ks - 1], b'_' | b'-')) {
                    ks -= 1;
                }
                if ks == p
                    || (ks > start
                        && !matches!(bytes[ks - 1], b' ' | b'\t' | b'\n' | b'\r' | b'{' | b',' | b'(' | b'|'))
                {
                    continue;
                }
                let Some(hit) = text_key_hit(cx, ks, p) else {
                    continue;
                };
                let vs = p + 2;
                let mut e = vs;
                while e < end && !matches!(bytes[e], b'\r' | b'\n') {
                    if bytes[e] == b'\\' && e + 1 < end && matches!(bytes[e + 1], b'r' | b'n' | b'"') {
                        break;
                    }
                    e += 1;
                }
                take_text_value(cx, hit, vs, e, fallback);
                i = e.max(p + 1);
            }
        }
    }
}

/// Whether `{` / `[` at `p` looks like the start of a structure worth walking.
fn structure_start(bytes: &[u8], p: usize) -> bool {
    let mut j = p + 1;
    while j < bytes.len() && matches!(bytes[j], b' ' | b'\t' | b'\r' | b'\n') {
        j += 1;
    }
    let Some(&n) = bytes.get(j) else {
        return bytes[p] == b'{';
    };
    match bytes[p] {
        b'{' => matches!(n, b'"' | b'\'' | b'}'),
        _ => matches!(n, b'{' | b'['),
    }
}

/// Text outside structures: a zone plus `key=value` patterns.
fn text_region(cx: &mut Ctx, s: usize, e: usize, fallback: bool) {
    if s >= e {
        return;
    }
    cx.zones.push((s, e));
    scan_kv(cx, s, e, fallback);
}

impl Scrubber {
    pub(super) fn scrub_bytes(
        &self,
        bytes: &[u8],
        format: Format,
        source: Option<&str>,
        fragment: bool,
        state: &mut SourceState,
    ) -> Scrubbed {
        let set = &self.set;
        let active: Cow<[bool]> = if set.any_scoped {
            Cow::Owned(set.rules.iter().map(|r| r.in_scope(source, format)).collect())
        } else {
            Cow::Borrowed(&self.all_active)
        };
        let buf = std::mem::take(&mut state.buffers);
        let mut matches = reuse(buf.matches);
        let mut cx = Ctx {
            set,
            bytes,
            active,
            max_depth: self.max_depth,
            edits: reuse(buf.edits),
            zones: reuse(buf.zones),
            taken: reuse(buf.taken),
            markers: reuse(buf.markers),
            fallback: false,
            event: None,
            cache: {
                let mut c = std::mem::take(&mut state.key_cache);
                if c.owner != self.id {
                    c = KeyCache {
                        owner: self.id,
                        ..Default::default()
                    };
                }
                c
            },
            segs: reuse(buf.segs),
            normbuf: reuse(buf.normbuf),
        };
        marker_spans(bytes, &mut cx.markers);

        if fragment {
            cx.fallback = true;
            text_region(&mut cx, 0, bytes.len(), true);
        } else {
            structure_pass(&mut cx);
        }
        // Context-key values judged "not a person" become zones when their object closes, after
        // the zones of later siblings: restore the order the cursors below rely on.
        cx.zones.sort_unstable();

        // Detectors and user regexes, in the zones only.
        if !set.detectors.is_empty() && !cx.zones.is_empty() {
            self.detectors.find_in_zones(bytes, &cx.zones, &mut matches);
            let mut zi = 0;
            for m in &matches {
                let Some(rule) = set.detector_rule(m.detector, &cx.active) else {
                    continue;
                };
                if overlaps_any(&cx.markers, m.start, m.end) {
                    continue;
                }
                clip_to_zones(&cx.zones, &mut zi, m.start, m.end, |s, e| {
                    cx.edits.push(Edit {
                        start: s,
                        end: e,
                        rule,
                        op: Op::Replace,
                    })
                });
            }
        }
        for &ri in &set.regex_rules {
            if !cx.active[ri as usize] {
                continue;
            }
            let rule = &set.rules[ri as usize];
            let Some(re) = &rule.regex else { continue };
            let mut zi = 0;
            for caps in re.captures_iter(bytes) {
                let Some(m) = caps.get(rule.regex_group).or_else(|| caps.get(0)) else {
                    continue;
                };
                if m.start() == m.end() || overlaps_any(&cx.markers, m.start(), m.end()) {
                    continue;
                }
                clip_to_zones(&cx.zones, &mut zi, m.start(), m.end(), |s, e| {
                    cx.edits.push(Edit {
                        start: s,
                        end: e,
                        rule: ri,
                        op: Op::Replace,
                    })
                });
            }
        }

        // Propagation: this record's taken values join the window, then the window is searched.
        state.expire(&self.window);
        for t in &cx.taken {
            let v = &bytes[t.start..t.end];
            state.add(v, t.rule, &self.window);
            if set.rules[t.rule as usize].propagate_words {
                state.add_words(v, t.rule, &self.window);
            }
        }
        if !state.is_empty() {
            let markers = &cx.markers;
            let edits = &mut cx.edits;
            state.find(bytes, &cx.zones, |s, e, rule| {
                if !overlaps_any(markers, s, e) {
                    edits.push(Edit {
                        start: s,
                        end: e,
                        rule,
                        op: Op::Replace,
                    });
                }
            });
        }
        state.advance(bytes.len());
        state.key_cache = std::mem::take(&mut cx.cache);

        let mut out = self.assemble(bytes, &mut cx.edits);
        out.fallback = cx.fallback;
        if let Some(ev) = cx.event {
            let get = |sp: Option<(usize, usize)>| sp.map(|(s, e)| String::from_utf8_lossy(&bytes[s..e]).into_owned());
            let id = get(ev.id).filter(|id| id.starts_with("evt_"));
            if id.is_some() || ev.object_is_event {
                out.event_id = id;
                out.event_type = get(ev.ty).filter(|t| !t.is_empty() && !t.contains('['));
                out.timestamp_ms = ev
                    .created
                    .and_then(|(s, e)| std::str::from_utf8(&bytes[s..e]).ok()?.parse::<i64>().ok())
                    .map(|c| if c < 100_000_000_000 { c.saturating_mul(1000) } else { c });
            }
        }
        state.buffers = Buffers {
            edits: cx.edits,
            zones: cx.zones,
            taken: cx.taken,
            markers: cx.markers,
            segs: cx.segs,
            normbuf: cx.normbuf,
            matches,
        };
        out
    }

    /// Rebuilds the record with the edits applied; fills counts, pseudonyms and ids.
    fn assemble(&self, bytes: &[u8], edits: &mut [Edit]) -> Scrubbed {
        let set = &self.set;
        // Stable: on equal starts the earlier-added (structured) edit wins.
        edits.sort_by(|a, b| a.start.cmp(&b.start).then(b.end.cmp(&a.end)));
        let mut out = Scrubbed {
            bytes: Vec::with_capacity(bytes.len() + 64),
            ..Default::default()
        };
        let mut counts = vec![0u64; set.rules.len()];
        let mut pos = 0;
        for ed in edits.iter() {
            if ed.op == Op::Remove && ed.start == ed.end {
                // The count of a leading drop; its span comes with a later edit.
                if (ed.rule as usize) < counts.len() {
                    counts[ed.rule as usize] += 1;
                }
                continue;
            }
            if ed.start < pos {
                if ed.end <= pos {
                    continue; // inside an earlier edit
                }
                // Overlap: the earlier edit's replacement already stands; redact the rest.
                if ed.op == Op::Remove {
                    pos = ed.end;
                    continue;
                }
                out.bytes.extend_from_slice(&set.rules[ed.rule as usize].marker);
                pos = ed.end;
                continue;
            }
            out.bytes.extend_from_slice(&bytes[pos..ed.start]);
            pos = ed.end;
            if ed.op == Op::Remove {
                if ed.rule != u16::MAX {
                    counts[ed.rule as usize] += 1;
                }
                continue;
            }
            counts[ed.rule as usize] += 1;
            let quote = ed.op == Op::ReplaceQuoted;
            if quote {
                out.bytes.push(b'"');
            }
            self.apply(ed.rule, &bytes[ed.start..ed.end], &mut out);
            if quote {
                out.bytes.push(b'"');
            }
        }
        out.bytes.extend_from_slice(&bytes[pos.min(bytes.len())..]);
        for (i, c) in counts.iter().enumerate() {
            if *c > 0 {
                out.counts.insert(set.rules[i].name.clone(), *c);
            }
        }
        // Ids from the scrubbed bytes, never from inside a marker. The markers are found only
        // for an id that may be inside one, which few are.
        let mut ranges = Vec::new();
        detect::find_ids(&out.bytes, &mut ranges);
        let mut marks: Option<Vec<(usize, usize)>> = None;
        for r in ranges {
            if r.end > out.bytes.len() {
                continue;
            }
            if may_be_in_marker(&out.bytes, r.start) {
                let marks = marks.get_or_insert_with(|| {
                    let mut m = Vec::new();
                    marker_spans(&out.bytes, &mut m);
                    m
                });
                if overlaps_any(marks, r.start, r.end) {
                    continue;
                }
            }
            let id = &out.bytes[r];
            if !out.ids.iter().any(|x| x.as_bytes() == id) {
                // Ids are ASCII: `from_utf8`'s ASCII fast path, not the lossy decoder.
                out.ids.push(
                    std::str::from_utf8(id).map_or_else(|_| String::from_utf8_lossy(id).into_owned(), str::to_owned),
                );
            }
        }
        out
    }

    /// Writes the replacement of `value` under rule `ri`.
    fn apply(&self, ri: u16, value: &[u8], out: &mut Scrubbed) {
        let rule = &self.set.rules[ri as usize];
        let masked = |out: &mut Vec<u8>| {
            out.extend_from_slice(b"[MASKED:");
            out.extend_from_slice(rule.name.as_bytes());
            out.push(b']');
        };
        match rule.action {
            Action::Redact | Action::Drop => out.bytes.extend_from_slice(&rule.marker),
            Action::Hash => match self.token(value) {
                Some(tok) => {
                    out.bytes.extend_from_slice(b"[PSEUDONYM:");
                    out.bytes.extend_from_slice(tok.as_bytes());
                    out.bytes.push(b']');
                    if !out.pseudonyms.contains(&tok) {
                        out.pseudonyms.push(tok);
                    }
                }
                None => out.bytes.extend_from_slice(&rule.marker),
            },
            Action::Mask(keep) => match keep {
                Keep::EmailDomain => match memchr::memrchr(b'@', value) {
                    Some(at) if at + 1 < value.len() && value[at + 1..].iter().all(|&b| is_domain_byte(b)) => {
                        masked(&mut out.bytes);
                        out.bytes.extend_from_slice(&value[at..]);
                    }
                    _ => out.bytes.extend_from_slice(&rule.marker),
                },
                Keep::Ipv4Prefix => match ipv4_prefix_len(value) {
                    Some(n) => {
                        out.bytes.extend_from_slice(&value[..n]);
                        masked(&mut out.bytes);
                    }
                    None => out.bytes.extend_from_slice(&rule.marker),
                },
                Keep::SignatureTimestamp => match signature_timestamp(value) {
                    Some(t) => {
                        out.bytes.extend_from_slice(t);
                        masked(&mut out.bytes);
                    }
                    None => out.bytes.extend_from_slice(&rule.marker),
                },
                Keep::Last(n) => {
                    // Keep the last n characters, never splitting a UTF-8 sequence, and only
                    // when the value is clearly longer than what is kept.
                    let mut cut = value.len();
                    let mut chars = 0;
                    while cut > 0 && chars < n {
                        cut -= 1;
                        while cut > 0 && (value[cut] & 0xC0) == 0x80 {
                            cut -= 1;
                        }
                        chars += 1;
                    }
                    masked(&mut out.bytes);
                    if cut > 0 && value.len() - cut < value.len() / 2 + 1 && value.len() > n {
                        out.bytes.extend_from_slice(&value[cut..]);
                    }
                }
            },
        }
    }
}

fn is_domain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-')
}

/// For a plain IPv4 address, the length of its first three octets with their dots (`1.2.3.`).
fn ipv4_prefix_len(v: &[u8]) -> Option<usize> {
    let mut dots = 0;
    let mut third = 0;
    let mut digits = 0;
    for (i, &b) in v.iter().enumerate() {
        match b {
            b'0'..=b'9' => {
                digits += 1;
                if digits > 3 {
                    return None;
                }
            }
            b'.' if digits > 0 => {
                dots += 1;
                digits = 0;
                if dots == 3 {
                    third = i + 1;
                }
            }
            _ => return None,
        }
    }
    (dots == 3 && digits > 0).then_some(third)
}

/// `t=1733285241,` at the start of a signature header value.
fn signature_timestamp(v: &[u8]) -> Option<&[u8]> {
    let rest = v.strip_prefix(b"t=")?;
    let n = rest.iter().take_while(|b| b.is_ascii_digit()).count();
    if n == 0 || rest.get(n) != Some(&b',') {
        return None;
    }
    Some(&v[..2 + n + 1])
}

/// Calls `f` with each intersection of `start..end` with the sorted `zones`; `zi` is a cursor
/// for monotone queries (reset when a query starts before it).
fn clip_to_zones(zones: &[(usize, usize)], zi: &mut usize, start: usize, end: usize, mut f: impl FnMut(usize, usize)) {
    if *zi > 0 && *zi <= zones.len() && zones[*zi - 1].1 > start {
        *zi = zones.partition_point(|&(_, ze)| ze <= start);
    }
    while *zi < zones.len() && zones[*zi].1 <= start {
        *zi += 1;
    }
    let mut k = *zi;
    while k < zones.len() && zones[k].0 < end {
        let (zs, ze) = zones[k];
        let (s, e) = (start.max(zs), end.min(ze));
        if s < e {
            f(s, e);
        }
        k += 1;
    }
}

/// Finds the structures of a record, walks them, and scans the text around them.
fn structure_pass(cx: &mut Ctx) {
    let bytes = cx.bytes;
    let n = bytes.len();
    let mut i = 0;
    let mut text_start = 0;
    while i < n {
        let Some(off) = memchr::memchr2(b'{', b'[', &bytes[i..]) else {
            break;
        };
        let p = i + off;
        if !structure_start(bytes, p) {
            i = p + 1;
            continue;
        }
        let saved = (cx.edits.len(), cx.zones.len(), cx.taken.len());
        // The text before the structure first, so zones stay sorted.
        text_region(cx, text_start, p, false);
        let mut w = Walker {
            cx,
            frames: Vec::with_capacity(16),
            pending: Vec::new(),
            event: EventSpans::default(),
        };
        let res = tokenize::walk(bytes, p, w.cx.max_depth, &mut w);
        let event = w.event;
        cx.segs.clear();
        match res {
            Ok(end) => {
                if cx.event.is_none() && (event.id.is_some() || event.object_is_event) {
                    cx.event = Some(event);
                }
                text_start = end;
                i = end;
            }
            Err(err) => {
                // Fail-closed: forget what the walk did and scan the rest as text, with every
                // sensitive key sensitive.
                let _: WalkError = err;
                cx.edits.truncate(saved.0);
                cx.zones.truncate(saved.1);
                cx.taken.truncate(saved.2);
                cx.fallback = true;
                text_region(cx, text_start, p, false);
                text_region(cx, p, n, true);
                return;
            }
        }
    }
    text_region(cx, text_start, n, false);
}

#[cfg(test)]
mod key_cache_tests {
    use super::*;

    proptest::proptest! {
        /// The masked 24-byte read packs a key as its bytes zero-padded, wherever it ends.
        #[test]
        fn pack_is_the_key_zero_padded(bytes in proptest::collection::vec(1u8.., 0..60), s in 0usize..60, n in 0usize..30) {
            let s = s.min(bytes.len());
            let e = (s + n).min(bytes.len());
            let mut padded = bytes[s..e].to_vec();
            padded.resize(24, 0);
            let want = (e - s <= 24).then(|| {
                [0, 1, 2].map(|i| u64::from_le_bytes(padded[8 * i..8 * i + 8].try_into().unwrap()))
            });
            proptest::prop_assert_eq!(pack(&bytes, s, e), want);
        }
    }

    /// Keys that share a table set all stay cached: looking them up in turn computes each once.
    #[test]
    fn keys_sharing_a_set_are_computed_once() {
        let scrubber = crate::scrub::Scrubber::builtin();
        let keys: Vec<String> = (0..)
            .map(|n| format!("key_{n}"))
            .filter(|k| set_of(&pack(k.as_bytes(), 0, k.len()).expect("short key"), k.len()) == 0)
            .take(4)
            .collect();
        // Known keys too, so that some have candidates in the pool.
        let keys: Vec<String> = keys.into_iter().chain(["email".into(), "name".into()]).collect();
        let mut cache = KeyCache::default();
        let mut first = Vec::new();
        for k in &keys {
            let info = cache.info(&scrubber.set, k.as_bytes(), 0, k.len());
            first.push((info.cands, info.parent, info.sib));
        }
        let (pool, long) = (cache.pool.len(), cache.long.len());
        assert!(long >= 2, "keys beyond the two ways of their set go to the map");
        for _ in 0..3 {
            for (k, want) in keys.iter().zip(&first) {
                let info = cache.info(&scrubber.set, k.as_bytes(), 0, k.len());
                assert_eq!((info.cands, info.parent, info.sib), *want, "{k}");
            }
        }
        assert_eq!(
            (cache.pool.len(), cache.long.len()),
            (pool, long),
            "nothing was computed again"
        );
    }
}

#[cfg(test)]
mod marker_tests {
    use super::*;

    proptest::proptest! {
        /// Every id that overlaps a marker is one `may_be_in_marker` sends to the marker check.
        #[test]
        fn ids_inside_markers_are_always_checked(picks in proptest::collection::vec(0usize..10, 0..40)) {
            let parts: [&[u8]; 10] = [
                b"[REDACTED:", b"[PSEUDONYM:email:", b"[MASKED:", b"cus_AbC12345678", b"]", b" ", b"\"",
                b"[", b"x-", b"pi_3Mtw1ZLkdIwHu7ix28a3tqPa_secret_",
            ];
            let text: Vec<u8> = picks.iter().flat_map(|&i| parts[i].iter().copied()).collect();
            let mut marks = Vec::new();
            marker_spans(&text, &mut marks);
            let mut ids = Vec::new();
            detect::find_ids(&text, &mut ids);
            for r in ids {
                if overlaps_any(&marks, r.start, r.end) {
                    proptest::prop_assert!(may_be_in_marker(&text, r.start), "{:?} in {:?}", r, String::from_utf8_lossy(&text));
                }
            }
        }
    }
}
