//! Model hot reload: watches the registry pointer (or the bundle's manifest) and SIGHUP, loads
//! and checks a new model off the hot path, and swaps it into the inference workers between
//! batches. A model that fails is rejected with a log line and a metric; the old one keeps serving.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::signal::unix::{SignalKind, signal};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;
use crate::model::worker::{LoadedModel, ModelSwitch};
use crate::registry;

/// Watches until `stop` is cancelled. `interval` None: only SIGHUP triggers a check.
pub async fn watch(
    model_path: PathBuf,
    switch: ModelSwitch,
    metrics: Arc<Metrics>,
    interval: Option<Duration>,
    stop: CancellationToken,
) {
    let mut hangups = match signal(SignalKind::hangup()) {
        Ok(hangups) => Some(hangups),
        Err(error) => {
            tracing::warn!(%error, "cannot listen for SIGHUP; the model reloads only by polling");
            None
        }
    };
    let mut reloader = Reloader { model_path, switch, metrics, rejected: None, path_error_logged: false };
    loop {
        let requested = tokio::select! {
            () = stop.cancelled() => return,
            () = sleep_or_forever(interval) => false,
            Some(()) = recv_or_forever(hangups.as_mut()) => true,
        };
        reloader.check(requested).await;
    }
}

struct Reloader {
    model_path: PathBuf,
    switch: ModelSwitch,
    metrics: Arc<Metrics>,
    /// The last version that failed, so a bad promotion is not reloaded (and logged) on every poll;
    /// a SIGHUP retries it.
    rejected: Option<String>,
    /// Whether the current failure to read the path was logged (once per failure, not per poll).
    path_error_logged: bool,
}

impl Reloader {
    /// `requested`: an operator asked (SIGHUP), so retry a rejected version and say so even
    /// when nothing changed.
    async fn check(&mut self, requested: bool) {
        let model_path = self.model_path.clone();
        let target = tokio::task::spawn_blocking(move || registry::resolve_model_path(&model_path))
            .await
            .unwrap_or_else(|join_error| Err(anyhow::anyhow!("reading the model path panicked: {join_error}")));
        let (version, bundle_dir) = match target {
            Ok(target) => {
                self.path_error_logged = false;
                target
            }
            Err(error) => {
                if requested || !self.path_error_logged {
                    tracing::error!(
                        path = %self.model_path.display(),
                        error = format!("{error:#}"),
                        "cannot tell which model to serve; keeping the current one"
                    );
                }
                self.path_error_logged = true;
                return;
            }
        };
        let serving = self.switch.current();
        if version == serving.version || (!requested && self.rejected.as_deref() == Some(version.as_str())) {
            if requested {
                tracing::info!(version = %serving.version, "reload requested: nothing new to load");
            }
            return;
        }
        tracing::info!(from = %serving.version, to = %version, bundle = %bundle_dir.display(), "loading a new model");
        let copies = self.switch.workers();
        let required_topics = serving.topic_labels.clone();
        let expected_version = version.clone();
        let loaded = tokio::task::spawn_blocking(move || {
            let loaded = LoadedModel::load(&bundle_dir, copies, Some(&required_topics))?;
            let loaded_version = &loaded.identity().version;
            anyhow::ensure!(
                *loaded_version == expected_version,
                "the registry names version {expected_version} but its bundle declares {loaded_version}"
            );
            Ok(loaded)
        })
        .await
        .unwrap_or_else(|join_error| Err(anyhow::anyhow!("loading the model panicked: {join_error}")));
        match loaded.and_then(|loaded| self.switch.install(loaded)) {
            Ok(()) => {
                self.metrics.model.set_model_version(&version);
                self.metrics.model.model_reloads.with_label_values(&["success"]).inc();
                self.rejected = None;
                tracing::info!(from = %serving.version, to = %version, "model swapped in; new batches use it");
            }
            Err(error) => {
                self.metrics.model.model_reloads.with_label_values(&["failure"]).inc();
                tracing::error!(
                    rejected = %version,
                    still_serving = %serving.version,
                    error = format!("{error:#}"),
                    "rejected the new model; the old one keeps serving"
                );
                self.rejected = Some(version);
            }
        }
    }
}

async fn sleep_or_forever(interval: Option<Duration>) {
    match interval {
        Some(interval) => tokio::time::sleep(interval).await,
        None => std::future::pending().await,
    }
}

async fn recv_or_forever(hangups: Option<&mut tokio::signal::unix::Signal>) -> Option<()> {
    match hangups {
        Some(hangups) => hangups.recv().await,
        None => std::future::pending().await,
    }
}
