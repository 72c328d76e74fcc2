//! Raw configuration of the scrub engine, as the user typed it (`[scrub]` and `[rules.NAME]`).

use serde::Deserialize;

/// `[scrub]`: engine settings.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScrubConfig {}

/// `[rules.NAME]`: one rule. Placeholder, replaced by the scrub engine.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawRule {}
