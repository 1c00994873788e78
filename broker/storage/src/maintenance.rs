//! Periodic and administrative work on a log: flushing, rolling by age, retention,
//! truncation, closing and deleting.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::config::FlushPolicy;
use crate::error::StorageError;
use crate::index::IndexCursor;
use crate::log::{PartitionLog, Writer};
use crate::recovery::{SegmentRole, load_segment};
use crate::segment::{Segment, sync_dir};

/// What one [`PartitionLog::tick`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MaintenanceOutcome {
    /// The active segment was rolled because it was too old.
    pub rolled: bool,
    /// Appended data was fsynced because the flush interval was due.
    pub flushed: bool,
    /// Closed segments deleted by retention.
    pub segments_deleted: usize,
    /// Bytes those segments held.
    pub bytes_deleted: u64,
    /// Log start offset after the tick.
    pub log_start_offset: i64,
}

impl PartitionLog {
    /// fsyncs everything appended so far, with the active segment's indexes, then
    /// checkpoints the high watermark if it moved. Used by the interval flusher and on
    /// shutdown.
    pub fn flush(&self) -> Result<(), StorageError> {
        let mut writer = self.writer.lock();
        self.flush_locked(&mut writer)
    }

    /// Makes every record appended so far durable without holding up appends: fsyncs
    /// the segment they went to, unless another call's fsync, begun after them, already
    /// did; concurrent callers thus share fsyncs (group commit). Indexes and the
    /// high-watermark checkpoint are left to [`flush`](Self::flush): recovery rebuilds
    /// the former, and a stale checkpoint only holds a restarted replica's high
    /// watermark lower until its leader moves it. What a replica does before it counts
    /// records as acknowledged.
    pub fn sync_appended(&self) -> Result<(), StorageError> {
        use std::sync::atomic::Ordering;
        let wanted = self.writer.lock().appended_seq;
        if self.synced_seq.load(Ordering::Acquire) >= wanted {
            return Ok(());
        }
        let _one = self.syncing.lock();
        if self.synced_seq.load(Ordering::Acquire) >= wanted {
            return Ok(());
        }
        // Taken again under the writer lock: appends before this point are in the
        // active segment, or in one a roll sealed and fsynced.
        let (covered, active, written) = {
            let writer = self.writer.lock();
            self.check_poison()?;
            let segments = self.snapshot();
            let active = segments
                .last()
                .cloned()
                .ok_or_else(|| self.missing_active())?;
            let written = active.len();
            (writer.appended_seq, active, written)
        };
        if let Err(e) = active.sync() {
            return Err(self.poison_with(e));
        }
        self.mark_synced(covered);
        self.release_synced(&active, written);
        Ok(())
    }

    /// After an fsync that covered the first `synced` bytes of `segment`: drops from the
    /// page cache what lies more than `cache_tail_bytes` before that.
    pub(crate) fn release_synced(&self, segment: &Segment, synced: u64) {
        if let Some(tail) = self.config.read().cache_tail_bytes {
            segment.release_cache_below(synced.saturating_sub(tail));
        }
    }

    pub(crate) fn mark_synced(&self, seq: u64) {
        self.synced_seq
            .fetch_max(seq, std::sync::atomic::Ordering::AcqRel);
    }

    fn flush_locked(&self, writer: &mut Writer) -> Result<(), StorageError> {
        // After a failed fsync the kernel may have dropped the dirty pages, so a later
        // fsync that succeeds proves nothing: a poisoned log stays poisoned.
        self.check_poison()?;
        let segments = self.snapshot();
        let Some(active) = segments.last() else {
            return Err(self.missing_active());
        };
        let flushed = active.sync().and_then(|()| {
            let paths = active.paths();
            active
                .index_mut()
                .persist(&paths.index, &paths.time_index, true)
        });
        if let Err(e) = flushed {
            return Err(self.poison_with(e));
        }
        writer.unflushed = false;
        self.mark_synced(writer.appended_seq);
        self.release_synced(active, active.len());
        // After the data: a checkpointed high watermark is then on disk below it.
        self.checkpoint_high_watermark(writer)
    }

