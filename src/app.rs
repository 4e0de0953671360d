//! Wiring of the daemon: the stages of `crate::stages` (ingest -> batch -> inference workers ->
//! emit -> aggregate -> alert publish), joined by channels, plus HTTP, and the bounded drain on
//! shutdown. `[pipeline] role` picks the stages: all of them, the classify half (no windows), or
//! the aggregate half (summaries -> windows, no model; `crate::fleet`).
//!
//! Every long-lived task is a supervised stage (`crate::supervise`): the first to exit before
//! shutdown fails the process, which then drains the same way and exits 70.
//!
//! Shutdown order (STYLE.md): not ready -> stop polling -> flush the batcher -> finish
//! inference -> emit and wait for acknowledgements -> store offsets and commit synchronously
//! -> leave the group. `/metrics` stays up until the end. `[shutdown]` (here) bounds the drain.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::alert::{AlertEvent, SpikeDetector};
use crate::archive;
use crate::config::Config;
use crate::config::PipelineRole;
use crate::faults::{Faults, InferencePanicFault};
use crate::fleet::restore::{AggregatorState, Restorer};
use crate::http;
use crate::ingest::consumer::KafkaSource;
use crate::ingest::producer::KafkaSink;
use crate::ingest::topics;
use crate::message::PendingMessage;
use crate::metrics::Metrics;
use crate::model::worker::{ClassifiedBatch, InferencePool, LoadedModel, ModelSwitch};
use crate::pipeline::entities::EntityWindows;
use crate::readiness::Readiness;
use crate::stages::aggregate::{aggregate, evaluate_windows};
use crate::stages::alert_publish::publish_alerts;
use crate::stages::batch::cut_batches;
use crate::stages::emit::emit_batches;
use crate::stages::ingest::{check_broker, consume};
use crate::stages::observe::observe_summaries;
use crate::stages::{MAX_RECORDS_IN_FLIGHT, Shared};
use crate::supervise::{Stage, StageExit, StageFailure, Stages};
use crate::window::WindowStore;
use crate::{registry, reload, schedule};

/// Batches waiting for a model worker. Small: more only adds latency; one per worker plus one
/// keeps every worker busy while the next batch is cut.
const INFERENCE_QUEUE_BATCHES_PER_WORKER: usize = 2;

/// Consumed messages waiting to be decoded: one batch's worth, so the polling thread pauses the
/// partitions soon after the pipeline stalls.
const CONSUMED_QUEUE_BATCHES: usize = 1;

/// Decoded messages waiting for the batcher: a few batches' worth, so a slow model stops the
/// consumer quickly (backpressure) instead of filling memory.
const DECODED_QUEUE_BATCHES: usize = 4;

/// How long the start-up check waits for the brokers' topic list before going on unchecked: the
/// daemon must still start when the broker is down (it then waits unready), so this is short.
const TOPIC_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// `[shutdown]`: the bounded drain on SIGINT/SIGTERM.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ShutdownConfig {
    /// Longest the drain may take before sentmon exits anyway (uncommitted work is then replayed
    /// by the next consumer), in seconds: one deadline for the stages' flush, the last alert sends
    /// and the producer flush; the final commit follows. Default 30: Kubernetes' default
    /// `terminationGracePeriodSeconds`, so set it below that when the pod's period is changed.
    pub grace_secs: u64,
}

impl Default for ShutdownConfig {
    fn default() -> Self {
        Self { grace_secs: 30 }
    }
}

impl ShutdownConfig {
    /// `grace_secs` as a duration.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.grace_secs)
    }
}

/// Optional observers for embedding the daemon (the demo prints alerts; tests read them).
#[derive(Default, Clone)]
pub struct Observers {
    pub alerts: Option<mpsc::UnboundedSender<AlertEvent>>,
}

