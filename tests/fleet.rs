//! Fleet-exact alerts (issue 12), with real processes on the embedded broker: two classify processes and two
//! aggregate processes split the work; a spike on one topic gives one alert, with examples and counts from the whole
//! fleet; killing the aggregator that owns the topic hands the open alert over; and a restart of every process after
//! a 15-minute history leaves the detector warm.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use common::*;
use rdkafka::producer::{BaseRecord, Producer};
use sentmon::demo::generator::{SpikePlan, StreamGenerator};
use sentmon::ingest::embedded::EmbeddedBroker;

const SPIKE_TOPIC: &str = "Fed | Central Banks";
const REPARTITION_TOPIC: &str = "sentmon-repartition";
const STATE_TOPIC: &str = "sentmon-aggregate-state";
const RATE_PER_SECOND: i64 = 30;

/// tests/alerts.rs's detection settings (production's rules, 20 s buckets), with a pipeline role appended.
const DETECTION_SETTINGS: &str = r#"
[windows]
bucket_width_secs = 20
view_widths_secs = [120, 600]
allowed_lateness_secs = 5
idle_close_delay_secs = 3600

[detector]
view_width_secs = 120
warmup_buckets = 6
min_volume = 20
cooldown_secs = 600
"#;

struct Fleet {
    broker: EmbeddedBroker,
    scratch: tempfile::TempDir,
}

impl Fleet {
    fn new() -> Fleet {
        let topics: Vec<String> =
            [INPUT_TOPIC, OUTPUT_TOPIC, DEAD_LETTER_TOPIC, ALERTS_TOPIC, REPARTITION_TOPIC, STATE_TOPIC]
                .map(String::from)
                .to_vec();
        let broker = EmbeddedBroker::start(PARTITIONS, &topics).expect("embedded broker starts");
        Fleet { broker, scratch: tempfile::tempdir().unwrap() }
    }

    fn brokers(&self) -> &str {
        self.broker.bootstrap_servers()
    }

    fn start(&self, role: &str) -> Daemon {
        let http_port = free_port();
        let settings = format!("{DETECTION_SETTINGS}\n[pipeline]\nrole = \"{role}\"\n");
        let config = write_config(self.scratch.path(), self.brokers(), http_port, &settings);
        Daemon::start(&config, http_port, self.scratch.path())
    }

    /// Two classify and two aggregate processes, all ready and each holding partitions (so the assignment no
    /// longer moves).
    fn start_all(&self) -> (Vec<Daemon>, Vec<Daemon>) {
        let classifiers = vec![self.start("classify"), self.start("classify")];
        let aggregators = vec![self.start("aggregate"), self.start("aggregate")];
        for daemon in classifiers.iter().chain(&aggregators) {
            daemon.wait_until("partitions assigned", GENEROUS, |daemon| {
                http_get(daemon.http_port, "/readyz")
                    .is_some_and(|(status, body)| status == 200 && body.contains("\"partitions\":\"assigned\""))
            });
        }
        (classifiers, aggregators)
    }

    fn alerts(&self) -> Vec<serde_json::Value> {
        read_topic(self.brokers(), ALERTS_TOPIC, usize::MAX, Duration::from_secs(3), Duration::ZERO)
            .iter()
            .map(json)
            .collect()
    }

    fn wait_for_alert(&self, kind: &str, daemons: &[&Daemon]) -> serde_json::Value {
        let mut seen = Vec::new();
        let found = poll_until(Duration::from_secs(240), || {
            seen = self.alerts();
            seen.iter().any(|alert| alert["kind"] == kind && alert["topic"] == SPIKE_TOPIC)
        });
        if !found {
            let logs: Vec<String> = daemons.iter().map(|daemon| daemon.log()).collect();
            panic!("no {kind} alert for {SPIKE_TOPIC}; alerts: {seen:?}; aggregator logs:\n{}", logs.join("\n-----\n"));
        }
        seen.into_iter().find(|alert| alert["kind"] == kind && alert["topic"] == SPIKE_TOPIC).unwrap()
    }
}

