//! Leader epochs: stamped by leader appends, kept by follower appends, cached and
//! checkpointed, rebuilt from the log when the checkpoint is missing, torn or wrong, and
//! kept consistent by truncation from either end.

use std::path::Path;

use quiver_proto::batch::{self, BatchHeader};
use quiver_storage::{EpochEntry, LogConfig, PartitionLog, ReadBound, StorageError};

use crate::common::{batch_of, batches, idempotent, small_config};

pub const EPOCH_CHECKPOINT: &str = "leader-epoch-checkpoint";

/// Every stored batch header, read to the log end.
pub fn headers(log: &PartitionLog) -> Vec<BatchHeader> {
    let read = log
        .read_with(log.log_start_offset(), 1 << 30, ReadBound::LogEnd)
        .unwrap();
    batches(&read.bytes)
        .iter()
        .map(|b| batch::validate_stored(b).unwrap())
        .collect()
}

pub fn entries(pairs: &[(i32, i64)]) -> Vec<EpochEntry> {
    pairs
        .iter()
        .map(|&(epoch, start_offset)| EpochEntry {
            epoch,
            start_offset,
        })
        .collect()
}

/// Appends 4 batches of 3 records in each of epochs 0, 1 and 3 (offsets 0..12, 12..24,
/// 24..36), over several segments.
pub fn three_epochs(dir: &Path, config: LogConfig) -> PartitionLog {
    let log = PartitionLog::open(dir, config).unwrap();
    for epoch in [0, 1, 3] {
        log.set_leader_epoch(epoch).unwrap();
        for i in 0..4 {
            log.append(&batch_of(&format!("e{epoch}-{i}"), 3, 100, 0), 0)
                .unwrap();
        }
    }
    assert!(
        log.segment_count() > 2,
        "{} segments, {} bytes",
        log.segment_count(),
        log.size_bytes()
    );
    log
}

fn assert_three_epochs(log: &PartitionLog) {
    assert_eq!(log.leader_epochs(), entries(&[(0, 0), (1, 12), (3, 24)]));
    assert_eq!(log.latest_epoch(), Some(3));
    assert_eq!(log.epoch_end_offset(0), Some((0, 12)));
    assert_eq!(log.epoch_end_offset(1), Some((1, 24)));
    assert_eq!(
        log.epoch_end_offset(2),
        Some((1, 24)),
        "epoch 2 never wrote"
    );
    assert_eq!(
        log.epoch_end_offset(3),
        Some((3, 36)),
        "the latest ends at the log end"
    );
    assert_eq!(log.epoch_end_offset(4), None);
    let stamped: Vec<(i64, i32)> = headers(log)
        .iter()
        .map(|h| (h.base_offset, h.partition_leader_epoch))
        .collect();
    let expected: Vec<(i64, i32)> = (0..12)
        .map(|i| (i * 3, [0, 1, 3][i as usize / 4]))
        .collect();
    assert_eq!(stamped, expected);
}

#[test]
fn a_leader_append_stamps_its_epoch_outside_the_crc() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.leader_epoch(), 0);
    assert_eq!(log.latest_epoch(), None);
    let sent = batch_of("a", 2, 10, 0);
    assert_eq!(
        BatchHeader::parse(&sent).unwrap().partition_leader_epoch,
        -1
    );
    log.append(&sent, 0).unwrap();
    log.set_leader_epoch(7).unwrap();
    log.append(&sent, 0).unwrap();
    let stored = headers(&log);
    assert_eq!(
        stored[0].partition_leader_epoch, 0,
        "a single node writes epoch 0"
    );
    assert_eq!(stored[1].partition_leader_epoch, 7);
    // The producer's CRC still holds (batches() checked it), and is the producer's.
    assert!(
        stored
            .iter()
            .all(|h| h.crc == BatchHeader::parse(&sent).unwrap().crc)
    );
    assert_eq!(log.leader_epochs(), entries(&[(0, 0), (7, 2)]));
    assert!(matches!(
        log.set_leader_epoch(6),
        Err(StorageError::StaleLeaderEpoch {
            epoch: 6,
            latest: 7
        })
    ));
}

#[test]
fn epochs_0_1_and_3_read_back_the_same_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = three_epochs(dir.path(), small_config());
    assert_three_epochs(&log);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_three_epochs(&log);
    assert_eq!(
        log.leader_epoch(),
        3,
        "a reopened log stamps its latest epoch"
    );
    assert_eq!(
        log.append(&batch_of("after", 1, 1, 0), 0)
            .unwrap()
            .base_offset,
        36
    );
    assert_eq!(log.leader_epochs().len(), 3);
}

#[test]
fn a_deleted_epoch_checkpoint_is_rebuilt_from_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    three_epochs(dir.path(), small_config()).close().unwrap();
    let checkpoint = dir.path().join(EPOCH_CHECKPOINT);
    let written = std::fs::read(&checkpoint).unwrap();
    std::fs::remove_file(&checkpoint).unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_three_epochs(&log);
    assert_eq!(
        std::fs::read(&checkpoint).unwrap(),
        written,
        "and written back"
    );
}

