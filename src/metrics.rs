//! Prometheus metrics: every metric sentmon exports, on a registry owned by the app.
//!
//! Names carry the `sentmon_` prefix literally (not via a registry namespace) so that a grep for a
//! name in dashboards, alert rules and this file finds all three. Label values come from small closed
//! sets (topic classes, sentiments, outputs, reasons, view names, assigned partitions) so series
//! counts stay bounded; message text or keys never become labels.

use crate::model::SENTIMENT_LABELS;
use crate::pipeline::decode::DeadLetterReason;
use crate::supervise::Stage;

use prometheus::{
    Encoder as _, GaugeVec, Histogram, HistogramOpts, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder, core::Collector,
};

/// The `result` label values of `sentmon_model_reloads_total`.
pub const MODEL_RELOAD_RESULTS: [&str; 2] = ["success", "failure"];

/// Batch sizes 1, 2, 4, ..., 1024: powers of two because the batcher's size limits are, so each
/// configured limit lands exactly on a bucket boundary.
const BATCH_SIZE_BUCKETS: &[f64] = &[1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0];

/// Inference time per batch, 0.5 ms to 5 s in 1-2.5-5 steps (roughly x2 each): a CPU LSTM batch
/// takes milliseconds, a cold or contended one up to seconds. Round boundaries keep `le` labels
/// readable in alert rules.
const INFERENCE_DURATION_BUCKETS: &[f64] =
    &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// Receipt-to-acknowledgement latency, 1 ms to 30 s: batching deadlines put the normal case in the
/// tens to hundreds of milliseconds; the top buckets separate a slow broker from a stalled one.
const END_TO_END_LATENCY_BUCKETS: &[f64] =
    &[0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0];

/// Every metric sentmon exports, registered on `registry`, which this struct owns.
///
/// One instance per app, shared via `Arc`; tests build their own so they never see each other's
/// numbers.
pub struct Metrics {
    registry: Registry,

