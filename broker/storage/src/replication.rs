//! What a log needs to be one replica among several: the leader epoch it stamps, the
//! leader-epoch cache followers ask about, and a high watermark apart from the log end,
//! with their checkpoints.
//!
//! The high watermark is checkpointed when the log is flushed or closed, and by `tick`
//! when it moved, never on the append path: an fsync per append for a number that
//! recovery can afford to get too low would double the cost of every produce. After a
//! crash the checkpoint may be behind, which only holds consumers back until the
//! replicas report again (Kafka checkpoints it periodically for the same reason); it is
//! never taken above the log end, and a missing or damaged checkpoint gives the log
//! start: nothing is shown as committed that might not be.

use std::path::Path;
use std::sync::atomic::Ordering;

use crate::checkpoint::Checkpoint;
use crate::config::LogConfig;
use crate::error::StorageError;
use crate::leader_epoch::{EPOCH_CHECKPOINT, EpochEntry, EpochRuns, LeaderEpochCache};
use crate::log::{PartitionLog, Writer};

/// The checkpoint file of the high watermark.
pub(crate) const HW_CHECKPOINT: Checkpoint = Checkpoint {
    name: "high-watermark-checkpoint",
    width: 1,
};

/// The leader-epoch cache of a log just recovered: its checkpoint clipped to the log, or,
/// when that is missing, damaged or disagrees with the batches, rebuilt from them.
/// Writes the checkpoint back when it changed.
pub(crate) fn load_epoch_cache(
    dir: &Path,
    runs: &EpochRuns,
    log_start: i64,
    log_end: i64,
) -> Result<LeaderEpochCache, StorageError> {
    let path = EPOCH_CHECKPOINT.path(dir);
    let loaded = EPOCH_CHECKPOINT
        .read(dir)
        .and_then(|found| {
            found
                .map(|entries| LeaderEpochCache::from_checkpoint(entries, &path))
                .transpose()
        })
        .unwrap_or_else(|e| {
            tracing::warn!("{e}; rebuilding the leader-epoch cache from the log");
            None
        });
    let (cache, stale) = match loaded {
        Some(mut cache) => {
            // Epochs recorded past the end were written just before batches a crash
            // lost; epochs before the start lost their batches to retention.
            let clipped = cache.truncate_from_end(log_end) | cache.truncate_from_start(log_start);
            if cache.agrees_with(runs) {
                (cache, clipped)
            } else {
                tracing::warn!(
                    checkpoint = %path.display(),
                    "the leader-epoch checkpoint disagrees with the log's batches; rebuilding it"
                );
                (LeaderEpochCache::rebuilt(runs), true)
            }
        }
        None => {
            let cache = LeaderEpochCache::rebuilt(runs);
            let stale = !cache.entries().is_empty() || path.exists();
            (cache, stale)
        }
    };
    if stale {
        EPOCH_CHECKPOINT.write(dir, &cache.to_checkpoint())?;
    }
    Ok(cache)
}

/// The high watermark of a log just recovered, and what its checkpoint holds.
pub(crate) fn load_high_watermark(
    dir: &Path,
    config: &LogConfig,
    log_start: i64,
    log_end: i64,
) -> (i64, Option<i64>) {
    let stored = match HW_CHECKPOINT.read(dir) {
        Ok(Some(entries)) => entries.first().and_then(|e| e.first()).copied(),
        Ok(None) => None,
        Err(e) => {
            tracing::warn!("{e}; the high watermark starts at the log start");
            None
        }
    };
    let high_watermark = if config.sole_replica {
        log_end
    } else {
        stored.unwrap_or(log_start).clamp(log_start, log_end)
    };
    (high_watermark, stored)
}

impl PartitionLog {
    /// Sets the epoch that [`append`](Self::append) stamps into every batch: the epoch of
    /// the leadership the owner holds. A reopened log starts at its latest epoch (0 when
    /// it has none), which is all a single node needs. Refuses an epoch below zero or
    /// below one the log already holds.
    pub fn set_leader_epoch(&self, epoch: i32) -> Result<(), StorageError> {
        let _writer = self.writer.lock();
        let latest = self.epochs.lock().latest_epoch().unwrap_or(0);
        if epoch < 0 || epoch < latest {
            return Err(StorageError::StaleLeaderEpoch { epoch, latest });
        }
        self.leader_epoch.store(epoch, Ordering::Release);
        Ok(())
    }

    /// The epoch leader appends stamp.
    pub fn leader_epoch(&self) -> i32 {
        self.leader_epoch.load(Ordering::Acquire)
    }

    /// The newest epoch that wrote to the log, what a follower asks its leader about.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.epochs.lock().latest_epoch()
    }

    /// Every epoch in the log with its start offset, oldest first.
    pub fn leader_epochs(&self) -> Vec<EpochEntry> {
        self.epochs.lock().entries().to_vec()
    }

    /// Kafka's OffsetsForLeaderEpoch for `requested`: the largest epoch at or below it
    /// and the offset where that epoch ended (the start of the next larger epoch, or the
    /// log end for the latest). The current leader epoch counts as started at the log
    /// end even before it wrote anything, as Kafka records it at election. `None` when
    /// `requested` is negative or above every epoch known.
    pub fn epoch_end_offset(&self, requested: i32) -> Option<(i32, i64)> {
        let mut epochs = self.epochs.lock().clone();
        let log_end = self.log_end_offset();
        epochs.assign(self.leader_epoch(), log_end);
        epochs.end_offset_for(requested, log_end)
    }

    /// Raises the high watermark to `offset`, never above the log end and never down;
    /// returns the high watermark now. The owner of a replicated log calls it when the
    /// in-sync replicas have the records below `offset`.
    pub fn advance_high_watermark(&self, offset: i64) -> i64 {
        // Under the writer lock so that a truncation cannot slip in between reading the
        // log end and raising the mark above it.
        let _writer = self.writer.lock();
        let target = offset.min(self.log_end_offset());
        self.high_watermark.fetch_max(target, Ordering::AcqRel);
        self.high_watermark()
    }

    /// Writes the high-watermark checkpoint if the mark moved since the last one.
    pub(crate) fn checkpoint_high_watermark(
        &self,
        writer: &mut Writer,
    ) -> Result<(), StorageError> {
        let high_watermark = self.high_watermark();
        if writer.checkpointed_high_watermark == Some(high_watermark) {
            return Ok(());
        }
        HW_CHECKPOINT.write(&self.dir, &[vec![high_watermark]])?;
        writer.checkpointed_high_watermark = Some(high_watermark);
        Ok(())
    }

    /// Applies `change` to the leader-epoch cache, and persists it if it changed. The
    /// caller holds the writer lock.
    pub(crate) fn change_epochs(
        &self,
        change: impl FnOnce(&mut LeaderEpochCache) -> bool,
    ) -> Result<(), StorageError> {
        let mut epochs = self.epochs.lock();
        if change(&mut epochs) {
            EPOCH_CHECKPOINT.write(&self.dir, &epochs.to_checkpoint())?;
        }
        Ok(())
    }
}
