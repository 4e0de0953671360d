//! The window store: owns every topic's live buckets and the store-wide watermark that decides which buckets are
//! closed, which observations are late, and when old buckets and idle topics are forgotten.
//!
//! # The watermark
//!
//! One watermark for the whole store, never moving backwards, following the slowest input partition (each
//! observation names its source). For each source it tracks
//!
//! * the highest event time seen from it (each observation's contribution capped at `now_wall_ms +`
//!   [`MAX_EVENT_TIME_SKEW_MS`]), and
//! * that highest event time carried forward at wall-clock speed once no observation has raised it for
//!   `idle_close_delay_ms` of wall-clock time: `highest + (now_wall_ms - wall time it was raised - idle_close_delay_ms)`.
//!
//! The larger of the two is the source's progress, and the watermark is the smallest progress over all sources.
//! Why per source: after a restart the consumer replays a backlog, and librdkafka may deliver one partition's
//! backlog well ahead of another's; with one store-wide maximum, the first partition would push the watermark to
//! the present and every other partition's backlog would be late. A source that stops sending (revoked, or quiet)
//! moves on at wall-clock speed after the idle delay, so it cannot hold the watermark back for long.
//!
//! A bucket `[start, end)` is closed once `watermark >= end + allowed_lateness_ms`; an observation for a closed
//! bucket is [`ObserveOutcome::Late`] and recorded nowhere, so nothing is ever counted twice or after its bucket was
//! handed to the detector. That one rule also makes everything older than retention late.
//!
//! Why wall-clock time carries the last event time forward rather than entering as `now_wall_ms - idle_close_delay_ms`:
//! on a live stream the two agree (events arrive about when they happen), but after a restart the consumer reads a
//! backlog whose event times trail the wall clock by minutes or hours, and a producer's clock can run behind ours.
//! With `now - delay` all of that would be late; here a busy stream is judged on its own event time however far
//! behind it is, and only a stream whose event time has stopped moving (a quiet topic mix, or no traffic at all) is
//! pushed on by the wall clock, so idle buckets still close and alerts on quiet streams neither stall nor stay
//! firing. [`WindowStore::advance`] is what a timer calls to make that happen without new events.
//!
//! Timestamps in the future: an observation whose event time lies more than [`MAX_EVENT_TIME_SKEW_MS`] beyond the
//! wall clock is counted at `now_wall_ms + MAX_EVENT_TIME_SKEW_MS` instead. One bogus timestamp (a year ahead, or
//! in microseconds) therefore moves the watermark by at most the skew and cannot close everything, and no bucket
//! is ever created beyond the watermark, which is what bounds memory.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::aggregate::Aggregate;
use super::{ALL_TOPICS, ClosedBucket, Observation, ObserveOutcome, ViewSnapshot, WindowConfig};

/// How far ahead of the wall clock an event time may be before it is clamped: one minute. Producers' clocks are
/// NTP-synchronised to well under a second; a minute tolerates a badly drifting one while keeping a bogus
/// timestamp from closing more than a bucket or two early.
pub const MAX_EVENT_TIME_SKEW_MS: i64 = 60_000;

/// A topic stops closing empty buckets once its newest closed data is this many largest views old: it skips ahead to
/// its next bucket with data, or is forgotten if it has none. The first largest-view width lets every view slide
/// past the data; during the second every view is seen empty, which is what lets a detector resolve a topic that
/// fell silent mid-alert and a dashboard show it drained. Beyond that, closing empty buckets tells nobody anything,
/// and a bogus 1970 timestamp followed by real traffic would mean closing decades of them.
pub const DORMANT_AFTER_LARGEST_VIEWS: i64 = 2;

/// Latest time the store handles, 10000-01-01T00:00:00Z; later times (event or wall clock) are clamped to it, as
/// are times before the Unix epoch to the epoch. No real clock reads outside that range, and with it all sums of
/// times and validated durations stay far from i64 overflow.
pub const LATEST_SUPPORTED_TIME_MS: i64 = 253_402_300_800_000;

fn clamp_to_supported_range(time_ms: i64) -> i64 {
    time_ms.clamp(0, LATEST_SUPPORTED_TIME_MS)
}

/// The start of the bucket containing `time_ms`, on the grid aligned to the Unix epoch.
fn bucket_start_containing(time_ms: i64, bucket_width_ms: i64) -> i64 {
    time_ms - time_ms.rem_euclid(bucket_width_ms)
}

