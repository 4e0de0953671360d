//! Inference workers: dedicated threads that each own a loaded model (tch tensors are not Sync)
//! and classify batches taken from one bounded queue.
//!
//! Not tokio's `spawn_blocking`: every pool thread would start its own OpenMP team and the
//! threads would fight over the cores (see docs/ARCHITECTURE.md). Each worker runs with one
//! intra-op thread; more workers, not more threads per worker, is how throughput scales.
//!
//! A forward pass that fails (libtorch errors reach Rust as panics) fails its batch only: the
//! worker catches it, hands the batch on as failed, and keeps serving, so the app can dead-letter
//! those messages and complete their offsets instead of losing the batch with the thread.

use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;

use super::{Classifier, GatedPrediction};
use crate::faults::InferencePanicFault;
use crate::locks;
use crate::supervise::panic_message;

/// Something that carries a text to classify.
pub trait HasText {
    fn text(&self) -> &str;
    /// The language its producer declared (an input's `lang` field), which the language gate trusts over the script.
    fn declared_language(&self) -> Option<&str>;
}

/// A batch with one prediction per item, in the same order (items the model's language gate refused get the
/// language they are in instead), or why the model failed on the batch.
pub struct ClassifiedBatch<T> {
    pub items: Vec<T>,
    pub predictions: Result<Vec<GatedPrediction>, InferenceFailure>,
    pub model: Arc<ModelIdentity>,
    pub inference_duration: Duration,
}

/// The forward pass failed on a batch: the panic's message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InferenceFailure {
    pub cause: String,
}

/// What downstream needs of the model that produced a batch.
pub struct ModelIdentity {
    pub version: String,
    pub topic_labels: Vec<String>,
}

pub struct InferencePool<T> {
    jobs: mpsc::Sender<Vec<T>>,
    threads: Vec<JoinHandle<()>>,
    switch: ModelSwitch,
}

/// One model copy per worker, loaded and checked, ready to be swapped in.
pub struct LoadedModel {
    classifiers: Vec<Classifier>,
    identity: Arc<ModelIdentity>,
}

/// Texts every new model must classify, with sane outputs, before it serves: a bundle whose
/// weights load but produce NaNs (or panic) is caught here rather than in production records.
const PROBE_TEXTS: [&str; 4] = [
    "Fed raises interest rates by 25 basis points",
    "Shares plunge after the company cuts its profit forecast",
    "央行宣布降准",
    "",
];

impl LoadedModel {
    /// Loads `copies` classifiers from `directory` and checks them: the probe texts classify to
    /// finite probabilities that sum to 1, and, when `required_topics` is given, the bundle's topic
    /// labels are exactly those (windows, baselines and metrics are kept per topic, so a new
    /// taxonomy needs a deliberate restart, not a silent swap).
    pub fn load(directory: &Path, copies: usize, required_topics: Option<&[String]>) -> anyhow::Result<LoadedModel> {
        // The probe runs on the calling thread; keep it from starting an OpenMP team per core.
        super::set_compute_threads(1);
        let mut classifiers = Vec::with_capacity(copies.max(1));
        for _ in 0..copies.max(1) {
            classifiers.push(Classifier::load(directory)?);
        }
        let first = &classifiers[0];
        let identity = Arc::new(ModelIdentity {
            version: first.version().to_string(),
            topic_labels: first.manifest().topic_labels.clone(),
        });
        if let Some(required) = required_topics {
            anyhow::ensure!(
                identity.topic_labels == required,
                "bundle {} has topic labels {:?}, but the daemon serves {:?}; a different taxonomy needs a restart",
                directory.display(),
                identity.topic_labels,
                required
            );
        }
        for (text, prediction) in PROBE_TEXTS.iter().zip(first.classify(&PROBE_TEXTS)) {
            let sentiment = prediction.sentiment;
            let probabilities =
                [prediction.topic_probability, sentiment.negative, sentiment.neutral, sentiment.positive];
            let sentiment_sum = sentiment.negative + sentiment.neutral + sentiment.positive;
            anyhow::ensure!(
                probabilities.iter().all(|probability| probability.is_finite() && (0.0..=1.0).contains(probability))
                    && (sentiment_sum - 1.0).abs() < 1e-3
                    && prediction.topic_index < identity.topic_labels.len(),
                "bundle {} gives an invalid prediction for the probe text {text:?}: {prediction:?}",
                directory.display()
            );
        }
        Ok(LoadedModel { classifiers, identity })
    }

    pub fn identity(&self) -> Arc<ModelIdentity> {
        Arc::clone(&self.identity)
    }
}

/// Swaps a new model into running workers. Each worker takes its copy before its next batch, so
/// every batch is classified by exactly one model and carries that model's identity.
#[derive(Clone)]
pub struct ModelSwitch {
    swaps: Vec<std::sync::mpsc::Sender<(Classifier, Arc<ModelIdentity>)>>,
    current: Arc<RwLock<Arc<ModelIdentity>>>,
}

