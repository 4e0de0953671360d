//! Inference workers: dedicated threads that each own a loaded model (tch tensors are not Sync)
//! and classify batches taken from one bounded queue.
//!
//! Not tokio's `spawn_blocking`: every pool thread would start its own OpenMP team and the
//! threads would fight over the cores (see docs/ARCHITECTURE.md). Each worker runs with one
//! intra-op thread; more workers, not more threads per worker, is how throughput scales.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::sync::mpsc;

use super::{Classifier, Prediction};

/// Something that carries a text to classify.
pub trait HasText {
    fn text(&self) -> &str;
}

/// A batch with one prediction per item, in the same order.
pub struct ClassifiedBatch<T> {
    pub items: Vec<T>,
    pub predictions: Vec<Prediction>,
    pub model: Arc<ModelIdentity>,
    pub inference_duration: Duration,
}

/// What downstream needs of the model that produced a batch.
pub struct ModelIdentity {
    pub version: String,
    pub topic_labels: Vec<String>,
}

pub struct InferencePool<T> {
    jobs: mpsc::Sender<Vec<T>>,
    threads: Vec<JoinHandle<()>>,
    model: Arc<ModelIdentity>,
}

impl<T: HasText + Send + 'static> InferencePool<T> {
    /// Loads the bundle once per worker and starts the workers; fails (naming the bundle) if it
    /// does not load. Jobs queue up to `queue_depth` batches: beyond that `submit` waits, which
    /// is the backpressure that slows consumption to what the model can do.
    pub fn start(
        model_dir: &Path,
        workers: usize,
        queue_depth: usize,
        results: mpsc::Sender<ClassifiedBatch<T>>,
    ) -> anyhow::Result<InferencePool<T>> {
        let (jobs, job_receiver) = mpsc::channel::<Vec<T>>(queue_depth.max(1));
        let job_receiver = Arc::new(Mutex::new(job_receiver));
        let mut threads = Vec::with_capacity(workers);
        let mut model = None;
        for worker_index in 0..workers.max(1) {
            let classifier = Classifier::load(model_dir)?;
            let identity = model.get_or_insert_with(|| {
                Arc::new(ModelIdentity {
                    version: classifier.version().to_string(),
                    topic_labels: classifier.manifest().topic_labels.clone(),
                })
            });
            let identity = Arc::clone(identity);
            let job_receiver = Arc::clone(&job_receiver);
            let results = results.clone();
            let thread = std::thread::Builder::new()
                .name(format!("sentmon-inference-{worker_index}"))
                .spawn(move || run_worker(classifier, identity, &job_receiver, &results))
                .context("failed to start an inference thread")?;
            threads.push(thread);
        }
        let model = model.expect("at least one worker");
        Ok(InferencePool { jobs, threads, model })
    }

    pub fn model(&self) -> Arc<ModelIdentity> {
        Arc::clone(&self.model)
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
    classifier: Classifier,
    model: Arc<ModelIdentity>,
    job_receiver: &Mutex<mpsc::Receiver<Vec<T>>>,
    results: &mpsc::Sender<ClassifiedBatch<T>>,
) {
    // set_num_threads applies to the calling thread's OpenMP team, so each worker sets its own.
    super::set_compute_threads(1);
    loop {
        // The lock is held only while waiting for the next job; workers take turns.
        let job = job_receiver.lock().expect("job queue lock").blocking_recv();
        let Some(items) = job else {
            return;
        };
        let started = Instant::now();
        let texts: Vec<&str> = items.iter().map(HasText::text).collect();
        let predictions = classifier.classify(&texts);
        let inference_duration = started.elapsed();
        let batch = ClassifiedBatch { items, predictions, model: Arc::clone(&model), inference_duration };
        if results.blocking_send(batch).is_err() {
            return;
        }
    }
}
