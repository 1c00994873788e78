//! The producer's engine: `send` appends under a lock, one background task drains
//! batches and issues produce requests, many in flight at once, each on its own stream.
//!
//! The engine is generic over [`ProduceTransport`] so that tests drive it with a fake
//! broker; [`Producer`](crate::Producer) is the engine over a real [`Client`](crate::Client).

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use quiver_proto::api::{InitProducerIdResponse, ProduceRequest, ProduceResponse, TopicMetadata};
use quiver_proto::batch::BatchBuilder;
use tokio::sync::{Notify, Semaphore};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

use super::accumulator::{Accumulator, Append, ProducerId, Reserved, Route};
use crate::partitioner::partition_for_key;
use crate::{DeliveryFuture, Error, ProducerConfig, ProducerRecord};
use quiver_proto::time::now_ms;

/// What the producer needs from a broker connection.
pub(crate) trait ProduceTransport: Send + Sync + 'static {
    /// The topic's partitions and partitioner, cached by the implementation; `now_ms` is
    /// the wall clock the caller has just read, for the cache's age check.
    fn topic(
        &self,
        topic: &str,
        now_ms: i64,
    ) -> impl Future<Output = Result<Arc<TopicMetadata>, Error>> + Send;
    /// A fresh producer id and epoch.
    fn init_producer_id(
        &self,
    ) -> impl Future<Output = Result<InitProducerIdResponse, Error>> + Send;
    /// One produce attempt; `Ok(None)` when `Acks::None` asked for no response.
    fn produce(
        &self,
        req: ProduceRequest,
        payload: Bytes,
    ) -> impl Future<Output = Result<Option<ProduceResponse>, Error>> + Send;
}

#[derive(Debug)]
struct Shared<T> {
    transport: T,
    config: ProducerConfig,
    acc: parking_lot::Mutex<Accumulator>,
    /// Bytes of buffered and in-flight records: the backpressure bound.
    memory: Arc<Semaphore>,
    /// Wakes the sender: a batch closed, a batch opened, a flush or close began.
    wake: Notify,
    /// Wakes flush waiters when the accumulator becomes empty.
    idle: Notify,
}

/// The producer engine over transport `T`.
#[derive(Debug)]
pub(crate) struct Engine<T> {
    shared: Arc<Shared<T>>,
    task: parking_lot::Mutex<Option<JoinHandle<()>>>,
}

impl<T: ProduceTransport> Engine<T> {
    /// Validates the config, gets a producer id when idempotent, and starts the sender.
    pub async fn start(transport: T, config: ProducerConfig) -> Result<Self, Error> {
        config.validate()?;
        let identity = if config.sequenced() {
            let r = transport.init_producer_id().await?;
            Some(ProducerId {
                id: r.producer_id,
                epoch: r.producer_epoch,
            })
        } else {
            None
        };
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        let shared = Arc::new(Shared {
            memory: Arc::new(Semaphore::new(config.buffer_memory)),
            acc: parking_lot::Mutex::new(Accumulator::new(config.clone(), identity, seed)),
            transport,
            config,
            wake: Notify::new(),
            idle: Notify::new(),
        });
        let task = tokio::spawn(run(shared.clone()));
        Ok(Engine {
            shared,
            task: parking_lot::Mutex::new(Some(task)),
        })
    }

