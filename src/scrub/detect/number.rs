//! Phone numbers and payment card numbers: runs of digit groups ("chains") judged by the shape
//! of their groups, separators and (for cards) the Luhn checksum and issuer prefix.
//!
//! Precision over recall for phones in free text: without a `+`, only North-American
//! `(415) 555-0123` / `415-555-0123` shapes and national numbers starting with `0` in at least
//! three separated groups (`020 7946 0958`) are phones. Key-based rules catch `phone` fields.
//!
//! Must not: match unix timestamps, millisecond timestamps, amounts, dates, times, versions, ids or
//! order numbers without separators; allocate.

use super::{Detector, is_word};
use crate::simd::{self, Chunk, Lanes};

/// Groups examined per chain; a chain longer than this is cut and the rest starts a new chain.
const MAX_GROUPS: usize = 8;

#[derive(Clone, Copy, Default)]
struct Group {
    start: usize,
    end: usize,
    /// The separator before this group (`0` for none: the first group, or after `(415)`).
    sep: u8,
    paren: bool,
}

impl Group {
    fn digits(&self) -> usize {
        self.end - self.start - if self.paren { 2 } else { 0 }
    }
}

pub(super) fn scan(text: &[u8], phone: bool, card: bool, emit: &mut impl FnMut(usize, usize, Detector)) {
    let len = text.len();
    let mut i = 0;
    while i < len {
        match next_candidate(text, i) {
            Some(c) => i = c,
            None => break,
        }
        let mut a = i;
        let mut b = a;
        while b < len && text[b].is_ascii_digit() {
            b += 1;
        }
        i = b;
        // `%26` + digits: the first two digits belong to a percent-escape, not to the number.
        let escaped = a > 0 && text[a - 1] == b'%';
        if escaped {
            if b - a <= 2 {
                continue;
            }
            a += 2;
        }
        let prev = if a > 0 && !escaped { text[a - 1] } else { b' ' };
        let next = if b < len { text[b] } else { b' ' };
        // Fast path: most digit runs (JSON numbers, ids) are alone and short.
        if is_lone(prev, next, b - a) {
            continue;
        }
        let (start, plus) = match prev {
            b'+' => (a - 1, true),
            b'(' if next == b')' => (a - 1, false),
            _ => (a, false),
        };
        if start > 0 && !escaped && !left_ok(text[start - 1]) {
            continue;
        }
        let mut groups = [Group::default(); MAX_GROUPS];
        let (n, end) = chain(text, if plus { a } else { start }, &mut groups);
        if n == 0 {
            continue;
        }
        i = i.max(end);
        let groups = &groups[..n];
        // Every shape below needs at least 8 digits (a `+` number), 10 (a national one) or 13 (a
        // card): most chains (dates, times, IPs, amounts) stop here.
        let total: usize = groups.iter().map(Group::digits).sum();
        if total < 8 || (!plus && total < 9) {
            continue;
        }
        if card
            && !plus
            && total >= 13
            && let Some((s, e)) = card_in(text, groups)
        {
            emit(s, e, Detector::CardNumber);
        }
        if phone {
            let found = if plus {
                international(text, groups)
            } else {
                national(text, groups)
            };
            if let Some(e) = found {
                emit(start, e, Detector::Phone);
            }
        }
    }
}

/// The first digit at or after `i` that does not continue a word (`ch_4242…`, hex strings and
/// base62 ids are skipped a vector at a time): the only places a phone or card may start. Lone
/// numbers that `scan` would pass by ([`is_lone`]) may be skipped too, when seen whole in a vector.
fn next_candidate(text: &[u8], i: usize) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    if simd::has_avx2() {
        // SAFETY: the CPU has AVX2.
        return unsafe { next_candidate_avx2(text, i) };
    }
    next_candidate_in::<Chunk>(text, i)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn next_candidate_avx2(text: &[u8], i: usize) -> Option<usize> {
    next_candidate_in::<simd::Wide>(text, i)
}

