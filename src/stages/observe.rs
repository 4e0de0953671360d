//! The aggregate role's consume stage: takes the topic summaries the polling thread read from the repartition topic
//! into the windows (a restored topic's summaries already in its snapshot are skipped), and completes their offsets.
//! An unreadable summary goes to the dead-letter topic like any bad input.

use std::sync::Arc;

use anyhow::bail;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::output::{acquire_record_slot, join_all, reap_finished, send_dead_letter};
use crate::app::now_ms;
use crate::fleet::restore::AggregatorState;
use crate::fleet::{TopicSummary, watermark_source};
use crate::locks;
use crate::message::{InputMessage, MessagePosition};
use crate::pipeline::decode::{DeadLetter, DeadLetterReason};
use crate::window::ObserveOutcome;

/// Summaries applied under one lock of the windows at most: what a poll burst delivers, without holding the lock
/// long enough to delay a tick.
const SUMMARIES_PER_LOCK: usize = 1024;

/// Applies summaries until told to stop. The consumed queue closing first means the polling thread died: a stage
/// failure.
pub(crate) async fn observe_summaries(
    shared: Arc<Shared>,
    state: AggregatorState,
    mut consumed: mpsc::Receiver<InputMessage>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut dead_letters = JoinSet::new();
    let mut burst = Vec::with_capacity(SUMMARIES_PER_LOCK);
    loop {
        let first = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            message = consumed.recv() => match message {
                Some(message) => message,
                None => bail!("the Kafka polling thread ended (see the log lines above)"),
            },
        };
        burst.push(first);
        while burst.len() < SUMMARIES_PER_LOCK
            && let Ok(message) = consumed.try_recv()
        {
            burst.push(message);
        }
        reap_finished(&mut dead_letters);
        for (message, dead_letter) in apply(&shared, &state, &mut burst) {
            let permit = acquire_record_slot(&shared).await;
            let task_shared = Arc::clone(&shared);
            dead_letters.spawn(async move {
                send_dead_letter(&task_shared, &message, &dead_letter).await;
                drop(permit);
            });
        }
    }
    join_all(&mut dead_letters).await;
    Ok(())
}

/// Applies a burst of summaries under one lock and completes them; returns the unreadable ones with why.
fn apply(shared: &Shared, state: &AggregatorState, burst: &mut Vec<InputMessage>) -> Vec<(InputMessage, DeadLetter)> {
    let metrics = &shared.metrics;
    let now_ms = now_ms();
    let mut unreadable = Vec::new();
    let mut done = Vec::with_capacity(burst.len());
    {
        let mut windows = locks::lock(&state.windows);
        let mut ownership = locks::lock(&state.ownership);
        for message in burst.drain(..) {
            let mut summary = match TopicSummary::from_json(message.payload.as_deref().unwrap_or_default()) {
                Ok(summary) => summary,
                Err(error) => {
                    let detail = format!("not a topic summary: {error}");
                    unreadable.push((message, DeadLetter::new(DeadLetterReason::InvalidJson, detail)));
                    continue;
                }
            };
            summary.observation.source = watermark_source(&summary.observation.source, message.partition);
            let observation = &summary.observation;
            done.push(MessagePosition::of(&message));
            if !ownership.admit(&observation.topic, message.partition, message.offset, &summary.model_version) {
                metrics.fleet.summaries_already_restored.inc();
                continue;
            }
            metrics.fleet.summaries_applied.inc();
            if windows.observe(observation, now_ms) == ObserveOutcome::Late {
                metrics.topics.messages_late.with_label_values(&[&observation.topic]).inc();
            }
        }
        metrics.fleet.topics_owned.set(ownership.topic_count() as i64);
    }
    shared.completions.complete(done);
    unreadable
}
