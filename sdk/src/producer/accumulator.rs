//! The producer's deterministic core: per-partition batches, when they close, when they
//! may be sent, sequence numbers, and what a response or failure does to them.
//!
//! No I/O and no clock of its own: the sender task passes `now` in, sends the
//! [`SendJob`]s that [`Accumulator::drain`] returns, and reports each outcome through
//! [`Accumulator::complete`]. That keeps every ordering rule testable without a broker.
//!
//! Ordering rule: a partition's closed batches leave in creation order, and a failed
//! batch goes back into the queue at its creation position, so no later batch overtakes
//! it. After a failure the partition sends one batch at a time until a retried batch
//! succeeds (with idempotence the broker would refuse later sequences anyway).
//!
//! Window rule: a new batch goes out only while fewer than `max_in_flight_per_partition`
//! batches were first sent since the oldest one not yet acknowledged, counting the
//! acknowledged ones in between. The broker recognises a retry only among the last that
//! many batches it stored of the producer; a batch that failed while later ones were
//! acknowledged (its answer lost, they answered) must still be among them when its retry
//! arrives, however many new batches are sent meanwhile.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;

use bytes::Bytes;
use quiver_proto::api::{Acks, ProduceRequest, ProduceResponse};
use quiver_proto::batch::{BatchBuilder, ProducerIdentity};
use quiver_proto::buffers::{BufferPool, POOLED_MIN_BYTES};
use quiver_proto::{ErrorCode, Header};
use tokio::sync::Semaphore;
use tokio::time::Instant;

use super::record::{Placement, Reporter, UNKNOWN_PARTITION};
use crate::options::backoff;
use crate::partitioner::StickyPartitioner;
use crate::{DeliveryFuture, Error, ProducerConfig};

/// Where a record should go, decided before the accumulator's lock is taken except for
/// the sticky choice, which depends on batch state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Route {
    /// A known partition: explicit, or from the key hash.
    Partition(u32),
    /// The broker's Wasm partitioner decides.
    Broker,
    /// Keyless: the topic's current sticky partition.
    Sticky,
}

/// One record handed to [`Accumulator::append`].
#[derive(Debug)]
pub(crate) struct Append<'a> {
    pub topic: &'a Arc<str>,
    pub route: Route,
    pub partitions: u32,
    pub timestamp: i64,
    pub key: Option<&'a [u8]>,
    pub value: Option<&'a [u8]>,
    pub headers: &'a [Header],
    pub size: usize,
    /// Buffer memory already taken from the producer's semaphore for this record; the
    /// batch gives it back when it is done.
    pub memory: Reserved,
}

/// A produce request the sender should issue now.
#[derive(Debug)]
pub(crate) struct SendJob {
    pub id: u64,
    pub topic: Arc<str>,
    pub partition: Option<u32>,
    pub request: ProduceRequest,
    pub payload: Bytes,
}

/// A producer id and epoch from `InitProducerId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProducerId {
    pub id: i64,
    pub epoch: i16,
}

#[derive(Debug)]
struct Batch {
    id: u64,
    topic: Arc<str>,
    partition: Option<u32>,
    builder: BatchBuilder,
    /// Built once, at the first send, so retries resend the same bytes and sequence.
    payload: Option<Bytes>,
    /// Where its records learn what became of them.
    outcome: Reporter,
    records: u32,
    created: Instant,
    attempts: u32,
    /// Sent more than once (after a failure or a refused gap).
    resent: bool,
    /// Its place among the partition's batches in the order they were first sent.
    send_index: Option<u64>,
    retry_at: Option<Instant>,
    base_sequence: Option<i32>,
    /// Buffer memory held until the batch is done; dropping it wakes waiting senders.
    _memory: Reserved,
}

/// Bytes taken from the producer's buffer-memory semaphore, given back on drop. A batch
/// absorbs the reservations of its records, so a record costs one addition, not a
/// permit of its own.
#[derive(Debug)]
pub(crate) struct Reserved {
    semaphore: Arc<Semaphore>,
    bytes: usize,
}

impl Reserved {
    /// Takes `bytes` permits from `semaphore` (waiting for them) and holds them.
    pub async fn take(semaphore: &Arc<Semaphore>, bytes: u32) -> Result<Reserved, Error> {
        // Always through `acquire_many`, never a `try_acquire` shortcut: the semaphore
        // spends tokio's cooperative budget, so a tight `send` loop yields now and then
        // and the sender task and the connection on the same thread keep moving. Without
        // that the loop runs until the buffer is full, and batches go out in bursts.
        let permit = semaphore
            .acquire_many(bytes)
            .await
            .map_err(|_| Error::ProducerClosed)?;
        permit.forget();
        Ok(Reserved {
            semaphore: semaphore.clone(),
            bytes: bytes as usize,
        })
    }

