//! Language-model pretraining of the token embedding and both LSTMs (forward predicts the next
//! token, backward the previous one): in memory for `train --pretrain-epochs`, and streamed from
//! large `.jsonl(.gz)` corpora for `sentmon pretrain`, with caps, resumable checkpoints and an
//! encoder artefact that `train --init-from` starts from.

use std::cell::Cell;
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail, ensure};
use flate2::read::MultiGzDecoder;
use indicatif::{ProgressBar, ProgressStyle};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tch::nn::{self, Module, VarStore};
use tch::{Device, Reduction, Tensor};

use super::batch::{IGNORED_TARGET, TensorBatch, language_model_targets};
use super::bundle::{TRAINING_ONLY_PREFIX, file_sha256};
use super::network::{Architecture, Network};
use crate::dataset::SplitFractions;
use crate::text::{EncodedText, EncoderConfig, TextEncoder, dedup_key};

/// The artefact's manifest, weights and vocabulary (the vocabulary as a bundle's tokenizer.json).
pub const ENCODER_MANIFEST_FILE: &str = "encoder.json";
pub const ENCODER_WEIGHTS_FILE: &str = "encoder.safetensors";
pub const ENCODER_TOKENIZER_FILE: &str = "tokenizer.json";
/// The resumable state of a run; its weights file is named inside it.
pub const CHECKPOINT_FILE: &str = "checkpoint.json";
const ENCODER_FORMAT: &str = "sentmon-encoder";
const ENCODER_FORMAT_VERSION: u32 = 1;
const CHECKPOINT_FORMAT_VERSION: u32 = 1;
/// The parts of the network an artefact carries (the n-gram bag and the heads are task-specific).
const ENCODER_PARTS: [&str; 3] = ["token_embedding", "forward_lstm", "backward_lstm"];

/// Texts read, shuffled and trained on as one unit. Corpus files come in the order they were
/// written (by date, by stock), so shuffling within a chunk keeps a batch from being one day's
/// news; 4,096 texts are a few seconds of training on 2 cores, little memory, and all that a
/// resumed run rereads.
const SHUFFLE_CHUNK: usize = 4096;

/// torch.optim.Adam's defaults (tch's `nn::Adam` uses the same).
const ADAM_BETA1: f64 = 0.9;
const ADAM_BETA2: f64 = 0.999;
const ADAM_EPSILON: f64 = 1e-8;

/// Unusable corpus lines listed one by one before only the count is given.
const UNUSABLE_LINES_LISTED: usize = 5;

/// Adam (as torch's, without weight decay) with global gradient-norm clipping, holding its
/// moments itself: tch's optimizer keeps them in C++ out of reach, and a checkpoint without them
/// would make a resumed run take different steps from an uninterrupted one.
struct Adam {
    learning_rate: f64,
    steps: u64,
    /// Trainable variables by name, sorted, with their first and second moments.
    parameters: Vec<(String, Tensor, Tensor, Tensor)>,
}

impl Adam {
    fn new(variables: &VarStore, learning_rate: f64) -> Adam {
        let mut parameters: Vec<(String, Tensor, Tensor, Tensor)> = variables
            .variables()
            .into_iter()
            .filter(|(_, variable)| variable.requires_grad())
            .map(|(name, variable)| {
                let first = variable.zeros_like();
                let second = variable.zeros_like();
                (name, variable, first, second)
            })
            .collect();
        parameters.sort_by(|left, right| left.0.cmp(&right.0));
        Adam { learning_rate, steps: 0, parameters }
    }

    fn backward_step_clip_norm(&mut self, loss: &Tensor, max_norm: f64) {
        for (_, variable, _, _) in &mut self.parameters {
            variable.zero_grad();
        }
        loss.backward();
        tch::no_grad(|| {
            // Variables the loss does not reach (the classifier heads while pretraining) have
            // no gradient and are left alone, as torch's Adam does.
            let gradients: Vec<(usize, Tensor)> = self
                .parameters
                .iter()
                .enumerate()
                .map(|(index, (_, variable, _, _))| (index, variable.grad()))
                .filter(|(_, gradient)| gradient.defined())
                .collect();
            if gradients.is_empty() {
                return;
            }
            let norms: Vec<Tensor> = gradients.iter().map(|(_, gradient)| gradient.norm()).collect();
            let total_norm = Tensor::stack(&norms, 0).norm().double_value(&[]);
            let clip = max_norm / (total_norm + 1e-6);
            self.steps += 1;
            let first_correction = 1.0 - ADAM_BETA1.powf(self.steps as f64);
            let second_correction = 1.0 - ADAM_BETA2.powf(self.steps as f64);
            for (index, mut gradient) in gradients {
                if clip < 1.0 {
                    let _ = gradient.g_mul_scalar_(clip);
                }
                let (_, variable, first, second) = &mut self.parameters[index];
                let _ = first.lerp_(&gradient, 1.0 - ADAM_BETA1);
                let _ = second.g_mul_scalar_(ADAM_BETA2);
                let _ = second.g_add_(&(&gradient * &gradient * (1.0 - ADAM_BETA2)));
                let denominator = second.sqrt() / second_correction.sqrt() + ADAM_EPSILON;
                let _ = variable.g_add_(&(&*first / denominator * (-self.learning_rate / first_correction)));
            }
        });
    }

    /// The moments as named tensors, for a checkpoint.
    fn state(&self) -> Vec<(String, Tensor)> {
        self.parameters
            .iter()
            .flat_map(|(name, _, first, second)| {
                [
                    (format!("optimizer.first_moment.{name}"), first.shallow_clone()),
                    (format!("optimizer.second_moment.{name}"), second.shallow_clone()),
                ]
            })
            .collect()
    }
}

/// The two language-model decoders (training-only variables) and their optimizer: one step
/// predicts each token from the forward states and the previous one from the backward states.
pub(super) struct LanguageModelTrainer {
    forward_decoder: nn::Linear,
    backward_decoder: nn::Linear,
    output_vocab: i64,
    optimizer: Adam,
    gradient_clip_norm: f64,
}

impl LanguageModelTrainer {
    /// `language_model_vocab`: the most frequent tokens predicted (rarer ones count as unknown).
    /// Create it after the network, so its optimizer covers the network's variables.
    pub(super) fn new(
        variables: &VarStore,
        architecture: &Architecture,
        language_model_vocab: i64,
        learning_rate: f64,
        gradient_clip_norm: f64,
    ) -> LanguageModelTrainer {
        let output_vocab = language_model_vocab.min(architecture.vocab_size);
        let root = variables.root() / TRAINING_ONLY_PREFIX / "language_model";
        let hidden_size = architecture.hidden_size;
        LanguageModelTrainer {
            forward_decoder: nn::linear(&root / "forward", hidden_size, output_vocab, Default::default()),
            backward_decoder: nn::linear(&root / "backward", hidden_size, output_vocab, Default::default()),
            output_vocab,
            optimizer: Adam::new(variables, learning_rate),
            gradient_clip_norm,
        }
    }

