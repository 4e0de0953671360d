//! Daemon configuration: a TOML file layered with `SENTMON__SECTION__KEY` environment overrides, validated as a whole.
//!
//! Loading happens in two steps, as in ripgrep and linkerd: first the sources are merged and
//! deserialised (structural errors such as an unknown key or a wrong type stop here, one at a
//! time, because serde stops at the first), then [`Config::validate`] checks the values and
//! reports every problem at once so an operator fixes them in one round.
//!
//! Environment overrides use `__` between the prefix, section and key, e.g.
//! `SENTMON__BATCH__MAX_SIZE=128`. Numbers and booleans are parsed; `kafka.input_topics` and
//! `windows.view_widths_secs` take comma-separated lists. The librdkafka pass-through maps take
//! `SENTMON__KAFKA__CONSUMER_OPTIONS__SASL_PASSWORD=...`, where `_` in the part after the map name
//! stands for `.` (see `pass_through_env_key`).

use std::collections::BTreeMap;
use std::fmt;
use std::net::{AddrParseError, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Process exit status for any configuration error: `EX_USAGE` from sysexits.h, as linkerd2-proxy uses.
pub const EXIT_CODE_BAD_CONFIG: u8 = 64;

/// Prefix of every environment override (`SENTMON__KAFKA__BROKERS`).
pub const ENV_PREFIX: &str = "SENTMON";

/// Separates prefix, section and key in environment overrides. Double, because keys such as
/// `max_size` contain single underscores.
pub const ENV_SEPARATOR: &str = "__";

/// Separates items of a list given in one environment variable (`SENTMON__KAFKA__INPUT_TOPICS=a,b`).
const ENV_LIST_SEPARATOR: &str = ",";

/// Keys whose environment value is split on [`ENV_LIST_SEPARATOR`]: every `Vec` field of [`Config`].
/// `config` compares them after lower-casing and turning `__` into `.`.
const ENV_LIST_KEYS: [&str; 5] = [
    "kafka.input_topics",
    "windows.view_widths_secs",
    "retrain.data",
    "retrain.evaluation_data",
    "retrain.train_options",
];

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

/// One batch is one forward pass: beyond a few thousand messages a pass takes seconds on a CPU and
/// the padded tensor (batch x longest message x hidden size) reaches hundreds of MiB, so a larger
/// value is a typo rather than tuning. Also keeps `Vec` capacities in the batcher sane.
const MAX_BATCH_SIZE: usize = 4096;

/// A message waits at most `batch.max_wait_ms` for its batch. A minute already delays offset
/// commits and alerts far more than fuller batches speed inference, so longer is a mistake.
const MAX_BATCH_WAIT_MS: u64 = 60_000;

/// A view keeps one counter set per bucket per topic; a week of one-minute buckets (10 080) bounds
/// that memory for the twenty shipped topics at a few MiB.
const MAX_BUCKETS_PER_VIEW: u64 = 10_080;

/// The whole daemon configuration. `Config::default()` holds every default but fails validation
/// until `kafka.brokers` and `kafka.input_topics` are set: those have no sensible default, and
/// leaving them to [`Config::validate`] lets their absence be reported together with other problems.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Brokers, topics and librdkafka pass-through options.
    pub kafka: KafkaConfig,
    /// How input messages are decoded.
    pub input: InputConfig,
    /// Micro-batching in front of the model.
    pub batch: BatchConfig,
    /// The classifier model and its inference threads.
    pub model: ModelConfig,
    /// Retraining into the model registry, by `sentmon retrain` or on a schedule.
    pub retrain: RetrainConfig,
    /// Event-time windows that the negative rates are computed over.
    pub windows: WindowsConfig,
    /// Negative-spike detection.
    pub detector: DetectorConfig,
    /// The metrics and health endpoint.
    pub http: HttpConfig,
    /// Graceful shutdown.
    pub shutdown: ShutdownConfig,
    /// Logging.
    pub log: LogConfig,
    /// The stream archive that analysts label (docs/LABELLING.md).
    pub archive: ArchiveConfig,
    /// Entities (watched names and cashtags) with windows and alerts of their own.
    pub entities: EntitiesConfig,
    /// The file this config was loaded from, if any: `sentmon run` hands it to the scheduled
    /// `sentmon retrain` child so both read the same settings. Not a setting itself.
    #[serde(skip)]
    pub source_file: Option<PathBuf>,
}

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
    pub fn check_topics_exist(&self, existing: &std::collections::BTreeSet<String>) -> Result<(), ConfigError> {
        if !self.require_existing_topics {
            return Ok(());
        }
        let issues: Vec<ConfigIssue> = self
            .topics()
            .into_iter()
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

/// `[model]`: the classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// Model bundle directory, or a registry directory whose promoted version is served and
    /// watched. Relative paths are resolved from the working directory. Default `"models/default"`.
    pub path: PathBuf,
    /// Inference threads; each owns a model copy and runs libtorch with one compute thread, so
    /// set it to the cores you give the model. Count, at least 1. Default 1.
    pub workers: usize,
    /// How often the daemon re-reads the registry's pointer (or the bundle's model.json) to pick up
    /// a newly promoted model, in seconds, at most 86400; 0 turns polling off (SIGHUP still reloads).
    /// Default 10.
    pub watch_interval_secs: u64,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self { path: PathBuf::from("models/default"), workers: 1, watch_interval_secs: 10 }
    }
}

impl ModelConfig {
    /// None when polling is off.
    pub fn watch_interval(&self) -> Option<Duration> {
        (self.watch_interval_secs > 0).then(|| Duration::from_secs(self.watch_interval_secs))
    }
}

/// `[retrain]`: train -> evaluate -> gate -> promote into the registry that `[model] path` names.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetrainConfig {
    /// Labelled archives to train on: files or directories (JSONL, CSV, TSV, `.gz`), as for
    /// `sentmon train --data`. Required by `sentmon retrain`. Default [].
    pub data: Vec<PathBuf>,
    /// The fixed, labelled evaluation set the gate scores the candidate and the promoted model on.
    /// Keep it out of `data` and change it rarely: the gate compares figures on it. Required by
    /// `sentmon retrain`. Default [].
    pub evaluation_data: Vec<PathBuf>,
    /// Largest allowed drop of either head's macro-F1 (candidate against promoted model, on
    /// `evaluation_data`), as a fraction in [0, 1]: 0.01 is one point. Default 0.01.
    pub max_macro_f1_drop: f64,
    /// Extra `sentmon train` options, e.g. ["--epochs", "20", "--pretrain-epochs", "2"] (not
    /// --data, --out or --threads, which retrain sets). Default [] (train's defaults).
    pub train_options: Vec<String>,
    /// An encoder from `sentmon pretrain` (a directory) that each candidate starts from, as
    /// `sentmon train --init-from`: its vocabulary and its embedding and LSTM weights. Relative
    /// paths are resolved from the working directory. Default: none, training starts from scratch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub init_from: Option<PathBuf>,
    /// libtorch compute threads for training. Count, at least 1. Default 1, so that a retrain
    /// beside the daemon takes one core at most.
    pub threads: usize,
    /// Seconds between retrains run by the daemon itself, as a child process at the lowest CPU
    /// priority; 0 means never (run `sentmon retrain` from cron, a systemd timer or a Kubernetes
    /// CronJob instead), otherwise at least 60. Default 0.
    pub interval_secs: u64,
}

impl Default for RetrainConfig {
    fn default() -> Self {
        Self {
            data: Vec::new(),
            evaluation_data: Vec::new(),
            max_macro_f1_drop: 0.01,
            train_options: Vec::new(),
            init_from: None,
            threads: 1,
            interval_secs: 0,
        }
    }
}

/// Training options `retrain` sets itself, so `retrain.train_options` may not.
const MANAGED_TRAIN_OPTIONS: [&str; 4] = ["--data", "--out", "--threads", "--init-from"];
/// A daemon-scheduled retrain more often than this is a typo: training takes minutes.
const MIN_RETRAIN_INTERVAL_SECS: u64 = 60;
const MAX_WATCH_INTERVAL_SECS: u64 = 86_400;

/// `[windows]`: event-time tumbling buckets rolled into sliding views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowsConfig {
    /// Width of one tumbling bucket, in seconds, at least 1. Default 60: fine enough for a 5-minute
    /// view to slide smoothly, coarse enough to keep few buckets.
    pub bucket_width_secs: u64,
    /// Widths of the sliding views, in seconds; each a multiple of `bucket_width_secs` and at most
    /// 10 080 buckets. Default `[300, 3600]` (5 minutes for alerting, 1 hour for the dashboard).
    pub view_widths_secs: Vec<u64>,
    /// How long after a bucket's end events for it are still counted, in seconds (event time).
    /// Later ones are counted as late. Default 120: covers typical producer and ingest delays.
    pub allowed_lateness_secs: u64,
    /// When no event arrives, buckets are closed this long after their end plus the allowed
    /// lateness by the wall clock, in seconds, so quiet topics still resolve alerts. Default 30.
    pub idle_close_delay_secs: u64,
    /// Most negative messages kept per bucket and topic as alert examples. Count. Default 5.
    pub examples_per_bucket: usize,
}

