//! A log as one replica among several: follower appends keep the leader's offsets and
//! epochs, the high watermark bounds what consumers read but not what followers read,
//! and it is checkpointed and recovered conservatively.

use std::fs::OpenOptions;
use std::path::Path;

use quiver_storage::{LogConfig, PartitionLog, ReadBound, StorageError};

use crate::common::{batch_of, idempotent, read_all, segment_files, small_config};
use crate::leader_epochs::{entries, headers, three_epochs};

const HW_CHECKPOINT: &str = "high-watermark-checkpoint";

fn replicated() -> LogConfig {
    LogConfig {
        sole_replica: false,
        ..small_config()
    }
}

/// Copies everything `leader` holds past the follower's log end, as a fetch would.
fn catch_up(leader: &PartitionLog, follower: &PartitionLog) {
    while follower.log_end_offset() < leader.log_end_offset() {
        let read = leader
            .read_with(follower.log_end_offset(), 700, ReadBound::LogEnd)
            .unwrap();
        follower.append_replicated(&read.bytes, 0).unwrap();
    }
}

#[test]
fn a_follower_keeps_the_leaders_offsets_epochs_and_producers() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = three_epochs(a.path(), small_config());
    leader.append(&idempotent(9, 1, 0, 3), 0).unwrap();
    leader.append(&idempotent(9, 1, 3, 2), 0).unwrap();
    let follower = PartitionLog::open(b.path(), replicated()).unwrap();
    catch_up(&leader, &follower);

    let everything = |log: &PartitionLog| log.read_with(0, 1 << 30, ReadBound::LogEnd).unwrap();
    assert_eq!(everything(&follower).bytes, everything(&leader).bytes);
    assert_eq!(follower.leader_epochs(), leader.leader_epochs());
    assert_eq!(follower.producer_state(9), leader.producer_state(9));
    assert_eq!(follower.log_end_offset(), 41);
    assert_eq!(
        follower.high_watermark(),
        0,
        "a follower's mark waits for its leader"
    );
    // The follower's producer state is live: the producer's next batch is accepted
    // after the follower takes over, and a retry of the last one is recognised.
    follower.set_leader_epoch(4).unwrap();
    assert!(
        follower
            .append(&idempotent(9, 1, 3, 2), 0)
            .unwrap()
            .duplicate
    );
    assert_eq!(
        follower
            .append(&idempotent(9, 1, 5, 1), 0)
            .unwrap()
            .base_offset,
        41
    );
    assert_eq!(follower.epoch_end_offset(3), Some((3, 41)));
    drop(follower);

    let follower = PartitionLog::open(b.path(), replicated()).unwrap();
    let mut expected = leader.leader_epochs();
    expected.extend(entries(&[(4, 41)]));
    assert_eq!(follower.leader_epochs(), expected);
    assert_eq!(
        headers(&follower)[..headers(&leader).len()],
        headers(&leader)[..]
    );
}

#[test]
fn a_follower_append_refuses_a_gap_an_overlap_or_a_stale_epoch() {
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let leader = three_epochs(a.path(), small_config());
    let follower = PartitionLog::open(b.path(), replicated()).unwrap();
    let at = |offset| {
        leader
            .read_with(offset, 1, ReadBound::LogEnd)
            .unwrap()
            .bytes
    };
    assert!(matches!(
        follower.append_replicated(&at(3), 0),
        Err(StorageError::UnexpectedReplicaOffset {
            expected: 0,
            got: 3
        })
    ));
    follower.append_replicated(&at(0), 0).unwrap();
    assert!(matches!(
        follower.append_replicated(&at(0), 0),
        Err(StorageError::UnexpectedReplicaOffset {
            expected: 3,
            got: 0
        })
    ));
    // Two batches that do not follow each other, in one request.
    let mut gapped = at(3).to_vec();
    gapped.extend_from_slice(&at(9));
    assert!(matches!(
        follower.append_replicated(&gapped, 0),
        Err(StorageError::UnexpectedReplicaOffset {
            expected: 6,
            got: 9
        })
    ));
    // A flipped byte in the records fails the CRC.
    let mut corrupt = at(3).to_vec();
    let last = corrupt.len() - 1;
    corrupt[last] ^= 0xff;
    assert!(matches!(
        follower.append_replicated(&corrupt, 0),
        Err(StorageError::CorruptBatch { .. })
    ));
    assert_eq!(
        follower.log_end_offset(),
        3,
        "nothing of a refused request is written"
    );

    // Epoch 3 arrives, then a batch of epoch 1 would go back in time.
    let catch = leader.read_with(3, 1 << 20, ReadBound::LogEnd).unwrap();
    follower.append_replicated(&catch.bytes, 0).unwrap();
    let other = tempfile::tempdir().unwrap();
    let old = PartitionLog::open(other.path(), small_config()).unwrap();
    old.truncate_fully_and_start_at(36).unwrap();
    old.set_leader_epoch(1).unwrap();
    old.append(&batch_of("old", 1, 1, 0), 0).unwrap();
    let stale = old.read_with(36, 100, ReadBound::LogEnd).unwrap();
    assert!(matches!(
        follower.append_replicated(&stale.bytes, 0),
        Err(StorageError::StaleLeaderEpoch {
            epoch: 1,
            latest: 3
        })
    ));
}