#[inline(always)]
fn next_candidate_in<L: Lanes>(text: &[u8], mut i: usize) -> Option<usize> {
    let mut prev_word = i > 0 && is_word(text[i - 1]);
    // Wide vectors, then (what is left is shorter) one chunk, then bytes.
    if let Some(hit) = candidates::<L>(text, &mut i, &mut prev_word) {
        return Some(hit);
    }
    if L::WIDTH > 16
        && let Some(hit) = candidates::<Chunk>(text, &mut i, &mut prev_word)
    {
        return Some(hit);
    }
    while i < text.len() {
        if text[i].is_ascii_digit() && !prev_word {
            return Some(i);
        }
        prev_word = is_word(text[i]);
        i += 1;
    }
    None
}

/// [`next_candidate`] over whole vectors of `L` from `*i`, leaving `*i` where they end.
#[inline(always)]
fn candidates<L: Lanes>(text: &[u8], i: &mut usize, prev_word: &mut bool) -> Option<usize> {
    while *i + L::WIDTH <= text.len() {
        // SAFETY: `L`'s instructions are there (`next_candidate` dispatched on them).
        let c = unsafe { L::load(&text[*i..]) };
        let digits = c.in_range(b'0', b'9');
        let words = digits | c.fold_case().in_range(b'a', b'z') | c.eq(b'_');
        // Bit k of `before`: byte k - 1 is a word byte.
        let before = (words << 1) | u32::from(*prev_word);
        let mut hits = digits & !before;
        if hits != 0 {
            // Most hits in JSON are lone numbers (`"created": 1733285241,`), which `scan` passes
            // by at once; passed by here, without leaving the vector.
            let next_chainy = c.eq(b' ') | c.eq(b'-') | c.eq(b'.') | c.eq(b')');
            // Bit 0: the byte before is in the previous vector, unknown here.
            let prev_chainy = ((c.eq(b'+') | c.eq(b'(') | c.eq(b'%')) << 1) | 1;
            while hits != 0 {
                let k = hits.trailing_zeros();
                let end = k + (digits >> k).trailing_ones();
                let lone = end < L::WIDTH as u32
                    && !(13..=19).contains(&(end - k))
                    && (next_chainy >> end) & 1 == 0
                    && (prev_chainy >> k) & 1 == 0;
                if !lone {
                    return Some(*i + k as usize);
                }
                hits &= hits - 1;
            }
        }
        *prev_word = words >> (L::WIDTH - 1) & 1 != 0;
        *i += L::WIDTH;
    }
    None
}

/// A run of `digits` digits between `prev` and `next` that starts no phone or card number: not
/// chained to other groups, and too short or too long for a card alone.
fn is_lone(prev: u8, next: u8, digits: usize) -> bool {
    let chainy = matches!(next, b' ' | b'-' | b'.' | b')') || matches!(prev, b'+' | b'(');
    !chainy && !(13..=19).contains(&digits)
}

/// Bytes that may stand before a phone or card number: not part of a word, a longer number, an
/// amount (`$`), a path, a time (`10:00`) or an order number (`#`).
fn left_ok(b: u8) -> bool {
    !(is_word(b) || matches!(b, b'.' | b'-' | b'+' | b'/' | b'$' | b':' | b'#' | b'\\'))
}

fn right_ok(text: &[u8], e: usize) -> bool {
    match text.get(e) {
        None => true,
        Some(&b) if is_word(b) => false,
        Some(&b'.' | &b',' | &b'-' | &b':' | &b'/') => !text.get(e + 1).is_some_and(u8::is_ascii_digit),
        Some(_) => true,
    }
}

