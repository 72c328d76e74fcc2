//! Object ids that describe themselves: Stripe-style `prefix_body` ids (`evt_…`, `cus_…`, and
//! Paddle's `ctm_…`, `txn_…`, …) and UUIDs (GitHub deliveries, request ids).
//!
//! Must not: report a secret, or any part of one. A client secret `pi_X_secret_Y` yields `pi_X`
//! at most; API keys (`sk_live_…`, `whsec_…`) have no listed prefix; metadata keys such as
//! `tr_cid` are refused by the body rule (8+ alphanumerics with a digit or an uppercase letter).

use std::ops::Range;

use super::is_word;
use crate::simd::{self, Chunk, Lanes};

/// Known id prefixes (the part before the first `_`): Stripe's, then Paddle Billing's.
fn known_prefix(prefix: &[u8]) -> bool {
    matches!(
        prefix,
        b"acct"
            | b"ba"
            | b"bpc"
            | b"bps"
            | b"bt"
            | b"btok"
            | b"card"
            | b"cbs"
            | b"cbtxn"
            | b"ch"
            | b"cn"
            | b"coupon"
            | b"cpmt"
            | b"cpn"
            | b"cs"
            | b"cus"
            | b"di"
            | b"dp"
            | b"du"
            | b"evt"
            | b"fa"
            | b"fca"
            | b"fee"
            | b"file"
            | b"fr"
            | b"ibr"
            | b"ic"
            | b"ich"
            | b"ii"
            | b"il"
            | b"in"
            | b"inrf"
            | b"ipi"
            | b"iv"
            | b"li"
            | b"link"
            | b"ls"
            | b"mbur"
            | b"pi"
            | b"pl"
            | b"plan"
            | b"pm"
            | b"po"
            | b"price"
            | b"prod"
            | b"promo"
            | b"py"
            | b"pyr"
            | b"qt"
            | b"re"
            | b"req"
            | b"sched"
            | b"seti"
            | b"si"
            | b"src"
            | b"sub"
            | b"tax"
            | b"tok"
            | b"tr"
            | b"trr"
            | b"txi"
            | b"txn"
            | b"we"
            | b"ctm"
            | b"pri"
            | b"pro"
            | b"ntf"
            | b"add"
            | b"biz"
            | b"dsc"
            | b"adj"
            | b"ntfset"
    )
}

