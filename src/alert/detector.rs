//! Per-topic negative-spike detection over closed window buckets, by two tests that share one episode per topic:
//! the *rate* test (an EWMA baseline of past negative rates, a z-score of the detection view against it, Wilson and
//! volume gates) and the *volume* test (an EWMA baseline of past negative counts, the view's count scored by its
//! negative-binomial tail), with hysteresis and cooldown. Pure: the time of everything is the closing bucket's end.
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
//! # Volume test
//!
//! The rate test cannot see a story breaking at a steady share of negatives: twice the messages, twice the negative
//! ones, the same rate. The volume test watches the view's negative *count* `n`. Its baseline is an EWMA mean `m`
//! and variance `v` of past per-bucket negative counts, learnt like the rate baseline (once a bucket has left the
//! view, never while firing) except that empty buckets count too: a quiet minute is a count of 0. A view of `k`
//! buckets then expects `k m` negatives (at least [`MIN_EXPECTED_NEGATIVES`]). Under the baseline `n` varies by
//! `k m D`, where `D = max(1, v / m)` is the buckets' dispersion (1 for a Poisson stream, more for a bursty one),
//! and the EWMA's own estimate is off by a variance of `k^2 m D alpha / (2 - alpha)` (the EWMA's variance for
//! independent inputs, Roberts 1959, "Control chart tests based on geometric moving averages"). Together that is
//! `k m D (1 + k alpha / (2 - alpha))`, and the p-value is the upper tail `P(X >= n)` of a negative binomial with that
//! mean and variance (Poisson when it has no excess), the overdispersed-count score of outbreak detection
//! (Noufaily et al. 2013; see [`super::counts`]). The test trips when `p <= false_alarm_probability`, `n` is at
//! least `min_negatives` and at least `min_ratio` times the expected count; it is calm again when `p >
//! resolve_probability` or `n < min_negatives`.
//!
//! Delay: a surge that multiplies a topic's negatives by `r` fills a `k`-bucket view gradually; after `b` buckets
//! the view holds about `1 + (r - 1) b / k` times its expected count, so the ratio gate passes after
//! `ceil(k (min_ratio - 1) / (r - 1))` closes, and the p-value gate is then long passed unless the topic has under
//! a few negatives a view. With the defaults (5 one-minute buckets, `min_ratio` 3) a tenfold surge fires at the
//! second close after it starts, a fivefold one at the third; the property test allows one close more for Poisson
//! noise.
//!
//! # Episodes
//!
//! Both tests run on every close and share one episode per topic, so a spike that moves both the rate and the count
//! pages once. The episode names the test that opened it (the rate test when both trip on the same close), and
//! resolves only when both are calm.
//!
//! Quiet -> Firing when, on one close, the baseline has `warmup_buckets` updates, the topic is out of cooldown,
//! `z >= z_threshold`, the view holds at least `min_volume` messages and the Wilson lower bound of its rate is at
//! least `wilson_floor` (the rate test), or the volume test trips. Firing -> Quiet after `resolve_after_buckets`
//! consecutive calm closes, a close being calm when the volume test is calm and either `z < resolve_z_threshold` or
//! the view holds fewer than `min_volume` messages (no longer enough evidence of a
//! spike, which is also how a topic that falls silent mid-alert resolves). The Wilson floor plays no part in
//! resolving, so it cannot make an alert flap. Each transition yields exactly one event; a resolution starts a
//! `cooldown_ms` period (event time) in which the topic cannot fire.
//!
//! The [`ALL_TOPICS`] aggregate runs the same baseline and episode logic (so its z-score and `firing` state are on
//! the dashboard, and its baseline freezes during a spike like any topic's) but never emits an event: it is
//! dominated by the busiest topics, so its spikes would page a second time for a spike already paged on its topic.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

use super::{AlertEvent, AlertKind, AlertScope, DetectorKind, counts, format_rfc3339_ms, wilson_lower_bound};
use crate::window::{ALL_TOPICS, ClosedBucket, SentimentCounts, ViewSnapshot, WindowConfig};

