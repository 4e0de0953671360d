//! Logging set-up: `tracing` to stderr, human-readable or one JSON object per line, and the `[log]`
//! section of the config that chooses which.

use serde::{Deserialize, Serialize};

use crate::config::ConfigIssue;

/// `[log]`: tracing output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// `"text"` for people or `"json"` for log shippers. Default `"text"`.
    pub format: LogFormat,
    /// A tracing `EnvFilter` directive: a level (`"info"`) or per-target levels
    /// (`"info,sentmon=debug,rdkafka=warn"`). Default `"info"`.
    pub level: String,
}

impl LogConfig {
    /// Adds every problem of this section to `issues`.
    pub(crate) fn check(&self, issues: &mut Vec<ConfigIssue>) {
        if self.level.trim().is_empty() {
            issues.push(ConfigIssue::new("log.level", &self.level, "must not be empty: use e.g. \"info\""));
        }
    }
}

impl Default for LogConfig {
    fn default() -> Self {
        Self { format: LogFormat::Text, level: "info".to_owned() }
    }
}

/// Log line encoding.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
// Parsed through `TryFrom<String>` for the same reason as [`InputFormat`].
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

impl TryFrom<String> for LogFormat {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        match name.as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            _ => Err(format!("unknown log format {name:?}: use \"text\" or \"json\"")),
        }
    }
}

/// Installs the global subscriber. `RUST_LOG`, when set, wins over `filter`.
pub fn init(filter: &str, json: bool) {
    let env_filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .or_else(|_| tracing_subscriber::EnvFilter::try_new(filter))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(env_filter).with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}
