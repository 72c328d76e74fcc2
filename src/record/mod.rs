//! Splits a byte stream into records. One submodule per log format; [`Splitter`] is the entry.
//!
//! The splitter is push-style: feed it the stream's bytes in chunks of any size and it appends
//! every complete record to a `Vec`. Each format is an incremental scanner (`scan::Scanner`) that
//! resumes where it stopped, so the total work is linear in the input whatever the chunking.
//!
//! **Invariants** (tested, also with random chunkings): the concatenation of the emitted records'
//! bytes is the input, byte for byte; offsets are contiguous from the start offset; the records
//! do not depend on how the input was chunked (except across [`Splitter::flush_idle`]); no record
//! is longer than `max_record_bytes` (longer ones come out as `fragment` pieces); nothing panics,
//! whatever the bytes.
//!
//! Must not: interpret or alter record content (that is `scrub`), or hold more than
//! `max_record_bytes` (plus one input chunk) of one record in memory.

mod access_log;
mod detect;
mod django;
mod json;
mod json_lines;
mod req;
mod scan;
mod syslog;
mod text;

pub use detect::detect;

use bytes::{Bytes, BytesMut};
use scan::{HeaderLines, Scanner, Step};
use serde::{Deserialize, Serialize};

/// A log format. `Auto` detects the format from the first bytes of a stream.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Auto,
    /// Python/Django logging: `LEVEL date time logger message` (or timestamp first), the message
    /// continuing over the following lines until the next record starts.
    Django,
    /// `REQ: {json}` records, possibly concatenated on one line.
    Req,
    /// One JSON object per line.
    JsonLines,
    /// Pretty-printed JSON documents with surrounding text.
    Json,
    /// RFC 3164 / RFC 5424 syslog lines.
    Syslog,
    /// nginx / Apache access logs (combined and common formats).
    AccessLog,
    /// Plain text, one record per line, Python tracebacks kept with the line before them.
    Text,
}

/// Log level of a record, when its format carries one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Trace,
    Debug,
    Info,
    Notice,
    Warning,
    Error,
    Critical,
}

/// One record cut from a stream: raw, unscrubbed bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Record {
    /// Offset in the source stream of the record's first byte.
    pub offset: u64,
    /// The record's bytes, exactly as in the stream (including its trailing newline, if any),
    /// so that concatenating the records of a stream gives the stream back.
    pub bytes: Bytes,
    /// The format the record was split as (never `Auto`).
    pub format: Format,
    /// Milliseconds since the Unix epoch, when the record's header carries a timestamp.
    pub timestamp_ms: Option<i64>,
    pub level: Option<Level>,
    /// Set when the record was longer than `max_record_bytes` and this is one piece of it: the
    /// scrubber must use text mode (no structure can be trusted across pieces).
    pub fragment: bool,
}

impl Format {
    /// The format's name as written in configuration and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Format::Auto => "auto",
            Format::Django => "django",
            Format::Req => "req",
            Format::JsonLines => "json_lines",
            Format::Json => "json",
            Format::Syslog => "syslog",
            Format::AccessLog => "access_log",
            Format::Text => "text",
        }
    }

    /// Every format, `Auto` first.
    pub const ALL: [Format; 8] = [
        Format::Auto,
        Format::Django,
        Format::Req,
        Format::JsonLines,
        Format::Json,
        Format::Syslog,
        Format::AccessLog,
        Format::Text,
    ];
}

impl std::fmt::Display for Format {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Format {
    type Err = UnknownFormat;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let norm = s.trim().to_ascii_lowercase().replace('-', "_");
        match norm.as_str() {
            "jsonl" | "ndjson" | "jsonlines" => return Ok(Format::JsonLines),
            "access" | "nginx" | "apache" | "accesslog" => return Ok(Format::AccessLog),
            _ => {}
        }
        Format::ALL
            .into_iter()
            .find(|f| f.name() == norm)
            .ok_or_else(|| UnknownFormat(s.to_owned()))
    }
}

/// A format name that is not one of [`Format::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown log format {0:?} (expected one of auto, django, req, json_lines, json, syslog, access_log, text)")]
pub struct UnknownFormat(pub String);

/// How many bytes of a stream [`Splitter`] buffers, at most, to detect an `Auto` format.
pub const DETECT_MAX_BYTES: usize = 64 * 1024;
/// Detection happens earlier once this many lines are buffered.
pub const DETECT_MAX_LINES: usize = 100;
/// A fragment is cut just after the last delimiter found in this many bytes at its end.
const CUT_WINDOW: usize = 4096;
/// Smallest accepted `max_record_bytes` (smaller values are raised to it).
pub const MIN_RECORD_BYTES: usize = 16;

