//! Broker-side routing of a produce that names no partition.
//!
//! The records are decoded, each is given a partition (by the topic's partitioner plugin
//! when one is bound, one guest call per producer batch; otherwise Kafka's key hash, with
//! keyless records of one request kept together on a round-robin partition), and
//! re-encoded into one batch per partition with
//! the codec the producer used. This is the one produce path that re-encodes; sends with
//! an explicit partition store the producer's bytes as they came. Routed batches carry
//! no producer identity: idempotence needs the producer to know the partition.
//!
//! In a cluster the broker that routes need not lead every chosen partition: it appends
//! the batches of those it leads and hands each other batch to its partition's leader
//! (`quic/forward.rs`), which appends it as a produce of its own; acks=all then waits
//! for each partition's ISR where that partition is led.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use quiver_plugin_host::RecordView;
use quiver_proto::Record;
use quiver_proto::batch::{self, BatchBuilder, Compression, ProducerIdentity};
use quiver_proto::murmur2::key_partition;

use super::blocking;
use super::types::{ProduceOutcome, RoutedAppend};
use crate::broker::{Broker, Topic};
use crate::error::BrokerError;
use crate::plugins::{PluginService, call_error};

/// How a routed produce is acknowledged.
#[derive(Debug, Clone, Copy)]
pub(super) struct Delivery {
    /// acks=all: each partition's in-sync replicas must have its batch.
    pub acks_all: bool,
    pub min_insync: u16,
    pub timeout: std::time::Duration,
}

pub(super) async fn produce_routed(
    b: &Arc<Broker>,
    topic: &Arc<Topic>,
    payload: Bytes,
    now: i64,
    delivery: Delivery,
) -> Result<ProduceOutcome, BrokerError> {
    let plugins = Arc::clone(&b.plugins);
    let round_robin = b.next_round_robin();
    let routing = Arc::clone(topic);
    // One hop to the blocking pool for the whole request: decoding, the plugin call,
    // re-encoding and the appends are all blocking work, and hopping once per step (or
    // per partition) costs a thread hand-off each time.
    let (mut routed, elsewhere) =
        blocking(move || route_and_append(&plugins, &routing, &payload, round_robin, now)).await?;
    if delivery.acks_all {
        for r in &routed {
            topic
                .partition(r.partition)?
                .await_durable(r.last_offset, delivery.min_insync, delivery.timeout)
                .await?;
        }
    }
    // Concurrently, so the request takes as long as its slowest partition. Every
    // forward runs to its end; the first failure is then the answer (routed records
    // are delivered at least once: a retry may repeat the partitions that succeeded).
    let mut forwards = tokio::task::JoinSet::new();
    for away in elsewhere {
        let (b, topic) = (Arc::clone(b), Arc::clone(topic));
        forwards.spawn(async move { forward(&b, &topic, away, delivery).await });
    }
    let mut failed = None;
    while let Some(joined) = forwards.join_next().await {
        match joined {
            Ok(Ok(append)) => routed.push(append),
            Ok(Err(e)) => failed = failed.or(Some(e)),
            Err(e) => {
                failed = failed.or(Some(BrokerError::Internal(format!(
                    "forwarding a routed batch failed: {e}"
                ))))
            }
        }
    }
    if let Some(e) = failed {
        return Err(e);
    }
    routed.sort_by_key(|r| r.partition);
    let first = routed
        .first()
        .cloned()
        .ok_or_else(|| BrokerError::InvalidRequest("produce request holds no records".into()))?;
    Ok(ProduceOutcome {
        partition: first.partition,
        base_offset: first.base_offset,
        last_offset: first.last_offset,
        log_append_time: now,
        // Known where the partition is led here; the client does not rely on it.
        log_start_offset: topic
            .partition(first.partition)
            .ok()
            .and_then(|p| p.log().ok())
            .map_or(-1, |log| log.log_start_offset()),
        duplicate: false,
        routed,
    })
}

/// A routed batch for a partition this broker does not lead.
struct Elsewhere {
    partition: u32,
    batch: Bytes,
    records: u32,
}

