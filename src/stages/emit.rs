//! The emit stage: the enriched record of each classified message (or the dead letters of a batch the model failed
//! on, or the null-answer record of an unsupported language); once acknowledged, the message is counted in its
//! topic's and entities' windows, archived, and its offset released.

use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::output::{
    acquire_record_slot, complete_offset, enqueue_with_retry, join_all, reap_finished, send_dead_letter,
    send_with_retry,
};
use super::{PendingMessage, Shared};
use crate::app::now_ms;
use crate::archive::ArchiveRecord;
use crate::locks;
use crate::model::Prediction;
use crate::model::worker::{ClassifiedBatch, InferenceFailure, ModelIdentity};
use crate::pipeline::decode::{DeadLetter, DeadLetterReason};
use crate::pipeline::record::{self, Classification};
use crate::pipeline::reorder::InOrder;
use crate::text::language::UnsupportedLanguage;
use crate::window::ObserveOutcome;

/// Sends each classified message's enriched record; once acknowledged, counts it in the
/// windows and releases its offset.
///
/// Records are handed to the producer here, one after another in input order (Kafka keeps a
/// key's order only in the order records are enqueued); each acknowledgement is then awaited by
/// a task of its own, so a batch's records are in flight together.
pub(crate) async fn emit_batches(
    shared: Arc<Shared>,
    mut results: mpsc::Receiver<ClassifiedBatch<PendingMessage>>,
) -> anyhow::Result<()> {
    let mut sends = JoinSet::new();
    let mut in_order = InOrder::default();
    while let Some(batch) = results.recv().await {
        // Batches carry contiguous runs of sequence numbers and are never empty.
        let first = batch.items.first().map_or(0, |pending| pending.sequence);
        let len = batch.items.len();
        for batch in in_order.push(first, len, batch) {
            emit_batch(&shared, &mut sends, batch).await;
        }
    }
    debug_assert_eq!(in_order.waiting(), 0, "every batch comes back from the workers");
    join_all(&mut sends).await;
    Ok(())
}

/// Enqueues one batch's records, in order, and spawns the tasks that await their acknowledgements.
async fn emit_batch(shared: &Arc<Shared>, sends: &mut JoinSet<()>, batch: ClassifiedBatch<PendingMessage>) {
    shared.metrics.inference_duration.observe(batch.inference_duration.as_secs_f64());
    let model = Arc::clone(&batch.model);
    let predictions = match batch.predictions {
        Ok(predictions) => predictions,
        Err(failure) => {
            dead_letter_failed_batch(shared, sends, batch.items, &failure, &model.version).await;
            return;
        }
    };
    for (pending, prediction) in batch.items.into_iter().zip(predictions) {
        reap_finished(sends);
        let permit = acquire_record_slot(shared).await;
        let prediction = match prediction {
            Ok(prediction) => prediction,
            Err(unsupported) => {
                let delivered = emit_unsupported_language(shared, &pending, &unsupported, &model.version).await;
                let task_shared = Arc::clone(shared);
                sends.spawn(async move {
                    if delivered.await.is_some() {
                        let metrics = &task_shared.metrics;
                        metrics.messages_unsupported_language.with_label_values(&[unsupported.metric_label]).inc();
                        metrics.end_to_end_latency.observe(pending.message.received_at.elapsed().as_secs_f64());
                        complete_offset(&task_shared, &pending.message);
                    }
                    drop(permit);
                });
                continue;
            }
        };
        let entities = shared.entities.as_ref().map(|windows| windows.entities(&pending.decoded.text));
        let classification = classify_as(&model, &prediction, entities.as_deref());
        let processed_at_ms = now_ms();
        let payload = record::enriched_record(&pending.message, &pending.decoded, &classification, processed_at_ms);
        let output_topic = shared.config.kafka.output_topic.clone();
        let key = pending.message.key.clone();
        let delivered = enqueue_with_retry(shared, "enriched", output_topic, key, payload).await;
        let task_shared = Arc::clone(shared);
        let model = Arc::clone(&model);
        sends.spawn(async move {
            if let Some(payload) = delivered.await {
                let classification = classify_as(&model, &prediction, entities.as_deref());
                let (topic, sentiment) = (classification.topic, classification.sentiment);
                task_shared.metrics.messages_classified.with_label_values(&[topic, sentiment]).inc();
                task_shared.metrics.end_to_end_latency.observe(pending.message.received_at.elapsed().as_secs_f64());
                count_in_windows(&task_shared, &pending, &classification, &payload).await;
                if let Some(archive) = &task_shared.archive {
                    let archived =
                        ArchiveRecord::new(&pending.message, &pending.decoded, &classification, processed_at_ms);
                    // Before the offset is released: a stalled archive holds back consumption.
                    archive.archive(archived).await;
                }
                complete_offset(&task_shared, &pending.message);
            }
            drop(permit);
        });
    }
}