/// Appends the ids in `text`, in order of appearance.
pub(super) fn find(text: &[u8], out: &mut Vec<Range<usize>>) {
    #[cfg(target_arch = "x86_64")]
    if simd::has_avx2() {
        // SAFETY: the CPU has AVX2.
        return unsafe { find_avx2(text, out) };
    }
    find_in::<Chunk>(text, out);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn find_avx2(text: &[u8], out: &mut Vec<Range<usize>>) {
    find_in::<simd::Wide>(text, out);
}

#[inline(always)]
fn find_in<L: Lanes>(text: &[u8], out: &mut Vec<Range<usize>>) {
    // Candidates are `_` (a prefix ends there) and `-` (a UUID's first dash), found a vector at
    // a time. JSON keys are full of `_`: the letters before each are measured on bit masks of
    // this vector and the one before (a prefix is at most six letters), so most candidates are
    // turned down without reading a byte.
    let w = L::WIDTH as u32;
    let mut from = 0;
    let mut i = 0;
    let (mut prev_lower, mut prev_word) = (0u64, 0u64);
    while i + L::WIDTH <= text.len() {
        // SAFETY: `L`'s instructions are there (`find` dispatched on them).
        let c = unsafe { L::load(&text[i..]) };
        let lower = c.in_range(b'a', b'z');
        let underscore = c.eq(b'_');
        let word = lower | underscore | c.in_range(b'A', b'Z') | c.in_range(b'0', b'9');
        // Bits 0..w: the previous vector; w..2w: this one.
        let (lower2, word2) = ((u64::from(lower) << w) | prev_lower, (u64::from(word) << w) | prev_word);
        let mut marks = underscore | c.eq(b'-');
        while marks != 0 {
            let k = marks.trailing_zeros();
            marks &= marks - 1;
            let at = i + k as usize;
            if at < from {
                continue;
            }
            let found = if text[at] == b'-' {
                uuid(text, at)
            } else {
                // The run of lowercase letters right before bit w + k, and the bit before it.
                let run = (lower2 << (64 - w - k)).leading_ones();
                let lead_is_word = run < w + k && word2 >> (w + k - 1 - run) & 1 == 1;
                if (2..=6).contains(&run) && !lead_is_word {
                    id_after_prefix(text, at - run as usize, at)
                } else {
                    None
                }
            };
            if let Some(r) = found {
                from = r.end;
                out.push(r);
            }
        }
        (prev_lower, prev_word) = (u64::from(lower), u64::from(word));
        i += L::WIDTH;
    }
    for at in i..text.len() {
        let found = match text[at] {
            b'_' if at >= from => prefixed(text, at),
            b'-' if at >= from => uuid(text, at),
            _ => None,
        };
        if let Some(r) = found {
            from = r.end;
            out.push(r);
        }
    }
}

/// The id whose prefix ends at the `_` at `us`, if there is one.
fn prefixed(text: &[u8], us: usize) -> Option<Range<usize>> {
    // A prefix is two to six lowercase letters after a byte that is not a word byte.
    let mut s = us;
    while s > 0 && us - s < 7 && text[s - 1].is_ascii_lowercase() {
        s -= 1;
    }
    if !(2..=6).contains(&(us - s)) || (s > 0 && is_word(text[s - 1])) {
        return None;
    }
    id_after_prefix(text, s, us)
}

/// The id whose prefix candidate is `text[s..us]` (letters after a byte that is not a word byte).
fn id_after_prefix(text: &[u8], s: usize, us: usize) -> Option<Range<usize>> {
    if !known_prefix(&text[s..us]) {
        return None;
    }
    let mut b = us + 1;
    // `cs_live_…`, `cs_test_…`, `bps_live_…`: the mode is part of the id.
    for mode in [&b"live_"[..], b"test_"] {
        if text[b..].starts_with(mode) {
            b += mode.len();
        }
    }
    let e = body_end(text, b);
    let body = &text[b..e];
    let shaped = body.len() >= 8 && body.iter().any(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
    // A `-` or a word byte after the body: part of something else (a longer token).
    let clean = e >= text.len() || !(text[e].is_ascii_alphanumeric() || text[e] == b'-');
    (shaped && clean).then_some(s..e)
}

/// Where the body starting at `b` ends: after the run of ASCII alphanumerics, at most
/// [`MAX_BODY`] of them. Measured sixteen bytes at a time (most ids are 14 to 28 long).
fn body_end(text: &[u8], b: usize) -> usize {
    let mut e = b;
    while e + 16 <= text.len() && e - b < MAX_BODY {
        let c = Chunk::load(&text[e..]);
        let alnum = c.in_range(b'0', b'9') | c.fold_case().in_range(b'a', b'z');
        let run = (!alnum).trailing_zeros() as usize;
        e += run;
        if run < 16 {
            return e;
        }
    }
    while e < text.len() && text[e].is_ascii_alphanumeric() && e - b < MAX_BODY {
        e += 1;
    }
    e.min(b + MAX_BODY)
}

/// Longest body measured; a longer run is not an id (see the `clean` rule).
const MAX_BODY: usize = 255;

/// A UUID `8-4-4-4-12` (any version) whose first `-` is at `dash`.
fn uuid(text: &[u8], dash: usize) -> Option<Range<usize>> {
    let s = dash.checked_sub(8)?;
    let e = s + 36;
    if e > text.len() || (s > 0 && text[s - 1].is_ascii_alphanumeric()) {
        return None;
    }
    if e < text.len() && text[e].is_ascii_alphanumeric() {
        return None;
    }
    let ok = text[s..e].iter().enumerate().all(|(i, &b)| match i {
        8 | 13 | 18 | 23 => b == b'-',
        _ => b.is_ascii_hexdigit(),
    });
    ok.then_some(s..e)
}

#[cfg(test)]
mod tests {
    use super::*;

    proptest::proptest! {
        /// Candidates found a vector at a time (AVX2 where the CPU has it, and SSE2) are the ones
        /// a byte loop finds, and a match still hides the candidates inside it.
        #[test]
        fn find_sees_every_candidate_a_byte_loop_sees(
            picks in proptest::collection::vec(0usize..12, 0..90),
        ) {
            let parts: [&[u8]; 12] =
                [b"cus_", b"A1b2C3d4", b"x", b" ", b"-", b"_", b"\"", b"0123abcd", b"pi_", b"in", b"Z", b"9"];
            let text: Vec<u8> = picks.iter().flat_map(|&i| parts[i].iter().copied()).collect();
            let mut want = Vec::new();
            let mut from = 0;
            for at in 0..text.len() {
                let found = match text[at] {
                    b'_' if at >= from => prefixed(&text, at),
                    b'-' if at >= from => uuid(&text, at),
                    _ => None,
                };
                if let Some(r) = found {
                    from = r.end;
                    want.push(r);
                }
            }
            let mut got = Vec::new();
            find(&text, &mut got);
            proptest::prop_assert_eq!(&got, &want);
            got.clear();
            find_in::<Chunk>(&text, &mut got);
            proptest::prop_assert_eq!(got, want);
        }

        /// The chunked body measure is the byte loop's.
        #[test]
        fn body_end_is_the_alphanumeric_run_capped(
            runs in proptest::collection::vec((0usize..300, 0usize..6), 0..4),
            b in 0usize..40,
        ) {
            let other: [u8; 6] = [b'-', b'_', b' ', 0xc3, b'@', b'['];
            let text: Vec<u8> = runs
                .iter()
                .flat_map(|&(n, k)| (0..n).map(|i| b"aZ9q0Mx"[i % 7]).chain([other[k]]))
                .collect();
            let b = b.min(text.len());
            let mut want = b;
            while want < text.len() && text[want].is_ascii_alphanumeric() && want - b < MAX_BODY {
                want += 1;
            }
            proptest::prop_assert_eq!(body_end(&text, b), want);
        }
    }
}