    /// One optimisation step on a batch; returns the mean of the two directions' losses.
    pub(super) fn step(&mut self, network: &Network, encoded: &[&EncodedText]) -> f64 {
        let batch = TensorBatch::new(encoded);
        let (next_tokens, previous_tokens) = language_model_targets(encoded, self.output_vocab);
        let states = network.sequence_states(&batch, true);
        let forward_loss = self.token_loss(&self.forward_decoder.forward(&states.forward), &next_tokens);
        let backward_loss = self.token_loss(&self.backward_decoder.forward(&states.backward), &previous_tokens);
        let loss = (forward_loss + backward_loss) / 2.0;
        self.optimizer.backward_step_clip_norm(&loss, self.gradient_clip_norm);
        loss.double_value(&[])
    }

    fn token_loss(&self, logits: &Tensor, targets: &Tensor) -> Tensor {
        logits.view([-1, self.output_vocab]).cross_entropy_loss(
            &targets.view([-1]),
            None::<Tensor>,
            Reduction::Mean,
            IGNORED_TARGET,
            0.0,
        )
    }
}

/// How often `sentmon pretrain` writes a checkpoint: every N sequences, or every so long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CheckpointInterval {
    Sequences(u64),
    Every(Duration),
}

impl FromStr for CheckpointInterval {
    type Err = String;

    /// A plain count ("50000") is sequences, a duration ("10m", "90s", "1h") is time.
    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim().parse::<u64>() {
            Ok(0) => Err("0 sequences: give at least 1, or a duration such as 10m".to_owned()),
            Ok(sequences) => Ok(CheckpointInterval::Sequences(sequences)),
            Err(_) => parse_duration(text).map(CheckpointInterval::Every),
        }
    }
}

/// "90s", "30m", "2h" (or a combination such as "1h30m"); a bare number is seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let trimmed = text.trim();
    let invalid = || format!("{text:?} is not a duration: write e.g. 90s, 30m, 2h or 1h30m");
    if let Ok(seconds) = trimmed.parse::<u64>() {
        return if seconds == 0 {
            Err(format!("{text:?}: a duration must be positive"))
        } else {
            Ok(Duration::from_secs(seconds))
        };
    }
    let mut total_seconds = 0_u64;
    let mut digits = String::new();
    for character in trimmed.chars() {
        if character.is_ascii_digit() {
            digits.push(character);
            continue;
        }
        let unit_seconds = match character {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(invalid()),
        };
        let value: u64 = digits.parse().map_err(|_| invalid())?;
        total_seconds =
            value.checked_mul(unit_seconds).and_then(|part| total_seconds.checked_add(part)).ok_or_else(invalid)?;
        digits.clear();
    }
    if !digits.is_empty() || total_seconds == 0 {
        return Err(invalid());
    }
    Ok(Duration::from_secs(total_seconds))
}

/// What `sentmon pretrain` was asked to do.
#[derive(Debug, Clone)]
pub struct PretrainOptions {
    /// `.jsonl` or `.jsonl.gz` files, read in this order, one JSON object a line.
    pub corpus_files: Vec<PathBuf>,
    /// The JSON field holding each line's text.
    pub text_field: String,
    /// Passes over the corpus at most (the caps may end the run sooner).
    pub passes: usize,
    pub max_sequences: Option<u64>,
    /// Wall-clock limit of this invocation (a resumed run gets its own).
    pub max_duration: Option<Duration>,
    pub checkpoint_every: CheckpointInterval,
    /// Corpus texts (the first ones) counted with the labelled training texts for the vocabulary.
    pub vocab_sample: usize,
    pub encoder: EncoderConfig,
    pub embedding_dim: i64,
    pub hidden_size: i64,
    pub dropout: f64,
    pub token_dropout: f64,
    pub language_model_vocab: i64,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub gradient_clip_norm: f64,
    pub seed: u64,
    pub show_progress: bool,
    /// Set (by a signal handler) to stop at the next batch, writing a checkpoint first.
    pub interrupt: Option<&'static AtomicBool>,
}

/// The labelled data's texts, split as `train` splits them: the training texts shape the
/// vocabulary, and corpus texts equal to a held-out one (after normalisation) are skipped, so
/// no validation or test text is ever seen by the encoder.
pub struct LabelledTexts {
    pub train: Vec<String>,
    pub held_out: Vec<String>,
    pub data_digest: String,
    pub data_files: Vec<String>,
    pub split: SplitFractions,
}

/// One corpus file's identity: a resumed run must read exactly the same bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CorpusFile {
    /// The file name only, so the same corpus elsewhere is the same corpus.
    pub name: String,
    pub bytes: u64,
    pub sha256: String,
}

/// Everything that decides the weights apart from how far the run got. A checkpoint is resumed
/// only under the same settings; caps and the checkpoint interval may change between runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PretrainSettings {
    pub corpus: Vec<CorpusFile>,
    pub text_field: String,
    /// `dataset::load_labelled`'s digest of the labelled files.
    pub data_digest: String,
    pub validation_fraction: f64,
    pub test_fraction: f64,
    pub vocab_sample: usize,
    pub encoder: EncoderConfig,
    pub embedding_dim: i64,
    pub hidden_size: i64,
    pub dropout: f64,
    pub token_dropout: f64,
    pub language_model_vocab: i64,
    pub batch_size: usize,
    pub learning_rate: f64,
    pub gradient_clip_norm: f64,
    pub seed: u64,
}

/// The mean language-model loss over a stretch of the run, for the loss curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LossRecord {
    /// Sequences seen when the stretch ended.
    pub sequences: u64,
    pub loss: f64,
}

/// Corpus lines that were not trained on, and why.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SkippedLines {
    /// Equal, after normalisation, to a labelled validation or test text.
    pub held_out: u64,
    /// Not JSON, no string in the text field, or empty.
    pub unusable: u64,
}

/// `encoder.json`: what an encoder artefact is and where it came from.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderManifest {
    pub format: String,
    pub format_version: u32,
    pub created_at: String,
    pub vocab_size: i64,
    pub embedding_dim: i64,
    pub hidden_size: i64,
    /// SHA-256 of `encoder.safetensors`, so the manifest's digest pins the weights too.
    pub weights_sha256: String,
    pub settings: PretrainSettings,
    pub data_files: Vec<String>,
    pub sequences_seen: u64,
    pub optimizer_steps: u64,
    /// Mean language-model loss (cross-entropy, nats) over the last stretch of the run.
    pub loss: f64,
    pub history: Vec<LossRecord>,
    pub skipped: SkippedLines,
    /// Training time over all runs that built it.
    pub elapsed_seconds: f64,
}

/// Where the stream is: the next line to read. Lines are counted from 0 within a file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CorpusPosition {
    pass: usize,
    file: usize,
    line: u64,
}