/// The store-wide event-time progress, from each source's.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Watermark {
    /// Per source: the highest (skew-capped) event time observed, with the wall-clock time at which it last rose.
    /// Bounded by the number of input partitions the process has consumed.
    sources: BTreeMap<String, (i64, i64)>,
    watermark_ms: Option<i64>,
    /// Sources announced before their first observation, with the wall-clock time of the announcement: the
    /// watermark waits for each until it delivers, or for `idle_close_delay_ms` at most (it may have nothing to
    /// send). An aggregator announces every (input partition, repartition partition) pair it will receive, so that
    /// a pair whose summaries it has not fetched yet cannot find them late.
    #[serde(default)]
    expected: BTreeMap<String, i64>,
}

impl Watermark {
    fn observe_event_time(&mut self, source: &str, event_time_ms: i64, now_wall_ms: i64) {
        match self.sources.get_mut(source) {
            Some(highest) if event_time_ms > highest.0 => *highest = (event_time_ms, now_wall_ms),
            Some(_) => {}
            None => {
                self.sources.insert(source.to_owned(), (event_time_ms, now_wall_ms));
            }
        }
    }

    fn advance(&mut self, now_wall_ms: i64, idle_close_delay_ms: i64) {
        let sources = &self.sources;
        self.expected.retain(|source, announced_at_wall_ms| {
            !sources.contains_key(source) && now_wall_ms - *announced_at_wall_ms < idle_close_delay_ms
        });
        if !self.expected.is_empty() {
            return;
        }
        let slowest_progress_ms = self
            .sources
            .values()
            .map(|&(highest_ms, raised_at_wall_ms)| {
                highest_ms + (now_wall_ms - raised_at_wall_ms - idle_close_delay_ms).max(0)
            })
            .min();
        let Some(candidate_ms) = slowest_progress_ms else {
            return;
        };
        self.watermark_ms = Some(self.watermark_ms.map_or(candidate_ms, |current_ms| current_ms.max(candidate_ms)));
    }

    /// Takes in another store's progress (a restored topic's) for the sources `keep_source` accepts: each keeps the
    /// further of the two, and the watermark never moves back.
    fn merge(&mut self, other: &Watermark, keep_source: impl Fn(&str) -> bool) {
        for (source, &(highest_ms, raised_at_wall_ms)) in other.sources.iter().filter(|(source, _)| keep_source(source))
        {
            match self.sources.get_mut(source) {
                Some(mine) if mine.0 >= highest_ms => {}
                Some(mine) => *mine = (highest_ms, raised_at_wall_ms),
                None => {
                    self.sources.insert(source.clone(), (highest_ms, raised_at_wall_ms));
                }
            }
        }
        self.watermark_ms = self.watermark_ms.max(other.watermark_ms);
    }
}

/// One topic's share of a [`WindowStore`], as a restore carries it from one process to another: its buckets and
/// close cursor, and the store's watermark when it was taken. Opaque outside this module; serialisable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicWindowsState {
    windows: TopicWindows,
    watermark: Watermark,
}

/// One topic's live buckets and its close cursor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct TopicWindows {
    /// Keyed by bucket start. Holds only buckets that received observations.
    buckets: BTreeMap<i64, Aggregate>,
    /// Start of the next bucket to close: every bucket before it has been closed, or skipped as part of a stretch
    /// without data (see [`DORMANT_AFTER_LARGEST_VIEWS`]), or preceded the topic's data.
    next_close_start_ms: i64,
    /// End of the newest closed bucket that held data; decides when a stretch without data is skipped.
    newest_closed_data_end_ms: i64,
}

impl TopicWindows {
    fn new(bucket_start_ms: i64) -> Self {
        Self {
            buckets: BTreeMap::new(),
            next_close_start_ms: bucket_start_ms,
            newest_closed_data_end_ms: bucket_start_ms,
        }
    }

    fn record(&mut self, bucket_start_ms: i64, observation: &Observation, example_limit: usize) {
        // A topic's cursor starts at its first observed bucket; an earlier bucket that is still open moves it back.
        // No closed bucket lies in between, since an observation for a closed bucket is late.
        self.next_close_start_ms = self.next_close_start_ms.min(bucket_start_ms);
        self.buckets.entry(bucket_start_ms).or_default().record(observation, example_limit);
    }

    fn snapshot(&self, width_ms: i64, end_ms: i64, example_limit: usize) -> ViewSnapshot {
        let start_ms = end_ms - width_ms;
        let mut merged = Aggregate::default();
        for bucket in self.buckets.range(start_ms..end_ms).map(|(_, bucket)| bucket) {
            merged.merge(bucket, example_limit);
        }
        ViewSnapshot { width_ms, start_ms, end_ms, counts: merged.counts, examples: merged.examples }
    }
}

/// Per-topic and all-topics event-time buckets, their sliding views, and the watermark that closes them.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowStore {
    config: WindowConfig,
    largest_view_width_ms: i64,
    topics: BTreeMap<String, TopicWindows>,
    watermark: Watermark,
}

