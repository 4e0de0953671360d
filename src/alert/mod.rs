//! Negative-spike alerts: the event a spike episode produces (firing once, resolved once), its one-line summary,
//! and the detector that decides (see [`detector`]: a rate test and a volume test per scope).

mod counts;
pub mod detector;
pub mod settings;

use chrono::{DateTime, SecondsFormat};
use serde::{Deserialize, Serialize};

use crate::window::NegativeExample;

pub use detector::{DetectorConfig, SpikeDetector, TopicDetectorState, TopicState, VolumeConfig};

/// Whether an alert event opens or closes a spike episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertKind {
    Firing,
    Resolved,
}

impl AlertKind {
    /// The label used in metrics and logs: `firing` or `resolved`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Firing => "firing",
            Self::Resolved => "resolved",
        }
    }
}

/// Which test opened a spike episode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DetectorKind {
    /// The view's negative *share* rose against its baseline (a shift in tone).
    Rate,
    /// The view's negative *count* rose against its baseline (a story breaking, even at a steady share).
    Volume,
}

impl DetectorKind {
    /// The label used in metrics and logs: `rate` or `volume`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rate => "rate",
            Self::Volume => "volume",
        }
    }
}

/// What an alert is about. Serialised as `{"kind": "topic", "name": "Fed | Central Banks"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "name", rename_all = "lowercase")]
pub enum AlertScope {
    /// One of the model's topics.
    Topic(String),
    /// A watched entity or a cashtag (`$AAPL`), see [`crate::entity`].
    Entity(String),
}

impl AlertScope {
    /// The scope's name, e.g. the topic label.
    pub fn name(&self) -> &str {
        match self {
            Self::Topic(name) | Self::Entity(name) => name,
        }
    }

    /// The scope's kind as a word for people: `topic` or `entity`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Topic(_) => "topic",
            Self::Entity(_) => "entity",
        }
    }
}

/// One transition of a topic's spike episode, with the evidence at that moment. Serialised as the alerts topic's
/// JSON record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertEvent {
    /// Stable id: the scope, the start of the detection view and the kind, e.g.
    /// `topic:Fed | Central Banks:1733558400000:firing`. The same stream gives the same ids, so a
    /// consumer can drop an event published twice (a retry, a replay) by its id.
    pub id: String,
    /// On a resolved event, the id of the firing event it resolves; absent on a firing event.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub resolves: Option<String>,
    pub kind: AlertKind,
    /// The test that opened the episode; a resolution names the same one.
    pub detector: DetectorKind,
    pub scope: AlertScope,
    /// The topic the alert is about (the scope's name), kept for consumers that key on it.
    pub topic: String,
    /// Negative share of the detection view.
    pub negative_rate: f64,
    /// The baseline's EWMA of past per-bucket negative rates.
    pub baseline_rate: f64,
    /// The baseline's EWMA standard deviation of past per-bucket negative rates. The z-score divides by this
    /// combined with the view's sampling noise; see [`detector`] for its formula.
    pub baseline_std: f64,
    pub z_score: f64,
    /// Wilson score lower bound of the view's negative rate at the configured confidence.
    pub wilson_lower_bound: f64,
    pub negative_count: u64,
    /// Negative messages the count baseline expects in a view this wide.
    pub expected_negative_count: f64,
    /// Probability of at least `negative_count` negatives under the count baseline (see [`detector`]).
    pub negative_count_p_value: f64,
    pub total_count: u64,
    pub view_width_ms: i64,
    /// Start of the detection view, ms since the Unix epoch (inclusive).
    pub window_start_ms: i64,
    /// End of the detection view, ms since the Unix epoch (exclusive).
    pub window_end_ms: i64,
    /// `window_start_ms` in RFC 3339 (UTC, milliseconds), for people and log search.
    pub window_start: String,
    /// `window_end_ms` in RFC 3339 (UTC, milliseconds).
    pub window_end: String,
    pub model_version: String,
    /// The most negative messages of the view, most negative first, each text once (see
    /// [`distinct_examples`]).
    pub examples: Vec<NegativeExample>,
    /// Event time of the transition: the end of the bucket whose close caused it.
    pub at_ms: i64,
}

impl AlertEvent {
    /// The id of the `kind` event of `scope` whose detection view starts at `window_start_ms`.
    pub fn id_of(scope: &AlertScope, window_start_ms: i64, kind: AlertKind) -> String {
        format!("{}:{}:{window_start_ms}:{}", scope.kind(), scope.name(), kind.as_str())
    }

