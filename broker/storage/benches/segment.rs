//! Append and sequential read throughput of a partition log: 1 KiB records in ~1 MiB
//! batches, `FlushPolicy::Os`, so the numbers are the storage code's, not the disk's.

use bytes::Bytes;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use quiver_proto::batch::{BatchBuilder, Compression, ProducerIdentity};
use quiver_storage::{FlushPolicy, LogConfig, PartitionLog};

const RECORD: usize = 1024;
const RECORDS_PER_BATCH: usize = 1000;

fn megabyte_batch() -> Bytes {
    let value = vec![0x5au8; RECORD];
    let mut builder = BatchBuilder::with_capacity(RECORD * RECORDS_PER_BATCH + 64 * 1024);
    for i in 0..RECORDS_PER_BATCH {
        let key = format!("key-{i}");
        builder.push(1_700_000_000_000, Some(key.as_bytes()), Some(&value), &[]);
    }
    builder.build(Compression::None, ProducerIdentity::NONE)
}

fn config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 << 20,
        flush: FlushPolicy::Os,
        retention_ms: None,
        ..LogConfig::default()
    }
}

fn append(c: &mut Criterion) {
    let batch = megabyte_batch();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), config()).expect("open");
    let mut group = c.benchmark_group("append");
    group.throughput(Throughput::Bytes(batch.len() as u64));
    group.sample_size(20);
    group.bench_function("1MiB_batch_os_flush", |b| {
        b.iter(|| {
            // Bound the disk the benchmark uses; one cut per 512 appends.
            if log.size_bytes() > 512 << 20 {
                log.truncate_to(0).expect("truncate");
            }
            log.append(&batch, 0).expect("append")
        })
    });
    group.finish();
}

fn sequential_read(c: &mut Criterion) {
    let batch = megabyte_batch();
    let dir = tempfile::tempdir().expect("tempdir");
    let log = PartitionLog::open(dir.path(), config()).expect("open");
    for _ in 0..256 {
        log.append(&batch, 0).expect("append");
    }
    let end = log.log_end_offset();
    let mut group = c.benchmark_group("read");
    group.sample_size(20);
    group.throughput(Throughput::Bytes(batch.len() as u64));
    let mut offset = 0i64;
    group.bench_function("sequential_1MiB", |b| {
        b.iter(|| {
            if offset >= end {
                offset = 0;
            }
            let read = log.read(offset, 1 << 20).expect("read");
            offset = read.next_offset;
            read.bytes.len()
        })
    });
    group.finish();
}

criterion_group!(benches, append, sequential_read);
criterion_main!(benches);
