//! Plain text: one record per line, except that Python tracebacks (`Traceback (most recent call
//! last):`, the indented `File ...` lines, the final `SomeError: message` line, chained
//! tracebacks), other indented lines and blank lines stay with the record before them.
//!
//! Must not: split a traceback from the log line that introduced it.

use super::Level;
use super::django::parse_header;
use super::scan::{LineRule, naive_datetime};

pub(crate) struct TextRule {
    /// Inside a traceback: the next non-indented line is its final exception line.
    in_traceback: bool,
}

impl TextRule {
    pub(crate) fn new() -> Self {
        TextRule { in_traceback: false }
    }
}

const TRACEBACK: &[u8] = b"Traceback (most recent call last):";
const CHAINED: [&[u8]; 2] = [
    b"During handling of the above exception",
    b"The above exception was the direct cause",
];

impl LineRule for TextRule {
    const LOOKAHEAD: usize = 64;

    fn starts_record(&mut self, prefix: &[u8]) -> bool {
        match prefix.first() {
            None | Some(b'\n' | b'\r') => return false,
            Some(b' ' | b'\t') => return false,
            _ => {}
        }
        if prefix.starts_with(TRACEBACK) || CHAINED.iter().any(|c| prefix.starts_with(c)) {
            self.in_traceback = true;
            return false;
        }
        if self.in_traceback {
            // The exception line (`ValueError: bad input`) closes the traceback.
            self.in_traceback = false;
            return false;
        }
        true
    }

    fn meta(&self, record: &[u8]) -> (Option<i64>, Option<Level>) {
        if let Some((ts, level)) = parse_header(record) {
            return (Some(ts), Some(level));
        }
        let start = usize::from(record.first() == Some(&b'['));
        (naive_datetime(&record[start..]).map(|(ts, _)| ts), None)
    }
}
