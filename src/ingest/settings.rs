//! The `[kafka]` section of the daemon config: brokers, topics, commit interval and the librdkafka
//! pass-through options, with their defaults, docs and checks (`crate::config` composes the sections).

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigError, ConfigIssue};

/// What replaces a secret pass-through option value in [`Config::redacted`].
pub const REDACTED: &str = "<redacted>";

/// A pass-through option whose key contains one of these (case-insensitive) holds a credential:
/// `sasl.password`, `ssl.key.password`, `sasl.oauthbearer.client.secret`, `sasl.oauthbearer.config`
/// (may embed a client secret), `ssl.key.pem` (a private key), `ssl_key`, and token-bearing keys.
const SECRET_OPTION_KEY_FRAGMENTS: [&str; 6] =
    ["password", "secret", "sasl.oauthbearer.config", "ssl.key.pem", "ssl_key", "token"];

/// Consumer options that sentmon sets itself; overriding them would break delivery guarantees or
/// silently disagree with the typed settings. Each comes with the fix the operator should apply.
const MANAGED_CONSUMER_OPTIONS: [(&str, &str); 5] = [
    ("bootstrap.servers", "set kafka.brokers instead"),
    ("group.id", "set kafka.group_id instead"),
    (
        "enable.auto.offset.store",
        "sentmon stores an offset only after its record is acknowledged and counted (at-least-once)",
    ),
    ("enable.auto.commit", "sentmon owns committing; tune kafka.commit_interval_ms instead"),
    ("auto.commit.interval.ms", "set kafka.commit_interval_ms instead"),
];

/// Producer options that sentmon sets itself, as for [`MANAGED_CONSUMER_OPTIONS`].
const MANAGED_PRODUCER_OPTIONS: [(&str, &str); 1] = [("bootstrap.servers", "set kafka.brokers instead")];

/// Kafka rejects longer topic names (`org.apache.kafka.common.internals.Topic`, MAX_NAME_LENGTH).
const KAFKA_MAX_TOPIC_NAME_CHARS: usize = 249;

/// `[kafka]`: where messages come from and go to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct KafkaConfig {
    /// Bootstrap brokers, comma-separated `host:port`. Required; no default.
    pub brokers: String,
    /// Consumer group id; replicas sharing it split the input partitions. Default `"sentmon"`.
    pub group_id: String,
    /// Topics to consume. Required, at least one; no default. From the environment as a
    /// comma-separated list (a single all-digit topic name must be given in the file: `config`
    /// parses such a value as a number before it considers splitting it).
    pub input_topics: Vec<String>,
    /// Topic for enriched records. Default `"sentmon.enriched"`.
    pub output_topic: String,
    /// Topic for messages that cannot be decoded. Default `"sentmon.dead-letter"`.
    pub dead_letter_topic: String,
    /// Topic for alert events. Default `"sentmon.alerts"`.
    pub alerts_topic: String,
    /// Topic that events arriving after their window closed are copied to. Default: none, late
    /// events are only counted.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub late_topic: Option<String>,
    /// How often stored offsets are committed, in milliseconds. Default 5000 (librdkafka's own
    /// `auto.commit.interval.ms` default): replays after a crash stay within seconds of work.
    pub commit_interval_ms: u64,
    /// Whether `sentmon run` (and `check-config --connect`) refuse to start when a configured topic
    /// does not exist on the brokers. Default true: with broker-side auto-creation off (the usual
    /// production setting) a missing input topic is never read and a missing output topic fails
    /// every record sent to it, so failing at start, naming the topic, beats failing later. Set
    /// false only when the brokers create topics on first use and you rely on that.
    pub require_existing_topics: bool,
    /// librdkafka consumer properties passed through verbatim (keys contain dots, e.g.
    /// `"security.protocol"`). Default empty.
    pub consumer_options: KafkaOptions,
    /// librdkafka producer properties passed through verbatim. Default empty.
    pub producer_options: KafkaOptions,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            brokers: String::new(),
            group_id: "sentmon".to_owned(),
            input_topics: Vec::new(),
            output_topic: "sentmon.enriched".to_owned(),
            dead_letter_topic: "sentmon.dead-letter".to_owned(),
            alerts_topic: "sentmon.alerts".to_owned(),
            late_topic: None,
            commit_interval_ms: 5000,
            require_existing_topics: true,
            consumer_options: KafkaOptions::default(),
            producer_options: KafkaOptions::default(),
        }
    }
}

