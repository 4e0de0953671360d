//! The alert-publish stage: alert events to the alerts topic, in order, each publish bounded so a failing topic
//! never holds up detection.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;

use super::Shared;
use super::output::send_attempts;
use crate::alert::AlertEvent;

/// An alert event, unlike a record, is given up after this many failed sends: no offset waits on
/// it, and a publish that never ends (a deleted alerts topic, a denied ACL) must not hold up the
/// alerts after it. Three tries, 0.2 s then 0.4 s apart, ride out a leader election.
const ALERT_PUBLISH_ATTEMPTS: u32 = 3;

/// The whole publish of one alert event, retries included, ends within this: a send to a topic
/// librdkafka cannot find otherwise waits for `topic.metadata.propagation.max.ms` (30 s) per try.
const ALERT_PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);

/// Publishes alert events to the alerts topic one at a time, in the order they were raised (so a
/// topic's firing and resolved events keep their order under its key), until the queue closes.
/// Each publish is bounded ([`ALERT_PUBLISH_ATTEMPTS`], [`ALERT_PUBLISH_TIMEOUT`]); one that fails
/// is logged with the topic and error, counted, and shown on /readyz until a publish succeeds.
pub(crate) async fn publish_alerts(
    shared: Arc<Shared>,
    mut queue: mpsc::UnboundedReceiver<AlertEvent>,
) -> anyhow::Result<()> {
    let alerts_topic = shared.config.kafka.alerts_topic.as_str();
    while let Some(alert) = queue.recv().await {
        let payload = match serde_json::to_vec(&alert) {
            Ok(payload) => payload,
            Err(error) => {
                tracing::error!(%error, "cannot serialise an alert event");
                continue;
            }
        };
        let key = Some(alert.topic.as_bytes());
        let send = send_attempts(&shared, "alert", alerts_topic, key, &payload, &[], ALERT_PUBLISH_ATTEMPTS);
        let outcome = match tokio::time::timeout(ALERT_PUBLISH_TIMEOUT, send).await {
            Ok(outcome) => outcome,
            Err(_) => Err(format!("no acknowledgement within {} s", ALERT_PUBLISH_TIMEOUT.as_secs())),
        };
        match outcome {
            Ok(()) => shared.readiness.set_alert_publish_failing(false),
            Err(error) => {
                shared.metrics.output.alert_publish_failures.inc();
                shared.readiness.set_alert_publish_failing(true);
                tracing::error!(
                    alerts_topic,
                    %error,
                    topic = %alert.topic,
                    kind = alert.kind.as_str(),
                    "alert event not published to the alerts topic; it shows only in this log and the metrics"
                );
            }
        }
    }
    Ok(())
}
