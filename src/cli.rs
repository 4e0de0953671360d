//! Command-line interface: every subcommand, its options, defaults and help text.

use std::path::PathBuf;

use clap::builder::TypedValueParser as _;
use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::dataset::Task;
use crate::model::distill::DistillationWeights;
use crate::model::train::ClassWeighting;

/// Where the shipped model lives relative to the working directory (a checkout or an install
/// prefix); override with --model or SENTMON_MODEL.
pub const DEFAULT_MODEL_DIR: &str = "models/default";

#[derive(Debug, Parser)]
#[command(
    name = "sentmon",
    version,
    about = "Financial public-opinion monitor: tags news and comments with a topic and a sentiment using an LSTM, and raises negative-spike alerts",
    long_about = None,
    after_help = "Examples:\n  sentmon classify examples/headlines.txt\n  sentmon train --data ../shared/data/en --out models/candidate --pretrain-epochs 2\n  sentmon eval --model models/candidate --data held-out.jsonl --task sentiment --json"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log filter (tracing EnvFilter syntax, e.g. "info" or "sentmon=debug"); RUST_LOG also works.
    #[arg(long, global = true, default_value = "info", env = "SENTMON_LOG")]
    pub log_level: String,
    /// Log format: human-readable text, or one JSON object per line for log collectors.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: consume Kafka, classify, emit enriched records and alerts, serve /metrics.
    Run(RunArgs),
    /// Zero-setup demo: an embedded broker, a generated headline stream with a negative spike, the full pipeline.
    Demo(DemoArgs),
    /// Validate a config file (every problem at once) and print the effective config, secrets redacted.
    CheckConfig(CheckConfigArgs),
    /// Host an embedded Kafka-protocol broker (librdkafka's mock cluster) for other processes.
    Broker(BrokerArgs),
    /// Replay a JSONL archive into a Kafka topic at a given rate.
    Replay(ReplayArgs),
    /// Train a topic + sentiment model bundle from labelled archives.
    Train(Box<TrainArgs>),
    /// Pretrain the embedding and LSTMs as language models on a large unlabelled corpus, into an encoder for `train --init-from`.
    #[command(
        after_help = "Streams the corpus (never loaded whole), shuffling it in chunks of 4,096 texts. OUT holds the encoder \
                      (encoder.json, encoder.safetensors, tokenizer.json) from the first checkpoint on, and checkpoint.json: \
                      run the same command again to resume, with a new --max-sequences or --max-duration to go further. \
                      Ctrl-C (or SIGTERM) writes a checkpoint at the next batch before stopping; a second one stops at once.\n\n\
                      Example:\n  sentmon pretrain --corpus ../shared/data/unlabelled/en/stocknet_tweets.jsonl.gz \
                      --data ../shared/data/en --out models/encoder --max-duration 30m\n  \
                      sentmon train --data ../shared/data/en --init-from models/encoder --out models/candidate"
    )]
    Pretrain(Box<PretrainArgs>),
    /// Score a model bundle on labelled data: accuracy, macro-F1, per-class figures, confusion matrix.
    Eval(EvalArgs),
    /// Classify texts (JSONL with a "text" field, or plain lines) and print one JSON line per input.
    Classify(ClassifyArgs),
    /// Write the train/validation/test split that `train` uses, for comparing outside baselines.
    Split(SplitArgs),
    /// Manage the model registry: list versions, add a bundle, promote, roll back.
    #[command(subcommand)]
    Models(ModelsCommand),
    /// Train on [retrain] data, score against the promoted model, promote if the gate passes.
    #[command(
        after_help = "Reads [model] path (a registry) and [retrain] from the same config file as `sentmon run`.\nRun it from cron, a systemd timer or a Kubernetes CronJob, or let the daemon run it (retrain.interval_secs).\nA running daemon picks the promoted model up within model.watch_interval_secs, or at once on SIGHUP."
    )]
    Retrain(RetrainArgs),
    /// Work with the stream archive that `run` writes ([archive] in the config).
    Archive(ArchiveArgs),
    /// Run the daemon's windows and detector over a recorded stream: every alert that would have fired, alerts per week.
    #[command(
        after_help = "Input: the stream archive ([archive] of `run`: its `predicted` fields are reused, no model is \
                      loaded) or any JSONL with `text` and `ts` (RFC 3339, epoch milliseconds or seconds), classified \
                      with --model in batches. Rows should be in roughly event-time order, as the archive is: a row \
                      older than windows.allowed_lateness_secs behind the newest is late and left out, as the daemon \
                      would. Windows and detector settings come from --config (the daemon's file: only [windows] and \
                      [detector] are used, and the whole file is validated) or the defaults.\n\n\
                      Prints every alert (fired, resolved, what rose) and alerts per week per scope; --json writes the \
                      whole report for tools, --html a self-contained page with a timeline per alerting scope.\n\n\
                      Examples:\n  sentmon backtest /var/lib/sentmon/archive --config /etc/sentmon/sentmon.toml \
                      --watchlist examples/watchlist.toml --html backtest.html\n  sentmon backtest headlines.jsonl.gz --json backtest.json\n  \
                      (edit [detector] in a copy of the config, run again, compare alerts per week)"
    )]
    Backtest(BacktestArgs),
}

