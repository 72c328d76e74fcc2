//! The subcommands, one file each. `main.rs` parses flags and dispatches here.
pub mod synth;
