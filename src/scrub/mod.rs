//! The rules engine: detectors, key rules, actions. Takes a record's bytes and the compiled rules,
//! returns scrubbed bytes and counts.
//!
//! Must not: fail, panic, allocate without bound, or log a value. Input it cannot parse takes the
//! fail-closed path (text-mode detection plus `"key": "value"` patterns), counted as a fallback.

use std::collections::BTreeMap;

/// What the scrubber made of one record.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Scrubbed {
    /// The scrubbed record: the input byte for byte, except the scrubbed values.
    pub bytes: Vec<u8>,
    /// Number of values each rule removed, by rule name (only rules that fired).
    pub counts: BTreeMap<String, u64>,
    /// Object ids found in the record (`evt_…`, `cus_…`, …), deduplicated, in order of appearance.
    pub ids: Vec<String>,
    /// The provider's event id (`evt_…` of a Stripe event), when the record is an event.
    pub event_id: Option<String>,
    /// The provider's event type (`invoice.paid`), when the record is an event.
    pub event_type: Option<String>,
    /// Pseudonym tokens the `hash` action produced in this record.
    pub pseudonyms: Vec<String>,
    /// Timestamp found in the record body (e.g. a Stripe event's `created`), in ms since the epoch.
    pub timestamp_ms: Option<i64>,
    /// The record could not be parsed as its structure claims and was scrubbed in text mode.
    pub fallback: bool,
}

pub mod config;
pub use config::{RawRule, ScrubConfig};
pub mod detect;