#[derive(Debug, Subcommand)]
pub enum ModelsCommand {
    /// List the registry's versions, oldest first, with their figures; the promoted one is marked.
    List(RegistryArgs),
    /// Copy a bundle directory into the registry under its version (creating the registry if needed).
    Add(ModelsAddArgs),
    /// Point the registry at VERSION; a watching daemon swaps it in. An operator's override: no gate.
    Promote(ModelsPromoteArgs),
    /// Promote the version that was promoted before the current one.
    Rollback(RegistryArgs),
}

#[derive(Debug, Args)]
pub struct RegistryArgs {
    /// Registry directory (the daemon's [model] path).
    #[arg(long, value_name = "DIR", env = "SENTMON_REGISTRY")]
    pub registry: PathBuf,
}

#[derive(Debug, Args)]
pub struct ModelsAddArgs {
    /// Bundle directory to add (model.json, tokenizer.json, weights.safetensors).
    #[arg(value_name = "BUNDLE_DIR")]
    pub bundle: PathBuf,
    #[command(flatten)]
    pub registry: RegistryArgs,
    /// Also promote it.
    #[arg(long)]
    pub promote: bool,
    /// Seed the registry: do nothing if it already has a promoted version, else add the bundle
    /// (unless its version is there already) and promote it. Safe to run at every start, as the
    /// Kubernetes init container and the systemd unit do.
    #[arg(long, requires = "promote")]
    pub if_absent: bool,
}

#[derive(Debug, Args)]
pub struct ModelsPromoteArgs {
    /// Version to promote (see `sentmon models list`).
    #[arg(value_name = "VERSION")]
    pub version: String,
    #[command(flatten)]
    pub registry: RegistryArgs,
}

#[derive(Debug, Args)]
pub struct RetrainArgs {
    /// TOML config file, the same one `sentmon run` reads; SENTMON__SECTION__KEY variables override it.
    #[arg(long, short, value_name = "FILE", env = "SENTMON_CONFIG")]
    pub config: PathBuf,
}

