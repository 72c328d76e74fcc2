//! Data-driven tests of the scrub engine: one `check` helper per concern.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use super::*;
use crate::record::{Format, Record};

fn builtin() -> &'static Scrubber {
    static S: OnceLock<Scrubber> = OnceLock::new();
    S.get_or_init(Scrubber::builtin)
}

fn record(bytes: &[u8], fragment: bool) -> Record {
    Record {
        offset: 0,
        bytes: bytes::Bytes::copy_from_slice(bytes),
        format: Format::Text,
        timestamp_ms: None,
        level: None,
        fragment,
    }
}

fn run(s: &Scrubber, input: &[u8]) -> Scrubbed {
    s.scrub(&record(input, false), "test", &mut SourceState::default())
}

fn text(out: &Scrubbed) -> String {
    String::from_utf8_lossy(&out.bytes).into_owned()
}

/// Scrubs `input` with the default rules and compares with `expect`; the output must also be
/// stable under a second pass and clean under rescan.
fn check(input: &str, expect: &str) {
    let out = run(builtin(), input.as_bytes());
    assert_eq!(text(&out), expect, "input: {input}");
    let again = run(builtin(), &out.bytes);
    assert_eq!(text(&again), expect, "second pass changed the output of: {input}");
    assert!(
        builtin().rescan(&out.bytes, Format::Text).is_empty(),
        "rescan fires on {expect}: {:?}",
        builtin().rescan(&out.bytes, Format::Text)
    );
}

/// A scrubber from TOML rule tables (`[scrub]` and `[rules.*]` only).
fn scrubber(toml: &str) -> Result<Scrubber, RuleError> {
    let cfg = ::config::Config::builder()
        .add_source(::config::File::from_str(toml, ::config::FileFormat::Toml))
        .build()
        .unwrap();
    let scrub: ScrubConfig = cfg.get("scrub").unwrap_or_default();
    let rules: BTreeMap<String, RawRule> = cfg.get("rules").unwrap_or_default();
    Scrubber::new(&scrub, &rules)
}

#[test]
fn builtin_rule_set_compiles() {
    let (scrub, rules) = builtin_tables().unwrap();
    let s = Scrubber::new(&scrub, &rules).unwrap();
    assert_eq!(s.ruleset_version(), scrub.ruleset_version);
    assert_eq!(s.ruleset_digest().len(), 64);
    let table = s.rule_table();
    assert!(
        table
            .iter()
            .any(|(n, m, a)| n == "email" && m.contains("detector email") && a == "redact")
    );
    assert!(s.pseudonym("x").is_none());
}

#[test]
fn json_keys() {
    for (input, expect) in [
        (
            r#"{"id": "cus_N1", "email": "ada@example.com", "amount": 2500}"#,
            r#"{"id": "cus_N1", "email": "[REDACTED:email]", "amount": 2500}"#,
        ),
        (
            r#"{"metadata": {"tr_source": "newsletter", "plan": "pro"}, "tr_other": "keep"}"#,
            r#"{"metadata": {"tr_source": "[REDACTED:tracking]", "plan": "pro"}, "tr_other": "keep"}"#,
        ),
        (
            "{\n  \"card\": {\"brand\": \"visa\", \"exp_month\": 12, \"last4\": \"4242\", \"fingerprint\": \"Xt5EWLLDS7FJjR1c\"}\n}",
            "{\n  \"card\": {\"brand\": \"visa\", \"exp_month\": \"[REDACTED:card]\", \"last4\": \"[REDACTED:card]\", \"fingerprint\": \"[REDACTED:card]\"}\n}",
        ),
        (
            r#"{"geo": {"latitude": 52.52, "longitude": -13.4}, "ok": null}"#,
            r#"{"geo": {"latitude": "[REDACTED:geo_location]", "longitude": "[REDACTED:geo_location]"}, "ok": null}"#,
        ),
        (
            r#"{"address": {"city": "Clearwater", "country": "BG", "line1": "913 Brookside Summit", "line2": null, "postal_code": "63168", "state": "Michigan"}}"#,
            r#"{"address": {"city": "[REDACTED:postal_address]", "country": "BG", "line1": "[REDACTED:postal_address]", "line2": null, "postal_code": "[REDACTED:postal_address]", "state": "[REDACTED:postal_address]"}}"#,
        ),
        (
            r#"{"client_secret": "pi_3Mt_secret_abc", "status": "requires_action"}"#,
            r#"{"client_secret": "[REDACTED:stripe_client_secret]", "status": "requires_action"}"#,
        ),
        (
            r#"{"hosted_invoice_url": "https://invoice.stripe.com/i/acct_1/test_abc?s=ap", "number": "ABC-0001"}"#,
            r#"{"hosted_invoice_url": "[REDACTED:token_url]", "number": "ABC-0001"}"#,
        ),
        (
            r#"[{"remoteAddress": "198.51.100.7"}, {"browser_ip": "2001:db8::1"}]"#,
            r#"[{"remoteAddress": "[REDACTED:ip_address]"}, {"browser_ip": "[REDACTED:ip_address]"}]"#,
        ),
        // arrays of values under a sensitive key
        (
            r#"{"emails": [], "cc_email": ["a@x.io", "b@y.io"]}"#,
            r#"{"emails": [], "cc_email": ["[REDACTED:email]", "[REDACTED:email]"]}"#,
        ),
    ] {
        check(input, expect);
    }
}

