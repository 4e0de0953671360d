//! Tokenizer and model throughput of a bundle (default: the shipped one), tokenization included.
//!
//! A bench binary rather than criterion: the figures we need are texts/s for given batch sizes
//! and worker layouts (one worker, and two workers each owning a model on one core), which is a
//! loop over fixed work with a median over repeats; criterion's per-iteration model and its
//! single-threaded harness do not express the two-worker layout.
//!
//! Run: `cargo bench --bench throughput` (SENTMON_BENCH_MODEL=DIR for another bundle).

use std::path::{Path, PathBuf};
use std::time::Instant;

use sentmon::model::{self, Classifier};

/// Repeats per figure; the median is reported so one noisy run on a shared machine does not skew it.
const REPEATS: usize = 7;

fn main() {
    // `cargo test --all-targets` runs bench binaries with `--bench` absent: keep that cheap.
    let quick = !std::env::args().any(|argument| argument == "--bench");
    let model_dir =
        std::env::var("SENTMON_BENCH_MODEL").map_or_else(|_| PathBuf::from("models/default"), PathBuf::from);
    model::set_compute_threads(1);
    let texts = bench_texts();
    let classifier =
        Classifier::load(&model_dir).unwrap_or_else(|error| panic!("cannot load {}: {error:#}", model_dir.display()));
    let average_tokens = texts.iter().map(|text| classifier.encoder().encode(text).token_ids.len()).sum::<usize>()
        as f64
        / texts.len() as f64;
    println!(
        "model {} ({}), {} texts, {:.1} tokens on average, {} repeats, median reported",
        classifier.version(),
        model_dir.display(),
        texts.len(),
        average_tokens,
        if quick { 1 } else { REPEATS }
    );
    let repeats = if quick { 1 } else { REPEATS };

    let tokenizer_rate = median_rate(repeats, texts.len(), || {
        for text in &texts {
            std::hint::black_box(classifier.encoder().encode(text));
        }
    });
    println!("tokenizer: {tokenizer_rate:>10.0} texts/s (1 thread)");

    for batch_size in [1usize, 32, 256] {
        let work = if batch_size == 1 { &texts[..texts.len().min(1000)] } else { &texts[..] };
        let rate = median_rate(repeats, work.len(), || classify_all(&classifier, work, batch_size));
        println!("model, 1 worker,  batch {batch_size:>3}: {rate:>9.0} texts/s");
    }
    drop(classifier);

    for batch_size in [1usize, 32, 256] {
        let work = if batch_size == 1 { &texts[..texts.len().min(2000)] } else { &texts[..] };
        let rate = two_worker_rate(&model_dir, work, batch_size, repeats);
        println!("model, 2 workers, batch {batch_size:>3}: {rate:>9.0} texts/s");
    }
}

fn classify_all(classifier: &Classifier, texts: &[String], batch_size: usize) {
    for chunk in texts.chunks(batch_size) {
        let chunk_refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        std::hint::black_box(classifier.classify(&chunk_refs));
    }
}

/// Two threads, each with its own model and one compute thread, split the texts: the layout
/// the daemon uses on two cores.
fn two_worker_rate(model_dir: &Path, texts: &[String], batch_size: usize, repeats: usize) -> f64 {
    let halves: Vec<&[String]> = texts.chunks(texts.len().div_ceil(2)).collect();
    let classifiers: Vec<Classifier> = (0..2).map(|_| Classifier::load(model_dir).expect("bundle loads")).collect();
    let classifiers: Vec<std::sync::Mutex<Classifier>> = classifiers.into_iter().map(std::sync::Mutex::new).collect();
    median_rate(repeats, texts.len(), || {
        std::thread::scope(|scope| {
            for (half, classifier) in halves.iter().zip(&classifiers) {
                scope.spawn(move || {
                    // OpenMP's thread count is per thread: each worker runs on one, as in the daemon.
                    model::set_compute_threads(1);
                    classify_all(&classifier.lock().expect("not poisoned"), half, batch_size)
                });
            }
        });
    })
}

fn median_rate(repeats: usize, items: usize, mut work: impl FnMut()) -> f64 {
    let mut rates: Vec<f64> = (0..repeats)
        .map(|_| {
            let started = Instant::now();
            work();
            items as f64 / started.elapsed().as_secs_f64()
        })
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// Realistic tweet-length texts: the shared data's headlines when present, else the project's
/// own fixtures repeated.
fn bench_texts() -> Vec<String> {
    let shared = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/data/en/sentiment.train.jsonl");
    let source = if shared.exists() {
        shared
    } else {
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/headlines.sentiment.jsonl")
    };
    let content =
        std::fs::read_to_string(&source).unwrap_or_else(|error| panic!("cannot read {}: {error}", source.display()));
    let texts: Vec<String> = content
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|row| row.get("text").and_then(|text| text.as_str()).map(str::to_string))
        .collect();
    texts.iter().cycle().take(4096).cloned().collect()
}
