//! What the end-to-end bench binaries share: the embedded broker as a `sentmon broker` child
//! process, a paced producer, the daemon and the Python yardstick as child processes, a reader of
//! output topics, RSS and quantiles.

// Each bench binary compiles this module on its own and uses a different part of it.
#![allow(dead_code)]

#[path = "../../tests/common/scrape.rs"]
mod scrape;
#[allow(unused_imports)] // as with dead code: not every bench binary reads the metrics
pub use scrape::{http_get, metric_sum};

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::BorrowedMessage;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, ThreadedProducer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};

/// Partitions of every topic: the daemon's 2 inference workers and the readers have 4 units of
/// parallelism, as in the demo.
pub const PARTITIONS: i32 = 4;

/// librdkafka long-polls fetches for up to `fetch.wait.max.ms` (500 ms by default); a real
/// broker answers as soon as data arrives, but the mock cluster was seen holding a fetch for the
/// whole wait (p50 606 ms at 1,000 messages/s with the default), which would measure the mock,
/// not the consumer. Every consumer here (sentmon, the Python yardstick, the readers) uses 5 ms.
pub const FETCH_WAIT_MAX_MS: &str = "5";

/// Environment variable naming the Python interpreter of the yardstick's venv (scripts/bench.sh
/// sets it); without it the benches measure sentmon alone.
pub const PYTHON_ENV: &str = "SENTMON_BENCH_PYTHON";

/// `cargo test --all-targets` builds bench binaries and runs them without `--bench`.
pub fn bench_requested() -> bool {
    std::env::args().any(|argument| argument == "--bench")
}

pub fn manifest_path(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The labelled file of `task` ("topic" or "sentiment"): the shared data's real texts when
/// present, else the project's fixtures.
pub fn texts_file(task: &str) -> PathBuf {
    let shared = manifest_path(&format!("../shared/data/en/{task}.train.jsonl"));
    if shared.exists() { shared } else { manifest_path(&format!("tests/fixtures/headlines.{task}.jsonl")) }
}

pub fn texts(task: &str) -> Vec<String> {
    let source = texts_file(task);
    let content =
        std::fs::read_to_string(&source).unwrap_or_else(|error| panic!("cannot read {}: {error}", source.display()));
    content
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter_map(|row| row.get("text").and_then(|text| text.as_str()).map(str::to_string))
        .collect()
}

/// `sentmon broker` as a child process, so its CPU and memory are neither the bench driver's nor
/// the measured consumer's. Stopped (SIGTERM) when dropped.
pub struct BrokerProcess {
    process: ChildProcess,
    bootstrap_servers: String,
    _address_directory: tempfile::TempDir,
}

impl BrokerProcess {
    /// Starts the broker with `topics` created up front with [`PARTITIONS`] partitions each.
    pub fn start(topics: &[String]) -> BrokerProcess {
        let address_directory = tempfile::tempdir().expect("temporary directory");
        let address_file = address_directory.path().join("broker.addr");
        let mut command = Command::new(env!("CARGO_BIN_EXE_sentmon"));
        command.args(["broker", "--partitions", &PARTITIONS.to_string(), "--address-file"]).arg(&address_file);
        for topic in topics {
            command.args(["--topic", topic]);
        }
        // Its info lines (the mock cluster's banner, "stopping") would interleave with the report.
        command.env("RUST_LOG", "warn");
        let process = ChildProcess(command.stdout(Stdio::null()).spawn().expect("sentmon broker starts"));
        let deadline = Instant::now() + Duration::from_secs(30);
        let bootstrap_servers = loop {
            if let Ok(address) = std::fs::read_to_string(&address_file) {
                break address.trim().to_string();
            }
            assert!(Instant::now() < deadline, "sentmon broker wrote no address within 30 s");
            std::thread::sleep(Duration::from_millis(50));
        };
        BrokerProcess { process, bootstrap_servers, _address_directory: address_directory }
    }

    pub fn bootstrap_servers(&self) -> &str {
        &self.bootstrap_servers
    }
}

/// A child process that is stopped (SIGTERM, the graceful drain every process here implements)
/// when dropped, so a failing bench leaves no daemon or broker behind.
pub struct ChildProcess(Child);

impl ChildProcess {
    pub fn id(&self) -> u32 {
        self.0.id()
    }

    pub fn stop(&mut self) -> ExitStatus {
        if let Ok(Some(status)) = self.0.try_wait() {
            return status;
        }
        let _ = Command::new("kill").args(["-TERM", &self.0.id().to_string()]).status();
        self.0.wait().expect("child is waited for")
    }
}

impl Drop for ChildProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

pub type BenchProducer = ThreadedProducer<DefaultProducerContext>;

pub fn producer(brokers: &str) -> BenchProducer {
    ClientConfig::new().set("bootstrap.servers", brokers).set("linger.ms", "1").create().expect("producer")
}

/// Sends one record, waiting for queue space rather than failing when the local queue is full.
pub fn send(producer: &BenchProducer, topic: &str, key: &str, payload: &[u8]) {
    let mut record = BaseRecord::to(topic).key(key).payload(payload);
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((_, returned)) => {
                record = returned;
                producer.poll(Duration::from_millis(5));
            }
        }
    }
}

