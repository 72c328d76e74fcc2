//! The searchable index: one Parquet segment per archive under `index/`, compaction, search and
//! fetch straight from the bucket.
//!
//! Must not: need the daemon's state; everything comes from the bucket (and a local cache).

use serde::Deserialize;

/// `[index]`. Placeholder, replaced by the index module.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IndexConfig {}
