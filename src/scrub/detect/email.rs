//! Email addresses, found around `@` (and `%40`, the percent-encoded `@` of query strings).
//!
//! Must not: match `@decorators`, `user@localhost`, `icon@2x.png`; split a UTF-8 sequence
//! (non-ASCII bytes are taken whole into the local part and the domain); allocate.

use super::{Detector, skip_escape};

/// How far each side of the `@` is looked at: twice RFC 5321's 64-byte local part (fail-closed
/// for sloppy senders), and its 255-byte domain.
const MAX_LOCAL: usize = 128;
const MAX_DOMAIN: usize = 255;

/// Top-level "domains" that are file extensions: `icon@2x.png` is a file name, not an address.
const FILE_EXTENSIONS: &[&[u8]] = &[b"png", b"jpg", b"jpeg", b"gif", b"svg", b"webp", b"css", b"js", b"ico"];

pub(super) fn scan(text: &[u8], emit: &mut impl FnMut(usize, usize, Detector)) {
    // One pass for both separators (`%` is rare); no per-call searcher to build, as the engine
    // calls this once per zone.
    for at in memchr::memchr2_iter(b'@', b'%', text) {
        let after = match text[at] {
            b'@' => at + 1,
            _ if text.get(at + 1..at + 3) == Some(b"40") => at + 3,
            _ => continue,
        };
        if let Some((s, e)) = around(text, at, after) {
            emit(s, e, Detector::Email);
        }
    }
}

fn local_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'%' | b'+' | b'-') || b >= 0x80
}

fn domain_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b >= 0x80
}

/// The address whose separator is `text[at..after]`, if it is one.
fn around(text: &[u8], at: usize, after: usize) -> Option<(usize, usize)> {
    let mut s = at;
    while s > 0 && local_byte(text[s - 1]) && at - s < MAX_LOCAL {
        s -= 1;
    }
    // The length cap may have stopped inside a UTF-8 sequence: start at the next character.
    while s < at && (0x80..0xc0).contains(&text[s]) {
        s += 1;
    }
    s = skip_escape(text, s, at);
    while s < at && text[s] == b'.' {
        s += 1;
    }
    if s == at {
        return None;
    }
    let len = text.len();
    let mut e = after;
    let mut labels = 0;
    let mut last = (after, after);
    loop {
        let ls = e;
        while e < len && domain_byte(text[e]) && e - after < MAX_DOMAIN {
            e += 1;
        }
        // Past the cap, finish the UTF-8 sequence rather than cut it.
        while e < len && (0x80..0xc0).contains(&text[e]) {
            e += 1;
        }
        if e == ls {
            break;
        }
        labels += 1;
        last = (ls, e);
        if e + 1 < len && text[e] == b'.' && domain_byte(text[e + 1]) && e - after < MAX_DOMAIN {
            e += 1;
            continue;
        }
        break;
    }
    if labels < 2 {
        return None;
    }
    let tld = &text[last.0..last.1];
    let alphabetic = tld.iter().all(|&b| b.is_ascii_alphabetic() || b >= 0x80);
    if tld.len() < 2 || !alphabetic || FILE_EXTENSIONS.iter().any(|x| tld.eq_ignore_ascii_case(x)) {
        return None;
    }
    Some((s, last.1))
}
