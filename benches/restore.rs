//! Restore time against history length (issue 12): an aggregator's state after 1 minute, 15 minutes and 1 hour of
//! summaries at 1,000 messages/s (20 topics, production window and detector defaults), restored two ways on the
//! embedded broker:
//!
//! * **snapshot**: read the latest snapshot of every topic from the state topic, install them, and replay the
//!   repartition topic from where the snapshots end (what `[pipeline] role = "aggregate"` does);
//! * **replay**: rebuild by applying every summary of the history (what seeking to `now - horizon` with
//!   offsets-for-times would cost for a horizon as long as the history). The embedded broker keeps only 5 MiB per
//!   partition (../shared/KAFKA.md), far less than an hour of summaries, so this path applies them from memory: its
//!   figure leaves out the broker reads and is a lower bound.
//!
//! The repartition topic has 16 partitions (topic hash), so the tail after the snapshots fits the embedded broker.
//! Prints the median of 3 rounds of each. `cargo bench --bench restore`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::{Rng, SeedableRng};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use sentmon::alert::{DetectorConfig, SpikeDetector};
use sentmon::config::KafkaConfig;
use sentmon::fleet::restore::{AggregatorState, Restorer};
use sentmon::fleet::{Ownership, TopicSummary};
use sentmon::ingest::embedded::EmbeddedBroker;
use sentmon::ingest::producer::KafkaSink;
use sentmon::metrics::Metrics;
use sentmon::window::{ExampleText, Observation, Sentiment, WindowConfig, WindowStore};

const MESSAGES_PER_SECOND: i64 = 1_000;
const TOPICS: usize = 20;
const ROUNDS: usize = 3;
/// The aggregate stage's tick, in event time here.
const TICK_MS: i64 = 500;
/// Repartition partitions: enough that the tail after the snapshots stays within the embedded broker's 5 MiB each.
const PARTITIONS: i32 = 16;

fn main() -> anyhow::Result<()> {
    let runtime = tokio::runtime::Runtime::new()?;
    let _entered = runtime.enter();
    println!("history  summaries  snapshot restore (median of {ROUNDS})  replay rebuild (median of {ROUNDS})");
    for minutes in [1, 15, 60] {
        let history = History::build(minutes)?;
        let snapshot =
            median((0..ROUNDS).map(|_| history.restore_from_snapshots(&runtime)).collect::<anyhow::Result<_>>()?);
        let replay = median((0..ROUNDS).map(|_| history.rebuild_by_replay()).collect::<anyhow::Result<_>>()?);
        println!(
            "{minutes:>4} min  {:>9}  {:>8.3} s (tail {} summaries)  {:>8.3} s",
            history.summaries, snapshot.0, snapshot.1, replay.0
        );
    }
    Ok(())
}

fn median(mut runs: Vec<(f64, usize)>) -> (f64, usize) {
    runs.sort_by(|left, right| left.0.total_cmp(&right.0));
    runs[runs.len() / 2]
}

/// A broker holding one history: its summaries on the repartition topic and the snapshots the aggregator wrote
/// while applying them.
struct History {
    broker: EmbeddedBroker,
    summaries: usize,
    /// Every summary in production order, with its partition and offset, for the replay path.
    payloads: Vec<(i32, i64, Vec<u8>)>,
}

