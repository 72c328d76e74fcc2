//! The record splitter on arbitrary bytes, fed in arbitrary chunks: never panics, loses nothing,
//! and every piece stays within the record size limit.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scrubd::record::{Format, Splitter};

fuzz_target!(|input: (u8, u8, &[u8])| {
    let (format, chunk, data) = input;
    let format = Format::ALL[format as usize % Format::ALL.len()];
    let chunk = 1 + chunk as usize;
    let max_record = 512;
    let mut splitter = Splitter::new(format, max_record, 0);
    let mut records = Vec::new();
    for piece in data.chunks(chunk) {
        splitter.push(piece, &mut records);
    }
    splitter.finish(&mut records);
    let mut joined = Vec::with_capacity(data.len());
    let mut offset = 0u64;
    for r in &records {
        assert_eq!(r.offset, offset);
        assert!(!r.fragment || r.bytes.len() <= max_record);
        offset += r.bytes.len() as u64;
        joined.extend_from_slice(&r.bytes);
    }
    assert_eq!(joined, data);
});
