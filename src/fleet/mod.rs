//! Fleet-exact aggregation (`[pipeline] role = "classify" | "aggregate"`): what the classify processes send the
//! aggregators (one [`TopicSummary`] per counted message, keyed by its predicted topic on the repartition topic), the
//! snapshot of a topic's windows and detector an aggregator writes to the state topic on every close
//! ([`TopicSnapshot`]), and which partitions and topics an aggregator owns ([`Ownership`]). Pure: the I/O is the
//! aggregator's (`restore`, and `crate::stages::observe`).
//!
//! Why summaries keyed by topic: each aggregator then owns whole topics, so a topic's alert is decided once,
//! fleet-wide, over every message of the topic, whichever classify process handled it (Kafka Streams' repartition).
//! Why snapshots rather than replaying the repartition topic from `now - horizon`: a snapshot holds the state
//! itself, so restoring costs the same after an hour of history as after a minute (ARCHITECTURE.md has the
//! measurements), and the EWMA baselines, which remember further back than any horizon, come back exactly.

pub mod restore;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::alert::TopicDetectorState;
use crate::window::{MAX_EXAMPLE_TEXT_CHARS, Observation, Sentiment, TopicWindowsState};

/// One counted message as an aggregator needs it: the window store's observation and the model that classified
/// it. Produced by a classify process to the repartition topic with the topic label as key.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicSummary {
    pub observation: Observation,
    pub model_version: String,
}

impl TopicSummary {
    /// The summary of a counted message. Only negative messages can become alert examples, so only theirs keep
    /// their text (cut to what an example keeps): the summary of any other is a few dozen bytes.
    pub fn new(mut observation: Observation, model_version: &str) -> TopicSummary {
        if observation.sentiment == Sentiment::Negative {
            if let Some((cut_at, _)) = observation.example.text.char_indices().nth(MAX_EXAMPLE_TEXT_CHARS + 1) {
                observation.example.text.truncate(cut_at);
            }
        } else {
            observation.example.text.clear();
        }
        TopicSummary { observation, model_version: model_version.to_owned() }
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a summary always serialises")
    }

    pub fn from_json(payload: &[u8]) -> Result<TopicSummary, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}

/// The watermark source of a summary: its input partition as seen through one repartition partition. Each such
/// pair is one ordered stream (one classify process writes it, in input order), while one input partition's
/// summaries spread over every repartition partition, which an aggregator reads at different paces: the watermark
/// must follow each pair, or a partition read ahead would make another's summaries late.
pub fn watermark_source(input_source: &str, repartition_partition: i32) -> String {
    format!("{input_source}>{repartition_partition}")
}

/// Whether a watermark source (see [`watermark_source`]) arrives through one of `partitions`.
pub fn source_is_on(source: &str, partitions: &[i32]) -> bool {
    source
        .rsplit_once('>')
        .and_then(|(_, partition)| partition.parse::<i32>().ok())
        .is_some_and(|partition| partitions.contains(&partition))
}

/// A topic's aggregation state at one moment, keyed by topic on the (compacted) state topic: its windows, its
/// detector (baselines and open episode), and how far into its repartition partition that state reaches.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicSnapshot {
    pub topic: String,
    /// The repartition partition the topic's summaries arrive on.
    pub partition: i32,
    /// Every summary of that partition before this offset is in the state; the restore replays from here.
    pub next_offset: i64,
    /// The model version of the latest summary, stamped on the alerts that follow the restore.
    pub model_version: String,
    pub windows: Option<TopicWindowsState>,
    pub detector: Option<TopicDetectorState>,
}

impl TopicSnapshot {
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a snapshot always serialises")
    }

    pub fn from_json(payload: &[u8]) -> Result<TopicSnapshot, serde_json::Error> {
        serde_json::from_slice(payload)
    }
}

/// Which repartition partitions an aggregator owns, how far it has applied each, and which topics arrive on which.
#[derive(Debug, Default)]
pub struct Ownership {
    /// Owned partition -> the offset after the last summary applied.
    applied: BTreeMap<i32, i64>,
    /// Topic -> the partition its summaries arrive on (the producer's partitioner decides, so it is learnt).
    topic_partitions: BTreeMap<String, i32>,
    /// Restored topics: their summaries below this offset are already in the restored state.
    restored_up_to: BTreeMap<String, i64>,
    /// The model version of the latest summary applied or restored.
    model_version: String,
}

