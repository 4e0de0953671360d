//! Decoding: an owned input message becomes a [`DecodedMessage`], or a [`DeadLetter`] saying why it cannot.
//!
//! Pure: the ingest module converts each Kafka message into an [`InputMessage`] at the boundary and passes the
//! wall clock in, so every input the daemon may meet is unit-tested here without a broker. Nothing in here panics
//! on input: whatever the bytes, the answer is a decoded message or a dead letter with a bounded reason.

use std::fmt;

use chrono::DateTime;
use serde::Serialize;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::config::InputFormat;
use crate::message::InputMessage;
use crate::window::LATEST_SUPPORTED_TIME_MS;

/// Numbers below this in a `ts` field are epoch seconds, not milliseconds. As milliseconds the threshold is
/// 1973-03-03, before any message this daemon will see; as seconds it is the year 5138. So no real millisecond
/// timestamp is this small, and producers often send seconds (Unix `date +%s`, Python's `time.time()`).
pub const EPOCH_SECONDS_BELOW: i64 = 100_000_000_000;

/// Earliest event time accepted from a payload or from Kafka, in milliseconds since the Unix epoch. Zero and
/// negative values are placeholders for "unset" (Kafka itself reports -1 for "no timestamp"), not times.
const EARLIEST_ACCEPTED_TIME_MS: i64 = 1;

/// Longest `sentmon-detail` header value, in bytes. Decoding details (serde's messages, ours) are under 200 bytes;
/// the cap keeps the headers small next to the original payload whatever a future message says, so a dead-letter
/// record is never pushed over the broker's record size limit by its headers.
pub const MAX_DEAD_LETTER_DETAIL_BYTES: usize = 512;

/// Some Windows tools start UTF-8 text with a byte order mark; it is an encoding artefact, not text or JSON.
const BYTE_ORDER_MARK: char = '\u{feff}';

const MILLISECONDS_PER_SECOND: i64 = 1_000;

pub const REASON_HEADER: &str = "sentmon-reason";
pub const DETAIL_HEADER: &str = "sentmon-detail";
pub const SOURCE_TOPIC_HEADER: &str = "sentmon-source-topic";
pub const SOURCE_PARTITION_HEADER: &str = "sentmon-source-partition";
pub const SOURCE_OFFSET_HEADER: &str = "sentmon-source-offset";
pub const SOURCE_TIMESTAMP_HEADER: &str = "sentmon-source-timestamp";

/// Where a decoded message's event time came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum EventTimeOrigin {
    /// The payload's `ts` field.
    Payload,
    /// The Kafka record timestamp: the payload had no usable `ts`.
    Kafka,
    /// The wall clock at decoding: neither the payload nor Kafka gave a usable time.
    Received,
}

impl EventTimeOrigin {
    /// The name written into enriched records, the same as its serde form.
    pub fn as_str(self) -> &'static str {
        match self {
            EventTimeOrigin::Payload => "payload",
            EventTimeOrigin::Kafka => "kafka",
            EventTimeOrigin::Received => "received",
        }
    }
}

/// A message ready for classification.
#[derive(Debug, Clone, PartialEq)]
pub struct DecodedMessage {
    /// The input's `id`; a numeric id is rendered as its JSON text (`42` becomes `"42"`).
    pub id: Option<String>,
    /// Never empty after trimming; otherwise untouched (normalisation is the text module's job).
    pub text: String,
    pub source: Option<String>,
    pub url: Option<String>,
    pub lang: Option<String>,
    /// Milliseconds since the Unix epoch.
    pub event_time_ms: i64,
    pub event_time_origin: EventTimeOrigin,
    /// Every field of a JSON input, carried into the output record; `{"text": ...}` for text input.
    pub input_fields: Map<String, Value>,
}

