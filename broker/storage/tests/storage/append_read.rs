//! Appends, reads and their concurrency.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use quiver_proto::batch::{self, BatchError, BatchHeader};
use quiver_storage::{LogConfig, PartitionLog, StorageError};

use crate::common::{batch_of, batches, read_all, small_config};

#[test]
fn records_round_trip_across_many_rolled_segments() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let mut expected = Vec::new();
    for i in 0..200usize {
        let count = 1 + i % 5;
        let out = log
            .append(&batch_of(&format!("b{i}"), count, 40, i as i64), 0)
            .unwrap();
        assert_eq!(out.base_offset, expected.len() as i64);
        assert_eq!(out.records as usize, count);
        for j in 0..count {
            expected.push(format!("b{i}-{j}"));
        }
        assert_eq!(out.last_offset, expected.len() as i64 - 1);
    }
    assert!(log.segment_count() > 10, "{} segments", log.segment_count());
    assert_eq!(log.log_end_offset(), expected.len() as i64);
    let records = read_all(&log);
    assert_eq!(records.len(), expected.len());
    for (i, (record, want)) in records.iter().zip(&expected).enumerate() {
        assert_eq!(record.offset, i as i64);
        let value = record.value.as_deref().unwrap();
        assert!(value.starts_with(want.as_bytes()), "offset {i}");
    }
}

/// One request of hundreds of batches: more pieces than one vectored write may carry,
/// each batch stamped with its own base offset, the bytes after it unchanged.
#[test]
fn a_request_of_many_batches_is_stamped_and_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_bytes: 64 * 1024 * 1024,
        ..small_config()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    log.append(&batch_of("first", 3, 0, 0), 0).unwrap();
    let mut request = Vec::new();
    for i in 0..700usize {
        request.extend_from_slice(&batch_of(&format!("m{i}"), 1 + i % 2, 0, i as i64));
    }
    let out = log.append(&request, 0).unwrap();
    let total: i64 = (0..700).map(|i| 1 + i % 2).sum();
    assert_eq!((out.base_offset, out.last_offset), (3, 2 + total));
    assert_eq!(
        log.size_bytes(),
        (batch_of("first", 3, 0, 0).len() + request.len()) as u64
    );
    let records = read_all(&log);
    assert_eq!(records.len() as i64, 3 + total);
    let mut offset = 3;
    for i in 0..700usize {
        for j in 0..(1 + i % 2) {
            let r = &records[offset as usize];
            assert_eq!(r.offset, offset);
            assert_eq!(r.value.as_deref(), Some(format!("m{i}-{j}").as_bytes()));
            offset += 1;
        }
    }
}

#[test]
fn a_read_in_the_middle_of_a_batch_starts_with_that_batch() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    for i in 0..30 {
        log.append(&batch_of(&format!("b{i}"), 10, 20, 0), 0)
            .unwrap();
    }
    for offset in [0i64, 5, 9, 10, 15, 155, 299] {
        let read = log.read(offset, 1).unwrap();
        let got = batches(&read.bytes);
        assert_eq!(got.len(), 1, "at least one whole batch even past max_bytes");
        let header = BatchHeader::parse(&got[0]).unwrap();
        assert_eq!(header.base_offset, offset / 10 * 10);
        assert_eq!(read.next_offset, header.last_offset() + 1);
        assert_eq!(read.high_watermark, 300);
    }
    // A larger budget returns several whole batches and never a partial one.
    let read = log.read(5, 1000).unwrap();
    let total: usize = batches(&read.bytes).iter().map(Bytes::len).sum();
    assert_eq!(total, read.bytes.len());
    assert!(read.bytes.len() <= 1000 && batches(&read.bytes).len() > 1);

    let end = log.read(300, 1000).unwrap();
    assert!(end.bytes.is_empty());
    assert_eq!(end.next_offset, 300);
    assert!(matches!(
        log.read(301, 1000),
        Err(StorageError::OffsetOutOfRange {
            offset: 301,
            log_start: 0,
            log_end: 300
        })
    ));
    assert!(matches!(
        log.read(-1, 1000),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
}

#[test]
fn corrupt_or_oversized_input_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        max_batch_bytes: 1000,
        ..small_config()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    let good = batch_of("g", 3, 10, 0);
    let mut bad = good.to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let mut request = good.to_vec();
    request.extend_from_slice(&bad);
    assert!(matches!(
        log.append(&request, 0),
        Err(StorageError::CorruptBatch {
            index_in_request: 1,
            source: BatchError::CrcMismatch { .. }
        })
    ));
    let truncated = &good[..good.len() - 5];
    assert!(matches!(
        log.append(truncated, 0),
        Err(StorageError::CorruptBatch {
            index_in_request: 0,
            source: BatchError::Truncated { .. }
        })
    ));
    assert!(matches!(
        log.append(&batch_of("big", 20, 100, 0), 0),
        Err(StorageError::BatchTooLarge { max: 1000, .. })
    ));
    assert!(log.append(&[], 0).is_err());
    assert_eq!(log.log_end_offset(), 0);
    assert_eq!(log.size_bytes(), 0);

    // Two good batches in one request get consecutive offsets.
    let mut two = good.to_vec();
    two.extend_from_slice(&good);
    let out = log.append(&two, 0).unwrap();
    assert_eq!((out.base_offset, out.last_offset, out.records), (0, 5, 6));
    let read = log.read(0, 10_000).unwrap();
    let got = batches(&read.bytes);
    assert_eq!(BatchHeader::parse(&got[1]).unwrap().base_offset, 3);
}

