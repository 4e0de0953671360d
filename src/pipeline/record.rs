//! Record encoding: a classified message becomes the enriched JSON record for the output topic and the
//! observation the window store counts.
//!
//! The output record's key is the input record's key (`InputMessage::key`), so a keyed stream stays partitioned
//! the same way downstream; the producing caller sets it, since a Kafka key is not part of the value built here.

use chrono::{DateTime, SecondsFormat};
use serde_json::{Map, Value};

use super::decode::DecodedMessage;
use crate::message::InputMessage;
use crate::model::SentimentProbabilities;
use crate::window::{ExampleText, Observation, Sentiment};

/// Prefix under which an input field is kept when sentmon writes a field of the same name.
pub const CLASHING_INPUT_FIELD_PREFIX: &str = "input_";

/// What the model said about one message.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Classification<'a> {
    pub topic: &'a str,
    pub topic_probability: f32,
    /// One of `model::bundle::SENTIMENT_LABELS`: "negative", "neutral" or "positive".
    pub sentiment: &'static str,
    pub sentiment_probabilities: SentimentProbabilities,
    pub model_version: &'a str,
    /// The entities the text names (`[entities]`), or `None` when entity tracking is off.
    pub entities: Option<&'a [String]>,
}

/// The enriched record's value: every field of the input, then sentmon's fields.
///
/// sentmon's fields are `id` (when the input had one), `topic`, `topic_prob`, `sentiment`, `sentiment_probs`
/// (`negative`, `neutral`, `positive`), `entities` (when `[entities]` tracks any: the watched names and cashtags the
/// text names, sorted, possibly none), `model_version`, `event_time` and `processed_at` (RFC 3339, UTC, with
/// milliseconds), `event_time_origin`, `source_topic`, `source_partition` and `source_offset`.
///
/// On a name clash sentmon's field wins, so consumers can rely on its meaning, and the input's value is kept under
/// `input_<name>` (with more `input_` prefixes while that name is taken too), so nothing the producer sent is lost.
/// An input value equal to sentmon's (a string `id`, always) is not duplicated.
pub fn enriched_record(
    message: &InputMessage,
    decoded: &DecodedMessage,
    classification: &Classification,
    processed_at_ms: i64,
) -> Vec<u8> {
    let mut record = decoded.input_fields.clone();
    insert_sentmon_field(&mut record, "topic", Value::String(classification.topic.to_owned()));
    insert_sentmon_field(&mut record, "topic_prob", probability_value(classification.topic_probability));
    insert_sentmon_field(&mut record, "sentiment", Value::String(classification.sentiment.to_owned()));
    insert_sentmon_field(
        &mut record,
        "sentiment_probs",
        sentiment_probabilities_value(&classification.sentiment_probabilities),
    );
    if let Some(entities) = classification.entities {
        insert_sentmon_field(&mut record, "entities", Value::from(entities.to_vec()));
    }
    insert_common_fields(&mut record, message, decoded, classification.model_version, processed_at_ms);
    Value::Object(record).to_string().into_bytes()
}

/// The record of a message in a language the model does not serve (the language gate refused it): the same fields
/// as [`enriched_record`], with `topic`, `topic_prob`, `sentiment` and `sentiment_probs` null, plus
/// `unsupported_language` (`zh`, `und-Cyrl`, or the input's declared `lang`). `model_version` names the model
/// whose languages did not include it.
pub fn unsupported_language_record(
    message: &InputMessage,
    decoded: &DecodedMessage,
    language: &str,
    model_version: &str,
    processed_at_ms: i64,
) -> Vec<u8> {
    let mut record = decoded.input_fields.clone();
    for unanswered in ["topic", "topic_prob", "sentiment", "sentiment_probs"] {
        insert_sentmon_field(&mut record, unanswered, Value::Null);
    }
    insert_sentmon_field(&mut record, "unsupported_language", Value::String(language.to_owned()));
    insert_common_fields(&mut record, message, decoded, model_version, processed_at_ms);
    Value::Object(record).to_string().into_bytes()
}

/// The fields every output record has, whatever the model said.
fn insert_common_fields(
    record: &mut Map<String, Value>,
    message: &InputMessage,
    decoded: &DecodedMessage,
    model_version: &str,
    processed_at_ms: i64,
) {
    if let Some(id) = &decoded.id {
        insert_sentmon_field(record, "id", Value::String(id.clone()));
    }
    insert_sentmon_field(record, "model_version", Value::String(model_version.to_owned()));
    insert_sentmon_field(record, "event_time", rfc3339_milliseconds(decoded.event_time_ms));
    insert_sentmon_field(record, "event_time_origin", Value::String(decoded.event_time_origin.as_str().to_owned()));
    insert_sentmon_field(record, "processed_at", rfc3339_milliseconds(processed_at_ms));
    insert_sentmon_field(record, "source_topic", Value::String(message.topic.clone()));
    insert_sentmon_field(record, "source_partition", Value::from(message.partition));
    insert_sentmon_field(record, "source_offset", Value::from(message.offset));
}

