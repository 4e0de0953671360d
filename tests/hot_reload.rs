//! Hot reload, end to end: `sentmon run` serving a model registry against a real Kafka-protocol
//! broker swaps in a model promoted mid-stream (no message lost or repeated, later records carry
//! the new version), and rejects a corrupt or incompatible bundle while the old one keeps serving.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::producer::{BaseRecord, Producer};

/// A registry holding the shipped model, promoted; returns (registry, shipped version).
fn registry_with_shipped_model(scratch: &Path) -> (PathBuf, String) {
    let registry = scratch.join("registry");
    sentmon_ok(&[
        "models",
        "add",
        &model_dir().display().to_string(),
        "--registry",
        &registry.display().to_string(),
        "--promote",
    ]);
    let manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(model_dir().join("model.json")).unwrap()).unwrap();
    (registry, manifest["version"].as_str().unwrap().to_string())
}

/// A copy of the shipped bundle under a new version, changed by `edit` (which gets the copy's
/// directory and its parsed model.json), added to the registry; returns the version.
fn add_variant(
    scratch: &Path,
    registry: &Path,
    version: &str,
    edit: impl FnOnce(&Path, &mut serde_json::Value),
) -> String {
    let directory = scratch.join(version);
    std::fs::create_dir_all(&directory).unwrap();
    for file in ["model.json", "tokenizer.json", "weights.safetensors"] {
        std::fs::copy(model_dir().join(file), directory.join(file)).unwrap();
    }
    let mut manifest: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(directory.join("model.json")).unwrap()).unwrap();
    manifest["version"] = serde_json::json!(version);
    edit(&directory, &mut manifest);
    std::fs::write(directory.join("model.json"), serde_json::to_string_pretty(&manifest).unwrap()).unwrap();
    sentmon_ok(&["models", "add", &directory.display().to_string(), "--registry", &registry.display().to_string()]);
    version.to_string()
}

fn promote(registry: &Path, version: &str) {
    sentmon_ok(&["models", "promote", version, "--registry", &registry.display().to_string()]);
}

fn epoch_ms(rfc3339: &serde_json::Value) -> i64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339.as_str().unwrap()).unwrap().timestamp_millis()
}

#[test]
fn a_model_promoted_mid_stream_is_swapped_in_without_losing_or_repeating_a_message() {
    const MESSAGES: usize = 3_000;
    const RATE_PER_SECOND: u64 = 250;
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let (registry, old_version) = registry_with_shipped_model(scratch.path());
    let new_version = add_variant(scratch.path(), &registry, "20261126-000000-reload01", |_, _| {});
    let http_port = free_port();
    let config = write_config_serving(scratch.path(), broker.bootstrap_servers(), http_port, &registry, "");
    let daemon = Daemon::start(&config, http_port, scratch.path());
    daemon.wait_ready(Duration::from_secs(90));

    // A steady stream; `produced` tells the test how far it got when the swap is seen.
    let produced = Arc::new(AtomicUsize::new(0));
    let stream = {
        let produced = Arc::clone(&produced);
        let brokers = broker.bootstrap_servers().to_string();
        std::thread::spawn(move || {
            let producer = producer(&brokers);
            let headlines = headline_messages(MESSAGES, "reload");
            let started = Instant::now();
            for (index, (key, payload)) in headlines.iter().enumerate() {
                let due = started + Duration::from_millis(index as u64 * 1000 / RATE_PER_SECOND);
                std::thread::sleep(due.saturating_duration_since(Instant::now()));
                let mut message: serde_json::Value = serde_json::from_slice(payload).unwrap();
                message["ts"] = serde_json::json!(chrono::Utc::now().timestamp_millis());
                let bytes = serde_json::to_vec(&message).unwrap();
                producer.send(BaseRecord::to(INPUT_TOPIC).key(key.as_bytes()).payload(&bytes)).unwrap();
                produced.store(index + 1, Ordering::SeqCst);
            }
            producer.flush(Duration::from_secs(30)).unwrap();
        })
    };

    while produced.load(Ordering::SeqCst) < MESSAGES / 4 {
        std::thread::sleep(Duration::from_millis(20));
    }
    promote(&registry, &new_version);
    daemon.wait_for_series("sentmon_model_reloads_total{result=\"success\"}", 1.0, Duration::from_secs(30));
    let produced_before_swap_seen = produced.load(Ordering::SeqCst);
    assert!(produced_before_swap_seen < MESSAGES, "the swap must happen mid-stream, not after it");
    stream.join().unwrap();

    let records =
        read_topic(broker.bootstrap_servers(), OUTPUT_TOPIC, MESSAGES, Duration::from_secs(90), Duration::from_secs(3));
    let mut versions_by_id: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    let mut latencies_ms = Vec::new();
    for record in &records {
        let record = json(record);
        let id: usize = record["id"].as_str().unwrap().rsplit('-').next().unwrap().parse().unwrap();
        versions_by_id.entry(id).or_default().push(record["model_version"].as_str().unwrap().to_string());
        latencies_ms.push(epoch_ms(&record["processed_at"]) - epoch_ms(&record["event_time"]));
    }
    assert_eq!(records.len(), MESSAGES, "one record per message, none extra");
    assert_eq!(versions_by_id.len(), MESSAGES, "every message classified exactly once");
    assert!(versions_by_id.keys().copied().eq(0..MESSAGES), "no gap in the ids");
    let count = |version: &str| versions_by_id.values().filter(|versions| versions[0] == version).count();
    let (old_count, new_count) = (count(&old_version), count(&new_version));
    assert_eq!(old_count + new_count, MESSAGES, "every record names the old or the new model");
    assert!(old_count > 0 && new_count > 0, "old {old_count}, new {new_count}");
    let late_old: Vec<usize> = versions_by_id
        .range(produced_before_swap_seen..)
        .filter(|(_, v)| v[0] == old_version)
        .map(|(id, _)| *id)
        .collect();
    assert!(
        late_old.is_empty(),
        "messages produced after the swap was reported still used the old model: {late_old:?}"
    );

    latencies_ms.sort_unstable();
    let p99 = latencies_ms[latencies_ms.len() * 99 / 100];
    let max = *latencies_ms.last().unwrap();
    eprintln!(
        "end-to-end latency across the swap: p50 {} ms, p99 {p99} ms, max {max} ms",
        latencies_ms[latencies_ms.len() / 2]
    );
    assert!(max < 5_000, "latency stays bounded across the swap: max {max} ms");

    let metrics = daemon.metrics();
    assert_eq!(metric_value(&metrics, &format!("sentmon_model_info{{version=\"{new_version}\"}}")), 1.0);
    assert!(!metrics.contains(&format!("sentmon_model_info{{version=\"{old_version}\"}}")), "{metrics}");
    assert!(daemon.terminate(Duration::from_secs(30)).success());
}

