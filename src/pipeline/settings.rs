//! The `[pipeline]`, `[input]` and `[batch]` sections of the daemon config: which stages this process runs, how a
//! Kafka message is decoded and how messages are batched for the model, with their defaults, docs and checks.

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

/// `[pipeline]`: which stages this process runs. One process runs them all by default; a fleet splits them into
/// classify processes (input topics -> model -> enriched records, and a summary of each counted message keyed by
/// its topic on the repartition topic) and aggregate processes (repartition topic -> windows -> detector -> alerts,
/// with each topic's state snapshotted to the state topic), so that each topic's alerts are decided once, over
/// every message of the topic (docs/OPERATIONS.md, "Scaling out").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineConfig {
    /// `"all"` (default), `"classify"` or `"aggregate"`.
    pub role: PipelineRole,
    /// Where classify processes send the topic summaries and aggregate processes read them. Give it as many
    /// partitions as you will ever run aggregators (a topic lives on one partition). Default `sentmon-repartition`.
    pub repartition_topic: String,
    /// Where aggregators keep each topic's windows and detector state, one record per topic: create it with
    /// `cleanup.policy=compact`. Default `sentmon-aggregate-state`.
    pub state_topic: String,
    /// The aggregators' consumer group (the classify processes use `kafka.group_id`). Default: `kafka.group_id`
    /// followed by `-aggregate`.
    pub aggregate_group_id: Option<String>,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            role: PipelineRole::All,
            repartition_topic: "sentmon-repartition".to_owned(),
            state_topic: "sentmon-aggregate-state".to_owned(),
            aggregate_group_id: None,
        }
    }
}

/// Which stages a process runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum PipelineRole {
    /// Every stage in one process (one replica, or replicas whose windows each see their own partitions).
    #[default]
    All,
    /// Input -> model -> enriched records and topic summaries; no windows or alerts.
    Classify,
    /// Topic summaries -> windows -> detector -> alerts; no model.
    Aggregate,
}

impl TryFrom<String> for PipelineRole {
    type Error = String;

    fn try_from(name: String) -> Result<Self, Self::Error> {
        match name.as_str() {
            "all" => Ok(PipelineRole::All),
            "classify" => Ok(PipelineRole::Classify),
            "aggregate" => Ok(PipelineRole::Aggregate),
            _ => Err(format!("unknown pipeline role {name:?}: use \"all\", \"classify\" or \"aggregate\"")),
        }
    }
}

impl PipelineConfig {
    /// The aggregators' consumer group, given the classify processes' one.
    pub fn aggregate_group_id(&self, group_id: &str) -> String {
        self.aggregate_group_id.clone().unwrap_or_else(|| format!("{group_id}-aggregate"))
    }

    /// The topics this role needs beyond `[kafka]`'s, with their keys: none for `all`, the repartition topic for
    /// `classify`, and it and the state topic for `aggregate`.
    pub fn topics(&self) -> Vec<(&'static str, &str)> {
        match self.role {
            PipelineRole::All => Vec::new(),
            PipelineRole::Classify => vec![("pipeline.repartition_topic", &self.repartition_topic)],
            PipelineRole::Aggregate => vec![
                ("pipeline.repartition_topic", &self.repartition_topic),
                ("pipeline.state_topic", &self.state_topic),
            ],
        }
    }

    /// Adds every problem of this section to `issues`.
    pub(crate) fn check(&self, issues: &mut Vec<ConfigIssue>) {
        for (key, topic) in
            [("pipeline.repartition_topic", &self.repartition_topic), ("pipeline.state_topic", &self.state_topic)]
        {
            if topic.trim().is_empty() {
                issues.push(ConfigIssue::new(key, topic, "must name a Kafka topic"));
            }
        }
        if self.role != PipelineRole::All && self.repartition_topic == self.state_topic {
            let requirement = "must differ from pipeline.repartition_topic: one holds summaries, the other state";
            issues.push(ConfigIssue::new("pipeline.state_topic", &self.state_topic, requirement));
        }
    }
}

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
