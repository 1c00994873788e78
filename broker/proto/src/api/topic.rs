//! Topic administration and cluster metadata.
//!
//! Versions: the requests answered with a [`TopicDescription`] (create, describe, alter)
//! are at version 2: version 1 added [`PartitionDescription::offline`], version 2
//! [`TopicDescription::config_sources`]. Bodies are postcard,
//! which has no field names or defaults: a field appended to a struct inside a `Vec`
//! shifts every later element, so an older peer would misread the answer. The version
//! bump makes a broker and a client of different sides refuse each other with
//! `UNSUPPORTED_VERSION` instead.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::request;

/// Creates a topic. Configs not given take the broker's defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopicRequest {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u16,
    pub configs: BTreeMap<String, String>,
}
request!(CreateTopicRequest => TopicDescription, CREATE_TOPIC, "create-topic", version 2);

/// Deletes a topic and all its data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTopicRequest {
    pub name: String,
}
request!(DeleteTopicRequest => DeleteTopicResponse, DELETE_TOPIC, "delete-topic");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTopicResponse {}

/// Lists every topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListTopicsRequest {}
request!(ListTopicsRequest => ListTopicsResponse, LIST_TOPICS, "list-topics");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListTopicsResponse {
    pub topics: Vec<TopicSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicSummary {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u16,
    /// Internal topics (such as committed group offsets) are listed but marked.
    pub internal: bool,
}

/// Describes one topic: its effective configs and the state of every partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescribeTopicRequest {
    pub name: String,
}
request!(DescribeTopicRequest => TopicDescription, DESCRIBE_TOPIC, "describe-topic", version 2);

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicDescription {
    pub name: String,
    pub replication_factor: u16,
    pub internal: bool,
    /// Every config with its effective value, defaults included.
    pub configs: BTreeMap<String, String>,
    /// Where each config's value comes from, by key.
    pub config_sources: BTreeMap<String, ConfigSource>,
    pub partitions: Vec<PartitionDescription>,
}

/// Where a topic config's effective value comes from, as Kafka's describe says
/// (dynamic topic config, static broker config, default).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConfigSource {
    /// Set on this topic (at create or by alter).
    Topic,
    /// The broker's `topic_defaults` (its config file, or `quiver dev --config`).
    BrokerDefault,
    /// The built-in default.
    Default,
}

impl ConfigSource {
    pub fn as_str(self) -> &'static str {
        match self {
            ConfigSource::Topic => "topic",
            ConfigSource::BrokerDefault => "broker default",
            ConfigSource::Default => "default",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionDescription {
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
    /// serves; an offline partition reports -1 offsets and no size. Appended in version 1.
    pub offline: Option<String>,
}

/// Sets and removes topic configs; removed keys fall back to the broker default.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterTopicConfigRequest {
    pub name: String,
    pub set: BTreeMap<String, String>,
    pub delete: Vec<String>,
}
request!(AlterTopicConfigRequest => TopicDescription, ALTER_TOPIC_CONFIG, "alter-topic-config", version 2);

/// Re-runs recovery on one partition and swaps the recovered log in, without restarting
/// the broker: for a partition quarantined at start (its log could not be opened) or
/// locked by a failed write or fsync, once the cause is fixed. A healthy partition may be
/// reopened as well; it just recovers again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReopenPartitionRequest {
    pub topic: String,
    pub partition: u32,
}
request!(ReopenPartitionRequest => PartitionDescription, REOPEN_PARTITION, "reopen-partition");

/// Brokers and the leaders of partitions, for the named topics or all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataRequest {
    pub topics: Option<Vec<String>>,
}
request!(MetadataRequest => MetadataResponse, METADATA, "metadata");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetadataResponse {
    pub cluster_id: String,
    pub controller: u32,
    pub brokers: Vec<BrokerInfo>,
    pub topics: Vec<TopicMetadata>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerInfo {
    pub id: u32,
    /// `host:port` a client dials.
    pub address: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicMetadata {
    pub name: String,
    pub partitions: Vec<PartitionMetadata>,
    /// Name of the Wasm partitioner bound to the topic, if any.
    pub partitioner: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionMetadata {
    pub partition: u32,
    pub leader: u32,
    pub leader_epoch: i32,
}