/// `checkpoint.json`. The run resumes by rereading the chunk that starts at `chunk_start`,
/// shuffling it as before and skipping the `consumed_in_chunk` texts already trained on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CheckpointState {
    format_version: u32,
    settings: PretrainSettings,
    data_files: Vec<String>,
    weights_file: String,
    chunk_index: u64,
    chunk_start: CorpusPosition,
    /// Skipped-line counts when the chunk started (the reread adds the chunk's own again).
    chunk_start_skipped: SkippedLines,
    consumed_in_chunk: usize,
    sequences_seen: u64,
    optimizer_steps: u64,
    history: Vec<LossRecord>,
    loss_since_record: f64,
    sequences_since_record: u64,
    elapsed_seconds: f64,
}

/// Counts the compressed bytes read from a file, for a progress bar over a corpus whose line
/// count is unknown until it has been read.
struct CountingReader {
    inner: File,
    count: Rc<Cell<u64>>,
}

impl Read for CountingReader {
    fn read(&mut self, buffer: &mut [u8]) -> io::Result<usize> {
        let read_count = self.inner.read(buffer)?;
        self.count.set(self.count.get() + read_count as u64);
        Ok(read_count)
    }
}

/// Texts from the corpus files, one line at a time, never holding a file in memory.
struct CorpusStream<'a> {
    files: &'a [PathBuf],
    file_bytes: Vec<u64>,
    text_field: &'a str,
    held_out_keys: &'a HashSet<String>,
    passes: usize,
    position: CorpusPosition,
    reader: Option<Box<dyn BufRead>>,
    compressed_read: Rc<Cell<u64>>,
    skipped: SkippedLines,
    line_buffer: String,
}

impl<'a> CorpusStream<'a> {
    fn total_bytes(&self) -> u64 {
        self.file_bytes.iter().sum()
    }

    /// Compressed bytes read over all passes, for the progress bar.
    fn bytes_read(&self) -> u64 {
        let before_file: u64 = self.file_bytes[..self.position.file.min(self.files.len())].iter().sum();
        self.position.pass as u64 * self.total_bytes() + before_file + self.compressed_read.get()
    }

    fn open_file(&mut self) -> anyhow::Result<()> {
        let path = &self.files[self.position.file];
        let file = File::open(path).with_context(|| format!("failed to open corpus file {}", path.display()))?;
        self.compressed_read.set(0);
        let counting = CountingReader { inner: file, count: Rc::clone(&self.compressed_read) };
        let is_gzip = path.extension().is_some_and(|extension| extension.eq_ignore_ascii_case("gz"));
        let mut reader: Box<dyn BufRead> = if is_gzip {
            Box::new(BufReader::new(MultiGzDecoder::new(counting)))
        } else {
            Box::new(BufReader::new(counting))
        };
        // Resuming: skip the lines already read without parsing them.
        for _ in 0..self.position.line {
            self.line_buffer.clear();
            if reader.read_line(&mut self.line_buffer).with_context(|| format!("failed to read {}", path.display()))?
                == 0
            {
                bail!(
                    "corpus file {} ended before line {} that the checkpoint recorded: it changed since",
                    path.display(),
                    self.position.line
                );
            }
        }
        self.reader = Some(reader);
        Ok(())
    }

    /// The next usable text, or None when every pass is done.
    fn next_text(&mut self) -> anyhow::Result<Option<String>> {
        loop {
            if self.position.pass >= self.passes {
                return Ok(None);
            }
            if self.reader.is_none() {
                self.open_file()?;
            }
            let path = &self.files[self.position.file];
            self.line_buffer.clear();
            let reader = self.reader.as_mut().expect("opened above");
            let read_count = reader
                .read_line(&mut self.line_buffer)
                .with_context(|| format!("failed to read corpus file {}", path.display()))?;
            if read_count == 0 {
                self.reader = None;
                // The finished file now counts whole in `bytes_read` through the position.
                self.compressed_read.set(0);
                self.position = if self.position.file + 1 < self.files.len() {
                    CorpusPosition { file: self.position.file + 1, line: 0, ..self.position }
                } else {
                    CorpusPosition { pass: self.position.pass + 1, file: 0, line: 0 }
                };
                continue;
            }
            self.position.line += 1;
            match text_of_line(&self.line_buffer, self.text_field) {
                Ok(text) if self.held_out_keys.contains(&dedup_key(&text)) => self.skipped.held_out += 1,
                Ok(text) => return Ok(Some(text)),
                Err(reason) => {
                    self.skipped.unusable += 1;
                    if self.skipped.unusable <= UNUSABLE_LINES_LISTED as u64 {
                        eprintln!("unusable corpus line {}:{}: {reason}", path.display(), self.position.line);
                    }
                }
            }
        }
    }

    /// Up to `count` texts; fewer only at the end of the last pass.
    fn read_chunk(&mut self, count: usize) -> anyhow::Result<Vec<String>> {
        let mut texts = Vec::with_capacity(count);
        while texts.len() < count {
            match self.next_text()? {
                Some(text) => texts.push(text),
                None => break,
            }
        }
        Ok(texts)
    }
}

fn text_of_line(line: &str, text_field: &str) -> Result<String, String> {
    let value: serde_json::Value = serde_json::from_str(line).map_err(|error| format!("not JSON: {error}"))?;
    let text = value
        .get(text_field)
        .and_then(serde_json::Value::as_str)
        .ok_or_else(|| format!("no string field {text_field:?} (see --text-field)"))?;
    if text.trim().is_empty() {
        return Err("empty text".to_owned());
    }
    Ok(text.to_owned())
}

fn corpus_identity(files: &[PathBuf]) -> anyhow::Result<Vec<CorpusFile>> {
    files
        .iter()
        .map(|path| {
            let mut file =
                File::open(path).with_context(|| format!("failed to open corpus file {}", path.display()))?;
            let mut hasher = Sha256::new();
            let bytes =
                io::copy(&mut file, &mut hasher).with_context(|| format!("failed to read {}", path.display()))?;
            let name = path.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
            Ok(CorpusFile { name, bytes, sha256: format!("{:x}", hasher.finalize()) })
        })
        .collect()
}

