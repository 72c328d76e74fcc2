//! Helpers shared by the format splitters: the incremental scanner contract, a JSON structure
//! tracker (balanced brackets, strings, escapes), and small timestamp/level parsers.
//!
//! Must not: allocate per byte, recurse on nesting depth, or panic on any input.

use memchr::{memchr, memchr3};

use crate::simd::{self, Chunk, Lanes};

use super::Level;

/// What a [`Scanner`] found when asked to look further into the pending bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// A new record starts at this position (relative to the pending record's start, > 0).
    /// The scanner's state is now valid for that position.
    Boundary(usize),
    /// No record starts at any position in `(0, p)`; the state is valid at `p`, whose own
    /// decision may still be open (waiting for look-ahead bytes).
    Scanned(usize),
}

/// One log format's incremental record-boundary finder.
///
/// `buf` always starts at the first byte of the pending record. The scanner resumes at `from`,
/// consumes bytes only below `stop`, may read (look ahead) up to `buf.len()`, and never reports a
/// boundary at 0. With `eof`, no more bytes are coming for now: look-ahead decisions are taken with
/// what is there, so the scanner must reach `stop`.
pub(crate) trait Scanner: Send {
    fn scan(&mut self, buf: &[u8], from: usize, stop: usize, eof: bool) -> Step;
    /// Timestamp (ms since the epoch) and level read from the start of a complete record.
    fn meta(&self, record: &[u8]) -> (Option<i64>, Option<Level>);
}

/// Scanner for formats with exactly one record per line.
pub(crate) fn next_line_boundary(buf: &[u8], from: usize, stop: usize) -> Step {
    match memchr(b'\n', &buf[from..stop]) {
        Some(i) => Step::Boundary(from + i + 1),
        None => Step::Scanned(stop),
    }
}

/// Decides, from the first bytes of a line, whether the line starts a new record.
pub(crate) trait LineRule: Send {
    /// How many bytes of a line [`LineRule::starts_record`] needs (it gets fewer only when the
    /// line is shorter, or at the end of the input).
    const LOOKAHEAD: usize;
    /// Called exactly once per line, in stream order (rules may keep state, e.g. "inside a
    /// traceback"). `prefix` is the line's first bytes, its newline included if it fits.
    fn starts_record(&mut self, prefix: &[u8]) -> bool;
    fn meta(&self, record: &[u8]) -> (Option<i64>, Option<Level>);
}

/// Scanner for formats where a record starts at some lines and continues over the following
/// ones (Django, Text): a record ends where the next record-starting line begins.
pub(crate) struct HeaderLines<R> {
    rule: R,
    /// The scan position is at the start of a line.
    at_line_start: bool,
    /// That line was already classified (reported as a boundary, or classified before a stop).
    decided: bool,
}

impl<R: LineRule> HeaderLines<R> {
    pub(crate) fn new(rule: R) -> Self {
        HeaderLines {
            rule,
            at_line_start: true,
            decided: false,
        }
    }
}

impl<R: LineRule> Scanner for HeaderLines<R> {
    fn scan(&mut self, buf: &[u8], from: usize, stop: usize, eof: bool) -> Step {
        let mut p = from;
        loop {
            if self.at_line_start && !self.decided {
                let avail = &buf[p..];
                if avail.is_empty() {
                    return Step::Scanned(p);
                }
                let lim = avail.len().min(R::LOOKAHEAD);
                let prefix = match simd::position(&avail[..lim], b'\n') {
                    Some(i) => &avail[..=i],
                    None if lim == R::LOOKAHEAD || eof => &avail[..lim],
                    None => return Step::Scanned(p),
                };
                let starts = self.rule.starts_record(prefix);
                self.decided = true;
                if starts && p > 0 {
                    return Step::Boundary(p);
                }
                // A short line: its newline is known already, no need to search again.
                if prefix.last() == Some(&b'\n') && p + prefix.len() <= stop {
                    p += prefix.len();
                    self.decided = false;
                    continue;
                }
            }
            if p >= stop {
                return Step::Scanned(p);
            }
            match simd::position(&buf[p..stop], b'\n') {
                Some(i) => {
                    p += i + 1;
                    self.at_line_start = true;
                    self.decided = false;
                }
                None => {
                    self.at_line_start = false;
                    return Step::Scanned(stop);
                }
            }
        }
    }

