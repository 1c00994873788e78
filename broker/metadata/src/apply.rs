//! Applying a record to an image: validate against the image, then change it.
//!
//! Every check runs before anything changes, so a rejected record leaves the image as
//! it was, including its last applied index. Applying reads nothing but the image and the
//! record (no clock, no randomness, no I/O), so every replica that applies the same
//! records in the same order holds the same image, byte for byte in its snapshot.

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::access::{AccessRule, TokenEntry};
use crate::election;
use crate::error::MetadataError;
use crate::ids::{BrokerId, TopicId};
use crate::image::{
    BrokerRegistration, ImageState, MetadataImage, PartitionAssignment, PluginImage, PluginVersion,
    TopicImage,
};
use crate::plugin_ref::{PLUGIN_CONFIG_KEYS, PluginRef, check_plugin_name};
use crate::record::{
    AllocateProducerIds, AlterTopicConfigs, BrokerEpoch, CreateTopic, DeleteTopic, MetadataRecord,
    PluginKind, RegisterBroker, RegisterPlugin, RemovePlugin, RevokeToken, UnregisterBroker,
};

/// What a record changed, for the broker to act on (open partitions, close them,
/// reload a plugin, ...).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Applied {
    BrokerRegistered {
        broker_id: BrokerId,
        epoch: u64,
    },
    BrokerUnregistered {
        broker_id: BrokerId,
    },
    BrokerFenced {
        broker_id: BrokerId,
    },
    BrokerUnfenced {
        broker_id: BrokerId,
    },
    TopicCreated {
        name: String,
        topic_id: TopicId,
    },
    TopicDeleted {
        name: String,
        topic_id: TopicId,
    },
    TopicConfigsAltered {
        name: String,
    },
    PartitionChanged {
        topic: String,
        partition: u32,
    },
    ProducerIdsAllocated {
        broker_id: BrokerId,
        first: i64,
        count: u32,
    },
    PluginRegistered {
        name: String,
        version: u32,
    },
    /// The versions removed; `name_removed` when none is left.
    AccessRuleAdded,
    AccessRuleRemoved,
    TokenIssued {
        token_id: String,
    },
    TokenRevoked {
        token_id: String,
    },
    PluginRemoved {
        name: String,
        versions: Vec<u32>,
        name_removed: bool,
    },
}

impl MetadataImage {
    /// Applies the record at log index `index`. Indexes must grow (a replicated log may
    /// skip some, for entries that are not metadata records); a rejected record changes
    /// nothing, not even [`MetadataImage::last_applied`], and returns why.
    ///
    /// With a replicated log a committed record can still be rejected: its proposer
    /// checked it against an image that a concurrent record has since changed. Every
    /// replica rejects it alike, so the state stays the same everywhere; the Raft state
    /// machine notes the entry as applied in its own bookkeeping (it keeps the log id
    /// with its term anyway) and answers the proposer with the error.
    pub fn apply(&mut self, index: u64, record: &MetadataRecord) -> Result<Applied, MetadataError> {
        if index <= self.state.last_applied {
            return Err(MetadataError::IndexOutOfOrder {
                index,
                last_applied: self.state.last_applied,
            });
        }
        let s = &self.state;
        let change = match record {
            MetadataRecord::RegisterBroker(r) => check_register_broker(r)?,
            MetadataRecord::UnregisterBroker(r) => check_unregister_broker(s, r)?,
            MetadataRecord::FenceBroker(r) => check_fencing(s, r, true)?,
            MetadataRecord::UnfenceBroker(r) => check_fencing(s, r, false)?,
            MetadataRecord::CreateTopic(r) => check_create_topic(s, r)?,
            MetadataRecord::DeleteTopic(r) => check_delete_topic(s, r)?,
            MetadataRecord::AlterTopicConfigs(r) => check_alter_configs(s, r)?,
            MetadataRecord::PartitionChange(r) => check_partition_change(s, r)?,
            MetadataRecord::ReassignPartition(r) => check_reassign(s, r)?,
            MetadataRecord::AllocateProducerIds(r) => check_producer_ids(s, r)?,
            MetadataRecord::RegisterPlugin(r) => check_register_plugin(s, r)?,
            MetadataRecord::RemovePlugin(r) => check_remove_plugin(self, r)?,
            MetadataRecord::AddAccessRule(r) => check_add_rule(r)?,
            MetadataRecord::RemoveAccessRule(r) => check_remove_rule(s, r)?,
            MetadataRecord::IssueToken(r) => check_issue_token(s, r)?,
            MetadataRecord::RevokeToken(r) => check_revoke_token(s, r)?,
        };
        // Checked: from here on nothing fails.
        let state = Arc::make_mut(&mut self.state);
        state.last_applied = index;
        Ok(change(state, index))
    }

