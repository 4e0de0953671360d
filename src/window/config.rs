//! Window settings (bucket width, view widths, lateness, idle close, examples) and their validation.

use serde::{Deserialize, Serialize};

/// Longest duration any window setting may take: one week. A week of one-minute buckets is 10 080 buckets per
/// topic, and the bound keeps every sum of times and durations far from i64 overflow.
pub const MAX_WINDOW_DURATION_MS: i64 = 7 * 24 * 60 * 60 * 1000;

/// Most buckets one view may span. Each close merges this many buckets per view and topic, and a topic keeps
/// this many live; 10 080 is a week of one-minute buckets.
pub const MAX_BUCKETS_PER_VIEW: i64 = 10_080;

/// Most examples a bucket may keep. Examples are copied into every view and alert; a hundred is already more than
/// anyone reads in a notification.
pub const MAX_EXAMPLES_PER_BUCKET: usize = 100;

/// Window settings. Durations are in milliseconds of event time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WindowConfig {
    /// Width of the tumbling buckets, aligned to the Unix epoch. Default 60 000 (1 min): the resolution of the
    /// dashboard and of detection; finer buckets multiply closes without making a 5 min view more informative.
    pub bucket_width_ms: i64,
    /// Widths of the sliding views, each a multiple of the bucket width. Default [300 000, 3 600 000] (5 min, the
    /// detection view, and 1 h, the dashboard's context).
    pub view_widths_ms: Vec<i64>,
    /// How far the watermark may pass a bucket's end before the bucket closes; events for it arriving within that
    /// time still count. Default 120 000 (2 min): Kafka delivers partitions independently, so one partition's events
    /// can trail another's by seconds, and producers and ingest add their own delays; 2 min covers those at the price
    /// of delaying each close by two buckets. (The daemon's `[windows]` defaults are these, in seconds.)
    pub allowed_lateness_ms: i64,
    /// Wall-clock time without event-time progress after which the watermark moves on by itself, so quiet streams
    /// still close their buckets. Default 30 000 (30 s): longer than the batcher's deadline and a broker
    /// round-trip, so a busy stream never triggers it, short enough that a quiet topic's alert is at most half a
    /// minute later than a busy one's.
    pub idle_close_delay_ms: i64,
    /// Most negative examples kept per bucket and per view. Default 5: what an alert shows.
    pub examples_per_bucket: usize,
}

impl Default for WindowConfig {
    fn default() -> Self {
        Self {
            bucket_width_ms: 60_000,
            view_widths_ms: vec![300_000, 3_600_000],
            allowed_lateness_ms: 120_000,
            idle_close_delay_ms: 30_000,
            examples_per_bucket: 5,
        }
    }
}