/// Why a message went to the dead-letter topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeadLetterReason {
    /// A tombstone or a zero-byte payload.
    EmptyPayload,
    /// Over `input.max_message_bytes`.
    TooLarge,
    NotUtf8,
    InvalidJson,
    /// Valid JSON, but not an object.
    NotAnObject,
    MissingText,
    /// `text` (or a text-format payload) is empty or only whitespace.
    EmptyText,
    TextNotString,
    /// Decoded fine, but the model failed on its batch (a panic or error in the forward pass): every message of that
    /// batch is dead-lettered with this reason, so its offset completes. Set by the app, never by [`decode`].
    InferenceFailed,
}

impl DeadLetterReason {
    /// Every reason, so the metrics module can create each labelled series at zero before the first dead letter.
    pub const ALL: [DeadLetterReason; 9] = [
        DeadLetterReason::EmptyPayload,
        DeadLetterReason::TooLarge,
        DeadLetterReason::NotUtf8,
        DeadLetterReason::InvalidJson,
        DeadLetterReason::NotAnObject,
        DeadLetterReason::MissingText,
        DeadLetterReason::EmptyText,
        DeadLetterReason::TextNotString,
        DeadLetterReason::InferenceFailed,
    ];

    /// The metric label and `sentmon-reason` header value: a fixed, bounded set.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::EmptyPayload => "empty_payload",
            DeadLetterReason::TooLarge => "too_large",
            DeadLetterReason::NotUtf8 => "not_utf8",
            DeadLetterReason::InvalidJson => "invalid_json",
            DeadLetterReason::NotAnObject => "not_an_object",
            DeadLetterReason::MissingText => "missing_text",
            DeadLetterReason::EmptyText => "empty_text",
            DeadLetterReason::TextNotString => "text_not_string",
            DeadLetterReason::InferenceFailed => "inference_failed",
        }
    }
}

impl fmt::Display for DeadLetterReason {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        formatter.write_str(self.as_str())
    }
}

/// A message that cannot be decoded: the reason to count it under and a human explanation for the header.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("{reason}: {detail}")]
pub struct DeadLetter {
    pub reason: DeadLetterReason,
    /// Never contains payload content, only sizes, positions and types.
    pub detail: String,
}

impl DeadLetter {
    pub fn new(reason: DeadLetterReason, detail: impl Into<String>) -> Self {
        Self { reason, detail: detail.into() }
    }
}

/// Decodes a message's payload as `format`, or says why it cannot.
///
/// Checks run cheapest first: presence and size before any parsing (a 10 MB message costs a length comparison),
/// then UTF-8, then the format. The event time is the payload's `ts` (RFC 3339, epoch milliseconds or seconds, as a
/// number or a numeric string), else the Kafka timestamp, else `now_ms`; a bad `ts` never dead-letters a message,
/// the origin records which time was used. Optional fields (`id`, `source`, `url`, `lang`) of the wrong type are
/// ignored, not fatal: they stay in `input_fields` and so in the output record.
pub fn decode(
    message: &InputMessage,
    format: InputFormat,
    max_message_bytes: usize,
    now_ms: i64,
) -> Result<DecodedMessage, DeadLetter> {
    let payload = sized_payload(message.payload.as_deref(), max_message_bytes)?;
    let payload_text = std::str::from_utf8(payload).map_err(|utf8_error| {
        DeadLetter::new(DeadLetterReason::NotUtf8, format!("payload is not UTF-8: {utf8_error}"))
    })?;
    let payload_text_without_mark = payload_text.strip_prefix(BYTE_ORDER_MARK).unwrap_or(payload_text);
    let (text, input_fields) = match format {
        InputFormat::Json => json_text_and_fields(payload_text_without_mark)?,
        InputFormat::Text => plain_text_and_fields(payload_text_without_mark)?,
    };
    let (event_time_ms, event_time_origin) = event_time(&input_fields, message.kafka_timestamp_ms, now_ms);
    Ok(DecodedMessage {
        id: input_fields.get("id").and_then(id_string),
        text,
        source: optional_string_field(&input_fields, "source"),
        url: optional_string_field(&input_fields, "url"),
        lang: optional_string_field(&input_fields, "lang"),
        event_time_ms,
        event_time_origin,
        input_fields,
    })
}

