//! Readiness and health: the flags the stages set (model loaded, broker reachable, partitions
//! assigned, draining, a failed stage) and the status `/readyz` and `/healthz` report from them.
//! Shared by every stage, so it belongs to none of them.

use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use serde::Serialize;

use crate::metrics::Metrics;
use crate::supervise::StageFailure;

/// Whether the consumer group has given this replica partitions yet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PartitionState {
    /// No partitions: before the first assignment, after a revoke, or more replicas than partitions.
    Waiting,
    /// At least one partition is assigned.
    Assigned,
}

impl PartitionState {
    fn as_str(self) -> &'static str {
        match self {
            PartitionState::Waiting => "waiting",
            PartitionState::Assigned => "assigned",
        }
    }

    fn from_u8(value: u8) -> PartitionState {
        if value == PartitionState::Assigned as u8 { PartitionState::Assigned } else { PartitionState::Waiting }
    }
}

/// What `/readyz` reports.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ReadinessStatus {
    /// True when every check passes.
    pub ready: bool,
    /// The failing checks (`model_not_loaded`, `broker_unreachable`, `alert_publish_failing`,
    /// `stage_failed`, `draining`); empty when ready.
    pub failing: Vec<&'static str>,
    /// `waiting` or `assigned`: informational, see [`Readiness::status`].
    pub partitions: &'static str,
}

/// Readiness flags, set by the components that know them and read by `/readyz`.
///
/// Shared via `Arc`. Every setter also updates `Metrics::ready`, so the gauge is right even when
/// nothing probes `/readyz` (e.g. a Prometheus scrape of a replica that no orchestrator watches).
pub struct Readiness {
    metrics: Arc<Metrics>,
    model_loaded: AtomicBool,
    broker_reachable: AtomicBool,
    alert_publish_failing: AtomicBool,
    draining: AtomicBool,
    partitions: AtomicU8,
    /// The first stage that failed; set once, never cleared (the process is going down).
    stage_failure: OnceLock<StageFailure>,
    /// Serialises "store a flag, then publish the gauge" so two concurrent setters cannot leave
    /// the gauge showing the older of their two views. Probes read the atomics without it.
    gauge_update: Mutex<()>,
}

impl Readiness {
    /// Starts not ready: no model, broker not yet reached, no partitions.
    pub fn new(metrics: Arc<Metrics>) -> Readiness {
        Readiness {
            metrics,
            model_loaded: AtomicBool::new(false),
            broker_reachable: AtomicBool::new(false),
            alert_publish_failing: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            partitions: AtomicU8::new(PartitionState::Waiting as u8),
            stage_failure: OnceLock::new(),
            gauge_update: Mutex::new(()),
        }
    }

    /// Whether a model is loaded and able to classify.
    pub fn set_model_loaded(&self, loaded: bool) {
        self.update(|| self.model_loaded.store(loaded, Ordering::SeqCst));
    }

    /// Whether the last contact with the broker succeeded.
    pub fn set_broker_reachable(&self, reachable: bool) {
        self.update(|| self.broker_reachable.store(reachable, Ordering::SeqCst));
    }

    /// Whether the last alert event failed to reach the alerts topic: set when one fails after
    /// every retry, cleared when one is published. Not ready meanwhile, because the alert events
    /// that downstream systems consume are being lost; the windows and detection keep running.
    pub fn set_alert_publish_failing(&self, failing: bool) {
        self.update(|| self.alert_publish_failing.store(failing, Ordering::SeqCst));
    }

    /// Whether partitions are assigned; reported by `/readyz` but not required for readiness.
    pub fn set_partitions(&self, state: PartitionState) {
        self.update(|| self.partitions.store(state as u8, Ordering::SeqCst));
    }

    /// Records that a stage failed: not ready, and `/healthz` fails naming it, for the rest of the
    /// process's life. The first failure is kept; later ones are usually its consequences.
    pub fn set_stage_failed(&self, failure: &StageFailure) {
        self.update(|| {
            let _ = self.stage_failure.set(failure.clone());
        });
    }

    /// The first stage failure, if any: what `/healthz` reports.
    pub fn stage_failure(&self) -> Option<&StageFailure> {
        self.stage_failure.get()
    }

    /// Marks the start of a drain. One-way: a draining process never becomes ready again.
    pub fn set_draining(&self) {
        self.update(|| self.draining.store(true, Ordering::SeqCst));
    }

    /// Evaluates the checks.
    ///
    /// Partition assignment is reported but not required: a replica with no partitions (more
    /// replicas than partitions, or between a revoke and the next assignment) is healthy and will
    /// take work at the next rebalance; marking it unready would only make the orchestrator restart
    /// or hide a spare it needs.
    pub fn status(&self) -> ReadinessStatus {
        let mut failing = Vec::new();
        if !self.model_loaded.load(Ordering::SeqCst) {
            failing.push("model_not_loaded");
        }
        if !self.broker_reachable.load(Ordering::SeqCst) {
            failing.push("broker_unreachable");
        }
        if self.alert_publish_failing.load(Ordering::SeqCst) {
            failing.push("alert_publish_failing");
        }
        if self.stage_failure.get().is_some() {
            failing.push("stage_failed");
        }
        if self.draining.load(Ordering::SeqCst) {
            failing.push("draining");
        }
        ReadinessStatus {
            ready: failing.is_empty(),
            failing,
            partitions: PartitionState::from_u8(self.partitions.load(Ordering::SeqCst)).as_str(),
        }
    }

    fn update(&self, store: impl FnOnce()) {
        // A poisoned lock only means another setter panicked; the guarded data is `()`, so go on.
        let _guard = self.gauge_update.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        store();
        self.metrics.process.ready.set(i64::from(self.status().ready));
    }
}
