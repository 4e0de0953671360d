//! The daemon end to end: `sentmon run` as a real process against a real Kafka-protocol broker
//! (librdkafka's mock cluster in this test process), with the shipped model.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::time::{Duration, Instant};

use common::*;

#[test]
fn every_valid_message_is_enriched_once_and_every_invalid_one_dead_lettered() {
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let valid = headline_messages(200, "valid");
    let oversized = serde_json::json!({"text": "a".repeat(5000)}).to_string().into_bytes();
    let invalid: Vec<(String, Vec<u8>, &str)> = vec![
        ("bad-utf8".into(), b"\xff\xfe not text".to_vec(), "not_utf8"),
        ("bad-json".into(), b"{\"text\": ".to_vec(), "invalid_json"),
        ("empty-text".into(), br#"{"text": "   "}"#.to_vec(), "empty_text"),
        ("no-text".into(), br#"{"body": "headline"}"#.to_vec(), "missing_text"),
        ("too-large".into(), oversized, "too_large"),
        ("not-object".into(), b"[1, 2, 3]".to_vec(), "not_an_object"),
        ("empty-payload".into(), Vec::new(), "empty_payload"),
        ("text-number".into(), br#"{"text": 42}"#.to_vec(), "text_not_string"),
    ];
    let mut messages = valid.clone();
    for (index, (key, payload, _)) in invalid.iter().enumerate() {
        messages.insert(index * 20, (key.clone(), payload.clone()));
    }
    produce_all(broker.bootstrap_servers(), &messages);

    let http_port = free_port();
    let config = write_config(scratch.path(), broker.bootstrap_servers(), http_port, "");
    let daemon = Daemon::start(&config, http_port, scratch.path());
    daemon.wait_ready(GENEROUS);
    let enriched = read_topic(broker.bootstrap_servers(), OUTPUT_TOPIC, valid.len(), GENEROUS, SETTLE);
    let dead_letters = read_topic(broker.bootstrap_servers(), DEAD_LETTER_TOPIC, invalid.len(), GENEROUS, SETTLE);

    let enriched_ids: Vec<String> =
        enriched.iter().map(|record| json(record)["id"].as_str().unwrap().to_string()).collect();
    let unique_ids: BTreeSet<&String> = enriched_ids.iter().collect();
    assert_eq!(enriched.len(), valid.len(), "one enriched record per valid message; log:\n{}", daemon.log());
    assert_eq!(unique_ids.len(), valid.len(), "no duplicates");
    assert_eq!(unique_ids, valid.iter().map(|(id, _)| id).collect::<BTreeSet<_>>());
    for record in &enriched {
        let value = json(record);
        assert_eq!(record.key.as_deref(), value["id"].as_str(), "output key = input key");
        assert!(value["topic"].is_string() && value["topic_prob"].is_number(), "{value}");
        assert!(["negative", "neutral", "positive"].contains(&value["sentiment"].as_str().unwrap()), "{value}");
        assert!(
            value["model_version"].is_string() && value["event_time"].is_string() && value["processed_at"].is_string()
        );
        assert_eq!(value["source"], "test", "input fields are kept");
    }

    assert_eq!(dead_letters.len(), invalid.len(), "one dead letter per invalid message; log:\n{}", daemon.log());
    let by_key: HashMap<String, &ConsumedRecord> =
        dead_letters.iter().map(|record| (record.key.clone().unwrap_or_default(), record)).collect();
    for (key, payload, reason) in &invalid {
        let record = by_key.get(key).unwrap_or_else(|| panic!("no dead letter for {key}"));
        assert_eq!(&record.payload, payload, "the original bytes are kept");
        assert_eq!(record.headers.get("sentmon-reason").map(String::as_str), Some(*reason), "{key}");
        assert_eq!(record.headers.get("sentmon-source-topic").map(String::as_str), Some(INPUT_TOPIC));
        assert!(
            record.headers.contains_key("sentmon-source-partition")
                && record.headers.contains_key("sentmon-source-offset")
        );
    }

    wait_for("metrics to count everything", Duration::from_secs(10), || {
        daemon.metric_sum("sentmon_messages_classified_total") == valid.len() as f64
            && daemon.metric_sum("sentmon_messages_dead_lettered_total") == invalid.len() as f64
    });
    assert_eq!(daemon.metric_sum("sentmon_messages_consumed_total"), messages.len() as f64);
    let status = daemon.terminate(Duration::from_secs(30));
    assert!(status.success(), "clean exit after SIGTERM: {status}");
}

#[test]
fn sigterm_under_load_drains_and_a_restart_resumes_without_re_reading() {
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let messages = headline_messages(4000, "load");
    produce_all(broker.bootstrap_servers(), &messages);

    let http_port = free_port();
    let config = write_config(scratch.path(), broker.bootstrap_servers(), http_port, "");
    let first = Daemon::start(&config, http_port, scratch.path());
    first.wait_ready(GENEROUS);
    wait_for("the first daemon to process some messages", GENEROUS, || {
        first.metric_sum("sentmon_messages_classified_total") >= 300.0
    });
    let first_log_path = first.log_path.clone();
    let status = first.terminate(Duration::from_secs(30));
    assert!(status.success(), "clean exit after SIGTERM: {status}");
    let first_log = std::fs::read_to_string(first_log_path).unwrap();
    assert!(first_log.contains("drained"), "the drain completed: {first_log}");
    let after_first =
        read_topic(broker.bootstrap_servers(), OUTPUT_TOPIC, messages.len(), Duration::from_secs(5), SETTLE);
    assert!(!after_first.is_empty() && after_first.len() < messages.len(), "stopped mid-stream: {}", after_first.len());

    let second_port = free_port();
    let second_config = write_config(scratch.path(), broker.bootstrap_servers(), second_port, "");
    let second = Daemon::start(&second_config, second_port, scratch.path());
    second.wait_ready(GENEROUS);
    let all = read_topic(broker.bootstrap_servers(), OUTPUT_TOPIC, messages.len(), GENEROUS, SETTLE);
    let ids: Vec<String> = all.iter().map(|record| json(record)["id"].as_str().unwrap().to_string()).collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), messages.len(), "nothing lost across the restart; log:\n{}", second.log());
    // A drained shutdown commits every emitted message, so the restart re-reads none of them.
    assert_eq!(ids.len() - unique.len(), 0, "records emitted twice after a clean SIGTERM");
    assert!(second.terminate(Duration::from_secs(30)).success());
}

#[test]
fn two_daemons_in_one_group_split_the_partitions_and_process_everything() {
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let first_port = free_port();
    let second_port = free_port();
    let first = Daemon::start(
        &write_config(scratch.path(), broker.bootstrap_servers(), first_port, ""),
        first_port,
        scratch.path(),
    );
    let second = Daemon::start(
        &write_config(scratch.path(), broker.bootstrap_servers(), second_port, ""),
        second_port,
        scratch.path(),
    );
    first.wait_ready(GENEROUS);
    second.wait_ready(GENEROUS);
    wait_for("both daemons to hold partitions", GENEROUS, || {
        let assigned =
            |daemon: &Daemon| http_get(daemon.http_port, "/readyz").is_some_and(|(_, body)| body.contains("assigned"));
        assigned(&first) && assigned(&second)
    });
    let messages = headline_messages(2000, "split");
    produce_all(broker.bootstrap_servers(), &messages);
    let all = read_topic(broker.bootstrap_servers(), OUTPUT_TOPIC, messages.len(), GENEROUS, SETTLE);
    let unique: BTreeSet<String> = all.iter().map(|record| json(record)["id"].as_str().unwrap().to_string()).collect();
    assert_eq!(unique.len(), messages.len(), "together they process everything");
    let first_count = first.metric_sum("sentmon_messages_consumed_total");
    let second_count = second.metric_sum("sentmon_messages_consumed_total");
    assert!(first_count > 0.0 && second_count > 0.0, "both take a share: {first_count} / {second_count}");
    assert_eq!(first_count + second_count, messages.len() as f64, "no message consumed twice without a rebalance");
    assert!(first.terminate(Duration::from_secs(30)).success());
    assert!(second.terminate(Duration::from_secs(30)).success());
}

/// Issue 11, point 3: a revoke waits for the revoked partitions' in-flight messages, and used to
/// do it by sleeping in the rebalance callback on a tokio worker, so the runtime was pinned to two
/// workers (with one, emit could not run while the callback slept: the wait timed out and the next
/// owner re-read those messages). The polling thread now owns the offsets and takes completions
/// off a channel while it waits, so a daemon on one runtime worker hands partitions over mid-stream
/// without losing or repeating a message.
#[test]
fn a_member_joining_mid_stream_takes_partitions_over_exactly_on_one_runtime_worker() {
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let one_worker = [("TOKIO_WORKER_THREADS", "1")];
    // Batches cut by their deadline, a second long: whenever the revoke comes, messages of the
    // revoked partitions are in flight, and only the runtime can finish them.
    let slow_batches = "[batch]\nmax_size = 4096\nmax_wait_ms = 1000\n";
    let first_port = free_port();
    let first_config = write_config(scratch.path(), broker.bootstrap_servers(), first_port, slow_batches);
    let first = Daemon::start_with_env(&first_config, first_port, scratch.path(), &one_worker);
    first.wait_ready(GENEROUS);
    let messages = headline_messages(3000, "handover");
    let feed = Feed::start(broker.bootstrap_servers(), messages.clone(), 300);
    first.wait_until("the first member to classify a second's worth", GENEROUS, |daemon| {
        daemon.metric_sum("sentmon_messages_classified_total") >= 300.0
    });

    let second_port = free_port();
    let second_config = write_config(scratch.path(), broker.bootstrap_servers(), second_port, slow_batches);
    let second = Daemon::start_with_env(&second_config, second_port, scratch.path(), &one_worker);
    second.wait_ready(GENEROUS);
    assert_eq!(feed.finish(), messages.len());
    let all = read_topic(broker.bootstrap_servers(), OUTPUT_TOPIC, messages.len(), GENEROUS, SETTLE);
    let ids: Vec<String> = all.iter().map(|record| json(record)["id"].as_str().unwrap().to_string()).collect();
    let unique: BTreeSet<&String> = ids.iter().collect();
    let logs = format!("first:\n{}\nsecond:\n{}", first.log(), second.log());
    assert_eq!(unique.len(), messages.len(), "nothing lost in the handover; {logs}");
    assert_eq!(ids.len(), unique.len(), "no message emitted twice: the revoke waited for its in-flight ones; {logs}");
    let revokes = metric_value(&first.metrics(), "sentmon_rebalances_total{kind=\"revoke\"}");
    assert!(revokes >= 1.0, "the first member gave partitions up");
    let (first_count, second_count) =
        (first.metric_sum("sentmon_messages_consumed_total"), second.metric_sum("sentmon_messages_consumed_total"));
    assert!(second_count > 0.0, "the second member took a share");
    assert_eq!(first_count + second_count, messages.len() as f64, "no message consumed twice; {logs}");
    assert!(!logs.contains("revoke drain timed out"), "{logs}");
    assert!(first.terminate(Duration::from_secs(30)).success());
    assert!(second.terminate(Duration::from_secs(30)).success());
}

#[test]
fn a_second_signal_during_a_stuck_drain_exits_at_once() {
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let http_port = free_port();
    // A long grace period, so only the second signal can end this drain quickly.
    let config = write_config(scratch.path(), broker.bootstrap_servers(), http_port, "");
    edit_config(&config, "grace_secs = 20", "grace_secs = 120");
    let daemon = Daemon::start(&config, http_port, scratch.path());
    daemon.wait_ready(GENEROUS);
    produce_all(broker.bootstrap_servers(), &headline_messages(2_000, "stuck"));
    wait_for("the stream to be flowing", GENEROUS, || daemon.metric_sum("sentmon_records_produced_total") > 0.0);
    // The broker vanishes with records in flight: the drain cannot get them acknowledged.
    broker.stop();
    let pid = daemon.child.id().to_string();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    daemon.wait_for_log("shutting down: draining", GENEROUS);
    std::thread::sleep(Duration::from_secs(2));
    let mut daemon = daemon;
    assert!(daemon.child.try_wait().unwrap().is_none(), "the drain is stuck waiting for the broker:\n{}", daemon.log());

    let second_signal_at = Instant::now();
    std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    let status = loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            break status;
        }
        assert!(second_signal_at.elapsed() < Duration::from_secs(10), "no exit after the second signal");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130), "{}", daemon.log());
    assert!(daemon.log().contains("second signal: exiting without draining"));
}