    /// Whether `record` would apply as the next record, without applying it.
    pub fn check(&self, record: &MetadataRecord) -> Result<Applied, MetadataError> {
        let mut copy = self.clone();
        copy.apply(self.state.last_applied.saturating_add(1), record)
    }
}

/// The change a checked record makes; it cannot fail.
type Change<'r> = Box<dyn FnOnce(&mut ImageState, u64) -> Applied + 'r>;

fn check_register_broker(r: &RegisterBroker) -> Result<Change<'_>, MetadataError> {
    if r.listener.trim().is_empty() {
        return Err(MetadataError::EmptyListener {
            broker_id: r.broker_id,
        });
    }
    Ok(Box::new(move |s, index| {
        let b = r.broker_id;
        // A new run of a known broker may have lost its followers' progress and must
        // catch up before it counts as in sync: its old run goes away first.
        if s.brokers
            .get(&b)
            .is_some_and(|old| old.incarnation != r.incarnation)
        {
            let available = available_brokers(s, b);
            move_partitions(s, |p, unclean| {
                election::without_broker(p, b, |o| available.contains(&o), unclean)
            });
        }
        s.brokers.insert(
            b,
            BrokerRegistration {
                broker_id: b,
                listener: r.listener.clone(),
                incarnation: r.incarnation,
                epoch: index,
                peer_listener: r.peer_listener.clone(),
                fenced: false,
            },
        );
        move_partitions(s, |p, unclean| election::with_broker_back(p, b, unclean));
        Applied::BrokerRegistered {
            broker_id: b,
            epoch: index,
        }
    }))
}

fn check_unregister_broker(
    s: &ImageState,
    r: &UnregisterBroker,
) -> Result<Change<'static>, MetadataError> {
    let b = r.broker_id;
    if !s.brokers.contains_key(&b) {
        return Err(MetadataError::UnknownBroker { broker_id: b });
    }
    let mut held = s.topics.values().flat_map(|t| {
        t.partitions.iter().enumerate().filter_map(move |(i, p)| {
            let targets = p.target_replicas.iter().flatten();
            (p.replicas.contains(&b) || targets.clone().any(|t| *t == b))
                .then(|| format!("{}-{i}", t.name))
        })
    });
    if let Some(example) = held.next() {
        return Err(MetadataError::BrokerHoldsReplicas {
            broker_id: b,
            partitions: 1 + held.count(),
            example,
        });
    }
    Ok(Box::new(move |s, _| {
        s.brokers.remove(&b);
        Applied::BrokerUnregistered { broker_id: b }
    }))
}

/// Fences (`fence`) or unfences the registration `r` names.
fn check_fencing(
    s: &ImageState,
    r: &BrokerEpoch,
    fence: bool,
) -> Result<Change<'static>, MetadataError> {
    let b = r.broker_id;
    let current = s
        .brokers
        .get(&b)
        .ok_or(MetadataError::UnknownBroker { broker_id: b })?;
    if current.epoch != r.epoch {
        return Err(MetadataError::StaleBrokerEpoch {
            broker_id: b,
            proposed: r.epoch,
            current: current.epoch,
        });
    }
    if current.fenced == fence {
        return Err(MetadataError::FencingUnchanged {
            broker_id: b,
            fenced: fence,
        });
    }
    Ok(Box::new(move |s, _| {
        if let Some(reg) = s.brokers.get_mut(&b) {
            reg.fenced = fence;
        }
        if fence {
            let available = available_brokers(s, b);
            move_partitions(s, |p, unclean| {
                election::without_broker(p, b, |o| available.contains(&o), unclean)
            });
            Applied::BrokerFenced { broker_id: b }
        } else {
            move_partitions(s, |p, unclean| election::with_broker_back(p, b, unclean));
            Applied::BrokerUnfenced { broker_id: b }
        }
    }))
}