/// `sentmon train` options parsed from a list (`[retrain] train_options`), with the data,
/// output, thread count and starting encoder that retrain manages put in front. Parsing with the same clap
/// definition keeps one source of truth for training options and their defaults.
pub fn parse_train_options(
    data: &[PathBuf],
    out: &std::path::Path,
    threads: usize,
    init_from: Option<&std::path::Path>,
    extra: &[String],
) -> Result<TrainArgs, clap::Error> {
    #[derive(Parser)]
    #[command(name = "train")]
    struct TrainCommandLine {
        #[command(flatten)]
        args: TrainArgs,
    }
    let mut command_line: Vec<std::ffi::OsString> = vec!["train".into(), "--data".into()];
    command_line.extend(data.iter().map(|path| path.as_os_str().to_owned()));
    command_line.extend(["--out".into(), out.as_os_str().to_owned(), "--threads".into(), threads.to_string().into()]);
    if let Some(encoder) = init_from {
        command_line.extend(["--init-from".into(), encoder.as_os_str().to_owned()]);
    }
    command_line.extend(extra.iter().map(Into::into));
    TrainCommandLine::try_parse_from(command_line).map(|parsed| parsed.args)
}

#[derive(Debug, Clone, Args)]
pub struct DataArgs {
    /// Labelled files or directories (JSONL/NDJSON, CSV, TSV; each may be .gz). Directories are read recursively.
    #[arg(long = "data", required = true, num_args = 1.., value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// Column (or JSON field) holding the text.
    #[arg(long, default_value = "text")]
    pub text_column: String,
    /// Column holding the topic label.
    #[arg(long, default_value = "topic")]
    pub topic_column: String,
    /// Column holding the sentiment label (negative, neutral or positive; case-insensitive).
    #[arg(long, default_value = "sentiment")]
    pub sentiment_column: String,
    /// Stop at the first bad row instead of reporting and skipping bad rows.
    #[arg(long)]
    pub strict: bool,
}

