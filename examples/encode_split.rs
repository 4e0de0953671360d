//! Writes the exact model inputs of labelled JSONL files (token ids and hashed n-gram feature
//! ids from a bundle's `tokenizer.json`) as JSON lines, so a recipe can be tried outside sentmon
//! on the very inputs `train` sees (see `scripts/recipe_replica.py`). Not part of the daemon.
//!
//! Run: `cargo run --example encode_split -- models/default/tokenizer.json split/train.jsonl
//! split/validation.jsonl split/test.jsonl > encoded.jsonl`, after `sentmon split --out split`.
//! Each output line: `{"split", "topic", "sentiment", "t": token ids, "f": feature ids,
//! "k": how many of "f" are token n-grams (the rest are character n-grams)}`; `split` is the
//! input file's stem.

use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::Path;

use anyhow::{Context, bail};
use sentmon::text::TextEncoder;

fn main() -> anyhow::Result<()> {
    let arguments: Vec<String> = std::env::args().skip(1).collect();
    let Some((tokenizer, files)) = arguments.split_first() else {
        bail!("usage: encode_split TOKENIZER_JSON SPLIT_FILE.jsonl...");
    };
    let encoder = TextEncoder::load_json(Path::new(tokenizer))?;
    let mut output = BufWriter::new(std::io::stdout().lock());
    for file in files {
        let split = Path::new(file).file_stem().and_then(|stem| stem.to_str()).unwrap_or_default();
        let reader = BufReader::new(File::open(file).with_context(|| format!("cannot open {file}"))?);
        for (index, line) in reader.lines().enumerate() {
            let row: serde_json::Value =
                serde_json::from_str(&line?).with_context(|| format!("{file}:{}: not JSON", index + 1))?;
            let Some(text) = row["text"].as_str() else {
                bail!("{file}:{}: no \"text\" string", index + 1);
            };
            let encoded = encoder.encode(text);
            let encoded_row = serde_json::json!({
                "split": split, "topic": row.get("topic"), "sentiment": row.get("sentiment"),
                "t": encoded.token_ids, "f": encoded.feature_ids, "k": encoded.token_feature_count,
            });
            writeln!(output, "{encoded_row}")?;
        }
    }
    output.flush()?;
    Ok(())
}