/// The registered, unfenced brokers other than `except`.
fn available_brokers(s: &ImageState, except: BrokerId) -> BTreeSet<BrokerId> {
    s.brokers
        .values()
        .filter(|b| !b.fenced && b.broker_id != except)
        .map(|b| b.broker_id)
        .collect()
}

/// Replaces every partition `decide` changes; topics it leaves alone are not copied.
/// `decide` is told whether the partition's topic allows unclean election.
fn move_partitions(
    s: &mut ImageState,
    decide: impl Fn(&PartitionAssignment, bool) -> Option<PartitionAssignment>,
) {
    for topic in s.topics.values_mut() {
        let unclean = topic.unclean_election();
        let changes: Vec<(usize, PartitionAssignment)> = topic
            .partitions
            .iter()
            .enumerate()
            .filter_map(|(i, p)| decide(p, unclean).map(|next| (i, next)))
            .collect();
        if changes.is_empty() {
            continue;
        }
        let topic = Arc::make_mut(topic);
        for (i, next) in changes {
            topic.partitions[i] = next;
        }
    }
}

fn check_create_topic<'r>(s: &ImageState, r: &'r CreateTopic) -> Result<Change<'r>, MetadataError> {
    quiver_proto::topic_name::validate(&r.name).map_err(|reason| {
        MetadataError::InvalidTopicName {
            name: r.name.clone(),
            reason,
        }
    })?;
    if s.topics.contains_key(&r.name) {
        return Err(MetadataError::TopicExists {
            name: r.name.clone(),
        });
    }
    if let Some(other) = s.topic_ids.get(&r.topic_id) {
        return Err(MetadataError::TopicIdInUse {
            topic_id: r.topic_id,
            name: other.clone(),
        });
    }
    if r.partitions == 0 || r.assignment.len() != r.partitions as usize {
        return Err(MetadataError::BadPartitionCount {
            name: r.name.clone(),
            reason: format!(
                "{} partitions with {} placed; a topic needs at least one partition, each placed",
                r.partitions,
                r.assignment.len()
            ),
        });
    }
    if r.replication_factor == 0 {
        return Err(MetadataError::BadReplicationFactor {
            name: r.name.clone(),
            replication_factor: 0,
            reason: "every partition needs at least one replica".into(),
        });
    }
    for (p, replicas) in (0u32..).zip(&r.assignment) {
        if replicas.len() != usize::from(r.replication_factor) {
            return Err(MetadataError::BadReplicas {
                topic: r.name.clone(),
                partition: p,
                reason: format!(
                    "{} replicas placed, the replication factor is {}",
                    replicas.len(),
                    r.replication_factor
                ),
            });
        }
        check_replica_set(s, &r.name, p, replicas, "replicas")?;
    }
    check_plugin_refs(s, &r.name, r.configs.iter())?;
    Ok(Box::new(move |s, _| {
        let topic = TopicImage {
            name: r.name.clone(),
            topic_id: r.topic_id,
            replication_factor: r.replication_factor,
            configs: r.configs.clone(),
            internal: r.internal,
            partitions: r
                .assignment
                .iter()
                .map(|replicas| PartitionAssignment {
                    target_replicas: None,
                    replicas: replicas.clone(),
                    leader: replicas.first().copied(),
                    leader_epoch: 0,
                    isr: replicas.clone(),
                    partition_epoch: 0,
                })
                .collect(),
        };
        s.topic_ids.insert(r.topic_id, r.name.clone());
        s.topics.insert(r.name.clone(), Arc::new(topic));
        Applied::TopicCreated {
            name: r.name.clone(),
            topic_id: r.topic_id,
        }
    }))
}

