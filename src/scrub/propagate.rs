//! The propagation window of one source: values removed from structured fields, remembered for
//! a bounded number of records and bytes so that they are also removed where they reappear
//! (free text, descriptions, URLs, later records).
//!
//! Must not: grow without bound (at most `max_propagated_values` entries), or expose the values
//! it holds (no `Debug` of the values, no logging).

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasherDefault;

use super::engine::FxHasher;
use crate::simd::Chunk;

type FxMap<K, V> = HashMap<K, V, BuildHasherDefault<FxHasher>>;

/// A remembered value: the hashes of its words (see [`words`]).
type Seq = Box<[u64]>;

struct Meta {
    /// Increasing per insertion; tells a stale `order` slot from the live one.
    id: u64,
    rule: u16,
    /// Record counter and byte counter of the source when the value was last seen.
    seen_record: u64,
    seen_bytes: u64,
}

/// The propagation window of one source, carried between its records. `Default` is empty.
///
/// Values are kept as sequences of word hashes, not as text: the record's free-text zones are
/// cut into words (letters, digits, `_`, non-ASCII; `%XX` escapes, `+`, JSON escapes and
/// punctuation separate them) and a value matches where its words follow each other. No
/// automaton is rebuilt when values come and go, so a stream of new customers costs one hash
/// lookup per word; `ada%40example.com`, `Ada+Lovelace` and `ADA LOVELACE` match too.
#[derive(Default)]
pub struct SourceState {
    records: u64,
    bytes: u64,
    next_id: u64,
    values: FxMap<Seq, Meta>,
    /// Values by the hash of their first word.
    by_first: FxMap<u64, Vec<Seq>>,
    /// Insertion order, for evicting the oldest beyond `max_values` (may hold stale slots).
    order: VecDeque<(u64, Seq)>,
    /// Scratch: the words of the zone being searched.
    scratch: Vec<(usize, usize, u64)>,
    /// Key lookups of the scrubber this state is used with (key names only, bounded).
    pub(crate) key_cache: super::engine::KeyCache,
    /// Working vectors of the engine, reused between records (offsets only, no values).
    pub(crate) buffers: super::engine::Buffers,
}

impl std::fmt::Debug for SourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values themselves.
        f.debug_struct("SourceState")
            .field("records", &self.records)
            .field("values", &self.values.len())
            .finish()
    }
}

/// Window limits, copied from `[scrub]`.
#[derive(Clone, Copy, Debug)]
pub struct Window {
    pub records: u64,
    pub bytes: u64,
    pub max_values: usize,
    pub min_len: usize,
}

#[inline]
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b >= 0x80
}

/// Appends the words of `text[start..end]` as (start, end, hash of the lowercased word).
/// The hash of the word `text[s..e]`, ASCII case folded: eight bytes per step (FxHash's mixing),
/// so the multiply chain is an eighth of the word's length.
fn hash_word(text: &[u8], s: usize, e: usize) -> u64 {
    const LO: u64 = 0x0101_0101_0101_0101;
    const HI: u64 = 0x8080_8080_8080_8080;
    let mut h = (e - s) as u64;
    let mut p = s;
    while p < e {
        let n = (e - p).min(8);
        // Eight bytes read at once where the text has them, the bytes past the word masked off.
        let x = match text.get(p..p + 8) {
            Some(w) => u64::from_le_bytes(w.try_into().expect("eight bytes")) & (u64::MAX >> (64 - 8 * n)),
            // Fewer than eight bytes left in the text: this is the word's last (short) step.
            None => text[p..e].iter().rev().fold(0, |x, &b| x << 8 | u64::from(b)),
        };
        // The high bit of each byte in `A..=Z` (bytes >= 0x80 left alone), moved to 0x20.
        let y = x & !HI;
        let upper = (y + LO * u64::from(0x80 - b'A')) & !(y + LO * u64::from(0x7f - b'Z')) & !x & HI;
        h = (h.rotate_left(5) ^ (x | upper >> 2)).wrapping_mul(0x517c_c1b7_2722_0a95);
        p += n;
    }
    h
}

