use proptest::prelude::*;

use super::*;
use crate::window::{ExampleText, Sentiment, SentimentCounts};

const MINUTE_MS: i64 = 60_000;
/// The one input partition most tests observe from.
const SOURCE: &str = "news/0";

/// The defaults with 30 s of allowed lateness: the event times of these tests are laid out for it (the default
/// was 30 s on the window store until it took the daemon's 120 s).
fn test_config() -> WindowConfig {
    WindowConfig { allowed_lateness_ms: 30_000, ..WindowConfig::default() }
}

fn default_store() -> WindowStore {
    WindowStore::new(test_config()).unwrap()
}

fn observation(topic: &str, event_time_ms: i64, sentiment: Sentiment, negative_probability: f32) -> Observation {
    Observation {
        source: SOURCE.to_owned(),
        topic: topic.to_owned(),
        event_time_ms,
        sentiment,
        negative_probability,
        example: ExampleText {
            id: Some(format!("{topic}-{event_time_ms}")),
            text: format!("message at {event_time_ms}"),
        },
    }
}

fn neutral(topic: &str, event_time_ms: i64) -> Observation {
    observation(topic, event_time_ms, Sentiment::Neutral, 0.1)
}

/// Observes as a live stream would: the wall clock reads the event time.
fn observe_live(store: &mut WindowStore, observation: &Observation) -> ObserveOutcome {
    store.observe(observation, observation.event_time_ms)
}

fn closed_for<'a>(closed: &'a [ClosedBucket], topic: &str) -> Vec<&'a ClosedBucket> {
    closed.iter().filter(|bucket| bucket.topic == topic).collect()
}

#[test]
fn rejects_an_invalid_config() {
    let problems = WindowStore::new(WindowConfig { bucket_width_ms: 0, ..WindowConfig::default() }).unwrap_err();
    assert!(problems[0].contains("bucket_width_ms = 0"), "{problems:?}");
}

#[test]
fn buckets_align_to_the_epoch_grid() {
    let mut store = default_store();
    for event_time_ms in [0, 59_999, 60_000, 119_999, 120_000] {
        assert_eq!(observe_live(&mut store, &neutral("Fed", event_time_ms)), ObserveOutcome::Counted);
    }
    let closed = store.advance(10 * MINUTE_MS);
    let fed: Vec<(i64, i64, u64)> = closed_for(&closed, "Fed")
        .iter()
        .take(3)
        .map(|bucket| (bucket.bucket_start_ms, bucket.bucket_end_ms, bucket.counts.total))
        .collect();
    assert_eq!(fed, [(0, 60_000, 2), (60_000, 120_000, 2), (120_000, 180_000, 1)]);
}

#[test]
fn views_merge_the_buckets_of_a_half_open_range() {
    let mut store = default_store();
    // Minute m gets m + 1 messages, one of them negative.
    for minute in 0..10 {
        for index in 0..=minute {
            let sentiment = if index == 0 { Sentiment::Negative } else { Sentiment::Positive };
            let event = observation("Fed", minute * MINUTE_MS + index * 1_000, sentiment, 0.5 + minute as f32 / 100.0);
            assert_eq!(observe_live(&mut store, &event), ObserveOutcome::Counted);
        }
    }
    // [5 min, 10 min) holds minutes 5..=9: 6 + 7 + 8 + 9 + 10 messages, 5 negative.
    let view = store.view("Fed", 300_000, 10 * MINUTE_MS);
    assert_eq!((view.start_ms, view.end_ms), (300_000, 600_000));
    assert_eq!(view.counts, SentimentCounts { total: 40, negative: 5, neutral: 0, positive: 35 });
    let example_minutes: Vec<i64> = view.examples.iter().map(|example| example.event_time_ms / MINUTE_MS).collect();
    assert_eq!(example_minutes, [9, 8, 7, 6, 5]);
    // An end off the grid rounds down to it.
    assert_eq!(store.view("Fed", 300_000, 10 * MINUTE_MS + 59_999), view);
    // The closed bucket ending at 10 min carries the same view.
    let closed = store.advance(20 * MINUTE_MS);
    let at_ten_minutes = closed.iter().find(|bucket| bucket.topic == "Fed" && bucket.bucket_end_ms == 600_000).unwrap();
    assert_eq!(at_ten_minutes.view(300_000), Some(&view));
    assert_eq!(at_ten_minutes.view(3_600_000).unwrap().counts.total, 55);
    assert_eq!(at_ten_minutes.view(120_000), None);
}