/// What the model said about one message, as the record, windows and archive take it.
fn classify_as<'a>(
    model: &'a ModelIdentity,
    prediction: &Prediction,
    entities: Option<&'a [String]>,
) -> Classification<'a> {
    Classification {
        topic: model.topic_labels[prediction.topic_index].as_str(),
        topic_probability: prediction.topic_probability,
        sentiment: prediction.sentiment.label(),
        sentiment_probabilities: prediction.sentiment,
        model_version: &model.version,
        entities,
    }
}

/// The model failed on this batch: each of its messages goes to the dead-letter topic as
/// `inference_failed`, with its original bytes so it can be replayed once the model is fixed, and
/// its offset then completes, so the partition moves on and the process keeps serving.
async fn dead_letter_failed_batch(
    shared: &Arc<Shared>,
    sends: &mut JoinSet<()>,
    items: Vec<PendingMessage>,
    failure: &InferenceFailure,
    model_version: &str,
) {
    tracing::error!(
        model_version,
        messages = items.len(),
        cause = %failure.cause,
        "inference failed on a batch; its messages go to the dead-letter topic"
    );
    let detail = format!("model {model_version}: {}", failure.cause);
    let dead_letter = Arc::new(DeadLetter::new(DeadLetterReason::InferenceFailed, detail));
    for pending in items {
        reap_finished(sends);
        let permit = acquire_record_slot(shared).await;
        let task_shared = Arc::clone(shared);
        let dead_letter = Arc::clone(&dead_letter);
        sends.spawn(async move {
            send_dead_letter(&task_shared, &pending.message, &dead_letter).await;
            drop(permit);
        });
    }
}

async fn count_in_windows(
    shared: &Shared,
    pending: &PendingMessage,
    classification: &Classification<'_>,
    payload: &[u8],
) {
    let observation = record::observation(&pending.message, &pending.decoded, classification);
    let now_ms = now_ms();
    let outcome = locks::lock(&shared.windows).observe(&observation, now_ms);
    if let (ObserveOutcome::Counted, Some(windows), Some(entities)) =
        (outcome, &shared.entities, classification.entities)
    {
        windows.observe(&observation, entities, now_ms);
    }
    if outcome == ObserveOutcome::Late {
        shared.metrics.messages_late.with_label_values(&[classification.topic]).inc();
        if let Some(late_topic) = &shared.config.kafka.late_topic {
            send_with_retry(shared, "late", late_topic, pending.message.key.as_deref(), payload, &[]).await;
        }
    }
}

/// A message in a language the model does not serve: forwarded with null answers (enqueued now, in
/// input order; the returned future resolves once it is acknowledged), then counted, but kept out
/// of the windows (its "sentiment" would be a guess) and the archive (which holds the model's
/// predictions, for labelling).
async fn emit_unsupported_language(
    shared: &Arc<Shared>,
    pending: &PendingMessage,
    unsupported: &UnsupportedLanguage,
    model_version: &str,
) -> impl std::future::Future<Output = Option<Vec<u8>>> + Send + use<> {
    let payload = record::unsupported_language_record(
        &pending.message,
        &pending.decoded,
        &unsupported.language,
        model_version,
        now_ms(),
    );
    let output_topic = shared.config.kafka.output_topic.clone();
    enqueue_with_retry(shared, "enriched", output_topic, pending.message.key.clone(), payload).await
}
