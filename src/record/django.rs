//! Python/Django logging records: a header line (`LEVEL YYYY-MM-DD HH:MM:SS,mmm logger message`,
//! or timestamp first: `YYYY-MM-DD HH:MM:SS,mmm LEVEL [logger] message`) whose message may
//! continue over the following lines (typically a pretty-printed JSON body). A record ends where
//! the next header line starts.
//!
//! Must not: look inside the message (a JSON body is not parsed here).

use super::Level;
use super::scan::{HeaderLines, LineRule, naive_datetime, parse_level};

pub(crate) fn scanner() -> HeaderLines<DjangoRule> {
    HeaderLines::new(DjangoRule)
}

pub(crate) struct DjangoRule;

impl LineRule for DjangoRule {
    const LOOKAHEAD: usize = 64;

    fn starts_record(&mut self, prefix: &[u8]) -> bool {
        // Cheap reject for the common continuation lines (JSON body lines start with `"`, `}`...).
        matches!(prefix.first(), Some(b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'[')) && parse_header(prefix).is_some()
    }

    fn meta(&self, record: &[u8]) -> (Option<i64>, Option<Level>) {
        match parse_header(record) {
            Some((ts, level)) => (Some(ts), Some(level)),
            None => (None, None),
        }
    }
}

/// Parses a header line's timestamp (taken as UTC, as Django's default formatter gives no zone)
/// and level. `None` when the line is not a header.
pub(crate) fn parse_header(line: &[u8]) -> Option<(i64, Level)> {
    level_first(line).or_else(|| timestamp_first(line))
}

/// `LEVEL YYYY-MM-DD HH:MM:SS,mmm ` (the separator after the time may also be the line end).
fn level_first(line: &[u8]) -> Option<(i64, Level)> {
    let sp = line.iter().take(10).position(|&b| b == b' ')?;
    let level = parse_level(&line[..sp])?;
    let rest = &line[sp + 1..];
    let (ts, n) = naive_datetime(rest)?;
    if n < 23 || !ends_token(rest, n) {
        return None;
    }
    Some((ts, level))
}

/// `[?YYYY-MM-DD HH:MM:SS,mmm]? [?LEVEL]?` followed by a space, `:` or the line end.
fn timestamp_first(line: &[u8]) -> Option<(i64, Level)> {
    let mut p = usize::from(line.first() == Some(&b'['));
    let (ts, n) = naive_datetime(&line[p..])?;
    p += n;
    if p < line.len() && line[p] == b']' && line[0] == b'[' {
        p += 1;
    }
    if line.get(p) != Some(&b' ') {
        return None;
    }
    p += 1;
    let bracket = line.get(p) == Some(&b'[');
    p += usize::from(bracket);
    let start = p;
    while p < line.len() && p - start <= 9 && line[p].is_ascii_alphabetic() {
        p += 1;
    }
    let level = parse_level(&line[start..p])?;
    if bracket {
        if line.get(p) != Some(&b']') {
            return None;
        }
        p += 1;
    }
    if !ends_token(line, p) {
        return None;
    }
    Some((ts, level))
}

fn ends_token(s: &[u8], p: usize) -> bool {
    matches!(s.get(p), None | Some(b' ' | b':' | b'\n' | b'\r' | b'\t'))
}
