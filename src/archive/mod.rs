//! Archives: scrubbed records batched per source file into zstd frames with a seek table, their
//! manifests, and the durable spool they wait in until uploaded.
//!
//! The pieces, in the order a record meets them:
//! - [`builder::ArchiveBuilder`] buffers the scrubbed records of one (host, source, file) into
//!   frames of bounded size, compresses each completed frame, and on [`builder::ArchiveBuilder::seal`]
//!   writes the archive and its [`Manifest`] durably to the [`spool::Spool`].
//! - [`seekable`] is the object format: independent zstd frames followed by the zstd seekable
//!   format's seek table (a skippable frame), and the reader side (ranged GET of one frame).
//! - [`keys`] names the objects, deterministically, so a retry writes the same key.
//! - [`uploader::Uploader`] re-scans each sealed archive, uploads it and its manifest, then deletes
//!   it from the spool.
//!
//! Must not: let anything upstream treat a record as done before its archive is durably in the
//! spool (temp file, fsync, rename, fsync of the directory); drop a record when the spool is full
//! (the caller stops reading instead); upload an archive the last-line-of-defence rescan flags.

pub mod builder;
pub mod keys;
pub mod manifest;
pub mod seekable;
pub mod spool;
pub mod uploader;

use std::path::PathBuf;
use std::time::Duration;

use bytesize::ByteSize;
use serde::Deserialize;

pub use builder::{ArchiveBuilder, ArchiveIdentity, RecordMeta};
pub use manifest::{FrameEntry, Manifest, RecordEntry};
pub use seekable::{read_archive, read_frame, read_record, read_seek_table, verify_archive};
pub use spool::{Prescan, Sealed, Spool};
pub use uploader::{AfterUpload, Rescan, RetryPolicy, UploadCounters, Uploader};

use crate::store::StoreError;

/// `[archive]`: how scrubbed records become archive objects.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// An archive is sealed once its scrubbed (decompressed) content reaches this size. Bounds the
    /// object size and what the rescan before upload reads.
    pub max_archive_bytes: ByteSize,
    /// An archive is sealed once its first record is this old (`"5m"`), so quiet files still ship.
    #[serde(with = "crate::config::humantime_serde_compat")]
    pub max_archive_age: Duration,
    /// zstd compression level (1..=19; 3 is zstd's default).
    pub zstd_level: i32,
    /// Bound on a frame's decompressed size. A record is read back by fetching its whole frame, so
    /// smaller frames mean smaller ranged GETs and a slightly worse ratio. Frames hold whole
    /// records; a record bigger than this is a frame of its own.
    pub frame_bytes: ByteSize,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        ArchiveConfig {
            max_archive_bytes: ByteSize::mib(64),
            max_archive_age: Duration::from_secs(300),
            zstd_level: 3,
            frame_bytes: ByteSize::kib(256),
        }
    }
}

impl ArchiveConfig {
    /// Checks the values a user could get wrong.
    pub fn validate(&self) -> Result<(), ArchiveError> {
        let bad = |m: String| Err(ArchiveError::Config(m));
        if !(1..=19).contains(&self.zstd_level) {
            return bad(format!("archive.zstd_level {} is outside 1..=19", self.zstd_level));
        }
        // The seek table stores frame sizes as u32.
        if self.frame_bytes.as_u64() < 1024 || self.frame_bytes.as_u64() > 1 << 30 {
            return bad(format!(
                "archive.frame_bytes {} is outside 1 KiB..=1 GiB",
                self.frame_bytes
            ));
        }
        if self.max_archive_bytes < self.frame_bytes {
            return bad(format!(
                "archive.max_archive_bytes {} is smaller than archive.frame_bytes {}",
                self.max_archive_bytes, self.frame_bytes
            ));
        }
        if self.max_archive_age.is_zero() {
            return bad("archive.max_archive_age must be positive".into());
        }
        Ok(())
    }
}

/// `[spool]`: where sealed archives wait until they are uploaded.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SpoolConfig {
    /// The spool directory; unset means `spool/` under the daemon's state dir. Must be on a local
    /// file system that honours fsync.
    pub dir: Option<PathBuf>,
    /// When the spool holds this much, reading stops until uploads make room (records are never
    /// dropped).
    pub max_bytes: ByteSize,
    /// When the file system of the spool has less free space than this, reading stops too.
    pub min_free_bytes: ByteSize,
    /// Where archives the pre-upload rescan flags are moved, with a note of the rules that fired;
    /// unset means `quarantine/` under the daemon's state dir.
    pub quarantine_dir: Option<PathBuf>,
}

