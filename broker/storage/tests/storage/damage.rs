//! Damage that is not a torn tail: a flipped bit in the middle of the active segment or
//! in a closed segment keeps every intact batch, reports the damaged offsets, and never
//! reuses them.

use std::path::{Path, PathBuf};

use quiver_storage::{DamagedRange, PartitionLog, StorageError};

use crate::common::{batch_of, batches, read_all, segment_files, small_config};

/// Appends `count` batches of four records each (offsets `4i..4i+4`) and returns, per
/// segment file, the byte positions of its batches.
fn write_batches(dir: &Path, count: i64) -> Vec<(PathBuf, Vec<u64>)> {
    let log = PartitionLog::open(dir, small_config()).unwrap();
    for i in 0..count {
        log.append(&batch_of(&format!("b{i}"), 4, 30, i), 0)
            .unwrap();
    }
    log.close().unwrap();
    segment_files(dir, "log")
        .into_iter()
        .map(|path| {
            let bytes = bytes::Bytes::from(std::fs::read(&path).unwrap());
            let mut at = 0u64;
            let starts = batches(&bytes)
                .iter()
                .map(|b| {
                    let start = at;
                    at += b.len() as u64;
                    start
                })
                .collect();
            (path, starts)
        })
        .collect()
}

fn flip(path: &Path, position: u64) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[position as usize] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

fn damaged(error: StorageError) -> DamagedRange {
    match error {
        StorageError::DamagedData { range, .. } => *range,
        other => panic!("expected DamagedData, got {other}"),
    }
}

#[test]
fn a_flipped_bit_mid_active_segment_keeps_the_batches_after_it() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_batches(dir.path(), 5);
    assert_eq!(files.len(), 1, "one active segment");
    let (path, starts) = &files[0];
    let len = std::fs::metadata(path).unwrap().len();
    // Inside the records of the second batch (offsets 4..8): only its CRC notices.
    flip(path, starts[1] + 70);

    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(
        log.log_end_offset(),
        20,
        "acknowledged offsets 8..20 are kept"
    );
    assert_eq!(std::fs::metadata(path).unwrap().len(), len, "nothing cut");
    let holes = log.damaged_ranges();
    assert_eq!(holes.len(), 1);
    assert_eq!((holes[0].first_offset, holes[0].next_offset), (4, 8));
    assert_eq!(
        (holes[0].position, holes[0].end_position),
        (starts[1], starts[2])
    );

    // From the start: the batch before the damage, then the error naming it.
    let first = log.read(0, 1 << 20).unwrap();
    assert_eq!(first.next_offset, 4);
    assert_eq!(batches(&first.bytes).len(), 1);
    let hole = damaged(log.read(4, 1 << 20).unwrap_err());
    assert_eq!((hole.first_offset, hole.next_offset), (4, 8));
    assert!(damaged(log.read(6, 1).unwrap_err()).contains(6));
    // Skipping to the offset the error names reads on.
    let after = log.read(hole.next_offset, 1 << 20).unwrap();
    assert_eq!(after.next_offset, 20);
    assert_eq!(batches(&after.bytes).len(), 3);

    // Offsets after the hole are never handed out again.
    let next = log.append(&batch_of("new", 2, 10, 0), 0).unwrap();
    assert_eq!(next.base_offset, 20);
    log.close().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 22);
    assert_eq!(log.damaged_ranges().len(), 1, "the hole is found again");
}

#[test]
fn a_damaged_tail_with_nothing_after_it_is_still_cut() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_batches(dir.path(), 5);
    let (path, starts) = &files[0];
    flip(path, starts[4] + 70);
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 16);
    assert!(log.damaged_ranges().is_empty());
    assert_eq!(std::fs::metadata(path).unwrap().len(), starts[4]);
    assert_eq!(read_all(&log).len(), 16);
}

#[test]
fn a_damaged_length_mid_active_segment_is_a_hole_not_a_tail() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_batches(dir.path(), 5);
    let (path, starts) = &files[0];
    // The length field (bytes 8..12): the scan loses its footing after this batch.
    flip(path, starts[2] + 10);
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 20);
    let holes = log.damaged_ranges();
    assert_eq!(holes.len(), 1);
    assert_eq!((holes[0].first_offset, holes[0].next_offset), (8, 12));
}

#[test]
fn a_damaged_header_in_a_closed_segment_does_not_stop_the_log_opening() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_batches(dir.path(), 40);
    assert!(files.len() > 2, "several segments");
    let end = 160;
    let (path, starts) = &files[0];
    assert!(starts.len() > 3);
    // The magic byte of the second batch of the first (closed) segment.
    flip(path, starts[1] + 16);

    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), end);
    let hole = damaged(log.read(4, 1 << 20).unwrap_err());
    assert_eq!((hole.first_offset, hole.next_offset), (4, 8));
    assert_eq!(batches(&log.read(0, 1 << 20).unwrap().bytes).len(), 1);
    let mut offset = hole.next_offset;
    let mut records = 0;
    while offset < log.high_watermark() {
        let read = log.read(offset, 1000).unwrap();
        records += batches(&read.bytes).len() * 4;
        offset = read.next_offset;
    }
    assert_eq!(
        records as i64,
        end - 8,
        "every batch after the hole is read"
    );
}

#[test]
fn a_damaged_last_batch_of_a_closed_segment_holds_offsets_up_to_the_next_segment() {
    let dir = tempfile::tempdir().unwrap();
    let files = write_batches(dir.path(), 40);
    let (path, starts) = &files[0];
    let last = *starts.last().unwrap();
    let first_of_last = 4 * (starts.len() as i64 - 1);
    // Its length field: no intact batch follows inside the segment.
    flip(path, last + 10);

    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 160);
    let holes = log.damaged_ranges();
    assert_eq!(holes.len(), 1);
    assert_eq!(holes[0].first_offset, first_of_last);
    assert_eq!(holes[0].next_offset, first_of_last + 4);
    // A read from the start returns the intact batches before the damage.
    let read = log.read(0, 1 << 20).unwrap();
    assert_eq!(read.next_offset, first_of_last);
    assert!(damaged(log.read(first_of_last, 100).unwrap_err()).contains(first_of_last));
    assert!(!log.read(first_of_last + 4, 100).unwrap().bytes.is_empty());
}
