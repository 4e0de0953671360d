//! Supervision (issue 11, section 1): `sentmon run` as a real process against the embedded broker,
//! with a stage killed through the test-only fault hook (`SENTMON_TEST_FAULT`, src/faults.rs).

mod common;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;

/// `write_config`'s `[shutdown] grace_secs`.
const GRACE: Duration = Duration::from_secs(20);
/// sysexits' EX_SOFTWARE, `sentmon::supervise::EXIT_CODE_STAGE_FAILED`.
const EXIT_STAGE_FAILED: i32 = 70;

/// What a tight poller saw on /healthz while the daemon went down: the first failing answer, with
/// the metrics scraped right after it.
struct FailingHealth {
    body: String,
    metrics: String,
}

/// Polls /healthz without pausing (the drain after a stage failure takes milliseconds when nothing
/// is in flight) until it fails or the server is gone after having answered.
fn watch_health(port: u16) -> mpsc::Receiver<Option<FailingHealth>> {
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let deadline = Instant::now() + GENEROUS;
        let mut answered = false;
        while Instant::now() < deadline {
            match http_get(port, "/healthz") {
                Some((200, _)) => answered = true,
                Some((_, body)) => {
                    let metrics = http_get(port, "/metrics").map(|(_, metrics)| metrics).unwrap_or_default();
                    let _ = sender.send(Some(FailingHealth { body, metrics }));
                    return;
                }
                None if answered => break,
                None => std::thread::sleep(Duration::from_millis(20)),
            }
        }
        let _ = sender.send(None);
    });
    receiver
}

#[test]
fn a_stage_that_panics_fails_healthz_naming_it_commits_what_is_done_and_exits_70_within_the_grace() {
    let _serial = serial();
    let broker = start_broker();
    let scratch = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(scratch.path(), broker.bootstrap_servers(), port, "");
    let trigger = scratch.path().join("kill-aggregate");
    let fault = format!("stage_panic:aggregate:{}", trigger.display());
    let mut daemon = Daemon::start_with_env(&config, port, scratch.path(), &[("SENTMON_TEST_FAULT", &fault)]);
    daemon.wait_ready(GENEROUS);
    let messages = headline_messages(40, "before-fault");
    produce_all(broker.bootstrap_servers(), &messages);
    daemon.wait_for_series("sentmon_records_produced_total{output=\"enriched\"}", 40.0, GENEROUS);
    assert_eq!(http_get(port, "/healthz"), Some((200, "ok\n".to_owned())));

    let health = watch_health(port);
    std::fs::write(&trigger, "").unwrap();
    let killed_at = Instant::now();
    let status = loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            killed_at.elapsed() < GRACE,
            "the daemon still runs {:?} after its aggregate stage died; log:\n{}",
            killed_at.elapsed(),
            daemon.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let log = daemon.log();
    assert_eq!(status.code(), Some(EXIT_STAGE_FAILED), "exit status; log:\n{log}");

    let failing =
        health.recv().unwrap().unwrap_or_else(|| panic!("/healthz never failed before the exit; log:\n{log}"));
    assert!(
        failing.body.starts_with("stage aggregate failed: panicked: injected fault"),
        "/healthz body: {:?}",
        failing.body
    );
    assert_eq!(metric_value(&failing.metrics, "sentmon_stage_failures_total{stage=\"aggregate\"}"), 1.0);
    assert_eq!(metric_value(&failing.metrics, "sentmon_stage_failures_total{stage=\"emit\"}"), 0.0);
    assert!(failing.metrics.contains("sentmon_ready 0\n"), "still ready while failing");
    assert!(
        log.contains("ERROR") && log.contains("stage aggregate failed: panicked: injected fault"),
        "no error line naming the stage; log:\n{log}"
    );

    // The drain committed everything classified before the fault: a restart re-reads nothing.
    let committed: i64 = committed_offsets(broker.bootstrap_servers(), GROUP_ID, INPUT_TOPIC).values().sum();
    assert_eq!(committed, messages.len() as i64, "committed next offsets over the partitions; log:\n{log}");
}