#[test]
fn view_examples_are_the_most_negative_across_buckets() {
    let config = WindowConfig { examples_per_bucket: 2, ..test_config() };
    let mut store = WindowStore::new(config).unwrap();
    for (event_time_ms, probability) in [(0, 0.9), (1_000, 0.5), (60_000, 0.95), (61_000, 0.6), (62_000, 0.9)] {
        let outcome = observe_live(&mut store, &observation("Fed", event_time_ms, Sentiment::Negative, probability));
        assert_eq!(outcome, ObserveOutcome::Counted);
    }
    let view = store.view("Fed", 300_000, 120_000);
    let ranked: Vec<(f32, i64)> =
        view.examples.iter().map(|example| (example.negative_probability, example.event_time_ms)).collect();
    // The 0.9 tie goes to the earlier message.
    assert_eq!(ranked, [(0.95, 60_000), (0.9, 0)]);
}

#[test]
fn lateness_boundary_is_exact() {
    // Bucket [0, 60 s) with 30 s allowed lateness closes when the watermark reaches 90 s.
    let mut store = default_store();
    assert_eq!(observe_live(&mut store, &neutral("Fed", 0)), ObserveOutcome::Counted);
    assert_eq!(observe_live(&mut store, &neutral("Fed", 89_999)), ObserveOutcome::Counted);
    assert_eq!(store.watermark_ms(), None, "observing never moves the watermark; advance does");
    assert!(store.advance(89_999).is_empty());
    assert_eq!(store.watermark_ms(), Some(89_999));
    assert_eq!(store.observe(&neutral("Fed", 10), 89_999), ObserveOutcome::Counted);
    assert_eq!(observe_live(&mut store, &neutral("Fed", 90_000)), ObserveOutcome::Counted);
    let closed = store.advance(90_000);
    let starts: Vec<(&str, i64, u64)> =
        closed.iter().map(|bucket| (bucket.topic.as_str(), bucket.bucket_start_ms, bucket.counts.total)).collect();
    assert_eq!(starts, [("Fed", 0, 2), (ALL_TOPICS, 0, 2)]);
    assert_eq!(store.observe(&neutral("Fed", 59_999), 90_000), ObserveOutcome::Late);
}

#[test]
fn events_older_than_retention_are_late() {
    let mut store = default_store();
    assert_eq!(observe_live(&mut store, &neutral("Fed", 10 * 3_600_000)), ObserveOutcome::Counted);
    store.advance(10 * 3_600_000);
    assert_eq!(store.observe(&neutral("Fed", 3_600_000), 10 * 3_600_000), ObserveOutcome::Late);
    assert_eq!(store.observe(&neutral("Other", 0), 10 * 3_600_000), ObserveOutcome::Late);
    assert_eq!(store.topics().collect::<Vec<_>>(), ["Fed", ALL_TOPICS]);
}

#[test]
fn idle_streams_close_on_wall_clock_time_via_advance() {
    let mut store = default_store();
    assert_eq!(observe_live(&mut store, &neutral("Fed", 1_000)), ObserveOutcome::Counted);
    // The watermark stays at 1 s for the 30 s idle delay, then follows the wall clock: it reaches the 90 s that
    // closes bucket [0, 60 s) at 1 s + 30 s + 89 s = 120 s.
    assert!(store.advance(119_999).is_empty());
    let closed = store.advance(120_000);
    assert_eq!(closed.len(), 2);
    assert_eq!(store.watermark_ms(), Some(90_000));
    // With no events at all, every later minute still closes, empty, so views drain...
    let next = store.advance(180_000);
    assert_eq!(closed_for(&next, "Fed").len(), 1);
    assert_eq!((next[0].bucket_end_ms, next[0].counts.total), (120_000, 0));
    assert_eq!(next[0].view(300_000).unwrap().counts.total, 1);
    // ...until the data is two largest views (2 h) old: the last close ends at 1 min + 2 h, then the topic goes.
    let rest = store.advance(3 * 3_600_000);
    let fed = closed_for(&rest, "Fed");
    assert_eq!(fed.last().unwrap().bucket_end_ms, MINUTE_MS + 2 * 3_600_000);
    assert!(fed.last().unwrap().views.iter().all(|view| view.counts.total == 0));
    assert_eq!(fed.len() as i64, (MINUTE_MS + 2 * 3_600_000 - 120_000) / MINUTE_MS);
    assert_eq!(store.topics().count(), 0);
    // A dormant topic that comes back starts afresh.
    let back = 4 * 3_600_000;
    assert_eq!(observe_live(&mut store, &neutral("Fed", back)), ObserveOutcome::Counted);
    assert_eq!(store.live_bucket_count("Fed"), 1);
}

