//! sentmon: financial public-opinion monitoring (topic + sentiment tagging, spike alerts).
//!
//! Layout follows the data flow (docs/ARCHITECTURE.md): `text` (pure normalisation and
//! tokenisation), `dataset` (labelled archives and the train/validation/test split),
//! `evaluation` (pure metrics), `model` (the only module that sees tch).

pub mod alert;
pub mod app;
pub mod archive;
pub mod backtest;
pub mod cli;
pub mod commands;
pub mod config;
pub mod dataset;
pub mod demo;
pub mod entity;
pub mod evaluation;
pub mod faults;
pub mod fleet;
pub mod http;
pub mod ingest;
pub mod locks;
pub mod logging;
pub mod message;
pub mod metrics;
pub mod model;
pub mod pipeline;
pub mod readiness;
pub mod registry;
pub mod reload;
pub mod schedule;
mod stages;
pub mod supervise;
pub mod text;
pub mod window;
