//! Random sequences of records give the same image however they reach it: applied
//! directly, appended to the local log and replayed at open (through snapshots the log
//! took along the way), or restored from a snapshot and followed by the rest.

use std::collections::BTreeMap;

use proptest::prelude::*;
use quiver_metadata::proposal::{
    NewTopic, PluginUpload, allocate_producer_ids_record, create_topic_record, delete_topic_record,
    register_plugin_record,
};
use quiver_metadata::{
    AlterTopicConfigs, LocalLogError, LocalLogOptions, LocalMetadataLog, MetadataImage,
    MetadataRecord, PartitionChange, PluginKind, RegisterBroker, RemovePlugin, TopicId,
};

const TOPICS: [&str; 4] = ["a", "b", "c", "d"];
const PLUGINS: [&str; 2] = ["p", "q"];
const KINDS: [PluginKind; 3] = [
    PluginKind::Partitioner,
    PluginKind::Filter,
    PluginKind::Compactor,
];
const KEYS: [&str; 3] = ["retention.ms", "partitioner", "compaction.policy"];
const VALUES: [&str; 4] = ["1", "p", "q@1", ""];

#[derive(Debug, Clone)]
enum Op {
    Register(u32),
    Create {
        topic: usize,
        partitions: u32,
        replication_factor: u16,
        start: u32,
    },
    Delete(usize),
    Alter {
        topic: usize,
        key: usize,
        value: usize,
        delete: bool,
    },
    Change {
        topic: usize,
        partition: u32,
        isr_len: usize,
        bump: u32,
    },
    Ids(u32),
    Plugin {
        name: usize,
        kind: usize,
    },
    RemovePlugin {
        name: usize,
        version: Option<u32>,
        force: bool,
    },
    /// Only the log path acts on it: a snapshot must not change the image.
    Snapshot,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (1u32..=3).prop_map(Op::Register),
        (0..TOPICS.len(), 1u32..4, 1u16..3, 0u32..3).prop_map(|(topic, partitions, rf, start)| {
            Op::Create {
                topic,
                partitions,
                replication_factor: rf,
                start,
            }
        }),
        (0..TOPICS.len()).prop_map(Op::Delete),
        (
            0..TOPICS.len(),
            0..KEYS.len(),
            0..VALUES.len(),
            any::<bool>()
        )
            .prop_map(|(topic, key, value, delete)| Op::Alter {
                topic,
                key,
                value,
                delete
            }),
        (0..TOPICS.len(), 0u32..4, 0usize..3, 0u32..2).prop_map(
            |(topic, partition, isr_len, bump)| Op::Change {
                topic,
                partition,
                isr_len,
                bump
            }
        ),
        (1u32..2000).prop_map(Op::Ids),
        (0..PLUGINS.len(), 0..KINDS.len()).prop_map(|(name, kind)| Op::Plugin { name, kind }),
        (
            0..PLUGINS.len(),
            proptest::option::of(1u32..4),
            any::<bool>()
        )
            .prop_map(|(name, version, force)| Op::RemovePlugin {
                name,
                version,
                force
            }),
        Just(Op::Snapshot),
    ]
}

