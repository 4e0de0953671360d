//! An aggregator's side of a rebalance: on assignment, the newly owned topics' windows and detector come back from
//! their latest snapshots on the state topic, and their repartition partitions restart where the snapshots end; on
//! revoke, the topics given up are snapshotted one last time and forgotten. Runs on the polling thread, inside the
//! rebalance (`crate::ingest::consumer::AssignmentListener`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::{Ownership, TopicSnapshot, source_is_on, watermark_source};
use crate::alert::SpikeDetector;
use crate::ingest::consumer::AssignmentListener;
use crate::ingest::producer::KafkaSink;
use crate::ingest::settings::KafkaConfig;
use crate::locks;
use crate::metrics::Metrics;
use crate::window::WindowStore;

/// How long reading the state topic may take before the topics start cold (and the failure is counted): far above
/// a normal restore (well under a second, see ARCHITECTURE.md), well under `max.poll.interval.ms`.
const STATE_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// How long the last snapshots of revoked topics may take to be acknowledged; the next owner restores from the
/// previous snapshot and replays further when they are not.
const HANDOVER_SNAPSHOT_TIMEOUT: Duration = Duration::from_secs(5);

/// The state an aggregator shares between its stages: the windows, the detector and who owns what, always locked in
/// that order.
#[derive(Clone)]
pub struct AggregatorState {
    pub windows: Arc<Mutex<WindowStore>>,
    pub detector: Arc<Mutex<SpikeDetector>>,
    pub ownership: Arc<Mutex<Ownership>>,
}

impl AggregatorState {
    /// Snapshots of `topics` as they stand now (topics this aggregator does not own are left out).
    pub fn snapshots(&self, topics: &[String]) -> Vec<TopicSnapshot> {
        let windows = locks::lock(&self.windows);
        let detector = locks::lock(&self.detector);
        let ownership = locks::lock(&self.ownership);
        topics
            .iter()
            .filter_map(|topic| {
                let (partition, next_offset) = ownership.position_of(topic)?;
                Some(TopicSnapshot {
                    topic: topic.clone(),
                    partition,
                    next_offset,
                    model_version: ownership.model_version().to_owned(),
                    windows: windows.export_topic(topic),
                    detector: detector.export_topic(topic),
                })
            })
            .collect()
    }
}

/// Restores and hands over topic state as repartition partitions change hands.
pub struct Restorer {
    pub kafka: KafkaConfig,
    pub repartition_topic: String,
    pub state_topic: String,
    pub state: AggregatorState,
    pub sink: KafkaSink,
    pub metrics: Arc<Metrics>,
    pub runtime: tokio::runtime::Handle,
}

impl Restorer {
    /// Installs the latest snapshot of every topic on `partitions`; returns per partition the offset to replay from
    /// (the oldest of its snapshots' ends), and how many topics came back.
    pub fn restore(&self, partitions: &[i32]) -> anyhow::Result<(BTreeMap<i32, i64>, usize)> {
        let input_partitions =
            crate::ingest::topics::partition_counts(&self.kafka, &self.kafka.input_topics, STATE_READ_TIMEOUT)?;
        let latest = crate::ingest::topics::read_latest_by_key(&self.kafka, &self.state_topic, STATE_READ_TIMEOUT)?;
        let snapshots: Vec<TopicSnapshot> = latest
            .values()
            .filter_map(|payload| match TopicSnapshot::from_json(payload) {
                Ok(snapshot) => Some(snapshot),
                Err(error) => {
                    tracing::warn!(%error, "unreadable snapshot on the state topic; its topic starts cold");
                    None
                }
            })
            .filter(|snapshot| partitions.contains(&snapshot.partition))
            .collect();
        let mut replay_from: BTreeMap<i32, i64> = BTreeMap::new();
        let mut windows = locks::lock(&self.state.windows);
        let mut detector = locks::lock(&self.state.detector);
        let mut ownership = locks::lock(&self.state.ownership);
        for snapshot in &snapshots {
            if let Some(topic_windows) = snapshot.windows.clone() {
                // The snapshot's other partitions' sources may belong to another aggregator now.
                windows
                    .import_topic(&snapshot.topic, topic_windows, |source| source_is_on(source, &[snapshot.partition]));
            }
            if let Some(topic_detector) = snapshot.detector.clone() {
                detector.import_topic(&snapshot.topic, topic_detector);
            }
            ownership.restored(snapshot);
            let from = replay_from.entry(snapshot.partition).or_insert(snapshot.next_offset);
            *from = (*from).min(snapshot.next_offset);
        }
        // Every input partition reaches every repartition partition: the watermark waits for all of them.
        let sources = input_partitions.iter().flat_map(|(topic, count)| {
            (0..*count).flat_map(move |input| {
                partitions.iter().map(move |&partition| watermark_source(&format!("{topic}/{input}"), partition))
            })
        });
        windows.expect_sources(sources, crate::app::now_ms());
        Ok((replay_from, snapshots.len()))
    }

