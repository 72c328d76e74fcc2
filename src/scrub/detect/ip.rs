//! IPv4 and IPv6 addresses, found around their separators (`.`, `:`) and validated with the
//! `std::net` parsers.
//!
//! Must not: match times (`10:00:28`), version strings (`1.2.3.4.5`), hashes, `"key": "value"`
//! separators or `a::b` text; allocate.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::{Detector, is_word};
use crate::simd::{self, Chunk, Lanes};

/// Emits every dotted-quad IPv4 address. A port (`1.2.3.4:443`) is not part of the match.
pub(super) fn scan_ipv4(text: &[u8], emit: &mut impl FnMut(usize, usize, Detector)) {
    let mut from = 0;
    while let Some(off) = memchr::memchr(b'.', &text[from..]) {
        let dot = from + off;
        from = dot + 1;
        if dot == 0 || !text[dot - 1].is_ascii_digit() || !text.get(dot + 1).is_some_and(u8::is_ascii_digit) {
            continue;
        }
        let mut s = dot - 1;
        while s > 0 && text[s - 1].is_ascii_digit() && dot - s <= 3 {
            s -= 1;
        }
        // A letter, a digit (longer run), a `.` (longer dotted number) or `_` before: not an address.
        if s > 0 && (is_word(text[s - 1]) || text[s - 1] == b'.') {
            continue;
        }
        if let Some(e) = ipv4_at(text, s) {
            emit(s, e, Detector::Ipv4);
            from = e;
        }
    }
}

/// The end of a valid dotted quad starting at `s`, with a clean right boundary.
fn ipv4_at(text: &[u8], s: usize) -> Option<usize> {
    let mut p = s;
    for i in 0..4 {
        if i > 0 {
            if text.get(p) != Some(&b'.') {
                return None;
            }
            p += 1;
        }
        let start = p;
        let mut value: u32 = 0;
        while p < text.len() && text[p].is_ascii_digit() && p - start < 4 {
            value = value * 10 + u32::from(text[p] - b'0');
            p += 1;
        }
        let n = p - start;
        // Leading zeros are refused, like `Ipv4Addr::from_str` does.
        if n == 0 || n > 3 || value > 255 || (n > 1 && text[start] == b'0') {
            return None;
        }
    }
    match text.get(p) {
        Some(&b) if is_word(b) => None,
        Some(&b'.') if text.get(p + 1).is_some_and(u8::is_ascii_digit) => None,
        _ => {
            // The hand parser above and std must agree; std is the reference.
            let s_str = std::str::from_utf8(&text[s..p]).ok()?;
            Ipv4Addr::from_str(s_str).ok()?;
            Some(p)
        }
    }
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
}

/// Longest window examined around one `:`; a full IPv4-mapped address is 45 bytes.
const MAX_V6: usize = 64;

