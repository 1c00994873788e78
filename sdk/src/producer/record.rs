//! What goes into a producer and what comes back: [`ProducerRecord`],
//! [`RecordMetadata`] and the [`DeliveryFuture`] that joins them.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use bytes::Bytes;
use quiver_proto::Header;
use tokio::sync::oneshot;

use crate::Error;

/// The partition reported for a record whose partition the broker chose and did not say:
/// a broker-routed record sent with `Acks::None`, or one of a batch that the broker's
/// partitioner split across several partitions (its offset is then `-1` too).
pub const UNKNOWN_PARTITION: u32 = u32::MAX;

/// A record to send.
#[derive(Debug, Clone, Default)]
pub struct ProducerRecord {
    /// Shared, so that sending many records to one topic clones a pointer, not a name.
    pub topic: Arc<str>,
    /// Send to this partition. Without one: the topic's Wasm partitioner on the broker if
    /// it has one, else the key's murmur2 hash, else the sticky partition.
    pub partition: Option<u32>,
    pub key: Option<Bytes>,
    /// `None` is a tombstone.
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    /// Milliseconds since the Unix epoch; defaults to the time of `send`.
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and nothing else.
    pub fn new(topic: impl Into<Arc<str>>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }

    /// Sets the key.
    pub fn key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }

    /// Sets an explicit partition.
    pub fn partition(mut self, partition: u32) -> Self {
        self.partition = Some(partition);
        self
    }

    /// Adds a header.
    pub fn header(mut self, key: impl Into<String>, value: impl Into<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value: Some(value.into()),
        });
        self
    }
}

/// Where a record was stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordMetadata {
    pub topic: Arc<str>,
    /// [`UNKNOWN_PARTITION`] when the broker routed the record and did not say where.
    pub partition: u32,
    /// `-1` when sent with `Acks::None`, or when the partition is unknown.
    pub offset: i64,
    /// The record's timestamp, ms.
    pub timestamp: i64,
}

/// Resolves when the broker has acknowledged a record (or it failed for good).
/// Dropping it does not cancel the send.
#[derive(Debug)]
pub struct DeliveryFuture {
    pub(crate) rx: oneshot::Receiver<Result<RecordMetadata, Error>>,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.rx)
            .poll(cx)
            .map(|r| r.unwrap_or(Err(Error::ProducerClosed)))
    }
}