/// Streams the corpus through the language models and writes the encoder artefact to `out`,
/// resuming from a checkpoint there if one exists (its settings must match). Returns the
/// artefact's manifest.
pub fn pretrain(labelled: &LabelledTexts, options: &PretrainOptions, out: &Path) -> anyhow::Result<EncoderManifest> {
    let started = Instant::now();
    ensure!(!options.corpus_files.is_empty(), "no corpus files given (--corpus)");
    ensure!(options.batch_size >= 1, "--batch-size is 0: give at least 1");
    ensure!(options.passes >= 1, "--passes is 0: give at least 1");
    options.encoder.validate()?;
    for path in &options.corpus_files {
        let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default().to_ascii_lowercase();
        ensure!(
            name.ends_with(".jsonl") || name.ends_with(".jsonl.gz"),
            "corpus file {} is neither .jsonl nor .jsonl.gz",
            path.display()
        );
    }
    let corpus = corpus_identity(&options.corpus_files)?;
    let settings = PretrainSettings {
        corpus,
        text_field: options.text_field.clone(),
        data_digest: labelled.data_digest.clone(),
        validation_fraction: labelled.split.validation,
        test_fraction: labelled.split.test,
        vocab_sample: options.vocab_sample,
        encoder: options.encoder.clone(),
        embedding_dim: options.embedding_dim,
        hidden_size: options.hidden_size,
        dropout: options.dropout,
        token_dropout: options.token_dropout,
        language_model_vocab: options.language_model_vocab,
        batch_size: options.batch_size,
        learning_rate: options.learning_rate,
        gradient_clip_norm: options.gradient_clip_norm,
        seed: options.seed,
    };
    std::fs::create_dir_all(out).with_context(|| format!("failed to create {}", out.display()))?;
    let held_out_keys: HashSet<String> = labelled.held_out.iter().map(|text| dedup_key(text)).collect();
    let new_stream = |position: CorpusPosition, skipped: SkippedLines| CorpusStream {
        files: &options.corpus_files,
        file_bytes: settings.corpus.iter().map(|file| file.bytes).collect(),
        text_field: &options.text_field,
        held_out_keys: &held_out_keys,
        passes: options.passes,
        position,
        reader: None,
        compressed_read: Rc::new(Cell::new(0)),
        skipped,
        line_buffer: String::new(),
    };

    let resumed = read_checkpoint(out, &settings)?;
    let encoder = match &resumed {
        Some(_) => TextEncoder::load_json(&out.join(ENCODER_TOKENIZER_FILE))?,
        None => {
            let mut sample_stream = new_stream(CorpusPosition::default(), SkippedLines::default());
            let sample = sample_stream.read_chunk(options.vocab_sample)?;
            let encoder = TextEncoder::build(
                options.encoder.clone(),
                labelled.train.iter().map(String::as_str).chain(sample.iter().map(String::as_str)),
            );
            eprintln!(
                "vocabulary: {} tokens from {} labelled training texts and the first {} corpus texts",
                encoder.vocab().len(),
                labelled.train.len(),
                sample.len()
            );
            encoder.save_json(&out.join(ENCODER_TOKENIZER_FILE))?;
            encoder
        }
    };

    let architecture = Architecture {
        vocab_size: encoder.vocab().len() as i64,
        embedding_dim: options.embedding_dim,
        hidden_size: options.hidden_size,
        // Pretraining reads only the sequence half; the bag and heads exist at size 1 so the
        // network's own code runs, and are never written out.
        feature_buckets: 1,
        feature_dim: 1,
        topic_classes: 1,
        sentiment_classes: 3,
        dropout: options.dropout,
        token_dropout: options.token_dropout,
    };
    tch::manual_seed(options.seed as i64);
    let variables = VarStore::new(Device::Cpu);
    let network = Network::new(&variables.root(), &architecture);
    let mut trainer = LanguageModelTrainer::new(
        &variables,
        &architecture,
        options.language_model_vocab,
        options.learning_rate,
        options.gradient_clip_norm,
    );

    let mut state = match resumed {
        Some(state) => {
            load_checkpoint_weights(out, &state, &variables, &mut trainer.optimizer)?;
            eprintln!("resuming from {}: {} sequences seen", out.join(CHECKPOINT_FILE).display(), state.sequences_seen);
            state
        }
        None => CheckpointState {
            format_version: CHECKPOINT_FORMAT_VERSION,
            settings: settings.clone(),
            data_files: labelled.data_files.clone(),
            weights_file: String::new(),
            chunk_index: 0,
            chunk_start: CorpusPosition::default(),
            chunk_start_skipped: SkippedLines::default(),
            consumed_in_chunk: 0,
            sequences_seen: 0,
            optimizer_steps: 0,
            history: Vec::new(),
            loss_since_record: 0.0,
            sequences_since_record: 0,
            elapsed_seconds: 0.0,
        },
    };
    let elapsed_before = state.elapsed_seconds;

    let mut stream = new_stream(state.chunk_start, state.chunk_start_skipped);
    let progress = RunProgress::new(options, &stream, state.sequences_seen);
    let mut last_checkpoint = (Instant::now(), state.sequences_seen);
    let interrupted = || options.interrupt.is_some_and(|flag| flag.load(Ordering::SeqCst));
    let stop_reason = loop {
        if interrupted() {
            break "interrupted; run the same command again to resume".to_owned();
        }
        if options.max_sequences.is_some_and(|cap| state.sequences_seen >= cap) {
            break format!("--max-sequences {} reached", state.sequences_seen);
        }
        if options.max_duration.is_some_and(|cap| started.elapsed() >= cap) {
            break "--max-duration reached".to_owned();
        }
        let chunk_bytes_start = stream.bytes_read();
        let mut chunk = stream.read_chunk(SHUFFLE_CHUNK)?;
        if chunk.is_empty() {
            break format!("the corpus was read {} time(s)", options.passes);
        }
        let chunk_bytes = (chunk_bytes_start, stream.bytes_read());
        // Each chunk's order depends only on the seed and its index, so a resumed run
        // reshuffles a reread chunk exactly as before.
        let mut chunk_rng = ChaCha8Rng::seed_from_u64(options.seed);
        chunk_rng.set_stream(state.chunk_index);
        chunk.shuffle(&mut chunk_rng);
        while state.consumed_in_chunk < chunk.len() {
            let remaining_cap = options.max_sequences.map_or(u64::MAX, |cap| cap.saturating_sub(state.sequences_seen));
            let duration_over = options.max_duration.is_some_and(|cap| started.elapsed() >= cap);
            if remaining_cap == 0 || duration_over || interrupted() {
                break;
            }
            let batch_end = (state.consumed_in_chunk + options.batch_size)
                .min(chunk.len())
                .min(state.consumed_in_chunk.saturating_add(usize::try_from(remaining_cap).unwrap_or(usize::MAX)));
            let encoded: Vec<EncodedText> =
                chunk[state.consumed_in_chunk..batch_end].iter().map(|text| encoder.encode(text)).collect();
            let encoded_refs: Vec<&EncodedText> = encoded.iter().collect();
            // Dropout draws depend only on the seed and the step, so a resumed run draws the same.
            tch::manual_seed((options.seed as i64).wrapping_add(state.optimizer_steps as i64));
            let loss = trainer.step(&network, &encoded_refs);
            let batch_len = batch_end - state.consumed_in_chunk;
            state.consumed_in_chunk = batch_end;
            state.sequences_seen += batch_len as u64;
            state.optimizer_steps += 1;
            state.loss_since_record += loss * batch_len as f64;
            state.sequences_since_record += batch_len as u64;
            let chunk_share = state.consumed_in_chunk as f64 / chunk.len() as f64;
            progress.update(&state, chunk_bytes.0 + ((chunk_bytes.1 - chunk_bytes.0) as f64 * chunk_share) as u64);
            let due = match options.checkpoint_every {
                CheckpointInterval::Sequences(every) => state.sequences_seen - last_checkpoint.1 >= every,
                CheckpointInterval::Every(every) => last_checkpoint.0.elapsed() >= every,
            };
            if due {
                state.elapsed_seconds = elapsed_before + started.elapsed().as_secs_f64();
                save_checkpoint(out, &mut state, &variables, &trainer.optimizer, &encoder, stream.skipped)?;
                last_checkpoint = (Instant::now(), state.sequences_seen);
            }
        }
        if state.consumed_in_chunk == chunk.len() {
            state.chunk_index += 1;
            state.chunk_start = stream.position;
            state.chunk_start_skipped = stream.skipped;
            state.consumed_in_chunk = 0;
        }
    };
    progress.finish();
    state.elapsed_seconds = elapsed_before + started.elapsed().as_secs_f64();
    let manifest = save_checkpoint(out, &mut state, &variables, &trainer.optimizer, &encoder, stream.skipped)?;
    let seconds = started.elapsed().as_secs_f64();
    eprintln!(
        "stopped: {stop_reason}; {} sequences in all, language-model loss {:.4} (perplexity {:.1}); \
         {} held-out and {} unusable corpus lines skipped; this run {:.0} s",
        manifest.sequences_seen,
        manifest.loss,
        manifest.loss.exp(),
        manifest.skipped.held_out,
        manifest.skipped.unusable,
        seconds
    );
    Ok(manifest)
}

