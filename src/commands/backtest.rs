//! `sentmon backtest`: reads a stream archive or any JSONL with `text` and `ts`, reuses archived predictions or
//! classifies in batches, and runs the daemon's windows and detector over it in event time ([`crate::backtest`]);
//! prints every alert and alerts per week per scope, and writes the JSON and HTML reports.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::archive::export::{display_paths, for_each_row, is_json_lines};
use crate::archive::record::Predicted;
use crate::backtest::{Backtest, BacktestReport, event_time_text, html};
use crate::cli::BacktestArgs;
use crate::config::{Config, DetectorConfig, EntitiesConfig, WindowsConfig};
use crate::entity::{EntityMatcher, Watchlist};
use crate::model::{self, Classifier};
use crate::pipeline::decode::payload_timestamp_ms;
use crate::pipeline::record::sentiment_from_label;
use crate::window::{ExampleText, Observation, Sentiment};

/// Progress redraws per second, as `replay`.
const PROGRESS_REFRESH_PER_SECOND: u8 = 10;
const PROGRESS_TEMPLATE: &str = "{spinner} [{elapsed_precise}] {bar:30} {binary_bytes}/{binary_total_bytes}  {binary_bytes_per_sec}  eta {eta}  {msg}";
/// Rows between progress updates: often enough to look live, rarely enough to cost nothing.
const PROGRESS_EVERY_ROWS: u64 = 4_096;
/// Bad rows listed one by one on stderr before only the count is given.
const BAD_ROWS_LISTED: u64 = 20;
/// The window store's source name: one recorded stream, one watermark.
const SOURCE: &str = "backtest";

/// What was read, for the report.
#[derive(Debug, Default, Serialize)]
struct InputSummary {
    files: Vec<PathBuf>,
    rows: u64,
    bad_rows: u64,
    /// Rows whose archived `predicted` fields were used.
    reused_predictions: u64,
    /// Rows classified with the bundle.
    classified: u64,
    /// Rows in a language the bundle does not serve: left out, as the daemon leaves them out of its windows.
    unsupported_language: u64,
    /// The bundle's version, when one was loaded.
    model_version: Option<String>,
    /// Entities in the --watchlist (cashtags are scopes too, watched or not).
    watched_entities: usize,
    elapsed_secs: f64,
    messages_per_second: f64,
}

/// The JSON report: what was read, the settings, and what would have fired.
#[derive(Serialize)]
struct BacktestOutput<'a> {
    input: &'a InputSummary,
    windows: &'a WindowsConfig,
    detector: &'a DetectorConfig,
    #[serde(flatten)]
    report: &'a BacktestReport,
}

/// One input line. Unknown fields are ignored: archive rows and producers' JSON carry many.
#[derive(Deserialize)]
struct InputRow {
    text: String,
    #[serde(default)]
    id: Option<Value>,
    #[serde(default)]
    ts: Option<Value>,
    /// The stream archive's event time (RFC 3339), used when there is no `ts`.
    #[serde(default)]
    event_time: Option<String>,
    #[serde(default)]
    lang: Option<Value>,
    #[serde(default)]
    predicted: Option<Predicted>,
    #[serde(default)]
    model_version: Option<Value>,
}

/// A row waiting for its batch to be classified.
struct PendingRow {
    id: Option<String>,
    text: String,
    lang: Option<String>,
    event_time_ms: i64,
    /// Topic, sentiment and negative probability, from the archive or the model.
    answer: Option<(String, Sentiment, f32)>,
    model_version: Option<String>,
}

/// Reads rows into batches, classifies what needs it, and feeds the backtest in row order.
struct Runner<'a> {
    args: &'a BacktestArgs,
    backtest: Backtest,
    classifier: Option<Classifier>,
    pending: Vec<PendingRow>,
    summary: InputSummary,
}

