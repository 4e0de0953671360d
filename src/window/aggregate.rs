//! Mergeable sentiment aggregates: counts plus a bounded, deterministically ordered list of the most negative
//! examples. Merging aggregates equals aggregating the union of their observations, which is what lets views be
//! built from buckets.

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};

use super::{Observation, Sentiment};

/// Longest example text kept, in characters (an ellipsis replaces the rest). 280 is a long social-media post:
/// enough for an on-call reader to recognise a message, while a bucket's memory and an alert's size stay bounded
/// whatever the input's size limit.
pub const MAX_EXAMPLE_TEXT_CHARS: usize = 280;

/// Message counts by sentiment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SentimentCounts {
    pub total: u64,
    pub negative: u64,
    pub neutral: u64,
    pub positive: u64,
}

impl SentimentCounts {
    pub fn record(&mut self, sentiment: Sentiment) {
        self.total += 1;
        match sentiment {
            Sentiment::Negative => self.negative += 1,
            Sentiment::Neutral => self.neutral += 1,
            Sentiment::Positive => self.positive += 1,
        }
    }

    pub fn merge(&mut self, other: &SentimentCounts) {
        self.total += other.total;
        self.negative += other.negative;
        self.neutral += other.neutral;
        self.positive += other.positive;
        debug_assert_eq!(self.total, self.negative + self.neutral + self.positive, "counts out of balance");
    }

    /// The share of negative messages, 0 when there are none at all (an empty window is not a negative one).
    pub fn negative_rate(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        self.negative as f64 / self.total as f64
    }
}

/// A negative message kept as an example, with what ranked it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NegativeExample {
    pub id: Option<String>,
    /// At most [`MAX_EXAMPLE_TEXT_CHARS`] characters.
    pub text: String,
    pub negative_probability: f32,
    pub event_time_ms: i64,
}

/// Orders examples most negative first. Ties go to the earlier message, then to id and text, so the kept set is a
/// function of the observations alone and not of their arrival order or of how buckets were merged.
fn most_negative_first(left: &NegativeExample, right: &NegativeExample) -> Ordering {
    right
        .negative_probability
        .total_cmp(&left.negative_probability)
        .then_with(|| left.event_time_ms.cmp(&right.event_time_ms))
        .then_with(|| left.id.cmp(&right.id))
        .then_with(|| left.text.cmp(&right.text))
}

/// A NaN from a broken model must not outrank every real example, and probabilities outside [0, 1] mean nothing.
fn ranking_probability(negative_probability: f32) -> f32 {
    if negative_probability.is_nan() {
        return 0.0;
    }
    negative_probability.clamp(0.0, 1.0)
}

fn truncate_example_text(text: &str) -> String {
    // The character at the last kept position: if another follows, the text is too long.
    let Some((last_kept_byte_index, _)) = text.char_indices().nth(MAX_EXAMPLE_TEXT_CHARS - 1) else {
        return text.to_owned();
    };
    if text[last_kept_byte_index..].chars().nth(1).is_none() {
        return text.to_owned();
    }
    let mut truncated = String::with_capacity(last_kept_byte_index + '…'.len_utf8());
    truncated.push_str(&text[..last_kept_byte_index]);
    truncated.push('…');
    truncated
}

/// Counts and the most negative examples of a set of observations (a bucket, or a merge of buckets).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(super) struct Aggregate {
    pub(super) counts: SentimentCounts,
    /// Most negative first, at most the store's example limit long.
    pub(super) examples: Vec<NegativeExample>,
}

impl Aggregate {
    /// Records one observation. Only messages classified negative become examples: the alert shows the messages
    /// that were counted as negative, not neutral ones that merely had some negative probability.
    pub(super) fn record(&mut self, observation: &Observation, example_limit: usize) {
        self.counts.record(observation.sentiment);
        if observation.sentiment != Sentiment::Negative {
            return;
        }
        let probability = ranking_probability(observation.negative_probability);
        // Cheap rejection before the text is copied: most negative messages do not make a full top-N.
        if self.examples.len() == example_limit
            && self.examples.last().is_none_or(|least_negative| probability < least_negative.negative_probability)
        {
            return;
        }
        self.offer_example(
            NegativeExample {
                id: observation.example.id.clone(),
                text: truncate_example_text(&observation.example.text),
                negative_probability: probability,
                event_time_ms: observation.event_time_ms,
            },
            example_limit,
        );
    }

    pub(super) fn merge(&mut self, other: &Aggregate, example_limit: usize) {
        self.counts.merge(&other.counts);
        for example in &other.examples {
            self.offer_example(example.clone(), example_limit);
        }
    }

