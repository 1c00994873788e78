//! Tests that need the crate's internal fault injection.

use std::sync::atomic::Ordering;
use std::time::Duration;

use quiver_proto::batch::{BatchBuilder, Compression, ProducerIdentity};

use crate::{FlushPolicy, LogConfig, PartitionLog, StorageError};

fn one_batch(value: &[u8]) -> bytes::Bytes {
    let mut builder = BatchBuilder::new();
    builder.push(0, None, Some(value), &[]);
    builder.build(Compression::None, ProducerIdentity::NONE)
}

#[test]
fn a_failed_write_poisons_the_log_until_it_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&one_batch(b"kept"), 0).unwrap();
    log.fail_next_write.store(true, Ordering::SeqCst);
    let first = log.append(&one_batch(b"lost"), 0).unwrap_err();
    assert!(
        matches!(first, StorageError::Io { op: "write", .. }),
        "{first}"
    );
    for _ in 0..2 {
        match log.append(&one_batch(b"refused"), 0) {
            Err(StorageError::Poisoned { cause, .. }) => assert!(cause.contains("injected")),
            other => panic!("expected Poisoned, got {other:?}"),
        }
    }
    assert!(matches!(log.flush(), Err(StorageError::Poisoned { .. })));
    // Reads carry on with what was committed.
    assert_eq!(log.log_end_offset(), 1);
    let read = log.read(0, 1 << 20).unwrap();
    assert_eq!(read.next_offset, 1);
    drop(log);

    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(log.log_end_offset(), 1);
    assert_eq!(log.append(&one_batch(b"after"), 0).unwrap().base_offset, 1);
}

#[test]
fn interval_flushes_happen_on_tick_when_due_and_data_is_unflushed() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush: FlushPolicy::Interval(Duration::from_millis(1000)),
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    assert!(!log.tick(0).unwrap().flushed, "nothing to flush");
    log.append(&one_batch(b"a"), 0).unwrap();
    assert!(log.tick(500).unwrap().flushed);
    log.append(&one_batch(b"b"), 600).unwrap();
    assert!(!log.tick(1400).unwrap().flushed, "interval not yet over");
    assert!(log.tick(1500).unwrap().flushed);
    assert!(!log.tick(9000).unwrap().flushed, "already flushed");
}

#[test]
fn always_leaves_nothing_unflushed() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush: FlushPolicy::Always,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    log.append(&one_batch(b"a"), 0).unwrap();
    assert!(!log.writer.lock().unflushed);
}

#[test]
fn sync_appended_fsyncs_only_what_no_sync_covered_and_leaves_the_interval_flush_due() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush: FlushPolicy::Interval(Duration::from_millis(1000)),
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    log.sync_appended().unwrap();
    assert_eq!(log.synced_seq.load(Ordering::SeqCst), 0, "nothing to sync");
    log.append(&one_batch(b"a"), 0).unwrap();
    log.append(&one_batch(b"b"), 0).unwrap();
    log.sync_appended().unwrap();
    assert_eq!(
        log.synced_seq.load(Ordering::SeqCst),
        2,
        "one fsync for both"
    );
    // Concurrent callers: each returns with its appends synced.
    std::thread::scope(|s| {
        for i in 0..4u8 {
            let log = &log;
            s.spawn(move || {
                log.append(&one_batch(&[i]), 0).unwrap();
                log.sync_appended().unwrap();
                let seq = log.synced_seq.load(Ordering::SeqCst);
                assert!(seq >= 3, "{seq}");
            });
        }
    });
    assert_eq!(log.synced_seq.load(Ordering::SeqCst), 6);
    // The interval flush still owes the indexes and the checkpoint.
    assert!(log.tick(1500).unwrap().flushed);
}

#[test]
fn the_log_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<PartitionLog>();
}

