//! `sentmon retrain` and `sentmon models`, run as the real binary on the project's fixtures: the
//! quality gate promotes a better candidate, keeps a deliberately worse one out, and records
//! its decision and both sets of figures beside the candidate; rollback undoes a promotion.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

mod common;
use common::*;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(name)
}

/// A small, fast architecture; `quality` picks the training recipe.
fn train_options(quality: Quality) -> String {
    let recipe = match quality {
        // A learning rate this small leaves the weights where initialisation put them.
        Quality::Untrained => r#""--epochs", "1", "--learning-rate", "1e-9""#,
        Quality::Trained => r#""--epochs", "25", "--patience", "25", "--learning-rate", "1e-2""#,
    };
    format!(
        r#"["--embedding-dim", "16", "--hidden-size", "16", "--feature-dim", "8", "--feature-buckets", "4096",
            "--batch-size", "8", "--seed", "3", "--dropout", "0.1", "--validation-fraction", "0.1",
            "--test-fraction", "0.05", {recipe}]"#
    )
}

#[derive(Clone, Copy)]
enum Quality {
    Untrained,
    Trained,
}

/// Writes the config retrain reads (the Kafka keys only satisfy validation; retrain uses no broker).
fn write_retrain_config(scratch: &Path, registry: &Path, quality: Quality) -> PathBuf {
    let data = format!(
        "[{:?}, {:?}]",
        fixture("headlines.topic.jsonl").display().to_string(),
        fixture("headlines.sentiment.jsonl").display().to_string()
    );
    let config = format!(
        r#"
[kafka]
brokers = "127.0.0.1:9"
input_topics = ["news"]

[model]
path = {registry:?}

[retrain]
data = {data}
evaluation_data = {data}
max_macro_f1_drop = 0.01
train_options = {options}
"#,
        registry = registry.display().to_string(),
        options = train_options(quality)
    );
    let path = scratch.join("sentmon.toml");
    std::fs::write(&path, config).unwrap();
    path
}

fn retrain(scratch: &Path, registry: &Path, quality: Quality) -> String {
    let config = write_retrain_config(scratch, registry, quality);
    String::from_utf8(sentmon_ok(&["retrain", "--config", &config.display().to_string()]).stdout).unwrap()
}

fn promoted(registry: &Path) -> String {
    std::fs::read_to_string(registry.join("PROMOTED")).unwrap().trim().to_string()
}

fn gate(registry: &Path, version: &str) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(registry.join("versions").join(version).join("gate.json")).unwrap())
        .unwrap()
}

fn parent(registry: &Path, version: &str) -> serde_json::Value {
    let manifest: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(registry.join("versions").join(version).join("model.json")).unwrap(),
    )
    .unwrap();
    manifest["parent_version"].clone()
}

fn sum_of_f1(scores: &serde_json::Value) -> f64 {
    scores["topic_macro_f1"].as_f64().unwrap() + scores["sentiment_macro_f1"].as_f64().unwrap()
}

