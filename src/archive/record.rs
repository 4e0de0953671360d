//! The archive row: one classified message as one JSON line, shaped so that labelling tools and
//! `sentmon train` can read it without ever mistaking the model's output for a label.

use serde::{Deserialize, Serialize};

use crate::message::InputMessage;
use crate::model::SentimentProbabilities;
use crate::pipeline::decode::DecodedMessage;
use crate::pipeline::record::{Classification, rfc3339_milliseconds_text};

/// One archived message.
///
/// The model's output is nested under `predicted`, never at the top level: `sentmon train` reads
/// top-level `topic` and `sentiment` fields as labels (`dataset::load_labelled`), so an analyst
/// labels a row by adding those two fields, and an unlabelled row stays unlabelled. For the same
/// reason the input's own fields are not copied wholesale (a producer may send a `topic` field):
/// only the fields listed here are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArchiveRecord {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// The Kafka key when it is UTF-8 (keys are usually ids).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// The Kafka key in lower-case hex when it is not UTF-8, so no key is lost or mangled.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key_hex: Option<String>,
    pub text: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lang: Option<String>,
    /// RFC 3339, UTC, milliseconds: the payload's `ts`, else the Kafka timestamp (as in the
    /// enriched record).
    #[serde(default)]
    pub event_time: Option<String>,
    /// When sentmon emitted the enriched record (RFC 3339, UTC, milliseconds). The row's
    /// partition is the UTC date it was written, moments later.
    #[serde(default)]
    pub processed_at: Option<String>,
    pub predicted: Predicted,
    pub model_version: String,
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
}

/// What the model said: hints for the person labelling, never labels.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Predicted {
    pub topic: String,
    pub topic_prob: f32,
    pub sentiment: String,
    pub sentiment_probs: SentimentProbabilities,
}

impl ArchiveRecord {
    pub fn new(
        message: &InputMessage,
        decoded: &DecodedMessage,
        classification: &Classification,
        processed_at_ms: i64,
    ) -> ArchiveRecord {
        let (key, key_hex) = match message.key.as_deref().map(std::str::from_utf8) {
            None => (None, None),
            Some(Ok(utf8_key)) => (Some(utf8_key.to_owned()), None),
            Some(Err(_)) => (None, message.key.as_deref().map(lower_hex)),
        };
        ArchiveRecord {
            id: decoded.id.clone(),
            key,
            key_hex,
            text: decoded.text.clone(),
            source: decoded.source.clone(),
            url: decoded.url.clone(),
            lang: decoded.lang.clone(),
            event_time: rfc3339_milliseconds_text(decoded.event_time_ms),
            processed_at: rfc3339_milliseconds_text(processed_at_ms),
            predicted: Predicted {
                topic: classification.topic.to_owned(),
                topic_prob: classification.topic_probability,
                sentiment: classification.sentiment.to_owned(),
                sentiment_probs: classification.sentiment_probabilities,
            },
            model_version: classification.model_version.to_owned(),
            source_topic: message.topic.clone(),
            source_partition: message.partition,
            source_offset: message.offset,
        }
    }
}

fn lower_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

#[cfg(test)]
pub(crate) mod tests {
    use std::time::Instant;

    use serde_json::{Value, json};

    use super::*;
    use crate::config::InputFormat;
    use crate::pipeline::decode::decode;

    /// A record as the daemon would archive it, for tests across the archive module.
    pub(crate) fn sample_record(id: &str, text: &str, topic: &str) -> ArchiveRecord {
        let message = InputMessage {
            topic: "news".to_owned(),
            partition: 1,
            offset: 42,
            key: Some(id.as_bytes().to_vec()),
            payload: Some(json!({"id": id, "text": text, "source": "wire"}).to_string().into_bytes()),
            kafka_timestamp_ms: Some(1_704_164_645_000),
            received_at: Instant::now(),
        };
        let decoded = decode(&message, InputFormat::Json, 1 << 20, 1_704_164_645_000).unwrap();
        let classification = Classification {
            topic,
            topic_probability: 0.87,
            sentiment: "negative",
            sentiment_probabilities: SentimentProbabilities { negative: 0.7, neutral: 0.2, positive: 0.1 },
            model_version: "v7",
            entities: None,
        };
        ArchiveRecord::new(&message, &decoded, &classification, 1_704_164_645_678)
    }

    #[test]
    fn predictions_are_nested_and_only_listed_input_fields_are_kept() {
        let message = InputMessage {
            topic: "news".to_owned(),
            partition: 3,
            offset: 9,
            key: Some(vec![0xff, 0x01]),
            payload: Some(
                br#"{"id":"m1","text":"Fed hikes","topic":"mine","sentiment":"bullish","lang":"en"}"#.to_vec(),
            ),
            kafka_timestamp_ms: Some(1_704_164_645_000),
            received_at: Instant::now(),
        };
        let decoded = decode(&message, InputFormat::Json, 1 << 20, 0).unwrap();
        let classification = Classification {
            topic: "Fed | Central Banks",
            topic_probability: 0.87,
            sentiment: "negative",
            sentiment_probabilities: SentimentProbabilities { negative: 0.7, neutral: 0.2, positive: 0.1 },
            model_version: "v7",
            entities: None,
        };
        let record = ArchiveRecord::new(&message, &decoded, &classification, 1_704_164_645_678);
        // Through text, as written to the archive: an `f32` is written as its shortest decimal (0.7).
        let row: Value = serde_json::from_str(&serde_json::to_string(&record).unwrap()).unwrap();
        assert_eq!(
            row,
            json!({
                "id": "m1",
                "key_hex": "ff01",
                "text": "Fed hikes",
                "lang": "en",
                "event_time": "2024-01-02T03:04:05.000Z",
                "processed_at": "2024-01-02T03:04:05.678Z",
                "predicted": {
                    "topic": "Fed | Central Banks",
                    "topic_prob": 0.87,
                    "sentiment": "negative",
                    "sentiment_probs": {"negative": 0.7, "neutral": 0.2, "positive": 0.1},
                },
                "model_version": "v7",
                "source_topic": "news",
                "source_partition": 3,
                "source_offset": 9,
            })
        );
        let read_back: ArchiveRecord = serde_json::from_value(row).unwrap();
        assert_eq!(read_back, record);
    }

    #[test]
    fn utf8_keys_are_kept_as_text() {
        let record = sample_record("m7", "Oil climbs", "Energy | Oil");
        assert_eq!((record.key.as_deref(), record.key_hex.as_deref()), (Some("m7"), None));
    }
}
