//! What goes into a producer and what comes back: [`ProducerRecord`],
//! [`RecordMetadata`] and the [`DeliveryFuture`] that joins them.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll, Waker};

use bytes::Bytes;
use quiver_proto::Header;

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

/// Where a batch went, once the broker has answered for it.
#[derive(Debug, Clone)]
pub(crate) struct Placement {
    pub topic: Arc<str>,
    pub partition: u32,
    /// Offset of the batch's first record; `None` when it is not known (`Acks::None`, or
    /// a batch the broker's partitioner split), and its records report `-1`.
    pub base_offset: Option<i64>,
}

/// The outcome of one batch, shared by the [`DeliveryFuture`]s of all its records: a
/// record costs the producer a reference, not a channel of its own, and a batch is
/// reported with one store and one wake per waiting future.
#[derive(Debug, Default)]
pub(crate) struct BatchOutcome {
    result: OnceLock<Result<Placement, Error>>,
    /// Wakers of futures polled before the result; a future keeps its slot.
    waiters: parking_lot::Mutex<Vec<Waker>>,
}

impl BatchOutcome {
    /// Sets the outcome (the first one set wins) and wakes every waiting future.
    pub fn complete(&self, result: Result<Placement, Error>) {
        if self.result.set(result).is_ok() {
            let waiters = std::mem::take(&mut *self.waiters.lock());
            for waker in waiters {
                waker.wake();
            }
        }
    }
}

/// Held by a batch: a batch dropped without an outcome (the producer went away) fails
/// its records with [`Error::ProducerClosed`] instead of leaving them waiting forever.
#[derive(Debug, Default)]
pub(crate) struct Reporter(pub Arc<BatchOutcome>);

impl Drop for Reporter {
    fn drop(&mut self) {
        self.0.complete(Err(Error::ProducerClosed));
    }
}

/// Resolves when the broker has acknowledged a record (or it failed for good).
/// Dropping it does not cancel the send.
#[derive(Debug)]
pub struct DeliveryFuture {
    outcome: Arc<BatchOutcome>,
    /// The record's place in its batch.
    index: u32,
    timestamp: i64,
    /// Where this future's waker sits in the batch's waiters, once it has waited.
    slot: Option<usize>,
}

impl DeliveryFuture {
    pub(crate) fn new(outcome: Arc<BatchOutcome>, index: u32, timestamp: i64) -> Self {
        DeliveryFuture {
            outcome,
            index,
            timestamp,
            slot: None,
        }
    }

    fn resolve(&self, result: &Result<Placement, Error>) -> Result<RecordMetadata, Error> {
        let placement = result.as_ref().map_err(Clone::clone)?;
        Ok(RecordMetadata {
            topic: placement.topic.clone(),
            partition: placement.partition,
            offset: placement
                .base_offset
                .map_or(-1, |base| base + i64::from(self.index)),
            timestamp: self.timestamp,
        })
    }
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata, Error>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        if let Some(result) = this.outcome.result.get() {
            return Poll::Ready(this.resolve(result));
        }
        let mut waiters = this.outcome.waiters.lock();
        // Looked at again under the lock: `complete` sets the result before it takes the
        // waiters, so a result set since the first look is seen here, and one set after
        // this look finds the waker registered below.
        if let Some(result) = this.outcome.result.get() {
            drop(waiters);
            return Poll::Ready(this.resolve(result));
        }
        match this.slot.and_then(|i| waiters.get_mut(i)) {
            Some(waker) => waker.clone_from(cx.waker()),
            None => {
                this.slot = Some(waiters.len());
                waiters.push(cx.waker().clone());
            }
        }
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::Wake;

    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn poll(f: &mut DeliveryFuture, waker: &Waker) -> Poll<Result<RecordMetadata, Error>> {
        Pin::new(f).poll(&mut Context::from_waker(waker))
    }

    #[test]
    fn records_of_a_batch_share_its_outcome_and_waiters_are_woken_once() {
        let reporter = Reporter::default();
        let mut first = DeliveryFuture::new(reporter.0.clone(), 0, 10);
        let mut third = DeliveryFuture::new(reporter.0.clone(), 2, 12);
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        assert!(poll(&mut first, &waker).is_pending());
        // Polled again: the future keeps its one slot.
        assert!(poll(&mut first, &waker).is_pending());
        assert_eq!(reporter.0.waiters.lock().len(), 1);
        reporter.0.complete(Ok(Placement {
            topic: Arc::from("t"),
            partition: 3,
            base_offset: Some(40),
        }));
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once");
        let Poll::Ready(Ok(meta)) = poll(&mut third, &waker) else {
            panic!("ready after the outcome");
        };
        assert_eq!((meta.partition, meta.offset, meta.timestamp), (3, 42, 12));
        let Poll::Ready(Ok(meta)) = poll(&mut first, &waker) else {
            panic!("ready after the outcome");
        };
        assert_eq!(meta.offset, 40);
        // A later outcome does not replace the first.
        reporter.0.complete(Err(Error::ProducerClosed));
        assert!(matches!(poll(&mut first, &waker), Poll::Ready(Ok(_))));
    }

    #[test]
    fn a_batch_dropped_without_an_outcome_fails_its_records() {
        let reporter = Reporter::default();
        let mut delivery = DeliveryFuture::new(reporter.0.clone(), 0, 0);
        drop(reporter);
        assert!(matches!(
            poll(&mut delivery, Waker::noop()),
            Poll::Ready(Err(Error::ProducerClosed))
        ));
    }
}