/// The defaults are the window store's own ([`crate::window::WindowConfig`]), in seconds: one source, so the
/// daemon and the pure module cannot drift apart (they once did, on the allowed lateness).
impl Default for WindowsConfig {
    fn default() -> Self {
        let window = crate::window::WindowConfig::default();
        Self {
            bucket_width_secs: ms_to_secs(window.bucket_width_ms),
            view_widths_secs: window.view_widths_ms.iter().map(|&width_ms| ms_to_secs(width_ms)).collect(),
            allowed_lateness_secs: ms_to_secs(window.allowed_lateness_ms),
            idle_close_delay_secs: ms_to_secs(window.idle_close_delay_ms),
            examples_per_bucket: window.examples_per_bucket,
        }
    }
}

impl WindowsConfig {
    /// `bucket_width_secs` as a duration.
    /// The settings the window store takes (event time in milliseconds).
    pub fn to_window_config(&self) -> crate::window::WindowConfig {
        crate::window::WindowConfig {
            bucket_width_ms: self.bucket_width_ms(),
            view_widths_ms: self.view_widths_ms(),
            allowed_lateness_ms: self.allowed_lateness_ms(),
            idle_close_delay_ms: self.idle_close_delay().as_millis() as i64,
            examples_per_bucket: self.examples_per_bucket,
        }
    }

    pub fn bucket_width(&self) -> Duration {
        Duration::from_secs(self.bucket_width_secs)
    }

    /// `bucket_width_secs` in milliseconds, for event-time arithmetic on epoch milliseconds.
    pub fn bucket_width_ms(&self) -> i64 {
        secs_to_ms(self.bucket_width_secs)
    }

    /// `view_widths_secs` as durations.
    pub fn view_widths(&self) -> Vec<Duration> {
        self.view_widths_secs.iter().map(|&width_secs| Duration::from_secs(width_secs)).collect()
    }

    /// `view_widths_secs` in milliseconds.
    pub fn view_widths_ms(&self) -> Vec<i64> {
        self.view_widths_secs.iter().map(|&width_secs| secs_to_ms(width_secs)).collect()
    }

    /// `allowed_lateness_secs` as a duration.
    pub fn allowed_lateness(&self) -> Duration {
        Duration::from_secs(self.allowed_lateness_secs)
    }

    /// `allowed_lateness_secs` in milliseconds.
    pub fn allowed_lateness_ms(&self) -> i64 {
        secs_to_ms(self.allowed_lateness_secs)
    }

    /// `idle_close_delay_secs` as a duration (wall clock).
    pub fn idle_close_delay(&self) -> Duration {
        Duration::from_secs(self.idle_close_delay_secs)
    }
}

/// `[detector]`: when a topic's negative rate counts as a spike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// The view whose negative rate is tested, in seconds; one of `windows.view_widths_secs`.
    /// Default 300.
    pub view_width_secs: u64,
    /// Fire when the view's negative rate is this many baseline standard deviations above the
    /// baseline mean. Unitless z-score, above 0. Default 3.0 (the usual three-sigma rule).
    pub z_threshold: f64,
    /// Resolve when the z-score falls below this (hysteresis), below `z_threshold`. Default 1.5.
    pub resolve_z_threshold: f64,
    /// Fire only when the view holds at least this many messages. Count, at least 1. Default 30:
    /// below that one or two negative messages swing the rate by several percent.
    pub min_volume: u64,
    /// Fire only when the Wilson lower bound of the negative rate exceeds this. Fraction in
    /// [0, 1). Default 0.2: a rise from 2 % to 6 % is statistically real but not news.
    pub wilson_floor: f64,
    /// Normal quantile for the Wilson bound, above 0. Default 1.96 (a 95 % two-sided interval).
    pub wilson_z: f64,
    /// EWMA weight of each new bucket in the baseline mean and variance. In (0, 1]. Default 0.1
    /// (roughly the last ten buckets dominate).
    pub baseline_alpha: f64,
    /// Buckets the baseline must have seen before alerts may fire. Count, at least 1. Default 10,
    /// matching `baseline_alpha` = 0.1.
    pub warmup_buckets: u64,
    /// Consecutive buckets below `resolve_z_threshold` before an alert resolves. Count, at least 1.
    /// Default 2.
    pub resolve_after_buckets: u64,
    /// After an alert resolves, the same topic cannot fire again for this long, in seconds (event
    /// time). Default 600: stops a flapping topic paging every few minutes.
    pub cooldown_secs: u64,
    /// Negative example messages attached to an alert event. Count. Default 5.
    pub examples: usize,
    /// `[detector.volume]`: the test on the negative *count*, which catches a story breaking at a steady
    /// negative share. Its fields, defaults and checks are documented on [`crate::alert::VolumeConfig`].
    pub volume: crate::alert::VolumeConfig,
}

/// The defaults are the detector's own ([`crate::alert::DetectorConfig`]), in seconds, as for [`WindowsConfig`].
impl Default for DetectorConfig {
    fn default() -> Self {
        let detector = crate::alert::DetectorConfig::default();
        Self {
            view_width_secs: ms_to_secs(detector.view_width_ms),
            z_threshold: detector.z_threshold,
            resolve_z_threshold: detector.resolve_z_threshold,
            min_volume: detector.min_volume,
            wilson_floor: detector.wilson_floor,
            wilson_z: detector.wilson_z,
            baseline_alpha: detector.baseline_alpha,
            warmup_buckets: detector.warmup_buckets,
            resolve_after_buckets: u64::from(detector.resolve_after_buckets),
            cooldown_secs: ms_to_secs(detector.cooldown_ms),
            examples: detector.examples,
            volume: detector.volume,
        }
    }
}

impl DetectorConfig {
    /// `view_width_secs` as a duration.
    /// The settings the spike detector takes (event time in milliseconds).
    pub fn to_detector_config(&self) -> crate::alert::DetectorConfig {
        crate::alert::DetectorConfig {
            view_width_ms: self.view_width_ms(),
            z_threshold: self.z_threshold,
            resolve_z_threshold: self.resolve_z_threshold,
            min_volume: self.min_volume,
            wilson_floor: self.wilson_floor,
            wilson_z: self.wilson_z,
            baseline_alpha: self.baseline_alpha,
            warmup_buckets: self.warmup_buckets,
            resolve_after_buckets: u32::try_from(self.resolve_after_buckets).unwrap_or(u32::MAX),
            cooldown_ms: self.cooldown_ms(),
            examples: self.examples,
            volume: self.volume.clone(),
        }
    }

    pub fn view_width(&self) -> Duration {
        Duration::from_secs(self.view_width_secs)
    }

    /// `view_width_secs` in milliseconds.
    pub fn view_width_ms(&self) -> i64 {
        secs_to_ms(self.view_width_secs)
    }

    /// `cooldown_secs` as a duration.
    pub fn cooldown(&self) -> Duration {
        Duration::from_secs(self.cooldown_secs)
    }

    /// `cooldown_secs` in milliseconds.
    pub fn cooldown_ms(&self) -> i64 {
        secs_to_ms(self.cooldown_secs)
    }
}

/// `[http]`: `/metrics`, `/healthz`, `/readyz`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Listen address, an IP literal and port (no host names: nothing is resolved at bind).
    /// Default `"127.0.0.1:9898"`: loopback, because metrics reveal topic names and volumes;
    /// expose deliberately with `0.0.0.0:9898` when Prometheus scrapes from elsewhere.
    pub listen: String,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self { listen: "127.0.0.1:9898".to_owned() }
    }
}

impl HttpConfig {
    /// `listen` parsed; cannot fail on a validated config.
    pub fn listen_addr(&self) -> Result<SocketAddr, AddrParseError> {
        self.listen.parse()
    }
}

/// `[shutdown]`: the bounded drain on SIGINT/SIGTERM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Longest the drain may take before sentmon exits anyway (uncommitted work is then replayed
    /// by the next consumer), in seconds: one deadline for the stages' flush, the last alert sends
    /// and the producer flush; the final commit follows. Default 30: Kubernetes' default
    /// `terminationGracePeriodSeconds`, so set it below that when the pod's period is changed.
    pub grace_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { grace_secs: 30 }
    }
}

impl ShutdownConfig {
    /// `grace_secs` as a duration.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }
}

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

