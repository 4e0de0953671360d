//! The batch stage: cuts decoded messages into batches on size or deadline and queues them for the inference
//! workers; at the end of input, flushes the last batch and lets the workers finish.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use tokio::sync::mpsc;

use super::Shared;
use crate::message::PendingMessage;
use crate::model::worker::InferencePool;
use crate::pipeline::batcher::{BatchPolicy, Batcher};

/// Cuts batches on size or deadline and queues them for the workers; on end of input, flushes
/// the last batch and lets the workers finish.
pub(crate) async fn cut_batches(
    shared: Arc<Shared>,
    mut decoded: mpsc::Receiver<PendingMessage>,
    pool: InferencePool<PendingMessage>,
) -> anyhow::Result<()> {
    let mut batcher =
        Batcher::new(BatchPolicy { max_size: shared.config.batch.max_size, max_wait: shared.config.batch.max_wait() });
    loop {
        let deadline = batcher.deadline();
        let next = tokio::select! {
            next = decoded.recv() => next,
            () = sleep_until_optional(deadline) => {
                if let Some(batch) = batcher.poll_deadline(Instant::now()) {
                    submit(&shared, &pool, batch).await?;
                }
                continue;
            }
        };
        let Some(pending) = next else {
            break;
        };
        if let Some(batch) = batcher.push(pending, Instant::now()) {
            submit(&shared, &pool, batch).await?;
        }
    }
    if let Some(batch) = batcher.flush() {
        submit(&shared, &pool, batch).await?;
    }
    // Joining the worker threads blocks; they finish the queued batches first.
    tokio::task::spawn_blocking(move || pool.finish()).await.context("inference workers did not stop cleanly")?;
    Ok(())
}

async fn submit(
    shared: &Shared,
    pool: &InferencePool<PendingMessage>,
    batch: Vec<PendingMessage>,
) -> anyhow::Result<()> {
    shared.metrics.model.batch_size.observe(batch.len() as f64);
    pool.submit(batch).await
}

async fn sleep_until_optional(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline.into()).await,
        None => std::future::pending().await,
    }
}
