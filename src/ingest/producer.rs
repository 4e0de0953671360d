//! The Kafka producer for enriched records, dead letters, late events and alerts.

use std::time::Duration;

use anyhow::Context;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};

pub struct KafkaSink {
    producer: FutureProducer,
}

/// librdkafka's batching delay: a few milliseconds batch records without adding noticeable
/// latency against the 20 ms micro-batch deadline.
const DEFAULT_LINGER_MS: &str = "5";
/// How long [`KafkaSink::enqueue`] waits before offering a record again to a full local queue:
/// what rdkafka's own `FutureProducer::send` waits, which the sends used before.
const QUEUE_FULL_WAIT: Duration = Duration::from_millis(100);

impl KafkaSink {
    /// `options` pass straight to librdkafka and may override the defaults, but never the
    /// delivery guarantees (acks=all and idempotence are what "nothing lost, no duplicates from
    /// retries" rests on).
    pub fn new<'a>(brokers: &str, options: impl IntoIterator<Item = (&'a str, &'a str)>) -> anyhow::Result<KafkaSink> {
        let mut client_config = ClientConfig::new();
        client_config.set("linger.ms", DEFAULT_LINGER_MS);
        for (key, value) in options {
            client_config.set(key, value);
        }
        client_config.set("bootstrap.servers", brokers).set("acks", "all").set("enable.idempotence", "true");
        let producer: FutureProducer =
            client_config.create().context("failed to create the Kafka producer (check kafka.producer_options)")?;
        Ok(KafkaSink { producer })
    }

    /// Hands one record to librdkafka now and returns a future of the broker's acknowledgement.
    /// Records handed over in order are written in that order to their partition (with
    /// idempotence, retries included): call it from one task, in input order, to keep Kafka's
    /// per-key order. Waits for queue space rather than failing when librdkafka's local queue is
    /// full: that is the backpressure that slows consumption when the output is slower than the
    /// input.
    pub async fn enqueue(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, String)],
    ) -> Result<impl std::future::Future<Output = Result<(), KafkaError>> + Send + use<>, KafkaError> {
        let mut record = FutureRecord::<[u8], [u8]>::to(topic).payload(payload);
        if let Some(key) = key {
            record = record.key(key);
        }
        if !headers.is_empty() {
            let mut owned_headers = OwnedHeaders::new_with_capacity(headers.len());
            for (name, value) in headers {
                owned_headers = owned_headers.insert(Header { key: name, value: Some(value.as_bytes()) });
            }
            record = record.headers(owned_headers);
        }
        loop {
            match self.producer.send_result(record) {
                Ok(delivery) => {
                    return Ok(async move {
                        match delivery.await {
                            Ok(Ok(_)) => Ok(()),
                            Ok(Err((error, _))) => Err(error),
                            Err(_) => Err(KafkaError::Canceled),
                        }
                    });
                }
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), returned)) => {
                    record = returned;
                    // The queue drains as the broker acknowledges.
                    tokio::time::sleep(QUEUE_FULL_WAIT).await;
                }
                Err((error, _)) => return Err(error),
            }
        }
    }

    /// Hands one keyed record to librdkafka without waiting for queue space (for callers that cannot wait, such as
    /// a timer's snapshot): a full local queue is an error, like any other. Returns the acknowledgement's future.
    pub fn enqueue_now(
        &self,
        topic: &str,
        key: &[u8],
        payload: &[u8],
    ) -> Result<impl std::future::Future<Output = Result<(), KafkaError>> + Send + use<>, KafkaError> {
        let record = FutureRecord::<[u8], [u8]>::to(topic).key(key).payload(payload);
        let delivery = self.producer.send_result(record).map_err(|(error, _)| error)?;
        Ok(async move {
            match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((error, _))) => Err(error),
                Err(_) => Err(KafkaError::Canceled),
            }
        })
    }

    /// Sends one record and waits for the broker's acknowledgement: [`KafkaSink::enqueue`], then
    /// the acknowledgement.
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, String)],
    ) -> Result<(), KafkaError> {
        self.enqueue(topic, key, payload, headers).await?.await
    }

    /// Whether the cluster answers a metadata request within `timeout` (blocking: call it from a
    /// blocking thread). The producer's client asks: the consumer belongs to its polling thread.
    pub fn broker_reachable(&self, timeout: Duration) -> bool {
        self.producer.client().fetch_metadata(None, timeout).is_ok()
    }

    /// Waits up to `timeout` for every queued record to be delivered.
    pub fn flush(&self, timeout: Duration) -> Result<(), KafkaError> {
        self.producer.flush(timeout)
    }
}