/// The headers of a dead-letter record: why, and where the original came from, so it can be found and replayed.
pub fn dead_letter_headers(message: &InputMessage, dead_letter: &DeadLetter) -> Vec<(&'static str, String)> {
    let mut headers = vec![
        (REASON_HEADER, dead_letter.reason.as_str().to_owned()),
        (DETAIL_HEADER, truncated_detail(&dead_letter.detail)),
        (SOURCE_TOPIC_HEADER, message.topic.clone()),
        (SOURCE_PARTITION_HEADER, message.partition.to_string()),
        (SOURCE_OFFSET_HEADER, message.offset.to_string()),
    ];
    if let Some(kafka_timestamp_ms) = message.kafka_timestamp_ms {
        headers.push((SOURCE_TIMESTAMP_HEADER, kafka_timestamp_ms.to_string()));
    }
    headers
}

fn sized_payload(payload: Option<&[u8]>, max_message_bytes: usize) -> Result<&[u8], DeadLetter> {
    let Some(payload) = payload else {
        return Err(DeadLetter::new(DeadLetterReason::EmptyPayload, "message has no payload (a tombstone)"));
    };
    if payload.is_empty() {
        return Err(DeadLetter::new(DeadLetterReason::EmptyPayload, "payload is empty (0 bytes)"));
    }
    if payload.len() > max_message_bytes {
        return Err(DeadLetter::new(
            DeadLetterReason::TooLarge,
            format!("payload is {} bytes, over input.max_message_bytes = {max_message_bytes}", payload.len()),
        ));
    }
    Ok(payload)
}

fn json_text_and_fields(payload_text: &str) -> Result<(String, Map<String, Value>), DeadLetter> {
    // serde_json stops at 128 levels of nesting with an error, so hostile nesting is an `InvalidJson`, not a
    // stack overflow.
    let value: Value = serde_json::from_str(payload_text).map_err(|json_error| {
        DeadLetter::new(DeadLetterReason::InvalidJson, format!("payload is not valid JSON: {json_error}"))
    })?;
    let Value::Object(input_fields) = value else {
        return Err(DeadLetter::new(
            DeadLetterReason::NotAnObject,
            format!("payload is a JSON {}, expected an object with a \"text\" field", json_type_name(&value)),
        ));
    };
    let text = match input_fields.get("text") {
        None => {
            return Err(DeadLetter::new(DeadLetterReason::MissingText, "the JSON object has no \"text\" field"));
        }
        Some(Value::String(text)) => text.clone(),
        Some(other) => {
            return Err(DeadLetter::new(
                DeadLetterReason::TextNotString,
                format!("field \"text\" is a JSON {}, expected a string", json_type_name(other)),
            ));
        }
    };
    if text.trim().is_empty() {
        return Err(DeadLetter::new(DeadLetterReason::EmptyText, "field \"text\" is empty or only whitespace"));
    }
    Ok((text, input_fields))
}

fn plain_text_and_fields(payload_text: &str) -> Result<(String, Map<String, Value>), DeadLetter> {
    if payload_text.trim().is_empty() {
        return Err(DeadLetter::new(DeadLetterReason::EmptyText, "payload is only whitespace"));
    }
    let mut input_fields = Map::new();
    input_fields.insert("text".to_owned(), Value::String(payload_text.to_owned()));
    Ok((payload_text.to_owned(), input_fields))
}

