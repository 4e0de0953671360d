//! Zero-setup demo: a generated stream of financial headlines with a negative spike.

pub mod generator;
