//! Per-topic negative-spike detection over closed window buckets: an EWMA baseline of past negative rates, a
//! z-score of the detection view against it, Wilson and volume gates, hysteresis and cooldown. Pure: the time of
//! everything is the closing bucket's end.
//!
//! # Baseline
//!
//! Each topic keeps an exponentially weighted mean and variance of its past per-bucket negative rates (empty
//! buckets skipped). Buckets rather than views, because successive views overlap by all but one bucket, so view
//! rates are strongly correlated samples that understate the variance. A bucket joins the baseline only once it has
//! left the detection view, so the view is always compared with data strictly before it: the first minutes of a
//! spike, which do not yet pass the Wilson or volume gates, cannot inflate the variance and hide the rest of the
//! spike. Buckets that close while the topic is firing, or that are in the view when it fires, are never learnt:
//! a long spike does not become the new normal.
//!
//! # z-score
//!
//! `z = (view_rate - mean) / sqrt(variance + mean * (1 - mean) / view_total + MIN_RATE_STD^2)`.
//!
//! Under the baseline hypothesis the view's rate varies because the rate itself moves and wobbles from bucket to
//! bucket (`variance`, which also carries each bucket's own sampling noise and the EWMA's lag behind a trend) and
//! because the view samples only `view_total` messages (`mean * (1 - mean) / view_total`: the binomial variance at
//! the baseline rate, as a score test takes it, so a spike's own high rate does not widen its yardstick). The
//! bucket-level sampling noise is thus counted twice. That is deliberate: this test pages people. Subtracting it
//! (an "excess variance" estimate) was tried in a simulation: a steady rise of half a point per minute on a busy
//! topic (200 messages a minute, from 25%) reached z = 3.5 and fired before the variance caught up, where this
//! formula peaks near 2; at 100 messages a minute both caught the same step spikes (from 12% to 25% or more). The
//! [`MIN_RATE_STD`] term keeps z finite when the baseline is exactly 0 or 1 and its variance 0.
//! An empty view has z = 0, the limit of the formula as the volume goes to 0.
//!
//! # Episodes
//!
//! Quiet -> Firing when, on one close, the baseline has `warmup_buckets` updates, the topic is out of cooldown,
//! `z >= z_threshold`, the view holds at least `min_volume` messages and the Wilson lower bound of its rate is at
//! least `wilson_floor`. Firing -> Quiet after `resolve_after_buckets` consecutive calm closes, a close being calm
//! when `z < resolve_z_threshold` or the view holds fewer than `min_volume` messages (no longer enough evidence of a
//! spike, which is also how a topic that falls silent mid-alert resolves). The Wilson floor plays no part in
//! resolving, so it cannot make an alert flap. Each transition yields exactly one event; a resolution starts a
//! `cooldown_ms` period (event time) in which the topic cannot fire.
//!
//! The [`ALL_TOPICS`] aggregate runs the same baseline and episode logic (so its z-score and `firing` state are on
//! the dashboard, and its baseline freezes during a spike like any topic's) but never emits an event: it is
//! dominated by the busiest topics, so its spikes would page a second time for a spike already paged on its topic.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{AlertEvent, AlertKind, format_rfc3339_ms, wilson_lower_bound};
use crate::window::{ALL_TOPICS, ClosedBucket, SentimentCounts, ViewSnapshot, WindowConfig};

/// Smallest standard deviation the z-score divides by: half a percentage point of negative rate. A smaller move is
/// never a spike worth paging for, and without a floor a baseline of exactly 0% (a topic with no negatives yet)
/// would turn the first negative message into an infinite z.
pub const MIN_RATE_STD: f64 = 0.005;