fn check_delete_topic<'r>(s: &ImageState, r: &'r DeleteTopic) -> Result<Change<'r>, MetadataError> {
    let topic = existing_topic(s, &r.name)?;
    if topic.topic_id != r.topic_id {
        return Err(MetadataError::TopicIdMismatch {
            name: r.name.clone(),
            expected: r.topic_id,
            actual: topic.topic_id,
        });
    }
    Ok(Box::new(move |s, _| {
        s.topics.remove(&r.name);
        s.topic_ids.remove(&r.topic_id);
        Applied::TopicDeleted {
            name: r.name.clone(),
            topic_id: r.topic_id,
        }
    }))
}

fn check_alter_configs<'r>(
    s: &ImageState,
    r: &'r AlterTopicConfigs,
) -> Result<Change<'r>, MetadataError> {
    existing_topic(s, &r.name)?;
    if let Some(key) = r.set.keys().find(|k| r.delete.contains(*k)) {
        return Err(MetadataError::ConflictingConfig {
            topic: r.name.clone(),
            key: key.clone(),
        });
    }
    // Only the references this record sets are checked: a topic left naming a plugin
    // removed with force can still have its other configs altered.
    check_plugin_refs(s, &r.name, r.set.iter())?;
    Ok(Box::new(move |s, _| {
        if let Some(topic) = s.topics.get_mut(&r.name) {
            let topic = Arc::make_mut(topic);
            for key in &r.delete {
                topic.configs.remove(key);
            }
            for (key, value) in &r.set {
                topic.configs.insert(key.clone(), value.clone());
            }
            // Allowed now: the partitions that wait for their last in-sync replica are
            // led by any available one instead.
            if topic.unclean_election() {
                let brokers = &s.brokers;
                let available = |b| brokers.get(&b).is_some_and(|r| !r.fenced);
                for p in &mut topic.partitions {
                    if let Some(next) = election::unclean_now(p, available) {
                        *p = next;
                    }
                }
            }
        }
        Applied::TopicConfigsAltered {
            name: r.name.clone(),
        }
    }))
}

fn check_producer_ids<'r>(
    s: &ImageState,
    r: &'r AllocateProducerIds,
) -> Result<Change<'r>, MetadataError> {
    if !s.brokers.contains_key(&r.broker_id) {
        return Err(MetadataError::UnknownBroker {
            broker_id: r.broker_id,
        });
    }
    if r.first < s.next_producer_id {
        return Err(MetadataError::ProducerIdsReused {
            first: r.first,
            next: s.next_producer_id,
        });
    }
    // Gaps are allowed (ids skipped are simply never used), which lets a broker move
    // past ids an older allocator handed out.
    let end = r.first.checked_add(i64::from(r.count));
    let Some(end) = end.filter(|_| r.count > 0) else {
        return Err(MetadataError::BadProducerIdBlock {
            first: r.first,
            count: r.count,
        });
    };
    Ok(Box::new(move |s, _| {
        s.next_producer_id = end;
        Applied::ProducerIdsAllocated {
            broker_id: r.broker_id,
            first: r.first,
            count: r.count,
        }
    }))
}