impl WindowConfig {
    /// Checks every field and reports every problem, each naming the field and its value.
    pub fn validate(&self) -> Result<(), Vec<String>> {
        let mut problems = Vec::new();
        let bucket_width_is_valid = (1..=MAX_WINDOW_DURATION_MS).contains(&self.bucket_width_ms);
        if !bucket_width_is_valid {
            problems.push(format!(
                "bucket_width_ms = {} must be between 1 and {MAX_WINDOW_DURATION_MS}",
                self.bucket_width_ms
            ));
        }
        if self.view_widths_ms.is_empty() {
            problems.push("view_widths_ms is empty; at least one view width is needed".to_owned());
        }
        for (index, &view_width_ms) in self.view_widths_ms.iter().enumerate() {
            if !(1..=MAX_WINDOW_DURATION_MS).contains(&view_width_ms) {
                problems.push(format!(
                    "view_widths_ms[{index}] = {view_width_ms} must be between 1 and {MAX_WINDOW_DURATION_MS}"
                ));
                continue;
            }
            if self.view_widths_ms[..index].contains(&view_width_ms) {
                problems.push(format!("view_widths_ms[{index}] = {view_width_ms} is listed twice"));
            }
            if !bucket_width_is_valid {
                continue;
            }
            if view_width_ms % self.bucket_width_ms != 0 {
                problems.push(format!(
                    "view_widths_ms[{index}] = {view_width_ms} is not a multiple of bucket_width_ms = {}",
                    self.bucket_width_ms
                ));
            } else if view_width_ms / self.bucket_width_ms > MAX_BUCKETS_PER_VIEW {
                problems.push(format!(
                    "view_widths_ms[{index}] = {view_width_ms} spans {} buckets of {} ms; at most {MAX_BUCKETS_PER_VIEW} allowed",
                    view_width_ms / self.bucket_width_ms,
                    self.bucket_width_ms
                ));
            }
        }
        if !(0..=MAX_WINDOW_DURATION_MS).contains(&self.allowed_lateness_ms) {
            problems.push(format!(
                "allowed_lateness_ms = {} must be between 0 and {MAX_WINDOW_DURATION_MS}",
                self.allowed_lateness_ms
            ));
        }
        if !(0..=MAX_WINDOW_DURATION_MS).contains(&self.idle_close_delay_ms) {
            problems.push(format!(
                "idle_close_delay_ms = {} must be between 0 and {MAX_WINDOW_DURATION_MS}",
                self.idle_close_delay_ms
            ));
        }
        if self.examples_per_bucket > MAX_EXAMPLES_PER_BUCKET {
            problems.push(format!(
                "examples_per_bucket = {} must be at most {MAX_EXAMPLES_PER_BUCKET}",
                self.examples_per_bucket
            ));
        }
        if problems.is_empty() { Ok(()) } else { Err(problems) }
    }

    /// The widest configured view: how far back closed buckets must be kept.
    pub fn largest_view_width_ms(&self) -> i64 {
        self.view_widths_ms.iter().copied().max().unwrap_or(self.bucket_width_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        assert_eq!(WindowConfig::default().validate(), Ok(()));
    }

    #[test]
    fn reports_every_problem_naming_field_and_value() {
        let config = WindowConfig {
            bucket_width_ms: 60_000,
            view_widths_ms: vec![300_000, 90_000, 0, 300_000, 60_000 * (MAX_BUCKETS_PER_VIEW + 1)],
            allowed_lateness_ms: -1,
            idle_close_delay_ms: MAX_WINDOW_DURATION_MS + 1,
            examples_per_bucket: MAX_EXAMPLES_PER_BUCKET + 1,
        };
        let problems = config.validate().unwrap_err();
        let expected_fragments = [
            "view_widths_ms[1] = 90000 is not a multiple of bucket_width_ms = 60000",
            "view_widths_ms[2] = 0",
            "view_widths_ms[3] = 300000 is listed twice",
            "view_widths_ms[4] = 604860000",
            "allowed_lateness_ms = -1",
            "idle_close_delay_ms = 604800001",
            "examples_per_bucket = 101",
        ];
        assert_eq!(problems.len(), expected_fragments.len(), "{problems:#?}");
        for (problem, fragment) in problems.iter().zip(expected_fragments) {
            assert!(problem.contains(fragment), "{problem:?} should contain {fragment:?}");
        }
    }

    #[test]
    fn an_invalid_bucket_width_does_not_cascade_into_view_errors() {
        let config = WindowConfig { bucket_width_ms: 0, view_widths_ms: vec![], ..WindowConfig::default() };
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 2, "{problems:#?}");
        assert!(problems[0].starts_with("bucket_width_ms = 0"));
        assert!(problems[1].starts_with("view_widths_ms is empty"));
    }

    #[test]
    fn rejects_unknown_fields() {
        let parsed: Result<WindowConfig, _> = serde_json::from_str(r#"{"bucket_width_ms": 1000, "bucket_widht": 5}"#);
        assert!(parsed.is_err());
        let partial: WindowConfig = serde_json::from_str(r#"{"bucket_width_ms": 1000}"#).unwrap();
        assert_eq!(partial.view_widths_ms, WindowConfig::default().view_widths_ms);
    }
}
