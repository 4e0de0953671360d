//! The emit stage: the enriched record of each classified message (or the dead letters of a batch the model failed
//! on, or the null-answer record of an unsupported language), enqueued in input order; once a batch's records are
//! acknowledged, its messages are counted in their topic's and entities' windows (in the classify role: sent as
//! topic summaries to the aggregators) and archived, and their offsets released, once per batch.

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, mpsc};
use tokio::task::JoinSet;

use super::Shared;
use super::output::{
    acquire_record_slot, enqueue_with_retry, join_all, reap_finished, send_dead_letter, send_with_retry,
};
use crate::app::now_ms;
use crate::archive::ArchiveRecord;
use crate::config::PipelineRole;
use crate::fleet::TopicSummary;
use crate::locks;
use crate::message::{MessagePosition, PendingMessage};
use crate::model::Prediction;
use crate::model::worker::{ClassifiedBatch, InferenceFailure, ModelIdentity};
use crate::pipeline::decode::{DeadLetter, DeadLetterReason};
use crate::pipeline::record::{self, Classification};
use crate::pipeline::reorder::InOrder;
use crate::text::language::UnsupportedLanguage;
use crate::window::{Observation, ObserveOutcome};

/// Sends each classified message's enriched record; once a batch's records are acknowledged,
/// counts them in the windows and releases their offsets, once for the whole batch.
///
/// Records are handed to the producer here, one after another in input order (Kafka keeps a
/// key's order only in the order records are enqueued); a task per batch then awaits their
/// acknowledgements, so a batch's records are in flight together, and so are several batches'.
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
            reap_finished(&mut sends);
            emit_batch(&shared, &mut sends, batch).await;
        }
    }
    debug_assert_eq!(in_order.waiting(), 0, "every batch comes back from the workers");
    join_all(&mut sends).await;
    Ok(())
}

/// What the model answered for one message of a batch.
enum Answer {
    Classified {
        prediction: Prediction,
        entities: Option<Vec<String>>,
    },
    /// A language the model does not serve: forwarded with null answers, counted, but kept out of
    /// the windows (its "sentiment" would be a guess) and the archive (which holds the model's
    /// predictions, for labelling).
    Unsupported(UnsupportedLanguage),
}

/// One message whose record is enqueued, with what is done once the record is acknowledged.
struct Enqueued<Delivery> {
    pending: PendingMessage,
    answer: Answer,
    processed_at_ms: i64,
    delivery: Delivery,
    /// Its place among the records in flight, held until it is acknowledged.
    slot: OwnedSemaphorePermit,
}

/// Enqueues one batch's records, in order, and spawns the task that finishes the batch once they
/// are acknowledged.
async fn emit_batch(shared: &Arc<Shared>, sends: &mut JoinSet<()>, batch: ClassifiedBatch<PendingMessage>) {
    shared.metrics.model.inference_duration.observe(batch.inference_duration.as_secs_f64());
    let model = Arc::clone(&batch.model);
    let predictions = match batch.predictions {
        Ok(predictions) => predictions,
        Err(failure) => {
            dead_letter_failed_batch(shared, sends, batch.items, &failure, &model.version).await;
            return;
        }
    };
    let mut enqueued = Vec::with_capacity(batch.items.len());
    for (pending, prediction) in batch.items.into_iter().zip(predictions) {
        let slot = acquire_record_slot(shared).await;
        let processed_at_ms = now_ms();
        let (answer, payload) = match prediction {
            Ok(prediction) => {
                let entities = shared.entities.as_ref().map(|windows| windows.entities(&pending.decoded.text));
                let classification = classify_as(&model, &prediction, entities.as_deref());
                let payload =
                    record::enriched_record(&pending.message, &pending.decoded, &classification, processed_at_ms);
                (Answer::Classified { prediction, entities }, payload)
            }
            Err(unsupported) => {
                let payload = record::unsupported_language_record(
                    &pending.message,
                    &pending.decoded,
                    &unsupported.language,
                    &model.version,
                    processed_at_ms,
                );
                (Answer::Unsupported(unsupported), payload)
            }
        };
        let output_topic = shared.config.kafka.output_topic.clone();
        let key = pending.message.key.clone();
        let delivery = enqueue_with_retry(shared, "enriched", output_topic, key, payload).await;
        enqueued.push(Enqueued { pending, answer, processed_at_ms, delivery, slot });
    }
    sends.spawn(finish_batch(Arc::clone(shared), model, enqueued));
}