impl WindowStore {
    /// Builds a store from a configuration, or returns every problem [`WindowConfig::validate`] finds.
    pub fn new(config: WindowConfig) -> Result<Self, Vec<String>> {
        config.validate()?;
        Ok(Self {
            largest_view_width_ms: config.largest_view_width_ms(),
            config,
            topics: BTreeMap::new(),
            watermark: Watermark { sources: BTreeMap::new(), watermark_ms: None, expected: BTreeMap::new() },
        })
    }

    /// Records an observation under its topic and under [`ALL_TOPICS`], unless its bucket has closed.
    ///
    /// Also moves the watermark (see the module docs), but closes nothing: closed buckets come out of
    /// [`WindowStore::advance`] only.
    pub fn observe(&mut self, observation: &Observation, now_wall_ms: i64) -> ObserveOutcome {
        let now_ms = clamp_to_supported_range(now_wall_ms);
        let latest_credible_ms = now_ms.saturating_add(MAX_EVENT_TIME_SKEW_MS).min(LATEST_SUPPORTED_TIME_MS);
        let event_time_ms = clamp_to_supported_range(observation.event_time_ms).min(latest_credible_ms);
        // The watermark itself moves only in `advance`: sources delivered together (the partitions of
        // one fetch) are all known before it moves, so none of them is judged by another's progress.
        self.watermark.observe_event_time(&observation.source, event_time_ms, now_ms);

        let bucket_start_ms = bucket_start_containing(event_time_ms, self.config.bucket_width_ms);
        if self.is_closed(bucket_start_ms + self.config.bucket_width_ms) {
            return ObserveOutcome::Late;
        }
        self.record(&observation.topic, bucket_start_ms, observation);
        if observation.topic != ALL_TOPICS {
            self.record(ALL_TOPICS, bucket_start_ms, observation);
        }
        ObserveOutcome::Counted
    }

    /// Moves the watermark to account for `now_wall_ms` and returns every bucket that has closed since the last
    /// call, ordered by bucket end and then topic. A topic closes every bucket in turn, empty ones included, until
    /// its data is [`DORMANT_AFTER_LARGEST_VIEWS`] largest views old; it then skips to its next data or is
    /// forgotten. Buckets no view can reach any more are dropped.
    ///
    /// Calling it again with the same `now_wall_ms` returns nothing and changes nothing.
    pub fn advance(&mut self, now_wall_ms: i64) -> Vec<ClosedBucket> {
        self.watermark.advance(clamp_to_supported_range(now_wall_ms), self.config.idle_close_delay_ms);
        let Some(watermark_ms) = self.watermark.watermark_ms else {
            return Vec::new();
        };
        let bucket_width_ms = self.config.bucket_width_ms;
        // A bucket whose end is at or before this has been passed by the watermark by the allowed lateness.
        let latest_closable_end_ms = watermark_ms - self.config.allowed_lateness_ms;
        let dormancy_span_ms = DORMANT_AFTER_LARGEST_VIEWS * self.largest_view_width_ms;
        let mut closed = Vec::new();
        let mut dormant_topics = Vec::new();
        for (topic, windows) in &mut self.topics {
            while windows.next_close_start_ms + bucket_width_ms <= latest_closable_end_ms {
                let bucket_start_ms = windows.next_close_start_ms;
                let bucket_end_ms = bucket_start_ms + bucket_width_ms;
                if windows.buckets.contains_key(&bucket_start_ms) {
                    windows.newest_closed_data_end_ms = bucket_end_ms;
                } else if bucket_end_ms > windows.newest_closed_data_end_ms + dormancy_span_ms {
                    // Every view has been empty for a whole largest view: skip to the next data, if any.
                    let Some(&next_data_start_ms) =
                        windows.buckets.range(bucket_start_ms..).next().map(|(start, _)| start)
                    else {
                        dormant_topics.push(topic.clone());
                        break;
                    };
                    windows.next_close_start_ms = next_data_start_ms;
                    continue;
                }
                closed.push(ClosedBucket {
                    topic: topic.clone(),
                    bucket_start_ms,
                    bucket_end_ms,
                    counts: windows.buckets.get(&bucket_start_ms).map(|bucket| bucket.counts).unwrap_or_default(),
                    views: self
                        .config
                        .view_widths_ms
                        .iter()
                        .map(|&width_ms| windows.snapshot(width_ms, bucket_end_ms, self.config.examples_per_bucket))
                        .collect(),
                });
                windows.next_close_start_ms = bucket_end_ms;
            }
            // The next bucket to close has the oldest views still to be built; nothing before them is needed.
            let oldest_needed_start_ms = windows.next_close_start_ms + bucket_width_ms - self.largest_view_width_ms;
            windows.buckets = windows.buckets.split_off(&oldest_needed_start_ms);
        }
        for topic in &dormant_topics {
            debug_assert!(self.topics[topic].buckets.is_empty(), "dormant topic {topic:?} still holds buckets");
            self.topics.remove(topic);
        }
        closed.sort_by(|left, right| (left.bucket_end_ms, &left.topic).cmp(&(right.bucket_end_ms, &right.topic)));
        closed
    }