    /// Queues a record. Waits only for buffer memory; the returned future resolves when
    /// the broker acknowledges it.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, Error> {
        let shared = &self.shared;
        shared.acc.lock().check_open()?;
        // The one clock read of a send: the record's timestamp and the metadata age. A
        // send that then waits for buffer memory keeps this time, as in Kafka's producer.
        let now = now_ms();
        let meta = shared.transport.topic(&record.topic, now).await?;
        let partitions = meta.partitions.len() as u32;
        let route = match (record.partition, &meta.partitioner, &record.key) {
            (Some(p), _, _) if p < partitions => Route::Partition(p),
            (Some(p), _, _) => {
                return Err(Error::UnknownPartition {
                    topic: record.topic.to_string(),
                    partition: p,
                    count: partitions,
                });
            }
            (None, Some(_), _) => Route::Broker,
            (None, None, _) if partitions == 0 => {
                return Err(Error::UnknownPartition {
                    topic: record.topic.to_string(),
                    partition: 0,
                    count: 0,
                });
            }
            (None, None, Some(key)) => Route::Partition(partition_for_key(key, partitions)),
            (None, None, None) => Route::Sticky,
        };
        let size = BatchBuilder::record_size(
            record.key.as_deref(),
            record.value.as_deref(),
            &record.headers,
        );
        if size > shared.config.max_request_size {
            return Err(Error::RecordTooLarge {
                size,
                max: shared.config.max_request_size,
            });
        }
        // `size` fits in u32: it is at most max_request_size <= buffer_memory < 4 GiB.
        let memory = Reserved::take(&shared.memory, size as u32).await?;
        let timestamp = record.timestamp.unwrap_or(now);
        let (outcome, delivery) = shared.acc.lock().append(
            Append {
                topic: &record.topic,
                route,
                partitions,
                timestamp,
                key: record.key.as_deref(),
                value: record.value.as_deref(),
                headers: &record.headers,
                size,
                memory,
            },
            Instant::now,
        )?;
        if outcome.wake_sender() {
            shared.wake.notify_one();
        }
        Ok(delivery)
    }

    /// Sends everything buffered now, ignoring linger, and waits until every record
    /// sent so far is acknowledged or failed.
    pub async fn flush(&self) {
        let shared = &self.shared;
        shared.acc.lock().begin_flush();
        let _end = FlushGuard(&shared.acc);
        shared.wake.notify_one();
        loop {
            let idle = shared.idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if shared.acc.lock().is_empty() {
                return;
            }
            idle.await;
        }
    }

    /// Refuses new records, delivers the buffered ones, and stops the sender.
    pub async fn close(&self) {
        self.shared.acc.lock().close();
        self.shared.wake.notify_one();
        let task = self.task.lock().take();
        if let Some(task) = task {
            let _ = task.await;
        }
    }

    #[cfg(test)]
    pub fn available_memory(&self) -> usize {
        self.shared.memory.available_permits()
    }
}

impl<T> Drop for Engine<T> {
    /// The sender task keeps running until what was sent is delivered, then ends.
    fn drop(&mut self) {
        self.shared.acc.lock().close();
        self.shared.wake.notify_one();
    }
}

/// Ends a flush even when the flushing future is dropped half-way.
struct FlushGuard<'a>(&'a parking_lot::Mutex<Accumulator>);

impl Drop for FlushGuard<'_> {
    fn drop(&mut self) {
        self.0.lock().end_flush();
    }
}

type Done = (
    Arc<str>,
    Option<u32>,
    u64,
    Result<Option<ProduceResponse>, Error>,
);

/// The sender loop: drain ready batches, start their requests, apply outcomes.
async fn run<T: ProduceTransport>(shared: Arc<Shared<T>>) {
    let mut requests: JoinSet<Done> = JoinSet::new();
    let mut started: HashMap<tokio::task::Id, (Arc<str>, Option<u32>, u64)> = HashMap::new();
    loop {
        let wake = shared.wake.notified();
        tokio::pin!(wake);
        wake.as_mut().enable();
        let (jobs, next, empty, closed) = {
            let mut acc = shared.acc.lock();
            let jobs = acc.drain(Instant::now());
            (jobs, acc.next_wakeup(), acc.is_empty(), acc.is_closed())
        };
        for job in jobs {
            let s = shared.clone();
            let key = (job.topic.clone(), job.partition, job.id);
            let handle = requests.spawn(async move {
                let outcome = s.transport.produce(job.request, job.payload).await;
                (job.topic, job.partition, job.id, outcome)
            });
            started.insert(handle.id(), key);
        }
        if empty {
            shared.idle.notify_waiters();
            if closed {
                return;
            }
        }
        tokio::select! {
            () = &mut wake => {}
            Some(joined) = requests.join_next_with_id(), if !requests.is_empty() => {
                let (topic, partition, id, outcome) = match joined {
                    Ok((task, done)) => {
                        started.remove(&task);
                        done
                    }
                    Err(e) => {
                        let Some((topic, partition, id)) = started.remove(&e.id()) else {
                            continue;
                        };
                        let reason = format!("the request task failed: {e}");
                        (topic, partition, id, Err(Error::Transport { api: "produce", reason }))
                    }
                };
                shared.acc.lock().complete(&topic, partition, id, outcome, Instant::now());
            }
            () = sleep_until(next), if next.is_some() => {}
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    if let Some(at) = at {
        tokio::time::sleep_until(at).await;
    }
}
