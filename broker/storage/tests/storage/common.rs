//! Builders and readers shared by the storage tests.

use std::path::{Path, PathBuf};

use bytes::Bytes;
use quiver_proto::Record;
use quiver_proto::batch::{self, BatchBuilder, Compression, ProducerIdentity};
use quiver_storage::{CleanupPolicy, FlushPolicy, LogConfig, PartitionLog};

/// Small segments and dense indexes, so a few kilobytes exercise rolls and index lookups.
pub fn small_config() -> LogConfig {
    LogConfig {
        segment_bytes: 2048,
        segment_ms: None,
        index_interval_bytes: 128,
        retention_ms: None,
        retention_bytes: None,
        flush: FlushPolicy::Os,
        cleanup: CleanupPolicy::Delete,
        ..LogConfig::default()
    }
}

/// One record: key, value, timestamp.
pub type Rec = (Option<Vec<u8>>, Option<Vec<u8>>, i64);

pub fn build(records: &[Rec], producer: ProducerIdentity) -> Bytes {
    let mut builder = BatchBuilder::new();
    for (key, value, ts) in records {
        builder.push(*ts, key.as_deref(), value.as_deref(), &[]);
    }
    builder.build(Compression::None, producer)
}

/// A batch of `count` records with values `"<tag>-<i>"` padded to `pad` bytes.
pub fn batch_of(tag: &str, count: usize, pad: usize, ts: i64) -> Bytes {
    let records: Vec<Rec> = (0..count)
        .map(|i| {
            let mut value = format!("{tag}-{i}").into_bytes();
            value.resize(value.len().max(pad), b'.');
            (
                Some(format!("k{i}").into_bytes()),
                Some(value),
                ts + i as i64,
            )
        })
        .collect();
    build(&records, ProducerIdentity::NONE)
}

pub fn idempotent(pid: i64, epoch: i16, seq: i32, count: usize) -> Bytes {
    let records: Vec<Rec> = (0..count)
        .map(|i| {
            (
                None,
                Some(format!("p{pid}-s{}", seq as usize + i).into_bytes()),
                1000,
            )
        })
        .collect();
    build(
        &records,
        ProducerIdentity {
            producer_id: pid,
            producer_epoch: epoch,
            base_sequence: seq,
        },
    )
}

/// Every batch in `bytes`, each checked by CRC.
pub fn batches(bytes: &Bytes) -> Vec<Bytes> {
    batch::split(bytes)
        .map(|piece| {
            let (_, bytes) = piece.expect("reads return whole batches");
            batch::validate_stored(&bytes).expect("reads return valid batches");
            bytes
        })
        .collect()
}

/// Every record from the log start to the high watermark, read in small steps.
pub fn read_all(log: &PartitionLog) -> Vec<Record> {
    let mut out = Vec::new();
    let mut offset = log.log_start_offset();
    while offset < log.high_watermark() {
        let read = log.read(offset, 1000).expect("read");
        assert!(
            read.next_offset > offset,
            "read at {offset} made no progress"
        );
        for b in batches(&read.bytes) {
            out.extend(batch::decode_records(&b).expect("decode"));
        }
        offset = read.next_offset;
    }
    out
}

pub fn segment_files(dir: &Path, extension: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("list")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == extension))
        .collect();
    files.sort();
    files
}
