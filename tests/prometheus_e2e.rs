//! End to end through a real Prometheus and Alertmanager: `sentmon run` against the embedded
//! broker, fed in real time with a stream that has a negative spike; Prometheus (Debian's
//! package, loopback only, 1 s scrape and evaluation) evaluates the project's rules; the test
//! asserts through Prometheus's HTTP API that SentimentNegativeSpike goes pending, then firing,
//! for the spiking topic and no other, that Alertmanager (configured from the shipped
//! alertmanager.yml) delivers it to a webhook this test runs, and that every query of the Grafana
//! dashboard parses and the core panels return data.
//!
//! Time is compressed: the rules are derived mechanically from deploy/prometheus/rules by
//! dividing every duration (range selectors, offsets, `for`, `keep_firing_for`) by
//! [`TIME_SCALE_DIVISOR`], so a 5-minute window is 15 s and a day-long baseline 72 minutes (of
//! which the test supplies one); thresholds and expressions are untouched. Without the
//! `prometheus` binary the test skips with a message, except in CI (`CI=true`), where it fails.

mod common;
mod ops;

use std::collections::BTreeSet;
use std::io::{Read, Write};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use ops::*;
use rdkafka::producer::Producer;
use sentmon::demo::generator::{SpikePlan, StreamGenerator};

const SHIPPED_RULES: &str = "deploy/prometheus/rules/sentmon.rules.yml";
const SHIPPED_ALERTMANAGER_CONFIG: &str = "deploy/alertmanager/alertmanager.yml";
const DASHBOARD: &str = "deploy/grafana/dashboards/sentmon.json";

/// Every duration in the rules is divided by this: 5m -> 15s, 2m -> 6s, 1d -> 72m.
const TIME_SCALE_DIVISOR: u64 = 20;
const SPIKE_TOPIC: &str = "Fed | Central Banks";
/// 200 messages a second: the smallest topic (1.5% of the stream) still has about 45 messages
/// per 15-second window, over the rules' 30-message minimum, and the spike topic about 180;
/// the daemon keeps up easily (it sustains thousands a second).
const MESSAGES_PER_SECOND: u64 = 200;
/// The spike alert's warm-up (a ratio 30 minutes ago, 90 s here) opens at about 90 s; the spike
/// starts just after.
const SPIKE_AFTER: Duration = Duration::from_secs(100);
/// One message in this many is undecodable, so the dead-letter panel has data (1%: far under
/// the 5% of SentmonDeadLettersHigh).
const DEAD_LETTER_EVERY: u64 = 100;
/// What `$__rate_interval` becomes: ten 1-second scrapes.
const RATE_INTERVAL: &str = "10s";
/// Panels allowed to be empty here, with why: nothing reloads a model in this test, and the
/// stream is fed in real time, so no message is late for its window.
const PANELS_WITHOUT_DATA_HERE: &[&str] = &["Model reloads (last hour)", "Late messages"];

/// The daemon's windows compressed like the rules, so the per-replica panels have data within
/// seconds (the in-process detector's own behaviour is tested by tests/alerts.rs).
const DAEMON_WINDOWS: &str = r#"
[windows]
bucket_width_secs = 5
view_widths_secs = [15, 60]
allowed_lateness_secs = 2

[detector]
view_width_secs = 15
warmup_buckets = 6
min_volume = 20

# The generated stream's cashtags ($AAPL...) as entities, so the dashboard's entity panels have data.
[entities]
cashtags = true
"#;