/// Parses groups of digits separated by one ` `, `-` or `.` (or nothing after a parenthesised
/// group) from `p`; returns the number of groups and the end of the chain.
fn chain(text: &[u8], mut p: usize, groups: &mut [Group; MAX_GROUPS]) -> (usize, usize) {
    let len = text.len();
    let mut n = 0;
    let mut sep = 0u8;
    while n < MAX_GROUPS {
        let start = p;
        let paren = text.get(p) == Some(&b'(');
        if paren {
            p += 1;
        }
        let ds = p;
        while p < len && text[p].is_ascii_digit() && p - ds < 20 {
            p += 1;
        }
        if p == ds || (paren && (text.get(p) != Some(&b')') || p - ds > 4)) {
            p = start;
            break;
        }
        if paren {
            p += 1;
        }
        groups[n] = Group {
            start,
            end: p,
            sep,
            paren,
        };
        n += 1;
        let follows = |q: usize| text.get(q).is_some_and(|&b| b.is_ascii_digit() || b == b'(');
        match text.get(p) {
            Some(&s @ (b' ' | b'-' | b'.')) if follows(p + 1) => {
                sep = s;
                p += 1;
            }
            Some(b) if paren && b.is_ascii_digit() => sep = 0,
            _ => break,
        }
    }
    if n > 0 {
        p = groups[n - 1].end;
    }
    (n, p)
}

/// The card number among the groups: for each starting group, the longest run of groups with one
/// separator kind (space or dash), 13–19 digits, a known issuer prefix and a valid Luhn checksum.
fn card_in(text: &[u8], groups: &[Group]) -> Option<(usize, usize)> {
    if groups.iter().any(|g| g.paren) {
        return None;
    }
    for j in 0..groups.len() {
        if j > 0 && !left_ok(text[groups[j].start - 1]) && !matches!(text[groups[j].start - 1], b' ' | b'-') {
            continue;
        }
        for k in (j + 1..=groups.len()).rev() {
            let gs = &groups[j..k];
            let digits: usize = gs.iter().map(Group::digits).sum();
            if !(13..=19).contains(&digits) {
                continue;
            }
            let sep = gs.get(1).map_or(0, |g| g.sep);
            let shaped = gs.len() == 1
                || (matches!(sep, b' ' | b'-')
                    && gs[1..].iter().all(|g| g.sep == sep && (3..=6).contains(&g.digits()))
                    && gs[0].digits() == 4);
            let (s, e) = (gs[0].start, gs[gs.len() - 1].end);
            if shaped && right_ok(text, e) && issuer(text, gs) && luhn(text, gs) {
                return Some((s, e));
            }
        }
    }
    None
}

fn card_digits<'a>(text: &'a [u8], groups: &'a [Group]) -> impl DoubleEndedIterator<Item = u8> + 'a {
    groups
        .iter()
        .flat_map(move |g| text[g.start..g.end].iter().copied().filter(u8::is_ascii_digit))
}

/// Known issuer prefixes: Visa 4, Mastercard 51–55 and 2221–2720, Maestro 50/56–58, Amex 34/37,
/// Diners 30/36/38/39, JCB 35, Discover/UnionPay/others 6. Refuses 1… (millisecond timestamps),
/// 7…, 8…, 9… and 0….
fn issuer(text: &[u8], groups: &[Group]) -> bool {
    let mut d = card_digits(text, groups).map(|b| u32::from(b - b'0'));
    let (Some(d0), Some(d1), Some(d2), Some(d3)) = (d.next(), d.next(), d.next(), d.next()) else {
        return false;
    };
    match d0 {
        2 => (2221..=2720).contains(&(d0 * 1000 + d1 * 100 + d2 * 10 + d3)),
        3 => matches!(d1, 0 | 4 | 5 | 6 | 7 | 8 | 9),
        4..=6 => true,
        _ => false,
    }
}

fn luhn(text: &[u8], groups: &[Group]) -> bool {
    let mut sum = 0u32;
    for (i, b) in card_digits(text, groups).rev().enumerate() {
        let mut d = u32::from(b - b'0');
        if i % 2 == 1 {
            d *= 2;
            if d > 9 {
                d -= 9;
            }
        }
        sum += d;
    }
    sum.is_multiple_of(10)
}