impl History {
    fn build(minutes: i64) -> anyhow::Result<History> {
        let topics = ["news", "repartition", "state"].map(String::from);
        let broker = EmbeddedBroker::start(PARTITIONS, &topics)?;
        let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", broker.bootstrap_servers())
            .set("linger.ms", "20")
            .set("queue.buffering.max.messages", "1000000")
            .create()?;
        let mut rng = rand::rngs::StdRng::seed_from_u64(7);
        let start_ms = chrono::Utc::now().timestamp_millis() - minutes * 60_000 - 120_000;
        let count = (minutes * 60 * MESSAGES_PER_SECOND) as usize;
        // The aggregator that lived through the history, writing a snapshot of each topic on each close.
        let state = aggregator_state();
        let mut next_tick_ms = start_ms + TICK_MS;
        let mut next_offsets = vec![0_i64; PARTITIONS as usize];
        let mut payloads = Vec::with_capacity(count);
        for index in 0..count {
            let event_time_ms = start_ms + index as i64 * 1000 / MESSAGES_PER_SECOND;
            while event_time_ms >= next_tick_ms {
                close_and_snapshot(&state, &producer, next_tick_ms);
                next_tick_ms += TICK_MS;
            }
            let topic_index = rng.random_range(0..TOPICS);
            let topic = format!("topic-{topic_index}");
            let partition = (topic_index % PARTITIONS as usize) as i32;
            let offset = next_offsets[partition as usize];
            next_offsets[partition as usize] += 1;
            let sentiment = match rng.random_range(0..10) {
                0..2 => Sentiment::Negative,
                2..7 => Sentiment::Neutral,
                _ => Sentiment::Positive,
            };
            let observation = Observation {
                source: "news/0".to_owned(),
                topic: topic.clone(),
                event_time_ms,
                sentiment,
                negative_probability: if sentiment == Sentiment::Negative { 0.9 } else { 0.1 },
                example: ExampleText { id: Some(format!("m{index}")), text: format!("headline number {index} falls") },
            };
            let payload = TopicSummary::new(observation, "bench").to_json();
            apply(&state, &payload, partition, offset, event_time_ms);
            send(&producer, "repartition", Some(partition), topic.as_bytes(), &payload);
            payloads.push((partition, offset, payload));
        }
        producer.flush(Duration::from_secs(300))?;
        Ok(History { broker, summaries: count, payloads })
    }

    fn kafka(&self) -> KafkaConfig {
        KafkaConfig {
            brokers: self.broker.bootstrap_servers().to_owned(),
            input_topics: vec!["news".to_owned()],
            ..KafkaConfig::default()
        }
    }

    /// Seconds to restore from the snapshots and replay the tail after them, and the tail's length.
    fn restore_from_snapshots(&self, runtime: &tokio::runtime::Runtime) -> anyhow::Result<(f64, usize)> {
        let started = Instant::now();
        let state = aggregator_state();
        let restorer = Restorer {
            kafka: self.kafka(),
            repartition_topic: "repartition".to_owned(),
            state_topic: "state".to_owned(),
            state: state.clone(),
            sink: KafkaSink::new(self.broker.bootstrap_servers(), [])?,
            metrics: Arc::new(Metrics::new()?),
            runtime: runtime.handle().clone(),
        };
        // Without snapshots (a history shorter than a bucket's close) the whole history is the tail.
        let partitions: Vec<i32> = (0..PARTITIONS).collect();
        let (replay_from, _) = restorer.restore(&partitions)?;
        let tail = self.replay_tail(&state, &replay_from)?;
        Ok((started.elapsed().as_secs_f64(), tail))
    }

    /// Seconds to rebuild from the whole history, applied from memory.
    fn rebuild_by_replay(&self) -> anyhow::Result<(f64, usize)> {
        let started = Instant::now();
        let state = aggregator_state();
        let mut ticks = Ticks::default();
        for (partition, offset, payload) in &self.payloads {
            let event_time_ms = TopicSummary::from_json(payload)?.observation.event_time_ms;
            ticks.up_to(&state, event_time_ms);
            apply(&state, payload, *partition, *offset, event_time_ms);
        }
        Ok((started.elapsed().as_secs_f64(), self.payloads.len()))
    }

