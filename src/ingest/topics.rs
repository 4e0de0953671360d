//! Which topics the brokers have: one metadata request, for the start-up check that every
//! configured topic exists (`KafkaConfig::check_topics_exist`); and a compacted topic read like a table
//! (the aggregators' state topic).

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};

use crate::config::KafkaConfig;

/// The names of the topics the brokers list, asked with the consumer's options (so the same
/// security settings apply). Blocking: call it from a blocking thread. A consumer never asks the
/// brokers to auto-create topics (`allow.auto.create.topics` is off for consumers), and a request
/// for every topic names none, so asking creates nothing.
pub fn existing_topics(kafka: &KafkaConfig, timeout: Duration) -> anyhow::Result<BTreeSet<String>> {
    let mut client_config = ClientConfig::new();
    for (key, value) in kafka.consumer_options.iter() {
        client_config.set(key, value);
    }
    client_config.set("bootstrap.servers", &kafka.brokers);
    let consumer: BaseConsumer =
        client_config.create().context("failed to create a Kafka client (check kafka.consumer_options)")?;
    let metadata = consumer.fetch_metadata(None, timeout).with_context(|| {
        format!("the brokers {} did not list their topics within {} s", kafka.brokers, timeout.as_secs())
    })?;
    Ok(metadata.topics().iter().filter(|topic| topic.error().is_none()).map(|topic| topic.name().to_owned()).collect())
}

/// How many partitions each of `topics` has (blocking). A topic the brokers do not describe is an error.
pub fn partition_counts(
    kafka: &KafkaConfig,
    topics: &[String],
    timeout: Duration,
) -> anyhow::Result<Vec<(String, i32)>> {
    let mut client_config = ClientConfig::new();
    for (key, value) in kafka.consumer_options.iter() {
        client_config.set(key, value);
    }
    client_config.set("bootstrap.servers", &kafka.brokers);
    let consumer: BaseConsumer =
        client_config.create().context("failed to create a Kafka client (check kafka.consumer_options)")?;
    topics
        .iter()
        .map(|topic| {
            let metadata = consumer
                .fetch_metadata(Some(topic), timeout)
                .with_context(|| format!("the brokers {} did not describe {topic} in time", kafka.brokers))?;
            let count = metadata
                .topics()
                .iter()
                .find(|described| described.name() == topic)
                .map_or(0, |described| described.partitions().len() as i32);
            anyhow::ensure!(count > 0, "no topic {topic} on {}", kafka.brokers);
            Ok((topic.clone(), count))
        })
        .collect()
}

/// The latest record of every key of `topic` (a compacted topic read like a table): every partition is read from
/// its start up to the high watermark it had when the read began; a key whose latest record is a tombstone is
/// left out. Uses the consumer's options but no group. Blocking: call it from a blocking thread.
pub fn read_latest_by_key(
    kafka: &KafkaConfig,
    topic: &str,
    timeout: Duration,
) -> anyhow::Result<std::collections::BTreeMap<Vec<u8>, Vec<u8>>> {
    use rdkafka::Offset;
    use rdkafka::message::Message;
    use rdkafka::topic_partition_list::TopicPartitionList;

    let deadline = std::time::Instant::now() + timeout;
    let mut client_config = ClientConfig::new();
    for (key, value) in kafka.consumer_options.iter() {
        client_config.set(key, value);
    }
    client_config
        .set("bootstrap.servers", &kafka.brokers)
        // Never joined or committed to (partitions are assigned by hand), but librdkafka wants a group for its
        // consumer.
        .set("group.id", format!("{}-table-reader", kafka.group_id))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    let consumer: BaseConsumer =
        client_config.create().context("failed to create a Kafka client (check kafka.consumer_options)")?;
    let metadata = consumer
        .fetch_metadata(Some(topic), timeout)
        .with_context(|| format!("the brokers {} did not describe {topic} in time", kafka.brokers))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|described| described.name() == topic && described.error().is_none())
        .flat_map(|described| described.partitions().iter().map(|partition| partition.id()))
        .collect();
    anyhow::ensure!(!partitions.is_empty(), "no topic {topic} on {}: create it (compacted)", kafka.brokers);
    // Partition -> the offset to read up to (the high watermark when the read began).
    let mut remaining = std::collections::BTreeMap::new();
    let mut assignment = TopicPartitionList::new();
    for partition in partitions {
        let (low, high) = consumer
            .fetch_watermarks(topic, partition, deadline.saturating_duration_since(std::time::Instant::now()))
            .with_context(|| format!("cannot read the offsets of {topic}/{partition}"))?;
        if high > low {
            remaining.insert(partition, high);
            assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
        }
    }
    let mut latest = std::collections::BTreeMap::new();
    if remaining.is_empty() {
        return Ok(latest);
    }
    consumer.assign(&assignment)?;
    while !remaining.is_empty() {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        anyhow::ensure!(!left.is_zero(), "reading {topic} took over {} s", timeout.as_secs());
        match consumer.poll(left.min(Duration::from_millis(200))) {
            None => continue,
            Some(Err(error)) => return Err(error).with_context(|| format!("reading {topic} failed")),
            Some(Ok(message)) => {
                if let Some(key) = message.key() {
                    match message.payload() {
                        Some(payload) => latest.insert(key.to_vec(), payload.to_vec()),
                        None => latest.remove(key),
                    };
                }
                if remaining.get(&message.partition()).is_some_and(|&high| message.offset() + 1 >= high) {
                    remaining.remove(&message.partition());
                }
            }
        }
    }
    Ok(latest)
}
