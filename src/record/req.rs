//! `REQ: {json}` records, possibly concatenated with no newline between them, with stray or
//! doubled markers (`REQ: REQ: {...}`) and an empty trailing `REQ:`.
//!
//! Records are assembled by JSON structure (balanced braces, strings, escapes), never by the
//! markers: a `REQ:` inside a string does not split, and a record is complete as soon as its JSON
//! closes (no waiting for the next marker, which matters when tailing). Whatever stands between
//! records (markers, whitespace) opens the next record; other text outside any JSON becomes a
//! record of its own at the next line end. A `REQ:` marker outside strings inside an unclosed
//! document means the document was truncated: the next record starts at the marker.
//!
//! Must not: drop any byte, or wait for bytes after a closing brace.

use super::Level;
use super::scan::{JsonDepth, JsonStep, Scanner, Step, Watch, json_meta};

const MARKER: &[u8] = b"REQ:";

enum State {
    /// Between documents. `text`: a byte other than whitespace and markers was seen since the
    /// record started.
    Outside {
        text: bool,
    },
    Inside(JsonDepth),
}

pub(crate) struct ReqScanner {
    state: State,
}

impl ReqScanner {
    pub(crate) fn new() -> Self {
        ReqScanner {
            state: State::Outside { text: false },
        }
    }
}

/// Whether `buf[p..]` starts with the marker; `None` when more bytes are needed to tell.
fn marker_at(buf: &[u8], p: usize, eof: bool) -> Option<bool> {
    let rest = &buf[p..];
    if rest.len() >= MARKER.len() {
        Some(rest.starts_with(MARKER))
    } else if eof || !MARKER.starts_with(rest) {
        Some(false)
    } else {
        None
    }
}

impl Scanner for ReqScanner {
    fn scan(&mut self, buf: &[u8], from: usize, stop: usize, eof: bool) -> Step {
        let mut p = from;
        loop {
            match &mut self.state {
                State::Outside { text } => {
                    while p < stop {
                        match buf[p] {
                            b'{' => break,
                            b'R' => match marker_at(buf, p, eof) {
                                None => return Step::Scanned(p),
                                Some(true) => p += MARKER.len(),
                                Some(false) => {
                                    *text = true;
                                    p += 1;
                                }
                            },
                            b'\n' => {
                                p += 1;
                                if *text {
                                    *text = false;
                                    return Step::Boundary(p);
                                }
                            }
                            b' ' | b'\t' | b'\r' => p += 1,
                            _ => {
                                *text = true;
                                p += 1;
                            }
                        }
                    }
                    if p >= stop {
                        return Step::Scanned(p);
                    }
                    self.state = State::Inside(JsonDepth::default());
                }
                State::Inside(json) => match json.advance(buf, p, stop, Watch::Marker) {
                    JsonStep::Closed(q) => {
                        self.state = State::Outside { text: false };
                        return Step::Boundary(q);
                    }
                    JsonStep::Exhausted => return Step::Scanned(stop),
                    JsonStep::Newline(q) => p = q + 1,
                    JsonStep::Marker(q) => match marker_at(buf, q, eof) {
                        None => return Step::Scanned(q),
                        Some(true) if q > 0 => {
                            self.state = State::Outside { text: false };
                            return Step::Boundary(q);
                        }
                        // An `R` that is not a marker is just a (malformed) byte of the document.
                        Some(_) => p = q + 1,
                    },
                },
            }
        }
    }

    fn meta(&self, record: &[u8]) -> (Option<i64>, Option<Level>) {
        json_meta(record, &["created"], &[])
    }
}