/// Spike detection settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Width of the view whose negative rate is tested, ms; one of the window's view widths. Default 300 000
    /// (5 min): a few hundred messages on a busy topic, and a spike pages within minutes.
    pub view_width_ms: i64,
    /// z-score at or above which an alert may fire. Default 3.0: under the baseline a view reaches it about once in
    /// 740 closes (one-sided normal tail), a couple of times a day per topic at one close a minute, and the Wilson
    /// and volume gates remove most of those.
    pub z_threshold: f64,
    /// z-score below which a firing alert's close counts as calm; lower than `z_threshold` for hysteresis.
    /// Default 1.5: a rate that falls only part of the way back keeps the alert open instead of flapping.
    pub resolve_z_threshold: f64,
    /// Fewest messages in the view for it to fire, and to keep firing. Default 30: below that one message moves
    /// the rate by over 3 points and the normal approximation behind z is poor.
    pub min_volume: u64,
    /// Lowest Wilson lower bound of the view's negative rate that may fire. Default 0.2: a statistically clear
    /// rise is not worth paging for unless at least one message in five is confidently negative; this stops a
    /// quiet topic paging for a move from 1% to 4%.
    pub wilson_floor: f64,
    /// Normal quantile of the Wilson interval. Default 1.96 (95% two-sided).
    pub wilson_z: f64,
    /// EWMA weight of each new bucket in the baseline, in (0, 1]. Default 0.1: an effective memory of about ten
    /// buckets (half-life 6.6), so with 1 min buckets the baseline follows the news cycle within tens of minutes
    /// but not within one spike's view.
    pub baseline_alpha: f64,
    /// Baseline updates needed before any alert. Default 10, about 1 / `baseline_alpha`: before that the EWMA is
    /// dominated by its first few buckets and underestimates the variance.
    pub warmup_buckets: u64,
    /// Consecutive calm closes that resolve a firing alert. Default 2: one quiet minute inside a spike does not
    /// end it.
    pub resolve_after_buckets: u32,
    /// Event time after a resolution during which the topic cannot fire again, ms. Default 600 000 (10 min, two
    /// detection views): a spike that resolves and comes straight back is the same incident, paged once.
    pub cooldown_ms: i64,
    /// Most negative examples carried by an alert; at most the window's `examples_per_bucket`. Default 5.
    pub examples: usize,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        Self {
            view_width_ms: 300_000,
            z_threshold: 3.0,
            resolve_z_threshold: 1.5,
            min_volume: 30,
            wilson_floor: 0.2,
            wilson_z: 1.96,
            baseline_alpha: 0.1,
            warmup_buckets: 10,
            resolve_after_buckets: 2,
            cooldown_ms: 600_000,
            examples: 5,
        }
    }
}

impl DetectorConfig {
    /// Checks every field and reports every problem, each naming the field and its value.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        if self.view_width_ms <= 0 {
            problems.push(format!("view_width_ms = {} must be positive", self.view_width_ms));
        }
        if !(self.z_threshold.is_finite() && self.z_threshold > 0.0) {
            problems.push(format!("z_threshold = {} must be a positive number", self.z_threshold));
        }
        if !(self.resolve_z_threshold.is_finite() && self.resolve_z_threshold < self.z_threshold) {
            problems.push(format!(
                "resolve_z_threshold = {} must be a number below z_threshold = {}",
                self.resolve_z_threshold, self.z_threshold
            ));
        }
        if self.min_volume == 0 {
            problems.push("min_volume = 0 must be at least 1".to_owned());
        }
        if !(0.0..1.0).contains(&self.wilson_floor) {
            problems.push(format!("wilson_floor = {} must be in [0, 1)", self.wilson_floor));
        }
        if !(self.wilson_z.is_finite() && self.wilson_z > 0.0) {
            problems.push(format!("wilson_z = {} must be a positive number", self.wilson_z));
        }
        if !(self.baseline_alpha > 0.0 && self.baseline_alpha <= 1.0) {
            problems.push(format!("baseline_alpha = {} must be in (0, 1]", self.baseline_alpha));
        }
        if self.warmup_buckets == 0 {
            problems.push("warmup_buckets = 0 must be at least 1".to_owned());
        }
        if self.resolve_after_buckets == 0 {
            problems.push("resolve_after_buckets = 0 must be at least 1".to_owned());
        }
        if self.cooldown_ms < 0 {
            problems.push(format!("cooldown_ms = {} must not be negative", self.cooldown_ms));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// [`DetectorConfig::validate`] plus the checks against the window settings whose closed buckets it will see.
    pub fn validate_with_window(&self, window: &WindowConfig) -> Result<(), Vec<String>> {
        let mut problems = self.validate().err().unwrap_or_default();
        if !window.view_widths_ms.contains(&self.view_width_ms) {
            problems.push(format!(
                "view_width_ms = {} is not one of the window's view_widths_ms = {:?}",
                self.view_width_ms, window.view_widths_ms
            ));
        }
        if self.examples > window.examples_per_bucket {
            problems.push(format!(
                "examples = {} is more than the window keeps (examples_per_bucket = {})",
                self.examples, window.examples_per_bucket
            ));
        }
        // A topic that falls silent keeps closing (empty) buckets for at least one largest view; a firing alert on
        // it must be able to resolve within that.
        let resolve_span_ms = i64::from(self.resolve_after_buckets).saturating_mul(window.bucket_width_ms);
        if resolve_span_ms > window.largest_view_width_ms() {
            problems.push(format!(
                "resolve_after_buckets = {} spans {resolve_span_ms} ms, more than the largest view ({} ms)",
                self.resolve_after_buckets,
                window.largest_view_width_ms()
            ));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }
}

/// A topic's detector state, for metrics.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TopicState {
    /// EWMA of past per-bucket negative rates; 0 before the first update.
    pub baseline_mean: f64,
    /// EWMA standard deviation of past per-bucket negative rates; 0 before the second update.
    pub baseline_std: f64,
    pub baseline_updates: u64,
    /// z-score of the latest close's detection view; `None` until a baseline exists.
    pub last_z: Option<f64>,
    /// Negative rate of the latest close's detection view; `None` when it was empty.
    pub last_rate: Option<f64>,
    pub firing: bool,
}

