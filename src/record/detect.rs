//! Format detection from the first bytes of a stream: each line of the sample is classified and
//! the format is chosen by a fixed order of rules, so the result depends only on the sample.
//!
//! Must not: guess from anything but the sample (no file names, no clocks).

use super::{Format, access_log, django, syslog};

/// How many lines of the sample are looked at.
const MAX_LINES: usize = 1000;

/// Detects the format of a stream from its first bytes (deterministic; unknown → `Text`).
///
/// Rules, in order: the first non-blank line starts with `REQ:`, or at least half of the lines
/// do → `Req`; more than half of the lines are one-line JSON objects → `JsonLines`, access-log
/// lines → `AccessLog`, syslog lines → `Syslog`; any Django/Python logging header line →
/// `Django`; any line that opens a JSON document (`{` or `[` alone, or followed by `"`, `{`, `[`)
/// → `Json`; otherwise `Text`.
pub fn detect(sample: &[u8]) -> Format {
    // Syslog's 3164 year rule needs a reference time, irrelevant for classification.
    const ANY_TIME: i64 = 0;
    let mut lines = 0usize;
    let (mut req, mut jsonl, mut access, mut sys, mut dj, mut doc) = (0usize, 0usize, 0usize, 0usize, 0usize, 0usize);
    let mut first = true;
    for line in sample.split(|&b| b == b'\n').take(MAX_LINES) {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let trimmed = trim(line);
        if trimmed.is_empty() {
            continue;
        }
        lines += 1;
        if trimmed.starts_with(b"REQ:") {
            if first {
                return Format::Req;
            }
            req += 1;
        }
        first = false;
        if trimmed.first() == Some(&b'{') && trimmed.last() == Some(&b'}') {
            jsonl += 1;
        } else if opens_document(line) {
            doc += 1;
        }
        if access_log::parse(line).is_some() {
            access += 1;
        } else if syslog::parse(line, ANY_TIME).is_some() {
            sys += 1;
        } else if django::parse_header(line).is_some() {
            dj += 1;
        }
    }
    if lines == 0 {
        return Format::Text;
    }
    if req > 0 && req * 2 >= lines {
        Format::Req
    } else if jsonl * 2 > lines {
        Format::JsonLines
    } else if access * 2 > lines {
        Format::AccessLog
    } else if sys * 2 > lines {
        Format::Syslog
    } else if dj > 0 {
        Format::Django
    } else if doc > 0 || jsonl > 0 {
        Format::Json
    } else {
        Format::Text
    }
}

fn trim(s: &[u8]) -> &[u8] {
    let start = s.iter().position(|b| !b.is_ascii_whitespace()).unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &s[start..end]
}

/// A line that starts a pretty-printed JSON document (and not, say, `[2024-11-20 ...] text`).
fn opens_document(line: &[u8]) -> bool {
    if !matches!(line.first(), Some(b'{' | b'[')) {
        return false;
    }
    let rest = trim(&line[1..]);
    matches!(rest.first(), None | Some(b'"' | b'{' | b'[' | b']' | b'}'))
}