#[test]
fn a_long_stretch_without_data_is_skipped_not_closed_bucket_by_bucket() {
    // A bogus epoch-0 timestamp arrives first and is counted; real traffic follows 56 years later.
    let mut store = default_store();
    let now_ms = 56 * 365 * 24 * 3_600_000;
    assert_eq!(store.observe(&neutral("Fed", 0), 0), ObserveOutcome::Counted);
    assert_eq!(store.observe(&neutral("Fed", now_ms), now_ms), ObserveOutcome::Counted);
    let closed = store.advance(now_ms + 2 * MINUTE_MS);
    let fed = closed_for(&closed, "Fed");
    // Two hours of closes drain the epoch-0 minute's views, then the next close is the real traffic's minute.
    assert_eq!(fed.len(), 121 + 1);
    assert_eq!(fed[120].bucket_end_ms, MINUTE_MS + 2 * 3_600_000);
    assert_eq!((fed[121].bucket_start_ms, fed[121].counts.total), (now_ms, 1));
}

#[test]
fn a_backlog_behind_the_wall_clock_is_counted_on_its_own_event_time() {
    // After a restart the consumer reads an hour-old backlog; wall-clock time must not make it late.
    let mut store = default_store();
    let wall_start_ms = 10 * 3_600_000;
    let mut closed_fed = 0;
    for second in 0..600 {
        let event = neutral("Fed", wall_start_ms - 3_600_000 + second * 1_000);
        // The backlog is read 100 times faster than it was produced.
        let now_wall_ms = wall_start_ms + second * 10;
        assert_eq!(store.observe(&event, now_wall_ms), ObserveOutcome::Counted);
        closed_fed += closed_for(&store.advance(now_wall_ms), "Fed").len();
    }
    // Nine of its ten minutes have been passed by the event-time watermark plus the 30 s lateness.
    assert_eq!(closed_fed, 9);
}

#[test]
fn far_future_timestamps_are_clamped_and_cannot_close_everything() {
    let mut store = default_store();
    let now_ms = 100 * MINUTE_MS;
    assert_eq!(store.observe(&neutral("Fed", now_ms - 5_000), now_ms), ObserveOutcome::Counted);
    assert_eq!(store.observe(&neutral("Fed", now_ms + 86_400_000), now_ms), ObserveOutcome::Counted);
    store.advance(now_ms);
    assert_eq!(store.watermark_ms(), Some(now_ms + MAX_EVENT_TIME_SKEW_MS));
    // Counted in the bucket holding now + skew...
    assert_eq!(store.view("Fed", MINUTE_MS, now_ms + 2 * MINUTE_MS).counts.total, 1);
    // ...and everything from now on is still open: at most the skew (less the lateness) was closed early.
    assert_eq!(store.observe(&neutral("Fed", now_ms), now_ms), ObserveOutcome::Counted);
    assert_eq!(store.observe(&neutral("Fed", now_ms - 5_000), now_ms), ObserveOutcome::Late);
    // A timestamp within the skew counts where it says.
    assert_eq!(store.observe(&neutral("Fed", now_ms + 90_000), now_ms + 40_000), ObserveOutcome::Counted);
    assert_eq!(store.view("Fed", MINUTE_MS, now_ms + 2 * MINUTE_MS).counts.total, 2);
}

#[test]
fn times_outside_the_supported_range_are_clamped() {
    let mut store = default_store();
    assert_eq!(store.observe(&neutral("Fed", i64::MIN), i64::MIN), ObserveOutcome::Counted);
    assert_eq!(store.view("Fed", MINUTE_MS, MINUTE_MS).counts.total, 1);
    assert_eq!(store.observe(&neutral("Fed", i64::MAX), i64::MAX), ObserveOutcome::Counted);
    assert!(!store.advance(i64::MAX).is_empty());
    assert_eq!(store.watermark_ms(), Some(LATEST_SUPPORTED_TIME_MS));
}

