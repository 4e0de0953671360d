//! Training: optional bidirectional language-model pretraining of the embedding and LSTMs,
//! then multi-task fine-tuning of both heads with a masked loss (each text trains the head its
//! label belongs to), class weighting, dropout, gradient clipping and early stopping on
//! validation macro-F1. Deterministic for a given seed and thread count.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::ensure;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use tch::nn::{self, Module, OptimizerConfig, VarStore};
use tch::{Device, Kind, Reduction, Tensor};

use super::batch::{IGNORED_TARGET, TensorBatch};
use super::bundle::{
    EpochRecord, ModelManifest, SENTIMENT_LABELS, SplitRows, TRAINING_ONLY_PREFIX, TaskReports, TrainingSummary,
};
use super::classifier::predict;
use super::distill::{DistillationWeights, TeacherLogits, logit_matching_loss};
use super::glove::WordVectors;
use super::network::{Architecture, EMBEDDING_PARAMETER_GROUP, Network, bag_width, sequence_width};
use super::pretrain::{EncoderArtefact, LanguageModelTrainer};
use crate::evaluation::{self, ConfusionMatrix, EvaluationReport};
use crate::text::{EncodedText, EncoderConfig, TextEncoder};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "kebab-case")]
pub enum ClassWeighting {
    /// Every class weighs the same.
    None,
    /// Weight 1/sqrt(class frequency): lifts rare classes without letting them dominate.
    Sqrt,
    /// Weight 1/class frequency (scikit-learn's "balanced").
    Balanced,
}

/// Token embedding width when neither the options nor word vectors set one.
const DEFAULT_EMBEDDING_DIM: i64 = 64;

fn full_learning_rate_scale() -> f64 {
    1.0
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TrainingOptions {
    pub epochs: usize,
    pub patience: usize,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub weight_decay: f64,
    pub gradient_clip_norm: f64,
    pub class_weighting: ClassWeighting,
    pub pretrain_epochs: usize,
    pub pretrain_learning_rate: f64,
    pub language_model_vocab: i64,
    /// Token embedding width; None: the word vectors' width with `word_vectors`, else 64.
    pub embedding_dim: Option<i64>,
    pub hidden_size: i64,
    pub feature_dim: i64,
    pub dropout: f64,
    pub token_dropout: f64,
    pub encoder: EncoderConfig,
    /// Directory of pretrained word vectors (`glove::WordVectors`) that initialise the token
    /// embedding and extend the vocabulary; None trains the embedding from scratch.
    #[serde(default)]
    pub word_vectors: Option<PathBuf>,
    /// How many of the vectors' most frequent words join the vocabulary beyond the training texts'.
    #[serde(default)]
    pub word_vector_vocab: usize,
    /// The token embedding's learning rate as a share of the rest's: 1 trains it like every
    /// other weight, 0 freezes it (sensible only for pretrained vectors).
    #[serde(default = "full_learning_rate_scale")]
    pub embedding_learning_rate_scale: f64,
    /// An encoder artefact from `sentmon pretrain`: its vocabulary replaces the one built from
    /// the training texts, and its embedding and LSTM weights are the starting point.
    pub init_from: Option<PathBuf>,
    /// Weight of each head's distillation loss (matching the teacher's logits, see `distill`)
    /// against the hard labels' cross-entropy; only texts with teacher logits have one.
    #[serde(default)]
    pub distillation_weights: DistillationWeights,
    /// How many of the texts that only a teacher labelled (the transfer set) each fine-tuning
    /// epoch draws, afresh every epoch; None: all of them. Every hand-labelled text trains in
    /// every epoch. Bounds an epoch's time when the transfer set dwarfs the labelled data.
    #[serde(default)]
    pub transfer_per_epoch: Option<usize>,
    pub seed: u64,
    pub show_progress: bool,
}

/// One labelled (or unlabelled) text, already split and with labels as class indices.
pub struct TrainingExample {
    pub text: String,
    pub topic: Option<usize>,
    pub sentiment: Option<usize>,
    /// A teacher's logits (`train --soft-targets`); training-split examples only.
    pub teacher: Option<TeacherLogits>,
}

pub struct TrainingSet {
    pub topic_labels: Vec<String>,
    pub train: Vec<TrainingExample>,
    pub validation: Vec<TrainingExample>,
    pub test: Vec<TrainingExample>,
    pub data_digest: String,
    pub data_files: Vec<String>,
    /// The soft-target files whose logits the training examples carry, for the manifest.
    pub soft_target_files: Vec<String>,
}

pub struct TrainedModel {
    pub variables: VarStore,
    pub encoder: TextEncoder,
    pub manifest: ModelManifest,
}

struct EncodedExample<'a> {
    encoded: EncodedText,
    topic: Option<usize>,
    sentiment: Option<usize>,
    teacher: Option<&'a TeacherLogits>,
}

