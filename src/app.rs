//! Wiring of the daemon: consumer -> decode -> micro-batcher -> inference workers -> emit
//! (record acknowledged, counted in the windows of its topic and of its entities, offset released)
//! -> windows -> detector -> alerts; plus HTTP, and the bounded drain on shutdown.
//!
//! Every long-lived task is a supervised stage (`crate::supervise`): the first to exit before
//! shutdown fails the process, which then drains the same way and exits 70.
//!
//! Shutdown order (STYLE.md): not ready -> stop polling -> flush the batcher -> finish
//! inference -> emit and wait for acknowledgements -> store offsets and commit synchronously
//! -> leave the group. `/metrics` stays up until the end.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alert::{AlertEvent, AlertKind, AlertScope, SpikeDetector};
use crate::archive::{self, ArchiveRecord, ArchiveSink};
use crate::config::Config;
use crate::faults::Faults;
use crate::http::{self, Readiness};
use crate::ingest::consumer::{ConsumerShared, KafkaSource};
use crate::ingest::producer::KafkaSink;
use crate::ingest::topics;
use crate::metrics::Metrics;
use crate::model::worker::{ClassifiedBatch, HasText, InferenceFailure, InferencePool, LoadedModel, ModelSwitch};
use crate::pipeline::batcher::{BatchPolicy, Batcher};
use crate::pipeline::decode::{self, DeadLetter, DeadLetterReason, DecodedMessage, InputMessage};
use crate::pipeline::entities::EntityWindows;
use crate::pipeline::offsets::OffsetTracker;
use crate::pipeline::record::{self, Classification};
use crate::supervise::{Stage, StageExit, StageFailure, Stages};
use crate::text::language::UnsupportedLanguage;
use crate::window::{ObserveOutcome, WindowStore};
use crate::{locks, registry, reload, schedule};

/// Batches waiting for a model worker. Small: more only adds latency; one per worker plus one
/// keeps every worker busy while the next batch is cut.
const INFERENCE_QUEUE_BATCHES_PER_WORKER: usize = 2;
/// Decoded messages waiting for the batcher: a few batches' worth, so a slow model stops the
/// consumer quickly (backpressure) instead of filling memory.
const DECODED_QUEUE_BATCHES: usize = 4;
/// Records (enriched and dead letters) awaiting broker acknowledgement at once. Bounds memory
/// when the output is slower than the input; librdkafka batches them on the wire.
const MAX_RECORDS_IN_FLIGHT: usize = 10_000;
/// How often windows close, alerts are evaluated, offsets are stored and gauges refreshed.
const AGGREGATE_TICK: Duration = Duration::from_millis(500);
/// How long the consumer waits for room downstream before it pauses its partitions, and then how
/// often it polls while paused. librdkafka evicts a member that does not poll for
/// `max.poll.interval.ms` (300 s by default, and at least `session.timeout.ms`, so never under a
/// few seconds in practice); one second is far below that and costs one cheap call per second.
const BACKPRESSURE_POLL_INTERVAL: Duration = Duration::from_secs(1);
/// How often /readyz re-checks that a broker answers.
const BROKER_CHECK_INTERVAL: Duration = Duration::from_secs(5);
const BROKER_CHECK_TIMEOUT: Duration = Duration::from_secs(3);
/// Produce retries back off from this to the maximum, forever: a record is never given up,
/// because giving up would mean committing past a message whose output was lost.
const PRODUCE_RETRY_INITIAL: Duration = Duration::from_millis(200);
const PRODUCE_RETRY_MAX: Duration = Duration::from_secs(10);
/// An alert event, unlike a record, is given up after this many failed sends: no offset waits on
/// it, and a publish that never ends (a deleted alerts topic, a denied ACL) must not hold up the
/// alerts after it. Three tries, 0.2 s then 0.4 s apart, ride out a leader election.
const ALERT_PUBLISH_ATTEMPTS: u32 = 3;
/// The whole publish of one alert event, retries included, ends within this: a send to a topic
/// librdkafka cannot find otherwise waits for `topic.metadata.propagation.max.ms` (30 s) per try.
const ALERT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// How long the start-up check waits for the brokers' topic list before going on unchecked: the
/// daemon must still start when the broker is down (it then waits unready), so this is short.
const TOPIC_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// A decoded message on its way through the model.
pub struct PendingMessage {
    pub message: InputMessage,
    pub decoded: DecodedMessage,
}