impl Ownership {
    /// Whether the summary at `offset` of `partition` about `topic` still has to be applied (a restored topic's
    /// older summaries are already in its state), and notes the partition's progress either way.
    pub fn admit(&mut self, topic: &str, partition: i32, offset: i64, model_version: &str) -> bool {
        let next = self.applied.entry(partition).or_insert(offset + 1);
        *next = (*next).max(offset + 1);
        self.topic_partitions.insert(topic.to_owned(), partition);
        if let Some(&restored_up_to) = self.restored_up_to.get(topic) {
            if offset < restored_up_to {
                return false;
            }
            self.restored_up_to.remove(topic);
        }
        model_version.clone_into(&mut self.model_version);
        true
    }

    /// Takes over a restored topic: its partition, and the offset below which its summaries are in `snapshot`.
    pub fn restored(&mut self, snapshot: &TopicSnapshot) {
        self.topic_partitions.insert(snapshot.topic.clone(), snapshot.partition);
        self.restored_up_to.insert(snapshot.topic.clone(), snapshot.next_offset);
        if self.model_version.is_empty() {
            self.model_version.clone_from(&snapshot.model_version);
        }
    }

    /// The topics whose summaries arrive on one of `partitions`.
    pub fn topics_on(&self, partitions: &[i32]) -> Vec<String> {
        self.topic_partitions
            .iter()
            .filter(|(_, partition)| partitions.contains(partition))
            .map(|(topic, _)| topic.clone())
            .collect()
    }

    /// How many topics this aggregator owns.
    pub fn topic_count(&self) -> usize {
        self.topic_partitions.len()
    }

    /// Gives up `partitions`: forgets their topics and returns them.
    pub fn release(&mut self, partitions: &[i32]) -> Vec<String> {
        let topics = self.topics_on(partitions);
        for topic in &topics {
            self.topic_partitions.remove(topic);
            self.restored_up_to.remove(topic);
        }
        for partition in partitions {
            self.applied.remove(partition);
        }
        topics
    }

    /// Where `topic`'s state stands: its partition and the offset after the last summary applied there (or the
    /// restored offset, while nothing newer has been). `None` for a topic never seen.
    pub fn position_of(&self, topic: &str) -> Option<(i32, i64)> {
        let partition = *self.topic_partitions.get(topic)?;
        let applied = self.applied.get(&partition).copied().unwrap_or(0);
        let restored = self.restored_up_to.get(topic).copied().unwrap_or(0);
        Some((partition, applied.max(restored)))
    }