/// `[archive]`: every classified message written to rotating, date-partitioned `.jsonl.gz` files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveConfig {
    /// Directory of the archive: `DIR/YYYY-MM-DD/sentmon-<start>-<seq>.jsonl.gz`, dated by the UTC
    /// day the messages were processed. Relative paths are resolved from the working directory.
    /// Each replica needs its own directory. Default: none, archiving is off.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub directory: Option<PathBuf>,
    /// A file is completed once this many bytes of JSON lines (uncompressed) went into it, in
    /// bytes, at least 1. Default 67 108 864 (64 MiB, about 10 MiB compressed): a file a labelling
    /// tool opens at once.
    pub rotate_max_bytes: u64,
    /// A file is completed this long after it was opened, in seconds, at least 1, even when the
    /// stream is quiet; files are also completed at UTC midnight. Default 3600: an hour's
    /// messages become visible within the hour.
    pub rotate_max_age_secs: u64,
    /// Date partitions older than this many days (today included) are deleted, at start and at
    /// each new day, in days; 0 keeps everything. Default 30.
    pub retention_days: u32,
}

impl Default for ArchiveConfig {
    fn default() -> Self {
        Self { directory: None, rotate_max_bytes: 64 * 1024 * 1024, rotate_max_age_secs: 3600, retention_days: 30 }
    }
}

/// `[entities]`: windows, spike detection and metrics per entity as well as per topic, so one story scattered over
/// many topics still surges on its name. Off unless a watchlist is given or `cashtags` is on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EntitiesConfig {
    /// Watchlist file of names, aliases and tickers (`[[entity]]` tables, see `examples/watchlist.toml`); read at
    /// start. Each watched entity gets its own Prometheus series. Default: none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub watchlist: Option<PathBuf>,
    /// Track every cashtag (`$AAPL`) as an entity too, watched or not. Default false.
    pub cashtags: bool,
    /// Cashtags outside the watchlist that get Prometheus series of their own: the most mentioned in the detection
    /// view at each bucket close; the others share the series of entity `__other__`. Count, at most
    /// [`MAX_TOP_CASHTAGS`]. Default 10.
    pub top_cashtags: usize,
}

/// Bound on `entities.top_cashtags`: the entity series a replica exports are the watchlist, this many cashtags and
/// `__other__`, whatever the stream mentions.
pub const MAX_TOP_CASHTAGS: usize = 100;

impl Default for EntitiesConfig {
    fn default() -> Self {
        Self { watchlist: None, cashtags: false, top_cashtags: 10 }
    }
}

impl EntitiesConfig {
    /// Whether any entity is tracked.
    pub fn enabled(&self) -> bool {
        self.watchlist.is_some() || self.cashtags
    }

    /// The matcher of the configured watchlist (an empty one when only cashtags are tracked); `None` when entity
    /// tracking is off. Reads the watchlist file.
    pub fn matcher(&self) -> anyhow::Result<Option<crate::entity::EntityMatcher>> {
        if !self.enabled() {
            return Ok(None);
        }
        let watchlist = match &self.watchlist {
            Some(path) => crate::entity::Watchlist::load(path)?,
            None => crate::entity::Watchlist::default(),
        };
        crate::entity::EntityMatcher::new(&watchlist, self.cashtags).map(Some)
    }
}

/// One problem found by [`Config::validate`]: `key = value: requirement`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigIssue {
    /// Dotted key path, e.g. `batch.max_size`.
    pub key: String,
    /// The offending value as written in TOML, e.g. `0` or `"nope"`.
    pub value: String,
    /// What is wrong and how to fix it.
    pub requirement: String,
}

impl ConfigIssue {
    fn new(key: &str, value: impl fmt::Debug, requirement: impl Into<String>) -> Self {
        Self { key: key.to_owned(), value: format!("{value:?}"), requirement: requirement.into() }
    }
}

impl fmt::Display for ConfigIssue {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(formatter, "{} = {}: {}", self.key, self.value, self.requirement)
    }
}

/// Why a configuration could not be loaded. Every variant means exit [`EXIT_CODE_BAD_CONFIG`].
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("failed to read config file {}", path.display())]
    Read {
        /// The file named on the command line.
        path: PathBuf,
        /// Why reading failed.
        source: std::io::Error,
    },
    /// The sources could not be merged or deserialised: bad TOML, an unknown key, a wrong type.
    #[error("failed to parse configuration from {origin}: {source}")]
    Parse {
        /// Which sources were merged, for the operator to know where to look.
        origin: String,
        /// The first error `config` or serde met.
        source: config::ConfigError,
    },
    /// The values are well-formed but violate the rules of [`Config::validate`].
    #[error("{} configuration problem(s):{}", .0.len(), list_issues(.0))]
    Invalid(Vec<ConfigIssue>),
}

fn list_issues(issues: &[ConfigIssue]) -> String {
    issues.iter().map(|issue| format!("\n  {issue}")).collect()
}

impl Config {
    /// Loads the file at `path` (or only defaults when `None`), applies `SENTMON__*` variables from
    /// the process environment and validates the result.
    pub fn load(path: Option<&Path>) -> Result<Config, ConfigError> {
        // Variables that are not Unicode cannot be ours (keys) or are unusable (values); skipping
        // them, as `config` itself does, beats `std::env::vars()` panicking on them.
        let env_vars =
            std::env::vars_os().filter_map(|(key, value)| Some((key.into_string().ok()?, value.into_string().ok()?)));
        let Some(file_path) = path else {
            return Self::from_sources("", "defaults and SENTMON__* environment variables", env_vars);
        };
        let toml_text = std::fs::read_to_string(file_path)
            .map_err(|source| ConfigError::Read { path: file_path.to_owned(), source })?;
        let origin = format!("{} and SENTMON__* environment variables", file_path.display());
        let mut loaded = Self::from_sources(&toml_text, &origin, env_vars)?;
        loaded.source_file = Some(file_path.to_owned());
        Ok(loaded)
    }

    /// Like [`Config::load`] but from TOML text and explicit environment variables, so tests never
    /// touch the process environment. Variables without the `SENTMON__` prefix are ignored.
    pub fn from_toml_str(
        toml_text: &str,
        env_vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        Self::from_sources(toml_text, "TOML text and given environment variables", env_vars)
    }

    fn from_sources(
        toml_text: &str,
        origin: &str,
        env_vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Config, ConfigError> {
        let parse_error = |source| ConfigError::Parse { origin: origin.to_owned(), source };
        let mut general_env = config::Map::new();
        let mut consumer_env_options = BTreeMap::new();
        let mut producer_env_options = BTreeMap::new();
        for (env_key, env_value) in env_vars {
            match pass_through_env_key(&env_key) {
                Some((PassThroughMap::Consumer, option_key)) => consumer_env_options.insert(option_key, env_value),
                Some((PassThroughMap::Producer, option_key)) => producer_env_options.insert(option_key, env_value),
                None => general_env.insert(env_key, env_value),
            };
        }
        let mut environment = config::Environment::with_prefix(ENV_PREFIX)
            .prefix_separator(ENV_SEPARATOR)
            .separator(ENV_SEPARATOR)
            .list_separator(ENV_LIST_SEPARATOR)
            .try_parsing(true)
            .source(Some(general_env));
        for list_key in ENV_LIST_KEYS {
            environment = environment.with_list_parse_key(list_key);
        }
        // Quoted dotted keys in the pass-through tables ("security.protocol") survive: `config`
        // parses dots only in the keys a source reports at top level, and merges nested tables
        // key by key without re-parsing (config 0.15 `path::Expression::set`). Tested below.
        let merged = config::Config::builder()
            .add_source(config::File::from_str(toml_text, config::FileFormat::Toml))
            .add_source(environment)
            .build()
            .map_err(parse_error)?;
        let mut loaded: Config = merged.try_deserialize().map_err(parse_error)?;
        // Kafka topic names cannot hold spaces, so trimming only forgives `a, b` in a list variable.
        for topic in &mut loaded.kafka.input_topics {
            *topic = topic.trim().to_owned();
        }
        loaded.kafka.consumer_options.0.extend(consumer_env_options);
        loaded.kafka.producer_options.0.extend(producer_env_options);
        loaded.validate().map_err(ConfigError::Invalid)?;
        Ok(loaded)
    }

    /// Checks every value and cross-field rule, returning all problems at once.
    pub fn validate(&self) -> Result<(), Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        self.validate_kafka(&mut issues);
        self.validate_batch_model_input(&mut issues);
        let issues_before_windows = issues.len();
        self.validate_windows(&mut issues);
        self.validate_detector(&mut issues);
        if issues.len() == issues_before_windows {
            self.validate_window_store_and_detector(&mut issues);
        }
        self.validate_retrain(&mut issues);
        if self.http.listen_addr().is_err() {
            issues.push(ConfigIssue::new(
                "http.listen",
                &self.http.listen,
                "not a socket address like 127.0.0.1:9898 (an IP literal and a port)",
            ));
        }
        if self.log.level.trim().is_empty() {
            issues.push(ConfigIssue::new("log.level", &self.log.level, "must not be empty: use e.g. \"info\""));
        }
        self.validate_archive(&mut issues);
        self.validate_entities(&mut issues);
        if issues.is_empty() { Ok(()) } else { Err(issues) }
    }

