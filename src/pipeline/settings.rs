//! The `[input]` and `[batch]` sections of the daemon config: how a Kafka message is decoded and how
//! messages are batched for the model, with their defaults, docs and checks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigIssue;

/// One batch is one forward pass: beyond a few thousand messages a pass takes seconds on a CPU and
/// the padded tensor (batch x longest message x hidden size) reaches hundreds of MiB, so a larger
/// value is a typo rather than tuning. Also keeps `Vec` capacities in the batcher sane.
const MAX_BATCH_SIZE: usize = 4096;

/// A message waits at most `batch.max_wait_ms` for its batch. A minute already delays offset
/// commits and alerts far more than fuller batches speed inference, so longer is a mistake.
const MAX_BATCH_WAIT_MS: u64 = 60_000;

/// `[input]`: how a Kafka message becomes text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct InputConfig {
    /// `"json"` (`{"text", "id"?, "source"?, "url"?, "lang"?, "ts"?}`) or `"text"` (the payload is
    /// the UTF-8 text). Default `"json"`.
    pub format: InputFormat,
    /// Larger payloads are dead-lettered, in bytes. Default 1 048 576 (1 MiB, Kafka's default
    /// `message.max.bytes`), so nothing the broker accepts by default is rejected here.
    pub max_message_bytes: usize,
}

impl Default for InputConfig {
    fn default() -> Self {
        Self { format: InputFormat::Json, max_message_bytes: 1_048_576 }
    }
}

/// Encoding of input messages.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
// Parsed through `TryFrom<String>` because `config`'s own enum error does not list the choices.
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum InputFormat {
    /// A JSON object with at least a `text` field.
    #[default]
    Json,
    /// The whole payload is the text.
    Text,
}

impl TryFrom<String> for InputFormat {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        match name.as_str() {
            "json" => Ok(InputFormat::Json),
            "text" => Ok(InputFormat::Text),
            _ => Err(format!("unknown input format {name:?}: use \"json\" or \"text\"")),
        }
    }
}

/// `[batch]`: size-or-deadline micro-batching in front of the model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BatchConfig {
    /// A batch is cut as soon as it holds this many messages. Count, 1 to 4096. Default 64: the
    /// LSTM's per-batch overhead is amortised by then, and padding waste stays small.
    pub max_size: usize,
    /// A batch is cut this long after its first message arrived, in milliseconds, 0 to 60 000.
    /// Default 20: well under the latency anyone watching a dashboard notices.
    pub max_wait_ms: u64,
}

impl Default for BatchConfig {
    fn default() -> Self {
        Self { max_size: 64, max_wait_ms: 20 }
    }
}

impl BatchConfig {
    /// `max_wait_ms` as a duration.
    pub fn max_wait(&self) -> Duration {
        Duration::from_millis(self.max_wait_ms)
    }
}

impl InputConfig {
    /// Adds every problem of this section to `issues`.
    pub(crate) fn check(&self, issues: &mut Vec<ConfigIssue>) {
        if self.max_message_bytes == 0 {
            issues.push(ConfigIssue::new("input.max_message_bytes", self.max_message_bytes, "must be at least 1"));
        }
    }
}

impl BatchConfig {
    /// Adds every problem of this section to `issues`.
    pub(crate) fn check(&self, issues: &mut Vec<ConfigIssue>) {
        if !(1..=MAX_BATCH_SIZE).contains(&self.max_size) {
            let requirement = format!("must be between 1 and {MAX_BATCH_SIZE}");
            issues.push(ConfigIssue::new("batch.max_size", self.max_size, requirement));
        }
        if self.max_wait_ms > MAX_BATCH_WAIT_MS {
            let requirement = format!("must be at most {MAX_BATCH_WAIT_MS} (one minute)");
            issues.push(ConfigIssue::new("batch.max_wait_ms", self.max_wait_ms, requirement));
        }
    }
}