pub fn train(training_set: &TrainingSet, options: &TrainingOptions) -> anyhow::Result<TrainedModel> {
    let started = Instant::now();
    ensure!(!training_set.topic_labels.is_empty(), "no topic labels in the training split: a bundle needs both heads");
    ensure!(options.batch_size >= 1, "batch size must be at least 1");
    ensure!(
        options.embedding_learning_rate_scale.is_finite() && options.embedding_learning_rate_scale >= 0.0,
        "--embedding-lr-scale is {} but must be a number >= 0 (1: like the rest, 0: frozen)",
        options.embedding_learning_rate_scale
    );
    tch::manual_seed(options.seed as i64);
    let mut shuffle_rng = ChaCha8Rng::seed_from_u64(options.seed);

    ensure!(
        options.init_from.is_none() || options.word_vectors.is_none(),
        "--glove and --init-from both decide the vocabulary and the starting embedding: pass only one of them"
    );
    let training_texts = training_set.train.iter().map(|example| example.text.as_str());
    let word_vectors = options.word_vectors.as_deref().map(WordVectors::load).transpose()?;
    let initial_encoder = options.init_from.as_deref().map(EncoderArtefact::read).transpose()?;
    let embedding_dim = options.embedding_dim.unwrap_or_else(|| match (&word_vectors, &initial_encoder) {
        (Some(vectors), _) => vectors.width(),
        (None, Some(artefact)) => artefact.embedding_dim(),
        (None, None) => DEFAULT_EMBEDDING_DIM,
    });
    let encoder = if let Some(artefact) = &initial_encoder {
        artefact.check_sizes(embedding_dim, options.hidden_size)?;
        artefact.text_encoder(&options.encoder)?
    } else if let Some(vectors) = &word_vectors {
        ensure!(
            vectors.width() == embedding_dim,
            "the word vectors are {} wide but --embedding-dim is {embedding_dim}: leave --embedding-dim out (it \
             follows the vectors) or set it to {}",
            vectors.width(),
            vectors.width()
        );
        let words = vectors.words().take(options.word_vector_vocab);
        TextEncoder::build_with_pretrained_words(options.encoder.clone(), training_texts, words)
    } else {
        TextEncoder::build(options.encoder.clone(), training_texts)
    };
    let train_examples = encode_all(&encoder, &training_set.train);
    let validation_examples = encode_all(&encoder, &training_set.validation);
    let test_examples = encode_all(&encoder, &training_set.test);
    let rows = split_rows(&train_examples, &validation_examples, &test_examples);
    ensure!(rows.train_sentiment > 0, "no sentiment labels in the training split: a bundle needs both heads");

    let architecture = Architecture {
        vocab_size: encoder.vocab().len() as i64,
        embedding_dim,
        hidden_size: options.hidden_size,
        feature_buckets: i64::from(encoder.config().feature_buckets),
        feature_dim: options.feature_dim,
        topic_classes: training_set.topic_labels.len() as i64,
        sentiment_classes: SENTIMENT_LABELS.len() as i64,
        dropout: options.dropout,
        token_dropout: options.token_dropout,
    };
    let variables = VarStore::new(Device::Cpu);
    let network = Network::new(&variables.root(), &architecture);
    if let Some(vectors) = &word_vectors {
        let initialised = vectors.initialise_embedding(&variables, encoder.vocab())?;
        eprintln!(
            "word vectors: {initialised} of {} vocabulary tokens start from a pretrained vector",
            encoder.vocab().len()
        );
    }
    if let Some(artefact) = &initial_encoder {
        artefact.load_into(&variables)?;
    }

    let mut history = Vec::new();
    if options.pretrain_epochs > 0 {
        pretrain_language_model(
            &variables,
            &network,
            &architecture,
            &train_examples,
            options,
            &mut shuffle_rng,
            &mut history,
        )?;
    }

    let topic_weights = class_weights(
        train_examples.iter().filter_map(|example| example.topic),
        training_set.topic_labels.len(),
        options.class_weighting,
    );
    let sentiment_weights = class_weights(
        train_examples.iter().filter_map(|example| example.sentiment),
        SENTIMENT_LABELS.len(),
        options.class_weighting,
    );
    let auxiliary_heads = AuxiliaryHeads::new(&variables, &architecture);
    let mut optimizer =
        nn::AdamW { wd: options.weight_decay, ..Default::default() }.build(&variables, options.learning_rate)?;
    set_learning_rate(&mut optimizer, options.learning_rate, options);
    let weights = options.distillation_weights;
    ensure!(
        [weights.topic, weights.sentiment].iter().all(|weight| weight.is_finite() && *weight >= 0.0),
        "--distill-weight is {weights} but each head's weight must be a number >= 0"
    );
    let (labelled, transfer): (Vec<usize>, Vec<usize>) = (0..train_examples.len())
        .filter(|&index| {
            let example = &train_examples[index];
            example.topic.is_some() || example.sentiment.is_some() || example.teacher.is_some()
        })
        .partition(|&index| train_examples[index].topic.is_some() || train_examples[index].sentiment.is_some());
    let mut transfer_order = transfer;

    let mut best = BestEpoch { score: f64::NEG_INFINITY, epoch: 0, weights: Vec::new() };
    let mut learning_rate = options.learning_rate;
    let mut epochs_without_improvement = 0;
    let mut epochs_run = 0;
    for epoch in 1..=options.epochs {
        epochs_run = epoch;
        let mut order = labelled.clone();
        transfer_order.shuffle(&mut shuffle_rng);
        let transfer_drawn = options.transfer_per_epoch.unwrap_or(transfer_order.len()).min(transfer_order.len());
        order.extend_from_slice(&transfer_order[..transfer_drawn]);
        order.shuffle(&mut shuffle_rng);
        let progress = epoch_progress_bar(options, order.len(), &format!("epoch {epoch}/{}", options.epochs));
        let mut running_loss = RunningMean::default();
        for chunk in order.chunks(options.batch_size) {
            let batch_examples: Vec<&EncodedExample> = chunk.iter().map(|&index| &train_examples[index]).collect();
            let loss = multi_task_loss(
                &network,
                &auxiliary_heads,
                &batch_examples,
                &topic_weights,
                &sentiment_weights,
                options.distillation_weights,
            );
            optimizer.backward_step_clip_norm(&loss, options.gradient_clip_norm);
            running_loss.add(loss.double_value(&[]), chunk.len());
            progress.inc(chunk.len() as u64);
            progress.set_message(format!("loss {:.4}", running_loss.mean()));
        }
        progress.finish_and_clear();
        let validation = evaluate_examples(&network, &validation_examples, &training_set.topic_labels, &[]);
        let score = validation_score(&validation);
        let improved = score > best.score;
        history.push(EpochRecord {
            phase: "fine-tune".to_string(),
            epoch,
            train_loss: running_loss.mean(),
            validation_score: Some(score),
        });
        eprintln!(
            "epoch {epoch:>2}: train loss {:.4}  validation topic acc {} macro-F1 {}  sentiment acc {} macro-F1 {}  lr {learning_rate:.1e}{}",
            running_loss.mean(),
            format_metric(validation.topic.as_ref().map(|report| report.accuracy)),
            format_metric(validation.topic.as_ref().map(|report| report.macro_f1)),
            format_metric(validation.sentiment.as_ref().map(|report| report.accuracy)),
            format_metric(validation.sentiment.as_ref().map(|report| report.macro_f1)),
            if improved { "  (best)" } else { "" }
        );
        if improved {
            best = BestEpoch { score, epoch, weights: snapshot(&variables) };
            epochs_without_improvement = 0;
        } else {
            epochs_without_improvement += 1;
            if epochs_without_improvement >= options.patience {
                eprintln!(
                    "early stop: no validation improvement for {} epochs; keeping epoch {}",
                    options.patience, best.epoch
                );
                break;
            }
            // Halving on a plateau: the first non-improving epoch usually means the step is too big.
            learning_rate /= 2.0;
            set_learning_rate(&mut optimizer, learning_rate, options);
        }
    }
    restore(&variables, &best.weights);

    let sentiment_logit_bias = fit_sentiment_calibration(&network, &validation_examples);
    let validation =
        evaluate_examples(&network, &validation_examples, &training_set.topic_labels, &sentiment_logit_bias);
    let test = evaluate_examples(&network, &test_examples, &training_set.topic_labels, &sentiment_logit_bias);
    let training = TrainingSummary {
        data_digest: training_set.data_digest.clone(),
        data_files: training_set.data_files.clone(),
        soft_target_files: training_set.soft_target_files.clone(),
        rows,
        seed: options.seed,
        pretrain_epochs: options.pretrain_epochs,
        init_from: initial_encoder.as_ref().map(EncoderArtefact::origin),
        epochs_run,
        best_epoch: best.epoch,
        elapsed_seconds: started.elapsed().as_secs_f64(),
        history,
        options: serde_json::to_value(options)?,
    };
    let mut manifest = ModelManifest::new(architecture, training_set.topic_labels.clone(), training, validation, test);
    manifest.sentiment_logit_bias = sentiment_logit_bias;
    Ok(TrainedModel { variables, encoder, manifest })
}