    fn meta(&self, record: &[u8]) -> (Option<i64>, Option<Level>) {
        self.rule.meta(record)
    }
}

/// Where [`JsonDepth::advance`] stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JsonStep {
    /// The outermost bracket closed; the position is just after it.
    Closed(usize),
    /// An `R` outside any string (only when asked to watch for it): the caller checks for a
    /// `REQ:` marker, which cannot occur in valid JSON and so means the document was truncated.
    Marker(usize),
    /// A newline outside any string (only when asked to watch for it).
    Newline(usize),
    /// Consumed everything up to `stop` without the document closing.
    Exhausted,
}

/// Tracks JSON structure across calls: nesting depth, inside a string, after a backslash.
///
/// Brackets of both kinds count (mismatches are not checked: malformed input only needs to end
/// somewhere). A raw newline inside a string is invalid JSON; it ends the string, so that a
/// record cut mid-string cannot swallow the rest of the stream.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct JsonDepth {
    depth: u64,
    in_string: bool,
    escape: bool,
}

const OTHER: u8 = 0;
const OPEN: u8 = 1;
const CLOSE: u8 = 2;
const QUOTE: u8 = 3;
const LETTER_R: u8 = 4;
const NEWLINE: u8 = 5;

/// Which extra events [`JsonDepth::advance`] stops at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Watch {
    /// `R` outside strings (a possible `REQ:` marker).
    Marker,
    /// Newlines outside strings (a possible line of text after a truncated document).
    Newline,
}

static CLASS: [u8; 256] = {
    let mut t = [OTHER; 256];
    t[b'{' as usize] = OPEN;
    t[b'[' as usize] = OPEN;
    t[b'}' as usize] = CLOSE;
    t[b']' as usize] = CLOSE;
    t[b'"' as usize] = QUOTE;
    t[b'R' as usize] = LETTER_R;
    t[b'\n' as usize] = NEWLINE;
    t
};

impl JsonDepth {
    /// Consumes `buf[p..stop]` (the first opening bracket included).
    pub(crate) fn advance(&mut self, buf: &[u8], p: usize, stop: usize, watch: Watch) -> JsonStep {
        #[cfg(target_arch = "x86_64")]
        if simd::has_avx2() {
            // SAFETY: the CPU has AVX2.
            return unsafe { self.advance_avx2(buf, p, stop, watch) };
        }
        self.advance_in::<Chunk>(buf, p, stop, watch)
    }

    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn advance_avx2(&mut self, buf: &[u8], p: usize, stop: usize, watch: Watch) -> JsonStep {
        self.advance_in::<simd::Wide>(buf, p, stop, watch)
    }

    #[inline(always)]
    fn advance_in<L: Lanes>(&mut self, buf: &[u8], mut p: usize, stop: usize, watch: Watch) -> JsonStep {
        while p < stop {
            if self.escape {
                self.escape = false;
                p += 1;
                continue;
            }
            if p + BLOCK > stop {
                return self.bytes(buf, p, stop, watch);
            }
            // Whole 64-byte blocks at a time; a block the fast path cannot take (a backslash, a
            // raw newline in a string) goes through the byte loop.
            match self.block::<L>(buf, p, watch) {
                Block::Done(step) => return step,
                Block::Next => {}
                Block::Slow => match self.bytes(buf, p, p + BLOCK, watch) {
                    JsonStep::Exhausted => {}
                    step => return step,
                },
            }
            p += BLOCK;
        }
        JsonStep::Exhausted
    }