impl KafkaConfig {
    /// `commit_interval_ms` as a duration.
    pub fn commit_interval(&self) -> Duration {
        Duration::from_millis(self.commit_interval_ms)
    }

    /// Every topic sentmon reads or writes, each with the key that names it.
    pub fn topics(&self) -> Vec<(String, &str)> {
        let mut topics: Vec<(String, &str)> = self
            .input_topics
            .iter()
            .enumerate()
            .map(|(index, topic)| (format!("kafka.input_topics[{index}]"), topic.as_str()))
            .collect();
        topics.push(("kafka.output_topic".to_owned(), &self.output_topic));
        topics.push(("kafka.dead_letter_topic".to_owned(), &self.dead_letter_topic));
        topics.push(("kafka.alerts_topic".to_owned(), &self.alerts_topic));
        if let Some(late_topic) = &self.late_topic {
            topics.push(("kafka.late_topic".to_owned(), late_topic));
        }
        topics
    }

    /// Checks that every configured topic is among `existing` (the topics the brokers' metadata
    /// lists), unless `require_existing_topics` is off; names each missing one and the fix.
    pub fn check_topics_exist(
        &self,
        existing: &std::collections::BTreeSet<String>,
        also: &[(&str, &str)],
    ) -> Result<(), ConfigError> {
        if !self.require_existing_topics {
            return Ok(());
        }
        let issues: Vec<ConfigIssue> = self
            .topics()
            .into_iter()
            .chain(also.iter().map(|&(key, topic)| (key.to_owned(), topic)))
            .filter(|(_, topic)| !existing.contains(*topic))
            .map(|(key, topic)| {
                let requirement = format!(
                    "no such topic on {}: create it (e.g. kafka-topics.sh --create --topic {topic}), or set \
                     kafka.require_existing_topics = false if the brokers create topics on first use",
                    self.brokers
                );
                ConfigIssue::new(&key, topic, requirement)
            })
            .collect();
        if issues.is_empty() { Ok(()) } else { Err(ConfigError::Invalid(issues)) }
    }
}

/// librdkafka properties passed through verbatim. A newtype so that `Debug` (and so any log line
/// that prints the config) never shows a credential.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct KafkaOptions(pub BTreeMap<String, String>);

impl KafkaOptions {
    /// Whether a key names a credential (see `SECRET_OPTION_KEY_FRAGMENTS`).
    pub fn is_secret_key(key: &str) -> bool {
        let lower_key = key.to_ascii_lowercase();
        SECRET_OPTION_KEY_FRAGMENTS.iter().any(|fragment| lower_key.contains(fragment))
    }

    /// The same options with every secret value replaced by [`REDACTED`].
    pub fn redacted(&self) -> KafkaOptions {
        let redacted_map = self
            .0
            .iter()
            .map(|(key, value)| {
                let shown_value = if Self::is_secret_key(key) { REDACTED.to_owned() } else { value.clone() };
                (key.clone(), shown_value)
            })
            .collect();
        KafkaOptions(redacted_map)
    }

    /// Key/value pairs in key order, for handing to an rdkafka `ClientConfig`.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(key, value)| (key.as_str(), value.as_str()))
    }
}

impl fmt::Debug for KafkaOptions {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.debug_map().entries(self.redacted().0).finish()
    }
}