/// The progress bar: over sequences when capped by count (the total is known), else over the
/// corpus' compressed bytes.
struct RunProgress {
    bar: ProgressBar,
    by_sequences: bool,
}

impl RunProgress {
    fn new(options: &PretrainOptions, stream: &CorpusStream<'_>, sequences_seen: u64) -> RunProgress {
        if !options.show_progress {
            return RunProgress { bar: ProgressBar::hidden(), by_sequences: false };
        }
        let (bar, by_sequences, template) = match options.max_sequences {
            Some(cap) => {
                (ProgressBar::new(cap), true, "pretrain [{bar:30}] {pos}/{len} sequences  {per_sec}  eta {eta}  {msg}")
            }
            None => (
                ProgressBar::new(stream.total_bytes() * options.passes as u64),
                false,
                "pretrain [{bar:30}] {bytes}/{total_bytes} of the corpus  eta {eta}  {msg}",
            ),
        };
        bar.set_style(
            ProgressStyle::with_template(template).expect("progress template is valid").progress_chars("=> "),
        );
        bar.set_position(if by_sequences { sequences_seen } else { stream.bytes_read() });
        // A resumed run starts part-way: the rate must be measured from here, not from zero.
        bar.reset_eta();
        RunProgress { bar, by_sequences }
    }

    fn update(&self, state: &CheckpointState, bytes_read: u64) {
        self.bar.set_position(if self.by_sequences { state.sequences_seen } else { bytes_read });
        let recent_loss = state.loss_since_record / state.sequences_since_record.max(1) as f64;
        self.bar.set_message(format!("{} sequences  lm loss {recent_loss:.3}", state.sequences_seen));
    }

    fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn read_checkpoint(out: &Path, settings: &PretrainSettings) -> anyhow::Result<Option<CheckpointState>> {
    let path = out.join(CHECKPOINT_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(error) => return Err(error).with_context(|| format!("failed to read {}", path.display())),
    };
    let state: CheckpointState = serde_json::from_str(&text).with_context(|| {
        format!("failed to parse checkpoint {} (remove {} to start over)", path.display(), out.display())
    })?;
    ensure!(
        state.format_version == CHECKPOINT_FORMAT_VERSION,
        "checkpoint {} has format version {}, this sentmon reads {CHECKPOINT_FORMAT_VERSION}: remove {} to start over",
        path.display(),
        state.format_version,
        out.display()
    );
    let differences = setting_differences(&state.settings, settings)?;
    if !differences.is_empty() {
        bail!(
            "{} holds a checkpoint of a different run ({}): rerun with the checkpoint's settings to resume it, \
             or give another --out (or remove {}) to start a new one",
            out.display(),
            differences.join("; "),
            out.display()
        );
    }
    Ok(Some(state))
}

/// "name: checkpoint X, now Y" for each setting that differs.
fn setting_differences(checkpoint: &PretrainSettings, now: &PretrainSettings) -> anyhow::Result<Vec<String>> {
    let (serde_json::Value::Object(before), serde_json::Value::Object(after)) =
        (serde_json::to_value(checkpoint)?, serde_json::to_value(now)?)
    else {
        bail!("settings serialise as JSON objects");
    };
    Ok(before
        .iter()
        .filter(|(name, value)| after.get(*name) != Some(*value))
        .map(|(name, value)| {
            format!("{name}: checkpoint {value}, now {}", after.get(name).unwrap_or(&serde_json::Value::Null))
        })
        .collect())
}

fn load_checkpoint_weights(
    out: &Path,
    state: &CheckpointState,
    variables: &VarStore,
    optimizer: &mut Adam,
) -> anyhow::Result<()> {
    let path = out.join(&state.weights_file);
    let stored = Tensor::read_safetensors(&path)
        .with_context(|| format!("failed to read checkpoint weights {}", path.display()))?;
    let stored: std::collections::HashMap<String, Tensor> = stored.into_iter().collect();
    let mut targets: Vec<(String, Tensor)> = variables.variables().into_iter().collect();
    targets.extend(optimizer.state());
    for (name, mut target) in targets {
        let Some(tensor) = stored.get(&name) else {
            bail!("checkpoint weights {} lack {name:?}: remove {} to start over", path.display(), out.display());
        };
        ensure!(
            tensor.size() == target.size(),
            "checkpoint weights {}: {name:?} has shape {:?}, expected {:?}",
            path.display(),
            tensor.size(),
            target.size()
        );
        tch::no_grad(|| target.copy_(tensor));
    }
    optimizer.steps = state.optimizer_steps;
    Ok(())
}

/// Writes the checkpoint (all variables and the optimizer's moments, then `checkpoint.json`,
/// which names the weights file: renaming it into place is what commits the checkpoint) and the
/// artefact, so the output directory is a usable encoder from the first checkpoint on. Closes the
/// loss stretch into the history.
fn save_checkpoint(
    out: &Path,
    state: &mut CheckpointState,
    variables: &VarStore,
    optimizer: &Adam,
    encoder: &TextEncoder,
    skipped: SkippedLines,
) -> anyhow::Result<EncoderManifest> {
    if state.sequences_since_record > 0 {
        state.history.push(LossRecord {
            sequences: state.sequences_seen,
            loss: state.loss_since_record / state.sequences_since_record as f64,
        });
        state.loss_since_record = 0.0;
        state.sequences_since_record = 0;
    }
    let previous_weights = std::mem::take(&mut state.weights_file);
    let weights_file = format!("checkpoint-{}.safetensors", state.sequences_seen);
    let mut tensors: Vec<(String, Tensor)> = variables.variables().into_iter().collect();
    tensors.extend(optimizer.state());
    tensors.sort_by(|left, right| left.0.cmp(&right.0));
    write_atomically(&out.join(&weights_file), |path| Ok(Tensor::write_safetensors(&tensors, path)?))?;
    state.weights_file = weights_file;
    let json = serde_json::to_string_pretty(state)? + "\n";
    write_atomically(&out.join(CHECKPOINT_FILE), |path| Ok(std::fs::write(path, &json)?))?;
    if !previous_weights.is_empty() && previous_weights != state.weights_file {
        // The new checkpoint is committed; a failure here leaves only a stale file behind.
        let _ = std::fs::remove_file(out.join(previous_weights));
    }
    write_artefact(out, state, variables, encoder, skipped)
}

fn write_artefact(
    out: &Path,
    state: &CheckpointState,
    variables: &VarStore,
    encoder: &TextEncoder,
    skipped: SkippedLines,
) -> anyhow::Result<EncoderManifest> {
    let mut encoder_tensors: Vec<(String, Tensor)> = variables
        .variables()
        .into_iter()
        .filter(|(name, _)| {
            ENCODER_PARTS.iter().any(|part| name.strip_prefix(part).is_some_and(|rest| rest.starts_with('.')))
        })
        .collect();
    encoder_tensors.sort_by(|left, right| left.0.cmp(&right.0));
    let weights_path = out.join(ENCODER_WEIGHTS_FILE);
    write_atomically(&weights_path, |path| Ok(Tensor::write_safetensors(&encoder_tensors, path)?))?;
    let manifest = EncoderManifest {
        format: ENCODER_FORMAT.to_owned(),
        format_version: ENCODER_FORMAT_VERSION,
        created_at: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        vocab_size: encoder.vocab().len() as i64,
        embedding_dim: state.settings.embedding_dim,
        hidden_size: state.settings.hidden_size,
        weights_sha256: file_sha256(&weights_path)?,
        settings: state.settings.clone(),
        data_files: state.data_files.clone(),
        sequences_seen: state.sequences_seen,
        optimizer_steps: state.optimizer_steps,
        loss: state.history.last().map_or(f64::NAN, |record| record.loss),
        history: state.history.clone(),
        skipped,
        elapsed_seconds: state.elapsed_seconds,
    };
    let json = serde_json::to_string_pretty(&manifest)? + "\n";
    write_atomically(&out.join(ENCODER_MANIFEST_FILE), |path| Ok(std::fs::write(path, &json)?))?;
    Ok(manifest)
}

/// Writes through `NAME.tmp` and renames into place, so a crash never leaves a half-written file.
fn write_atomically(path: &Path, write: impl FnOnce(&Path) -> anyhow::Result<()>) -> anyhow::Result<()> {
    let mut temporary_name = path.file_name().unwrap_or_default().to_os_string();
    temporary_name.push(".tmp");
    let temporary_path = path.with_file_name(temporary_name);
    write(&temporary_path).with_context(|| format!("failed to write {}", temporary_path.display()))?;
    std::fs::rename(&temporary_path, path)
        .with_context(|| format!("failed to move {} to {}", temporary_path.display(), path.display()))
}

/// An encoder artefact read back for `train --init-from`.
pub struct EncoderArtefact {
    pub directory: PathBuf,
    pub manifest: EncoderManifest,
    /// SHA-256 of `encoder.json`, which names the weights' own digest.
    pub manifest_sha256: String,
    pub encoder: TextEncoder,
}

/// What a trained bundle records of the artefact it started from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EncoderOrigin {
    pub path: String,
    pub manifest_sha256: String,
    pub sequences_seen: u64,
    pub corpus: Vec<String>,
}

