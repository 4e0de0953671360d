//! Fault injection (issue 6): `sentmon run` as a real process against the embedded broker while
//! the broker goes away, refuses or stalls produce requests, or the daemon is killed; every test
//! asserts in == out + dead letters (each input id reaches the output or the dead-letter topic).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use common::*;
use rdkafka::types::RDKafkaApiKey;
use rdkafka::types::RDKafkaRespErr::{RD_KAFKA_RESP_ERR_INVALID_RECORD, RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS};

/// One input in this many is not JSON, so the dead-letter path is under the same fault as the
/// output path.
const DEAD_LETTER_EVERY: usize = 25;
/// Pushed request errors outlast any test: each test clears them when its fault window ends.
const ERRORS_UNTIL_CLEARED: usize = 100_000;
/// The daemon's `/readyz` re-checks the broker every 5 s with a 3 s timeout (`app.rs`), so a
/// change shows within this.
const READINESS_CHANGE: Duration = Duration::from_secs(10);

/// Headlines keyed by id, with every `DEAD_LETTER_EVERY`th replaced by a payload that is not JSON
/// (same key), so it must be dead-lettered.
fn messages_with_dead_letters(count: usize, prefix: &str) -> Vec<(String, Vec<u8>)> {
    let mut messages = headline_messages(count, prefix);
    for (id, payload) in messages.iter_mut().step_by(DEAD_LETTER_EVERY) {
        *payload = format!("{{\"id\": \"{id}\", not json").into_bytes();
    }
    messages
}

/// What reached the output and dead-letter topics.
struct Delivered {
    records: Vec<ConsumedRecord>,
    /// Records beyond the first for the same input id, over both topics.
    duplicates: usize,
}

/// Reads the output and dead-letter topics until every input id is in one of them, and asserts
/// in == out + dead letters: every id delivered at least once, valid ones enriched and invalid
/// ones dead-lettered, nothing unknown.
fn assert_nothing_lost(broker: &str, sent: &[(String, Vec<u8>)], daemon: &Daemon) -> Delivered {
    let sent_ids: BTreeSet<&str> = sent.iter().map(|(id, _)| id.as_str()).collect();
    // Updated with each new record only: the check runs after every record read.
    let mut ids_so_far = BTreeSet::new();
    let records = read_topics_until(broker, &[OUTPUT_TOPIC, DEAD_LETTER_TOPIC], GENEROUS, SETTLE, |records| {
        if let Some(record) = records.last() {
            ids_so_far.insert(record.key.clone());
        }
        ids_so_far.len() >= sent_ids.len()
    });
    let received_ids: BTreeSet<String> = records.iter().filter_map(|record| record.key.clone()).collect();
    let missing: Vec<&&str> = sent_ids.iter().filter(|id| !received_ids.contains(**id)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} messages lost (neither enriched nor dead-lettered), e.g. {:?}; log:\n{}",
        missing.len(),
        sent.len(),
        &missing[..missing.len().min(5)],
        daemon.log()
    );
    assert_eq!(received_ids.len(), sent_ids.len(), "records for ids never sent");
    for record in &records {
        let id = record.key.as_deref().unwrap();
        let should_be_dead_letter = id_index(id) % DEAD_LETTER_EVERY == 0;
        let expected_topic = if should_be_dead_letter { DEAD_LETTER_TOPIC } else { OUTPUT_TOPIC };
        assert_eq!(record.topic, expected_topic, "{id} went to the wrong topic");
    }
    let duplicates = records.len() - received_ids.len();
    Delivered { records, duplicates }
}

/// The index `headline_messages` put after the prefix: "prefix-17" -> 17.
fn id_index(id: &str) -> usize {
    id.rsplit('-').next().and_then(|index| index.parse().ok()).unwrap_or_else(|| panic!("bad id {id}"))
}

