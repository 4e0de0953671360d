//! The Kafka consumer: a consumer group over the input topics, polled on a thread of its own that
//! owns the offset tracker. Messages go out to the pipeline over a channel; the pipeline sends the
//! positions of the messages it has fully handled back over another, and only those offsets are
//! stored for commit.
//!
//! Why a thread, not a tokio task: librdkafka runs the rebalance callback inside `poll`, and a
//! revoke must wait there until the revoked partitions' in-flight messages are done (vector and
//! quickwit make a revoke the same barrier). On a thread of its own that wait blocks nobody: it
//! takes completions off the channel until the revoked partitions have none in flight, then
//! commits. No tokio worker ever sleeps for it, so the runtime needs no spare worker.

use std::collections::VecDeque;
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::ClientContext;
use rdkafka::Offset;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, RebalanceProtocol};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;
use rdkafka::types::RDKafkaRespErr;
use tokio::sync::mpsc;

use crate::config::Config;
use crate::locks;
use crate::message::{InputMessage, MessagePosition};
use crate::metrics::Metrics;
use crate::pipeline::offsets::OffsetTracker;
use crate::readiness::{PartitionState, Readiness};

/// How long a revoke waits for the revoked partitions' in-flight messages to be emitted before
/// committing what is done. Well under librdkafka's default `max.poll.interval.ms` (300 s), so
/// waiting can never get this member evicted; a batch takes milliseconds, so 10 s is ample.
const REVOKE_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one `poll` waits for a message: also how late a stop request or completions are seen
/// while the input is idle (nothing is in flight then, so nothing waits on them).
const POLL_TIMEOUT: Duration = Duration::from_millis(100);
/// How long the thread waits for room in the pipeline's queue at a time, between serving its
/// completions and control requests.
const ROOM_WAIT: Duration = Duration::from_millis(50);
/// How long the pipeline may stay full before the assigned partitions are paused. Pausing discards
/// what librdkafka prefetched, so a queue that is full for a moment (normal at full speed) must not
/// pause; a stall does, and the thread then polls each [`ROOM_WAIT`] without fetching, which keeps
/// this member in its group (librdkafka evicts a member that does not poll for
/// `max.poll.interval.ms`, rust-rdkafka #433).
const PAUSE_AFTER_FULL: Duration = Duration::from_secs(1);
/// How often librdkafka reports statistics, and so how fresh the lag metric is: a fraction of a
/// typical 15-30 s Prometheus scrape interval.
const LAG_STATISTICS_INTERVAL_MS: &str = "5000";

/// The pipeline's side of the completion channel: a message is complete once its output is
/// acknowledged and it is counted (or its dead letter is acknowledged). Cloned into every stage
/// that finishes messages.
#[derive(Clone)]
pub struct Completions {
    sender: std_mpsc::Sender<Vec<MessagePosition>>,
}

impl Completions {
    /// Reports a group of messages done at once (a batch): one channel message for all of them.
    pub fn complete(&self, positions: Vec<MessagePosition>) {
        if positions.is_empty() {
            return;
        }
        // The thread is gone only after the final commit (or a crash that fails the process):
        // nothing is left to store then.
        let _ = self.sender.send(positions);
    }
}

/// Told of partitions changing hands (an aggregator restores and hands over state with it). Called on the polling
/// thread inside librdkafka's rebalance callback: it may block, for about as long as a revoke's drain.
pub trait AssignmentListener: Send + Sync {
    /// `partitions` (topic, partition) are about to be assigned here; returns the offsets some of them must start
    /// from (the others start at their committed offset).
    fn assigning(&self, partitions: &[(String, i32)]) -> Vec<(String, i32, i64)>;
    /// `partitions` are being given up: their in-flight messages are done and their offsets committed.
    fn revoked(&self, partitions: &[(String, i32)]);
}

