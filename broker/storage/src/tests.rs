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