fn encode_all<'a>(encoder: &TextEncoder, examples: &'a [TrainingExample]) -> Vec<EncodedExample<'a>> {
    examples
        .iter()
        .map(|example| EncodedExample {
            encoded: encoder.encode(&example.text),
            topic: example.topic,
            sentiment: example.sentiment,
            teacher: example.teacher.as_ref(),
        })
        .collect()
}

/// Sets the fine-tuning learning rate, scaled down for the token embedding's parameter group.
fn set_learning_rate(optimizer: &mut nn::Optimizer, learning_rate: f64, options: &TrainingOptions) {
    optimizer.set_lr(learning_rate);
    optimizer.set_lr_group(EMBEDDING_PARAMETER_GROUP, learning_rate * options.embedding_learning_rate_scale);
}

/// Pretrains embedding + LSTMs as two language models: the forward LSTM predicts the next
/// token, the backward LSTM the previous one. Uses only training-split texts (labelled or
/// not), so validation and test texts stay unseen.
fn pretrain_language_model(
    variables: &VarStore,
    network: &Network,
    architecture: &Architecture,
    train_examples: &[EncodedExample],
    options: &TrainingOptions,
    shuffle_rng: &mut ChaCha8Rng,
    history: &mut Vec<EpochRecord>,
) -> anyhow::Result<()> {
    let mut language_model = LanguageModelTrainer::new(
        variables,
        architecture,
        options.language_model_vocab,
        options.pretrain_learning_rate,
        options.gradient_clip_norm,
    );
    let mut order: Vec<usize> = (0..train_examples.len()).collect();
    for epoch in 1..=options.pretrain_epochs {
        order.shuffle(shuffle_rng);
        let progress =
            epoch_progress_bar(options, order.len(), &format!("pretrain {epoch}/{}", options.pretrain_epochs));
        let mut running_loss = RunningMean::default();
        for chunk in order.chunks(options.batch_size) {
            let encoded: Vec<&EncodedText> = chunk.iter().map(|&index| &train_examples[index].encoded).collect();
            running_loss.add(language_model.step(network, &encoded), chunk.len());
            progress.inc(chunk.len() as u64);
            progress.set_message(format!("lm loss {:.3}", running_loss.mean()));
        }
        progress.finish_and_clear();
        history.push(EpochRecord {
            phase: "pretrain".to_string(),
            epoch,
            train_loss: running_loss.mean(),
            validation_score: None,
        });
        eprintln!(
            "pretrain {epoch:>2}: language-model loss {:.4} (perplexity {:.1})",
            running_loss.mean(),
            running_loss.mean().exp()
        );
    }
    Ok(())
}