    /// One line for a notification saying what rose, from what, to what, over how many messages, e.g.
    /// "negative spike on topic Fed | Central Banks: negative rate 41% vs 12% baseline (z=5.3, 230 messages in 5m)"
    /// or "negative volume surge on topic Fed | Central Banks: 94 negative messages vs 12.0 expected (7.8x,
    /// p=3.1e-29; 230 messages in 5m)".
    pub fn summary(&self) -> String {
        let resolved = if self.kind == AlertKind::Resolved { " resolved" } else { "" };
        let scope = format!("{} {}", self.scope.kind(), self.scope.name());
        let view = format_duration_ms(self.view_width_ms);
        match self.detector {
            DetectorKind::Rate => format!(
                "negative spike{resolved} on {scope}: negative rate {:.0}% vs {:.0}% baseline (z={:.1}, {} messages in {view})",
                self.negative_rate * 100.0,
                self.baseline_rate * 100.0,
                self.z_score,
                self.total_count,
            ),
            DetectorKind::Volume => format!(
                "negative volume surge{resolved} on {scope}: {} negative messages vs {:.1} expected ({:.1}x, p={:.1e}; {} messages in {view})",
                self.negative_count,
                self.expected_negative_count,
                self.negative_count as f64 / self.expected_negative_count,
                self.negative_count_p_value,
                self.total_count,
            ),
        }
    }
}

/// Renders a duration the way people write windows: "5m", "1h", "90s"; a mixed duration uses its largest whole
/// unit ("90m").
fn format_duration_ms(duration_ms: i64) -> String {
    const HOUR_MS: i64 = 3_600_000;
    const MINUTE_MS: i64 = 60_000;
    const SECOND_MS: i64 = 1_000;
    if duration_ms > 0 && duration_ms % HOUR_MS == 0 {
        return format!("{}h", duration_ms / HOUR_MS);
    }
    if duration_ms > 0 && duration_ms % MINUTE_MS == 0 {
        return format!("{}m", duration_ms / MINUTE_MS);
    }
    if duration_ms > 0 && duration_ms % SECOND_MS == 0 {
        return format!("{}s", duration_ms / SECOND_MS);
    }
    format!("{duration_ms}ms")
}

/// RFC 3339 in UTC with milliseconds; the window store keeps times within years 1970-9999, which always render.
pub(crate) fn format_rfc3339_ms(time_ms: i64) -> String {
    DateTime::from_timestamp_millis(time_ms)
        .map(|time| time.to_rfc3339_opts(SecondsFormat::Millis, true))
        .unwrap_or_else(|| time_ms.to_string())
}

/// The first `limit` examples whose texts differ once normalised ([`crate::text::dedup_key`]: case,
/// punctuation, spacing and links ignored), in the given order. Given most negative first, as views
/// hold them, each repeated text keeps its most negative copy: a headline re-posted by several
/// feeds is one example, not several slots of the alert.
pub fn distinct_examples<'a>(
    examples: impl IntoIterator<Item = &'a NegativeExample>,
    limit: usize,
) -> Vec<NegativeExample> {
    let mut seen_texts = std::collections::HashSet::new();
    examples
        .into_iter()
        .filter(|example| seen_texts.insert(crate::text::dedup_key(&example.text)))
        .take(limit)
        .cloned()
        .collect()
}

