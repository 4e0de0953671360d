//! The `[model]` and `[retrain]` sections of the daemon config: the served model and how it is
//! retrained into the registry, with their defaults, docs and checks.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::ConfigIssue;

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

impl ModelConfig {
    /// Adds every problem of this section to `issues`.
    pub(crate) fn check(&self, issues: &mut Vec<ConfigIssue>) {
        if self.path.as_os_str().is_empty() {
            issues.push(ConfigIssue::new("model.path", &self.path, "must not be empty"));
        }
        if self.workers == 0 {
            issues.push(ConfigIssue::new("model.workers", self.workers, "must be at least 1"));
        }
        if self.watch_interval_secs > MAX_WATCH_INTERVAL_SECS {
            let requirement = format!("must be at most {MAX_WATCH_INTERVAL_SECS} (a day); 0 turns polling off");
            issues.push(ConfigIssue::new("model.watch_interval_secs", self.watch_interval_secs, requirement));
        }
    }
}

impl RetrainConfig {
    /// Adds every problem of this section to `issues`.
    pub(crate) fn check(&self, issues: &mut Vec<ConfigIssue>) {
        let retrain = self;
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
}