/// Smallest standard deviation the z-score divides by: half a percentage point of negative rate. A smaller move is
/// never a spike worth paging for, and without a floor a baseline of exactly 0% (a topic with no negatives yet)
/// would turn the first negative message into an infinite z.
pub const MIN_RATE_STD: f64 = 0.005;

/// Fewest negative messages the volume test expects in a view. A topic whose baseline holds almost no negatives
/// would otherwise find its first few infinitely surprising; `min_negatives` and `min_ratio` then decide.
pub const MIN_EXPECTED_NEGATIVES: f64 = 1.0;

/// The volume test's settings (`[detector.volume]`). It shares the view, baseline weight, warm-up, resolution and
/// cooldown of [`DetectorConfig`]. Defaults, documentation and validation live here, for the daemon's config file
/// and for the detector alike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VolumeConfig {
    /// Whether the volume test runs. Default true.
    pub enabled: bool,
    /// Fire when the view's negative count has at most this probability under the count baseline: the false-alarm
    /// rate per close of a steady stream (a property test checks it holds). In (0, 0.5). Default 1e-6: 20 topics
    /// closing a bucket a minute make about 200,000 closes a week, so noise alone pages about once in five weeks
    /// before the other gates.
    pub false_alarm_probability: f64,
    /// A firing alert's close is calm for this test once the count's probability rises above this; at least
    /// `false_alarm_probability` (hysteresis). Default 0.05: the count is back within ordinary variation.
    pub resolve_probability: f64,
    /// Fire only when the view holds at least this many times the negatives the baseline expects. At least 1.
    /// Default 3.0: a tripling is news on any topic; smaller rises on a busy topic are statistically clear but are
    /// the daily cycle, and the rate test watches the share.
    pub min_ratio: f64,
    /// Fire only with at least this many negative messages in the view, and resolve below it. At least 1.
    /// Default 10: fewer is not a surge anyone needs paging for.
    pub min_negatives: u64,
}

impl Default for VolumeConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            false_alarm_probability: 1e-6,
            resolve_probability: 0.05,
            min_ratio: 3.0,
            min_negatives: 10,
        }
    }
}

/// One invalid [`VolumeConfig`] setting: its field name, its value, and what it must be.
#[derive(Debug, Clone, PartialEq)]
pub struct VolumeProblem {
    pub field: &'static str,
    pub value: String,
    pub requirement: String,
}

impl VolumeConfig {
    /// Checks every field and reports every problem.
    pub fn validate(&self) -> Vec<VolumeProblem> {
        let mut problems = Vec::new();
        let mut problem = |field, value: &dyn std::fmt::Debug, requirement: String| {
            problems.push(VolumeProblem { field, value: format!("{value:?}"), requirement });
        };
        let probability_valid = self.false_alarm_probability > 0.0 && self.false_alarm_probability < 0.5;
        if !probability_valid {
            problem(
                "false_alarm_probability",
                &self.false_alarm_probability,
                "must be in (0, 0.5), e.g. 1e-6".to_owned(),
            );
        }
        if !(self.resolve_probability < 1.0
            && (!probability_valid || self.resolve_probability >= self.false_alarm_probability))
        {
            problem(
                "resolve_probability",
                &self.resolve_probability,
                format!(
                    "must be below 1 and at least false_alarm_probability ({:?}) so alerts do not flap",
                    self.false_alarm_probability
                ),
            );
        }
        if !(self.min_ratio.is_finite() && self.min_ratio >= 1.0) {
            problem("min_ratio", &self.min_ratio, "must be a number of at least 1 (1 turns the gate off)".to_owned());
        }
        if self.min_negatives == 0 {
            problem("min_negatives", &self.min_negatives, "must be at least 1".to_owned());
        }
        problems
    }
}

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
    /// The volume test.
    pub volume: VolumeConfig,
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
            volume: VolumeConfig::default(),
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
        problems.extend(
            self.volume
                .validate()
                .into_iter()
                .map(|problem| format!("volume.{} = {} {}", problem.field, problem.value, problem.requirement)),
        );
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
    /// Negatives the count baseline expects in a detection view; `None` until a count baseline exists.
    pub expected_negative_count: Option<f64>,
    /// Negative count of the latest close's detection view.
    pub last_negative_count: u64,
    /// Probability of the latest view's negative count under the count baseline (scored even while the volume test
    /// is off, as evidence); `None` until a count baseline exists.
    pub last_count_p_value: Option<f64>,
    /// The test that opened the episode in progress, `None` while quiet.
    pub firing: Option<DetectorKind>,
}

