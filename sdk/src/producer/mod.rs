//! [`Producer`]: batching, compression, acknowledgements, idempotence and backpressure.
//!
//! `send` places a record in its partition's open batch and returns at once unless the
//! producer's `buffer_memory` is full, in which case it waits: memory stays bounded.
//! A batch is sent when it reaches `batch_size` or has waited `linger`; up to
//! `max_in_flight_per_partition` batches of a partition travel at once, each on its own
//! QUIC stream, and a retried batch is never overtaken by a later one of its partition.
//!
//! With idempotence (the default) the producer asks the broker for a producer id once,
//! stamps every batch with per-partition sequence numbers, and treats a duplicate
//! response to a retry as the success it is. If a sequenced batch fails for good, or the
//! broker reports the producer as fenced, the producer becomes unusable
//! ([`Error::ProducerFatal`](crate::Error::ProducerFatal)) rather than risk reordering.

mod accumulator;
mod config;
mod record;
mod sender;

use std::sync::Arc;

use bytes::Bytes;
use quiver_proto::ErrorCode;
use quiver_proto::api::{
    Acks, InitProducerIdRequest, InitProducerIdResponse, ProduceRequest, ProduceResponse,
    TopicMetadata,
};

pub use config::ProducerConfig;
pub use record::{DeliveryFuture, ProducerRecord, RecordMetadata, UNKNOWN_PARTITION};

use crate::{Client, Error};
use sender::{Engine, ProduceTransport};

/// Sends records to a broker. Cheap to clone; clones share buffers and the sender task.
/// When the last clone is dropped, buffered records are still delivered in the
/// background; call [`Producer::close`] to wait for that.
#[derive(Debug, Clone)]
pub struct Producer {
    engine: Arc<Engine<Client>>,
}

impl Producer {
    pub(crate) async fn start(client: Client, config: ProducerConfig) -> Result<Producer, Error> {
        Ok(Producer {
            engine: Arc::new(Engine::start(client, config).await?),
        })
    }

    /// Queues a record. Awaiting this waits only for buffer space; await the returned
    /// [`DeliveryFuture`] for the record's partition and offset.
    ///
    /// Fails at once for an unknown topic or partition, a record over
    /// `max_request_size`, or a closed or fatally failed producer.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture, Error> {
        self.engine.send(record).await
    }

    /// Sends a record and waits for its acknowledgement (ignores linger, so no batching
    /// with records sent after it; use [`Producer::send`] for throughput).
    pub async fn send_and_wait(&self, record: ProducerRecord) -> Result<RecordMetadata, Error> {
        let delivery = self.engine.send(record).await?;
        self.engine.flush().await;
        delivery.await
    }

    /// Sends everything buffered without waiting for linger, and waits until every record
    /// sent before (and during) the flush is acknowledged or failed.
    pub async fn flush(&self) {
        self.engine.flush().await;
    }

    /// Refuses new records, delivers the buffered ones, and stops the sender task.
    pub async fn close(&self) {
        self.engine.close().await;
    }
}

impl ProduceTransport for Client {
    async fn topic(&self, topic: &str, now_ms: i64) -> Result<Arc<TopicMetadata>, Error> {
        self.topic_metadata_at(topic, now_ms).await
    }

    async fn init_producer_id(&self) -> Result<InitProducerIdResponse, Error> {
        let req = InitProducerIdRequest {
            transactional_id: None,
        };
        Ok(self.call(&req, Bytes::new()).await?.0)
    }

    async fn produce(
        &self,
        req: ProduceRequest,
        payload: Bytes,
    ) -> Result<Option<ProduceResponse>, Error> {
        let topic = req.topic.clone();
        let expect = req.acks != Acks::None;
        let leader = match req.partition {
            Some(p) => match self.leader_for(&topic, p).await {
                Ok(leader) => leader,
                Err(e) => {
                    // A leader that cannot be dialled may be gone: ask again next time.
                    self.invalidate_metadata(&topic);
                    return Err(e);
                }
            },
            None => self.clone(),
        };
        let result = leader.call_once(&req, payload, expect).await;
        // A leader that moved answers NOT_LEADER, or is gone with its connection: the
        // retry asks the metadata again.
        if let Err(e) = &result
            && (matches!(
                e.code(),
                Some(ErrorCode::NOT_LEADER | ErrorCode::UNKNOWN_PARTITION)
            ) || e.code().is_none())
        {
            self.invalidate_metadata(&topic);
        }
        result.map(|r| r.map(|(resp, _)| resp))
    }
}

#[cfg(test)]
mod tests;
