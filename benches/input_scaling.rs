//! Does decoding and encoding a message take time linear in its size? For payloads of 1 to 16 MiB
//! in three shapes (plain JSON text, escape-heavy JSON, plain-text format) this prints the median
//! time of decode + encode and the growth exponent between the smallest and largest size
//! (1.0 = linear, 2.0 = quadratic). Hostile input must not find a quadratic path.
//!
//! Run: `cargo bench --bench input_scaling`.

use std::path::Path;
use std::time::Instant;

use sentmon::config::InputFormat;
use sentmon::message::InputMessage;
use sentmon::pipeline::decode::decode;
use sentmon::text::TextEncoder;

const SIZES_MIB: [usize; 5] = [1, 2, 4, 8, 16];

/// A payload shape: its name, how it is decoded, and how to build one of about N bytes.
type Shape = (&'static str, InputFormat, fn(usize) -> Vec<u8>);
const REPEATS: usize = 5;

fn main() {
    let quick = !std::env::args().any(|argument| argument == "--bench");
    let encoder = TextEncoder::load_json(&Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default/tokenizer.json"))
        .expect("the shipped tokenizer loads");
    let shapes: [Shape; 3] = [
        ("JSON, plain words", InputFormat::Json, |bytes| json_payload(&"Fed hikes rates again ".repeat(bytes / 22))),
        ("JSON, every char escaped", InputFormat::Json, |bytes| {
            format!("{{\"text\": \"{}\"}}", "\\u00e9\\u4e2d".repeat(bytes / 12)).into_bytes()
        }),
        ("plain text, CJK and ASCII", InputFormat::Text, |bytes| "央行宣布降准 rates ".repeat(bytes / 25).into_bytes()),
    ];
    let sizes: &[usize] = if quick { &SIZES_MIB[..1] } else { &SIZES_MIB };
    let repeats = if quick { 1 } else { REPEATS };
    println!("decode + encode time by payload size (median of {repeats})");
    for (name, format, build) in shapes {
        let mut timings = Vec::new();
        for &mebibytes in sizes {
            let payload = build(mebibytes << 20);
            let message = InputMessage {
                topic: "bench".into(),
                partition: 0,
                offset: 0,
                key: None,
                payload: Some(payload),
                kafka_timestamp_ms: None,
                received_at: Instant::now(),
            };
            let mut samples: Vec<f64> = (0..repeats)
                .map(|_| {
                    let started = Instant::now();
                    let decoded = decode(&message, format, 64 << 20, 0).expect("bench payloads decode");
                    std::hint::black_box(encoder.encode(&decoded.text));
                    started.elapsed().as_secs_f64()
                })
                .collect();
            samples.sort_by(f64::total_cmp);
            timings.push((mebibytes, samples[samples.len() / 2]));
        }
        let cells: Vec<String> =
            timings.iter().map(|(mebibytes, seconds)| format!("{mebibytes} MiB {:.1} ms", seconds * 1e3)).collect();
        let exponent = match (timings.first(), timings.last()) {
            (Some(&(small, small_time)), Some(&(large, large_time))) if large > small => {
                (large_time / small_time).ln() / (large as f64 / small as f64).ln()
            }
            _ => f64::NAN,
        };
        println!("{name:<28} {}  growth exponent {exponent:.2}", cells.join(", "));
    }
}

fn json_payload(text: &str) -> Vec<u8> {
    serde_json::json!({ "id": "bench", "text": text, "source": "bench" }).to_string().into_bytes()
}