fn check_register_plugin<'r>(
    s: &ImageState,
    r: &'r RegisterPlugin,
) -> Result<Change<'r>, MetadataError> {
    check_plugin_name(&r.name).map_err(|reason| MetadataError::InvalidPluginName {
        name: r.name.clone(),
        reason,
    })?;
    let hex_ok = r.content_hash.len() == 64
        && r.content_hash
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex_ok {
        return Err(MetadataError::BadContentHash {
            name: r.name.clone(),
            hash: r.content_hash.clone(),
        });
    }
    if let Some(existing) = s.plugins.get(&r.name) {
        if r.version <= existing.last_version {
            return Err(MetadataError::PluginVersionNotNew {
                name: r.name.clone(),
                version: r.version,
                last: existing.last_version,
            });
        }
        if let Some(kind) = existing.kind().filter(|k| *k != r.kind) {
            return Err(MetadataError::PluginKindChanged {
                name: r.name.clone(),
                existing: kind,
                proposed: r.kind,
            });
        }
    } else if r.version == 0 {
        return Err(MetadataError::PluginVersionNotNew {
            name: r.name.clone(),
            version: 0,
            last: 0,
        });
    }
    Ok(Box::new(move |s, _| {
        let entry = s.plugins.entry(r.name.clone()).or_insert_with(|| {
            Arc::new(PluginImage {
                name: r.name.clone(),
                last_version: 0,
                versions: Default::default(),
            })
        });
        let entry = Arc::make_mut(entry);
        entry.last_version = r.version;
        entry.versions.insert(
            r.version,
            PluginVersion {
                version: r.version,
                kind: r.kind,
                content_hash: r.content_hash.clone(),
                size: r.size,
                uploaded_at_ms: r.uploaded_at_ms,
                limits: r.limits,
            },
        );
        Applied::PluginRegistered {
            name: r.name.clone(),
            version: r.version,
        }
    }))
}

fn check_remove_plugin<'r>(
    image: &MetadataImage,
    r: &'r RemovePlugin,
) -> Result<Change<'r>, MetadataError> {
    let Some(plugin) = image.plugin(&r.name) else {
        return Err(MetadataError::UnknownPlugin {
            name: r.name.clone(),
        });
    };
    let removed: Vec<u32> = match r.version {
        None => plugin.versions.keys().copied().collect(),
        Some(v) if plugin.versions.contains_key(&v) => vec![v],
        Some(v) => {
            return Err(MetadataError::UnknownPluginVersion {
                name: r.name.clone(),
                version: v,
                available: plugin.versions.keys().copied().collect(),
            });
        }
    };
    if !r.force {
        let topics = image.bound_topics(&r.name, r.version);
        if !topics.is_empty() {
            return Err(MetadataError::PluginInUse {
                name: r.name.clone(),
                version: r.version,
                topics,
            });
        }
    }
    let name_removed = removed.len() == plugin.versions.len();
    Ok(Box::new(move |s, _| {
        if name_removed {
            // The name goes, and with it its version count: a later upload starts at 1.
            s.plugins.remove(&r.name);
        } else if let Some(entry) = s.plugins.get_mut(&r.name) {
            let entry = Arc::make_mut(entry);
            for v in &removed {
                entry.versions.remove(v);
            }
        }
        Applied::PluginRemoved {
            name: r.name.clone(),
            versions: removed,
            name_removed,
        }
    }))
}

fn existing_topic<'s>(s: &'s ImageState, name: &str) -> Result<&'s TopicImage, MetadataError> {
    s.topics
        .get(name)
        .map(|t| &**t)
        .ok_or_else(|| MetadataError::UnknownTopic {
            name: name.to_string(),
        })
}

/// Distinct, registered brokers.
fn check_replica_set(
    s: &ImageState,
    topic: &str,
    partition: u32,
    brokers: &[BrokerId],
    what: &str,
) -> Result<(), MetadataError> {
    let mut seen = BTreeSet::new();
    for b in brokers {
        if !seen.insert(*b) {
            return Err(MetadataError::BadReplicas {
                topic: topic.to_string(),
                partition,
                reason: format!("broker {b} appears twice in the {what}"),
            });
        }
        if !s.brokers.contains_key(b) {
            return Err(MetadataError::UnknownBroker { broker_id: *b });
        }
    }
    Ok(())
}

