//! One partition as the broker serves it: its log, and a signal that wakes long polls
//! and subscriptions when the log grows.

use std::sync::Arc;

use quiver_storage::{AppendOutcome, PartitionLog, ReadOutcome};
use tokio::sync::watch;

use crate::error::BrokerError;

/// A partition's log plus the high-watermark signal readers wait on.
#[derive(Debug)]
pub struct Partition {
    pub topic: String,
    pub index: u32,
    log: Arc<PartitionLog>,
    /// Carries the high watermark; every append publishes the new one, so a waiting
    /// fetch or subscription wakes exactly when there is something new to read.
    high_watermark: watch::Sender<i64>,
}

impl Partition {
    pub fn new(topic: String, index: u32, log: PartitionLog) -> Self {
        let (high_watermark, _) = watch::channel(log.high_watermark());
        Partition {
            topic,
            index,
            log: Arc::new(log),
            high_watermark,
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
    pub async fn append(&self, batches: bytes::Bytes, now_ms: i64) -> Result<AppendOutcome, BrokerError> {
        let log = Arc::clone(&self.log);
        let outcome = tokio::task::spawn_blocking(move || log.append(&batches, now_ms))
            .await
            .map_err(|e| BrokerError::Internal(format!("append task failed: {e}")))?
            .map_err(|source| self.storage_error(source))?;
        self.high_watermark.send_replace(self.log.high_watermark());
        Ok(outcome)
    }

    /// Reads whole batches from `offset`, at most about `max_bytes`.
    pub async fn read(&self, offset: i64, max_bytes: usize) -> Result<ReadOutcome, BrokerError> {
        let log = Arc::clone(&self.log);
        tokio::task::spawn_blocking(move || log.read(offset, max_bytes))
            .await
            .map_err(|e| BrokerError::Internal(format!("read task failed: {e}")))?
            .map_err(|source| self.storage_error(source))
    }

    pub fn storage_error(&self, source: quiver_storage::StorageError) -> BrokerError {
        BrokerError::Storage {
            topic: self.topic.clone(),
            partition: self.index,
            source,
        }
    }
}
