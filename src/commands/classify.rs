//! `sentmon classify`: JSONL or plain lines in, one JSON line out per input line, in order.
//! Bad lines (empty, malformed JSON, no text) get an `error` field instead of stopping the run; lines in a language
//! the model does not serve get null answers and `unsupported_language`, as the daemon's records do.

use std::io::{BufRead, BufReader, BufWriter, Write};

use anyhow::Context;
use serde::Serialize;
use serde_json::Value;

use crate::cli::ClassifyArgs;
use crate::model::{self, Classifier, SentimentProbabilities};

/// One output line. The answer fields (`topic`, `topic_prob`, `sentiment`, `sentiment_probs`) are absent on error
/// lines and null on lines in an unsupported language (so a consumer of the daemon's records reads both alike).
#[derive(Debug, Serialize)]
struct ClassifiedLine<'a> {
    line: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    id: Option<Value>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic: Option<Option<&'a str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    topic_prob: Option<Option<f32>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sentiment: Option<Option<&'static str>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sentiment_probs: Option<Option<SentimentProbabilities>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    unsupported_language: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
    model_version: &'a str,
}

impl<'a> ClassifiedLine<'a> {
    /// A line with no answer, no text and no error yet.
    fn blank(line: usize, model_version: &'a str) -> ClassifiedLine<'a> {
        ClassifiedLine {
            line,
            id: None,
            text: None,
            topic: None,
            topic_prob: None,
            sentiment: None,
            sentiment_probs: None,
            unsupported_language: None,
            error: None,
            model_version,
        }
    }
}

/// A parsed input line: either a text to classify (with the input's id and declared `lang`, if any) or why not.
enum ParsedLine {
    Text { id: Option<Value>, text: String, lang: Option<String> },
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
        return ParsedLine::Text { id: None, text: line.to_string(), lang: None };
    }
    let object = match serde_json::from_str::<Value>(line) {
        Ok(Value::Object(object)) => object,
        Ok(_) => return ParsedLine::Invalid("JSON line is not an object".to_string()),
        Err(error) => return ParsedLine::Invalid(format!("malformed JSON: {error}")),
    };
    let id = object.get("id").cloned();
    // As in the daemon's decoding: a `lang` that is not a string is ignored, not an error.
    let lang = object.get("lang").and_then(Value::as_str).map(str::to_owned);
    match object.get("text") {
        Some(Value::String(text)) if !text.trim().is_empty() => ParsedLine::Text { id, text: text.clone(), lang },
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
    let messages: Vec<(&str, Option<&str>)> = pending
        .iter()
        .filter_map(|(_, parsed)| match parsed {
            ParsedLine::Text { text, lang, .. } => Some((text.as_str(), lang.as_deref())),
            ParsedLine::Invalid(_) => None,
        })
        .collect();
    let mut predictions = classifier.classify_gated(&messages).into_iter();
    for (line, parsed) in pending {
        let mut record = ClassifiedLine::blank(*line, classifier.version());
        match parsed {
            ParsedLine::Text { id, text, .. } => {
                record.id = id.clone();
                record.text = Some(text.as_str());
                match predictions.next().expect("one prediction per text") {
                    Ok(prediction) => {
                        record.topic = Some(Some(classifier.topic_label(prediction.topic_index)));
                        record.topic_prob = Some(Some(prediction.topic_probability));
                        record.sentiment = Some(Some(prediction.sentiment.label()));
                        record.sentiment_probs = Some(Some(prediction.sentiment));
                    }
                    Err(unsupported) => {
                        (record.topic, record.topic_prob, record.sentiment, record.sentiment_probs) =
                            (Some(None), Some(None), Some(None), Some(None));
                        record.unsupported_language = Some(unsupported.language);
                    }
                }
            }
            ParsedLine::Invalid(reason) => record.error = Some(reason.clone()),
        }
        serde_json::to_writer(&mut *output, &record)?;
        output.write_all(b"\n")?;
    }
    Ok(())
}