/// Requests from the rest of the daemon to the polling thread.
enum Control {
    /// Stop fetching and close the message queue (the drain starts); keep taking completions.
    StopPolling,
    /// Take the last completions, store and commit synchronously, leave the group, and end.
    Finish,
}

/// The polling thread, as the daemon drives it.
pub struct KafkaSource {
    control: std_mpsc::Sender<Control>,
    thread: Option<JoinHandle<()>>,
}

impl KafkaSource {
    /// Subscribes to `config.kafka.input_topics` in `config.kafka.group_id` and starts the polling
    /// thread. Consumed messages go to `messages`; the returned [`Completions`] take them back once
    /// done; `assignments`, when given, hears of every partition that changes hands. Must be called
    /// within the tokio runtime (the thread waits for room in `messages` through it).
    pub fn start(
        config: &Config,
        metrics: Arc<Metrics>,
        readiness: Arc<Readiness>,
        messages: mpsc::Sender<InputMessage>,
        assignments: Option<Arc<dyn AssignmentListener>>,
    ) -> anyhow::Result<(KafkaSource, Completions)> {
        let (completion_sender, completion_receiver) = std_mpsc::channel();
        let state = Mutex::new(PollerState {
            tracker: OffsetTracker::default(),
            completions: completion_receiver,
            held: VecDeque::new(),
            closing: false,
        });
        let consumer = create_consumer(config, IngestContext { state, metrics, readiness, assignments })?;
        let (control, control_receiver) = std_mpsc::channel();
        let runtime = tokio::runtime::Handle::current();
        let thread = std::thread::Builder::new()
            .name("sentmon-poll".to_owned())
            .spawn(move || Poller::new(consumer, messages, control_receiver, runtime).run())
            .context("failed to start the Kafka polling thread")?;
        Ok((KafkaSource { control, thread: Some(thread) }, Completions { sender: completion_sender }))
    }

    /// Stops fetching: the message queue closes once the thread has seen this (within
    /// [`POLL_TIMEOUT`]), which starts the pipeline's drain. Completions are still taken.
    pub fn stop_polling(&self) {
        let _ = self.control.send(Control::StopPolling);
    }

    /// Stores what is done, commits synchronously, leaves the group and waits for the thread to
    /// end (blocking: call it from a blocking thread, after the pipeline has drained).
    pub fn finish(mut self) {
        let _ = self.control.send(Control::Finish);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            tracing::error!("the Kafka polling thread panicked; offsets since the last commit are re-read on restart");
        }
    }
}

fn create_consumer(config: &Config, context: IngestContext) -> anyhow::Result<BaseConsumer<IngestContext>> {
    let kafka = &config.kafka;
    let mut client_config = ClientConfig::new();
    // Defaults first, so the pass-through options below can override them.
    client_config
        .set("partition.assignment.strategy", "cooperative-sticky")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        // Statistics feed the consumer-lag metric (see `IngestContext::stats`).
        .set("statistics.interval.ms", LAG_STATISTICS_INTERVAL_MS);
    for (key, value) in kafka.consumer_options.iter() {
        client_config.set(key, value);
    }
    client_config
        .set("bootstrap.servers", &kafka.brokers)
        .set("group.id", &kafka.group_id)
        // Offsets are stored only once a message's record is acknowledged and counted;
        // librdkafka's automatic store would also store messages we never handled.
        .set("enable.auto.offset.store", "false")
        // librdkafka commits the *stored* offsets on this interval; revoke and shutdown also
        // commit synchronously.
        .set("enable.auto.commit", "true")
        .set("auto.commit.interval.ms", kafka.commit_interval_ms.to_string());
    let consumer: BaseConsumer<IngestContext> = client_config
        .create_with_context(context)
        .context("failed to create the Kafka consumer (check kafka.consumer_options)")?;
    let topics: Vec<&str> = kafka.input_topics.iter().map(String::as_str).collect();
    consumer.subscribe(&topics).with_context(|| format!("failed to subscribe to {topics:?}"))?;
    Ok(consumer)
}

