//! The topic + sentiment LSTM: network, training, inference and bundles. The only module that
//! sees tch types; everything it exposes to the rest of the crate is plain data.

mod batch;
pub mod bundle;
mod classifier;
pub mod distill;
pub mod glove;
mod network;
pub mod pretrain;
pub mod settings;
pub mod train;
pub mod worker;

pub use bundle::{ModelManifest, SENTIMENT_LABELS, TaskReports};
pub use classifier::{Classifier, GatedPrediction, Prediction, SentimentProbabilities};
pub use network::Architecture;

/// Sets libtorch's intra-op thread count (process-wide). Inference workers use 1 each: with
/// more OpenMP threads than free cores, threads wait at barriers and throughput collapses.
pub fn set_compute_threads(threads: usize) {
    tch::set_num_threads(threads.max(1) as i32);
}

/// libtorch threads that `eval` and `train` use unless `--threads` says otherwise: 1, the
/// daemon's policy (one per inference worker) and the scheduled retrain's (`retrain.threads`).
/// These commands often run beside a daemon or a build, and with more OpenMP threads than free
/// cores inference collapsed by up to 1000x here (../shared/LIBTORCH.md): `eval` on every core
/// took 10-24 s for 2,348 texts that `classify`, on one thread, does in half a second.
pub const DEFAULT_COMMAND_THREADS: usize = 1;

/// The thread policy of `eval` and `train`: `requested` (`--threads`), else
/// [`DEFAULT_COMMAND_THREADS`]; sets it for this process and returns it.
pub fn use_command_threads(requested: Option<usize>) -> usize {
    let threads = requested.unwrap_or(DEFAULT_COMMAND_THREADS).max(1);
    set_compute_threads(threads);
    threads
}

/// Saves a freshly trained model as a bundle directory and returns its manifest.
pub fn save_trained(trained: train::TrainedModel, directory: &std::path::Path) -> anyhow::Result<ModelManifest> {
    bundle::save_bundle(directory, &trained.variables, &trained.encoder, trained.manifest)
}

#[cfg(test)]
mod tests;
