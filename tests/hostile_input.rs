//! Hostile input against the message decoder and the text encoder (normalisation, tokenizer,
//! features): fuzzed bytes and JSON, every Unicode scalar value, 10 MB messages, deeply nested
//! JSON, NUL bytes. Nothing may panic, and outputs stay bounded whatever the input size.
//!
//! The fuzz case count is `SENTMON_FUZZ_CASES` (default 20,000: about a second in CI); run
//! longer locally, e.g. `SENTMON_FUZZ_CASES=200000 cargo test --release --test hostile_input`.

use std::path::Path;
use std::time::Instant;

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use sentmon::config::InputFormat;
use sentmon::message::InputMessage;
use sentmon::pipeline::decode::{DeadLetterReason, decode};
use sentmon::text::{EncodedText, MAX_INPUT_CHARS, TextEncoder};

const NOW_MS: i64 = 1_764_000_000_000;
const DEFAULT_MAX_MESSAGE_BYTES: usize = 1 << 20;

fn fuzz_cases() -> u32 {
    std::env::var("SENTMON_FUZZ_CASES").ok().and_then(|value| value.parse().ok()).unwrap_or(20_000)
}

fn runner() -> TestRunner {
    TestRunner::new(Config { cases: fuzz_cases(), failure_persistence: None, ..Config::default() })
}

fn message(payload: &[u8]) -> InputMessage {
    InputMessage {
        topic: "news".into(),
        partition: 0,
        offset: 0,
        key: None,
        payload: Some(payload.to_vec()),
        kafka_timestamp_ms: Some(NOW_MS),
        received_at: Instant::now(),
    }
}

fn shipped_encoder() -> TextEncoder {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default/tokenizer.json");
    TextEncoder::load_json(&path).expect("the shipped tokenizer loads")
}

/// What every encoding must satisfy, whatever the input: bounded and in range.
fn assert_bounded(encoder: &TextEncoder, encoded: &EncodedText) {
    let config = encoder.config();
    assert!(!encoded.token_ids.is_empty() && encoded.token_ids.len() <= config.max_tokens);
    assert!(encoded.token_ids.iter().all(|&id| (0..encoder.vocab().len() as i64).contains(&id)));
    assert!(encoded.feature_ids.len() <= config.max_features);
    assert!(encoded.feature_ids.iter().all(|&id| (0..i64::from(config.feature_buckets)).contains(&id)));
    assert!(encoded.token_feature_count <= encoded.feature_ids.len());
}

/// A decoded message never holds more text than its payload, and only text that is not blank.
fn check_decode(payload: &[u8], max_message_bytes: usize) {
    for format in [InputFormat::Json, InputFormat::Text] {
        if let Ok(decoded) = decode(&message(payload), format, max_message_bytes, NOW_MS) {
            assert!(!decoded.text.trim().is_empty());
            assert!(decoded.text.len() <= payload.len());
            assert!(payload.len() <= max_message_bytes);
        }
    }
}

#[test]
fn fuzzed_bytes_never_panic_the_decoder() {
    let strategy = (proptest::collection::vec(any::<u8>(), 0..4096), 0_usize..5000);
    runner()
        .run(&strategy, |(payload, max_message_bytes)| {
            check_decode(&payload, max_message_bytes);
            Ok(())
        })
        .unwrap();
}

/// Valid messages with bytes flipped, inserted or cut: input close to valid reaches the deeper
/// parsing paths that random bytes rarely get past.
#[test]
fn mutated_valid_messages_never_panic_the_decoder() {
    let base = br#"{"id": 42, "text": "Fed hikes rates \u00e9 50bp", "source": "wire", "ts": "2026-11-26T10:00:00Z", "lang": "en"}"#;
    let strategy = proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0_u8..3), 1..16);
    runner()
        .run(&strategy, |edits| {
            let mut payload = base.to_vec();
            for (position, byte, operation) in edits {
                let length = payload.len();
                let index = position.index(length.max(1));
                match operation {
                    0 if length > 0 => payload[index.min(length - 1)] = byte,
                    1 => payload.insert(index.min(length), byte),
                    _ => payload.truncate(index),
                }
            }
            check_decode(&payload, DEFAULT_MAX_MESSAGE_BYTES);
            Ok(())
        })
        .unwrap();
}