#[derive(Debug, Clone, Args)]
pub struct SplitFractionArgs {
    /// Share of texts held out for validation (early stopping), chosen by a hash of the normalised text.
    #[arg(long, default_value_t = 0.1)]
    pub validation_fraction: f64,
    /// Share of texts held out for the final test figures, never used for any training decision.
    #[arg(long, default_value_t = 0.1)]
    pub test_fraction: f64,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub split: SplitFractionArgs,
    /// Directory to write the bundle to (model.json, tokenizer.json, weights.safetensors).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Maximum fine-tuning epochs (early stopping usually ends sooner).
    #[arg(long, default_value_t = 30)]
    pub epochs: usize,
    /// Stop after this many epochs without a better validation macro-F1.
    #[arg(long, default_value_t = 4)]
    pub patience: usize,
    /// Language-model pretraining epochs over all training-split texts before fine-tuning (0: off).
    #[arg(long, default_value_t = 0)]
    pub pretrain_epochs: usize,
    /// Start from an encoder that `sentmon pretrain` wrote: its vocabulary (instead of one built
    /// from the training split, so --max-vocab-size and --min-token-count do not apply) and its
    /// embedding and LSTM weights. --embedding-dim and --hidden-size must match it.
    #[arg(long, value_name = "DIR")]
    pub init_from: Option<PathBuf>,
    /// Texts per training step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// AdamW learning rate for fine-tuning (halved on each epoch without improvement).
    #[arg(long, default_value_t = 2e-3)]
    pub learning_rate: f64,
    /// AdamW decoupled weight decay.
    #[arg(long, default_value_t = 1e-2)]
    pub weight_decay: f64,
    /// Adam learning rate for language-model pretraining.
    #[arg(long, default_value_t = 2e-3)]
    pub pretrain_learning_rate: f64,
    /// Most frequent tokens the pretraining language model predicts (rarer ones count as unknown).
    #[arg(long, default_value_t = 4000)]
    pub language_model_vocab: i64,
    /// Gradients are rescaled so their global L2 norm is at most this.
    #[arg(long, default_value_t = 1.0)]
    pub gradient_clip_norm: f64,
    /// How the loss weighs classes against their frequency.
    #[arg(long, value_enum, default_value_t = ClassWeighting::Balanced)]
    pub class_weighting: ClassWeighting,
    /// Token embedding width [default: 64, or the word vectors' width with --glove].
    #[arg(long)]
    pub embedding_dim: Option<i64>,
    /// Initialise the token embedding from pretrained word vectors (words.txt + vectors.npy, as
    /// scripts/setup.sh lays out GloVe 6B 50d in .glove/) and add their most frequent words to the
    /// vocabulary, so words never seen in the labelled data still carry meaning.
    #[arg(long, value_name = "DIR", num_args = 0..=1, default_missing_value = ".glove")]
    pub glove: Option<PathBuf>,
    /// With --glove: how many of the vectors' most frequent words join the vocabulary (beyond
    /// the training texts' own, which --max-vocab-size bounds).
    #[arg(long, default_value_t = 100_000)]
    pub glove_words: usize,
    /// The token embedding's learning rate as a share of --learning-rate: 1 fine-tunes it like
    /// the rest, 0 freezes it (only sensible with --glove), e.g. 0.1 fine-tunes it slowly.
    #[arg(long, default_value_t = 1.0)]
    pub embedding_lr_scale: f64,
    /// Teacher logits to distil from (JSONL, optionally .gz, one
    /// {"text": ..., "sentiment_logits": {"negative": 1.2, ...}} or "topic_logits" line per text,
    /// as scripts/teacher.py label writes). Training-split texts learn to match them beside their
    /// labels; texts that --data lacks join the training split as a transfer set when the
    /// split's hash puts them there. Held-out texts never train.
    #[arg(long, num_args = 1.., value_name = "FILE")]
    pub soft_targets: Vec<PathBuf>,
    /// Weight of matching the teacher's logits against the labels' cross-entropy: one number
    /// for both heads, or one per head, e.g. topic=1,sentiment=2 (a head left out keeps 1).
    #[arg(long, value_name = "W", default_value_t = DistillationWeights::default())]
    pub distill_weight: DistillationWeights,
    /// Transfer texts (teacher logits, no label) drawn afresh for each fine-tuning epoch [default:
    /// all]; every labelled text trains in every epoch. Bounds the epoch time of a large transfer set.
    #[arg(long, value_name = "N")]
    pub transfer_per_epoch: Option<usize>,
    /// LSTM hidden size per direction.
    #[arg(long, default_value_t = 128)]
    pub hidden_size: i64,
    /// Width of the hashed word/character n-gram bag embedding.
    #[arg(long, default_value_t = 32)]
    pub feature_dim: i64,
    /// Hash buckets of the n-gram bag.
    #[arg(long, default_value_t = 1 << 17)]
    pub feature_buckets: u32,
    /// Longest text in tokens; longer texts keep their first tokens.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Vocabulary size, special tokens included.
    #[arg(long, default_value_t = 20_000)]
    pub max_vocab_size: usize,
    /// A token enters the vocabulary when it occurs at least this often in the training split.
    #[arg(long, default_value_t = 2)]
    pub min_token_count: usize,
    /// Dropout on embeddings and the pooled representation while training.
    #[arg(long, default_value_t = 0.5)]
    pub dropout: f64,
    /// Share of tokens replaced by <unk> while training (word dropout).
    #[arg(long, default_value_t = 0.1)]
    pub token_dropout: f64,
    /// Seed for initialisation, shuffling and dropout: the same seed and data give the same model.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// libtorch compute threads for training (default: 1, as the daemon uses; more only helps
    /// with that many idle cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..).map(|threads| threads as usize))]
    pub threads: Option<usize>,
    /// Languages of the training texts, as ISO 639-1 codes (comma-separated), recorded in the bundle: the daemon,
    /// `classify` and `eval` answer null for messages in any other. Declared, not detected: a script test cannot
    /// tell English from German text, and whoever chose the data knows. Training stops when more than a tenth of
    /// the training texts are in a script these languages do not cover.
    #[arg(long, value_delimiter = ',', default_value = "en")]
    pub languages: Vec<String>,
}

