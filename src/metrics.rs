//! Prometheus metrics: every metric sentmon exports, on a registry owned by the app, grouped by the
//! subsystem that updates them (`metrics.ingest`, `.model`, `.output`, `.topics`, `.entities`,
//! `.archive`, `.process`). A metric is declared once, in its group's `metric_group!` entry: its
//! field, documentation, name, help and labels together.
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

/// The `result` label values of `sentmon_state_snapshots_total`.
pub const SNAPSHOT_RESULTS: [&str; 2] = ["written", "failed"];

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

/// Declares a group of metrics: the struct with its documented fields, and the constructor that
/// builds each one and registers it. Adding a metric is one entry in its group.
macro_rules! metric_group {
    (
        $(#[$group_doc:meta])*
        pub struct $group:ident {
            $( $(#[$field_doc:meta])* $field:ident: $kind:ty = $build:expr, )*
        }
    ) => {
        $(#[$group_doc])*
        pub struct $group {
            $( $(#[$field_doc])* pub $field: $kind, )*
        }

        impl $group {
            fn register(registry: &Registry) -> Result<$group, prometheus::Error> {
                Ok($group { $( $field: register(registry, $build)?, )* })
            }
        }
    };
}

metric_group! {
    /// Consuming: messages read, their lag, the group, the offsets, dead letters.
    pub struct IngestMetrics {
        /// Messages read from Kafka, before any parsing. Labels: `input_topic` (the Kafka topic).
        messages_consumed: IntCounterVec =
            int_counter_vec("sentmon_messages_consumed_total", "Messages read from Kafka.", &["input_topic"])?,
        /// Messages sent to the dead-letter output instead of being classified. Labels: `reason`
        /// (a fixed set of failure kinds, never the error text); every reason's series exists from
        /// the start, at 0.
        messages_dead_lettered: IntCounterVec =
            int_counter_vec(
                "sentmon_messages_dead_lettered_total",
                "Messages sent to the dead-letter output.",
                &["reason"],
            )?,
        /// Messages between the committed offset and the partition's high watermark. Labels:
        /// `input_topic`, `partition` (only partitions assigned to this replica: a revoked
        /// partition's series is removed).
        consumer_lag: IntGaugeVec =
            int_gauge_vec(
                "sentmon_consumer_lag_messages",
                "Messages behind the high watermark, per partition.",
                &["input_topic", "partition"],
            )?,
        /// Consumer group rebalance events. Labels: `kind` (`assign` | `revoke`).
        rebalances: IntCounterVec =
            int_counter_vec("sentmon_rebalances_total", "Consumer group rebalance events.", &["kind"])?,
        /// Offset commits that succeeded.
        commits: IntCounter =
            int_counter("sentmon_offset_commits_total", "Offset commits that succeeded.")?,
        /// Offset commits that failed.
        commit_failures: IntCounter =
            int_counter("sentmon_offset_commit_failures_total", "Offset commits that failed.")?,
    }
}

metric_group! {
    /// The model: what it answered, its batches and time, the served version and reloads.
    pub struct ModelMetrics {
        /// Messages classified by the model. Labels: `topic` (predicted class), `sentiment`
        /// (`negative` | `neutral` | `positive`); every pair of the served model exists at 0 from its
        /// load ([`ModelMetrics::create_topic_series`]).
        messages_classified: IntCounterVec =
            int_counter_vec(
                "sentmon_messages_classified_total",
                "Messages classified, by predicted topic and sentiment.",
                &["topic", "sentiment"],
            )?,
        /// Messages forwarded with null answers because they are in a language the serving model does not serve, and
        /// kept out of the windows. Labels: `language` (an ISO 639-1 code the language gate knows, `und-<Script>` for a
        /// script shared by several languages, or `other` for a declared code it does not know: a closed set).
        messages_unsupported_language: IntCounterVec =
            int_counter_vec(
                "sentmon_messages_unsupported_language_total",
                "Messages in a language the model does not serve: forwarded unclassified, not counted in windows.",
                &["language"],
            )?,
        /// Messages per inference batch.
        batch_size: Histogram =
            histogram("sentmon_batch_size_messages", "Messages per inference batch.", BATCH_SIZE_BUCKETS)?,
        /// Seconds spent running the model on one batch.
        inference_duration: Histogram =
            histogram("sentmon_inference_duration_seconds", "Model time per batch.", INFERENCE_DURATION_BUCKETS)?,
        /// 1 for the model version being served; set through [`ModelMetrics::set_model_version`]. Labels:
        /// `version`.
        model_info: IntGaugeVec =
            int_gauge_vec("sentmon_model_info", "1 for the model version being served.", &["version"])?,
        /// Model reload attempts. Labels: `result` (`success` | `failure`), both at 0 from the start.
        model_reloads: IntCounterVec =
            int_counter_vec("sentmon_model_reloads_total", "Model reload attempts.", &["result"])?,
    }
}

metric_group! {
    /// Producing: records acknowledged or refused, end-to-end latency, alert publishing.
    pub struct OutputMetrics {
        /// Records acknowledged by the broker. Labels: `output` (`enriched` | `dead_letter` | `alert` |
        /// `late`).
        records_produced: IntCounterVec =
            int_counter_vec(
                "sentmon_records_produced_total",
                "Records acknowledged by the broker, by output.",
                &["output"],
            )?,
        /// Records the broker refused or that timed out. Labels: `output`, as for `records_produced`.
        produce_failures: IntCounterVec =
            int_counter_vec(
                "sentmon_produce_failures_total",
                "Records the broker refused or that timed out, by output.",
                &["output"],
            )?,
        /// Alert events that could not be published to the alerts topic within the retry budget; the
        /// alert still shows in the log line and in `sentmon_alerts_total`.
        alert_publish_failures: IntCounter =
            int_counter(
                "sentmon_alert_publish_failures_total",
                "Alert events not published to the alerts topic after every retry.",
            )?,
        /// Seconds from a message's receipt from Kafka to the broker acknowledging its enriched record.
        end_to_end_latency: Histogram =
            histogram(
                "sentmon_end_to_end_latency_seconds",
                "Time from receipt from Kafka to acknowledgement of the enriched record.",
                END_TO_END_LATENCY_BUCKETS,
            )?,
    }
}

metric_group! {
    /// Per-topic windows and the spike detector: rates, volumes, baselines, alerts.
    pub struct TopicMetrics {
        /// Classified messages whose event time fell before every open window, so they were emitted but
        /// not counted in the rates. Labels: `topic`.
        messages_late: IntCounterVec =
            int_counter_vec("sentmon_messages_late_total", "Messages too late for every open window.", &["topic"])?,
        /// Share of negative messages in a view, 0 to 1. Labels: `topic` (a class or [`crate::window::ALL_TOPICS`]),
        /// `view` (the view's span, e.g. `5m`, `1h`).
        negative_rate: GaugeVec =
            gauge_vec("sentmon_negative_rate_ratio", "Share of negative messages in a view.", &["topic", "view"])?,
        /// Messages in a view, so a rate can be read against its volume. Labels: `topic`, `view`.
        message_count: IntGaugeVec =
            int_gauge_vec("sentmon_view_messages", "Messages in a view.", &["topic", "view"])?,
        /// Baseline negative rate the spike detector compares against, 0 to 1. Labels: `topic`.
        negative_rate_baseline: GaugeVec =
            gauge_vec(
                "sentmon_negative_rate_baseline_ratio",
                "Baseline negative rate for spike detection.",
                &["topic"],
            )?,
        /// Standard deviation of the baseline negative rate, as a ratio. Labels: `topic`.
        negative_rate_baseline_stddev: GaugeVec =
            gauge_vec(
                "sentmon_negative_rate_baseline_stddev_ratio",
                "Standard deviation of the baseline negative rate.",
                &["topic"],
            )?,
        /// Latest z-score of the negative rate against its baseline (dimensionless). Labels: `topic`.
        spike_z_score: GaugeVec =
            gauge_vec("sentmon_spike_z_score", "Z-score of the negative rate against its baseline.", &["topic"])?,
        /// 1 while a spike alert is firing for the topic, else 0. Labels: `topic`.
        alert_firing: IntGaugeVec =
            int_gauge_vec("sentmon_alert_firing", "1 while a spike alert is firing.", &["topic"])?,
        /// Alert transitions. Labels: `topic`, `kind` (`firing` | `resolved`).
        alerts: IntCounterVec =
            int_counter_vec("sentmon_alerts_total", "Alert transitions.", &["topic", "kind"])?,
    }
}

metric_group! {
    /// Per-entity windows and alerts (`[entities]`), under the bounded labels of `crate::entity::labels`.
    pub struct EntityMetrics {
        /// Share of negative messages mentioning an entity in a view, 0 to 1 (`[entities]`). Labels:
        /// `entity` (a watched name, one of the top cashtags, or `__other__`: see
        /// [`crate::entity::labels`]), `view`.
        negative_rate: GaugeVec =
            gauge_vec(
                "sentmon_entity_negative_rate_ratio",
                "Share of negative messages mentioning the entity in a view.",
                &["entity", "view"],
            )?,
        /// Messages mentioning an entity in a view. Labels: `entity`, `view`.
        message_count: IntGaugeVec =
            int_gauge_vec(
                "sentmon_entity_view_messages",
                "Messages mentioning the entity in a view.",
                &["entity", "view"],
            )?,
        /// Negative messages mentioning an entity in a view, what the volume test counts. Labels: `entity`, `view`.
        negative_count: IntGaugeVec =
            int_gauge_vec(
                "sentmon_entity_view_negative_messages",
                "Negative messages mentioning the entity in a view.",
                &["entity", "view"],
            )?,
        /// Negative messages the volume test's baseline expects in the detection view. Labels: `entity`.
        expected_negative_count: GaugeVec =
            gauge_vec(
                "sentmon_entity_expected_negative_messages",
                "Negative messages the volume baseline expects in the entity's detection view.",
                &["entity"],
            )?,
        /// 1 while an alert is firing for the entity (for `__other__`: for any of the entities it holds), else 0.
        /// Labels: `entity`.
        alert_firing: IntGaugeVec =
            int_gauge_vec("sentmon_entity_alert_firing", "1 while an alert is firing for the entity.", &["entity"])?,
        /// Entity alert transitions. Labels: `entity`, `detector` (`rate` | `volume`), `kind` (`firing` | `resolved`).
        alerts: IntCounterVec =
            int_counter_vec(
                "sentmon_entity_alerts_total",
                "Entity alert transitions.",
                &["entity", "detector", "kind"],
            )?,
    }
}

metric_group! {
    /// The stream archive (`[archive]`).
    pub struct ArchiveMetrics {
        /// Classified messages written into archive files (`[archive]`).
        records: IntCounter =
            int_counter("sentmon_archive_records_total", "Messages written to archive files.")?,
        /// Archive files completed and made visible, including files recovered from a crash.
        files: IntCounter =
            int_counter("sentmon_archive_files_total", "Archive files completed.")?,
        /// Archive I/O errors (each abandons the open file; its flushed part is recovered at the next
        /// start).
        errors: IntCounter =
            int_counter("sentmon_archive_errors_total", "Archive I/O errors.")?,
        /// Classified messages not archived because writing was failing, or because they arrived
        /// after the archive closed (a drain that ran out of time).
        records_dropped: IntCounter =
            int_counter(
                "sentmon_archive_records_dropped_total",
                "Messages not archived because writing failed or the archive had closed.",
            )?,
    }
}

/// Restore time, 10 ms to 60 s: reading the state topic and installing a few hundred topics' snapshots takes
/// well under a second; the top buckets catch a slow or huge state topic.
const RESTORE_DURATION_BUCKETS: &[f64] = &[0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

metric_group! {
    /// The aggregate role (`[pipeline] role = "aggregate"`): summaries applied, state snapshots written and restored.
    pub struct FleetMetrics {
        /// Topic summaries taken from the repartition topic into the windows (late ones included).
        summaries_applied: IntCounter =
            int_counter("sentmon_summaries_applied_total", "Topic summaries applied to the windows.")?,
        /// Summaries skipped after a restore because the restored state already held them.
        summaries_already_restored: IntCounter =
            int_counter(
                "sentmon_summaries_already_restored_total",
                "Summaries skipped because a restored snapshot already held them.",
            )?,
        /// Topic state snapshots handed to the state topic. Labels: `result` (`written` | `failed`).
        snapshots: IntCounterVec =
            int_counter_vec("sentmon_state_snapshots_total", "Topic state snapshots written or failed.", &["result"])?,
        /// Time from a partition assignment to its topics' state being restored (state topic read included).
        restore_duration: Histogram =
            histogram(
                "sentmon_restore_duration_seconds",
                "Time to restore the state of newly assigned topics.",
                RESTORE_DURATION_BUCKETS,
            )?,
        /// Topics whose windows and detector were restored from a snapshot.
        topics_restored: IntCounter =
            int_counter("sentmon_topics_restored_total", "Topics restored from a state snapshot.")?,
        /// Restores that failed (the state topic could not be read in time): the topics then start cold.
        restore_failures: IntCounter =
            int_counter("sentmon_restore_failures_total", "Restores that failed; the topics started cold.")?,
        /// Topics this aggregator owns now.
        topics_owned: IntGauge =
            int_gauge("sentmon_topics_owned", "Topics this aggregator owns.")?,
    }
}

metric_group! {
    /// The process: readiness, failed stages, build.
    pub struct ProcessMetrics {
        /// 1 when `/readyz` would answer 200, else 0.
        ready: IntGauge =
            int_gauge("sentmon_ready", "1 when /readyz would answer 200.")?,
        /// Long-lived tasks that ended before shutdown or failed during a drain (each takes the
        /// process down). Labels: `stage` (see [`Stage`]), every stage at 0 from the start.
        stage_failures: IntCounterVec =
            int_counter_vec(
                "sentmon_stage_failures_total",
                "Daemon stages that failed (each ends the process).",
                &["stage"],
            )?,
        /// Always 1; the crate version that is running. Labels: `version`.
        build_info: IntGaugeVec =
            int_gauge_vec("sentmon_build_info", "Always 1; the running crate version.", &["version"])?,
    }
}

/// Every metric sentmon exports, by subsystem, registered on `registry`, which this struct owns.
///
/// One instance per app, shared via `Arc`; tests build their own so they never see each other's
/// numbers.
pub struct Metrics {
    registry: Registry,
    pub ingest: IngestMetrics,
    pub model: ModelMetrics,
    pub output: OutputMetrics,
    pub topics: TopicMetrics,
    pub entities: EntityMetrics,
    pub archive: ArchiveMetrics,
    pub fleet: FleetMetrics,
    pub process: ProcessMetrics,
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
        let metrics = Metrics {
            ingest: IngestMetrics::register(&registry)?,
            model: ModelMetrics::register(&registry)?,
            output: OutputMetrics::register(&registry)?,
            topics: TopicMetrics::register(&registry)?,
            entities: EntityMetrics::register(&registry)?,
            archive: ArchiveMetrics::register(&registry)?,
            fleet: FleetMetrics::register(&registry)?,
            process: ProcessMetrics::register(&registry)?,
            registry,
        };
        metrics.process.build_info.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
        // Counters whose label values are known up front start at 0: a series created by its first
        // increment starts at 1, and increase() over it is 0, so an alert on the first failure
        // (SentmonModelReloadFailed) would never fire.
        for reason in DeadLetterReason::ALL {
            metrics.ingest.messages_dead_lettered.with_label_values(&[reason.as_str()]);
        }
        for result in SNAPSHOT_RESULTS {
            metrics.fleet.snapshots.with_label_values(&[result]);
        }
        for result in MODEL_RELOAD_RESULTS {
            metrics.model.model_reloads.with_label_values(&[result]);
        }
        for stage in Stage::ALL {
            metrics.process.stage_failures.with_label_values(&[stage.as_str()]);
        }
        Ok(metrics)
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

impl ModelMetrics {
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
}

impl EntityMetrics {
    /// Creates every watched entity's alert counters at 0, so an alert rule on `increase()` sees the first one
    /// (as for the counters above), and its `__other__` twin.
    pub fn create_entity_series(&self, watched: &[String]) {
        for entity in watched.iter().map(String::as_str).chain([crate::entity::OTHER_ENTITIES]) {
            for (detector, kind) in ENTITY_ALERT_LABELS {
                self.alerts.with_label_values(&[entity, detector, kind]);
            }
        }
    }

    /// Drops every series of an entity that no longer has a label of its own (see [`crate::entity::labels`]).
    pub fn remove_entity_series(&self, entity: &str, views: &[String]) {
        // A series that was never set is already absent: that is the outcome wanted.
        for view in views {
            let _ = self.negative_rate.remove_label_values(&[entity, view]);
            let _ = self.message_count.remove_label_values(&[entity, view]);
            let _ = self.negative_count.remove_label_values(&[entity, view]);
        }
        let _ = self.expected_negative_count.remove_label_values(&[entity]);
        let _ = self.alert_firing.remove_label_values(&[entity]);
        for (detector, kind) in ENTITY_ALERT_LABELS {
            let _ = self.alerts.remove_label_values(&[entity, detector, kind]);
        }
    }
}

fn int_counter(name: &str, help: &str) -> Result<IntCounter, prometheus::Error> {
    IntCounter::with_opts(Opts::new(name, help))
}

fn int_counter_vec(name: &str, help: &str, labels: &[&str]) -> Result<IntCounterVec, prometheus::Error> {
    IntCounterVec::new(Opts::new(name, help), labels)
}

fn int_gauge(name: &str, help: &str) -> Result<IntGauge, prometheus::Error> {
    IntGauge::with_opts(Opts::new(name, help))
}

fn int_gauge_vec(name: &str, help: &str, labels: &[&str]) -> Result<IntGaugeVec, prometheus::Error> {
    IntGaugeVec::new(Opts::new(name, help), labels)
}

fn gauge_vec(name: &str, help: &str, labels: &[&str]) -> Result<GaugeVec, prometheus::Error> {
    GaugeVec::new(Opts::new(name, help), labels)
}

fn histogram(name: &str, help: &str, buckets: &[f64]) -> Result<Histogram, prometheus::Error> {
    Histogram::with_opts(HistogramOpts::new(name, help).buckets(buckets.to_vec()))
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
        metrics.ingest.messages_consumed.with_label_values(&["news"]).inc();
        metrics.model.messages_classified.with_label_values(&["earnings", "negative"]).inc();
        metrics.model.messages_unsupported_language.with_label_values(&["zh"]).inc();
        metrics.ingest.messages_dead_lettered.with_label_values(&["invalid_json"]).inc();
        metrics.topics.messages_late.with_label_values(&["earnings"]).inc();
        metrics.output.records_produced.with_label_values(&["enriched"]).inc();
        metrics.output.produce_failures.with_label_values(&["alert"]).inc();
        metrics.topics.negative_rate.with_label_values(&[ALL_TOPICS, "5m"]).set(0.25);
        metrics.topics.message_count.with_label_values(&[ALL_TOPICS, "5m"]).set(40);
        metrics.topics.negative_rate_baseline.with_label_values(&["earnings"]).set(0.1);
        metrics.topics.negative_rate_baseline_stddev.with_label_values(&["earnings"]).set(0.02);
        metrics.topics.spike_z_score.with_label_values(&["earnings"]).set(3.5);
        metrics.topics.alert_firing.with_label_values(&["earnings"]).set(1);
        metrics.topics.alerts.with_label_values(&["earnings", "firing"]).inc();
        metrics.entities.negative_rate.with_label_values(&["UBS", "5m"]).set(0.5);
        metrics.entities.message_count.with_label_values(&["UBS", "5m"]).set(8);
        metrics.entities.negative_count.with_label_values(&["UBS", "5m"]).set(4);
        metrics.entities.expected_negative_count.with_label_values(&["UBS"]).set(0.7);
        metrics.entities.alert_firing.with_label_values(&["UBS"]).set(1);
        metrics.entities.alerts.with_label_values(&["UBS", "volume", "firing"]).inc();
        metrics.model.batch_size.observe(32.0);
        metrics.model.inference_duration.observe(0.007);
        metrics.output.end_to_end_latency.observe(0.12);
        metrics.ingest.consumer_lag.with_label_values(&["news", "0"]).set(12);
        metrics.model.set_model_version("v1");
        metrics.model.model_reloads.with_label_values(&["success"]).inc();
        metrics.ingest.rebalances.with_label_values(&["assign"]).inc();
        metrics.ingest.commits.inc();
        metrics.ingest.commit_failures.inc();
        metrics.process.ready.set(1);
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
        ("sentmon_summaries_applied_total", "counter"),
        ("sentmon_summaries_already_restored_total", "counter"),
        ("sentmon_state_snapshots_total", "counter"),
        ("sentmon_restore_duration_seconds", "histogram"),
        ("sentmon_topics_restored_total", "counter"),
        ("sentmon_restore_failures_total", "counter"),
        ("sentmon_topics_owned", "gauge"),
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
        first.ingest.commits.inc_by(5);
        first.ingest.messages_consumed.with_label_values(&["news"]).inc();
        assert_eq!(first.ingest.commits.get(), 5);
        assert_eq!(second.ingest.commits.get(), 0);
        let second_text = second.encode_text();
        assert!(second_text.contains("sentmon_offset_commits_total 0\n"));
        assert!(!second_text.contains("sentmon_messages_consumed_total"));
    }

    /// Issue 11: labelled counters created on first increment start at 1, so increase() misses the
    /// first failure.
    #[test]
    fn counters_with_known_labels_exist_at_zero() {
        let metrics = Metrics::new().unwrap();
        metrics.model.create_topic_series(&["Fed | Central Banks".to_owned()]);
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
        metrics.model.set_model_version("v1");
        metrics.model.set_model_version("v2");
        metrics.model.set_model_version("v2");
        metrics.model.set_model_version("v3");
        let text = metrics.encode_text();
        let series: Vec<&str> = text.lines().filter(|line| line.starts_with("sentmon_model_info{")).collect();
        assert_eq!(series, ["sentmon_model_info{version=\"v3\"} 1"]);
    }
}
