//! Archives: scrubbed records batched per source file into zstd frames with a seek table, their
//! manifests, and the durable spool they wait in until uploaded.
//!
//! Must not: let anything upstream treat a record as done before its archive is durably in the
//! spool (temp file, fsync, rename, fsync of the directory).

pub mod manifest;

use serde::Deserialize;

/// `[archive]` and `[spool]`. Placeholder, replaced by the archive stage.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {}

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SpoolConfig {}