#[test]
fn headers() {
    for (input, expect) in [
        (
            "Stripe-Signature: t=1733285241,v1=62e4d701,v0=e82f6a5f\nHost: example.org\n",
            "Stripe-Signature: t=1733285241,[MASKED:webhook_signature]\nHost: example.org\n",
        ),
        (
            r#"Request Headers: {"Content-Length": "8124", "Stripe-Signature": "t=1,v1=ab", "X-Forwarded-For": "203.0.113.36, 10.0.0.1", "X-Hub-Signature-256": "sha256=abc"}"#,
            r#"Request Headers: {"Content-Length": "8124", "Stripe-Signature": "t=1,[MASKED:webhook_signature]", "X-Forwarded-For": "[REDACTED:ip_address]", "X-Hub-Signature-256": "[REDACTED:webhook_signature]"}"#,
        ),
        (
            "authorization: Basic dXNlcjpwYXNz\r\nCookie: _ga=GA1.2.3; sessionid=abc\r\nAccept: */*\r\n",
            "authorization: [REDACTED:authorization]\r\nCookie: [REDACTED:authorization]\r\nAccept: */*\r\n",
        ),
        (
            "X-Shopify-Hmac-Sha256: AbC123==\nX-Slack-Signature: v0=abc\nsvix-signature: v1,abc\nPaypal-Transmission-Sig: xyz\n",
            "X-Shopify-Hmac-Sha256: [REDACTED:webhook_signature]\nX-Slack-Signature: [REDACTED:webhook_signature]\nsvix-signature: [REDACTED:webhook_signature]\nPaypal-Transmission-Sig: [REDACTED:webhook_signature]\n",
        ),
    ] {
        check(input, expect);
    }
}

#[test]
fn python_dicts() {
    for (input, expect) in [
        (
            "headers={'Stripe-Signature': 't=9,v1=aa', 'HTTP_X_REAL_IP': '10.1.2.3', 'n': None, 'Ok': True}",
            "headers={'Stripe-Signature': 't=9,[MASKED:webhook_signature]', 'HTTP_X_REAL_IP': '[REDACTED:ip_address]', 'n': None, 'Ok': True}",
        ),
        (
            r#"{'customer': {'email': "o'brien@example.com", 'phone': '+1 555 0100'}}"#,
            r#"{'customer': {'email': "[REDACTED:email]", 'phone': '[REDACTED:phone]'}}"#,
        ),
    ] {
        check(input, expect);
    }
}

#[test]
fn query_strings_and_key_values() {
    for (input, expect) in [
        (
            "GET /cb?utm_source=news&id=in_123&gclid=Cj0KCQ&x=1 HTTP/1.1",
            "GET /cb?utm_source=[REDACTED:tracking]&id=in_123&gclid=[REDACTED:tracking]&x=1 HTTP/1.1",
        ),
        (
            r#"{"url": "https://example.org/ok?fbclid=IwAR3&ref=home", "id": "ch_1"}"#,
            r#"{"url": "https://example.org/ok?fbclid=[REDACTED:tracking]&ref=home", "id": "ch_1"}"#,
        ),
        (
            "login failed user_email=ada%40example.com password=hunter2 plan=pro",
            "login failed user_email=[REDACTED:email] password=[REDACTED:api_key] plan=pro",
        ),
        (
            "billing_details[name]=Ada+Lovelace&amount=100",
            "billing_details[name]=[REDACTED:person_name]&amount=100",
        ),
    ] {
        check(input, expect);
    }
}