    /// One block by its bit masks (simdjson's idea): which bytes are in strings comes from a
    /// prefix XOR of the quotes, so a block costs the same whatever it holds.
    #[inline(always)]
    fn block<L: Lanes>(&mut self, buf: &[u8], p: usize, watch: Watch) -> Block {
        let m = Masks::of::<L>(buf[p..p + BLOCK].try_into().expect("a whole block"));
        if m.backslash != 0 {
            return Block::Slow;
        }
        // Bit i: byte i is inside a string (an opening quote counts as inside, a closing one not).
        let mut inside = prefix_xor(m.quote);
        if self.in_string {
            inside = !inside;
        }
        if m.newline & inside != 0 {
            return Block::Slow;
        }
        let outside = !inside;
        let (opens, closes) = (m.open & outside, m.close & outside);
        let events = match watch {
            Watch::Marker => m.letter_r & outside,
            Watch::Newline => m.newline,
        };
        // The first event (64 when none): the block is only consumed up to it.
        let limit = events.trailing_zeros();
        let before = if limit == 64 { u64::MAX } else { (1u64 << limit) - 1 };
        if u64::from((closes & before).count_ones()) >= self.depth {
            // The document may close in this block: follow its brackets in order.
            let mut depth = self.depth;
            let mut brackets = (opens | closes) & before;
            while brackets != 0 {
                let i = brackets.trailing_zeros();
                brackets &= brackets - 1;
                if opens >> i & 1 == 1 {
                    depth += 1;
                } else {
                    depth = depth.saturating_sub(1);
                    if depth == 0 {
                        self.depth = 0;
                        self.in_string = false;
                        return Block::Done(JsonStep::Closed(p + i as usize + 1));
                    }
                }
            }
        }
        self.depth = self.depth + u64::from((opens & before).count_ones()) - u64::from((closes & before).count_ones());
        if limit < BLOCK as u32 {
            self.in_string = false;
            return Block::Done(match watch {
                Watch::Marker => JsonStep::Marker(p + limit as usize),
                Watch::Newline => JsonStep::Newline(p + limit as usize),
            });
        }
        self.in_string = inside >> 63 == 1;
        Block::Next
    }

    /// The byte-at-a-time loop over `buf[p..stop]`.
    fn bytes(&mut self, buf: &[u8], mut p: usize, stop: usize, watch: Watch) -> JsonStep {
        while p < stop {
            if self.escape {
                self.escape = false;
                p += 1;
                continue;
            }
            if self.in_string {
                // Strings are mostly short (keys, ids): a table loop beats memchr's setup cost
                // there; long ones (bodies, tokens) go to memchr3.
                let rest = &buf[p..stop];
                let near = &rest[..rest.len().min(NEAR)];
                let found = match near.iter().position(|&b| STRING_STOP[b as usize]) {
                    Some(i) => Some(i),
                    None if near.len() < rest.len() => {
                        memchr3(b'"', b'\\', b'\n', &rest[near.len()..]).map(|i| i + near.len())
                    }
                    None => None,
                };
                match found {
                    None => return JsonStep::Exhausted,
                    Some(i) => {
                        let q = p + i;
                        match buf[q] {
                            b'\\' => self.escape = true,
                            b'\n' => {
                                // A raw newline is invalid in a string: the string ends here.
                                self.in_string = false;
                                if watch == Watch::Newline {
                                    return JsonStep::Newline(q);
                                }
                            }
                            _ => self.in_string = false,
                        }
                        p = q + 1;
                    }
                }
                continue;
            }
            let Some(i) = buf[p..stop].iter().position(|&b| CLASS[b as usize] != OTHER) else {
                return JsonStep::Exhausted;
            };
            p += i;
            match CLASS[buf[p] as usize] {
                OPEN => self.depth += 1,
                CLOSE => {
                    self.depth = self.depth.saturating_sub(1);
                    if self.depth == 0 {
                        return JsonStep::Closed(p + 1);
                    }
                }
                QUOTE => self.in_string = true,
                LETTER_R if watch == Watch::Marker => return JsonStep::Marker(p),
                NEWLINE if watch == Watch::Newline => return JsonStep::Newline(p),
                _ => {}
            }
            p += 1;
        }
        JsonStep::Exhausted
    }
}