    /// Takes `bytes` permits if they are free now.
    #[cfg(test)]
    pub fn try_take(semaphore: &Arc<Semaphore>, bytes: u32) -> Option<Reserved> {
        let permit = semaphore.try_acquire_many(bytes).ok()?;
        permit.forget();
        Some(Reserved {
            semaphore: semaphore.clone(),
            bytes: bytes as usize,
        })
    }

    /// Moves `other`'s bytes into this reservation.
    fn absorb(&mut self, mut other: Reserved) {
        self.bytes += std::mem::take(&mut other.bytes);
    }
}

impl Drop for Reserved {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.semaphore.add_permits(self.bytes);
        }
    }
}

impl Batch {
    fn fail(self, error: &Error) {
        self.outcome.0.complete(Err(error.clone()));
    }
}

#[derive(Debug, Default)]
struct PartitionQueue {
    open: Option<Batch>,
    /// Closed batches waiting to be sent, ascending by id.
    queue: VecDeque<Batch>,
    in_flight: BTreeMap<u64, Batch>,
    next_sequence: i32,
    /// How many batches were ever sent (see the window rule in the module docs).
    sent_batches: u64,
    /// A batch failed and is being retried: send one at a time until one succeeds.
    recovering: bool,
    /// Bytes the last batch closed with, from which a new batch's room is sized (see
    /// [`initial_capacity`]).
    last_batch_bytes: usize,
}

/// Room a new batch starts with: a quarter more than the last batch of its partition
/// took, at most `batch_size`. Batches of a steady stream differ by a few bytes (the
/// varint deltas), so starting at exactly the last size would make every other batch
/// outgrow its buffer and copy itself into one twice as large; a full batch never
/// exceeds `batch_size`, so at full speed each batch is allocated once, at that size.
fn initial_capacity(last_batch_bytes: usize, first_record: usize, batch_size: usize) -> usize {
    let roomy = last_batch_bytes.saturating_add(last_batch_bytes / 4);
    batch_size.min(roomy.max(first_record.saturating_mul(2)))
}

#[derive(Debug)]
struct TopicQueues {
    /// The topic's partition count at the last append, for the sticky partitioner.
    count: u32,
    partitions: foldhash::HashMap<Option<u32>, PartitionQueue>,
}

/// The producer's batches and their state; see the module docs.
#[derive(Debug)]
pub(crate) struct Accumulator {
    config: ProducerConfig,
    identity: Option<ProducerId>,
    topics: foldhash::HashMap<Arc<str>, TopicQueues>,
    sticky: StickyPartitioner,
    next_batch_id: u64,
    /// Batches open, queued or in flight; zero means flushed.
    live: usize,
    /// While positive, open batches are sent without waiting for linger.
    flushing: usize,
    fatal: Option<Error>,
    /// No more records are accepted; what is buffered is sent without linger.
    closed: bool,
    /// Buffers of acknowledged batches, which new batches are built in while still warm.
    buffers: BufferPool,
}

/// Idle batch buffers a producer keeps. At full speed a batch is acknowledged about as
/// often as one is opened, so a few suffice.
const POOLED_BATCHES: usize = 4;

/// What an append changed, so the sender is woken only when it has new work or a new
/// linger deadline, not once per record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AppendOutcome {
    /// A batch closed and may be sent now.
    pub closed: bool,
    /// A batch opened, with a linger deadline the sender does not know yet.
    pub opened: bool,
}

impl AppendOutcome {
    pub fn wake_sender(self) -> bool {
        self.closed || self.opened
    }
}

impl Accumulator {
    pub fn new(config: ProducerConfig, identity: Option<ProducerId>, seed: u64) -> Self {
        Accumulator {
            identity,
            topics: foldhash::HashMap::default(),
            sticky: StickyPartitioner::with_seed(seed),
            next_batch_id: 0,
            live: 0,
            flushing: 0,
            fatal: None,
            closed: false,
            buffers: BufferPool::new(
                POOLED_BATCHES,
                POOLED_MIN_BYTES,
                POOLED_BATCHES * config.batch_size.max(POOLED_MIN_BYTES),
            ),
            config,
        }
    }

