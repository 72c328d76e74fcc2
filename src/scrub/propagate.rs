//! The propagation window of one source: values removed from structured fields, remembered for
//! a bounded number of records and bytes so that they are also removed where they reappear
//! (free text, descriptions, URLs, later records).
//!
//! Must not: grow without bound (at most `max_propagated_values` entries), or expose the values
//! it holds (no `Debug` of the values, no logging).

use std::collections::VecDeque;

use aho_corasick::{AhoCorasick, MatchKind};

struct Entry {
    /// Increasing; `entries` stays sorted by it.
    id: u64,
    /// ASCII-lowercased value (or a percent-encoded variant of it).
    pattern: Box<[u8]>,
    rule: u16,
    /// Record counter and byte counter of the source when the value was last seen.
    seen_record: u64,
    seen_bytes: u64,
}

/// An automaton over some entries; `ids[pattern]` is the entry of each pattern.
struct Tier {
    ac: AhoCorasick,
    ids: Vec<u64>,
    rules: Vec<u16>,
}

impl Tier {
    fn build<'e>(entries: impl Iterator<Item = &'e Entry> + Clone) -> Option<Tier> {
        let ac = AhoCorasick::builder()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::LeftmostLongest)
            .build(entries.clone().map(|e| &*e.pattern))
            .ok()?;
        Some(Tier {
            ac,
            ids: entries.clone().map(|e| e.id).collect(),
            rules: entries.map(|e| e.rule).collect(),
        })
    }
}

/// New values are searched with a small automaton rebuilt when they change; the large one over
/// older values is rebuilt only when this many new values accumulated (or half of it expired),
/// so a stream of new customers does not rebuild a big automaton per record.
const RECENT_MAX: usize = 48;

/// The propagation window of one source, carried between its records. `Default` is empty.
#[derive(Default)]
pub struct SourceState {
    records: u64,
    bytes: u64,
    next_id: u64,
    entries: VecDeque<Entry>,
    /// Automaton over the entries with `id < base_upto` when it was built.
    base: Option<Tier>,
    base_upto: u64,
    /// Entries of `base` expired since it was built (their matches are ignored).
    base_dead: usize,
    recent: Option<Tier>,
    recent_dirty: bool,
    /// Key lookups of the scrubber this state is used with (key names only, bounded).
    pub(crate) key_cache: super::engine::KeyCache,
}

impl std::fmt::Debug for SourceState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the values themselves.
        f.debug_struct("SourceState")
            .field("records", &self.records)
            .field("values", &self.entries.len())
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

