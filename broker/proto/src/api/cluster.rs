//! The cluster as an operator asks about it: `quiver cluster status`.

use serde::{Deserialize, Serialize};

use super::{TopicPartition, request};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatusRequest {}

// Version 1 added `BrokerState::fenced` (postcard has no defaults; see `topic.rs`).
request!(ClusterStatusRequest => ClusterStatusResponse, CLUSTER_STATUS, "cluster-status", version 1);

/// What the answering broker knows of the cluster, from its applied metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClusterStatusResponse {
    /// The broker that answered.
    pub node_id: u32,
    /// The metadata quorum, or `None` on a single node (its metadata is a local log).
    pub quorum: Option<QuorumState>,
    /// Every registered broker.
    pub brokers: Vec<BrokerState>,
    /// Index of the last metadata record the answering broker applied.
    pub metadata_applied: u64,
    /// Partitions with no leader, or whose log could not be opened where they live.
    pub offline: Vec<TopicPartition>,
    /// Partitions with fewer in-sync replicas than replicas.
    pub under_replicated: Vec<TopicPartition>,
    /// Partitions in all.
    pub partitions: u32,
}

/// The metadata quorum as the answering voter sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumState {
    /// The voter that leads the quorum (the controller), if one is known.
    pub leader: Option<u32>,
    pub term: u64,
    pub voters: Vec<u32>,
    /// The answering voter's role: leader, follower, candidate or other.
    pub role: String,
}

/// One registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerState {
    pub broker_id: u32,
    /// Where clients reach it.
    pub address: String,
    /// The metadata index of its latest registration; it grows with every restart.
    pub epoch: u64,
    /// Missed its heartbeats for a session: it leads nothing until they resume.
    /// Added in version 1.
    pub fenced: bool,
}

/// Moves a partition to `replicas` (Kafka's partition reassignment): the brokers it
/// adds copy the log as followers, and once all of `replicas` are in sync the
/// partition switches to exactly them (the leader moves if it is not among them, and
/// the replicas left out delete their copies). Answered once the move has started;
/// `topic describe` shows the replicas, old and new together while it runs. Naming
/// the current replicas cancels a move under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignPartitionRequest {
    pub topic: String,
    pub partition: u32,
    pub replicas: Vec<u32>,
}
request!(ReassignPartitionRequest => ReassignPartitionResponse, REASSIGN_PARTITION, "reassign-partition");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignPartitionResponse {}

/// Takes a broker out of the cluster for good (Kafka's `UnregisterBroker`): it is
/// forgotten by the metadata and, if it is an observer, leaves the metadata quorum.
/// Refused while any partition has a replica on it (drain it first) and for a voter.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterBrokerRequest {
    pub broker_id: u32,
}
request!(UnregisterBrokerRequest => UnregisterBrokerResponse, UNREGISTER_BROKER, "unregister-broker");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterBrokerResponse {}
