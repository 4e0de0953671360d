//! An injected negative spike, end to end: `sentmon run` with the shipped model against a real
//! Kafka-protocol broker fires exactly one alert for the spiking topic (with examples), none for
//! the others, shows it in /metrics while it lasts, and resolves it after the spike.

mod common;

use std::time::{Duration, Instant};

use common::*;
use sentmon::demo::generator::{SpikePlan, StreamGenerator};

const SPIKE_TOPIC: &str = "Fed | Central Banks";
/// Simulated stream: 16 minutes at 30 messages/s of event time, spike in minutes 10-13. The
/// spike topic gets a twentieth of the volume, ~30 messages per 20 s bucket: enough that a
/// bucket's negative rate is not mostly sampling noise (the baseline's variance is learned from
/// per-bucket rates).
const SIMULATED_MINUTES: i64 = 16;
const SIMULATED_RATE_PER_SECOND: i64 = 30;
/// The feed pauses here, inside the spike, until the alert has fired.
const FEED_PAUSE_AT_MINUTE: i64 = 12;

/// Production's minute buckets compressed to 20 s so the test needs minutes of event time, not
/// hours; the detector's rules are the production ones.
const DETECTION_SETTINGS: &str = r#"
[windows]
bucket_width_secs = 20
view_widths_secs = [120, 600]
allowed_lateness_secs = 5
# Event time alone closes the buckets here: the test pauses the stream while it looks at the
# firing alert, and that pause must not push the watermark past the events still to come.
idle_close_delay_secs = 3600

[detector]
view_width_secs = 120
warmup_buckets = 6
min_volume = 20
cooldown_secs = 600
"#;

#[test]
fn an_injected_spike_fires_one_alert_for_its_topic_and_resolves_after_it() {
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    let stream_start_ms = chrono::Utc::now().timestamp_millis() - (SIMULATED_MINUTES + 1) * 60_000;
    let mut generator = StreamGenerator::new(
        11,
        SpikePlan { topic: SPIKE_TOPIC.to_string(), start_after_ms: 10 * 60_000, duration_ms: 3 * 60_000 },
    )
    .unwrap();
    let total = (SIMULATED_MINUTES * 60 * SIMULATED_RATE_PER_SECOND) as usize;
    let messages: Vec<(String, Vec<u8>)> = (0..total)
        .map(|index| {
            let elapsed_ms = index as i64 * 1000 / SIMULATED_RATE_PER_SECOND;
            let message = generator.next_message(elapsed_ms, stream_start_ms + elapsed_ms);
            // One key, so one partition: the history is replayed in event-time order (across
            // partitions a replayed backlog arrives interleaved in large per-partition chunks).
            ("stream".to_string(), message.to_json().into_bytes())
        })
        .collect();
    // The stream goes in two parts: up to a minute before the spike ends, then the rest once the
    // alert has fired. Fed at once, the daemon can replay the whole backlog, firing and resolving,
    // before the test looks at /metrics.
    let (during_spike, after_spike) =
        messages.split_at((FEED_PAUSE_AT_MINUTE * 60 * SIMULATED_RATE_PER_SECOND) as usize);
    produce_all(broker.bootstrap_servers(), during_spike);

    let http_port = free_port();
    let config = write_config(scratch.path(), broker.bootstrap_servers(), http_port, DETECTION_SETTINGS);
    let daemon = Daemon::start(&config, http_port, scratch.path());
    daemon.wait_ready(Duration::from_secs(90));

    let firing = wait_for_alert(&broker, "firing", Duration::from_secs(120), &daemon);
    assert_eq!(firing["topic"], SPIKE_TOPIC, "{firing}");
    let metrics = daemon.metrics();
    let firing_line = format!("sentmon_alert_firing{{topic=\"{SPIKE_TOPIC}\"}} 1");
    assert!(metrics.contains(&firing_line), "/metrics shows the alert while it lasts:\n{metrics}");
    // The spike raises the negative share and, with the generator's extra messages, the negative count (about 3x):
    // whichever test trips first opens the one episode, and its evidence must hold.
    match firing["detector"].as_str() {
        Some("rate") => {
            assert!(firing["z_score"].as_f64().unwrap() >= 3.0 && firing["total_count"].as_u64().unwrap() >= 20);
        }
        Some("volume") => {
            let (negatives, expected) =
                (firing["negative_count"].as_f64().unwrap(), firing["expected_negative_count"].as_f64().unwrap());
            assert!(negatives >= 3.0 * expected && firing["negative_count_p_value"].as_f64().unwrap() <= 1e-6);
        }
        other => panic!("an alert names its test, rate or volume, not {other:?}: {firing}"),
    }
    assert_eq!(firing["scope"], serde_json::json!({"kind": "topic", "name": SPIKE_TOPIC}), "{firing}");
    assert!(firing["negative_rate"].as_f64().unwrap() > firing["baseline_rate"].as_f64().unwrap());
    let examples = firing["examples"].as_array().unwrap();
    assert!(!examples.is_empty() && examples[0]["text"].is_string(), "alerts carry example messages: {firing}");
    assert!(firing["model_version"].is_string());

    produce_all(broker.bootstrap_servers(), after_spike);

    let resolved = wait_for_alert(&broker, "resolved", Duration::from_secs(90), &daemon);
    assert_eq!(resolved["topic"], SPIKE_TOPIC, "{resolved}");
    let alerts: Vec<serde_json::Value> =
        read_topic(broker.bootstrap_servers(), ALERTS_TOPIC, 2, Duration::from_secs(5), Duration::from_secs(2))
            .iter()
            .map(json)
            .collect();
    let firings: Vec<&serde_json::Value> = alerts.iter().filter(|alert| alert["kind"] == "firing").collect();
    assert_eq!(firings.len(), 1, "exactly one firing, for {SPIKE_TOPIC} only: {alerts:?}");
    // Stable ids (issue 12): the resolution names the alert it resolves.
    let firing_id = firings[0]["id"].as_str().expect("a firing event has an id");
    let firing_start = firings[0]["window_start_ms"].as_i64().unwrap();
    assert_eq!(firing_id, format!("topic:{SPIKE_TOPIC}:{firing_start}:firing"));
    assert_eq!(resolved["resolves"], firing_id, "{resolved}");
    assert!(daemon.metrics().contains(&format!("sentmon_alert_firing{{topic=\"{SPIKE_TOPIC}\"}} 0")));
    assert!(daemon.terminate(Duration::from_secs(30)).success());
}

