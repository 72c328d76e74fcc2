//! Pretty-printed JSON documents with surrounding text: a line starting with `{` or `[` starts a
//! document that lasts until its brackets balance (by structure, not by timeout), the rest of the
//! closing line included; every other line is a record of its own.
//!
//! Must not: require the documents to be valid JSON (malformed ones end at the balance point, or
//! as fragments).

use super::Level;
use super::scan::{JsonDepth, JsonStep, Scanner, Step, json_meta};
use memchr::memchr;

enum State {
    LineStart,
    Document(JsonDepth),
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
                        self.state = State::Document(JsonDepth::default());
                    } else {
                        self.state = State::Line;
                    }
                }
                State::Document(json) => match json.advance(buf, p, stop, false) {
                    JsonStep::Closed(q) => {
                        p = q;
                        self.state = State::Line;
                    }
                    JsonStep::Exhausted | JsonStep::Marker(_) => return Step::Scanned(stop),
                },
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
