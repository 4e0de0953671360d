//! The daemon's stages, one module each, in the order a message passes them: [`ingest`] (poll, decode,
//! dead letters, backpressure) -> [`batch`] (size-or-deadline cut, handed to the inference workers of
//! `crate::model::worker`) -> [`emit`] (enriched record, windows, archive, offset) -> [`aggregate`] (window
//! closes, detector, gauges) -> [`alert_publish`]. [`output`] holds what several of them share: bounded in-flight
//! records, produce retries and dead letters. Polling Kafka and the offsets are the polling thread's
//! (`crate::ingest::consumer`); stages report finished messages to it through [`Shared::completions`]. `crate::app` wires the stages and drains them.
//! In the aggregate role ([`observe`]) the consume stage takes topic summaries straight into the windows instead.

pub(crate) mod aggregate;
pub(crate) mod alert_publish;
pub(crate) mod batch;
pub(crate) mod emit;
pub(crate) mod ingest;
pub(crate) mod observe;
pub(crate) mod output;

use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::alert::SpikeDetector;
use crate::app::Observers;
use crate::archive::ArchiveSink;
use crate::config::Config;
use crate::fleet::restore::AggregatorState;
use crate::ingest::consumer::Completions;
use crate::ingest::producer::KafkaSink;
use crate::metrics::Metrics;
use crate::model::worker::ModelSwitch;
use crate::pipeline::entities::EntityWindows;
use crate::readiness::Readiness;
use crate::window::WindowStore;

/// Records (enriched and dead letters) awaiting broker acknowledgement at once. Bounds memory
/// when the output is slower than the input; librdkafka batches them on the wire.
pub(crate) const MAX_RECORDS_IN_FLIGHT: usize = 10_000;

/// State the pipeline tasks share.
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) metrics: Arc<Metrics>,
    pub(crate) readiness: Arc<Readiness>,
    pub(crate) sink: KafkaSink,
    /// Where finished messages are reported, so the polling thread can store their offsets.
    pub(crate) completions: Completions,
    /// The served model; hot reload swaps it between batches. `None` in the aggregate role.
    pub(crate) model: Option<ModelSwitch>,
    pub(crate) windows: Arc<Mutex<WindowStore>>,
    pub(crate) detector: Arc<Mutex<SpikeDetector>>,
    /// The aggregate role's state (the same windows and detector, and the topics owned), shared with its restorer.
    pub(crate) aggregator: Option<AggregatorState>,
    /// Windows and detector per entity, when `[entities]` tracks any.
    pub(crate) entities: Option<EntityWindows>,
    pub(crate) in_flight_records: Arc<Semaphore>,
    pub(crate) observers: Observers,
    /// Where acknowledged records are archived, when `[archive]` names a directory.
    pub(crate) archive: Option<ArchiveSink>,
    /// Cancelled when the drain's deadline passes (never by the shutdown root): stops produce
    /// retries, whose records are then read again after the restart.
    pub(crate) abandon: CancellationToken,
}

impl Shared {
    /// The model version alerts name: the served model's, or in the aggregate role the one that classified the
    /// latest summary.
    pub(crate) fn alerting_model_version(&self) -> String {
        match (&self.model, &self.aggregator) {
            (Some(model), _) => model.current().version.clone(),
            (None, Some(state)) => crate::locks::lock(&state.ownership).model_version().to_owned(),
            (None, None) => String::new(),
        }
    }
}
