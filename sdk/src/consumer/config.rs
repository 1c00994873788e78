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
    /// Fetches of one partition that may be in flight at once, each of up to
    /// `max_bytes`: the next is sent as soon as the previous response's head arrives, so
    /// the broker reads while the network carries the batches before. Default 2; 1
    /// sends the next fetch only once the previous one has arrived whole.
    pub fetches_in_flight: usize,
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
    /// Check each fetched batch's CRC-32C before decoding it, as Kafka's `check.crcs`:
    /// a batch damaged on disk or on the way is reported as [`Error::Batch`] naming the
    /// partition and offset, never handed over as records. Default true; it costs one
    /// pass of hardware CRC over the fetched bytes.
    ///
    /// [`Error::Batch`]: crate::Error::Batch
    pub check_crcs: bool,
    /// Delay before re-fetching a partition after a retriable fetch error. Default 100 ms.
    pub retry_backoff: Duration,
    /// The consumer group to join on [`Consumer::subscribe`](crate::Consumer::subscribe)
    /// and to commit offsets for. Default none: a standalone consumer.
    pub group_id: Option<String>,
    /// Names this consumer in group descriptions and member ids. Default `quiver-sdk`.
    pub client_id: String,
    /// The group drops this member when no heartbeat arrives for this long. Default 10 s;
    /// the broker accepts 6 s to 30 min unless configured otherwise.
    pub session_timeout: Duration,
    /// Longest time between two polls while a rebalance waits for this member; past it
    /// the group goes on without it (it rejoins at its next poll). Default 5 min.
    pub max_poll_interval: Duration,
    /// How often the background task heartbeats; keep it under a third of
    /// `session_timeout`. Default 3 s.
    pub heartbeat_interval: Duration,
    /// Commit the positions of the records returned so far, every
    /// `auto_commit_interval` at the start of a poll, before partitions are revoked, and
    /// on close. Default true: at-least-once delivery with no code.
    pub enable_auto_commit: bool,
    /// Default 5 s.
    pub auto_commit_interval: Duration,
    /// Assignment strategies this member accepts, preferred first: `cooperative-sticky`
    /// (partitions move one at a time and nobody stops reading the rest), `range`,
    /// `roundrobin`. Default `["cooperative-sticky", "range"]`.
    pub assignors: Vec<String>,
}

impl Default for ConsumerConfig {
    fn default() -> Self {
        ConsumerConfig {
            auto_offset_reset: OffsetReset::Latest,
            max_bytes: 4 * 1024 * 1024,
            fetches_in_flight: 2,
            max_wait: Duration::from_millis(500),
            min_bytes: 1,
            max_poll_records: 500,
            filter: None,
            check_crcs: true,
            retry_backoff: Duration::from_millis(100),
            group_id: None,
            client_id: "quiver-sdk".to_string(),
            session_timeout: Duration::from_secs(10),
            max_poll_interval: Duration::from_secs(300),
            heartbeat_interval: Duration::from_secs(3),
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_secs(5),
            assignors: vec!["cooperative-sticky".to_string(), "range".to_string()],
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