/// What the polling thread owns. It sits in the consumer's context because librdkafka's callbacks
/// (revoke, statistics) run inside `poll` and reach it only through the context; both run on the
/// polling thread, so the mutex is never contended. It exists because the context must be `Sync`.
struct PollerState {
    tracker: OffsetTracker,
    completions: std_mpsc::Receiver<Vec<MessagePosition>>,
    /// Messages consumed but not yet taken by the pipeline (its queue was full), in order.
    held: VecDeque<InputMessage>,
    /// Set by the final commit: the revoke of the closing consumer then waits for nothing.
    closing: bool,
}

impl PollerState {
    /// Applies the completions already sent; returns whether any arrived.
    fn take_completions(&mut self) -> bool {
        let mut any = false;
        while let Ok(positions) = self.completions.try_recv() {
            self.apply(&positions);
            any = true;
        }
        any
    }

    fn apply(&mut self, positions: &[MessagePosition]) {
        for position in positions {
            self.tracker.complete(&position.topic, position.partition, position.offset);
        }
    }

    /// Messages of `partitions` begun and not completed, leaving out those still held here: those
    /// never reached the pipeline, so nothing will complete them (the next owner re-reads them).
    fn in_flight_in_pipeline(&self, partitions: &[(String, i32)]) -> usize {
        let begun: usize =
            partitions.iter().map(|(topic, partition)| self.tracker.in_flight_for(topic, *partition)).sum();
        let held = self
            .held
            .iter()
            .filter(|message| partitions.iter().any(|(topic, partition)| is_of(message, topic, *partition)))
            .count();
        begun - held
    }
}

fn is_of(message: &InputMessage, topic: &str, partition: i32) -> bool {
    message.partition == partition && message.topic == topic
}

struct IngestContext {
    state: Mutex<PollerState>,
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
    assignments: Option<Arc<dyn AssignmentListener>>,
}