    /// Writes `snapshots` to the state topic, keyed by topic, and waits (blocking) for their acknowledgements.
    fn write_and_wait(&self, snapshots: &[TopicSnapshot]) {
        // The timer must be made inside the runtime: this runs on the polling thread.
        let _runtime = self.runtime.enter();
        let acknowledged = self.runtime.block_on(tokio::time::timeout(HANDOVER_SNAPSHOT_TIMEOUT, async {
            // All handed to the producer first, so they are in flight together.
            let mut deliveries = Vec::with_capacity(snapshots.len());
            for snapshot in snapshots {
                let key = snapshot.topic.as_bytes();
                deliveries.push(self.sink.enqueue(&self.state_topic, Some(key), &snapshot.to_json(), &[]).await);
            }
            let mut written = 0;
            for delivery in deliveries {
                if let Ok(delivery) = delivery
                    && delivery.await.is_ok()
                {
                    written += 1;
                }
            }
            written
        }));
        let written = acknowledged.unwrap_or(0);
        self.metrics.fleet.snapshots.with_label_values(&["written"]).inc_by(written as u64);
        let failed = snapshots.len() - written;
        if failed > 0 {
            self.metrics.fleet.snapshots.with_label_values(&["failed"]).inc_by(failed as u64);
            tracing::warn!(
                failed,
                "handover snapshots not acknowledged in time; the next owner replays from older ones"
            );
        }
    }

    fn repartition_partitions(&self, partitions: &[(String, i32)]) -> Vec<i32> {
        partitions
            .iter()
            .filter(|(topic, _)| *topic == self.repartition_topic)
            .map(|(_, partition)| *partition)
            .collect()
    }
}

impl AssignmentListener for Restorer {
    fn assigning(&self, partitions: &[(String, i32)]) -> Vec<(String, i32, i64)> {
        let partitions = self.repartition_partitions(partitions);
        if partitions.is_empty() {
            return Vec::new();
        }
        let started = Instant::now();
        match self.restore(&partitions) {
            Ok((replay_from, topics)) => {
                let seconds = started.elapsed().as_secs_f64();
                self.metrics.fleet.restore_duration.observe(seconds);
                self.metrics.fleet.topics_restored.inc_by(topics as u64);
                self.metrics.fleet.topics_owned.set(locks::lock(&self.state.ownership).topic_count() as i64);
                tracing::info!(?partitions, topics, seconds, ?replay_from, "topic state restored");
                replay_from
                    .into_iter()
                    .map(|(partition, offset)| (self.repartition_topic.clone(), partition, offset))
                    .collect()
            }
            Err(error) => {
                self.metrics.fleet.restore_failures.inc();
                tracing::error!(
                    error = format!("{error:#}"),
                    ?partitions,
                    "cannot restore topic state; these topics start cold (their alerts wait for a new baseline)"
                );
                Vec::new()
            }
        }
    }

    fn revoked(&self, partitions: &[(String, i32)]) {
        let partitions = self.repartition_partitions(partitions);
        if partitions.is_empty() {
            return;
        }
        let topics = {
            let ownership = locks::lock(&self.state.ownership);
            ownership.topics_on(&partitions)
        };
        let snapshots = self.state.snapshots(&topics);
        self.write_and_wait(&snapshots);
        let mut windows = locks::lock(&self.state.windows);
        let mut detector = locks::lock(&self.state.detector);
        let mut ownership = locks::lock(&self.state.ownership);
        for topic in ownership.release(&partitions) {
            windows.forget_topic(&topic);
            detector.forget_topic(&topic);
        }
        windows.forget_sources(|source| source_is_on(source, &partitions));
        self.metrics.fleet.topics_owned.set(ownership.topic_count() as i64);
        tracing::info!(?partitions, topics = topics.len(), "topic state handed over");
    }
}