/// Lower bound of the Wilson score interval for a binomial proportion `successes / trials` at normal quantile `z`
/// (1.96 for 95% two-sided). Unlike the normal approximation it stays within [0, 1] and is honest at small counts
/// and at proportions near 0 or 1. No trials give 0: no evidence of any rate.
pub fn wilson_lower_bound(successes: u64, trials: u64, z: f64) -> f64 {
    if trials == 0 {
        return 0.0;
    }
    debug_assert!(successes <= trials, "{successes} successes out of {trials} trials");
    let trial_count = trials as f64;
    let proportion = successes.min(trials) as f64 / trial_count;
    let z_squared = z * z;
    let centre = proportion + z_squared / (2.0 * trial_count);
    let margin =
        z * (proportion * (1.0 - proportion) / trial_count + z_squared / (4.0 * trial_count * trial_count)).sqrt();
    // Rounding can take an exact 0 a hair below zero.
    ((centre - margin) / (1.0 + z_squared / trial_count)).max(0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_close(actual: f64, expected: f64) {
        assert!((actual - expected).abs() < 5e-4, "{actual} is not about {expected}");
    }

    #[test]
    fn wilson_lower_bound_matches_known_values() {
        // Reference values computed independently (Python, the closed form of Wilson 1927), rounded to 4 places.
        assert_eq!(wilson_lower_bound(0, 10, 1.96), 0.0);
        assert_close(wilson_lower_bound(5, 10, 1.96), 0.2366);
        assert_close(wilson_lower_bound(50, 100, 1.96), 0.4038);
        assert_close(wilson_lower_bound(10, 10, 1.96), 0.7225);
        assert_close(wilson_lower_bound(1, 100, 1.96), 0.0018);
        assert_close(wilson_lower_bound(41, 100, 2.576), 0.2928);
        assert_eq!(wilson_lower_bound(0, 0, 1.96), 0.0);
        // Without a margin the bound is the proportion itself.
        assert_eq!(wilson_lower_bound(3, 12, 0.0), 0.25);
    }

    /// Issue 11: the demo's alert listed "Fed's Bullard warns the economy is weakening as demand
    /// slumps" twice.
    #[test]
    fn examples_are_deduplicated_by_normalised_text_keeping_the_most_negative() {
        let example = |text: &str, negative_probability: f32| NegativeExample {
            id: None,
            text: text.to_owned(),
            negative_probability,
            event_time_ms: 0,
        };
        let most_negative_first = [
            example("Fed's Bullard warns the economy is weakening as demand slumps", 0.98),
            example("Bank shares slide on credit fears", 0.95),
            example("FED'S BULLARD warns the economy is weakening,  as demand slumps! https://t.co/x", 0.93),
            example("Fed's Bullard warns the economy is weakening as demand slumps", 0.90),
            example("Yields jump as inflation surprises", 0.85),
            example("Oil slumps on demand worries", 0.80),
        ];
        let kept = distinct_examples(&most_negative_first, 3);
        let kept: Vec<(&str, f32)> =
            kept.iter().map(|example| (example.text.as_str(), example.negative_probability)).collect();
        assert_eq!(
            kept,
            [
                ("Fed's Bullard warns the economy is weakening as demand slumps", 0.98),
                ("Bank shares slide on credit fears", 0.95),
                ("Yields jump as inflation surprises", 0.85),
            ]
        );
    }

    #[test]
    fn wilson_lower_bound_grows_with_evidence_at_a_fixed_rate() {
        let bounds: Vec<f64> =
            [10, 100, 1_000, 10_000].iter().map(|&trials| wilson_lower_bound(trials / 2, trials, 1.96)).collect();
        assert!(bounds.windows(2).all(|pair| pair[0] < pair[1]), "{bounds:?}");
        assert!(bounds[3] < 0.5);
    }

    fn event(kind: AlertKind) -> AlertEvent {
        AlertEvent {
            id: format!("topic:Fed | Central Banks:1733558400000:{}", kind.as_str()),
            resolves: None,
            kind,
            detector: DetectorKind::Rate,
            scope: AlertScope::Topic("Fed | Central Banks".to_owned()),
            topic: "Fed | Central Banks".to_owned(),
            negative_rate: 0.4087,
            baseline_rate: 0.1213,
            baseline_std: 0.03,
            z_score: 5.26,
            wilson_lower_bound: 0.35,
            negative_count: 94,
            expected_negative_count: 12.04,
            negative_count_p_value: 3.14e-29,
            total_count: 230,
            view_width_ms: 300_000,
            window_start_ms: 1_700_000_000_000,
            window_end_ms: 1_700_000_300_000,
            window_start: format_rfc3339_ms(1_700_000_000_000),
            window_end: format_rfc3339_ms(1_700_000_300_000),
            model_version: "v3".to_owned(),
            examples: vec![NegativeExample {
                id: Some("m1".to_owned()),
                text: "rates shock".to_owned(),
                negative_probability: 0.97,
                event_time_ms: 1_700_000_100_000,
            }],
            at_ms: 1_700_000_300_000,
        }
    }

    #[test]
    fn summary_reads_like_the_notification() {
        assert_eq!(
            event(AlertKind::Firing).summary(),
            "negative spike on topic Fed | Central Banks: negative rate 41% vs 12% baseline (z=5.3, 230 messages in 5m)"
        );
        assert!(
            event(AlertKind::Resolved).summary().starts_with("negative spike resolved on topic Fed | Central Banks:")
        );
        let volume = AlertEvent { detector: DetectorKind::Volume, ..event(AlertKind::Firing) };
        assert_eq!(
            volume.summary(),
            "negative volume surge on topic Fed | Central Banks: 94 negative messages vs 12.0 expected (7.8x, \
             p=3.1e-29; 230 messages in 5m)"
        );
        let resolved = AlertEvent { kind: AlertKind::Resolved, ..volume };
        assert!(resolved.summary().starts_with("negative volume surge resolved on topic Fed | Central Banks: 94"));
    }

    #[test]
    fn durations_render_in_their_largest_whole_unit() {
        let rendered: Vec<String> =
            [300_000, 3_600_000, 5_400_000, 90_000, 1_500, 0].into_iter().map(format_duration_ms).collect();
        assert_eq!(rendered, ["5m", "1h", "90m", "90s", "1500ms", "0ms"]);
    }

    #[test]
    fn serialises_to_the_alert_record_and_back() {
        let firing = event(AlertKind::Firing);
        let json: serde_json::Value = serde_json::to_value(&firing).unwrap();
        assert_eq!(json["kind"], "firing");
        assert_eq!(json["detector"], "rate");
        assert_eq!(json["scope"], serde_json::json!({"kind": "topic", "name": "Fed | Central Banks"}));
        assert_eq!(json["window_start"], "2023-11-14T22:13:20.000Z");
        assert_eq!(json["window_end_ms"], 1_700_000_300_000i64);
        assert_eq!(json["examples"][0]["text"], "rates shock");
        assert_eq!(serde_json::from_value::<AlertEvent>(json).unwrap(), firing);
        assert_eq!(serde_json::to_value(AlertKind::Resolved).unwrap(), "resolved");
    }
}
