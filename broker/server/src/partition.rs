//! One partition as the broker serves it: its log, and a signal that wakes long polls
//! and subscriptions when the log grows.
//!
//! A partition is online (it has a log) or offline (its log could not be opened, with the
//! reason). Readers and writers take the current log for each operation rather than
//! keeping it, so [`Partition::reopen`] can swap a freshly recovered log in (or take a
//! broken one out) while the broker runs; waiting fetches and subscriptions hold the
//! partition, not the log, and are woken by the swap.

use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use quiver_storage::{AppendOutcome, LogConfig, PartitionLog};
use tokio::sync::watch;

use crate::error::BrokerError;

/// How long a batch that arrived ahead of its predecessor waits for it.
const SEQUENCE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);
/// How far ahead a sequence may be and still be worth waiting for: a producer keeps at
/// most a few batches in flight, so a larger lead is a real gap.
const MAX_SEQUENCE_LEAD: i32 = 1 << 20;

/// Whether a partition has a log to serve from.
#[derive(Debug, Clone)]
enum LogState {
    Online(Arc<PartitionLog>),
    /// Why the log could not be opened; every operation on the partition fails with it.
    Offline(Arc<str>),
    /// Another broker holds this partition (in a cluster, a partition lives on its
    /// replicas only); operations here fail with `NotLeader` naming its leader.
    Remote(Option<u32>),
}

/// A partition's log plus the high-watermark signal readers wait on.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: u32,
    state: RwLock<LogState>,
    /// Serialises reopens of this partition.
    reopening: tokio::sync::Mutex<()>,
    /// Carries the high watermark; every append publishes the new one, so a waiting
    /// fetch or subscription wakes exactly when there is something new to read.
    high_watermark: watch::Sender<i64>,
    /// Segment count when the cleaner last compacted this partition; a roll changes it,
    /// which is when there is a newly closed segment worth cleaning.
    compacted_at_segments: std::sync::atomic::AtomicUsize,
    /// Cancelled when the topic is deleted, so waiting fetches and subscriptions end
    /// with `UNKNOWN_TOPIC` instead of waiting on a log that will never grow.
    deleted: tokio_util::sync::CancellationToken,
    /// Traffic in and out since the partition was opened, for the metrics endpoint.
    pub stats: crate::metrics::PartitionStats,
    /// Leader, follower or sole replica (see `replica/`).
    pub(crate) replica: parking_lot::Mutex<crate::replica::Role>,
    /// Notified after every append, for followers' fetches waiting on any of many
    /// partitions; shared by all the partitions of a broker.
    appended: Arc<tokio::sync::Notify>,
}

impl Partition {
    pub fn new(topic: String, index: u32, log: PartitionLog) -> Self {
        let high_watermark = log.high_watermark();
        Self::with_state(
            topic,
            index,
            LogState::Online(Arc::new(log)),
            high_watermark,
        )
    }

    /// A quarantined partition: its log could not be opened, for `reason`.
    pub fn offline(topic: String, index: u32, reason: String) -> Self {
        Self::with_state(topic, index, LogState::Offline(reason.into()), 0)
    }

    /// A partition this broker does not hold; `leader` is who leads it, if anyone.
    pub fn remote(topic: String, index: u32, leader: Option<u32>) -> Self {
        Self::with_state(topic, index, LogState::Remote(leader), 0)
    }

    /// Whether this broker holds a replica of the partition (online or offline).
    pub fn is_local(&self) -> bool {
        !matches!(&*self.state.read(), LogState::Remote(_))
    }

    /// Who leads a partition held elsewhere; `None` for a local one, or when nobody
    /// leads.
    pub fn remote_leader(&self) -> Option<u32> {
        match &*self.state.read() {
            LogState::Remote(leader) => *leader,
            _ => None,
        }
    }