    fn offer_example(&mut self, candidate: NegativeExample, example_limit: usize) {
        let position = self.examples.partition_point(|kept| most_negative_first(kept, &candidate) != Ordering::Greater);
        if position >= example_limit {
            return;
        }
        self.examples.insert(position, candidate);
        self.examples.truncate(example_limit);
        debug_assert!(self.examples.is_sorted_by(|left, right| most_negative_first(left, right) != Ordering::Greater));
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::window::ExampleText;

    fn observation(sentiment: Sentiment, negative_probability: f32, event_time_ms: i64, text: &str) -> Observation {
        Observation {
            source: "news/0".to_owned(),
            topic: "Fed".to_owned(),
            event_time_ms,
            sentiment,
            negative_probability,
            example: ExampleText { id: None, text: text.to_owned() },
        }
    }

    #[test]
    fn negative_rate_is_zero_for_no_messages_and_a_share_otherwise() {
        let mut counts = SentimentCounts::default();
        assert_eq!(counts.negative_rate(), 0.0);
        counts.record(Sentiment::Negative);
        counts.record(Sentiment::Neutral);
        counts.record(Sentiment::Positive);
        counts.record(Sentiment::Positive);
        assert_eq!(counts, SentimentCounts { total: 4, negative: 1, neutral: 1, positive: 2 });
        assert_eq!(counts.negative_rate(), 0.25);
    }

    #[test]
    fn keeps_the_most_negative_examples_in_order_with_deterministic_ties() {
        let mut aggregate = Aggregate::default();
        let inputs = [
            observation(Sentiment::Negative, 0.70, 5, "d"),
            observation(Sentiment::Negative, 0.95, 9, "b-late"),
            observation(Sentiment::Negative, 0.95, 3, "a-early"),
            observation(Sentiment::Neutral, 0.99, 1, "neutral, never an example"),
            observation(Sentiment::Negative, 0.60, 2, "dropped"),
            observation(Sentiment::Negative, 0.80, 4, "c"),
            observation(Sentiment::Negative, f32::NAN, 6, "nan ranks as zero"),
        ];
        for input in &inputs {
            aggregate.record(input, 3);
        }
        let texts: Vec<&str> = aggregate.examples.iter().map(|example| example.text.as_str()).collect();
        assert_eq!(texts, ["a-early", "b-late", "c"]);
        assert_eq!(aggregate.counts.total, 7);
        assert_eq!(aggregate.counts.negative, 6);
    }

    #[test]
    fn example_limit_zero_keeps_counts_only() {
        let mut aggregate = Aggregate::default();
        aggregate.record(&observation(Sentiment::Negative, 0.9, 1, "x"), 0);
        assert!(aggregate.examples.is_empty());
        assert_eq!(aggregate.counts.negative, 1);
    }

    #[test]
    fn truncates_long_texts_on_character_boundaries() {
        let exact: String = "é".repeat(MAX_EXAMPLE_TEXT_CHARS);
        assert_eq!(truncate_example_text(&exact), exact);
        let long: String = "美".repeat(MAX_EXAMPLE_TEXT_CHARS + 1);
        let truncated = truncate_example_text(&long);
        assert_eq!(truncated.chars().count(), MAX_EXAMPLE_TEXT_CHARS);
        assert!(truncated.ends_with("美…"));
        assert_eq!(truncate_example_text("short"), "short");
    }

    fn arbitrary_observation() -> impl Strategy<Value = Observation> {
        (
            prop_oneof![Just(Sentiment::Negative), Just(Sentiment::Neutral), Just(Sentiment::Positive)],
            // Few distinct probabilities and times so ties are common.
            prop_oneof![Just(0.5f32), Just(0.9f32), 0.0f32..=1.0],
            0i64..5,
            prop_oneof![Just("same".to_owned()), "[a-c]{0,3}"],
        )
            .prop_map(|(sentiment, probability, time, text)| observation(sentiment, probability, time, &text))
    }

    proptest! {
        #[test]
        fn merging_any_partition_equals_aggregating_the_union(
            assigned in prop::collection::vec((arbitrary_observation(), 0usize..4), 0..40),
            example_limit in 0usize..6,
        ) {
            let mut union = Aggregate::default();
            let mut parts = vec![Aggregate::default(); 4];
            for (observation, part) in &assigned {
                union.record(observation, example_limit);
                parts[*part].record(observation, example_limit);
            }
            let mut merged = Aggregate::default();
            // Merge in reverse to show the order of merging does not matter either.
            for part in parts.iter().rev() {
                merged.merge(part, example_limit);
            }
            prop_assert_eq!(merged, union);
        }
    }
}
