//! The daemon's entity windows (`[entities]`): which entities a classified message names, their own window store
//! and spike detector (the topics' settings, keyed by entity), and the entity metrics, whose label values stay
//! within the bound of [`crate::entity::labels`].
//!
//! The emit stage counts each acknowledged message under every entity it names ([`EntityWindows::observe`]); the
//! aggregate stage closes the buckets with the topics' ([`EntityWindows::evaluate`]), which returns the alert events
//! to announce and publish exactly as topic alerts are.

use std::sync::Mutex;

use crate::alert::{AlertEvent, SpikeDetector};
use crate::config::Config;
use crate::entity::{EntityLabels, EntityMatcher, OTHER_ENTITIES};
use crate::locks;
use crate::metrics::Metrics;
use crate::window::{ALL_TOPICS, ClosedBucket, Observation, SentimentCounts, WindowStore};

/// Entity tracking of a running daemon; see the module documentation.
pub struct EntityWindows {
    matcher: EntityMatcher,
    windows: Mutex<WindowStore>,
    detector: Mutex<SpikeDetector>,
    labels: Mutex<EntityLabels>,
    /// Width and metric label of every configured view, in configuration order (as in a closed bucket).
    views: Vec<(i64, String)>,
    detection_view_ms: i64,
}

impl EntityWindows {
    /// The entity windows `config` asks for, with every watched entity's counters created at 0; `None` when
    /// `[entities]` tracks nothing. Reads the watchlist file.
    pub fn from_config(config: &Config, metrics: &Metrics) -> anyhow::Result<Option<EntityWindows>> {
        let Some(matcher) = config.entities.matcher()? else {
            return Ok(None);
        };
        let window_config = config.windows.to_window_config();
        let windows = WindowStore::new(window_config.clone())
            .map_err(|problems| anyhow::anyhow!("invalid window settings: {}", problems.join("; ")))?;
        let detector = SpikeDetector::for_entities(config.detector.to_detector_config())
            .map_err(|problems| anyhow::anyhow!("invalid detector settings: {}", problems.join("; ")))?;
        metrics.entities.create_entity_series(matcher.watched_names());
        let labels = EntityLabels::new(matcher.watched_names().iter().cloned(), config.entities.top_cashtags);
        tracing::info!(
            watched = matcher.watched_names().len(),
            cashtags = config.entities.cashtags,
            max_entity_labels = labels.max_labels(),
            "entity windows on"
        );
        Ok(Some(EntityWindows {
            views: window_config.view_widths_ms.iter().map(|&width| (width, crate::app::view_label(width))).collect(),
            detection_view_ms: config.detector.view_width_ms(),
            matcher,
            windows: Mutex::new(windows),
            detector: Mutex::new(detector),
            labels: Mutex::new(labels),
        }))
    }

    /// The entities a text names, sorted, each once.
    pub fn entities(&self, text: &str) -> Vec<String> {
        self.matcher.entities(text)
    }

    /// Counts each classified message of a batch under each of its entities, under one lock. Whether a message is
    /// late was decided, and counted, for its topic: both stores follow the same event time.
    pub fn observe_batch(&self, observations: &[(Observation, &[String])], now_ms: i64) {
        if observations.is_empty() {
            return;
        }
        let mut windows = locks::lock(&self.windows);
        for (observation, entities) in observations {
            for entity in *entities {
                let mentioned = Observation { topic: entity.clone(), ..observation.clone() };
                let _ = windows.observe(&mentioned, now_ms);
            }
        }
    }

    /// Closes the buckets due by `now_ms`, runs the detector on them, refreshes the entity metrics and counts the
    /// alert transitions; returns the alert events for the caller to announce and publish.
    pub fn evaluate(&self, now_ms: i64, model_version: &str, metrics: &Metrics) -> Vec<AlertEvent> {
        let closed: Vec<ClosedBucket> = locks::lock(&self.windows)
            .advance(now_ms)
            .into_iter()
            .filter(|bucket| bucket.topic != ALL_TOPICS)
            .collect();
        if closed.is_empty() {
            return Vec::new();
        }
        let view_labels: Vec<String> = self.views.iter().map(|(_, label)| label.clone()).collect();
        let mut labels = locks::lock(&self.labels);
        let detection_counts = closed.iter().map(|bucket| {
            (bucket.topic.as_str(), bucket.view(self.detection_view_ms).map_or(0, |view| view.counts.total))
        });
        for dropped in labels.rerank(detection_counts) {
            metrics.entities.remove_entity_series(&dropped, &view_labels);
        }
        let mut detector = locks::lock(&self.detector);
        let mut events = Vec::new();
        let mut other = OtherEntities::new(self.views.len());
        for bucket in &closed {
            let event = detector.on_closed_bucket(bucket, model_version);
            let state = detector.state(&bucket.topic);
            let firing = state.as_ref().is_some_and(|state| state.firing.is_some());
            let expected = state.as_ref().and_then(|state| state.expected_negative_count).unwrap_or(0.0);
            let label = labels.label(&bucket.topic);
            if label == OTHER_ENTITIES {
                other.add(bucket, firing, expected);
            } else {
                let counts: Vec<SentimentCounts> = bucket.views.iter().map(|view| view.counts).collect();
                self.export(metrics, label, &counts, firing, expected);
            }
            if let Some(event) = event {
                metrics.entities.alerts.with_label_values(&[label, event.detector.as_str(), event.kind.as_str()]).inc();
                events.push(event);
            }
        }
        // Set at every close, zeros included, so `__other__` never shows an old close's figures.
        self.export(metrics, OTHER_ENTITIES, &other.counts, other.firing, other.expected);
        events
    }

    fn export(&self, metrics: &Metrics, label: &str, counts: &[SentimentCounts], firing: bool, expected: f64) {
        for ((_, view_label), counts) in self.views.iter().zip(counts) {
            metrics.entities.negative_rate.with_label_values(&[label, view_label]).set(counts.negative_rate());
            metrics.entities.message_count.with_label_values(&[label, view_label]).set(counts.total as i64);
            metrics.entities.negative_count.with_label_values(&[label, view_label]).set(counts.negative as i64);
        }
        metrics.entities.expected_negative_count.with_label_values(&[label]).set(expected);
        metrics.entities.alert_firing.with_label_values(&[label]).set(i64::from(firing));
    }
}

/// The entities without a label of their own at one close, merged into the series of [`OTHER_ENTITIES`].
struct OtherEntities {
    /// Per configured view.
    counts: Vec<SentimentCounts>,
    firing: bool,
    expected: f64,
}

impl OtherEntities {
    fn new(views: usize) -> Self {
        Self { counts: vec![SentimentCounts::default(); views], firing: false, expected: 0.0 }
    }

    fn add(&mut self, bucket: &ClosedBucket, firing: bool, expected: f64) {
        for (merged, view) in self.counts.iter_mut().zip(&bucket.views) {
            merged.merge(&view.counts);
        }
        self.firing |= firing;
        self.expected += expected;
    }
}