fn wait_for_alert(
    broker: &sentmon::ingest::embedded::EmbeddedBroker,
    kind: &str,
    timeout: Duration,
    daemon: &Daemon,
) -> serde_json::Value {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        let alerts =
            read_topic(broker.bootstrap_servers(), ALERTS_TOPIC, usize::MAX, Duration::from_secs(2), Duration::ZERO);
        seen = alerts.iter().map(json).collect();
        if let Some(alert) = seen.iter().find(|alert| alert["kind"] == kind) {
            return alert.clone();
        }
    }
    panic!("no {kind} alert within {timeout:?}; alerts seen: {seen:?}; log:\n{}", daemon.log());
}

/// Issue 11: an alerts topic the producer cannot write to (here it does not exist and neither the
/// daemon nor the broker creates it) used to stall window evaluation inside the first alert's
/// endless produce retries: no more buckets closed, no alert resolved, no offset was stored. Now
/// the publish is given up, counted, logged and shown on /readyz, and everything else goes on.
#[test]
fn alert_events_that_cannot_be_published_stall_neither_windows_nor_offsets() {
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let unpublishable = UnpublishableAlerts::start(scratch.path(), 20);
    let (daemon, http_port) = (&unpublishable.daemon, unpublishable.http_port);

    // Detection goes on past the failed publish: the spike fires and then resolves.
    let firing = format!("sentmon_alerts_total{{kind=\"firing\",topic=\"{SPIKE_TOPIC}\"}}");
    let resolved = format!("sentmon_alerts_total{{kind=\"resolved\",topic=\"{SPIKE_TOPIC}\"}}");
    daemon.wait_for_series(&firing, 1.0, GENEROUS);
    daemon.wait_for_series(&resolved, 1.0, GENEROUS);
    daemon.wait_for_series("sentmon_alert_publish_failures_total", 1.0, GENEROUS);
    // Every offset is stored and committed although no alert event got out.
    daemon.wait_until("every input offset committed", GENEROUS, |_| {
        committed_offsets(unpublishable.broker.bootstrap_servers(), GROUP_ID, INPUT_TOPIC).values().sum::<i64>()
            == unpublishable.messages as i64
    });
    let (status, body) = http_get(http_port, "/readyz").unwrap();
    assert!(status == 503 && body.contains("alert_publish_failing"), "{status} {body}");
    let log = daemon.log();
    assert!(log.contains(&format!("negative spike on topic {SPIKE_TOPIC}")), "the alert's log line:\n{log}");
    assert!(
        log.lines().any(|line| line.contains("alert event not published") && line.contains(ALERTS_TOPIC)),
        "the failure's log line names the alerts topic:\n{log}"
    );
    assert!(unpublishable.daemon.terminate(Duration::from_secs(60)).success());
}

