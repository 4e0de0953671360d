//! The Kafka consumer: a consumer group over the input topics, owned messages out, offsets
//! stored only when the pipeline says a message is fully handled.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use rdkafka::ClientContext;
use rdkafka::Offset;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::error::{KafkaError, KafkaResult, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::statistics::Statistics;
use rdkafka::topic_partition_list::TopicPartitionList;

use crate::config::Config;
use crate::http::{PartitionState, Readiness};
use crate::locks;
use crate::metrics::Metrics;
use crate::pipeline::decode::InputMessage;
use crate::pipeline::offsets::OffsetTracker;

/// How long a revoke waits for the revoked partitions' in-flight messages to be emitted before
/// committing what is done. Well under librdkafka's default `max.poll.interval.ms` (300 s), so
/// waiting can never get this member evicted; a batch takes milliseconds, so 10 s is ample.
const REVOKE_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
const REVOKE_DRAIN_POLL: Duration = Duration::from_millis(5);
/// How often librdkafka reports statistics, and so how fresh the lag metric is: a fraction of a
/// typical 15-30 s Prometheus scrape interval.
const LAG_STATISTICS_INTERVAL_MS: &str = "5000";

/// Shared between the consumer's rebalance callbacks and the pipeline.
pub struct ConsumerShared {
    pub offsets: Arc<Mutex<OffsetTracker>>,
    pub metrics: Arc<Metrics>,
    pub readiness: Arc<Readiness>,
}

/// Makes a revoke a synchronisation barrier (as quickwit and vector do): before giving a partition
/// up, wait until its in-flight messages are emitted, store their offsets and commit
/// synchronously, so the next owner starts exactly where this one stopped.
pub struct IngestContext {
    shared: ConsumerShared,
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
                    remove_lag_series(&self.shared.metrics, topic_name, *partition_id);
                    continue;
                }
                // Partition -1 is librdkafka's internal "unassigned" bucket; lag -1 means unknown.
                if *partition_id < 0 || partition.consumer_lag < 0 {
                    continue;
                }
                self.shared
                    .metrics
                    .consumer_lag
                    .with_label_values(&[topic_name.as_str(), &partition_id.to_string()])
                    .set(partition.consumer_lag);
            }
        }
    }
}

impl ConsumerContext for IngestContext {
    fn pre_rebalance(&self, base_consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(revoked) = rebalance else {
            return;
        };
        self.shared.metrics.rebalances.with_label_values(&["revoke"]).inc();
        let partitions: Vec<(String, i32)> =
            revoked.elements().iter().map(|element| (element.topic().to_string(), element.partition())).collect();
        let started = Instant::now();
        loop {
            let in_flight: usize = {
                let offsets = locks::lock(&self.shared.offsets);
                partitions.iter().map(|(topic, partition)| offsets.in_flight_for(topic, *partition)).sum()
            };
            if in_flight == 0 {
                break;
            }
            if started.elapsed() >= REVOKE_DRAIN_TIMEOUT {
                tracing::warn!(in_flight, "revoke drain timed out; the next owner will re-read unfinished messages");
                break;
            }
            std::thread::sleep(REVOKE_DRAIN_POLL);
        }
        store_committable(base_consumer, &self.shared.offsets);
        commit_sync(base_consumer, &self.shared.metrics, "revoke");
        let mut offsets = locks::lock(&self.shared.offsets);
        for (topic, partition) in &partitions {
            offsets.forget_partition(topic, *partition);
            // Its new owner reports its lag from now on.
            remove_lag_series(&self.shared.metrics, topic, *partition);
        }
        tracing::info!(partitions = partitions.len(), "partitions revoked");
    }

    fn post_rebalance(&self, base_consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(assigned) => {
                self.shared.metrics.rebalances.with_label_values(&["assign"]).inc();
                tracing::info!(partitions = assigned.count(), "partitions assigned");
            }
            Rebalance::Revoke(_) => {}
            Rebalance::Error(error) => tracing::warn!(%error, "rebalance failed"),
        }
        let assigned_count = base_consumer.assignment().map(|assignment| assignment.count()).unwrap_or(0);
        self.shared.readiness.set_partitions(if assigned_count > 0 {
            PartitionState::Assigned
        } else {
            PartitionState::Waiting
        });
    }

    fn commit_callback(&self, result: KafkaResult<()>, _offsets: &TopicPartitionList) {
        match result {
            Ok(()) => self.shared.metrics.commits.inc(),
            // Nothing stored since the last commit: not a failure.
            Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
            Err(error) => {
                self.shared.metrics.commit_failures.inc();
                tracing::warn!(%error, "offset commit failed; it is retried with the next commit");
            }
        }
    }
}

pub struct KafkaSource {
    consumer: StreamConsumer<IngestContext>,
    offsets: Arc<Mutex<OffsetTracker>>,
    metrics: Arc<Metrics>,
}