#[test]
fn names_by_context() {
    for (input, expect) in [
        // product, plan and repository names survive
        (
            r#"{"object": "product", "name": "Pro Plan", "active": true}"#,
            r#"{"object": "product", "name": "Pro Plan", "active": true}"#,
        ),
        (
            r#"{"active": true, "name": "Ada Lovelace", "object": "product"}"#,
            r#"{"active": true, "name": "Ada Lovelace", "object": "product"}"#,
        ),
        (
            r#"{"repository": {"name": "widgets", "full_name": "acme/widgets", "owner": {"name": "ada l", "login": "ada"}}}"#,
            r#"{"repository": {"name": "widgets", "full_name": "acme/widgets", "owner": {"name": "[REDACTED:person_name]", "login": "ada"}}}"#,
        ),
        // the object type comes after the name: still a person
        (
            r#"{"id": "cus_1", "name": "x9 y", "object": "customer"}"#,
            r#"{"id": "cus_1", "name": "[REDACTED:person_name]", "object": "customer"}"#,
        ),
        // person parents and siblings decide regardless of shape (fail-closed)
        (
            r#"{"billing_details": {"name": "ACME 42"}}"#,
            r#"{"billing_details": {"name": "[REDACTED:person_name]"}}"#,
        ),
        (
            r#"{"shipping": {"name": "zz top"}}"#,
            r#"{"shipping": {"name": "[REDACTED:person_name]"}}"#,
        ),
        (
            r#"{"name": "qq", "email": null}"#,
            r#"{"name": "[REDACTED:person_name]", "email": null}"#,
        ),
        (
            r#"{"customer_name": "lorenzo u"}"#,
            r#"{"customer_name": "[REDACTED:person_name]"}"#,
        ),
        (
            r#"{"lines": {"data": [{"price": {"nickname": "Monthly", "product": "prod_1"}, "name": "1 x Monthly Plan"}]}}"#,
            r#"{"lines": {"data": [{"price": {"nickname": "Monthly", "product": "prod_1"}, "name": "1 x Monthly Plan"}]}}"#,
        ),
    ] {
        check(input, expect);
    }
}

/// Scrubs `records` in order with one state and compares each output.
fn check_stream(records: &[(&str, &str)]) {
    let mut state = SourceState::default();
    for (input, expect) in records {
        let out = builtin().scrub(&record(input.as_bytes(), false), "s", &mut state);
        assert_eq!(text(&out), *expect, "input: {input}");
    }
}

#[test]
fn propagation() {
    check_stream(&[
        (
            r#"{"customer_name": "Ada Lovelace", "description": "Invoice for Ada Lovelace (LOVELACE), ada+lovelace"}"#,
            r#"{"customer_name": "[REDACTED:person_name]", "description": "Invoice for [REDACTED:person_name] ([REDACTED:person_name]), [REDACTED:person_name]"}"#,
        ),
        (
            "INFO payment by lovelace at https://x.org/?who=Ada%20Lovelace lovelaces 1733285241\n",
            "INFO payment by [REDACTED:person_name] at https://x.org/?who=[REDACTED:person_name] lovelaces 1733285241\n",
        ),
    ]);
    check_stream(&[(
        r#"{"email": "ada@example.com", "amount": 1, "note": "ada@example.com"}"#,
        r#"{"email": "[REDACTED:email]", "amount": 1, "note": "[REDACTED:email]"}"#,
    )]);
}

