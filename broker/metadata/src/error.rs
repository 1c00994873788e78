//! Why a record was rejected, or a snapshot could not be read.
//!
//! A rejected record changes nothing. Every replica rejects the same record the same way,
//! so a rejection is an answer to the proposer, not a fault of the replica.

use crate::ids::{BrokerId, TopicId};
use crate::record::PluginKind;

/// Why a record does not apply to the current image.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, serde::Serialize, serde::Deserialize)]
pub enum MetadataError {
    #[error(
        "record index {index} is not after the last applied index {last_applied}; records apply once, in log order"
    )]
    IndexOutOfOrder { index: u64, last_applied: u64 },

    #[error("invalid topic name `{name}`: {reason}")]
    InvalidTopicName { name: String, reason: String },
    #[error("topic `{name}` already exists; delete it first or choose another name")]
    TopicExists { name: String },
    #[error("topic id {topic_id} is already used by topic `{name}`; propose a fresh id")]
    TopicIdInUse { topic_id: TopicId, name: String },
    #[error("no topic named `{name}`; list topics to see which exist")]
    UnknownTopic { name: String },
    #[error(
        "topic `{name}` has id {actual}, not {expected}: it was deleted and created again after the change was proposed; look it up again"
    )]
    TopicIdMismatch {
        name: String,
        expected: TopicId,
        actual: TopicId,
    },
    #[error("topic `{name}`: {reason}")]
    BadPartitionCount { name: String, reason: String },
    #[error("topic `{name}`: replication factor {replication_factor}: {reason}")]
    BadReplicationFactor {
        name: String,
        replication_factor: u16,
        reason: String,
    },
    #[error("topic `{topic}` has no partition {partition}; its partitions are 0 to {}", .partitions.saturating_sub(1))]
    UnknownPartition {
        topic: String,
        partition: u32,
        partitions: u32,
    },
    #[error("partition {topic}-{partition}: {reason}")]
    BadReplicas {
        topic: String,
        partition: u32,
        reason: String,
    },
    #[error(
        "partition {topic}-{partition}: leader epoch {proposed} is not valid after epoch {current} (a new leader needs a higher epoch); look the partition up again"
    )]
    StaleLeaderEpoch {
        topic: String,
        partition: u32,
        proposed: u32,
        current: u32,
    },
    #[error(
        "partition {topic}-{partition}: the change was proposed against partition epoch {proposed}, and it is at {current} now; look the partition up again"
    )]
    StalePartitionEpoch {
        topic: String,
        partition: u32,
        proposed: u32,
        current: u32,
    },
    #[error(
        "partition {topic}-{partition}: broker {broker_id} is fenced and cannot join the in-sync replicas or lead"
    )]
    FencedReplica {
        topic: String,
        partition: u32,
        broker_id: BrokerId,
    },
    #[error(
        "broker {broker_id}'s registration at epoch {proposed} is not its current one ({current}); the decision concerns an earlier run"
    )]
    StaleBrokerEpoch {
        broker_id: BrokerId,
        proposed: u64,
        current: u64,
    },
    #[error("broker {broker_id} is {} already", if *.fenced { "fenced" } else { "not fenced" })]
    FencingUnchanged { broker_id: BrokerId, fenced: bool },
    #[error("topic `{topic}`: config `{key}` is both set and deleted; do one or the other")]
    ConflictingConfig { topic: String, key: String },

    #[error("no broker {broker_id} is registered; a broker registers itself when it starts")]
    UnknownBroker { broker_id: BrokerId },
    #[error(
        "broker {broker_id} still holds replicas of {partitions} partition(s), {example} among them; move them to other brokers first (drain the broker)"
    )]
    BrokerHoldsReplicas {
        broker_id: BrokerId,
        partitions: usize,
        example: String,
    },
    #[error("broker {broker_id} registers with an empty listener address; give host:port")]
    EmptyListener { broker_id: BrokerId },
    #[error(
        "a replication factor of {needed} needs as many brokers, and {available} are available (registered and not fenced); lower it or start more brokers"
    )]
    NotEnoughBrokers { needed: u16, available: usize },

    #[error(
        "producer-id block starting at {first} reuses ids already handed out; the next free id is {next}"
    )]
    ProducerIdsReused { first: i64, next: i64 },
    #[error(
        "producer-id block of {count} ids starting at {first} is empty or runs past the largest id"
    )]
    BadProducerIdBlock { first: i64, count: u32 },

    #[error("invalid plugin name `{name}`: {reason}")]
    InvalidPluginName { name: String, reason: String },
    #[error(
        "plugin `{name}` version {version} is not after its last version {last}; versions count up and are not reused"
    )]
    PluginVersionNotNew {
        name: String,
        version: u32,
        last: u32,
    },
    #[error(
        "plugin `{name}` is a {existing}; a new version cannot be a {proposed}, because topics bound to the name expect a {existing}; use another name"
    )]
    PluginKindChanged {
        name: String,
        existing: PluginKind,
        proposed: PluginKind,
    },
    #[error("plugin `{name}`: content hash `{hash}` is not a SHA-256 in 64 lowercase hex digits")]
    BadContentHash { name: String, hash: String },
    #[error("no plugin named `{name}`; list plugins to see which are registered")]
    UnknownPlugin { name: String },
    #[error("plugin `{name}` has no version {version}; it has {available:?}")]
    UnknownPluginVersion {
        name: String,
        version: u32,
        available: Vec<u32>,
    },
    #[error(
        "plugin `{name}` is used by topics {topics:?}; alter their `partitioner` / `compaction.policy` first, or remove with force"
    )]
    PluginInUse {
        name: String,
        version: Option<u32>,
        topics: Vec<String>,
    },
    #[error("topic `{topic}`: config `{key}` = `{value}` is not a plugin reference: {reason}")]
    BadPluginReference {
        topic: String,
        key: String,
        value: String,
        reason: String,
    },
    #[error(
        "topic `{topic}`: config `{key}` names plugin `{name}`, a {found}; it needs a {needed}"
    )]
    PluginKindMismatch {
        topic: String,
        key: String,
        name: String,
        found: PluginKind,
        needed: PluginKind,
    },

    #[error("metadata record cannot be decoded: {reason}; it may come from a newer broker")]
    UndecodableRecord { reason: String },
    #[error("metadata snapshot cannot be restored: {reason}")]
    BadSnapshot { reason: String },
    #[error("no access rule {rule} exists; list the rules to see which do")]
    UnknownAccessRule { rule: String },
    #[error("a token with id `{token_id}` exists already")]
    TokenExists { token_id: String },
    #[error("no token with id `{token_id}`")]
    UnknownToken { token_id: String },
    #[error("invalid {what}: {reason}")]
    InvalidAccess { what: String, reason: String },
}
