//! The aggregate stage: on every tick, closes the topic and entity windows due, runs the detector, refreshes the
//! gauges, and announces alerts (metrics, log line, observer) and queues them for publishing. In the aggregate role it
//! also snapshots every topic that closed a bucket to the state topic, before its alerts are queued. It never waits
//! on the broker.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Shared;
use crate::alert::{AlertEvent, AlertKind, AlertScope};
use crate::app::{now_ms, view_label};
use crate::fleet::TopicSnapshot;
use crate::locks;
use crate::window::ALL_TOPICS;

/// How often windows close, alerts are evaluated and gauges refreshed.
const AGGREGATE_TICK: Duration = Duration::from_millis(500);

/// Closes windows on time, evaluates spikes and refreshes gauges. Never
/// waits on the broker: alert events go to [`publish_alerts`] through `alerts`.
pub(crate) async fn aggregate(
    shared: Arc<Shared>,
    stop: CancellationToken,
    alerts: mpsc::UnboundedSender<AlertEvent>,
) -> anyhow::Result<()> {
    let mut ticker = tokio::time::interval(AGGREGATE_TICK);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = stop.cancelled() => return Ok(()),
            _ = ticker.tick() => {}
        }
        evaluate_windows(&shared, now_ms(), &alerts);
    }
}

/// Closes the topic and entity windows due by `now_ms` and hands their alert events on.
pub(crate) fn evaluate_windows(shared: &Shared, now_ms: i64, alert_queue: &mpsc::UnboundedSender<AlertEvent>) {
    let model_version = shared.alerting_model_version();
    let (mut alerts, closed_topics) = evaluate_topic_windows(shared, now_ms, &model_version);
    if let Some(state) = &shared.aggregator {
        write_snapshots(shared, state.snapshots(&closed_topics));
    }
    if let Some(entities) = &shared.entities {
        alerts.extend(entities.evaluate(now_ms, &model_version, &shared.metrics));
    }
    for alert in alerts {
        announce_alert(shared, &alert);
        // The receiver lives until every sender is gone; a send error cannot happen before.
        let _ = alert_queue.send(alert);
    }
}

/// Hands snapshots to the state topic without waiting: the next close writes newer ones, and a restore replays
/// from whichever snapshot is the latest acknowledged. A failure is counted and logged.
fn write_snapshots(shared: &Shared, snapshots: Vec<TopicSnapshot>) {
    for snapshot in snapshots {
        let delivery = shared.sink.enqueue_now(
            &shared.config.pipeline.state_topic,
            snapshot.topic.as_bytes(),
            &snapshot.to_json(),
        );
        let metrics = Arc::clone(&shared.metrics);
        tokio::spawn(async move {
            let result = match delivery {
                Ok(delivery) => delivery.await,
                Err(error) => Err(error),
            };
            match result {
                Ok(()) => metrics.fleet.snapshots.with_label_values(&["written"]).inc(),
                Err(error) => {
                    metrics.fleet.snapshots.with_label_values(&["failed"]).inc();
                    tracing::warn!(%error, topic = %snapshot.topic, "state snapshot not written; the next close writes another");
                }
            }
        });
    }
}

/// Closes the topic windows, runs the detector on them and refreshes the topic metrics; returns the alert events
/// and the topics that closed buckets.
fn evaluate_topic_windows(shared: &Shared, now_ms: i64, model_version: &str) -> (Vec<AlertEvent>, Vec<String>) {
    let closed = locks::lock(&shared.windows).advance(now_ms);
    let mut alerts = Vec::new();
    let mut closed_topics: Vec<String> = Vec::new();
    {
        let mut detector = locks::lock(&shared.detector);
        for bucket in &closed {
            if let Some(event) = detector.on_closed_bucket(bucket, model_version) {
                alerts.push(event);
            }
            // An aggregator's all-topics aggregate covers only the topics it owns: not a figure to show.
            if shared.aggregator.is_some() && bucket.topic == ALL_TOPICS {
                continue;
            }
            if !closed_topics.contains(&bucket.topic) {
                closed_topics.push(bucket.topic.clone());
            }
            for view in &bucket.views {
                let view_label = view_label(view.width_ms);
                shared
                    .metrics
                    .topics
                    .negative_rate
                    .with_label_values(&[&bucket.topic, &view_label])
                    .set(view.counts.negative_rate());
                shared
                    .metrics
                    .topics
                    .message_count
                    .with_label_values(&[&bucket.topic, &view_label])
                    .set(view.counts.total as i64);
            }
            if let Some(state) = detector.state(&bucket.topic) {
                shared
                    .metrics
                    .topics
                    .negative_rate_baseline
                    .with_label_values(&[&bucket.topic])
                    .set(state.baseline_mean);
                shared
                    .metrics
                    .topics
                    .negative_rate_baseline_stddev
                    .with_label_values(&[&bucket.topic])
                    .set(state.baseline_std);
                shared
                    .metrics
                    .topics
                    .spike_z_score
                    .with_label_values(&[&bucket.topic])
                    .set(state.last_z.unwrap_or(0.0));
                shared
                    .metrics
                    .topics
                    .alert_firing
                    .with_label_values(&[&bucket.topic])
                    .set(i64::from(state.firing.is_some()));
            }
        }
    }
    (alerts, closed_topics)
}

/// Shows an alert where no broker is needed: the metrics, the log line and the observer. (Entity alerts are
/// counted by [`EntityWindows::evaluate`], which knows their bounded label.)
fn announce_alert(shared: &Shared, alert: &AlertEvent) {
    if let AlertScope::Topic(topic) = &alert.scope {
        shared.metrics.topics.alerts.with_label_values(&[topic, alert.kind.as_str()]).inc();
    }
    match alert.kind {
        AlertKind::Firing => tracing::warn!(
            scope = alert.scope.kind(),
            topic = %alert.topic,
            detector = alert.detector.as_str(),
            z = alert.z_score,
            p = alert.negative_count_p_value,
            "{}",
            alert.summary()
        ),
        AlertKind::Resolved => {
            tracing::info!(
                scope = alert.scope.kind(),
                topic = %alert.topic,
                detector = alert.detector.as_str(),
                "{}",
                alert.summary()
            )
        }
    }
    if let Some(observer) = &shared.observers.alerts {
        let _ = observer.send(alert.clone());
    }
}
