//! Inference: a loaded bundle that turns texts into topic and sentiment predictions.
//! Not `Sync` (tch tensors are not): serve it from one thread that owns it.

use std::path::Path;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tch::nn::VarStore;
use tch::{Device, Kind, Tensor};

use super::batch::TensorBatch;
use super::bundle::{self, ModelManifest};
use super::network::Network;
use crate::text::language::{LanguageGate, UnsupportedLanguage};
use crate::text::{EncodedText, TextEncoder};

/// Probabilities of the three sentiment classes, in `bundle::SENTIMENT_LABELS` order.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SentimentProbabilities {
    pub negative: f32,
    pub neutral: f32,
    pub positive: f32,
}

impl SentimentProbabilities {
    /// The most probable class; ties go to the earlier class (negative before neutral).
    pub fn label(&self) -> &'static str {
        let probabilities = [self.negative, self.neutral, self.positive];
        bundle::SENTIMENT_LABELS[argmax(&probabilities)]
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Prediction {
    pub topic_index: usize,
    pub topic_probability: f32,
    pub sentiment: SentimentProbabilities,
}

pub struct Classifier {
    network: Network,
    // Owns the parameters `network` refers to; dropping it would free them.
    _variables: VarStore,
    encoder: TextEncoder,
    manifest: ModelManifest,
    /// Built from `manifest.languages`: which messages this model may answer.
    language_gate: LanguageGate,
}

/// What the model says about one message that passed the language gate, or why it says nothing.
pub type GatedPrediction = Result<Prediction, UnsupportedLanguage>;

impl Classifier {
    pub fn load(directory: &Path) -> anyhow::Result<Classifier> {
        let manifest = bundle::read_manifest(directory)?;
        let encoder = TextEncoder::load_json(&bundle::tokenizer_path(directory))
            .with_context(|| format!("failed to load the tokenizer of bundle {}", directory.display()))?;
        anyhow::ensure!(
            encoder.vocab().len() as i64 == manifest.architecture.vocab_size
                && i64::from(encoder.config().feature_buckets) == manifest.architecture.feature_buckets,
            "bundle {}: tokenizer has {} tokens and {} feature buckets but model.json declares {} and {}",
            directory.display(),
            encoder.vocab().len(),
            encoder.config().feature_buckets,
            manifest.architecture.vocab_size,
            manifest.architecture.feature_buckets
        );
        check_weights_size(directory, &manifest)?;
        let variables = VarStore::new(Device::Cpu);
        let network = Network::new(&variables.root(), &manifest.architecture);
        bundle::load_weights(directory, &variables)
            .with_context(|| format!("failed to load bundle {}", directory.display()))?;
        // read_manifest has checked the languages already.
        let language_gate = LanguageGate::new(&manifest.languages)
            .with_context(|| format!("bundle {}: invalid languages", directory.display()))?;
        Ok(Classifier { network, _variables: variables, encoder, manifest, language_gate })
    }

    pub fn manifest(&self) -> &ModelManifest {
        &self.manifest
    }

    pub fn version(&self) -> &str {
        &self.manifest.version
    }

    pub fn topic_label(&self, topic_index: usize) -> &str {
        &self.manifest.topic_labels[topic_index]
    }

    pub fn encoder(&self) -> &TextEncoder {
        &self.encoder
    }

    /// Classifies texts as one padded batch; the caller chooses the batch size.
    pub fn classify(&self, texts: &[&str]) -> Vec<Prediction> {
        let encoded: Vec<EncodedText> = texts.iter().map(|text| self.encoder.encode(text)).collect();
        let encoded_refs: Vec<&EncodedText> = encoded.iter().collect();
        self.classify_encoded(&encoded_refs)
    }

    /// Classifies the messages the language gate lets through, each a text and the producer's declared language
    /// (the input's `lang` field), and answers the rest with the language they are in. Refused texts never reach
    /// the network: a forward pass over text the model cannot read would only produce a confident guess.
    pub fn classify_gated(&self, messages: &[(&str, Option<&str>)]) -> Vec<GatedPrediction> {
        let verdicts: Vec<Result<(), UnsupportedLanguage>> =
            messages.iter().map(|(text, declared)| self.language_gate.check(text, *declared)).collect();
        let readable: Vec<&str> =
            messages.iter().zip(&verdicts).filter(|(_, verdict)| verdict.is_ok()).map(|((text, _), _)| *text).collect();
        let mut predictions = self.classify(&readable).into_iter();
        verdicts
            .into_iter()
            .map(|verdict| verdict.map(|()| predictions.next().expect("one prediction per readable text")))
            .collect()
    }

