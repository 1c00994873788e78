//! One partition as the broker serves it: its log, and a signal that wakes long polls
//! and subscriptions when the log grows.

use std::sync::Arc;

use quiver_storage::{AppendOutcome, PartitionLog, ReadOutcome};
use tokio::sync::watch;

use crate::error::BrokerError;

/// How long a batch that arrived ahead of its predecessor waits for it.
const SEQUENCE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How far ahead a sequence may be and still be worth waiting for: a producer keeps at
/// most a few batches in flight, so a larger lead is a real gap.
const MAX_SEQUENCE_LEAD: i32 = 1 << 20;

/// A partition's log plus the high-watermark signal readers wait on.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: u32,
    log: Arc<PartitionLog>,
    /// Carries the high watermark; every append publishes the new one, so a waiting
    /// fetch or subscription wakes exactly when there is something new to read.
    high_watermark: watch::Sender<i64>,
    /// Segment count when the cleaner last compacted this partition; a roll changes it,
    /// which is when there is a newly closed segment worth cleaning.
    compacted_at_segments: std::sync::atomic::AtomicUsize,
    /// Cancelled when the topic is deleted, so waiting fetches and subscriptions end
    /// with `UNKNOWN_TOPIC` instead of waiting on a log that will never grow.
    deleted: tokio_util::sync::CancellationToken,
}

impl Partition {
    pub fn new(topic: String, index: u32, log: PartitionLog) -> Self {
        let (high_watermark, _) = watch::channel(log.high_watermark());
        Partition {
            topic,
            index,
            log: Arc::new(log),
            high_watermark,
            compacted_at_segments: std::sync::atomic::AtomicUsize::new(0),
            deleted: tokio_util::sync::CancellationToken::new(),
        }
    }

    pub fn log(&self) -> &Arc<PartitionLog> {
        &self.log
    }

    /// A receiver that changes when the high watermark moves.
    pub fn watch(&self) -> watch::Receiver<i64> {
        self.high_watermark.subscribe()
    }

    /// Appends batches on the blocking pool (an append may fsync) and wakes readers.
    ///
    /// An idempotent producer keeps several batches of a partition in flight on separate
    /// streams, and the broker serves streams concurrently, so a batch can arrive before
    /// the one preceding it. Such a batch waits (up to the request's timeout, at most `SEQUENCE_WAIT`) for its
    /// predecessor's append instead of being refused; a real gap is still refused with
    /// `OUT_OF_ORDER_SEQUENCE` once the wait ends.
    pub async fn append(
        &self,
        batches: bytes::Bytes,
        now_ms: i64,
        timeout: std::time::Duration,
    ) -> Result<AppendOutcome, BrokerError> {
        self.await_predecessor(&batches, timeout.min(SEQUENCE_WAIT))
            .await;
        let log = Arc::clone(&self.log);
        let outcome = tokio::task::spawn_blocking(move || log.append(&batches, now_ms))
            .await
            .map_err(|e| BrokerError::Internal(format!("append task failed: {e}")))?
            .map_err(|source| self.storage_error(source))?;
        self.high_watermark.send_replace(self.log.high_watermark());
        Ok(outcome)
    }

    /// Appends batches that carry no producer sequence (nothing to wait for) from a
    /// thread that may block, and wakes readers: for callers already on the blocking pool.
    pub fn append_blocking(
        &self,
        batches: &[u8],
        now_ms: i64,
    ) -> Result<AppendOutcome, BrokerError> {
        let outcome = self
            .log
            .append(batches, now_ms)
            .map_err(|source| self.storage_error(source))?;
        self.high_watermark.send_replace(self.log.high_watermark());
        Ok(outcome)
    }

    async fn await_predecessor(&self, batches: &[u8], wait: std::time::Duration) {
        let Ok(header) = quiver_proto::batch::BatchHeader::parse(batches) else {
            return; // the append itself reports what is wrong with the batch
        };
        if header.producer_id < 0 || header.base_sequence <= 0 {
            return;
        }
        let deadline = tokio::time::Instant::now() + wait;
        let mut watch = self.watch();
        loop {
            watch.borrow_and_update();
            let expected = match self.log.producer_state(header.producer_id) {
                Some(entry) if entry.epoch == header.producer_epoch => entry
                    .batches
                    .last()
                    .map_or(0, |b| b.last_sequence.wrapping_add(1)),
                _ => 0,
            };
            // Only a batch ahead of the next expected sequence waits; duplicates and
            // stale epochs go straight to the log, which knows what to answer.
            let ahead = header.base_sequence > expected
                && header.base_sequence - expected <= MAX_SEQUENCE_LEAD;
            if !ahead {
                return;
            }
            match tokio::time::timeout_at(deadline, watch.changed()).await {
                Ok(Ok(())) => continue,
                _ => return,
            }
        }
    }

    /// Reads whole batches from `offset`, at most about `max_bytes`.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome, BrokerError> {
        let log = Arc::clone(&self.log);
        tokio::task::spawn_blocking(move || log.read(offset, max_bytes))
            .await
            .map_err(|e| BrokerError::Internal(format!("read task failed: {e}")))?
            .map_err(|source| self.storage_error(source))
    }

    /// Marks the partition deleted, waking everything that waits on it.
    pub fn mark_deleted(&self) {
        self.deleted.cancel();
    }

    /// Completes when the partition's topic has been deleted.
    pub async fn deleted(&self) {
        self.deleted.cancelled().await;
    }

    /// The error a reader of a deleted partition gets.
    pub fn deleted_error(&self) -> BrokerError {
        BrokerError::UnknownTopic(self.topic.clone())
    }

    /// Whether a segment has closed since the last compaction (and records it as done).
    pub fn take_compaction_due(&self) -> bool {
        use std::sync::atomic::Ordering;
        let segments = self.log.segment_count();
        segments > 1 && self.compacted_at_segments.swap(segments, Ordering::Relaxed) != segments
    }

    pub fn storage_error(&self, source: quiver_storage::StorageError) -> BrokerError {
        BrokerError::Storage {
            topic: self.topic.clone(),
            partition: self.index,
            source,
        }
    }
}