    /// Periodic work at broker time `now_ms`: roll the active segment by age, flush if the
    /// interval is due, and apply retention (whole closed segments only, never the active
    /// one) when the cleanup policy deletes. A replicated log's high watermark is
    /// checkpointed when it moved.
    pub fn tick(&self, now_ms: i64) -> Result<MaintenanceOutcome, StorageError> {
        let config = self.config();
        let mut writer = self.writer.lock();
        let mut outcome = MaintenanceOutcome::default();
        if self.retired.load(Ordering::Acquire) {
            return Ok(outcome);
        }
        let segments = self.snapshot();
        if let Some(active) = segments.last()
            && self.too_old(active, &config, now_ms)
        {
            self.check_poison()?;
            self.roll(&mut writer)?;
            outcome.rolled = true;
        }
        if let FlushPolicy::Interval(interval) = config.flush {
            let interval_ms = i64::try_from(interval.as_millis()).unwrap_or(i64::MAX);
            if writer.unflushed && now_ms.saturating_sub(writer.last_flush_ms) >= interval_ms {
                self.flush_locked(&mut writer)?;
                writer.last_flush_ms = now_ms;
                outcome.flushed = true;
            }
        }
        if config.cleanup.deletes() {
            let segments = self.snapshot();
            let closed = &segments[..segments.len().saturating_sub(1)];
            let mut doomed = 0;
            if let Some(retention_ms) = config.retention_ms {
                doomed = closed
                    .iter()
                    .take_while(|s| now_ms.saturating_sub(s.max_timestamp()) > retention_ms)
                    .count();
            }
            if let Some(retention_bytes) = config.retention_bytes {
                let total: u64 = segments.iter().map(|s| s.len()).sum();
                let mut excess = total.saturating_sub(retention_bytes);
                excess = excess.saturating_sub(closed[..doomed].iter().map(|s| s.len()).sum());
                for segment in &closed[doomed..] {
                    // Delete only while the log stays at or above the limit without it.
                    if excess == 0 || segment.len() > excess {
                        break;
                    }
                    excess -= segment.len();
                    doomed += 1;
                }
            }
            if doomed > 0 {
                outcome.bytes_deleted = closed[..doomed].iter().map(|s| s.len()).sum();
                outcome.segments_deleted = doomed;
                self.delete_oldest(&segments, doomed)?;
            }
        }
        // A sole replica's mark is the log end again after a restart, so only a
        // replicated log pays for keeping its checkpoint current.
        if !config.sole_replica {
            self.checkpoint_high_watermark(&mut writer)?;
        }
        outcome.log_start_offset = self.log_start_offset();
        Ok(outcome)
    }

    /// Drops the `count` oldest segments and advances the log start offset past them.
    fn delete_oldest(&self, segments: &[Arc<Segment>], count: usize) -> Result<(), StorageError> {
        let remaining: Vec<Arc<Segment>> = segments[count..].to_vec();
        let new_start = remaining
            .first()
            .map_or(self.log_end_offset(), |s| s.base_offset());
        // Readers check the start offset before reading, so it moves first; a reader that
        // already holds the old list keeps reading the unlinked files.
        self.log_start.fetch_max(new_start, Ordering::AcqRel);
        *self.segments.write() = Arc::new(remaining);
        self.change_epochs(|epochs| epochs.truncate_from_start(new_start))?;
        for segment in &segments[..count] {
            tracing::info!(
                segment = %segment.paths().log.display(),
                base_offset = segment.base_offset(),
                bytes = segment.len(),
                "retention deleted segment"
            );
            segment.remove_files()?;
        }
        sync_dir(&self.dir)
    }

