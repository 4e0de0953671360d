//! Helpers for tests that run the real daemon against a real Kafka-protocol broker
//! (librdkafka's mock cluster, hosted in the test process).

#![allow(dead_code)] // each test binary uses its own subset of these helpers

mod scrape;
pub use scrape::{http_get, metric_sum, metric_value};

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

pub const INPUT_TOPIC: &str = "news";
pub const OUTPUT_TOPIC: &str = "news.enriched";
pub const DEAD_LETTER_TOPIC: &str = "news.dead-letter";
pub const ALERTS_TOPIC: &str = "news.alerts";
pub const PARTITIONS: i32 = 4;
/// The consumer group `write_config` gives the daemon.
pub const GROUP_ID: &str = "sentmon-test";

/// Long enough for a debug build to load the model, join the group and work through a test's
/// messages on a busy 2-core machine; waits end as soon as their condition holds.
pub const GENEROUS: Duration = Duration::from_secs(90);
/// How long a reader keeps reading after it has what it expects, to catch extra records.
pub const SETTLE: Duration = Duration::from_secs(3);

/// Each test runs daemons that load a model and use both cores; running them one at a time
/// keeps timings sane on a 2-core machine.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

pub fn serial() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Polls `condition` until it holds; panics naming `what` after `timeout`.
pub fn wait_for(what: &str, timeout: Duration, condition: impl FnMut() -> bool) {
    assert!(poll_until(timeout, condition), "timed out after {timeout:?} waiting for {what}");
}

/// Checks `condition` every 50 ms until it holds (true) or `timeout` passes (false).
pub fn poll_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

pub fn model_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("models/default")
}

pub fn start_broker() -> sentmon::ingest::embedded::EmbeddedBroker {
    let topics: Vec<String> = [INPUT_TOPIC, OUTPUT_TOPIC, DEAD_LETTER_TOPIC, ALERTS_TOPIC].map(String::from).to_vec();
    sentmon::ingest::embedded::EmbeddedBroker::start(PARTITIONS, &topics).expect("embedded broker starts")
}

/// A port that was free a moment ago (bind :0, read, release).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The daemon's config: fast group joins and commits so tests do not wait on defaults meant for
/// production; `extra` is appended verbatim (TOML).
pub fn write_config(dir: &Path, brokers: &str, http_port: u16, extra: &str) -> PathBuf {
    write_config_serving(dir, brokers, http_port, &model_dir(), extra)
}

/// Like `write_config`, serving `model_path` (a bundle or a registry) instead of the shipped model.
/// The daemon re-reads the model path every second, so promotions show up quickly.
pub fn write_config_serving(dir: &Path, brokers: &str, http_port: u16, model_path: &Path, extra: &str) -> PathBuf {
    let config = format!(
        r#"
[kafka]
brokers = "{brokers}"
group_id = "{GROUP_ID}"
input_topics = ["{INPUT_TOPIC}"]
output_topic = "{OUTPUT_TOPIC}"
dead_letter_topic = "{DEAD_LETTER_TOPIC}"
alerts_topic = "{ALERTS_TOPIC}"
commit_interval_ms = 500

[kafka.consumer_options]
"session.timeout.ms" = "6000"
"heartbeat.interval.ms" = "500"

[input]
max_message_bytes = 4096

[model]
path = "{model}"
watch_interval_secs = 1

[http]
listen = "127.0.0.1:{http_port}"

[shutdown]
grace_secs = 20
{extra}
"#,
        model = model_path.display()
    );
    let path = dir.join(format!("sentmon-{http_port}.toml"));
    std::fs::write(&path, config).unwrap();
    path
}

/// Adds a librdkafka consumer option to a config written by `write_config` (TOML cannot reopen
/// the `[kafka.consumer_options]` table from the appended `extra`).
pub fn add_consumer_option(config: &Path, key: &str, value: &str) {
    const TABLE: &str = "[kafka.consumer_options]\n";
    edit_config(config, TABLE, &format!("{TABLE}\"{key}\" = \"{value}\"\n"));
}

/// Replaces `from` with `to` in a written config, for a setting that `extra` cannot override
/// (a key `write_config` already sets). Panics when `from` is absent, so a changed template cannot
/// silently turn the edit into a no-op.
pub fn edit_config(config: &Path, from: &str, to: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    assert!(text.contains(from), "{} has no {from:?}", config.display());
    std::fs::write(config, text.replace(from, to)).unwrap();
}

