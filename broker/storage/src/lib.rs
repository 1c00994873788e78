//! Quiver's partition logs: segments, sparse indexes, crash recovery, retention,
//! idempotent-producer checks, the compaction driver, and what replication needs of a
//! log: leader epochs in every batch and their cache, appends of a leader's batches as
//! they are, and a high watermark apart from the log end.
//!
//! What it is not: no network, no async runtime, no Wasm. Every call is plain blocking
//! `std` I/O on `Send + Sync` types that the server calls directly; appends are short,
//! and the server may move fsync-heavy calls ([`PartitionLog::flush`], appends under
//! [`FlushPolicy::Always`], [`PartitionLog::compact`]) to a blocking thread. Compaction
//! policies are a trait here; the Wasm host implements it elsewhere.
//!
//! # On disk
//!
//! ```text
//! <dir>/00000000000000000000.log        batches back to back (RecordBatch v2), as stored
//! <dir>/00000000000000000000.index      sparse: relative offset u32 + position u32, big endian
//! <dir>/00000000000000000000.timeindex  timestamp i64 + relative offset u32, big endian
//! <dir>/00000000000004096000.log        next segment, named by its base offset
//! <dir>/leader-epoch-checkpoint          leader epoch -> first offset written in it
//! <dir>/high-watermark-checkpoint        the high watermark at the last flush
//! ```
//!
//! Each batch carries the leader epoch that wrote it in its header (partitionLeaderEpoch,
//! outside the CRC like the base offset): a leader append stamps the log's current epoch,
//! a follower append ([`PartitionLog::append_replicated`]) keeps the leader's.
//!
//! Both checkpoints are small text files, each line `<kind> 1`, an entry count, one entry
//! per line (`epoch start_offset`, or the high watermark) and a `crc32c <hex>` line over
//! everything before it, so a torn write is detected. They are replaced durably: a
//! temporary `<name>.tmp` is written and fsynced, renamed over the old file, and the
//! directory fsynced; recovery removes a leftover `.tmp`. The epoch checkpoint is written
//! when an epoch starts and on truncation; opening clips it to the log and rebuilds it
//! from the batch headers when it is missing, damaged or disagrees with them. The high
//! watermark is checkpointed on flush, close and (for a replicated log) `tick`, never
//! per append; opening takes it from the checkpoint but never above the log end, and
//! from the log start when the checkpoint is missing or damaged, except for a sole
//! replica ([`LogConfig::sole_replica`], the default), whose high watermark is its log
//! end. Recovery ignores (with a warning) any other file whose name is not a segment's.
//!
//! ```text
//! leader-epoch-checkpoint 1
//! 2
//! 0 0
//! 3 4096
//! crc32c 3f93e6e5
//! ```
//!
//! # Guarantees
//!
//! - An append is validated whole (header, CRC, size) before any byte is written, and is
//!   written with one positional write; a corrupt batch anywhere appends nothing.
//! - Readers never see a partly written batch: they read up to a committed length that
//!   the writer publishes after its write (and, under [`FlushPolicy::Always`], its fsync).
//! - A failed write or fsync poisons the log: later appends fail with
//!   [`StorageError::Poisoned`]; reopening recovers from what is really on disk. An
//!   owner reopens without restarting by [`PartitionLog::retire`] on the old handle (it
//!   stops changing the directory) and [`PartitionLog::open`] again.
//! - Recovery cuts a torn tail of the active segment at the first batch failing its CRC
//!   when nothing valid follows it. Damage with intact batches after it, or in a closed
//!   segment, is kept as a hole ([`DamagedRange`], [`PartitionLog::damaged_ranges`]):
//!   nothing acknowledged is dropped and no offset is reused; reads into it fail with
//!   [`StorageError::DamagedData`], which names the offset to resume at.
//!
//! # Example
//!
//! ```
//! use quiver_proto::batch::{BatchBuilder, Compression, ProducerIdentity};
//! use quiver_storage::{LogConfig, PartitionLog};
//!
//! let dir = tempfile::tempdir().unwrap();
//! let log = PartitionLog::open(dir.path(), LogConfig::default()).unwrap();
//! let mut builder = BatchBuilder::new();
//! builder.push(1_700_000_000_000, Some(b"key"), Some(b"value"), &[]);
//! let batch = builder.build(Compression::None, ProducerIdentity::NONE);
//!
//! let appended = log.append(&batch, 1_700_000_000_000).unwrap();
//! assert_eq!((appended.base_offset, log.log_end_offset()), (0, 1));
//!
//! let read = log.read(0, 1 << 20).unwrap();
//! let records = quiver_proto::batch::decode_records(&read.bytes).unwrap();
//! assert_eq!(records[0].value.as_deref(), Some(&b"value"[..]));
//! log.close().unwrap();
//! ```

mod append;
mod checkpoint;
pub mod compaction;
mod config;
mod damage;
mod error;
mod index;
mod leader_epoch;
mod log;
mod maintenance;
pub mod producer_state;
mod recovery;
mod replication;
mod scan;
mod segment;

/// A file the broker keeps in a partition directory to say which topic the data belongs
/// to (a topic deleted and created again under its name has a new id). The log leaves
/// it alone; it is the broker's.
pub const PARTITION_METADATA: &str = "partition.metadata";

pub use compaction::{CompactionOutcome, CompactionPolicy, KeepLatest, PolicyError, Survivor};
pub use config::{CleanupPolicy, FlushPolicy, LogConfig};
pub use damage::DamagedRange;
pub use error::StorageError;
pub use leader_epoch::EpochEntry;
pub use log::{AppendOutcome, PartitionLog, ReadBound, ReadOutcome};
pub use maintenance::MaintenanceOutcome;
pub use producer_state::{BatchMetadata, ProducerEntry};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