    fn validate_kafka(&self, issues: &mut Vec<ConfigIssue>) {
        let kafka = &self.kafka;
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

    fn validate_batch_model_input(&self, issues: &mut Vec<ConfigIssue>) {
        if !(1..=MAX_BATCH_SIZE).contains(&self.batch.max_size) {
            let requirement = format!("must be between 1 and {MAX_BATCH_SIZE}");
            issues.push(ConfigIssue::new("batch.max_size", self.batch.max_size, requirement));
        }
        if self.batch.max_wait_ms > MAX_BATCH_WAIT_MS {
            let requirement = format!("must be at most {MAX_BATCH_WAIT_MS} (one minute)");
            issues.push(ConfigIssue::new("batch.max_wait_ms", self.batch.max_wait_ms, requirement));
        }
        if self.model.path.as_os_str().is_empty() {
            issues.push(ConfigIssue::new("model.path", &self.model.path, "must not be empty"));
        }
        if self.model.workers == 0 {
            issues.push(ConfigIssue::new("model.workers", self.model.workers, "must be at least 1"));
        }
        if self.model.watch_interval_secs > MAX_WATCH_INTERVAL_SECS {
            let requirement = format!("must be at most {MAX_WATCH_INTERVAL_SECS} (a day); 0 turns polling off");
            issues.push(ConfigIssue::new("model.watch_interval_secs", self.model.watch_interval_secs, requirement));
        }
        if self.input.max_message_bytes == 0 {
            issues.push(ConfigIssue::new(
                "input.max_message_bytes",
                self.input.max_message_bytes,
                "must be at least 1",
            ));
        }
    }

    fn validate_retrain(&self, issues: &mut Vec<ConfigIssue>) {
        let retrain = &self.retrain;
        if !(0.0..=1.0).contains(&retrain.max_macro_f1_drop) {
            let requirement = "must be a fraction in [0, 1], e.g. 0.01 for one point of macro-F1";
            issues.push(ConfigIssue::new("retrain.max_macro_f1_drop", retrain.max_macro_f1_drop, requirement));
        }
        if retrain.threads == 0 {
            issues.push(ConfigIssue::new("retrain.threads", 0, "must be at least 1"));
        }
        if retrain.interval_secs != 0 {
            if retrain.interval_secs < MIN_RETRAIN_INTERVAL_SECS {
                let requirement = format!("must be 0 (never) or at least {MIN_RETRAIN_INTERVAL_SECS}");
                issues.push(ConfigIssue::new("retrain.interval_secs", retrain.interval_secs, requirement));
            }
            for (key, paths) in [("retrain.data", &retrain.data), ("retrain.evaluation_data", &retrain.evaluation_data)]
            {
                if paths.is_empty() {
                    let requirement = "empty: a scheduled retrain (retrain.interval_secs > 0) needs labelled files";
                    issues.push(ConfigIssue::new(key, paths, requirement));
                }
            }
        }
        for option in &retrain.train_options {
            if MANAGED_TRAIN_OPTIONS
                .iter()
                .any(|managed| option == managed || option.starts_with(&format!("{managed}=")))
            {
                let requirement = "set by retrain itself: use retrain.data, retrain.threads and retrain.init_from";
                issues.push(ConfigIssue::new("retrain.train_options", option, requirement));
            }
        }
        if let Err(error) =
            crate::cli::parse_train_options(&[PathBuf::from("data")], Path::new("out"), 1, None, &retrain.train_options)
        {
            let first_line =
                error.to_string().lines().next().unwrap_or_default().trim_start_matches("error: ").to_owned();
            let requirement = format!("not valid `sentmon train` options: {first_line} (see `sentmon train --help`)");
            issues.push(ConfigIssue::new("retrain.train_options", &retrain.train_options, requirement));
        }
    }

    fn validate_windows(&self, issues: &mut Vec<ConfigIssue>) {
        let windows = &self.windows;
        if windows.bucket_width_secs == 0 {
            issues.push(ConfigIssue::new("windows.bucket_width_secs", 0, "must be at least 1"));
            // Every view rule below divides by the bucket width.
            return;
        }
        let key = "windows.view_widths_secs";
        if windows.view_widths_secs.is_empty() {
            issues.push(ConfigIssue::new(key, &windows.view_widths_secs, "empty: list at least one view width"));
        }
        for (index, &view_width) in windows.view_widths_secs.iter().enumerate() {
            let bucket_width = windows.bucket_width_secs;
            if view_width == 0 || view_width % bucket_width != 0 {
                let requirement = format!(
                    "contains {view_width}, which is not a positive multiple of windows.bucket_width_secs = {bucket_width}"
                );
                issues.push(ConfigIssue::new(key, &windows.view_widths_secs, requirement));
            } else if view_width / bucket_width > MAX_BUCKETS_PER_VIEW {
                let requirement = format!(
                    "contains {view_width}, which spans more than {MAX_BUCKETS_PER_VIEW} buckets of {bucket_width} s: \
                     widen windows.bucket_width_secs or shorten the view"
                );
                issues.push(ConfigIssue::new(key, &windows.view_widths_secs, requirement));
            }
            if windows.view_widths_secs[..index].contains(&view_width) {
                let requirement = format!("contains {view_width} twice: remove the duplicate");
                issues.push(ConfigIssue::new(key, &windows.view_widths_secs, requirement));
            }
        }
    }

    fn validate_detector(&self, issues: &mut Vec<ConfigIssue>) {
        let detector = &self.detector;
        if !self.windows.view_widths_secs.contains(&detector.view_width_secs) {
            let requirement = format!("must be one of windows.view_widths_secs = {:?}", self.windows.view_widths_secs);
            issues.push(ConfigIssue::new("detector.view_width_secs", detector.view_width_secs, requirement));
        }
        let z_threshold_valid = detector.z_threshold.is_finite() && detector.z_threshold > 0.0;
        if !z_threshold_valid {
            issues.push(ConfigIssue::new("detector.z_threshold", detector.z_threshold, "must be a number above 0"));
        }
        if !detector.resolve_z_threshold.is_finite() {
            issues.push(ConfigIssue::new(
                "detector.resolve_z_threshold",
                detector.resolve_z_threshold,
                "must be a number",
            ));
        } else if z_threshold_valid && detector.resolve_z_threshold >= detector.z_threshold {
            let requirement =
                format!("must be below detector.z_threshold ({:?}) so alerts do not flap", detector.z_threshold);
            issues.push(ConfigIssue::new("detector.resolve_z_threshold", detector.resolve_z_threshold, requirement));
        }
        if detector.min_volume == 0 {
            issues.push(ConfigIssue::new("detector.min_volume", 0, "must be at least 1"));
        }
        if !(0.0..1.0).contains(&detector.wilson_floor) {
            issues.push(ConfigIssue::new("detector.wilson_floor", detector.wilson_floor, "must be in [0, 1)"));
        }
        if !(detector.wilson_z.is_finite() && detector.wilson_z > 0.0) {
            issues.push(ConfigIssue::new(
                "detector.wilson_z",
                detector.wilson_z,
                "must be a number above 0, e.g. 1.96",
            ));
        }
        if !(detector.baseline_alpha > 0.0 && detector.baseline_alpha <= 1.0) {
            issues.push(ConfigIssue::new("detector.baseline_alpha", detector.baseline_alpha, "must be in (0, 1]"));
        }
        if detector.warmup_buckets == 0 {
            issues.push(ConfigIssue::new("detector.warmup_buckets", 0, "must be at least 1"));
        }
        for problem in detector.volume.validate() {
            issues.push(ConfigIssue {
                key: format!("detector.volume.{}", problem.field),
                value: problem.value,
                requirement: problem.requirement,
            });
        }
        if detector.resolve_after_buckets == 0 {
            issues.push(ConfigIssue::new("detector.resolve_after_buckets", 0, "must be at least 1"));
        }
    }

    /// The window store and the spike detector check their own settings, in milliseconds and with
    /// limits of their own (the longest window, the most examples kept), when `run` builds them.
    /// Their checks run here too, on exactly what `run` hands them, so that every config that
    /// `check-config` accepts starts. Only reached when the seconds-level checks above passed,
    /// so a problem is not reported twice.
    fn validate_window_store_and_detector(&self, issues: &mut Vec<ConfigIssue>) {
        let window = self.windows.to_window_config();
        let window_problems = window.validate().err().unwrap_or_default();
        let detector_problems =
            self.detector.to_detector_config().validate_with_window(&window).err().unwrap_or_default();
        let problems = window_problems
            .into_iter()
            .map(|problem| ("windows", problem))
            .chain(detector_problems.into_iter().map(|problem| ("detector", problem)));
        for (section, problem) in problems {
            issues.push(ConfigIssue {
                key: section.to_owned(),
                value: "(its seconds in milliseconds)".to_owned(),
                requirement: format!("{problem}: change the [{section}] setting it names"),
            });
        }
    }

    fn validate_archive(&self, issues: &mut Vec<ConfigIssue>) {
        let archive = &self.archive;
        if archive.directory.as_ref().is_some_and(|directory| directory.as_os_str().is_empty()) {
            issues.push(ConfigIssue::new(
                "archive.directory",
                "",
                "must not be empty: give a directory, or leave the key out to turn archiving off",
            ));
        }
        if archive.rotate_max_bytes == 0 {
            issues.push(ConfigIssue::new("archive.rotate_max_bytes", 0, "must be at least 1"));
        }
        if archive.rotate_max_age_secs == 0 {
            issues.push(ConfigIssue::new("archive.rotate_max_age_secs", 0, "must be at least 1"));
        }
    }

    /// Checks the entity settings and reads the watchlist, so `check-config` fails on a watchlist `run` would refuse.
    fn validate_entities(&self, issues: &mut Vec<ConfigIssue>) {
        let entities = &self.entities;
        if entities.top_cashtags > MAX_TOP_CASHTAGS {
            let requirement = format!("must be at most {MAX_TOP_CASHTAGS}: each one is a Prometheus series per view");
            issues.push(ConfigIssue::new("entities.top_cashtags", entities.top_cashtags, requirement));
        }
        match &entities.watchlist {
            Some(path) if path.as_os_str().is_empty() => issues.push(ConfigIssue::new(
                "entities.watchlist",
                "",
                "must not be empty: give a watchlist file, or leave the key out",
            )),
            Some(path) => {
                if let Err(error) = crate::entity::Watchlist::load(path) {
                    let requirement = format!("{error:#} (see examples/watchlist.toml for the format)");
                    issues.push(ConfigIssue::new("entities.watchlist", path, requirement));
                }
            }
            None => {}
        }
    }

    /// A copy with every secret pass-through option value replaced by [`REDACTED`].
    pub fn redacted(&self) -> Config {
        let mut redacted_config = self.clone();
        redacted_config.kafka.consumer_options = self.kafka.consumer_options.redacted();
        redacted_config.kafka.producer_options = self.kafka.producer_options.redacted();
        redacted_config
    }

    /// The effective configuration as TOML with secrets redacted, for `sentmon check-config`.
    pub fn to_redacted_toml(&self) -> Result<String, toml::ser::Error> {
        toml::to_string(&self.redacted())
    }
}

/// Which librdkafka pass-through map an environment variable sets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PassThroughMap {
    Consumer,
    Producer,
}

