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
    let brokers: Vec<BrokerId> = image
        .brokers()
        .filter(|b| !b.fenced)
        .map(|b| b.broker_id)
        .collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::RegisterBroker;

    fn image_with_brokers(ids: &[BrokerId]) -> MetadataImage {
        let mut image = MetadataImage::empty();
        for (i, id) in ids.iter().enumerate() {
            let record = MetadataRecord::RegisterBroker(RegisterBroker {
                broker_id: *id,
                listener: format!("h{id}:1"),
                incarnation: 1,
                peer_listener: None,
            });
            image.apply(i as u64 + 1, &record).expect("register");
        }
        image
    }

    fn request(partitions: u32, replication_factor: u16) -> NewTopic {
        NewTopic {
            name: "orders".into(),
            partitions,
            replication_factor,
            configs: BTreeMap::new(),
            internal: false,
        }
    }

    #[test]
    fn partitions_go_round_robin_from_the_start_offset() {
        let image = image_with_brokers(&[30, 10, 20]);
        let record = create_topic_record(&image, request(4, 2), TopicId(1), 1).expect("record");
        let MetadataRecord::CreateTopic(create) = &record else {
            panic!("not a create: {record:?}");
        };
        // Brokers in id order are 10, 20, 30; start 1 begins at 20.
        assert_eq!(
            create.assignment,
            vec![vec![20, 30], vec![30, 10], vec![10, 20], vec![20, 30]]
        );
        let mut applied = image.clone();
        applied.apply(4, &record).expect("applies");
        assert_eq!(
            applied.partition("orders", 1).and_then(|p| p.leader),
            Some(30)
        );
    }

    #[test]
    fn create_needs_enough_brokers_and_sane_counts() {
        let image = image_with_brokers(&[1]);
        assert_eq!(
            create_topic_record(&image, request(1, 2), TopicId(1), 0),
            Err(MetadataError::NotEnoughBrokers {
                needed: 2,
                available: 1
            })
        );
        assert!(matches!(
            create_topic_record(&image, request(0, 1), TopicId(1), 0),
            Err(MetadataError::BadPartitionCount { .. })
        ));
        assert!(matches!(
            create_topic_record(&image, request(1, 0), TopicId(1), 0),
            Err(MetadataError::BadReplicationFactor { .. })
        ));
        let bad_name = NewTopic {
            name: "..".into(),
            ..request(1, 1)
        };
        assert!(matches!(
            create_topic_record(&image, bad_name, TopicId(1), 0),
            Err(MetadataError::InvalidTopicName { .. })
        ));
    }

    #[test]
    fn delete_takes_the_current_id() {
        let mut image = image_with_brokers(&[1]);
        let create = create_topic_record(&image, request(1, 1), TopicId(77), 0).expect("create");
        image.apply(2, &create).expect("apply");
        assert_eq!(
            delete_topic_record(&image, "orders"),
            Ok(MetadataRecord::DeleteTopic(DeleteTopic {
                name: "orders".into(),
                topic_id: TopicId(77)
            }))
        );
        assert!(delete_topic_record(&image, "nope").is_err());
        assert!(matches!(
            create_topic_record(&image, request(1, 1), TopicId(78), 0),
            Err(MetadataError::TopicExists { .. })
        ));
    }

    #[test]
    fn producer_ids_and_plugin_versions_come_next() {
        let mut image = image_with_brokers(&[1]);
        let block = allocate_producer_ids_record(&image, 1, PRODUCER_ID_BLOCK);
        image.apply(2, &block).expect("block");
        assert_eq!(
            allocate_producer_ids_record(&image, 1, 5),
            MetadataRecord::AllocateProducerIds(AllocateProducerIds {
                broker_id: 1,
                first: 1000,
                count: 5
            })
        );
        let upload = PluginUpload {
            name: "p".into(),
            kind: PluginKind::Filter,
            content_hash: "0".repeat(64),
            size: 1,
            uploaded_at_ms: 0,
            limits: None,
        };
        let first = register_plugin_record(&image, upload.clone());
        assert!(matches!(&first, MetadataRecord::RegisterPlugin(r) if r.version == 1));
        image.apply(3, &first).expect("v1");
        let second = register_plugin_record(&image, upload);
        assert!(matches!(&second, MetadataRecord::RegisterPlugin(r) if r.version == 2));
        image.apply(4, &second).expect("v2");
    }
}