/// Heads that read only one half of the representation (the LSTM pooling, or the n-gram bags),
/// trained beside the real heads and then thrown away. Without them the LSTM half, which fits
/// the training set within a few epochs, takes over the loss and the bag half stops learning
/// long before it is as good as a linear n-gram model; with them each half must predict on its
/// own, so the real heads combine two well-trained halves (deep supervision).
struct AuxiliaryHeads {
    sequence: (nn::Linear, nn::Linear),
    bag: (nn::Linear, nn::Linear),
}

/// Weight of each auxiliary head's loss relative to the real heads'.
const AUXILIARY_LOSS_WEIGHT: f64 = 0.5;

impl AuxiliaryHeads {
    fn new(variables: &VarStore, architecture: &Architecture) -> AuxiliaryHeads {
        let root = variables.root() / TRAINING_ONLY_PREFIX / "auxiliary";
        let head = |name: &str, width: i64, classes: i64| nn::linear(&root / name, width, classes, Default::default());
        AuxiliaryHeads {
            sequence: (
                head("sequence_topic", sequence_width(architecture), architecture.topic_classes),
                head("sequence_sentiment", sequence_width(architecture), architecture.sentiment_classes),
            ),
            bag: (
                head("bag_topic", bag_width(architecture), architecture.topic_classes),
                head("bag_sentiment", bag_width(architecture), architecture.sentiment_classes),
            ),
        }
    }
}