impl ClientContext for IngestContext {
    /// librdkafka's statistics carry each partition's consumer lag from the fetcher's own
    /// watermarks, so reporting lag costs no broker round trip. Only partitions assigned here are
    /// exported: librdkafka keeps reporting a revoked partition with its last figures, and a
    /// stale series would add a lag that no replica has to the fleet's sum.
    fn stats(&self, statistics: Statistics) {
        for (topic_name, topic) in &statistics.topics {
            for (partition_id, partition) in &topic.partitions {
                if !partition.desired {
                    remove_lag_series(&self.metrics, topic_name, *partition_id);
                    continue;
                }
                // Partition -1 is librdkafka's internal "unassigned" bucket; lag -1 means unknown.
                if *partition_id < 0 || partition.consumer_lag < 0 {
                    continue;
                }
                self.metrics
                    .ingest
                    .consumer_lag
                    .with_label_values(&[topic_name.as_str(), &partition_id.to_string()])
                    .set(partition.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for IngestContext {
    /// rdkafka's own rebalance (pre-rebalance, assign or unassign, post-rebalance), except that an
    /// [`AssignmentListener`] may set the offsets new partitions start from: put in the assignment
    /// itself, they cannot race the fetch of the committed offsets as a seek after it would.
    fn rebalance(
        &self,
        base_consumer: &BaseConsumer<Self>,
        error: RDKafkaRespErr,
        partitions: &mut TopicPartitionList,
    ) {
        let assigning = error == RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS;
        if assigning && let Some(listener) = &self.assignments {
            let assigned: Vec<(String, i32)> = partitions
                .elements()
                .iter()
                .map(|element| (element.topic().to_string(), element.partition()))
                .collect();
            for (topic, partition, offset) in listener.assigning(&assigned) {
                if let Err(error) = partitions.set_partition_offset(&topic, partition, Offset::Offset(offset)) {
                    tracing::warn!(%error, topic, partition, offset, "cannot set the start offset of an assigned partition");
                }
            }
        }
        let rebalance = match error {
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS => Rebalance::Assign(partitions),
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS => Rebalance::Revoke(partitions),
            other => Rebalance::Error(KafkaError::Rebalance(other.into())),
        };
        self.pre_rebalance(base_consumer, &rebalance);
        let cooperative = matches!(base_consumer.rebalance_protocol(), RebalanceProtocol::Cooperative);
        let result = match (assigning, cooperative) {
            (true, true) => base_consumer.incremental_assign(partitions),
            (true, false) => base_consumer.assign(partitions),
            (false, true) => base_consumer.incremental_unassign(partitions),
            (false, false) => base_consumer.unassign(),
        };
        if let Err(error) = result {
            tracing::warn!(%error, assigning, "applying a rebalance failed");
        }
        self.post_rebalance(base_consumer, &rebalance);
    }

    /// A revoke is a barrier: before a partition is given up, its in-flight messages finish (their
    /// completions are taken off the channel as they come), their offsets are committed
    /// synchronously, and the next owner starts exactly where this one stopped.
    fn pre_rebalance(&self, base_consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        self.metrics.ingest.rebalances.with_label_values(&["revoke"]).inc();
        let partitions: Vec<(String, i32)> =
            revoked.elements().iter().map(|element| (element.topic().to_string(), element.partition())).collect();
        let mut state = locks::lock(&self.state);
        state.take_completions();
        let deadline = Instant::now() + REVOKE_DRAIN_TIMEOUT;
        while !state.closing {
            let in_flight = state.in_flight_in_pipeline(&partitions);
            if in_flight == 0 {
                break;
            }
            match state.completions.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(positions) => state.apply(&positions),
                Err(std_mpsc::RecvTimeoutError::Timeout) => {
                    tracing::warn!(
                        in_flight,
                        "revoke drain timed out; the next owner will re-read unfinished messages"
                    );
                    break;
                }
                // Every stage that completes messages is gone (the process is ending).
                Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        store_committable(base_consumer, &mut state.tracker);
        commit_sync(base_consumer, &self.metrics, "revoke");
        for (topic, partition) in &partitions {
            state.tracker.forget_partition(topic, *partition);
            // Its new owner reports its lag from now on.
            remove_lag_series(&self.metrics, topic, *partition);
        }
        state.held.retain(|message| !partitions.iter().any(|(topic, partition)| is_of(message, topic, *partition)));
        drop(state);
        if let Some(listener) = &self.assignments {
            listener.revoked(&partitions);
        }
        tracing::info!(partitions = partitions.len(), "partitions revoked");
    }

    fn post_rebalance(&self, base_consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                self.metrics.ingest.rebalances.with_label_values(&["assign"]).inc();
                tracing::info!(partitions = assigned.count(), "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance failed"),
        }
        let assigned_count = base_consumer.assignment().map(|assignment| assignment.count()).unwrap_or(0);
        self.readiness.set_partitions(if assigned_count > 0 {
            PartitionState::Assigned
        } else {
            PartitionState::Waiting
        });
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => self.metrics.ingest.commits.inc(),
            // Nothing stored since the last commit: not a failure.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => {
                self.metrics.ingest.commit_failures.inc();
                tracing::warn!(%error, "offset commit failed; it is retried with the next commit");
            }
        }
    }
}

/// The polling thread's loop: poll, hand messages on (holding them while the pipeline is full,
/// pausing the partitions when that lasts), take completions and store the offsets they free.
struct Poller {
    consumer: BaseConsumer<IngestContext>,
    /// `None` once polling has stopped: the pipeline's queue is closed.
    messages: Option<mpsc::Sender<InputMessage>>,
    control: std_mpsc::Receiver<Control>,
    runtime: tokio::runtime::Handle,
    /// Since when the pipeline's queue has been full, while it is.
    full_since: Option<Instant>,
    /// Since when the assigned partitions have been paused for backpressure, while they are.
    paused_since: Option<Instant>,
}

impl Poller {
    fn new(
        consumer: BaseConsumer<IngestContext>,
        messages: mpsc::Sender<InputMessage>,
        control: std_mpsc::Receiver<Control>,
        runtime: tokio::runtime::Handle,
    ) -> Poller {
        Poller { consumer, messages: Some(messages), control, runtime, full_since: None, paused_since: None }
    }

    fn run(mut self) {
        loop {
            match self.control.try_recv() {
                Ok(Control::StopPolling) => self.stop_polling(),
                // The daemon dropped its handle without finishing: it is going down anyway.
                Ok(Control::Finish) | Err(std_mpsc::TryRecvError::Disconnected) => break,
                Err(std_mpsc::TryRecvError::Empty) => {}
            }
            self.store_completed();
            let Some(messages) = self.messages.clone() else {
                // Draining: only completions matter until the final commit is asked for.
                match self.control.recv_timeout(POLL_TIMEOUT) {
                    Ok(Control::Finish) | Err(std_mpsc::RecvTimeoutError::Disconnected) => break,
                    Ok(Control::StopPolling) | Err(std_mpsc::RecvTimeoutError::Timeout) => continue,
                }
            };
            if self.offer_held(&messages) {
                self.poll_message(POLL_TIMEOUT);
            } else {
                self.wait_for_room(&messages);
            }
        }
        self.final_commit();
    }

    fn stop_polling(&mut self) {
        if self.messages.take().is_some() {
            tracing::info!("stopped polling");
        }
        // Held messages never reach the pipeline: they stay uncompleted, so the commit stops
        // before them and they are read again on restart.
        locks::lock(&self.consumer.context().state).held.clear();
    }

    /// Takes the completions sent so far and stores the offsets they free; librdkafka commits the
    /// stored offsets on its interval.
    fn store_completed(&self) {
        let mut state = locks::lock(&self.consumer.context().state);
        if state.take_completions() {
            store_committable(&self.consumer, &mut state.tracker);
        }
    }

    /// Hands held messages to the pipeline, in order, as far as its queue has room; returns
    /// whether none is left held.
    fn offer_held(&mut self, messages: &mpsc::Sender<InputMessage>) -> bool {
        let mut state = locks::lock(&self.consumer.context().state);
        while let Some(message) = state.held.pop_front() {
            match messages.try_send(message) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(message)) => {
                    state.held.push_front(message);
                    return false;
                }
                // The pipeline is gone: the consume stage failed and the process is draining.
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    state.held.clear();
                    return true;
                }
            }
        }
        drop(state);
        self.full_since = None;
        if let Some(paused_since) = self.paused_since.take() {
            if let Err(error) = resume_assigned(&self.consumer) {
                tracing::warn!(%error, "cannot resume the assigned partitions");
            }
            tracing::info!(
                paused_ms = paused_since.elapsed().as_millis() as u64,
                "output backpressure eased: consumer resumed"
            );
        }
        true
    }

