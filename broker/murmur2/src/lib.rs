//! Kafka's default key hash, so Quiver routes keyed records to the same partitions as
//! Kafka's Java client, librdkafka's `murmur2_random`, and every other compatible client.
//!
//! The hash is MurmurHash2 (32-bit) with seed `0x9747b28c` over little-endian 4-byte
//! blocks; the partition is `(hash & 0x7fffffff) % partition_count`.
//!
//! No dependencies and no `std`: the broker and SDK use it through `quiver-proto`, and
//! Rust plugins built for `wasm32-wasip2` through `quiver-plugin`, so that every place
//! that hashes a key agrees by construction.

#![no_std]

const SEED: u32 = 0x9747_b28c;
const M: u32 = 0x5bd1_e995;
const R: u32 = 24;

/// MurmurHash2 of `data` as Kafka computes it (Kafka's `Utils.murmur2`, whose signed
/// result is this value's bits).
pub fn murmur2(data: &[u8]) -> u32 {
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = chunks.remainder();
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
    h
}

/// The partition Kafka's default partitioner gives a record with `key`; 0 when there
/// are no partitions.
pub fn key_partition(key: &[u8], partitions: u32) -> u32 {
    if partitions == 0 {
        return 0;
    }
    (murmur2(key) & 0x7fff_ffff) % partitions
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Values from Kafka's own `UtilsTest.testMurmur2` (as signed ints there).
    #[test]
    fn matches_kafka_vectors() {
        let cases: &[(&[u8], i32)] = &[
            (b"21", -973_932_308),
            (b"foobar", -790_332_482),
            (b"a-little-bit-long-string", -985_981_536),
            (b"a-little-bit-longer-string", -1_486_304_829),
            (
                b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
                -58_897_971,
            ),
            (b"abc", 479_470_107),
        ];
        for (input, expected) in cases {
            assert_eq!(murmur2(input) as i32, *expected, "{input:?}");
        }
    }

    #[test]
    fn partitions_are_the_positive_hash_modulo_the_count() {
        // "21" hashes to -973932308: the sign bit is dropped (1173551340), not negated.
        assert_eq!(key_partition(b"21", 1_000_000_000), 173_551_340);
        assert_eq!(key_partition(b"21", 3), 1_173_551_340 % 3);
        // "abc" hashes positive: the mask changes nothing.
        assert_eq!(key_partition(b"abc", 7), 479_470_107 % 7);
        assert_eq!(key_partition(b"foobar", 0), 0);
        assert!((1..50).all(|p| key_partition(b"foobar", p) < p));
    }
}
