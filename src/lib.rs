//! sentmon: financial public-opinion monitoring (topic + sentiment tagging, spike alerts).
//!
//! Layout follows the data flow (docs/ARCHITECTURE.md): `text` (pure normalisation and
//! tokenisation), `dataset` (labelled archives and the train/validation/test split),
//! `evaluation` (pure metrics), `model` (the only module that sees tch).

pub mod cli;
pub mod commands;
pub mod dataset;
pub mod evaluation;
pub mod model;
pub mod text;