    /// The pipeline is full: waits a little for room; once that has lasted [`PAUSE_AFTER_FULL`],
    /// pauses the partitions and keeps polling (without fetching) to stay in the group.
    fn wait_for_room(&mut self, messages: &mpsc::Sender<InputMessage>) {
        let full_since = *self.full_since.get_or_insert_with(Instant::now);
        let room = self.runtime.block_on(async { tokio::time::timeout(ROOM_WAIT, messages.reserve()).await });
        if matches!(room, Ok(Ok(_))) {
            // The permit is dropped unused: `offer_held` sends the first held message next.
            return;
        }
        if self.paused_since.is_none() && full_since.elapsed() >= PAUSE_AFTER_FULL {
            tracing::info!("output backpressure: consumer paused");
            self.paused_since = Some(Instant::now());
        }
        if self.paused_since.is_some() {
            // Pausing again also covers partitions assigned since the last time.
            if let Err(error) = pause_assigned(&self.consumer) {
                tracing::warn!(%error, "cannot pause the assigned partitions");
            }
            self.poll_message(Duration::ZERO);
        }
    }

    /// Polls once (serving rebalances and statistics too); a message is registered as in flight
    /// and handed on, or held when the pipeline is full.
    fn poll_message(&mut self, timeout: Duration) {
        let message = match self.consumer.poll(timeout) {
            None => return,
            Some(Ok(message)) => owned_message(&message),
            Some(Err(error)) => {
                // Transport errors are retried by librdkafka; report and keep polling.
                tracing::warn!(%error, "kafka consume error");
                std::thread::sleep(POLL_TIMEOUT);
                return;
            }
        };
        let context = self.consumer.context();
        context.metrics.ingest.messages_consumed.with_label_values(&[&message.topic]).inc();
        let mut state = locks::lock(&context.state);
        state.tracker.begin(&message.topic, message.partition, message.offset);
        state.held.push_back(message);
    }

