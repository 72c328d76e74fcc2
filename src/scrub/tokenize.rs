//! A lenient, byte-preserving, iterative tokenizer for JSON and Python-dict literals.
//!
//! It reports the spans of keys and scalar values to a [`Visitor`]; it never copies or alters
//! bytes, so the engine can replace spans in place and keep everything else byte for byte.
//! Lenient: single- or double-quoted strings, bare words (`None`, `True`, `null`, numbers),
//! trailing commas. Iterative: the nesting lives in a `Vec`, so 100,000 levels cannot overflow
//! the stack (and `max_depth` refuses them anyway).
//!
//! Must not: allocate per value, recurse, or panic on any input.

use crate::simd::Chunk;

/// Why a structure could not be walked; the caller falls back to text mode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WalkError {
    /// The input ended inside the structure (truncated record, record cut mid-string).
    Eof,
    /// An unexpected byte at this offset.
    Syntax(usize),
    /// Nested deeper than the limit.
    TooDeep,
}

/// The kind of a scalar value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scalar {
    /// A quoted string; the span includes the quotes.
    Str,
    /// A bare word starting like a number (`-12.5`, `1733285241`).
    Number,
    /// Any other bare word (`null`, `true`, `None`, `NaN`).
    Word,
}

/// Receives the structure's tokens, in order.
pub trait Visitor {
    /// An object (`is_object`) or array opens at `start` (the bracket).
    fn open(&mut self, is_object: bool, start: usize);
    /// The innermost container closes; `end` is just after its bracket.
    fn close(&mut self, end: usize);
    /// A key in an object: `start..end` includes the quotes.
    fn key(&mut self, start: usize, end: usize);
    /// A scalar value (a member value or an array element).
    fn scalar(&mut self, start: usize, end: usize, kind: Scalar);
}

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

#[inline]
fn is_word(b: u8) -> bool {
    WORD[b as usize]
}

/// The bytes of an unquoted value (numbers, `true`, `null`, barewords): one load per byte, not
/// a chain of range compares.
static WORD: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'_' | b'.' | b'+' | b'-');
        b += 1;
    }
    t
};

/// End (exclusive, after the closing quote) of the string whose opening quote is at `start`.
#[inline]
pub fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let quote = bytes[start];
    let mut i = start + 1;
    // Sixteen bytes at a time: most strings (keys, ids) end in the first chunk.
    while i + 16 <= bytes.len() {
        let c = Chunk::load(&bytes[i..]);
        let stops = c.eq(quote) | c.eq(b'\\');
        if stops == 0 {
            i += 16;
            continue;
        }
        let at = i + stops.trailing_zeros() as usize;
        if bytes[at] == quote {
            return Some(at + 1);
        }
        i = at + 2;
    }
    while i < bytes.len() {
        match bytes[i] {
            b if b == quote => return Some(i + 1),
            b'\\' => i += 2,
            _ => i += 1,
        }
    }
    None
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// A value (after `:` or at an array slot).
    Value,
    /// After a value: `,` or the closing bracket.
    AfterValue,
    /// In an object: a key or `}`.
    Key,
}