/// Each head's class-weighted cross-entropy over the rows that carry its label, weighted by
/// the share of the batch those rows are, so the loss scale does not depend on the task mix;
/// plus the auxiliary heads' losses; plus, times its `distillation_weights`, each head's match to
/// the teacher's logits over the rows that have them, weighted the same way.
fn multi_task_loss(
    network: &Network,
    auxiliary_heads: &AuxiliaryHeads,
    batch_examples: &[&EncodedExample],
    topic_weights: &Tensor,
    sentiment_weights: &Tensor,
    distillation_weights: DistillationWeights,
) -> Tensor {
    let encoded: Vec<&EncodedText> = batch_examples.iter().map(|example| &example.encoded).collect();
    let batch = TensorBatch::new(&encoded);
    let pooled = network.pooled_features(&batch, true);
    let logits = network.heads(&pooled);
    let batch_size = batch_examples.len() as f64;
    let head_loss = |head_logits: &Tensor, labels: &[(usize, usize)], weights: &Tensor| -> Option<Tensor> {
        if labels.is_empty() {
            return None;
        }
        let rows: Vec<i64> = labels.iter().map(|&(row, _)| row as i64).collect();
        let targets: Vec<i64> = labels.iter().map(|&(_, class)| class as i64).collect();
        let selected = head_logits.index_select(0, &Tensor::from_slice(&rows));
        let loss = selected.cross_entropy_loss(
            &Tensor::from_slice(&targets),
            Some(weights),
            Reduction::Mean,
            IGNORED_TARGET,
            0.0,
        );
        Some(loss * (labels.len() as f64 / batch_size))
    };
    let topic_labels: Vec<(usize, usize)> = batch_examples
        .iter()
        .enumerate()
        .filter_map(|(row, example)| example.topic.map(|class| (row, class)))
        .collect();
    let sentiment_labels: Vec<(usize, usize)> = batch_examples
        .iter()
        .enumerate()
        .filter_map(|(row, example)| example.sentiment.map(|class| (row, class)))
        .collect();
    let teacher_rows = |head: fn(&TeacherLogits) -> Option<&[f32]>| -> Vec<(usize, &[f32])> {
        batch_examples
            .iter()
            .enumerate()
            .filter_map(|(row, example)| example.teacher.and_then(head).map(|logits| (row, logits)))
            .collect()
    };
    let teacher_topic = teacher_rows(|teacher| teacher.topic.as_deref());
    let teacher_sentiment = teacher_rows(|teacher| teacher.sentiment.as_deref());
    let distillation = |head_logits: &Tensor, rows: &[(usize, &[f32])], weight: f64| {
        logit_matching_loss(head_logits, rows).map(|loss| loss * (weight * rows.len() as f64 / batch_size))
    };
    let (sequence_topic, sequence_sentiment) = &auxiliary_heads.sequence;
    let (bag_topic, bag_sentiment) = &auxiliary_heads.bag;
    let auxiliary = |loss: Tensor| loss * AUXILIARY_LOSS_WEIGHT;
    let losses: Vec<Tensor> = [
        head_loss(&logits.topic, &topic_labels, topic_weights),
        head_loss(&logits.sentiment, &sentiment_labels, sentiment_weights),
        head_loss(&sequence_topic.forward(&pooled.sequence), &topic_labels, topic_weights).map(auxiliary),
        head_loss(&sequence_sentiment.forward(&pooled.sequence), &sentiment_labels, sentiment_weights).map(auxiliary),
        head_loss(&bag_topic.forward(&pooled.bag), &topic_labels, topic_weights).map(auxiliary),
        head_loss(&bag_sentiment.forward(&pooled.bag), &sentiment_labels, sentiment_weights).map(auxiliary),
        distillation(&logits.topic, &teacher_topic, distillation_weights.topic),
        distillation(&logits.sentiment, &teacher_sentiment, distillation_weights.sentiment),
    ]
    .into_iter()
    .flatten()
    .collect();
    Tensor::stack(&losses, 0).sum(Kind::Float)
}