impl EncoderArtefact {
    pub fn read(directory: &Path) -> anyhow::Result<EncoderArtefact> {
        let manifest_path = directory.join(ENCODER_MANIFEST_FILE);
        let text = std::fs::read_to_string(&manifest_path).with_context(|| {
            format!(
                "failed to read {} (is {} an encoder from `sentmon pretrain`?)",
                manifest_path.display(),
                directory.display()
            )
        })?;
        let manifest: EncoderManifest =
            serde_json::from_str(&text).with_context(|| format!("failed to parse {}", manifest_path.display()))?;
        ensure!(
            manifest.format == ENCODER_FORMAT && manifest.format_version == ENCODER_FORMAT_VERSION,
            "{} is format {:?} version {}, this sentmon reads {ENCODER_FORMAT:?} version {ENCODER_FORMAT_VERSION}",
            manifest_path.display(),
            manifest.format,
            manifest.format_version
        );
        let weights_sha256 = file_sha256(&directory.join(ENCODER_WEIGHTS_FILE))?;
        ensure!(
            weights_sha256 == manifest.weights_sha256,
            "{} does not match {} (SHA-256 {weights_sha256}, the manifest says {}): the artefact is incomplete or was changed",
            directory.join(ENCODER_WEIGHTS_FILE).display(),
            manifest_path.display(),
            manifest.weights_sha256
        );
        let encoder = TextEncoder::load_json(&directory.join(ENCODER_TOKENIZER_FILE))?;
        ensure!(
            encoder.vocab().len() as i64 == manifest.vocab_size,
            "{} has {} tokens but {} says vocab_size {}",
            directory.join(ENCODER_TOKENIZER_FILE).display(),
            encoder.vocab().len(),
            manifest_path.display(),
            manifest.vocab_size
        );
        Ok(EncoderArtefact {
            directory: directory.to_path_buf(),
            manifest,
            manifest_sha256: file_sha256(&manifest_path)?,
            encoder,
        })
    }

    /// Refuses sizes that differ from the artefact's, naming both and the fix.
    /// The token embedding width the encoder was pretrained with.
    pub fn embedding_dim(&self) -> i64 {
        self.manifest.embedding_dim
    }

    pub fn check_sizes(&self, embedding_dim: i64, hidden_size: i64) -> anyhow::Result<()> {
        let directory = self.directory.display();
        let mut problems = Vec::new();
        for (option, artefact_value, requested) in [
            ("embedding-dim", self.manifest.embedding_dim, embedding_dim),
            ("hidden-size", self.manifest.hidden_size, hidden_size),
        ] {
            if artefact_value != requested {
                problems.push(format!(
                    "the encoder has {} {artefact_value} but --{option} is {requested}: pass --{option} {artefact_value}, \
                     or pretrain an encoder with --{option} {requested}",
                    option.replace('-', "_")
                ));
            }
        }
        ensure!(problems.is_empty(), "--init-from {directory}: {}", problems.join("; "));
        Ok(())
    }

    /// The artefact's vocabulary with the training run's own encoder settings (token limit,
    /// n-gram features), which pretraining does not depend on.
    pub fn text_encoder(&self, config: &EncoderConfig) -> anyhow::Result<TextEncoder> {
        let vocab = self.encoder.vocab().clone();
        let config = EncoderConfig { max_vocab_size: vocab.len(), ..config.clone() };
        TextEncoder::with_vocab(config, vocab)
            .with_context(|| format!("--init-from {}: the encoder's vocabulary", self.directory.display()))
    }