impl KafkaConfig {
    /// Adds every problem of this section to `issues`.
    pub(crate) fn check(&self, issues: &mut Vec<ConfigIssue>) {
        let kafka = self;
        if kafka.brokers.trim().is_empty() {
            issues.push(ConfigIssue::new("kafka.brokers", &kafka.brokers, "required: set host:port[,host:port...]"));
        }
        if kafka.group_id.trim().is_empty() {
            issues.push(ConfigIssue::new("kafka.group_id", &kafka.group_id, "must not be empty"));
        }
        if kafka.input_topics.is_empty() {
            issues.push(ConfigIssue::new("kafka.input_topics", &kafka.input_topics, "empty: list at least one topic"));
        }
        for (index, topic) in kafka.input_topics.iter().enumerate() {
            check_topic_name(&format!("kafka.input_topics[{index}]"), topic, issues);
            if kafka.input_topics[..index].contains(topic) {
                issues.push(ConfigIssue::new("kafka.input_topics", topic, "listed twice: remove the duplicate"));
            }
        }
        let mut output_topics = vec![
            ("kafka.output_topic", &kafka.output_topic),
            ("kafka.dead_letter_topic", &kafka.dead_letter_topic),
            ("kafka.alerts_topic", &kafka.alerts_topic),
        ];
        if let Some(late_topic) = &kafka.late_topic {
            output_topics.push(("kafka.late_topic", late_topic));
        }
        for (index, &(key, topic)) in output_topics.iter().enumerate() {
            check_topic_name(key, topic, issues);
            if kafka.input_topics.contains(topic) {
                issues.push(ConfigIssue::new(
                    key,
                    topic,
                    "is also in kafka.input_topics: sentmon would consume its own output; use another topic",
                ));
            }
            if let Some((earlier_key, _)) = output_topics[..index].iter().find(|(_, earlier)| *earlier == topic) {
                issues.push(ConfigIssue::new(
                    key,
                    topic,
                    format!("same as {earlier_key}: each output needs its own topic"),
                ));
            }
        }
        if kafka.commit_interval_ms == 0 {
            issues.push(ConfigIssue::new("kafka.commit_interval_ms", kafka.commit_interval_ms, "must be at least 1"));
        }
        check_options("kafka.consumer_options", &kafka.consumer_options, &MANAGED_CONSUMER_OPTIONS, issues);
        check_options("kafka.producer_options", &kafka.producer_options, &MANAGED_PRODUCER_OPTIONS, issues);
    }
}

fn check_topic_name(key: &str, topic: &str, issues: &mut Vec<ConfigIssue>) {
    let legal_chars = topic.chars().all(|character| character.is_ascii_alphanumeric() || "._-".contains(character));
    if topic.is_empty() || topic.len() > KAFKA_MAX_TOPIC_NAME_CHARS || !legal_chars || topic == "." || topic == ".." {
        let requirement = format!(
            "not a Kafka topic name: use 1 to {KAFKA_MAX_TOPIC_NAME_CHARS} of a-z A-Z 0-9 . _ - (and not . or ..)"
        );
        issues.push(ConfigIssue::new(key, topic, requirement));
    }
}

fn check_options(map_key: &str, options: &KafkaOptions, managed: &[(&str, &str)], issues: &mut Vec<ConfigIssue>) {
    for (option_key, option_value) in options.iter() {
        let key_path = format!("{map_key}.\"{option_key}\"");
        if option_key.trim().is_empty() {
            issues.push(ConfigIssue::new(map_key, option_key, "contains an empty option name"));
            continue;
        }
        let lower_key = option_key.to_ascii_lowercase();
        if let Some((_, fix)) = managed.iter().find(|(managed_key, _)| *managed_key == lower_key) {
            // No managed option is a credential, so showing the value leaks nothing.
            issues.push(ConfigIssue::new(&key_path, option_value, format!("managed by sentmon: {fix}")));
        }
    }
}