fn class_weights(labels: impl Iterator<Item = usize>, class_count: usize, weighting: ClassWeighting) -> Tensor {
    let mut counts = vec![0usize; class_count];
    for label in labels {
        counts[label] += 1;
    }
    let total: usize = counts.iter().sum();
    let weights: Vec<f32> = counts
        .iter()
        .map(|&count| {
            // A class absent from training gets weight 1: it has no rows, the value never matters.
            let frequency = if count == 0 { 1.0 } else { count as f64 * class_count as f64 / total as f64 };
            (match weighting {
                ClassWeighting::None => 1.0,
                ClassWeighting::Sqrt => 1.0 / frequency.sqrt(),
                ClassWeighting::Balanced => 1.0 / frequency,
            }) as f32
        })
        .collect();
    Tensor::from_slice(&weights)
}

/// Batch size for evaluation passes: large batches are fastest and memory is no concern.
const EVALUATION_BATCH_SIZE: usize = 256;

fn evaluate_examples(
    network: &Network,
    examples: &[EncodedExample],
    topic_labels: &[String],
    sentiment_logit_bias: &[f32],
) -> TaskReports {
    let mut topic_matrix = ConfusionMatrix::new(topic_labels.to_vec());
    let mut sentiment_matrix = ConfusionMatrix::new(SENTIMENT_LABELS.iter().map(|label| label.to_string()).collect());
    for chunk in examples.chunks(EVALUATION_BATCH_SIZE) {
        let encoded: Vec<&EncodedText> = chunk.iter().map(|example| &example.encoded).collect();
        for (example, prediction) in chunk.iter().zip(predict(network, &encoded, sentiment_logit_bias)) {
            if let Some(topic) = example.topic {
                topic_matrix.record(topic, prediction.topic_index);
            }
            if let Some(sentiment) = example.sentiment {
                let predicted =
                    SENTIMENT_LABELS.iter().position(|label| *label == prediction.sentiment.label()).unwrap_or(0);
                sentiment_matrix.record(sentiment, predicted);
            }
        }
    }
    let report_if_any = |matrix: &ConfusionMatrix, task: &str| (matrix.total() > 0).then(|| matrix.report(task));
    TaskReports {
        topic: report_if_any(&topic_matrix, "topic"),
        sentiment: report_if_any(&sentiment_matrix, "sentiment"),
    }
}

