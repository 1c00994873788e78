//! Restart and crash recovery: torn tails, flipped bytes, lost or garbage indexes.

use std::fs::OpenOptions;

use quiver_proto::batch::BatchHeader;
use quiver_storage::PartitionLog;

use crate::common::{batch_of, batches, read_all, segment_files, small_config};

#[test]
fn close_and_open_keeps_every_record() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    for i in 0..60 {
        log.append(&batch_of(&format!("r{i}"), 3, 50, i), 0)
            .unwrap();
    }
    let before = read_all(&log);
    let segments = log.segment_count();
    log.close().unwrap();

    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.segment_count(), segments);
    assert_eq!(log.log_end_offset(), 180);
    assert_eq!(read_all(&log), before);
    assert_eq!(
        log.append(&batch_of("next", 1, 10, 0), 0)
            .unwrap()
            .base_offset,
        180
    );
}

/// Appends five batches into one segment and returns the start of the last one.
fn five_batches(dir: &std::path::Path) -> (u64, usize) {
    let log = PartitionLog::open(dir, small_config()).unwrap();
    for i in 0..5 {
        log.append(&batch_of(&format!("x{i}"), 4, 30, 0), 0)
            .unwrap();
    }
    assert_eq!(log.segment_count(), 1);
    let read = log.read(0, 1 << 20).unwrap();
    let all = batches(&read.bytes);
    let last_len = all[4].len();
    drop(log);
    (read.bytes.len() as u64 - last_len as u64, last_len)
}

fn assert_tail_batch_gone(dir: &std::path::Path, last_start: u64) {
    let log = PartitionLog::open(dir, small_config()).unwrap();
    assert_eq!(
        log.log_end_offset(),
        16,
        "the tail batch (offsets 16..20) is gone"
    );
    let records = read_all(&log);
    assert_eq!(records.len(), 16);
    assert!(records[15].value.as_deref().unwrap().starts_with(b"x3-3"));
    let log_file = &segment_files(dir, "log")[0];
    assert_eq!(std::fs::metadata(log_file).unwrap().len(), last_start);
    let out = log.append(&batch_of("again", 2, 30, 0), 0).unwrap();
    assert_eq!(out.base_offset, 16);
    assert_eq!(read_all(&log).len(), 18);
}

#[test]
fn a_torn_tail_is_cut_at_the_last_whole_batch() {
    for cut in [1u64, 7, 60] {
        let dir = tempfile::tempdir().unwrap();
        let (last_start, _) = five_batches(dir.path());
        let log_file = &segment_files(dir.path(), "log")[0];
        let len = std::fs::metadata(log_file).unwrap().len();
        let file = OpenOptions::new().write(true).open(log_file).unwrap();
        file.set_len(len - cut).unwrap();
        drop(file);
        assert_tail_batch_gone(dir.path(), last_start);
    }
}

/// Rewrites the one segment of a closed log: `edit` gets its bytes and the start and
/// length of its last batch. Returns the segment's path and its new length.
fn edit_segment(
    dir: &std::path::Path,
    last_start: u64,
    last_len: usize,
    edit: impl FnOnce(&mut Vec<u8>, usize, usize),
) -> (std::path::PathBuf, u64) {
    let log_file = segment_files(dir, "log")[0].clone();
    let mut bytes = std::fs::read(&log_file).unwrap();
    edit(&mut bytes, last_start as usize, last_len);
    std::fs::write(&log_file, &bytes).unwrap();
    (log_file, bytes.len() as u64)
}

#[test]
fn a_flipped_byte_in_the_last_batch_cuts_it() {
    let dir = tempfile::tempdir().unwrap();
    let (last_start, last_len) = five_batches(dir.path());
    edit_segment(dir.path(), last_start, last_len, |bytes, start, len| {
        bytes[start + len / 2] ^= 0x40;
    });
    assert_tail_batch_gone(dir.path(), last_start);
}

/// Compaction may leave an empty batch (see `batch::empty_like`); should its segment be
/// the last one at open, recovery must keep it, not take it for damage and cut there.
#[test]
fn an_empty_batch_in_the_active_segment_is_kept_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let (last_start, last_len) = five_batches(dir.path());
    let (log_file, new_len) =
        edit_segment(dir.path(), last_start, last_len, |bytes, start, len| {
            let header = BatchHeader::parse(&bytes[start..start + len]).unwrap();
            bytes.truncate(start);
            bytes.extend_from_slice(&quiver_proto::batch::empty_like(&header));
        });

    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_end_offset(), 20, "offsets 16..20 stay taken");
    assert_eq!(read_all(&log).len(), 16);
    assert_eq!(std::fs::metadata(&log_file).unwrap().len(), new_len);
    let next = log.append(&batch_of("after", 1, 10, 0), 0).unwrap();
    assert_eq!(next.base_offset, 20);
}

#[test]
fn a_log_whose_only_segment_is_garbage_opens_empty_at_its_base() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("00000000000000000042.log"), vec![0xAB; 500]).unwrap();
    std::fs::write(dir.path().join("not-a-segment.log"), b"hello").unwrap();
    std::fs::write(dir.path().join("00000000000000000007.bogus"), b"hello").unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert_eq!(log.log_start_offset(), 42);
    assert_eq!(log.log_end_offset(), 42);
    assert!(log.read(42, 100).unwrap().bytes.is_empty());
    assert_eq!(
        log.append(&batch_of("a", 1, 1, 0), 0).unwrap().base_offset,
        42
    );
    // Files with other names are left alone.
    assert!(dir.path().join("not-a-segment.log").exists());
}

#[test]
fn missing_and_garbage_indexes_are_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    for i in 0..80 {
        log.append(&batch_of(&format!("i{i}"), 3, 40, 100 * i), 0)
            .unwrap();
    }
    let expected = read_all(&log);
    log.close().unwrap();
    let indexes = segment_files(dir.path(), "index");
    let times = segment_files(dir.path(), "timeindex");
    assert!(indexes.len() > 4);
    let good_index = std::fs::read(&indexes[1]).unwrap();
    assert!(!good_index.is_empty(), "closed segments have index entries");
    std::fs::remove_file(&indexes[0]).unwrap();
    std::fs::write(&indexes[1], b"garbage!garbage").unwrap();
    // Well-formed but wrong: entries that point inside batches.
    std::fs::write(&indexes[2], [0, 0, 0, 1, 0, 0, 0, 5]).unwrap();
    std::fs::remove_file(&times[3]).unwrap();
    std::fs::write(&times[2], vec![0xff; 24]).unwrap();

    let log = PartitionLog::open(dir.path(), small_config()).unwrap();
    assert!(indexes[0].exists());
    assert_eq!(std::fs::read(&indexes[1]).unwrap(), good_index);
    assert_eq!(std::fs::read(&indexes[2]).unwrap().len() % 8, 0);
    assert!(times[3].exists());
    assert_eq!(read_all(&log), expected);
    for offset in 0..log.log_end_offset() {
        let read = log.read(offset, 1).unwrap();
        let header = BatchHeader::parse(&read.bytes).unwrap();
        assert!(header.base_offset <= offset && offset <= header.last_offset());
    }
    assert_eq!(log.offset_for_timestamp(4001).unwrap(), Some((121, 4001)));
}
