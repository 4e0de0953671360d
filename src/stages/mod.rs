//! The daemon's stages, one module each, in the order a message passes them: [`ingest`] (poll, decode,
//! dead letters, backpressure) -> [`batch`] (size-or-deadline cut, handed to the inference workers of
//! `crate::model::worker`) -> [`emit`] (enriched record, windows, archive, offset) -> [`aggregate`] (window
//! closes, detector, gauges) -> [`alert_publish`]. [`output`] holds what several of them share: bounded in-flight
//! records, produce retries and dead letters. Polling Kafka and the offsets are the polling thread's
//! (`crate::ingest::consumer`); stages report finished messages to it through [`Shared::completions`]. `crate::app` wires the stages and drains them.

pub(crate) mod aggregate;
pub(crate) mod alert_publish;
pub(crate) mod batch;
pub(crate) mod emit;
pub(crate) mod ingest;
pub(crate) mod output;

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::alert::SpikeDetector;
use crate::app::Observers;
use crate::archive::ArchiveSink;
use crate::config::Config;
use crate::http::Readiness;
use crate::ingest::consumer::Completions;
use crate::ingest::producer::KafkaSink;
use crate::metrics::Metrics;
use crate::model::worker::{HasText, ModelSwitch};
use crate::pipeline::decode::{DecodedMessage, InputMessage};
use crate::pipeline::entities::EntityWindows;
use crate::window::WindowStore;

/// Records (enriched and dead letters) awaiting broker acknowledgement at once. Bounds memory
/// when the output is slower than the input; librdkafka batches them on the wire.
pub(crate) const MAX_RECORDS_IN_FLIGHT: usize = 10_000;

/// A decoded message on its way through the model.
pub struct PendingMessage {
    pub message: InputMessage,
    pub decoded: DecodedMessage,
    /// Its place among the messages handed to the batcher (0, 1, 2...): emit puts the batches that
    /// workers finish out of order back in this order (`crate::pipeline::reorder`).
    pub sequence: u64,
}

impl HasText for PendingMessage {
    fn text(&self) -> &str {
        &self.decoded.text
    }

    fn declared_language(&self) -> Option<&str> {
        self.decoded.lang.as_deref()
    }
}

/// State the pipeline tasks share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) readiness: Arc<Readiness>,
    pub(crate) sink: KafkaSink,
    /// Where finished messages are reported, so the polling thread can store their offsets.
    pub(crate) completions: Completions,
    /// The served model; hot reload swaps it between batches.
    pub(crate) model: ModelSwitch,
    pub(crate) windows: Mutex<WindowStore>,
    pub(crate) detector: Mutex<SpikeDetector>,
    /// Windows and detector per entity, when `[entities]` tracks any.
    pub(crate) entities: Option<EntityWindows>,
    pub(crate) in_flight_records: Arc<Semaphore>,
    pub(crate) observers: Observers,
    /// Where acknowledged records are archived, when `[archive]` names a directory.
    pub(crate) archive: Option<ArchiveSink>,
    /// Cancelled only when a drain runs out of time: stops produce retries.
    pub(crate) abandon: CancellationToken,
}
