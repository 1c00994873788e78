//! Retention by age and size, and rolling by age.

use quiver_storage::{CleanupPolicy, LogConfig, PartitionLog};

use crate::common::{batch_of, read_all, segment_files, small_config};

const HOUR: i64 = 3_600_000;

#[test]
fn retention_by_age_deletes_only_whole_closed_segments() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_ms: Some(10 * HOUR),
        ..small_config()
    };
    let log = PartitionLog::open(dir.path(), config.clone()).unwrap();
    // Old data first, recent data after: batch i is stamped i hours.
    for i in 0..48 {
        log.append(&batch_of(&format!("a{i}"), 3, 60, i * HOUR), 0)
            .unwrap();
    }
    let segments = log.segment_count();
    assert!(segments > 5);
    let outcome = log.tick(40 * HOUR).unwrap();
    assert!(outcome.segments_deleted > 0);
    assert!(!outcome.rolled);
    assert_eq!(log.segment_count(), segments - outcome.segments_deleted);
    assert_eq!(segment_files(dir.path(), "log").len(), log.segment_count());
    let start = log.log_start_offset();
    assert_eq!(outcome.log_start_offset, start);
    assert!(start > 0 && start % 3 == 0, "starts at a segment boundary");
    let records = read_all(&log);
    assert_eq!(records[0].offset, start);
    // Everything newer than the cutoff survives; only whole segments were dropped.
    let recent = records.iter().filter(|r| r.timestamp >= 30 * HOUR).count();
    assert_eq!(recent, 18 * 3);
    assert!(records.iter().all(|r| r.timestamp >= 20 * HOUR));
    assert!(log.read(0, 100).is_err());

    // Far in the future every closed segment is expired; the active one is never deleted.
    let outcome = log.tick(1000 * HOUR).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert!(outcome.segments_deleted > 0);
    assert_eq!(log.log_end_offset(), 144);
    assert!(!read_all(&log).is_empty());

    // Deletion survives a restart.
    drop(log);
    let log = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(log.segment_count(), 1);
    assert_eq!(log.log_end_offset(), 144);
}

#[test]
fn retention_by_size_deletes_oldest_closed_segments_first() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(6000),
        ..small_config()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    for i in 0..60 {
        log.append(&batch_of(&format!("s{i}"), 3, 60, 0), 0)
            .unwrap();
    }
    let before = log.size_bytes();
    assert!(before > 12_000);
    let outcome = log.tick(0).unwrap();
    assert!(outcome.segments_deleted > 0);
    assert_eq!(log.size_bytes(), before - outcome.bytes_deleted);
    assert!(log.size_bytes() >= 6000, "never goes below the limit");
    assert!(
        log.size_bytes() < 6000 + 2048,
        "at most one segment above it"
    );
    let records = read_all(&log);
    assert_eq!(records.first().unwrap().offset, log.log_start_offset());
    assert_eq!(records.last().unwrap().offset, 179);

    // Compact-only logs are never deleted by retention.
    let mut compact_only = log.config();
    compact_only.cleanup = CleanupPolicy::Compact;
    compact_only.retention_bytes = Some(0);
    log.set_config(compact_only);
    assert_eq!(log.tick(0).unwrap().segments_deleted, 0);
}

#[test]
fn the_active_segment_rolls_by_age_on_tick() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        segment_ms: Some(HOUR as u64),
        ..small_config()
    };
    let log = PartitionLog::open(dir.path(), config).unwrap();
    assert!(
        !log.tick(10 * HOUR).unwrap().rolled,
        "an empty segment never rolls"
    );
    log.append(&batch_of("old", 1, 10, 0), 0).unwrap();
    assert!(!log.tick(HOUR).unwrap().rolled);
    assert!(log.tick(HOUR + 1).unwrap().rolled);
    assert_eq!(log.segment_count(), 2);
    let out = log.append(&batch_of("new", 1, 10, 0), 2 * HOUR).unwrap();
    assert_eq!(out.base_offset, 1);
    assert_eq!(segment_files(dir.path(), "log").len(), 2);
}