/// Runs the daemon until `shutdown` is cancelled or a stage fails, then drains within
/// `config.shutdown.grace`. A stage failure is returned as a [`StageFailure`] error (exit
/// [`crate::supervise::EXIT_CODE_STAGE_FAILED`]).
pub async fn run(
    config: Config,
    http_listener: TcpListener,
    shutdown: CancellationToken,
    observers: Observers,
) -> anyhow::Result<()> {
    let faults = Faults::from_env()?;
    check_topics_exist(&config).await?;
    let metrics = Arc::new(Metrics::new().context("failed to register metrics")?);
    let readiness = Arc::new(Readiness::new(Arc::clone(&metrics)));
    let mut stages = Stages::new(faults.stage_panic);
    // The HTTP server is not under the shutdown root: /metrics, /healthz and /readyz answer through
    // the whole drain, and it stops last, when this sender is used.
    let (http_stop, http_stopped) = tokio::sync::oneshot::channel::<()>();
    {
        let serve = http::serve(http_listener, Arc::clone(&metrics), Arc::clone(&readiness), async move {
            // A dropped sender (an early error return) stops the server too.
            let _ = http_stopped.await;
        });
        stages.spawn(Stage::Http, async move { serve.await.context("the HTTP server failed") });
    }

    let role = config.pipeline.role;
    // The aggregate role runs no model: the classify processes' summaries carry their answers.
    let inference = match role {
        PipelineRole::Aggregate => {
            // Nothing to load: readiness then hangs on the partitions and the broker only.
            readiness.set_model_loaded(true);
            None
        }
        PipelineRole::All | PipelineRole::Classify => {
            Some(start_inference(&config, faults.inference_panic, &metrics, &readiness).await?)
        }
    };
    let windows = Arc::new(Mutex::new(
        WindowStore::new(config.windows.to_window_config())
            .map_err(|problems| anyhow::anyhow!("invalid window settings: {}", problems.join("; ")))?,
    ));
    let detector = Arc::new(Mutex::new(
        SpikeDetector::new(config.detector.to_detector_config())
            .map_err(|problems| anyhow::anyhow!("invalid detector settings: {}", problems.join("; ")))?,
    ));
    let aggregator = (role == PipelineRole::Aggregate).then(|| AggregatorState {
        windows: Arc::clone(&windows),
        detector: Arc::clone(&detector),
        ownership: Arc::default(),
    });

    let (consumed_sender, consumed) = mpsc::channel(CONSUMED_QUEUE_BATCHES * config.batch.max_size);
    let (source, completions) = match &aggregator {
        None => KafkaSource::start(&config, Arc::clone(&metrics), Arc::clone(&readiness), consumed_sender, None)?,
        Some(state) => {
            let restorer = Restorer {
                kafka: config.kafka.clone(),
                repartition_topic: config.pipeline.repartition_topic.clone(),
                state_topic: config.pipeline.state_topic.clone(),
                state: state.clone(),
                // Its own producer: the handover snapshots are sent from the polling thread, inside a revoke, and
                // must not queue behind the stages' records.
                sink: KafkaSink::new(&config.kafka.brokers, config.kafka.producer_options.iter())?,
                metrics: Arc::clone(&metrics),
                runtime: tokio::runtime::Handle::current(),
            };
            let summaries = config.consuming_summaries();
            KafkaSource::start(
                &summaries,
                Arc::clone(&metrics),
                Arc::clone(&readiness),
                consumed_sender,
                Some(Arc::new(restorer)),
            )?
        }
    };
    let sink = KafkaSink::new(&config.kafka.brokers, config.kafka.producer_options.iter())?;
    let entities = EntityWindows::from_config(&config, &metrics)?;
    let (archive_sink, archive_thread) = match archive::WriterSettings::from_config(&config.archive) {
        Some(settings) => Some(archive::start(settings, Arc::clone(&metrics)).await?),
        None => None,
    }
    .unzip();
    let (model, pipeline) = inference.map(|(switch, pool, results)| (switch, (pool, results))).unzip();
    let shared = Arc::new(Shared {
        config,
        metrics,
        readiness,
        sink,
        completions,
        model,
        windows,
        detector,
        aggregator: aggregator.clone(),
        entities,
        in_flight_records: Arc::new(Semaphore::new(MAX_RECORDS_IN_FLIGHT)),
        observers,
        archive: archive_sink,
        abandon: CancellationToken::new(),
    });
    let consumed_topics = match role {
        PipelineRole::Aggregate => vec![shared.config.pipeline.repartition_topic.clone()],
        PipelineRole::All | PipelineRole::Classify => shared.config.kafka.input_topics.clone(),
    };
    tracing::info!(role = ?role, topics = ?consumed_topics, brokers = %shared.config.kafka.brokers, "consuming");

    // `shutdown` is the one root: a signal cancels it, and so does a stage failure below. The
    // stages that stop on a token stop on this child of it (a child cannot cancel the root), at
    // once when the drain starts; the others end when their input closes, in pipeline order. A
    // stage's clean return can only follow the root's cancellation, so the supervisor below,
    // which looks at the root first, never mistakes it for a failure.
    let stop = shutdown.child_token();
    let (decoded_sender, decoded) = mpsc::channel(DECODED_QUEUE_BATCHES * shared.config.batch.max_size);
    let (alert_sender, alert_queue) = mpsc::unbounded_channel();
    match (pipeline, &shared.model, aggregator) {
        (Some((pool, results)), Some(model), _) => {
            stages.spawn(Stage::Consume, consume(Arc::clone(&shared), consumed, decoded_sender, stop.clone()));
            stages.spawn(Stage::Batch, cut_batches(Arc::clone(&shared), decoded, pool));
            stages.spawn(Stage::Emit, emit_batches(Arc::clone(&shared), results));
            let reload = reload::watch(
                shared.config.model.path.clone(),
                model.clone(),
                Arc::clone(&shared.metrics),
                shared.config.model.watch_interval(),
                stop.clone(),
            );
            stages.spawn(Stage::Reload, async move {
                reload.await;
                Ok(())
            });
            if let Some(retrain) = schedule::retrains(&shared.config, stop.clone()) {
                stages.spawn(Stage::Retrain, retrain);
            }
        }
        (_, _, Some(state)) => {
            stages.spawn(Stage::Consume, observe_summaries(Arc::clone(&shared), state, consumed, stop.clone()));
        }
        _ => unreachable!("a process runs a model unless it is an aggregator"),
    }
    // In the classify role the windows stay empty (emit forwards summaries instead), so the aggregate stage only
    // ticks; it keeps one drain path for every role.
    stages.spawn(Stage::AlertPublish, publish_alerts(Arc::clone(&shared), alert_queue));
    stages.spawn(Stage::Aggregate, aggregate(Arc::clone(&shared), stop.clone(), alert_sender.clone()));
    stages.spawn(Stage::BrokerCheck, check_broker(Arc::clone(&shared), stop));

    // Until shutdown no stage ends on its own, so the first exit is a failure.
    let mut failure = tokio::select! {
        biased;
        () = shutdown.cancelled() => None,
        exit = stages.next_exit() => Some(exit.unexpected()),
    };
    match &failure {
        Some(stage_failure) => {
            report_stage_failure(&shared, stage_failure);
            tracing::info!(grace_seconds = shared.config.shutdown.grace_secs, "stage failed: draining, then exiting");
        }
        None => tracing::info!(grace_seconds = shared.config.shutdown.grace_secs, "shutting down: draining"),
    }
    shutdown.cancel();
    shared.readiness.set_draining();
    // One deadline for the whole drain: the stages' flush, the alert sends after the last window
    // evaluation and the producer flush all end by it, so the process is gone within the grace
    // period its supervisor gives it (plus the final commit), never several timeouts later.
    let deadline = tokio::time::Instant::now() + shared.config.shutdown.grace();
    source.stop_polling();
    let drain = async {
        // The consumer stops polling and flushes into the batcher, which flushes into the
        // workers, whose results emit sends: each ends when the one before it has.
        let exits = stages.wait_for(&[Stage::Consume, Stage::Batch, Stage::Emit]).await;
        note_exits(&shared, &mut failure, exits);
        // Every acknowledged record is queued by now; a drain that runs out of time before this
        // leaves the open file to be recovered at the next start.
        if let Some(archive_thread) = archive_thread {
            archive_thread.close().await;
        }
    };
    if tokio::time::timeout_at(deadline, drain).await.is_err() {
        tracing::warn!(
            "drain did not finish within the grace period; committing what is done, the rest is re-read on restart"
        );
        shared.abandon.cancel();
    }
    let exits = stages.wait_for(&[Stage::Aggregate, Stage::BrokerCheck, Stage::Reload, Stage::Retrain]).await;
    note_exits(&shared, &mut failure, exits);
    // Close the last full windows so their alerts are not lost with the process.
    evaluate_windows(&shared, now_ms(), &alert_sender);
    // The queue closes once its last sender is gone; the publisher then sends what is queued.
    drop(alert_sender);
    match tokio::time::timeout_at(deadline, stages.wait_for(&[Stage::AlertPublish])).await {
        Ok(exits) => note_exits(&shared, &mut failure, exits),
        Err(_) => {
            tracing::warn!("alert events still unpublished when the grace period ended; they are in the log above")
        }
    }
    let flush_shared = Arc::clone(&shared);
    // Whatever is left of the grace period; the records that matter were acknowledged before their
    // offsets were stored, so a flush cut short loses no offset, only unacknowledged alert events.
    let flush_time = deadline.saturating_duration_since(tokio::time::Instant::now());
    tokio::task::spawn_blocking(move || {
        if let Err(error) = flush_shared.sink.flush(flush_time) {
            tracing::warn!(%error, "producer flush failed");
        }
        source.finish();
    })
    .await
    .context("final commit failed")?;
    tracing::info!("drained: offsets committed");
    let _ = http_stop.send(());
    let exits = stages.wait_for(&[Stage::Http]).await;
    note_exits(&shared, &mut failure, exits);
    match failure {
        Some(stage_failure) => Err(stage_failure.into()),
        None => Ok(()),
    }
}