#[test]
fn readers_never_see_a_partial_batch_while_a_writer_appends() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(PartitionLog::open(dir.path(), small_config()).unwrap());
    const BATCHES: usize = 600;
    let done = Arc::new(AtomicBool::new(false));
    let writer = {
        let log = Arc::clone(&log);
        let done = Arc::clone(&done);
        std::thread::spawn(move || {
            for i in 0..BATCHES {
                log.append(&batch_of(&format!("w{i}"), 1 + i % 3, 30 + i % 50, 0), 0)
                    .unwrap();
            }
            done.store(true, Ordering::SeqCst);
        })
    };
    let readers: Vec<_> = (0..2)
        .map(|r| {
            let log = Arc::clone(&log);
            let done = Arc::clone(&done);
            std::thread::spawn(move || {
                let mut offset = 0i64;
                let mut seen = 0usize;
                loop {
                    let finished = done.load(Ordering::SeqCst);
                    let read = log.read(offset, 300 + r * 200).unwrap();
                    for b in batches(&read.bytes) {
                        let header = batch::validate(&b).unwrap();
                        assert_eq!(header.base_offset, offset, "offsets are contiguous");
                        offset = header.last_offset() + 1;
                        seen += 1;
                    }
                    assert_eq!(offset, read.next_offset);
                    if read.bytes.is_empty() {
                        std::thread::yield_now();
                    }
                    if finished && offset == log.high_watermark() {
                        return seen;
                    }
                }
            })
        })
        .collect();
    writer.join().unwrap();
    for reader in readers {
        assert_eq!(reader.join().unwrap(), BATCHES);
    }
}

#[test]
fn offset_for_timestamp_finds_the_first_record_at_or_after() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    // Batch i holds records with timestamps 1000*i + 0..10, offsets 10*i + 0..10.
    for i in 0..40 {
        log.append(&batch_of("t", 10, 30, 1000 * i), 0).unwrap();
    }
    assert!(log.segment_count() > 3);
    assert_eq!(log.offset_for_timestamp(-5).unwrap(), Some((0, 0)));
    assert_eq!(log.offset_for_timestamp(5000).unwrap(), Some((50, 5000)));
    assert_eq!(log.offset_for_timestamp(5003).unwrap(), Some((53, 5003)));
    // Between batches: the next batch's first record.
    assert_eq!(log.offset_for_timestamp(5050).unwrap(), Some((60, 6000)));
    assert_eq!(
        log.offset_for_timestamp(39_009).unwrap(),
        Some((399, 39_009))
    );
    assert_eq!(log.offset_for_timestamp(39_010).unwrap(), None);
}

#[test]
fn a_config_change_applies_to_the_next_append() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    for _ in 0..5 {
        log.append(&batch_of("c", 5, 100, 0), 0).unwrap();
    }
    assert_eq!(log.segment_count(), 1);
    log.set_config(LogConfig {
        segment_bytes: 100,
        ..LogConfig::default()
    });
    log.append(&batch_of("c", 5, 100, 0), 0).unwrap();
    assert_eq!(log.segment_count(), 2);
    assert_eq!(log.config().segment_bytes, 100);
}

#[test]
fn truncate_to_drops_the_tail_and_appends_continue_there() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    for i in 0..50 {
        log.append(&batch_of(&format!("t{i}"), 4, 40, 0), 0)
            .unwrap();
    }
    let segments = log.segment_count();
    // Offset 101 sits inside the batch 100..=103, which goes whole.
    log.truncate_to(101).unwrap();
    assert_eq!(log.log_end_offset(), 100);
    assert_eq!(log.high_watermark(), 100);
    assert!(log.segment_count() < segments);
    assert_eq!(read_all(&log).len(), 100);
    let out = log.append(&batch_of("after", 2, 40, 0), 0).unwrap();
    assert_eq!(out.base_offset, 100);
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let records = read_all(&log);
    assert_eq!(records.len(), 102);
    assert!(
        records[100]
            .value
            .as_deref()
            .unwrap()
            .starts_with(b"after-0")
    );
    assert!(log.truncate_to(-1).is_err());
}