#[test]
fn fuzzed_text_never_panics_the_encoder_and_stays_bounded() {
    let encoder = shipped_encoder();
    let strategy = prop_oneof![any::<String>(), "\\PC{0,300}", "[a-z$@#0-9 .,\u{4e00}-\u{4e20}]{0,300}"];
    runner()
        .run(&strategy, |text| {
            assert_bounded(&encoder, &encoder.encode(&text));
            Ok(())
        })
        .unwrap();
}

#[test]
fn every_unicode_scalar_value_encodes() {
    let encoder = shipped_encoder();
    let every_char: Vec<char> = (0..=0x10FFFF_u32).filter_map(char::from_u32).collect();
    // In chunks shorter than the normaliser's cut, so every character is really processed, and
    // each character also alone and repeated, which is where tokenizer edge cases live.
    for chunk in every_char.chunks(MAX_INPUT_CHARS / 2) {
        let text: String = chunk.iter().collect();
        assert_bounded(&encoder, &encoder.encode(&text));
    }
    for &character in every_char.iter().step_by(97) {
        assert_bounded(&encoder, &encoder.encode(&character.to_string()));
        assert_bounded(&encoder, &encoder.encode(&character.to_string().repeat(50)));
    }
}

#[test]
fn ten_megabyte_messages_are_dead_lettered_at_the_default_limit_and_bounded_above_it() {
    let text = "stocks fall sharply ".repeat(10 * 1024 * 1024 / 20);
    let payload = serde_json::json!({ "text": text }).to_string().into_bytes();
    assert!(payload.len() >= 10 * 1024 * 1024);
    let too_large = decode(&message(&payload), InputFormat::Json, DEFAULT_MAX_MESSAGE_BYTES, NOW_MS).unwrap_err();
    assert_eq!(too_large.reason, DeadLetterReason::TooLarge);

    let decoded =
        decode(&message(&payload), InputFormat::Json, 16 << 20, NOW_MS).expect("under a raised limit it decodes");
    let encoder = shipped_encoder();
    assert_bounded(&encoder, &encoder.encode(&decoded.text));
    let plain = decode(&message(text.as_bytes()), InputFormat::Text, 16 << 20, NOW_MS).unwrap();
    assert_bounded(&encoder, &encoder.encode(&plain.text));
}

#[test]
fn deeply_nested_json_is_dead_lettered_without_exhausting_the_stack() {
    for depth in [200, 10_000, 1_000_000] {
        let nested_array = format!("{}{}", "[".repeat(depth), "]".repeat(depth));
        let as_payload = decode(&message(nested_array.as_bytes()), InputFormat::Json, 16 << 20, NOW_MS).unwrap_err();
        assert_eq!(as_payload.reason, DeadLetterReason::InvalidJson, "depth {depth}");

        let in_a_field = format!(r#"{{"text": "Fed hikes", "extra": {nested_array}}}"#);
        let as_field = decode(&message(in_a_field.as_bytes()), InputFormat::Json, 16 << 20, NOW_MS).unwrap_err();
        assert_eq!(as_field.reason, DeadLetterReason::InvalidJson, "depth {depth}");
    }
}

#[test]
fn nul_bytes_and_control_characters_are_classified_not_rejected() {
    let encoder = shipped_encoder();
    let payload = "{\"text\": \"\\u0000Fed\\u0000 hikes\\u0007 rates\\u001b[31m\"}";
    let decoded = decode(&message(payload.as_bytes()), InputFormat::Json, DEFAULT_MAX_MESSAGE_BYTES, NOW_MS).unwrap();
    assert!(decoded.text.contains('\0'));
    let encoded = encoder.encode(&decoded.text);
    assert_bounded(&encoder, &encoded);
    assert!(encoded.token_ids.len() >= 3, "the words around the control characters survive: {encoded:?}");

    let raw = b"\0\0Fed hikes\0";
    let decoded = decode(&message(raw), InputFormat::Text, DEFAULT_MAX_MESSAGE_BYTES, NOW_MS).unwrap();
    assert_bounded(&encoder, &encoder.encode(&decoded.text));
    let only_nul = decode(&message(b"\0\0\0"), InputFormat::Text, DEFAULT_MAX_MESSAGE_BYTES, NOW_MS);
    if let Ok(decoded) = only_nul {
        assert_bounded(&encoder, &encoder.encode(&decoded.text));
    }
}