#[derive(Debug, Args)]
pub struct PretrainArgs {
    /// Unlabelled corpus files, .jsonl or .jsonl.gz, one JSON object a line, read in this order.
    #[arg(long, required = true, num_args = 1.., value_name = "FILE")]
    pub corpus: Vec<PathBuf>,
    /// JSON field of a corpus line that holds its text.
    #[arg(long, default_value = "text")]
    pub text_field: String,
    /// The labelled data `train` will use: its training-split texts enter the vocabulary, and corpus
    /// texts equal to a validation or test text are skipped, so the held-out texts stay unseen.
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub split: SplitFractionArgs,
    /// Directory for the encoder and the checkpoint; a checkpoint there is resumed.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
    /// Stop after this many sequences (texts) in all, counting those of resumed runs.
    #[arg(long, value_name = "N")]
    pub max_sequences: Option<u64>,
    /// Stop this run after this long, e.g. 90s, 30m, 2h, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = crate::model::pretrain::parse_duration)]
    pub max_duration: Option<std::time::Duration>,
    /// Passes over the corpus at most (the caps may stop it sooner).
    #[arg(long, default_value_t = 1)]
    pub passes: usize,
    /// Write a checkpoint every N sequences (a plain number) or every so long (e.g. 10m), and at the end.
    #[arg(long, value_name = "N|DURATION", default_value = "10m")]
    pub checkpoint_every: crate::model::pretrain::CheckpointInterval,
    /// Corpus texts (the first ones) counted with the labelled training texts for the vocabulary.
    #[arg(long, default_value_t = 200_000)]
    pub vocab_sample: usize,
    /// Vocabulary size, special tokens included.
    #[arg(long, default_value_t = 20_000)]
    pub max_vocab_size: usize,
    /// A token enters the vocabulary when it occurs at least this often in those texts.
    #[arg(long, default_value_t = 2)]
    pub min_token_count: usize,
    /// Longest text in tokens; longer texts keep their first tokens.
    #[arg(long, default_value_t = 64)]
    pub max_tokens: usize,
    /// Token embedding width (`train --embedding-dim` must match).
    #[arg(long, default_value_t = 64)]
    pub embedding_dim: i64,
    /// LSTM hidden size per direction (`train --hidden-size` must match).
    #[arg(long, default_value_t = 128)]
    pub hidden_size: i64,
    /// Dropout on the embeddings while pretraining.
    #[arg(long, default_value_t = 0.1)]
    pub dropout: f64,
    /// Share of input tokens replaced by <unk> while pretraining.
    #[arg(long, default_value_t = 0.1)]
    pub token_dropout: f64,
    /// Most frequent tokens the language models predict (rarer ones count as unknown).
    #[arg(long, default_value_t = 4000)]
    pub language_model_vocab: i64,
    /// Texts per step.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
    /// Adam learning rate.
    #[arg(long, default_value_t = 2e-3)]
    pub learning_rate: f64,
    /// Gradients are rescaled so their global L2 norm is at most this.
    #[arg(long, default_value_t = 1.0)]
    pub gradient_clip_norm: f64,
    /// Seed for initialisation, shuffling and dropout.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// libtorch compute threads (default: all cores).
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Model bundle directory.
    #[arg(long, default_value = DEFAULT_MODEL_DIR, env = "SENTMON_MODEL")]
    pub model: PathBuf,
    #[command(flatten)]
    pub data: DataArgs,
    /// Evaluate one head only: topic or sentiment (default: every head whose labels the data has).
    #[arg(long, value_parser = parse_task)]
    pub task: Option<Task>,
    /// Print the report as one JSON object per task on the last line(s) instead of text.
    #[arg(long)]
    pub json: bool,
    /// Texts per forward pass.
    #[arg(long, default_value_t = EVAL_BATCH_SIZE)]
    pub batch_size: usize,
    /// libtorch compute threads (default: 1, as the daemon uses; more only helps with that many
    /// idle cores).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..).map(|threads| threads as usize))]
    pub threads: Option<usize>,
}

