//! JSON lines: one object per line. Timestamp and level come from the usual top-level keys when
//! they are among the first KiB of the line.
//!
//! Must not: parse the whole object (only a bounded prefix is looked at).

use super::Level;
use super::scan::{Scanner, Step, json_meta, next_line_boundary};

/// Top-level keys that carry a record's time (the first one present in the object is used).
pub(crate) const TS_KEYS: &[&str] = &["ts", "time", "timestamp", "@timestamp", "created"];
/// Top-level keys that carry a record's level.
pub(crate) const LEVEL_KEYS: &[&str] = &["level", "severity"];

pub(crate) struct JsonLinesScanner;

impl Scanner for JsonLinesScanner {
    fn scan(&mut self, buf: &[u8], from: usize, stop: usize, _eof: bool) -> Step {
        next_line_boundary(buf, from, stop)
    }

    fn meta(&self, record: &[u8]) -> (Option<i64>, Option<Level>) {
        json_meta(record, TS_KEYS, LEVEL_KEYS)
    }
}