/// Loads the served model into the inference workers: the model switch hot reload swaps, the pool the batcher
/// feeds, and the queue of classified batches emit takes.
async fn start_inference(
    config: &Config,
    inference_panic: Option<InferencePanicFault>,
    metrics: &Metrics,
    readiness: &Readiness,
) -> anyhow::Result<(ModelSwitch, InferencePool<PendingMessage>, mpsc::Receiver<ClassifiedBatch<PendingMessage>>)> {
    let (results_sender, results) = mpsc::channel(INFERENCE_QUEUE_BATCHES_PER_WORKER * config.model.workers.max(1));
    let model_path = config.model.path.clone();
    let workers = config.model.workers;
    let loaded = tokio::task::spawn_blocking(move || {
        let (_, bundle_dir) = registry::resolve_model_path(&model_path)?;
        LoadedModel::load(&bundle_dir, workers, None)
            .with_context(|| format!("failed to load the model from {}", bundle_dir.display()))
    })
    .await
    .context("model loading panicked")??;
    let pool = InferencePool::<PendingMessage>::start(
        loaded,
        INFERENCE_QUEUE_BATCHES_PER_WORKER * config.model.workers.max(1),
        results_sender,
        inference_panic,
    )?;
    let model_switch = pool.switch();
    let model = model_switch.current();
    metrics.model.set_model_version(&model.version);
    metrics.model.create_topic_series(&model.topic_labels);
    readiness.set_model_loaded(true);
    tracing::info!(version = %model.version, path = %config.model.path.display(), workers = config.model.workers, "model loaded");
    Ok((model_switch, pool, results))
}