impl SourceState {
    /// Number of values currently in the window.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn removed(&mut self, id: u64) {
        if id < self.base_upto {
            self.base_dead += 1;
        } else {
            self.recent_dirty = true;
        }
    }

    /// Forgets values that fell out of the window before the current record.
    pub(crate) fn expire(&mut self, w: &Window) {
        let (r, b) = (self.records, self.bytes);
        let mut gone = Vec::new();
        self.entries.retain(|e| {
            let keep = r - e.seen_record <= w.records && b - e.seen_bytes <= w.bytes;
            if !keep {
                gone.push(e.id);
            }
            keep
        });
        for id in gone {
            self.removed(id);
        }
    }

    /// Remembers `value` (and its percent-encoded spellings) for rule `rule`.
    pub(crate) fn add(&mut self, value: &[u8], rule: u16, w: &Window) {
        let value = value.trim_ascii();
        if value.len() < w.min_len || w.max_values == 0 {
            return;
        }
        let lower: Vec<u8> = value.iter().map(|b| b.to_ascii_lowercase()).collect();
        let mut variants = vec![lower];
        if variants[0].iter().any(|&b| needs_encoding(b)) {
            variants.push(percent_encode(&variants[0], false));
            if variants[0].contains(&b' ') {
                variants.push(percent_encode(&variants[0], true));
            }
        }
        for v in variants {
            self.insert(v.into_boxed_slice(), rule, w);
        }
    }

    /// Remembers each word of `value` at least `min_len` bytes long.
    pub(crate) fn add_words(&mut self, value: &[u8], rule: u16, w: &Window) {
        for word in value.split(|&b| !(b.is_ascii_alphanumeric() || b >= 0x80 || b == b'\'' || b == b'-')) {
            let word = trim_punct(word);
            if word.len() >= w.min_len && word.len() < value.trim_ascii().len() {
                self.add(word, rule, w);
            }
        }
    }

    fn insert(&mut self, pattern: Box<[u8]>, rule: u16, w: &Window) {
        let (r, b) = (self.records, self.bytes);
        if let Some(e) = self.entries.iter_mut().find(|e| e.pattern == pattern) {
            e.seen_record = r;
            e.seen_bytes = b;
            return;
        }
        while self.entries.len() >= w.max_values {
            // Oldest first (by first sighting): this may drop a refreshed value early, which
            // only shortens its window.
            if let Some(e) = self.entries.pop_front() {
                self.removed(e.id);
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        self.entries.push_back(Entry {
            id,
            pattern,
            rule,
            seen_record: r,
            seen_bytes: b,
        });
        self.recent_dirty = true;
    }

    fn alive(&self, id: u64) -> bool {
        self.entries.binary_search_by_key(&id, |e| e.id).is_ok()
    }

    /// Calls `f(start, end, rule)` for every occurrence of a remembered value in `hay`
    /// (case-insensitive, leftmost-longest, not inside a longer word). Occurrences come sorted
    /// per automaton, not overall.
    pub(crate) fn find(&mut self, hay: &[u8], mut f: impl FnMut(usize, usize, u16)) {
        if self.entries.is_empty() {
            return;
        }
        let base_len = self.base.as_ref().map_or(0, |t| t.ids.len());
        let recent_len = self.entries.iter().rev().take_while(|e| e.id >= self.base_upto).count();
        if self.base.is_none() || recent_len > RECENT_MAX || self.base_dead * 2 > base_len {
            self.base = Tier::build(self.entries.iter());
            self.base_upto = self.next_id;
            self.base_dead = 0;
            self.recent = None;
            self.recent_dirty = false;
        } else if self.recent_dirty {
            let upto = self.base_upto;
            let start = self.entries.len() - recent_len;
            self.recent = if recent_len == 0 {
                None
            } else {
                Tier::build(self.entries.range(start..).filter(move |e| e.id >= upto))
            };
            self.recent_dirty = false;
        }
        let word = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
        for (tier, check_alive) in [(&self.base, self.base_dead > 0), (&self.recent, false)] {
            let Some(t) = tier else { continue };
            for m in t.ac.find_iter(hay) {
                let (s, e) = (m.start(), m.end());
                if s > 0 && word(hay[s - 1]) && word(hay[s]) {
                    continue;
                }
                if e < hay.len() && word(hay[e]) && word(hay[e - 1]) {
                    continue;
                }
                let p = m.pattern().as_usize();
                if check_alive && !self.alive(t.ids[p]) {
                    continue;
                }
                f(s, e, t.rules[p]);
            }
        }
    }

    /// Advances the window past one record of `len` bytes.
    pub(crate) fn advance(&mut self, len: usize) {
        self.records += 1;
        self.bytes += len as u64;
    }
}

fn trim_punct(w: &[u8]) -> &[u8] {
    let mut w = w;
    while let [b'\'' | b'-', rest @ ..] = w {
        w = rest;
    }
    while let [rest @ .., b'\'' | b'-'] = w {
        w = rest;
    }
    w
}

fn needs_encoding(b: u8) -> bool {
    !(b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~'))
}

fn percent_encode(v: &[u8], space_as_plus: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(v.len() * 3);
    for &b in v {
        if b == b' ' && space_as_plus {
            out.push(b'+');
        } else if needs_encoding(b) {
            out.extend_from_slice(format!("%{b:02X}").as_bytes());
        } else {
            out.push(b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const W: Window = Window {
        records: 2,
        bytes: 1 << 20,
        max_values: 4,
        min_len: 4,
    };

    fn found(st: &mut SourceState, hay: &str) -> Vec<String> {
        let mut out = Vec::new();
        st.find(hay.as_bytes(), |s, e, _| out.push(hay[s..e].to_string()));
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
            vec!["ada+lovelace", "LOVELACE", "ada%40example.com"]
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
    fn many_values_across_tiers_expire_correctly() {
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
