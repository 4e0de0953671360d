//! Which topics the brokers have: one metadata request, for the start-up check that every
//! configured topic exists (`KafkaConfig::check_topics_exist`).

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