/// Bytes per step of [`JsonDepth::advance`]'s fast path: one bit of a `u64` mask each.
const BLOCK: usize = 64;

/// What [`JsonDepth::block`] made of a block.
enum Block {
    /// The document closed or an event was found in it.
    Done(JsonStep),
    /// The whole block is consumed; the state is valid after it.
    Next,
    /// Nothing was consumed: the block needs the byte loop.
    Slow,
}

/// One bit per byte of a block, for each byte the structure scan cares about.
struct Masks {
    quote: u64,
    backslash: u64,
    newline: u64,
    /// `{` and `[`.
    open: u64,
    /// `}` and `]`.
    close: u64,
    letter_r: u64,
}

impl Masks {
    #[inline(always)]
    fn of<L: Lanes>(block: &[u8; BLOCK]) -> Masks {
        let mut m = Masks {
            quote: 0,
            backslash: 0,
            newline: 0,
            open: 0,
            close: 0,
            letter_r: 0,
        };
        for (i, bytes) in block.chunks_exact(L::WIDTH).enumerate() {
            // SAFETY: `L`'s instructions are there (`JsonDepth::advance` dispatched on them).
            let (c, shift) = (unsafe { L::load(bytes) }, L::WIDTH * i);
            // `{` and `[` differ only in bit 0x20, as do `}` and `]`.
            let folded = c.fold_case();
            m.quote |= u64::from(c.eq(b'"')) << shift;
            m.backslash |= u64::from(c.eq(b'\\')) << shift;
            m.newline |= u64::from(c.eq(b'\n')) << shift;
            m.open |= u64::from(folded.eq(b'{')) << shift;
            m.close |= u64::from(folded.eq(b'}')) << shift;
            m.letter_r |= u64::from(c.eq(b'R')) << shift;
        }
        m
    }
}

/// Bit i of the result is the XOR of bits 0..=i of `x`.
fn prefix_xor(mut x: u64) -> u64 {
    for shift in [1, 2, 4, 8, 16, 32] {
        x ^= x << shift;
    }
    x
}

/// How many bytes of a string are searched byte by byte before handing over to memchr3.
const NEAR: usize = 24;

/// Bytes that end a run of ordinary string content.
static STRING_STOP: [bool; 256] = {
    let mut t = [false; 256];
    t[b'"' as usize] = true;
    t[b'\\' as usize] = true;
    t[b'\n' as usize] = true;
    t
};

/// How far into a JSON record metadata is looked for: keeps extraction O(1) per record (the time
/// and level keys of log lines and Stripe events come first or early).
const META_WINDOW: usize = 1024;

/// A scalar value found by [`for_each_top_level`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Scalar<'a> {
    /// The raw bytes between the quotes (escapes left as they are).
    Str(&'a [u8]),
    Num(&'a [u8]),
}

/// Finds the value of the first key in `keys` that appears at the top level of the first JSON
/// object in the record's first KiB. Cheap and forgiving: returns `None` on anything odd.
#[cfg(test)]
pub(crate) fn top_level_value<'a>(record: &'a [u8], keys: &[&str]) -> Option<(usize, Scalar<'a>)> {
    let mut found = None;
    for_each_top_level(record, |key, value| {
        match keys.iter().position(|k| k.as_bytes() == key) {
            Some(i) => {
                found = value.map(|v| (i, v));
                false
            }
            None => true,
        }
    });
    found
}

