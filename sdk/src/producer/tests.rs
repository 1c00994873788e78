//! The producer engine against a fake broker that keeps idempotence state like the real
//! one, and fails requests on a script. Time is tokio's paused clock, so linger and
//! backoff elapse instantly and deterministically.
//!
//! The single-threaded test runtime runs the request tasks of one drain in reverse
//! (its LIFO slot), so the fake sees in-flight batches out of order, as a broker may
//! when streams race: the tests prove the producer converges to the right order anyway.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use quiver_proto::api::{
    InitProducerIdResponse, PartitionMetadata, ProduceRequest, ProduceResponse, TopicMetadata,
};
use quiver_proto::batch::{self, Compression};
use quiver_proto::{ErrorCode, WireError};
use tokio::sync::Semaphore;

use super::sender::{Engine, ProduceTransport};
use crate::partitioner::partition_for_key;
use crate::{Error, ProducerConfig, ProducerRecord};

/// What the fake does with the next produce request.
#[derive(Debug, Clone, Copy)]
enum Fault {
    /// Refuse with this code; nothing is stored.
    Refuse(ErrorCode),
    /// Store the batch, then lose the response (the connection "breaks").
    LoseResponse,
}

#[derive(Debug, Default)]
struct PartitionLog {
    values: Vec<Bytes>,
    /// (base sequence, base offset, count) of each stored batch.
    batches: Vec<(i32, i64, i64)>,
}

#[derive(Debug, Default)]
struct BrokerState {
    faults: HashMap<usize, Fault>,
    calls: usize,
    duplicates: usize,
    /// Batches stored whose response was then lost.
    lost: usize,
    logs: HashMap<Option<u32>, PartitionLog>,
    requests: Vec<(Option<u32>, batch::BatchHeader)>,
}

#[derive(Debug)]
struct FakeBroker {
    partitions: u32,
    partitioner: Option<String>,
    state: parking_lot::Mutex<BrokerState>,
    /// Produce requests wait for a permit here: lets a test stall the broker.
    gate: Arc<Semaphore>,
}

impl FakeBroker {
    fn new(partitions: u32) -> FakeBroker {
        FakeBroker {
            partitions,
            partitioner: None,
            state: Default::default(),
            gate: Arc::new(Semaphore::new(Semaphore::MAX_PERMITS)),
        }
    }

    fn fail(self, call: usize, fault: Fault) -> Self {
        self.state.lock().faults.insert(call, fault);
        self
    }

    fn values(&self, partition: Option<u32>) -> Vec<Bytes> {
        self.state
            .lock()
            .logs
            .get(&partition)
            .map(|l| l.values.clone())
            .unwrap_or_default()
    }

    fn handle(&self, req: &ProduceRequest, payload: &Bytes) -> Result<ProduceResponse, Error> {
        let refuse = |code| Error::Broker {
            api: "produce",
            source: WireError::new(code, "fake"),
        };
        let header = batch::validate(payload).map_err(|_| refuse(ErrorCode::CORRUPT_BATCH))?;
        let mut state = self.state.lock();
        state.calls += 1;
        let call = state.calls;
        state.requests.push((req.partition, header));
        let fault = state.faults.get(&call).copied();
        if let Some(Fault::Refuse(code)) = fault {
            return Err(refuse(code));
        }
        let log = state.logs.entry(req.partition).or_default();
        let count = i64::from(header.record_count);
        let response = |base: i64, duplicate| ProduceResponse {
            partition: req.partition.unwrap_or(0),
            base_offset: base,
            last_offset: base + count - 1,
            log_append_time: 0,
            log_start_offset: 0,
            duplicate,
            routed: Vec::new(),
        };
        if header.producer_id >= 0 {
            if let Some(stored) = log.batches.iter().find(|b| b.0 == header.base_sequence) {
                let base = stored.1;
                state.duplicates += 1;
                return Ok(response(base, true));
            }
            let expected = log.batches.last().map_or(0, |b| b.0 + b.2 as i32);
            if header.base_sequence != expected {
                // A lost response is meant for a stored batch: move it to the next call.
                if let Some(Fault::LoseResponse) = fault {
                    state.faults.insert(call + 1, Fault::LoseResponse);
                }
                return Err(refuse(ErrorCode::OUT_OF_ORDER_SEQUENCE));
            }
        }
        let base = log.values.len() as i64;
        for r in batch::decode_records(payload).map_err(|_| refuse(ErrorCode::CORRUPT_BATCH))? {
            log.values.push(r.value.unwrap_or_default());
        }
        log.batches.push((header.base_sequence, base, count));
        match fault {
            Some(Fault::LoseResponse) => {
                state.lost += 1;
                Err(Error::Transport {
                    api: "produce",
                    reason: "connection reset".into(),
                })
            }
            _ => Ok(response(base, false)),
        }
    }
}

