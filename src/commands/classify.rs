//! `sentmon classify`: JSONL or plain lines in, one JSON line out per input line, in order.
//! Bad lines (empty, malformed JSON, no text) get an `error` field instead of stopping the run.

use std::io::{BufRead, BufReader, BufWriter, Write};

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::cli::ClassifyArgs;
use crate::model::{self, Classifier, SentimentProbabilities};

/// One output line. Fields of a successful classification are absent on error lines and vice versa.
#[derive(Debug, Serialize)]
struct ClassifiedLine<'a> {
    line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic_prob: Option<f32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sentiment: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sentiment_probs: Option<SentimentProbabilities>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    model_version: &'a str,
}

/// A parsed input line: either a text to classify (with the input's id, if any) or why not.
enum ParsedLine {
    Text { id: Option<Value>, text: String },
    Invalid(String),
}

pub fn run(args: &ClassifyArgs) -> anyhow::Result<()> {
    // One compute thread: a single batch stream gains little from more, and it keeps the other
    // core free (see docs/ARCHITECTURE.md on OpenMP contention).
    model::set_compute_threads(1);
    let classifier = Classifier::load(&args.model)?;
    let input: Box<dyn BufRead> = if args.input.as_os_str() == "-" {
        Box::new(BufReader::new(std::io::stdin()))
    } else {
        let file =
            std::fs::File::open(&args.input).with_context(|| format!("failed to open {}", args.input.display()))?;
        Box::new(BufReader::new(file))
    };
    let mut output = BufWriter::new(std::io::stdout().lock());
    let batch_size = args.batch_size.max(1);
    let mut pending: Vec<(usize, ParsedLine)> = Vec::with_capacity(batch_size);
    let mut pending_texts = 0;
    for (line_index, line) in input.split(b'\n').enumerate() {
        let bytes = line.with_context(|| format!("failed to read {}", args.input.display()))?;
        let parsed = parse_line(&bytes);
        if matches!(parsed, ParsedLine::Text { .. }) {
            pending_texts += 1;
        }
        pending.push((line_index + 1, parsed));
        if pending_texts >= batch_size {
            write_batch(&classifier, &pending, &mut output)?;
            pending.clear();
            pending_texts = 0;
        }
    }
    write_batch(&classifier, &pending, &mut output)?;
    output.flush()?;
    Ok(())
}

fn parse_line(bytes: &[u8]) -> ParsedLine {
    let Ok(line) = std::str::from_utf8(bytes) else {
        return ParsedLine::Invalid("line is not valid UTF-8".to_string());
    };
    let line = line.trim_end_matches('\r');
    if line.trim().is_empty() {
        return ParsedLine::Invalid("empty line".to_string());
    }
    if !line.trim_start().starts_with('{') {
        return ParsedLine::Text { id: None, text: line.to_string() };
    }
    let object = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return ParsedLine::Invalid("JSON line is not an object".to_string()),
        Err(error) => return ParsedLine::Invalid(format!("malformed JSON: {error}")),
    };
    let id = object.get("id").cloned();
    match object.get("text") {
        Some(Value::String(text)) if !text.trim().is_empty() => ParsedLine::Text { id, text: text.clone() },
        Some(Value::String(_)) => ParsedLine::Invalid("\"text\" is empty".to_string()),
        Some(_) => ParsedLine::Invalid("\"text\" is not a string".to_string()),
        None => ParsedLine::Invalid("JSON object has no \"text\" field".to_string()),
    }
}

fn write_batch(
    classifier: &Classifier,
    pending: &[(usize, ParsedLine)],
    output: &mut impl Write,
) -> anyhow::Result<()> {
    let texts: Vec<&str> = pending
        .iter()
        .filter_map(|(_, parsed)| match parsed {
            ParsedLine::Text { text, .. } => Some(text.as_str()),
            ParsedLine::Invalid(_) => None,
        })
        .collect();
    let mut predictions = classifier.classify(&texts).into_iter();
    for (line, parsed) in pending {
        let record = match parsed {
            ParsedLine::Text { id, text } => {
                let prediction = predictions.next().expect("one prediction per text");
                ClassifiedLine {
                    line: *line,
                    id: id.clone(),
                    text: Some(text),
                    topic: Some(classifier.topic_label(prediction.topic_index)),
                    topic_prob: Some(prediction.topic_probability),
                    sentiment: Some(prediction.sentiment.label()),
                    sentiment_probs: Some(prediction.sentiment),
                    error: None,
                    model_version: classifier.version(),
                }
            }
            ParsedLine::Invalid(reason) => ClassifiedLine {
                line: *line,
                id: None,
                text: None,
                topic: None,
                topic_prob: None,
                sentiment: None,
                sentiment_probs: None,
                error: Some(reason.clone()),
                model_version: classifier.version(),
            },
        };
        serde_json::to_writer(&mut *output, &record)?;
        output.write_all(b"\n")?;
    }
    Ok(())
}
