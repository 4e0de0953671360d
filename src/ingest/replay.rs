//! Replays a JSONL archive into a Kafka topic: paced by schedule, bounded in flight, every delivery confirmed.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::Context;
use flate2::read::MultiGzDecoder;
use rdkafka::ClientConfig;
use rdkafka::error::KafkaError;
use rdkafka::producer::{DeliveryFuture, FutureProducer, FutureRecord, Producer};
use rdkafka::types::RDKafkaErrorCode;

/// Delivery futures awaited at most at once. Each holds only a small channel, so the bound exists
/// to keep memory flat on million-line files; 8192 still lets librdkafka fill whole batches at the
/// mock broker's ~500k msg/s (5 ms linger x 500k/s = 2,500 messages per batch).
const MAX_OUTSTANDING_DELIVERIES: usize = 8192;

/// How long librdkafka keeps retrying a message before reporting it failed. Kafka's default (5 min)
/// makes a replay against a dead broker look hung; a minute still rides out a leader election.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(60);

/// How long the start-up metadata request may take before the brokers count as unreachable.
const METADATA_TIMEOUT: Duration = Duration::from_secs(10);

/// Pause before retrying when librdkafka's local queue is full and no delivery is outstanding to
/// wait for instead (only possible if another producer shares the queue; a safety net).
const QUEUE_FULL_RETRY_DELAY: Duration = Duration::from_millis(10);

/// What to replay where, and how fast.
#[derive(Debug, Clone)]
pub struct ReplaySettings {
    /// `bootstrap.servers`, e.g. `localhost:9092`.
    pub brokers: String,
    pub topic: String,
    /// Messages per second; 0 sends as fast as the broker takes them.
    pub messages_per_second: f64,
    /// JSON field whose value becomes the message key; `None` sends every message without a key.
    pub key_field: Option<String>,
}

impl ReplaySettings {
    /// Checks the settings before any file is read or broker contacted.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            self.messages_per_second.is_finite() && self.messages_per_second >= 0.0,
            "invalid rate {}: give messages per second as a number >= 0 (0 sends as fast as possible)",
            self.messages_per_second
        );
        anyhow::ensure!(!self.topic.trim().is_empty(), "the topic to replay into is empty: name one (--topic)");
        anyhow::ensure!(
            !self.brokers.trim().is_empty(),
            "the broker list is empty: give bootstrap servers (--brokers)"
        );
        Ok(())
    }
}

/// Counts after a replay has waited for every delivery report.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReplaySummary {
    /// Messages acknowledged by the broker.
    pub delivered: u64,
    /// Messages the broker did not acknowledge (or librdkafka refused to queue).
    pub failed: u64,
    /// The earliest failed line (1-based) and why it failed.
    pub first_failure: Option<(u64, String)>,
    /// Lines sent without a key because `key_field` was set but could not be read from them.
    pub keyless: u64,
    /// The earliest such line (1-based) and why its key could not be read.
    pub first_keyless: Option<(u64, String)>,
    pub elapsed: Duration,
}

/// Where a replay stands, reported after every delivery report.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplayProgress {
    pub delivered: u64,
    pub failed: u64,
}

/// Opens a JSONL file, decompressing it when its name ends in `.gz`.
pub fn open_archive(path: &Path) -> anyhow::Result<Box<dyn BufRead>> {
    let file = File::open(path).with_context(|| format!("failed to open {}", path.display()))?;
    let is_gzip = path.extension().is_some_and(|extension| extension == "gz");
    let reader: Box<dyn Read> = if is_gzip { Box::new(MultiGzDecoder::new(file)) } else { Box::new(file) };
    Ok(Box::new(BufReader::new(reader)))
}

/// Counts the messages (non-blank lines) a replay of `path` would send, so progress can show an ETA.
pub fn count_messages(path: &Path) -> anyhow::Result<u64> {
    let mut message_count = 0;
    for line in open_archive(path)?.split(b'\n') {
        let line = line.with_context(|| format!("failed to read {}", path.display()))?;
        if message_value(&line).is_some() {
            message_count += 1;
        }
    }
    Ok(message_count)
}

/// The bytes sent for one archive line: the line without its terminator, or `None` for a blank line.
fn message_value(line: &[u8]) -> Option<&[u8]> {
    let value = line.strip_suffix(b"\r").unwrap_or(line);
    if value.iter().all(u8::is_ascii_whitespace) {
        return None;
    }
    Some(value)
}

/// The message key from `field` of a JSON line: a string's contents, or a number's or boolean's
/// JSON text. Errors say why there is none, for the keyless-lines warning.
fn message_key(value: &[u8], field: &str) -> Result<Vec<u8>, String> {
    let object = match serde_json::from_slice::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(object)) => object,
        Ok(_) => return Err("the line is JSON but not an object".to_string()),
        Err(error) => return Err(format!("the line is not valid JSON ({error})")),
    };
    match object.get(field) {
        Some(serde_json::Value::String(key)) => Ok(key.as_bytes().to_vec()),
        Some(scalar @ (serde_json::Value::Number(_) | serde_json::Value::Bool(_))) => {
            Ok(scalar.to_string().into_bytes())
        }
        Some(_) => Err(format!("field {field:?} is null, an array or an object")),
        None => Err(format!("the object has no field {field:?}")),
    }
}