/// The record `op` proposes against `image`, if it makes one. Many are rejected by
/// apply, which is part of what is tested.
fn record(op: &Op, image: &MetadataImage, next_id: &mut u128) -> Option<MetadataRecord> {
    Some(match op {
        Op::Register(id) => MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id: *id,
            listener: format!("b{id}:9092"),
            incarnation: image.last_applied(),
            peer_listener: None,
        }),
        Op::Create {
            topic,
            partitions,
            replication_factor,
            start,
        } => {
            *next_id += 1;
            let request = NewTopic {
                name: TOPICS[*topic].into(),
                partitions: *partitions,
                replication_factor: *replication_factor,
                configs: BTreeMap::new(),
                internal: false,
            };
            create_topic_record(image, request, TopicId(*next_id), *start).ok()?
        }
        Op::Delete(topic) => delete_topic_record(image, TOPICS[*topic]).ok()?,
        Op::Alter {
            topic,
            key,
            value,
            delete,
        } => {
            let mut alter = AlterTopicConfigs {
                name: TOPICS[*topic].into(),
                set: BTreeMap::new(),
                delete: Default::default(),
            };
            if *delete {
                alter.delete.insert(KEYS[*key].into());
            } else {
                alter.set.insert(KEYS[*key].into(), VALUES[*value].into());
            }
            MetadataRecord::AlterTopicConfigs(alter)
        }
        Op::Change {
            topic,
            partition,
            isr_len,
            bump,
        } => {
            let current = image.partition(TOPICS[*topic], *partition)?;
            let isr: Vec<u32> = current.replicas.iter().take(*isr_len).copied().collect();
            MetadataRecord::PartitionChange(PartitionChange {
                topic: TOPICS[*topic].into(),
                partition: *partition,
                leader: isr.first().copied(),
                leader_epoch: current.leader_epoch + bump,
                isr,
                replicas: current.replicas.clone(),
                partition_epoch: None,
            })
        }
        Op::Ids(count) => allocate_producer_ids_record(image, 1, *count),
        Op::Plugin { name, kind } => register_plugin_record(
            image,
            PluginUpload {
                name: PLUGINS[*name].into(),
                kind: KINDS[*kind],
                content_hash: format!("{:064x}", image.last_applied()),
                size: 10,
                uploaded_at_ms: 1,
                limits: None,
            },
        ),
        Op::RemovePlugin {
            name,
            version,
            force,
        } => MetadataRecord::RemovePlugin(RemovePlugin {
            name: PLUGINS[*name].into(),
            version: *version,
            force: *force,
        }),
        Op::Snapshot => return None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn direct_log_and_snapshot_paths_agree(
        ops in proptest::collection::vec(op(), 1..40),
        snapshot_every in 1u64..6,
        split_at in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().expect("tempdir");
        let options = LocalLogOptions { snapshot_every };
        let (mut log, _) = LocalMetadataLog::open_with(dir.path(), options).expect("open");
        let mut direct = MetadataImage::empty();
        let mut accepted = Vec::new();
        let mut images = vec![direct.clone()];
        let mut next_id = 0;
        // Most records need registered brokers; start with two so that more apply.
        let start = [Op::Register(1), Op::Register(2)];
        for op in start.iter().chain(&ops) {
            if matches!(op, Op::Snapshot) {
                log.snapshot().expect("snapshot");
                continue;
            }
            let Some(record) = record(op, &direct, &mut next_id) else { continue };
            let index = direct.last_applied() + 1;
            let applied = direct.apply(index, &record);
            match log.append(&record) {
                Ok(appended) => {
                    prop_assert!(applied.is_ok(), "log took what apply refused: {record:?}");
                    prop_assert_eq!(appended.index, index);
                    prop_assert_eq!(&appended.image, &direct);
                    accepted.push((index, record));
                    images.push(direct.clone());
                }
                Err(LocalLogError::Rejected(e)) => {
                    prop_assert_eq!(applied, Err(e));
                }
                Err(e) => panic!("log failed: {e}"),
            }
        }
        prop_assert_eq!(log.image(), &direct);
        drop(log);

        // Replayed from the files.
        let (_, replayed) = LocalMetadataLog::open_with(dir.path(), options).expect("reopen");
        prop_assert_eq!(replayed.snapshot(), direct.snapshot());

        // Restored from a snapshot of an earlier image, then the rest applied.
        let split = split_at.index(images.len());
        let mut restored = MetadataImage::restore(&images[split].snapshot()).expect("restore");
        for (index, record) in &accepted[split..] {
            restored.apply(*index, record).expect("applies after restore as before");
        }
        prop_assert_eq!(restored.snapshot(), direct.snapshot());
        prop_assert_eq!(restored, direct);
    }
}
