//! Idempotent producers: duplicates, gaps, fencing, and state rebuilt at open.

use quiver_storage::{PartitionLog, StorageError};

use crate::common::{batch_of, idempotent, read_all, small_config};

#[test]
fn a_retried_batch_returns_its_stored_offsets_and_appends_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    log.append(&batch_of("plain", 2, 10, 0), 0).unwrap();
    let mut stored = Vec::new();
    let mut seq = 0;
    // One batch more than the broker remembers, of varied sizes.
    let remembered = quiver_proto::batch::MAX_IDEMPOTENT_IN_FLIGHT;
    for n in [3usize, 1, 4, 2, 5, 2]
        .into_iter()
        .cycle()
        .take(remembered + 1)
    {
        let out = log.append(&idempotent(7, 0, seq, n), 0).unwrap();
        assert!(!out.duplicate);
        stored.push((seq, n, out));
        seq += n as i32;
    }
    let end = log.log_end_offset();
    let size = log.size_bytes();
    // The last `remembered` batches are recognised; the one before is too old to tell.
    for (seq, n, original) in &stored[1..] {
        let again = log.append(&idempotent(7, 0, *seq, *n), 5).unwrap();
        assert!(again.duplicate);
        assert_eq!(again.base_offset, original.base_offset);
        assert_eq!(again.last_offset, original.last_offset);
    }
    let (seq0, n0, _) = stored[0];
    assert!(matches!(
        log.append(&idempotent(7, 0, seq0, n0), 0),
        Err(StorageError::OutOfOrderSequence { producer_id: 7, expected, got: 0 }) if expected == seq
    ));
    assert_eq!(log.log_end_offset(), end);
    assert_eq!(log.size_bytes(), size);
    let state = log.producer_state(7).unwrap();
    assert_eq!(state.batches.len(), remembered);
    assert_eq!(state.batches.last().unwrap().last_sequence, seq - 1);
}

#[test]
fn gaps_and_stale_epochs_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert!(matches!(
        log.append(&idempotent(3, 0, 5, 1), 0),
        Err(StorageError::OutOfOrderSequence {
            expected: 0,
            got: 5,
            ..
        })
    ));
    log.append(&idempotent(3, 1, 0, 2), 0).unwrap();
    assert!(matches!(
        log.append(&idempotent(3, 1, 3, 1), 0),
        Err(StorageError::OutOfOrderSequence {
            expected: 2,
            got: 3,
            ..
        })
    ));
    assert!(matches!(
        log.append(&idempotent(3, 0, 2, 1), 0),
        Err(StorageError::InvalidProducerEpoch {
            producer_id: 3,
            current: 1,
            got: 0
        })
    ));
    // A bumped epoch must restart at sequence 0.
    assert!(matches!(
        log.append(&idempotent(3, 2, 2, 1), 0),
        Err(StorageError::OutOfOrderSequence {
            expected: 0,
            got: 2,
            ..
        })
    ));
    log.append(&idempotent(3, 2, 0, 1), 0).unwrap();
    assert_eq!(log.producer_state(3).unwrap().epoch, 2);
    assert_eq!(log.log_end_offset(), 3);
    assert_eq!(read_all(&log).len(), 3);
}

#[test]
fn producer_state_is_rebuilt_when_the_log_is_reopened() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    let mut seq = 0;
    let mut last = None;
    for i in 0..30 {
        log.append(&batch_of(&format!("n{i}"), 2, 30, 0), 0)
            .unwrap();
        last = Some(log.append(&idempotent(11, 4, seq, 3), 0).unwrap());
        seq += 3;
    }
    assert!(log.segment_count() > 2);
    let state = log.producer_state(11).unwrap();
    log.close().unwrap();

    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.producer_state(11).unwrap(), state);
    let again = log.append(&idempotent(11, 4, seq - 3, 3), 0).unwrap();
    assert!(again.duplicate);
    assert_eq!(again.base_offset, last.unwrap().base_offset);
    assert!(log.append(&idempotent(11, 4, seq + 1, 1), 0).is_err());
    assert!(!log.append(&idempotent(11, 4, seq, 1), 0).unwrap().duplicate);
}