/// Runs a command to completion; panics with its output when it fails.
pub fn run_ok(command: &mut Command) -> Output {
    let output = command.output().unwrap_or_else(|error| panic!("cannot run {command:?}: {error}"));
    assert!(
        output.status.success(),
        "{command:?} failed ({}):\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// Runs a sentmon command to completion and returns its output; panics with both streams if it fails.
pub fn sentmon_ok(args: &[&str]) -> Output {
    run_ok(Command::new(env!("CARGO_BIN_EXE_sentmon")).args(args))
}

/// A running `sentmon run`; killed on drop so a failing test leaves nothing behind.
pub struct Daemon {
    pub child: Child,
    pub http_port: u16,
    pub log_path: PathBuf,
}

impl Daemon {
    pub fn start(config: &Path, http_port: u16, log_dir: &Path) -> Daemon {
        Daemon::start_with_env(config, http_port, log_dir, &[])
    }

    /// Like `start`, with extra environment variables (e.g. `SENTMON__...` overrides).
    pub fn start_with_env(config: &Path, http_port: u16, log_dir: &Path, environment: &[(&str, &str)]) -> Daemon {
        let log_path = log_dir.join(format!("daemon-{http_port}.log"));
        let log = std::fs::File::create(&log_path).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_sentmon"))
            .args(["run", "--config"])
            .arg(config)
            .envs(environment.iter().copied())
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("sentmon starts");
        Daemon { child, http_port, log_path }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    pub fn metrics(&self) -> String {
        http_get(self.http_port, "/metrics").map(|(_, body)| body).unwrap_or_default()
    }

    /// Sum of a metric's samples (all label sets) in the current /metrics output.
    pub fn metric_sum(&self, name: &str) -> f64 {
        metric_sum(&self.metrics(), name)
    }

    /// Waits until `condition` holds; if it does not within `timeout`, panics naming `what`, with
    /// the daemon's log.
    pub fn wait_until(&self, what: &str, timeout: Duration, mut condition: impl FnMut(&Daemon) -> bool) {
        if !poll_until(timeout, || condition(self)) {
            panic!("{what}: not within {timeout:?}; log:\n{}", self.log());
        }
    }

    /// Waits until one exact series (`name{labels}`) reaches `at_least`.
    pub fn wait_for_series(&self, series: &str, at_least: f64, timeout: Duration) {
        let what = format!("{series} reaching {at_least}");
        self.wait_until(&what, timeout, |daemon| metric_value(&daemon.metrics(), series) >= at_least);
    }

    /// Waits until the daemon's log contains `needle`.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) {
        self.wait_until(&format!("the log showing {needle:?}"), timeout, |daemon| daemon.log().contains(needle));
    }

    pub fn wait_ready(&self, timeout: Duration) {
        self.wait_until("/readyz answering 200", timeout, |daemon| {
            http_get(daemon.http_port, "/readyz").is_some_and(|(status, _)| status == 200)
        });
    }

    /// Whether the process is still running (it has not exited or crashed).
    pub fn is_running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    /// The resident memory of the process in KiB (`VmRSS` in /proc/PID/status).
    pub fn resident_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        let line = status.lines().find(|line| line.starts_with("VmRSS:")).expect("/proc/PID/status has VmRSS");
        line.split_whitespace().nth(1).unwrap().parse().unwrap()
    }

    /// SIGKILL (kill -9): no drain, no final commit; waits until the process is gone.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(mut self, timeout: Duration) -> std::process::ExitStatus {
        let pid = self.child.id().to_string();
        Command::new("kill").args(["-TERM", &pid]).status().unwrap();
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit within {timeout:?} of SIGTERM; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn producer(brokers: &str) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("linger.ms", "5")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer")
}

/// Queues one message for the input topic, waiting while the producer's queue is full.
pub fn send_to_input(producer: &ThreadedProducer<DefaultProducerContext>, key: &str, payload: &[u8]) {
    let mut record = BaseRecord::to(INPUT_TOPIC).key(key.as_bytes()).payload(payload);
    while let Err((_, returned)) = producer.send(record) {
        record = returned;
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Produces (key, payload) pairs to the input topic and waits until all are acknowledged.
pub fn produce_all(brokers: &str, messages: &[(String, Vec<u8>)]) {
    let producer = producer(brokers);
    for (key, payload) in messages {
        send_to_input(&producer, key, payload);
    }
    producer.flush(Duration::from_secs(30)).expect("every test message is acknowledged");
}

/// A producer thread offering messages to the input topic at a steady rate until they run out or
/// it is stopped.
pub struct Feed {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<usize>,
}

impl Feed {
    /// Starts offering `messages` at `per_second` (in 20 chunks a second).
    pub fn start(brokers: &str, messages: Vec<(String, Vec<u8>)>, per_second: usize) -> Feed {
        const TICK: Duration = Duration::from_millis(50);
        let stop = Arc::new(AtomicBool::new(false));
        let producer = producer(brokers);
        let thread_stop = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            let mut produced = 0;
            for chunk in messages.chunks((per_second / 20).max(1)) {
                if thread_stop.load(Ordering::Relaxed) {
                    break;
                }
                for (id, payload) in chunk {
                    let record = BaseRecord::to(INPUT_TOPIC).key(id.as_bytes()).payload(payload.as_slice());
                    producer.send(record).map_err(|(error, _)| error).expect("the test producer's queue has room");
                }
                produced += chunk.len();
                std::thread::sleep(TICK);
            }
            producer.flush(Duration::from_secs(30)).expect("every fed message is acknowledged");
            produced
        });
        Feed { stop, thread }
    }

    /// Stops the feed; returns how many messages it produced.
    pub fn stop(self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().unwrap()
    }

    /// Waits until every message is produced; returns how many there were.
    pub fn finish(self) -> usize {
        self.thread.join().unwrap()
    }
}

pub struct ConsumedRecord {
    pub topic: String,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: HashMap<String, String>,
    pub partition: i32,
    pub offset: i64,
}

/// Reads a topic from the beginning (all partitions assigned, no group), until `expected`
/// records arrived or `timeout` passed, then for `settle` more to catch extras.
pub fn read_topic(
    brokers: &str,
    topic: &str,
    expected: usize,
    timeout: Duration,
    settle: Duration,
) -> Vec<ConsumedRecord> {
    read_topics_until(brokers, &[topic], timeout, settle, |records| records.len() >= expected)
}

/// Reads topics from the beginning (all partitions assigned, no group), until `is_complete`
/// holds for the records read so far or `timeout` passed, then for `settle` more to catch extras.
/// `is_complete` is asked before each poll, so it sees every record as the last one once.
pub fn read_topics_until(
    brokers: &str,
    topics: &[&str],
    timeout: Duration,
    settle: Duration,
    mut is_complete: impl FnMut(&[ConsumedRecord]) -> bool,
) -> Vec<ConsumedRecord> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", format!("reader-{}-{}", topics.join("+"), std::process::id()))
        .set("enable.auto.commit", "false")
        .create()
        .expect("reader consumer");
    let mut assignment = TopicPartitionList::new();
    for topic in topics {
        for partition in 0..PARTITIONS {
            assignment.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
        }
    }
    consumer.assign(&assignment).unwrap();
    let mut records = Vec::new();
    let deadline = Instant::now() + timeout;
    let mut settle_deadline: Option<Instant> = None;
    loop {
        let now = Instant::now();
        if settle_deadline.is_none() && is_complete(&records) {
            settle_deadline = Some(now + settle);
        }
        if now >= deadline || settle_deadline.is_some_and(|settle_until| now >= settle_until) {
            return records;
        }
        let Some(result) = consumer.poll(Duration::from_millis(100)) else { continue };
        let Ok(message) = result else { continue };
        let headers = message
            .headers()
            .map(|headers| {
                headers
                    .iter()
                    .map(|header| {
                        (header.key.to_string(), String::from_utf8_lossy(header.value.unwrap_or_default()).into_owned())
                    })
                    .collect()
            })
            .unwrap_or_default();
        records.push(ConsumedRecord {
            topic: message.topic().to_string(),
            key: message.key().map(|key| String::from_utf8_lossy(key).into_owned()),
            payload: message.payload().unwrap_or_default().to_vec(),
            headers,
            partition: message.partition(),
            offset: message.offset(),
        });
    }
}

