//! scrubd: a daemon that tails webhook logs, scrubs personal data and secrets out of them, and
//! ships the scrubbed records as seekable zstd archives with a searchable index to S3-compatible
//! storage.
//!
//! # Layout
//!
//! The pipeline, from the log file to the bucket; each stage is one module and hands a typed
//! value to the next over a bounded channel (wired in [`pipeline`]):
//!
//! ```text
//! source::Tailer ──Chunk──▶ record::Splitter ──Record──▶ scrub::Scrubber ──Scrubbed──▶
//!     archive::Archiver ──Sealed (durable in the spool)──▶ store::Uploader ──▶ ObjectStore
//!            │
//!            └──Ack (file, end offset)──▶ source::Checkpointer
//! ```
//!
//! - [`record`]: splits a byte stream into records, one submodule per log format.
//! - [`scrub`]: the rules engine; pure and infallible (bad input takes the fail-closed path).
//! - [`archive`]: zstd frames with a seek table, manifests, the durable spool.
//! - [`store`]: the [`store::ObjectStore`] trait with S3 and local-directory implementations.
//! - [`source`]: directory watching, tailing, rotation, checkpoints.
//! - [`index`]: Parquet index segments, search and fetch.
//! - [`config`]: the configuration, raw (as typed by the user) and validated.
//! - [`cli`]: one file per subcommand; `main.rs` only parses flags and dispatches.
//!
//! Start reading at [`pipeline`] for the daemon, or at [`scrub::Scrubber`] for the engine.

pub mod archive;
pub mod cli;
pub mod config;
pub mod index;
pub mod metrics;
pub mod notify;
pub mod pipeline;
pub mod record;
pub mod scrub;
mod simd;
pub mod source;
pub mod store;
pub mod synth;
