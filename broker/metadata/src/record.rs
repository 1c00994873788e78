//! The records the metadata log holds, and their encoding.
//!
//! Each record is one JSON object whose `"type"` field names the kind of change, e.g.
//! `{"type":"delete_topic","name":"orders","topic_id":"…"}`. JSON keeps records readable
//! in a hex dump and lets them evolve: a new kind of record is a new variant, and a field
//! added later carries `#[serde(default)]` so that older records still decode. A field
//! whose absence would change what a record means needs a new variant instead, because an
//! older broker ignores fields it does not know. A record of an unknown type does not
//! decode: a broker must never skip a change it does not understand.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::access::{AccessRule, TokenEntry};
use crate::error::MetadataError;
use crate::ids::{BrokerId, TopicId};

/// One change to the cluster's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum MetadataRecord {
    RegisterBroker(RegisterBroker),
    /// Takes a broker out of the cluster (Kafka's `UnregisterBroker`).
    UnregisterBroker(UnregisterBroker),
    FenceBroker(BrokerEpoch),
    UnfenceBroker(BrokerEpoch),
    CreateTopic(CreateTopic),
    DeleteTopic(DeleteTopic),
    AlterTopicConfigs(AlterTopicConfigs),
    PartitionChange(PartitionChange),
    ReassignPartition(ReassignPartition),
    AllocateProducerIds(AllocateProducerIds),
    RegisterPlugin(RegisterPlugin),
    RemovePlugin(RemovePlugin),
    /// Adding a rule that exists already changes nothing.
    AddAccessRule(AccessRule),
    RemoveAccessRule(AccessRule),
    IssueToken(TokenEntry),
    RevokeToken(RevokeToken),
}

/// Withdraws a bearer token: it authenticates nobody from this record on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RevokeToken {
    pub token_id: String,
}

impl MetadataRecord {
    /// The record's bytes as a log stores them.
    pub fn encode(&self) -> Vec<u8> {
        // Serialising these types cannot fail whatever their values: every map key is a
        // string and there are no floats, so the only error JSON has cannot occur.
        serde_json::to_vec(self).expect("metadata records always serialise to JSON")
    }

    /// A record from the bytes [`MetadataRecord::encode`] wrote.
    pub fn decode(bytes: &[u8]) -> Result<Self, MetadataError> {
        serde_json::from_slice(bytes).map_err(|e| MetadataError::UndecodableRecord {
            reason: e.to_string(),
        })
    }
}

/// A broker announces itself. On one node the broker registers itself at every start;
/// the registration's epoch is the index of this record, so it grows with each restart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterBroker {
    pub broker_id: BrokerId,
    /// Where clients reach it, `host:port`.
    pub listener: String,
    /// Chosen by the broker process at start, different at every start, so that a
    /// registration can be told apart from an older one of the same id.
    pub incarnation: u64,
    /// Where other brokers reach it (`host:port` of its inter-broker listener, which
    /// carries replication); absent on a single node.
    #[serde(default)]
    pub peer_listener: Option<String>,
}

/// Forgets a broker that is leaving the cluster for good. Refused while any partition
/// still has a replica on it (move them away first), so nothing it holds is lost; it
/// leads nothing, so no partition changes. Should the broker start again it registers
/// anew.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UnregisterBroker {
    pub broker_id: BrokerId,
}

/// Fences or unfences one registration of a broker, named by its epoch so that a
/// decision about an earlier run never touches a later one. Written by the controller
/// (the quorum leader) when a broker misses its heartbeats for a session, and when a
/// fenced broker's heartbeats come back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEpoch {
    pub broker_id: BrokerId,
    pub epoch: u64,
}

/// A new topic with its partitions placed on brokers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreateTopic {
    pub name: String,
    pub topic_id: TopicId,
    pub partitions: u32,
    pub replication_factor: u16,
    /// Only the configs set on this topic; the rest come from defaults.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
    /// Internal topics (group offsets) are hidden from produce by users.
    #[serde(default)]
    pub internal: bool,
    /// The replicas of each partition, partition 0 first; the first replica leads.
    pub assignment: Vec<Vec<BrokerId>>,
}

/// Removes a topic. The id must match, so that a delete proposed before the name was
/// deleted and created again fails instead of removing the new topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteTopic {
    pub name: String,
    pub topic_id: TopicId,
}

