//! The message path between ingest and output: decoding, micro-batching, record encoding.

pub mod batcher;
pub mod decode;
pub mod entities;
pub mod offsets;
pub mod record;
pub mod reorder;
pub mod settings;
