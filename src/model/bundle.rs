//! Model bundles: a directory with `model.json` (manifest), `tokenizer.json` and
//! `weights.safetensors`, written and read as one unit.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail, ensure};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::nn::VarStore;
use tch::{Kind, Tensor};

use super::network::Architecture;
use crate::evaluation::EvaluationReport;
use crate::text::TextEncoder;
use crate::text::language::{DEFAULT_LANGUAGES, LanguageGate};

pub const MANIFEST_FILE: &str = "model.json";
pub const TOKENIZER_FILE: &str = "tokenizer.json";
pub const WEIGHTS_FILE: &str = "weights.safetensors";
const MANIFEST_FORMAT: &str = "sentmon-model";
const MANIFEST_FORMAT_VERSION: u32 = 1;

/// The sentiment classes, in head order. Fixed rather than learned from data because the
/// window statistics and spike alerts are defined on "negative".
pub const SENTIMENT_LABELS: [&str; 3] = ["negative", "neutral", "positive"];

/// Variables under this prefix exist only while training (language-model decoders, auxiliary
/// heads) and are never written into a bundle.
pub const TRAINING_ONLY_PREFIX: &str = "training_only";

/// Calibration shifts are fitted within +-2; a larger one would mean a head that does not work.
const MAX_LOGIT_BIAS: f32 = 10.0;

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelManifest {
    pub format: String,
    pub format_version: u32,
    /// Unique per trained bundle: UTC time of training plus a prefix of the weights' SHA-256.
    pub version: String,
    pub created_at: String,
    pub parent_version: Option<String>,
    pub architecture: Architecture,
    pub topic_labels: Vec<String>,
    pub sentiment_labels: Vec<String>,
    /// Languages the model serves (ISO 639-1 codes): the language gate refuses messages in any other, rather than
    /// let the model guess at text it cannot read. Bundles from before the gate have no such field and were all
    /// trained on English, so a missing field means `["en"]`.
    #[serde(default = "default_languages")]
    pub languages: Vec<String>,
    /// Added to the sentiment head's logits before the softmax, one value per sentiment label:
    /// the prior-shift correction fitted on the validation split for macro-F1
    /// (`evaluation::fit_log_probability_shift`). Empty in bundles from before calibration.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sentiment_logit_bias: Vec<f32>,
    pub training: TrainingSummary,
    /// Figures on the validation split that early stopping watched.
    pub validation: TaskReports,
    /// Figures on the held-out test split, never used for any training decision.
    pub test: TaskReports,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct TaskReports {
    pub topic: Option<EvaluationReport>,
    pub sentiment: Option<EvaluationReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingSummary {
    /// SHA-256 over the training files' names and contents, as `dataset::load_labelled` computes it.
    pub data_digest: String,
    pub data_files: Vec<String>,
    /// Teacher logits the student learned from (`train --soft-targets`), if any.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub soft_target_files: Vec<String>,
    pub rows: SplitRows,
    pub seed: u64,
    pub pretrain_epochs: usize,
    /// The encoder artefact (`train --init-from`) the weights started from, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub init_from: Option<super::pretrain::EncoderOrigin>,
    pub epochs_run: usize,
    pub best_epoch: usize,
    pub elapsed_seconds: f64,
    /// One entry per pretraining and fine-tuning epoch, in order.
    pub history: Vec<EpochRecord>,
    /// Every training option as given, so a bundle can be reproduced.
    pub options: serde_json::Value,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct EpochRecord {
    /// "pretrain" (language-model loss) or "fine-tune" (multi-task classification loss).
    pub phase: String,
    pub epoch: usize,
    pub train_loss: f64,
    /// Mean validation macro-F1 of the heads; absent for pretraining epochs.
    pub validation_score: Option<f64>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct SplitRows {
    pub train_topic: usize,
    pub train_sentiment: usize,
    pub train_unlabelled: usize,
    /// Training texts with a teacher's topic (sentiment) logits, from `train --soft-targets`.
    #[serde(default)]
    pub train_teacher_topic: usize,
    #[serde(default)]
    pub train_teacher_sentiment: usize,
    pub validation_topic: usize,
    pub validation_sentiment: usize,
    pub test_topic: usize,
    pub test_sentiment: usize,
}

impl ModelManifest {
    pub fn new(
        architecture: Architecture,
        topic_labels: Vec<String>,
        training: TrainingSummary,
        validation: TaskReports,
        test: TaskReports,
    ) -> ModelManifest {
        ModelManifest {
            format: MANIFEST_FORMAT.to_string(),
            format_version: MANIFEST_FORMAT_VERSION,
            version: String::new(),
            created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            parent_version: None,
            architecture,
            topic_labels,
            sentiment_labels: SENTIMENT_LABELS.iter().map(|label| label.to_string()).collect(),
            languages: default_languages(),
            sentiment_logit_bias: Vec::new(),
            training,
            validation,
            test,
        }
    }

    fn validate(&self) -> anyhow::Result<()> {
        ensure!(
            self.format == MANIFEST_FORMAT && self.format_version == MANIFEST_FORMAT_VERSION,
            "unsupported bundle format {:?} version {} (this sentmon reads {MANIFEST_FORMAT:?} version {MANIFEST_FORMAT_VERSION})",
            self.format,
            self.format_version
        );
        ensure!(
            self.sentiment_labels == SENTIMENT_LABELS,
            "sentiment labels are {:?}, expected {SENTIMENT_LABELS:?}",
            self.sentiment_labels
        );
        ensure!(
            (self.sentiment_logit_bias.is_empty() || self.sentiment_logit_bias.len() == SENTIMENT_LABELS.len())
                && self.sentiment_logit_bias.iter().all(|bias| bias.is_finite() && bias.abs() <= MAX_LOGIT_BIAS),
            "sentiment_logit_bias {:?} must be empty or {} finite values within +-{MAX_LOGIT_BIAS}",
            self.sentiment_logit_bias,
            SENTIMENT_LABELS.len()
        );
        LanguageGate::new(&self.languages).context("invalid languages")?;
        let architecture = &self.architecture;
        ensure!(
            self.topic_labels.len() as i64 == architecture.topic_classes && architecture.topic_classes >= 1,
            "{} topic labels but the architecture declares {} topic classes",
            self.topic_labels.len(),
            architecture.topic_classes
        );
        ensure!(
            architecture.sentiment_classes == SENTIMENT_LABELS.len() as i64,
            "architecture declares {} sentiment classes, expected 3",
            architecture.sentiment_classes
        );
        // Bounds well above anything sensible, so a hostile manifest cannot make us allocate
        // gigabytes before the weights' own shapes are checked.
        let sizes = [
            ("vocab_size", architecture.vocab_size, 5_000_000),
            ("embedding_dim", architecture.embedding_dim, 4096),
            ("hidden_size", architecture.hidden_size, 4096),
            ("feature_buckets", architecture.feature_buckets, 1 << 24),
            ("feature_dim", architecture.feature_dim, 4096),
            ("topic_classes", architecture.topic_classes, 10_000),
        ];
        for (name, value, limit) in sizes {
            ensure!((1..=limit).contains(&value), "architecture.{name} = {value} is outside 1..={limit}");
        }
        for (name, value) in [("dropout", architecture.dropout), ("token_dropout", architecture.token_dropout)] {
            ensure!((0.0..1.0).contains(&value), "architecture.{name} = {value} is outside [0, 1)");
        }
        Ok(())
    }
}

fn default_languages() -> Vec<String> {
    DEFAULT_LANGUAGES.iter().map(|code| code.to_string()).collect()
}

/// Writes a bundle directory (created if needed) and returns the manifest with its version set.
/// Weights are stored as float16: half the size for a difference far below the decision margin.
pub fn save_bundle(
    directory: &Path,
    variables: &VarStore,
    encoder: &TextEncoder,
    mut manifest: ModelManifest,
) -> anyhow::Result<ModelManifest> {
    std::fs::create_dir_all(directory)
        .with_context(|| format!("failed to create bundle directory {}", directory.display()))?;
    let mut named_weights: Vec<(String, Tensor)> = variables
        .variables()
        .into_iter()
        .filter(|(name, _)| !name.starts_with(TRAINING_ONLY_PREFIX))
        .map(|(name, tensor)| (name, tensor.detach().to_kind(Kind::Half)))
        .collect();
    named_weights.sort_by(|left, right| left.0.cmp(&right.0));
    let weights_path = directory.join(WEIGHTS_FILE);
    Tensor::write_safetensors(&named_weights, &weights_path)
        .with_context(|| format!("failed to write {}", weights_path.display()))?;
    let weights_digest = file_sha256(&weights_path)?;
    let timestamp = chrono::Utc::now().format("%Y%m%d-%H%M%S");
    manifest.version = format!("{timestamp}-{}", &weights_digest[..8]);
    encoder.save_json(&directory.join(TOKENIZER_FILE))?;
    let manifest_path = directory.join(MANIFEST_FILE);
    let manifest_json = serde_json::to_string_pretty(&manifest)?;
    std::fs::write(&manifest_path, manifest_json + "\n")
        .with_context(|| format!("failed to write {}", manifest_path.display()))?;
    Ok(manifest)
}

pub fn read_manifest(directory: &Path) -> anyhow::Result<ModelManifest> {
    let manifest_path = directory.join(MANIFEST_FILE);
    let manifest_text = std::fs::read_to_string(&manifest_path).with_context(|| {
        format!("failed to read {} (is {} a sentmon model bundle?)", manifest_path.display(), directory.display())
    })?;
    let manifest: ModelManifest =
        serde_json::from_str(&manifest_text).with_context(|| format!("failed to parse {}", manifest_path.display()))?;
    manifest.validate().with_context(|| format!("invalid manifest {}", manifest_path.display()))?;
    Ok(manifest)
}

/// Copies the bundle's weights into `variables`, which must hold exactly the same names and
/// shapes (a bundle with a missing, extra or mis-shaped tensor is rejected as a whole).
pub fn load_weights(directory: &Path, variables: &VarStore) -> anyhow::Result<()> {
    let weights_path = directory.join(WEIGHTS_FILE);
    let stored = Tensor::read_safetensors(&weights_path)
        .with_context(|| format!("failed to read weights {}", weights_path.display()))?;
    let mut stored: HashMap<String, Tensor> = stored.into_iter().collect();
    let mut expected = variables.variables();
    for (name, variable) in expected.iter_mut() {
        let Some(tensor) = stored.remove(name) else {
            bail!("{} has no tensor {name:?}: the bundle does not match its model.json", weights_path.display());
        };
        ensure!(
            tensor.size() == variable.size(),
            "{}: tensor {name:?} has shape {:?}, model.json implies {:?}",
            weights_path.display(),
            tensor.size(),
            variable.size()
        );
        tch::no_grad(|| variable.copy_(&tensor.to_kind(variable.kind())));
    }
    if let Some(unexpected) = stored.keys().next() {
        bail!(
            "{} holds an unexpected tensor {unexpected:?}: the bundle does not match its model.json",
            weights_path.display()
        );
    }
    Ok(())
}

pub fn file_sha256(path: &Path) -> anyhow::Result<String> {
    let bytes = std::fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    Ok(format!("{:x}", Sha256::digest(&bytes)))
}

pub fn tokenizer_path(directory: &Path) -> PathBuf {
    directory.join(TOKENIZER_FILE)
}