/// Hands `away` to its partition's leader and returns where it landed.
async fn forward(
    b: &Broker,
    topic: &Topic,
    away: Elsewhere,
    delivery: Delivery,
) -> Result<RoutedAppend, BrokerError> {
    let not_led = |leader| BrokerError::NotLeader {
        topic: topic.record.name.clone(),
        partition: away.partition,
        leader,
    };
    let image = b.metadata.image();
    let leader = image
        .partition(&topic.record.name, away.partition)
        .and_then(|a| a.leader)
        .ok_or_else(|| not_led(None))?;
    let address = image
        .broker(leader)
        .and_then(|r| r.peer_listener.clone())
        .ok_or_else(|| not_led(Some(leader)))?;
    let link = b.forward.get().ok_or_else(|| not_led(Some(leader)))?;
    let forwarded = crate::quic::forward::Forwarded {
        topic: topic.record.name.clone(),
        partition: away.partition,
        acks_all: delivery.acks_all,
        timeout: delivery.timeout,
        batch: away.batch,
    };
    let (base_offset, last_offset) = link.append(leader, &address, &forwarded).await?;
    Ok(RoutedAppend {
        partition: away.partition,
        base_offset,
        last_offset,
        records: away.records,
    })
}

/// Routes the records and appends the batches of the partitions led here; returns
/// those and the batches of the partitions led elsewhere.
fn route_and_append(
    plugins: &PluginService,
    topic: &Topic,
    payload: &Bytes,
    round_robin: u64,
    now: i64,
) -> Result<(Vec<RoutedAppend>, Vec<Elsewhere>), BrokerError> {
    let count = topic.partitions.len() as u32;
    let mut batches: Vec<Vec<Record>> = Vec::new();
    let mut codec = Compression::None;
    for piece in batch::split(payload) {
        let (_, bytes) = piece?;
        let header = batch::validate(&bytes)?;
        codec = header.compression()?;
        batches.push(batch::decode_records(&bytes)?);
    }
    // Every partition is chosen before anything is appended, so a failing partitioner
    // fails the whole produce with nothing stored.
    let partitions: Vec<Vec<u32>> = match &topic.config.partitioner {
        Some(reference) => {
            let plugin = plugins.partitioner(reference, &topic.config.partitioner_params)?;
            batches
                .iter()
                .map(|records| {
                    let views: Vec<RecordView<'_>> = records.iter().map(RecordView::from).collect();
                    plugin.partition(&views, count).map_err(call_error)
                })
                .collect::<Result<Vec<_>, _>>()?
        }
        None => {
            let keyless_partition = (round_robin % u64::from(count)) as u32;
            batches
                .iter()
                .map(|records| {
                    records
                        .iter()
                        .map(|r| match &r.key {
                            Some(key) => key_partition(key, count),
                            None => keyless_partition,
                        })
                        .collect()
                })
                .collect()
        }
    };
    // Sized for an even spread, so a builder rarely grows while records are copied in.
    let share = payload.len() / (count.max(1) as usize) + batch::HEADER_LEN;
    let mut builders: BTreeMap<u32, BatchBuilder> = BTreeMap::new();
    for (records, chosen) in batches.iter().zip(&partitions) {
        for (record, p) in records.iter().zip(chosen) {
            builders
                .entry(*p)
                .or_insert_with(|| BatchBuilder::with_capacity(share))
                .push(
                    record.timestamp,
                    record.key.as_deref(),
                    record.value.as_deref(),
                    &record.headers,
                );
        }
    }
    // Every chosen partition exists before the first append, for the same reason.
    for p in builders.keys() {
        topic.partition_even_offline(*p)?;
    }
    let mut routed = Vec::with_capacity(builders.len());
    let mut elsewhere = Vec::new();
    for (p, builder) in builders {
        let partition = topic.partition_even_offline(p)?;
        let records = builder.len() as u32;
        let batch = builder.finish(codec, ProducerIdentity::NONE);
        if partition.is_local() && partition.leading_epoch().is_some() {
            let out = topic.partition(p)?.append_blocking(&batch, now)?;
            routed.push(RoutedAppend {
                partition: p,
                base_offset: out.base_offset,
                last_offset: out.last_offset,
                records,
            });
        } else {
            elsewhere.push(Elsewhere {
                partition: p,
                batch,
                records,
            });
        }
    }
    Ok((routed, elsewhere))
}