/// Plugin references among `configs` must name a registered plugin (and version, when
/// pinned) of the kind the key needs. An empty value binds nothing.
fn check_plugin_refs<'c>(
    s: &ImageState,
    topic: &str,
    configs: impl Iterator<Item = (&'c String, &'c String)>,
) -> Result<(), MetadataError> {
    for (key, value) in configs {
        let Some(needed) = needed_kind(key) else {
            continue;
        };
        if value.is_empty() {
            continue;
        }
        let r = PluginRef::parse(value).map_err(|reason| MetadataError::BadPluginReference {
            topic: topic.to_string(),
            key: key.clone(),
            value: value.clone(),
            reason,
        })?;
        let plugin = s
            .plugins
            .get(&r.name)
            .ok_or_else(|| MetadataError::UnknownPlugin {
                name: r.name.clone(),
            })?;
        let version = match r.version {
            None => plugin.current(),
            Some(v) => Some(plugin.versions.get(&v).ok_or_else(|| {
                MetadataError::UnknownPluginVersion {
                    name: r.name.clone(),
                    version: v,
                    available: plugin.versions.keys().copied().collect(),
                }
            })?),
        };
        if let Some(found) = version.map(|v| v.kind).filter(|k| *k != needed) {
            return Err(MetadataError::PluginKindMismatch {
                topic: topic.to_string(),
                key: key.clone(),
                name: r.name,
                found,
                needed,
            });
        }
    }
    Ok(())
}

fn needed_kind(key: &str) -> Option<PluginKind> {
    PLUGIN_CONFIG_KEYS
        .iter()
        .find(|(k, _)| *k == key)
        .map(|(_, kind)| *kind)
}

mod partitions;
#[cfg(test)]
mod tests;

use partitions::{check_partition_change, check_reassign};

fn check_add_rule(r: &AccessRule) -> Result<Change<'_>, MetadataError> {
    let bad = |reason: &str| MetadataError::InvalidAccess {
        what: "access rule".into(),
        reason: reason.to_string(),
    };
    if r.principal.0.is_empty() {
        return Err(bad("the principal is empty; use `*` for everyone"));
    }
    if r.operations.is_empty() {
        return Err(bad("it names no operation"));
    }
    if r.resource.name.is_empty() && r.resource.pattern == crate::access::PatternKind::Literal {
        return Err(bad("the resource name is empty; use `*` for every name"));
    }
    Ok(Box::new(move |s, _| {
        s.access_rules.insert(r.clone());
        Applied::AccessRuleAdded
    }))
}

fn check_remove_rule<'r>(s: &ImageState, r: &'r AccessRule) -> Result<Change<'r>, MetadataError> {
    if !s.access_rules.contains(r) {
        return Err(MetadataError::UnknownAccessRule {
            rule: format!("{r:?}"),
        });
    }
    Ok(Box::new(move |s, _| {
        s.access_rules.remove(r);
        Applied::AccessRuleRemoved
    }))
}

fn check_issue_token<'r>(s: &ImageState, r: &'r TokenEntry) -> Result<Change<'r>, MetadataError> {
    let bad = |reason: String| MetadataError::InvalidAccess {
        what: "token".into(),
        reason,
    };
    if r.token_id.is_empty() || !r.token_id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(bad(format!(
            "id `{}` must be non-empty ASCII letters and digits",
            r.token_id
        )));
    }
    if r.principal.0.is_empty() || r.principal.0 == "*" {
        return Err(bad("a token must name one principal".to_string()));
    }
    let hex = r.secret_sha256.len() == 64
        && r.secret_sha256
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    if !hex {
        return Err(bad(
            "the secret's hash must be 64 lowercase hex digits".to_string()
        ));
    }
    if s.tokens.contains_key(&r.token_id) {
        return Err(MetadataError::TokenExists {
            token_id: r.token_id.clone(),
        });
    }
    Ok(Box::new(move |s, _| {
        s.tokens.insert(r.token_id.clone(), r.clone());
        Applied::TokenIssued {
            token_id: r.token_id.clone(),
        }
    }))
}

fn check_revoke_token<'r>(s: &ImageState, r: &'r RevokeToken) -> Result<Change<'r>, MetadataError> {
    if !s.tokens.contains_key(&r.token_id) {
        return Err(MetadataError::UnknownToken {
            token_id: r.token_id.clone(),
        });
    }
    Ok(Box::new(move |s, _| {
        s.tokens.remove(&r.token_id);
        Applied::TokenRevoked {
            token_id: r.token_id.clone(),
        }
    }))
}
