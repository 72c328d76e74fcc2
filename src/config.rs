//! Configuration: layered, then validated.
//!
//! The layers, each overriding the one before: the embedded default (`config/scrubd.toml`, which
//! holds the default rule set), the user's file, and environment variables `SCRUBD__SECTION__KEY`
//! (e.g. `SCRUBD__STORE__BUCKET=logs`). Rules are a table keyed by name, so a user file can add a
//! rule, disable one (`[rules.ip_address] enabled = false`) or change one field of it without
//! copying the defaults.
//!
//! Unknown keys are errors, and every error names the file it comes from.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::archive::{ArchiveConfig, SpoolConfig};
use crate::index::IndexConfig;
use crate::scrub::{RawRule, ScrubConfig, Scrubber};
use crate::source::SourceConfig;
use crate::store::StoreConfig;

/// The embedded default configuration.
pub const DEFAULT_TOML: &str = include_str!("../config/scrubd.toml");

/// Name under which the embedded default appears in error messages.
pub const DEFAULT_ORIGIN: &str = "<embedded default config/scrubd.toml>";

/// The whole configuration, as typed (after layering).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Name of this host in object keys and the index; empty means the system host name.
    #[serde(default)]
    pub host: String,
    #[serde(default)]
    pub records: RecordsConfig,
    #[serde(default)]
    pub scrub: ScrubConfig,
    /// The rule set, by rule name.
    #[serde(default)]
    pub rules: BTreeMap<String, RawRule>,
    #[serde(default)]
    pub sources: Vec<SourceConfig>,
    #[serde(default)]
    pub archive: ArchiveConfig,
    #[serde(default)]
    pub spool: SpoolConfig,
    #[serde(default)]
    pub store: StoreConfig,
    #[serde(default)]
    pub index: IndexConfig,
    #[serde(default)]
    pub daemon: DaemonConfig,
}

/// `[records]`: how streams are split.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RecordsConfig {
    /// Records longer than this are cut into fragments and scrubbed in text mode; this bounds the
    /// memory one record can take.
    pub max_record_bytes: bytesize::ByteSize,
}

impl Default for RecordsConfig {
    fn default() -> Self {
        RecordsConfig {
            max_record_bytes: bytesize::ByteSize::mib(4),
        }
    }
}

/// `[daemon]`: the running service.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonConfig {
    /// Checkpoints and the default spool live here (systemd's `StateDirectory`).
    pub state_dir: PathBuf,
    /// A record appended to a watched file is sealed into an archive within this interval.
    #[serde(with = "humantime_serde_compat")]
    pub flush_interval: std::time::Duration,
    /// On SIGTERM, how long to keep sealing and uploading before exiting; keep it below
    /// systemd's `TimeoutStopSec`.
    #[serde(with = "humantime_serde_compat")]
    pub shutdown_grace: std::time::Duration,
    /// The last record of a file that stopped growing is complete after this long.
    #[serde(with = "humantime_serde_compat")]
    pub idle_timeout: std::time::Duration,
    /// Address of the Prometheus `/metrics` and `/healthz` endpoint; empty disables it.
    pub metrics_addr: String,
    /// `text` or `json`.
    pub log_format: LogFormat,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            state_dir: PathBuf::from("scrubd-state"),
            flush_interval: std::time::Duration::from_secs(60),
            shutdown_grace: std::time::Duration::from_secs(20),
            idle_timeout: std::time::Duration::from_secs(5),
            metrics_addr: "127.0.0.1:9779".into(),
            log_format: LogFormat::Text,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// Durations as humans write them (`60s`, `5m`, `1h 30m`).
pub mod humantime_serde_compat {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<std::time::Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(|e| serde::de::Error::custom(format!("invalid duration {s:?}: {e}")))
    }
}

/// A configuration error, naming the file it comes from.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{origin}: {message}")]
    Invalid { origin: String, message: String },
}