impl HasText for PendingMessage {
    fn text(&self) -> &str {
        &self.decoded.text
    }

    fn declared_language(&self) -> Option<&str> {
        self.decoded.lang.as_deref()
    }
}

/// Optional observers for embedding the daemon (the demo prints alerts; tests read them).
#[derive(Default, Clone)]
pub struct Observers {
    pub alerts: Option<mpsc::UnboundedSender<AlertEvent>>,
}

/// State the pipeline tasks share.
struct Shared {
    config: Config,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    sink: KafkaSink,
    source: KafkaSource,
    offsets: Arc<Mutex<OffsetTracker>>,
    /// The served model; hot reload swaps it between batches.
    model: ModelSwitch,
    windows: Mutex<WindowStore>,
    detector: Mutex<SpikeDetector>,
    /// Windows and detector per entity, when `[entities]` tracks any.
    entities: Option<EntityWindows>,
    in_flight_records: Arc<Semaphore>,
    observers: Observers,
    /// Where acknowledged records are archived, when `[archive]` names a directory.
    archive: Option<ArchiveSink>,
    /// Cancelled only when a drain runs out of time: stops produce retries.
    abandon: CancellationToken,
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
    let http_stop = CancellationToken::new();
    {
        let stop = http_stop.clone();
        let serve =
            http::serve(
                http_listener,
                Arc::clone(&metrics),
                Arc::clone(&readiness),
                async move { stop.cancelled().await },
            );
        stages.spawn(Stage::Http, async move { serve.await.context("the HTTP server failed") });
    }

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
        faults.inference_panic,
    )?;
    let model_switch = pool.switch();
    let model = model_switch.current();
    metrics.set_model_version(&model.version);
    metrics.create_topic_series(&model.topic_labels);
    readiness.set_model_loaded(true);
    tracing::info!(version = %model.version, path = %config.model.path.display(), workers = config.model.workers, "model loaded");

    let offsets = Arc::new(Mutex::new(OffsetTracker::default()));
    let source = KafkaSource::new(
        &config,
        ConsumerShared {
            offsets: Arc::clone(&offsets),
            metrics: Arc::clone(&metrics),
            readiness: Arc::clone(&readiness),
        },
    )?;
    let sink = KafkaSink::new(&config.kafka.brokers, config.kafka.producer_options.iter())?;
    let windows = WindowStore::new(config.windows.to_window_config())
        .map_err(|problems| anyhow::anyhow!("invalid window settings: {}", problems.join("; ")))?;
    let detector = SpikeDetector::new(config.detector.to_detector_config())
        .map_err(|problems| anyhow::anyhow!("invalid detector settings: {}", problems.join("; ")))?;
    let entities = EntityWindows::from_config(&config, &metrics)?;
    let (archive_sink, archive_thread) = match archive::WriterSettings::from_config(&config.archive) {
        Some(settings) => Some(archive::start(settings, Arc::clone(&metrics)).await?),
        None => None,
    }
    .unzip();
    let shared = Arc::new(Shared {
        config,
        metrics,
        readiness,
        sink,
        source,
        offsets,
        model: model_switch,
        windows: Mutex::new(windows),
        detector: Mutex::new(detector),
        entities,
        in_flight_records: Arc::new(Semaphore::new(MAX_RECORDS_IN_FLIGHT)),
        observers,
        archive: archive_sink,
        abandon: CancellationToken::new(),
    });
    tracing::info!(topics = ?shared.config.kafka.input_topics, brokers = %shared.config.kafka.brokers, "consuming");

    // Not a child of `shutdown`: the consumer must stop only after the supervisor has seen the
    // signal, or its clean return could race the signal and read as a stage failure.
    let stop_polling = CancellationToken::new();
    let (decoded_sender, decoded) = mpsc::channel(DECODED_QUEUE_BATCHES * shared.config.batch.max_size);
    let aggregate_stop = CancellationToken::new();
    let (alert_sender, alert_queue) = mpsc::unbounded_channel();
    stages.spawn(Stage::Consume, consume(Arc::clone(&shared), decoded_sender, stop_polling.clone()));
    stages.spawn(Stage::Batch, cut_batches(Arc::clone(&shared), decoded, pool));
    stages.spawn(Stage::Emit, emit_batches(Arc::clone(&shared), results));
    stages.spawn(Stage::AlertPublish, publish_alerts(Arc::clone(&shared), alert_queue));
    stages.spawn(Stage::Aggregate, aggregate(Arc::clone(&shared), aggregate_stop.clone(), alert_sender.clone()));
    stages.spawn(Stage::BrokerCheck, check_broker(Arc::clone(&shared), aggregate_stop.clone()));
    let reload = reload::watch(
        shared.config.model.path.clone(),
        shared.model.clone(),
        Arc::clone(&shared.metrics),
        shared.config.model.watch_interval(),
        aggregate_stop.clone(),
    );
    stages.spawn(Stage::Reload, async move {
        reload.await;
        Ok(())
    });
    if let Some(retrain) = schedule::retrains(&shared.config, aggregate_stop.clone()) {
        stages.spawn(Stage::Retrain, retrain);
    }

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
    shared.readiness.set_draining();
    stop_polling.cancel();
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
    if tokio::time::timeout(shared.config.shutdown.grace(), drain).await.is_err() {
        tracing::warn!(
            "drain did not finish within the grace period; committing what is done, the rest is re-read on restart"
        );
        shared.abandon.cancel();
    }
    aggregate_stop.cancel();
    let exits = stages.wait_for(&[Stage::Aggregate, Stage::BrokerCheck, Stage::Reload, Stage::Retrain]).await;
    note_exits(&shared, &mut failure, exits);
    // Close the last full windows so their alerts are not lost with the process.
    evaluate_windows(&shared, now_ms(), &alert_sender);
    // The queue closes once its last sender is gone; the publisher then sends what is queued.
    drop(alert_sender);
    match tokio::time::timeout(ALERT_PUBLISH_TIMEOUT, stages.wait_for(&[Stage::AlertPublish])).await {
        Ok(exits) => note_exits(&shared, &mut failure, exits),
        Err(_) => tracing::warn!("alert events still unpublished at exit; they are in the log above"),
    }
    let flush_shared = Arc::clone(&shared);
    tokio::task::spawn_blocking(move || {
        if let Err(error) = flush_shared.sink.flush(Duration::from_secs(5)) {
            tracing::warn!(%error, "producer flush failed");
        }
        flush_shared.source.commit_now();
        flush_shared.source.unsubscribe();
    })
    .await
    .context("final commit failed")?;
    tracing::info!("drained: offsets committed");
    http_stop.cancel();
    let exits = stages.wait_for(&[Stage::Http]).await;
    note_exits(&shared, &mut failure, exits);
    match failure {
        Some(stage_failure) => Err(stage_failure.into()),
        None => Ok(()),
    }
}