pub fn run(args: &BacktestArgs) -> anyhow::Result<()> {
    let (windows, detector, entities) = match &args.config {
        Some(path) => {
            let config = Config::load(Some(path))?;
            (config.windows, config.detector, config.entities)
        }
        None => (WindowsConfig::default(), DetectorConfig::default(), EntitiesConfig::default()),
    };
    // --watchlist wins over the config's [entities], and counts every cashtag: a backtest shows what would surge.
    let matcher = match args.watchlist.as_deref() {
        Some(path) => Some(EntityMatcher::new(&Watchlist::load(path)?, true)?),
        None => entities.matcher()?,
    };
    let watched_entities = matcher.as_ref().map_or(0, |matcher| matcher.watched_names().len());
    let backtest =
        Backtest::new(windows.to_window_config(), detector.to_detector_config(), matcher).map_err(|problems| {
            anyhow::anyhow!("invalid [windows] or [detector] settings: {}; fix them in the config", problems.join("; "))
        })?;
    let files: Vec<PathBuf> =
        crate::dataset::resolve_files(&args.paths)?.into_iter().filter(|path| is_json_lines(path)).collect();
    if files.is_empty() {
        bail!("no .jsonl or .jsonl.gz files under {}", display_paths(&args.paths));
    }
    let total_bytes: u64 = files.iter().map(|file| std::fs::metadata(file).map_or(0, |metadata| metadata.len())).sum();
    let progress = ProgressBar::with_draw_target(
        Some(total_bytes),
        ProgressDrawTarget::stderr_with_hz(PROGRESS_REFRESH_PER_SECOND),
    );
    progress.set_style(
        ProgressStyle::with_template(PROGRESS_TEMPLATE).expect("the progress template is valid").progress_chars("=> "),
    );
    let started = Instant::now();
    let mut runner = Runner {
        args,
        backtest,
        classifier: None,
        pending: Vec::with_capacity(args.batch_size),
        summary: InputSummary { files: files.clone(), watched_entities, ..InputSummary::default() },
    };
    let mut bytes_before_file = 0;
    for file in &files {
        let mut line = 0u64;
        for_each_row(file, |row, file_bytes_read| {
            line += 1;
            runner.read_row(file, line, row)?;
            if runner.summary.rows % PROGRESS_EVERY_ROWS == 0 {
                progress.set_position(bytes_before_file + file_bytes_read);
                progress.set_message(format!(
                    "{} messages, {} alerts",
                    runner.backtest.messages(),
                    runner.backtest.alert_count()
                ));
            }
            Ok(())
        })?;
        bytes_before_file += std::fs::metadata(file).map_or(0, |metadata| metadata.len());
    }
    runner.flush()?;
    progress.finish_and_clear();
    let Runner { backtest, mut summary, .. } = runner;
    let report = backtest.finish();
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    summary.messages_per_second = summary.rows as f64 / summary.elapsed_secs.max(1e-9);
    if summary.bad_rows > BAD_ROWS_LISTED {
        eprintln!("... {} bad rows in all, skipped", summary.bad_rows);
    }
    let output = BacktestOutput { input: &summary, windows: &windows, detector: &detector, report: &report };
    if let Some(path) = &args.json {
        let json = serde_json::to_vec_pretty(&output).context("failed to serialise the report")?;
        write_file(path, &json)?;
    }
    if let Some(path) = &args.html {
        let subtitle = format!(
            "{} ({} rows); windows of {} s buckets, detector view {} s, z >= {}, volume false-alarm probability {:e}",
            display_paths(&args.paths),
            summary.rows,
            windows.bucket_width_secs,
            detector.view_width_secs,
            detector.z_threshold,
            detector.volume.false_alarm_probability
        );
        write_file(path, html::render(&report, &subtitle).as_bytes())?;
    }
    print_summary(&summary, &report).context("failed to print the summary")
}

impl Runner<'_> {
    fn read_row(&mut self, file: &Path, line: u64, row: &[u8]) -> anyhow::Result<()> {
        self.summary.rows += 1;
        match parse_row(row, self.args.reclassify) {
            Ok(pending) => {
                self.summary.reused_predictions += u64::from(pending.answer.is_some());
                self.pending.push(pending);
                if self.pending.len() >= self.args.batch_size {
                    self.flush()?;
                }
            }
            Err(reason) => {
                self.summary.bad_rows += 1;
                if self.summary.bad_rows <= BAD_ROWS_LISTED {
                    eprintln!("bad row {}:{line}: {reason}", file.display());
                }
            }
        }
        Ok(())
    }

    /// Classifies the batch's rows that have no answer, then feeds every row to the backtest in order.
    fn flush(&mut self) -> anyhow::Result<()> {
        let mut pending = std::mem::take(&mut self.pending);
        let unanswered: Vec<usize> = (0..pending.len()).filter(|&index| pending[index].answer.is_none()).collect();
        if !unanswered.is_empty() {
            let classifier = self.classifier()?;
            let messages: Vec<(&str, Option<&str>)> = unanswered
                .iter()
                .map(|&index| (pending[index].text.as_str(), pending[index].lang.as_deref()))
                .collect();
            let answers: Vec<Option<(String, Sentiment, f32)>> = classifier
                .classify_gated(&messages)
                .into_iter()
                .map(|prediction| {
                    let prediction = prediction.ok()?;
                    let sentiment = sentiment_from_label(prediction.sentiment.label(), &prediction.sentiment);
                    let topic = classifier.topic_label(prediction.topic_index).to_owned();
                    Some((topic, sentiment, prediction.sentiment.negative))
                })
                .collect();
            let version = classifier.version().to_owned();
            for (&index, answer) in unanswered.iter().zip(answers) {
                if answer.is_some() {
                    self.summary.classified += 1;
                } else {
                    self.summary.unsupported_language += 1;
                }
                pending[index].answer = answer;
                pending[index].model_version = Some(version.clone());
            }
        }
        for row in &pending {
            let Some((topic, sentiment, negative_probability)) = &row.answer else {
                continue;
            };
            if let Some(version) = &row.model_version {
                self.backtest.set_model_version(version);
            }
            self.backtest.observe(&Observation {
                source: SOURCE.to_owned(),
                topic: topic.clone(),
                event_time_ms: row.event_time_ms,
                sentiment: *sentiment,
                negative_probability: *negative_probability,
                example: ExampleText { id: row.id.clone(), text: row.text.clone() },
            });
        }
        pending.clear();
        self.pending = pending;
        Ok(())
    }

    /// The bundle, loaded on first need: an archive with predictions never loads libtorch.
    fn classifier(&mut self) -> anyhow::Result<&Classifier> {
        if self.classifier.is_none() {
            model::use_command_threads(self.args.threads);
            let classifier = Classifier::load(&self.args.model).with_context(|| {
                format!(
                    "rows without `predicted` fields need a model to classify them, and {} did not load \
                     (pass --model DIR)",
                    self.args.model.display()
                )
            })?;
            self.summary.model_version = Some(classifier.version().to_owned());
            self.classifier = Some(classifier);
        }
        Ok(self.classifier.as_ref().expect("loaded above"))
    }
}