pub(crate) fn words(text: &[u8], start: usize, end: usize, out: &mut Vec<(usize, usize, u64)>) {
    let mut i = start;
    while i < end {
        // The gaps between words are skipped sixteen bytes at a time, up to a word byte or the
        // start of an escape.
        if i + 16 <= text.len() {
            let (word, escape) = classes(text, i);
            let stop = word | escape;
            if stop == 0 {
                i += 16;
                continue;
            }
            i += stop.trailing_zeros() as usize;
            if i >= end {
                break;
            }
        }
        if is_word(text[i]) {
            let s = i;
            i = word_end(text, i, end);
            out.push((s, i, hash_word(text, s, i)));
        } else {
            i = after_gap(text, i, end);
        }
    }
}

/// Where the words go on after the non-word byte at `i`: past a `%XX` or backslash escape
/// (JSON / Python `\n`, `\"`, `\u00e9` do not glue to the next word), else at the next byte.
fn after_gap(text: &[u8], i: usize, end: usize) -> usize {
    match text[i] {
        b'%' if i + 2 < end && text[i + 1].is_ascii_hexdigit() && text[i + 2].is_ascii_hexdigit() => i + 3,
        b'\\' if i + 1 < end => i + if text[i + 1] == b'u' { 6 } else { 2 },
        _ => i + 1,
    }
}

/// Bit k of each: `text[i + k]` is a word byte ([`is_word`]); starts an escape (`%`, `\`).
fn classes(text: &[u8], i: usize) -> (u32, u32) {
    let c = Chunk::load(&text[i..]);
    let word = c.in_range(b'0', b'9') | c.fold_case().in_range(b'a', b'z') | c.eq(b'_') | c.in_range(0x80, 0xff);
    (word, c.eq(b'%') | c.eq(b'\\'))
}

/// The end of the word starting at `i`, at most `end`; sixteen bytes at a time.
fn word_end(text: &[u8], mut i: usize, end: usize) -> usize {
    while i + 16 <= text.len() {
        let run = (!classes(text, i).0).trailing_zeros() as usize;
        i += run;
        if run < 16 || i >= end {
            return i.min(end);
        }
    }
    while i < end && is_word(text[i]) {
        i += 1;
    }
    i
}

