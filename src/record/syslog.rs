//! Syslog lines, one record per line: RFC 5424 (`<PRI>1 2024-11-20T10:00:28.835Z host app ...`),
//! RFC 3164 (`<PRI>Nov 20 10:00:28 host app[pid]: ...`, the `<PRI>` optional as in files written
//! by rsyslog), and rsyslog's high-precision variant (`2024-11-20T10:00:28.835+00:00 host ...`).
//!
//! RFC 3164 timestamps carry no year. The rule (deterministic for a given reference time): the
//! year of the splitter's reference time (the time it was created, or the one set with
//! [`super::Splitter::with_reference_time`]), or the year before when that would put the record
//! more than one day after the reference time (a December line read in January).
//!
//! Must not: parse the message part.

use super::Level;
use super::scan::{Scanner, Step, datetime_ms, digits, month, next_line_boundary, utc_ms};

pub(crate) struct SyslogScanner {
    pub(crate) reference_ms: i64,
}

impl Scanner for SyslogScanner {
    fn scan(&mut self, buf: &[u8], from: usize, stop: usize, _eof: bool) -> Step {
        next_line_boundary(buf, from, stop)
    }

    fn meta(&self, record: &[u8]) -> (Option<i64>, Option<Level>) {
        match parse(record, self.reference_ms) {
            Some(line) => (line.timestamp_ms, line.level),
            None => (None, None),
        }
    }
}

/// What the header of a syslog line says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct SyslogLine {
    pub(crate) timestamp_ms: Option<i64>,
    pub(crate) level: Option<Level>,
}

/// Parses a syslog header; `None` when the line is not syslog.
pub(crate) fn parse(line: &[u8], reference_ms: i64) -> Option<SyslogLine> {
    let (level, rest) = match pri(line) {
        Some((sev, n)) => (Some(severity(sev)), &line[n..]),
        None => (None, line),
    };
    // RFC 5424: VERSION SP TIMESTAMP SP HOSTNAME
    if let Some(sp) = rest.iter().take(3).position(|&b| b == b' ')
        && level.is_some()
        && sp > 0
        && digits(&rest[..sp]).is_some_and(|v| v > 0)
    {
        let after = &rest[sp + 1..];
        let end = after.iter().position(|&b| b == b' ')?;
        let ts = &after[..end];
        let timestamp_ms = if ts == b"-" { None } else { Some(datetime_ms(ts)?) };
        return Some(SyslogLine { timestamp_ms, level });
    }
    // RFC 3164: Mmm dd HH:MM:SS SP HOSTNAME
    if rest.len() >= 16 && rest[3] == b' ' && rest[6] == b' ' && rest[9] == b':' && rest[12] == b':' && rest[15] == b' '
    {
        let mo = month(&rest[..3])?;
        let day = if rest[4] == b' ' {
            digits(&rest[5..6])?
        } else {
            digits(&rest[4..6])?
        };
        let (h, mi, s) = (digits(&rest[7..9])?, digits(&rest[10..12])?, digits(&rest[13..15])?);
        if rest.get(16).is_none_or(|b| b.is_ascii_whitespace()) {
            return None;
        }
        let timestamp_ms = year_for(mo, day, h, mi, s, reference_ms);
        return Some(SyslogLine { timestamp_ms, level });
    }
    // rsyslog high precision: RFC 3339 timestamp SP HOSTNAME SP
    let end = rest.iter().take(40).position(|&b| b == b' ')?;
    if end < 20 || rest[10] != b'T' {
        return None;
    }
    let timestamp_ms = Some(datetime_ms(&rest[..end])?);
    let host_end = rest[end + 1..].iter().take(256).position(|&b| b == b' ')?;
    if host_end == 0 {
        return None;
    }
    Some(SyslogLine { timestamp_ms, level })
}

/// `<PRI>` with PRI in 0..=191: the severity and the bytes consumed.
fn pri(line: &[u8]) -> Option<(u32, usize)> {
    if line.first() != Some(&b'<') {
        return None;
    }
    let close = line.iter().take(5).position(|&b| b == b'>')?;
    let v = digits(&line[1..close])?;
    (v <= 191).then_some((v % 8, close + 1))
}

fn severity(sev: u32) -> Level {
    match sev {
        0..=2 => Level::Critical,
        3 => Level::Error,
        4 => Level::Warning,
        5 => Level::Notice,
        6 => Level::Info,
        _ => Level::Debug,
    }
}

const DAY_MS: i64 = 86_400_000;

fn year_for(mo: u32, day: u32, h: u32, mi: u32, s: u32, reference_ms: i64) -> Option<i64> {
    let year = chrono::DateTime::from_timestamp_millis(reference_ms).map(|d| chrono::Datelike::year(&d))?;
    let ts = utc_ms(year, mo, day, h, mi, s, 0);
    match ts {
        Some(t) if t <= reference_ms + DAY_MS => Some(t),
        // Feb 29 in a non-leap reference year, or a date in the "future": the year before.
        _ => utc_ms(year - 1, mo, day, h, mi, s, 0),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const REF: i64 = 1_732_000_000_000; // 2024-11-19T07:06:40Z

    type Meta = (Option<i64>, Option<Level>);

    #[test]
    fn headers() {
        let cases: &[(&str, Option<Meta>)] = &[
            (
                "<34>1 2024-11-20T10:00:28.835Z host app 1 - - msg",
                Some((Some(1_732_096_828_835), Some(Level::Critical))),
            ),
            ("<165>1 - host app - - - msg", Some((None, Some(Level::Notice)))),
            (
                "<13>Nov 19 06:00:00 host app: msg",
                Some((Some(1_731_996_000_000), Some(Level::Notice))),
            ),
            (
                "Nov  3 06:00:00 host app[12]: msg",
                Some((Some(1_730_613_600_000), None)),
            ),
            // after the reference time by more than a day: last year
            ("Dec 24 06:00:00 host app: msg", Some((Some(1_703_397_600_000), None))),
            (
                "2024-11-20T10:00:28.835+00:00 host app[1]: msg",
                Some((Some(1_732_096_828_835), None)),
            ),
            ("INFO 2024-11-20 10:00:28,835 views hi", None),
            ("<999>1 - host", None),
            ("Nov 19 06:00:00", None),
        ];
        for (line, want) in cases {
            let got = parse(line.as_bytes(), REF).map(|l| (l.timestamp_ms, l.level));
            assert_eq!(&got, want, "{line}");
        }
    }
}
