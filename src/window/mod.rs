//! Event-time windows: per-topic and all-topics tumbling buckets of sentiment counts rolled into sliding views,
//! closed by a watermark that follows event time and, on quiet streams, wall-clock time.
//!
//! Pure: no I/O and no clock reads. Every call that needs the time takes it as a value, in milliseconds since the
//! Unix epoch, so the whole module is driven by tests and by `replay` exactly as by the live daemon.

mod aggregate;
mod config;
pub mod settings;
mod store;

use serde::{Deserialize, Serialize};

pub use aggregate::{MAX_EXAMPLE_TEXT_CHARS, NegativeExample, SentimentCounts};
pub use config::{MAX_BUCKETS_PER_VIEW, MAX_EXAMPLES_PER_BUCKET, MAX_WINDOW_DURATION_MS, WindowConfig};
pub use store::{
    DORMANT_AFTER_LARGEST_VIEWS, LATEST_SUPPORTED_TIME_MS, MAX_EVENT_TIME_SKEW_MS, TopicWindowsState, WindowStore,
};

/// The reserved topic key of the aggregate over all topics.
///
/// Every counted observation is recorded under its own topic and under this key, so the aggregate has the same
/// buckets, views, closes and lateness decisions as a real topic. The double underscores keep it apart from the
/// model's topic labels (human-readable names such as "Fed | Central Banks"); an observation that carries this
/// key as its own topic is recorded once, in the aggregate.
pub const ALL_TOPICS: &str = "__all__";

/// The sentiment class the model gave a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sentiment {
    Negative,
    Neutral,
    Positive,
}

/// The identity and text of a message, kept so alerts can show the messages that drove them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExampleText {
    /// The message's own id (the input's `id` field), when it had one.
    pub id: Option<String>,
    pub text: String,
}

/// One classified message, as the window store sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The input partition the message came from, e.g. `news/3`: the watermark follows the
    /// slowest source, so one partition replaying far ahead of another makes nothing late.
    pub source: String,
    pub topic: String,
    /// Event time, milliseconds since the Unix epoch (the message's `ts`, or else its Kafka timestamp).
    pub event_time_ms: i64,
    pub sentiment: Sentiment,
    /// The model's probability that the message is negative; ranks the examples kept for alerts.
    pub negative_probability: f32,
    pub example: ExampleText,
}

/// What [`WindowStore::observe`] did with an observation.
#[must_use = "late observations must be counted (and may be routed to the late topic) by the caller"]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObserveOutcome {
    /// Recorded in its topic's bucket and in the all-topics bucket.
    Counted,
    /// Its bucket had already closed (or lay beyond retention): not recorded anywhere.
    Late,
}

/// The merge of a topic's buckets over `[start_ms, end_ms)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ViewSnapshot {
    pub width_ms: i64,
    pub start_ms: i64,
    pub end_ms: i64,
    pub counts: SentimentCounts,
    /// The most negative examples of the view, most negative first.
    pub examples: Vec<NegativeExample>,
}

/// A bucket the watermark has closed, with every configured view ending where the bucket ends.
///
/// Buckets close in order for each topic and without gaps while the topic is live: a minute without messages
/// closes as an empty bucket, so a detector watching a topic that went quiet still sees its views drain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClosedBucket {
    pub topic: String,
    pub bucket_start_ms: i64,
    pub bucket_end_ms: i64,
    pub counts: SentimentCounts,
    /// One snapshot per configured view width, in configuration order.
    pub views: Vec<ViewSnapshot>,
}

impl ClosedBucket {
    /// The view of the given width ending at this bucket's end, if that width is configured.
    pub fn view(&self, width_ms: i64) -> Option<&ViewSnapshot> {
        self.views.iter().find(|view| view.width_ms == width_ms)
    }
}