/// EWMA mean and variance of a topic's past per-bucket negative rates.
#[derive(Debug, Clone, PartialEq)]
struct Baseline {
    mean: f64,
    variance: f64,
    updates: u64,
}

impl Baseline {
    fn starting_from(counts: &SentimentCounts) -> Self {
        Self { mean: counts.negative_rate(), variance: 0.0, updates: 1 }
    }

    fn learn(&mut self, counts: &SentimentCounts, alpha: f64) {
        debug_assert!(counts.total > 0, "empty buckets are not learnt");
        let deviation = counts.negative_rate() - self.mean;
        self.mean += alpha * deviation;
        // The incremental EWMA variance (Finch 2009, "Incremental calculation of weighted mean and variance").
        self.variance = (1.0 - alpha) * (self.variance + alpha * deviation * deviation);
        self.updates += 1;
    }

    fn z_score(&self, view: &SentimentCounts) -> f64 {
        if view.total == 0 {
            return 0.0;
        }
        let view_sampling_variance = self.mean * (1.0 - self.mean) / view.total as f64;
        let null_variance = self.variance + view_sampling_variance + MIN_RATE_STD * MIN_RATE_STD;
        (view.negative_rate() - self.mean) / null_variance.sqrt()
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Episode {
    Quiet { cooldown_until_ms: Option<i64> },
    Firing { consecutive_calm_buckets: u32 },
}

#[derive(Debug, Clone, PartialEq)]
struct TopicDetector {
    baseline: Option<Baseline>,
    /// Non-empty buckets closed while quiet that are still inside the detection view, oldest first, as
    /// (bucket end, counts); each joins the baseline once the view has moved past it.
    awaiting_baseline: VecDeque<(i64, SentimentCounts)>,
    episode: Episode,
    last_z: Option<f64>,
    last_rate: Option<f64>,
    last_bucket_end_ms: Option<i64>,
}

impl TopicDetector {
    fn new() -> Self {
        Self {
            baseline: None,
            awaiting_baseline: VecDeque::new(),
            episode: Episode::Quiet { cooldown_until_ms: None },
            last_z: None,
            last_rate: None,
            last_bucket_end_ms: None,
        }
    }

    /// Feeds one close and returns the episode transition it caused, if any.
    fn on_close(&mut self, config: &DetectorConfig, bucket: &ClosedBucket, view: &ViewSnapshot) -> Option<AlertKind> {
        debug_assert!(
            self.last_bucket_end_ms.is_none_or(|last_end_ms| bucket.bucket_end_ms > last_end_ms),
            "closes of {} out of order",
            bucket.topic
        );
        self.last_bucket_end_ms = Some(bucket.bucket_end_ms);
        while let Some(&(bucket_end_ms, counts)) = self.awaiting_baseline.front() {
            if bucket_end_ms > view.start_ms {
                break;
            }
            self.awaiting_baseline.pop_front();
            match &mut self.baseline {
                Some(baseline) => baseline.learn(&counts, config.baseline_alpha),
                None => self.baseline = Some(Baseline::starting_from(&counts)),
            }
        }
        let z_score = self.baseline.as_ref().map(|baseline| baseline.z_score(&view.counts));
        self.last_z = z_score;
        self.last_rate = (view.counts.total > 0).then(|| view.counts.negative_rate());

        let transition = match self.episode {
            Episode::Quiet { cooldown_until_ms } => {
                let warmed_up =
                    self.baseline.as_ref().is_some_and(|baseline| baseline.updates >= config.warmup_buckets);
                let cooled_down = cooldown_until_ms.is_none_or(|until_ms| bucket.bucket_end_ms >= until_ms);
                let spiking = z_score.is_some_and(|z| z >= config.z_threshold)
                    && view.counts.total >= config.min_volume
                    && wilson_lower_bound(view.counts.negative, view.counts.total, config.wilson_z)
                        >= config.wilson_floor;
                if warmed_up && cooled_down && spiking {
                    self.episode = Episode::Firing { consecutive_calm_buckets: 0 };
                    // The buckets in the view are the spike's onset: never baseline material.
                    self.awaiting_baseline.clear();
                    Some(AlertKind::Firing)
                } else {
                    None
                }
            }
            Episode::Firing { consecutive_calm_buckets } => {
                let calm =
                    z_score.is_none_or(|z| z < config.resolve_z_threshold) || view.counts.total < config.min_volume;
                if !calm {
                    self.episode = Episode::Firing { consecutive_calm_buckets: 0 };
                    None
                } else if consecutive_calm_buckets + 1 >= config.resolve_after_buckets {
                    self.episode =
                        Episode::Quiet { cooldown_until_ms: Some(bucket.bucket_end_ms + config.cooldown_ms) };
                    Some(AlertKind::Resolved)
                } else {
                    self.episode = Episode::Firing { consecutive_calm_buckets: consecutive_calm_buckets + 1 };
                    None
                }
            }
        };
        let quiet = matches!(self.episode, Episode::Quiet { .. });
        if quiet && bucket.counts.total > 0 {
            self.awaiting_baseline.push_back((bucket.bucket_end_ms, bucket.counts));
        }
        transition
    }

    fn state(&self) -> TopicState {
        TopicState {
            baseline_mean: self.baseline.as_ref().map_or(0.0, |baseline| baseline.mean),
            baseline_std: self.baseline.as_ref().map_or(0.0, |baseline| baseline.variance.sqrt()),
            baseline_updates: self.baseline.as_ref().map_or(0, |baseline| baseline.updates),
            last_z: self.last_z,
            last_rate: self.last_rate,
            firing: matches!(self.episode, Episode::Firing { .. }),
        }
    }
}

/// Spike detection for every topic the window store closes buckets for.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeDetector {
    config: DetectorConfig,
    topics: BTreeMap<String, TopicDetector>,
}

impl SpikeDetector {
    /// Builds a detector, or returns every problem [`DetectorConfig::validate`] finds. Check the configuration
    /// against the window's with [`DetectorConfig::validate_with_window`] first.
    pub fn new(config: DetectorConfig) -> Result<Self, Vec<String>> {
        config.validate()?;
        Ok(Self { config, topics: BTreeMap::new() })
    }