    /// Fails if records can no longer be appended.
    pub fn check_open(&self) -> Result<(), Error> {
        match (&self.fatal, self.closed) {
            (Some(fatal), _) => Err(fatal.clone()),
            (None, true) => Err(Error::ProducerClosed),
            (None, false) => Ok(()),
        }
    }

    /// Refuses further records and sends the buffered ones at once.
    pub fn close(&mut self) {
        self.closed = true;
    }

    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// True when nothing is buffered or in flight.
    pub fn is_empty(&self) -> bool {
        self.live == 0
    }

    pub fn begin_flush(&mut self) {
        self.flushing += 1;
    }

    pub fn end_flush(&mut self) {
        self.flushing = self.flushing.saturating_sub(1);
    }

    /// Adds a record to its partition's open batch. `now` is read only when the record
    /// opens a new batch (whose linger starts then).
    pub fn append(
        &mut self,
        rec: Append<'_>,
        now: impl FnOnce() -> Instant,
    ) -> Result<(AppendOutcome, DeliveryFuture), Error> {
        self.check_open()?;
        let batch_size = self.config.batch_size;
        let tq = self
            .topics
            .entry(Arc::clone(rec.topic))
            .or_insert_with(|| TopicQueues {
                count: 0,
                partitions: foldhash::HashMap::default(),
            });
        tq.count = rec.partitions;
        let mut closed = false;
        let partition = match rec.route {
            Route::Partition(p) => Some(p),
            Route::Broker => None,
            Route::Sticky => {
                let p = self.sticky.partition(rec.topic, rec.partitions);
                // A record that would overflow the sticky partition's batch closes it and
                // moves on to the next sticky partition, as Kafka's partitioner does.
                let full = tq
                    .partitions
                    .get(&Some(p))
                    .and_then(|q| q.open.as_ref())
                    .is_some_and(|b| b.builder.size_estimate() + rec.size > batch_size);
                if full {
                    close_open(tq, Some(p), &mut self.sticky);
                    closed = true;
                    Some(self.sticky.partition(rec.topic, rec.partitions))
                } else {
                    Some(p)
                }
            }
        };
        let pq = tq.partitions.entry(partition).or_default();
        if pq
            .open
            .as_ref()
            .is_some_and(|b| b.builder.size_estimate() + rec.size > batch_size)
        {
            close_open(tq, partition, &mut self.sticky);
            closed = true;
        }
        let pq = tq.partitions.entry(partition).or_default();
        let opened = pq.open.is_none();
        let memory = rec.memory;
        let batch = match &mut pq.open {
            Some(batch) => {
                batch._memory.absorb(memory);
                batch
            }
            open @ None => {
                self.next_batch_id += 1;
                self.live += 1;
                open.insert(Batch {
                    id: self.next_batch_id,
                    topic: Arc::clone(rec.topic),
                    partition,
                    builder: BatchBuilder::with_buffer(self.buffers.take(initial_capacity(
                        pq.last_batch_bytes,
                        rec.size,
                        batch_size,
                    ))),
                    payload: None,
                    outcome: Reporter::default(),
                    records: 0,
                    created: now(),
                    attempts: 0,
                    resent: false,
                    send_index: None,
                    retry_at: None,
                    base_sequence: None,
                    _memory: memory,
                })
            }
        };
        batch
            .builder
            .push(rec.timestamp, rec.key, rec.value, rec.headers);
        let delivery =
            DeliveryFuture::new(Arc::clone(&batch.outcome.0), batch.records, rec.timestamp);
        batch.records += 1;
        if batch.builder.size_estimate() >= batch_size {
            close_open(tq, partition, &mut self.sticky);
            closed = true;
        }
        Ok((AppendOutcome { closed, opened }, delivery))
    }

    /// Closes batches whose linger expired (all of them while flushing) and returns the
    /// batches that may be sent now, respecting order and in-flight limits.
    pub fn drain(&mut self, now: Instant) -> Vec<SendJob> {
        let mut jobs = Vec::new();
        let linger = self.config.linger;
        let flushing = self.flushing > 0 || self.closed;
        for tq in self.topics.values_mut() {
            let keys: Vec<Option<u32>> = tq.partitions.keys().copied().collect();
            for key in keys {
                let expired = tq.partitions[&key]
                    .open
                    .as_ref()
                    .is_some_and(|b| flushing || now >= b.created + linger);
                if expired {
                    close_open(tq, key, &mut self.sticky);
                }
                let Some(pq) = tq.partitions.get_mut(&key) else {
                    continue;
                };
                send_ready(
                    pq,
                    &self.buffers,
                    &self.config,
                    self.identity,
                    now,
                    &mut jobs,
                );
            }
        }
        jobs
    }

