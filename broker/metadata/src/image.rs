//! The metadata image: everything the records applied so far say, and the queries the
//! broker asks of it.
//!
//! An image is a value. Cloning it costs one reference count; [`MetadataImage::apply`]
//! copies what it changes (the maps hold their topics and plugins behind `Arc`s, so a
//! change copies the map's pointers and the one entry it touches). The broker keeps the
//! current image behind a swappable pointer: readers hold the image they started with,
//! the writer applies to a clone and swaps it in.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::access::{AccessRule, Decision, Operation, Principal, ResourceKind, TokenEntry, decide};

use crate::error::MetadataError;
use crate::ids::{BrokerId, TopicId};
use crate::plugin_ref::{PLUGIN_CONFIG_KEYS, PluginRef};
use crate::record::{PluginKind, PluginLimits};

/// A registered broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerRegistration {
    pub broker_id: BrokerId,
    pub listener: String,
    pub incarnation: u64,
    /// The index of the record that registered this incarnation; it grows with every
    /// registration, so it orders a broker's restarts.
    pub epoch: u64,
    /// Where other brokers reach it for replication.
    #[serde(default)]
    pub peer_listener: Option<String>,
    /// Missed its heartbeats for a session: it leads nothing and is in no in-sync
    /// replica set, except as the last member of one (see `election.rs`).
    #[serde(default)]
    pub fenced: bool,
}

/// Where one partition lives and who leads it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionAssignment {
    pub replicas: Vec<BrokerId>,
    pub leader: Option<BrokerId>,
    pub leader_epoch: u32,
    pub isr: Vec<BrokerId>,
    /// Counts every change of leader, replicas or ISR, so that a change proposed
    /// against an older state is refused.
    #[serde(default)]
    pub partition_epoch: u32,
    /// The replicas a reassignment moves the partition to, while it is under way:
    /// `replicas` then holds the old and the new ones together, and the controller
    /// switches to these once every one of them is in sync.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_replicas: Option<Vec<BrokerId>>,
}

/// One topic.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    pub name: String,
    pub topic_id: TopicId,
    pub replication_factor: u16,
    /// Only the configs set on this topic; the rest come from defaults.
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
    /// Partition `p` is `partitions[p]`.
    pub partitions: Vec<PartitionAssignment>,
}

/// The topic config that lets the controller elect a replica outside the ISR.
pub const UNCLEAN_ELECTION_KEY: &str = "unclean.leader.election.enable";

impl TopicImage {
    /// Whether the topic asks for unclean leader election (`unclean.leader.election.enable
    /// = true` set on the topic itself): when no in-sync replica can lead, an available
    /// replica outside the ISR does, and what only the ISR held is lost. Off by default.
    pub fn unclean_election(&self) -> bool {
        self.configs
            .get(UNCLEAN_ELECTION_KEY)
            .is_some_and(|v| v == "true")
    }

    /// How many partitions the topic has.
    pub fn partition_count(&self) -> u32 {
        // Apply refuses more partitions than a u32 counts.
        u32::try_from(self.partitions.len()).unwrap_or(u32::MAX)
    }

    /// The plugin references in this topic's configs, with the key naming each and
    /// the kind it needs. Values that do not parse are left out.
    pub fn plugin_refs(&self) -> impl Iterator<Item = (&'static str, PluginKind, PluginRef)> + '_ {
        PLUGIN_CONFIG_KEYS.into_iter().filter_map(|(key, kind)| {
            let value = self.configs.get(key).filter(|v| !v.is_empty())?;
            Some((key, kind, PluginRef::parse(value).ok()?))
        })
    }
}

/// One stored version of a plugin.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginVersion {
    pub version: u32,
    pub kind: PluginKind,
    pub content_hash: String,
    pub size: u64,
    pub uploaded_at_ms: i64,
    pub limits: Option<PluginLimits>,
}

/// A plugin name and its versions.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PluginImage {
    pub name: String,
    /// The highest version ever registered under this name while it existed, so that
    /// removed numbers are not handed out again.
    pub last_version: u32,
    /// Every stored version, oldest first; never empty.
    pub versions: BTreeMap<u32, PluginVersion>,
}

impl PluginImage {
    /// The version calls go to: the highest stored one.
    pub fn current(&self) -> Option<&PluginVersion> {
        self.versions.values().next_back()
    }