impl ModelSwitch {
    /// The model new batches are classified with (or will be, once each worker takes it).
    pub fn current(&self) -> Arc<ModelIdentity> {
        Arc::clone(&locks::read(&self.current))
    }

    /// How many model copies a swap needs: one per worker.
    pub fn workers(&self) -> usize {
        self.swaps.len()
    }

    /// Hands each worker its copy of `model`. Fails if the copies do not match the workers or
    /// every worker has stopped.
    pub fn install(&self, model: LoadedModel) -> anyhow::Result<()> {
        anyhow::ensure!(model.classifiers.len() == self.swaps.len(), "one model copy per worker is needed");
        *locks::write(&self.current) = Arc::clone(&model.identity);
        let mut delivered = 0;
        for (swap, classifier) in self.swaps.iter().zip(model.classifiers) {
            if swap.send((classifier, Arc::clone(&model.identity))).is_ok() {
                delivered += 1;
            }
        }
        anyhow::ensure!(delivered > 0, "every inference worker has stopped");
        Ok(())
    }
}

impl<T: HasText + Send + 'static> InferencePool<T> {
    /// Starts one worker per copy in `model`. Jobs queue up to `queue_depth` batches: beyond that
    /// `submit` waits, which is the backpressure that slows consumption to what the model can do.
    /// `fault` is the test-only injected failure (`crate::faults`), None in production.
    pub fn start(
        model: LoadedModel,
        queue_depth: usize,
        results: mpsc::Sender<ClassifiedBatch<T>>,
        fault: Option<InferencePanicFault>,
    ) -> anyhow::Result<InferencePool<T>> {
        let (jobs, job_receiver) = mpsc::channel::<Vec<T>>(queue_depth.max(1));
        let job_receiver = Arc::new(Mutex::new(job_receiver));
        let mut threads = Vec::with_capacity(model.classifiers.len());
        let mut swaps = Vec::with_capacity(model.classifiers.len());
        for (worker_index, classifier) in model.classifiers.into_iter().enumerate() {
            let (swap, swap_receiver) = std::sync::mpsc::channel();
            swaps.push(swap);
            let identity = Arc::clone(&model.identity);
            let job_receiver = Arc::clone(&job_receiver);
            let results = results.clone();
            let fault = fault.clone();
            let thread = std::thread::Builder::new()
                .name(format!("sentmon-inference-{worker_index}"))
                .spawn(move || {
                    run_worker(classifier, identity, &job_receiver, &swap_receiver, &results, fault.as_ref())
                })
                .context("failed to start an inference thread")?;
            threads.push(thread);
        }
        let switch = ModelSwitch { swaps, current: Arc::new(RwLock::new(model.identity)) };
        Ok(InferencePool { jobs, threads, switch })
    }

    pub fn switch(&self) -> ModelSwitch {
        self.switch.clone()
    }

    /// Queues a batch; waits while the queue is full. Fails only if every worker has stopped.
    pub async fn submit(&self, batch: Vec<T>) -> anyhow::Result<()> {
        self.jobs.send(batch).await.map_err(|_| anyhow::anyhow!("every inference worker has stopped"))
    }

    /// Stops taking jobs, lets the workers finish what is queued, and waits for them.
    pub fn finish(self) {
        drop(self.jobs);
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("an inference worker panicked");
            }
        }
    }
}

fn run_worker<T: HasText>(
    mut classifier: Classifier,
    mut model: Arc<ModelIdentity>,
    job_receiver: &Mutex<mpsc::Receiver<Vec<T>>>,
    swap_receiver: &std::sync::mpsc::Receiver<(Classifier, Arc<ModelIdentity>)>,
    results: &mpsc::Sender<ClassifiedBatch<T>>,
    fault: Option<&InferencePanicFault>,
) {
    // set_num_threads applies to the calling thread's OpenMP team, so each worker sets its own.
    super::set_compute_threads(1);
    loop {
        // The lock is held only while waiting for the next job; workers take turns.
        let job = locks::lock(job_receiver).blocking_recv();
        let Some(items) = job else {
            return;
        };
        // Between batches: take the newest model handed over since the last one, if any.
        while let Ok((new_classifier, new_model)) = swap_receiver.try_recv() {
            classifier = new_classifier;
            model = new_model;
        }
        let started = Instant::now();
        let messages: Vec<(&str, Option<&str>)> =
            items.iter().map(|item| (item.text(), item.declared_language())).collect();
        // Unwind safety: inference only reads the parameters, and the no-grad guard restores grad
        // mode as it unwinds, so a classifier whose pass panicked serves the next batch as before.
        let predictions = std::panic::catch_unwind(AssertUnwindSafe(|| {
            if let Some(fault) = fault {
                fault.check(messages.iter().map(|(text, _)| *text));
            }
            classifier.classify_gated(&messages)
        }))
        .map_err(|panic| InferenceFailure { cause: panic_message(&*panic) });
        let inference_duration = started.elapsed();
        let batch = ClassifiedBatch { items, predictions, model: Arc::clone(&model), inference_duration };
        if results.blocking_send(batch).is_err() {
            return;
        }
    }
}
