//! Errors of the partition log. Each names what was wrong and what the caller can do.

use std::io;
use std::path::{Path, PathBuf};

use quiver_proto::batch::BatchError;

use crate::compaction::PolicyError;
use crate::damage::DamagedRange;

/// Why a storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A file operation failed. If it was a write or an fsync, the log is now poisoned.
    #[error("could not {op} {}: {source}", path.display())]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: io::Error,
    },
    /// An earlier write or fsync failed, so what is on disk is unknown; the log refuses
    /// appends until it is reopened, which recovers the tail from what is really on disk.
    #[error(
        "partition log {} refuses appends after a failed write or fsync ({cause}); reopen it to recover",
        dir.display()
    )]
    Poisoned { dir: PathBuf, cause: String },
    /// A batch of the request is malformed; nothing of the request was appended.
    #[error("batch {index_in_request} of the request is corrupt, nothing was appended: {source}")]
    CorruptBatch {
        index_in_request: usize,
        #[source]
        source: BatchError,
    },
    /// A batch is larger than the log's `max_batch_bytes`; nothing was appended.
    #[error(
        "batch of {size} bytes exceeds the limit of {max} bytes; send smaller batches or raise max_batch_bytes"
    )]
    BatchTooLarge { size: usize, max: u32 },
    /// The offset is outside the log.
    #[error("offset {offset} is out of range: the log holds offsets {log_start}..{log_end}")]
    OffsetOutOfRange {
        offset: i64,
        log_start: i64,
        log_end: i64,
    },
    /// The producer is fenced by a newer epoch of the same producer id.
    #[error(
        "producer {producer_id} sent epoch {got} but epoch {current} is current; this producer was fenced"
    )]
    InvalidProducerEpoch {
        producer_id: i64,
        current: i16,
        got: i16,
    },
    /// The batch does not follow the producer's last sequence: a batch was lost in between
    /// or the producer restarted without bumping its epoch.
    #[error("producer {producer_id} sent sequence {got} but {expected} was expected")]
    OutOfOrderSequence {
        producer_id: i64,
        expected: i32,
        got: i32,
    },
    /// Replicated batches must continue the log exactly where it ends (and each other):
    /// anything else means the follower and its leader disagree on what it holds.
    #[error(
        "replicated batch starts at offset {got} but the log expects {expected}; \
         fetch from the log end, or truncate to the leader's epoch end offset first"
    )]
    UnexpectedReplicaOffset { expected: i64, got: i64 },
    /// A leader epoch older than the newest one already in the log: its writer was
    /// replaced by a newer leader.
    #[error(
        "leader epoch {epoch} is older than epoch {latest} already in the log; \
         a newer leader has written here, so follow it (or truncate) instead"
    )]
    StaleLeaderEpoch { epoch: i32, latest: i32 },
    /// A segment is damaged where recovery cannot repair it by truncating the tail.
    #[error("segment {} is corrupt: {reason}; move it aside or restore it from a replica", path.display())]
    CorruptSegment { path: PathBuf, reason: String },
    /// The offsets asked for are in a damaged range that recovery kept as a hole; the
    /// records before and after it are intact.
    #[error(
        "offsets {}..{} of partition log {} are damaged (bytes {}..{} of {}: {}); \
         skip to offset {} to read on, or restore the segment from a replica",
        range.first_offset, range.next_offset, dir.display(), range.position,
        range.end_position, range.segment.display(), range.reason, range.next_offset
    )]
    DamagedData {
        dir: PathBuf,
        range: Box<DamagedRange>,
    },
    /// The compaction policy failed; no segment was changed.
    #[error("compaction policy failed, no segment was changed: {0}")]
    Policy(#[from] PolicyError),
}

impl StorageError {
    /// Wraps an I/O error with the file and the operation that failed.
    pub(crate) fn io(path: &Path, op: &'static str) -> impl FnOnce(io::Error) -> StorageError {
        let path = path.to_path_buf();
        move |source| StorageError::Io { path, op, source }
    }
}