/// A loaded and validated configuration: what the user typed, plus what was compiled from it once.
#[derive(Debug, Clone)]
pub struct Config {
    pub raw: RawConfig,
    /// The compiled rule set.
    pub scrubber: std::sync::Arc<Scrubber>,
}

/// Loads the layered configuration (the embedded default, then `file`, then `SCRUBD__*`
/// environment variables) and validates it.
pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
    load_with_env(file, std::env::vars())
}

/// [`load`] with an explicit environment, for tests.
pub fn load_with_env(
    file: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let user = match file {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
                path: path.to_owned(),
                source,
            })?;
            Some((path.display().to_string(), text))
        }
        None => None,
    };
    let env: Vec<(String, String)> = env.into_iter().filter(|(k, _)| k.starts_with("SCRUBD__")).collect();
    let layers = Layers { user, env };

    layers.attempt(true, true).map_err(|message| {
        // Name the layer that brought the error in: the first one whose addition makes it fail.
        let origin = if layers.attempt(false, false).is_err() {
            DEFAULT_ORIGIN.to_string()
        } else if let (Some((path, _)), Err(_)) = (&layers.user, layers.attempt(true, false)) {
            path.clone()
        } else {
            "environment (SCRUBD__*)".to_string()
        };
        ConfigError::Invalid { origin, message }
    })
}

struct Layers {
    user: Option<(String, String)>,
    env: Vec<(String, String)>,
}

impl Layers {
    /// Layers the default with the user file and the environment (each if asked), deserializes
    /// and compiles the result.
    fn attempt(&self, with_user: bool, with_env: bool) -> Result<Config, String> {
        let mut b =
            config::Config::builder().add_source(config::File::from_str(DEFAULT_TOML, config::FileFormat::Toml));
        if let (true, Some((_, text))) = (with_user, &self.user) {
            b = b.add_source(config::File::from_str(text, config::FileFormat::Toml));
        }
        if with_env {
            b = b.add_source(
                config::Environment::with_prefix("SCRUBD")
                    .prefix_separator("__")
                    .separator("__")
                    .source(Some(self.env.iter().cloned().collect())),
            );
        }
        let raw: RawConfig = b.build().and_then(|c| c.try_deserialize()).map_err(|e| e.to_string())?;
        let scrubber = Scrubber::new(&raw.scrub, &raw.rules).map_err(|e| e.to_string())?;
        Ok(Config {
            raw,
            scrubber: std::sync::Arc::new(scrubber),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load_str(toml: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("user.toml");
        std::fs::write(&path, toml).unwrap();
        load_with_env(Some(&path), Vec::new())
    }

    #[test]
    fn embedded_default_loads() {
        load_with_env(None, Vec::new()).unwrap();
    }

    #[test]
    fn unknown_key_names_the_file() {
        let err = load_str("[daemon]\nflush_intervall = \"5s\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("user.toml"), "{err}");
        assert!(err.contains("flush_intervall"), "{err}");
    }

    #[test]
    fn bad_rule_names_file_rule_and_field() {
        let err = load_str("[rules.my_token]\nregex = \"tok_(\"\naction = \"redact\"\n")
            .unwrap_err()
            .to_string();
        for needle in ["user.toml", "my_token", "regex"] {
            assert!(err.contains(needle), "{needle} missing from: {err}");
        }
    }

    #[test]
    fn env_error_names_the_environment() {
        let err = load_with_env(None, vec![("SCRUBD__DAEMON__FLUSH_INTERVAL".into(), "soon".into())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("environment"), "{err}");
    }

    #[test]
    fn env_overrides_file() {
        let cfg = load_with_env(
            None,
            vec![("SCRUBD__DAEMON__METRICS_ADDR".into(), "127.0.0.1:1".into())],
        )
        .unwrap();
        assert_eq!(cfg.raw.daemon.metrics_addr, "127.0.0.1:1");
    }
}