/// Sets and removes configs of a topic. The server has validated keys and values.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AlterTopicConfigs {
    pub name: String,
    #[serde(default)]
    pub set: BTreeMap<String, String>,
    #[serde(default)]
    pub delete: BTreeSet<String>,
}

/// New leadership or membership of one partition (what a replicated cluster's
/// controller writes when a leader fails or the in-sync set changes).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionChange {
    pub topic: String,
    pub partition: u32,
    /// `None` while no in-sync replica can lead.
    pub leader: Option<BrokerId>,
    pub leader_epoch: u32,
    pub isr: Vec<BrokerId>,
    pub replicas: Vec<BrokerId>,
    /// The partition epoch the proposer read; the change is refused if the partition
    /// changed since (another ISR change, a fencing). `None` skips the check.
    #[serde(default)]
    pub partition_epoch: Option<u32>,
}

/// Starts moving a partition to `target` replicas (Kafka's partition reassignment): the
/// new brokers join as followers and copy the log; once all of them are in sync the
/// controller switches the partition to exactly `target` with a `PartitionChange`.
/// Naming the current replicas cancels a reassignment under way (its added replicas go).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReassignPartition {
    pub topic: String,
    pub partition: u32,
    pub target: Vec<BrokerId>,
}

/// Hands a block of idempotent producer ids to a broker. Ids below `first + count` are
/// never handed out again, whatever happens to the broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AllocateProducerIds {
    pub broker_id: BrokerId,
    pub first: i64,
    pub count: u32,
}

/// Which world a plugin component satisfies.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PluginKind {
    /// Chooses partitions for produced records.
    Partitioner,
    /// Keeps or drops fetched records.
    Filter,
    /// Decides compaction keys, survivors and retention.
    Compactor,
}

impl PluginKind {
    /// The name of the kind, as plugin commands print it.
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Partitioner => "partitioner",
            PluginKind::Filter => "filter",
            PluginKind::Compactor => "compactor",
        }
    }
}

impl std::fmt::Display for PluginKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Resource limits stored with one plugin version; a version without them runs with
/// the host's defaults, and so does a field of 0 (an upload that set only some limits).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginLimits {
    pub call_timeout_ms: u64,
    pub memory_bytes: u64,
    pub max_idle_instances: u32,
}

/// A new version of a plugin. The component's bytes are stored outside the metadata
/// log, found by `content_hash`; the record only says that this version exists.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RegisterPlugin {
    pub name: String,
    /// One more than the name's last version; numbers are not reused while the name
    /// has versions.
    pub version: u32,
    pub kind: PluginKind,
    /// SHA-256 of the component bytes, 64 lowercase hex digits.
    pub content_hash: String,
    pub size: u64,
    /// When it was uploaded, ms since the Unix epoch, read by the proposer: applying a
    /// record never reads a clock.
    pub uploaded_at_ms: i64,
    #[serde(default)]
    pub limits: Option<PluginLimits>,
}

/// Removes one version of a plugin, or every version (and the name) for `None`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovePlugin {
    pub name: String,
    #[serde(default)]
    pub version: Option<u32>,
    /// Remove even if topics name it in `partitioner` or `compaction.policy`; those
    /// topics then name a plugin that does not exist, and their produces or compaction
    /// fail until they are altered.
    #[serde(default)]
    pub force: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_are_tagged_json_and_round_trip() {
        let record = MetadataRecord::DeleteTopic(DeleteTopic {
            name: "orders".into(),
            topic_id: TopicId(7),
        });
        let bytes = record.encode();
        let text = String::from_utf8(bytes.clone()).expect("utf8");
        assert!(text.starts_with(r#"{"type":"delete_topic""#), "{text}");
        assert_eq!(MetadataRecord::decode(&bytes).expect("decode"), record);
    }

    #[test]
    fn optional_fields_default_and_unknown_types_fail() {
        let old = br#"{"type":"remove_plugin","name":"p"}"#;
        assert_eq!(
            MetadataRecord::decode(old).expect("decode"),
            MetadataRecord::RemovePlugin(RemovePlugin {
                name: "p".into(),
                version: None,
                force: false
            })
        );
        let future = br#"{"type":"rename_topic","from":"a","to":"b"}"#;
        assert!(matches!(
            MetadataRecord::decode(future),
            Err(MetadataError::UndecodableRecord { .. })
        ));
    }
}
