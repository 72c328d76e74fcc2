//! Splitter tests: data-driven cases per format through one `check` helper (which also checks
//! the invariants under byte-by-byte chunking), detection cases, fragments, and property tests
//! over random chunkings and random bytes.

use super::*;
use proptest::prelude::*;

/// 2024-11-19T07:06:40Z, for the syslog year rule.
const REF_MS: i64 = 1_732_000_000_000;
const BIG: usize = 1 << 20;

fn splitter(format: Format, max: usize) -> Splitter {
    Splitter::new(format, max, 1000).with_reference_time(REF_MS)
}

/// Splits `input` pushed in chunks of the given sizes (cycled), then finishes.
fn split_chunked(format: Format, max: usize, input: &[u8], chunks: &[usize]) -> Vec<Record> {
    let mut s = splitter(format, max);
    let mut out = Vec::new();
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = chunks
            .get(i % chunks.len().max(1))
            .copied()
            .unwrap_or(rest.len())
            .clamp(1, rest.len());
        s.push(&rest[..n], &mut out);
        rest = &rest[n..];
        i += 1;
        assert_eq!(
            s.emitted_offset() + s.pending_len() as u64,
            1000 + (input.len() - rest.len()) as u64
        );
    }
    s.finish(&mut out);
    assert_eq!(s.pending_len(), 0);
    out
}

/// The invariants every split must satisfy.
fn assert_invariants(input: &[u8], records: &[Record], max: usize) {
    let mut offset = 1000u64;
    let mut joined = Vec::with_capacity(input.len());
    for r in records {
        assert_eq!(r.offset, offset, "offsets must be contiguous");
        assert!(!r.bytes.is_empty(), "no empty records");
        assert!(
            r.bytes.len() <= max.max(MIN_RECORD_BYTES),
            "record longer than max: {}",
            r.bytes.len()
        );
        assert_ne!(r.format, Format::Auto);
        offset += r.bytes.len() as u64;
        joined.extend_from_slice(&r.bytes);
    }
    assert!(joined == input, "records must concatenate to the input");
}

/// Splits `input` as `format` and compares the records' bytes with `expect`; also checks the
/// invariants and that pushing byte by byte gives the same records.
fn check(format: Format, input: &str, expect: &[&str]) {
    let whole = split_chunked(format, BIG, input.as_bytes(), &[]);
    let got: Vec<String> = whole
        .iter()
        .map(|r| String::from_utf8_lossy(&r.bytes).into_owned())
        .collect();
    assert_eq!(got, expect, "format {format}, input {input:?}");
    assert_invariants(input.as_bytes(), &whole, BIG);
    assert!(whole.iter().all(|r| !r.fragment));
    let bytewise = split_chunked(format, BIG, input.as_bytes(), &[1]);
    assert_eq!(bytewise, whole, "chunking changed the records");
}

/// Like `check`, for the timestamp and level of each record.
fn check_meta(format: Format, input: &str, expect: &[(Option<i64>, Option<Level>)]) {
    let got: Vec<_> = split_chunked(format, BIG, input.as_bytes(), &[])
        .iter()
        .map(|r| (r.timestamp_ms, r.level))
        .collect();
    assert_eq!(got, expect, "format {format}, input {input:?}");
}

/// 2024-12-04 04:07:22,426 UTC in ms.
const T0: i64 = 1_733_285_242_426;

#[test]
fn django() {
    use Format::Django as F;
    check(
        F,
        "File: x.log\nDEBUG 2024-12-04 04:07:22,426 views Request Headers: {\"a\": \"b\"}\nINFO 2024-12-04 04:07:22,447 views {\n\"id\": \"evt_1\",\n\"data\": {\n}\n}\nERROR 2024-12-04 04:07:23,000 views gone\n",
        &[
            "File: x.log\n",
            "DEBUG 2024-12-04 04:07:22,426 views Request Headers: {\"a\": \"b\"}\n",
            "INFO 2024-12-04 04:07:22,447 views {\n\"id\": \"evt_1\",\n\"data\": {\n}\n}\n",
            "ERROR 2024-12-04 04:07:23,000 views gone\n",
        ],
    );
    // Timestamp first, bracketed logger and level, CRLF, no final newline.
    check(
        F,
        "2024-11-20 10:00:28,835 INFO [hooks] one\r\n  more\r\n2024-11-20 10:00:29,001 [WARNING] two",
        &[
            "2024-11-20 10:00:28,835 INFO [hooks] one\r\n  more\r\n",
            "2024-11-20 10:00:29,001 [WARNING] two",
        ],
    );
    // Lines that merely start like a header are continuations.
    check(
        F,
        "INFO 2024-12-04 04:07:22,426 v a\nINFO is fine\nINFO 2024-12-04 04:07:22 no millis\n2024-12-04 04:07:22,426 nolevel x\n",
        &[
            "INFO 2024-12-04 04:07:22,426 v a\nINFO is fine\nINFO 2024-12-04 04:07:22 no millis\n2024-12-04 04:07:22,426 nolevel x\n",
        ],
    );
    check(F, "", &[]);
    check(F, "\n\n", &["\n\n"]);
    check_meta(
        F,
        "x\nDEBUG 2024-12-04 04:07:22,426 views a\n2024-12-04 04:07:22,426 CRITICAL b\n",
        &[
            (None, None),
            (Some(T0), Some(Level::Debug)),
            (Some(T0), Some(Level::Critical)),
        ],
    );
}