/// The generated stream: `minutes` at 30 messages/s of event time, ending a minute ago, with a spike on
/// [`SPIKE_TOPIC`] from `spike_at_minute` for 3 minutes. Message `i` goes to input partition `i % PARTITIONS`, so
/// every classify process handles part of every topic. Returns (partition, payload) and the stream's start.
fn stream(minutes: i64, spike_at_minute: i64) -> (Vec<(i32, Vec<u8>)>, i64) {
    let start_ms = chrono::Utc::now().timestamp_millis() - (minutes + 1) * 60_000;
    let plan =
        SpikePlan { topic: SPIKE_TOPIC.to_owned(), start_after_ms: spike_at_minute * 60_000, duration_ms: 180_000 };
    let mut generator = StreamGenerator::new(11, plan).unwrap();
    let messages = (0..minutes * 60 * RATE_PER_SECOND)
        .map(|index| {
            let elapsed_ms = index * 1000 / RATE_PER_SECOND;
            let message = generator.next_message(elapsed_ms, start_ms + elapsed_ms);
            ((index % i64::from(PARTITIONS)) as i32, message.to_json().into_bytes())
        })
        .collect();
    (messages, start_ms)
}

fn produce(brokers: &str, messages: &[(i32, Vec<u8>)]) {
    let producer = producer(brokers);
    for (partition, payload) in messages {
        let mut record = BaseRecord::<[u8], [u8]>::to(INPUT_TOPIC).partition(*partition).payload(payload.as_slice());
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, returned)) => {
                    record = returned;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    producer.flush(Duration::from_secs(60)).expect("every test message is acknowledged");
}

/// The input partitions a classify process holds: librdkafka's statistics export a lag series per assigned
/// partition only.
fn owned_input_partitions(daemon: &Daemon) -> BTreeSet<i32> {
    let prefix = format!("sentmon_consumer_lag_messages{{input_topic=\"{INPUT_TOPIC}\",partition=\"");
    daemon
        .metrics()
        .lines()
        .filter_map(|line| line.strip_prefix(&prefix))
        .filter_map(|rest| rest.split('"').next()?.parse().ok())
        .collect()
}

fn firings(alerts: &[serde_json::Value]) -> Vec<&serde_json::Value> {
    alerts.iter().filter(|alert| alert["kind"] == "firing").collect()
}

/// Waits until the aggregators have applied a summary of every message the classify processes counted.
fn wait_until_aggregated(classifiers: &[Daemon], aggregators: &[Daemon], produced: usize) {
    let settled = poll_until(GENEROUS * 2, || {
        let classified: f64 =
            classifiers.iter().map(|daemon| daemon.metric_sum("sentmon_messages_classified_total")).sum();
        let applied: f64 = aggregators.iter().map(|daemon| daemon.metric_sum("sentmon_summaries_applied_total")).sum();
        classified as usize == produced && applied as usize >= produced
    });
    assert!(settled, "the fleet did not aggregate all {produced} messages; log:\n{}", aggregators[0].log());
}