/// Makes a stage failure visible everywhere an operator or orchestrator looks: the log line, the
/// counter, `/readyz` (not ready) and `/healthz` (failing, naming the stage).
fn report_stage_failure(shared: &Shared, failure: &StageFailure) {
    tracing::error!(stage = %failure.stage, cause = %failure.cause, "{failure}; the process drains and exits");
    shared.metrics.stage_failures.with_label_values(&[failure.stage.as_str()]).inc();
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

/// Polls Kafka until told to stop; decodes each message and sends it on, or dead-letters it.
/// Returns once the dead letters still in flight are sent (or the drain is abandoned).
async fn consume(
    shared: Arc<Shared>,
    decoded_sender: mpsc::Sender<PendingMessage>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut dead_letters = JoinSet::new();
    // Messages that arrived while the partitions were paused, handled before polling again.
    let mut held = VecDeque::new();
    loop {
        let message = match held.pop_front() {
            Some(held_message) => Ok(held_message),
            None => tokio::select! {
                biased;
                () = stop.cancelled() => break,
                message = shared.source.next_message() => message,
            },
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                // Transport errors are retried by librdkafka; report and keep polling.
                tracing::warn!(%error, "kafka consume error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        reap_finished(&mut dead_letters);
        match decode::decode(&message, shared.config.input.format, shared.config.input.max_message_bytes, now_ms()) {
            Ok(decoded) => {
                let Ok(slot) = wait_for_room(&shared, decoded_sender.reserve(), &mut held).await else {
                    break;
                };
                slot.send(PendingMessage { message, decoded });
            }
            Err(dead_letter) => {
                let permit = wait_for_room(&shared, acquire_record_slot(&shared), &mut held).await;
                let task_shared = Arc::clone(&shared);
                dead_letters.spawn(async move {
                    send_dead_letter(&task_shared, &message, &dead_letter).await;
                    drop(permit);
                });
            }
        }
    }
    tracing::info!("stopped polling");
    // Closing the queue lets the batcher flush and finish while the dead letters complete.
    drop(decoded_sender);
    join_all(&mut dead_letters).await;
    Ok(())
}

/// Sends `message`'s original bytes to the dead-letter topic with headers saying why; once
/// acknowledged, counts it under its reason and releases its offset.
async fn send_dead_letter(shared: &Shared, message: &InputMessage, dead_letter: &DeadLetter) {
    let headers = decode::dead_letter_headers(message, dead_letter);
    let headers: Vec<(&str, String)> = headers.into_iter().collect();
    let payload = message.payload.as_deref().unwrap_or_default();
    let topic = &shared.config.kafka.dead_letter_topic;
    if send_with_retry(shared, "dead_letter", topic, message.key.as_deref(), payload, &headers).await {
        shared.metrics.messages_dead_lettered.with_label_values(&[dead_letter.reason.as_str()]).inc();
        complete_offset(shared, message);
    }
}

/// Takes the results of the finished tasks of a stage's per-record set. A panic in one is raised
/// again here, so the stage fails with it and the process goes down: swallowed, it would leave
/// that record's offset pending and its partition's commits pinned for ever, silently.
fn reap_finished(tasks: &mut JoinSet<()>) {
    while let Some(result) = tasks.try_join_next() {
        raise_panic(result);
    }
}

/// Waits for every task of a stage's per-record set, raising a panic as [`reap_finished`] does.
async fn join_all(tasks: &mut JoinSet<()>) {
    while let Some(result) = tasks.join_next().await {
        raise_panic(result);
    }
}

fn raise_panic(result: Result<(), tokio::task::JoinError>) {
    if let Err(error) = result
        && error.is_panic()
    {
        std::panic::resume_unwind(error.into_panic());
    }
}

/// Waits for `room` downstream while keeping this member in its consumer group.
///
/// When the output stalls, every queue fills and the consumer stops polling; after
/// `max.poll.interval.ms` without a poll librdkafka leaves the group (rust-rdkafka #433), and the
/// partitions' in-flight messages are re-read by whoever gets them. So a wait longer than
/// [`BACKPRESSURE_POLL_INTERVAL`] pauses every assigned partition and polls once per interval,
/// which serves rebalances and resets librdkafka's timer without fetching; the partitions
/// resume once there is room. A message delivered anyway (from a partition assigned during the
/// pause) is kept in `held`, in order, and the new assignment paused too.
async fn wait_for_room<T>(
    shared: &Shared,
    room: impl std::future::Future<Output = T>,
    held: &mut VecDeque<InputMessage>,
) -> T {
    tokio::pin!(room);
    let mut paused_since: Option<Instant> = None;
    let room = loop {
        if let Ok(room) = tokio::time::timeout(BACKPRESSURE_POLL_INTERVAL, &mut room).await {
            break room;
        }
        if paused_since.is_none() {
            tracing::info!("output backpressure: consumer paused");
            paused_since = Some(Instant::now());
        }
        if let Err(error) = shared.source.pause_assigned() {
            tracing::warn!(%error, "cannot pause the assigned partitions");
        }
        match shared.source.poll_once().await {
            Some(Ok(message)) => held.push_back(message),
            Some(Err(error)) => tracing::warn!(%error, "kafka consume error while paused"),
            None => {}
        }
    };
    if let Some(paused_since) = paused_since {
        if let Err(error) = shared.source.resume_assigned() {
            tracing::warn!(%error, "cannot resume the assigned partitions");
        }
        tracing::info!(
            paused_ms = paused_since.elapsed().as_millis() as u64,
            "output backpressure eased: consumer resumed"
        );
    }
    room
}

/// Cuts batches on size or deadline and queues them for the workers; on end of input, flushes
/// the last batch and lets the workers finish.
async fn cut_batches(
    shared: Arc<Shared>,
    mut decoded: mpsc::Receiver<PendingMessage>,
    pool: InferencePool<PendingMessage>,
) -> anyhow::Result<()> {
    let mut batcher =
        Batcher::new(BatchPolicy { max_size: shared.config.batch.max_size, max_wait: shared.config.batch.max_wait() });
    loop {
        let deadline = batcher.deadline();
        let next = tokio::select! {
            next = decoded.recv() => next,
            () = sleep_until_optional(deadline) => {
                if let Some(batch) = batcher.poll_deadline(Instant::now()) {
                    submit(&shared, &pool, batch).await?;
                }
                continue;
            }
        };
        let Some(pending) = next else {
            break;
        };
        if let Some(batch) = batcher.push(pending, Instant::now()) {
            submit(&shared, &pool, batch).await?;
        }
    }
    if let Some(batch) = batcher.flush() {
        submit(&shared, &pool, batch).await?;
    }
    // Joining the worker threads blocks; they finish the queued batches first.
    tokio::task::spawn_blocking(move || pool.finish()).await.context("inference workers did not stop cleanly")?;
    Ok(())
}

async fn submit(
    shared: &Shared,
    pool: &InferencePool<PendingMessage>,
    batch: Vec<PendingMessage>,
) -> anyhow::Result<()> {
    shared.metrics.batch_size.observe(batch.len() as f64);
    pool.submit(batch).await
}

async fn sleep_until_optional(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}

/// Sends each classified message's enriched record; once acknowledged, counts it in the
/// windows and releases its offset.
async fn emit_batches(
    shared: Arc<Shared>,
    mut results: mpsc::Receiver<ClassifiedBatch<PendingMessage>>,
) -> anyhow::Result<()> {
    let mut sends = JoinSet::new();
    while let Some(batch) = results.recv().await {
        shared.metrics.inference_duration.observe(batch.inference_duration.as_secs_f64());
        let model = Arc::clone(&batch.model);
        let predictions = match batch.predictions {
            Ok(predictions) => predictions,
            Err(failure) => {
                dead_letter_failed_batch(&shared, &mut sends, batch.items, &failure, &model.version).await;
                continue;
            }
        };
        for (pending, prediction) in batch.items.into_iter().zip(predictions) {
            reap_finished(&mut sends);
            let permit = acquire_record_slot(&shared).await;
            let task_shared = Arc::clone(&shared);
            let model = Arc::clone(&model);
            sends.spawn(async move {
                let prediction = match prediction {
                    Ok(prediction) => prediction,
                    Err(unsupported) => {
                        emit_unsupported_language(&task_shared, &pending, &unsupported, &model.version).await;
                        drop(permit);
                        return;
                    }
                };
                let topic = model.topic_labels[prediction.topic_index].as_str();
                let sentiment = prediction.sentiment.label();
                let entities = task_shared.entities.as_ref().map(|windows| windows.entities(&pending.decoded.text));
                let classification = Classification {
                    topic,
                    topic_probability: prediction.topic_probability,
                    sentiment,
                    sentiment_probabilities: prediction.sentiment,
                    model_version: &model.version,
                    entities: entities.as_deref(),
                };
                let processed_at_ms = now_ms();
                let payload =
                    record::enriched_record(&pending.message, &pending.decoded, &classification, processed_at_ms);
                let output_topic = &task_shared.config.kafka.output_topic;
                let key = pending.message.key.as_deref();
                if send_with_retry(&task_shared, "enriched", output_topic, key, &payload, &[]).await {
                    task_shared.metrics.messages_classified.with_label_values(&[topic, sentiment]).inc();
                    task_shared.metrics.end_to_end_latency.observe(pending.message.received_at.elapsed().as_secs_f64());
                    count_in_windows(&task_shared, &pending, &classification, &payload).await;
                    if let Some(archive) = &task_shared.archive {
                        let archived =
                            ArchiveRecord::new(&pending.message, &pending.decoded, &classification, processed_at_ms);
                        // Before the offset is released: a stalled archive holds back consumption.
                        archive.archive(archived).await;
                    }
                    complete_offset(&task_shared, &pending.message);
                }
                drop(permit);
            });
        }
    }
    join_all(&mut sends).await;
    Ok(())
}

/// The model failed on this batch: each of its messages goes to the dead-letter topic as
/// `inference_failed`, with its original bytes so it can be replayed once the model is fixed, and
/// its offset then completes, so the partition moves on and the process keeps serving.
async fn dead_letter_failed_batch(
    shared: &Arc<Shared>,
    sends: &mut JoinSet<()>,
    items: Vec<PendingMessage>,
    failure: &InferenceFailure,
    model_version: &str,
) {
    tracing::error!(
        model_version,
        messages = items.len(),
        cause = %failure.cause,
        "inference failed on a batch; its messages go to the dead-letter topic"
    );
    let detail = format!("model {model_version}: {}", failure.cause);
    let dead_letter = Arc::new(DeadLetter::new(DeadLetterReason::InferenceFailed, detail));
    for pending in items {
        reap_finished(sends);
        let permit = acquire_record_slot(shared).await;
        let task_shared = Arc::clone(shared);
        let dead_letter = Arc::clone(&dead_letter);
        sends.spawn(async move {
            send_dead_letter(&task_shared, &pending.message, &dead_letter).await;
            drop(permit);
        });
    }
}

async fn count_in_windows(
    shared: &Shared,
    pending: &PendingMessage,
    classification: &Classification<'_>,
    payload: &[u8],
) {
    let observation = record::observation(&pending.message, &pending.decoded, classification);
    let now_ms = now_ms();
    let outcome = locks::lock(&shared.windows).observe(&observation, now_ms);
    if let (ObserveOutcome::Counted, Some(windows), Some(entities)) =
        (outcome, &shared.entities, classification.entities)
    {
        windows.observe(&observation, entities, now_ms);
    }
    if outcome == ObserveOutcome::Late {
        shared.metrics.messages_late.with_label_values(&[classification.topic]).inc();
        if let Some(late_topic) = &shared.config.kafka.late_topic {
            send_with_retry(shared, "late", late_topic, pending.message.key.as_deref(), payload, &[]).await;
        }
    }
}

/// A message in a language the model does not serve: forwarded with null answers and counted, but kept out of the
/// windows (its "sentiment" would be a guess) and the archive (which holds the model's predictions, for labelling).
async fn emit_unsupported_language(
    shared: &Shared,
    pending: &PendingMessage,
    unsupported: &UnsupportedLanguage,
    model_version: &str,
) {
    let payload = record::unsupported_language_record(
        &pending.message,
        &pending.decoded,
        &unsupported.language,
        model_version,
        now_ms(),
    );
    let key = pending.message.key.as_deref();
    if send_with_retry(shared, "enriched", &shared.config.kafka.output_topic, key, &payload, &[]).await {
        shared.metrics.messages_unsupported_language.with_label_values(&[unsupported.metric_label]).inc();
        shared.metrics.end_to_end_latency.observe(pending.message.received_at.elapsed().as_secs_f64());
        complete_offset(shared, &pending.message);
    }
}

fn complete_offset(shared: &Shared, message: &InputMessage) {
    locks::lock(&shared.offsets).complete(&message.topic, message.partition, message.offset);
}

async fn acquire_record_slot(shared: &Shared) -> tokio::sync::OwnedSemaphorePermit {
    Arc::clone(&shared.in_flight_records).acquire_owned().await.expect("the record semaphore is never closed")
}

/// Sends until acknowledged (returns true) or the drain is abandoned (false). Every failure is
/// counted and logged; the record is never dropped while the process may still deliver it.
async fn send_with_retry(
    shared: &Shared,
    output: &'static str,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: &[(&str, String)],
) -> bool {
    send_attempts(shared, output, topic, key, payload, headers, u32::MAX).await.is_ok()
}

/// Sends until acknowledged, backing off between tries, for at most `attempts` tries; the error
/// says why the last one failed, or that the drain was abandoned. Every failure is counted.
async fn send_attempts(
    shared: &Shared,
    output: &'static str,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: &[(&str, String)],
    attempts: u32,
) -> Result<(), String> {
    let mut backoff = PRODUCE_RETRY_INITIAL;
    let mut attempt: u32 = 0;
    loop {
        attempt = attempt.saturating_add(1);
        match shared.sink.send(topic, key, payload, headers).await {
            Ok(()) => {
                shared.metrics.records_produced.with_label_values(&[output]).inc();
                return Ok(());
            }
            Err(error) => {
                shared.metrics.produce_failures.with_label_values(&[output]).inc();
                if attempt >= attempts {
                    return Err(error.to_string());
                }
                tracing::warn!(%error, topic, retry_in_ms = backoff.as_millis() as u64, "produce failed; retrying");
            }
        }
        tokio::select! {
            () = shared.abandon.cancelled() => return Err("the drain ran out of time".to_owned()),
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(PRODUCE_RETRY_MAX);
    }
}

/// Closes windows on time, evaluates spikes, refreshes gauges and stores completed offsets. Never
/// waits on the broker: alert events go to [`publish_alerts`] through `alerts`.
async fn aggregate(
    shared: Arc<Shared>,
    stop: CancellationToken,
    alerts: mpsc::UnboundedSender<AlertEvent>,
) -> anyhow::Result<()> {
    let mut ticker = tokio::time::interval(AGGREGATE_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        evaluate_windows(&shared, now_ms(), &alerts);
        shared.source.store_completed_offsets();
    }
}

/// Closes the topic and entity windows due by `now_ms` and hands their alert events on.
fn evaluate_windows(shared: &Shared, now_ms: i64, alert_queue: &mpsc::UnboundedSender<AlertEvent>) {
    let model_version = shared.model.current().version.clone();
    let mut alerts = evaluate_topic_windows(shared, now_ms, &model_version);
    if let Some(entities) = &shared.entities {
        alerts.extend(entities.evaluate(now_ms, &model_version, &shared.metrics));
    }
    for alert in alerts {
        announce_alert(shared, &alert);
        // The receiver lives until every sender is gone; a send error cannot happen before.
        let _ = alert_queue.send(alert);
    }
}

/// Closes the topic windows, runs the detector on them and refreshes the topic metrics; returns the alert events.
fn evaluate_topic_windows(shared: &Shared, now_ms: i64, model_version: &str) -> Vec<AlertEvent> {
    let closed = locks::lock(&shared.windows).advance(now_ms);
    let mut alerts = Vec::new();
    {
        let mut detector = locks::lock(&shared.detector);
        for bucket in &closed {
            if let Some(event) = detector.on_closed_bucket(bucket, model_version) {
                alerts.push(event);
            }
            for view in &bucket.views {
                let view_label = view_label(view.width_ms);
                shared
                    .metrics
                    .negative_rate
                    .with_label_values(&[&bucket.topic, &view_label])
                    .set(view.counts.negative_rate());
                shared
                    .metrics
                    .message_count
                    .with_label_values(&[&bucket.topic, &view_label])
                    .set(view.counts.total as i64);
            }
            if let Some(state) = detector.state(&bucket.topic) {
                shared.metrics.negative_rate_baseline.with_label_values(&[&bucket.topic]).set(state.baseline_mean);
                shared
                    .metrics
                    .negative_rate_baseline_stddev
                    .with_label_values(&[&bucket.topic])
                    .set(state.baseline_std);
                shared.metrics.spike_z_score.with_label_values(&[&bucket.topic]).set(state.last_z.unwrap_or(0.0));
                shared.metrics.alert_firing.with_label_values(&[&bucket.topic]).set(i64::from(state.firing.is_some()));
            }
        }
    }
    alerts
}

/// Shows an alert where no broker is needed: the metrics, the log line and the observer. (Entity alerts are
/// counted by [`EntityWindows::evaluate`], which knows their bounded label.)
fn announce_alert(shared: &Shared, alert: &AlertEvent) {
    if let AlertScope::Topic(topic) = &alert.scope {
        shared.metrics.alerts.with_label_values(&[topic, alert.kind.as_str()]).inc();
    }
    match alert.kind {
        AlertKind::Firing => tracing::warn!(
            scope = alert.scope.kind(),
            topic = %alert.topic,
            detector = alert.detector.as_str(),
            z = alert.z_score,
            p = alert.negative_count_p_value,
            "{}",
            alert.summary()
        ),
        AlertKind::Resolved => {
            tracing::info!(
                scope = alert.scope.kind(),
                topic = %alert.topic,
                detector = alert.detector.as_str(),
                "{}",
                alert.summary()
            )
        }
    }
    if let Some(observer) = &shared.observers.alerts {
        let _ = observer.send(alert.clone());
    }
}

/// Publishes alert events to the alerts topic one at a time, in the order they were raised (so a
/// topic's firing and resolved events keep their order under its key), until the queue closes.
/// Each publish is bounded ([`ALERT_PUBLISH_ATTEMPTS`], [`ALERT_PUBLISH_TIMEOUT`]); one that fails
/// is logged with the topic and error, counted, and shown on /readyz until a publish succeeds.
async fn publish_alerts(shared: Arc<Shared>, mut queue: mpsc::UnboundedReceiver<AlertEvent>) -> anyhow::Result<()> {
    let alerts_topic = shared.config.kafka.alerts_topic.as_str();
    while let Some(alert) = queue.recv().await {
        let payload = match serde_json::to_vec(&alert) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, "cannot serialise an alert event");
                continue;
            }
        };
        let key = Some(alert.topic.as_bytes());
        let send = send_attempts(&shared, "alert", alerts_topic, key, &payload, &[], ALERT_PUBLISH_ATTEMPTS);
        let outcome = match tokio::time::timeout(ALERT_PUBLISH_TIMEOUT, send).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no acknowledgement within {} s", ALERT_PUBLISH_TIMEOUT.as_secs())),
        };
        match outcome {
            Ok(()) => shared.readiness.set_alert_publish_failing(false),
            Err(error) => {
                shared.metrics.alert_publish_failures.inc();
                shared.readiness.set_alert_publish_failing(true);
                tracing::error!(
                    alerts_topic,
                    %error,
                    topic = %alert.topic,
                    kind = alert.kind.as_str(),
                    "alert event not published to the alerts topic; it shows only in this log and the metrics"
                );
            }
        }
    }
    Ok(())
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
        Ok(existing) => config.kafka.check_topics_exist(&existing)?,
        Err(error) => tracing::warn!(error = format!("{error:#}"), "cannot check that the configured topics exist"),
    }
    Ok(())
}

async fn check_broker(shared: Arc<Shared>, stop: CancellationToken) -> anyhow::Result<()> {
    let mut ticker = tokio::time::interval(BROKER_CHECK_INTERVAL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let check_shared = Arc::clone(&shared);
        let reachable = tokio::task::spawn_blocking(move || check_shared.source.broker_reachable(BROKER_CHECK_TIMEOUT))
            .await
            .unwrap_or(false);
        shared.readiness.set_broker_reachable(reachable);
    }
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

/// The daemon's runtime. At least two worker threads: a revoke callback blocks the consumer's
/// thread while it waits for in-flight messages, and the emit path must keep running meanwhile.
/// Inference does not run here (it has its own threads).
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
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
