//! Broker-side routing of a produce that names no partition.
//!
//! The records are decoded, each is given a partition (by the topic's partitioner plugin
//! when one is bound, one guest call per producer batch; otherwise Kafka's key hash, with
//! keyless records of one request kept together on a round-robin partition), and
//! re-encoded into one batch per partition with
//! the codec the producer used. This is the one produce path that re-encodes; sends with
//! an explicit partition store the producer's bytes as they came. Routed batches carry
//! no producer identity: idempotence needs the producer to know the partition.

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

pub(super) async fn produce_routed(
    b: &Arc<Broker>,
    topic: &Arc<Topic>,
    payload: Bytes,
    now: i64,
) -> Result<ProduceOutcome, BrokerError> {
    let plugins = Arc::clone(&b.plugins);
    let round_robin = b.next_round_robin();
    let topic = Arc::clone(topic);
    // One hop to the blocking pool for the whole request: decoding, the plugin call,
    // re-encoding and the appends are all blocking work, and hopping once per step (or
    // per partition) costs a thread hand-off each time.
    blocking(move || route_and_append(&plugins, &topic, &payload, round_robin, now)).await
}

fn route_and_append(
    plugins: &PluginService,
    topic: &Topic,
    payload: &Bytes,
    round_robin: u64,
    now: i64,
) -> Result<ProduceOutcome, BrokerError> {
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
        topic.partition(*p)?;
    }
    let mut routed = Vec::with_capacity(builders.len());
    for (p, builder) in builders {
        let partition = topic.partition(p)?;
        let records = builder.len() as u32;
        let out = partition.append_blocking(&builder.finish(codec, ProducerIdentity::NONE), now)?;
        routed.push(RoutedAppend {
            partition: p,
            base_offset: out.base_offset,
            last_offset: out.last_offset,
            records,
        });
    }
    let first = routed
        .first()
        .cloned()
        .ok_or_else(|| BrokerError::InvalidRequest("produce request holds no records".into()))?;
    Ok(ProduceOutcome {
        partition: first.partition,
        base_offset: first.base_offset,
        last_offset: first.last_offset,
        log_append_time: now,
        log_start_offset: topic.partition(first.partition)?.log()?.log_start_offset(),
        duplicate: false,
        routed,
    })
}