/// Issue 11, point 3: one drain deadline bounds everything. SIGTERM while an alert event is stuck
/// in its (bounded, 10 s) publish to a missing alerts topic: the drain used to wait for that
/// publish past the grace period, then flush the producer for 5 s more; now both end with the
/// grace period, so the process is gone within it (plus the final commit).
#[test]
fn a_drain_ends_within_the_grace_period_even_with_alert_events_stuck_in_publishing() {
    const GRACE_SECS: u64 = 2;
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let unpublishable = UnpublishableAlerts::start(scratch.path(), GRACE_SECS);
    let firing = format!("sentmon_alerts_total{{kind=\"firing\",topic=\"{SPIKE_TOPIC}\"}}");
    unpublishable.daemon.wait_for_series(&firing, 1.0, GENEROUS);
    // The publisher is now trying the first event for up to 10 s.
    let status = unpublishable.daemon.terminate(Duration::from_secs(GRACE_SECS + 4));
    assert!(status.success(), "{status:?}");
}

/// A daemon whose alerts topic does not exist (and is not created on first use), fed a calm stream
/// with a spike on [`SPIKE_TOPIC`]: its alerts fire and resolve, and every publish fails.
struct UnpublishableAlerts {
    broker: sentmon::ingest::embedded::EmbeddedBroker,
    daemon: Daemon,
    http_port: u16,
    messages: usize,
}

impl UnpublishableAlerts {
    fn start(scratch: &std::path::Path, grace_secs: u64) -> UnpublishableAlerts {
        const BUCKETS_CALM_BEFORE: i64 = 12;
        const BUCKETS_SPIKE: i64 = 3;
        const BUCKETS_CALM_AFTER: i64 = 25;
        const PER_BUCKET: usize = 20;
        let topics = [INPUT_TOPIC, OUTPUT_TOPIC, DEAD_LETTER_TOPIC].map(String::from);
        let broker = sentmon::ingest::embedded::EmbeddedBroker::start(PARTITIONS, &topics).unwrap();

        // Calm and spike texts about one topic from the demo's generator, on a compressed event-time
        // axis of 1 s buckets that ends ten minutes ago (so only event time closes the buckets).
        let mut generator = StreamGenerator::new(
            5,
            SpikePlan { topic: SPIKE_TOPIC.to_string(), start_after_ms: 60_000, duration_ms: 60_000 },
        )
        .unwrap();
        let mut texts = |in_spike: bool, count: usize| -> Vec<String> {
            let elapsed_ms = if in_spike { 90_000 } else { 0 };
            std::iter::repeat_with(|| generator.next_message(elapsed_ms, 0))
                .filter(|message| message.intended_topic == SPIKE_TOPIC)
                .map(|message| message.text)
                .take(count)
                .collect()
        };
        let total_buckets = BUCKETS_CALM_BEFORE + BUCKETS_SPIKE + BUCKETS_CALM_AFTER;
        let start_ms = chrono::Utc::now().timestamp_millis() - 600_000 - total_buckets * 1000;
        let mut messages = Vec::new();
        for bucket in 0..total_buckets {
            let in_spike = (BUCKETS_CALM_BEFORE..BUCKETS_CALM_BEFORE + BUCKETS_SPIKE).contains(&bucket);
            for (index, text) in texts(in_spike, PER_BUCKET).into_iter().enumerate() {
                let ts = start_ms + bucket * 1000 + (index * 1000 / PER_BUCKET) as i64;
                let id = format!("b{bucket}-{index}");
                // One key, one partition: the stream arrives in event-time order.
                messages.push((
                    "stream".to_string(),
                    serde_json::json!({"id": id, "text": text, "ts": ts}).to_string().into_bytes(),
                ));
            }
        }
        produce_all(broker.bootstrap_servers(), &messages);

        let http_port = free_port();
        let settings = r#"
[windows]
bucket_width_secs = 1
view_widths_secs = [2]
allowed_lateness_secs = 0
idle_close_delay_secs = 3600

[detector]
view_width_secs = 2
warmup_buckets = 4
min_volume = 10

[kafka.producer_options]
# The broker would otherwise create the alerts topic on the first alert.
"allow.auto.create.topics" = "false"
"#;
        let config = write_config(scratch, broker.bootstrap_servers(), http_port, settings);
        edit_config(&config, "commit_interval_ms = 500", "commit_interval_ms = 500\nrequire_existing_topics = false");
        edit_config(&config, "grace_secs = 20", &format!("grace_secs = {grace_secs}"));
        let daemon = Daemon::start(&config, http_port, scratch);
        UnpublishableAlerts { broker, daemon, http_port, messages: messages.len() }
    }
}