/// Awaits a batch's acknowledgements, then counts the acknowledged messages (one window update for
/// the batch), sends the late ones to the late topic, archives them, and completes their offsets
/// (one completion for the batch). A record whose drain was abandoned is not completed: it is
/// read again after the restart.
async fn finish_batch<Delivery>(shared: Arc<Shared>, model: Arc<ModelIdentity>, enqueued: Vec<Enqueued<Delivery>>)
where
    Delivery: std::future::Future<Output = Option<Vec<u8>>>,
{
    let mut acknowledged = Vec::with_capacity(enqueued.len());
    for Enqueued { pending, answer, processed_at_ms, delivery, slot } in enqueued {
        if let Some(payload) = delivery.await {
            acknowledged.push((pending, answer, processed_at_ms, payload));
        }
        drop(slot);
    }
    let late = match shared.config.pipeline.role {
        PipelineRole::Classify => {
            if !forward_summaries(&shared, &model, &acknowledged).await {
                // The drain was abandoned: the batch is read again after the restart.
                return;
            }
            Vec::new()
        }
        PipelineRole::All | PipelineRole::Aggregate => count_in_windows(&shared, &model, &acknowledged),
    };
    if let Some(late_topic) = &shared.config.kafka.late_topic {
        for index in late {
            let (pending, _, _, payload) = &acknowledged[index];
            send_with_retry(&shared, "late", late_topic, pending.message.key.as_deref(), payload, &[]).await;
        }
    }
    if let Some(archive) = &shared.archive {
        for (pending, answer, processed_at_ms, _) in &acknowledged {
            if let Answer::Classified { prediction, entities } = answer {
                let classification = classify_as(&model, prediction, entities.as_deref());
                let archived =
                    ArchiveRecord::new(&pending.message, &pending.decoded, &classification, *processed_at_ms);
                // Before the offset is released: a stalled archive holds back consumption.
                archive.archive(archived).await;
            }
        }
    }
    let positions = acknowledged.iter().map(|(pending, ..)| MessagePosition::of(&pending.message)).collect();
    shared.completions.complete(positions);
}

/// The observations of a batch's acknowledged, classified messages, with their index in the batch and entities;
/// counts every acknowledged message in the metrics on the way.
fn counted_observations<'a>(
    shared: &Shared,
    model: &'a ModelIdentity,
    acknowledged: &'a [(PendingMessage, Answer, i64, Vec<u8>)],
) -> Vec<(usize, Observation, Option<&'a [String]>)> {
    let metrics = &shared.metrics;
    let mut observations = Vec::with_capacity(acknowledged.len());
    for (index, (pending, answer, _, _)) in acknowledged.iter().enumerate() {
        metrics.output.end_to_end_latency.observe(pending.message.received_at.elapsed().as_secs_f64());
        let (prediction, entities) = match answer {
            Answer::Classified { prediction, entities } => (prediction, entities),
            Answer::Unsupported(unsupported) => {
                metrics.model.messages_unsupported_language.with_label_values(&[unsupported.metric_label]).inc();
                continue;
            }
        };
        let classification = classify_as(model, prediction, entities.as_deref());
        metrics.model.messages_classified.with_label_values(&[classification.topic, classification.sentiment]).inc();
        let observation = record::observation(&pending.message, &pending.decoded, &classification);
        observations.push((index, observation, classification.entities));
    }
    observations
}

/// Counts a batch's acknowledged messages in the topic and entity windows, under one lock each. Returns the
/// indices of the messages that came too late for their window.
fn count_in_windows(
    shared: &Shared,
    model: &ModelIdentity,
    acknowledged: &[(PendingMessage, Answer, i64, Vec<u8>)],
) -> Vec<usize> {
    let now_ms = now_ms();
    let mut late = Vec::new();
    let mut entity_observations = Vec::new();
    let mut windows = locks::lock(&shared.windows);
    for (index, observation, entities) in counted_observations(shared, model, acknowledged) {
        match windows.observe(&observation, now_ms) {
            ObserveOutcome::Counted => {
                if let Some(entities) = entities.filter(|entities| !entities.is_empty()) {
                    entity_observations.push((observation, entities));
                }
            }
            ObserveOutcome::Late => {
                shared.metrics.topics.messages_late.with_label_values(&[&observation.topic]).inc();
                late.push(index);
            }
        }
    }
    drop(windows);
    if let Some(entity_windows) = &shared.entities {
        entity_windows.observe_batch(&entity_observations, now_ms);
    }
    late
}

/// The classify role: sends the summary of each of a batch's counted messages to the repartition topic, keyed by
/// its topic, and waits until all are acknowledged (retried like the records), so that an offset completes only
/// once its message is in an aggregator's input. Returns whether all were (not when the drain was abandoned).
async fn forward_summaries(
    shared: &Arc<Shared>,
    model: &ModelIdentity,
    acknowledged: &[(PendingMessage, Answer, i64, Vec<u8>)],
) -> bool {
    let mut deliveries = Vec::new();
    for (_, observation, _) in counted_observations(shared, model, acknowledged) {
        let topic_key = observation.topic.clone().into_bytes();
        let summary = TopicSummary::new(observation, &model.version);
        let repartition_topic = shared.config.pipeline.repartition_topic.clone();
        deliveries
            .push(enqueue_with_retry(shared, "summary", repartition_topic, Some(topic_key), summary.to_json()).await);
    }
    let mut all_acknowledged = true;
    for delivery in deliveries {
        all_acknowledged &= delivery.await.is_some();
    }
    all_acknowledged
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