    /// Copies the embedding and both LSTMs into a network built with this artefact's vocabulary
    /// and sizes.
    pub(super) fn load_into(&self, variables: &VarStore) -> anyhow::Result<()> {
        let path = self.directory.join(ENCODER_WEIGHTS_FILE);
        let stored = Tensor::read_safetensors(&path).with_context(|| format!("failed to read {}", path.display()))?;
        let mut targets = variables.variables();
        for part in ENCODER_PARTS {
            ensure!(
                stored.iter().any(|(name, _)| name.starts_with(&format!("{part}."))),
                "{} has no {part} weights: it is not a complete encoder",
                path.display()
            );
        }
        for (name, tensor) in stored {
            let Some(target) = targets.get_mut(&name) else {
                bail!("{} holds {name:?}, which the network does not have", path.display());
            };
            ensure!(
                tensor.size() == target.size(),
                "{}: {name:?} has shape {:?}, the network expects {:?}",
                path.display(),
                tensor.size(),
                target.size()
            );
            tch::no_grad(|| target.copy_(&tensor.to_kind(target.kind())));
        }
        Ok(())
    }

    pub fn origin(&self) -> EncoderOrigin {
        EncoderOrigin {
            path: self.directory.display().to_string(),
            manifest_sha256: self.manifest_sha256.clone(),
            sequences_seen: self.manifest.sequences_seen,
            corpus: self.manifest.settings.corpus.iter().map(|file| file.name.clone()).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;
    use crate::model::train::{self, ClassWeighting, TrainingExample, TrainingOptions, TrainingSet};

    const WORDS: [&str; 12] =
        ["fed", "rates", "stocks", "rally", "slide", "oil", "bank", "profit", "warning", "shares", "jump", "fall"];

    /// The i-th corpus text: a few words drawn by a fixed pattern, so the language model has
    /// something to learn and every text is distinct.
    fn corpus_text(index: usize) -> String {
        let words: Vec<&str> =
            (0..6).map(|position| WORDS[(index * (position + 3) + position) % WORDS.len()]).collect();
        format!("{} #{index}", words.join(" "))
    }

    /// A `.jsonl.gz` corpus of `count` texts, plus one line that is not JSON and one held-out text.
    fn write_corpus(directory: &Path, count: usize) -> PathBuf {
        let path = directory.join("corpus.jsonl.gz");
        let mut gzip = GzEncoder::new(File::create(&path).unwrap(), Compression::default());
        for index in 0..count {
            writeln!(gzip, "{}", serde_json::json!({ "text": corpus_text(index), "date": "2015-01-02" })).unwrap();
            if index == 3 {
                writeln!(gzip, "not json").unwrap();
                writeln!(gzip, "{}", serde_json::json!({ "text": "HELD-OUT headline: Oil slides!" })).unwrap();
            }
        }
        gzip.finish().unwrap();
        path
    }

    fn labelled() -> LabelledTexts {
        LabelledTexts {
            train: vec!["fed rates rally".to_owned(), "oil profit warning".to_owned()],
            held_out: vec!["held-out headline oil slides".to_owned()],
            data_digest: "test".to_owned(),
            data_files: Vec::new(),
            split: SplitFractions::default(),
        }
    }

    fn tiny_options(corpus: PathBuf) -> PretrainOptions {
        PretrainOptions {
            corpus_files: vec![corpus],
            text_field: "text".to_owned(),
            passes: 1,
            max_sequences: None,
            max_duration: None,
            checkpoint_every: CheckpointInterval::Sequences(1_000_000),
            vocab_sample: 1000,
            encoder: EncoderConfig { feature_buckets: 64, ..EncoderConfig::default() },
            embedding_dim: 8,
            hidden_size: 6,
            // No dropout: tests run in parallel threads and torch's generator is process-wide, so
            // only weights that never draw from it can be compared exactly.
            dropout: 0.0,
            token_dropout: 0.0,
            language_model_vocab: 20,
            batch_size: 4,
            learning_rate: 1e-2,
            gradient_clip_norm: 1.0,
            seed: 3,
            show_progress: false,
            interrupt: None,
        }
    }

    fn encoder_weights(directory: &Path) -> Vec<(String, Tensor)> {
        let mut weights = Tensor::read_safetensors(directory.join(ENCODER_WEIGHTS_FILE)).unwrap();
        weights.sort_by(|left, right| left.0.cmp(&right.0));
        weights
    }

    #[test]
    fn a_gzip_corpus_is_streamed_skipping_unusable_and_held_out_lines() {
        let directory = tempfile::tempdir().unwrap();
        let corpus = write_corpus(directory.path(), 30);
        let out = directory.path().join("encoder");
        let manifest = pretrain(&labelled(), &tiny_options(corpus), &out).unwrap();
        assert_eq!(manifest.sequences_seen, 30, "every usable line once");
        assert_eq!(manifest.skipped, SkippedLines { held_out: 1, unusable: 1 });
        assert_eq!(manifest.settings.corpus[0].name, "corpus.jsonl.gz");
        assert!(manifest.loss.is_finite() && manifest.loss > 0.0, "loss {}", manifest.loss);
        let names: Vec<String> = encoder_weights(&out).into_iter().map(|(name, _)| name).collect();
        assert!(names.iter().all(|name| ENCODER_PARTS.iter().any(|part| name.starts_with(part))), "{names:?}");
        assert!(names.contains(&"token_embedding.weight".to_owned()), "{names:?}");
        let artefact = EncoderArtefact::read(&out).unwrap();
        assert_eq!(artefact.manifest.weights_sha256, file_sha256(&out.join(ENCODER_WEIGHTS_FILE)).unwrap());
        assert!(artefact.encoder.vocab().id("rally").is_some(), "corpus and labelled words are in the vocabulary");
    }

    #[test]
    fn the_sequence_cap_stops_exactly_and_a_resumed_run_equals_an_uninterrupted_one() {
        let directory = tempfile::tempdir().unwrap();
        let corpus = write_corpus(directory.path(), 60);
        let capped = |cap: u64| PretrainOptions { max_sequences: Some(cap), ..tiny_options(corpus.clone()) };

        let uninterrupted = directory.path().join("uninterrupted");
        // 27 is not a multiple of the batch size: the last batch is cut to the cap.
        assert_eq!(pretrain(&labelled(), &capped(27), &directory.path().join("odd")).unwrap().sequences_seen, 27);
        let whole = pretrain(&labelled(), &capped(40), &uninterrupted).unwrap();
        assert_eq!(whole.sequences_seen, 40);

        let resumed = directory.path().join("resumed");
        let first = pretrain(&labelled(), &capped(20), &resumed).unwrap();
        assert_eq!(first.sequences_seen, 20);
        let checkpoint: CheckpointState =
            serde_json::from_str(&std::fs::read_to_string(resumed.join(CHECKPOINT_FILE)).unwrap()).unwrap();
        assert_eq!((checkpoint.sequences_seen, checkpoint.consumed_in_chunk), (20, 20));
        let second = pretrain(&labelled(), &capped(40), &resumed).unwrap();
        assert_eq!(second.sequences_seen, 40, "the count continues from the checkpoint");
        assert_eq!(second.optimizer_steps, whole.optimizer_steps);
        assert_eq!(second.history.iter().map(|record| record.sequences).collect::<Vec<_>>(), [20, 40]);
        for ((name, left), (_, right)) in encoder_weights(&uninterrupted).iter().zip(encoder_weights(&resumed).iter()) {
            assert!(left.equal(right), "{name} differs between the resumed and the uninterrupted run");
        }
        let stale: Vec<_> = std::fs::read_dir(&resumed)
            .unwrap()
            .filter_map(|entry| entry.unwrap().file_name().into_string().ok())
            .filter(|name| name.starts_with("checkpoint-") || name.ends_with(".tmp"))
            .collect();
        assert_eq!(stale, ["checkpoint-40.safetensors"], "only the newest checkpoint's weights stay");
    }

    #[test]
    fn an_interrupted_run_writes_a_checkpoint_that_resumes() {
        static INTERRUPT: AtomicBool = AtomicBool::new(true);
        let directory = tempfile::tempdir().unwrap();
        let corpus = write_corpus(directory.path(), 12);
        let out = directory.path().join("encoder");
        let interrupted = PretrainOptions { interrupt: Some(&INTERRUPT), ..tiny_options(corpus.clone()) };
        assert_eq!(pretrain(&labelled(), &interrupted, &out).unwrap().sequences_seen, 0);
        assert!(out.join(CHECKPOINT_FILE).exists() && out.join(ENCODER_MANIFEST_FILE).exists());
        assert_eq!(pretrain(&labelled(), &tiny_options(corpus), &out).unwrap().sequences_seen, 12);
    }

    #[test]
    fn a_checkpoint_of_other_settings_is_refused_naming_what_differs() {
        let directory = tempfile::tempdir().unwrap();
        let corpus = write_corpus(directory.path(), 12);
        let out = directory.path().join("encoder");
        pretrain(&labelled(), &PretrainOptions { max_sequences: Some(8), ..tiny_options(corpus.clone()) }, &out)
            .unwrap();
        let other = PretrainOptions { hidden_size: 7, ..tiny_options(corpus) };
        let error = format!("{:#}", pretrain(&labelled(), &other, &out).unwrap_err());
        assert!(error.contains("hidden_size: checkpoint 6, now 7"), "{error}");
        assert!(error.contains("another --out"), "{error}");
    }

    #[test]
    fn checkpoint_intervals_and_durations_parse_with_units() {
        assert_eq!("5000".parse(), Ok(CheckpointInterval::Sequences(5000)));
        assert_eq!("10m".parse(), Ok(CheckpointInterval::Every(Duration::from_secs(600))));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("90"), Ok(Duration::from_secs(90)));
        for bad in ["", "0", "5x", "m", "10m5"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should not parse");
        }
        assert!("0".parse::<CheckpointInterval>().is_err());
    }

    fn training_options(init_from: Option<PathBuf>, hidden_size: i64) -> TrainingOptions {
        TrainingOptions {
            epochs: 0,
            patience: 1,
            batch_size: 4,
            learning_rate: 1e-3,
            weight_decay: 0.0,
            gradient_clip_norm: 1.0,
            class_weighting: ClassWeighting::None,
            pretrain_epochs: 0,
            pretrain_learning_rate: 1e-3,
            language_model_vocab: 20,
            embedding_dim: Some(8),
            hidden_size,
            feature_dim: 4,
            dropout: 0.0,
            token_dropout: 0.0,
            encoder: EncoderConfig { feature_buckets: 128, ..EncoderConfig::default() },
            word_vectors: None,
            word_vector_vocab: 0,
            embedding_learning_rate_scale: 1.0,
            init_from,
            distillation_weights: Default::default(),
            transfer_per_epoch: None,
            seed: 1,
            show_progress: false,
        }
    }

    fn training_set() -> TrainingSet {
        let example = |text: &str, topic: Option<usize>, sentiment: Option<usize>| TrainingExample {
            text: text.to_owned(),
            topic,
            sentiment,
            teacher: None,
        };
        TrainingSet {
            topic_labels: vec!["Macro".to_owned(), "Energy".to_owned()],
            train: vec![
                example("fed rates rally", Some(0), None),
                example("oil profit warning", Some(1), None),
                example("shares jump", None, Some(2)),
            ],
            validation: vec![example("bank shares fall", None, Some(0))],
            test: vec![example("oil stocks slide", Some(1), None)],
            data_digest: "test".to_owned(),
            data_files: Vec::new(),
            soft_target_files: Vec::new(),
        }
    }

    #[test]
    fn train_init_from_starts_from_the_encoder_and_records_it() {
        let directory = tempfile::tempdir().unwrap();
        let corpus = write_corpus(directory.path(), 20);
        let out = directory.path().join("encoder");
        pretrain(&labelled(), &tiny_options(corpus), &out).unwrap();
        let artefact = EncoderArtefact::read(&out).unwrap();

        // No fine-tuning epochs: the network must hold exactly the artefact's weights.
        let trained = train::train(&training_set(), &training_options(Some(out.clone()), 6)).unwrap();
        assert_eq!(trained.encoder.vocab(), artefact.encoder.vocab(), "the artefact's vocabulary is used");
        let variables = trained.variables.variables();
        for (name, tensor) in encoder_weights(&out) {
            assert!(variables[&name].equal(&tensor), "{name} was not loaded from the artefact");
        }
        let origin = trained.manifest.training.init_from.expect("the bundle records its encoder");
        assert_eq!(origin.manifest_sha256, file_sha256(&out.join(ENCODER_MANIFEST_FILE)).unwrap());
        assert_eq!(origin.path, out.display().to_string());
        assert_eq!(origin.sequences_seen, 20);

        let from_scratch = train::train(&training_set(), &training_options(None, 6)).unwrap();
        assert!(from_scratch.manifest.training.init_from.is_none());
        assert_ne!(from_scratch.encoder.vocab(), artefact.encoder.vocab());
    }

    /// `train --pretrain-epochs` runs through the same language-model step as `sentmon pretrain`.
    #[test]
    fn train_pretrain_epochs_lower_the_language_model_loss() {
        let options = TrainingOptions { pretrain_epochs: 3, pretrain_learning_rate: 1e-2, ..training_options(None, 6) };
        let trained = train::train(&training_set(), &options).unwrap();
        let losses: Vec<f64> = trained
            .manifest
            .training
            .history
            .iter()
            .filter(|record| record.phase == "pretrain")
            .map(|record| record.train_loss)
            .collect();
        assert_eq!(losses.len(), 3);
        assert!(losses[0] > losses[1] && losses[1] > losses[2], "language-model loss should fall: {losses:?}");
    }

    #[test]
    fn a_size_mismatch_names_both_values_and_the_fix() {
        let directory = tempfile::tempdir().unwrap();
        let corpus = write_corpus(directory.path(), 8);
        let out = directory.path().join("encoder");
        pretrain(&labelled(), &tiny_options(corpus), &out).unwrap();
        let error = train::train(&training_set(), &training_options(Some(out), 16)).err().expect("sizes differ");
        let message = format!("{error:#}");
        assert!(message.contains("hidden_size 6 but --hidden-size is 16"), "{message}");
        assert!(message.contains("pass --hidden-size 6"), "{message}");
        assert!(!message.contains("embedding"), "only the size that differs is named: {message}");
    }
}