/// Texts per forward pass when scoring a model (`eval`, and the retrain gate).
pub const EVAL_BATCH_SIZE: usize = 256;

#[derive(Debug, Args)]
pub struct ClassifyArgs {
    /// Model bundle directory.
    #[arg(long, default_value = DEFAULT_MODEL_DIR, env = "SENTMON_MODEL")]
    pub model: PathBuf,
    /// Input file ("-" or nothing: standard input). Each line is a JSON object with a "text" field, or plain text.
    #[arg(value_name = "FILE", default_value = "-")]
    pub input: PathBuf,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 64)]
    pub batch_size: usize,
}

#[derive(Debug, Args)]
pub struct SplitArgs {
    #[command(flatten)]
    pub data: DataArgs,
    #[command(flatten)]
    pub split: SplitFractionArgs,
    /// Directory to write train.jsonl, validation.jsonl and test.jsonl to.
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

fn parse_task(value: &str) -> Result<Task, String> {
    value.parse::<Task>().map_err(|error| error.to_string())
}

#[derive(Debug, Args)]
pub struct RunArgs {
    /// TOML config file; SENTMON__SECTION__KEY environment variables override it.
    #[arg(long, short, value_name = "FILE", env = "SENTMON_CONFIG")]
    pub config: PathBuf,
}

#[derive(Debug, Args)]
pub struct CheckConfigArgs {
    /// TOML config file to validate (environment overrides apply, as for `run`).
    #[arg(value_name = "FILE")]
    pub config: PathBuf,
    /// Also ask the brokers whether every configured topic exists, as `run` does at start
    /// (exit 64 naming a missing topic; exit 1 if the brokers do not answer within 10 s).
    #[arg(long)]
    pub connect: bool,
}

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long, value_name = "SECONDS")]
    pub duration: Option<u64>,
    /// Model bundle directory.
    #[arg(long, default_value = DEFAULT_MODEL_DIR, env = "SENTMON_MODEL")]
    pub model: PathBuf,
    /// Address to serve /metrics, /healthz and /readyz on.
    #[arg(long, default_value = "127.0.0.1:9898")]
    pub http_listen: String,
    /// Generated messages per second.
    #[arg(long, default_value_t = 100.0)]
    pub rate: f64,
    /// Seconds after start when the negative spike begins.
    #[arg(long, default_value_t = 30)]
    pub spike_after: u64,
    /// Seconds the spike lasts.
    #[arg(long, default_value_t = 90)]
    pub spike_duration: u64,
    /// Topic that gets the negative spike (one of the model's topics).
    #[arg(long, default_value = "Fed | Central Banks")]
    pub spike_topic: String,
    /// Company whose mentions surge (at the usual negative share) while the spike lasts: the watchlist's volume
    /// test names it. One of the generator's companies and, to be watched, of the watchlist.
    #[arg(long, default_value = "JPMorgan Chase")]
    pub surge_entity: String,
    /// Watchlist of the entities the demo watches (default: the built-in copy of examples/watchlist.toml).
    #[arg(long, value_name = "FILE")]
    pub watchlist: Option<PathBuf>,
    /// Seed of the generated stream.
    #[arg(long, default_value_t = 7)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct BrokerArgs {
    /// Partitions of each topic given with --topic (topics created on first use get librdkafka's fixed 4).
    #[arg(long, default_value_t = 4)]
    pub partitions: i32,
    /// Topics to create up front.
    #[arg(long = "topic", value_name = "TOPIC")]
    pub topics: Vec<String>,
    /// Write the bootstrap address to this file once the broker is up (for scripts and tests).
    #[arg(long, value_name = "FILE")]
    pub address_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReplayArgs {
    /// JSONL archive to replay (one message per line, sent as-is; .gz accepted).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Topic to produce to.
    #[arg(long)]
    pub topic: String,
    /// Messages per second (0: as fast as the broker takes them).
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// Bootstrap servers, e.g. localhost:9092.
    #[arg(long, env = "SENTMON_BROKERS")]
    pub brokers: String,
    /// JSON field whose value becomes the Kafka message key (default: no key).
    #[arg(long)]
    pub key_field: Option<String>,
}

