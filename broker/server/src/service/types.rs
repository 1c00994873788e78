//! The service's own request and result types.
//!
//! They say what an operation needs and what it answers in the broker's terms, with no
//! trace of how a door carries them: durations instead of `*_ms` integers, sizes as
//! `usize`, record batches as `Bytes`. The QUIC door converts its wire structs to and
//! from these (`quic/convert/`); a Kafka door would convert its own.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;

/// How many replicas must hold a batch before a produce is answered. On one node
/// `Leader` and `All` are the same; acks=all waits for the in-sync replicas once
/// partitions are replicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Acks {
    /// The producer wants no answer; the door sends none.
    None,
    #[default]
    Leader,
    All,
}

/// A produce: record batches (RecordBatch v2 bytes, as the producer built them) for one
/// topic, to one partition or routed by the broker.
#[derive(Debug, Clone)]
pub struct ProduceInput {
    pub topic: String,
    /// `None` routes every record: by the topic's partitioner plugin, else by key hash.
    pub partition: Option<u32>,
    pub acks: Acks,
    /// How long an idempotent batch that arrived ahead of its predecessor may wait.
    pub timeout: Duration,
    pub batches: Bytes,
}

/// Where a produce landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProduceOutcome {
    /// The partition written (the first one, for a routed produce).
    pub partition: u32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub log_append_time: i64,
    pub log_start_offset: i64,
    /// The batch was a retry of one already stored; nothing new was written.
    pub duplicate: bool,
    /// For a routed produce, one entry per partition written, in partition order.
    pub routed: Vec<RoutedAppend>,
}

/// One partition's share of a routed produce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoutedAppend {
    pub partition: u32,
    pub base_offset: i64,
    pub last_offset: i64,
    pub records: u32,
}

/// A consumer-side filter plugin a read names, with its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterRef {
    pub name: String,
    /// `None` follows the newest version.
    pub version: Option<u32>,
    pub params: BTreeMap<String, String>,
}

/// A fetch: read from an offset, waiting up to `max_wait` for at least `min_bytes`.
#[derive(Debug, Clone)]
pub struct FetchInput {
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
    /// Asked-for size of the answer; the broker's own limit caps it.
    pub max_bytes: usize,
    pub min_bytes: usize,
    /// The broker's own limit caps it.
    pub max_wait: Duration,
    pub filter: Option<FilterRef>,
}

/// What a read found: whole stored batches (only the kept records, with a filter) and
/// where the next read starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FetchOutcome {
    pub high_watermark: i64,
    pub log_start_offset: i64,
    /// Past every batch examined, kept or dropped by a filter.
    pub next_offset: i64,
    pub records: Bytes,
}

/// A subscription: batches pushed from an offset on, as they are appended.
#[derive(Debug, Clone)]
pub struct SubscribeInput {
    pub topic: String,
    pub partition: u32,
    pub offset: i64,
    pub max_bytes: usize,
    pub filter: Option<FilterRef>,
}

/// Which offset a list-offsets asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetQuery {
    Earliest,
    Latest,
    /// The first record whose timestamp is at or after this one (ms).
    Timestamp(i64),
}

/// The answer to an [`OffsetQuery`]: `None` when no record matches a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAnswer {
    pub offset: Option<i64>,
    pub timestamp: Option<i64>,
}

/// A topic to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u16,
    /// Only the configs set on this topic; the rest come from the broker's defaults.
    pub configs: BTreeMap<String, String>,
}

/// A topic in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicSummary {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u16,
    pub internal: bool,
}

/// A topic with its effective configs and the live state of every partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicInfo {
    pub name: String,
    pub replication_factor: u16,
    pub internal: bool,
    /// Every config in force, defaults included.
    pub configs: BTreeMap<String, String>,
    /// Where each config's value comes from.
    pub config_sources: BTreeMap<String, ConfigSource>,
    pub partitions: Vec<PartitionInfo>,
}

/// Where a topic config's effective value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    /// Set on the topic.
    Topic,
    /// The broker's `topic_defaults`.
    BrokerDefault,
    /// The built-in default.
    Default,
}

/// One partition's placement and log state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionInfo {
    pub partition: u32,
    pub leader: u32,
    pub leader_epoch: i32,
    pub replicas: Vec<u32>,
    pub in_sync_replicas: Vec<u32>,
    pub log_start_offset: i64,
    pub high_watermark: i64,
    pub size_bytes: u64,
    pub segments: u32,
    /// Why the partition is offline (its log could not be opened), or `None` while it
    /// serves. An offline partition reports -1 offsets and no size.
    pub offline: Option<String>,
}

/// What a client needs to route requests: the brokers and where each partition leads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterView {
    pub cluster_id: String,
    pub controller: u32,
    pub brokers: Vec<BrokerAddress>,
    pub topics: Vec<TopicRoute>,
}

/// A broker and the address clients dial.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerAddress {
    pub id: u32,
    pub address: String,
}

/// A topic's partitions with their leaders, and its partitioner plugin if it has one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicRoute {
    pub name: String,
    pub partitioner: Option<String>,
    pub partitions: Vec<PartitionRoute>,
}

/// Where one partition leads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartitionRoute {
    pub partition: u32,
    pub leader: u32,
    pub leader_epoch: i32,
}

/// A fresh idempotent-producer identity.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerId {
    pub producer_id: i64,
    pub producer_epoch: i16,
}

/// Where a group-offsets reset moves each partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetTarget {
    /// The log start offset.
    Earliest,
    /// The high watermark: skip everything not yet read.
    Latest,
    /// This offset, clamped to the partition's readable range.
    Offset(i64),
    /// The first offset whose record timestamp (ms) is at or after this one.
    Timestamp(i64),
    /// An offset per partition, resolved by the client from the partitions' leaders.
    Resolved(std::collections::BTreeMap<u32, i64>),
}

/// A group as the coordinator describes it, with the lag of every partition of the topics
/// it subscribes to or has commits on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescribedGroup {
    pub group: quiver_group::GroupDescription,
    /// Sorted by topic and partition.
    pub lag: Vec<PartitionLag>,
}

/// One partition's committed offset against its end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub partition: quiver_group::TopicPartition,
    pub committed: Option<i64>,
    /// The high watermark; -1 when the partition no longer exists.
    pub end_offset: i64,
    /// `None` without a commit or without the partition.
    pub lag: Option<i64>,
}

/// The cluster as `quiver cluster status` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterStatus {
    pub node_id: u32,
    /// `None` on a single node.
    pub quorum: Option<QuorumView>,
    pub brokers: Vec<RegisteredBroker>,
    pub metadata_applied: u64,
    pub offline: Vec<quiver_group::TopicPartition>,
    pub under_replicated: Vec<quiver_group::TopicPartition>,
    pub partitions: u32,
}

/// The metadata quorum as one voter sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumView {
    pub leader: Option<u32>,
    pub term: u64,
    pub voters: Vec<u32>,
    pub role: &'static str,
}

/// One registered broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegisteredBroker {
    pub broker_id: u32,
    pub address: String,
    pub epoch: u64,
    /// Missed its heartbeats: it leads nothing until they resume.
    pub fenced: bool,
}
