//! The broker's domain errors. They say what went wrong in the broker's terms; a door
//! turns them into its protocol's codes (the QUIC door in `quic/errors.rs`).

use quiver_storage::StorageError;

use crate::topic_config::ConfigError;

/// What went wrong while serving a request.
#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("unknown topic '{0}'")]
    UnknownTopic(String),
    #[error("topic '{topic}' has no partition {partition} (it has {count})")]
    UnknownPartition {
        topic: String,
        partition: u32,
        count: u32,
    },
    /// The partition's log could not be opened (quarantined at start, or a reopen
    /// failed): nothing can be read from or written to it until an operator fixes the
    /// cause and reopens it.
    #[error(
        "partition {topic}-{partition} is offline: {reason}; fix the cause, then run          `quiver topic reopen {topic} {partition}`"
    )]
    PartitionOffline {
        topic: String,
        partition: u32,
        reason: String,
    },
    #[error("topic '{0}' already exists")]
    TopicExists(String),
    #[error("invalid topic name: {0}")]
    InvalidTopicName(String),
    #[error(transparent)]
    InvalidConfig(#[from] ConfigError),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("corrupt record batch: {0}")]
    CorruptBatch(#[from] quiver_proto::batch::BatchError),
    #[error("{0}")]
    UnknownPlugin(String),
    /// An uploaded component was refused; the message names what is wrong with it.
    #[error("{0}")]
    InvalidPlugin(String),
    /// A plugin call failed (trap, timeout, memory cap, its own error, a broken
    /// contract); the message names the plugin.
    #[error("{0}")]
    PluginFailed(String),
    /// A plugin's time or memory limit is outside its bounds; names the setting.
    #[error(transparent)]
    PluginLimit(#[from] quiver_plugin_host::LimitOutOfRange),
    /// A plugin cannot be removed while topics are bound to it.
    #[error("{0}")]
    PluginInUse(String),
    #[error("partition {topic}-{partition}: {source}")]
    Storage {
        topic: String,
        partition: u32,
        #[source]
        source: StorageError,
    },
    /// The metadata refused a change (a topic that exists, a plugin a topic uses, ...).
    #[error(transparent)]
    Metadata(#[from] quiver_metadata::MetadataError),
    /// The metadata log could not be read or written.
    #[error(transparent)]
    MetadataLog(quiver_metadata::LocalLogError),
    /// The cluster's metadata quorum could not take a change (no majority, or an
    /// answer lost).
    #[error(transparent)]
    Quorum(quiver_quorum::QuorumError),
    /// Another broker holds this partition; the client asks the cluster where it is.
    #[error("{}", not_leader_message(.topic, *.partition, *.leader))]
    NotLeader {
        topic: String,
        partition: u32,
        leader: Option<u32>,
    },
    /// An acks=all produce while the partition's in-sync replicas are fewer than the
    /// topic's `min.insync.replicas`.
    #[error(
        "partition {topic}-{partition} has {} in-sync replicas ({isr:?}), fewer than min.insync.replicas = {min_insync}; the write was not accepted",
        .isr.len()
    )]
    NotEnoughReplicas {
        topic: String,
        partition: u32,
        isr: Vec<u32>,
        min_insync: u16,
    },
    /// An acks=all produce was appended by the leader but not confirmed by every
    /// in-sync replica in time; a retry with the same producer sequence is recognised.
    #[error(
        "partition {topic}-{partition}: offset {offset} was not replicated to every in-sync replica within {waited_ms} ms; retry the produce"
    )]
    ReplicationTimedOut {
        topic: String,
        partition: u32,
        offset: i64,
        waited_ms: u64,
    },
    /// A group request reached a broker that does not coordinate the group: its
    /// partition of the offsets topic is led elsewhere (or is still being loaded here).
    #[error("{}", not_coordinator_message(.group_id, *.partition, *.leader, *.loading))]
    NotCoordinator {
        group_id: String,
        partition: u32,
        leader: Option<u32>,
        /// This broker leads the partition and is replaying its commits.
        loading: bool,
    },
    /// No broker can coordinate the group right now: the offsets topic cannot be
    /// created yet, or the group's partition of it has no leader.
    #[error("no coordinator for group '{group_id}' is available: {reason}; retry shortly")]
    CoordinatorNotAvailable { group_id: String, reason: String },
    /// A routed batch forwarded to its partition's leader was refused there (or the
    /// leader could not be reached). `code` is the leader's answer as the front door
    /// numbers errors, kept opaque here and given back to the client unchanged.
    #[error("broker {broker}: {message}")]
    Forwarded {
        broker: u32,
        code: u16,
        message: String,
    },
    /// A consumer-group request the coordinator refused; its wire code comes from the
    /// groups' front door.
    #[error(transparent)]
    Group(#[from] quiver_group::GroupError),
    /// The caller is known but no rule lets it do this; the message names the
    /// principal, the operation and the resource.
    #[error("{0}")]
    Unauthorized(String),
    /// The caller's credential was refused (unknown, revoked or expired token).
    #[error("{0}")]
    Unauthenticated(String),
    #[error("the broker is shutting down")]
    ShuttingDown,
    #[error("internal error: {0}")]
    Internal(String),
}

fn not_coordinator_message(
    group_id: &str,
    partition: u32,
    leader: Option<u32>,
    loading: bool,
) -> String {
    if loading {
        return format!(
            "this broker is loading the commits of __consumer_offsets-{partition}, which holds group '{group_id}'; retry shortly"
        );
    }
    match leader {
        Some(id) => format!(
            "this broker does not coordinate group '{group_id}': broker {id} leads __consumer_offsets-{partition}; find the coordinator again"
        ),
        None => format!(
            "this broker does not coordinate group '{group_id}': __consumer_offsets-{partition} is led elsewhere; find the coordinator again"
        ),
    }
}

fn not_leader_message(topic: &str, partition: u32, leader: Option<u32>) -> String {
    match leader {
        Some(id) => format!(
            "partition {topic}-{partition} is led by broker {id}, not this one; send it there"
        ),
        None => format!(
            "partition {topic}-{partition} has no leader now (none of its replicas is available); try again later"
        ),
    }
}
