//! The scrubber on arbitrary records: never panics, and a sensitive value planted in the input
//! never survives, whatever garbage surrounds it.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use scrubd::record::{Format, Record};
use scrubd::scrub::{Scrubber, SourceState};

static SCRUBBER: LazyLock<Scrubber> = LazyLock::new(Scrubber::builtin);

const PLANTED: &[u8] = b"fuzzed.person@example.org";

fuzz_target!(|input: (bool, bool, &[u8])| {
    let (plant, fragment, data) = input;
    let mut bytes = data.to_vec();
    if plant {
        let at = bytes.len() / 2;
        bytes.splice(at..at, PLANTED.iter().copied());
    }
    let record = Record { offset: 0, bytes, format: Format::Text, timestamp_ms: None, level: None, fragment };
    let out = SCRUBBER.scrub(&record, "fuzz", &mut SourceState::default());
    if plant {
        assert!(!out.bytes.windows(PLANTED.len()).any(|w| w == PLANTED), "planted email survived");
    }
});