impl KafkaSource {
    pub fn new(config: &Config, shared: ConsumerShared) -> anyhow::Result<KafkaSource> {
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
            // Offsets are stored by the pipeline only once a message's record is acknowledged and
            // counted; librdkafka's automatic store would also store messages we never handled.
            .set("enable.auto.offset.store", "false")
            // librdkafka commits the *stored* offsets on this interval; revoke and shutdown also
            // commit synchronously.
            .set("enable.auto.commit", "true")
            .set("auto.commit.interval.ms", kafka.commit_interval_ms.to_string());
        let offsets = Arc::clone(&shared.offsets);
        let metrics = Arc::clone(&shared.metrics);
        let consumer: StreamConsumer<IngestContext> = client_config
            .create_with_context(IngestContext { shared })
            .context("failed to create the Kafka consumer (check kafka.consumer_options)")?;
        let topics: Vec<&str> = kafka.input_topics.iter().map(String::as_str).collect();
        consumer.subscribe(&topics).with_context(|| format!("failed to subscribe to {topics:?}"))?;
        Ok(KafkaSource { consumer, offsets, metrics })
    }

    /// The next message as an owned value; its offset is registered as in flight.
    pub async fn next_message(&self) -> KafkaResult<InputMessage> {
        let message = self.consumer.recv().await?;
        let input = InputMessage {
            topic: message.topic().to_string(),
            partition: message.partition(),
            offset: message.offset(),
            key: message.key().map(<[u8]>::to_vec),
            payload: message.payload().map(<[u8]>::to_vec),
            kafka_timestamp_ms: message.timestamp().to_millis(),
            received_at: Instant::now(),
        };
        self.metrics.messages_consumed.with_label_values(&[&input.topic]).inc();
        locks::lock(&self.offsets).begin(&input.topic, input.partition, input.offset);
        Ok(input)
    }

    /// Serves the consumer once without waiting: pending rebalance callbacks run, librdkafka
    /// counts the application as polling (so `max.poll.interval.ms` does not expire), and a
    /// message already fetched is returned.
    pub async fn poll_once(&self) -> Option<KafkaResult<InputMessage>> {
        // A zero timeout still polls the inner future once before giving up (tokio's contract).
        tokio::time::timeout(Duration::ZERO, self.next_message()).await.ok()
    }

    /// Stops fetching from every assigned partition (backpressure). librdkafka discards what it
    /// had prefetched for them and, on resume, fetches again from the position after the last
    /// message delivered here, so nothing is skipped.
    pub fn pause_assigned(&self) -> KafkaResult<()> {
        self.consumer.pause(&self.consumer.assignment()?)
    }

    /// Resumes fetching from every assigned partition after [`KafkaSource::pause_assigned`].
    pub fn resume_assigned(&self) -> KafkaResult<()> {
        self.consumer.resume(&self.consumer.assignment()?)
    }

    /// Stores the offsets of every partition whose handled prefix advanced; librdkafka commits
    /// them on its interval.
    pub fn store_completed_offsets(&self) {
        store_committable(&self.consumer, &self.offsets);
    }

    /// Stores what is done and commits synchronously (shutdown).
    pub fn commit_now(&self) {
        self.store_completed_offsets();
        commit_sync(&self.consumer, &self.metrics, "shutdown");
    }

    /// Whether the cluster answers a metadata request within `timeout` (blocking: call it from a
    /// blocking thread).
    pub fn broker_reachable(&self, timeout: Duration) -> bool {
        self.consumer.client().fetch_metadata(None, timeout).is_ok()
    }

    pub fn unsubscribe(&self) {
        self.consumer.unsubscribe();
    }
}

/// Drops a partition's consumer-lag series, if this replica exports one.
fn remove_lag_series(metrics: &Metrics, topic: &str, partition: i32) {
    // Err means there was no such series: nothing to remove.
    let _ = metrics.consumer_lag.remove_label_values(&[topic, &partition.to_string()]);
}

fn store_committable(consumer: &impl Consumer<IngestContext>, offsets: &Mutex<OffsetTracker>) {
    let committable = locks::lock(offsets).committable();
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
            let mut tracker = locks::lock(offsets);
            for (topic, partition, next_offset) in &committable {
                tracker.mark_committed(topic, *partition, *next_offset);
            }
        }
        // A partition revoked meanwhile cannot be stored; its new owner re-reads from the last commit.
        Err(error) => tracing::debug!(%error, "storing offsets failed"),
    }
}

fn commit_sync(consumer: &impl Consumer<IngestContext>, metrics: &Metrics, when: &'static str) {
    match consumer.commit_consumer_state(CommitMode::Sync) {
        Ok(()) => metrics.commits.inc(),
        Err(KafkaError::ConsumerCommit(RDKafkaErrorCode::NoOffset)) => {}
        Err(error) => {
            metrics.commit_failures.inc();
            tracing::warn!(%error, when, "synchronous offset commit failed");
        }
    }
}