/// Calls `visit(key, scalar value)` for the top-level keys of the first JSON object in the
/// record's first KiB, in order, until it returns false (the value is `None` when it is not a
/// string or a number). Stops quietly on anything malformed.
pub(crate) fn for_each_top_level<'a>(record: &'a [u8], mut visit: impl FnMut(&'a [u8], Option<Scalar<'a>>) -> bool) {
    let buf = &record[..record.len().min(META_WINDOW)];
    let Some(open) = memchr(b'{', buf) else { return };
    let mut p = open + 1;
    let mut depth = 1usize;
    // At depth 1, a string right after `{` or `,` is a key.
    let mut expect_key = true;
    while p < buf.len() {
        match buf[p] {
            b'"' => {
                let Some(end) = string_end(buf, p + 1) else { return };
                if depth == 1 && expect_key {
                    let key = &buf[p + 1..end];
                    let mut q = skip_ws(buf, end + 1);
                    if buf.get(q) != Some(&b':') {
                        return;
                    }
                    q = skip_ws(buf, q + 1);
                    if !visit(key, scalar_at(buf, q)) {
                        return;
                    }
                    expect_key = false;
                    p = q;
                    continue;
                }
                p = end + 1;
                continue;
            }
            b'{' | b'[' => depth += 1,
            b'}' | b']' => {
                depth -= 1;
                if depth == 0 {
                    return;
                }
            }
            b',' if depth == 1 => expect_key = true,
            _ => {}
        }
        p += 1;
    }
}

fn string_end(buf: &[u8], mut p: usize) -> Option<usize> {
    while p < buf.len() {
        match buf[p] {
            b'\\' => p += 2,
            b'"' => return Some(p),
            _ => p += 1,
        }
    }
    None
}

fn skip_ws(buf: &[u8], mut p: usize) -> usize {
    while p < buf.len() && matches!(buf[p], b' ' | b'\t' | b'\r' | b'\n') {
        p += 1;
    }
    p
}

fn scalar_at(buf: &[u8], p: usize) -> Option<Scalar<'_>> {
    match *buf.get(p)? {
        b'"' => {
            let end = string_end(buf, p + 1)?;
            Some(Scalar::Str(&buf[p + 1..end]))
        }
        b'-' | b'0'..=b'9' => {
            let mut q = p + 1;
            while q < buf.len() && matches!(buf[q], b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') {
                q += 1;
            }
            Some(Scalar::Num(&buf[p..q]))
        }
        _ => None,
    }
}

/// Timestamp and level of a JSON record from its usual top-level keys (the first key of each
/// list that is present; epoch numbers or date strings), in one pass over at most 1 KiB.
pub(crate) fn json_meta(record: &[u8], ts_keys: &[&str], level_keys: &[&str]) -> (Option<i64>, Option<Level>) {
    let (mut ts, mut level) = (None, None);
    let (mut ts_done, mut level_done) = (ts_keys.is_empty(), level_keys.is_empty());
    for_each_top_level(record, |key, value| {
        if !ts_done && ts_keys.iter().any(|k| k.as_bytes() == key) {
            ts_done = true;
            ts = value.and_then(|v| match v {
                Scalar::Num(n) => epoch_number_ms(n),
                Scalar::Str(s) => epoch_number_ms(s).or_else(|| datetime_ms(s)),
            });
        } else if !level_done && level_keys.iter().any(|k| k.as_bytes() == key) {
            level_done = true;
            level = match value {
                Some(Scalar::Str(s)) => parse_level(s),
                _ => None,
            };
        }
        !(ts_done && level_done)
    });
    (ts, level)
}

/// An epoch number in seconds, milliseconds, microseconds or nanoseconds (guessed by magnitude).
pub(crate) fn epoch_number_ms(s: &[u8]) -> Option<i64> {
    let s = std::str::from_utf8(s).ok()?;
    let v: f64 = s.parse().ok()?;
    if !v.is_finite() || v < 0.0 {
        return None;
    }
    let ms = if v < 1e11 {
        v * 1e3
    } else if v < 1e14 {
        v
    } else if v < 1e17 {
        v / 1e3
    } else {
        v / 1e6
    };
    Some(ms as i64)
}

