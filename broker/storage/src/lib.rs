//! Quiver's partition logs: segments, sparse indexes, crash recovery, retention,
//! idempotent-producer checks and the compaction driver.
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
//! ```
//!
//! A high-watermark or leader-epoch checkpoint file will sit beside them; recovery ignores
//! (with a warning) any file whose name is not a segment's.
//!
//! # Guarantees
//!
//! - An append is validated whole (header, CRC, size) before any byte is written, and is
//!   written with one positional write; a corrupt batch anywhere appends nothing.
//! - Readers never see a partly written batch: they read up to a committed length that
//!   the writer publishes after its write (and, under [`FlushPolicy::Always`], its fsync).
//! - A failed write or fsync poisons the log: later appends fail with
//!   [`StorageError::Poisoned`]; reopening recovers from what is really on disk.
//! - Recovery cuts a torn tail of the active segment at the first batch failing its CRC.
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
pub mod compaction;
mod config;
mod error;
mod index;
mod log;
mod maintenance;
pub mod producer_state;
mod recovery;
mod scan;
mod segment;

pub use compaction::{CompactionOutcome, CompactionPolicy, KeepLatest, PolicyError, Survivor};
pub use config::{CleanupPolicy, FlushPolicy, LogConfig};
pub use error::StorageError;
pub use log::{AppendOutcome, PartitionLog, ReadOutcome};
pub use maintenance::MaintenanceOutcome;
pub use producer_state::{BatchMetadata, ProducerEntry};

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests;
