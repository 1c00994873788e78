//! [`PartitionLog`]: the ordered list of segments of one partition, and its read path.
//!
//! Appends, rolls, retention and truncation are serialised by one mutex (`writer`).
//! Readers never take it: they snapshot the segment list (an `Arc` swapped by the writer)
//! and read with positional reads bounded by each segment's committed length and by the
//! high watermark (consumers) or the log end (followers).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicI32, AtomicI64, Ordering};

use bytes::{Bytes, BytesMut};
use parking_lot::{Mutex, RwLock};
use quiver_proto::batch;

use crate::config::LogConfig;
use crate::error::StorageError;
use crate::index::IndexCursor;
use crate::leader_epoch::LeaderEpochCache;
use crate::producer_state::{ProducerEntry, ProducerStateTable};
use crate::recovery;
use crate::replication;
use crate::segment::Segment;

/// The segments of a log, oldest first; the last one is active.
pub(crate) type SegmentList = Arc<Vec<Arc<Segment>>>;

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendOutcome {
    /// Offset of the first record appended (or, for a duplicate, stored earlier).
    pub base_offset: i64,
    /// Offset of the last record.
    pub last_offset: i64,
    /// The broker clock at the append. Batches keep the producers' own timestamps (create
    /// time); a server answering a Kafka client for a create-time topic reports -1.
    pub log_append_time: i64,
    /// Records in the request.
    pub records: u32,
    /// The request repeated batches already in the log; nothing was appended.
    pub duplicate: bool,
}

/// What a read returned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadOutcome {
    /// Whole batches, back to back, exactly as stored.
    pub bytes: Bytes,
    /// Last offset of the last batch returned, plus one; the requested offset if none.
    pub next_offset: i64,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

/// How far a read may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadBound {
    /// Up to the high watermark: only committed records, what consumers see.
    #[default]
    HighWatermark,
    /// Up to the log end: everything appended, what a follower replicates.
    LogEnd,
}

/// State only the writer touches, under the `writer` mutex.
#[derive(Debug)]
pub(crate) struct Writer {
    /// Where the next sparse index entries of the active segment go.
    pub cursor: IndexCursor,
    /// Bytes were written since the last fsync.
    pub unflushed: bool,
    /// Counts appends; [`PartitionLog::sync_appended`] compares it with `synced_seq`.
    pub appended_seq: u64,
    /// Broker clock of the last flush by `tick`, for `FlushPolicy::Interval`.
    pub last_flush_ms: i64,
    /// The high watermark in the checkpoint file, if this process knows it.
    pub checkpointed_high_watermark: Option<i64>,
}

/// The log of one partition: segments in a directory, appended to by one writer at a
/// time and read concurrently by many. `Send + Sync`; share it as `Arc<PartitionLog>`.
#[derive(Debug)]
pub struct PartitionLog {
    pub(crate) dir: PathBuf,
    pub(crate) config: RwLock<LogConfig>,
    pub(crate) writer: Mutex<Writer>,
    pub(crate) segments: RwLock<SegmentList>,
    /// Locked only by the writer (while it holds `writer`) and by `producer_state`.
    pub(crate) producers: Mutex<ProducerStateTable>,
    pub(crate) log_start: AtomicI64,
    pub(crate) log_end: AtomicI64,
    pub(crate) high_watermark: AtomicI64,
    /// The epoch a leader append stamps into its batches; set by the log's owner.
    pub(crate) leader_epoch: AtomicI32,
    /// First offset of every leader epoch in the log. Changed only by the writer (while
    /// it holds `writer`), read by followers' epoch queries.
    pub(crate) epochs: Mutex<LeaderEpochCache>,
    /// Set after a failed write or fsync; appends refuse to run from then on.
    pub(crate) poison: Mutex<Option<String>>,
    /// Serialises compactions with each other; they take `writer` only to swap files.
    pub(crate) cleaner: Mutex<()>,
    /// Set by [`PartitionLog::retire`]: another handle owns the directory now, so this one
    /// changes nothing on disk any more (no append, roll, retention or compaction).
    pub(crate) retired: std::sync::atomic::AtomicBool,
    /// The `appended_seq` up to which appends are known fsynced.
    pub(crate) synced_seq: std::sync::atomic::AtomicU64,
    /// Held by the one [`PartitionLog::sync_appended`] fsyncing at a time; the others
    /// wait and find their appends synced by it.
    pub(crate) syncing: Mutex<()>,
    #[cfg(any(test, feature = "test-hooks"))]
    pub(crate) fail_next_write: std::sync::atomic::AtomicBool,
}

