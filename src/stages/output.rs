//! What several stages share on the way out: a bounded number of records in flight, produce with retries, dead
//! letters, and the per-record task sets whose panics must take the stage down.

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;

use super::Shared;
use crate::message::{InputMessage, MessagePosition};
use crate::pipeline::decode::{self, DeadLetter};

/// Produce retries back off from this to the maximum, forever: a record is never given up,
/// because giving up would mean committing past a message whose output was lost.
const PRODUCE_RETRY_INITIAL: Duration = Duration::from_millis(200);

const PRODUCE_RETRY_MAX: Duration = Duration::from_secs(10);

/// Sends `message`'s original bytes to the dead-letter topic with headers saying why; once
/// acknowledged, counts it under its reason and releases its offset.
pub(crate) async fn send_dead_letter(shared: &Shared, message: &InputMessage, dead_letter: &DeadLetter) {
    let headers = decode::dead_letter_headers(message, dead_letter);
    let headers: Vec<(&str, String)> = headers.into_iter().collect();
    let payload = message.payload.as_deref().unwrap_or_default();
    let topic = &shared.config.kafka.dead_letter_topic;
    if send_with_retry(shared, "dead_letter", topic, message.key.as_deref(), payload, &headers).await {
        shared.metrics.ingest.messages_dead_lettered.with_label_values(&[dead_letter.reason.as_str()]).inc();
        shared.completions.complete(vec![MessagePosition::of(message)]);
    }
}

/// Takes the results of the finished tasks of a stage's per-record set. A panic in one is raised
/// again here, so the stage fails with it and the process goes down: swallowed, it would leave
/// that record's offset pending and its partition's commits pinned for ever, silently.
pub(crate) fn reap_finished(tasks: &mut JoinSet<()>) {
    while let Some(result) = tasks.try_join_next() {
        raise_panic(result);
    }
}

/// Waits for every task of a stage's per-record set, raising a panic as [`reap_finished`] does.
pub(crate) async fn join_all(tasks: &mut JoinSet<()>) {
    while let Some(result) = tasks.join_next().await {
        raise_panic(result);
    }
}

fn raise_panic(result: Result<(), tokio::task::JoinError>) {
    if let Err(error) = result
        && error.is_panic()
    {
        std::panic::resume_unwind(error.into_panic());
    }
}

pub(crate) async fn acquire_record_slot(shared: &Shared) -> tokio::sync::OwnedSemaphorePermit {
    Arc::clone(&shared.in_flight_records).acquire_owned().await.expect("the record semaphore is never closed")
}

/// Hands a record to the producer now, so records enqueued one after another keep that order on
/// their partition (Kafka's per-key order), and returns a future that resolves once it is
/// acknowledged, to the payload (so the caller needs no copy of it), or to `None` when the drain
/// was abandoned first: a first delivery that fails is sent again as [`send_with_retry`] does. A retried record may land after
/// records enqueued later; librdkafka's idempotent producer retries transient errors itself, so
/// that takes a failure it gave up on.
pub(crate) async fn enqueue_with_retry(
    shared: &Arc<Shared>,
    output: &'static str,
    topic: String,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
) -> impl std::future::Future<Output = Option<Vec<u8>>> + Send + use<> {
    let first_try = shared.sink.enqueue(&topic, key.as_deref(), &payload, &[]).await;
    let shared = Arc::clone(shared);
    async move {
        let error = match first_try {
            Ok(delivery) => match delivery.await {
                Ok(()) => {
                    shared.metrics.output.records_produced.with_label_values(&[output]).inc();
                    return Some(payload);
                }
                Err(error) => error,
            },
            Err(error) => error,
        };
        shared.metrics.output.produce_failures.with_label_values(&[output]).inc();
        tracing::warn!(%error, topic, "produce failed; retrying");
        send_with_retry(&shared, output, &topic, key.as_deref(), &payload, &[]).await.then_some(payload)
    }
}

/// Sends until acknowledged (returns true) or the drain is abandoned (false). Every failure is
/// counted and logged; the record is never dropped while the process may still deliver it.
pub(crate) async fn send_with_retry(
    shared: &Shared,
    output: &'static str,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: &[(&str, String)],
) -> bool {
    send_attempts(shared, output, topic, key, payload, headers, u32::MAX).await.is_ok()
}

/// Sends until acknowledged, backing off between tries, for at most `attempts` tries; the error
/// says why the last one failed, or that the drain was abandoned. Every failure is counted.
pub(crate) async fn send_attempts(
    shared: &Shared,
    output: &'static str,
    topic: &str,
    key: Option<&[u8]>,
    payload: &[u8],
    headers: &[(&str, String)],
    attempts: u32,
) -> Result<(), String> {
    let mut backoff = PRODUCE_RETRY_INITIAL;
    let mut attempt: u32 = 0;
    loop {
        attempt = attempt.saturating_add(1);
        match shared.sink.send(topic, key, payload, headers).await {
            Ok(()) => {
                shared.metrics.output.records_produced.with_label_values(&[output]).inc();
                return Ok(());
            }
            Err(error) => {
                shared.metrics.output.produce_failures.with_label_values(&[output]).inc();
                if attempt >= attempts {
                    return Err(error.to_string());
                }
                tracing::warn!(%error, topic, retry_in_ms = backoff.as_millis() as u64, "produce failed; retrying");
            }
        }
        tokio::select! {
            () = shared.abandon.cancelled() => return Err("the drain ran out of time".to_owned()),
            () = tokio::time::sleep(backoff) => {}
        }
        backoff = (backoff * 2).min(PRODUCE_RETRY_MAX);
    }
}