    /// The kind the name has (all its versions share it).
    pub fn kind(&self) -> Option<PluginKind> {
        self.current().map(|v| v.kind)
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ImageState {
    pub(crate) last_applied: u64,
    pub(crate) brokers: BTreeMap<BrokerId, BrokerRegistration>,
    pub(crate) topics: BTreeMap<String, Arc<TopicImage>>,
    /// Derived from `topics`; rebuilt on restore rather than stored.
    pub(crate) topic_ids: BTreeMap<TopicId, String>,
    pub(crate) next_producer_id: i64,
    pub(crate) plugins: BTreeMap<String, Arc<PluginImage>>,
    pub(crate) access_rules: BTreeSet<AccessRule>,
    /// Bearer tokens by id.
    pub(crate) tokens: BTreeMap<String, TokenEntry>,
}

/// The cluster's metadata as of one log index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetadataImage {
    pub(crate) state: Arc<ImageState>,
}

/// The format number of [`MetadataImage::snapshot`]; bumped when a field's meaning
/// changes, so an older broker refuses a snapshot it would misread.
pub const SNAPSHOT_FORMAT: u32 = 1;

#[derive(Serialize)]
struct SnapshotOut<'a> {
    format: u32,
    last_applied: u64,
    next_producer_id: i64,
    brokers: Vec<&'a BrokerRegistration>,
    topics: Vec<&'a TopicImage>,
    plugins: Vec<&'a PluginImage>,
    access_rules: Vec<&'a AccessRule>,
    tokens: Vec<&'a TokenEntry>,
}

#[derive(Deserialize)]
struct SnapshotIn {
    format: u32,
    last_applied: u64,
    next_producer_id: i64,
    brokers: Vec<BrokerRegistration>,
    topics: Vec<TopicImage>,
    plugins: Vec<PluginImage>,
    // Absent from snapshots taken before access rules existed.
    #[serde(default)]
    access_rules: Vec<AccessRule>,
    #[serde(default)]
    tokens: Vec<TokenEntry>,
}

impl MetadataImage {
    /// The image before any record: no brokers, topics or plugins.
    pub fn empty() -> Self {
        Self::default()
    }

    /// The index of the last record applied; 0 before any.
    pub fn last_applied(&self) -> u64 {
        self.state.last_applied
    }