/// `+` numbers: 8–15 digits in all (E.164), country code not starting with 0; the longest prefix
/// of the groups that fits.
fn international(text: &[u8], groups: &[Group]) -> Option<usize> {
    if text[groups[0].start] == b'0' || groups[0].paren {
        return None;
    }
    let mut digits = 0;
    let mut end = None;
    for g in groups {
        digits += g.digits();
        if digits > 15 {
            break;
        }
        if digits >= 8 && right_ok(text, g.end) {
            end = Some(g.end);
        }
    }
    end
}

/// Numbers without `+`: North-American `(415) 555-0123`, `415-555-0123`, `1-415-555-0123`, or
/// national numbers starting with `0` in three or more groups of 2+ digits (`020 7946 0958`).
fn national(text: &[u8], groups: &[Group]) -> Option<usize> {
    let d = Group::digits;
    let trunk = groups.len() >= 4 && !groups[0].paren && d(&groups[0]) == 1 && text[groups[0].start] == b'1';
    let gs = &groups[usize::from(trunk)..];
    if gs.len() >= 3 && d(&gs[0]) == 3 && d(&gs[1]) == 3 && d(&gs[2]) == 4 && !gs[1].paren && !gs[2].paren {
        let same_seps = if gs[0].paren {
            gs[2].sep != 0
        } else {
            gs[1].sep == gs[2].sep && (!trunk || gs[0].sep == gs[1].sep)
        };
        if same_seps && right_ok(text, gs[2].end) {
            return Some(gs[2].end);
        }
    }
    if groups.len() >= 3 && text[groups[0].start] == b'0' && groups.iter().all(|g| !g.paren && d(g) >= 2) {
        let sep = groups[1].sep;
        let total: usize = groups.iter().map(d).sum();
        let last = groups[groups.len() - 1].end;
        if matches!(sep, b' ' | b'-')
            && groups[1..].iter().all(|g| g.sep == sep)
            && d(&groups[0]) <= 5
            && (9..=12).contains(&total)
            && right_ok(text, last)
        {
            return Some(last);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// The vector paths (AVX2 where the CPU has it, and SSE2) find a digit not preceded by a
        /// word byte, as a byte loop does, wherever it falls (high bytes, `_` and case folding
        /// included), and pass by no such digit but the first digits of lone numbers, which
        /// `scan` would pass by.
        #[test]
        fn next_candidate_is_the_first_digit_after_a_non_word_byte(
            picks in proptest::collection::vec(0usize..17, 0..140),
            from in 0usize..140,
        ) {
            let text: Vec<u8> = picks.iter().map(|&i| b"7a_Z -\xc3\xa9[@+().%,1"[i]).collect();
            let from = from.min(text.len());
            let starts: Vec<usize> = (from..text.len())
                .filter(|&k| text[k].is_ascii_digit() && (k == 0 || !is_word(text[k - 1])))
                .collect();
            let lone = |a: usize| {
                let b = (a..text.len()).find(|&k| !text[k].is_ascii_digit()).unwrap_or(text.len());
                let prev = if a > 0 { text[a - 1] } else { b' ' };
                prev != b'%' && is_lone(prev, text.get(b).copied().unwrap_or(b' '), b - a)
            };
            for got in [next_candidate(&text, from), next_candidate_in::<Chunk>(&text, from)] {
                let passed = starts.iter().take_while(|&&k| Some(k) != got);
                proptest::prop_assert!(got.is_none_or(|g| starts.contains(&g)), "{got:?} is no candidate");
                for &k in passed {
                    proptest::prop_assert!(lone(k), "passed by {k}, not a lone number, got {got:?}");
                }
            }
            // With nothing lone in the way, the very first one.
            if starts.first().is_some_and(|&k| !lone(k)) {
                proptest::prop_assert_eq!(next_candidate(&text, from), starts.first().copied());
            }
        }
    }
}
