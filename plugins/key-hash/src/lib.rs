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
            Some(key) => to_positive(murmur2(key)) % partition_count,
            None => self.batches % partition_count,
        })
    }
}

quiver_plugin::export_partitioner!(KeyHash);

/// Kafka's `Utils.murmur2`: MurmurHash2, 32-bit, seed 0x9747b28c, little-endian blocks.
fn murmur2(data: &[u8]) -> i32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h: u32 = 0x9747_b28c ^ data.len() as u32;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes([block[0], block[1], block[2], block[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Kafka's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows).
fn to_positive(n: i32) -> u32 {
    (n & 0x7fff_ffff) as u32
}
