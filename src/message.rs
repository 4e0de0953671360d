//! The message as it passes the stages: consumed ([`InputMessage`]), decoded and numbered on its
//! way through the model ([`PendingMessage`]), and named by its position once it is done
//! ([`MessagePosition`]). Every stage uses these, so they belong to none of them.

use std::time::Instant;

use crate::model::worker::HasText;
use crate::pipeline::decode::DecodedMessage;

/// A consumed message, owned and free of Kafka client types; the ingest module builds it from each message.
#[derive(Debug, Clone)]
pub struct InputMessage {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    /// `None` for a tombstone (a record with a null value).
    pub payload: Option<Vec<u8>>,
    /// The record's Kafka timestamp (create or log-append time), milliseconds since the Unix epoch, when it has one.
    pub kafka_timestamp_ms: Option<i64>,
    /// When the consumer received it, for end-to-end latency.
    pub received_at: Instant,
}

/// A decoded message on its way through the model.
pub struct PendingMessage {
    pub message: InputMessage,
    pub decoded: DecodedMessage,
    /// Its place among the messages handed to the batcher (0, 1, 2...): emit puts the batches that
    /// workers finish out of order back in this order (`crate::pipeline::reorder`).
    pub sequence: u64,
}

impl HasText for PendingMessage {
    fn text(&self) -> &str {
        &self.decoded.text
    }

    fn declared_language(&self) -> Option<&str> {
        self.decoded.lang.as_deref()
    }
}

/// Where a consumed message sits in its topic: what a completion names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessagePosition {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
}

impl MessagePosition {
    pub fn of(message: &InputMessage) -> MessagePosition {
        MessagePosition { topic: message.topic.clone(), partition: message.partition, offset: message.offset }
    }
}
