//! The subcommands, one file each. `main.rs` parses flags and dispatches here.
pub mod compact;
pub mod fetch;
pub mod reindex;
pub mod search;
pub mod synth;