    fn with_state(topic: String, index: u32, state: LogState, high_watermark: i64) -> Self {
        let (high_watermark, _) = watch::channel(high_watermark);
        Partition {
            topic,
            index,
            state: RwLock::new(state),
            reopening: tokio::sync::Mutex::new(()),
            high_watermark,
            compacted_at_segments: std::sync::atomic::AtomicUsize::new(0),
            deleted: tokio_util::sync::CancellationToken::new(),
            stats: crate::metrics::PartitionStats::default(),
            replica: parking_lot::Mutex::new(crate::replica::Role::Sole),
            appended: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// This partition, signalling its appends on the broker's shared `appended`.
    pub fn with_append_signal(mut self, appended: &Arc<tokio::sync::Notify>) -> Self {
        self.appended = Arc::clone(appended);
        self
    }

    /// Publishes a new high watermark to waiting readers.
    pub(crate) fn publish_high_watermark(&self, high_watermark: i64) {
        self.high_watermark.send_replace(high_watermark);
    }

    /// Wakes every waiter on this partition without changing what it reads.
    pub(crate) fn wake(&self) {
        self.high_watermark.send_modify(|_| {});
    }

    /// The current log, or [`BrokerError::PartitionOffline`] naming why there is none.
    /// Take it per operation: a reopen replaces it.
    pub fn log(&self) -> Result<Arc<PartitionLog>, BrokerError> {
        match &*self.state.read() {
            LogState::Online(log) => Ok(Arc::clone(log)),
            LogState::Offline(reason) => Err(self.offline_error(reason)),
            LogState::Remote(leader) => Err(BrokerError::NotLeader {
                topic: self.topic.clone(),
                partition: self.index,
                leader: *leader,
            }),
        }
    }

    /// The current log like [`Partition::log`], but a reopen in progress is waited out
    /// rather than reported as offline: for requests, which would rather be a moment late
    /// than fail because an operator reopened the partition.
    pub async fn current_log(&self) -> Result<Arc<PartitionLog>, BrokerError> {
        if self.reopening.try_lock().is_err() {
            drop(self.reopening.lock().await);
        }
        self.log()
    }

    /// Why the partition is offline, or `None` while it serves.
    pub fn offline_reason(&self) -> Option<String> {
        match &*self.state.read() {
            LogState::Online(_) | LogState::Remote(_) => None,
            LogState::Offline(reason) => Some(reason.to_string()),
        }
    }

    fn offline_error(&self, reason: &str) -> BrokerError {
        BrokerError::PartitionOffline {
            topic: self.topic.clone(),
            partition: self.index,
            reason: reason.to_string(),
        }
    }

    /// Re-runs recovery on this partition's directory `dir` with `config`, for an operator
    /// who fixed what made the log fail (a full disk, a failed fsync, a damaged file):
    /// the partition goes offline while it reopens, the old log (if any) is retired so it
    /// changes nothing on disk any more, the directory is opened again, and the new log is
    /// swapped in; if the open fails, the partition stays offline with that reason.
    /// Either way every waiting fetch and subscription wakes and reads the new state.
    pub async fn reopen(&self, dir: PathBuf, config: LogConfig) -> Result<(), BrokerError> {
        let _one_at_a_time = self.reopening.lock().await;
        let old = std::mem::replace(
            &mut *self.state.write(),
            LogState::Offline("it is being reopened".into()),
        );
        let opened = tokio::task::spawn_blocking(move || {
            if let LogState::Online(log) = old
                && let Err(e) = log.retire()
            {
                // A poisoned log cannot flush; what it wrote is recovered from disk below.
                tracing::warn!(dir = %log.dir().display(), error = %e, "flush before reopen failed");
            }
            PartitionLog::open(&dir, config)
        })
        .await
        .map_err(|e| BrokerError::Internal(format!("reopen task failed: {e}")));
        let result = match opened {
            Ok(Ok(log)) => {
                // A leader stamps its epoch into what it appends from now on, as when
                // it became leader (it may have been elected while this log was offline).
                if let Some(epoch) = self.leader_epoch_if_leading()
                    && let Err(e) = log.set_leader_epoch(epoch)
                {
                    tracing::warn!(topic = %self.topic, partition = self.index, error = %e, "cannot take the leader epoch after a reopen");
                }
                let high_watermark = log.high_watermark();
                *self.state.write() = LogState::Online(Arc::new(log));
                self.compacted_at_segments
                    .store(0, std::sync::atomic::Ordering::Relaxed);
                self.high_watermark.send_replace(high_watermark);
                tracing::info!(topic = %self.topic, partition = self.index, high_watermark, "partition reopened");
                Ok(())
            }
            Ok(Err(source)) => Err(source.to_string()),
            Err(e) => Err(e.to_string()),
        };
        result.map_err(|reason| {
            tracing::error!(topic = %self.topic, partition = self.index, reason = %reason, "partition stays offline: its log could not be reopened");
            let error = self.offline_error(&reason);
            *self.state.write() = LogState::Offline(reason.into());
            // Wake waiters so they fail now instead of waiting on a log that is gone.
            self.high_watermark.send_modify(|_| {});
            error
        })
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
        let log = self.current_log().await?;
        let appender = Arc::clone(&log);
        let len = batches.len();
        let outcome = tokio::task::spawn_blocking(move || appender.append(&batches, now_ms))
            .await
            .map_err(|e| BrokerError::Internal(format!("append task failed: {e}")))?
            .map_err(|source| self.storage_error(source))?;
        self.after_append(&log);
        self.count_append(len, &outcome);
        Ok(outcome)
    }

    /// Appends batches that carry no producer sequence (nothing to wait for) from a
    /// thread that may block, and wakes readers: for callers already on the blocking pool.
    pub fn append_blocking(
        &self,
        batches: &[u8],
        now_ms: i64,
    ) -> Result<AppendOutcome, BrokerError> {
        let log = self.log()?;
        let outcome = log
            .append(batches, now_ms)
            .map_err(|source| self.storage_error(source))?;
        self.after_append(&log);
        self.count_append(batches.len(), &outcome);
        Ok(outcome)
    }

    /// What every append is followed by: a leader alone in its ISR moves its high
    /// watermark, readers wake, waiting followers' fetches wake.
    fn after_append(&self, log: &PartitionLog) {
        self.update_high_watermark();
        self.high_watermark.send_replace(log.high_watermark());
        self.appended.notify_waiters();
    }

    fn count_append(&self, bytes: usize, outcome: &AppendOutcome) {
        if !outcome.duplicate {
            self.stats.appended(bytes, outcome.records);
        }
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
            let Ok(log) = self.log() else {
                return; // the append reports the partition offline
            };
            let expected = match log.producer_state(header.producer_id) {
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
        let Ok(log) = self.log() else {
            return false;
        };
        let segments = log.segment_count();
        segments > 1 && self.compacted_at_segments.swap(segments, Ordering::Relaxed) != segments
    }

    /// Marks the partition as moved off this broker (to `leader`), for the requests
    /// that still hold it: from now on they are told to go to the leader. Returns the
    /// log it had, for the caller to retire; waiting readers wake.
    pub(crate) fn move_away(&self, leader: Option<u32>) -> Option<Arc<PartitionLog>> {
        let old = std::mem::replace(&mut *self.state.write(), LogState::Remote(leader));
        self.wake();
        match old {
            LogState::Online(log) => Some(log),
            LogState::Offline(_) | LogState::Remote(_) => None,
        }
    }

    /// The error of a failed storage operation. A partition that moved off this broker
    /// while the operation ran (its log retired under it) answers `NOT_LEADER` instead,
    /// so that the client retries at the leader rather than giving up.
    pub fn storage_error(&self, source: quiver_storage::StorageError) -> BrokerError {
        if let LogState::Remote(leader) = &*self.state.read() {
            return BrokerError::NotLeader {
                topic: self.topic.clone(),
                partition: self.index,
                leader: *leader,
            };
        }
        BrokerError::Storage {
            topic: self.topic.clone(),
            partition: self.index,
            source,
        }
    }
}
