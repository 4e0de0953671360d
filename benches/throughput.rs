//! Tokenizer and model throughput of a bundle (default: the shipped one), tokenization included.
//!
//! A bench binary rather than criterion: the figures we need are texts/s for given batch sizes
//! and worker layouts (one worker, and two workers each owning a model on one core), which is a
//! loop over fixed work with a median over repeats; criterion's per-iteration model and its
//! single-threaded harness do not express the two-worker layout.
//!
//! With `SENTMON_BENCH_PYTHON` (set by scripts/bench.sh) it also measures the Python yardstick's
//! classification alone (`benches/python_way.py throughput`: the same texts, a PyTorch LSTM of the
//! shipped model's size) and prints sentmon's ratio to it at batch 1 and 64.
//!
//! Run: `cargo bench --bench throughput` (SENTMON_BENCH_MODEL=DIR for another bundle).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use sentmon::model::{self, Classifier};

/// Repeats per figure; the median is reported so one noisy run on a shared machine does not skew it.
const REPEATS: usize = 7;
/// Texts per repeat: the real tweets (or the fixtures) cycled to this count.
const TEXTS: usize = 4096;
/// 64 is the daemon's micro-batch (and the batched Python consumer's).
const BATCH_SIZES: [usize; 4] = [1, 32, 64, 256];

fn main() {
    // `cargo test --all-targets` runs bench binaries with `--bench` absent: keep that cheap.
    let quick = !std::env::args().any(|argument| argument == "--bench");
    let model_dir =
        std::env::var("SENTMON_BENCH_MODEL").map_or_else(|_| PathBuf::from("models/default"), PathBuf::from);
    model::set_compute_threads(1);
    let texts: Vec<String> = common::texts("sentiment").into_iter().cycle().take(TEXTS).collect();
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

    let mut one_worker_rates = Vec::new();
    for batch_size in BATCH_SIZES {
        let work = if batch_size == 1 { &texts[..texts.len().min(1000)] } else { &texts[..] };
        let rate = median_rate(repeats, work.len(), || classify_all(&classifier, work, batch_size));
        println!("model, 1 worker,  batch {batch_size:>3}: {rate:>9.0} texts/s");
        one_worker_rates.push((batch_size, rate));
    }
    drop(classifier);

    for batch_size in BATCH_SIZES {
        let work = if batch_size == 1 { &texts[..texts.len().min(2000)] } else { &texts[..] };
        let rate = two_worker_rate(&model_dir, work, batch_size, repeats);
        println!("model, 2 workers, batch {batch_size:>3}: {rate:>9.0} texts/s");
    }

    if let (false, Some(python)) = (quick, std::env::var_os(common::PYTHON_ENV)) {
        compare_with_python(Path::new(&python), &model_dir, &one_worker_rates);
    }
}

/// Runs the Python yardstick's classification alone (1 thread, as one sentmon worker) and prints
/// its rates and sentmon's ratio to them.
fn compare_with_python(python: &Path, model_dir: &Path, one_worker_rates: &[(usize, f64)]) {
    let output = Command::new(python)
        .arg(common::manifest_path("benches/python_way.py"))
        .arg("--model-dir")
        .arg(model_dir)
        .args(["--threads", "1", "throughput", "--repeats", &REPEATS.to_string(), "--texts"])
        .arg(common::texts_file("sentiment"))
        .output()
        .expect("the Python yardstick runs");
    assert!(output.status.success(), "the Python yardstick failed: {}", String::from_utf8_lossy(&output.stderr));
    let figures: serde_json::Value = serde_json::from_slice(&output.stdout).expect("the yardstick prints JSON");
    let figure = |name: &str| figures[name].as_f64().expect("a rate");
    println!("python tokenizer: {:>5.0} texts/s (1 thread)", figure("tokenizer"));
    for (batch_size, sentmon_rate) in one_worker_rates.iter().filter(|(batch_size, _)| [1, 64].contains(batch_size)) {
        let python_rate = figure(&format!("batch_{batch_size}"));
        println!(
            "python, 1 thread,  batch {batch_size:>3}: {python_rate:>9.0} texts/s; sentmon 1 worker / python = {:.1}x",
            sentmon_rate / python_rate
        );
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
    let rates: Vec<f64> = (0..repeats)
        .map(|_| {
            let started = Instant::now();
            work();
            items as f64 / started.elapsed().as_secs_f64()
        })
        .collect();
    common::median(&rates)
}