fn json_type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn id_string(id: &Value) -> Option<String> {
    match id {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

fn optional_string_field(input_fields: &Map<String, Value>, name: &str) -> Option<String> {
    input_fields.get(name).and_then(Value::as_str).map(str::to_owned)
}

fn event_time(
    input_fields: &Map<String, Value>,
    kafka_timestamp_ms: Option<i64>,
    now_ms: i64,
) -> (i64, EventTimeOrigin) {
    if let Some(payload_time_ms) = input_fields.get("ts").and_then(payload_timestamp_ms) {
        return (payload_time_ms, EventTimeOrigin::Payload);
    }
    if let Some(kafka_time_ms) = kafka_timestamp_ms.filter(|time_ms| is_accepted_time_ms(*time_ms)) {
        return (kafka_time_ms, EventTimeOrigin::Kafka);
    }
    (now_ms, EventTimeOrigin::Received)
}

/// A `ts` value in milliseconds, or `None` when it is not a time we understand or lies outside the accepted range
/// (microsecond and nanosecond timestamps land beyond the year 10000 and are refused that way).
pub(crate) fn payload_timestamp_ms(ts: &Value) -> Option<i64> {
    let time_ms = match ts {
        Value::Number(number) => number_timestamp_ms(number)?,
        Value::String(text) => string_timestamp_ms(text.trim())?,
        _ => return None,
    };
    is_accepted_time_ms(time_ms).then_some(time_ms)
}

fn number_timestamp_ms(number: &serde_json::Number) -> Option<i64> {
    if let Some(integer) = number.as_i64() {
        return integer_timestamp_ms(integer);
    }
    number.as_f64().and_then(fractional_timestamp_ms)
}

fn string_timestamp_ms(text: &str) -> Option<i64> {
    if let Ok(date_time) = DateTime::parse_from_rfc3339(text) {
        return Some(date_time.timestamp_millis());
    }
    if let Ok(integer) = text.parse::<i64>() {
        return integer_timestamp_ms(integer);
    }
    text.parse::<f64>().ok().and_then(fractional_timestamp_ms)
}

fn integer_timestamp_ms(integer: i64) -> Option<i64> {
    if integer < EPOCH_SECONDS_BELOW {
        return integer.checked_mul(MILLISECONDS_PER_SECOND);
    }
    Some(integer)
}

/// Fractional seconds (`1700000000.123`, as Python's `time.time()` gives) or fractional milliseconds.
fn fractional_timestamp_ms(number: f64) -> Option<i64> {
    if !number.is_finite() {
        return None;
    }
    let time_ms = if number < EPOCH_SECONDS_BELOW as f64 { number * MILLISECONDS_PER_SECOND as f64 } else { number };
    let rounded_time_ms = time_ms.round();
    // Checked in floating point before the cast, which would otherwise saturate silently.
    if rounded_time_ms < EARLIEST_ACCEPTED_TIME_MS as f64 || rounded_time_ms > LATEST_SUPPORTED_TIME_MS as f64 {
        return None;
    }
    Some(rounded_time_ms as i64)
}

fn is_accepted_time_ms(time_ms: i64) -> bool {
    (EARLIEST_ACCEPTED_TIME_MS..=LATEST_SUPPORTED_TIME_MS).contains(&time_ms)
}

fn truncated_detail(detail: &str) -> String {
    const ELLIPSIS: char = '…';
    if detail.len() <= MAX_DEAD_LETTER_DETAIL_BYTES {
        return detail.to_owned();
    }
    let mut end = MAX_DEAD_LETTER_DETAIL_BYTES - ELLIPSIS.len_utf8();
    while !detail.is_char_boundary(end) {
        end -= 1;
    }
    let mut truncated = String::with_capacity(MAX_DEAD_LETTER_DETAIL_BYTES);
    truncated.push_str(&detail[..end]);
    truncated.push(ELLIPSIS);
    truncated
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use proptest::prelude::*;

    use super::*;

    const MAX_BYTES: usize = 1_048_576;
    const NOW_MS: i64 = 1_700_000_999_000;
    const KAFKA_MS: i64 = 1_700_000_500_000;

    fn message(payload: &[u8]) -> InputMessage {
        InputMessage {
            topic: "news".to_owned(),
            partition: 3,
            offset: 42,
            key: Some(b"key".to_vec()),
            payload: Some(payload.to_vec()),
            kafka_timestamp_ms: Some(KAFKA_MS),
            received_at: Instant::now(),
        }
    }

    fn decode_json(payload: &[u8]) -> Result<DecodedMessage, DeadLetter> {
        decode(&message(payload), InputFormat::Json, MAX_BYTES, NOW_MS)
    }

    fn reason_of(result: Result<DecodedMessage, DeadLetter>) -> DeadLetterReason {
        result.expect_err("should be dead-lettered").reason
    }

    #[test]
    fn decodes_a_full_json_message() {
        let decoded = decode_json(
            br#"{"id":"a1","text":"Fed hikes","source":"wire","url":"https://x","lang":"en","ts":"2024-01-02T03:04:05.678Z","extra":[1]}"#,
        )
        .unwrap();
        assert_eq!(decoded.id.as_deref(), Some("a1"));
        assert_eq!(decoded.text, "Fed hikes");
        assert_eq!(decoded.source.as_deref(), Some("wire"));
        assert_eq!(decoded.url.as_deref(), Some("https://x"));
        assert_eq!(decoded.lang.as_deref(), Some("en"));
        assert_eq!(decoded.event_time_ms, 1_704_164_645_678);
        assert_eq!(decoded.event_time_origin, EventTimeOrigin::Payload);
        assert_eq!(decoded.input_fields.len(), 7);
        assert_eq!(decoded.input_fields["extra"], serde_json::json!([1]));
    }

    #[test]
    fn dead_letters_every_reason() {
        let mut tombstone = message(b"");
        tombstone.payload = None;
        assert_eq!(reason_of(decode(&tombstone, InputFormat::Json, MAX_BYTES, NOW_MS)), DeadLetterReason::EmptyPayload);
        assert_eq!(reason_of(decode(&tombstone, InputFormat::Text, MAX_BYTES, NOW_MS)), DeadLetterReason::EmptyPayload);
        assert_eq!(reason_of(decode_json(b"")), DeadLetterReason::EmptyPayload);
        assert_eq!(reason_of(decode(&message(b"abc"), InputFormat::Json, 2, NOW_MS)), DeadLetterReason::TooLarge);
        assert_eq!(reason_of(decode_json(b"{\"text\":\"a\xffb\"}")), DeadLetterReason::NotUtf8);
        assert_eq!(reason_of(decode_json(b"{\"text\":")), DeadLetterReason::InvalidJson);
        assert_eq!(reason_of(decode_json(b"   ")), DeadLetterReason::InvalidJson);
        assert_eq!(reason_of(decode_json(b"[\"text\"]")), DeadLetterReason::NotAnObject);
        assert_eq!(reason_of(decode_json(b"\"just a string\"")), DeadLetterReason::NotAnObject);
        assert_eq!(reason_of(decode_json(b"{\"body\":\"x\"}")), DeadLetterReason::MissingText);
        assert_eq!(reason_of(decode_json(b"{\"text\":\" \\n\\t \"}")), DeadLetterReason::EmptyText);
        assert_eq!(reason_of(decode_json(b"{\"text\":7}")), DeadLetterReason::TextNotString);
        assert_eq!(reason_of(decode_json(b"{\"text\":null}")), DeadLetterReason::TextNotString);
        assert_eq!(
            reason_of(decode(&message(b" \r\n "), InputFormat::Text, MAX_BYTES, NOW_MS)),
            DeadLetterReason::EmptyText
        );
    }

    #[test]
    fn reason_labels_are_distinct_snake_case() {
        let labels: std::collections::HashSet<&str> =
            DeadLetterReason::ALL.iter().map(|reason| reason.as_str()).collect();
        assert_eq!(labels.len(), DeadLetterReason::ALL.len());
        assert!(labels.iter().all(|label| {
            label
                .chars()
                .all(|character| character.is_ascii_lowercase() || character.is_ascii_digit() || character == '_')
        }));
        assert_eq!(DeadLetterReason::TooLarge.to_string(), "too_large");
    }

    #[test]
    fn details_explain_without_payload_content() {
        let too_large = decode(&message(&[b'x'; 2_097_152]), InputFormat::Text, MAX_BYTES, NOW_MS).unwrap_err();
        assert_eq!(too_large.detail, "payload is 2097152 bytes, over input.max_message_bytes = 1048576");
        let not_an_object = decode_json(b"[1]").unwrap_err();
        assert!(not_an_object.detail.contains("JSON array"), "{}", not_an_object.detail);
        let not_string = decode_json(b"{\"text\":{\"secret\":1}}").unwrap_err();
        assert!(not_string.detail.contains("JSON object"), "{}", not_string.detail);
        assert!(!not_string.detail.contains("secret"));
        let invalid = decode_json(b"{\"text\": tru}").unwrap_err();
        assert!(invalid.detail.starts_with("payload is not valid JSON: "), "{}", invalid.detail);
        assert!(invalid.to_string().starts_with("invalid_json: "));
    }

    #[test]
    fn size_limit_is_inclusive() {
        let payload = br#"{"text":"exactly"}"#;
        let exact = decode(&message(payload), InputFormat::Json, payload.len(), NOW_MS);
        assert!(exact.is_ok());
        let over = decode(&message(payload), InputFormat::Json, payload.len() - 1, NOW_MS);
        assert_eq!(reason_of(over), DeadLetterReason::TooLarge);
    }

    #[test]
    fn ten_megabyte_payload_is_rejected_before_parsing() {
        // Invalid UTF-8 throughout: only a size check that runs first can answer `TooLarge`.
        // (How long it takes is `benches/input_scaling.rs`'s business: no timed assertions here.)
        let huge = vec![0xff_u8; 10 * 1024 * 1024];
        let result = decode(&message(&huge), InputFormat::Json, MAX_BYTES, NOW_MS);
        assert_eq!(reason_of(result), DeadLetterReason::TooLarge);
    }

    #[test]
    fn invalid_utf8_in_the_middle_names_its_position() {
        let dead_letter = decode(&message(b"good \xc3\x28 text"), InputFormat::Text, MAX_BYTES, NOW_MS).unwrap_err();
        assert_eq!(dead_letter.reason, DeadLetterReason::NotUtf8);
        assert!(dead_letter.detail.contains("index 5"), "{}", dead_letter.detail);
    }

    #[test]
    fn escaped_nul_inside_a_json_string_is_valid() {
        let decoded = decode_json(br#"{"text":"rates\u0000up"}"#).unwrap();
        assert_eq!(decoded.text, "rates\0up");
        // A raw control character inside a JSON string is not JSON.
        assert_eq!(reason_of(decode_json(b"{\"text\":\"rates\0up\"}")), DeadLetterReason::InvalidJson);
        let plain = decode(&message(b"rates\0up"), InputFormat::Text, MAX_BYTES, NOW_MS).unwrap();
        assert_eq!(plain.text, "rates\0up");
    }

    #[test]
    fn deeply_nested_json_is_invalid_not_a_crash() {
        let depth = 200;
        let payload = format!("{{\"text\":\"x\",\"deep\":{}{}}}", "[".repeat(depth), "]".repeat(depth));
        assert_eq!(reason_of(decode_json(payload.as_bytes())), DeadLetterReason::InvalidJson);
        let object_nesting = format!("{}{}", "{\"a\":".repeat(depth), "}".repeat(depth));
        assert_eq!(reason_of(decode_json(object_nesting.as_bytes())), DeadLetterReason::InvalidJson);
    }

    #[test]
    fn text_format_takes_the_whole_payload() {
        let decoded =
            decode(&message("  Fed cuts rates 美联储 \n".as_bytes()), InputFormat::Text, MAX_BYTES, NOW_MS).unwrap();
        assert_eq!(decoded.text, "  Fed cuts rates 美联储 \n");
        assert_eq!(decoded.id, None);
        assert_eq!(decoded.event_time_origin, EventTimeOrigin::Kafka);
        assert_eq!(decoded.input_fields.len(), 1);
        assert_eq!(decoded.input_fields["text"], Value::String(decoded.text.clone()));
        // JSON-looking text stays text in text format.
        let json_looking = decode(&message(br#"{"text":"x","ts":5}"#), InputFormat::Text, MAX_BYTES, NOW_MS).unwrap();
        assert_eq!(json_looking.text, r#"{"text":"x","ts":5}"#);
        assert_eq!(json_looking.event_time_origin, EventTimeOrigin::Kafka);
    }

    #[test]
    fn byte_order_mark_is_skipped() {
        let decoded = decode_json("\u{feff}{\"text\":\"x\"}".as_bytes()).unwrap();
        assert_eq!(decoded.text, "x");
    }

    #[test]
    fn numeric_id_becomes_a_string_and_wrong_typed_optionals_are_ignored() {
        let decoded = decode_json(br#"{"id":12345678901234,"text":"x","source":5,"url":null,"lang":["en"]}"#).unwrap();
        assert_eq!(decoded.id.as_deref(), Some("12345678901234"));
        assert_eq!(decoded.source, None);
        assert_eq!(decoded.url, None);
        assert_eq!(decoded.lang, None);
        assert_eq!(decoded.input_fields["source"], serde_json::json!(5));
        assert_eq!(decode_json(br#"{"id":{"a":1},"text":"x"}"#).unwrap().id, None);
    }

    fn event_time_of(ts_json: &str) -> (i64, EventTimeOrigin) {
        let payload = format!("{{\"text\":\"x\",\"ts\":{ts_json}}}");
        let decoded = decode_json(payload.as_bytes()).unwrap();
        (decoded.event_time_ms, decoded.event_time_origin)
    }

    #[test]
    fn event_time_forms() {
        let payload = EventTimeOrigin::Payload;
        assert_eq!(event_time_of("\"2024-01-02T04:04:05+01:00\""), (1_704_164_645_000, payload));
        assert_eq!(event_time_of("\"2024-01-02T03:04:05.678Z\""), (1_704_164_645_678, payload));
        assert_eq!(event_time_of("1704164645678"), (1_704_164_645_678, payload));
        assert_eq!(event_time_of("1704164645"), (1_704_164_645_000, payload));
        assert_eq!(event_time_of("1704164645.5"), (1_704_164_645_500, payload));
        assert_eq!(event_time_of("\"1704164645678\""), (1_704_164_645_678, payload));
        assert_eq!(event_time_of("\" 1704164645 \""), (1_704_164_645_000, payload));
        // Just under the threshold is seconds, at it is milliseconds.
        assert_eq!(event_time_of("99999999999"), (99_999_999_999_000, payload));
        assert_eq!(event_time_of("100000000000"), (100_000_000_000, payload));
    }

    #[test]
    fn unusable_event_times_fall_back_to_kafka() {
        let kafka = (KAFKA_MS, EventTimeOrigin::Kafka);
        for garbage in
            ["\"yesterday\"", "\"\"", "true", "null", "{}", "0", "-5", "1704164645678000", "1e300", "\"NaN\""]
        {
            assert_eq!(event_time_of(garbage), kafka, "ts = {garbage}");
        }
        let without_ts = decode_json(br#"{"text":"x"}"#).unwrap();
        assert_eq!((without_ts.event_time_ms, without_ts.event_time_origin), kafka);
    }

    #[test]
    fn without_any_time_the_received_time_is_used() {
        let mut no_kafka_time = message(br#"{"text":"x","ts":"garbage"}"#);
        no_kafka_time.kafka_timestamp_ms = None;
        let decoded = decode(&no_kafka_time, InputFormat::Json, MAX_BYTES, NOW_MS).unwrap();
        assert_eq!((decoded.event_time_ms, decoded.event_time_origin), (NOW_MS, EventTimeOrigin::Received));
        no_kafka_time.kafka_timestamp_ms = Some(-1);
        let decoded_with_placeholder = decode(&no_kafka_time, InputFormat::Json, MAX_BYTES, NOW_MS).unwrap();
        assert_eq!(decoded_with_placeholder.event_time_origin, EventTimeOrigin::Received);
    }

    #[test]
    fn event_time_origin_serialises_lowercase() {
        for origin in [EventTimeOrigin::Payload, EventTimeOrigin::Kafka, EventTimeOrigin::Received] {
            assert_eq!(serde_json::to_value(origin).unwrap(), Value::String(origin.as_str().to_owned()));
        }
    }

    #[test]
    fn dead_letter_headers_name_reason_and_source() {
        let source = message(b"\xff");
        let dead_letter = decode(&source, InputFormat::Json, MAX_BYTES, NOW_MS).unwrap_err();
        let headers = dead_letter_headers(&source, &dead_letter);
        let expected = vec![
            (REASON_HEADER, "not_utf8".to_owned()),
            (DETAIL_HEADER, dead_letter.detail.clone()),
            (SOURCE_TOPIC_HEADER, "news".to_owned()),
            (SOURCE_PARTITION_HEADER, "3".to_owned()),
            (SOURCE_OFFSET_HEADER, "42".to_owned()),
            (SOURCE_TIMESTAMP_HEADER, KAFKA_MS.to_string()),
        ];
        assert_eq!(headers, expected);
        let mut without_timestamp = source.clone();
        without_timestamp.kafka_timestamp_ms = None;
        let fewer_headers = dead_letter_headers(&without_timestamp, &dead_letter);
        assert!(fewer_headers.iter().all(|(name, _)| *name != SOURCE_TIMESTAMP_HEADER));
        assert_eq!(fewer_headers.len(), 5);
    }

    #[test]
    fn long_details_are_truncated_on_a_character_boundary() {
        let dead_letter = DeadLetter::new(DeadLetterReason::InvalidJson, "é".repeat(MAX_DEAD_LETTER_DETAIL_BYTES));
        let headers = dead_letter_headers(&message(b"x"), &dead_letter);
        let detail = &headers.iter().find(|(name, _)| *name == DETAIL_HEADER).unwrap().1;
        assert!(detail.len() <= MAX_DEAD_LETTER_DETAIL_BYTES);
        assert!(detail.ends_with("é…"));
        assert_eq!(truncated_detail("short"), "short");
    }

    proptest! {
        #[test]
        fn decode_never_panics_and_only_accepts_real_text(
            payload in proptest::collection::vec(any::<u8>(), 0..512),
            max_message_bytes in 0_usize..600,
            kafka_timestamp_ms in proptest::option::of(any::<i64>()),
        ) {
            let mut arbitrary = message(&payload);
            arbitrary.kafka_timestamp_ms = kafka_timestamp_ms;
            for format in [InputFormat::Json, InputFormat::Text] {
                if let Ok(decoded) = decode(&arbitrary, format, max_message_bytes, NOW_MS) {
                    prop_assert!(!decoded.text.trim().is_empty());
                    prop_assert!(payload.len() <= max_message_bytes);
                    prop_assert_eq!(decoded.input_fields.get("text"), Some(&Value::String(decoded.text.clone())));
                }
            }
        }

        #[test]
        fn decode_never_panics_on_json_shaped_input(
            text in ".{0,40}",
            ts in prop_oneof![
                any::<i64>().prop_map(|number| number.to_string()),
                any::<f64>().prop_map(|number| format!("{number:?}")),
                ".{0,30}".prop_map(|text| Value::String(text).to_string()),
            ],
            id in any::<u64>(),
        ) {
            let payload = format!("{{\"id\":{id},\"text\":{},\"ts\":{ts}}}", Value::String(text.clone()));
            let result = decode(&message(payload.as_bytes()), InputFormat::Json, MAX_BYTES, NOW_MS);
            match result {
                Ok(decoded) => {
                    prop_assert!(!decoded.text.trim().is_empty());
                    prop_assert_eq!(decoded.id, Some(id.to_string()));
                    prop_assert!(is_accepted_time_ms(decoded.event_time_ms));
                }
                Err(dead_letter) => {
                    prop_assert!(matches!(dead_letter.reason, DeadLetterReason::EmptyText | DeadLetterReason::InvalidJson));
                    prop_assert!(text.trim().is_empty() || payload.contains("NaN") || payload.contains("inf"));
                }
            }
        }
    }
}