    /// Every topic, by name.
    pub fn topics(&self) -> impl Iterator<Item = &TopicImage> + '_ {
        self.state.topics.values().map(|t| &**t)
    }

    /// The topic called `name`.
    pub fn topic(&self, name: &str) -> Option<&TopicImage> {
        self.state.topics.get(name).map(|t| &**t)
    }

    /// The topic with id `topic_id`.
    pub fn topic_by_id(&self, topic_id: TopicId) -> Option<&TopicImage> {
        let name = self.state.topic_ids.get(&topic_id)?;
        self.topic(name)
    }

    /// Partition `partition` of `topic`.
    pub fn partition(&self, topic: &str, partition: u32) -> Option<&PartitionAssignment> {
        self.topic(topic)?.partitions.get(partition as usize)
    }

    /// Every registered broker, by id.
    pub fn brokers(&self) -> impl Iterator<Item = &BrokerRegistration> + '_ {
        self.state.brokers.values()
    }

    /// Broker `broker_id`, if registered.
    pub fn broker(&self, broker_id: BrokerId) -> Option<&BrokerRegistration> {
        self.state.brokers.get(&broker_id)
    }

    /// The first producer id not yet handed out: the next block starts here or later.
    pub fn next_producer_id(&self) -> i64 {
        self.state.next_producer_id
    }

    /// Every plugin name, sorted.
    pub fn plugins(&self) -> impl Iterator<Item = &PluginImage> + '_ {
        self.state.plugins.values().map(|p| &**p)
    }

    /// Plugin `name` and its versions.
    pub fn plugin(&self, name: &str) -> Option<&PluginImage> {
        self.state.plugins.get(name).map(|p| &**p)
    }

    /// The topics whose `partitioner` or `compaction.policy` names plugin `name`. With a
    /// `version`, only those that would lose their plugin if it went: topics pinned to
    /// it, and topics following the newest version when it is the newest.
    pub fn bound_topics(&self, name: &str, version: Option<u32>) -> Vec<String> {
        let current = self
            .plugin(name)
            .and_then(|p| p.current())
            .map(|v| v.version);
        self.topics()
            .filter(|t| {
                t.plugin_refs().any(|(_, _, r)| {
                    r.name == name
                        && match (version, r.version) {
                            (None, _) => true,
                            (Some(v), Some(pinned)) => v == pinned,
                            (Some(v), None) => Some(v) == current,
                        }
                })
            })
            .map(|t| t.name.clone())
            .collect()
    }

    /// The whole image as bytes: a versioned JSON document with the last applied
    /// index. The same image always gives the same bytes.
    pub fn snapshot(&self) -> Vec<u8> {
        let s = &self.state;
        let out = SnapshotOut {
            format: SNAPSHOT_FORMAT,
            last_applied: s.last_applied,
            next_producer_id: s.next_producer_id,
            brokers: s.brokers.values().collect(),
            topics: s.topics.values().map(|t| &**t).collect(),
            plugins: s.plugins.values().map(|p| &**p).collect(),
            access_rules: s.access_rules.iter().collect(),
            tokens: s.tokens.values().collect(),
        };
        // These types always serialise: string map keys, no floats.
        serde_json::to_vec(&out).expect("metadata images always serialise to JSON")
    }

    /// The image [`MetadataImage::snapshot`] wrote. Applying records after it gives
    /// what applying them to the original image gives.
    pub fn restore(bytes: &[u8]) -> Result<Self, MetadataError> {
        let bad = |reason: String| MetadataError::BadSnapshot { reason };
        let doc: SnapshotIn = serde_json::from_slice(bytes).map_err(|e| bad(e.to_string()))?;
        if doc.format != SNAPSHOT_FORMAT {
            return Err(bad(format!(
                "format {} is not the supported {SNAPSHOT_FORMAT}; it comes from another broker version",
                doc.format
            )));
        }
        let mut state = ImageState {
            last_applied: doc.last_applied,
            next_producer_id: doc.next_producer_id,
            ..ImageState::default()
        };
        for b in doc.brokers {
            if let Some(old) = state.brokers.insert(b.broker_id, b) {
                return Err(bad(format!("broker {} appears twice", old.broker_id)));
            }
        }
        for t in doc.topics {
            if let Some(other) = state.topic_ids.insert(t.topic_id, t.name.clone()) {
                return Err(bad(format!(
                    "topic id {} belongs to `{other}` and `{}`",
                    t.topic_id, t.name
                )));
            }
            let name = t.name.clone();
            if state.topics.insert(name.clone(), Arc::new(t)).is_some() {
                return Err(bad(format!("topic `{name}` appears twice")));
            }
        }
        for p in doc.plugins {
            if p.versions.is_empty() {
                return Err(bad(format!("plugin `{}` has no versions", p.name)));
            }
            let name = p.name.clone();
            if state.plugins.insert(name.clone(), Arc::new(p)).is_some() {
                return Err(bad(format!("plugin `{name}` appears twice")));
            }
        }
        state.access_rules = doc.access_rules.into_iter().collect();
        for t in doc.tokens {
            let id = t.token_id.clone();
            if state.tokens.insert(id.clone(), t).is_some() {
                return Err(bad(format!("token `{id}` appears twice")));
            }
        }
        Ok(MetadataImage {
            state: Arc::new(state),
        })
    }

    /// Every access rule, in a stable order.
    pub fn access_rules(&self) -> impl Iterator<Item = &AccessRule> + '_ {
        self.state.access_rules.iter()
    }

    /// The token with this id, if it exists (expired or not).
    pub fn token(&self, token_id: &str) -> Option<&TokenEntry> {
        self.state.tokens.get(token_id)
    }

    /// Every token, by id.
    pub fn tokens(&self) -> impl Iterator<Item = &TokenEntry> + '_ {
        self.state.tokens.values()
    }

    /// Whether `who` may do `op` on the resource `kind`/`name` by the rules (super users
    /// and brokers are the server's to let through before asking).
    pub fn authorize(
        &self,
        who: &Principal,
        op: Operation,
        kind: ResourceKind,
        name: &str,
    ) -> Decision {
        decide(&self.state.access_rules, who, op, kind, name)
    }
}