#[test]
fn the_all_topics_aggregate_counts_every_topic_once() {
    let mut store = default_store();
    for event in [
        observation("Fed", 1_000, Sentiment::Negative, 0.9),
        observation("Fed", 2_000, Sentiment::Neutral, 0.2),
        observation("Earnings", 3_000, Sentiment::Negative, 0.8),
        observation("Earnings", 4_000, Sentiment::Positive, 0.1),
        observation("Earnings", 5_000, Sentiment::Positive, 0.1),
        observation(ALL_TOPICS, 6_000, Sentiment::Negative, 0.7),
    ] {
        assert_eq!(observe_live(&mut store, &event), ObserveOutcome::Counted);
    }
    assert_eq!(store.topics().collect::<Vec<_>>(), ["Earnings", "Fed", ALL_TOPICS]);
    let all = store.view(ALL_TOPICS, 300_000, 300_000);
    assert_eq!(all.counts, SentimentCounts { total: 6, negative: 3, neutral: 1, positive: 2 });
    let probabilities: Vec<f32> = all.examples.iter().map(|example| example.negative_probability).collect();
    assert_eq!(probabilities, [0.9, 0.8, 0.7]);
    let closed = store.advance(5 * MINUTE_MS);
    let first_closes: Vec<(&str, u64)> =
        closed.iter().take(3).map(|bucket| (bucket.topic.as_str(), bucket.counts.total)).collect();
    assert_eq!(first_closes, [("Earnings", 3), ("Fed", 2), (ALL_TOPICS, 6)]);
}

#[test]
fn a_new_topic_may_start_in_an_older_bucket_that_is_still_open() {
    let mut store = default_store();
    assert_eq!(observe_live(&mut store, &neutral("Fed", 70_000)), ObserveOutcome::Counted);
    assert_eq!(store.observe(&neutral("Earnings", 61_000), 70_000), ObserveOutcome::Counted);
    assert_eq!(store.observe(&neutral("Earnings", 50_000), 70_000), ObserveOutcome::Counted);
    let closed = store.advance(10 * MINUTE_MS);
    let earnings: Vec<(i64, u64)> = closed_for(&closed, "Earnings")
        .iter()
        .take(2)
        .map(|bucket| (bucket.bucket_start_ms, bucket.counts.total))
        .collect();
    assert_eq!(earnings, [(0, 1), (60_000, 1)]);
}

#[test]
fn closed_buckets_beyond_the_largest_view_are_dropped() {
    let mut store = default_store();
    for minute in 0..300 {
        assert_eq!(observe_live(&mut store, &neutral("Fed", minute * MINUTE_MS)), ObserveOutcome::Counted);
        let _ = store.advance(minute * MINUTE_MS);
    }
    // The 1 h view ending at the next close needs 60 buckets; the open ones bring it to 61.
    assert_eq!(store.live_bucket_count("Fed"), 61);
    assert_eq!(store.view("Fed", 3_600_000, 300 * MINUTE_MS).counts.total, 60);
}

// Property tests. A small grid (10 s buckets, 30 s and 60 s views, 5 s lateness, 15 s idle delay) so that few
// operations cross many buckets, closes and drops.

fn small_config() -> WindowConfig {
    WindowConfig {
        bucket_width_ms: 10_000,
        view_widths_ms: vec![30_000, 60_000],
        allowed_lateness_ms: 5_000,
        idle_close_delay_ms: 15_000,
        examples_per_bucket: 2,
    }
}

const TOPICS: [&str; 3] = ["Fed", "Earnings", "Crypto"];

#[derive(Debug, Clone)]
enum Operation {
    /// Observe at `now + event_offset_ms`, after moving the wall clock by `wall_step_ms`.
    Observe {
        topic_index: usize,
        event_offset_ms: i64,
        sentiment: Sentiment,
        wall_step_ms: i64,
    },
    Advance {
        wall_step_ms: i64,
    },
}

fn arbitrary_sentiment() -> impl Strategy<Value = Sentiment> {
    prop_oneof![Just(Sentiment::Negative), Just(Sentiment::Neutral), Just(Sentiment::Positive)]
}

fn arbitrary_operation() -> impl Strategy<Value = Operation> {
    // Offsets reach well before retention and beyond the future skew; the wall clock mostly moves forward but may
    // step back a little, as a real one can.
    prop_oneof![
        3 => (0..TOPICS.len(), -150_000i64..90_000, arbitrary_sentiment(), -2_000i64..8_000).prop_map(
            |(topic_index, event_offset_ms, sentiment, wall_step_ms)| Operation::Observe {
                topic_index,
                event_offset_ms,
                sentiment,
                wall_step_ms
            }
        ),
        1 => (-2_000i64..60_000).prop_map(|wall_step_ms| Operation::Advance { wall_step_ms }),
    ]
}

