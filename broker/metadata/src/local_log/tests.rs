//! Crash-style tests: write a log, tear or damage its files as a crash or a bad disk
//! would, and reopen.

use std::collections::BTreeMap;
use std::path::Path;

use super::*;
use crate::error::MetadataError;
use crate::ids::TopicId;
use crate::record::{AllocateProducerIds, CreateTopic, RegisterBroker};

fn broker() -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBroker {
        broker_id: 1,
        listener: "127.0.0.1:9092".into(),
        incarnation: 3,
        peer_listener: None,
    })
}

fn ids(first: i64) -> MetadataRecord {
    MetadataRecord::AllocateProducerIds(AllocateProducerIds {
        broker_id: 1,
        first,
        count: 10,
    })
}

fn create(name: &str, id: u128) -> MetadataRecord {
    MetadataRecord::CreateTopic(CreateTopic {
        name: name.into(),
        topic_id: TopicId(id),
        partitions: 1,
        replication_factor: 1,
        configs: BTreeMap::from([("retention.ms".to_string(), "100".to_string())]),
        internal: false,
        assignment: vec![vec![1]],
    })
}

/// A broker, then `n - 1` producer-id blocks: records 1 to `n`.
fn write(dir: &Path, n: u64, options: LocalLogOptions) -> MetadataImage {
    let (mut log, _) = LocalMetadataLog::open_with(dir, options).expect("open");
    let mut last = log.append(&broker()).expect("broker").image;
    for i in 1..n {
        last = log.append(&ids(i as i64 * 10)).expect("append").image;
    }
    last
}

fn rarely() -> LocalLogOptions {
    LocalLogOptions {
        snapshot_every: 1_000_000,
    }
}

fn reopen(dir: &Path) -> (LocalMetadataLog, MetadataImage) {
    LocalMetadataLog::open_with(dir, rarely()).expect("reopen")
}

fn first_log(dir: &Path) -> std::path::PathBuf {
    log_path(dir, 1)
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn appends_are_replayed_on_open() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = write(dir.path(), 4, rarely());
    let (mut log, image) = reopen(dir.path());
    assert_eq!(image, written);
    assert_eq!(image.last_applied(), 4);
    assert_eq!(image.next_producer_id(), 40);
    let appended = log.append(&create("orders", 1)).expect("append");
    assert_eq!(appended.index, 5);
    assert!(matches!(appended.applied, Applied::TopicCreated { .. }));
    assert_eq!(log.image(), &appended.image);
    drop(log);
    assert_eq!(reopen(dir.path()).1, appended.image);
}

#[test]
fn a_rejected_record_is_not_written() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = write(dir.path(), 2, rarely());
    let len = std::fs::metadata(first_log(dir.path()))
        .expect("stat")
        .len();
    let (mut log, _) = reopen(dir.path());
    let err = log.append(&ids(0)).expect_err("ids reused");
    assert!(matches!(
        err,
        LocalLogError::Rejected(MetadataError::ProducerIdsReused { .. })
    ));
    assert_eq!(log.image(), &written);
    assert_eq!(
        std::fs::metadata(first_log(dir.path()))
            .expect("stat")
            .len(),
        len
    );
    // The next good record takes the index the rejected one did not.
    assert_eq!(log.append(&ids(20)).expect("append").index, 3);
}

#[test]
fn a_torn_tail_is_cut_wherever_the_crash_hit() {
    let dir = tempfile::tempdir().expect("tempdir");
    let three = write(dir.path(), 3, rarely());
    let path = first_log(dir.path());
    let good = std::fs::metadata(&path).expect("stat").len();
    let (mut log, _) = reopen(dir.path());
    log.append(&ids(100)).expect("fourth");
    drop(log);
    let whole = std::fs::read(&path).expect("read");
    for cut in good + 1..whole.len() as u64 {
        std::fs::write(&path, &whole[..cut as usize]).expect("tear");
        let (mut log, image) = reopen(dir.path());
        assert_eq!(image, three, "cut at {cut}");
        assert_eq!(std::fs::metadata(&path).expect("stat").len(), good);
        assert_eq!(log.append(&ids(100)).expect("append again").index, 4);
        drop(log);
        assert_eq!(reopen(dir.path()).1.last_applied(), 4);
    }
}

#[test]
fn zeros_after_the_last_record_are_cut() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = write(dir.path(), 2, rarely());
    let path = first_log(dir.path());
    let good = std::fs::metadata(&path).expect("stat").len();
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.extend([0u8; 4096]);
    std::fs::write(&path, bytes).expect("extend");
    assert_eq!(reopen(dir.path()).1, written);
    assert_eq!(std::fs::metadata(&path).expect("stat").len(), good);
}

#[test]
fn damage_in_the_middle_is_an_error_naming_the_offset() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), 3, rarely());
    let path = first_log(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    let first_frame = frame::scan(&bytes, LOG_HEADER).expect("scan").frames[1].offset;
    bytes[first_frame + frame::FRAME_HEADER + 2] ^= 0x20;
    std::fs::write(&path, &bytes).expect("damage");
    let err = LocalMetadataLog::open_with(dir.path(), rarely()).expect_err("damaged");
    match &err {
        LocalLogError::Corrupt {
            offset, path: p, ..
        } => {
            assert_eq!(*offset, first_frame as u64);
            assert_eq!(p, &path);
        }
        other => panic!("expected Corrupt, got {other:?}"),
    }
    assert!(
        err.to_string().contains(&format!("byte {first_frame}")),
        "{err}"
    );
    // The file is left as it was for an operator to look at.
    assert_eq!(std::fs::read(&path).expect("read"), bytes);
}