/// The input partition and offset a delivered record came from (enriched records carry them in
/// the payload, dead letters in headers).
fn source_position(record: &ConsumedRecord) -> (i32, i64) {
    if record.topic == DEAD_LETTER_TOPIC {
        let header = |name: &str| record.headers[name].parse().unwrap();
        return (header("sentmon-source-partition") as i32, header("sentmon-source-offset"));
    }
    let value = json(record);
    (value["source_partition"].as_i64().unwrap() as i32, value["source_offset"].as_i64().unwrap())
}

fn readyz(daemon: &Daemon) -> Option<(u16, String)> {
    http_get(daemon.http_port, "/readyz")
}

fn start_daemon(scratch: &std::path::Path, broker: &str) -> Daemon {
    let http_port = free_port();
    let config = write_config(scratch, broker, http_port, "");
    Daemon::start(&config, http_port, scratch)
}

#[test]
fn broker_unreachable_at_start_the_daemon_waits_unready_then_processes_everything() {
    // Injected: every broker down (connections refused) before the daemon starts; brought up
    // after the daemon has shown it is alive and not ready.
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let messages = messages_with_dead_letters(1000, "unreachable");
    produce_all(broker.bootstrap_servers(), &messages);
    broker.broker_down().unwrap();

    let mut daemon = start_daemon(scratch.path(), broker.bootstrap_servers());
    wait_for("the daemon to serve HTTP with its model loaded", GENEROUS, || {
        readyz(&daemon).is_some_and(|(_, body)| !body.contains("model_not_loaded"))
    });
    // Absence of readiness can only be watched for a while: long enough for the broker check to
    // have run and failed at least once more.
    let watch_until = Instant::now() + READINESS_CHANGE;
    while Instant::now() < watch_until {
        let (status, body) = readyz(&daemon).expect("the daemon keeps serving /readyz");
        assert_ne!(status, 200, "ready without a broker: {body}");
        assert!(body.contains("broker_unreachable"), "{body}");
        assert!(daemon.is_running(), "the daemon exited without a broker; log:\n{}", daemon.log());
        std::thread::sleep(Duration::from_millis(200));
    }

    broker.broker_up().unwrap();
    let broker_up_at = Instant::now();
    daemon.wait_ready(GENEROUS);
    let delivered = assert_nothing_lost(broker.bootstrap_servers(), &messages, &daemon);
    println!(
        "broker up -> ready and all {} delivered in {:?}, duplicates {}",
        messages.len(),
        broker_up_at.elapsed(),
        delivered.duplicates
    );
    assert_eq!(delivered.duplicates, 0, "nothing was processed before the broker came up");
    assert!(daemon.terminate(Duration::from_secs(30)).success());
}

#[test]
fn broker_down_mid_stream_then_back_processing_resumes_and_nothing_is_lost() {
    // Injected: every broker down while the daemon is working through a backlog, for longer than
    // the group's session timeout (6 s), so the group coordinator drops the member as well;
    // then up again.
    const OUTAGE: Duration = Duration::from_secs(8);
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let messages = messages_with_dead_letters(4000, "outage");
    produce_all(broker.bootstrap_servers(), &messages);

    let mut daemon = start_daemon(scratch.path(), broker.bootstrap_servers());
    daemon.wait_ready(GENEROUS);
    wait_for("the daemon to be mid-stream", GENEROUS, || {
        daemon.metric_sum("sentmon_messages_classified_total") >= 500.0
    });
    broker.broker_down().unwrap();
    let classified_at_outage = daemon.metric_sum("sentmon_messages_classified_total");
    wait_for("/readyz to report the broker unreachable", READINESS_CHANGE, || {
        readyz(&daemon).is_some_and(|(status, body)| status != 200 && body.contains("broker_unreachable"))
    });
    let outage_ends = Instant::now() + OUTAGE;
    wait_for("the outage to last its length", OUTAGE + Duration::from_secs(1), || {
        assert!(daemon.is_running(), "the daemon exited during the outage; log:\n{}", daemon.log());
        Instant::now() >= outage_ends
    });
    assert!(
        daemon.metric_sum("sentmon_messages_classified_total") < messages.len() as f64,
        "the outage began after the daemon had finished; nothing was tested"
    );

    broker.broker_up().unwrap();
    daemon.wait_ready(GENEROUS);
    let delivered = assert_nothing_lost(broker.bootstrap_servers(), &messages, &daemon);
    println!(
        "classified {classified_at_outage} before the outage; duplicates after it: {} of {} records",
        delivered.duplicates,
        delivered.records.len()
    );
    assert!(daemon.terminate(Duration::from_secs(30)).success());
}

