//! nginx / Apache access logs (common and combined formats), one record per line:
//! `host ident user [10/Oct/2000:13:55:36 -0700] "GET /path HTTP/1.1" status bytes ...`.
//!
//! Must not: parse the request line or query string (that is the scrubber's work).

use super::Level;
use super::scan::{Scanner, Step, digits, month, next_line_boundary};

pub(crate) struct AccessLogScanner;

impl Scanner for AccessLogScanner {
    fn scan(&mut self, buf: &[u8], from: usize, stop: usize, _eof: bool) -> Step {
        next_line_boundary(buf, from, stop)
    }

    fn meta(&self, record: &[u8]) -> (Option<i64>, Option<Level>) {
        (parse(record).flatten(), None)
    }
}

/// `Some(timestamp)` when the line has the access-log shape (the timestamp itself may be
/// unparseable), `None` otherwise.
pub(crate) fn parse(line: &[u8]) -> Option<Option<i64>> {
    // Three space-separated fields (host, ident, user), then `[`.
    let mut p = 0;
    for _ in 0..3 {
        let sp = line[p..].iter().take(256).position(|&b| b == b' ')?;
        if sp == 0 || line[p..p + sp].contains(&b'[') {
            return None;
        }
        p += sp + 1;
    }
    if line.get(p) != Some(&b'[') {
        return None;
    }
    let close = line[p..].iter().take(40).position(|&b| b == b']')?;
    let ts = &line[p + 1..p + close];
    if !line[p + close..].starts_with(b"] \"") {
        return None;
    }
    Some(timestamp(ts))
}

/// `10/Oct/2000:13:55:36 -0700`.
fn timestamp(s: &[u8]) -> Option<i64> {
    if s.len() != 26 || s[2] != b'/' || s[6] != b'/' || s[11] != b':' || s[20] != b' ' {
        return None;
    }
    let d = digits(&s[0..2])?;
    let mo = month(&s[3..6])?;
    let y = digits(&s[7..11])?;
    let (h, mi, sec) = (digits(&s[12..14])?, digits(&s[15..17])?, digits(&s[18..20])?);
    let sign = match s[21] {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let off = i64::from(digits(&s[22..24])?) * 60 + i64::from(digits(&s[24..26])?);
    let local = super::scan::utc_ms(y as i32, mo, d, h, mi, sec, 0)?;
    Some(local - sign * off * 60_000)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines() {
        let cases: &[(&str, Option<Option<i64>>)] = &[
            (
                r#"127.0.0.1 - frank [10/Oct/2000:13:55:36 -0700] "GET / HTTP/1.0" 200 2326"#,
                Some(Some(971_211_336_000)),
            ),
            (
                r#"::1 - - [10/Oct/2000:20:55:36 +0000] "POST /hook HTTP/1.1" 200 2 "-" "Stripe/1.0""#,
                Some(Some(971_211_336_000)),
            ),
            (r#"h - - [bad] "GET /""#, Some(None)),
            ("INFO 2024-11-20 10:00:28,835 views hi", None),
            ("a b c d [x] \"", None),
        ];
        for (line, want) in cases {
            assert_eq!(&parse(line.as_bytes()), want, "{line}");
        }
    }
}