/// Maps `SENTMON__KAFKA__CONSUMER_OPTIONS__SASL_PASSWORD` to `(Consumer, "sasl.password")`
/// (prefix matched case-insensitively). Environment variable names cannot hold dots, so `_`
/// stands for `.`: librdkafka properties settable from strings use dots only (underscored ones,
/// such as `ssl_key`, are set through dedicated APIs), and Confluent's images use the same rule.
/// These variables bypass `config`, which would keep `sasl_password` as the key.
fn pass_through_env_key(env_key: &str) -> Option<(PassThroughMap, String)> {
    let lower_key = env_key.to_ascii_lowercase();
    let separator = ENV_SEPARATOR;
    let prefix = ENV_PREFIX.to_ascii_lowercase();
    for (map_name, map) in
        [("consumer_options", PassThroughMap::Consumer), ("producer_options", PassThroughMap::Producer)]
    {
        let map_prefix = format!("{prefix}{separator}kafka{separator}{map_name}{separator}");
        if let Some(option_key) = lower_key.strip_prefix(&map_prefix) {
            return Some((map, option_key.replace('_', ".")));
        }
    }
    None
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

/// Seconds to milliseconds for event-time arithmetic; saturates instead of wrapping, though
/// validation keeps every width far below that.
fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs).ok().and_then(|secs_signed| secs_signed.checked_mul(1000)).unwrap_or(i64::MAX)
}

