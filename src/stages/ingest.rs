//! The ingest stage: decodes each message the polling thread (`crate::ingest::consumer`) consumed and hands it to
//! the batcher, or sends it to the dead-letter topic; and checks that a broker answers. Backpressure needs nothing
//! here: while the batcher's queue is full this stage waits, the polling thread's queue fills, and that thread
//! pauses the partitions while staying in the group.

use std::sync::Arc;
use std::time::Duration;

use anyhow::bail;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::Shared;
use super::output::{acquire_record_slot, join_all, reap_finished, send_dead_letter};
use crate::app::now_ms;
use crate::message::{InputMessage, PendingMessage};
use crate::pipeline::decode;

/// How often /readyz re-checks that a broker answers.
const BROKER_CHECK_INTERVAL: Duration = Duration::from_secs(5);

const BROKER_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Decodes consumed messages until told to stop, sending each on or dead-lettering it. Returns once
/// the dead letters still in flight are sent (or the drain is abandoned). The consumed queue
/// closing first means the polling thread died: a stage failure.
pub(crate) async fn consume(
    shared: Arc<Shared>,
    mut consumed: mpsc::Receiver<InputMessage>,
    decoded_sender: mpsc::Sender<PendingMessage>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut dead_letters = JoinSet::new();
    // Numbers the messages handed to the batcher, in order, for emit's reordering.
    let mut next_sequence: u64 = 0;
    loop {
        let message = tokio::select! {
            biased;
            () = stop.cancelled() => break,
            message = consumed.recv() => match message {
                Some(message) => message,
                None => bail!("the Kafka polling thread ended (see the log lines above)"),
            },
        };
        reap_finished(&mut dead_letters);
        match decode::decode(&message, shared.config.input.format, shared.config.input.max_message_bytes, now_ms()) {
            Ok(decoded) => {
                let slot = tokio::select! {
                    biased;
                    () = stop.cancelled() => break,
                    slot = decoded_sender.reserve() => slot,
                };
                let Ok(slot) = slot else { break };
                slot.send(PendingMessage { message, decoded, sequence: next_sequence });
                next_sequence += 1;
            }
            Err(dead_letter) => {
                let permit = acquire_record_slot(&shared).await;
                let task_shared = Arc::clone(&shared);
                dead_letters.spawn(async move {
                    send_dead_letter(&task_shared, &message, &dead_letter).await;
                    drop(permit);
                });
            }
        }
    }
    // Closing the queue lets the batcher flush and finish while the dead letters complete.
    drop(decoded_sender);
    join_all(&mut dead_letters).await;
    Ok(())
}

pub(crate) async fn check_broker(shared: Arc<Shared>, stop: CancellationToken) -> anyhow::Result<()> {
    let mut ticker = tokio::time::interval(BROKER_CHECK_INTERVAL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let check_shared = Arc::clone(&shared);
        let reachable = tokio::task::spawn_blocking(move || check_shared.sink.broker_reachable(BROKER_CHECK_TIMEOUT))
            .await
            .unwrap_or(false);
        shared.readiness.set_broker_reachable(reachable);
    }
}
