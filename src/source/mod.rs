//! Sources: watch log directories, tail files through rotation, keep durable checkpoints.
//!
//! The [`Tailer`] of one `[[sources]]` entry finds the files matching its globs, reads the bytes
//! appended to them and hands them on as [`SourceEvent`]s, each tagged with the file's identity
//! ([`FileId`]: device, inode and a fingerprint of its first bytes) and its offset. The
//! [`Checkpointer`] remembers, per file, the offset up to which everything is safely stored.
//!
//! **Architecture Invariant:** a checkpoint advances only after the records before it are durably
//! in the spool. The tailer never commits anything itself: the pipeline calls
//! [`Checkpointer::commit`] once the spool has fsynced them. A crash at any point therefore makes
//! scrubd read some bytes again, never skip any.
//!
//! A file's checkpoint lives as long as the file does: once the file is closed and committed to
//! its end it is "done", and it is forgotten when the file is gone. Keeping the fingerprints of
//! done files is what lets a restarted tailer tell a rotated file it already read (`x.log.2`,
//! `x.log.2.gz`) from one that was written and rotated while scrubd was stopped (read from 0).
//!
//! Known limits: a file created and rotated away while scrubd is stopped is found only under a
//! name that starts with the watched file's name (`x.log.1`, `x.log-20261123.gz`), and only
//! `.gz` compression is read; a file still empty when scrubd stops has no identity, so the same
//! applies to it. Globs should not match rotated names (a copy would look like a new file).
//!
//! Must not: split records or look at their content (that is `record` and `scrub`), advance a
//! checkpoint itself, or log any byte read from a file (only paths, offsets and sizes).

mod checkpoint;
mod fileid;
mod removal;
mod tailer;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Deserializer};

pub use checkpoint::{CHECKPOINT_FILE_NAME, CheckpointEntry, CheckpointFile, CheckpointLag, Checkpointer};
pub use fileid::{DEFAULT_FINGERPRINT_BYTES, FileId, Fingerprint};
pub use removal::{RemovalCheck, is_removable, remove_file};
pub use tailer::{Tailer, TailerOptions, TailerStats};

use crate::record::Format;

/// `[[sources]]`: one watched set of files.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Name of the source, in object keys, the index and metrics (e.g. `stripe-webhooks`).
    pub name: String,
    /// Glob patterns of the files to tail, e.g. `/var/log/webhooks/*.log`. Patterns should not
    /// match the rotated names (`*.log.1`, `*.gz`): rotated files are followed by identity.
    pub paths: Vec<String>,
    /// Log format of the files; `auto` detects it from the first bytes.
    #[serde(default)]
    pub format: Format,
    /// Host label for this source's records; absent means the daemon's `host`.
    #[serde(default)]
    pub host: Option<String>,
    /// Names of rules switched off for this source (applied by the scrub engine, carried here).
    #[serde(default)]
    pub disable_rules: Vec<String>,
    /// How changes are noticed: `notify` (inotify, with polling kept as a safety net) or `poll`
    /// (polling only, for NFS and other filesystems without inotify).
    #[serde(default)]
    pub watch: WatchMode,
    /// Interval of the directory and file polling (the fallback, and the safety net under notify).
    #[serde(default = "default_poll_interval", with = "crate::config::humantime_serde_compat")]
    pub poll_interval: Duration,
    /// Size of one read, and so the largest `Data` chunk. Up to 64 chunks wait for the scrub
    /// stage, so this bounds that queue too (16 MiB at the default). Smaller reads mean more
    /// hand-offs between threads: 64 KiB cost 6% more CPU than 256 KiB on the benchmark corpus.
    #[serde(default = "default_read_buffer")]
    pub read_buffer: bytesize::ByteSize,
    /// Compliance: once a file is fully archived (checkpoint at its end), not the active file and
    /// last modified longer ago than this, remove it so raw personal data does not linger on the
    /// host. Absent (the default) means never remove anything.
    #[serde(default, deserialize_with = "optional_duration")]
    pub remove_archived_after: Option<Duration>,
    /// How `remove_archived_after` removes a file: `delete` it or `truncate` it to zero bytes
    /// (for applications that keep the file open and must not see it disappear).
    #[serde(default)]
    pub remove_mode: RemoveMode,
}

impl SourceConfig {
    /// A source with the default settings, for `paths`.
    pub fn new(name: impl Into<String>, paths: Vec<String>) -> Self {
        SourceConfig {
            name: name.into(),
            paths,
            format: Format::Auto,
            host: None,
            disable_rules: Vec::new(),
            watch: WatchMode::Notify,
            poll_interval: default_poll_interval(),
            read_buffer: default_read_buffer(),
            remove_archived_after: None,
            remove_mode: RemoveMode::Delete,
        }
    }
}