#[test]
fn a_torn_or_garbage_epoch_checkpoint_is_rebuilt_from_the_batches() {
    let dir = tempfile::tempdir().unwrap();
    three_epochs(dir.path(), small_config()).close().unwrap();
    let checkpoint = dir.path().join(EPOCH_CHECKPOINT);
    let written = std::fs::read(&checkpoint).unwrap();
    let damaged: Vec<Vec<u8>> = vec![
        written[..written.len() / 2].to_vec(),
        written[..written.len() - 3].to_vec(),
        b"\x00\xffnot a checkpoint at all".to_vec(),
        Vec::new(),
        String::from_utf8(written.clone())
            .unwrap()
            .replace("1 12", "1 13")
            .into_bytes(),
    ];
    for bytes in damaged {
        std::fs::write(&checkpoint, &bytes).unwrap();
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_three_epochs(&log);
        assert_eq!(std::fs::read(&checkpoint).unwrap(), written);
    }
    // A leftover of a write that died before its rename is removed.
    std::fs::write(dir.path().join("leader-epoch-checkpoint.tmp"), b"half").unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_three_epochs(&log);
    assert!(!dir.path().join("leader-epoch-checkpoint.tmp").exists());
}

#[test]
fn a_well_formed_checkpoint_that_disagrees_with_the_log_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    three_epochs(dir.path(), small_config()).close().unwrap();
    // A checkpoint of another log: epochs 0 and 1 only, placed elsewhere.
    let other = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(other.path(), small_config()).unwrap();
    log.append(&batch_of("o", 20, 1, 0), 0).unwrap();
    log.set_leader_epoch(1).unwrap();
    log.append(&batch_of("o", 20, 1, 0), 0).unwrap();
    drop(log);
    std::fs::copy(
        other.path().join(EPOCH_CHECKPOINT),
        dir.path().join(EPOCH_CHECKPOINT),
    )
    .unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_three_epochs(&log);
}

#[test]
fn an_epoch_checkpointed_before_a_crash_lost_its_batches_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let log = three_epochs(dir.path(), small_config());
    log.set_leader_epoch(5).unwrap();
    log.append(&batch_of("lost", 3, 80, 0), 0).unwrap();
    let with_epoch_5 = std::fs::read(dir.path().join(EPOCH_CHECKPOINT)).unwrap();
    log.truncate_to(36).unwrap();
    drop(log);
    // As if the checkpoint was written and the batch never reached the disk.
    std::fs::write(dir.path().join(EPOCH_CHECKPOINT), with_epoch_5).unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_three_epochs(&log);
}

#[test]
fn truncation_keeps_the_epochs_consistent_across_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let log = three_epochs(dir.path(), small_config());
    // Offset 25 is inside the first batch of epoch 3, which is dropped whole.
    log.truncate_to(25).unwrap();
    assert_eq!(log.log_end_offset(), 24);
    assert_eq!(log.leader_epochs(), entries(&[(0, 0), (1, 12)]));
    assert_eq!(log.epoch_end_offset(1), Some((1, 24)));
    log.truncate_to(15).unwrap();
    assert_eq!(log.leader_epochs(), entries(&[(0, 0), (1, 12)]));
    log.truncate_to(12).unwrap();
    assert_eq!(log.leader_epochs(), entries(&[(0, 0)]));
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 12);
    assert_eq!(log.leader_epochs(), entries(&[(0, 0)]));
    // A new leader after the truncation writes in an epoch of its own.
    log.set_leader_epoch(2).unwrap();
    log.append(&batch_of("new", 2, 1, 0), 0).unwrap();
    assert_eq!(log.leader_epochs(), entries(&[(0, 0), (2, 12)]));
}

#[test]
fn retention_clips_the_first_epoch_to_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    let config = LogConfig {
        retention_bytes: Some(1500),
        ..small_config()
    };
    let log = three_epochs(dir.path(), config.clone());
    log.tick(0).unwrap();
    let start = log.log_start_offset();
    assert!(
        start > 12,
        "epoch 0 is gone entirely, epoch 1 partly: {start}"
    );
    assert!(start < 24);
    assert_eq!(log.leader_epochs(), entries(&[(1, start), (3, 24)]));
    assert_eq!(log.epoch_end_offset(0), Some((0, start)));
    drop(log);
    let log = PartitionLog::open(dir.path(), config).unwrap();
    assert_eq!(log.leader_epochs(), entries(&[(1, start), (3, 24)]));
}

#[test]
fn emptying_the_log_restarts_it_at_an_offset_without_epochs_or_producers() {
    let dir = tempfile::tempdir().unwrap();
    let log = three_epochs(dir.path(), small_config());
    log.append(&idempotent(4, 0, 0, 2), 0).unwrap();
    log.truncate_fully_and_start_at(100).unwrap();
    assert_eq!(
        (
            log.log_start_offset(),
            log.log_end_offset(),
            log.high_watermark()
        ),
        (100, 100, 100)
    );
    assert_eq!(log.segment_count(), 1);
    assert!(log.leader_epochs().is_empty());
    assert!(log.producer_state(4).is_none());
    assert!(matches!(
        log.read(0, 100),
        Err(StorageError::OffsetOutOfRange { .. })
    ));
    assert_eq!(
        log.append(&batch_of("x", 2, 1, 0), 0).unwrap().base_offset,
        100
    );
    drop(log);
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!((log.log_start_offset(), log.log_end_offset()), (100, 102));
    assert_eq!(log.leader_epochs(), entries(&[(3, 100)]));
}
