//! Kafka in and out: the only module that sees rdkafka types.

pub mod consumer;
pub mod embedded;
pub mod producer;
pub mod replay;
pub mod settings;
pub mod topics;
