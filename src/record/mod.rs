//! Splits a byte stream into records. One submodule per log format; [`Splitter`] is the entry.
//!
//! Must not: interpret or alter record content (that is `scrub`), or hold more than
//! `max_record_bytes` of one record in memory (longer records come out as fragments).

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
    pub bytes: Vec<u8>,
    /// The format the record was split as (never `Auto`).
    pub format: Format,
    /// Milliseconds since the Unix epoch, when the record's header carries a timestamp.
    pub timestamp_ms: Option<i64>,
    pub level: Option<Level>,
    /// Set when the record was longer than `max_record_bytes` and this is one piece of it: the
    /// scrubber must use text mode (no structure can be trusted across pieces).
    pub fragment: bool,
}
