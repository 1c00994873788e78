//! Broker-side routing of a produce that names no partition.
//!
//! The records are decoded, each is given a partition (by the topic's partitioner plugin
//! when one is bound, otherwise Kafka's key hash, with keyless records of one request kept
//! together on a round-robin partition), and re-encoded into one batch per partition with
//! the codec the producer used. This is the one produce path that re-encodes; sends with
//! an explicit partition store the producer's bytes as they came. Routed batches carry
//! no producer identity: idempotence needs the producer to know the partition.

use std::collections::BTreeMap;

use bytes::Bytes;
use quiver_proto::api::{ProduceResponse, RoutedAppend};
use quiver_proto::batch::{self, BatchBuilder, Compression, ProducerIdentity};
use quiver_proto::murmur2::key_partition;

use crate::broker::{Broker, Topic};
use crate::error::BrokerError;

pub(super) async fn produce_routed(
    b: &Broker,
    topic: &Topic,
    payload: Bytes,
    now: i64,
) -> Result<ProduceResponse, BrokerError> {
    if let Some(plugin) = &topic.config.partitioner {
        return Err(BrokerError::UnknownPlugin(format!(
            "topic '{}' names partitioner '{plugin}', but this broker has no plugin runtime",
            topic.record.name
        )));
    }
    let count = topic.partitions.len() as u32;
    let keyless_partition = (b.next_round_robin() % u64::from(count)) as u32;
    let mut builders: BTreeMap<u32, BatchBuilder> = BTreeMap::new();
    let mut codec = Compression::None;
    for piece in batch::split(&payload) {
        let (_, bytes) = piece?;
        let header = batch::validate(&bytes)?;
        codec = header.compression()?;
        for record in batch::decode_records(&bytes)? {
            let p = match &record.key {
                Some(key) => key_partition(key, count),
                None => keyless_partition,
            };
            builders.entry(p).or_default().push(
                record.timestamp,
                record.key.as_deref(),
                record.value.as_deref(),
                &record.headers,
            );
        }
    }
    let mut routed = Vec::with_capacity(builders.len());
    for (p, builder) in builders {
        let partition = topic.partition(p)?;
        let out = partition
            .append(
                builder.build(codec, ProducerIdentity::NONE),
                now,
                std::time::Duration::ZERO,
            )
            .await?;
        routed.push(RoutedAppend {
            partition: p,
            base_offset: out.base_offset,
            last_offset: out.last_offset,
            records: builder.len() as u32,
        });
    }
    let first = routed
        .first()
        .cloned()
        .ok_or_else(|| BrokerError::InvalidRequest("produce request holds no records".into()))?;
    Ok(ProduceResponse {
        partition: first.partition,
        base_offset: first.base_offset,
        last_offset: first.last_offset,
        log_append_time: now,
        log_start_offset: topic.partition(first.partition)?.log().log_start_offset(),
        duplicate: false,
        routed,
    })
}