#[test]
fn produce_errors_on_the_output_commit_nothing_unacknowledged_and_lose_nothing() {
    // Injected: every Produce request (output and dead-letter records alike) answered with
    // INVALID_RECORD, a permanent error that librdkafka hands back to the daemon, for a while
    // after the daemon has started consuming; then the errors are cleared.
    const FAILING_FOR_AT_LEAST: Duration = Duration::from_secs(4);
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let messages = messages_with_dead_letters(1000, "refused");
    // Before the errors: the test's own Produce requests would take them too.
    produce_all(broker.bootstrap_servers(), &messages);
    broker
        .push_request_errors(RDKafkaApiKey::Produce, &vec![RD_KAFKA_RESP_ERR_INVALID_RECORD; ERRORS_UNTIL_CLEARED])
        .unwrap();

    let daemon = start_daemon(scratch.path(), broker.bootstrap_servers());
    wait_for("produce failures", GENEROUS, || daemon.metric_sum("sentmon_produce_failures_total") > 0.0);
    // Several commit intervals (500 ms) and offset-store ticks (500 ms) pass while nothing is
    // acknowledged: no offset may be committed for the records being retried.
    let failing_until = Instant::now() + FAILING_FOR_AT_LEAST;
    while Instant::now() < failing_until {
        let committed = committed_offsets(broker.bootstrap_servers(), GROUP_ID, INPUT_TOPIC);
        assert!(committed.values().all(|next_offset| *next_offset == 0), "committed unacknowledged: {committed:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
    let consumed = daemon.metric_sum("sentmon_messages_consumed_total");
    let failures = daemon.metric_sum("sentmon_produce_failures_total");
    assert!(consumed > 0.0, "the daemon consumed nothing while produce failed; nothing was tested");
    assert_eq!(daemon.metric_sum("sentmon_records_produced_total"), 0.0, "a Produce request got through");

    broker.clear_request_errors(RDKafkaApiKey::Produce).unwrap();
    let delivered = assert_nothing_lost(broker.bootstrap_servers(), &messages, &daemon);
    println!(
        "while failing: consumed {consumed}, produce failures {failures}; afterwards duplicates {}",
        delivered.duplicates
    );
    assert_eq!(delivered.duplicates, 0, "a failed send is retried, never delivered twice");
    assert!(daemon.terminate(Duration::from_secs(30)).success());
    // After the drain, every message is acknowledged and committed.
    let committed = committed_offsets(broker.bootstrap_servers(), GROUP_ID, INPUT_TOPIC);
    let mut input_ends = BTreeMap::new();
    for record in read_topic(broker.bootstrap_servers(), INPUT_TOPIC, messages.len(), GENEROUS, Duration::ZERO) {
        let end = input_ends.entry(record.partition).or_insert(0);
        *end = (*end).max(record.offset + 1);
    }
    assert_eq!(committed, input_ends, "committed offsets after the drain");
}

#[test]
fn kill_9_mid_stream_then_restart_loses_nothing_and_duplicates_stay_within_the_commit_lag() {
    // Injected: SIGKILL of the daemon (no drain, no final commit) while a steady stream flows,
    // then a new daemon in the same group. It resumes from the last committed offsets, so exactly
    // the records the first one emitted past them are emitted twice; that count is bounded by
    // what the first daemon emits between two commits plus what it had in flight.
    const FEED_RATE: usize = 1000;
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let messages = messages_with_dead_letters(12_000, "killed");

    let first = start_daemon(scratch.path(), broker.bootstrap_servers());
    first.wait_ready(GENEROUS);
    let feed = Feed::start(broker.bootstrap_servers(), messages.clone(), FEED_RATE);
    let handled = |metrics: &str| {
        metric_sum(metrics, "sentmon_messages_classified_total")
            + metric_sum(metrics, "sentmon_messages_dead_lettered_total")
    };
    wait_for("the first daemon to be mid-stream", GENEROUS, || handled(&first.metrics()) >= 4000.0);
    let (rate_window_start, handled_at_window_start) = (Instant::now(), handled(&first.metrics()));
    wait_for("a second of throughput to measure", Duration::from_secs(5), || {
        rate_window_start.elapsed() >= Duration::from_secs(1)
    });
    let metrics_at_kill = first.metrics();
    let handled_at_kill = handled(&metrics_at_kill);
    let handled_per_second = (handled_at_kill - handled_at_window_start) / rate_window_start.elapsed().as_secs_f64();
    let in_flight_at_kill = metric_sum(&metrics_at_kill, "sentmon_messages_consumed_total") - handled_at_kill;
    first.kill();
    let fed = feed.finish();
    assert!(handled_at_kill < fed as f64, "killed after the end of the stream; nothing was tested");

    let committed = committed_offsets(broker.bootstrap_servers(), GROUP_ID, INPUT_TOPIC);
    let emitted_by_first =
        read_topics_until(broker.bootstrap_servers(), &[OUTPUT_TOPIC, DEAD_LETTER_TOPIC], GENEROUS, SETTLE, |_| true);
    let emitted_past_commit = emitted_by_first
        .iter()
        .filter(|record| {
            let (partition, offset) = source_position(record);
            offset >= committed.get(&partition).copied().unwrap_or(0)
        })
        .count();

    let second = start_daemon(scratch.path(), broker.bootstrap_servers());
    let delivered = assert_nothing_lost(broker.bootstrap_servers(), &messages, &second);
    // Offsets are stored every aggregate tick (500 ms) and committed every commit_interval_ms
    // (500 in the test config), so at most about a second of throughput is emitted past the last
    // commit, plus the records in flight, which a slower partition can hold back. The time term
    // is doubled for the jitter of a busy 2-core machine.
    const COMMIT_LAG: Duration = Duration::from_secs(1);
    let bound = 2.0 * handled_per_second * COMMIT_LAG.as_secs_f64() + in_flight_at_kill;
    println!(
        "killed at {handled_at_kill} handled ({handled_per_second:.0}/s, {in_flight_at_kill} in flight); \
         committed {committed:?}; emitted past the commit {emitted_past_commit}; duplicates {}; bound {bound:.0}",
        delivered.duplicates
    );
    assert_eq!(
        delivered.duplicates, emitted_past_commit,
        "the restart re-emits exactly what the killed daemon emitted past its last commit"
    );
    assert!((delivered.duplicates as f64) <= bound, "{} duplicates exceed the bound {bound:.0}", delivered.duplicates);
    assert!(second.terminate(Duration::from_secs(30)).success());
}

#[test]
fn output_slower_than_input_bounds_memory_pauses_consumption_and_keeps_the_group() {
    // Injected: every Produce request answered with NOT_ENOUGH_REPLICAS, which librdkafka retries
    // by itself (the daemon only sees records not being acknowledged): the output accepts nothing
    // for longer than max.poll.interval.ms (set to 7 s, the lowest above the 6 s session timeout),
    // with a backlog larger than the daemon's in-flight capacity; then the errors are cleared.
    const MAX_POLL_INTERVAL_MS: u64 = 7_000;
    const STALL: Duration = Duration::from_secs(20);
    // The daemon's bounds (app.rs): 10,000 records awaiting acknowledgement, plus a few batches
    // queued for the batcher and the workers; librdkafka's prefetch is capped by
    // queued.max.messages.kbytes (64 MiB by default; pausing discards it, and the whole backlog
    // here is a few MiB anyway). An in-flight record holds its send task, the input, the decoded
    // text, the enriched JSON and librdkafka's copy of it: about 4.3 KiB measured here, allowed
    // 8 KiB for allocator slack. 10,000 x 8 KiB + 64 MiB = 142 MiB over the RSS before the stall.
    const MAX_RSS_GROWTH_KIB: u64 = 10_000 * 8 + 64 * 1024;
    const IN_FLIGHT_CAPACITY: f64 = 10_000.0 + 1_000.0;
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let messages = messages_with_dead_letters(25_000, "slow");
    produce_all(broker.bootstrap_servers(), &messages);

    let http_port = free_port();
    let config = write_config(scratch.path(), broker.bootstrap_servers(), http_port, "");
    add_consumer_option(&config, "max.poll.interval.ms", &MAX_POLL_INTERVAL_MS.to_string());
    let mut daemon = Daemon::start(&config, http_port, scratch.path());
    daemon.wait_ready(GENEROUS);
    wait_for("the daemon to be warmed up", GENEROUS, || {
        daemon.metric_sum("sentmon_messages_classified_total") >= 500.0
    });
    let rss_before_kib = daemon.resident_kib();
    broker
        .push_request_errors(RDKafkaApiKey::Produce, &vec![RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS; ERRORS_UNTIL_CLEARED])
        .unwrap();
    let stall_ends = Instant::now() + STALL;
    let mut peak_rss_kib = rss_before_kib;
    while Instant::now() < stall_ends {
        assert!(daemon.is_running(), "the daemon exited while the output stalled; log:\n{}", daemon.log());
        peak_rss_kib = peak_rss_kib.max(daemon.resident_kib());
        std::thread::sleep(Duration::from_millis(200));
    }
    let produced_before_stall_end = daemon.metric_sum("sentmon_records_produced_total");
    let consumed_at_stall_end = daemon.metric_sum("sentmon_messages_consumed_total");
    broker.clear_request_errors(RDKafkaApiKey::Produce).unwrap();

    let delivered = assert_nothing_lost(broker.bootstrap_servers(), &messages, &daemon);
    let metrics = daemon.metrics();
    let revokes = metric_value(&metrics, "sentmon_rebalances_total{kind=\"revoke\"}");
    println!(
        "RSS {rss_before_kib} KiB before the stall, peak {peak_rss_kib} KiB during it (+{} KiB); consumed {consumed_at_stall_end} \
         of {} by its end with {produced_before_stall_end} acknowledged; revokes {revokes}; duplicates {}",
        peak_rss_kib - rss_before_kib,
        messages.len(),
        delivered.duplicates
    );
    assert!(
        consumed_at_stall_end - produced_before_stall_end <= IN_FLIGHT_CAPACITY,
        "consumption ran ahead of the stalled output by more than the in-flight capacity: backpressure failed"
    );
    assert!(consumed_at_stall_end < messages.len() as f64, "the whole backlog was read while the output stalled");
    assert!(
        peak_rss_kib - rss_before_kib <= MAX_RSS_GROWTH_KIB,
        "RSS grew by {} KiB, more than {MAX_RSS_GROWTH_KIB} KiB",
        peak_rss_kib - rss_before_kib
    );
    let log = daemon.log();
    assert_eq!(revokes, 0.0, "partitions were revoked (evicted from the group?); log:\n{log}");
    assert!(!log.contains("maximum poll interval"), "max.poll.interval.ms exceeded; log:\n{log}");
    assert!(log.contains("consumer paused") && log.contains("consumer resumed"), "no pause; log:\n{log}");
    assert_eq!(delivered.duplicates, 0, "no rebalance, so nothing is re-read");
    assert!(daemon.terminate(Duration::from_secs(30)).success());
}
