//! Native reference implementations the plugins are checked against.

/// Kafka's `Utils.murmur2`, transcribed literally from Java's signed arithmetic: an
/// oracle written apart from `quiver-murmur2`, which the key-hash plugin and the broker
/// share, so that a slip there does not go unnoticed here.
pub fn murmur2(data: &[u8]) -> i32 {
    let length = data.len() as i32;
    let seed: i32 = 0x9747b28c_u32 as i32;
    let m: i32 = 0x5bd1e995;
    let r = 24;
    let mut h: i32 = seed ^ length;
    let length4 = length / 4;
    let b = |i: i32| (data[i as usize] as i32) & 0xff;
    for i in 0..length4 {
        let i4 = i * 4;
        let mut k: i32 = b(i4) + (b(i4 + 1) << 8) + (b(i4 + 2) << 16) + (b(i4 + 3) << 24);
        k = k.wrapping_mul(m);
        k ^= ((k as u32) >> r) as i32;
        k = k.wrapping_mul(m);
        h = h.wrapping_mul(m);
        h ^= k;
    }
    let rest = length % 4;
    if rest >= 3 {
        h ^= b((length & !3) + 2) << 16;
    }
    if rest >= 2 {
        h ^= b((length & !3) + 1) << 8;
    }
    if rest >= 1 {
        h ^= b(length & !3);
        h = h.wrapping_mul(m);
    }
    h ^= ((h as u32) >> 13) as i32;
    h = h.wrapping_mul(m);
    h ^= ((h as u32) >> 15) as i32;
    h
}

/// Kafka's default partition of a keyed record.
pub fn kafka_partition(key: &[u8], partitions: u32) -> u32 {
    ((murmur2(key) & 0x7fffffff) as u32) % partitions
}

#[test]
fn reference_matches_kafka_test_vectors_and_the_shared_hash() {
    // Values from Kafka's own murmur2 tests.
    assert_eq!(murmur2(b"21"), -973932308);
    assert_eq!(murmur2(b"foobar"), -790332482);
    assert_eq!(murmur2(b"a-little-bit-long-string"), -985981536);
    assert_eq!(murmur2(b"a-little-bit-longer-string"), -1486304829);
    assert_eq!(
        murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8"),
        -58897971
    );
    assert_eq!(murmur2(b"abc"), 479470107);
    for n in 0..1000u32 {
        let key = format!("key-{n}");
        assert_eq!(
            quiver_proto::murmur2::murmur2(key.as_bytes()) as i32,
            murmur2(key.as_bytes())
        );
    }
}