/// Splits one stream into [`Record`]s (see the module docs for the invariants).
pub struct Splitter {
    format: Format,
    /// `None` until the format is known.
    scanner: Option<Box<dyn Scanner>>,
    max: usize,
    /// The pending partial record. Records are split off its front and share its allocation,
    /// so emitting one copies nothing; once they are dropped, the space they held is reused.
    buf: BytesMut,
    /// Stream offset of `buf[0]`.
    offset: u64,
    /// Where the scanner resumes, relative to `buf[0]`.
    scan_from: usize,
    /// A boundary the scanner reported that is too far for one record: fragments are cut first.
    known_boundary: Option<usize>,
    /// The pending bytes continue a record whose earlier pieces were emitted as fragments.
    in_fragment: bool,
    /// Reference time for years missing from timestamps (RFC 3164 syslog).
    reference_ms: i64,
    /// While detecting: bytes searched for newlines so far, and newlines found.
    detect_scanned: usize,
    detect_lines: usize,
}

impl Splitter {
    /// `format` may be `Auto`: the format is then detected from the first bytes (at most
    /// [`DETECT_MAX_BYTES`], or the first [`DETECT_MAX_LINES`] lines, are buffered before
    /// deciding). `max_record_bytes` is raised to at least [`MIN_RECORD_BYTES`].
    pub fn new(format: Format, max_record_bytes: usize, start_offset: u64) -> Splitter {
        let reference_ms = chrono::Utc::now().timestamp_millis();
        let mut s = Splitter {
            format,
            scanner: None,
            max: max_record_bytes.max(MIN_RECORD_BYTES),
            buf: BytesMut::new(),
            offset: start_offset,
            scan_from: 0,
            known_boundary: None,
            in_fragment: false,
            reference_ms,
            detect_scanned: 0,
            detect_lines: 0,
        };
        if format != Format::Auto {
            s.scanner = Some(s.make_scanner(format));
        }
        s
    }

    /// Sets the reference time used for timestamps without a year (see the `syslog` module):
    /// makes the records a pure function of the input. Call it before the first push.
    pub fn with_reference_time(mut self, reference_ms: i64) -> Splitter {
        self.reference_ms = reference_ms;
        if self.format != Format::Auto {
            self.scanner = Some(self.make_scanner(self.format));
        }
        self
    }

    fn make_scanner(&self, format: Format) -> Box<dyn Scanner> {
        match format {
            Format::Django => Box::new(django::scanner()),
            Format::Req => Box::new(req::ReqScanner::new()),
            Format::JsonLines => Box::new(json_lines::JsonLinesScanner),
            Format::Json => Box::new(json::JsonScanner::new()),
            Format::Syslog => Box::new(syslog::SyslogScanner {
                reference_ms: self.reference_ms,
            }),
            Format::AccessLog => Box::new(access_log::AccessLogScanner),
            Format::Text | Format::Auto => Box::new(HeaderLines::new(text::TextRule::new())),
        }
    }

    /// Feeds the next bytes of the stream; complete records are appended to `out`.
    pub fn push(&mut self, data: &[u8], out: &mut Vec<Record>) {
        // Appending in bounded pieces keeps the buffer near `max_record_bytes` even when the
        // caller hands over a huge slice at once.
        let piece = self.max.max(DETECT_MAX_BYTES);
        for chunk in data.chunks(piece) {
            self.buf.extend_from_slice(chunk);
            self.process(false, out);
            self.compact();
        }
    }

    /// The stream went quiet (idle timeout): the pending partial record, if any, is emitted as
    /// complete.
    pub fn flush_idle(&mut self, out: &mut Vec<Record>) {
        self.process(true, out);
        self.compact();
    }

    /// End of stream: like [`Splitter::flush_idle`].
    pub fn finish(&mut self, out: &mut Vec<Record>) {
        self.flush_idle(out);
    }

    /// Offset up to which every byte is in an emitted record (the offset of the pending partial
    /// record).
    pub fn emitted_offset(&self) -> u64 {
        self.offset
    }

    /// Bytes held for the pending partial record.
    pub fn pending_len(&self) -> usize {
        self.buf.len()
    }

    /// The resolved format (`Auto` until detected).
    pub fn format(&self) -> Format {
        self.format
    }

    fn compact(&mut self) {
        // Give back the memory of a burst (e.g. a huge pushed slice) once it is processed.
        let keep = self.max.max(DETECT_MAX_BYTES) * 2;
        if self.buf.capacity() > keep * 2 && self.buf.len() < keep {
            self.buf = BytesMut::from(&self.buf[..]);
        }
    }