#[test]
fn two_classifiers_and_two_aggregators_raise_one_alert_with_fleet_wide_examples_and_exact_counts() {
    let _serial = serial();
    let fleet = Fleet::new();
    let (classifiers, aggregators) = fleet.start_all();
    let (messages, _) = stream(16, 10);
    produce(fleet.brokers(), &messages);
    let firing = fleet.wait_for_alert("firing", &[&aggregators[0], &aggregators[1]]);
    let resolved = fleet.wait_for_alert("resolved", &[&aggregators[0], &aggregators[1]]);
    assert_eq!(resolved["resolves"], firing["id"], "{resolved}");

    let alerts = fleet.alerts();
    let all_firings = firings(&alerts);
    assert_eq!(all_firings.len(), 1, "one firing for the fleet, for {SPIKE_TOPIC} only: {alerts:?}");

    // Which classify process held which input partition (both were ready, so holding partitions, before the
    // first message: the assignment did not move). The lag series appear once a partition has a committed offset.
    let mut owners: BTreeMap<i32, usize> = BTreeMap::new();
    let covered = poll_until(GENEROUS, || {
        owners.clear();
        for (index, daemon) in classifiers.iter().enumerate() {
            for partition in owned_input_partitions(daemon) {
                owners.insert(partition, index);
            }
        }
        owners.len() == PARTITIONS as usize && owners.values().collect::<BTreeSet<_>>().len() == 2
    });
    assert!(covered, "both classify processes hold input partitions: {owners:?}");

    // Examples from messages more than one classify process handled.
    let example_owners: BTreeSet<usize> = firing["examples"]
        .as_array()
        .unwrap()
        .iter()
        .map(|example| {
            let id = example["id"].as_str().expect("generated messages have ids");
            owners[&id_partition(id)]
        })
        .collect();
    assert!(example_owners.len() >= 2, "examples come from both classify processes: {firing}");

    // Counts: every message of the topic in the alert's window, whichever process classified it.
    let (start_ms, end_ms) = (firing["window_start_ms"].as_i64().unwrap(), firing["window_end_ms"].as_i64().unwrap());
    let records = read_topic(fleet.brokers(), OUTPUT_TOPIC, messages.len(), GENEROUS, Duration::ZERO);
    assert_eq!(records.len(), messages.len(), "every message was classified once");
    let in_window: Vec<serde_json::Value> = records
        .iter()
        .map(json)
        .filter(|record| record["topic"] == SPIKE_TOPIC)
        .filter(|record| {
            let event_ms = chrono::DateTime::parse_from_rfc3339(record["event_time"].as_str().unwrap())
                .unwrap()
                .timestamp_millis();
            (start_ms..end_ms).contains(&event_ms)
        })
        .collect();
    let negatives = in_window.iter().filter(|record| record["sentiment"] == "negative").count();
    assert_eq!(firing["total_count"].as_u64().unwrap() as usize, in_window.len(), "{firing}");
    assert_eq!(firing["negative_count"].as_u64().unwrap() as usize, negatives, "{firing}");
    for daemon in classifiers.into_iter().chain(aggregators) {
        assert!(daemon.terminate(Duration::from_secs(30)).success());
    }
}

/// The input partition of a generated message, by its id (`demo-<seed>-<n>`): message n went to `n % PARTITIONS`.
fn id_partition(id: &str) -> i32 {
    let number: i64 = id.rsplit('-').next().and_then(|number| number.parse().ok()).unwrap_or_else(|| {
        panic!("generated ids end in their sequence number: {id}");
    });
    (number % i64::from(PARTITIONS)) as i32
}

#[test]
fn killing_the_aggregator_that_owns_the_spiking_topic_hands_the_open_alert_over() {
    let _serial = serial();
    let fleet = Fleet::new();
    let (classifiers, mut aggregators) = fleet.start_all();
    let (messages, _) = stream(16, 10);
    // Up to a minute into the spike's last minute: the alert fires and stays open.
    let (during_spike, after_spike) = messages.split_at((12 * 60 * RATE_PER_SECOND) as usize);
    produce(fleet.brokers(), during_spike);
    let firing = fleet.wait_for_alert("firing", &[&aggregators[0], &aggregators[1]]);

    let firing_series = format!("sentmon_alert_firing{{topic=\"{SPIKE_TOPIC}\"}} 1");
    let owner = aggregators
        .iter()
        .position(|daemon| daemon.metrics().contains(&firing_series))
        .expect("the aggregator that fired shows the alert as firing");
    let survivor = aggregators.remove(1 - owner);
    aggregators.remove(0).kill();
    // The survivor restores the topic from its snapshot once the group notices the member is gone.
    survivor.wait_for_series("sentmon_topics_restored_total", 1.0, GENEROUS);

    produce(fleet.brokers(), after_spike);
    let resolved = fleet.wait_for_alert("resolved", &[&survivor]);
    assert_eq!(resolved["resolves"], firing["id"], "the survivor resolves the alert the other fired: {resolved}");
    let alerts = fleet.alerts();
    let spike_firings: Vec<_> = firings(&alerts).into_iter().filter(|alert| alert["topic"] == SPIKE_TOPIC).collect();
    assert_eq!(spike_firings.len(), 1, "no second fire after the handover: {alerts:?}");
    assert!(survivor.metrics().contains(&format!("sentmon_alert_firing{{topic=\"{SPIKE_TOPIC}\"}} 0")));
    for daemon in classifiers.into_iter().chain([survivor]) {
        assert!(daemon.terminate(Duration::from_secs(30)).success());
    }
}