/// What the window store counts for a classified message.
pub fn observation(message: &InputMessage, decoded: &DecodedMessage, classification: &Classification) -> Observation {
    Observation {
        source: format!("{}/{}", message.topic, message.partition),
        topic: classification.topic.to_owned(),
        event_time_ms: decoded.event_time_ms,
        sentiment: sentiment_from_label(classification.sentiment, &classification.sentiment_probabilities),
        negative_probability: classification.sentiment_probabilities.negative,
        example: ExampleText { id: decoded.id.clone(), text: decoded.text.clone() },
    }
}

pub(crate) fn sentiment_from_label(label: &str, probabilities: &SentimentProbabilities) -> Sentiment {
    match label {
        "negative" => Sentiment::Negative,
        "neutral" => Sentiment::Neutral,
        "positive" => Sentiment::Positive,
        unknown => {
            debug_assert!(false, "unknown sentiment label {unknown:?}");
            // The label is the argmax of the probabilities; recomputing it keeps release builds counting sensibly.
            sentiment_from_label(probabilities.label(), probabilities)
        }
    }
}

fn insert_sentmon_field(record: &mut Map<String, Value>, name: &str, value: Value) {
    let Some(input_value) = record.remove(name) else {
        record.insert(name.to_owned(), value);
        return;
    };
    if input_value != value {
        let mut kept_name = format!("{CLASHING_INPUT_FIELD_PREFIX}{name}");
        while record.contains_key(&kept_name) {
            kept_name = format!("{CLASHING_INPUT_FIELD_PREFIX}{kept_name}");
        }
        record.insert(kept_name, input_value);
    }
    record.insert(name.to_owned(), value);
}

fn sentiment_probabilities_value(probabilities: &SentimentProbabilities) -> Value {
    let mut object = Map::new();
    object.insert("negative".to_owned(), probability_value(probabilities.negative));
    object.insert("neutral".to_owned(), probability_value(probabilities.neutral));
    object.insert("positive".to_owned(), probability_value(probabilities.positive));
    Value::Object(object)
}

/// A probability as the shortest decimal that reads back as the same `f32`: `0.1`, not the `0.10000000149011612`
/// that widening to `f64` directly would write. Not finite (never from a softmax) becomes `null`, as JSON has no NaN.
fn probability_value(probability: f32) -> Value {
    if !probability.is_finite() {
        return Value::Null;
    }
    let shortest_decimal = probability.to_string();
    shortest_decimal.parse::<f64>().map_or(Value::Null, Value::from)
}

/// `2024-01-02T03:04:05.678Z`. `null` only for a time beyond chrono's range of ±262 000 years, which no clock gives
/// and decoding never produces.
fn rfc3339_milliseconds(time_ms: i64) -> Value {
    rfc3339_milliseconds_text(time_ms).map_or(Value::Null, Value::String)
}