#[test]
fn a_corrupt_or_incompatible_bundle_is_rejected_and_the_old_model_keeps_serving() {
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let (registry, old_version) = registry_with_shipped_model(scratch.path());
    let truncated = add_variant(scratch.path(), &registry, "20261126-000000-truncated", |directory, _| {
        let weights = directory.join("weights.safetensors");
        let length = std::fs::metadata(&weights).unwrap().len();
        std::fs::OpenOptions::new().write(true).open(&weights).unwrap().set_len(length / 2).unwrap();
    });
    let relabelled = add_variant(scratch.path(), &registry, "20261126-000000-relabelled", |_, manifest| {
        manifest["topic_labels"][0] = serde_json::json!("Not A Topic We Serve");
    });
    let http_port = free_port();
    let config = write_config_serving(scratch.path(), broker.bootstrap_servers(), http_port, &registry, "");
    let daemon = Daemon::start(&config, http_port, scratch.path());
    daemon.wait_ready(Duration::from_secs(90));

    promote(&registry, &truncated);
    daemon.wait_for_series("sentmon_model_reloads_total{result=\"failure\"}", 1.0, Duration::from_secs(30));
    promote(&registry, &relabelled);
    daemon.wait_for_series("sentmon_model_reloads_total{result=\"failure\"}", 2.0, Duration::from_secs(30));

    produce_all(broker.bootstrap_servers(), &headline_messages(200, "after-rejections"));
    let records =
        read_topic(broker.bootstrap_servers(), OUTPUT_TOPIC, 200, Duration::from_secs(60), Duration::from_secs(2));
    assert_eq!(records.len(), 200, "the daemon keeps classifying after rejecting two bundles");
    assert!(records.iter().all(|record| json(record)["model_version"] == old_version.as_str()));

    let metrics = daemon.metrics();
    assert_eq!(metric_value(&metrics, &format!("sentmon_model_info{{version=\"{old_version}\"}}")), 1.0);
    assert_eq!(metric_value(&metrics, "sentmon_model_reloads_total{result=\"success\"}"), 0.0);
    assert_eq!(http_get(http_port, "/readyz").map(|(status, _)| status), Some(200));
    let log = daemon.log();
    for (version, reason) in [(&truncated, "too few for the parameter shapes"), (&relabelled, "topic labels")] {
        assert!(
            log.lines().any(|line| line.contains("rejected the new model")
                && line.contains(version.as_str())
                && line.contains(reason)),
            "the log names the rejected {version} and why ({reason}):\n{log}"
        );
    }
    assert!(daemon.terminate(Duration::from_secs(30)).success());
}

#[test]
fn sighup_reloads_the_promoted_model_when_polling_is_off() {
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let (registry, old_version) = registry_with_shipped_model(scratch.path());
    let new_version = add_variant(scratch.path(), &registry, "20261126-000000-sighup01", |_, _| {});
    let http_port = free_port();
    let config = write_config_serving(scratch.path(), broker.bootstrap_servers(), http_port, &registry, "");
    edit_config(&config, "watch_interval_secs = 1", "watch_interval_secs = 0");
    let daemon = Daemon::start(&config, http_port, scratch.path());
    daemon.wait_ready(Duration::from_secs(90));

    promote(&registry, &new_version);
    std::thread::sleep(Duration::from_secs(2));
    let metrics = daemon.metrics();
    assert_eq!(metric_value(&metrics, &format!("sentmon_model_info{{version=\"{old_version}\"}}")), 1.0, "no polling");

    let pid = daemon.child.id().to_string();
    std::process::Command::new("kill").args(["-HUP", &pid]).status().unwrap();
    daemon.wait_for_series("sentmon_model_reloads_total{result=\"success\"}", 1.0, Duration::from_secs(30));
    assert_eq!(metric_value(&daemon.metrics(), &format!("sentmon_model_info{{version=\"{new_version}\"}}")), 1.0);
    assert!(daemon.terminate(Duration::from_secs(30)).success(), "SIGHUP reloads; it does not stop the daemon");
}
