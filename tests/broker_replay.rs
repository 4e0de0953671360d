//! End-to-end tests of `sentmon broker` and `sentmon replay`, run as the real binary against each other.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use sentmon::demo::generator::{SpikePlan, StreamGenerator};

const TOPIC: &str = "news";
const PARTITIONS: i32 = 3;
/// Generous: the broker starts in milliseconds, but CI machines can be slow and busy.
const STARTUP_TIMEOUT: Duration = Duration::from_secs(30);
const CONSUME_TIMEOUT: Duration = Duration::from_secs(30);
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(15);
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

fn sentmon() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sentmon"))
}

/// Kills the child on drop, so a failing assertion never leaves a broker running.
struct ChildGuard {
    child: Child,
    stderr_path: PathBuf,
}

impl ChildGuard {
    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM (libc is not a dependency, so through `kill`) and waits for the exit code.
    fn terminate(&mut self) -> std::process::ExitStatus {
        let status = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status().expect("kill runs");
        assert!(status.success(), "kill -TERM failed: {status}");
        let deadline = Instant::now() + SHUTDOWN_TIMEOUT;
        loop {
            if let Some(exit_status) = self.child.try_wait().expect("child status is readable") {
                return exit_status;
            }
            assert!(Instant::now() < deadline, "broker did not exit within {SHUTDOWN_TIMEOUT:?} of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Starts `sentmon broker` and returns it with its bootstrap address, read from the address file.
fn start_broker(directory: &Path) -> (ChildGuard, String, PathBuf) {
    let address_file = directory.join("broker.addr");
    let stderr_path = directory.join("broker.stderr");
    let child = sentmon()
        .args(["broker", "--partitions", &PARTITIONS.to_string(), "--topic", TOPIC, "--address-file"])
        .arg(&address_file)
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).expect("stderr file is created"))
        .spawn()
        .expect("sentmon broker starts");
    let mut broker = ChildGuard { child, stderr_path };
    let mut first_line = String::new();
    BufReader::new(broker.child.stdout.take().expect("stdout is piped"))
        .read_line(&mut first_line)
        .expect("broker stdout is readable");
    assert!(first_line.starts_with("bootstrap servers: 127.0.0.1:"), "stdout: {first_line:?}\n{}", broker.stderr());
    let deadline = Instant::now() + STARTUP_TIMEOUT;
    while !address_file.exists() {
        assert!(Instant::now() < deadline, "no address file after {STARTUP_TIMEOUT:?}\n{}", broker.stderr());
        std::thread::sleep(Duration::from_millis(20));
    }
    let address = std::fs::read_to_string(&address_file).expect("address file is readable").trim().to_string();
    assert_eq!(first_line.trim().strip_prefix("bootstrap servers: "), Some(address.as_str()));
    (broker, address, address_file)
}

fn run_replay(file: &Path, address: &str, extra_args: &[&str]) -> Output {
    sentmon()
        .arg("replay")
        .arg(file)
        .args(["--topic", TOPIC, "--brokers", address])
        .args(extra_args)
        .output()
        .expect("sentmon replay runs")
}

fn assert_success(output: &Output) {
    assert!(
        output.status.success(),
        "replay failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Generated messages (id, JSON line).
fn generated_lines(count: i64) -> Vec<(String, String)> {
    let plan = SpikePlan { topic: "Fed | Central Banks".to_string(), start_after_ms: 0, duration_ms: 1_000 };
    let mut stream = StreamGenerator::new(17, plan).expect("generator starts");
    (0..count)
        .map(|index| {
            let message = stream.next_message(index * 10, 1_800_000_000_000 + index * 10);
            (message.id.clone(), message.to_json())
        })
        .collect()
}

/// Reads every message of the topic from the beginning of each partition: (key, payload) pairs.
fn consume_all(address: &str, expected_count: usize) -> Vec<(Option<String>, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", address)
        .set("group.id", "broker-replay-test")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer is created");
    let metadata = consumer.fetch_metadata(Some(TOPIC), KAFKA_TIMEOUT).expect("metadata arrives");
    let partition_count = metadata.topics()[0].partitions().len();
    assert_eq!(partition_count, PARTITIONS as usize, "the broker created the topic with --partitions");
    let mut assignment = TopicPartitionList::new();
    let mut stored_count = 0;
    for partition in 0..PARTITIONS {
        assignment.add_partition_offset(TOPIC, partition, Offset::Beginning).expect("partition is added");
        let (low, high) = consumer.fetch_watermarks(TOPIC, partition, KAFKA_TIMEOUT).expect("watermarks arrive");
        stored_count += high - low;
    }
    // The watermarks count what the broker stored, so a duplicate would show here even if the
    // consumer stopped reading at the expected count.
    assert_eq!(stored_count, expected_count as i64, "the broker holds each line exactly once");
    consumer.assign(&assignment).expect("partitions are assigned");
    let mut received = Vec::new();
    let deadline = Instant::now() + CONSUME_TIMEOUT;
    while received.len() < expected_count {
        assert!(Instant::now() < deadline, "only {} of {expected_count} messages arrived", received.len());
        let Some(result) = consumer.poll(Duration::from_millis(100)) else {
            continue;
        };
        let message = result.expect("consuming succeeds");
        let key = message.key().map(|key| String::from_utf8(key.to_vec()).expect("keys are UTF-8"));
        let payload = String::from_utf8(message.payload().expect("messages have a payload").to_vec())
            .expect("payloads are UTF-8");
        received.push((key, payload));
    }
    received
}

#[test]
fn replayed_lines_arrive_exactly_once_with_their_keys_and_the_broker_stops_on_sigterm() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (mut broker, address, address_file) = start_broker(directory.path());
    let generated = generated_lines(200);
    let invalid_line = "{\"id\": \"broken-1\", \"text\": unquoted".to_string();
    let archive_path = directory.path().join("stream.jsonl");
    let mut archive = std::fs::File::create(&archive_path).expect("archive is created");
    for (index, (_, line)) in generated.iter().enumerate() {
        writeln!(archive, "{line}").expect("line is written");
        if index == 100 {
            writeln!(archive, "{invalid_line}").expect("invalid line is written");
            writeln!(archive, "   ").expect("blank line is written");
        }
    }
    drop(archive);

    let output = run_replay(&archive_path, &address, &["--rate", "0", "--key-field", "id"]);
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stdout.contains("sent 201 messages to topic news"), "stdout: {stdout}");
    assert!(stdout.contains(", 0 failed"), "stdout: {stdout}");
    assert!(stderr.contains("warning: 1 line(s) sent without a key"), "stderr: {stderr}");
    assert!(stderr.contains("line 102"), "the warning names the invalid line: {stderr}");

    let mut received: HashMap<String, Option<String>> = HashMap::new();
    for (key, payload) in consume_all(&address, generated.len() + 1) {
        assert!(received.insert(payload.clone(), key).is_none(), "{payload} arrived twice");
    }
    for (id, line) in &generated {
        assert_eq!(received.get(line), Some(&Some(id.clone())), "{line} arrived with its id as key");
    }
    assert_eq!(received.get(&invalid_line), Some(&None), "the invalid line arrives as-is, without a key");

    let exit_status = broker.terminate();
    assert!(exit_status.success(), "broker exited with {exit_status} after SIGTERM\n{}", broker.stderr());
    assert!(!address_file.exists(), "the broker removes its address file on exit");
}

#[test]
fn replay_paces_a_gzip_archive_to_the_requested_rate() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let (_broker, address, _) = start_broker(directory.path());
    let message_count = 40;
    let rate = 100.0;
    let archive_path = directory.path().join("stream.jsonl.gz");
    let mut encoder = flate2::write::GzEncoder::new(
        std::fs::File::create(&archive_path).expect("archive is created"),
        flate2::Compression::fast(),
    );
    for (_, line) in generated_lines(message_count) {
        writeln!(encoder, "{line}").expect("line is written");
    }
    encoder.finish().expect("archive is finished");

    let started_at = Instant::now();
    let output = run_replay(&archive_path, &address, &["--rate", &rate.to_string()]);
    let elapsed = started_at.elapsed();
    assert_success(&output);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(&format!("sent {message_count} messages")), "stdout: {stdout}");
    // Message i is due at i/rate, so the last one cannot leave before (count - 1)/rate.
    let earliest = Duration::from_secs_f64((message_count - 1) as f64 / rate);
    assert!(elapsed >= earliest, "40 messages at 100/s took only {elapsed:?}");
    assert_eq!(consume_all(&address, message_count as usize).len(), message_count as usize);
}

#[test]
fn replay_to_an_unreachable_broker_fails_naming_the_address() {
    let directory = tempfile::tempdir().expect("temporary directory");
    let archive_path = directory.path().join("stream.jsonl");
    std::fs::write(&archive_path, "{\"text\": \"hello\"}\n").expect("archive is written");
    // Port 1 (tcpmux) is reserved and never a Kafka broker.
    let output = run_replay(&archive_path, "127.0.0.1:1", &[]);
    assert!(!output.status.success(), "replay to a dead broker must fail");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("127.0.0.1:1") && stderr.contains("--brokers"), "stderr: {stderr}");
}

#[test]
fn broker_rejects_zero_partitions_with_the_fix() {
    let output = sentmon().args(["broker", "--partitions", "0"]).output().expect("sentmon broker runs");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("invalid partition count 0") && stderr.contains("--partitions"), "stderr: {stderr}");
}