#[test]
fn a_forward_pass_that_fails_dead_letters_its_batch_advances_the_offsets_and_keeps_serving() {
    const MARKER: &str = "POISONPILL";
    let _serial = serial();
    let broker = start_broker();
    let brokers = broker.bootstrap_servers();
    let scratch = tempfile::tempdir().unwrap();
    let port = free_port();
    let config = write_config(scratch.path(), brokers, port, "");
    let fault = format!("inference_panic:{MARKER}");
    let mut daemon = Daemon::start_with_env(&config, port, scratch.path(), &[("SENTMON_TEST_FAULT", &fault)]);
    daemon.wait_ready(GENEROUS);
    let dead_letter_series = "sentmon_messages_dead_lettered_total{reason=\"inference_failed\"}";
    assert!(
        daemon.metrics().contains(&format!("{dead_letter_series} 0\n")),
        "the reason's series is not at 0 before the first"
    );

    // Every 10th message makes the forward pass of whatever batch it lands in fail.
    let mut messages = headline_messages(60, "mixed");
    let poisoned: Vec<String> = messages.iter().step_by(10).map(|(id, _)| id.clone()).collect();
    for (id, payload) in messages.iter_mut().step_by(10) {
        *payload =
            serde_json::json!({"id": id, "text": format!("Markets wobble {MARKER} {id}")}).to_string().into_bytes();
    }
    produce_all(brokers, &messages);
    let mut seen = std::collections::BTreeSet::new();
    let records = read_topics_until(brokers, &[OUTPUT_TOPIC, DEAD_LETTER_TOPIC], GENEROUS, SETTLE, |records| {
        if let Some(record) = records.last() {
            seen.insert(record.key.clone());
        }
        seen.len() >= messages.len()
    });
    let log = daemon.log();
    let ids: std::collections::BTreeSet<&str> = records.iter().filter_map(|record| record.key.as_deref()).collect();
    assert_eq!(ids.len(), messages.len(), "every message reaches the output or the dead-letter topic; log:\n{log}");
    let dead_letters: Vec<&ConsumedRecord> =
        records.iter().filter(|record| record.topic == DEAD_LETTER_TOPIC).collect();
    for record in &dead_letters {
        assert_eq!(record.headers.get("sentmon-reason").map(String::as_str), Some("inference_failed"));
        let detail = &record.headers["sentmon-detail"];
        assert!(detail.contains("injected fault"), "detail {detail:?}");
    }
    let dead_lettered: std::collections::BTreeSet<&str> =
        dead_letters.iter().map(|record| record.key.as_deref().unwrap()).collect();
    for id in &poisoned {
        assert!(dead_lettered.contains(id.as_str()), "{id} was not dead-lettered; log:\n{log}");
    }
    assert!(
        records
            .iter()
            .filter(|record| record.topic == OUTPUT_TOPIC)
            .all(|record| !json(record)["text"].as_str().unwrap().contains(MARKER)),
        "a poisoned message was classified"
    );
    daemon.wait_for_series(dead_letter_series, dead_letters.len() as f64, GENEROUS);
    assert!(log.contains("inference failed on a batch"), "no error line for the failed batch; log:\n{log}");

    // Offsets of the failed batches complete like any other: the partitions are not pinned.
    wait_for("every input offset committed", GENEROUS, || {
        committed_offsets(brokers, GROUP_ID, INPUT_TOPIC).values().sum::<i64>() == messages.len() as i64
    });

    // And the same workers keep classifying.
    let enriched_series = "sentmon_records_produced_total{output=\"enriched\"}";
    let enriched_before = metric_value(&daemon.metrics(), enriched_series);
    produce_all(brokers, &headline_messages(20, "after"));
    daemon.wait_for_series(enriched_series, enriched_before + 20.0, GENEROUS);
    assert!(daemon.is_running(), "the daemon exited; log:\n{}", daemon.log());
    assert_eq!(http_get(port, "/healthz"), Some((200, "ok\n".to_owned())));
    assert_eq!(daemon.metric_sum("sentmon_stage_failures_total"), 0.0);
}