/// Issue 13: one entity's negative volume jumps tenfold while its negative share stays the same (an
/// exploding story, not a change of tone). Its messages are spread over whatever topics the model
/// gives them, yet the entity's own windows fire exactly one alert: a volume alert naming the entity,
/// with the entity's messages as examples, resolved after the surge. The rate test stays quiet on it.
#[test]
fn an_entity_whose_negative_volume_jumps_tenfold_at_a_steady_share_fires_one_volume_alert() {
    const ENTITY: &str = "Acme Bank";
    // Two negative and two neutral texts, in a fixed cycle: every bucket holds whole cycles, so the
    // entity's negative share is the same in every bucket whatever the model makes of each text.
    const ENTITY_TEXTS: [&str; 4] = [
        "Acme Bank shares plunge as losses mount and regulators open a fraud probe",
        "ACME BANK to hold its annual general meeting in Ohio on Tuesday",
        "acme bank stock tumbles after it slashes its outlook and warns of more defaults",
        "Acme Bank names a new head of its retail division",
    ];
    const BUCKETS_CALM_BEFORE: i64 = 30;
    const BUCKETS_SURGE: i64 = 6;
    const BUCKETS_CALM_AFTER: i64 = 24;
    const BACKGROUND_PER_BUCKET: usize = 20;
    const ENTITY_CYCLES_CALM: usize = 1;
    const ENTITY_CYCLES_SURGE: usize = 10;
    let _serial = serial();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();
    // The demo's stream without a spike, as the background every topic gets.
    let mut generator =
        StreamGenerator::new(3, SpikePlan { topic: SPIKE_TOPIC.to_string(), start_after_ms: 0, duration_ms: 0 })
            .unwrap();
    let total_buckets = BUCKETS_CALM_BEFORE + BUCKETS_SURGE + BUCKETS_CALM_AFTER;
    // 1 s buckets ending ten minutes ago: only event time closes them.
    let start_ms = chrono::Utc::now().timestamp_millis() - 600_000 - total_buckets * 1000;
    let mut messages = Vec::new();
    for bucket in 0..total_buckets {
        let in_surge = (BUCKETS_CALM_BEFORE..BUCKETS_CALM_BEFORE + BUCKETS_SURGE).contains(&bucket);
        let cycles = if in_surge { ENTITY_CYCLES_SURGE } else { ENTITY_CYCLES_CALM };
        let background = (0..BACKGROUND_PER_BUCKET).map(|_| generator.next_message(0, 0).text);
        let entity = ENTITY_TEXTS.iter().cycle().take(cycles * ENTITY_TEXTS.len()).map(|text| text.to_string());
        let texts: Vec<String> = background.chain(entity).collect();
        let per_bucket = texts.len();
        for (index, text) in texts.into_iter().enumerate() {
            let ts = start_ms + bucket * 1000 + (index * 1000 / per_bucket) as i64;
            let id = format!("b{bucket}-{index}");
            // One key, one partition: the stream arrives in event-time order.
            let payload = serde_json::json!({"id": id, "text": text, "ts": ts}).to_string().into_bytes();
            messages.push(("stream".to_string(), payload));
        }
    }
    produce_all(broker.bootstrap_servers(), &messages);

    let watchlist = scratch.path().join("watchlist.toml");
    std::fs::write(
        &watchlist,
        format!("[[entity]]\nname = \"{ENTITY}\"\naliases = [\"Acme\"]\n\n[[entity]]\nname = \"Globex\"\n"),
    )
    .unwrap();
    let settings = format!(
        r#"
[windows]
bucket_width_secs = 1
view_widths_secs = [4]
allowed_lateness_secs = 0
idle_close_delay_secs = 3600

[detector]
view_width_secs = 4
warmup_buckets = 6
min_volume = 10

[entities]
watchlist = "{}"
"#,
        watchlist.display()
    );
    let http_port = free_port();
    let config = write_config(scratch.path(), broker.bootstrap_servers(), http_port, &settings);
    let daemon = Daemon::start(&config, http_port, scratch.path());
    let resolved = format!("sentmon_entity_alerts_total{{detector=\"volume\",entity=\"{ENTITY}\",kind=\"resolved\"}}");
    daemon.wait_for_series(&resolved, 1.0, GENEROUS);

    let alerts: Vec<serde_json::Value> =
        read_topic(broker.bootstrap_servers(), ALERTS_TOPIC, usize::MAX, Duration::from_secs(5), Duration::ZERO)
            .iter()
            .map(json)
            .collect();
    let entity_alerts: Vec<&serde_json::Value> =
        alerts.iter().filter(|alert| alert["scope"]["kind"] == "entity").collect();
    assert_eq!(entity_alerts.len(), 2, "one firing and its resolution, nothing else on entities: {entity_alerts:?}");
    let (firing, resolution) = (entity_alerts[0], entity_alerts[1]);
    assert_eq!((&firing["kind"], &resolution["kind"]), (&"firing".into(), &"resolved".into()), "{entity_alerts:?}");
    for event in [firing, resolution] {
        assert_eq!(event["scope"], serde_json::json!({"kind": "entity", "name": ENTITY}), "{event}");
        assert_eq!(event["detector"], "volume", "the share never moved, so the rate test stays quiet: {event}");
    }
    let (negatives, expected) =
        (firing["negative_count"].as_f64().unwrap(), firing["expected_negative_count"].as_f64().unwrap());
    assert!(negatives >= 3.0 * expected, "{firing}");
    let examples = firing["examples"].as_array().unwrap();
    assert!(!examples.is_empty(), "{firing}");
    let example_texts: Vec<&str> = examples.iter().map(|example| example["text"].as_str().unwrap()).collect();
    assert!(
        example_texts.iter().all(|text| text.to_lowercase().contains("acme")),
        "the entity's messages: {example_texts:?}"
    );
    let distinct: std::collections::BTreeSet<&&str> = example_texts.iter().collect();
    assert_eq!(distinct.len(), example_texts.len(), "each example text once: {example_texts:?}");
    assert!(daemon.log().contains(&format!("negative volume surge on entity {ENTITY}")), "{}", daemon.log());

    // The metrics: the entity's own series, the unmentioned watched entity's counters at 0, no rate alert.
    let metrics = daemon.metrics();
    for series in [
        format!("sentmon_entity_alerts_total{{detector=\"volume\",entity=\"{ENTITY}\",kind=\"firing\"}} 1"),
        format!("sentmon_entity_alerts_total{{detector=\"rate\",entity=\"{ENTITY}\",kind=\"firing\"}} 0"),
        "sentmon_entity_alerts_total{detector=\"volume\",entity=\"Globex\",kind=\"firing\"} 0".to_owned(),
        format!("sentmon_entity_alert_firing{{entity=\"{ENTITY}\"}} 0"),
        format!("sentmon_entity_view_messages{{entity=\"{ENTITY}\",view=\"4s\"}}"),
    ] {
        assert!(metrics.contains(&series), "missing `{series}` in:\n{metrics}");
    }
    // Enriched records name their entities: the entity's, and none for the background.
    let records: Vec<serde_json::Value> =
        read_topic(broker.bootstrap_servers(), OUTPUT_TOPIC, 200, GENEROUS, Duration::ZERO).iter().map(json).collect();
    for record in &records {
        let names_entity = record["text"].as_str().unwrap().to_lowercase().contains("acme");
        let expected = if names_entity { serde_json::json!([ENTITY]) } else { serde_json::json!([]) };
        assert_eq!(record["entities"], expected, "{record}");
    }
    assert!(records.iter().any(|record| record["entities"] == serde_json::json!([ENTITY])), "{records:?}");
    assert!(daemon.terminate(Duration::from_secs(60)).success());
}