/// A sent message whose delivery report has not been awaited yet.
struct OutstandingDelivery {
    line_number: u64,
    delivery: DeliveryFuture,
}

/// Delivery outcomes so far.
#[derive(Default)]
struct DeliveryTally {
    delivered: u64,
    failed: u64,
    first_failure: Option<(u64, String)>,
}

impl DeliveryTally {
    fn record_failure(&mut self, line_number: u64, reason: String) {
        self.failed += 1;
        // Reports are awaited in send order but a refused send fails at once, ahead of earlier
        // lines still in flight, so keep the earliest line rather than the first recorded.
        let is_earliest = self.first_failure.as_ref().is_none_or(|(earliest_line, _)| line_number < *earliest_line);
        if is_earliest {
            self.first_failure = Some((line_number, reason));
        }
    }

    fn record(&mut self, line_number: u64, outcome: <DeliveryFuture as std::future::Future>::Output) {
        match outcome {
            Ok(Ok(_delivery)) => self.delivered += 1,
            Ok(Err((error, _message))) => self.record_failure(line_number, error.to_string()),
            Err(_canceled) => {
                self.record_failure(line_number, "the producer shut down before the broker answered".to_string())
            }
        }
    }

    fn progress(&self) -> ReplayProgress {
        ReplayProgress { delivered: self.delivered, failed: self.failed }
    }
}

/// Sends every non-blank line of `path` as-is to `settings.topic` and waits for every delivery
/// report. Lines that are not valid JSON are sent too: the daemon dead-letters them, and this is
/// how users test that path. `on_progress` is called after each delivery report.
pub async fn replay_archive(
    path: &Path,
    settings: &ReplaySettings,
    mut on_progress: impl FnMut(ReplayProgress),
) -> anyhow::Result<ReplaySummary> {
    settings.validate()?;
    let lines = open_archive(path)?;
    let producer = create_producer(settings).await?;
    let started_at = Instant::now();
    let mut tally = DeliveryTally::default();
    let mut outstanding: VecDeque<OutstandingDelivery> = VecDeque::with_capacity(MAX_OUTSTANDING_DELIVERIES);
    let mut keyless = 0;
    let mut first_keyless = None;
    let mut message_index: u64 = 0;
    for (line_index, line) in lines.split(b'\n').enumerate() {
        let line_number = line_index as u64 + 1;
        let line = line.with_context(|| format!("failed to read {} at line {line_number}", path.display()))?;
        let Some(value) = message_value(&line) else {
            continue;
        };
        if settings.messages_per_second > 0.0 {
            // Message i is due at start + i/rate: sleeping a fixed interval per message would add
            // each send's own time to the schedule and drift below the requested rate.
            let due_at = started_at + Duration::from_secs_f64(message_index as f64 / settings.messages_per_second);
            wait_until_reaping(due_at, &mut outstanding, &mut tally, &mut on_progress).await;
        }
        message_index += 1;
        let key = match settings.key_field.as_deref().map(|field| message_key(value, field)) {
            None => None,
            Some(Ok(key)) => Some(key),
            Some(Err(reason)) => {
                keyless += 1;
                if first_keyless.is_none() {
                    first_keyless = Some((line_number, reason));
                }
                None
            }
        };
        while outstanding.len() >= MAX_OUTSTANDING_DELIVERIES {
            reap_oldest(&mut outstanding, &mut tally, &mut on_progress).await;
        }
        let mut record = FutureRecord::to(&settings.topic).payload(value);
        if let Some(key) = &key {
            record = record.key(key.as_slice());
        }
        loop {
            match producer.send_result(record) {
                Ok(delivery) => {
                    outstanding.push_back(OutstandingDelivery { line_number, delivery });
                    break;
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned_record)) => {
                    record = returned_record;
                    if outstanding.is_empty() {
                        tokio::time::sleep(QUEUE_FULL_RETRY_DELAY).await;
                    } else {
                        reap_oldest(&mut outstanding, &mut tally, &mut on_progress).await;
                    }
                }
                Err((error, _record)) => {
                    tally.record_failure(line_number, error.to_string());
                    on_progress(tally.progress());
                    break;
                }
            }
        }
    }
    while !outstanding.is_empty() {
        reap_oldest(&mut outstanding, &mut tally, &mut on_progress).await;
    }
    Ok(ReplaySummary {
        delivered: tally.delivered,
        failed: tally.failed,
        first_failure: tally.first_failure,
        keyless,
        first_keyless,
        elapsed: started_at.elapsed(),
    })
}

