//! Produce: append a producer's batches to a partition (or route them), and hand out
//! producer ids.

use super::types::{Acks, ProduceInput, ProduceOutcome, ProducerId};
use super::{BrokerService, blocking, now_ms, route};
use crate::auth::Caller;
use crate::error::BrokerError;
use quiver_metadata::{Operation, ResourceKind};

impl BrokerService {
    /// Appends the batches of `input` and says where they landed. With no partition
    /// named, the broker routes each record (see `route.rs`).
    pub async fn produce(
        &self,
        caller: &Caller,
        input: ProduceInput,
    ) -> Result<ProduceOutcome, BrokerError> {
        self.check(caller, Operation::Write, ResourceKind::Topic, &input.topic)?;
        let topic = self.broker.topic(&input.topic)?;
        if topic.record.internal {
            return Err(BrokerError::InvalidRequest(format!(
                "topic '{}' is internal to the broker; clients cannot produce to it",
                input.topic
            )));
        }
        if input.batches.is_empty() {
            return Err(BrokerError::InvalidRequest(
                "produce request carries no record batch".to_string(),
            ));
        }
        let now = now_ms();
        let all = input.acks == Acks::All;
        let min_insync = topic.config.min_insync_replicas;
        let Some(index) = input.partition else {
            if all {
                for p in &topic.partitions {
                    p.check_min_insync(min_insync)?;
                }
            }
            let delivery = route::Delivery {
                acks_all: all,
                min_insync,
                timeout: input.timeout,
            };
            return route::produce_routed(&self.broker, &topic, input.batches, now, delivery).await;
        };
        let partition = topic.partition(index)?;
        if all {
            partition.check_min_insync(min_insync)?;
        }
        let out = partition.append(input.batches, now, input.timeout).await?;
        if all {
            partition
                .await_durable(out.last_offset, min_insync, input.timeout)
                .await?;
        }
        Ok(ProduceOutcome {
            partition: index,
            base_offset: out.base_offset,
            last_offset: out.last_offset,
            log_append_time: out.log_append_time,
            log_start_offset: partition.log()?.log_start_offset(),
            duplicate: out.duplicate,
            routed: Vec::new(),
        })
    }

    /// A producer id never handed out before, for an idempotent producer.
    /// Crossing a block boundary persists the block with an fsync, so it runs on the
    /// blocking pool.
    pub async fn init_producer_id(&self, caller: &Caller) -> Result<ProducerId, BrokerError> {
        // Kafka's rule for idempotent writes: whoever may write some topic may have an
        // id (each write is still checked on its own topic). Anyone else could only
        // drain id blocks, each one an fsynced metadata record.
        if self
            .check(caller, Operation::Alter, ResourceKind::Cluster, "*")
            .is_err()
        {
            let image = self.broker.metadata.image();
            let writes_somewhere = image.access_rules().any(|r| {
                r.effect == quiver_metadata::access::Effect::Allow
                    && (r.principal.0 == "*" || r.principal == caller.principal)
                    && r.resource.kind == ResourceKind::Topic
                    && (r.operations.contains(&Operation::Write)
                        || r.operations.contains(&Operation::All))
            });
            if !writes_somewhere {
                return Err(BrokerError::Unauthorized(format!(
                    "{} may not have a producer id: no access rule lets it write any topic",
                    caller.principal
                )));
            }
        }
        let broker = std::sync::Arc::clone(&self.broker);
        let producer_id = blocking(move || broker.producer_ids.next()).await?;
        Ok(ProducerId {
            producer_id,
            producer_epoch: 0,
        })
    }
}