/// Sends messages `indexes` at `rate` per second from now, each `{"id", "text", "sent_ms"}` keyed
/// by `{key_prefix}{index}`, so a reader computes produce -> read-back latency from the record.
/// With a non-zero `burst` the messages due within each `burst` interval go out together at its
/// start (the same rate, in steps).
pub fn send_paced(
    producer: &BenchProducer,
    topic: &str,
    texts: &[String],
    rate: f64,
    indexes: std::ops::Range<usize>,
    key_prefix: &str,
    burst: Duration,
) {
    let started = Instant::now();
    let first = indexes.start;
    for index in indexes {
        let mut due_seconds = (index - first) as f64 / rate;
        if !burst.is_zero() {
            due_seconds -= due_seconds % burst.as_secs_f64();
        }
        let due = started + Duration::from_secs_f64(due_seconds);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let key = format!("{key_prefix}{index}");
        let payload = serde_json::json!({"id": key, "text": texts[index % texts.len()], "sent_ms": now_ms()});
        send(producer, topic, &key, payload.to_string().as_bytes());
    }
}

/// The topics of one consumer run: it reads `input` as group `name` and writes `{name}.out`
/// (sentmon also `{name}.dead` and `{name}.alerts`).
pub fn output_topics(name: &str) -> [String; 3] {
    [format!("{name}.out"), format!("{name}.dead"), format!("{name}.alerts")]
}

/// `sentmon run` (release, the shipped model, 2 inference workers: the layout for 2 cores) as a
/// child process reading `input` as group `name`; returns it and its HTTP port.
pub fn start_daemon(scratch: &Path, brokers: &str, input: &str, name: &str) -> (ChildProcess, u16) {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let [output, dead_letters, alerts] = output_topics(name);
    let config = format!(
        "[kafka]\nbrokers = \"{brokers}\"\ngroup_id = \"{name}\"\ninput_topics = [\"{input}\"]\n\
         output_topic = \"{output}\"\ndead_letter_topic = \"{dead_letters}\"\nalerts_topic = \"{alerts}\"\n\
         [kafka.consumer_options]\n\"fetch.wait.max.ms\" = \"{FETCH_WAIT_MAX_MS}\"\n\
         [model]\npath = \"{}\"\nworkers = 2\n[http]\nlisten = \"127.0.0.1:{port}\"\n[log]\nlevel = \"warn\"\n",
        manifest_path("models/default").display()
    );
    let path = scratch.join(format!("{name}.toml"));
    std::fs::write(&path, config).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_sentmon"))
        .args(["run", "--config"])
        .arg(&path)
        .stdout(Stdio::null())
        .spawn()
        .expect("sentmon run starts");
    (ChildProcess(child), port)
}

/// The Python yardstick (`benches/python_way.py consume`) reading `input` as group `name`.
pub fn start_python(python: &Path, brokers: &str, input: &str, name: &str, mode: &str, threads: usize) -> ChildProcess {
    let [output, ..] = output_topics(name);
    let child = Command::new(python)
        .arg(manifest_path("benches/python_way.py"))
        .arg("--model-dir")
        .arg(manifest_path("models/default"))
        .args(["--threads", &threads.to_string(), "consume", "--mode", mode, "--brokers", brokers])
        .args(["--input", input, "--output", &output, "--group", name, "--fetch-wait-max-ms", FETCH_WAIT_MAX_MS])
        .stdout(Stdio::null())
        .spawn()
        .expect("the Python yardstick starts");
    ChildProcess(child)
}

/// A line of `/proc/PID/status` in MiB: `VmRSS` (now) or `VmHWM` (peak).
pub fn memory_mib(pid: u32, field: &str) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib: f64 = status
        .lines()
        .find(|line| line.strip_prefix(field).is_some_and(|rest| rest.starts_with(':')))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|value| value.parse().ok())
        .unwrap_or(0.0);
    kib / 1024.0
}

/// Waits until `/readyz` says the daemon has partitions: messages produced before the group
/// join completes would wait for it and measure the join.
pub fn wait_until_assigned(port: u16, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if http_get(port, "/readyz").is_some_and(|(_, body)| body.contains("\"assigned\"")) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the daemon was not assigned partitions within {timeout:?}");
}

/// Reads every partition of a topic from the beginning, outside any group (no join to wait for).
pub struct TopicReader {
    consumer: BaseConsumer,
}

impl TopicReader {
    pub fn new(brokers: &str, topic: &str) -> TopicReader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", brokers)
            .set("group.id", format!("bench-reader-{topic}"))
            .set("enable.auto.commit", "false")
            .set("fetch.wait.max.ms", FETCH_WAIT_MAX_MS)
            .create()
            .expect("reader");
        let mut assignment = TopicPartitionList::new();
        for partition in 0..PARTITIONS {
            assignment.add_partition_offset(topic, partition, Offset::Beginning).unwrap();
        }
        consumer.assign(&assignment).unwrap();
        TopicReader { consumer }
    }

    /// Hands each record to `visit` until it returns false or `deadline` passes; false on timeout.
    pub fn read(&self, deadline: Instant, mut visit: impl FnMut(&BorrowedMessage) -> bool) -> bool {
        while Instant::now() < deadline {
            let Some(Ok(message)) = self.consumer.poll(Duration::from_millis(50)) else {
                continue;
            };
            if !visit(&message) {
                return true;
            }
        }
        false
    }
}

/// The `sent_ms` the paced producer put in the record's value (kept by both consumers).
pub fn sent_ms(payload: &[u8]) -> i64 {
    let value: serde_json::Value = serde_json::from_slice(payload).expect("a JSON record");
    value["sent_ms"].as_i64().expect("the record keeps the input's sent_ms")
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as i64
}

/// The `q` quantile (nearest rank) of sorted values.
pub fn quantile(sorted: &[i64], q: f64) -> i64 {
    sorted[((sorted.len() - 1) as f64 * q).round() as usize]
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    sorted[sorted.len() / 2]
}