    pub fn classify_encoded(&self, encoded: &[&EncodedText]) -> Vec<Prediction> {
        predict(&self.network, encoded, &self.manifest.sentiment_logit_bias)
    }
}

/// Most parameters a bundle may declare: 500 million, 2 GB as float32 in memory, 50 times the
/// shipped model. A limit, so that a hostile model.json cannot make the loader allocate without end.
const MAX_PARAMETERS: i64 = 500_000_000;

/// Refuses a bundle whose declared sizes its weights file could not hold, before the network is
/// built: building allocates every parameter, so a model.json declaring huge sizes would
/// otherwise allocate gigabytes only to fail at the shape check.
fn check_weights_size(directory: &Path, manifest: &ModelManifest) -> anyhow::Result<()> {
    let parameters = manifest.architecture.parameter_count().filter(|&count| count <= MAX_PARAMETERS);
    let Some(parameters) = parameters else {
        anyhow::bail!(
            "bundle {}: model.json declares more than {MAX_PARAMETERS} parameters; refusing to build it",
            directory.display()
        );
    };
    let weights_path = directory.join(bundle::WEIGHTS_FILE);
    let weights_bytes = std::fs::metadata(&weights_path)
        .with_context(|| format!("failed to read weights {}", weights_path.display()))?
        .len();
    // Weights are stored as float16: two bytes a parameter, plus the safetensors header.
    let needed_bytes = parameters as u64 * 2;
    anyhow::ensure!(
        weights_bytes >= needed_bytes,
        "bundle {}: {} holds {weights_bytes} bytes, too few for the parameter shapes model.json declares \
         ({parameters} parameters, {needed_bytes} bytes as float16)",
        directory.display(),
        weights_path.display()
    );
    Ok(())
}

/// Texts per forward pass after sorting by length. Sorting makes each chunk's texts nearly the
/// same length, so almost no LSTM steps are spent on padding (a random batch pads every text to
/// its longest, about twice the mean for headlines); 32 keeps the matrix products efficient.
const LENGTH_SORTED_CHUNK: usize = 32;

/// Runs the network in inference mode (no dropout, no autograd); returns one prediction per text,
/// in input order. Results do not depend on how texts are grouped: padding is exact.
/// `sentiment_logit_bias` (empty, or one value per sentiment label) is added to the sentiment
/// logits: the bundle's calibration.
pub(super) fn predict(network: &Network, encoded: &[&EncodedText], sentiment_logit_bias: &[f32]) -> Vec<Prediction> {
    if encoded.len() <= LENGTH_SORTED_CHUNK {
        return predict_padded(network, encoded, sentiment_logit_bias);
    }
    let mut order: Vec<usize> = (0..encoded.len()).collect();
    order.sort_by_key(|&index| encoded[index].token_ids.len());
    let mut predictions: Vec<Option<Prediction>> = vec![None; encoded.len()];
    for chunk in order.chunks(LENGTH_SORTED_CHUNK) {
        let chunk_texts: Vec<&EncodedText> = chunk.iter().map(|&index| encoded[index]).collect();
        for (&index, prediction) in chunk.iter().zip(predict_padded(network, &chunk_texts, sentiment_logit_bias)) {
            predictions[index] = Some(prediction);
        }
    }
    predictions.into_iter().map(|prediction| prediction.expect("every text is in one chunk")).collect()
}

/// One padded forward pass.
fn predict_padded(network: &Network, encoded: &[&EncodedText], sentiment_logit_bias: &[f32]) -> Vec<Prediction> {
    if encoded.is_empty() {
        return Vec::new();
    }
    // Grad mode is per thread: without this guard outputs keep requires_grad and memory grows.
    let _no_grad = tch::no_grad_guard();
    let batch = TensorBatch::new(encoded);
    let logits = network.head_logits(&batch, false);
    let topic_probabilities = probabilities_by_row(&logits.topic);
    let sentiment_logits = if sentiment_logit_bias.is_empty() {
        logits.sentiment
    } else {
        logits.sentiment + Tensor::from_slice(sentiment_logit_bias)
    };
    let sentiment_probabilities = probabilities_by_row(&sentiment_logits);
    topic_probabilities
        .into_iter()
        .zip(sentiment_probabilities)
        .map(|(topic_row, sentiment_row)| {
            let topic_index = argmax(&topic_row);
            Prediction {
                topic_index,
                topic_probability: topic_row[topic_index],
                sentiment: SentimentProbabilities {
                    negative: sentiment_row[0],
                    neutral: sentiment_row[1],
                    positive: sentiment_row[2],
                },
            }
        })
        .collect()
}

fn probabilities_by_row(logits: &Tensor) -> Vec<Vec<f32>> {
    let probabilities = logits.softmax(-1, Kind::Float).contiguous();
    let columns = probabilities.size()[1] as usize;
    let flat = Vec::<f32>::try_from(probabilities.view([-1])).expect("softmax output is a float tensor");
    flat.chunks(columns).map(<[f32]>::to_vec).collect()
}

fn argmax(values: &[f32]) -> usize {
    let mut best_index = 0;
    for (index, value) in values.iter().enumerate() {
        if *value > values[best_index] {
            best_index = index;
        }
    }
    best_index
}
