//! The `[windows]` section of the daemon config, in seconds: its defaults are the window store's own
//! ([`crate::window::WindowConfig`], milliseconds), and it converts to that with its docs and checks.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::config::{ConfigIssue, ms_to_secs, secs_to_ms};

/// A view keeps one counter set per bucket per topic; a week of one-minute buckets (10 080) bounds
/// that memory for the twenty shipped topics at a few MiB.
const MAX_BUCKETS_PER_VIEW: u64 = 10_080;

/// `[windows]`: event-time tumbling buckets rolled into sliding views.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowsConfig {
    /// Width of one tumbling bucket, in seconds, at least 1. Default 60: fine enough for a 5-minute
    /// view to slide smoothly, coarse enough to keep few buckets.
    pub bucket_width_secs: u64,
    /// Widths of the sliding views, in seconds; each a multiple of `bucket_width_secs` and at most
    /// 10 080 buckets. Default `[300, 3600]` (5 minutes for alerting, 1 hour for the dashboard).
    pub view_widths_secs: Vec<u64>,
    /// How long after a bucket's end events for it are still counted, in seconds (event time).
    /// Later ones are counted as late. Default 120: covers typical producer and ingest delays.
    pub allowed_lateness_secs: u64,
    /// When no event arrives, buckets are closed this long after their end plus the allowed
    /// lateness by the wall clock, in seconds, so quiet topics still resolve alerts. Default 30.
    pub idle_close_delay_secs: u64,
    /// Most negative messages kept per bucket and topic as alert examples. Count. Default 5.
    pub examples_per_bucket: usize,
}

/// The defaults are the window store's own ([`crate::window::WindowConfig`]), in seconds: one source, so the
/// daemon and the pure module cannot drift apart (they once did, on the allowed lateness).
impl Default for WindowsConfig {
    fn default() -> Self {
        let window = crate::window::WindowConfig::default();
        Self {
            bucket_width_secs: ms_to_secs(window.bucket_width_ms),
            view_widths_secs: window.view_widths_ms.iter().map(|&width_ms| ms_to_secs(width_ms)).collect(),
            allowed_lateness_secs: ms_to_secs(window.allowed_lateness_ms),
            idle_close_delay_secs: ms_to_secs(window.idle_close_delay_ms),
            examples_per_bucket: window.examples_per_bucket,
        }
    }
}

impl WindowsConfig {
    /// `bucket_width_secs` as a duration.
    /// The settings the window store takes (event time in milliseconds).
    pub fn to_window_config(&self) -> crate::window::WindowConfig {
        crate::window::WindowConfig {
            bucket_width_ms: self.bucket_width_ms(),
            view_widths_ms: self.view_widths_ms(),
            allowed_lateness_ms: self.allowed_lateness_ms(),
            idle_close_delay_ms: self.idle_close_delay().as_millis() as i64,
            examples_per_bucket: self.examples_per_bucket,
        }
    }

    pub fn bucket_width(&self) -> Duration {
        Duration::from_secs(self.bucket_width_secs)
    }

    /// `bucket_width_secs` in milliseconds, for event-time arithmetic on epoch milliseconds.
    pub fn bucket_width_ms(&self) -> i64 {
        secs_to_ms(self.bucket_width_secs)
    }

    /// `view_widths_secs` as durations.
    pub fn view_widths(&self) -> Vec<Duration> {
        self.view_widths_secs.iter().map(|&width_secs| Duration::from_secs(width_secs)).collect()
    }

    /// `view_widths_secs` in milliseconds.
    pub fn view_widths_ms(&self) -> Vec<i64> {
        self.view_widths_secs.iter().map(|&width_secs| secs_to_ms(width_secs)).collect()
    }

    /// `allowed_lateness_secs` as a duration.
    pub fn allowed_lateness(&self) -> Duration {
        Duration::from_secs(self.allowed_lateness_secs)
    }

    /// `allowed_lateness_secs` in milliseconds.
    pub fn allowed_lateness_ms(&self) -> i64 {
        secs_to_ms(self.allowed_lateness_secs)
    }

    /// `idle_close_delay_secs` as a duration (wall clock).
    pub fn idle_close_delay(&self) -> Duration {
        Duration::from_secs(self.idle_close_delay_secs)
    }
}

impl WindowsConfig {
    /// Adds every problem of this section to `issues`.
    pub(crate) fn check(&self, issues: &mut Vec<ConfigIssue>) {
        let windows = self;
        if windows.bucket_width_secs == 0 {
            issues.push(ConfigIssue::new("windows.bucket_width_secs", 0, "must be at least 1"));
            // Every view rule below divides by the bucket width.
            return;
        }
        let key = "windows.view_widths_secs";
        if windows.view_widths_secs.is_empty() {
            issues.push(ConfigIssue::new(key, &windows.view_widths_secs, "empty: list at least one view width"));
        }
        for (index, &view_width) in windows.view_widths_secs.iter().enumerate() {
            let bucket_width = windows.bucket_width_secs;
            if view_width == 0 || view_width % bucket_width != 0 {
                let requirement = format!(
                    "contains {view_width}, which is not a positive multiple of windows.bucket_width_secs = {bucket_width}"
                );
                issues.push(ConfigIssue::new(key, &windows.view_widths_secs, requirement));
            } else if view_width / bucket_width > MAX_BUCKETS_PER_VIEW {
                let requirement = format!(
                    "contains {view_width}, which spans more than {MAX_BUCKETS_PER_VIEW} buckets of {bucket_width} s: \
                     widen windows.bucket_width_secs or shorten the view"
                );
                issues.push(ConfigIssue::new(key, &windows.view_widths_secs, requirement));
            }
            if windows.view_widths_secs[..index].contains(&view_width) {
                let requirement = format!("contains {view_width} twice: remove the duplicate");
                issues.push(ConfigIssue::new(key, &windows.view_widths_secs, requirement));
            }
        }
    }
}