    /// Messages read from Kafka, before any parsing. Labels: `input_topic` (the Kafka topic).
    pub messages_consumed: IntCounterVec,
    /// Messages classified by the model. Labels: `topic` (predicted class), `sentiment`
    /// (`negative` | `neutral` | `positive`); every pair of the served model exists at 0 from its
    /// load ([`Metrics::create_topic_series`]).
    pub messages_classified: IntCounterVec,
    /// Messages forwarded with null answers because they are in a language the serving model does not serve, and
    /// kept out of the windows. Labels: `language` (an ISO 639-1 code the language gate knows, `und-<Script>` for a
    /// script shared by several languages, or `other` for a declared code it does not know: a closed set).
    pub messages_unsupported_language: IntCounterVec,
    /// Messages sent to the dead-letter output instead of being classified. Labels: `reason`
    /// (a fixed set of failure kinds, never the error text); every reason's series exists from
    /// the start, at 0.
    pub messages_dead_lettered: IntCounterVec,
    /// Classified messages whose event time fell before every open window, so they were emitted but
    /// not counted in the rates. Labels: `topic`.
    pub messages_late: IntCounterVec,
    /// Records acknowledged by the broker. Labels: `output` (`enriched` | `dead_letter` | `alert` |
    /// `late`).
    pub records_produced: IntCounterVec,
    /// Records the broker refused or that timed out. Labels: `output`, as for `records_produced`.
    pub produce_failures: IntCounterVec,
    /// Alert events that could not be published to the alerts topic within the retry budget; the
    /// alert still shows in the log line and in `sentmon_alerts_total`.
    pub alert_publish_failures: IntCounter,
    /// Share of negative messages in a view, 0 to 1. Labels: `topic` (a class or [`crate::window::ALL_TOPICS`]),
    /// `view` (the view's span, e.g. `5m`, `1h`).
    pub negative_rate: GaugeVec,
    /// Messages in a view, so a rate can be read against its volume. Labels: `topic`, `view`.
    pub message_count: IntGaugeVec,
    /// Baseline negative rate the spike detector compares against, 0 to 1. Labels: `topic`.
    pub negative_rate_baseline: GaugeVec,
    /// Standard deviation of the baseline negative rate, as a ratio. Labels: `topic`.
    pub negative_rate_baseline_stddev: GaugeVec,
    /// Latest z-score of the negative rate against its baseline (dimensionless). Labels: `topic`.
    pub spike_z_score: GaugeVec,
    /// 1 while a spike alert is firing for the topic, else 0. Labels: `topic`.
    pub alert_firing: IntGaugeVec,
    /// Alert transitions. Labels: `topic`, `kind` (`firing` | `resolved`).
    pub alerts: IntCounterVec,
    /// Share of negative messages mentioning an entity in a view, 0 to 1 (`[entities]`). Labels: `entity` (a watched
    /// name, one of the top cashtags, or `__other__`: see [`crate::entity::labels`]), `view`.
    pub entity_negative_rate: GaugeVec,
    /// Messages mentioning an entity in a view. Labels: `entity`, `view`.
    pub entity_message_count: IntGaugeVec,
    /// Negative messages mentioning an entity in a view, what the volume test counts. Labels: `entity`, `view`.
    pub entity_negative_count: IntGaugeVec,
    /// Negative messages the volume test's baseline expects in the detection view. Labels: `entity`.
    pub entity_expected_negative_count: GaugeVec,
    /// 1 while an alert is firing for the entity (for `__other__`: for any of the entities it holds), else 0.
    /// Labels: `entity`.
    pub entity_alert_firing: IntGaugeVec,
    /// Entity alert transitions. Labels: `entity`, `detector` (`rate` | `volume`), `kind` (`firing` | `resolved`).
    pub entity_alerts: IntCounterVec,
    /// Messages per inference batch.
    pub batch_size: Histogram,
    /// Seconds spent running the model on one batch.
    pub inference_duration: Histogram,
    /// Seconds from a message's receipt from Kafka to the broker acknowledging its enriched record.
    pub end_to_end_latency: Histogram,
    /// Messages between the committed offset and the partition's high watermark. Labels:
    /// `input_topic`, `partition` (only partitions assigned to this replica: a revoked
    /// partition's series is removed).
    pub consumer_lag: IntGaugeVec,
    /// 1 for the model version being served; set through [`Metrics::set_model_version`]. Labels:
    /// `version`.
    pub model_info: IntGaugeVec,
    /// Model reload attempts. Labels: `result` (`success` | `failure`), both at 0 from the start.
    pub model_reloads: IntCounterVec,
    /// Consumer group rebalance events. Labels: `kind` (`assign` | `revoke`).
    pub rebalances: IntCounterVec,
    /// Offset commits that succeeded.
    pub commits: IntCounter,
    /// Offset commits that failed.
    pub commit_failures: IntCounter,
    /// 1 when `/readyz` would answer 200, else 0.
    pub ready: IntGauge,
    /// Long-lived tasks that ended before shutdown or failed during a drain (each takes the
    /// process down). Labels: `stage` (see [`Stage`]), every stage at 0 from the start.
    pub stage_failures: IntCounterVec,
    /// Always 1; the crate version that is running. Labels: `version`.
    pub build_info: IntGaugeVec,
    /// Classified messages written into archive files (`[archive]`).
    pub archive_records: IntCounter,
    /// Archive files completed and made visible, including files recovered from a crash.
    pub archive_files: IntCounter,
    /// Archive I/O errors (each abandons the open file; its flushed part is recovered at the next
    /// start).
    pub archive_errors: IntCounter,
    /// Classified messages not archived because writing was failing, or because they arrived
    /// after the archive closed (a drain that ran out of time).
    pub archive_records_dropped: IntCounter,
}

/// The `detector` and `kind` label pairs of `sentmon_entity_alerts_total`.
const ENTITY_ALERT_LABELS: [(&str, &str); 4] =
    [("rate", "firing"), ("rate", "resolved"), ("volume", "firing"), ("volume", "resolved")];