/// Whole seconds of a non-negative default in milliseconds (the pure modules' defaults are whole seconds).
fn ms_to_secs(ms: i64) -> u64 {
    u64::try_from(ms / 1000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE_TOML: &str = include_str!(concat!(env!("CARGO_MANIFEST_DIR"), "/config/sentmon.example.toml"));

    const MINIMAL_TOML: &str = r#"
        [kafka]
        brokers = "localhost:9092"
        input_topics = ["news"]
    "#;

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(key, value)| (key.to_string(), value.to_string())).collect()
    }

    fn minimal_config() -> Config {
        Config::from_toml_str(MINIMAL_TOML, no_env()).expect("minimal config is valid")
    }

    fn parse_error_text(toml_text: &str, env_vars: Vec<(String, String)>) -> String {
        match Config::from_toml_str(toml_text, env_vars) {
            Err(error @ ConfigError::Parse { .. }) => error.to_string(),
            other => panic!("expected a parse error, got {other:?}"),
        }
    }

    fn issues_of(config: &Config) -> Vec<ConfigIssue> {
        config.validate().expect_err("config should be invalid")
    }

    #[test]
    fn minimal_config_takes_documented_defaults() {
        let loaded = minimal_config();
        let mut expected = Config::default();
        expected.kafka.brokers = "localhost:9092".to_owned();
        expected.kafka.input_topics = vec!["news".to_owned()];
        assert_eq!(loaded, expected);
        assert_eq!(loaded.kafka.group_id, "sentmon");
        assert_eq!(loaded.kafka.output_topic, "sentmon.enriched");
        assert_eq!(loaded.kafka.dead_letter_topic, "sentmon.dead-letter");
        assert_eq!(loaded.kafka.alerts_topic, "sentmon.alerts");
        assert_eq!(loaded.kafka.late_topic, None);
        assert_eq!(loaded.kafka.commit_interval(), Duration::from_secs(5));
        assert_eq!(loaded.input.format, InputFormat::Json);
        assert_eq!(loaded.input.max_message_bytes, 1_048_576);
        assert_eq!((loaded.batch.max_size, loaded.batch.max_wait()), (64, Duration::from_millis(20)));
        assert_eq!((loaded.model.path.as_path(), loaded.model.workers), (Path::new("models/default"), 1));
        assert_eq!(loaded.windows.view_widths_secs, vec![300, 3600]);
        assert_eq!(loaded.detector.z_threshold, 3.0);
        assert_eq!(loaded.http.listen_addr().unwrap(), "127.0.0.1:9898".parse().unwrap());
        assert_eq!(loaded.shutdown.grace(), Duration::from_secs(30));
        assert_eq!((loaded.log.format, loaded.log.level.as_str()), (LogFormat::Text, "info"));
        assert_eq!(loaded.archive.directory, None, "archiving is off unless a directory is given");
        assert_eq!(
            (loaded.archive.rotate_max_bytes, loaded.archive.rotate_max_age_secs, loaded.archive.retention_days),
            (64 * 1024 * 1024, 3600, 30)
        );
    }

    #[test]
    fn default_config_reports_missing_required_fields_together() {
        let issues = issues_of(&Config::default());
        let keys: Vec<&str> = issues.iter().map(|issue| issue.key.as_str()).collect();
        assert_eq!(keys, ["kafka.brokers", "kafka.input_topics"]);
    }

    #[test]
    fn example_file_loads_and_validates() {
        let example = Config::from_toml_str(EXAMPLE_TOML, no_env()).expect("example config is valid");
        assert_eq!(example.kafka.consumer_options.0["session.timeout.ms"], "45000");
    }

    #[test]
    fn example_file_shows_the_defaults() {
        let mut example = Config::from_toml_str(EXAMPLE_TOML, no_env()).unwrap();
        // Only the required fields and the illustrative pass-through options differ from defaults.
        example.kafka.brokers.clear();
        example.kafka.input_topics.clear();
        example.kafka.consumer_options = KafkaOptions::default();
        example.kafka.producer_options = KafkaOptions::default();
        assert_eq!(example, Config::default());
    }

    /// Issue 11: the window settings existed twice with different defaults (allowed lateness 120 s in `[windows]`,
    /// documented as 30 s on the window store). The daemon's defaults are now the pure modules' own.
    #[test]
    fn the_daemon_defaults_are_the_window_store_and_detector_defaults() {
        let defaults = Config::default();
        assert_eq!(defaults.windows.to_window_config(), crate::window::WindowConfig::default());
        assert_eq!(defaults.detector.to_detector_config(), crate::alert::DetectorConfig::default());
        assert_eq!(defaults.windows.allowed_lateness_secs, 120, "the value the example file and README document");
    }

    /// Dotted key paths of every field: leaves, plus empty tables (the pass-through maps).
    fn key_paths(table: &toml::Table, parent: &str, paths: &mut Vec<String>) {
        for (key, value) in table {
            let path = if parent.is_empty() { key.clone() } else { format!("{parent}.{key}") };
            match value {
                toml::Value::Table(child) if !child.is_empty() => key_paths(child, &path, paths),
                _ => paths.push(path),
            }
        }
    }

    /// Key paths written in the example, counting commented-out `# key = value` lines and headers.
    fn example_key_paths() -> Vec<String> {
        let mut section = String::new();
        let mut paths = Vec::new();
        for line in EXAMPLE_TOML.lines() {
            let uncommented = line.trim_start_matches('#').trim();
            if let Some(header) = uncommented.strip_prefix('[').and_then(|rest| rest.strip_suffix(']')) {
                section = header.to_owned();
                paths.push(section.clone());
                continue;
            }
            let Some((key_part, _)) = uncommented.split_once('=') else { continue };
            let key = key_part.trim();
            if !key.is_empty()
                && key
                    .chars()
                    .all(|character| character.is_ascii_lowercase() || character.is_ascii_digit() || character == '_')
            {
                paths.push(format!("{section}.{key}"));
            }
        }
        paths
    }

    #[test]
    fn example_file_documents_every_field() {
        let mut every_field = Config::default();
        every_field.kafka.late_topic = Some("sentmon.late".to_owned());
        every_field.archive.directory = Some(PathBuf::from("/var/lib/sentmon/archive"));
        every_field.retrain.init_from = Some(PathBuf::from("/var/lib/sentmon/encoder"));
        every_field.entities.watchlist = Some(PathBuf::from("/etc/sentmon/watchlist.toml"));
        let serialised: toml::Table = toml::from_str(&every_field.to_redacted_toml().unwrap()).unwrap();
        let mut field_paths = Vec::new();
        key_paths(&serialised, "", &mut field_paths);
        assert!(field_paths.len() > 30, "walked too few fields: {field_paths:?}");
        let documented = example_key_paths();
        let missing: Vec<&String> = field_paths.iter().filter(|path| !documented.contains(path)).collect();
        assert!(missing.is_empty(), "config/sentmon.example.toml lacks {missing:?}");
    }

    #[test]
    fn env_overrides_nested_values_and_beats_the_file() {
        let toml_text = r#"
            [kafka]
            brokers = "file:9092"
            input_topics = ["news"]
            [batch]
            max_size = 16
        "#;
        let overrides = env(&[
            ("SENTMON__KAFKA__BROKERS", "a:9092,b:9092"),
            ("SENTMON__BATCH__MAX_SIZE", "128"),
            ("SENTMON__DETECTOR__Z_THRESHOLD", "4"),
            ("SENTMON__DETECTOR__WILSON_FLOOR", "0.25"),
            ("SENTMON__HTTP__LISTEN", "0.0.0.0:9000"),
            ("SENTMON__LOG__FORMAT", "json"),
            ("SENTMON__KAFKA__LATE_TOPIC", "sentmon.late"),
            ("SENTMON__KAFKA__GROUP_ID", "1234"),
            // Not ours: a single underscore, or no prefix.
            ("SENTMON_BATCH_MAX_SIZE", "1"),
            ("PATH", "/usr/bin"),
        ]);
        let loaded = Config::from_toml_str(toml_text, overrides).unwrap();
        assert_eq!(loaded.kafka.brokers, "a:9092,b:9092");
        assert_eq!(loaded.batch.max_size, 128);
        assert_eq!(loaded.detector.z_threshold, 4.0);
        assert_eq!(loaded.detector.wilson_floor, 0.25);
        assert_eq!(loaded.http.listen, "0.0.0.0:9000");
        assert_eq!(loaded.log.format, LogFormat::Json);
        assert_eq!(loaded.kafka.late_topic.as_deref(), Some("sentmon.late"));
        assert_eq!(loaded.kafka.group_id, "1234");
    }

    #[test]
    fn env_lists_are_comma_separated() {
        let overrides = env(&[
            ("SENTMON__KAFKA__INPUT_TOPICS", "news, comments,forum"),
            ("SENTMON__WINDOWS__VIEW_WIDTHS_SECS", "120,600"),
            ("SENTMON__DETECTOR__VIEW_WIDTH_SECS", "600"),
        ]);
        let loaded = Config::from_toml_str(MINIMAL_TOML, overrides).unwrap();
        assert_eq!(loaded.kafka.input_topics, ["news", "comments", "forum"]);
        assert_eq!(loaded.windows.view_widths_secs, [120, 600]);
        let single = Config::from_toml_str(
            "",
            env(&[("SENTMON__KAFKA__BROKERS", "b:1"), ("SENTMON__KAFKA__INPUT_TOPICS", "news")]),
        );
        assert_eq!(single.unwrap().kafka.input_topics, ["news"]);
    }

    #[test]
    fn env_value_that_does_not_parse_names_its_key() {
        let error_text = parse_error_text(MINIMAL_TOML, env(&[("SENTMON__BATCH__MAX_SIZE", "lots")]));
        assert!(error_text.contains("batch.max_size"), "{error_text}");
    }

    #[test]
    fn unknown_env_key_is_rejected_with_its_name() {
        let error_text = parse_error_text(MINIMAL_TOML, env(&[("SENTMON__BATCH__MAX_SIZ", "8")]));
        assert!(error_text.contains("max_siz") && error_text.contains("batch"), "{error_text}");
    }

    #[test]
    fn dotted_pass_through_keys_survive() {
        let toml_text = r#"
            [kafka]
            brokers = "localhost:9092"
            input_topics = ["news"]
            producer_options = { "linger.ms" = 5, "enable.idempotence" = true }
            [kafka.consumer_options]
            "security.protocol" = "SASL_SSL"
            "sasl.oauthbearer.token.endpoint.url" = "https://idp.example/token"
        "#;
        let loaded = Config::from_toml_str(toml_text, no_env()).unwrap();
        let consumer: Vec<(&str, &str)> = loaded.kafka.consumer_options.iter().collect();
        assert_eq!(
            consumer,
            [("sasl.oauthbearer.token.endpoint.url", "https://idp.example/token"), ("security.protocol", "SASL_SSL")]
        );
        // librdkafka takes every value as a string; numbers and booleans written bare are converted.
        let producer: Vec<(&str, &str)> = loaded.kafka.producer_options.iter().collect();
        assert_eq!(producer, [("enable.idempotence", "true"), ("linger.ms", "5")]);
    }

    #[test]
    fn pass_through_options_from_env_turn_underscores_into_dots() {
        let toml_text = format!("{MINIMAL_TOML}\n[kafka.consumer_options]\n\"sasl.password\" = \"from-file\"\n");
        let overrides = env(&[
            ("SENTMON__KAFKA__CONSUMER_OPTIONS__SASL_PASSWORD", "from-env"),
            ("SENTMON__KAFKA__CONSUMER_OPTIONS__SECURITY_PROTOCOL", "SASL_SSL"),
            ("sentmon__kafka__producer_options__linger_ms", "5"),
        ]);
        let loaded = Config::from_toml_str(&toml_text, overrides).unwrap();
        let consumer: Vec<(&str, &str)> = loaded.kafka.consumer_options.iter().collect();
        assert_eq!(consumer, [("sasl.password", "from-env"), ("security.protocol", "SASL_SSL")]);
        assert_eq!(loaded.kafka.producer_options.0["linger.ms"], "5");
    }

    #[test]
    fn unknown_keys_are_rejected_with_their_name() {
        let unknown_section = parse_error_text(&format!("{MINIMAL_TOML}\n[metrics]\nport = 1\n"), no_env());
        assert!(unknown_section.contains("`metrics`"), "{unknown_section}");
        let unknown_field = parse_error_text(&format!("{MINIMAL_TOML}\n[detector]\nz_treshold = 2.0\n"), no_env());
        assert!(unknown_field.contains("`z_treshold`") && unknown_field.contains("detector"), "{unknown_field}");
        let unknown_kafka_field = parse_error_text(&format!("{MINIMAL_TOML}\ngroup = \"x\"\n"), no_env());
        assert!(
            unknown_kafka_field.contains("`group`") && unknown_kafka_field.contains("kafka"),
            "{unknown_kafka_field}"
        );
    }

    #[test]
    fn unknown_enum_value_is_rejected_with_key_and_choices() {
        let error_text = parse_error_text(&format!("{MINIMAL_TOML}\n[input]\nformat = \"xml\"\n"), no_env());
        assert!(error_text.contains("xml") && error_text.contains("input.format"), "{error_text}");
        assert!(error_text.contains("json") && error_text.contains("text"), "{error_text}");
        let log_error_text = parse_error_text(MINIMAL_TOML, env(&[("SENTMON__LOG__FORMAT", "yaml")]));
        assert!(log_error_text.contains("yaml") && log_error_text.contains("log.format"), "{log_error_text}");
    }

    #[test]
    fn malformed_toml_is_a_parse_error() {
        let error_text = parse_error_text("[kafka\nbrokers = ", no_env());
        assert!(error_text.starts_with("failed to parse configuration"), "{error_text}");
    }

    /// One broken value per case; each must produce an issue for its key mentioning the fix.
    #[test]
    fn every_validation_rule_reports_key_value_and_fix() {
        type Breakage = fn(&mut Config);
        let cases: Vec<(Breakage, &str, &str)> = vec![
            (|config| config.kafka.brokers = " ".into(), "kafka.brokers", "required"),
            (|config| config.kafka.group_id = String::new(), "kafka.group_id", "must not be empty"),
            (|config| config.kafka.input_topics.clear(), "kafka.input_topics", "list at least one topic"),
            (|config| config.kafka.input_topics.push("news".into()), "kafka.input_topics", "listed twice"),
            (
                |config| config.kafka.input_topics = vec!["bad topic".into()],
                "kafka.input_topics[0]",
                "not a Kafka topic name",
            ),
            (|config| config.kafka.input_topics = vec!["..".into()], "kafka.input_topics[0]", "not a Kafka topic name"),
            (|config| config.kafka.input_topics = vec!["t".repeat(250)], "kafka.input_topics[0]", "1 to 249"),
            (|config| config.kafka.output_topic = "news".into(), "kafka.output_topic", "also in kafka.input_topics"),
            (
                |config| config.kafka.dead_letter_topic = "news".into(),
                "kafka.dead_letter_topic",
                "also in kafka.input_topics",
            ),
            (|config| config.kafka.alerts_topic = "news".into(), "kafka.alerts_topic", "also in kafka.input_topics"),
            (|config| config.kafka.late_topic = Some("news".into()), "kafka.late_topic", "also in kafka.input_topics"),
            (|config| config.kafka.late_topic = Some(String::new()), "kafka.late_topic", "not a Kafka topic name"),
            (
                |config| config.kafka.alerts_topic = "sentmon.enriched".into(),
                "kafka.alerts_topic",
                "same as kafka.output_topic",
            ),
            (|config| config.kafka.commit_interval_ms = 0, "kafka.commit_interval_ms", "at least 1"),
            (
                |config| {
                    config.kafka.consumer_options.0.insert("enable.auto.offset.store".into(), "true".into());
                },
                "kafka.consumer_options.\"enable.auto.offset.store\"",
                "managed by sentmon",
            ),
            (
                |config| {
                    config.kafka.consumer_options.0.insert("Group.Id".into(), "other".into());
                },
                "kafka.consumer_options.\"Group.Id\"",
                "set kafka.group_id instead",
            ),
            (
                |config| {
                    config.kafka.producer_options.0.insert("bootstrap.servers".into(), "x:1".into());
                },
                "kafka.producer_options.\"bootstrap.servers\"",
                "set kafka.brokers instead",
            ),
            (
                |config| {
                    config.kafka.producer_options.0.insert(String::new(), "x".into());
                },
                "kafka.producer_options",
                "empty option name",
            ),
            (|config| config.input.max_message_bytes = 0, "input.max_message_bytes", "at least 1"),
            (|config| config.batch.max_size = 0, "batch.max_size", "between 1 and 4096"),
            (|config| config.batch.max_size = 5000, "batch.max_size", "between 1 and 4096"),
            (|config| config.batch.max_wait_ms = 60_001, "batch.max_wait_ms", "at most 60000"),
            (|config| config.model.path = PathBuf::new(), "model.path", "must not be empty"),
            (|config| config.model.workers = 0, "model.workers", "at least 1"),
            (|config| config.model.watch_interval_secs = 86_401, "model.watch_interval_secs", "at most 86400"),
            (|config| config.retrain.max_macro_f1_drop = 1.5, "retrain.max_macro_f1_drop", "fraction in [0, 1]"),
            (|config| config.retrain.threads = 0, "retrain.threads", "at least 1"),
            (|config| config.retrain.interval_secs = 30, "retrain.interval_secs", "0 (never) or at least 60"),
            (|config| config.retrain.interval_secs = 3600, "retrain.data", "a scheduled retrain"),
            (
                |config| config.retrain.train_options = vec!["--out".into(), "elsewhere".into()],
                "retrain.train_options",
                "set by retrain itself",
            ),
            (
                |config| config.retrain.train_options = vec!["--init-from".into(), "encoder".into()],
                "retrain.train_options",
                "use retrain.data, retrain.threads and retrain.init_from",
            ),
            (
                |config| config.retrain.train_options = vec!["--epochz".into(), "3".into()],
                "retrain.train_options",
                "not valid `sentmon train` options: unexpected argument '--epochz'",
            ),
            (|config| config.windows.bucket_width_secs = 0, "windows.bucket_width_secs", "at least 1"),
            (|config| config.windows.view_widths_secs.clear(), "windows.view_widths_secs", "at least one view"),
            (
                |config| config.windows.view_widths_secs.push(90),
                "windows.view_widths_secs",
                "contains 90, which is not a positive multiple of windows.bucket_width_secs = 60",
            ),
            (|config| config.windows.view_widths_secs.push(0), "windows.view_widths_secs", "contains 0"),
            (|config| config.windows.view_widths_secs.push(300), "windows.view_widths_secs", "contains 300 twice"),
            (
                |config| config.windows.view_widths_secs.push(60 * 10_081),
                "windows.view_widths_secs",
                "more than 10080 buckets",
            ),
            (
                |config| config.detector.view_width_secs = 600,
                "detector.view_width_secs",
                "must be one of windows.view_widths_secs = [300, 3600]",
            ),
            (|config| config.detector.z_threshold = 0.0, "detector.z_threshold", "above 0"),
            (|config| config.detector.z_threshold = f64::NAN, "detector.z_threshold", "above 0"),
            (
                |config| config.detector.resolve_z_threshold = 3.5,
                "detector.resolve_z_threshold",
                "must be below detector.z_threshold (3.0)",
            ),
            (|config| config.detector.resolve_z_threshold = f64::INFINITY, "detector.resolve_z_threshold", "a number"),
            (|config| config.detector.min_volume = 0, "detector.min_volume", "at least 1"),
            (|config| config.detector.wilson_floor = 1.0, "detector.wilson_floor", "[0, 1)"),
            (|config| config.detector.wilson_floor = -0.1, "detector.wilson_floor", "[0, 1)"),
            (|config| config.detector.wilson_z = 0.0, "detector.wilson_z", "above 0"),
            (|config| config.detector.baseline_alpha = 0.0, "detector.baseline_alpha", "(0, 1]"),
            (|config| config.detector.baseline_alpha = 1.5, "detector.baseline_alpha", "(0, 1]"),
            (|config| config.detector.warmup_buckets = 0, "detector.warmup_buckets", "at least 1"),
            (|config| config.detector.resolve_after_buckets = 0, "detector.resolve_after_buckets", "at least 1"),
            (
                |config| config.detector.volume.false_alarm_probability = 0.0,
                "detector.volume.false_alarm_probability",
                "(0, 0.5), e.g. 1e-6",
            ),
            (
                |config| config.detector.volume.resolve_probability = 1e-9,
                "detector.volume.resolve_probability",
                "at least false_alarm_probability (1e-6)",
            ),
            (|config| config.detector.volume.min_ratio = 0.5, "detector.volume.min_ratio", "at least 1"),
            (|config| config.detector.volume.min_negatives = 0, "detector.volume.min_negatives", "at least 1"),
            (|config| config.http.listen = "nope".into(), "http.listen", "not a socket address like 127.0.0.1:9898"),
            (|config| config.http.listen = "localhost:9898".into(), "http.listen", "IP literal"),
            (|config| config.log.level = " ".into(), "log.level", "must not be empty"),
            (|config| config.archive.directory = Some(PathBuf::new()), "archive.directory", "leave the key out"),
            (|config| config.archive.rotate_max_bytes = 0, "archive.rotate_max_bytes", "at least 1"),
            (|config| config.archive.rotate_max_age_secs = 0, "archive.rotate_max_age_secs", "at least 1"),
        ];
        for (break_config, expected_key, expected_fix) in cases {
            let mut config = minimal_config();
            break_config(&mut config);
            let issues = issues_of(&config);
            assert!(
                issues.iter().any(|issue| issue.key == expected_key && issue.requirement.contains(expected_fix)),
                "expected an issue for {expected_key} containing {expected_fix:?}, got {issues:#?}"
            );
        }
    }

    #[test]
    fn issue_display_names_key_value_and_fix() {
        let mut config = minimal_config();
        config.batch.max_size = 0;
        config.http.listen = "nope".into();
        config.detector.resolve_z_threshold = 3.5;
        let lines: Vec<String> = issues_of(&config).iter().map(ToString::to_string).collect();
        assert_eq!(
            lines,
            [
                "batch.max_size = 0: must be between 1 and 4096",
                "detector.resolve_z_threshold = 3.5: must be below detector.z_threshold (3.0) so alerts do not flap",
                "http.listen = \"nope\": not a socket address like 127.0.0.1:9898 (an IP literal and a port)",
            ]
        );
    }

    #[test]
    fn all_problems_are_reported_together_one_per_line() {
        let toml_text = r#"
            [kafka]
            brokers = ""
            input_topics = []
            [batch]
            max_size = 0
            [windows]
            view_widths_secs = [300, 90]
            [http]
            listen = "nope"
        "#;
        let error = Config::from_toml_str(toml_text, no_env()).expect_err("invalid");
        let ConfigError::Invalid(issues) = &error else { panic!("expected Invalid, got {error:?}") };
        assert_eq!(issues.len(), 5, "{issues:#?}");
        let error_text = error.to_string();
        let lines: Vec<&str> = error_text.lines().collect();
        assert_eq!(lines[0], "5 configuration problem(s):");
        assert_eq!(lines.len(), 6);
        assert!(lines[1..].iter().all(|line| line.starts_with("  ")));
        assert!(error_text.contains("contains 90, which is not a positive multiple"));
    }

    #[test]
    fn redaction_hides_secrets_and_keeps_the_rest() {
        let toml_text = format!(
            "{MINIMAL_TOML}\n[kafka.consumer_options]\n\"sasl.username\" = \"alice\"\n\"SASL.Password\" = \"hunter2\"\n\
             \"sasl.oauthbearer.config\" = \"cfg-secret-1\"\n\"sasl.oauthbearer.client.secret\" = \"cs-secret-2\"\n\
             [kafka.producer_options]\n\"ssl.key.pem\" = \"pem-secret-3\"\n\"ssl.key.password\" = \"kp-secret-4\"\n\
             \"linger.ms\" = \"5\"\n"
        );
        let overrides = env(&[("SENTMON__KAFKA__PRODUCER_OPTIONS__SASL_OAUTHBEARER_TOKEN", "tok-secret-5")]);
        let loaded = Config::from_toml_str(&toml_text, overrides).unwrap();
        let redacted_toml = loaded.to_redacted_toml().unwrap();
        let debug_text = format!("{loaded:?}");
        for secret in ["hunter2", "cfg-secret-1", "cs-secret-2", "pem-secret-3", "kp-secret-4", "tok-secret-5"] {
            assert!(!redacted_toml.contains(secret), "{secret} leaked into {redacted_toml}");
            assert!(!debug_text.contains(secret), "{secret} leaked into Debug output");
        }
        for visible in ["alice", "linger.ms", "localhost:9092", "news", "SASL.Password", REDACTED] {
            assert!(redacted_toml.contains(visible), "{visible} missing from {redacted_toml}");
        }
        assert_eq!(
            loaded.kafka.consumer_options.0["SASL.Password"], "hunter2",
            "redaction must not touch the original"
        );
        let reparsed: Config = toml::from_str(&redacted_toml).unwrap();
        assert_eq!(reparsed, loaded.redacted());
    }

    #[test]
    fn load_reads_a_file_and_reports_missing_ones() {
        let directory = tempfile::tempdir().unwrap();
        let config_path = directory.path().join("sentmon.toml");
        std::fs::write(&config_path, MINIMAL_TOML).unwrap();
        assert_eq!(Config::load(Some(&config_path)).unwrap().kafka.input_topics, ["news"]);
        let missing_path = directory.path().join("absent.toml");
        let error = Config::load(Some(&missing_path)).expect_err("missing file");
        assert!(matches!(&error, ConfigError::Read { path, .. } if *path == missing_path));
        assert!(error.to_string().contains("absent.toml"));
    }

    #[test]
    fn durations_convert_to_std_and_milliseconds() {
        let config = minimal_config();
        assert_eq!(config.windows.bucket_width(), Duration::from_secs(60));
        assert_eq!(config.windows.bucket_width_ms(), 60_000);
        assert_eq!(config.windows.view_widths(), [Duration::from_secs(300), Duration::from_secs(3600)]);
        assert_eq!(config.windows.view_widths_ms(), [300_000, 3_600_000]);
        assert_eq!(
            (config.windows.allowed_lateness(), config.windows.allowed_lateness_ms()),
            (Duration::from_secs(120), 120_000)
        );
        assert_eq!(config.windows.idle_close_delay(), Duration::from_secs(30));
        assert_eq!(
            (config.detector.view_width(), config.detector.view_width_ms()),
            (Duration::from_secs(300), 300_000)
        );
        assert_eq!((config.detector.cooldown(), config.detector.cooldown_ms()), (Duration::from_secs(600), 600_000));
        assert_eq!(secs_to_ms(u64::MAX), i64::MAX);
    }

    #[test]
    fn missing_topics_are_named_with_their_key_unless_existence_is_not_required() {
        let mut config = minimal_config();
        config.kafka.late_topic = Some("sentmon.late".to_owned());
        let existing: std::collections::BTreeSet<String> =
            ["news", "sentmon.enriched", "sentmon.dead-letter"].map(String::from).into();
        let Err(ConfigError::Invalid(issues)) = config.kafka.check_topics_exist(&existing) else {
            panic!("two topics are missing");
        };
        let named: Vec<(&str, &str)> = issues.iter().map(|issue| (issue.key.as_str(), issue.value.as_str())).collect();
        assert_eq!(named, [("kafka.alerts_topic", "\"sentmon.alerts\""), ("kafka.late_topic", "\"sentmon.late\"")]);
        assert!(issues[0].requirement.contains("require_existing_topics = false"), "{}", issues[0]);
        config.kafka.require_existing_topics = false;
        assert!(config.kafka.check_topics_exist(&existing).is_ok());
    }

    /// Issue 11: `check-config` said valid, then `run` exited 1 on window and detector settings
    /// that only the window store and the detector checked. Every config `validate` accepts must
    /// get past what `run` builds from it.
    mod accepted_configs_start {
        use proptest::prelude::*;

        use super::*;

        /// Mostly small values, where the cross-field rules bite, plus values around and far past
        /// the components' limits (a week of milliseconds, u32 counts).
        fn seconds() -> impl Strategy<Value = u64> {
            prop_oneof![8 => 0..=700u64, 1 => 604_700..=604_900u64, 1 => Just(u64::MAX), 1 => 0..=u64::MAX]
        }

        fn count() -> impl Strategy<Value = u64> {
            prop_oneof![8 => 0..=12u64, 1 => Just(u64::from(u32::MAX) + 1), 1 => 0..=u64::MAX]
        }

        /// Mostly valid fractions, so that enough cases pass every other rule.
        fn ratio() -> impl Strategy<Value = f64> {
            prop_oneof![8 => 0.01..0.99f64, 1 => -0.5..1.5f64, 1 => Just(f64::NAN), 1 => Just(f64::INFINITY)]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(2000))]
            #[test]
            fn every_config_that_validates_builds_its_window_store_and_detector(
                bucket_width_secs in seconds(),
                // Views are multiples of the bucket (else validation stops there), around the
                // 10 080-bucket limit too.
                view_multiples in proptest::collection::vec(prop_oneof![8 => 1..=20u64, 1 => 10_079..=10_081u64], 0..4),
                allowed_lateness_secs in seconds(),
                idle_close_delay_secs in seconds(),
                examples_per_bucket in 0..=150usize,
                view_width_secs in seconds(),
                z_threshold in prop_oneof![0.0..10.0f64, Just(f64::NAN)],
                resolve_z_threshold in -2.0..10.0f64,
                min_volume in count(),
                wilson_floor in ratio(),
                wilson_z in ratio(),
                baseline_alpha in ratio(),
                warmup_buckets in count(),
                resolve_after_buckets in count(),
                cooldown_secs in seconds(),
                examples in 0..=150usize,
                false_alarm_probability in ratio(),
                resolve_probability in ratio(),
                min_ratio in prop_oneof![0.5..10.0f64, Just(f64::NAN)],
                min_negatives in count(),
                pick_a_listed_view in any::<bool>(),
            ) {
                let view_widths_secs: Vec<u64> =
                    view_multiples.iter().map(|multiple| bucket_width_secs.saturating_mul(*multiple)).collect();
                let mut config = minimal_config();
                config.windows = WindowsConfig {
                    bucket_width_secs,
                    view_widths_secs: view_widths_secs.clone(),
                    allowed_lateness_secs,
                    idle_close_delay_secs,
                    examples_per_bucket,
                };
                // A random view width rarely matches a listed one; half the cases take one that does.
                let view_width_secs = match view_widths_secs.first() {
                    Some(&listed) if pick_a_listed_view => listed,
                    _ => view_width_secs,
                };
                config.detector = DetectorConfig {
                    view_width_secs,
                    z_threshold,
                    resolve_z_threshold,
                    min_volume,
                    wilson_floor,
                    wilson_z,
                    baseline_alpha,
                    warmup_buckets,
                    resolve_after_buckets,
                    cooldown_secs,
                    examples,
                    volume: crate::alert::VolumeConfig {
                        enabled: true,
                        false_alarm_probability,
                        resolve_probability,
                        min_ratio,
                        min_negatives,
                    },
                };
                if config.validate().is_ok() {
                    let window = crate::window::WindowStore::new(config.windows.to_window_config());
                    prop_assert!(window.is_ok(), "{:?} -> {:?}", config.windows, window.err());
                    let detector = crate::alert::SpikeDetector::new(config.detector.to_detector_config());
                    prop_assert!(detector.is_ok(), "{:?} -> {:?}", config.detector, detector.err());
                }
            }
        }
    }
}