    pub fn model_version(&self) -> &str {
        &self.model_version
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::window::ExampleText;

    fn observation(sentiment: Sentiment, text: &str) -> Observation {
        Observation {
            source: "news/0".to_owned(),
            topic: "Fed".to_owned(),
            event_time_ms: 1_000,
            sentiment,
            negative_probability: 0.9,
            example: ExampleText { id: Some("m1".to_owned()), text: text.to_owned() },
        }
    }

    #[test]
    fn a_summary_keeps_the_text_of_negative_messages_only_and_round_trips() {
        let negative = TopicSummary::new(observation(Sentiment::Negative, &"x".repeat(1000)), "v1");
        assert_eq!(negative.observation.example.text.chars().count(), MAX_EXAMPLE_TEXT_CHARS + 1);
        assert_eq!(TopicSummary::from_json(&negative.to_json()).unwrap(), negative);
        let neutral = TopicSummary::new(observation(Sentiment::Neutral, "calm words"), "v1");
        assert_eq!(neutral.observation.example.text, "");
        assert_eq!(neutral.observation.example.id.as_deref(), Some("m1"));
        assert!(neutral.to_json().len() < 200, "{}", String::from_utf8_lossy(&neutral.to_json()));
    }

    #[test]
    fn a_restored_topic_skips_the_summaries_already_in_its_state_and_others_do_not() {
        let mut ownership = Ownership::default();
        let snapshot = TopicSnapshot {
            topic: "Fed".to_owned(),
            partition: 1,
            next_offset: 10,
            model_version: "v0".to_owned(),
            windows: None,
            detector: None,
        };
        ownership.restored(&snapshot);
        assert_eq!(ownership.model_version(), "v0");
        assert!(!ownership.admit("Fed", 1, 8, "v1"), "in the snapshot already");
        assert!(ownership.admit("Oil", 1, 9, "v1"), "another topic of the partition, not restored");
        assert_eq!(ownership.position_of("Fed"), Some((1, 10)));
        assert!(ownership.admit("Fed", 1, 10, "v1"));
        assert!(ownership.admit("Fed", 1, 9, "v1"), "once past the snapshot, nothing is skipped");
        assert_eq!(ownership.position_of("Fed"), Some((1, 11)));
        assert_eq!(ownership.model_version(), "v1");
    }

    /// A stream of 20-second buckets for two topics with a spike on one from minute 12 to 15.
    fn spiking_stream() -> Vec<Observation> {
        (0..20 * 60 * 10)
            .map(|index: i64| {
                let event_time_ms = 1_700_000_000_000 + index * 100;
                let minute = index / 600;
                let topic = if index % 2 == 0 { "Fed" } else { "Oil" };
                let negative =
                    if topic == "Fed" && (12..15).contains(&minute) { index % 5 < 3 } else { index % 10 == 0 };
                let sentiment = if negative { Sentiment::Negative } else { Sentiment::Neutral };
                Observation {
                    source: "news/0>0".to_owned(),
                    topic: topic.to_owned(),
                    event_time_ms,
                    sentiment,
                    negative_probability: if negative { 0.9 } else { 0.1 },
                    example: ExampleText { id: Some(format!("m{index}")), text: format!("text {index}") },
                }
            })
            .collect()
    }

    #[test]
    fn a_store_and_detector_restored_from_snapshots_alert_exactly_as_the_originals() {
        use crate::alert::{AlertEvent, DetectorConfig, SpikeDetector};
        use crate::window::{WindowConfig, WindowStore};

        let window_config = WindowConfig {
            bucket_width_ms: 20_000,
            view_widths_ms: vec![120_000],
            allowed_lateness_ms: 0,
            ..WindowConfig::default()
        };
        let detector_config = DetectorConfig { view_width_ms: 120_000, warmup_buckets: 6, ..DetectorConfig::default() };
        let run = |store: &mut WindowStore, detector: &mut SpikeDetector, stream: &[Observation]| -> Vec<AlertEvent> {
            let mut alerts = Vec::new();
            for observation in stream {
                let _ = store.observe(observation, observation.event_time_ms);
                for bucket in store.advance(observation.event_time_ms) {
                    alerts.extend(detector.on_closed_bucket(&bucket, "v1"));
                }
            }
            alerts
        };
        let stream = spiking_stream();
        let (history, rest) = stream.split_at(13 * 600);
        let mut store = WindowStore::new(window_config.clone()).unwrap();
        let mut detector = SpikeDetector::new(detector_config.clone()).unwrap();
        let fired_before = run(&mut store, &mut detector, history);
        assert_eq!(fired_before.len(), 1, "the spike fires during the history: {fired_before:?}");

        // Hand both topics over, through JSON, to a fresh store and detector.
        let mut restored_store = WindowStore::new(window_config).unwrap();
        let mut restored_detector = SpikeDetector::new(detector_config).unwrap();
        for topic in ["Fed", "Oil"] {
            let snapshot = TopicSnapshot {
                topic: topic.to_owned(),
                partition: 0,
                next_offset: 0,
                model_version: "v1".to_owned(),
                windows: store.export_topic(topic),
                detector: detector.export_topic(topic),
            };
            let snapshot = TopicSnapshot::from_json(&snapshot.to_json()).unwrap();
            restored_store.import_topic(topic, snapshot.windows.unwrap(), |_| true);
            restored_detector.import_topic(topic, snapshot.detector.unwrap());
        }
        let original_after = run(&mut store, &mut detector, rest);
        let restored_after = run(&mut restored_store, &mut restored_detector, rest);
        assert!(!original_after.is_empty(), "the open alert resolves after the history");
        assert!(
            original_after.iter().all(|alert| alert.kind != crate::alert::AlertKind::Firing || alert.topic != "Fed")
        );
        assert_eq!(restored_after, original_after, "the restored pair alerts exactly as the original");
        assert_eq!(restored_after[0].resolves.as_deref(), Some(fired_before[0].id.as_str()));
    }

    #[test]
    fn a_watermark_source_names_the_repartition_partition_it_arrives_through() {
        let source = watermark_source("news/3", 12);
        assert_eq!(source, "news/3>12");
        assert!(source_is_on(&source, &[1, 12]));
        assert!(!source_is_on(&source, &[1, 2]));
        assert!(!source_is_on("news/3", &[3]), "a plain input source is on no repartition partition");
    }

    #[test]
    fn releasing_partitions_forgets_their_topics_only() {
        let mut ownership = Ownership::default();
        assert!(ownership.admit("Fed", 0, 0, "v1"));
        assert!(ownership.admit("Oil", 1, 0, "v1"));
        assert_eq!(ownership.release(&[1]), vec!["Oil".to_owned()]);
        assert_eq!(ownership.position_of("Oil"), None);
        assert_eq!(ownership.position_of("Fed"), Some((0, 1)));
    }
}