impl Metrics {
    /// Builds every metric and registers it on a fresh registry.
    ///
    /// Errors (an invalid name or buckets, a duplicate registration) are returned rather than logged:
    /// a process that exports only some of its metrics would look healthy while being blind.
    pub fn new() -> Result<Metrics, prometheus::Error> {
        let registry = Registry::new();

        let messages_consumed = register(
            &registry,
            IntCounterVec::new(
                Opts::new("sentmon_messages_consumed_total", "Messages read from Kafka."),
                &["input_topic"],
            )?,
        )?;
        let messages_classified = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sentmon_messages_classified_total",
                    "Messages classified, by predicted topic and sentiment.",
                ),
                &["topic", "sentiment"],
            )?,
        )?;
        let messages_unsupported_language = register(
            &registry,
            IntCounterVec::new(
                Opts::new(
                    "sentmon_messages_unsupported_language_total",
                    "Messages in a language the model does not serve: forwarded unclassified, not counted in windows.",
                ),
                &["language"],
            )?,
        )?;
        let messages_dead_lettered = register(
            &registry,
            IntCounterVec::new(
                Opts::new("sentmon_messages_dead_lettered_total", "Messages sent to the dead-letter output."),
                &["reason"],
            )?,
        )?;
        let messages_late = register(
            &registry,
            IntCounterVec::new(
                Opts::new("sentmon_messages_late_total", "Messages too late for every open window."),
                &["topic"],
            )?,
        )?;
        let records_produced = register(
            &registry,
            IntCounterVec::new(
                Opts::new("sentmon_records_produced_total", "Records acknowledged by the broker, by output."),
                &["output"],
            )?,
        )?;
        let produce_failures = register(
            &registry,
            IntCounterVec::new(
                Opts::new("sentmon_produce_failures_total", "Records the broker refused or that timed out, by output."),
                &["output"],
            )?,
        )?;
        let alert_publish_failures = register(
            &registry,
            IntCounter::with_opts(Opts::new(
                "sentmon_alert_publish_failures_total",
                "Alert events not published to the alerts topic after every retry.",
            ))?,
        )?;
        let negative_rate = register(
            &registry,
            GaugeVec::new(
                Opts::new("sentmon_negative_rate_ratio", "Share of negative messages in a view."),
                &["topic", "view"],
            )?,
        )?;
        let message_count = register(
            &registry,
            IntGaugeVec::new(Opts::new("sentmon_view_messages", "Messages in a view."), &["topic", "view"])?,
        )?;
        let negative_rate_baseline = register(
            &registry,
            GaugeVec::new(
                Opts::new("sentmon_negative_rate_baseline_ratio", "Baseline negative rate for spike detection."),
                &["topic"],
            )?,
        )?;
        let negative_rate_baseline_stddev = register(
            &registry,
            GaugeVec::new(
                Opts::new(
                    "sentmon_negative_rate_baseline_stddev_ratio",
                    "Standard deviation of the baseline negative rate.",
                ),
                &["topic"],
            )?,
        )?;
        let spike_z_score = register(
            &registry,
            GaugeVec::new(
                Opts::new("sentmon_spike_z_score", "Z-score of the negative rate against its baseline."),
                &["topic"],
            )?,
        )?;
        let alert_firing = register(
            &registry,
            IntGaugeVec::new(Opts::new("sentmon_alert_firing", "1 while a spike alert is firing."), &["topic"])?,
        )?;
        let alerts = register(
            &registry,
            IntCounterVec::new(Opts::new("sentmon_alerts_total", "Alert transitions."), &["topic", "kind"])?,
        )?;
        let entity_negative_rate = register(
            &registry,
            GaugeVec::new(
                Opts::new(
                    "sentmon_entity_negative_rate_ratio",
                    "Share of negative messages mentioning the entity in a view.",
                ),
                &["entity", "view"],
            )?,
        )?;
        let entity_message_count = register(
            &registry,
            IntGaugeVec::new(
                Opts::new("sentmon_entity_view_messages", "Messages mentioning the entity in a view."),
                &["entity", "view"],
            )?,
        )?;
        let entity_negative_count = register(
            &registry,
            IntGaugeVec::new(
                Opts::new(
                    "sentmon_entity_view_negative_messages",
                    "Negative messages mentioning the entity in a view.",
                ),
                &["entity", "view"],
            )?,
        )?;
        let entity_expected_negative_count = register(
            &registry,
            GaugeVec::new(
                Opts::new(
                    "sentmon_entity_expected_negative_messages",
                    "Negative messages the volume baseline expects in the entity's detection view.",
                ),
                &["entity"],
            )?,
        )?;
        let entity_alert_firing = register(
            &registry,
            IntGaugeVec::new(
                Opts::new("sentmon_entity_alert_firing", "1 while an alert is firing for the entity."),
                &["entity"],
            )?,
        )?;
        let entity_alerts = register(
            &registry,
            IntCounterVec::new(
                Opts::new("sentmon_entity_alerts_total", "Entity alert transitions."),
                &["entity", "detector", "kind"],
            )?,
        )?;
        let batch_size = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new("sentmon_batch_size_messages", "Messages per inference batch.")
                    .buckets(BATCH_SIZE_BUCKETS.to_vec()),
            )?,
        )?;
        let inference_duration = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new("sentmon_inference_duration_seconds", "Model time per batch.")
                    .buckets(INFERENCE_DURATION_BUCKETS.to_vec()),
            )?,
        )?;
        let end_to_end_latency = register(
            &registry,
            Histogram::with_opts(
                HistogramOpts::new(
                    "sentmon_end_to_end_latency_seconds",
                    "Time from receipt from Kafka to acknowledgement of the enriched record.",
                )
                .buckets(END_TO_END_LATENCY_BUCKETS.to_vec()),
            )?,
        )?;
        let consumer_lag = register(
            &registry,
            IntGaugeVec::new(
                Opts::new("sentmon_consumer_lag_messages", "Messages behind the high watermark, per partition."),
                &["input_topic", "partition"],
            )?,
        )?;
        let model_info = register(
            &registry,
            IntGaugeVec::new(Opts::new("sentmon_model_info", "1 for the model version being served."), &["version"])?,
        )?;
        let model_reloads = register(
            &registry,
            IntCounterVec::new(Opts::new("sentmon_model_reloads_total", "Model reload attempts."), &["result"])?,
        )?;
        let rebalances = register(
            &registry,
            IntCounterVec::new(Opts::new("sentmon_rebalances_total", "Consumer group rebalance events."), &["kind"])?,
        )?;
        let commits = register(
            &registry,
            IntCounter::with_opts(Opts::new("sentmon_offset_commits_total", "Offset commits that succeeded."))?,
        )?;
        let commit_failures = register(
            &registry,
            IntCounter::with_opts(Opts::new("sentmon_offset_commit_failures_total", "Offset commits that failed."))?,
        )?;
        let ready =
            register(&registry, IntGauge::with_opts(Opts::new("sentmon_ready", "1 when /readyz would answer 200."))?)?;
        let stage_failures = register(
            &registry,
            IntCounterVec::new(
                Opts::new("sentmon_stage_failures_total", "Daemon stages that failed (each ends the process)."),
                &["stage"],
            )?,
        )?;
        let build_info = register(
            &registry,
            IntGaugeVec::new(Opts::new("sentmon_build_info", "Always 1; the running crate version."), &["version"])?,
        )?;
        build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        let archive_records = register(
            &registry,
            IntCounter::with_opts(Opts::new("sentmon_archive_records_total", "Messages written to archive files."))?,
        )?;
        let archive_files = register(
            &registry,
            IntCounter::with_opts(Opts::new("sentmon_archive_files_total", "Archive files completed."))?,
        )?;
        let archive_errors = register(
            &registry,
            IntCounter::with_opts(Opts::new("sentmon_archive_errors_total", "Archive I/O errors."))?,
        )?;
        let archive_records_dropped = register(
            &registry,
            IntCounter::with_opts(Opts::new(
                "sentmon_archive_records_dropped_total",
                "Messages not archived because writing failed or the archive had closed.",
            ))?,
        )?;

        // Counters whose label values are known up front start at 0: a series created by its first
        // increment starts at 1, and increase() over it is 0, so an alert on the first failure
        // (SentmonModelReloadFailed) would never fire.
        for reason in DeadLetterReason::ALL {
            messages_dead_lettered.with_label_values(&[reason.as_str()]);
        }
        for result in MODEL_RELOAD_RESULTS {
            model_reloads.with_label_values(&[result]);
        }
        for stage in Stage::ALL {
            stage_failures.with_label_values(&[stage.as_str()]);
        }

        Ok(Metrics {
            registry,
            messages_consumed,
            messages_classified,
            messages_unsupported_language,
            messages_dead_lettered,
            messages_late,
            records_produced,
            produce_failures,
            alert_publish_failures,
            negative_rate,
            message_count,
            negative_rate_baseline,
            negative_rate_baseline_stddev,
            spike_z_score,
            alert_firing,
            alerts,
            entity_negative_rate,
            entity_message_count,
            entity_negative_count,
            entity_expected_negative_count,
            entity_alert_firing,
            entity_alerts,
            batch_size,
            inference_duration,
            end_to_end_latency,
            consumer_lag,
            model_info,
            model_reloads,
            rebalances,
            commits,
            commit_failures,
            ready,
            stage_failures,
            build_info,
            archive_records,
            archive_files,
            archive_errors,
            archive_records_dropped,
        })
    }

    /// Creates every watched entity's alert counters at 0, so an alert rule on `increase()` sees the first one
    /// (as for the counters above), and its `__other__` twin.
    pub fn create_entity_series(&self, watched: &[String]) {
        for entity in watched.iter().map(String::as_str).chain([crate::entity::OTHER_ENTITIES]) {
            for (detector, kind) in ENTITY_ALERT_LABELS {
                self.entity_alerts.with_label_values(&[entity, detector, kind]);
            }
        }
    }

    /// Drops every series of an entity that no longer has a label of its own (see [`crate::entity::labels`]).
    pub fn remove_entity_series(&self, entity: &str, views: &[String]) {
        // A series that was never set is already absent: that is the outcome wanted.
        for view in views {
            let _ = self.entity_negative_rate.remove_label_values(&[entity, view]);
            let _ = self.entity_message_count.remove_label_values(&[entity, view]);
            let _ = self.entity_negative_count.remove_label_values(&[entity, view]);
        }
        let _ = self.entity_expected_negative_count.remove_label_values(&[entity]);
        let _ = self.entity_alert_firing.remove_label_values(&[entity]);
        for (detector, kind) in ENTITY_ALERT_LABELS {
            let _ = self.entity_alerts.remove_label_values(&[entity, detector, kind]);
        }
    }

    /// Marks `version` as the served model and drops every other version's series, so that
    /// `sentmon_model_info == 1` matches exactly one series after a reload.
    pub fn set_model_version(&self, version: &str) {
        // Set the new series before removing the old ones: a scrape in between sees two versions
        // for an instant rather than none.
        self.model_info.with_label_values(&[version]).set(1);
        for family in self.model_info.collect() {
            for metric in family.get_metric() {
                let Some(label) = metric.get_label().iter().find(|label| label.name() == "version") else {
                    continue;
                };
                if label.value() != version {
                    // Another setter may have removed it first; that is the outcome we want anyway.
                    let _ = self.model_info.remove_label_values(&[label.value()]);
                }
            }
        }
    }

    /// Creates every topic x sentiment series of `messages_classified` at 0 for a model's topic
    /// labels, so rates and alerts see a topic's first message as an increase (see [`Metrics::new`]).
    pub fn create_topic_series(&self, topic_labels: &[String]) {
        for topic in topic_labels {
            for sentiment in SENTIMENT_LABELS {
                self.messages_classified.with_label_values(&[topic, sentiment]);
            }
        }
    }

    /// Renders every registered metric in the Prometheus text exposition format (0.0.4).
    pub fn encode_text(&self) -> String {
        let mut buffer = Vec::new();
        TextEncoder::new()
            .encode(&self.registry.gather(), &mut buffer)
            // Encoding fails only for a family with no name or no samples; `gather` prunes empty
            // families and `Opts` rejects empty names at construction, and a Vec never fails to write.
            .expect("text encoding of a gathered registry cannot fail");
        // The text encoder writes only UTF-8 (names are ASCII, label values are Rust strings).
        String::from_utf8(buffer).expect("text encoder output is UTF-8")
    }
}