#[test]
fn after_every_process_restarts_on_a_15_minute_history_a_spike_fires_without_warm_up_blindness() {
    let _serial = serial();
    let fleet = Fleet::new();
    let (messages, start_ms) = stream(20, 15);
    let (history, rest) = messages.split_at((15 * 60 * RATE_PER_SECOND) as usize);
    {
        let (classifiers, aggregators) = fleet.start_all();
        produce(fleet.brokers(), history);
        wait_until_aggregated(&classifiers, &aggregators, history.len());
        assert!(fleet.alerts().is_empty(), "no spike in the history");
        for daemon in classifiers.into_iter().chain(aggregators) {
            assert!(daemon.terminate(Duration::from_secs(30)).success(), "a clean restart");
        }
    }
    let (_classifiers, aggregators) = fleet.start_all();
    let restored: f64 = aggregators.iter().map(|daemon| daemon.metric_sum("sentmon_topics_restored_total")).sum();
    assert!(restored >= 20.0, "the new aggregators restored every topic: {restored}");
    produce(fleet.brokers(), rest);
    let firing = fleet.wait_for_alert("firing", &[&aggregators[0], &aggregators[1]]);
    // Warm, the detector fires within a few closes of the spike's start; cold, it could not fire before its
    // baseline had 6 buckets that left the 2-minute view, 4 minutes after the restart.
    let spike_start_ms = start_ms + 15 * 60_000;
    let fired_at_ms = firing["at_ms"].as_i64().unwrap();
    assert!(fired_at_ms - spike_start_ms <= 100_000, "fired too late after the spike began: {firing}");
    // And as an uninterrupted detector does: the daemon's window store and detector (sentmon backtest's) run over
    // the same classified messages in event-time order, with no restart, fire at the same close.
    let uninterrupted_ms = uninterrupted_firing_ms(fleet.brokers(), messages.len());
    assert_eq!(fired_at_ms, uninterrupted_ms, "the restart changed when the spike fired: {firing}");
}

/// When the spike topic's alert fires if one detector sees every classified message (the summaries on the
/// repartition topic: the enriched records of 20 minutes exceed what the embedded broker keeps per partition) in
/// event-time order, without a restart.
fn uninterrupted_firing_ms(brokers: &str, count: usize) -> i64 {
    use sentmon::alert::DetectorConfig;
    use sentmon::backtest::Backtest;
    use sentmon::fleet::TopicSummary;
    use sentmon::window::{Observation, WindowConfig};

    let mut observations: Vec<Observation> = read_topic(brokers, REPARTITION_TOPIC, count, GENEROUS, Duration::ZERO)
        .iter()
        .map(|record| TopicSummary::from_json(&record.payload).expect("summaries are JSON").observation)
        .collect();
    assert_eq!(observations.len(), count, "every message was classified");
    observations.sort_by_key(|observation| observation.event_time_ms);
    // DETECTION_SETTINGS in milliseconds.
    let window = WindowConfig {
        bucket_width_ms: 20_000,
        view_widths_ms: vec![120_000, 600_000],
        allowed_lateness_ms: 5_000,
        idle_close_delay_ms: 3_600_000,
        ..WindowConfig::default()
    };
    let detector = DetectorConfig {
        view_width_ms: 120_000,
        warmup_buckets: 6,
        min_volume: 20,
        cooldown_ms: 600_000,
        ..DetectorConfig::default()
    };
    let mut backtest = Backtest::new(window, detector, None).unwrap();
    for observation in &observations {
        backtest.observe(observation);
    }
    let report = backtest.finish();
    report
        .alerts
        .iter()
        .find(|alert| alert.scope.name() == SPIKE_TOPIC)
        .map(|alert| alert.fired_at_ms)
        .unwrap_or_else(|| panic!("the uninterrupted detector fires too: {:?}", report.alerts))
}