impl SourceState {
    /// Number of values currently in the window.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    fn remove(&mut self, seq: &Seq) {
        if self.values.remove(seq).is_some()
            && let Some(list) = self.by_first.get_mut(&seq[0])
        {
            list.retain(|s| s != seq);
            if list.is_empty() {
                self.by_first.remove(&seq[0]);
            }
        }
    }

    /// Forgets values that fell out of the window before the current record.
    pub(crate) fn expire(&mut self, w: &Window) {
        let (r, b) = (self.records, self.bytes);
        if self.values.is_empty() {
            return;
        }
        let gone: Vec<Seq> = self
            .values
            .iter()
            .filter(|(_, m)| r - m.seen_record > w.records || b - m.seen_bytes > w.bytes)
            .map(|(k, _)| k.clone())
            .collect();
        for seq in &gone {
            self.remove(seq);
        }
    }

    /// Remembers `value` for rule `rule`.
    pub(crate) fn add(&mut self, value: &[u8], rule: u16, w: &Window) {
        if value.trim_ascii().len() < w.min_len || w.max_values == 0 {
            return;
        }
        let mut ws = Vec::new();
        words(value, 0, value.len(), &mut ws);
        if ws.is_empty() {
            return;
        }
        self.insert(ws.iter().map(|w| w.2).collect(), rule, w);
    }

    /// Remembers each word of `value` at least `min_len` bytes long.
    pub(crate) fn add_words(&mut self, value: &[u8], rule: u16, w: &Window) {
        let mut ws = Vec::new();
        words(value, 0, value.len(), &mut ws);
        if ws.len() < 2 {
            return;
        }
        for &(s, e, h) in &ws {
            if e - s >= w.min_len {
                self.insert(vec![h].into_boxed_slice(), rule, w);
            }
        }
    }

    fn insert(&mut self, seq: Seq, rule: u16, w: &Window) {
        let (r, b) = (self.records, self.bytes);
        if let Some(m) = self.values.get_mut(&seq) {
            m.seen_record = r;
            m.seen_bytes = b;
            return;
        }
        while self.values.len() >= w.max_values {
            let Some((id, old)) = self.order.pop_front() else {
                break;
            };
            if self.values.get(&old).is_some_and(|m| m.id == id) {
                self.remove(&old);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.by_first.entry(seq[0]).or_default().push(seq.clone());
        self.order.push_back((id, seq.clone()));
        self.values.insert(
            seq,
            Meta {
                id,
                rule,
                seen_record: r,
                seen_bytes: b,
            },
        );
        // `order` keeps stale slots of refreshed-then-expired values; compact it now and then.
        if self.order.len() > 4 * w.max_values.max(16) {
            let values = &self.values;
            self.order.retain(|(id, s)| values.get(s).is_some_and(|m| m.id == *id));
        }
    }

    /// Calls `f(start, end, rule)` for every occurrence of a remembered value in the `zones` of
    /// `hay` (sorted), longest first where values overlap, in order.
    pub(crate) fn find(&mut self, hay: &[u8], zones: &[(usize, usize)], mut f: impl FnMut(usize, usize, u16)) {
        if self.values.is_empty() {
            return;
        }
        let mut ws = std::mem::take(&mut self.scratch);
        for &(zs, ze) in zones {
            ws.clear();
            words(hay, zs, ze.min(hay.len()), &mut ws);
            let mut i = 0;
            while i < ws.len() {
                let mut best: Option<(usize, u16)> = None;
                if let Some(seqs) = self.by_first.get(&ws[i].2) {
                    for seq in seqs {
                        let n = seq.len();
                        if i + n <= ws.len()
                            && best.is_none_or(|(bn, _)| n > bn)
                            && ws[i..i + n].iter().zip(seq.iter()).all(|(w, h)| w.2 == *h)
                            && let Some(m) = self.values.get(seq)
                        {
                            best = Some((n, m.rule));
                        }
                    }
                }
                match best {
                    Some((n, rule)) => {
                        f(ws[i].0, ws[i + n - 1].1, rule);
                        i += n;
                    }
                    None => i += 1,
                }
            }
        }
        self.scratch = ws;
    }

    /// Advances the window past one record of `len` bytes.
    pub(crate) fn advance(&mut self, len: usize) {
        self.records += 1;
        self.bytes += len as u64;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The words of `text[start..end]` found a byte at a time: the definition.
    fn words_bytewise(text: &[u8], start: usize, end: usize) -> Vec<(usize, usize, u64)> {
        let mut out = Vec::new();
        let mut i = start;
        while i < end {
            if is_word(text[i]) {
                let s = i;
                while i < end && is_word(text[i]) {
                    i += 1;
                }
                out.push((s, i, hash_word(text, s, i)));
            } else {
                i = after_gap(text, i, end);
            }
        }
        out
    }

    proptest::proptest! {
        #[test]
        fn words_in_chunks_are_the_bytewise_words(
            picks in proptest::collection::vec(0usize..14, 0..120),
            start in 0usize..120,
            len in 0usize..120,
        ) {
            let parts: [&[u8]; 14] = [
                b"Ada", b" ", b"lovelace", b"%20", b"%", b"\\n", b"\\u00e9", b"\\", b"_x9", b"\xc3\xa9",
                b", ", b"\"", b"QQQQQQQQQQQQQQQQQQ", b"-",
            ];
            let text: Vec<u8> = picks.iter().flat_map(|&i| parts[i].iter().copied()).collect();
            let start = start.min(text.len());
            let end = (start + len).min(text.len());
            let mut got = Vec::new();
            words(&text, start, end, &mut got);
            proptest::prop_assert_eq!(got, words_bytewise(&text, start, end));
        }
    }

    #[test]
    fn word_hashes_fold_ascii_case_only() {
        // Hashed alone and inside a longer text (where eight bytes are read at once).
        let hash = |w: &[u8]| {
            let alone = hash_word(w, 0, w.len());
            let mut padded = w.to_vec();
            padded.extend_from_slice(b" and more text after it");
            assert_eq!(hash_word(&padded, 0, w.len()), alone, "{w:?}");
            alone
        };
        for (a, b) in [
            (&b"Ada"[..], &b"ADA"[..]),
            (b"lovelace_1815", b"LoveLace_1815"),
            (b"\xc3\x89mile", b"\xc3\x89MILE"),
        ] {
            assert_eq!(hash(a), hash(b));
        }
        // Every pair of distinct single bytes, and prefixes of a long word, hash apart.
        let all: std::collections::BTreeSet<u64> = (0..=255u8).map(|b| hash(&[b.to_ascii_lowercase()])).collect();
        assert_eq!(all.len(), 256 - 26);
        let long = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let prefixes: std::collections::BTreeSet<u64> = (1..=long.len()).map(|n| hash(&long[..n])).collect();
        assert_eq!(prefixes.len(), long.len());
        assert_ne!(hash(b"\xc3\x89mile"), hash(b"\xe3\x89mile"));
    }

    const W: Window = Window {
        records: 2,
        bytes: 1 << 20,
        max_values: 4,
        min_len: 4,
    };

    fn found(st: &mut SourceState, hay: &str) -> Vec<String> {
        let mut out = Vec::new();
        st.find(hay.as_bytes(), &[(0, hay.len())], |s, e, _| {
            out.push(hay[s..e].to_string())
        });
        out
    }

    #[test]
    fn window_and_variants() {
        let mut st = SourceState::default();
        st.add(b"Ada Lovelace", 0, &W);
        st.add_words(b"Ada Lovelace", 0, &W);
        st.add(b"ada@example.com", 1, &W);
        assert_eq!(
            found(&mut st, "x ada+lovelace, LOVELACE; ada%40example.com lovelaces"),
            vec!["ada+lovelace", "LOVELACE", "ada%40example.com"],
        );
        for _ in 0..3 {
            st.advance(10);
            st.expire(&W);
        }
        assert!(st.is_empty());
        for i in 0..10 {
            st.add(format!("value{i}").as_bytes(), 0, &W);
        }
        assert!(st.len() <= W.max_values);
    }

    #[test]
    fn many_values_expire_correctly() {
        let w = Window {
            records: 3,
            bytes: u64::MAX,
            max_values: 1000,
            min_len: 4,
        };
        let mut st = SourceState::default();
        for r in 0..200u32 {
            st.expire(&w);
            st.add(format!("value{r:04}").as_bytes(), 0, &w);
            let hay = format!(
                "value{:04} value{:04} value{r:04}",
                r.saturating_sub(3),
                r.saturating_sub(4)
            );
            let got = found(&mut st, &hay);
            // r-3 is still in the window, r-4 is not (except at the start)
            let mut want = vec![format!("value{:04}", r.saturating_sub(3))];
            if r < 4 {
                want.push(format!("value{:04}", r.saturating_sub(4)));
            }
            want.push(format!("value{r:04}"));
            let mut got_sorted = got.clone();
            got_sorted.sort();
            want.sort();
            assert_eq!(got_sorted, want, "record {r}");
            st.advance(10);
        }
        assert!(st.len() <= 5);
    }
}
