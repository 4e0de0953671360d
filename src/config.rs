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
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

// Each section is defined, with its defaults, docs and checks, by the module it configures; this
// module composes them into [`Config`], loads and layers the sources, and checks what spans sections.
pub use crate::alert::settings::DetectorConfig;
pub use crate::app::ShutdownConfig;
pub use crate::archive::settings::ArchiveConfig;
pub use crate::entity::settings::{EntitiesConfig, MAX_TOP_CASHTAGS};
pub use crate::http::HttpConfig;
pub use crate::ingest::settings::{KafkaConfig, KafkaOptions, REDACTED};
pub use crate::logging::{LogConfig, LogFormat};
pub use crate::model::settings::{ModelConfig, RetrainConfig};
pub use crate::pipeline::settings::{BatchConfig, InputConfig, InputFormat, PipelineConfig, PipelineRole};
pub use crate::window::settings::WindowsConfig;

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

/// The whole daemon configuration. `Config::default()` holds every default but fails validation
/// until `kafka.brokers` and `kafka.input_topics` are set: those have no sensible default, and
/// leaving them to [`Config::validate`] lets their absence be reported together with other problems.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Brokers, topics and librdkafka pass-through options.
    pub kafka: KafkaConfig,
    /// Which stages this process runs (all, or classify or aggregate for a fleet).
    pub pipeline: PipelineConfig,
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
    pub(crate) fn new(key: &str, value: impl fmt::Debug, requirement: impl Into<String>) -> Self {
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
        self.kafka.check(&mut issues);
        self.batch.check(&mut issues);
        self.model.check(&mut issues);
        self.input.check(&mut issues);
        let issues_before_windows = issues.len();
        self.windows.check(&mut issues);
        self.validate_across_sections(&mut issues);
        self.detector.check(&mut issues);
        if issues.len() == issues_before_windows {
            self.validate_window_store_and_detector(&mut issues);
        }
        self.retrain.check(&mut issues);
        self.http.check(&mut issues);
        self.log.check(&mut issues);
        self.archive.check(&mut issues);
        self.entities.check(&mut issues);
        self.pipeline.check(&mut issues);
        if self.pipeline.role != PipelineRole::All && self.entities.enabled() {
            let requirement = "entity windows run only with pipeline.role = \"all\" for now: the repartition topic \
                               is keyed by topic, not entity; remove [entities] or run one process";
            issues.push(ConfigIssue::new(
                "pipeline.role",
                format!("{:?}", self.pipeline.role).to_lowercase(),
                requirement,
            ));
        }
        if issues.is_empty() { Ok(()) } else { Err(issues) }
    }

    /// What no section can check alone: the detector's view must be one of the windows' views.
    fn validate_across_sections(&self, issues: &mut Vec<ConfigIssue>) {
        let detector = &self.detector;
        if !self.windows.view_widths_secs.contains(&detector.view_width_secs) {
            let requirement = format!("must be one of windows.view_widths_secs = {:?}", self.windows.view_widths_secs);
            issues.push(ConfigIssue::new("detector.view_width_secs", detector.view_width_secs, requirement));
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

    /// This config as an aggregator's consumer takes it: the repartition topic as its only input, in the
    /// aggregators' group.
    pub fn consuming_summaries(&self) -> Config {
        let mut summaries = self.clone();
        summaries.kafka.input_topics = vec![self.pipeline.repartition_topic.clone()];
        summaries.kafka.group_id = self.pipeline.aggregate_group_id(&self.kafka.group_id);
        summaries
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

/// Seconds to milliseconds for event-time arithmetic; saturates instead of wrapping, though
/// validation keeps every width far below that.
pub(crate) fn secs_to_ms(secs: u64) -> i64 {
    i64::try_from(secs).ok().and_then(|secs_signed| secs_signed.checked_mul(1000)).unwrap_or(i64::MAX)
}

/// Whole seconds of a non-negative default in milliseconds (the pure modules' defaults are whole seconds).
pub(crate) fn ms_to_secs(ms: i64) -> u64 {
    u64::try_from(ms / 1000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

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
        let Err(ConfigError::Invalid(issues)) = config.kafka.check_topics_exist(&existing, &[]) else {
            panic!("two topics are missing");
        };
        let named: Vec<(&str, &str)> = issues.iter().map(|issue| (issue.key.as_str(), issue.value.as_str())).collect();
        assert_eq!(named, [("kafka.alerts_topic", "\"sentmon.alerts\""), ("kafka.late_topic", "\"sentmon.late\"")]);
        assert!(issues[0].requirement.contains("require_existing_topics = false"), "{}", issues[0]);
        config.kafka.require_existing_topics = false;
        assert!(config.kafka.check_topics_exist(&existing, &[]).is_ok());
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