/// EWMA mean and variance of a topic's past per-bucket negative rates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
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

/// EWMA mean and variance of a topic's past per-bucket negative counts, empty buckets included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CountBaseline {
    mean: f64,
    variance: f64,
    updates: u64,
}

impl CountBaseline {
    fn learn(baseline: &mut Option<Self>, negatives: u64, alpha: f64) {
        let count = negatives as f64;
        match baseline {
            None => *baseline = Some(Self { mean: count, variance: 0.0, updates: 1 }),
            Some(baseline) => {
                let deviation = count - baseline.mean;
                baseline.mean += alpha * deviation;
                baseline.variance = (1.0 - alpha) * (baseline.variance + alpha * deviation * deviation);
                baseline.updates += 1;
            }
        }
    }

    /// The count a view of `buckets_per_view` buckets expects, and the probability of at least `negatives` there;
    /// see the module documentation for the variance.
    fn score(&self, negatives: u64, buckets_per_view: f64, alpha: f64) -> (f64, f64) {
        let expected = (self.mean * buckets_per_view).max(MIN_EXPECTED_NEGATIVES);
        let bucket_dispersion = if self.mean > 0.0 { (self.variance / self.mean).max(1.0) } else { 1.0 };
        let estimate_error = 1.0 + buckets_per_view * alpha / (2.0 - alpha);
        (expected, counts::upper_tail(negatives, expected, bucket_dispersion * estimate_error))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
enum Episode {
    Quiet {
        cooldown_until_ms: Option<i64>,
    },
    /// `fired_on_ms`: start of the view the episode fired on, which names it ([`AlertEvent::id`]).
    Firing {
        consecutive_calm_buckets: u32,
        detector: DetectorKind,
        fired_on_ms: i64,
    },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TopicDetector {
    baseline: Option<Baseline>,
    count_baseline: Option<CountBaseline>,
    /// Buckets closed while quiet that are still inside the detection view, oldest first, as (bucket end, counts);
    /// each joins the baselines once the view has moved past it (the rate baseline skips empty ones).
    awaiting_baseline: VecDeque<(i64, SentimentCounts)>,
    episode: Episode,
    last_z: Option<f64>,
    last_rate: Option<f64>,
    /// Expected negatives and p-value of the latest close's view under the count baseline.
    last_count_score: Option<(f64, f64)>,
    last_negative_count: u64,
    last_bucket_end_ms: Option<i64>,
}

impl TopicDetector {
    fn new() -> Self {
        Self {
            baseline: None,
            count_baseline: None,
            awaiting_baseline: VecDeque::new(),
            episode: Episode::Quiet { cooldown_until_ms: None },
            last_z: None,
            last_rate: None,
            last_count_score: None,
            last_negative_count: 0,
            last_bucket_end_ms: None,
        }
    }

    /// Feeds one close and returns the episode transition it caused, if any, with the test that opened the episode
    /// and the start of the view the episode fired on.
    fn on_close(
        &mut self,
        config: &DetectorConfig,
        bucket: &ClosedBucket,
        view: &ViewSnapshot,
    ) -> Option<(AlertKind, DetectorKind, i64)> {
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
            CountBaseline::learn(&mut self.count_baseline, counts.negative, config.baseline_alpha);
            if counts.total == 0 {
                continue;
            }
            match &mut self.baseline {
                Some(baseline) => baseline.learn(&counts, config.baseline_alpha),
                None => self.baseline = Some(Baseline::starting_from(&counts)),
            }
        }
        let z_score = self.baseline.as_ref().map(|baseline| baseline.z_score(&view.counts));
        self.last_z = z_score;
        self.last_rate = (view.counts.total > 0).then(|| view.counts.negative_rate());
        let buckets_per_view = view.width_ms as f64 / (bucket.bucket_end_ms - bucket.bucket_start_ms) as f64;
        self.last_count_score = self
            .count_baseline
            .as_ref()
            .map(|baseline| baseline.score(view.counts.negative, buckets_per_view, config.baseline_alpha));
        self.last_negative_count = view.counts.negative;
        let volume = &config.volume;

        let transition = match self.episode {
            Episode::Quiet { cooldown_until_ms } => {
                let warmed_up = self
                    .baseline
                    .as_ref()
                    .is_some_and(|baseline| baseline.updates >= config.warmup_buckets)
                    && self.count_baseline.as_ref().is_some_and(|baseline| baseline.updates >= config.warmup_buckets);
                let cooled_down = cooldown_until_ms.is_none_or(|until_ms| bucket.bucket_end_ms >= until_ms);
                let rate_spiking = z_score.is_some_and(|z| z >= config.z_threshold)
                    && view.counts.total >= config.min_volume
                    && wilson_lower_bound(view.counts.negative, view.counts.total, config.wilson_z)
                        >= config.wilson_floor;
                let volume_surging = self.last_count_score.is_some_and(|(expected, p_value)| {
                    volume.enabled
                        && p_value <= volume.false_alarm_probability
                        && view.counts.negative >= volume.min_negatives
                        && view.counts.negative as f64 >= volume.min_ratio * expected
                });
                let detector = if rate_spiking {
                    Some(DetectorKind::Rate)
                } else if volume_surging {
                    Some(DetectorKind::Volume)
                } else {
                    None
                };
                match detector {
                    Some(detector) if warmed_up && cooled_down => {
                        let fired_on_ms = view.start_ms;
                        self.episode = Episode::Firing { consecutive_calm_buckets: 0, detector, fired_on_ms };
                        // The buckets in the view are the spike's onset: never baseline material.
                        self.awaiting_baseline.clear();
                        Some((AlertKind::Firing, detector, fired_on_ms))
                    }
                    _ => None,
                }
            }
            Episode::Firing { consecutive_calm_buckets, detector, fired_on_ms } => {
                let rate_calm =
                    z_score.is_none_or(|z| z < config.resolve_z_threshold) || view.counts.total < config.min_volume;
                let volume_calm = self.last_count_score.is_none_or(|(_, p_value)| {
                    !volume.enabled
                        || p_value > volume.resolve_probability
                        || view.counts.negative < volume.min_negatives
                });
                if !(rate_calm && volume_calm) {
                    self.episode = Episode::Firing { consecutive_calm_buckets: 0, detector, fired_on_ms };
                    None
                } else if consecutive_calm_buckets + 1 >= config.resolve_after_buckets {
                    self.episode =
                        Episode::Quiet { cooldown_until_ms: Some(bucket.bucket_end_ms + config.cooldown_ms) };
                    Some((AlertKind::Resolved, detector, fired_on_ms))
                } else {
                    let consecutive_calm_buckets = consecutive_calm_buckets + 1;
                    self.episode = Episode::Firing { consecutive_calm_buckets, detector, fired_on_ms };
                    None
                }
            }
        };
        if matches!(self.episode, Episode::Quiet { .. }) {
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
            expected_negative_count: self.last_count_score.map(|(expected, _)| expected),
            last_negative_count: self.last_negative_count,
            last_count_p_value: self.last_count_score.map(|(_, p_value)| p_value),
            firing: match self.episode {
                Episode::Firing { detector, .. } => Some(detector),
                Episode::Quiet { .. } => None,
            },
        }
    }
}

/// One topic's detector state as a restore carries it: opaque outside this module, serialisable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicDetectorState(TopicDetector);

/// Spike detection for every topic the window store closes buckets for.
#[derive(Debug, Clone, PartialEq)]
pub struct SpikeDetector {
    config: DetectorConfig,
    topics: BTreeMap<String, TopicDetector>,
    /// Whether the window store's keys are topics or entities.
    keyed_by_entity: bool,
}

impl SpikeDetector {
    /// Builds a detector, or returns every problem [`DetectorConfig::validate`] finds. Check the configuration
    /// against the window's with [`DetectorConfig::validate_with_window`] first.
    pub fn new(config: DetectorConfig) -> Result<Self, Vec<String>> {
        config.validate()?;
        Ok(Self { config, topics: BTreeMap::new(), keyed_by_entity: false })
    }

    /// A detector whose closed buckets are keyed by entity rather than topic: its alerts' scope is the entity.
    pub fn for_entities(config: DetectorConfig) -> Result<Self, Vec<String>> {
        Ok(Self { keyed_by_entity: true, ..Self::new(config)? })
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
        let (kind, detector_kind, fired_on_ms) = detector.on_close(&self.config, bucket, view)?;
        if bucket.topic == ALL_TOPICS {
            return None;
        }
        // A transition needs both baselines (firing requires warm-up; resolving follows firing), so these are present.
        let baseline = detector.baseline.as_ref()?;
        let z_score = detector.last_z?;
        let (expected_negative_count, negative_count_p_value) = detector.last_count_score?;
        let examples = super::distinct_examples(&view.examples, self.config.examples);
        let scope = if self.keyed_by_entity {
            AlertScope::Entity(bucket.topic.clone())
        } else {
            AlertScope::Topic(bucket.topic.clone())
        };
        let fired_id = AlertEvent::id_of(&scope, fired_on_ms, AlertKind::Firing);
        Some(AlertEvent {
            id: AlertEvent::id_of(&scope, view.start_ms, kind),
            resolves: (kind == AlertKind::Resolved).then_some(fired_id),
            kind,
            detector: detector_kind,
            scope,
            topic: bucket.topic.clone(),
            negative_rate: view.counts.negative_rate(),
            baseline_rate: baseline.mean,
            baseline_std: baseline.variance.sqrt(),
            z_score,
            wilson_lower_bound: wilson_lower_bound(view.counts.negative, view.counts.total, self.config.wilson_z),
            negative_count: view.counts.negative,
            expected_negative_count,
            negative_count_p_value,
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

    /// The settings it runs with.
    pub fn config(&self) -> &DetectorConfig {
        &self.config
    }

    /// `topic`'s baselines and episode, for another process to carry on with ([`SpikeDetector::import_topic`]);
    /// `None` before its first close.
    pub fn export_topic(&self, topic: &str) -> Option<TopicDetectorState> {
        self.topics.get(topic).map(|detector| TopicDetectorState(detector.clone()))
    }

    /// Puts back a topic's state exported by a detector with the same settings: an open episode stays open (it
    /// fires no second time) and resolves under the id it fired with.
    pub fn import_topic(&mut self, topic: &str, state: TopicDetectorState) {
        self.topics.insert(topic.to_owned(), state.0);
    }

    /// Drops `topic`'s state (another process owns it now).
    pub fn forget_topic(&mut self, topic: &str) {
        self.topics.remove(topic);
    }

    /// The detector state of `topic`, `None` before its first close.
    pub fn state(&self, topic: &str) -> Option<TopicState> {
        self.topics.get(topic).map(TopicDetector::state)
    }
}

#[cfg(test)]
mod tests;