/// The next offset `group` has committed for each partition of `topic` (partitions without a
/// commit are absent). Asks the group coordinator without joining the group.
pub fn committed_offsets(brokers: &str, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("offset reader");
    let mut partitions = TopicPartitionList::new();
    for partition in 0..PARTITIONS {
        partitions.add_partition(topic, partition);
    }
    let committed = consumer.committed_offsets(partitions, Duration::from_secs(10)).expect("committed offsets");
    committed
        .elements()
        .iter()
        .filter_map(|element| match element.offset() {
            Offset::Offset(next_offset) => Some((element.partition(), next_offset)),
            _ => None,
        })
        .collect()
}

pub fn json(record: &ConsumedRecord) -> serde_json::Value {
    serde_json::from_slice(&record.payload).expect("enriched records are JSON")
}

/// Realistic headlines for load: (id, JSON payload).
pub fn headline_messages(count: usize, prefix: &str) -> Vec<(String, Vec<u8>)> {
    const HEADLINES: [&str; 8] = [
        "Fed holds rates steady, signals patience on cuts",
        "$AAPL shares slip after iPhone sales miss estimates",
        "Oil prices climb as supply concerns mount",
        "Bank stocks rally on strong quarterly earnings",
        "Treasury yields rise ahead of inflation data",
        "Company announces new CEO after surprise resignation",
        "Gold hits record high as dollar weakens",
        "Regulators open probe into lender's accounting",
    ];
    (0..count)
        .map(|index| {
            let id = format!("{prefix}-{index}");
            let text = format!("{} ({index})", HEADLINES[index % HEADLINES.len()]);
            let payload = serde_json::json!({"id": id, "text": text, "source": "test"}).to_string().into_bytes();
            (id, payload)
        })
        .collect()
}