fn default_poll_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_read_buffer() -> bytesize::ByteSize {
    bytesize::ByteSize::kib(256)
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s)
        .map(Some)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
}

/// How file changes are noticed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchMode {
    /// inotify through the `notify` crate; polling still runs every `poll_interval`.
    #[default]
    Notify,
    /// Polling only.
    Poll,
}

/// What compliance removal does to a fully archived file.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RemoveMode {
    #[default]
    Delete,
    Truncate,
}

/// What the tailer hands to the next stage. Events of one file come in offset order.
#[derive(Clone, Debug)]
pub enum SourceEvent {
    /// Bytes read from a file: `bytes` are the file's bytes at `offset..offset + bytes.len()`.
    /// Consecutive `Data` of one file are contiguous (the first one starts at the checkpoint).
    Data {
        source: Arc<str>,
        file: Arc<FileId>,
        /// Where the bytes were read: the file's path, or a rotated copy of it (`x.log.1.gz`).
        path: Arc<Path>,
        offset: u64,
        bytes: Bytes,
    },
    /// The file has not grown for the idle timeout: a record still open at its end is complete.
    Idle { source: Arc<str>, file: Arc<FileId> },
    /// The file is done (rotated away and read to its end, deleted, or truncated under us); no
    /// more events come for it. `end` is the offset after its last byte sent.
    Closed {
        source: Arc<str>,
        file: Arc<FileId>,
        end: u64,
    },
}

impl SourceEvent {
    /// The file the event is about.
    pub fn file(&self) -> &Arc<FileId> {
        match self {
            SourceEvent::Data { file, .. } | SourceEvent::Idle { file, .. } | SourceEvent::Closed { file, .. } => file,
        }
    }
}

/// Errors of the source stage.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("source {source_name}: invalid path pattern {pattern:?}: {error}")]
    Pattern {
        source_name: String,
        pattern: String,
        error: globset::Error,
    },
    #[error("checkpoint file {path}: {error}")]
    CheckpointIo { path: String, error: std::io::Error },
    #[error("checkpoint file {path} is not valid: {message}")]
    CheckpointCorrupt { path: String, message: String },
    #[error(
        "checkpoint file {path} has version {version:?}, this scrubd reads only version \"1\"; was it written by a newer scrubd?"
    )]
    CheckpointVersion { path: String, version: String },
    #[error("cannot remove archived file {path}: {error}")]
    Remove { path: String, error: std::io::Error },
    #[error("source {source_name}: tailer thread failed: {message}")]
    Internal { source_name: String, message: String },
}

impl SourceError {
    /// Whether trying again later may succeed (I/O), as opposed to a configuration or format
    /// problem that needs an operator.
    pub fn is_retryable(&self) -> bool {
        matches!(self, SourceError::CheckpointIo { .. } | SourceError::Remove { .. })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str, expect: Result<&str, &str>) {
        #[derive(Deserialize)]
        struct Wrap {
            sources: Vec<SourceConfig>,
        }
        let got = toml_parse::<Wrap>(toml_text).map(|w| format!("{:?}", w.sources[0]));
        match (got, expect) {
            (Ok(got), Ok(want)) => assert!(got.contains(want), "{got} does not contain {want}"),
            (Err(got), Err(want)) => assert!(got.contains(want), "{got} does not contain {want}"),
            (got, want) => panic!("got {got:?}, want {want:?}"),
        }
    }

    fn toml_parse<T: serde::de::DeserializeOwned>(text: &str) -> Result<T, String> {
        config::Config::builder()
            .add_source(config::File::from_str(text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize::<T>())
            .map_err(|e| e.to_string())
    }

    #[test]
    fn config_parsing() {
        let base = "[[sources]]\nname = \"w\"\npaths = [\"/var/log/w/*.log\"]\n";
        check(base, Ok("poll_interval: 1s"));
        check(base, Ok("remove_archived_after: None"));
        check(
            &format!("{base}remove_archived_after = \"7d\"\nremove_mode = \"truncate\"\n"),
            Ok("Some(604800s)"),
        );
        check(
            &format!("{base}remove_mode = \"truncate\"\n"),
            Ok("remove_mode: Truncate"),
        );
        check(&format!("{base}format = \"json_lines\"\n"), Ok("format: JsonLines"));
        check(
            &format!("{base}watch = \"poll\"\npoll_interval = \"250ms\"\n"),
            Ok("poll_interval: 250ms"),
        );
        check(&format!("{base}read_buffer = \"1 MiB\"\n"), Ok("read_buffer: 1.0 MiB"));
        check(&format!("{base}pathz = []\n"), Err("pathz"));
        check(&format!("{base}remove_mode = \"shred\"\n"), Err("shred"));
        check(&format!("{base}remove_archived_after = \"soon\"\n"), Err("soon"));
    }
}