#[test]
fn a_retired_log_flushes_then_changes_nothing_while_a_new_handle_takes_over() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        flush: FlushPolicy::Interval(Duration::from_secs(3600)),
        retention_ms: Some(0),
        ..LogConfig::default()
    };
    let old = PartitionLog::open(dir.path(), config.clone()).unwrap();
    old.append(&one_batch(b"a"), 0).unwrap();
    old.retire().unwrap();
    assert!(
        !old.writer.lock().unflushed,
        "retire flushes what was appended"
    );
    assert!(old.poisoned().is_some_and(|c| c.contains("retired")));
    match old.append(&one_batch(b"refused"), 0) {
        Err(StorageError::Poisoned { cause, .. }) => assert!(cause.contains("retired"), "{cause}"),
        other => panic!("expected Poisoned, got {other:?}"),
    }
    // Ticks on the old handle must not roll or delete what the new one owns.
    assert_eq!(
        old.tick(i64::MAX).unwrap(),
        crate::MaintenanceOutcome::default()
    );

    let new = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(new.log_end_offset(), 1);
    assert!(new.poisoned().is_none());
    assert_eq!(new.append(&one_batch(b"b"), 0).unwrap().base_offset, 1);
    // The old handle still reads what it had.
    assert_eq!(old.read(0, 1 << 20).unwrap().next_offset, 1);
}

#[test]
fn a_poisoned_log_retires_without_flushing_and_reopens_clean() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    log.append(&one_batch(b"kept"), 0).unwrap();
    log.fail_next_write();
    assert!(log.append(&one_batch(b"lost"), 0).is_err());
    assert!(log.poisoned().is_some_and(|c| c.contains("injected")));
    log.retire().unwrap();
    let reopened = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
    assert_eq!(
        reopened
            .append(&one_batch(b"after"), 0)
            .unwrap()
            .base_offset,
        1
    );
}

/// The segment's released position after `log`'s last fsync.
fn released(log: &PartitionLog) -> u64 {
    let active = log.snapshot().last().cloned().unwrap();
    active.released_below.load(Ordering::SeqCst)
}

#[test]
fn fsynced_data_leaves_the_page_cache_behind_the_tail_and_stays_readable() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cache_tail_bytes: Some(1 << 20),
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    let value = vec![7u8; 64 << 10];
    let append = |n: usize| {
        for _ in 0..n {
            log.append(&one_batch(&value), 0).unwrap();
        }
    };
    // 1.5 MiB synced: under tail + step, nothing is released.
    append(24);
    log.sync_appended().unwrap();
    assert_eq!(released(&log), 0);
    // 4 MiB written; what is not fsynced is never released.
    append(40);
    assert_eq!(released(&log), 0);
    log.sync_appended().unwrap();
    let written = log.snapshot().last().unwrap().len();
    let after_sync = released(&log);
    assert_eq!(
        after_sync,
        (written - (1 << 20)) & !4095,
        "whole pages up to the tail"
    );
    // A small fsync later releases nothing more until a whole step is due.
    append(1);
    log.sync_appended().unwrap();
    assert_eq!(released(&log), after_sync);
    // Released data is read back from the disk, whole.
    let read = log.read(0, 8 << 20).unwrap();
    assert_eq!(read.next_offset, 65);
    assert_eq!(log.log_end_offset(), 65);
}

/// A log on `cache_tail_bytes` and `flush`, with `batches` batches of 64 KiB appended.
fn filled(
    tail: Option<u64>,
    flush: FlushPolicy,
    batches: usize,
) -> (tempfile::TempDir, PartitionLog) {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        cache_tail_bytes: tail,
        flush,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    let value = vec![1u8; 64 << 10];
    for _ in 0..batches {
        log.append(&one_batch(&value), 0).unwrap();
    }
    (dir, log)
}

#[test]
fn without_a_tail_every_page_stays_with_the_os() {
    let (_dir, log) = filled(None, FlushPolicy::Always, 64);
    log.flush().unwrap();
    assert_eq!(released(&log), 0);
}

#[test]
fn flush_always_releases_as_it_appends() {
    let (_dir, log) = filled(Some(0), FlushPolicy::Always, 40);
    assert!(released(&log) >= 1 << 20, "{}", released(&log));
    assert_eq!(log.read(0, 8 << 20).unwrap().next_offset, 40);
}
