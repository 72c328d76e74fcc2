//! Sources: watch log directories, tail files through rotation, keep durable checkpoints.
//!
//! Must not: advance a checkpoint past a record that is not yet durably in the spool.

use serde::Deserialize;

/// `[[sources]]`: one watched set of files. Placeholder, replaced by the source stage.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {}
