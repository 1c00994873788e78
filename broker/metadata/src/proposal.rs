//! Building records from requests, on the proposing side.
//!
//! A proposer reads the current image, builds a record here and hands it to the log;
//! the log applies it only if it still holds when its turn comes (another record may
//! have been applied in between), so these builders check what they need to build a
//! sensible record and leave the rest of the validation to apply.

use std::collections::BTreeMap;

use crate::error::MetadataError;
use crate::ids::{BrokerId, TopicId};
use crate::image::MetadataImage;
use crate::record::{
    AllocateProducerIds, CreateTopic, DeleteTopic, MetadataRecord, PluginKind, PluginLimits,
    RegisterPlugin,
};

/// How many producer ids a broker takes at a time.
pub const PRODUCER_ID_BLOCK: u32 = 1000;

/// A topic a client asked for, before its partitions are placed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTopic {
    pub name: String,
    pub partitions: u32,
    pub replication_factor: u16,
    pub configs: BTreeMap<String, String>,
    pub internal: bool,
}

/// A `CreateTopic` record placing `request`'s partitions on the registered brokers,
/// round-robin: replica `r` of partition `p` goes to broker `(start + p + r) mod n` in
/// id order, so leaders (the first replica) spread over the brokers and a different
/// `start` per topic spreads them across topics. Every replica starts in sync, the
/// first one leading at epoch 0. `topic_id` comes from the proposer (random, or a
/// counter), because applying a record must not draw random numbers.
pub fn create_topic_record(
    image: &MetadataImage,
    request: NewTopic,
    topic_id: TopicId,
    start: u32,
) -> Result<MetadataRecord, MetadataError> {
    quiver_proto::topic_name::validate(&request.name).map_err(|reason| {
        MetadataError::InvalidTopicName {
            name: request.name.clone(),
            reason,
        }
    })?;
    if image.topic(&request.name).is_some() {
        return Err(MetadataError::TopicExists { name: request.name });
    }
    if request.partitions == 0 {
        return Err(MetadataError::BadPartitionCount {
            name: request.name,
            reason: "a topic needs at least one partition".into(),
        });
    }
    if request.replication_factor == 0 {
        return Err(MetadataError::BadReplicationFactor {
            name: request.name,
            replication_factor: 0,
            reason: "every partition needs at least one replica".into(),
        });
    }
    let brokers: Vec<BrokerId> = image.brokers().map(|b| b.broker_id).collect();
    if brokers.len() < usize::from(request.replication_factor) {
        return Err(MetadataError::NotEnoughBrokers {
            needed: request.replication_factor,
            available: brokers.len(),
        });
    }
    let n = brokers.len();
    let assignment = (0..request.partitions as usize)
        .map(|p| {
            (0..usize::from(request.replication_factor))
                .map(|r| brokers[(start as usize + p + r) % n])
                .collect()
        })
        .collect();
    Ok(MetadataRecord::CreateTopic(CreateTopic {
        name: request.name,
        topic_id,
        partitions: request.partitions,
        replication_factor: request.replication_factor,
        configs: request.configs,
        internal: request.internal,
        assignment,
    }))
}

/// A `DeleteTopic` record for the topic `name` is now.
pub fn delete_topic_record(
    image: &MetadataImage,
    name: &str,
) -> Result<MetadataRecord, MetadataError> {
    let topic = image
        .topic(name)
        .ok_or_else(|| MetadataError::UnknownTopic {
            name: name.to_string(),
        })?;
    Ok(MetadataRecord::DeleteTopic(DeleteTopic {
        name: name.to_string(),
        topic_id: topic.topic_id,
    }))
}

/// The next block of `count` producer ids, for `broker_id`.
pub fn allocate_producer_ids_record(
    image: &MetadataImage,
    broker_id: BrokerId,
    count: u32,
) -> MetadataRecord {
    MetadataRecord::AllocateProducerIds(AllocateProducerIds {
        broker_id,
        first: image.next_producer_id(),
        count,
    })
}

/// A plugin upload, before it has a version number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginUpload {
    pub name: String,
    pub kind: PluginKind,
    pub content_hash: String,
    pub size: u64,
    pub uploaded_at_ms: i64,
    pub limits: Option<PluginLimits>,
}

/// A `RegisterPlugin` record giving `upload` the next version of its name: one more
/// than the last, or 1 for a new name.
pub fn register_plugin_record(image: &MetadataImage, upload: PluginUpload) -> MetadataRecord {
    let version = image
        .plugin(&upload.name)
        .map_or(1, |p| p.last_version.saturating_add(1));
    MetadataRecord::RegisterPlugin(RegisterPlugin {
        name: upload.name,
        version,
        kind: upload.kind,
        content_hash: upload.content_hash,
        size: upload.size,
        uploaded_at_ms: upload.uploaded_at_ms,
        limits: upload.limits,
    })
}