#[test]
fn a_negative_spike_goes_pending_then_firing_in_prometheus_and_alertmanager_delivers_it() {
    let Some(prometheus_binary) = tool_or_skip(&["prometheus"], "prometheus") else { return };
    let Some(alertmanager_binary) =
        tool_or_skip(&["prometheus-alertmanager", "alertmanager"], "prometheus-alertmanager")
    else {
        return;
    };
    let started = Instant::now();
    let scratch = tempfile::tempdir().unwrap();
    let broker = start_broker();

    let webhook = WebhookReceiver::start();
    let alertmanager_port = free_port();
    let alertmanager_config = scratch.path().join("alertmanager.yml");
    std::fs::write(&alertmanager_config, derive_alertmanager_config(&webhook.url())).unwrap();
    let mut alertmanager = ChildGuard::spawn(
        "alertmanager",
        Command::new(&alertmanager_binary)
            .arg(format!("--config.file={}", alertmanager_config.display()))
            .arg(format!("--storage.path={}", scratch.path().join("alertmanager-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{alertmanager_port}"))
            // An empty address turns clustering off; otherwise it listens on 0.0.0.0:9094.
            .arg("--cluster.listen-address="),
        scratch.path().join("alertmanager.log"),
    );

    let http_port = free_port();
    let config = write_config(scratch.path(), broker.bootstrap_servers(), http_port, DAEMON_WINDOWS);
    let daemon = Daemon::start(&config, http_port, scratch.path());

    let rules_path = scratch.path().join("sentmon.fast.rules.yml");
    std::fs::write(&rules_path, scale_durations(&read_repo_file(SHIPPED_RULES), TIME_SCALE_DIVISOR)).unwrap();
    let prometheus_port = free_port();
    let prometheus_config = scratch.path().join("prometheus.yml");
    std::fs::write(
        &prometheus_config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files: ['{rules}']\n\
             alerting:\n  alertmanagers:\n    - static_configs:\n        - targets: ['127.0.0.1:{alertmanager_port}']\n\
             scrape_configs:\n  - job_name: sentmon\n    static_configs:\n      - targets: ['127.0.0.1:{http_port}']\n",
            rules = rules_path.display()
        ),
    )
    .unwrap();
    let mut prometheus = ChildGuard::spawn(
        "prometheus",
        Command::new(&prometheus_binary)
            .arg(format!("--config.file={}", prometheus_config.display()))
            .arg(format!("--storage.tsdb.path={}", scratch.path().join("prometheus-data").display()))
            .arg(format!("--web.listen-address=127.0.0.1:{prometheus_port}")),
        scratch.path().join("prometheus.log"),
    );

    daemon.wait_ready(Duration::from_secs(90));
    wait_until(Duration::from_secs(60), "Prometheus and Alertmanager ready", || {
        prometheus.assert_running();
        alertmanager.assert_running();
        http_request(prometheus_port, "GET", "/-/ready", None).is_some_and(|(status, _)| status == 200)
            && http_request(alertmanager_port, "GET", "/-/ready", None).is_some_and(|(status, _)| status == 200)
    });
    wait_until(Duration::from_secs(30), "Prometheus scrapes sentmon", || {
        query(prometheus_port, r#"up{job="sentmon"} == 1"#).is_some_and(|result| !result.is_empty())
    });
    let set_up = started.elapsed();

    let feeder = Feeder::start(broker.bootstrap_servers().to_string());
    // Pending, then firing, for the spike topic; never any other topic.
    let mut first_pending: Option<Duration> = None;
    let mut first_firing: Option<Duration> = None;
    let mut other_topics: BTreeSet<String> = BTreeSet::new();
    let mut other_topic_details: Vec<String> = Vec::new();
    let deadline = SPIKE_AFTER + Duration::from_secs(120);
    while first_firing.is_none() {
        assert!(
            feeder.elapsed() < deadline,
            "SentimentNegativeSpike did not fire within {deadline:?} of the stream's start (pending at {first_pending:?});\n\
             recorded z-scores: {:?}\nprometheus log:\n{}\ndaemon log:\n{}",
            query(prometheus_port, "topic:sentmon_negative_ratio:zscore5m"),
            prometheus.log(),
            daemon.log()
        );
        prometheus.assert_running();
        for (topic, state) in spike_alerts(prometheus_port) {
            if topic != SPIKE_TOPIC {
                if other_topics.insert(format!("{topic} ({state})")) {
                    let value = |series: &str| {
                        query(prometheus_port, &format!("{series}{{topic=\"{topic}\"}}"))
                            .and_then(|result| Some(result.first()?["value"][1].as_str()?.to_string()))
                            .unwrap_or_default()
                    };
                    other_topic_details.push(format!(
                        "{:?} {topic} {state}: z {} ratio {} baseline {} stddev {} volume {}",
                        feeder.elapsed(),
                        value("topic:sentmon_negative_ratio:zscore5m"),
                        value("topic:sentmon_negative_ratio:rate5m"),
                        value("topic:sentmon_negative_ratio:baseline_avg1d"),
                        value("topic:sentmon_negative_ratio:baseline_stddev1d"),
                        value("topic:sentmon_messages_classified:increase5m"),
                    ));
                }
                continue;
            }
            let now = feeder.elapsed();
            match state.as_str() {
                "pending" => first_pending = first_pending.or(Some(now)),
                "firing" => first_firing = first_firing.or(Some(now)),
                other => panic!("unexpected alert state {other}"),
            }
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let (pending_at, firing_at) = (first_pending.expect("pending was seen before firing"), first_firing.unwrap());
    assert!(pending_at < firing_at, "pending at {pending_at:?} before firing at {firing_at:?}");
    assert!(pending_at >= SPIKE_AFTER, "no alert before the spike: pending at {pending_at:?}");
    assert!(other_topics.is_empty(), "SentimentNegativeSpike also went off for {other_topic_details:#?}");

    // Alertmanager delivers it, grouped by topic, with the annotations the template uses.
    let notification =
        wait_until(Duration::from_secs(30), "Alertmanager delivers the spike", || {
            webhook.received().into_iter().find(|notification| {
                notification["alerts"].as_array().into_iter().flatten().any(|alert| {
                    alert["labels"]["alertname"] == "SentimentNegativeSpike" && alert["status"] == "firing"
                })
            })
        });
    let delivered_at = feeder.elapsed();
    let alert = &notification["alerts"][0];
    assert_eq!(alert["labels"]["topic"], SPIKE_TOPIC, "{notification}");
    assert_eq!(notification["groupLabels"]["topic"], SPIKE_TOPIC, "grouped by topic: {notification}");
    assert_eq!(notification["receiver"], "analysts-chat", "routed like the shipped config: {notification}");
    let summary = alert["annotations"]["summary"].as_str().unwrap();
    assert!(
        summary.starts_with(&format!("negative spike on topic {SPIKE_TOPIC}: negative rate "))
            && summary.contains("baseline (z="),
        "{summary}"
    );
    assert!(alert["annotations"]["dashboard"].as_str().unwrap().contains("var-topic=Fed+%7C+Central+Banks"));

    // The pipeline kept up, and nothing else went off: still only the spike topic, now including
    // everything Alertmanager got.
    for (topic, _) in spike_alerts(prometheus_port) {
        assert_eq!(topic, SPIKE_TOPIC);
    }
    for notification in webhook.received() {
        for alert in notification["alerts"].as_array().unwrap() {
            if alert["labels"]["alertname"] == "SentimentNegativeSpike" {
                assert_eq!(alert["labels"]["topic"], SPIKE_TOPIC, "{notification}");
            }
        }
    }

    check_dashboard_queries(prometheus_port);
    let checked_at = feeder.elapsed();
    drop(feeder);
    assert!(daemon.terminate(Duration::from_secs(30)).success());
    eprintln!(
        "set-up {set_up:?}; from the stream's start: spike {SPIKE_AFTER:?}, pending {pending_at:?}, firing {firing_at:?}, \
         delivered {delivered_at:?}, dashboard checked {checked_at:?}; total {:?}",
        started.elapsed()
    );
}

/// The shipped rules with every duration divided by `divisor`: `[5m]`, `offset 5m`, `for: 2m`,
/// `keep_firing_for: 5m`. Anything else (thresholds, label values, annotation text) is untouched.
fn scale_durations(rules: &str, divisor: u64) -> String {
    let scale = |duration: &str| -> Option<String> {
        let milliseconds = parse_duration_ms(duration)?;
        let scaled = milliseconds / divisor;
        assert!(scaled > 0 && scaled * divisor == milliseconds, "{duration} does not divide by {divisor}");
        Some(if scaled % 1000 == 0 { format!("{}s", scaled / 1000) } else { format!("{scaled}ms") })
    };
    let mut output = String::new();
    for line in rules.lines() {
        let trimmed = line.trim_start();
        let indent = &line[..line.len() - trimmed.len()];
        let mut scaled_line = None;
        for key in ["for: ", "keep_firing_for: "] {
            if let Some(value) = trimmed.strip_prefix(key) {
                scaled_line = Some(format!("{indent}{key}{}", scale(value.trim()).expect("a duration")));
            }
        }
        if let Some(scaled_line) = scaled_line {
            output.push_str(&scaled_line);
        } else if trimmed.starts_with('#') {
            output.push_str(line);
        } else {
            // `[duration]` and `offset duration` inside expressions.
            let mut rest = line;
            while let Some(position) = rest.find(['[', 'o']) {
                output.push_str(&rest[..position]);
                rest = &rest[position..];
                if let Some(inner) = rest.strip_prefix('[') {
                    if let Some(end) = inner.find(']') {
                        if let Some(scaled) = scale(&inner[..end]) {
                            output.push_str(&format!("[{scaled}]"));
                            rest = &inner[end + 1..];
                            continue;
                        }
                    }
                } else if let Some(after) = rest.strip_prefix("offset ") {
                    let end = after.find(|character: char| !character.is_ascii_alphanumeric()).unwrap_or(after.len());
                    if let Some(scaled) = scale(&after[..end]) {
                        output.push_str(&format!("offset {scaled}"));
                        rest = &after[end..];
                        continue;
                    }
                }
                output.push_str(&rest[..1]);
                rest = &rest[1..];
            }
            output.push_str(rest);
        }
        output.push('\n');
    }
    output
}

/// A Prometheus duration like `5m`, `1d` or `1h30m`, in milliseconds.
fn parse_duration_ms(text: &str) -> Option<u64> {
    let mut total = 0;
    let mut rest = text;
    if rest.is_empty() {
        return None;
    }
    while !rest.is_empty() {
        let digits = rest.find(|character: char| !character.is_ascii_digit())?;
        let number: u64 = rest[..digits].parse().ok()?;
        let unit_end =
            rest[digits..].find(|character: char| character.is_ascii_digit()).map_or(rest.len(), |end| digits + end);
        let unit_ms = match &rest[digits..unit_end] {
            "ms" => 1,
            "s" => 1_000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "w" => 604_800_000,
            "y" => 31_536_000_000,
            _ => return None,
        };
        total += number * unit_ms;
        rest = &rest[unit_end..];
    }
    Some(total)
}

#[test]
fn fast_rules_divide_every_duration_and_nothing_else() {
    let shipped = read_repo_file(SHIPPED_RULES);
    let fast = scale_durations(&shipped, TIME_SCALE_DIVISOR);
    assert!(fast.contains("rate(sentmon_messages_classified_total[15s])"));
    assert!(fast.contains("[4320s] offset 15s"), "1d -> 72m, offset 5m -> 15s");
    assert!(fast.contains("for: 6s") && fast.contains("keep_firing_for: 15s"));
    let expressions: String = fast.lines().filter(|line| !line.trim_start().starts_with('#')).collect();
    assert!(!expressions.contains("[5m]") && !expressions.contains("[1d]") && !expressions.contains("offset 5m"));
    // Thresholds and texts stay as shipped.
    assert!(fast.contains("topic:sentmon_negative_ratio:zscore5m > 3") && fast.contains("messages in 5m)"));
    assert_eq!(fast.lines().count(), shipped.lines().count());
    if let Some(promtool) = find_tool(&["promtool"]) {
        let scratch = tempfile::tempdir().unwrap();
        let path = scratch.path().join("fast.rules.yml");
        std::fs::write(&path, &fast).unwrap();
        run_ok(Command::new(promtool).args(["check", "rules"]).arg(&path));
    }
}

/// The shipped Alertmanager config with every receiver replaced by the test's webhook, the
/// template path made absolute, and the grouping delays cut to a second; routes, grouping and
/// inhibit rules are the shipped ones.
fn derive_alertmanager_config(webhook_url: &str) -> String {
    let mut config: serde_yaml::Value = serde_yaml::from_str(&read_repo_file(SHIPPED_ALERTMANAGER_CONFIG)).unwrap();
    for receiver in config["receivers"].as_sequence_mut().unwrap() {
        let name = receiver["name"].clone();
        *receiver =
            serde_yaml::from_str(&format!("webhook_configs: [{{url: '{webhook_url}', send_resolved: true}}]")).unwrap();
        receiver["name"] = name;
    }
    let templates = repo_root().join("deploy/alertmanager/templates/*.tmpl");
    config["templates"] = serde_yaml::from_str(&format!("['{}']", templates.display())).unwrap();
    fn shorten(route: &mut serde_yaml::Value) {
        for (key, value) in [("group_wait", "1s"), ("group_interval", "1s"), ("repeat_interval", "1m")] {
            if route.get(key).is_some() {
                route[key] = value.into();
            }
        }
        if let Some(routes) = route.get_mut("routes").and_then(|routes| routes.as_sequence_mut()) {
            routes.iter_mut().for_each(shorten);
        }
    }
    shorten(&mut config["route"]);
    serde_yaml::to_string(&config).unwrap()
}

/// Every query of the dashboard, with its variables set to "all", is run by Prometheus: each
/// must parse, and every panel outside [`PANELS_WITHOUT_DATA_HERE`] must return data.
fn check_dashboard_queries(prometheus_port: u16) {
    let dashboard: serde_json::Value = serde_json::from_str(&read_repo_file(DASHBOARD)).unwrap();
    let substitute =
        |expr: &str| expr.replace("$__rate_interval", RATE_INTERVAL).replace("$topic", ".*").replace("$instance", ".*");
    let mut empty_panels = Vec::new();
    let mut checked = 0;
    for panel in dashboard["panels"].as_array().unwrap().iter().filter(|panel| panel["type"] != "row") {
        let title = panel["title"].as_str().unwrap();
        let mut panel_has_data = false;
        for target in panel["targets"].as_array().unwrap() {
            let expr = substitute(target["expr"].as_str().unwrap());
            let result =
                query(prometheus_port, &expr).unwrap_or_else(|| panic!("panel {title:?}: query failed: {expr}"));
            panel_has_data |= !result.is_empty();
            checked += 1;
        }
        if !panel_has_data && !PANELS_WITHOUT_DATA_HERE.contains(&title) {
            empty_panels.push(title.to_string());
        }
    }
    assert!(empty_panels.is_empty(), "core panels without data: {empty_panels:?}");
    for annotation in dashboard["annotations"]["list"].as_array().unwrap() {
        let expr = substitute(annotation["expr"].as_str().unwrap());
        assert!(query(prometheus_port, &expr).is_some_and(|result| !result.is_empty()), "annotation {expr}");
    }
    // Variables: label_values(selector, label) must find the label on the selector's series.
    for variable in dashboard["templating"]["list"].as_array().unwrap() {
        let definition = variable["query"]["query"].as_str().unwrap();
        let inner = definition.strip_prefix("label_values(").and_then(|rest| rest.strip_suffix(')')).unwrap();
        let (selector, label) = inner.rsplit_once(',').unwrap();
        let result = query(prometheus_port, selector.trim()).unwrap_or_else(|| panic!("variable query {selector}"));
        assert!(
            result.iter().any(|series| series["metric"][label.trim()].is_string()),
            "variable {definition}: no values"
        );
    }
    eprintln!("dashboard: {checked} queries parsed; panels allowed to be empty here: {PANELS_WITHOUT_DATA_HERE:?}");
}

/// An instant query's result vector; `None` if Prometheus rejects it (a parse error, say).
fn query(prometheus_port: u16, expr: &str) -> Option<Vec<serde_json::Value>> {
    let (status, body) =
        http_request(prometheus_port, "GET", &format!("/api/v1/query?query={}", url_encode(expr)), None)?;
    let response: serde_json::Value = serde_json::from_str(&body).ok()?;
    if status != 200 || response["status"] != "success" {
        eprintln!("query {expr:?} -> {status} {body}");
        return None;
    }
    response["data"]["result"].as_array().cloned()
}

/// (topic, state) of every SentimentNegativeSpike alert Prometheus holds now.
fn spike_alerts(prometheus_port: u16) -> Vec<(String, String)> {
    let Some((200, body)) = http_request(prometheus_port, "GET", "/api/v1/alerts", None) else { return Vec::new() };
    let response: serde_json::Value = serde_json::from_str(&body).unwrap();
    response["data"]["alerts"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|alert| alert["labels"]["alertname"] == "SentimentNegativeSpike")
        .map(|alert| {
            (alert["labels"]["topic"].as_str().unwrap().to_string(), alert["state"].as_str().unwrap().to_string())
        })
        .collect()
}

/// Polls `probe` every 200 ms until it gives `true`/`Some`, panicking after `timeout`.
fn wait_until<T: Waitable>(timeout: Duration, what: &str, mut probe: impl FnMut() -> T) -> T::Output {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(output) = probe().done() {
            return output;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for: {what}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

trait Waitable {
    type Output;
    fn done(self) -> Option<Self::Output>;
}

impl Waitable for bool {
    type Output = ();
    fn done(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Waitable for Option<T> {
    type Output = T;
    fn done(self) -> Option<T> {
        self
    }
}

/// Produces the generated stream in real time (event time = now) until dropped.
struct Feeder {
    started: Instant,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Feeder {
    fn start(brokers: String) -> Feeder {
        let stop = Arc::new(AtomicBool::new(false));
        let started = Instant::now();
        let thread_stop = stop.clone();
        let thread = std::thread::spawn(move || {
            let producer = producer(&brokers);
            let spike = SpikePlan {
                topic: SPIKE_TOPIC.to_string(),
                start_after_ms: SPIKE_AFTER.as_millis() as i64,
                duration_ms: 10 * 60_000,
            };
            let mut generator = StreamGenerator::new(17, spike).unwrap();
            let mut sent: u64 = 0;
            while !thread_stop.load(Ordering::Relaxed) {
                let elapsed = started.elapsed();
                let due = elapsed.as_millis() as u64 * MESSAGES_PER_SECOND / 1000;
                while sent < due {
                    sent += 1;
                    let (key, payload) = if sent % DEAD_LETTER_EVERY == 0 {
                        (format!("bad-{sent}"), b"{not json".to_vec())
                    } else {
                        let message =
                            generator.next_message(elapsed.as_millis() as i64, chrono::Utc::now().timestamp_millis());
                        (message.id.clone(), message.to_json().into_bytes())
                    };
                    send_to_input(&producer, &key, &payload);
                }
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = producer.flush(Duration::from_secs(5));
        });
        Feeder { started, stop, thread: Some(thread) }
    }

    fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
}

impl Drop for Feeder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Alertmanager's webhook receiver: a loopback HTTP server that keeps every JSON body it gets.
struct WebhookReceiver {
    port: u16,
    received: Arc<Mutex<Vec<serde_json::Value>>>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl WebhookReceiver {
    fn start() -> WebhookReceiver {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let (thread_received, thread_stop) = (received.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            while !thread_stop.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => {
                        if let Some(body) = read_request_body(stream) {
                            if let Ok(json) = serde_json::from_slice(&body) {
                                thread_received.lock().unwrap().push(json);
                            }
                        }
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        WebhookReceiver { port, received, stop, thread: Some(thread) }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/alerts", self.port)
    }

    fn received(&self) -> Vec<serde_json::Value> {
        self.received.lock().unwrap().clone()
    }
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads one HTTP request (headers, then Content-Length bytes), answers 200 and closes.
fn read_request_body(mut stream: std::net::TcpStream) -> Option<Vec<u8>> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 8192];
    let header_end = loop {
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..read]);
        if let Some(position) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break position + 4;
        }
    };
    let headers = String::from_utf8_lossy(&buffer[..header_end]).to_lowercase();
    let length: usize = headers
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < header_end + length {
        let read = stream.read(&mut chunk).ok()?;
        if read == 0 {
            break;
        }
        buffer.extend_from_slice(&chunk[..read]);
    }
    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
    Some(buffer[header_end..].to_vec())
}