/// The text of [`rfc3339_milliseconds`], for other writers of the same time format (the stream archive).
pub fn rfc3339_milliseconds_text(time_ms: i64) -> Option<String> {
    DateTime::from_timestamp_millis(time_ms).map(|date_time| date_time.to_rfc3339_opts(SecondsFormat::Millis, true))
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use serde_json::json;

    use super::*;
    use crate::config::InputFormat;
    use crate::pipeline::decode::{EventTimeOrigin, decode};

    const NOW_MS: i64 = 1_704_164_700_000;

    fn input_message(payload: &str) -> InputMessage {
        InputMessage {
            topic: "news-in".to_owned(),
            partition: 2,
            offset: 981,
            key: None,
            payload: Some(payload.as_bytes().to_vec()),
            kafka_timestamp_ms: Some(1_704_164_600_000),
            received_at: Instant::now(),
        }
    }

    fn classification() -> Classification<'static> {
        Classification {
            topic: "Fed | Central Banks",
            topic_probability: 0.87,
            sentiment: "negative",
            sentiment_probabilities: SentimentProbabilities { negative: 0.7, neutral: 0.2, positive: 0.1 },
            model_version: "v7",
            entities: None,
        }
    }

    fn enrich(payload: &str) -> Map<String, Value> {
        let message = input_message(payload);
        let decoded = decode(&message, InputFormat::Json, 1 << 20, NOW_MS).unwrap();
        let bytes = enriched_record(&message, &decoded, &classification(), 1_704_164_645_678);
        match serde_json::from_slice(&bytes).unwrap() {
            Value::Object(record) => record,
            other => panic!("record is not an object: {other}"),
        }
    }

    #[test]
    fn record_has_input_and_sentmon_fields() {
        let record = enrich(r#"{"id":"m1","text":"Fed hikes","source":"wire","ts":"2024-01-02T03:04:05Z"}"#);
        let names: Vec<&str> = record.keys().map(String::as_str).collect();
        let mut expected = vec![
            "event_time",
            "event_time_origin",
            "id",
            "model_version",
            "processed_at",
            "sentiment",
            "sentiment_probs",
            "source",
            "source_offset",
            "source_partition",
            "source_topic",
            "text",
            "topic",
            "topic_prob",
            "ts",
        ];
        expected.sort_unstable();
        let mut sorted_names = names.clone();
        sorted_names.sort_unstable();
        assert_eq!(sorted_names, expected);
        assert_eq!(record["id"], json!("m1"));
        assert_eq!(record["text"], json!("Fed hikes"));
        assert_eq!(record["source"], json!("wire"));
        assert_eq!(record["ts"], json!("2024-01-02T03:04:05Z"));
        assert_eq!(record["topic"], json!("Fed | Central Banks"));
        assert_eq!(record["topic_prob"], json!(0.87));
        assert_eq!(record["sentiment"], json!("negative"));
        assert_eq!(record["sentiment_probs"], json!({"negative": 0.7, "neutral": 0.2, "positive": 0.1}));
        assert_eq!(record["model_version"], json!("v7"));
        assert_eq!(record["event_time"], json!("2024-01-02T03:04:05.000Z"));
        assert_eq!(record["event_time_origin"], json!("payload"));
        assert_eq!(record["processed_at"], json!("2024-01-02T03:04:05.678Z"));
        assert_eq!(record["source_topic"], json!("news-in"));
        assert_eq!(record["source_partition"], json!(2));
        assert_eq!(record["source_offset"], json!(981));
    }

    #[test]
    fn an_unsupported_language_record_has_null_answers_and_says_which_language() {
        let message = input_message(r#"{"id":"c1","text":"央行降息，股市大涨","topic":"mine"}"#);
        let decoded = decode(&message, InputFormat::Json, 1 << 20, NOW_MS).unwrap();
        let bytes = unsupported_language_record(&message, &decoded, "zh", "v7", NOW_MS);
        let record: Map<String, Value> = serde_json::from_slice(&bytes).unwrap();
        for unanswered in ["topic", "topic_prob", "sentiment", "sentiment_probs"] {
            assert_eq!(record[unanswered], Value::Null, "{unanswered}");
        }
        assert_eq!(record["unsupported_language"], json!("zh"));
        assert_eq!(record["input_topic"], json!("mine"), "the input's own field is kept");
        assert_eq!(record["model_version"], json!("v7"));
        assert_eq!(record["id"], json!("c1"));
        assert_eq!(record["text"], json!("央行降息，股市大涨"));
        assert_eq!(record["source_offset"], json!(981));
        assert_eq!(record["processed_at"], json!("2024-01-02T03:05:00.000Z"));
        // Everything a classified record has, plus the one field that says why its answers are null.
        let classified: Map<String, Value> =
            serde_json::from_slice(&enriched_record(&message, &decoded, &classification(), NOW_MS)).unwrap();
        let mut expected_names: Vec<String> = classified.keys().cloned().collect();
        expected_names.push("unsupported_language".to_owned());
        expected_names.sort_unstable();
        let mut names: Vec<String> = record.keys().cloned().collect();
        names.sort_unstable();
        assert_eq!(names, expected_names);
    }

    #[test]
    fn entities_are_listed_only_when_entity_tracking_is_on() {
        assert!(!enrich(r#"{"text":"x"}"#).contains_key("entities"), "no [entities]: no field");
        let message = input_message(r#"{"text":"UBS and $TSLA slide"}"#);
        let decoded = decode(&message, InputFormat::Json, 1 << 20, NOW_MS).unwrap();
        let for_entities = |entities: &[String]| {
            let classification = Classification { entities: Some(entities), ..classification() };
            serde_json::from_slice::<Value>(&enriched_record(&message, &decoded, &classification, NOW_MS)).unwrap()
        };
        assert_eq!(for_entities(&["UBS".to_owned(), "$TSLA".to_owned()])["entities"], json!(["UBS", "$TSLA"]));
        assert_eq!(for_entities(&[])["entities"], json!([]), "tracking on, nothing named: an empty list");
    }

    #[test]
    fn record_without_id_has_no_id_field() {
        let record = enrich(r#"{"text":"x"}"#);
        assert!(!record.contains_key("id"));
        assert_eq!(record["event_time_origin"], json!("kafka"));
        assert_eq!(record["event_time"], json!("2024-01-02T03:03:20.000Z"));
    }

    #[test]
    fn clashing_input_fields_are_kept_under_a_prefix() {
        let record = enrich(
            r#"{"id":42,"text":"x","topic":"mine","sentiment":"bullish","input_sentiment":"taken","model_version":"v7"}"#,
        );
        assert_eq!(record["id"], json!("42"));
        assert_eq!(record["input_id"], json!(42));
        assert_eq!(record["topic"], json!("Fed | Central Banks"));
        assert_eq!(record["input_topic"], json!("mine"));
        assert_eq!(record["sentiment"], json!("negative"));
        assert_eq!(record["input_sentiment"], json!("taken"));
        assert_eq!(record["input_input_sentiment"], json!("bullish"));
        // Equal values are not duplicated.
        assert_eq!(record["model_version"], json!("v7"));
        assert!(!record.contains_key("input_model_version"));
    }

    #[test]
    fn string_id_is_not_duplicated() {
        let record = enrich(r#"{"id":"same","text":"x"}"#);
        assert_eq!(record["id"], json!("same"));
        assert!(!record.contains_key("input_id"));
    }

    #[test]
    fn probabilities_read_back_exactly() {
        let awkward = Classification {
            topic_probability: 1.0 / 3.0,
            sentiment_probabilities: SentimentProbabilities {
                negative: 0.123_456_79,
                neutral: f32::MIN_POSITIVE,
                positive: 1.0 - 0.123_456_79 - f32::MIN_POSITIVE,
            },
            ..classification()
        };
        let message = input_message(r#"{"text":"x"}"#);
        let decoded = decode(&message, InputFormat::Json, 1 << 20, NOW_MS).unwrap();
        let bytes = enriched_record(&message, &decoded, &awkward, NOW_MS);
        let record: Value = serde_json::from_slice(&bytes).unwrap();
        let read = |value: &Value| value.as_f64().unwrap() as f32;
        assert_eq!(read(&record["topic_prob"]), awkward.topic_probability);
        let probabilities = &record["sentiment_probs"];
        assert_eq!(read(&probabilities["negative"]), awkward.sentiment_probabilities.negative);
        assert_eq!(read(&probabilities["neutral"]), awkward.sentiment_probabilities.neutral);
        assert_eq!(read(&probabilities["positive"]), awkward.sentiment_probabilities.positive);
        assert!(String::from_utf8(bytes).unwrap().contains("\"topic_prob\":0.33333334"));
        assert_eq!(probability_value(f32::NAN), Value::Null);
    }

    #[test]
    fn text_input_record_round_trips() {
        let message = input_message("plain words");
        let decoded = decode(&message, InputFormat::Text, 1 << 20, NOW_MS).unwrap();
        let bytes = enriched_record(&message, &decoded, &classification(), NOW_MS);
        let record: Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(record["text"], json!("plain words"));
        assert_eq!(record["processed_at"], json!("2024-01-02T03:05:00.000Z"));
    }

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339_milliseconds(0), json!("1970-01-01T00:00:00.000Z"));
        assert_eq!(rfc3339_milliseconds(1_704_164_645_001), json!("2024-01-02T03:04:05.001Z"));
        assert_eq!(rfc3339_milliseconds(crate::window::LATEST_SUPPORTED_TIME_MS), json!("+10000-01-01T00:00:00.000Z"));
        assert_eq!(rfc3339_milliseconds(i64::MAX), Value::Null);
    }

    #[test]
    fn observation_carries_topic_time_sentiment_and_example() {
        let message = input_message(r#"{"id":7,"text":"Fed hikes","ts":1704164645}"#);
        let decoded = decode(&message, InputFormat::Json, 1 << 20, NOW_MS).unwrap();
        assert_eq!(decoded.event_time_origin, EventTimeOrigin::Payload);
        let counted = observation(&message, &decoded, &classification());
        assert_eq!(
            counted,
            Observation {
                source: format!("{}/{}", message.topic, message.partition),
                topic: "Fed | Central Banks".to_owned(),
                event_time_ms: 1_704_164_645_000,
                sentiment: Sentiment::Negative,
                negative_probability: 0.7,
                example: ExampleText { id: Some("7".to_owned()), text: "Fed hikes".to_owned() },
            }
        );
        let expected_sentiments = [Sentiment::Negative, Sentiment::Neutral, Sentiment::Positive];
        for (label, sentiment) in crate::model::SENTIMENT_LABELS.into_iter().zip(expected_sentiments) {
            let labelled = Classification { sentiment: label, ..classification() };
            assert_eq!(observation(&message, &decoded, &labelled).sentiment, sentiment);
        }
    }
}