#[test]
fn propagation_window_ends() {
    let s = scrubber(
        "[scrub]\npropagation_window_records = 1\n[rules.person_name]\nkeys = [\"customer_name\"]\npropagate = true\n",
    )
    .unwrap();
    let mut state = SourceState::default();
    let mut go = |input: &str| text(&s.scrub(&record(input.as_bytes(), false), "s", &mut state));
    assert_eq!(
        go(r#"{"customer_name": "Grace Hopper"}"#),
        r#"{"customer_name": "[REDACTED:person_name]"}"#
    );
    assert_eq!(go("Grace Hopper"), "[REDACTED:person_name]");
    assert_eq!(go("Grace Hopper"), "Grace Hopper");
}

/// Scrubs with a custom rule set, checks the output, and that JSON output parses.
fn check_rules(rules: &str, input: &str, expect: &str) {
    let s = scrubber(rules).unwrap_or_else(|e| panic!("{e}"));
    let out = run(&s, input.as_bytes());
    assert_eq!(text(&out), expect, "input: {input}");
    assert!(
        s.rescan(&out.bytes, Format::Text).is_empty(),
        "rescan fires on {expect}"
    );
    assert_eq!(run(&s, &out.bytes).bytes, out.bytes, "second pass changed {expect}");
    if serde_json::from_str::<serde_json::Value>(input).is_ok() {
        serde_json::from_slice::<serde_json::Value>(&out.bytes)
            .unwrap_or_else(|e| panic!("invalid JSON {expect}: {e}"));
    }
}

#[test]
fn actions() {
    let drop = "[rules.note]\nkeys = [\"note\", \"extra\"]\naction = \"drop\"\n";
    for (input, expect) in [
        (r#"{"a": 1, "note": "x", "b": 2}"#, r#"{"a": 1, "b": 2}"#),
        (r#"{"note": "x", "b": 2}"#, r#"{"b": 2}"#),
        (r#"{"a": 1, "note": "x"}"#, r#"{"a": 1}"#),
        (r#"{"note": "x"}"#, r#"{}"#),
        (r#"{"note": "x", "extra": {"y": [1]}, "b": 2}"#, r#"{"b": 2}"#),
        (r#"{"a": 1, "note": "x", "extra": 3}"#, r#"{"a": 1}"#),
        (
            "{\n  \"a\": 1,\n  \"note\": {\"deep\": [\"x\"]},\n  \"b\": 2\n}",
            "{\n  \"a\": 1,\n  \"b\": 2\n}",
        ),
        (
            r#"[{"note": "x", "extra": "y"}, {"a": [{"note": 1}]}]"#,
            r#"[{}, {"a": [{}]}]"#,
        ),
    ] {
        check_rules(drop, input, expect);
    }
    check_rules(
        "[rules.email]\nkeys = [\"email\"]\naction = \"mask\"\nkeep = \"email_domain\"\n",
        r#"{"email": "ada@example.com"}"#,
        r#"{"email": "[MASKED:email]@example.com"}"#,
    );
    check_rules(
        "[rules.ip]\nkeys = [\"ip\"]\naction = \"mask\"\nkeep = \"ipv4_prefix\"\n",
        r#"{"ip": "203.0.113.36", "ip2": "x"}"#,
        r#"{"ip": "203.0.113.[MASKED:ip]", "ip2": "x"}"#,
    );
    check_rules(
        "[rules.acct]\nkeys = [\"acct\"]\naction = \"mask\"\nkeep = \"last\"\nkeep_last = 4\n",
        r#"{"acct": "000123456789"}"#,
        r#"{"acct": "[MASKED:acct]6789"}"#,
    );
    check_rules(
        "[rules.note]\nregex = \"order note: (?P<value>[a-z ]+)\"\n",
        "INFO order note: leave at door\n",
        "INFO order note: [REDACTED:note]\n",
    );
}

#[test]
fn hash_action_is_keyed_stable_and_idempotent() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("key");
    std::fs::write(&key, "0123456789abcdef0123456789abcdef").unwrap();
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    let rules = format!(
        "[scrub]\npseudonym_key_file = {:?}\n[rules.email]\nkeys = [\"email\"]\naction = \"hash\"\n",
        key.display().to_string()
    );
    let s = scrubber(&rules).unwrap();
    let a = run(&s, br#"{"email": "Ada@Example.com"}"#);
    let b = run(&s, br#"{"email": "ada@example.com"}"#);
    assert_eq!(a.bytes, b.bytes);
    let tok = s.pseudonym("ada@example.com").unwrap();
    assert_eq!(a.pseudonyms, vec![tok.clone()]);
    assert_eq!(text(&a), format!(r#"{{"email": "[PSEUDONYM:{tok}]"}}"#));
    assert!(s.rescan(&a.bytes, Format::Json).is_empty());
    assert_eq!(run(&s, &a.bytes).bytes, a.bytes);
    // another key, another pseudonym
    std::fs::write(&key, "fedcba9876543210fedcba9876543210").unwrap();
    assert_ne!(scrubber(&rules).unwrap().pseudonym("ada@example.com").unwrap(), tok);
    // a key readable by others is refused
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o644)).unwrap();
    let err = scrubber(&rules).unwrap_err().to_string();
    assert!(err.contains("readable by group or others"), "{err}");
}

/// The error of compiling `rules` must mention each of `needles`.
fn check_error(rules: &str, needles: &[&str]) {
    let err = match scrubber(rules) {
        Ok(_) => panic!("no error for {rules}"),
        Err(e) => e.to_string(),
    };
    for n in needles {
        assert!(err.contains(n), "{err:?} lacks {n:?}");
    }
}

#[test]
fn config_errors_name_rule_and_field() {
    check_error(
        "[rules.r1]\ndetector = \"emial\"\n",
        &["rule \"r1\"", "field \"detector\"", "emial"],
    );
    check_error(
        "[rules.r2]\nregex = \"(unclosed\"\n",
        &["rule \"r2\"", "field \"regex\"", "invalid regex"],
    );
    check_error(
        "[rules.r3]\nkeys = [\"a\"]\naction = \"shred\"\n",
        &["rule \"r3\"", "field \"action\""],
    );
    check_error(
        "[rules.r4]\nkeys = [\"a\"]\naction = \"hash\"\n",
        &["rule \"r4\"", "field \"action\"", "key"],
    );
    check_error("[rules.r5]\naction = \"redact\"\n", &["rule \"r5\"", "matches nothing"]);
    check_error(
        "[rules.r6]\nkeys = [\"a\"]\naction = \"mask\"\n",
        &["rule \"r6\"", "field \"keep\""],
    );
    check_error("[rules.r7]\nkeys = [\"a..b\"]\n", &["rule \"r7\"", "field \"keys\""]);
    check_error(
        "[rules.r8]\nkeys = [\"a\"]\nformats = [\"csv\"]\n",
        &["rule \"r8\"", "field \"formats\""],
    );
    check_error("[rules.r9]\nregex = \"x*\"\n", &["rule \"r9\"", "empty string"]);
    // unknown fields are refused by the schema
    let cfg = ::config::Config::builder()
        .add_source(::config::File::from_str(
            "[rules.r10]\nkeyz = [\"a\"]\n",
            ::config::FileFormat::Toml,
        ))
        .build()
        .unwrap();
    let err = cfg.get::<BTreeMap<String, RawRule>>("rules").unwrap_err().to_string();
    assert!(err.contains("keyz"), "{err}");
}

#[test]
fn user_file_layers_over_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user.toml");
    std::fs::write(
        &path,
        "[rules.ip_address]\nenabled = false\n[rules.email]\naction = \"mask\"\nkeep = \"email_domain\"\n\
         [rules.order_ref]\nkeys = [\"order_ref\"]\n",
    )
    .unwrap();
    let cfg = crate::config::load_with_env(Some(&path), Vec::new()).unwrap();
    let s = Scrubber::new(&cfg.raw.scrub, &cfg.raw.rules).unwrap();
    let out = run(
        &s,
        br#"{"ip": "10.0.0.1", "email": "a@x.io", "order_ref": "R-1", "phone": "+1 555 0100"}"#,
    );
    assert_eq!(
        text(&out),
        r#"{"ip": "10.0.0.1", "email": "[MASKED:email]@x.io", "order_ref": "[REDACTED:order_ref]", "phone": "[REDACTED:phone]"}"#
    );
    assert!(s.rescan(&out.bytes, Format::Json).is_empty());
    let out = run(&s, b"note: mail ada@x.io or 10.1.2.3");
    assert_eq!(text(&out), "note: mail [MASKED:email]@x.io or 10.1.2.3");
    assert!(s.rescan(&out.bytes, Format::Text).is_empty());
    assert_ne!(s.ruleset_digest(), builtin().ruleset_digest());
}

#[test]
fn scoped_rules() {
    let s = scrubber(
        "[rules.r]\nkeys = [\"k\"]\nsources = [\"a\"]\n[rules.t]\nregex = \"tok-[0-9]+\"\nsources = [\"a\"]\n",
    )
    .unwrap();
    let r = record(br#"{"k": "v", "note": "tok-42"}"#, false);
    assert_eq!(
        s.scrub(&r, "a", &mut SourceState::default()).bytes,
        br#"{"k": "[REDACTED:r]", "note": "[REDACTED:t]"}"#
    );
    assert_eq!(s.scrub(&r, "b", &mut SourceState::default()).bytes, r.bytes);
    // rescan knows no source: scoped rules apply (once a shape sends the record to the engine)
    let found = s.rescan(&r.bytes, Format::Json);
    assert_eq!((found.get("r"), found.get("t")), (Some(&1), Some(&1)));
}

#[test]
fn rescan_confirms_shapes_in_context() {
    let s = builtin();
    // Unscrubbed shapes are found wherever they are.
    let dirty = br#"{"id": "evt_1", "data": {"note": "write to ada@example.com"}}"#;
    assert_eq!(s.rescan(dirty, Format::Json).get("email"), Some(&1));
    let dirty = b"GET /x client 203.0.113.9 ok";
    assert!(!s.rescan(dirty, Format::Text).is_empty());
    // A shape where the scrub does not look for one (a key, a JSON number) sends the record to
    // the whole engine, which judges it in context as the scrub did: not a finding.
    let clean = run(s, br#"{"id": "evt_1", "ada@example.com": 1, "n": 4242424242424242}"#);
    assert!(s.any_shape(&clean.bytes), "{}", text(&clean));
    assert!(s.rescan(&clean.bytes, Format::Json).is_empty(), "{}", text(&clean));
    // Markers never count.
    let scrubbed = run(s, br#"{"email": "ada@example.com", "ip": "203.0.113.9"}"#);
    assert!(!s.any_shape(&scrubbed.bytes), "{}", text(&scrubbed));
}

/// The detectors run over windows of zones, not the whole record: a shape at a zone's edge (the
/// record's first or last byte, right inside a string's quotes, next to a structure), between
/// zones far apart, or percent-encoded, is found as a whole-record scan finds it.
#[test]
fn detectors_scan_zones_to_their_edges() {
    let pad = format!(r#""k": [{}1], "#, "1, ".repeat(100));
    for (input, expect) in [
        ("ada@example.com", "[REDACTED:email]"),
        (
            r#"to ada@example.com{"a": "bob@example.org"}cc eve@example.net"#,
            r#"to [REDACTED:email]{"a": "[REDACTED:email]"}cc [REDACTED:email]"#,
        ),
        (
            &format!(r#"{{"a": "x", {pad}"b": "y", {pad}"c": "mail zoe@example.com"}}"#),
            &format!(r#"{{"a": "x", {pad}"b": "y", {pad}"c": "mail [REDACTED:email]"}}"#),
        ),
        (
            "GET /cb?user=kim%40example.com&x=1",
            "GET /cb?user=[REDACTED:email]&x=1",
        ),
    ] {
        check(input, expect);
    }
}

#[test]
fn event_fields() {
    let out = run(
        builtin(),
        br#"REQ: { "id": "evt_1PpJ", "object": "event", "created": 1724028370, "data": { "object": { "id": "sub_1", "object": "subscription", "customer": "cus_9" } }, "type": "customer.subscription.updated" }"#,
    );
    assert_eq!(out.event_id.as_deref(), Some("evt_1PpJ"));
    assert_eq!(out.event_type.as_deref(), Some("customer.subscription.updated"));
    assert_eq!(out.timestamp_ms, Some(1_724_028_370_000));
    assert!(!out.fallback);
    let out = run(builtin(), br#"{"id": "cus_1", "type": "x", "created": 1}"#);
    assert_eq!((out.event_id, out.event_type, out.timestamp_ms), (None, None, None));
}

/// Fail-closed: `input` must come out without any of `secrets`, with `fallback` set.
fn check_fallback(input: &[u8], fragment: bool, secrets: &[&str]) {
    let out = builtin().scrub(&record(input, fragment), "s", &mut SourceState::default());
    assert!(
        out.fallback,
        "no fallback for {}",
        String::from_utf8_lossy(&input[..input.len().min(80)])
    );
    for s in secrets {
        assert!(
            memchr::memmem::find(&out.bytes, s.as_bytes()).is_none(),
            "{s} survived in {}",
            String::from_utf8_lossy(&out.bytes[..out.bytes.len().min(400)])
        );
    }
}

#[test]
fn fail_closed() {
    check_fallback(
        br#"REQ: {"id": "evt_1", "client_secret": "pi_3Mt_secret_abcdef"#,
        false,
        &["abcdef"],
    );
    check_fallback(
        br#"{"a": {"name": "Ada Lovelace", "customer_email": "ada@ex"#,
        false,
        &["Lovelace", "ada@ex"],
    );
    check_fallback(
        br#"{"a": 1 "phone": "+15550100", "name": 'Grace H'}"#,
        false,
        &["5550100", "Grace"],
    );
    let mut deep = "[".repeat(100_000).into_bytes();
    deep.extend_from_slice(br#"{"email": "deep@example.com", "password": "hunter2"}"#);
    deep.extend_from_slice("]".repeat(100_000).as_bytes());
    check_fallback(&deep, false, &["deep@example.com", "hunter2"]);
    check_fallback(
        b"{\"customer_name\": \"Ada \xff\xfe Lovelace\", \"x\": \"\xc3\x28\"",
        false,
        &["Lovelace"],
    );
    check_fallback(
        br#"tail of a long record", "customer_name": "Grace Hopper", "ip": "10.9.8.7"#,
        true,
        &["Hopper", "10.9.8.7"],
    );
}

#[test]
fn invalid_utf8_around_values() {
    let out = run(
        builtin(),
        b"INFO \xff\xfe contact ada@example.com \xc3\x28 from 198.51.100.4\x80\n",
    );
    assert_eq!(
        out.bytes,
        b"INFO \xff\xfe contact [REDACTED:email] \xc3\x28 from [REDACTED:ip_address]\x80\n"
    );
    let out = run(
        builtin(),
        b"{\"note\": \"\xff ada@example.com\", \"email\": \"\xfe\xff\"}",
    );
    assert_eq!(
        out.bytes,
        b"{\"note\": \"\xff [REDACTED:email]\", \"email\": \"[REDACTED:email]\"}"
    );
}

#[test]
fn binary_garbage_never_panics() {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for len in [0usize, 1, 2, 7, 100, 4096] {
        for _ in 0..50 {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let alphabet = b"{}[]\"':,=\\ \nab@1.-_\xff";
                    alphabet[(x % alphabet.len() as u64) as usize]
                })
                .collect();
            let out = run(builtin(), &bytes);
            assert!(out.bytes.len() <= bytes.len() * 40 + 64);
        }
    }
}

mod property {
    use proptest::prelude::*;

    use super::*;

    /// One piece of a generated record.
    #[derive(Clone, Debug)]
    enum Field {
        Id(String),
        Amount(u32),
        Email(String),
        Name(String),
        Secret(String),
        Ip(String),
        Signature(String, String),
    }

    fn id() -> impl Strategy<Value = String> {
        (
            prop::sample::select(vec!["evt", "cus", "in", "ch", "sub", "price"]),
            "[A-Z0-9]{14}",
        )
            .prop_map(|(p, s)| format!("{p}_{s}"))
    }

    fn field() -> impl Strategy<Value = Field> {
        prop_oneof![
            id().prop_map(Field::Id),
            (1u32..9_999_999).prop_map(Field::Amount),
            ("[a-z]{3,8}", "[a-z]{3,8}").prop_map(|(l, d)| Field::Email(format!("{l}@{d}.com"))),
            ("[A-Z][a-z]{3,8}", "[A-Z][a-z]{3,8}").prop_map(|(f, l)| Field::Name(format!("{f} {l}"))),
            ("[A-Z0-9]{14}", "[A-Za-z0-9]{16}").prop_map(|(a, b)| Field::Secret(format!("pi_{a}_secret_{b}"))),
            (1u8..=254, 0u8..=254, 0u8..=254, 1u8..=254).prop_map(|(a, b, c, d)| Field::Ip(format!("{a}.{b}.{c}.{d}"))),
            (1_600_000_000u64..1_900_000_000, "[0-9a-f]{64}").prop_map(|(t, h)| Field::Signature(t.to_string(), h)),
        ]
    }

    /// Renders the fields as a JSON object (with a person-name sub-object and free-text
    /// description mentioning every name) or as `key=value` / header text.
    fn render(fields: &[Field], json: bool, pretty: bool) -> String {
        let mut parts = Vec::new();
        let mut mentions = Vec::new();
        for (i, f) in fields.iter().enumerate() {
            let (k, v, quoted) = match f {
                Field::Id(s) => (format!("ref_{i}"), s.clone(), true),
                Field::Amount(a) => (format!("amount_{i}"), a.to_string(), false),
                Field::Email(e) => {
                    mentions.push(format!("contact {e} now"));
                    ("email".to_string(), e.clone(), true)
                }
                Field::Name(n) => {
                    mentions.push(format!("paid by {n}."));
                    if i % 2 == 0 {
                        ("customer_name".to_string(), n.clone(), true)
                    } else if json {
                        parts.push(format!(
                            "\"billing_details_{i}\": {{\"billing_details\": {{\"name\": \"{n}\"}}}}"
                        ));
                        continue;
                    } else {
                        ("billing_details[name]".to_string(), n.clone(), true)
                    }
                }
                Field::Secret(s) => {
                    mentions.push(format!("secret {s}"));
                    (format!("note_{i}"), s.clone(), true)
                }
                Field::Ip(ip) => {
                    mentions.push(format!("from {ip}"));
                    ("X-Forwarded-For".to_string(), ip.clone(), true)
                }
                Field::Signature(t, h) => ("Stripe-Signature".to_string(), format!("t={t},v1={h}"), true),
            };
            if json {
                let v = if quoted { format!("\"{v}\"") } else { v };
                parts.push(format!("\"{k}\": {v}"));
            } else if k == "Stripe-Signature" || k == "X-Forwarded-For" {
                parts.push(format!("\n{k}: {v}\n"));
            } else if v.contains(' ') {
                // logfmt quotes values with spaces
                parts.push(format!("{k}=\"{v}\""));
            } else {
                parts.push(format!("{k}={v}"));
            }
        }
        if json {
            parts.push(format!("\"description\": \"{}\"", mentions.join("; ")));
            let sep = if pretty { ",\n  " } else { ", " };
            format!("INFO views {{{}}}\n", parts.join(sep))
        } else {
            format!("{} {}\n", parts.join(" "), mentions.join(" "))
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        #[test]
        fn sensitive_values_never_survive_ids_and_amounts_do(
            fields in prop::collection::vec(field(), 1..12),
            json in any::<bool>(),
            pretty in any::<bool>(),
        ) {
            let input = render(&fields, json, pretty);
            let out = run(builtin(), input.as_bytes());
            let text = text(&out);
            for f in &fields {
                match f {
                    Field::Id(s) => {
                        prop_assert!(text.contains(s.as_str()), "id {} lost: {}", s, text);
                        prop_assert!(out.ids.contains(s), "id {} not reported: {:?}", s, out.ids);
                    }
                    Field::Amount(a) => prop_assert!(text.contains(&a.to_string()), "amount {} lost: {}", a, text),
                    Field::Email(e) => prop_assert!(!text.contains(e.as_str()), "{} survived: {}", e, text),
                    Field::Name(n) => {
                        for w in n.split(' ') {
                            prop_assert!(!text.contains(w), "name {} survived: {}", w, text);
                        }
                    }
                    Field::Secret(s) => prop_assert!(!text.contains(&s[s.len() - 16..]), "{} survived: {}", s, text),
                    Field::Ip(ip) => prop_assert!(!text.contains(&format!("{ip} ")) && !text.contains(&format!("{ip}\"")) && !text.contains(&format!("{ip}\n")), "{} survived: {}", ip, text),
                    Field::Signature(_, h) => prop_assert!(!text.contains(h.as_str()), "signature survived: {}", text),
                }
            }
            if json {
                prop_assert!(!out.fallback);
            }
            // scrubbed ids are never reported
            for id in &out.ids {
                prop_assert!(!id.contains("secret"), "{}", id);
            }
            prop_assert!(builtin().rescan(&out.bytes, Format::Text).is_empty(), "rescan fires: {}", text);
        }
    }
}

#[test]
fn user_file_replaces_a_list_field_whole() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("user.toml");
    std::fs::write(&path, "[rules.tracking]\nkeys = [\"my_tracker\"]\n").unwrap();
    let cfg = crate::config::load_with_env(Some(&path), Vec::new()).unwrap();
    assert_eq!(
        cfg.raw.rules["tracking"].keys.as_deref(),
        Some(&["my_tracker".to_string()][..])
    );
}
