//! Kafka's default partitioner as a Quiver plugin.
//!
//! A keyed record goes to `toPositive(murmur2(key)) % partition_count`, exactly as
//! Kafka's Java producer computes it, so records keep their partition when producers
//! move between Kafka clients and Quiver.
//!
//! Keyless records are *sticky*, like Kafka's producer since KIP-480: all keyless
//! records of one batch go to one partition, and the next batch moves to the next
//! partition (round robin over batches, per instance). This keeps batches large instead
//! of scattering every keyless record.

use quiver_plugin::{Config, Error, Partitioner, Parts, Record};

struct KeyHash {
    /// Batches seen by this instance; keyless records of batch `n` go to `n % count`.
    batches: u32,
}

impl Partitioner for KeyHash {
    const PARTS: Parts = Parts::KEYS;

    fn new(_config: &Config) -> Result<Self, Error> {
        Ok(KeyHash { batches: 0 })
    }

    fn partition(&mut self, record: &Record<'_>, partition_count: u32) -> Result<u32, Error> {
        if partition_count == 0 {
            return Err(Error::Failed("the topic has no partitions".into()));
        }
        // The helper calls records in batch order, so index 0 starts a new batch.
        if record.index() == 0 {
            self.batches = self.batches.wrapping_add(1);
        }
        Ok(match record.key() {
            Some(key) => quiver_plugin::key_partition(key, partition_count),
            None => self.batches % partition_count,
        })
    }
}

quiver_plugin::export_partitioner!(KeyHash);