/// Makes a stage failure visible everywhere an operator or orchestrator looks: the log line, the
/// counter, `/readyz` (not ready) and `/healthz` (failing, naming the stage).
fn report_stage_failure(shared: &Shared, failure: &StageFailure) {
    tracing::error!(stage = %failure.stage, cause = %failure.cause, "{failure}; the process drains and exits");
    shared.metrics.process.stage_failures.with_label_values(&[failure.stage.as_str()]).inc();
    shared.readiness.set_stage_failed(failure);
}

/// Reports the failures among stages that ended during the drain; the first failure of the
/// process decides its exit.
fn note_exits(shared: &Shared, failure: &mut Option<StageFailure>, exits: Vec<StageExit>) {
    for stage_failure in exits.into_iter().filter_map(StageExit::failure) {
        report_stage_failure(shared, &stage_failure);
        failure.get_or_insert(stage_failure);
    }
}

/// Fails with a config error (exit 64) naming every configured topic the brokers lack, unless
/// `kafka.require_existing_topics` is off. When the brokers do not answer in time the daemon
/// starts anyway and waits for them unready, as it does for any broker outage.
async fn check_topics_exist(config: &Config) -> anyhow::Result<()> {
    if !config.kafka.require_existing_topics {
        return Ok(());
    }
    let kafka = config.kafka.clone();
    let listed = tokio::task::spawn_blocking(move || topics::existing_topics(&kafka, TOPIC_CHECK_TIMEOUT))
        .await
        .context("the topic check panicked")?;
    match listed {
        Ok(existing) => config.kafka.check_topics_exist(&existing, &config.pipeline.topics())?,
        Err(error) => tracing::warn!(error = format!("{error:#}"), "cannot check that the configured topics exist"),
    }
    Ok(())
}

/// "5m", "1h", "30s": compact, bounded label values for view widths.
pub fn view_label(width_ms: i64) -> String {
    let seconds = width_ms / 1000;
    if seconds % 3600 == 0 {
        format!("{}h", seconds / 3600)
    } else if seconds % 60 == 0 {
        format!("{}m", seconds / 60)
    } else {
        format!("{seconds}s")
    }
}

pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// The daemon's runtime, with tokio's default worker count (one per core, or
/// `TOKIO_WORKER_THREADS`): nothing blocks a worker, since polling Kafka and waiting on a revoke
/// happen on the polling thread and inference on the model workers' threads, so one worker is
/// enough.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .thread_name("sentmon-io")
        .enable_all()
        .build()
        .context("failed to start the async runtime")
}

/// The first SIGINT or SIGTERM starts the drain; a second one exits at once (exit code 130, as
/// shells report an interrupted command), for when the drain itself hangs.
pub fn shutdown_on_signals(shutdown: CancellationToken) -> anyhow::Result<()> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut interrupt = signal(SignalKind::interrupt()).context("failed to install the SIGINT handler")?;
    let mut terminate = signal(SignalKind::terminate()).context("failed to install the SIGTERM handler")?;
    tokio::spawn(async move {
        for signal_count in 1.. {
            tokio::select! {
                _ = interrupt.recv() => {}
                _ = terminate.recv() => {}
            }
            if signal_count == 1 {
                tracing::info!("signal received: draining (send it again to exit at once)");
                shutdown.cancel();
            } else {
                tracing::warn!("second signal: exiting without draining");
                std::process::exit(130);
            }
        }
    });
    Ok(())
}
