//! Wire structs of `quiver_proto::api` to the service's types and back. This module and
//! `errors.rs` are the only places where the two meet; consumer groups have their own
//! file (`group.rs`).

pub(crate) mod access;
pub(crate) mod group;

use std::time::Duration;

use quiver_plugin_host::log::{LogEntry, LogLevel, LogSource};
use quiver_proto::api;

use crate::service::types::{
    Acks, ClusterView, ConfigSource, FetchInput, FetchOutcome, FilterRef, NewTopic, OffsetAnswer,
    OffsetQuery, ProduceInput, ProduceOutcome, ProducerId, SubscribeInput, TopicInfo, TopicSummary,
};
use crate::service::{
    PluginAdded, PluginDecision, PluginLimitSettings, PluginLogPage, PluginSummary, PluginTest,
    PluginTrial,
};

pub(crate) fn produce(req: api::ProduceRequest, batches: bytes::Bytes) -> ProduceInput {
    ProduceInput {
        topic: req.topic,
        partition: req.partition,
        acks: match req.acks {
            api::Acks::None => Acks::None,
            api::Acks::Leader => Acks::Leader,
            api::Acks::All => Acks::All,
        },
        timeout: Duration::from_millis(u64::from(req.timeout_ms)),
        batches,
    }
}

pub(crate) fn produced(out: ProduceOutcome) -> api::ProduceResponse {
    api::ProduceResponse {
        partition: out.partition,
        base_offset: out.base_offset,
        last_offset: out.last_offset,
        log_append_time: out.log_append_time,
        log_start_offset: out.log_start_offset,
        duplicate: out.duplicate,
        routed: out
            .routed
            .into_iter()
            .map(|r| api::RoutedAppend {
                partition: r.partition,
                base_offset: r.base_offset,
                last_offset: r.last_offset,
                records: r.records,
            })
            .collect(),
    }
}

pub(crate) fn producer_id(id: ProducerId) -> api::InitProducerIdResponse {
    api::InitProducerIdResponse {
        producer_id: id.producer_id,
        producer_epoch: id.producer_epoch,
    }
}

fn filter(spec: Option<api::FilterSpec>) -> Option<FilterRef> {
    spec.map(|f| FilterRef {
        name: f.name,
        version: f.version,
        params: f.params,
    })
}

pub(crate) fn fetch(req: api::FetchRequest) -> FetchInput {
    // The only isolation level is read-uncommitted: there are no transactions yet.
    let api::Isolation::ReadUncommitted = req.isolation;
    FetchInput {
        topic: req.topic,
        partition: req.partition,
        offset: req.offset,
        max_bytes: req.max_bytes as usize,
        min_bytes: req.min_bytes as usize,
        max_wait: Duration::from_millis(u64::from(req.max_wait_ms)),
        filter: filter(req.filter),
    }
}

pub(crate) fn subscribe(req: api::SubscribeRequest) -> SubscribeInput {
    SubscribeInput {
        topic: req.topic,
        partition: req.partition,
        offset: req.offset,
        max_bytes: req.max_bytes as usize,
        filter: filter(req.filter),
    }
}

/// A read's answer: the body, and the records that travel as the frame's payload.
pub(crate) fn fetched(out: FetchOutcome) -> (api::FetchResponse, bytes::Bytes) {
    (
        api::FetchResponse {
            high_watermark: out.high_watermark,
            log_start_offset: out.log_start_offset,
            next_offset: out.next_offset,
        },
        out.records,
    )
}

pub(crate) fn offset_query(spec: api::OffsetSpec) -> OffsetQuery {
    match spec {
        api::OffsetSpec::Earliest => OffsetQuery::Earliest,
        api::OffsetSpec::Latest => OffsetQuery::Latest,
        api::OffsetSpec::Timestamp(ts) => OffsetQuery::Timestamp(ts),
    }
}

pub(crate) fn offset_answer(a: OffsetAnswer) -> api::ListOffsetsResponse {
    api::ListOffsetsResponse {
        offset: a.offset,
        timestamp: a.timestamp,
    }
}

pub(crate) fn new_topic(req: api::CreateTopicRequest) -> NewTopic {
    NewTopic {
        name: req.name,
        partitions: req.partitions,
        replication_factor: req.replication_factor,
        configs: req.configs,
    }
}

pub(crate) fn topic(t: TopicInfo) -> api::TopicDescription {
    api::TopicDescription {
        name: t.name,
        replication_factor: t.replication_factor,
        internal: t.internal,
        configs: t.configs,
        config_sources: t
            .config_sources
            .into_iter()
            .map(|(key, source)| {
                let source = match source {
                    ConfigSource::Topic => api::ConfigSource::Topic,
                    ConfigSource::BrokerDefault => api::ConfigSource::BrokerDefault,
                    ConfigSource::Default => api::ConfigSource::Default,
                };
                (key, source)
            })
            .collect(),
        partitions: t
            .partitions
            .into_iter()
            .map(partition_description)
            .collect(),
    }
}

pub(crate) fn partition_description(
    p: crate::service::types::PartitionInfo,
) -> api::PartitionDescription {
    api::PartitionDescription {
        partition: p.partition,
        leader: p.leader,
        leader_epoch: p.leader_epoch,
        replicas: p.replicas,
        in_sync_replicas: p.in_sync_replicas,
        log_start_offset: p.log_start_offset,
        high_watermark: p.high_watermark,
        size_bytes: p.size_bytes,
        segments: p.segments,
        offline: p.offline,
    }
}