#[test]
fn a_bad_header_is_damage() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), 2, rarely());
    let path = first_log(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    bytes[0] = b'X';
    std::fs::write(&path, &bytes).expect("damage");
    assert!(matches!(
        LocalMetadataLog::open_with(dir.path(), rarely()),
        Err(LocalLogError::Corrupt { offset: 0, .. })
    ));
}

#[test]
fn snapshots_bound_the_log_and_reopen_restores_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let options = LocalLogOptions { snapshot_every: 3 };
    let written = write(dir.path(), 10, options);
    // Snapshots were taken at 3, 6 and 9 (before appending 4, 7 and 10); only the one
    // at 9 is kept, with the log holding record 10 after it.
    assert_eq!(
        names(dir.path()),
        vec![format!("{:020}.snapshot", 9), format!("{:020}.log", 10)]
    );
    let (log, image) = LocalMetadataLog::open_with(dir.path(), options).expect("reopen");
    assert_eq!(image, written);
    assert_eq!(log.snapshot_index(), 9);
}

#[test]
fn an_explicit_snapshot_starts_an_empty_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = write(dir.path(), 5, rarely());
    let (mut log, _) = reopen(dir.path());
    assert_eq!(log.snapshot().expect("snapshot"), 5);
    // A second one with nothing new writes nothing.
    assert_eq!(log.snapshot().expect("again"), 5);
    drop(log);
    assert_eq!(
        names(dir.path()),
        vec![format!("{:020}.snapshot", 5), format!("{:020}.log", 6)]
    );
    let (mut log, image) = reopen(dir.path());
    assert_eq!(image, written);
    assert_eq!(log.append(&ids(100)).expect("append").index, 6);
}

#[test]
fn a_torn_snapshot_temp_file_is_ignored_and_removed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = write(dir.path(), 3, rarely());
    let tmp = dir.path().join(format!("{:020}.snapshot.tmp", 3));
    std::fs::write(&tmp, b"QVMETSNP\x01\x00").expect("torn temp");
    let (_, image) = reopen(dir.path());
    assert_eq!(image, written);
    assert!(!tmp.exists());
}

#[test]
fn a_crash_after_the_snapshot_before_the_new_log_file_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = write(dir.path(), 5, rarely());
    snapshot_file::write(&snapshot_path(dir.path(), 5), &written).expect("snapshot");
    let (mut log, image) = reopen(dir.path());
    assert_eq!(image, written);
    let appended = log.append(&create("orders", 1)).expect("append");
    drop(log);
    assert_eq!(reopen(dir.path()).1, appended.image);
}

#[test]
fn a_crash_before_covered_files_are_removed_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let written = write(dir.path(), 5, rarely());
    snapshot_file::write(&snapshot_path(dir.path(), 2), &{
        let mut early = MetadataImage::empty();
        early.apply(1, &broker()).expect("1");
        early.apply(2, &ids(10)).expect("2");
        early
    })
    .expect("old snapshot");
    snapshot_file::write(&snapshot_path(dir.path(), 5), &written).expect("snapshot");
    // The new log file was being started: only part of its header reached the disk.
    std::fs::write(log_path(dir.path(), 6), &frame::header()[..5]).expect("torn header");
    let (mut log, image) = reopen(dir.path());
    assert_eq!(image, written);
    assert_eq!(
        names(dir.path()),
        vec![format!("{:020}.snapshot", 5), format!("{:020}.log", 6)]
    );
    assert_eq!(log.append(&ids(100)).expect("append").index, 6);
    drop(log);
    assert_eq!(reopen(dir.path()).1.last_applied(), 6);
}

#[test]
fn a_damaged_snapshot_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), 3, rarely());
    let (mut log, _) = reopen(dir.path());
    log.snapshot().expect("snapshot");
    drop(log);
    let path = snapshot_path(dir.path(), 3);
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 2;
    bytes[last] ^= 1;
    std::fs::write(&path, bytes).expect("damage");
    assert!(matches!(
        LocalMetadataLog::open_with(dir.path(), rarely()),
        Err(LocalLogError::BadSnapshot { .. })
    ));
}

#[test]
fn a_missing_stretch_of_records_is_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), 3, rarely());
    // A later file starting at 5 although record 4 was never seen.
    let mut bytes = frame::header().to_vec();
    bytes.extend(frame::encode(5, &ids(100).encode()));
    std::fs::write(log_path(dir.path(), 5), bytes).expect("write");
    assert!(matches!(
        LocalMetadataLog::open_with(dir.path(), rarely()),
        Err(LocalLogError::IndexGap {
            expected: 4,
            found: 5,
            ..
        })
    ));
}

#[test]
fn a_record_that_no_longer_applies_stops_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    write(dir.path(), 2, rarely());
    // Something wrote a record that apply refuses (ids already handed out).
    let path = first_log(dir.path());
    let mut bytes = std::fs::read(&path).expect("read");
    bytes.extend(frame::encode(3, &ids(0).encode()));
    std::fs::write(&path, bytes).expect("write");
    assert!(matches!(
        LocalMetadataLog::open_with(dir.path(), rarely()),
        Err(LocalLogError::Replay { index: 3, source, .. })
            if matches!(*source, MetadataError::ProducerIdsReused { .. })
    ));
}
