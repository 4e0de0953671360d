//! `sentmon replay`: sends a JSONL archive to a Kafka topic at a given rate, with progress and a summary.

use std::io::Write;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

use crate::cli::ReplayArgs;
use crate::ingest::replay::{self, ReplayProgress, ReplaySettings, ReplaySummary};

/// Progress redraws per second: enough to look live, few enough to cost nothing at 500k msg/s.
const PROGRESS_REFRESH_PER_SECOND: u8 = 10;

const PROGRESS_TEMPLATE: &str =
    "{spinner} [{elapsed_precise}] {bar:30} {human_pos}/{human_len} msgs  {per_sec:0}  eta {eta}  {msg}";

pub fn run(args: &ReplayArgs) -> anyhow::Result<()> {
    let settings = ReplaySettings {
        brokers: args.brokers.clone(),
        topic: args.topic.clone(),
        messages_per_second: args.rate,
        key_field: args.key_field.clone(),
    };
    settings.validate()?;
    // Counting first costs one extra read of the file but gives the bar a length and an ETA.
    let message_count = replay::count_messages(&args.file)?;
    let progress_bar = ProgressBar::with_draw_target(
        Some(message_count),
        ProgressDrawTarget::stderr_with_hz(PROGRESS_REFRESH_PER_SECOND),
    );
    progress_bar.set_style(
        ProgressStyle::with_template(PROGRESS_TEMPLATE).expect("the progress template is valid").progress_chars("=> "),
    );
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("failed to start the async runtime")?;
    let summary = runtime.block_on(replay::replay_archive(&args.file, &settings, |progress: ReplayProgress| {
        progress_bar.set_position(progress.delivered + progress.failed);
        if progress.failed > 0 {
            progress_bar.set_message(format!("{} failed", progress.failed));
        }
    }));
    progress_bar.finish_and_clear();
    let summary = summary?;
    report(args, &summary)
}

/// Prints the summary on stdout, warnings on stderr, and fails if any message was not delivered.
fn report(args: &ReplayArgs, summary: &ReplaySummary) -> anyhow::Result<()> {
    let seconds = summary.elapsed.as_secs_f64();
    let achieved_rate = if seconds > 0.0 { summary.delivered as f64 / seconds } else { 0.0 };
    let mut stdout = std::io::stdout().lock();
    writeln!(
        stdout,
        "sent {} messages to topic {} in {seconds:.1} s ({achieved_rate:.0} msg/s), {} failed",
        summary.delivered, args.topic, summary.failed
    )
    .and_then(|()| stdout.flush())
    .context("failed to print the summary")?;
    if let (Some(field), Some((line_number, reason))) = (&args.key_field, &summary.first_keyless) {
        eprintln!(
            "warning: {} line(s) sent without a key: key field {field:?} could not be read (first at line {line_number}: {reason})",
            summary.keyless
        );
    }
    if let Some((line_number, reason)) = &summary.first_failure {
        anyhow::bail!(
            "{} of {} messages were not delivered to topic {}; first failure at line {line_number}: {reason} (check --brokers {} and that the broker is up)",
            summary.failed,
            summary.delivered + summary.failed,
            args.topic,
            args.brokers
        );
    }
    Ok(())
}