/// Registers a clone of `collector` (clones share their values) and hands the original back.
fn register<C>(registry: &Registry, collector: C) -> Result<C, prometheus::Error>
where
    C: Collector + Clone + 'static,
{
    registry.register(Box::new(collector.clone()))?;
    Ok(collector)
}

#[cfg(test)]
mod tests {
    use prometheus::proto::MetricType;

    use super::*;
    use crate::window::ALL_TOPICS;

    /// Touches every metric once so that labelled families have a series to export.
    fn touch_every_metric(metrics: &Metrics) {
        metrics.messages_consumed.with_label_values(&["news"]).inc();
        metrics.messages_classified.with_label_values(&["earnings", "negative"]).inc();
        metrics.messages_unsupported_language.with_label_values(&["zh"]).inc();
        metrics.messages_dead_lettered.with_label_values(&["invalid_json"]).inc();
        metrics.messages_late.with_label_values(&["earnings"]).inc();
        metrics.records_produced.with_label_values(&["enriched"]).inc();
        metrics.produce_failures.with_label_values(&["alert"]).inc();
        metrics.negative_rate.with_label_values(&[ALL_TOPICS, "5m"]).set(0.25);
        metrics.message_count.with_label_values(&[ALL_TOPICS, "5m"]).set(40);
        metrics.negative_rate_baseline.with_label_values(&["earnings"]).set(0.1);
        metrics.negative_rate_baseline_stddev.with_label_values(&["earnings"]).set(0.02);
        metrics.spike_z_score.with_label_values(&["earnings"]).set(3.5);
        metrics.alert_firing.with_label_values(&["earnings"]).set(1);
        metrics.alerts.with_label_values(&["earnings", "firing"]).inc();
        metrics.entity_negative_rate.with_label_values(&["UBS", "5m"]).set(0.5);
        metrics.entity_message_count.with_label_values(&["UBS", "5m"]).set(8);
        metrics.entity_negative_count.with_label_values(&["UBS", "5m"]).set(4);
        metrics.entity_expected_negative_count.with_label_values(&["UBS"]).set(0.7);
        metrics.entity_alert_firing.with_label_values(&["UBS"]).set(1);
        metrics.entity_alerts.with_label_values(&["UBS", "volume", "firing"]).inc();
        metrics.batch_size.observe(32.0);
        metrics.inference_duration.observe(0.007);
        metrics.end_to_end_latency.observe(0.12);
        metrics.consumer_lag.with_label_values(&["news", "0"]).set(12);
        metrics.set_model_version("v1");
        metrics.model_reloads.with_label_values(&["success"]).inc();
        metrics.rebalances.with_label_values(&["assign"]).inc();
        metrics.commits.inc();
        metrics.commit_failures.inc();
        metrics.ready.set(1);
    }