impl ProduceTransport for Arc<FakeBroker> {
    async fn topic(&self, topic: &str, _now_ms: i64) -> Result<Arc<TopicMetadata>, Error> {
        Ok(Arc::new(TopicMetadata {
            name: topic.to_string(),
            partitions: (0..self.partitions)
                .map(|partition| PartitionMetadata {
                    partition,
                    leader: 0,
                    leader_epoch: 0,
                })
                .collect(),
            partitioner: self.partitioner.clone(),
        }))
    }

    async fn init_producer_id(&self) -> Result<InitProducerIdResponse, Error> {
        Ok(InitProducerIdResponse {
            producer_id: 77,
            producer_epoch: 0,
        })
    }

    async fn produce(
        &self,
        req: ProduceRequest,
        payload: Bytes,
    ) -> Result<Option<ProduceResponse>, Error> {
        let _permit = self.gate.acquire().await;
        // Let other requests start, so several are really in flight together.
        tokio::task::yield_now().await;
        self.handle(&req, &payload).map(Some)
    }
}

fn small_batches() -> ProducerConfig {
    ProducerConfig {
        batch_size: 200,
        ..Default::default()
    }
}

fn record(i: usize) -> ProducerRecord {
    ProducerRecord::new("t", format!("value-{i:04}")).partition(0)
}

#[tokio::test(start_paused = true)]
async fn retried_and_duplicated_batches_stay_in_order_and_report_once() {
    for in_flight in [1, 5, quiver_proto::batch::MAX_IDEMPOTENT_IN_FLIGHT] {
        retried_and_duplicated_batches_with(in_flight).await;
    }
}

async fn retried_and_duplicated_batches_with(in_flight: usize) {
    let broker = Arc::new(
        FakeBroker::new(1)
            .fail(2, Fault::Refuse(ErrorCode::NOT_LEADER))
            .fail(5, Fault::LoseResponse)
            .fail(9, Fault::Refuse(ErrorCode::REQUEST_TIMED_OUT))
            .fail(12, Fault::LoseResponse),
    );
    let config = ProducerConfig {
        max_in_flight_per_partition: in_flight,
        ..small_batches()
    };
    let producer = Engine::start(broker.clone(), config).await.expect("starts");
    let mut deliveries = Vec::new();
    for i in 0..60 {
        deliveries.push(producer.send(record(i)).await.expect("queued"));
    }
    producer.flush().await;
    for (i, d) in deliveries.into_iter().enumerate() {
        let meta = d.await.expect("delivered");
        assert_eq!(meta.offset, i as i64, "in flight {in_flight}: record {i}");
        assert_eq!(meta.partition, 0);
    }
    let stored = broker.values(Some(0));
    let expected: Vec<Bytes> = (0..60)
        .map(|i| Bytes::from(format!("value-{i:04}")))
        .collect();
    assert_eq!(
        stored, expected,
        "in flight {in_flight}: each record once, in order"
    );
    let state = broker.state.lock();
    assert!(
        state.calls > 12,
        "the faults were hit: {} calls",
        state.calls
    );
    assert!(
        state.lost >= 1,
        "in flight {in_flight}: a response was lost after its batch was stored"
    );
    assert_eq!(
        state.duplicates, state.lost,
        "each lost response was retried and recognised as a duplicate"
    );
    assert!(
        state.requests.iter().all(|(_, h)| h.producer_id == 77),
        "every batch carries the producer id"
    );
    assert_eq!(
        producer.available_memory(),
        ProducerConfig::default().buffer_memory
    );
}

#[tokio::test(start_paused = true)]
async fn linger_gathers_records_into_one_batch() {
    let broker = Arc::new(FakeBroker::new(1));
    let producer = Engine::start(broker.clone(), ProducerConfig::default())
        .await
        .expect("starts");
    let a = producer.send(record(0)).await.expect("queued");
    let b = producer.send(record(1)).await.expect("queued");
    let c = producer.send(record(2)).await.expect("queued");
    assert_eq!(c.await.expect("delivered").offset, 2);
    assert_eq!(a.await.expect("delivered").offset, 0);
    assert_eq!(b.await.expect("delivered").offset, 1);
    let state = broker.state.lock();
    assert_eq!(state.requests.len(), 1, "one batch after linger");
    assert_eq!(state.requests[0].1.record_count, 3);
}