/// Walks the structure starting at `bytes[start]` (which must be `{` or `[`), returns the offset
/// just after its closing bracket.
pub fn walk(bytes: &[u8], start: usize, max_depth: usize, v: &mut impl Visitor) -> Result<usize, WalkError> {
    // true = object, false = array
    let mut stack: Vec<bool> = Vec::with_capacity(16);
    let mut expect = Expect::Value;
    let mut i = start;
    let n = bytes.len();
    loop {
        while i < n && is_ws(bytes[i]) {
            i += 1;
        }
        if i >= n {
            return Err(WalkError::Eof);
        }
        let b = bytes[i];
        match expect {
            Expect::Value => match b {
                b'{' | b'[' => {
                    if stack.len() >= max_depth {
                        return Err(WalkError::TooDeep);
                    }
                    let obj = b == b'{';
                    stack.push(obj);
                    v.open(obj, i);
                    i += 1;
                    expect = if obj { Expect::Key } else { Expect::Value };
                }
                b']' if stack.last() == Some(&false) => {
                    // empty array or trailing comma
                    stack.pop();
                    i += 1;
                    v.close(i);
                    if stack.is_empty() {
                        return Ok(i);
                    }
                    expect = Expect::AfterValue;
                }
                b'"' | b'\'' => {
                    let end = string_end(bytes, i).ok_or(WalkError::Eof)?;
                    v.scalar(i, end, Scalar::Str);
                    i = end;
                    expect = Expect::AfterValue;
                }
                _ if is_word(b) => {
                    let s = i;
                    while i < n && is_word(bytes[i]) {
                        i += 1;
                    }
                    if i >= n {
                        return Err(WalkError::Eof);
                    }
                    let kind = if b.is_ascii_digit() || b == b'-' || b == b'+' || b == b'.' {
                        Scalar::Number
                    } else {
                        Scalar::Word
                    };
                    v.scalar(s, i, kind);
                    expect = Expect::AfterValue;
                }
                _ => return Err(WalkError::Syntax(i)),
            },
            Expect::AfterValue => match b {
                b',' => {
                    i += 1;
                    expect = if stack.last() == Some(&true) {
                        Expect::Key
                    } else {
                        Expect::Value
                    };
                }
                b'}' | b']' => {
                    let obj = b == b'}';
                    if stack.last() != Some(&obj) {
                        return Err(WalkError::Syntax(i));
                    }
                    stack.pop();
                    i += 1;
                    v.close(i);
                    if stack.is_empty() {
                        return Ok(i);
                    }
                }
                _ => return Err(WalkError::Syntax(i)),
            },
            Expect::Key => match b {
                b'"' | b'\'' => {
                    let end = string_end(bytes, i).ok_or(WalkError::Eof)?;
                    v.key(i, end);
                    // The colon, here rather than in a state of its own: one turn of the loop
                    // less per member.
                    i = end;
                    while i < n && is_ws(bytes[i]) {
                        i += 1;
                    }
                    match bytes.get(i) {
                        Some(b':') => i += 1,
                        Some(_) => return Err(WalkError::Syntax(i)),
                        None => return Err(WalkError::Eof),
                    }
                    expect = Expect::Value;
                }
                b'}' => {
                    stack.pop();
                    i += 1;
                    v.close(i);
                    if stack.is_empty() {
                        return Ok(i);
                    }
                    expect = Expect::AfterValue;
                }
                _ => return Err(WalkError::Syntax(i)),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Log(Vec<String>, Vec<u8>);
    impl Visitor for Log {
        fn open(&mut self, o: bool, _: usize) {
            self.0.push(if o { "{".into() } else { "[".into() });
        }
        fn close(&mut self, _: usize) {
            self.0.push("end".into());
        }
        fn key(&mut self, s: usize, e: usize) {
            self.0.push(format!("k:{}", String::from_utf8_lossy(&self.1[s..e])));
        }
        fn scalar(&mut self, s: usize, e: usize, k: Scalar) {
            self.0.push(format!("{k:?}:{}", String::from_utf8_lossy(&self.1[s..e])));
        }
    }

    fn check(input: &str, expect: Result<&str, WalkError>) {
        let mut log = Log(Vec::new(), input.as_bytes().to_vec());
        let got = walk(input.as_bytes(), 0, 64, &mut log).map(|_| log.0.join(" "));
        assert_eq!(got.as_deref().map_err(|e| *e), expect, "input: {input}");
    }

    /// The plain definition: the first quote not escaped by a backslash.
    fn string_end_bytewise(bytes: &[u8], start: usize) -> Option<usize> {
        let mut i = start + 1;
        while i < bytes.len() {
            match bytes[i] {
                b if b == bytes[start] => return Some(i + 1),
                b'\\' => i += 2,
                _ => i += 1,
            }
        }
        None
    }

    proptest::proptest! {
        /// Whatever the length and wherever the escapes fall against the sixteen-byte chunks.
        #[test]
        fn string_end_agrees_with_its_definition(
            picks in proptest::collection::vec(0usize..12, 0..80),
            start in 0usize..20,
        ) {
            let bytes: Vec<u8> = picks.iter().map(|&i| b"\"\\\'abcdefghi"[i]).collect();
            if let Some(q) = bytes.iter().skip(start).position(|&b| b == b'"' || b == b'\'') {
                let at = start + q;
                proptest::prop_assert_eq!(string_end(&bytes, at), string_end_bytewise(&bytes, at));
            }
        }
    }

    #[test]
    fn tokens() {
        check(
            r#"{"a": "x\"y", "b": [1, -2.5, null]}"#,
            Ok(r#"{ k:"a" Str:"x\"y" k:"b" [ Number:1 Number:-2.5 Word:null end end"#),
        );
        check("{'A-B': 'v', 'n': None,}", Ok("{ k:'A-B' Str:'v' k:'n' Word:None end"));
        check("{}", Ok("{ end"));
        // escapes on both sides of the short-string fast path
        check(
            r#"{"k": "0123456789012345678901234567890\"x\"\\", "l": 1}"#,
            Ok(r#"{ k:"k" Str:"0123456789012345678901234567890\"x\"\\" k:"l" Number:1 end"#),
        );
        check(r#"{"k": "0123456789012345678901234567890123\"#, Err(WalkError::Eof));
        check("[]", Ok("[ end"));
        check(r#"{"a": "cut"#, Err(WalkError::Eof));
        check(r#"{"a" 1}"#, Err(WalkError::Syntax(5)));
        check(r#"{"a": 1]"#, Err(WalkError::Syntax(7)));
    }

    #[test]
    fn deep_nesting_is_refused_not_overflowed() {
        let s = "[".repeat(100_000);
        let mut log = Log::default();
        assert_eq!(walk(s.as_bytes(), 0, 256, &mut log), Err(WalkError::TooDeep));
        let mut log = Log::default();
        assert_eq!(walk(s.as_bytes(), 0, usize::MAX, &mut log), Err(WalkError::Eof));
    }
}