proptest! {
    #[test]
    fn every_observation_is_counted_at_most_once_and_late_ones_never(
        operations in prop::collection::vec(arbitrary_operation(), 1..120),
    ) {
        let config = small_config();
        let bucket_width_ms = config.bucket_width_ms;
        let mut store = WindowStore::new(config).unwrap();
        let mut now_ms: i64 = 1_000_000;
        let mut counted = 0u64;
        let mut late = 0u64;
        let mut emitted: std::collections::BTreeSet<(String, i64)> = Default::default();
        let mut closed_totals: BTreeMap<String, u64> = BTreeMap::new();
        let mut record_closes = |closed: Vec<ClosedBucket>,
                                 emitted: &mut std::collections::BTreeSet<(String, i64)>|
         -> Result<(), TestCaseError> {
            for bucket in closed {
                prop_assert!(emitted.insert((bucket.topic.clone(), bucket.bucket_start_ms)), "closed twice: {bucket:?}");
                *closed_totals.entry(bucket.topic).or_default() += bucket.counts.total;
            }
            Ok(())
        };
        for operation in &operations {
            match *operation {
                Operation::Observe { topic_index, event_offset_ms, sentiment, wall_step_ms } => {
                    now_ms += wall_step_ms;
                    let event = observation(TOPICS[topic_index], now_ms + event_offset_ms, sentiment, 0.5);
                    match store.observe(&event, now_ms) {
                        ObserveOutcome::Counted => {
                            counted += 1;
                            let counted_at_ms = event.event_time_ms.min(now_ms + MAX_EVENT_TIME_SKEW_MS);
                            let bucket_start_ms = bucket_start_containing(counted_at_ms, bucket_width_ms);
                            for topic in [event.topic.as_str(), ALL_TOPICS] {
                                prop_assert!(
                                    !emitted.contains(&(topic.to_owned(), bucket_start_ms)),
                                    "counted into closed bucket {bucket_start_ms} of {topic}"
                                );
                            }
                        }
                        ObserveOutcome::Late => late += 1,
                    }
                }
                Operation::Advance { wall_step_ms } => {
                    now_ms += wall_step_ms;
                    record_closes(store.advance(now_ms), &mut emitted)?;
                }
            }
        }
        // Far enough ahead that every topic closes everything and goes dormant.
        record_closes(store.advance(now_ms + 86_400_000), &mut emitted)?;
        prop_assert_eq!(store.topics().count(), 0);
        prop_assert_eq!(counted + late, operations.iter().filter(|op| matches!(op, Operation::Observe { .. })).count() as u64);
        let per_topic_total: u64 =
            closed_totals.iter().filter(|(topic, _)| topic.as_str() != ALL_TOPICS).map(|(_, total)| *total).sum();
        prop_assert_eq!(per_topic_total, counted);
        prop_assert_eq!(closed_totals.get(ALL_TOPICS).copied().unwrap_or(0), counted);
    }

    #[test]
    fn advance_is_idempotent_and_memory_stays_bounded(
        operations in prop::collection::vec(arbitrary_operation(), 1..120),
    ) {
        let config = small_config();
        let bucket_bound =
            ((config.largest_view_width_ms() + config.allowed_lateness_ms) / config.bucket_width_ms + 2) as usize;
        let mut store = WindowStore::new(config).unwrap();
        let mut now_ms: i64 = 1_000_000;
        for operation in &operations {
            match *operation {
                Operation::Observe { topic_index, event_offset_ms, sentiment, wall_step_ms } => {
                    now_ms += wall_step_ms;
                    let _ = store.observe(&observation(TOPICS[topic_index], now_ms + event_offset_ms, sentiment, 0.5), now_ms);
                }
                Operation::Advance { wall_step_ms } => {
                    now_ms += wall_step_ms;
                    let _ = store.advance(now_ms);
                    let after_first = store.clone();
                    prop_assert!(store.advance(now_ms).is_empty());
                    prop_assert_eq!(&store, &after_first);
                    for topic in TOPICS.iter().copied().chain([ALL_TOPICS]) {
                        prop_assert!(
                            store.live_bucket_count(topic) <= bucket_bound,
                            "{topic} holds {} buckets, bound {bucket_bound}", store.live_bucket_count(topic)
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn views_equal_the_aggregate_of_the_union_of_their_observations(
        events in prop::collection::vec(
            (0..2usize, 0i64..600_000, arbitrary_sentiment(), prop_oneof![Just(0.5f32), 0.0f32..=1.0]),
            0..80,
        ),
        view_end_bucket in 0i64..70,
        view_width_buckets in 1i64..12,
    ) {
        // Lateness covers the whole range so that every event counts whatever the order.
        let config = WindowConfig { allowed_lateness_ms: 1_000_000, ..small_config() };
        let bucket_width_ms = config.bucket_width_ms;
        let example_limit = config.examples_per_bucket;
        let mut store = WindowStore::new(config.clone()).unwrap();
        let observations: Vec<Observation> = events
            .iter()
            .map(|&(topic_index, time_ms, sentiment, probability)| {
                observation(TOPICS[topic_index], time_ms, sentiment, probability)
            })
            .collect();
        for event in &observations {
            prop_assert_eq!(store.observe(event, 600_000), ObserveOutcome::Counted);
        }
        let expected_view = |topic: &str, width_ms: i64, end_ms: i64| {
            let mut expected = Aggregate::default();
            for event in observations.iter().filter(|event| {
                (topic == ALL_TOPICS || event.topic == topic)
                    && (end_ms - width_ms..end_ms).contains(&event.event_time_ms)
            }) {
                expected.record(event, example_limit);
            }
            expected
        };
        let end_ms = view_end_bucket * bucket_width_ms;
        let width_ms = view_width_buckets * bucket_width_ms;
        for topic in ["Fed", ALL_TOPICS] {
            let view = store.view(topic, width_ms, end_ms);
            let expected = expected_view(topic, width_ms, end_ms);
            prop_assert_eq!(view.counts, expected.counts);
            prop_assert_eq!(view.examples, expected.examples);
        }
        // The views handed out with closed buckets obey the same law.
        for bucket in store.advance(10_000_000) {
            for view in &bucket.views {
                let expected = expected_view(&bucket.topic, view.width_ms, view.end_ms);
                prop_assert_eq!(view.counts, expected.counts);
                prop_assert_eq!(&view.examples, &expected.examples);
            }
        }
    }
}

fn from_source(source: &str, observation: Observation) -> Observation {
    Observation { source: source.to_owned(), ..observation }
}

#[test]
fn a_partition_replaying_far_behind_another_is_not_late() {
    // After a restart, partition 1's backlog is delivered ten minutes ahead of partition 0's.
    let mut store = default_store();
    let now_ms = 60 * MINUTE_MS;
    for minute in 0..10 {
        let ahead = from_source("news/1", neutral("Fed", (20 + minute) * MINUTE_MS));
        assert_eq!(store.observe(&ahead, now_ms), ObserveOutcome::Counted);
    }
    let behind = from_source("news/0", neutral("Fed", 10 * MINUTE_MS));
    assert_eq!(store.observe(&behind, now_ms), ObserveOutcome::Counted, "the slowest partition sets the watermark");
    let closed = store.advance(now_ms);
    assert!(closed.iter().all(|bucket| bucket.bucket_end_ms <= 10 * MINUTE_MS), "nothing past partition 0 closed");

    // Within one partition, an event far behind that partition's own progress is still late.
    let own_past = from_source("news/1", neutral("Fed", 0));
    assert_eq!(store.observe(&own_past, now_ms), ObserveOutcome::Late);
}

#[test]
fn a_source_that_falls_silent_holds_the_watermark_back_only_for_the_idle_delay() {
    let config = test_config();
    let mut store = default_store();
    // news/1 sends one event and stops; news/0 is a live stream for ten minutes.
    assert_eq!(store.observe(&from_source("news/1", neutral("Fed", 0)), 0), ObserveOutcome::Counted);
    for second in 0..600 {
        let live = from_source("news/0", neutral("Markets", second * 1_000));
        assert_eq!(store.observe(&live, second * 1_000), ObserveOutcome::Counted);
    }
    let now_ms = 10 * MINUTE_MS;
    let closed = store.advance(now_ms);
    // news/1's progress is carried forward from its last event at wall-clock speed after the idle
    // delay: the watermark trails the live stream by that delay, not by ten minutes.
    let expected_watermark_ms = now_ms - config.idle_close_delay_ms;
    let newest_closed_end = closed.iter().map(|bucket| bucket.bucket_end_ms).max().unwrap();
    assert_eq!(
        newest_closed_end,
        bucket_start_containing(expected_watermark_ms - config.allowed_lateness_ms, config.bucket_width_ms)
    );
}