    /// Drops every batch at or after `offset`, for a replica that must match its leader.
    /// A batch that straddles `offset` is dropped whole, so the log may end before it.
    /// Leader epochs that started at or after the new end are forgotten, and the high
    /// watermark comes down to the new end if it was above.
    pub fn truncate_to(&self, offset: i64) -> Result<(), StorageError> {
        let config = self.config();
        let mut writer = self.writer.lock();
        self.check_poison()?;
        let log_start = self.log_start_offset();
        let log_end = self.log_end_offset();
        if offset >= log_end {
            return Ok(());
        }
        if offset < log_start {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start,
                log_end,
            });
        }
        let segments = self.snapshot();
        let keep = segments
            .partition_point(|s| s.base_offset() <= offset)
            .max(1);
        let target = &segments[keep - 1];
        let cut = target.locate(offset)?.unwrap_or(target.len());
        // Readers must stop short of what is about to disappear.
        self.high_watermark.fetch_min(offset, Ordering::AcqRel);
        self.log_end.fetch_min(offset, Ordering::AcqRel);
        target.retract(cut);
        for dropped in &segments[keep..] {
            dropped.retract(0);
        }
        let kept: Vec<Arc<Segment>> = segments[..keep].to_vec();
        *self.segments.write() = Arc::new(kept.clone());
        for dropped in &segments[keep..] {
            dropped.remove_files()?;
        }
        let truncated = target
            .file()
            .set_len(cut)
            .and_then(|()| target.file().sync_all());
        if let Err(e) = truncated {
            let path = target.paths().log.clone();
            return Err(self.poison_with(StorageError::Io {
                path,
                op: "truncate",
                source: e,
            }));
        }
        // Reload the truncated segment as the active one and replay producer state from
        // what is left, since batches it remembered may be gone.
        let mut producers = self.producers.lock();
        producers.clear();
        for segment in &kept[..keep - 1] {
            let mut scan = segment.scan_from(0);
            while let Some((_, header)) = segment.step(&mut scan)? {
                producers.record(&header);
            }
        }
        let (reloaded, cursor) = load_segment(
            &self.dir,
            target.base_offset(),
            SegmentRole::Active,
            &config,
            None,
            &mut |h| producers.record(h),
        )?;
        let reloaded = Arc::new(reloaded);
        let new_end = reloaded.next_offset();
        let mut next = kept;
        next[keep - 1] = reloaded;
        *self.segments.write() = Arc::new(next);
        writer.cursor = cursor;
        self.log_end.store(new_end, Ordering::Release);
        self.high_watermark.fetch_min(new_end, Ordering::AcqRel);
        drop(producers);
        sync_dir(&self.dir)?;
        self.change_epochs(|epochs| epochs.truncate_from_end(new_end))?;
        // A checkpoint above the new end would, after a crash and new appends, count
        // records as committed that never were.
        if writer
            .checkpointed_high_watermark
            .is_some_and(|hw| hw > self.high_watermark())
        {
            self.checkpoint_high_watermark(&mut writer)?;
        }
        Ok(())
    }

    /// Empties the log and restarts it at `offset`, for a follower whose leader no longer
    /// holds anything it has (Kafka does this when a follower's fetch offset is out of
    /// range). Segments, producer state and leader epochs are all dropped; the log start,
    /// log end and high watermark become `offset`.
    pub fn truncate_fully_and_start_at(&self, offset: i64) -> Result<(), StorageError> {
        if offset < 0 {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start: self.log_start_offset(),
                log_end: self.log_end_offset(),
            });
        }
        let mut writer = self.writer.lock();
        self.check_poison()?;
        // The epochs go first: a crash before the files are gone leaves batches the
        // empty checkpoint disagrees with, and opening rebuilds it from them; the other
        // order could leave old epochs clipped onto the new, empty log.
        self.change_epochs(|epochs| epochs.clear())?;
        let segments = self.snapshot();
        // Readers must stop short of what is about to disappear.
        self.high_watermark.fetch_min(offset, Ordering::AcqRel);
        self.log_end.fetch_min(offset, Ordering::AcqRel);
        for segment in segments.iter() {
            segment.retract(0);
        }
        // The old files go before the new segment is created: one may share its name.
        for segment in segments.iter() {
            segment.remove_files()?;
        }
        let fresh = Segment::create(&self.dir, offset)?;
        *self.segments.write() = Arc::new(vec![Arc::new(fresh)]);
        self.log_start.store(offset, Ordering::Release);
        self.log_end.store(offset, Ordering::Release);
        self.high_watermark.store(offset, Ordering::Release);
        writer.cursor = IndexCursor::default();
        writer.unflushed = false;
        self.producers.lock().clear();
        sync_dir(&self.dir)?;
        self.checkpoint_high_watermark(&mut writer)?;
        tracing::info!(dir = %self.dir.display(), offset, "log emptied, restarting at offset");
        Ok(())
    }

    /// Flushes and releases the log. Recovery always checks the active segment by CRC, so
    /// no clean-shutdown marker is written.
    pub fn close(self) -> Result<(), StorageError> {
        self.flush()
    }

    /// Hands the directory over to a handle about to open it (a partition being reopened):
    /// waits for a running append, tick or compaction, flushes what it can (a poisoned log
    /// cannot), and from then on this handle changes nothing on disk: appends, flushes and
    /// truncations fail with [`StorageError::Poisoned`], ticks and compactions do nothing.
    /// Reads still work on the files it has open. The flush's error, if any, is returned
    /// after the handle is retired all the same.
    pub fn retire(&self) -> Result<(), StorageError> {
        let _cleaner = self.cleaner.lock();
        let mut writer = self.writer.lock();
        let flushed = if self.poison.lock().is_some() || !writer.unflushed {
            Ok(())
        } else {
            self.flush_locked(&mut writer)
        };
        self.retired.store(true, Ordering::Release);
        self.poison.lock().get_or_insert_with(|| {
            "the log was retired so that its partition could be reopened".to_string()
        });
        flushed
    }

    /// Removes the log's directory and everything in it.
    pub fn delete(self) -> Result<(), StorageError> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::remove_dir_all(&dir).map_err(StorageError::io(&dir, "remove log directory"))
    }
}