    /// The view of `topic` of the given width ending at `end_ms` (rounded down to the bucket grid), from the buckets
    /// still held: those a configured view ending at the next close can reach, plus open ones. Unknown topics
    /// give an empty view.
    pub fn view(&self, topic: &str, width_ms: i64, end_ms: i64) -> ViewSnapshot {
        debug_assert!(
            width_ms > 0 && width_ms % self.config.bucket_width_ms == 0,
            "view width {width_ms} is not a positive multiple of the bucket width"
        );
        let aligned_end_ms = bucket_start_containing(clamp_to_supported_range(end_ms), self.config.bucket_width_ms);
        let Some(windows) = self.topics.get(topic) else {
            return ViewSnapshot {
                width_ms,
                start_ms: aligned_end_ms - width_ms,
                end_ms: aligned_end_ms,
                counts: Default::default(),
                examples: Vec::new(),
            };
        };
        windows.snapshot(width_ms, aligned_end_ms, self.config.examples_per_bucket)
    }

    /// Topics with live state (including [`ALL_TOPICS`] once anything was counted), in lexical order. A topic
    /// leaves this list when it goes dormant (see [`DORMANT_AFTER_LARGEST_VIEWS`]).
    pub fn topics(&self) -> impl Iterator<Item = &str> {
        self.topics.keys().map(String::as_str)
    }

    /// How many buckets `topic` holds in memory (for the memory gauge). After [`WindowStore::advance`] this is at
    /// most `(largest view + allowed lateness) / bucket width + 2`.
    pub fn live_bucket_count(&self, topic: &str) -> usize {
        self.topics.get(topic).map_or(0, |windows| windows.buckets.len())
    }

    /// `topic`'s buckets and cursor with the store's watermark, `None` for a topic without live state.
    pub fn export_topic(&self, topic: &str) -> Option<TopicWindowsState> {
        let windows = self.topics.get(topic)?.clone();
        Some(TopicWindowsState { windows, watermark: self.watermark.clone() })
    }

    /// Puts back a topic exported by [`WindowStore::export_topic`] (in this process or another with the same
    /// window settings), replacing what the store held for it; the watermark takes in the exported one's progress
    /// for the sources `keep_source` accepts (those this store will go on receiving). Closing then goes on exactly
    /// as it would have in the exporting store.
    pub fn import_topic(&mut self, topic: &str, state: TopicWindowsState, keep_source: impl Fn(&str) -> bool) {
        self.watermark.merge(&state.watermark, keep_source);
        self.topics.insert(topic.to_owned(), state.windows);
    }

    /// Drops `topic`'s buckets (another process owns it now).
    pub fn forget_topic(&mut self, topic: &str) {
        self.topics.remove(topic);
    }

    /// Announces sources that will deliver observations: the watermark does not move until each has delivered one,
    /// or `idle_close_delay` has passed since `now_wall_ms` (see the module docs).
    pub fn expect_sources(&mut self, sources: impl IntoIterator<Item = String>, now_wall_ms: i64) {
        for source in sources {
            if !self.watermark.sources.contains_key(&source) {
                self.watermark.expected.insert(source, clamp_to_supported_range(now_wall_ms));
            }
        }
    }

    /// Stops following the sources `forget` picks (they will send nothing more here), so that they no longer hold
    /// the watermark back.
    pub fn forget_sources(&mut self, forget: impl Fn(&str) -> bool) {
        self.watermark.sources.retain(|source, _| !forget(source));
        self.watermark.expected.retain(|source, _| !forget(source));
    }

    /// The current watermark, `None` until the first observation.
    pub fn watermark_ms(&self) -> Option<i64> {
        self.watermark.watermark_ms
    }

    fn is_closed(&self, bucket_end_ms: i64) -> bool {
        self.watermark
            .watermark_ms
            .is_some_and(|watermark_ms| bucket_end_ms + self.config.allowed_lateness_ms <= watermark_ms)
    }

    fn record(&mut self, topic: &str, bucket_start_ms: i64, observation: &Observation) {
        let example_limit = self.config.examples_per_bucket;
        match self.topics.get_mut(topic) {
            Some(windows) => windows.record(bucket_start_ms, observation, example_limit),
            None => {
                let mut windows = TopicWindows::new(bucket_start_ms);
                windows.record(bucket_start_ms, observation, example_limit);
                self.topics.insert(topic.to_owned(), windows);
            }
        }
    }
}

#[cfg(test)]
mod tests;