    /// Feeds one closed bucket (in close order per topic) and returns the alert event it causes, if any.
    /// `model_version` is stamped on the event.
    pub fn on_closed_bucket(&mut self, bucket: &ClosedBucket, model_version: &str) -> Option<AlertEvent> {
        debug_assert!(
            bucket.view(self.config.view_width_ms).is_some(),
            "no {} ms view in closed buckets; validate_with_window rejects this configuration",
            self.config.view_width_ms
        );
        let view = bucket.view(self.config.view_width_ms)?;
        let detector = self.topics.entry(bucket.topic.clone()).or_insert_with(TopicDetector::new);
        let kind = detector.on_close(&self.config, bucket, view)?;
        if bucket.topic == ALL_TOPICS {
            return None;
        }
        // A transition needs a baseline (firing requires warm-up; resolving follows firing), so these are present.
        let baseline = detector.baseline.as_ref()?;
        let z_score = detector.last_z?;
        let examples = super::distinct_examples(&view.examples, self.config.examples);
        Some(AlertEvent {
            kind,
            topic: bucket.topic.clone(),
            negative_rate: view.counts.negative_rate(),
            baseline_rate: baseline.mean,
            baseline_std: baseline.variance.sqrt(),
            z_score,
            wilson_lower_bound: wilson_lower_bound(view.counts.negative, view.counts.total, self.config.wilson_z),
            negative_count: view.counts.negative,
            total_count: view.counts.total,
            view_width_ms: view.width_ms,
            window_start_ms: view.start_ms,
            window_end_ms: view.end_ms,
            window_start: format_rfc3339_ms(view.start_ms),
            window_end: format_rfc3339_ms(view.end_ms),
            model_version: model_version.to_owned(),
            examples,
            at_ms: bucket.bucket_end_ms,
        })
    }

    /// The detector state of `topic`, `None` before its first close.
    pub fn state(&self, topic: &str) -> Option<TopicState> {
        self.topics.get(topic).map(TopicDetector::state)
    }
}

#[cfg(test)]
mod tests;