#[derive(Debug, Args)]
pub struct BacktestArgs {
    /// Archive directories (read recursively; .jsonl and .jsonl.gz files, in name order) or JSONL files.
    #[arg(required = true, value_name = "PATH")]
    pub paths: Vec<PathBuf>,
    /// The daemon's config file, for its [windows] and [detector] settings; the defaults without it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Model bundle that classifies rows without `predicted` fields (loaded only if there are any).
    #[arg(long, default_value = DEFAULT_MODEL_DIR, env = "SENTMON_MODEL")]
    pub model: PathBuf,
    /// Watchlist of entities (names, aliases, tickers; see examples/watchlist.toml): each watched name and each
    /// cashtag ($AAPL) that messages mention gets windows and a detector of its own, as a scope of the report.
    /// Without it, the --config file's [entities] settings apply.
    #[arg(long, value_name = "FILE")]
    pub watchlist: Option<PathBuf>,
    /// Classify every row with --model, ignoring archived predictions (to backtest another model).
    #[arg(long)]
    pub reclassify: bool,
    /// Write the report as JSON (every alert with its events, alerts per week per scope, timelines) to FILE.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML report with a timeline per alerting scope to FILE.
    #[arg(long, value_name = "FILE")]
    pub html: Option<PathBuf>,
    /// Texts per forward pass when classifying.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..=65_536).map(|size| size as usize))]
    pub batch_size: usize,
    /// libtorch threads when classifying. Default 1, as `eval`: more only pays on idle cores.
    #[arg(long)]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ArchiveArgs {
    #[command(subcommand)]
    pub command: ArchiveCommand,
}

#[derive(Debug, Subcommand)]
pub enum ArchiveCommand {
    /// Write a sample of archived messages as CSV for labelling (docs/LABELLING.md).
    #[command(
        after_help = "The CSV has empty topic and sentiment columns to fill, and the model's predictions as hints \
                      (predicted_*, ignored by training). Texts are deduplicated after normalisation (case, URLs, \
                      punctuation) and drawn equally from each predicted topic, so rare topics get labelled too.\n\n\
                      Example:\n  sentmon archive export --from /var/lib/sentmon/archive --sample 500 --out to-label.csv\n  \
                      (label it, then) sentmon train --data labelled.csv ../shared/data/en --out models/candidate"
    )]
    Export(ArchiveExportArgs),
}

#[derive(Debug, Args)]
pub struct ArchiveExportArgs {
    /// Archive directories (read recursively) or .jsonl.gz files; files being written (hidden .tmp) are skipped.
    #[arg(long = "from", required = true, num_args = 1.., value_name = "PATH")]
    pub from: Vec<PathBuf>,
    /// Rows to export (fewer when the archive has fewer distinct texts).
    #[arg(long, default_value_t = 500)]
    pub sample: usize,
    /// Seed of the sampling: the same archive and seed give the same rows.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// CSV file to write; an existing file is never replaced (it may hold labels).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    #[test]
    fn retrain_starts_training_from_its_configured_encoder() {
        let data = [PathBuf::from("labelled")];
        let extra = ["--epochs".to_owned(), "3".to_owned()];
        let args = parse_train_options(&data, Path::new("out"), 1, Some(Path::new("encoder")), &extra).unwrap();
        assert_eq!(args.init_from.as_deref(), Some(Path::new("encoder")));
        assert_eq!(args.epochs, 3);
        let without = parse_train_options(&data, Path::new("out"), 1, None, &extra).unwrap();
        assert_eq!(without.init_from, None);
    }
}