    const EXPECTED_FAMILIES: &[(&str, &str)] = &[
        ("sentmon_messages_consumed_total", "counter"),
        ("sentmon_messages_classified_total", "counter"),
        ("sentmon_messages_unsupported_language_total", "counter"),
        ("sentmon_messages_dead_lettered_total", "counter"),
        ("sentmon_messages_late_total", "counter"),
        ("sentmon_records_produced_total", "counter"),
        ("sentmon_produce_failures_total", "counter"),
        ("sentmon_alert_publish_failures_total", "counter"),
        ("sentmon_negative_rate_ratio", "gauge"),
        ("sentmon_view_messages", "gauge"),
        ("sentmon_negative_rate_baseline_ratio", "gauge"),
        ("sentmon_negative_rate_baseline_stddev_ratio", "gauge"),
        ("sentmon_spike_z_score", "gauge"),
        ("sentmon_alert_firing", "gauge"),
        ("sentmon_alerts_total", "counter"),
        ("sentmon_entity_negative_rate_ratio", "gauge"),
        ("sentmon_entity_view_messages", "gauge"),
        ("sentmon_entity_view_negative_messages", "gauge"),
        ("sentmon_entity_expected_negative_messages", "gauge"),
        ("sentmon_entity_alert_firing", "gauge"),
        ("sentmon_entity_alerts_total", "counter"),
        ("sentmon_batch_size_messages", "histogram"),
        ("sentmon_inference_duration_seconds", "histogram"),
        ("sentmon_end_to_end_latency_seconds", "histogram"),
        ("sentmon_consumer_lag_messages", "gauge"),
        ("sentmon_model_info", "gauge"),
        ("sentmon_model_reloads_total", "counter"),
        ("sentmon_rebalances_total", "counter"),
        ("sentmon_offset_commits_total", "counter"),
        ("sentmon_offset_commit_failures_total", "counter"),
        ("sentmon_ready", "gauge"),
        ("sentmon_stage_failures_total", "counter"),
        ("sentmon_build_info", "gauge"),
        ("sentmon_archive_records_total", "counter"),
        ("sentmon_archive_files_total", "counter"),
        ("sentmon_archive_errors_total", "counter"),
        ("sentmon_archive_records_dropped_total", "counter"),
    ];