/// A row, or why it cannot be used.
fn parse_row(row: &[u8], reclassify: bool) -> Result<PendingRow, String> {
    let input: InputRow =
        serde_json::from_slice(row).map_err(|error| format!("not a JSON object with a string `text`: {error}"))?;
    if input.text.trim().is_empty() {
        return Err("`text` is empty".to_owned());
    }
    let event_time_ms = match (&input.ts, &input.event_time) {
        (Some(ts), _) => payload_timestamp_ms(ts)
            .ok_or_else(|| format!("`ts` {ts} is not RFC 3339, epoch milliseconds or epoch seconds"))?,
        (None, Some(event_time)) => chrono::DateTime::parse_from_rfc3339(event_time)
            .map_err(|error| format!("`event_time` {event_time:?} is not RFC 3339: {error}"))?
            .timestamp_millis(),
        (None, None) => return Err("no `ts` (or archive `event_time`): the backtest runs in event time".to_owned()),
    };
    let answer = input.predicted.filter(|_| !reclassify).map(|predicted| {
        let sentiment = sentiment_from_label(&predicted.sentiment, &predicted.sentiment_probs);
        (predicted.topic, sentiment, predicted.sentiment_probs.negative)
    });
    let text_of = |value: Value| match value {
        Value::String(text) => Some(text),
        Value::Null => None,
        other => Some(other.to_string()),
    };
    Ok(PendingRow {
        id: input.id.and_then(text_of),
        text: input.text,
        lang: input.lang.and_then(|lang| lang.as_str().map(str::to_owned)),
        event_time_ms,
        model_version: if answer.is_some() { input.model_version.and_then(text_of) } else { None },
        answer,
    })
}

fn write_file(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    std::fs::write(path, contents).with_context(|| format!("failed to write {}", path.display()))
}

fn print_summary(summary: &InputSummary, report: &BacktestReport) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    let span = match (report.first_event_ms, report.last_event_ms) {
        (Some(first), Some(last)) => {
            format!("{} to {} ({:.2} weeks)", event_time_text(first), event_time_text(last), report.weeks)
        }
        _ => "no messages".to_owned(),
    };
    writeln!(
        out,
        "backtest: {} rows in {:.1} s ({:.0} rows/s): {} counted, {} late, {} bad, {} in unsupported languages; {} \
         reused predictions, {} classified; {span}",
        summary.rows,
        summary.elapsed_secs,
        summary.messages_per_second,
        report.messages,
        report.late_messages,
        summary.bad_rows,
        summary.unsupported_language,
        summary.reused_predictions,
        summary.classified,
    )?;
    writeln!(out, "{} alerts", report.alerts.len())?;
    for alert in &report.alerts {
        let resolved = alert.resolved_at.as_deref().unwrap_or("(still firing at the end)");
        writeln!(out, "  {} -> {resolved}  {}", alert.fired_at, alert.summary)?;
    }
    if !report.alerts_per_week.is_empty() {
        writeln!(out, "alerts per week per scope:")?;
        for rate in &report.alerts_per_week {
            let per_week = rate.alerts_per_week.map_or_else(|| "-".to_owned(), |per_week| format!("{per_week:.1}"));
            writeln!(
                out,
                "  {} {}: {} alerts ({} rate, {} volume), {per_week} per week",
                rate.scope.kind(),
                rate.scope.name(),
                rate.alerts,
                rate.rate_alerts,
                rate.volume_alerts
            )?;
        }
    }
    out.flush()
}