/// Fits the sentiment head's calibration (`ModelManifest::sentiment_logit_bias`) on the
/// validation split; empty when the split has no sentiment labels.
fn fit_sentiment_calibration(network: &Network, validation_examples: &[EncodedExample]) -> Vec<f32> {
    let labelled: Vec<&EncodedExample> =
        validation_examples.iter().filter(|example| example.sentiment.is_some()).collect();
    if labelled.is_empty() {
        return Vec::new();
    }
    let mut log_probabilities = Vec::with_capacity(labelled.len());
    for chunk in labelled.chunks(EVALUATION_BATCH_SIZE) {
        let encoded: Vec<&EncodedText> = chunk.iter().map(|example| &example.encoded).collect();
        for prediction in predict(network, &encoded, &[]) {
            let probabilities =
                [prediction.sentiment.negative, prediction.sentiment.neutral, prediction.sentiment.positive];
            log_probabilities
                .push(probabilities.iter().map(|&probability| f64::from(probability.max(1e-12)).ln()).collect());
        }
    }
    let truths: Vec<usize> = labelled.iter().filter_map(|example| example.sentiment).collect();
    let shift = evaluation::fit_log_probability_shift(&log_probabilities, &truths, SENTIMENT_LABELS.len());
    eprintln!("sentiment calibration on validation: logit shifts {shift:?}");
    shift.into_iter().map(|value| value as f32).collect()
}

/// Early stopping watches the mean of the heads' validation macro-F1: one bundle serves both.
fn validation_score(reports: &TaskReports) -> f64 {
    let scores: Vec<f64> = [&reports.topic, &reports.sentiment]
        .into_iter()
        .flatten()
        .map(|report: &EvaluationReport| report.macro_f1)
        .collect();
    if scores.is_empty() { 0.0 } else { scores.iter().sum::<f64>() / scores.len() as f64 }
}

struct BestEpoch {
    score: f64,
    epoch: usize,
    weights: Vec<(String, Tensor)>,
}

fn snapshot(variables: &VarStore) -> Vec<(String, Tensor)> {
    tch::no_grad(|| variables.variables().into_iter().map(|(name, tensor)| (name, tensor.copy())).collect())
}

fn restore(variables: &VarStore, weights: &[(String, Tensor)]) {
    let mut current = variables.variables();
    tch::no_grad(|| {
        for (name, saved) in weights {
            if let Some(variable) = current.get_mut(name) {
                variable.copy_(saved);
            }
        }
    });
}

fn split_rows(train: &[EncodedExample], validation: &[EncodedExample], test: &[EncodedExample]) -> SplitRows {
    let count = |examples: &[EncodedExample], select: fn(&EncodedExample) -> bool| {
        examples.iter().filter(|example| select(example)).count()
    };
    SplitRows {
        train_topic: count(train, |example| example.topic.is_some()),
        train_sentiment: count(train, |example| example.sentiment.is_some()),
        train_unlabelled: count(train, |example| example.topic.is_none() && example.sentiment.is_none()),
        train_teacher_topic: count(train, |example| example.teacher.is_some_and(|teacher| teacher.topic.is_some())),
        train_teacher_sentiment: count(train, |example| {
            example.teacher.is_some_and(|teacher| teacher.sentiment.is_some())
        }),
        validation_topic: count(validation, |example| example.topic.is_some()),
        validation_sentiment: count(validation, |example| example.sentiment.is_some()),
        test_topic: count(test, |example| example.topic.is_some()),
        test_sentiment: count(test, |example| example.sentiment.is_some()),
    }
}

fn epoch_progress_bar(options: &TrainingOptions, length: usize, prefix: &str) -> ProgressBar {
    if !options.show_progress {
        return ProgressBar::hidden();
    }
    let progress = ProgressBar::new(length as u64);
    progress.set_style(
        ProgressStyle::with_template("{prefix:>14} [{bar:30}] {pos}/{len} texts  {per_sec}  eta {eta}  {msg}")
            .expect("progress template is valid")
            .progress_chars("=> "),
    );
    progress.set_prefix(prefix.to_string());
    progress
}

fn format_metric(value: Option<f64>) -> String {
    value.map_or_else(|| "-".to_string(), |value| format!("{value:.4}"))
}

#[derive(Default)]
struct RunningMean {
    weighted_sum: f64,
    weight: usize,
}

impl RunningMean {
    fn add(&mut self, value: f64, weight: usize) {
        self.weighted_sum += value * weight as f64;
        self.weight += weight;
    }

    fn mean(&self) -> f64 {
        if self.weight == 0 { 0.0 } else { self.weighted_sum / self.weight as f64 }
    }
}