#[tokio::test(start_paused = true)]
async fn a_full_buffer_makes_send_wait_instead_of_growing() {
    // Stall the broker: no produce completes until permits are added.
    let stall = Arc::new(Semaphore::new(0));
    let broker = Arc::new(FakeBroker {
        gate: stall.clone(),
        ..FakeBroker::new(1)
    });
    let config = ProducerConfig {
        buffer_memory: 1000,
        max_request_size: 500,
        batch_size: 200,
        idempotence: false,
        ..Default::default()
    };
    let producer = Engine::start(broker.clone(), config).await.expect("starts");
    let mut deliveries = Vec::new();
    let mut waited = false;
    for i in 0..40 {
        let send = producer.send(record(i));
        match tokio::time::timeout(Duration::from_secs(10), send).await {
            Ok(d) => deliveries.push(d.expect("queued")),
            Err(_) => {
                waited = true;
                break;
            }
        }
        assert!(producer.available_memory() <= 1000);
    }
    assert!(waited, "send blocked once 1000 bytes were buffered");
    assert!(deliveries.len() < 40 && !deliveries.is_empty());
    stall.add_permits(1_000);
    let next = producer.send(record(99)).await.expect("space again");
    producer.flush().await;
    for d in deliveries {
        d.await.expect("delivered");
    }
    next.await.expect("delivered");
    assert_eq!(producer.available_memory(), 1000);
}

#[tokio::test(start_paused = true)]
async fn an_out_of_order_response_is_fatal() {
    let broker =
        Arc::new(FakeBroker::new(1).fail(1, Fault::Refuse(ErrorCode::OUT_OF_ORDER_SEQUENCE)));
    let producer = Engine::start(broker, ProducerConfig::default())
        .await
        .expect("starts");
    let first = producer.send(record(0)).await.expect("queued");
    let err = first.await.expect_err("refused");
    assert_eq!(err.code(), Some(ErrorCode::OUT_OF_ORDER_SEQUENCE));
    assert!(!err.is_retriable());
    let later = producer.send(record(1)).await;
    assert!(matches!(later, Err(Error::ProducerFatal(_))));
}

#[tokio::test(start_paused = true)]
async fn keys_and_partitioners_choose_the_route() {
    let broker = Arc::new(FakeBroker::new(5));
    let producer = Engine::start(broker.clone(), ProducerConfig::default())
        .await
        .expect("starts");
    let keyed = producer
        .send(ProducerRecord::new("t", "v").key("21"))
        .await
        .expect("queued");
    assert_eq!(
        keyed.await.expect("ok").partition,
        partition_for_key(b"21", 5)
    );
    let bad = producer
        .send(ProducerRecord::new("t", "v").partition(5))
        .await;
    assert!(matches!(bad, Err(Error::UnknownPartition { count: 5, .. })));

    let routed = Arc::new(FakeBroker {
        partitioner: Some("by-region".into()),
        ..FakeBroker::new(5)
    });
    let producer = Engine::start(routed.clone(), ProducerConfig::default())
        .await
        .expect("starts");
    let d = producer
        .send(ProducerRecord::new("t", "v").key("21"))
        .await
        .expect("queued");
    d.await.expect("ok");
    let state = routed.state.lock();
    let (partition, header) = &state.requests[0];
    assert_eq!(*partition, None, "the broker's partitioner routes");
    assert_eq!(
        header.producer_id, -1,
        "broker-routed batches are not sequenced"
    );
}

#[tokio::test(start_paused = true)]
async fn close_delivers_what_is_buffered_and_refuses_more() {
    let broker = Arc::new(FakeBroker::new(1));
    let config = ProducerConfig {
        compression: Compression::Zstd,
        linger: Duration::from_secs(60),
        ..Default::default()
    };
    let producer = Engine::start(broker.clone(), config).await.expect("starts");
    let d = producer.send(record(0)).await.expect("queued");
    producer.close().await;
    assert_eq!(d.await.expect("delivered").offset, 0);
    assert!(matches!(
        producer.send(record(1)).await,
        Err(Error::ProducerClosed)
    ));
    let state = broker.state.lock();
    assert_eq!(
        state.requests[0].1.compression().expect("codec"),
        Compression::Zstd
    );
}

#[tokio::test(start_paused = true)]
async fn retries_without_sequences_still_deliver() {
    let broker = Arc::new(
        FakeBroker::new(2)
            .fail(1, Fault::Refuse(ErrorCode::BROKER_UNAVAILABLE))
            .fail(2, Fault::Refuse(ErrorCode::BROKER_UNAVAILABLE)),
    );
    let config = ProducerConfig {
        idempotence: false,
        max_in_flight_per_partition: 1,
        ..Default::default()
    };
    let producer = Engine::start(broker.clone(), config).await.expect("starts");
    let d = producer.send(record(0)).await.expect("queued");
    assert_eq!(d.await.expect("delivered").offset, 0);
    let calls: VecDeque<_> = broker.state.lock().requests.iter().map(|r| r.0).collect();
    assert_eq!(calls.len(), 3);
}