#[test]
fn the_high_watermark_bounds_consumer_reads_but_not_follower_reads() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), replicated()).unwrap();
    for i in 0..4 {
        log.append(&batch_of(&format!("b{i}"), 3, 10, 0), 0)
            .unwrap();
    }
    assert_eq!((log.high_watermark(), log.log_end_offset()), (0, 12));
    let consumer = log.read(0, 1 << 20).unwrap();
    assert!(consumer.bytes.is_empty());
    assert_eq!((consumer.next_offset, consumer.high_watermark), (0, 0));
    let follower = log.read_with(0, 1 << 20, ReadBound::LogEnd).unwrap();
    assert_eq!((follower.next_offset, follower.high_watermark), (12, 0));

    assert_eq!(log.advance_high_watermark(6), 6);
    assert_eq!(log.read(0, 1 << 20).unwrap().next_offset, 6);
    assert_eq!(read_all(&log).len(), 6);
    assert_eq!(
        log.read(7, 1 << 20).unwrap().next_offset,
        7,
        "nothing above the mark"
    );
    assert_eq!(log.advance_high_watermark(3), 6, "the mark never goes down");
    assert_eq!(log.advance_high_watermark(99), 12, "nor past the log end");
    assert_eq!(read_all(&log).len(), 12);

    // A sole replica's mark follows every append, as before replication.
    let sole = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(sole.path(), small_config()).unwrap();
    log.append(&batch_of("s", 3, 10, 0), 0).unwrap();
    assert_eq!(log.high_watermark(), 3);
    log.set_config(replicated());
    log.append(&batch_of("s", 3, 10, 0), 0).unwrap();
    assert_eq!(log.high_watermark(), 3);
    log.set_config(small_config());
    assert_eq!(
        log.high_watermark(),
        6,
        "a sole replica commits what it holds"
    );
}

#[test]
fn the_high_watermark_is_checkpointed_on_flush_and_tick_and_recovered() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), replicated()).unwrap();
    for i in 0..4 {
        log.append(&batch_of(&format!("b{i}"), 3, 10, 0), 0)
            .unwrap();
    }
    log.advance_high_watermark(6);
    log.flush().unwrap();
    log.advance_high_watermark(9);
    drop(log); // a crash: no close
    let log = PartitionLog::open(dir.path(), replicated()).unwrap();
    assert_eq!(log.high_watermark(), 6, "the mark of the last flush");
    log.advance_high_watermark(9);
    log.tick(0).unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), replicated()).unwrap();
    assert_eq!(log.high_watermark(), 9, "tick checkpointed the mark");
    log.advance_high_watermark(12);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), replicated()).unwrap();
    assert_eq!(log.high_watermark(), 12);
}

fn replicated_log_at_hw_12(dir: &Path) {
    let log = PartitionLog::open(dir, replicated()).unwrap();
    for i in 0..4 {
        log.append(&batch_of(&format!("b{i}"), 3, 10, 0), 0)
            .unwrap();
    }
    log.advance_high_watermark(12);
    log.close().unwrap();
}

#[test]
fn a_torn_or_garbage_hw_checkpoint_falls_back_to_the_log_start() {
    let dir = tempfile::tempdir().unwrap();
    replicated_log_at_hw_12(dir.path());
    let path = dir.path().join(HW_CHECKPOINT);
    let good = std::fs::read(&path).unwrap();
    for damaged in [
        good[..good.len() / 2].to_vec(),
        b"garbage\n".to_vec(),
        String::from_utf8(good.clone())
            .unwrap()
            .replace("\n12\n", "\n11\n")
            .into_bytes(),
    ] {
        std::fs::write(&path, damaged).unwrap();
        let log = PartitionLog::open(dir.path(), replicated()).unwrap();
        assert_eq!(log.high_watermark(), 0);
        assert_eq!(log.log_end_offset(), 12, "the log itself is untouched");
        // A sole replica does not need the checkpoint at all.
        drop(log);
        let log = PartitionLog::open(dir.path(), small_config()).unwrap();
        assert_eq!(log.high_watermark(), 12);
    }
    std::fs::remove_file(&path).unwrap();
    let log = PartitionLog::open(dir.path(), replicated()).unwrap();
    assert_eq!(log.high_watermark(), 0, "missing: the log start");
}

#[test]
fn a_hw_checkpoint_above_a_torn_log_end_is_clamped_to_it() {
    let dir = tempfile::tempdir().unwrap();
    replicated_log_at_hw_12(dir.path());
    let log_file = &segment_files(dir.path(), "log")[0];
    let len = std::fs::metadata(log_file).unwrap().len();
    let file = OpenOptions::new().write(true).open(log_file).unwrap();
    file.set_len(len - 5).unwrap();
    drop(file);
    let log = PartitionLog::open(dir.path(), replicated()).unwrap();
    assert_eq!(log.log_end_offset(), 9);
    assert_eq!(log.high_watermark(), 9);
}

#[test]
fn truncation_brings_the_high_watermark_down_and_it_stays_down_after_a_reopen() {
    let dir = tempfile::tempdir().unwrap();
    replicated_log_at_hw_12(dir.path());
    let log = PartitionLog::open(dir.path(), replicated()).unwrap();
    log.truncate_to(7).unwrap();
    assert_eq!((log.log_end_offset(), log.high_watermark()), (6, 6));
    // New appends past the old mark are not committed by it, even after a crash.
    log.append(&batch_of("new", 6, 10, 0), 0).unwrap();
    drop(log);
    let log = PartitionLog::open(dir.path(), replicated()).unwrap();
    assert_eq!((log.log_end_offset(), log.high_watermark()), (12, 6));
    assert_eq!(log.leader_epochs(), entries(&[(0, 0)]));
}