/// RFC 3339, or `YYYY-MM-DD[ T]HH:MM:SS[,.]fff` without zone (taken as UTC).
pub(crate) fn datetime_ms(s: &[u8]) -> Option<i64> {
    let text = std::str::from_utf8(s).ok()?;
    if let Ok(dt) = chrono::DateTime::parse_from_rfc3339(text) {
        return Some(dt.timestamp_millis());
    }
    naive_datetime(s).map(|(ms, _)| ms)
}

/// Parses `YYYY-MM-DD[ T]HH:MM:SS` optionally followed by `[,.]` and 1-9 fraction digits, at the
/// start of `s`. Returns the UTC milliseconds and the number of bytes consumed.
pub(crate) fn naive_datetime(s: &[u8]) -> Option<(i64, usize)> {
    if s.len() < 19 || s[4] != b'-' || s[7] != b'-' || !matches!(s[10], b' ' | b'T') {
        return None;
    }
    if s[13] != b':' || s[16] != b':' {
        return None;
    }
    let y = digits(&s[0..4])?;
    let mo = digits(&s[5..7])?;
    let d = digits(&s[8..10])?;
    let h = digits(&s[11..13])?;
    let mi = digits(&s[14..16])?;
    let sec = digits(&s[17..19])?;
    let mut n = 19;
    let mut ms = 0;
    if n < s.len() && matches!(s[n], b',' | b'.') {
        let start = n + 1;
        let mut end = start;
        while end < s.len() && end - start < 9 && s[end].is_ascii_digit() {
            end += 1;
        }
        if end == start {
            return None;
        }
        let frac = &s[start..end];
        let take = frac.len().min(3);
        ms = digits(&frac[..take])? * 10u32.pow(3 - take as u32);
        n = end;
    }
    Some((utc_ms(y as i32, mo, d, h, mi, sec, ms)?, n))
}

pub(crate) fn utc_ms(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32, ms: u32) -> Option<i64> {
    let date = chrono::NaiveDate::from_ymd_opt(y, mo, d)?;
    let dt = date.and_hms_milli_opt(h, mi, s, ms)?;
    Some(dt.and_utc().timestamp_millis())
}

/// ASCII digits to a number; `None` unless every byte is a digit (at most 9 of them).
pub(crate) fn digits(s: &[u8]) -> Option<u32> {
    if s.is_empty() || s.len() > 9 {
        return None;
    }
    let mut v = 0u32;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        v = v * 10 + u32::from(b - b'0');
    }
    Some(v)
}

/// `Jan`..`Dec` to 1..12.
pub(crate) fn month(s: &[u8]) -> Option<u32> {
    const MONTHS: [&[u8; 3]; 12] = [
        b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
    ];
    MONTHS.iter().position(|m| m.as_slice() == s).map(|i| i as u32 + 1)
}