#[test]
fn the_gate_promotes_a_better_candidate_and_keeps_a_worse_one_out() {
    let scratch = tempfile::tempdir().unwrap();
    let registry = scratch.path().join("registry");

    // Nothing promoted yet: the first candidate (untrained, poor) passes by definition.
    let first_output = retrain(scratch.path(), &registry, Quality::Untrained);
    let poor = promoted(&registry);
    assert!(first_output.contains(&format!("promoted {poor}")), "{first_output}");
    assert_eq!(gate(&registry, &poor)["passed"], true);

    // A trained candidate beats it on the fixed evaluation set and replaces it.
    let second_output = retrain(scratch.path(), &registry, Quality::Trained);
    let better = promoted(&registry);
    assert_ne!(better, poor, "the better candidate is promoted: {second_output}");
    let decision = gate(&registry, &better);
    assert_eq!(decision["passed"], true, "{decision}");
    assert_eq!(decision["promoted_version"], poor.as_str());
    assert!(sum_of_f1(&decision["candidate"]) > sum_of_f1(&decision["promoted"]) + 0.1, "{decision}");
    assert_eq!(parent(&registry, &better), poor.as_str(), "a bundle records the model it was trained to replace");

    // Another untrained candidate is worse than the promoted model: it stays out.
    let third_output = retrain(scratch.path(), &registry, Quality::Untrained);
    assert_eq!(promoted(&registry), better, "a worse candidate must not be promoted: {third_output}");
    assert!(third_output.contains(&format!("kept {better}")), "{third_output}");
    let versions: Vec<String> = std::fs::read_dir(registry.join("versions"))
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(versions.len(), 3, "the rejected candidate stays in the registry for inspection: {versions:?}");
    let rejected = versions.iter().find(|version| **version != poor && **version != better).unwrap();
    let decision = gate(&registry, rejected);
    assert_eq!(decision["passed"], false, "{decision}");
    assert!(decision["reasons"].to_string().contains("below the promoted"), "{decision}");
    assert!(sum_of_f1(&decision["candidate"]) < sum_of_f1(&decision["promoted"]), "{decision}");

    let registry_arg = registry.display().to_string();
    let listing = String::from_utf8(sentmon_ok(&["models", "list", "--registry", &registry_arg]).stdout).unwrap();
    assert!(listing.lines().any(|line| line.starts_with('*') && line.contains(&better)), "{listing}");
    for version in &versions {
        let rows = listing.lines().filter(|line| line.get(2..).is_some_and(|row| row.starts_with(version.as_str())));
        assert_eq!(rows.count(), 1, "one row per version:\n{listing}");
    }

    sentmon_ok(&["models", "rollback", "--registry", &registry_arg]);
    assert_eq!(promoted(&registry), poor, "rollback returns to the version promoted before");
}

#[test]
fn retrain_refuses_a_single_bundle_as_its_registry_and_says_how_to_make_one() {
    let scratch = tempfile::tempdir().unwrap();
    let bundle = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default");
    let config = write_retrain_config(scratch.path(), &bundle, Quality::Untrained);
    let output = Command::new(env!("CARGO_BIN_EXE_sentmon"))
        .args(["retrain", "--config", &config.display().to_string()])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success());
    assert!(stderr.contains("is a single bundle, not a registry") && stderr.contains("sentmon models add"), "{stderr}");
}

#[test]
fn the_daemon_retrains_on_its_schedule_and_swaps_in_the_promoted_candidate() {
    let scratch = tempfile::tempdir().unwrap();
    let registry = scratch.path().join("registry");
    // Serve a poor model first, so that the scheduled retrain's candidate passes the gate.
    retrain(scratch.path(), &registry, Quality::Untrained);
    let poor = promoted(&registry);

    let broker = start_broker();
    let http_port = free_port();
    let retrain_section = std::fs::read_to_string(write_retrain_config(scratch.path(), &registry, Quality::Trained))
        .unwrap()
        .split_once("[retrain]")
        .map(|(_, section)| format!("[retrain]{section}\ninterval_secs = 60\n"))
        .unwrap();
    let config =
        write_config_serving(scratch.path(), broker.bootstrap_servers(), http_port, &registry, &retrain_section);
    let daemon = Daemon::start(&config, http_port, scratch.path());
    daemon.wait_ready(Duration::from_secs(90));
    assert_eq!(metric_value(&daemon.metrics(), &format!("sentmon_model_info{{version=\"{poor}\"}}")), 1.0);

    // The first scheduled run starts 60 s after start; training on the fixtures takes seconds.
    daemon.wait_for_series("sentmon_model_reloads_total{result=\"success\"}", 1.0, Duration::from_secs(150));
    let retrained = promoted(&registry);
    assert_ne!(retrained, poor);
    assert_eq!(metric_value(&daemon.metrics(), &format!("sentmon_model_info{{version=\"{retrained}\"}}")), 1.0);
    assert!(daemon.log().contains("retrain started at the lowest CPU priority"), "{}", daemon.log());

    produce_all(broker.bootstrap_servers(), &headline_messages(50, "after-retrain"));
    let records =
        read_topic(broker.bootstrap_servers(), OUTPUT_TOPIC, 50, Duration::from_secs(60), Duration::from_secs(1));
    assert_eq!(records.len(), 50);
    assert!(records.iter().all(|record| json(record)["model_version"] == retrained.as_str()));
    assert!(daemon.terminate(Duration::from_secs(30)).success());
}
