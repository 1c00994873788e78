//! Property: any sequence of appends reads back identically after a reopen.

use proptest::prelude::*;
use quiver_proto::batch::{BatchBuilder, Compression, ProducerIdentity};
use quiver_storage::{LogConfig, PartitionLog};

use crate::common::{read_all, small_config};

type Batch = Vec<(Option<Vec<u8>>, Option<Vec<u8>>, i64)>;

fn arb_batch() -> impl Strategy<Value = Batch> {
    proptest::collection::vec(
        (
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..16)),
            proptest::option::of(proptest::collection::vec(any::<u8>(), 0..400)),
            0i64..1 << 40,
        ),
        1..12,
    )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    #[test]
    fn appends_survive_a_reopen(
        batches in proptest::collection::vec((arb_batch(), any::<bool>()), 1..40),
        segment_bytes in 300u64..5000,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let config = LogConfig { segment_bytes, ..small_config() };
        let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
        let mut expected = Vec::new();
        for (records, compress) in &batches {
            let mut builder = BatchBuilder::new();
            for (key, value, ts) in records {
                builder.push(*ts, key.as_deref(), value.as_deref(), &[]);
                expected.push((key.clone(), value.clone(), *ts));
            }
            let codec = if *compress { Compression::Lz4 } else { Compression::None };
            log.append(&builder.build(codec, ProducerIdentity::NONE), 0).unwrap();
        }
        drop(log);
        let log = PartitionLog::open(dir.path(), config).unwrap();
        let records = read_all(&log);
        prop_assert_eq!(records.len(), expected.len());
        prop_assert_eq!(log.log_end_offset(), expected.len() as i64);
        for (i, (record, (key, value, ts))) in records.iter().zip(&expected).enumerate() {
            prop_assert_eq!(record.offset, i as i64);
            prop_assert_eq!(record.key.as_deref(), key.as_deref());
            prop_assert_eq!(record.value.as_deref(), value.as_deref());
            prop_assert_eq!(record.timestamp, *ts);
        }
    }
}