    #[test]
    fn every_metric_is_exported_with_its_type_once_touched() {
        let metrics = Metrics::new().unwrap();
        touch_every_metric(&metrics);
        let text = metrics.encode_text();
        for (name, kind) in EXPECTED_FAMILIES {
            assert!(text.contains(&format!("# TYPE {name} {kind}\n")), "missing {name} as {kind} in:\n{text}");
        }
        assert_eq!(metrics.registry.gather().len(), EXPECTED_FAMILIES.len(), "an exported family is not in the list");
    }

    #[test]
    fn histograms_use_the_documented_buckets() {
        let metrics = Metrics::new().unwrap();
        touch_every_metric(&metrics);
        let text = metrics.encode_text();
        for line in [
            "sentmon_batch_size_messages_bucket{le=\"1\"} 0",
            "sentmon_batch_size_messages_bucket{le=\"1024\"} 1",
            "sentmon_inference_duration_seconds_bucket{le=\"0.0005\"} 0",
            "sentmon_inference_duration_seconds_bucket{le=\"0.01\"} 1",
            "sentmon_inference_duration_seconds_bucket{le=\"5\"} 1",
            "sentmon_end_to_end_latency_seconds_bucket{le=\"0.001\"} 0",
            "sentmon_end_to_end_latency_seconds_bucket{le=\"0.25\"} 1",
            "sentmon_end_to_end_latency_seconds_bucket{le=\"30\"} 1",
        ] {
            assert!(text.contains(line), "missing `{line}` in:\n{text}");
        }
    }

