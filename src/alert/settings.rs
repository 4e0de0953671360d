//! The `[detector]` section of the daemon config, in seconds: its defaults are the spike detector's own
//! ([`crate::alert::DetectorConfig`], milliseconds), and it converts to that with its docs and checks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigIssue, ms_to_secs, secs_to_ms};

/// `[detector]`: when a topic's negative rate counts as a spike.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// The view whose negative rate is tested, in seconds; one of `windows.view_widths_secs`.
    /// Default 300.
    pub view_width_secs: u64,
    /// Fire when the view's negative rate is this many baseline standard deviations above the
    /// baseline mean. Unitless z-score, above 0. Default 3.0 (the usual three-sigma rule).
    pub z_threshold: f64,
    /// Resolve when the z-score falls below this (hysteresis), below `z_threshold`. Default 1.5.
    pub resolve_z_threshold: f64,
    /// Fire only when the view holds at least this many messages. Count, at least 1. Default 30:
    /// below that one or two negative messages swing the rate by several percent.
    pub min_volume: u64,
    /// Fire only when the Wilson lower bound of the negative rate exceeds this. Fraction in
    /// [0, 1). Default 0.2: a rise from 2 % to 6 % is statistically real but not news.
    pub wilson_floor: f64,
    /// Normal quantile for the Wilson bound, above 0. Default 1.96 (a 95 % two-sided interval).
    pub wilson_z: f64,
    /// EWMA weight of each new bucket in the baseline mean and variance. In (0, 1]. Default 0.1
    /// (roughly the last ten buckets dominate).
    pub baseline_alpha: f64,
    /// Buckets the baseline must have seen before alerts may fire. Count, at least 1. Default 10,
    /// matching `baseline_alpha` = 0.1.
    pub warmup_buckets: u64,
    /// Consecutive buckets below `resolve_z_threshold` before an alert resolves. Count, at least 1.
    /// Default 2.
    pub resolve_after_buckets: u64,
    /// After an alert resolves, the same topic cannot fire again for this long, in seconds (event
    /// time). Default 600: stops a flapping topic paging every few minutes.
    pub cooldown_secs: u64,
    /// Negative example messages attached to an alert event. Count. Default 5.
    pub examples: usize,
    /// `[detector.volume]`: the test on the negative *count*, which catches a story breaking at a steady
    /// negative share. Its fields, defaults and checks are documented on [`crate::alert::VolumeConfig`].
    pub volume: crate::alert::VolumeConfig,
}

/// The defaults are the detector's own ([`crate::alert::DetectorConfig`]), in seconds, as for [`WindowsConfig`].
impl Default for DetectorConfig {
    fn default() -> Self {
        let detector = crate::alert::DetectorConfig::default();
        Self {
            view_width_secs: ms_to_secs(detector.view_width_ms),
            z_threshold: detector.z_threshold,
            resolve_z_threshold: detector.resolve_z_threshold,
            min_volume: detector.min_volume,
            wilson_floor: detector.wilson_floor,
            wilson_z: detector.wilson_z,
            baseline_alpha: detector.baseline_alpha,
            warmup_buckets: detector.warmup_buckets,
            resolve_after_buckets: u64::from(detector.resolve_after_buckets),
            cooldown_secs: ms_to_secs(detector.cooldown_ms),
            examples: detector.examples,
            volume: detector.volume,
        }
    }
}

impl DetectorConfig {
    /// `view_width_secs` as a duration.
    /// The settings the spike detector takes (event time in milliseconds).
    pub fn to_detector_config(&self) -> crate::alert::DetectorConfig {
        crate::alert::DetectorConfig {
            view_width_ms: self.view_width_ms(),
            z_threshold: self.z_threshold,
            resolve_z_threshold: self.resolve_z_threshold,
            min_volume: self.min_volume,
            wilson_floor: self.wilson_floor,
            wilson_z: self.wilson_z,
            baseline_alpha: self.baseline_alpha,
            warmup_buckets: self.warmup_buckets,
            resolve_after_buckets: u32::try_from(self.resolve_after_buckets).unwrap_or(u32::MAX),
            cooldown_ms: self.cooldown_ms(),
            examples: self.examples,
            volume: self.volume.clone(),
        }
    }

    pub fn view_width(&self) -> Duration {
        Duration::from_secs(self.view_width_secs)
    }

    /// `view_width_secs` in milliseconds.
    pub fn view_width_ms(&self) -> i64 {
        secs_to_ms(self.view_width_secs)
    }

    /// `cooldown_secs` as a duration.
    pub fn cooldown(&self) -> Duration {
        Duration::from_secs(self.cooldown_secs)
    }

    /// `cooldown_secs` in milliseconds.
    pub fn cooldown_ms(&self) -> i64 {
        secs_to_ms(self.cooldown_secs)
    }
}

impl DetectorConfig {
    /// Adds every problem of this section alone to `issues` (`crate::config` checks the view against `[windows]`).
    pub(crate) fn check(&self, issues: &mut Vec<ConfigIssue>) {
        let detector = self;
        let z_threshold_valid = detector.z_threshold.is_finite() && detector.z_threshold > 0.0;
        if !z_threshold_valid {
            issues.push(ConfigIssue::new("detector.z_threshold", detector.z_threshold, "must be a number above 0"));
        }
        if !detector.resolve_z_threshold.is_finite() {
            issues.push(ConfigIssue::new(
                "detector.resolve_z_threshold",
                detector.resolve_z_threshold,
                "must be a number",
            ));
        } else if z_threshold_valid && detector.resolve_z_threshold >= detector.z_threshold {
            let requirement =
                format!("must be below detector.z_threshold ({:?}) so alerts do not flap", detector.z_threshold);
            issues.push(ConfigIssue::new("detector.resolve_z_threshold", detector.resolve_z_threshold, requirement));
        }
        if detector.min_volume == 0 {
            issues.push(ConfigIssue::new("detector.min_volume", 0, "must be at least 1"));
        }
        if !(0.0..1.0).contains(&detector.wilson_floor) {
            issues.push(ConfigIssue::new("detector.wilson_floor", detector.wilson_floor, "must be in [0, 1)"));
        }
        if !(detector.wilson_z.is_finite() && detector.wilson_z > 0.0) {
            issues.push(ConfigIssue::new(
                "detector.wilson_z",
                detector.wilson_z,
                "must be a number above 0, e.g. 1.96",
            ));
        }
        if !(detector.baseline_alpha > 0.0 && detector.baseline_alpha <= 1.0) {
            issues.push(ConfigIssue::new("detector.baseline_alpha", detector.baseline_alpha, "must be in (0, 1]"));
        }
        if detector.warmup_buckets == 0 {
            issues.push(ConfigIssue::new("detector.warmup_buckets", 0, "must be at least 1"));
        }
        for problem in detector.volume.validate() {
            issues.push(ConfigIssue {
                key: format!("detector.volume.{}", problem.field),
                value: problem.value,
                requirement: problem.requirement,
            });
        }
        if detector.resolve_after_buckets == 0 {
            issues.push(ConfigIssue::new("detector.resolve_after_buckets", 0, "must be at least 1"));
        }
    }
}
