//! IPv4 and IPv6 addresses, found around their separators (`.`, `:`) and validated with the
//! `std::net` parsers.
//!
//! Must not: match times (`10:00:28`), version strings (`1.2.3.4.5`), hashes, `"key": "value"`
//! separators or `a::b` text; allocate.

use std::net::{Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use super::{Detector, is_word};
use crate::simd::Chunk;

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
    let len = text.len();
    let mut from = 0;
    // JSON has a `:` after every key: colons are found sixteen bytes at a time, not by a
    // `memchr` call each.
    let mut i = 0;
    while i < len {
        let mut colons = if i + 16 <= len {
            Chunk::load(&text[i..]).eq(b':')
        } else {
            let tail = text[i..].iter().enumerate();
            tail.fold(0, |m, (k, &b)| m | (u32::from(b == b':') << k))
        };
        while colons != 0 {
            let c = i + colons.trailing_zeros() as usize;
            colons &= colons - 1;
            if c < from {
                continue;
            }
            let prev_ok = c > 0 && (is_hex(text[c - 1]) || text[c - 1] == b':');
            let next_ok = c + 1 < len && (is_hex(text[c + 1]) || text[c + 1] == b':');
            if !prev_ok && !next_ok {
                continue;
            }
            let mut s = c;
            while s > 0 && (is_hex(text[s - 1]) || text[s - 1] == b':') && c - s < MAX_V6 {
                s -= 1;
            }
            let mut e = c + 1;
            while e < len && (is_hex(text[e]) || text[e] == b':' || text[e] == b'.') && e - s < MAX_V6 {
                e += 1;
            }
            // The whole window is examined once: go on past it whatever the outcome.
            from = e;
            if let Some((s, e)) = ipv6_window(text, s, e) {
                emit(s, e, Detector::Ipv6);
            }
        }
        i += 16;
    }
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