impl PartitionLog {
    /// Opens the log in `dir`, creating it if needed and recovering it after a crash:
    /// the active segment's torn tail is cut, missing or damaged indexes are rebuilt and
    /// the idempotent-producer state is replayed from the batch headers. The leader-epoch
    /// cache comes from its checkpoint, or is rebuilt from the batch headers when that is
    /// missing, damaged or disagrees with the log; the high watermark is the log end for
    /// a sole replica and otherwise comes from its checkpoint, never above the log end
    /// (the log start when the checkpoint is missing or damaged).
    pub fn open(dir: &Path, config: LogConfig) -> Result<PartitionLog, StorageError> {
        let recovered = recovery::recover(dir, &config)?;
        let segments = recovered.segments;
        let log_start = segments.first().map_or(0, |s| s.base_offset());
        let log_end = segments.last().map_or(0, |s| s.next_offset());
        let epochs = replication::load_epoch_cache(dir, &recovered.epoch_runs, log_start, log_end)?;
        let (high_watermark, checkpointed_high_watermark) =
            replication::load_high_watermark(dir, &config, log_start, log_end);
        tracing::debug!(
            dir = %dir.display(),
            segments = segments.len(),
            log_start,
            log_end,
            "partition log opened"
        );
        Ok(PartitionLog {
            dir: dir.to_path_buf(),
            config: RwLock::new(config),
            writer: Mutex::new(Writer {
                cursor: recovered.cursor,
                unflushed: false,
                appended_seq: 0,
                last_flush_ms: i64::MIN,
                checkpointed_high_watermark,
            }),
            segments: RwLock::new(Arc::new(segments)),
            producers: Mutex::new(recovered.producers),
            log_start: AtomicI64::new(log_start),
            log_end: AtomicI64::new(log_end),
            high_watermark: AtomicI64::new(high_watermark),
            leader_epoch: AtomicI32::new(epochs.latest_epoch().unwrap_or(0)),
            epochs: Mutex::new(epochs),
            poison: Mutex::new(None),
            cleaner: Mutex::new(()),
            retired: std::sync::atomic::AtomicBool::new(false),
            synced_seq: std::sync::atomic::AtomicU64::new(0),
            syncing: Mutex::new(()),
            #[cfg(any(test, feature = "test-hooks"))]
            fail_next_write: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// Replaces the configuration; the next append, tick or compaction uses it. A log
    /// that becomes its partition's sole replica commits everything it holds at once.
    pub fn set_config(&self, config: LogConfig) {
        let becomes_sole = config.sole_replica && !self.config.read().sole_replica;
        if becomes_sole {
            // The writer lock keeps a truncation from lowering the log end in between;
            // only this rare change takes it, so altering a topic never waits on appends.
            let _writer = self.writer.lock();
            self.high_watermark
                .fetch_max(self.log_end_offset(), Ordering::AcqRel);
            *self.config.write() = config;
            return;
        }
        *self.config.write() = config;
    }

    /// The configuration in force.
    pub fn config(&self) -> LogConfig {
        self.config.read().clone()
    }

    /// The directory holding the segments.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// First offset still in the log.
    pub fn log_start_offset(&self) -> i64 {
        self.log_start.load(Ordering::Acquire)
    }

    /// The next offset to be assigned.
    pub fn log_end_offset(&self) -> i64 {
        self.log_end.load(Ordering::Acquire)
    }

    /// Offsets below it are committed and may be read by consumers. Equal to the log end
    /// offset for a sole replica; otherwise it lags until the owner advances it.
    pub fn high_watermark(&self) -> i64 {
        self.high_watermark.load(Ordering::Acquire)
    }

    /// Bytes in all segments.
    pub fn size_bytes(&self) -> u64 {
        self.snapshot().iter().map(|s| s.len()).sum()
    }

    pub fn segment_count(&self) -> usize {
        self.snapshot().len()
    }

    /// What the log knows of an idempotent producer.
    pub fn producer_state(&self, producer_id: i64) -> Option<ProducerEntry> {
        self.producers.lock().get(producer_id)
    }

    pub(crate) fn snapshot(&self) -> SegmentList {
        self.segments.read().clone()
    }

    /// Whole batches starting with the one that contains `offset`, up to `max_bytes` (at
    /// least one whole batch if there is one, even if larger), never past the high
    /// watermark: what a consumer may see. `offset == log_end_offset` gives empty bytes.
    pub fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome, StorageError> {
        self.read_with(offset, max_bytes, ReadBound::HighWatermark)
    }

    /// [`read`](Self::read), bounded by `bound`: a follower reads up to the log end.
    pub fn read_with(
        &self,
        offset: i64,
        max_bytes: usize,
        bound: ReadBound,
    ) -> Result<ReadOutcome, StorageError> {
        // The bounds are loaded before the segment list: the writer publishes a new
        // segment before any offset in it, so every offset below them is in the snapshot.
        let high_watermark = self.high_watermark();
        let log_end = self.log_end_offset();
        let limit = match bound {
            ReadBound::HighWatermark => high_watermark,
            ReadBound::LogEnd => log_end,
        };
        let segments = self.snapshot();
        let log_start = self.log_start_offset();
        if offset < log_start || offset > log_end {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        let mut outcome = ReadOutcome {
            bytes: Bytes::new(),
            next_offset: offset,
            high_watermark,
            log_start_offset: log_start,
        };
        if offset >= limit {
            return Ok(outcome);
        }
        let first = segments
            .partition_point(|s| s.base_offset() <= offset)
            .saturating_sub(1);
        let mut gathered: Option<BytesMut> = None;
        let mut budget = max_bytes;
        for segment in &segments[first..] {
            let has_bytes = !outcome.bytes.is_empty() || gathered.is_some();
            let position = match segment.locate(outcome.next_offset) {
                Ok(Some(position)) => position,
                Ok(None) => continue,
                // What was gathered before the damage is returned; the next read,
                // starting at the damage, reports it.
                Err(StorageError::DamagedData { .. }) if has_bytes => break,
                Err(e) => return Err(e),
            };
            let at_least_one = outcome.bytes.is_empty() && gathered.is_none();
            let Some(collected) = segment.collect(position, limit, budget, at_least_one)? else {
                break;
            };
            budget = budget.saturating_sub(collected.bytes.len());
            outcome.next_offset = collected.last_offset + 1;
            if outcome.bytes.is_empty() && gathered.is_none() {
                // The common case, one segment, keeps the bytes as read: no copy.
                outcome.bytes = collected.bytes;
            } else {
                let buf = gathered.get_or_insert_with(|| BytesMut::from(&outcome.bytes[..]));
                buf.extend_from_slice(&collected.bytes);
            }
            if collected.stopped_early || budget == 0 {
                break;
            }
        }
        if let Some(buf) = gathered {
            outcome.bytes = buf.freeze();
        }
        Ok(outcome)
    }

    /// The first record whose timestamp is `>= ts_ms`, as (offset, timestamp): the first
    /// batch whose max timestamp reaches `ts_ms`, then the first record in it that does.
    pub fn offset_for_timestamp(&self, ts_ms: i64) -> Result<Option<(i64, i64)>, StorageError> {
        let high_watermark = self.high_watermark();
        let segments = self.snapshot();
        for segment in segments.iter() {
            if segment.is_empty() || segment.max_timestamp() < ts_ms {
                continue;
            }
            let Some((position, header)) = segment.first_batch_at_time(ts_ms, high_watermark)?
            else {
                continue;
            };
            let bytes = Bytes::from(segment.read_exact(position, header.total_len())?);
            let records =
                batch::decode_records(&bytes).map_err(|e| StorageError::CorruptSegment {
                    path: segment.paths().log.clone(),
                    reason: format!("batch at byte {position} does not decode: {e}"),
                })?;
            // The batch found has a record at its max timestamp, so this finds one: every
            // stored batch with records does (compaction rebuilds a batch's header from
            // the records it keeps), and an empty batch carries -1 and is never found.
            if let Some(record) = records.iter().find(|r| r.timestamp >= ts_ms) {
                return Ok(Some((record.offset, record.timestamp)));
            }
        }
        Ok(None)
    }

    /// Damaged ranges recovery kept as holes, oldest first: reads of their offsets fail
    /// with [`StorageError::DamagedData`].
    pub fn damaged_ranges(&self) -> Vec<crate::DamagedRange> {
        self.snapshot()
            .iter()
            .flat_map(|s| s.holes().iter().cloned())
            .collect()
    }

    /// Whether a write or fsync failed (or the log was retired): appends refuse to run
    /// until the directory is opened again.
    pub fn poisoned(&self) -> Option<String> {
        self.poison.lock().clone()
    }

    /// Makes the next append's write fail as a full disk would, poisoning the log: for
    /// tests of what the log's owner does with a poisoned log.
    #[cfg(any(test, feature = "test-hooks"))]
    pub fn fail_next_write(&self) {
        self.fail_next_write.store(true, Ordering::SeqCst);
    }

    /// Fails with `Poisoned` once a write or fsync has failed.
    pub(crate) fn check_poison(&self) -> Result<(), StorageError> {
        match self.poison.lock().as_ref() {
            Some(cause) => Err(StorageError::Poisoned {
                dir: self.dir.clone(),
                cause: cause.clone(),
            }),
            None => Ok(()),
        }
    }

    /// Records that a write or fsync failed, and hands the error back.
    pub(crate) fn poison_with(&self, error: StorageError) -> StorageError {
        tracing::error!(dir = %self.dir.display(), "partition log poisoned: {error}");
        self.poison.lock().get_or_insert_with(|| error.to_string());
        error
    }
}