impl Default for SpoolConfig {
    fn default() -> Self {
        SpoolConfig {
            dir: None,
            max_bytes: ByteSize::gib(1),
            min_free_bytes: ByteSize::mib(256),
            quarantine_dir: None,
        }
    }
}

impl SpoolConfig {
    /// The spool directory, defaulting to `<state_dir>/spool`.
    pub fn resolved_dir(&self, state_dir: &std::path::Path) -> PathBuf {
        self.dir.clone().unwrap_or_else(|| state_dir.join("spool"))
    }

    /// The quarantine directory, defaulting to `<state_dir>/quarantine`.
    pub fn resolved_quarantine_dir(&self, state_dir: &std::path::Path) -> PathBuf {
        self.quarantine_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("quarantine"))
    }
}

/// Why building, spooling or reading an archive failed.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("invalid configuration: {0}")]
    Config(String),
    #[error("i/o error on {path}: {source}")]
    Io { path: PathBuf, source: std::io::Error },
    #[error("zstd error while {context}: {source}")]
    Zstd { context: String, source: std::io::Error },
    #[error("corrupt archive {key}: {message}")]
    Corrupt { key: String, message: String },
    #[error("record at source offset {offset} of file {file_id} is before the archive's end {end}")]
    OutOfOrder { file_id: String, offset: u64, end: u64 },
    #[error("cannot seal an archive without records")]
    Empty,
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ArchiveError {
    /// Whether trying again later can help (I/O and transient store errors).
    pub fn is_retryable(&self) -> bool {
        match self {
            ArchiveError::Io { .. } => true,
            ArchiveError::Store(e) => !e.is_permanent() && !matches!(e, StoreError::NotFound { .. }),
            _ => false,
        }
    }

    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> ArchiveError {
        let path = path.into();
        move |source| ArchiveError::Io { path, source }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(toml_text: &str, expect: Result<(), &str>) {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Wrap {
            #[serde(default)]
            archive: ArchiveConfig,
            #[serde(default)]
            #[allow(dead_code)]
            spool: SpoolConfig,
        }
        let parsed: Result<Wrap, String> = config::Config::builder()
            .add_source(config::File::from_str(toml_text, config::FileFormat::Toml))
            .build()
            .and_then(|c| c.try_deserialize())
            .map_err(|e| e.to_string());
        let got = parsed.and_then(|w| w.archive.validate().map_err(|e| e.to_string()));
        match (got, expect) {
            (Ok(()), Ok(())) => {}
            (Err(e), Err(want)) => assert!(e.contains(want), "{toml_text:?}: error {e:?} lacks {want:?}"),
            (got, expect) => panic!("{toml_text:?}: got {got:?}, expected {expect:?}"),
        }
    }

    #[test]
    fn config_parses_and_validates() {
        check("", Ok(()));
        check(
            "[archive]\nmax_archive_bytes = \"16 MiB\"\nmax_archive_age = \"90s\"\nzstd_level = 9\nframe_bytes = \"64 KiB\"\n",
            Ok(()),
        );
        check("[archive]\nzstd_level = 30\n", Err("zstd_level"));
        check("[archive]\nframe_bytes = \"100 B\"\n", Err("frame_bytes"));
        check("[archive]\nmax_archive_bytes = \"4 KiB\"\n", Err("max_archive_bytes"));
        check("[archive]\nmax_archive_age = \"soon\"\n", Err("invalid duration"));
        check("[archive]\ndictionary = \"x\"\n", Err("dictionary"));
        check(
            "[spool]\nmax_bytes = \"2 GiB\"\nmin_free_bytes = \"1 GiB\"\ndir = \"/var/spool/x\"\n",
            Ok(()),
        );
        check("[spool]\nmaxbytes = 1\n", Err("maxbytes"));
    }

    #[test]
    fn env_overrides_reach_archive_and_spool() {
        let cfg = crate::config::load_with_env(
            None,
            vec![
                ("SCRUBD__ARCHIVE__ZSTD_LEVEL".to_string(), "9".to_string()),
                ("SCRUBD__ARCHIVE__MAX_ARCHIVE_AGE".to_string(), "2m".to_string()),
                ("SCRUBD__SPOOL__MAX_BYTES".to_string(), "2 GiB".to_string()),
            ],
        )
        .unwrap();
        assert_eq!(cfg.raw.archive.zstd_level, 9);
        assert_eq!(cfg.raw.archive.max_archive_age, Duration::from_secs(120));
        assert_eq!(cfg.raw.spool.max_bytes, ByteSize::gib(2));
        cfg.raw.archive.validate().unwrap();
    }
}