    #[test]
    fn build_info_is_set_at_construction() {
        let metrics = Metrics::new().unwrap();
        let expected = format!("sentmon_build_info{{version=\"{}\"}} 1\n", env!("CARGO_PKG_VERSION"));
        assert!(metrics.encode_text().contains(&expected));
    }

    #[test]
    fn names_carry_the_prefix_and_only_counters_end_in_total() {
        let metrics = Metrics::new().unwrap();
        touch_every_metric(&metrics);
        for family in metrics.registry.gather() {
            let name = family.name();
            assert!(name.starts_with("sentmon_"), "{name} lacks the sentmon_ prefix");
            let is_counter = family.get_field_type() == MetricType::COUNTER;
            assert_eq!(is_counter, name.ends_with("_total"), "{name}: counters, and only counters, end in _total");
        }
    }

    #[test]
    fn two_instances_do_not_share_values() {
        let first = Metrics::new().unwrap();
        let second = Metrics::new().unwrap();
        first.commits.inc_by(5);
        first.messages_consumed.with_label_values(&["news"]).inc();
        assert_eq!(first.commits.get(), 5);
        assert_eq!(second.commits.get(), 0);
        let second_text = second.encode_text();
        assert!(second_text.contains("sentmon_offset_commits_total 0\n"));
        assert!(!second_text.contains("sentmon_messages_consumed_total"));
    }

    /// Issue 11: labelled counters created on first increment start at 1, so increase() misses the
    /// first failure.
    #[test]
    fn counters_with_known_labels_exist_at_zero() {
        let metrics = Metrics::new().unwrap();
        metrics.create_topic_series(&["Fed | Central Banks".to_owned()]);
        let text = metrics.encode_text();
        for series in [
            "sentmon_model_reloads_total{result=\"failure\"} 0",
            "sentmon_model_reloads_total{result=\"success\"} 0",
            "sentmon_messages_dead_lettered_total{reason=\"invalid_json\"} 0",
            "sentmon_messages_dead_lettered_total{reason=\"text_not_string\"} 0",
            "sentmon_messages_classified_total{sentiment=\"negative\",topic=\"Fed | Central Banks\"} 0",
            "sentmon_messages_classified_total{sentiment=\"positive\",topic=\"Fed | Central Banks\"} 0",
            "sentmon_stage_failures_total{stage=\"emit\"} 0",
            "sentmon_stage_failures_total{stage=\"aggregate\"} 0",
        ] {
            assert!(text.contains(&format!("{series}\n")), "missing `{series}` in:\n{text}");
        }
        let dead_letter_series = text.lines().filter(|line| line.starts_with("sentmon_messages_dead_lettered_total{"));
        assert_eq!(dead_letter_series.count(), DeadLetterReason::ALL.len());
        let stage_series = text.lines().filter(|line| line.starts_with("sentmon_stage_failures_total{"));
        assert_eq!(stage_series.count(), Stage::ALL.len());
    }

    #[test]
    fn model_info_keeps_only_the_serving_version() {
        let metrics = Metrics::new().unwrap();
        metrics.set_model_version("v1");
        metrics.set_model_version("v2");
        metrics.set_model_version("v2");
        metrics.set_model_version("v3");
        let text = metrics.encode_text();
        let series: Vec<&str> = text.lines().filter(|line| line.starts_with("sentmon_model_info{")).collect();
        assert_eq!(series, ["sentmon_model_info{version=\"v3\"} 1"]);
    }
}