/// An idempotent producer (`acks=all`, no duplicates on retry) checked against the brokers first,
/// so a wrong address fails in seconds instead of after the delivery timeout.
async fn create_producer(settings: &ReplaySettings) -> anyhow::Result<FutureProducer> {
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &settings.brokers)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .set("message.timeout.ms", DELIVERY_TIMEOUT.as_millis().to_string())
        .create()
        .with_context(|| format!("failed to create a Kafka producer for brokers {:?}", settings.brokers))?;
    let metadata_producer = producer.clone();
    let topic = settings.topic.clone();
    tokio::task::spawn_blocking(move || metadata_producer.client().fetch_metadata(Some(&topic), METADATA_TIMEOUT))
        .await
        .context("the broker metadata request panicked")?
        .with_context(|| {
            format!(
                "failed to reach brokers {:?} within {} s: check --brokers and that the broker is running",
                settings.brokers,
                METADATA_TIMEOUT.as_secs()
            )
        })?;
    Ok(producer)
}

/// Awaits the oldest outstanding delivery report and records it.
async fn reap_oldest(
    outstanding: &mut VecDeque<OutstandingDelivery>,
    tally: &mut DeliveryTally,
    on_progress: &mut impl FnMut(ReplayProgress),
) {
    let Some(oldest) = outstanding.pop_front() else {
        return;
    };
    tally.record(oldest.line_number, oldest.delivery.await);
    on_progress(tally.progress());
}

/// Sleeps until `due_at`, recording delivery reports as they arrive meanwhile so progress stays
/// current on slow replays, where the outstanding window never fills.
async fn wait_until_reaping(
    due_at: Instant,
    outstanding: &mut VecDeque<OutstandingDelivery>,
    tally: &mut DeliveryTally,
    on_progress: &mut impl FnMut(ReplayProgress),
) {
    let due_at = tokio::time::Instant::from_std(due_at);
    loop {
        let Some(oldest) = outstanding.front_mut() else {
            tokio::time::sleep_until(due_at).await;
            return;
        };
        let outcome = tokio::select! {
            biased;
            outcome = &mut oldest.delivery => outcome,
            () = tokio::time::sleep_until(due_at) => return,
        };
        let line_number = oldest.line_number;
        outstanding.pop_front();
        tally.record(line_number, outcome);
        on_progress(tally.progress());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    #[test]
    fn blank_lines_carry_no_message_and_line_ends_are_stripped() {
        assert_eq!(message_value(b""), None);
        assert_eq!(message_value(b"  \t\r"), None);
        assert_eq!(message_value(b"{\"text\":\"a\"}\r"), Some(&b"{\"text\":\"a\"}"[..]));
        assert_eq!(message_value(b"not json"), Some(&b"not json"[..]));
    }

    #[test]
    fn keys_come_from_strings_numbers_and_booleans() {
        assert_eq!(message_key(br#"{"id":"n-1","text":"x"}"#, "id"), Ok(b"n-1".to_vec()));
        assert_eq!(message_key(br#"{"id":42}"#, "id"), Ok(b"42".to_vec()));
        assert_eq!(message_key(br#"{"id":true}"#, "id"), Ok(b"true".to_vec()));
    }

    #[test]
    fn unreadable_keys_say_why() {
        assert!(message_key(b"{not json", "id").unwrap_err().contains("not valid JSON"));
        assert!(message_key(b"[1,2]", "id").unwrap_err().contains("not an object"));
        assert!(message_key(br#"{"text":"x"}"#, "id").unwrap_err().contains("no field \"id\""));
        assert!(message_key(br#"{"id":null}"#, "id").unwrap_err().contains("null"));
    }

    #[test]
    fn counts_non_blank_lines_of_plain_and_gzip_archives() {
        let directory = tempfile::tempdir().expect("temporary directory");
        let content = b"{\"text\":\"a\"}\n\n   \n{\"text\":\"b\"}\r\nplain line";
        let plain_path = directory.path().join("archive.jsonl");
        std::fs::write(&plain_path, content).expect("archive is written");
        let gzip_path = directory.path().join("archive.jsonl.gz");
        let mut encoder =
            flate2::write::GzEncoder::new(File::create(&gzip_path).expect("file"), flate2::Compression::fast());
        encoder.write_all(content).expect("archive is compressed");
        encoder.finish().expect("archive is finished");
        assert_eq!(count_messages(&plain_path).expect("plain archive is read"), 3);
        assert_eq!(count_messages(&gzip_path).expect("gzip archive is read"), 3);
    }

    #[test]
    fn missing_archive_error_names_the_path() {
        let error = count_messages(Path::new("/nonexistent/archive.jsonl")).expect_err("missing file fails");
        assert!(format!("{error:#}").contains("/nonexistent/archive.jsonl"), "{error:#}");
    }
}