    /// Resolves an `Auto` format once the detection sample is complete. Only called while no
    /// record has been emitted, so the sample is `buf[..]`.
    fn try_detect(&mut self, eof: bool) -> bool {
        let pending = &self.buf[..];
        let mut end = None;
        while self.detect_scanned < pending.len().min(DETECT_MAX_BYTES) {
            let window = &pending[self.detect_scanned..pending.len().min(DETECT_MAX_BYTES)];
            match memchr::memchr(b'\n', window) {
                Some(i) => {
                    self.detect_scanned += i + 1;
                    self.detect_lines += 1;
                    if self.detect_lines == DETECT_MAX_LINES {
                        end = Some(self.detect_scanned);
                        break;
                    }
                }
                None => self.detect_scanned += window.len(),
            }
        }
        let end = match end {
            Some(e) => e,
            None if pending.len() >= DETECT_MAX_BYTES => DETECT_MAX_BYTES,
            None if eof && !pending.is_empty() => pending.len(),
            None => return false,
        };
        let format = detect(&pending[..end]);
        self.format = format;
        self.scanner = Some(self.make_scanner(format));
        true
    }

    fn process(&mut self, eof: bool, out: &mut Vec<Record>) {
        if self.scanner.is_none() && !self.try_detect(eof) {
            return;
        }
        loop {
            let len = self.pending_len();
            if let Some(b) = self.known_boundary {
                if b <= self.max {
                    self.emit(b, false, out);
                } else {
                    self.cut_fragment(out);
                }
                continue;
            }
            if self.scan_from > self.max {
                // Every position up to `max` is known not to start a record.
                self.cut_fragment(out);
                continue;
            }
            if len == 0 {
                return;
            }
            let stop = len.min(self.max + 1);
            let Some(scanner) = self.scanner.as_mut() else { return };
            match scanner.scan(&self.buf, self.scan_from, stop, eof) {
                Step::Boundary(b) => {
                    debug_assert!(b > 0 && b <= stop && b >= self.scan_from, "bad boundary {b}");
                    // Clamped so that a scanner bug can neither loop nor lose bytes.
                    let b = b.clamp(self.scan_from.max(1), len);
                    self.known_boundary = Some(b);
                    self.scan_from = b;
                }
                Step::Scanned(p) => {
                    self.scan_from = p.clamp(self.scan_from, len);
                    if self.scan_from > self.max {
                        continue;
                    }
                    if !eof {
                        return;
                    }
                    // At the end of input the scanner reaches `stop`; all that is left is one record.
                    debug_assert_eq!(self.scan_from, len, "scanner stalled at end of input");
                    if len > self.max {
                        self.scan_from = self.max + 1;
                        continue;
                    }
                    self.emit(len, false, out);
                    return;
                }
            }
        }
    }

    /// Emits `buf[..n]` as one record (the last piece of a fragmented record when `in_fragment`).
    fn emit(&mut self, n: usize, fragment: bool, out: &mut Vec<Record>) {
        let bytes = self.buf.split_to(n).freeze();
        let first_piece = !self.in_fragment;
        let (timestamp_ms, level) = match (&self.scanner, first_piece) {
            (Some(s), true) => s.meta(&bytes),
            _ => (None, None),
        };
        out.push(Record {
            offset: self.offset,
            bytes,
            format: self.format,
            timestamp_ms,
            level,
            fragment: fragment || self.in_fragment,
        });
        self.in_fragment = fragment;
        self.offset += n as u64;
        self.scan_from = self.scan_from.saturating_sub(n);
        self.known_boundary = self.known_boundary.and_then(|b| b.checked_sub(n)).filter(|b| *b > 0);
    }

    /// Emits the first `max` bytes (or fewer, to end just after a delimiter) as a fragment.
    fn cut_fragment(&mut self, out: &mut Vec<Record>) {
        let cut = cut_point(&self.buf, self.max);
        self.emit(cut, true, out);
    }
}

/// Where to end a fragment of a record longer than `max` (`pending.len() > max`): just after the
/// last delimiter in the final [`CUT_WINDOW`] bytes of the piece, so a token is rarely split;
/// otherwise at `max`, moved back to a UTF-8 character boundary when that is close.
fn cut_point(pending: &[u8], max: usize) -> usize {
    let max = max.min(pending.len());
    let window_start = max.saturating_sub(CUT_WINDOW);
    let is_delim = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b',' | b';' | b'&' | b'"' | b'\'');
    if let Some(i) = pending[window_start..max].iter().rposition(is_delim) {
        return window_start + i + 1;
    }
    let mut cut = max;
    // A continuation byte (10xxxxxx) at `cut` would split a character.
    while cut > max.saturating_sub(3).max(1) && pending.get(cut).is_some_and(|b| b & 0xC0 == 0x80) {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
mod tests;
