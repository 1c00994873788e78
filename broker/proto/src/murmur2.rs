//! Kafka's default key hash and partition choice, from `quiver-murmur2` (shared with
//! Rust plugins, which cannot depend on this crate).

pub use quiver_murmur2::{key_partition, murmur2};
