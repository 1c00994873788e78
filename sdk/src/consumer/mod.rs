//! [`Consumer`]: reads assigned partitions with long-poll fetches, one in flight per
//! partition, prefetching while the application works through the previous records.
//!
//! Positions are the consumer's own: [`Consumer::seek`] moves one, and a partition with
//! none starts where `auto_offset_reset` says. Group membership (subscribe, commits) will
//! be layered on the same fetch engine.

mod config;
mod fetcher;

use std::time::Duration;

use futures_core::Stream;
use quiver_proto::api::{OffsetSpec, TopicPartition};
use tokio::time::Instant;

pub use config::{ConsumerConfig, ConsumerRecord, OffsetReset};

use crate::{Client, Error};
use fetcher::Fetcher;

/// Reads records from assigned partitions. Not `Clone`: it owns its positions and the
/// fetches in flight, which are cancelled when it is dropped.
#[derive(Debug)]
pub struct Consumer {
    fetcher: Fetcher,
}

impl Consumer {
    pub(crate) fn new(client: Client, config: ConsumerConfig) -> Result<Consumer, Error> {
        if config.max_poll_records == 0 {
            return Err(Error::Config("max_poll_records must be at least 1".into()));
        }
        if config.max_bytes as usize > client.options().max_frame_size {
            return Err(Error::Config(format!(
                "max_bytes ({}) exceeds the client's max_frame_size ({}): lower it or raise the frame size",
                config.max_bytes,
                client.options().max_frame_size
            )));
        }
        if config.max_wait >= client.options().request_timeout {
            return Err(Error::Config(
                "max_wait must be shorter than the client's request_timeout".into(),
            ));
        }
        Ok(Consumer {
            fetcher: Fetcher::new(client, config),
        })
    }

    /// Reads exactly these partitions from now on; partitions that stay keep their
    /// positions, others are dropped with their buffered records.
    pub fn assign(&mut self, partitions: Vec<TopicPartition>) {
        self.fetcher.assign(partitions);
    }

    /// The assigned partitions, in order.
    pub fn assignment(&self) -> Vec<TopicPartition> {
        self.fetcher.assignment()
    }

    /// The next record of `tp` returned will be the one at `offset` (or the first after it).
    pub fn seek(&mut self, tp: &TopicPartition, offset: i64) -> Result<(), Error> {
        self.fetcher.seek(tp, offset)
    }

    /// Moves each partition to its log start.
    pub async fn seek_to_beginning(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        self.seek_to(partitions, OffsetSpec::Earliest).await
    }

    /// Moves each partition to its log end: only records appended later are read.
    pub async fn seek_to_end(&mut self, partitions: &[TopicPartition]) -> Result<(), Error> {
        self.seek_to(partitions, OffsetSpec::Latest).await
    }

    /// Moves each partition to the first record at or after `timestamp` (ms), or to the
    /// log end when none is that recent.
    pub async fn seek_to_timestamp(
        &mut self,
        partitions: &[TopicPartition],
        timestamp: i64,
    ) -> Result<(), Error> {
        for tp in partitions {
            let offset = match self
                .fetcher
                .lookup(tp, OffsetSpec::Timestamp(timestamp))
                .await
            {
                Ok(offset) => offset,
                Err(e) if e.code() == Some(quiver_proto::ErrorCode::OFFSET_OUT_OF_RANGE) => {
                    self.fetcher.lookup(tp, OffsetSpec::Latest).await?
                }
                Err(e) => return Err(e),
            };
            self.fetcher.seek(tp, offset)?;
        }
        Ok(())
    }

    async fn seek_to(
        &mut self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<(), Error> {
        for tp in partitions {
            let offset = self.fetcher.lookup(tp, spec).await?;
            self.fetcher.seek(tp, offset)?;
        }
        Ok(())
    }

    /// The offset of the next record [`Consumer::poll`] will return for `tp`; `None`
    /// before the first poll or seek.
    pub fn position(&self, tp: &TopicPartition) -> Result<Option<i64>, Error> {
        self.fetcher.position(tp)
    }

    /// Returns the next records (at most `max_poll_records`), waiting up to `timeout`
    /// for some to arrive; an empty vector means none arrived in time.
    pub async fn poll(&mut self, timeout: Duration) -> Result<Vec<ConsumerRecord>, Error> {
        self.fetcher.poll(Instant::now() + timeout).await
    }

    /// The records as an endless stream. An error is yielded once and the stream goes on;
    /// stop on errors that are not [`Error::is_retriable`] if that suits the application.
    /// The stream is `Unpin`, so `StreamExt::next` works on it directly.
    pub fn stream(&mut self) -> impl Stream<Item = Result<ConsumerRecord, Error>> + Unpin + '_ {
        let pending = std::collections::VecDeque::new();
        Box::pin(futures_util::stream::unfold(
            (self, pending),
            |(consumer, mut pending)| async move {
                loop {
                    if let Some(record) = pending.pop_front() {
                        return Some((Ok(record), (consumer, pending)));
                    }
                    match consumer.poll(Duration::from_secs(60)).await {
                        Ok(records) => pending.extend(records),
                        Err(e) => return Some((Err(e), (consumer, pending))),
                    }
                }
            },
        ))
    }
}