    /// When [`Accumulator::drain`] next has something to do without other events: the
    /// earliest linger deadline or retry backoff end.
    pub fn next_wakeup(&self) -> Option<Instant> {
        let mut next: Option<Instant> = None;
        let mut consider = |t: Instant| next = Some(next.map_or(t, |n| n.min(t)));
        for tq in self.topics.values() {
            for pq in tq.partitions.values() {
                if let Some(open) = &pq.open {
                    consider(open.created + self.config.linger);
                }
                if let Some(at) = pq.queue.front().and_then(|b| b.retry_at) {
                    consider(at);
                }
            }
        }
        next
    }

    /// Applies the outcome of a sent batch: reports success, schedules a retry in order,
    /// or fails it for good.
    pub fn complete(
        &mut self,
        topic: &str,
        partition: Option<u32>,
        id: u64,
        outcome: Result<Option<ProduceResponse>, Error>,
        now: Instant,
    ) {
        let Some(pq) = self
            .topics
            .get_mut(topic)
            .and_then(|tq| tq.partitions.get_mut(&partition))
        else {
            return;
        };
        let Some(mut batch) = pq.in_flight.remove(&id) else {
            return;
        };
        let error = match outcome {
            Ok(resp) => {
                if batch.resent {
                    pq.recovering = false;
                }
                // Reused once the transport has let go of it too.
                if let Some(payload) = batch.payload.take() {
                    self.buffers.recycle(payload);
                }
                report_success(batch, resp.as_ref(), self.config.acks);
                self.live -= 1;
                return;
            }
            Err(e) => e,
        };
        let code = error.code();
        let fenced = matches!(
            code,
            Some(ErrorCode::INVALID_PRODUCER_EPOCH | ErrorCode::UNKNOWN_PRODUCER_ID)
        );
        // A gap is expected, and retriable, while an earlier batch of this partition is
        // itself still unacknowledged: it is being retried or about to fail.
        let earlier_pending = pq.in_flight.keys().next().is_some_and(|k| *k < id)
            || pq.queue.front().is_some_and(|b| b.id < id);
        let gap = code == Some(ErrorCode::OUT_OF_ORDER_SEQUENCE);
        let retriable = !fenced && (error.is_retriable() || (gap && earlier_pending));
        let deadline = batch.created + self.config.delivery_timeout;
        if retriable && now < deadline && batch.attempts < self.config.retries {
            if gap && !error.is_retriable() {
                // Refused only because it overtook an earlier batch (streams race): resend
                // right after that one, without backoff and without spending an attempt.
                batch.retry_at = None;
            } else if matches!(error, Error::Unreachable { .. }) {
                // The leader is a suspect: nothing was sent, and each try only asks a live
                // broker for metadata, so keep asking at the first step's pace; the new
                // leader is used as soon as the cluster names it, not a backoff later.
                tracing::debug!(%topic, ?partition, attempt = batch.attempts, %error, "waiting for a new leader");
                batch.attempts += 1;
                batch.retry_at = Some(now + self.config.retry_backoff);
            } else {
                let delay = backoff(
                    self.config.retry_backoff,
                    self.config.retry_backoff_max,
                    batch.attempts,
                );
                tracing::debug!(%topic, ?partition, attempt = batch.attempts, %error, "retrying batch");
                batch.attempts += 1;
                batch.retry_at = Some(now + delay);
            }
            batch.resent = true;
            let at = pq.queue.partition_point(|b| b.id < batch.id);
            pq.queue.insert(at, batch);
            pq.recovering = true;
            return;
        }
        let error = if retriable && now >= deadline {
            Error::Timeout {
                what: "record delivery",
                after: self.config.delivery_timeout,
            }
        } else {
            error
        };
        let sequenced = batch.base_sequence.is_some();
        batch.fail(&error);
        self.live -= 1;
        if sequenced || fenced {
            // Later sequences of this partition can never be accepted now; rather than
            // risk reordering or silent loss, the producer stops.
            let fatal = Error::ProducerFatal(format!(
                "a sequenced batch for {topic}{} failed: {error}",
                partition.map(|p| format!("-{p}")).unwrap_or_default()
            ));
            for b in pq.queue.drain(..).chain(pq.open.take()) {
                b.fail(&fatal);
                self.live -= 1;
            }
            self.fatal = Some(fatal);
        }
    }
}