/// A level name as logging libraries write it (case-insensitive).
pub(crate) fn parse_level(s: &[u8]) -> Option<Level> {
    let mut buf = [0u8; 9];
    if s.len() > buf.len() {
        return None;
    }
    for (d, b) in buf.iter_mut().zip(s) {
        *d = b.to_ascii_lowercase();
    }
    Some(match &buf[..s.len()] {
        b"trace" => Level::Trace,
        b"debug" => Level::Debug,
        b"info" => Level::Info,
        b"notice" => Level::Notice,
        b"warn" | b"warning" => Level::Warning,
        b"err" | b"error" => Level::Error,
        b"crit" | b"critical" | b"fatal" | b"alert" | b"emerg" | b"emergency" | b"panic" => Level::Critical,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn top_level_value_ignores_nested_keys() {
        let rec = br#"REQ: { "id": "evt_1", "data": { "created": 5 }, "created": 1733285241 }"#;
        let got = top_level_value(rec, &["created"]);
        assert_eq!(got, Some((0, Scalar::Num(b"1733285241"))));
        assert_eq!(top_level_value(br#"{"a": {"ts": 1}}"#, &["ts"]), None);
        assert_eq!(
            top_level_value(br#"{"a": "x\"ts\": 1", "ts": "2024"}"#, &["ts"]),
            Some((0, Scalar::Str(b"2024")))
        );
    }

    #[test]
    fn datetimes() {
        assert_eq!(datetime_ms(b"1970-01-01T00:00:01.5Z"), Some(1500));
        assert_eq!(datetime_ms(b"1970-01-01 00:00:02,250"), Some(2250));
        assert_eq!(datetime_ms(b"1970-13-01 00:00:02"), None);
        assert_eq!(epoch_number_ms(b"1733285241"), Some(1_733_285_241_000));
        assert_eq!(epoch_number_ms(b"1733285241123"), Some(1_733_285_241_123));
    }

    /// Drives a tracker over `doc` fed in pieces ending at `cuts`, the way splitters do (a new
    /// tracker after each close, resuming after each event); returns every step with the state.
    fn drive(
        doc: &[u8],
        cuts: &[usize],
        watch: Watch,
        step: fn(&mut JsonDepth, &[u8], usize, usize, Watch) -> JsonStep,
    ) -> Vec<(JsonStep, u64, bool, bool)> {
        let (mut j, mut p, mut log) = (JsonDepth::default(), 0, Vec::new());
        for &stop in cuts.iter().chain([&doc.len()]) {
            while p < stop {
                let s = step(&mut j, doc, p, stop, watch);
                log.push((s, j.depth, j.in_string, j.escape));
                match s {
                    JsonStep::Exhausted => p = stop,
                    JsonStep::Closed(q) => (j, p) = (JsonDepth::default(), q),
                    JsonStep::Marker(q) | JsonStep::Newline(q) => p = q + 1,
                }
            }
        }
        log
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]
        /// The 64-byte block path (AVX2 where the CPU has it, and SSE2) finds exactly what the
        /// byte loop finds, wherever blocks and pieces fall and whatever mix of quotes, escapes,
        /// brackets and newlines comes.
        #[test]
        fn json_depth_blocks_agree_with_bytes(
            picks in proptest::collection::vec(0usize..64, 0..600),
            cuts in proptest::collection::vec(0usize..600, 0..4),
            marker in proptest::bool::ANY,
            rare in proptest::collection::vec(proptest::bool::weighted(0.3), 2),
        ) {
            // Backslashes and newlines only in some cases, so that many blocks take the fast path.
            let mut alphabet = b"{}[]\"\"\"R a:,xxxxxxxx".to_vec();
            alphabet.extend(rare[0].then_some(b'\\'));
            alphabet.extend(rare[1].then_some(b'\n'));
            let doc: Vec<u8> = picks.iter().map(|&i| alphabet[i % alphabet.len()]).collect();
            let mut cuts: Vec<usize> = cuts.into_iter().filter(|&c| c < doc.len()).collect();
            cuts.sort_unstable();
            let watch = if marker { Watch::Marker } else { Watch::Newline };
            let fast = drive(&doc, &cuts, watch, JsonDepth::advance);
            let sixteen = drive(&doc, &cuts, watch, JsonDepth::advance_in::<Chunk>);
            let slow = drive(&doc, &cuts, watch, JsonDepth::bytes);
            proptest::prop_assert_eq!(&fast, &slow);
            proptest::prop_assert_eq!(sixteen, slow);
        }
    }

    #[test]
    fn json_depth_handles_strings_and_escapes() {
        let doc = br#"{"a": "}\"}", "b": [1, {"c": "\\"}]} tail"#;
        let mut j = JsonDepth::default();
        let close = doc.len() - b" tail".len();
        assert_eq!(j.advance(doc, 0, doc.len(), Watch::Marker), JsonStep::Closed(close));
    }
}