#[test]
fn req() {
    use Format::Req as F;
    // Concatenated, with the separating space opening the next record.
    check(
        F,
        r#"REQ: {"a": 1} REQ: {"b": {"c": [2]}}"#,
        &[r#"REQ: {"a": 1}"#, r#" REQ: {"b": {"c": [2]}}"#],
    );
    // Doubled marker, empty trailing marker.
    check(
        F,
        r#"REQ: {"a": 1} REQ: REQ: {"b": 2} REQ: "#,
        &[r#"REQ: {"a": 1}"#, r#" REQ: REQ: {"b": 2}"#, " REQ: "],
    );
    // Markers and braces inside strings, escaped quotes and backslashes.
    check(
        F,
        r#"REQ: {"s": "REQ: {\"x\"}", "t": "\\"}REQ: {"u": "}"}"#,
        &[r#"REQ: {"s": "REQ: {\"x\"}", "t": "\\"}"#, r#"REQ: {"u": "}"}"#],
    );
    // A truncated document: the next marker outside any string starts a new record.
    check(
        F,
        r#"REQ: {"a": 1, "b": REQ: {"c": 2}"#,
        &[r#"REQ: {"a": 1, "b": "#, r#"REQ: {"c": 2}"#],
    );
    // A record cut mid-string: the raw newline ends the string, then the marker recovers.
    check(
        F,
        "REQ: {\"a\": \"cut\nREQ: {\"c\": 2}",
        &["REQ: {\"a\": \"cut\n", "REQ: {\"c\": 2}"],
    );
    // One record per line; the newline after a record opens the next one.
    check(F, "REQ: {}\nREQ: {}\n", &["REQ: {}", "\nREQ: {}", "\n"]);
    // Text outside any document is kept, as a record of its own at the line end.
    check(
        F,
        "starting up\nREQ: {} trailing words",
        &["starting up\n", "REQ: {}", " trailing words"],
    );
    check(F, "REQ: REQ:", &["REQ: REQ:"]);
    check(F, "RE", &["RE"]);
    check(F, "}}} {", &["}}} {"]);
    check_meta(
        F,
        r#"REQ: { "id": "evt_1", "data": {"created": 1}, "created": 1733285241 }"#,
        &[(Some(1_733_285_241_000), None)],
    );
}

#[test]
fn req_record_is_complete_when_its_json_closes() {
    let mut s = splitter(Format::Req, BIG);
    let mut out = Vec::new();
    s.push(br#"REQ: {"a": "b"}"#, &mut out);
    assert_eq!(out.len(), 1, "no waiting for the next marker");
    s.push(b" REQ: {\"a\"", &mut out);
    assert_eq!(out.len(), 1);
    assert_eq!(s.pending_len(), 10);
    assert_eq!(s.emitted_offset(), 1000 + 15);
}

#[test]
fn json_lines() {
    use Format::JsonLines as F;
    check(
        F,
        "{\"a\": 1}\n{\"b\": \"x\ny\"}\n\n{\"c\"",
        &["{\"a\": 1}\n", "{\"b\": \"x\n", "y\"}\n", "\n", "{\"c\""],
    );
    check_meta(
        F,
        "{\"msg\": \"x\", \"ts\": 1733285242.426, \"level\": \"warn\"}\n{\"nested\": {\"time\": 1}, \"time\": \"2024-12-04T04:07:22.426Z\", \"severity\": \"ERROR\"}\n{\"@timestamp\": \"2024-12-04 04:07:22,426\"}\n{}\n",
        &[
            (Some(T0), Some(Level::Warning)),
            (Some(T0), Some(Level::Error)),
            (Some(T0), None),
            (None, None),
        ],
    );
}

#[test]
fn json_documents() {
    use Format::Json as F;
    check(
        F,
        "stripe_event: invoice.paid\n{\n\"id\": \"evt_1\",\n\"s\": \"} ] {\",\n\"a\": [\n{}\n]\n}\nSign up\n[\n1,\n2\n] tail\n[2024-11-20] text line\n",
        &[
            "stripe_event: invoice.paid\n",
            "{\n\"id\": \"evt_1\",\n\"s\": \"} ] {\",\n\"a\": [\n{}\n]\n}\n",
            "Sign up\n",
            "[\n1,\n2\n] tail\n",
            "[2024-11-20] text line\n",
        ],
    );
    check(F, "{\"a\":\n", &["{\"a\":\n"]);
    // A truncated document ends where a line of text starts; values on their own lines do not.
    check(
        F,
        "{\n\"a\": [\ntrue,\nnull,\n{\nSign up\n{\n\"b\": \"x\nSo\"\n}\n",
        &[
            "{\n\"a\": [\ntrue,\nnull,\n{\n",
            "Sign up\n",
            "{\n\"b\": \"x\n",
            "So\"\n",
            "}\n",
        ],
    );
    check(F, "{\"a\": 1}{\"b\": 2}\nx", &["{\"a\": 1}{\"b\": 2}\n", "x"]);
    check_meta(
        F,
        "hi\n{\n\"created\": 1733285242\n}\n",
        &[(None, None), (Some(1_733_285_242_000), None)],
    );
}

#[test]
fn syslog_and_access_log() {
    check(
        Format::Syslog,
        "<34>1 2024-11-20T10:00:28.835Z host app - - - one\nNov 19 06:00:00 host app[1]: two\n  not a header\n",
        &[
            "<34>1 2024-11-20T10:00:28.835Z host app - - - one\n",
            "Nov 19 06:00:00 host app[1]: two\n",
            "  not a header\n",
        ],
    );
    check_meta(
        Format::Syslog,
        "<34>1 2024-11-20T10:00:28.835Z h a - - - x\n<14>Dec 24 06:00:00 h a: y\n",
        &[
            (Some(1_732_096_828_835), Some(Level::Critical)),
            (Some(1_703_397_600_000), Some(Level::Info)),
        ],
    );
    let line = "203.0.113.9 - - [04/Dec/2024:04:07:22 +0000] \"POST /hook?utm_source=x HTTP/1.1\" 200 2 \"-\" \"Stripe/1.0\"\n";
    check(Format::AccessLog, &format!("{line}{line}"), &[line, line]);
    check_meta(Format::AccessLog, line, &[(Some(T0 - 426), None)]);
}

#[test]
fn text_with_tracebacks() {
    use Format::Text as F;
    check(
        F,
        "start\nERROR failed\nTraceback (most recent call last):\n  File \"a.py\", line 3, in <module>\n    f()\nValueError: bad\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"b.py\", line 1\nKeyError: 'x'\nnext line\n\tindented\nlast",
        &[
            "start\n",
            "ERROR failed\nTraceback (most recent call last):\n  File \"a.py\", line 3, in <module>\n    f()\nValueError: bad\n\nDuring handling of the above exception, another exception occurred:\n\nTraceback (most recent call last):\n  File \"b.py\", line 1\nKeyError: 'x'\n",
            "next line\n\tindented\n",
            "last",
        ],
    );
    check(F, "\n\nfirst\n", &["\n\n", "first\n"]);
    check_meta(
        F,
        "[2024-12-04 04:07:22,426] web: x\n2024-12-04 04:07:22,426 ERROR y\nplain\n",
        &[(Some(T0), None), (Some(T0), Some(Level::Error)), (None, None)],
    );
}

#[test]
fn detection() {
    let cases: &[(&str, Format)] = &[
        ("REQ: {\"a\": 1} REQ: {", Format::Req),
        ("\n  REQ: {}", Format::Req),
        (
            "File: x\nDEBUG 2024-12-04 04:07:22,426 views Request Headers: {}\nINFO 2024-12-04 04:07:22,447 views {\n\"a\": 1\n}\n",
            Format::Django,
        ),
        (
            "2024-11-20 10:00:28,835 INFO [x] a\nTraceback (most recent call last):\n  File \"a\"\nE: x\n",
            Format::Django,
        ),
        ("{\"a\": 1}\n{\"b\": 2}\n", Format::JsonLines),
        (
            "Skip to content\n\nstripe_event: x\n{\n\"id\": \"evt_1\"\n}\n",
            Format::Json,
        ),
        (
            "<34>1 2024-11-20T10:00:28.835Z h a - - - x\n<14>Dec 24 06:00:00 h a: y\n",
            Format::Syslog,
        ),
        (
            "Dec 24 06:00:00 h a: y\nDec 24 06:00:01 h a: z\nnot syslog\n",
            Format::Syslog,
        ),
        (
            "1.2.3.4 - - [04/Dec/2024:04:07:22 +0000] \"GET / HTTP/1.1\" 200 2\n",
            Format::AccessLog,
        ),
        ("[2024-12-04 04:07:22] web.1 | hello\nworld\n", Format::Text),
        ("hello\nworld\n", Format::Text),
        ("", Format::Text),
        ("\u{0}\u{1}\u{ff}", Format::Text),
    ];
    for (sample, want) in cases {
        assert_eq!(detect(sample.as_bytes()), *want, "{sample:?}");
    }
}

#[test]
fn auto_detects_at_a_fixed_point_whatever_the_chunking() {
    // A Django header only on line 150: beyond the 100-line detection window, so Text, however
    // the bytes arrive; with fewer lines, flush decides on what is there.
    let mut input = "plain line\n".repeat(149);
    input.push_str("INFO 2024-12-04 04:07:22,426 views a\n{\n}\n");
    for chunks in [&[][..], &[1], &[7, 300]] {
        let recs = split_chunked(Format::Auto, BIG, input.as_bytes(), chunks);
        assert!(recs.iter().all(|r| r.format == Format::Text));
        assert_eq!(recs.len(), 152);
    }
    let mut s = splitter(Format::Auto, BIG);
    let mut out = Vec::new();
    s.push(b"REQ: {\"a\": 1}", &mut out);
    assert_eq!(s.format(), Format::Auto, "undecided below the detection window");
    assert!(out.is_empty());
    s.flush_idle(&mut out);
    assert_eq!(s.format(), Format::Req);
    assert_eq!(out.len(), 1);
}

#[test]
fn long_records_become_fragments_cut_after_delimiters() {
    let max = 16;
    let input = "aaaa bbbb cccc dddd eeee ffff\nshort\nxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\n";
    let recs = split_chunked(Format::Text, max, input.as_bytes(), &[]);
    let got: Vec<(&str, bool)> = recs
        .iter()
        .map(|r| (std::str::from_utf8(&r.bytes).unwrap_or("?"), r.fragment))
        .collect();
    assert_eq!(
        got,
        [
            ("aaaa bbbb cccc ", true),
            ("dddd eeee ffff\n", true),
            ("short\n", false),
            ("xxxxxxxxxxxxxxxx", true),
            ("xxxxxxxxxxxxxxxx", true),
            ("xx\n", true),
        ]
    );
    assert_invariants(input.as_bytes(), &recs, max);
    assert_eq!(split_chunked(Format::Text, max, input.as_bytes(), &[1, 3]), recs);
}

#[test]
fn fragments_do_not_split_utf8_characters_without_delimiters() {
    let input = "é".repeat(20); // 40 bytes, two per character
    let recs = split_chunked(Format::Text, 17, input.as_bytes(), &[]);
    for r in &recs {
        assert!(std::str::from_utf8(&r.bytes).is_ok(), "{:?}", r.bytes);
    }
    assert_invariants(input.as_bytes(), &recs, 17);
}

#[test]
fn metadata_comes_from_the_first_fragment() {
    let input = format!(
        "INFO 2024-12-04 04:07:22,426 views {}\nINFO 2024-12-04 04:07:22,426 v b\n",
        "x".repeat(100)
    );
    let recs = split_chunked(Format::Django, 40, input.as_bytes(), &[]);
    assert!(recs[0].fragment && recs[0].timestamp_ms == Some(T0));
    assert!(recs[1].fragment && recs[1].timestamp_ms.is_none());
    let last = recs.last().map(|r| (r.fragment, r.level));
    assert_eq!(last, Some((false, Some(Level::Info))));
}

/// Streams `total` bytes of one unterminated line through a splitter, checking bounded memory.
fn stream_huge_line(format: Format, head: &[u8], fill: u8, total: usize) {
    let max = 1 << 20;
    let chunk = vec![fill; 64 * 1024];
    let mut s = Splitter::new(format, max, 0);
    let mut out = Vec::new();
    let (mut emitted, mut pieces) = (0usize, 0usize);
    s.push(head, &mut out);
    let mut fed = head.len();
    while fed < total {
        s.push(&chunk, &mut out);
        fed += chunk.len();
        assert!(
            s.pending_len() <= max + chunk.len() + 64,
            "pending {} bytes",
            s.pending_len()
        );
        for r in out.drain(..) {
            assert!(r.bytes.len() <= max && r.fragment);
            emitted += r.bytes.len();
            pieces += 1;
        }
    }
    s.finish(&mut out);
    emitted += out.iter().map(|r| r.bytes.len()).sum::<usize>();
    assert_eq!(emitted, fed);
    assert!(pieces >= fed / max - 1);
}

#[test]
fn a_gigabyte_line_streams_with_bounded_memory() {
    stream_huge_line(Format::Text, b"start ", b'a', 1 << 30);
}

#[test]
fn a_huge_req_string_streams_with_bounded_memory() {
    stream_huge_line(Format::Req, b"REQ: {\"a\": \"", b'b', 256 << 20);
    stream_huge_line(Format::Auto, b"{\"a\": [", b'[', 64 << 20);
}

#[test]
fn deep_nesting_is_fine() {
    let input = format!("REQ: {}{} REQ: {{}}", "{\"a\":[".repeat(100_000), "]}".repeat(100_000));
    let recs = split_chunked(Format::Req, 16 << 20, input.as_bytes(), &[4096]);
    assert_eq!(recs.len(), 2);
}

#[test]
fn format_names_round_trip() {
    for f in Format::ALL {
        assert_eq!(f.name().parse::<Format>(), Ok(f));
    }
    assert_eq!("jsonl".parse::<Format>(), Ok(Format::JsonLines));
    assert!("xml".parse::<Format>().is_err());
}

/// Inputs built from the tokens that matter to the scanners, so random strings hit the
/// interesting paths (markers, headers, brackets, quotes, escapes, tracebacks).
fn tokens() -> impl Strategy<Value = Vec<u8>> {
    let token = prop::sample::select(vec![
        "REQ: ",
        "REQ:",
        "R",
        "{",
        "}",
        "[",
        "]",
        "\"",
        "\\",
        "\n",
        " ",
        "\r\n",
        "abc",
        ",",
        "é",
        "INFO 2024-12-04 04:07:22,426 views ",
        "2024-11-20 10:00:28,835 ERROR [x] ",
        "Traceback (most recent call last):\n",
        "  File \"a.py\", line 1\n",
        "ValueError: x\n",
        "<34>1 2024-11-20T10:00:28.835Z h a - - - ",
        "Nov 19 06:00:00 h a: ",
        "1.2.3.4 - - [04/Dec/2024:04:07:22 +0000] \"GET / HTTP/1.1\" 200 2\n",
        "\u{0}",
        "\u{ff}",
    ]);
    prop::collection::vec(token, 0..120).prop_map(|t| t.concat().into_bytes())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn chunking_never_changes_the_records(
        input in tokens(),
        chunks in prop::collection::vec(1usize..50, 1..8),
        max in 16usize..120,
        fmt in prop::sample::select(Format::ALL.to_vec()),
    ) {
        let whole = split_chunked(fmt, max, &input, &[]);
        assert_invariants(&input, &whole, max);
        let chunked = split_chunked(fmt, max, &input, &chunks);
        prop_assert_eq!(chunked, whole);
    }

    #[test]
    fn random_bytes_never_panic(
        input in prop::collection::vec(any::<u8>(), 0..2000),
        chunks in prop::collection::vec(1usize..300, 1..4),
        fmt in prop::sample::select(Format::ALL.to_vec()),
    ) {
        let recs = split_chunked(fmt, 64, &input, &chunks);
        assert_invariants(&input, &recs, 64);
    }

    #[test]
    fn flush_idle_loses_nothing(input in tokens(), at in 0usize..2000, fmt in prop::sample::select(Format::ALL.to_vec())) {
        let at = at.min(input.len());
        let mut s = splitter(fmt, 64);
        let mut out = Vec::new();
        s.push(&input[..at], &mut out);
        s.flush_idle(&mut out);
        prop_assert_eq!(s.pending_len(), 0);
        s.push(&input[at..], &mut out);
        s.finish(&mut out);
        assert_invariants(&input, &out, 64);
    }
}