/// Moves a partition's open batch to its send queue and tells the sticky partitioner.
fn close_open(tq: &mut TopicQueues, partition: Option<u32>, sticky: &mut StickyPartitioner) {
    let Some(pq) = tq.partitions.get_mut(&partition) else {
        return;
    };
    if let Some(batch) = pq.open.take() {
        pq.last_batch_bytes = batch.builder.size_estimate();
        if let Some(p) = partition {
            sticky.on_batch_closed(&batch.topic, p, tq.count);
        }
        pq.queue.push_back(batch);
    }
}

fn send_ready(
    pq: &mut PartitionQueue,
    buffers: &BufferPool,
    config: &ProducerConfig,
    identity: Option<ProducerId>,
    now: Instant,
    jobs: &mut Vec<SendJob>,
) {
    loop {
        let limit = if pq.recovering {
            1
        } else {
            config.max_in_flight_per_partition
        };
        if pq.in_flight.len() >= limit {
            return;
        }
        let Some(front) = pq.queue.front() else {
            return;
        };
        if front.retry_at.is_some_and(|t| t > now) {
            return;
        }
        if front.send_index.is_none() && !window_has_room(pq, config.max_in_flight_per_partition) {
            return;
        }
        let Some(mut batch) = pq.queue.pop_front() else {
            return;
        };
        let payload = match &batch.payload {
            Some(p) => p.clone(),
            None => {
                let producer = match (identity, batch.partition) {
                    (Some(id), Some(_)) if config.sequenced() => {
                        let base = pq.next_sequence;
                        let count = batch.builder.len() as i64;
                        pq.next_sequence =
                            ((i64::from(base) + count) % (i64::from(i32::MAX) + 1)) as i32;
                        batch.base_sequence = Some(base);
                        ProducerIdentity {
                            producer_id: id.id,
                            producer_epoch: id.epoch,
                            base_sequence: base,
                        }
                    }
                    _ => ProducerIdentity::NONE,
                };
                // The builder's buffer becomes the payload (uncompressed, without a copy);
                // compressed, the payload is a new buffer and the builder's is reused.
                let (built, spare) = std::mem::take(&mut batch.builder)
                    .finish_with_spare(config.compression, producer);
                if let Some(spare) = spare {
                    buffers.recycle_vec(spare);
                }
                batch.payload = Some(built.clone());
                batch.send_index = Some(pq.sent_batches);
                pq.sent_batches += 1;
                built
            }
        };
        jobs.push(SendJob {
            id: batch.id,
            topic: batch.topic.clone(),
            partition: batch.partition,
            request: ProduceRequest {
                topic: batch.topic.to_string(),
                partition: batch.partition,
                acks: config.acks,
                timeout_ms: config.request_timeout.as_millis().min(u128::from(u32::MAX)) as u32,
            },
            payload,
        });
        pq.in_flight.insert(batch.id, batch);
    }
}

/// Whether a batch never sent before may go now: fewer than `max` batches were first
/// sent since the oldest unacknowledged one. Those wait for a retry at the front of the
/// queue (retries go back to their creation position, ahead of every new batch) or are
/// in flight, where the first by id is the first sent.
fn window_has_room(pq: &PartitionQueue, max: usize) -> bool {
    let queued = pq.queue.front().and_then(|b| b.send_index);
    let flying = pq.in_flight.values().next().and_then(|b| b.send_index);
    let oldest = match (queued, flying) {
        (Some(a), Some(b)) => a.min(b),
        (Some(a), None) | (None, Some(a)) => a,
        (None, None) => return true,
    };
    pq.sent_batches - oldest < max as u64
}

/// Reports each record's partition and offset. A batch the broker's partitioner kept in
/// one partition gets exact offsets. When it split the batch across partitions, the
/// response does not say which record went where, so those records are reported with
/// [`UNKNOWN_PARTITION`] and offset `-1` rather than with a guess.
fn report_success(batch: Batch, resp: Option<&ProduceResponse>, acks: Acks) {
    let exact = resp
        .filter(|_| acks != Acks::None)
        .filter(|r| r.routed.len() <= 1)
        .map(|r| match r.routed.first() {
            Some(only) => (only.partition, only.base_offset),
            None => (r.partition, r.base_offset),
        });
    let (partition, base_offset) = match exact {
        Some((p, base)) => (p, Some(base)),
        None if acks == Acks::None => (batch.partition.unwrap_or(UNKNOWN_PARTITION), None),
        None => (UNKNOWN_PARTITION, None),
    };
    batch.outcome.0.complete(Ok(Placement {
        topic: batch.topic.clone(),
        partition,
        base_offset,
    }));
}

#[cfg(test)]
#[path = "accumulator_tests.rs"]
mod tests;
