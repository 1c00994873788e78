//! Choosing a partition on the client: Kafka's default key hash, and the sticky
//! partition for records without a key.
//!
//! Keyed records go to `murmur2(key) & 0x7fffffff % partitions`, bit for bit what Kafka's
//! Java client computes (the hash is `quiver-murmur2`'s, shared with the broker and Rust
//! plugins, and tested against Kafka's vectors there), so a topic written by Kafka
//! clients and by Quiver clients keeps each key in one partition. Keyless records stick to one partition until the batch they
//! fill closes, then move on: batches fill up instead of spreading thin (Kafka's sticky
//! partitioner, KIP-480).

/// Kafka's murmur2 (seed `0x9747b28c`), shared with the broker so that both route keys
/// identically.
pub use quiver_proto::murmur2::murmur2;

/// The partition Kafka's default partitioner gives a key: `(murmur2 & 0x7fffffff) % n`.
pub fn partition_for_key(key: &[u8], partitions: u32) -> u32 {
    quiver_proto::murmur2::key_partition(key, partitions)
}

/// The sticky partition of each topic for keyless records.
#[derive(Debug)]
pub struct StickyPartitioner {
    current: foldhash::HashMap<String, u32>,
    rng: u64,
}

impl StickyPartitioner {
    /// A partitioner whose random choices start from `seed` (tests fix it; the producer
    /// seeds it from the clock).
    pub fn with_seed(seed: u64) -> Self {
        StickyPartitioner {
            current: foldhash::HashMap::default(),
            // xorshift must not start at zero.
            rng: seed | 1,
        }
    }

    /// The partition a keyless record of `topic` goes to now.
    pub fn partition(&mut self, topic: &str, partitions: u32) -> u32 {
        if let Some(p) = self.current.get(topic).copied().filter(|p| *p < partitions) {
            return p;
        }
        let p = self.random_below(partitions);
        self.current.insert(topic.to_string(), p);
        p
    }

    /// Told that a batch of `topic` for `partition` closed: if it was the sticky one,
    /// pick a different partition for the next keyless records.
    pub fn on_batch_closed(&mut self, topic: &str, partition: u32, partitions: u32) {
        if self.current.get(topic) != Some(&partition) {
            return;
        }
        let next = if partitions <= 1 {
            0
        } else {
            // Uniform over the other partitions.
            let r = self.random_below(partitions - 1);
            if r >= partition { r + 1 } else { r }
        };
        self.current.insert(topic.to_string(), next);
    }

    fn random_below(&mut self, n: u32) -> u32 {
        let mut x = self.rng;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.rng = x;
        ((x >> 32) % u64::from(n.max(1))) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sticky_partition_holds_until_its_batch_closes() {
        let mut s = StickyPartitioner::with_seed(42);
        let first = s.partition("t", 8);
        for _ in 0..100 {
            assert_eq!(s.partition("t", 8), first);
        }
        // Closing another partition's batch changes nothing.
        s.on_batch_closed("t", (first + 1) % 8, 8);
        assert_eq!(s.partition("t", 8), first);
        s.on_batch_closed("t", first, 8);
        let second = s.partition("t", 8);
        assert_ne!(second, first);
        assert!(second < 8);
    }

    #[test]
    fn sticky_partition_visits_every_partition_over_time() {
        let mut s = StickyPartitioner::with_seed(7);
        let mut seen = [false; 4];
        for _ in 0..200 {
            let p = s.partition("t", 4);
            seen[p as usize] = true;
            s.on_batch_closed("t", p, 4);
        }
        assert!(seen.iter().all(|s| *s), "{seen:?}");
    }

    #[test]
    fn topics_are_independent_and_one_partition_is_stable() {
        let mut s = StickyPartitioner::with_seed(1);
        let a = s.partition("a", 16);
        s.on_batch_closed("b", a, 16);
        assert_eq!(s.partition("a", 16), a);
        assert_eq!(s.partition("single", 1), 0);
        s.on_batch_closed("single", 0, 1);
        assert_eq!(s.partition("single", 1), 0);
    }
}