    /// Takes the last completions, stores and commits synchronously, and leaves the group.
    fn final_commit(self) {
        {
            let mut state = locks::lock(&self.consumer.context().state);
            state.take_completions();
            store_committable(&self.consumer, &mut state.tracker);
            state.closing = true;
        }
        commit_sync(&self.consumer, &self.consumer.context().metrics, "shutdown");
        self.consumer.unsubscribe();
        // Dropping the consumer closes it, which serves the final revoke (waiting for nothing).
    }
}

fn owned_message(message: &BorrowedMessage<'_>) -> InputMessage {
    InputMessage {
        topic: message.topic().to_string(),
        partition: message.partition(),
        offset: message.offset(),
        key: message.key().map(<[u8]>::to_vec),
        payload: message.payload().map(<[u8]>::to_vec),
        kafka_timestamp_ms: message.timestamp().to_millis(),
        received_at: Instant::now(),
    }
}

/// Stops fetching from every assigned partition (backpressure). librdkafka discards what it had
/// prefetched for them and, on resume, fetches again from the position after the last message
/// delivered here, so nothing is skipped.
fn pause_assigned(consumer: &BaseConsumer<IngestContext>) -> KafkaResult<()> {
    consumer.pause(&consumer.assignment()?)
}

fn resume_assigned(consumer: &BaseConsumer<IngestContext>) -> KafkaResult<()> {
    consumer.resume(&consumer.assignment()?)
}

/// Drops a partition's consumer-lag series, if this replica exports one.
fn remove_lag_series(metrics: &Metrics, topic: &str, partition: i32) {
    // Err means there was no such series: nothing to remove.
    let _ = metrics.ingest.consumer_lag.remove_label_values(&[topic, &partition.to_string()]);
}

/// Stores the offsets of every partition whose handled prefix advanced.
fn store_committable(consumer: &BaseConsumer<IngestContext>, tracker: &mut OffsetTracker) {
    let committable = tracker.committable();
    if committable.is_empty() {
        return;
    }
    let mut list = TopicPartitionList::new();
    for (topic, partition, next_offset) in &committable {
        if let Err(error) = list.add_partition_offset(topic, *partition, Offset::Offset(*next_offset)) {
            tracing::warn!(%error, topic, partition, "cannot add offset to the store list");
        }
    }
    match consumer.store_offsets(&list) {
        Ok(()) => {
            for (topic, partition, next_offset) in &committable {
                tracker.mark_committed(topic, *partition, *next_offset);
            }
        }
        // A partition revoked meanwhile cannot be stored; its new owner re-reads from the last commit.
        Err(error) => tracing::debug!(%error, "storing offsets failed"),
    }
}

fn commit_sync(consumer: &BaseConsumer<IngestContext>, metrics: &Metrics, when: &'static str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => metrics.ingest.commits.inc(),
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => {
            metrics.ingest.commit_failures.inc();
            tracing::warn!(%error, when, "synchronous offset commit failed");
        }
    }
}
