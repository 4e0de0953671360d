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
