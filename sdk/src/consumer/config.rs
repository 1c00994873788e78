//! [`ConsumerConfig`] and the records a consumer returns.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quiver_proto::Header;
use quiver_proto::api::FilterSpec;

/// Where a partition with no position starts reading.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OffsetReset {
    /// From the log start.
    Earliest,
    /// From the log end: only records appended from now on (Kafka's default).
    #[default]
    Latest,
    /// Fail with [`Error::NoOffset`](crate::Error::NoOffset): the application must seek.
    None,
}

/// How a [`Consumer`](crate::Consumer) fetches.
#[derive(Debug, Clone)]
pub struct ConsumerConfig {
    /// Start of partitions with no position, and reaction to an out-of-range offset.
    /// Default [`OffsetReset::Latest`].
    pub auto_offset_reset: OffsetReset,
    /// Upper bound on batch bytes per fetch of one partition. Default 4 MiB; keep it
    /// under the client's `max_frame_size`.
    pub max_bytes: u32,
    /// How long the broker holds a fetch open when the partition has nothing new
    /// (a long poll woken by appends). Default 500 ms.
    pub max_wait: Duration,
    /// Bytes the broker waits for before answering early. Default 1.
    pub min_bytes: u32,
    /// Most records one [`Consumer::poll`](crate::Consumer::poll) returns. Default 500.
    pub max_poll_records: usize,
    /// A filter plugin run on the broker for every fetch; dropped records never cross the
    /// network and the position still moves past them. Default none.
    pub filter: Option<FilterSpec>,
    /// Delay before re-fetching a partition after a retriable fetch error. Default 100 ms.
    pub retry_backoff: Duration,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Latest,
            max_bytes: 4 * 1024 * 1024,
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_poll_records: 500,
            filter: None,
            retry_backoff: Duration::from_millis(100),
        }
    }
}

/// A record read from a partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: Arc<str>,
    pub partition: u32,
    pub offset: i64,
    /// Milliseconds since the Unix epoch.
    pub timestamp: i64,
    pub key: Option<Bytes>,
    /// `None` is a tombstone.
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}