pub(crate) fn topic_list(topics: Vec<TopicSummary>) -> api::ListTopicsResponse {
    api::ListTopicsResponse {
        topics: topics
            .into_iter()
            .map(|t| api::TopicSummary {
                name: t.name,
                partitions: t.partitions,
                replication_factor: t.replication_factor,
                internal: t.internal,
            })
            .collect(),
    }
}

pub(crate) fn cluster(view: ClusterView) -> api::MetadataResponse {
    api::MetadataResponse {
        cluster_id: view.cluster_id,
        controller: view.controller,
        brokers: view
            .brokers
            .into_iter()
            .map(|b| api::BrokerInfo {
                id: b.id,
                address: b.address,
            })
            .collect(),
        topics: view
            .topics
            .into_iter()
            .map(|t| api::TopicMetadata {
                name: t.name,
                partitioner: t.partitioner,
                partitions: t
                    .partitions
                    .into_iter()
                    .map(|p| api::PartitionMetadata {
                        partition: p.partition,
                        leader: p.leader,
                        leader_epoch: p.leader_epoch,
                    })
                    .collect(),
            })
            .collect(),
    }
}

pub(crate) fn plugin_added(added: PluginAdded) -> api::PluginAddResponse {
    api::PluginAddResponse {
        name: added.name,
        version: added.version,
        kind: added.kind.to_string(),
    }
}

pub(crate) fn plugin_limits(spec: api::PluginLimitsSpec) -> PluginLimitSettings {
    PluginLimitSettings {
        call_timeout_ms: spec.call_timeout_ms,
        memory_bytes: spec.memory_bytes,
    }
}

pub(crate) fn plugin(summary: PluginSummary) -> api::PluginDescription {
    let info = summary.info;
    let defaults = summary.default_limits;
    api::PluginDescription {
        kind: info.kind().map_or_else(String::new, |k| k.to_string()),
        name: info.name,
        current_version: info.current,
        versions: info
            .versions
            .into_iter()
            .map(|v| {
                let limits = v.limits.unwrap_or(defaults);
                api::PluginVersionInfo {
                    version: v.version,
                    kind: v.kind.to_string(),
                    size_bytes: v.size_bytes,
                    sha256: v.sha256,
                    added_ms: v.added_ms,
                    call_timeout_ms: u64::try_from(limits.call_timeout.as_millis())
                        .unwrap_or(u64::MAX),
                    memory_bytes: u64::try_from(limits.memory_bytes).unwrap_or(u64::MAX),
                    own_limits: v.limits.is_some(),
                }
            })
            .collect(),
        bound_topics: summary.bound_topics,
    }
}

pub(crate) fn plugin_test(req: api::PluginTestRequest) -> PluginTest {
    PluginTest {
        name: req.name,
        version: req.version,
        topic: req.topic,
        partition: req.partition,
        from_offset: req.from_offset,
        count: req.count,
        params: req.params,
    }
}

pub(crate) fn plugin_trial(trial: PluginTrial) -> api::PluginTestResponse {
    api::PluginTestResponse {
        version: trial.version,
        kind: trial.kind.to_string(),
        decisions: trial
            .decisions
            .into_iter()
            .map(|(offset, decision)| api::PluginDecision {
                offset,
                outcome: match decision {
                    PluginDecision::Partition(p) => api::PluginOutcome::Partition(p),
                    PluginDecision::Keep(k) => api::PluginOutcome::Keep(k),
                    PluginDecision::Compaction { key, retain } => {
                        api::PluginOutcome::Compaction { key, retain }
                    }
                },
            })
            .collect(),
    }
}

pub(crate) fn plugin_logs(page: PluginLogPage) -> api::PluginLogsResponse {
    api::PluginLogsResponse {
        entries: page.entries.into_iter().map(log_entry).collect(),
        next_seq: page.next_seq,
    }
}

fn log_entry(e: LogEntry) -> api::PluginLogEntry {
    let level = match e.level {
        LogLevel::Trace => "trace",
        LogLevel::Debug => "debug",
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    };
    let source = match e.source {
        LogSource::Guest => "guest",
        LogSource::Stdout => "stdout",
        LogSource::Stderr => "stderr",
        LogSource::Host => "host",
    };
    api::PluginLogEntry {
        seq: e.seq,
        time_ms: e.time_ms,
        level: level.to_string(),
        source: source.to_string(),
        version: e.version,
        message: e.message,
    }
}

pub(crate) fn cluster_status(
    s: crate::service::types::ClusterStatus,
) -> api::ClusterStatusResponse {
    let tp = |tp: quiver_group::TopicPartition| api::TopicPartition::new(tp.topic, tp.partition);
    api::ClusterStatusResponse {
        node_id: s.node_id,
        quorum: s.quorum.map(|q| api::QuorumState {
            leader: q.leader,
            term: q.term,
            voters: q.voters,
            role: q.role.to_owned(),
        }),
        brokers: s
            .brokers
            .into_iter()
            .map(|b| api::BrokerState {
                broker_id: b.broker_id,
                address: b.address,
                epoch: b.epoch,
                fenced: b.fenced,
            })
            .collect(),
        metadata_applied: s.metadata_applied,
        offline: s.offline.into_iter().map(tp).collect(),
        under_replicated: s.under_replicated.into_iter().map(tp).collect(),
        partitions: s.partitions,
    }
}
