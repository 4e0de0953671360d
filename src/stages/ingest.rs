//! The ingest stage: polls Kafka, decodes each message and hands it to the batcher, or sends it to the dead-letter
//! topic; pauses the partitions under backpressure while staying in the group; and checks that a broker answers.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::output::{acquire_record_slot, join_all, reap_finished, send_dead_letter};
use super::{PendingMessage, Shared};
use crate::app::now_ms;
use crate::pipeline::decode::{self, InputMessage};

/// How long the consumer waits for room downstream before it pauses its partitions, and then how
/// often it polls while paused. librdkafka evicts a member that does not poll for
/// `max.poll.interval.ms` (300 s by default, and at least `session.timeout.ms`, so never under a
/// few seconds in practice); one second is far below that and costs one cheap call per second.
const BACKPRESSURE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// How often /readyz re-checks that a broker answers.
const BROKER_CHECK_INTERVAL: Duration = Duration::from_secs(5);

const BROKER_CHECK_TIMEOUT: Duration = Duration::from_secs(3);

/// Polls Kafka until told to stop; decodes each message and sends it on, or dead-letters it.
/// Returns once the dead letters still in flight are sent (or the drain is abandoned).
pub(crate) async fn consume(
    shared: Arc<Shared>,
    decoded_sender: mpsc::Sender<PendingMessage>,
    stop: CancellationToken,
) -> anyhow::Result<()> {
    let mut dead_letters = JoinSet::new();
    // Messages that arrived while the partitions were paused, handled before polling again.
    let mut held = VecDeque::new();
    // Numbers the messages handed to the batcher, in order, for emit's reordering.
    let mut next_sequence: u64 = 0;
    loop {
        let message = match held.pop_front() {
            Some(held_message) => Ok(held_message),
            None => tokio::select! {
                biased;
                () = stop.cancelled() => break,
                message = shared.source.next_message() => message,
            },
        };
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                // Transport errors are retried by librdkafka; report and keep polling.
                tracing::warn!(%error, "kafka consume error");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        reap_finished(&mut dead_letters);
        match decode::decode(&message, shared.config.input.format, shared.config.input.max_message_bytes, now_ms()) {
            Ok(decoded) => {
                let Ok(slot) = wait_for_room(&shared, decoded_sender.reserve(), &mut held).await else {
                    break;
                };
                slot.send(PendingMessage { message, decoded, sequence: next_sequence });
                next_sequence += 1;
            }
            Err(dead_letter) => {
                let permit = wait_for_room(&shared, acquire_record_slot(&shared), &mut held).await;
                let task_shared = Arc::clone(&shared);
                dead_letters.spawn(async move {
                    send_dead_letter(&task_shared, &message, &dead_letter).await;
                    drop(permit);
                });
            }
        }
    }
    tracing::info!("stopped polling");
    // Closing the queue lets the batcher flush and finish while the dead letters complete.
    drop(decoded_sender);
    join_all(&mut dead_letters).await;
    Ok(())
}

/// Waits for `room` downstream while keeping this member in its consumer group.
///
/// When the output stalls, every queue fills and the consumer stops polling; after
/// `max.poll.interval.ms` without a poll librdkafka leaves the group (rust-rdkafka #433), and the
/// partitions' in-flight messages are re-read by whoever gets them. So a wait longer than
/// [`BACKPRESSURE_POLL_INTERVAL`] pauses every assigned partition and polls once per interval,
/// which serves rebalances and resets librdkafka's timer without fetching; the partitions
/// resume once there is room. A message delivered anyway (from a partition assigned during the
/// pause) is kept in `held`, in order, and the new assignment paused too.
async fn wait_for_room<T>(
    shared: &Shared,
    room: impl std::future::Future<Output = T>,
    held: &mut VecDeque<InputMessage>,
) -> T {
    tokio::pin!(room);
    let mut paused_since: Option<Instant> = None;
    let room = loop {
        if let Ok(room) = tokio::time::timeout(BACKPRESSURE_POLL_INTERVAL, &mut room).await {
            break room;
        }
        if paused_since.is_none() {
            tracing::info!("output backpressure: consumer paused");
            paused_since = Some(Instant::now());
        }
        if let Err(error) = shared.source.pause_assigned() {
            tracing::warn!(%error, "cannot pause the assigned partitions");
        }
        match shared.source.poll_once().await {
            Some(Ok(message)) => held.push_back(message),
            Some(Err(error)) => tracing::warn!(%error, "kafka consume error while paused"),
            None => {}
        }
    };
    if let Some(paused_since) = paused_since {
        if let Err(error) = shared.source.resume_assigned() {
            tracing::warn!(%error, "cannot resume the assigned partitions");
        }
        tracing::info!(
            paused_ms = paused_since.elapsed().as_millis() as u64,
            "output backpressure eased: consumer resumed"
        );
    }
    room
}

pub(crate) async fn check_broker(shared: Arc<Shared>, stop: CancellationToken) -> anyhow::Result<()> {
    let mut ticker = tokio::time::interval(BROKER_CHECK_INTERVAL);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        let check_shared = Arc::clone(&shared);
        let reachable = tokio::task::spawn_blocking(move || check_shared.source.broker_reachable(BROKER_CHECK_TIMEOUT))
            .await
            .unwrap_or(false);
        shared.readiness.set_broker_reachable(reachable);
    }
}