    /// Applies every partition from `replay_from` (the snapshots' ends; partitions without one from their start) to
    /// its end, as the aggregate role does, ticks included; returns how many summaries were read.
    fn replay_tail(
        &self,
        state: &AggregatorState,
        replay_from: &std::collections::BTreeMap<i32, i64>,
    ) -> anyhow::Result<usize> {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", self.broker.bootstrap_servers())
            .set("group.id", "bench-replay")
            .set("enable.auto.commit", "false")
            .create()?;
        let mut assignment = TopicPartitionList::new();
        let mut remaining = std::collections::BTreeMap::new();
        for partition in 0..PARTITIONS {
            let (low, high) = consumer.fetch_watermarks("repartition", partition, Duration::from_secs(10))?;
            let from = replay_from.get(&partition).copied().unwrap_or(low);
            anyhow::ensure!(
                from >= low,
                "partition {partition}: the tail from {from} was dropped by the broker (low {low})"
            );
            if from < high {
                assignment.add_partition_offset("repartition", partition, Offset::Offset(from))?;
                remaining.insert(partition, high);
            }
        }
        consumer.assign(&assignment)?;
        let mut ticks = Ticks::default();
        let mut read = 0;
        while !remaining.is_empty() {
            let Some(message) = consumer.poll(Duration::from_secs(5)) else {
                anyhow::bail!("replay stalled: {remaining:?}")
            };
            let message = message?;
            read += 1;
            let payload = message.payload().unwrap_or_default();
            let event_time_ms = TopicSummary::from_json(payload)?.observation.event_time_ms;
            ticks.up_to(state, event_time_ms);
            apply(state, payload, message.partition(), message.offset(), event_time_ms);
            if remaining.get(&message.partition()).is_some_and(|&high| message.offset() + 1 >= high) {
                remaining.remove(&message.partition());
            }
        }
        Ok(read)
    }
}

/// The aggregate stage's tick, driven by event time: closes buckets and runs the detector.
#[derive(Default)]
struct Ticks {
    next_ms: Option<i64>,
}

impl Ticks {
    fn up_to(&mut self, state: &AggregatorState, event_time_ms: i64) {
        let next_ms = self.next_ms.get_or_insert(event_time_ms + TICK_MS);
        while event_time_ms >= *next_ms {
            let closed = state.windows.lock().unwrap().advance(*next_ms);
            let mut detector = state.detector.lock().unwrap();
            for bucket in &closed {
                detector.on_closed_bucket(bucket, "bench");
            }
            *next_ms += TICK_MS;
        }
    }
}

fn aggregator_state() -> AggregatorState {
    AggregatorState {
        windows: Arc::new(Mutex::new(WindowStore::new(WindowConfig::default()).unwrap())),
        detector: Arc::new(Mutex::new(SpikeDetector::new(DetectorConfig::default()).unwrap())),
        ownership: Arc::default(),
    }
}

/// What the aggregate role's consume stage does with one summary (the wall clock is the event time here).
fn apply(state: &AggregatorState, payload: &[u8], partition: i32, offset: i64, now_ms: i64) {
    let mut summary = TopicSummary::from_json(payload).expect("the bench's summaries are valid");
    summary.observation.source = sentmon::fleet::watermark_source(&summary.observation.source, partition);
    let mut windows = state.windows.lock().unwrap();
    let mut ownership: std::sync::MutexGuard<'_, Ownership> = state.ownership.lock().unwrap();
    if ownership.admit(&summary.observation.topic, partition, offset, &summary.model_version) {
        let _ = windows.observe(&summary.observation, now_ms);
    }
}

/// The aggregate stage's tick: closes buckets, runs the detector, snapshots the topics that closed.
fn close_and_snapshot(state: &AggregatorState, producer: &ThreadedProducer<DefaultProducerContext>, now_ms: i64) {
    let closed = state.windows.lock().unwrap().advance(now_ms);
    let mut topics: Vec<String> = Vec::new();
    {
        let mut detector = state.detector.lock().unwrap();
        for bucket in &closed {
            detector.on_closed_bucket(bucket, "bench");
            if !topics.contains(&bucket.topic) && bucket.topic != sentmon::window::ALL_TOPICS {
                topics.push(bucket.topic.clone());
            }
        }
    }
    for snapshot in state.snapshots(&topics) {
        send(producer, "state", None, snapshot.topic.as_bytes(), &snapshot.to_json());
    }
}

fn send(
    producer: &ThreadedProducer<DefaultProducerContext>,
    topic: &str,
    partition: Option<i32>,
    key: &[u8],
    payload: &[u8],
) {
    let mut record = BaseRecord::to(topic).key(key).payload(payload);
    if let Some(partition) = partition {
        record = record.partition(partition);
    }
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, returned)) => {
                record = returned;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
}