/// Emits every IPv6 address, in any notation (full, `::`-compressed, IPv4-mapped, upper or lower
/// case). Brackets and ports are not part of the match; a zone index (`%eth0`) is.
pub(super) fn scan_ipv6(text: &[u8], emit: &mut impl FnMut(usize, usize, Detector)) {
    #[cfg(target_arch = "x86_64")]
    if simd::has_avx2() {
        // SAFETY: the CPU has AVX2.
        return unsafe { scan_ipv6_avx2(text, emit) };
    }
    scan_ipv6_in::<Chunk>(text, emit);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scan_ipv6_avx2(text: &[u8], emit: &mut impl FnMut(usize, usize, Detector)) {
    scan_ipv6_in::<simd::Wide>(text, emit);
}

#[inline(always)]
fn scan_ipv6_in<L: Lanes>(text: &[u8], emit: &mut impl FnMut(usize, usize, Detector)) {
    let len = text.len();
    let mut from = 0;
    let mut at_colon = |c: usize, from: &mut usize| {
        if c < *from {
            return;
        }
        let (s, e) = window_around(text, c);
        // The whole window is examined once: go on past it whatever the outcome.
        *from = e;
        if let Some((s, e)) = ipv6_window(text, s, e) {
            emit(s, e, Detector::Ipv6);
        }
    };
    // JSON has a `:` after every key, between a quote and a space or quote: colons are found a
    // vector at a time, and only those next to a hex digit or another colon are looked at.
    let mut i = 0;
    while i + L::WIDTH <= len {
        // SAFETY: `L`'s instructions are there (`scan_ipv6` dispatched on them).
        let c = unsafe { L::load(&text[i..]) };
        // A key's colon comes right after a quote (`"key": `, `'key': `) and needs no more look:
        // an address has at least two colons, and only its first can follow a quote. The others
        // find the same window.
        let colons = c.eq(b':') & !((c.eq(b'"') | c.eq(b'\'')) << 1);
        if colons != 0 {
            let near = c.in_range(b'0', b'9') | c.fold_case().in_range(b'a', b'f') | c.eq(b':');
            let before = i > 0 && hex_or_colon(text[i - 1]);
            let after = text.get(i + L::WIDTH).is_some_and(|&b| hex_or_colon(b));
            let edges = u32::from(before) | (u32::from(after) << (L::WIDTH - 1));
            let mut candidates = colons & ((near << 1) | (near >> 1) | edges);
            while candidates != 0 {
                at_colon(i + candidates.trailing_zeros() as usize, &mut from);
                candidates &= candidates - 1;
            }
        }
        i += L::WIDTH;
    }
    for c in memchr::memchr_iter(b':', &text[i..]).map(|k| i + k) {
        if next_to_hex(text, c) {
            at_colon(c, &mut from);
        }
    }
}

fn hex_or_colon(b: u8) -> bool {
    b.is_ascii_hexdigit() || b == b':'
}

/// Whether the `:` at `c` has a hex digit or a colon on either side: the colons that may be part
/// of an address.
fn next_to_hex(text: &[u8], c: usize) -> bool {
    (c > 0 && hex_or_colon(text[c - 1])) || text.get(c + 1).is_some_and(|&b| hex_or_colon(b))
}

/// The run of hex digits, colons (and dots, after the colon) around the `:` at `c`, at most
/// [`MAX_V6`] bytes: the candidate window.
fn window_around(text: &[u8], c: usize) -> (usize, usize) {
    let mut s = c;
    while s > 0 && hex_or_colon(text[s - 1]) && c - s < MAX_V6 {
        s -= 1;
    }
    let mut e = c + 1;
    while e < text.len() && (hex_or_colon(text[e]) || text[e] == b'.') && e - s < MAX_V6 {
        e += 1;
    }
    (s, e)
}

/// Validates the candidate `text[s..e]`, trimming separators at its edges.
fn ipv6_window(text: &[u8], mut s: usize, mut e: usize) -> Option<(usize, usize)> {
    let len = text.len();
    if e - s >= MAX_V6 || (e < len && (is_word(text[e]) && !is_hex(text[e]))) {
        return None;
    }
    while e > s && text[e - 1] == b'.' {
        e -= 1;
    }
    // `ip:2001:db8::1` or `addr 2001:db8::1:`: a single `:` at an edge is punctuation.
    if e - s > 2 && text[s] == b':' && text[s + 1] != b':' {
        s += 1;
    } else if s > 0 && is_word(text[s - 1]) {
        return None;
    }
    if e - s > 2 && text[e - 1] == b':' && text[e - 2] != b':' {
        e -= 1;
    }
    if s > 0 && (text[s - 1] == b'.' || text[s - 1] == b'_') {
        return None;
    }
    let window = &text[s..e];
    // Times (`04:07:22`) are the common candidate: without `::`, an address has seven colons,
    // or six before an embedded IPv4. Refused here before the parser is asked.
    if window.iter().filter(|&&b| b == b':').count() < 6 && !window.windows(2).any(|w| w == b"::") {
        return None;
    }
    let addr = std::str::from_utf8(window).ok()?;
    Ipv6Addr::from_str(addr).ok()?;
    if !plausible(window) {
        return None;
    }
    // Zone index: `fe80::1%eth0`, or `%25eth0` inside URLs.
    if text.get(e) == Some(&b'%') {
        let z = e + 1;
        let mut ze = z;
        while ze < len && (text[ze].is_ascii_alphanumeric() || matches!(text[ze], b'_' | b'-' | b'.')) && ze - z < 32 {
            ze += 1;
        }
        if ze > z {
            e = ze;
        }
    }
    if e < len && is_word(text[e]) {
        return None;
    }
    Some((s, e))
}

/// Parsable is not enough: `a::b`, `::1`, `::` also parse. An address must have the full eight
/// groups, an embedded IPv4, or at least two groups of which one has three or more hex digits
/// (`fe80::1`, `2001:db8::`); this refuses `a::b` and `[::2]` slices at the cost of `::1`.
fn plausible(window: &[u8]) -> bool {
    if window.contains(&b'.') {
        return true;
    }
    let mut groups = 0;
    let mut longest = 0;
    for g in window.split(|&b| b == b':').filter(|g| !g.is_empty()) {
        groups += 1;
        longest = longest.max(g.len());
    }
    groups >= 3 || (groups == 2 && longest >= 3)
}

#[cfg(test)]
mod tests {
    use super::*;

    type Scan = fn(&[u8], &mut dyn FnMut(usize, usize, Detector));

    /// Every `:` next to a hex digit or a colon, byte by byte, each window examined once.
    fn byte_loop(text: &[u8]) -> Vec<(usize, usize)> {
        let (mut from, mut out) = (0, Vec::new());
        for c in (0..text.len()).filter(|&c| text[c] == b':' && next_to_hex(text, c)) {
            if c < from {
                continue;
            }
            let (s, e) = window_around(text, c);
            from = e;
            out.extend(ipv6_window(text, s, e));
        }
        out
    }

    proptest::proptest! {
        /// The vector paths (AVX2 where the CPU has it, and SSE2) find the addresses the byte loop
        /// finds, wherever colons fall against vector edges.
        #[test]
        fn vector_paths_find_what_the_byte_loop_finds(
            picks in proptest::collection::vec(0usize..13, 0..160),
        ) {
            let parts: [&[u8]; 13] = [b":", b"::", b"2001", b"db8", b"fe80", b"1", b".", b"\": ", b"x", b"1.2.3.4", b"%eth0", b"\"", b"'"];
            let text: Vec<u8> = picks.iter().flat_map(|&i| parts[i].iter().copied()).collect();
            let want = byte_loop(&text);
            let collect = |scan: Scan| {
                let mut got = Vec::new();
                scan(&text, &mut |s, e, _| got.push((s, e)));
                got
            };
            proptest::prop_assert_eq!(collect(|t, mut emit| scan_ipv6(t, &mut emit)), want.clone());
            proptest::prop_assert_eq!(collect(|t, mut emit| scan_ipv6_in::<Chunk>(t, &mut emit)), want);
        }
    }
}