/// Issue 10, point 4: the shipped English model used to answer "央行降息，股市大涨" neutral at 0.95. A message in a
/// language the model does not serve is forwarded with null answers and the language, counted, kept out of the
/// windows, and its offset committed like any other (no partition pinned behind it).
#[test]
fn a_message_in_an_unsupported_language_is_forwarded_unanswered_counted_and_kept_out_of_the_windows() {
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let english = headline_messages(20, "en");
    let chinese = serde_json::json!({"id": "zh-1", "text": "央行降息，股市大涨", "source": "test"});
    // Latin script, but its producer says German: the declared language wins.
    let german = serde_json::json!({"id": "de-1", "text": "Die Aktie steigt kräftig", "lang": "de", "source": "test"});
    let mut messages = english.clone();
    messages.insert(5, ("zh-1".to_owned(), chinese.to_string().into_bytes()));
    messages.insert(15, ("de-1".to_owned(), german.to_string().into_bytes()));
    produce_all(broker.bootstrap_servers(), &messages);

    let http_port = free_port();
    // One-second buckets that close a few seconds after their end, so the windows' counts show within seconds.
    let windows = "[windows]\nbucket_width_secs = 1\nview_widths_secs = [300]\nallowed_lateness_secs = 2\nidle_close_delay_secs = 1\n";
    let config = write_config(scratch.path(), broker.bootstrap_servers(), http_port, windows);
    let daemon = Daemon::start(&config, http_port, scratch.path());
    daemon.wait_ready(GENEROUS);
    let records = read_topic(broker.bootstrap_servers(), OUTPUT_TOPIC, messages.len(), GENEROUS, SETTLE);
    assert_eq!(records.len(), messages.len(), "every message is forwarded once; log:\n{}", daemon.log());

    let by_id: HashMap<String, serde_json::Value> =
        records.iter().map(|record| (json(record)["id"].as_str().unwrap().to_owned(), json(record))).collect();
    for (id, language) in [("zh-1", "zh"), ("de-1", "de")] {
        let record = &by_id[id];
        for unanswered in ["topic", "topic_prob", "sentiment", "sentiment_probs"] {
            assert!(record[unanswered].is_null(), "{id}: {unanswered} must be null: {record}");
        }
        assert_eq!(record["unsupported_language"], language, "{record}");
        assert!(record["model_version"].is_string() && record["source_offset"].is_number(), "{record}");
    }
    for (id, _) in &english {
        let record = &by_id[id];
        assert!(record["sentiment"].is_string() && record.get("unsupported_language").is_none(), "{record}");
    }

    wait_for("the metrics to count every message", Duration::from_secs(10), || {
        daemon.metric_sum("sentmon_messages_classified_total") == english.len() as f64
            && daemon.metric_sum("sentmon_messages_unsupported_language_total") == 2.0
    });
    let metrics = daemon.metrics();
    assert_eq!(metric_value(&metrics, r#"sentmon_messages_unsupported_language_total{language="zh"}"#), 1.0);
    assert_eq!(metric_value(&metrics, r#"sentmon_messages_unsupported_language_total{language="de"}"#), 1.0);

    // The windows count the English messages only. Once every bucket has closed the count cannot move again.
    let all_topics_view = r#"sentmon_view_messages{topic="__all__",view="5m"}"#;
    let view_count = |daemon: &Daemon| metric_value(&daemon.metrics(), all_topics_view);
    wait_for("the windows to count the English messages", Duration::from_secs(30), || {
        view_count(&daemon) >= english.len() as f64
    });
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        view_count(&daemon),
        english.len() as f64,
        "unsupported messages stay out of the windows ({} late)",
        daemon.metric_sum("sentmon_messages_late_total")
    );

    wait_for("every offset to be committed", Duration::from_secs(20), || {
        committed_offsets(broker.bootstrap_servers(), GROUP_ID, INPUT_TOPIC).values().sum::<i64>()
            == messages.len() as i64
    });
    assert!(daemon.terminate(Duration::from_secs(30)).success());
}

/// Issue 11: with no alerts topic on the brokers, `run` used to start and then stall detection on
/// its first alert. Now `check-config --connect` and `run` both stop at once with exit 64,
/// naming the key and the topic; plain `check-config` (no broker contact) still accepts the file.
#[test]
fn a_configured_topic_missing_on_the_brokers_stops_run_and_check_config_connect_with_exit_64() {
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let topics = [INPUT_TOPIC, OUTPUT_TOPIC, DEAD_LETTER_TOPIC].map(String::from);
    let broker = sentmon::ingest::embedded::EmbeddedBroker::start(PARTITIONS, &topics).unwrap();
    let http_port = free_port();
    let config = write_config(scratch.path(), broker.bootstrap_servers(), http_port, "");
    let sentmon = || std::process::Command::new(env!("CARGO_BIN_EXE_sentmon"));
    let expected = format!("kafka.alerts_topic = \"{ALERTS_TOPIC}\": no such topic on {}", broker.bootstrap_servers());

    run_ok(sentmon().arg("check-config").arg(&config));
    let checked = sentmon().args(["check-config", "--connect"]).arg(&config).output().unwrap();
    let stderr = String::from_utf8_lossy(&checked.stderr);
    assert_eq!(checked.status.code(), Some(64), "{stderr}");
    assert!(stderr.contains(&expected), "{stderr}");

    let mut daemon = Daemon::start(&config, http_port, scratch.path());
    let started = Instant::now();
    let status = loop {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            break status;
        }
        assert!(started.elapsed() < GENEROUS, "run did not stop; log:\n{}", daemon.log());
        assert!(http_get(http_port, "/readyz").is_none_or(|(status, _)| status != 200), "ready without alerts topic");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(64), "{}", daemon.log());
    assert!(daemon.log().contains(&expected), "{}", daemon.log());

    // With the check off (brokers that create topics on first use) the same config starts.
    edit_config(&config, "commit_interval_ms = 500", "commit_interval_ms = 500\nrequire_existing_topics = false");
    run_ok(sentmon().args(["check-config", "--connect"]).arg(&config));
}

/// Issue 11: labelled counters whose label values are known exist at 0 before anything happens,
/// so rules that take increase() of them (SentmonModelReloadFailed) see the first increment.
#[test]
fn counters_with_known_labels_are_exported_at_zero_from_the_start() {
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let http_port = free_port();
    let daemon = Daemon::start(
        &write_config(scratch.path(), broker.bootstrap_servers(), http_port, ""),
        http_port,
        scratch.path(),
    );
    daemon.wait_ready(GENEROUS);
    let metrics = daemon.metrics();
    for series in [
        "sentmon_model_reloads_total{result=\"failure\"} 0",
        "sentmon_model_reloads_total{result=\"success\"} 0",
        "sentmon_messages_dead_lettered_total{reason=\"invalid_json\"} 0",
        "sentmon_messages_dead_lettered_total{reason=\"not_utf8\"} 0",
        "sentmon_messages_classified_total{sentiment=\"negative\",topic=\"Fed | Central Banks\"} 0",
        "sentmon_messages_classified_total{sentiment=\"neutral\",topic=\"Fed | Central Banks\"} 0",
    ] {
        assert!(metrics.lines().any(|line| line == series), "no `{series}` in:\n{metrics}");
    }
    let classified = metrics.lines().filter(|line| line.starts_with("sentmon_messages_classified_total{")).count();
    assert_eq!(classified, 20 * 3, "every topic of the shipped model x every sentiment:\n{metrics}");
    assert!(daemon.terminate(Duration::from_secs(30)).success());
}

/// Issue 11: after a rebalance the previous owner kept exporting its last lag for the partitions
/// it lost, inflating the fleet's lag, the dashboard and the lag alert. Now each partition's lag
/// series comes from its current owner only.
#[test]
fn after_a_rebalance_only_the_owner_exports_a_partitions_lag() {
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let lag_series = |daemon: &Daemon| -> BTreeSet<String> {
        let metrics = daemon.metrics();
        metrics
            .lines()
            .filter(|line| line.starts_with("sentmon_consumer_lag_messages{"))
            .map(|line| line.rsplit_once(' ').unwrap().0.to_owned())
            .collect()
    };
    let first_port = free_port();
    let first = Daemon::start(
        &write_config(scratch.path(), broker.bootstrap_servers(), first_port, ""),
        first_port,
        scratch.path(),
    );
    first.wait_ready(GENEROUS);
    produce_all(broker.bootstrap_servers(), &headline_messages(200, "lag"));
    first.wait_until("the only member to export every partition's lag", GENEROUS, |daemon| {
        lag_series(daemon).len() == PARTITIONS as usize
    });

    let second_port = free_port();
    let second = Daemon::start(
        &write_config(scratch.path(), broker.bootstrap_servers(), second_port, ""),
        second_port,
        scratch.path(),
    );
    second.wait_ready(GENEROUS);
    let split = || {
        let (first_series, second_series) = (lag_series(&first), lag_series(&second));
        !first_series.is_empty()
            && !second_series.is_empty()
            && first_series.is_disjoint(&second_series)
            && first_series.len() + second_series.len() == PARTITIONS as usize
    };
    first.wait_until("the partitions' lag series to be split between the two members", GENEROUS, |_| split());
    // Past another statistics report (every 5 s): a revoked partition does not come back.
    std::thread::sleep(Duration::from_secs(6));
    assert!(split(), "first: {:?}, second: {:?}", lag_series(&first), lag_series(&second));
    assert!(first.terminate(Duration::from_secs(30)).success());
    assert!(second.terminate(Duration::from_secs(30)).success());
}

/// Issue 11, point 3: records of one key reach the output topic in their input order (Kafka's
/// per-key ordering, which downstream consumers rely on). Emit used to hand each record to its own
/// spawned task, and the order in which tasks first ran (and so enqueued their record) was the
/// runtime's, not the input's; and with two workers a later batch could finish first.
#[test]
fn records_of_one_key_keep_their_input_order_in_the_output() {
    const MESSAGES: usize = 3_000;
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let messages: Vec<(String, Vec<u8>)> = (0..MESSAGES)
        .map(|index| {
            let payload = serde_json::json!({"id": format!("m{index:05}"), "text": format!("Stocks rally as bank {index} beats")});
            ("one-key".to_string(), payload.to_string().into_bytes())
        })
        .collect();
    produce_all(broker.bootstrap_servers(), &messages);
    let http_port = free_port();
    let config = write_config(scratch.path(), broker.bootstrap_servers(), http_port, "");
    // Two workers: batches then finish in either order, and emit must still write them in input order.
    edit_config(&config, "watch_interval_secs = 1", "watch_interval_secs = 1\nworkers = 2");
    let daemon = Daemon::start(&config, http_port, scratch.path());
    let records = read_topic(broker.bootstrap_servers(), OUTPUT_TOPIC, MESSAGES, GENEROUS, SETTLE);
    assert_eq!(records.len(), MESSAGES, "every message enriched once");
    let ids: Vec<String> = records.iter().map(|record| json(record)["id"].as_str().unwrap().to_owned()).collect();
    let out_of_order: Vec<(&String, &String)> =
        ids.windows(2).filter(|pair| pair[0] > pair[1]).map(|pair| (&pair[0], &pair[1])).collect();
    assert!(
        out_of_order.is_empty(),
        "{} records of one key out of order, e.g. {:?}",
        out_of_order.len(),
        &out_of_order[..out_of_order.len().min(5)]
    );
    assert!(daemon.terminate(Duration::from_secs(60)).success());
}
