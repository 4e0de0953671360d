//! `sentmon pretrain`: labelled data (for the vocabulary and the held-out texts to avoid) and an
//! unlabelled corpus -> language-model pretraining -> an encoder for `train --init-from`.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::cli::PretrainArgs;
use crate::dataset::{self, Split};
use crate::model;
use crate::model::pretrain::{LabelledTexts, PretrainOptions};
use crate::text::EncoderConfig;

pub fn run(args: &PretrainArgs) -> anyhow::Result<()> {
    let threads = args.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, usize::from));
    model::set_compute_threads(threads);
    let fractions = super::split_fractions(&args.split);
    fractions.validate()?;
    let labelled = super::load_corpus(&args.data)?;
    let mut train = Vec::new();
    let mut held_out = Vec::new();
    for example in labelled.examples {
        // The split `train` makes with the same fractions: the held-out texts must stay unseen.
        match dataset::assign_split(&example.text, fractions) {
            Split::Train => train.push(example.text),
            Split::Validation | Split::Test => held_out.push(example.text),
        }
    }
    let labelled_texts = LabelledTexts {
        train,
        held_out,
        data_digest: labelled.digest,
        data_files: labelled.files.iter().map(|path| path.display().to_string()).collect(),
        split: fractions,
    };
    let options = PretrainOptions {
        corpus_files: args.corpus.clone(),
        text_field: args.text_field.clone(),
        passes: args.passes,
        max_sequences: args.max_sequences,
        max_duration: args.max_duration,
        checkpoint_every: args.checkpoint_every,
        vocab_sample: args.vocab_sample,
        encoder: EncoderConfig {
            max_tokens: args.max_tokens,
            max_vocab_size: args.max_vocab_size,
            min_token_count: args.min_token_count,
            ..EncoderConfig::default()
        },
        embedding_dim: args.embedding_dim,
        hidden_size: args.hidden_size,
        dropout: args.dropout,
        token_dropout: args.token_dropout,
        language_model_vocab: args.language_model_vocab,
        batch_size: args.batch_size,
        learning_rate: args.learning_rate,
        gradient_clip_norm: args.gradient_clip_norm,
        seed: args.seed,
        show_progress: true,
        interrupt: Some(stop_on_signal()),
    };
    eprintln!(
        "pretraining on {} with {threads} threads",
        args.corpus.iter().map(|path| path.display().to_string()).collect::<Vec<_>>().join(", ")
    );
    let manifest = model::pretrain::pretrain(&labelled_texts, &options, &args.out)?;
    println!(
        "{}",
        serde_json::json!({
            "out": args.out.display().to_string(),
            "sequences_seen": manifest.sequences_seen,
            "loss": manifest.loss,
            "vocab_size": manifest.vocab_size,
        })
    );
    Ok(())
}

/// Set by the first SIGINT or SIGTERM: the run checkpoints at the next batch and ends, so an
/// hour of pretraining is not lost to Ctrl-C.
static STOP_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn request_stop(_signal: libc::c_int) {
    STOP_REQUESTED.store(true, Ordering::SeqCst);
    // A second signal ends the process at once. signal() is async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, libc::SIG_DFL);
        libc::signal(libc::SIGTERM, libc::SIG_DFL);
    }
}

fn stop_on_signal() -> &'static AtomicBool {
    let handler = request_stop as extern "C" fn(libc::c_int) as libc::sighandler_t;
    // SAFETY: the handler only stores to an atomic and resets the dispositions, both async-signal-safe.
    unsafe {
        libc::signal(libc::SIGINT, handler);
        libc::signal(libc::SIGTERM, handler);
    }
    &STOP_REQUESTED
}
