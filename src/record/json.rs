//! Pretty-printed JSON documents with surrounding text: a line starting with `{` or `[` starts a
//! document that lasts until its brackets balance (by structure, not by timeout), the rest of the
//! closing line included; every other line is a record of its own.
//!
//! A document that never closes must not swallow the rest of the file: a line that starts, outside
//! any string, with a letter other than `t`, `f`, `n` (which only begin `true`, `false`, `null` in
//! pretty-printed JSON) means the document was truncated, and a new record starts there.
//!
//! Must not: require the documents to be valid JSON (malformed ones end at the balance point, at
//! a text line as above, or as fragments).

use super::Level;
use super::scan::{JsonDepth, JsonStep, Scanner, Step, Watch, json_meta};
use memchr::memchr;

enum State {
    LineStart,
    /// Inside a document; `line_start`: at the first byte of one of its lines.
    Document {
        json: JsonDepth,
        line_start: bool,
    },
    /// Rest of a plain line, or of the line where a document closed.
    Line,
}

pub(crate) struct JsonScanner {
    state: State,
}

impl JsonScanner {
    pub(crate) fn new() -> Self {
        JsonScanner {
            state: State::LineStart,
        }
    }
}

/// A line of a pretty-printed document cannot start with this byte.
fn truncation_sign(b: u8) -> bool {
    b.is_ascii_alphabetic() && !matches!(b, b't' | b'f' | b'n')
}

impl Scanner for JsonScanner {
    fn scan(&mut self, buf: &[u8], from: usize, stop: usize, _eof: bool) -> Step {
        let mut p = from;
        loop {
            match &mut self.state {
                State::LineStart => {
                    if p >= stop {
                        return Step::Scanned(p);
                    }
                    if matches!(buf[p], b'{' | b'[') {
                        if p > 0 {
                            return Step::Boundary(p);
                        }
                        self.state = State::Document {
                            json: JsonDepth::default(),
                            line_start: false,
                        };
                    } else {
                        self.state = State::Line;
                    }
                }
                State::Document { json, line_start } => {
                    if *line_start {
                        if p >= stop {
                            return Step::Scanned(p);
                        }
                        *line_start = false;
                        if truncation_sign(buf[p]) && p > 0 {
                            self.state = State::LineStart;
                            return Step::Boundary(p);
                        }
                    }
                    match json.advance(buf, p, stop, Watch::Newline) {
                        JsonStep::Closed(q) => {
                            p = q;
                            self.state = State::Line;
                        }
                        JsonStep::Newline(q) => {
                            p = q + 1;
                            *line_start = true;
                        }
                        JsonStep::Exhausted | JsonStep::Marker(_) => return Step::Scanned(stop),
                    }
                }
                State::Line => match memchr(b'\n', &buf[p..stop]) {
                    Some(i) => {
                        self.state = State::LineStart;
                        return Step::Boundary(p + i + 1);
                    }
                    None => return Step::Scanned(stop),
                },
            }
        }
    }

    fn meta(&self, record: &[u8]) -> (Option<i64>, Option<Level>) {
        if !matches!(record.first(), Some(b'{')) {
            return (None, None);
        }
        json_meta(record, super::json_lines::TS_KEYS, super::json_lines::LEVEL_KEYS)
    }
}
