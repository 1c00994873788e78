use std::collections::{BTreeMap, BTreeSet};

use super::*;
use crate::record::{PartitionChange, PluginLimits, ReassignPartition};

/// Whether an error is the one a case expects.
type Expect = fn(&MetadataError) -> bool;
type ExpectFn = dyn Fn(&MetadataError) -> bool;

fn next(image: &MetadataImage) -> u64 {
    image.last_applied() + 1
}

fn ok(image: &mut MetadataImage, record: MetadataRecord) -> Applied {
    let index = next(image);
    image
        .apply(index, &record)
        .unwrap_or_else(|e| panic!("{record:?} should apply: {e}"))
}

/// Applies `record`, expects a rejection, and checks that nothing changed.
fn rejected(image: &mut MetadataImage, record: MetadataRecord) -> MetadataError {
    let before = image.snapshot();
    let index = next(image);
    let err = image.apply(index, &record).expect_err("rejected");
    assert_eq!(
        image.snapshot(),
        before,
        "a rejected {record:?} changed the image"
    );
    err
}

fn broker(id: BrokerId) -> MetadataRecord {
    MetadataRecord::RegisterBroker(RegisterBroker {
        broker_id: id,
        listener: format!("10.0.0.{id}:9092"),
        incarnation: u64::from(id) * 10,
        peer_listener: None,
    })
}

fn topic(name: &str, id: u128, assignment: Vec<Vec<BrokerId>>) -> CreateTopic {
    CreateTopic {
        name: name.into(),
        topic_id: TopicId(id),
        partitions: assignment.len() as u32,
        replication_factor: assignment.first().map_or(1, |r| r.len() as u16),
        configs: BTreeMap::new(),
        internal: false,
        assignment,
    }
}

fn plugin(name: &str, version: u32, kind: PluginKind) -> MetadataRecord {
    MetadataRecord::RegisterPlugin(RegisterPlugin {
        name: name.into(),
        version,
        kind,
        content_hash: "ab".repeat(32),
        size: 100,
        uploaded_at_ms: 1_700_000_000_000,
        limits: None,
    })
}

fn remove(name: &str, version: Option<u32>, force: bool) -> MetadataRecord {
    MetadataRecord::RemovePlugin(RemovePlugin {
        name: name.into(),
        version,
        force,
    })
}

fn alter(name: &str, set: &[(&str, &str)], delete: &[&str]) -> MetadataRecord {
    MetadataRecord::AlterTopicConfigs(AlterTopicConfigs {
        name: name.into(),
        set: set
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        delete: delete
            .iter()
            .map(|k| k.to_string())
            .collect::<BTreeSet<_>>(),
    })
}

/// Two brokers and topic `t` (id 1) with two partitions on both.
fn cluster() -> MetadataImage {
    let mut image = MetadataImage::empty();
    ok(&mut image, broker(1));
    ok(&mut image, broker(2));
    ok(
        &mut image,
        MetadataRecord::CreateTopic(topic("t", 1, vec![vec![1, 2], vec![2, 1]])),
    );
    image
}

#[test]
fn register_broker_records_its_epoch_and_replaces_older_registrations() {
    let mut image = MetadataImage::empty();
    assert_eq!(
        ok(&mut image, broker(3)),
        Applied::BrokerRegistered {
            broker_id: 3,
            epoch: 1
        }
    );
    let restart = MetadataRecord::RegisterBroker(RegisterBroker {
        broker_id: 3,
        listener: "10.0.0.3:9093".into(),
        incarnation: 99,
        peer_listener: None,
    });
    image.apply(5, &restart).expect("re-register");
    let b = image.broker(3).expect("registered");
    assert_eq!(
        (b.epoch, b.incarnation, b.listener.as_str()),
        (5, 99, "10.0.0.3:9093")
    );
    assert_eq!(image.brokers().count(), 1);
    assert_eq!(image.last_applied(), 5);

    let empty = MetadataRecord::RegisterBroker(RegisterBroker {
        broker_id: 4,
        listener: " ".into(),
        incarnation: 1,
        peer_listener: None,
    });
    assert_eq!(
        rejected(&mut image, empty),
        MetadataError::EmptyListener { broker_id: 4 }
    );
}

#[test]
fn records_apply_in_index_order_only() {
    let mut image = MetadataImage::empty();
    image.apply(3, &broker(1)).expect("first");
    for index in [3, 2, 0] {
        let err = image.apply(index, &broker(2)).expect_err("old index");
        assert_eq!(
            err,
            MetadataError::IndexOutOfOrder {
                index,
                last_applied: 3
            }
        );
    }
    assert!(image.broker(2).is_none());
}

#[test]
fn create_topic_places_partitions_with_the_first_replica_leading() {
    let image = cluster();
    let t = image.topic("t").expect("created");
    assert_eq!(t.topic_id, TopicId(1));
    assert_eq!(t.partition_count(), 2);
    assert_eq!(
        image.topic_by_id(TopicId(1)).map(|t| &t.name),
        Some(&"t".to_string())
    );
    let p1 = image.partition("t", 1).expect("partition 1");
    assert_eq!(
        p1,
        &PartitionAssignment {
            replicas: vec![2, 1],
            leader: Some(2),
            leader_epoch: 0,
            isr: vec![2, 1],
            partition_epoch: 0,
            target_replicas: None,
        }
    );
    assert!(image.partition("t", 2).is_none());
}

#[test]
fn create_topic_rejections() {
    let mut image = cluster();
    let cases: Vec<(CreateTopic, Expect)> = vec![
        (topic("a/b", 2, vec![vec![1]]), |e| {
            matches!(e, MetadataError::InvalidTopicName { .. })
        }),
        (topic("t", 2, vec![vec![1]]), |e| {
            matches!(e, MetadataError::TopicExists { .. })
        }),
        (
            topic("u", 1, vec![vec![1]]),
            |e| matches!(e, MetadataError::TopicIdInUse { name, .. } if name == "t"),
        ),
        (topic("u", 2, vec![]), |e| {
            matches!(e, MetadataError::BadPartitionCount { .. })
        }),
        (
            CreateTopic {
                partitions: 3,
                ..topic("u", 2, vec![vec![1]])
            },
            |e| matches!(e, MetadataError::BadPartitionCount { .. }),
        ),
        (
            CreateTopic {
                replication_factor: 0,
                ..topic("u", 2, vec![vec![]])
            },
            |e| matches!(e, MetadataError::BadReplicationFactor { .. }),
        ),
        (
            CreateTopic {
                replication_factor: 2,
                ..topic("u", 2, vec![vec![1]])
            },
            |e| matches!(e, MetadataError::BadReplicas { partition: 0, .. }),
        ),
        (topic("u", 2, vec![vec![1], vec![2, 2]]), |e| {
            matches!(e, MetadataError::BadReplicas { .. })
        }),
        (topic("u", 2, vec![vec![1, 2], vec![2, 2]]), |e| {
            matches!(e, MetadataError::BadReplicas { partition: 1, .. })
        }),
        (topic("u", 2, vec![vec![7]]), |e| {
            matches!(e, MetadataError::UnknownBroker { broker_id: 7 })
        }),
    ];
    for (record, expected) in cases {
        let err = rejected(&mut image, MetadataRecord::CreateTopic(record.clone()));
        assert!(expected(&err), "{record:?} gave {err:?}");
    }
}

#[test]
fn delete_topic_frees_its_name_and_id_only_for_the_right_id() {
    let mut image = cluster();
    let wrong = MetadataRecord::DeleteTopic(DeleteTopic {
        name: "t".into(),
        topic_id: TopicId(9),
    });
    assert!(matches!(
        rejected(&mut image, wrong),
        MetadataError::TopicIdMismatch {
            actual: TopicId(1),
            ..
        }
    ));
    let unknown = MetadataRecord::DeleteTopic(DeleteTopic {
        name: "nope".into(),
        topic_id: TopicId(1),
    });
    assert!(matches!(
        rejected(&mut image, unknown),
        MetadataError::UnknownTopic { .. }
    ));
    let delete = MetadataRecord::DeleteTopic(DeleteTopic {
        name: "t".into(),
        topic_id: TopicId(1),
    });
    assert_eq!(
        ok(&mut image, delete),
        Applied::TopicDeleted {
            name: "t".into(),
            topic_id: TopicId(1)
        }
    );
    assert!(image.topic("t").is_none());
    assert!(image.topic_by_id(TopicId(1)).is_none());
    // The name and the id can be used again.
    ok(
        &mut image,
        MetadataRecord::CreateTopic(topic("t", 1, vec![vec![1]])),
    );
}

#[test]
fn alter_configs_sets_and_deletes() {
    let mut image = cluster();
    ok(
        &mut image,
        alter("t", &[("retention.ms", "10"), ("flush", "always")], &[]),
    );
    ok(
        &mut image,
        alter("t", &[("retention.ms", "20")], &["flush", "absent"]),
    );
    let configs = &image.topic("t").expect("t").configs;
    assert_eq!(
        configs,
        &BTreeMap::from([("retention.ms".to_string(), "20".to_string())])
    );
    assert!(matches!(
        rejected(&mut image, alter("nope", &[], &[])),
        MetadataError::UnknownTopic { .. }
    ));
    assert!(matches!(
        rejected(&mut image, alter("t", &[("flush", "os")], &["flush"])),
        MetadataError::ConflictingConfig { key, .. } if key == "flush"
    ));
}

#[test]
fn topic_configs_must_name_registered_plugins_of_the_right_kind() {
    let mut image = cluster();
    ok(&mut image, plugin("route", 1, PluginKind::Partitioner));
    ok(&mut image, plugin("keep", 1, PluginKind::Compactor));
    assert!(matches!(
        rejected(&mut image, alter("t", &[("partitioner", "ghost")], &[])),
        MetadataError::UnknownPlugin { name } if name == "ghost"
    ));
    assert!(matches!(
        rejected(&mut image, alter("t", &[("partitioner", "route@4")], &[])),
        MetadataError::UnknownPluginVersion { version: 4, .. }
    ));
    assert!(matches!(
        rejected(&mut image, alter("t", &[("partitioner", "keep")], &[])),
        MetadataError::PluginKindMismatch {
            found: PluginKind::Compactor,
            needed: PluginKind::Partitioner,
            ..
        }
    ));
    assert!(matches!(
        rejected(
            &mut image,
            alter("t", &[("compaction.policy", "keep@x")], &[])
        ),
        MetadataError::BadPluginReference { .. }
    ));
    ok(
        &mut image,
        alter(
            "t",
            &[("partitioner", "route@1"), ("compaction.policy", "keep")],
            &[],
        ),
    );
    // An empty value binds nothing.
    ok(&mut image, alter("t", &[("partitioner", "")], &[]));
    let mut create = topic("u", 2, vec![vec![1]]);
    create
        .configs
        .insert("compaction.policy".into(), "route".into());
    assert!(matches!(
        rejected(&mut image, MetadataRecord::CreateTopic(create)),
        MetadataError::PluginKindMismatch { .. }
    ));
}

fn change(
    partition: u32,
    leader: Option<BrokerId>,
    epoch: u32,
    isr: &[BrokerId],
) -> MetadataRecord {
    MetadataRecord::PartitionChange(PartitionChange {
        topic: "t".into(),
        partition,
        leader,
        leader_epoch: epoch,
        isr: isr.to_vec(),
        replicas: vec![1, 2],
        partition_epoch: None,
    })
}

#[test]
fn partition_change_moves_leadership_forward() {
    let mut image = cluster();
    // Shrinking the in-sync set under the same leader keeps the epoch.
    ok(&mut image, change(0, Some(1), 0, &[1]));
    ok(&mut image, change(0, Some(2), 1, &[2]));
    let p = image.partition("t", 0).expect("p0");
    assert_eq!(
        (p.leader, p.leader_epoch, p.isr.clone()),
        (Some(2), 1, vec![2])
    );
    // An empty ISR is refused: the last in-sync replica keeps its partition (fencing
    // leaves it leaderless but in sync, waiting for that broker).
    assert!(matches!(
        rejected(&mut image, change(0, None, 2, &[])),
        MetadataError::BadReplicas { .. }
    ));
    // The untouched partition is as created.
    assert_eq!(image.partition("t", 1).expect("p1").leader, Some(2));
}

#[test]
fn partition_change_rejections() {
    let mut image = cluster();
    let bad = |e: &MetadataError| matches!(e, MetadataError::BadReplicas { .. });
    let stale = |e: &MetadataError| matches!(e, MetadataError::StaleLeaderEpoch { .. });
    let cases: Vec<(MetadataRecord, &ExpectFn)> = vec![
        (change(5, Some(1), 1, &[1]), &|e| {
            matches!(e, MetadataError::UnknownPartition { partitions: 2, .. })
        }),
        (change(0, Some(2), 0, &[1, 2]), &stale),
        (change(0, Some(1), 1, &[2]), &bad),
        (change(0, None, 1, &[1]), &bad),
        (change(0, Some(1), 1, &[1, 1]), &bad),
        (
            MetadataRecord::PartitionChange(PartitionChange {
                replicas: vec![1],
                partition_epoch: None,
                ..match change(0, Some(1), 1, &[1, 2]) {
                    MetadataRecord::PartitionChange(c) => c,
                    _ => unreachable!(),
                }
            }),
            &bad,
        ),
        (
            MetadataRecord::PartitionChange(PartitionChange {
                replicas: vec![],
                partition_epoch: None,
                isr: vec![],
                leader: None,
                leader_epoch: 1,
                topic: "t".into(),
                partition: 0,
            }),
            &bad,
        ),
        (
            MetadataRecord::PartitionChange(PartitionChange {
                topic: "nope".into(),
                partition: 0,
                leader: None,
                leader_epoch: 0,
                isr: vec![],
                replicas: vec![1],
                partition_epoch: None,
            }),
            &|e| matches!(e, MetadataError::UnknownTopic { .. }),
        ),
        (
            MetadataRecord::PartitionChange(PartitionChange {
                topic: "t".into(),
                partition: 0,
                leader: Some(1),
                leader_epoch: 1,
                isr: vec![1],
                replicas: vec![1, 9],
                partition_epoch: None,
            }),
            &|e| matches!(e, MetadataError::UnknownBroker { broker_id: 9 }),
        ),
    ];
    for (record, expected) in cases {
        let err = rejected(&mut image, record.clone());
        assert!(expected(&err), "{record:?} gave {err:?}");
    }
    ok(&mut image, change(0, Some(2), 3, &[2]));
    assert!(stale(&rejected(&mut image, change(0, Some(2), 2, &[2]))));
}

fn ids(broker_id: BrokerId, first: i64, count: u32) -> MetadataRecord {
    MetadataRecord::AllocateProducerIds(AllocateProducerIds {
        broker_id,
        first,
        count,
    })
}

#[test]
fn producer_id_blocks_never_overlap() {
    let mut image = cluster();
    assert_eq!(image.next_producer_id(), 0);
    ok(&mut image, ids(1, 0, 1000));
    assert_eq!(image.next_producer_id(), 1000);
    // A gap is allowed: the skipped ids are never used.
    ok(&mut image, ids(2, 5000, 10));
    assert_eq!(image.next_producer_id(), 5010);
    assert_eq!(
        rejected(&mut image, ids(1, 5009, 10)),
        MetadataError::ProducerIdsReused {
            first: 5009,
            next: 5010
        }
    );
    assert_eq!(
        rejected(&mut image, ids(9, 6000, 10)),
        MetadataError::UnknownBroker { broker_id: 9 }
    );
    assert!(matches!(
        rejected(&mut image, ids(1, 6000, 0)),
        MetadataError::BadProducerIdBlock { .. }
    ));
    assert!(matches!(
        rejected(&mut image, ids(1, i64::MAX - 5, 10)),
        MetadataError::BadProducerIdBlock { .. }
    ));
}

#[test]
fn plugin_versions_count_up_and_keep_their_kind() {
    let mut image = MetadataImage::empty();
    ok(&mut image, plugin("p", 1, PluginKind::Filter));
    let limited = MetadataRecord::RegisterPlugin(RegisterPlugin {
        limits: Some(PluginLimits {
            call_timeout_ms: 50,
            memory_bytes: 1 << 20,
            max_idle_instances: 2,
        }),
        ..match plugin("p", 2, PluginKind::Filter) {
            MetadataRecord::RegisterPlugin(r) => r,
            _ => unreachable!(),
        }
    });
    ok(&mut image, limited);
    let p = image.plugin("p").expect("p");
    assert_eq!(p.current().map(|v| v.version), Some(2));
    assert_eq!(
        p.current()
            .and_then(|v| v.limits)
            .map(|l| l.call_timeout_ms),
        Some(50)
    );
    assert!(matches!(
        rejected(&mut image, plugin("p", 2, PluginKind::Filter)),
        MetadataError::PluginVersionNotNew { last: 2, .. }
    ));
    assert!(matches!(
        rejected(&mut image, plugin("p", 3, PluginKind::Compactor)),
        MetadataError::PluginKindChanged {
            existing: PluginKind::Filter,
            ..
        }
    ));
    assert!(matches!(
        rejected(&mut image, plugin("q", 0, PluginKind::Filter)),
        MetadataError::PluginVersionNotNew { .. }
    ));
    assert!(matches!(
        rejected(&mut image, plugin(".q", 1, PluginKind::Filter)),
        MetadataError::InvalidPluginName { .. }
    ));
    let mut bad_hash = plugin("q", 1, PluginKind::Filter);
    if let MetadataRecord::RegisterPlugin(r) = &mut bad_hash {
        r.content_hash = "AB".repeat(32);
    }
    assert!(matches!(
        rejected(&mut image, bad_hash),
        MetadataError::BadContentHash { .. }
    ));

    // Removing the newest version keeps its number taken while the name exists.
    ok(&mut image, remove("p", Some(2), false));
    assert_eq!(
        image
            .plugin("p")
            .and_then(|p| p.current())
            .map(|v| v.version),
        Some(1)
    );
    assert!(matches!(
        rejected(&mut image, plugin("p", 2, PluginKind::Filter)),
        MetadataError::PluginVersionNotNew { last: 2, .. }
    ));
    ok(&mut image, plugin("p", 3, PluginKind::Filter));
    // Removing the name forgets it: numbering and kind start afresh.
    assert_eq!(
        ok(&mut image, remove("p", None, false)),
        Applied::PluginRemoved {
            name: "p".into(),
            versions: vec![1, 3],
            name_removed: true
        }
    );
    assert!(image.plugin("p").is_none());
    ok(&mut image, plugin("p", 1, PluginKind::Compactor));
}

#[test]
fn a_plugin_in_use_is_not_removed_without_force() {
    let mut image = cluster();
    ok(&mut image, plugin("route", 1, PluginKind::Partitioner));
    ok(&mut image, plugin("route", 2, PluginKind::Partitioner));
    ok(&mut image, alter("t", &[("partitioner", "route")], &[]));
    let mut pinned = topic("pinned", 2, vec![vec![1]]);
    pinned
        .configs
        .insert("partitioner".into(), "route@1".into());
    ok(&mut image, MetadataRecord::CreateTopic(pinned));

    assert_eq!(image.bound_topics("route", None), vec!["pinned", "t"]);
    assert_eq!(image.bound_topics("route", Some(1)), vec!["pinned"]);
    assert_eq!(image.bound_topics("route", Some(2)), vec!["t"]);
    assert_eq!(
        rejected(&mut image, remove("route", None, false)),
        MetadataError::PluginInUse {
            name: "route".into(),
            version: None,
            topics: vec!["pinned".into(), "t".into()]
        }
    );
    assert!(matches!(
        rejected(&mut image, remove("route", Some(1), false)),
        MetadataError::PluginInUse { topics, .. } if topics == vec!["pinned".to_string()]
    ));
    assert!(matches!(
        rejected(&mut image, remove("route", Some(7), false)),
        MetadataError::UnknownPluginVersion { version: 7, .. }
    ));
    assert!(matches!(
        rejected(&mut image, remove("ghost", None, false)),
        MetadataError::UnknownPlugin { .. }
    ));
    // Unbinding `pinned` frees version 1, which nothing else uses.
    ok(&mut image, alter("pinned", &[], &["partitioner"]));
    ok(&mut image, remove("route", Some(1), false));
    // Force removes what `t` follows; `t` keeps naming it.
    ok(&mut image, remove("route", None, true));
    assert!(image.plugin("route").is_none());
    assert_eq!(
        image.topic("t").and_then(|t| t.configs.get("partitioner")),
        Some(&"route".to_string())
    );
    // Its other configs can still change.
    ok(&mut image, alter("t", &[("retention.ms", "5")], &[]));
}

#[test]
fn check_reports_without_applying() {
    let image = cluster();
    let record = MetadataRecord::CreateTopic(topic("u", 2, vec![vec![1]]));
    assert!(matches!(
        image.check(&record),
        Ok(Applied::TopicCreated { .. })
    ));
    assert!(image.topic("u").is_none());
    assert!(image.check(&broker(0)).is_ok());
}

fn script() -> Vec<MetadataRecord> {
    let mut pinned = topic("u", 2, vec![vec![2], vec![1], vec![2]]);
    pinned
        .configs
        .insert("compaction.policy".into(), "keep@1".into());
    vec![
        broker(1),
        broker(2),
        plugin("keep", 1, PluginKind::Compactor),
        MetadataRecord::CreateTopic(topic("t", 1, vec![vec![1, 2], vec![2, 1]])),
        MetadataRecord::CreateTopic(pinned),
        ids(1, 0, 1000),
        alter("t", &[("retention.ms", "1")], &[]),
        change(0, Some(2), 1, &[2]),
        MetadataRecord::DeleteTopic(DeleteTopic {
            name: "t".into(),
            topic_id: TopicId(1),
        }),
        plugin("keep", 2, PluginKind::Compactor),
        remove("keep", Some(2), false),
    ]
}

#[test]
fn the_same_records_give_the_same_snapshot_bytes() {
    let run = || {
        let mut image = MetadataImage::empty();
        for record in script() {
            ok(&mut image, record);
        }
        image
    };
    let (a, b) = (run(), run());
    assert_eq!(a.snapshot(), b.snapshot());
    assert_eq!(a, b);
}

#[test]
fn restore_then_apply_matches_applying_throughout() {
    let records = script();
    for split in 0..=records.len() {
        let mut direct = MetadataImage::empty();
        for r in &records[..split] {
            ok(&mut direct, r.clone());
        }
        let mut restored = MetadataImage::restore(&direct.snapshot()).expect("restore");
        assert_eq!(restored, direct, "restore at {split}");
        for r in &records[split..] {
            ok(&mut direct, r.clone());
            ok(&mut restored, r.clone());
        }
        assert_eq!(restored.snapshot(), direct.snapshot(), "split at {split}");
        assert_eq!(
            restored.topic_by_id(TopicId(2)).map(|t| t.name.clone()),
            Some("u".to_string())
        );
    }
}

#[test]
fn restore_refuses_other_formats_and_garbage() {
    let image = cluster();
    let text = String::from_utf8(image.snapshot()).expect("utf8");
    let future = text.replacen("\"format\":1", "\"format\":2", 1);
    assert!(matches!(
        MetadataImage::restore(future.as_bytes()),
        Err(MetadataError::BadSnapshot { reason }) if reason.contains("format 2")
    ));
    assert!(MetadataImage::restore(b"{").is_err());
}

#[test]
fn a_clone_is_unaffected_by_applying_to_the_original() {
    let mut image = cluster();
    let reader = image.clone();
    ok(&mut image, alter("t", &[("retention.ms", "1")], &[]));
    assert!(reader.topic("t").expect("t").configs.is_empty());
    assert_eq!(reader.last_applied() + 1, image.last_applied());
}

fn read_rule(who: &str, prefix: &str) -> AccessRule {
    use crate::access::{Effect, PatternKind, ResourcePattern};
    AccessRule {
        principal: crate::access::Principal(who.into()),
        resource: ResourcePattern {
            kind: crate::access::ResourceKind::Topic,
            pattern: PatternKind::Prefix,
            name: prefix.into(),
        },
        operations: BTreeSet::from([crate::access::Operation::Read]),
        effect: Effect::Allow,
    }
}

fn token(id: &str, who: &str) -> TokenEntry {
    TokenEntry {
        token_id: id.into(),
        principal: crate::access::Principal(who.into()),
        secret_sha256: "0f".repeat(32),
        issued_at_ms: 1,
        expires_at_ms: None,
    }
}

#[test]
fn access_rules_are_added_once_removed_and_decide_requests() {
    use crate::access::{Operation, Principal, ResourceKind};
    let mut image = cluster();
    let alice = Principal("User:alice".into());
    let may_read = |image: &MetadataImage| {
        image
            .authorize(&alice, Operation::Read, ResourceKind::Topic, "logs.app")
            .is_allowed()
    };
    assert!(!may_read(&image), "nothing is allowed without a rule");
    ok(
        &mut image,
        MetadataRecord::AddAccessRule(read_rule("User:alice", "logs.")),
    );
    ok(
        &mut image,
        MetadataRecord::AddAccessRule(read_rule("User:alice", "logs.")),
    );
    assert_eq!(
        image.access_rules().count(),
        1,
        "adding a rule twice keeps one"
    );
    assert!(may_read(&image));
    ok(
        &mut image,
        MetadataRecord::RemoveAccessRule(read_rule("User:alice", "logs.")),
    );
    assert!(!may_read(&image));
    let err = rejected(
        &mut image,
        MetadataRecord::RemoveAccessRule(read_rule("User:alice", "logs.")),
    );
    assert!(
        matches!(err, MetadataError::UnknownAccessRule { .. }),
        "{err}"
    );
    let mut empty = read_rule("", "logs.");
    let err = rejected(&mut image, MetadataRecord::AddAccessRule(empty.clone()));
    assert!(matches!(err, MetadataError::InvalidAccess { .. }), "{err}");
    empty.principal = crate::access::Principal("*".into());
    empty.operations.clear();
    let err = rejected(&mut image, MetadataRecord::AddAccessRule(empty));
    assert!(matches!(err, MetadataError::InvalidAccess { .. }), "{err}");
}

#[test]
fn tokens_are_issued_once_revoked_and_checked_for_shape() {
    let mut image = cluster();
    ok(
        &mut image,
        MetadataRecord::IssueToken(token("t1", "User:alice")),
    );
    assert_eq!(
        image.token("t1").map(|t| t.principal.0.as_str()),
        Some("User:alice")
    );
    let err = rejected(
        &mut image,
        MetadataRecord::IssueToken(token("t1", "User:bob")),
    );
    assert!(matches!(err, MetadataError::TokenExists { .. }), "{err}");
    let mut bad_hash = token("t2", "User:bob");
    bad_hash.secret_sha256 = "plain-secret".into();
    let err = rejected(&mut image, MetadataRecord::IssueToken(bad_hash));
    assert!(matches!(err, MetadataError::InvalidAccess { .. }), "{err}");
    let err = rejected(
        &mut image,
        MetadataRecord::IssueToken(token("t-3", "User:bob")),
    );
    assert!(matches!(err, MetadataError::InvalidAccess { .. }), "{err}");
    let revoke = |id: &str| {
        MetadataRecord::RevokeToken(RevokeToken {
            token_id: id.into(),
        })
    };
    ok(&mut image, revoke("t1"));
    assert!(image.token("t1").is_none());
    let err = rejected(&mut image, revoke("t1"));
    assert!(matches!(err, MetadataError::UnknownToken { .. }), "{err}");
}

#[test]
fn rules_and_tokens_survive_a_snapshot() {
    let mut image = cluster();
    ok(
        &mut image,
        MetadataRecord::AddAccessRule(read_rule("*", "public.")),
    );
    ok(
        &mut image,
        MetadataRecord::IssueToken(token("t1", "User:alice")),
    );
    let restored = MetadataImage::restore(&image.snapshot()).expect("restores");
    assert_eq!(restored, image);
    assert_eq!(restored.snapshot(), image.snapshot());
}

#[test]
fn access_records_round_trip_through_their_encoding() {
    for record in [
        MetadataRecord::AddAccessRule(read_rule("User:alice", "logs.")),
        MetadataRecord::IssueToken(token("t1", "User:alice")),
        MetadataRecord::RevokeToken(RevokeToken {
            token_id: "t1".into(),
        }),
    ] {
        assert_eq!(
            MetadataRecord::decode(&record.encode()).expect("decodes"),
            record
        );
    }
}

/// Three brokers and topic `r` with two partitions on all three, led by 1 and 2.
fn three_brokers() -> MetadataImage {
    let mut image = MetadataImage::empty();
    for id in 1..=3 {
        ok(&mut image, broker(id));
    }
    ok(
        &mut image,
        MetadataRecord::CreateTopic(topic("r", 7, vec![vec![1, 2, 3], vec![2, 3, 1]])),
    );
    image
}

fn fence(image: &MetadataImage, id: BrokerId) -> MetadataRecord {
    MetadataRecord::FenceBroker(BrokerEpoch {
        broker_id: id,
        epoch: image.broker(id).expect("registered").epoch,
    })
}

fn unfence(image: &MetadataImage, id: BrokerId) -> MetadataRecord {
    MetadataRecord::UnfenceBroker(BrokerEpoch {
        broker_id: id,
        epoch: image.broker(id).expect("registered").epoch,
    })
}

fn leaders(image: &MetadataImage) -> Vec<(Option<BrokerId>, u32, Vec<BrokerId>)> {
    image
        .topic("r")
        .expect("r")
        .partitions
        .iter()
        .map(|p| (p.leader, p.leader_epoch, p.isr.clone()))
        .collect()
}

#[test]
fn fencing_a_broker_moves_its_leaderships_and_takes_it_out_of_every_isr() {
    let mut image = three_brokers();
    let record = fence(&image, 1);
    assert_eq!(
        ok(&mut image, record),
        Applied::BrokerFenced { broker_id: 1 }
    );
    assert!(image.broker(1).expect("b1").fenced);
    assert_eq!(
        leaders(&image),
        vec![(Some(2), 1, vec![2, 3]), (Some(2), 0, vec![2, 3])]
    );
    // A fenced broker receives no new replicas.
    let err = crate::proposal::create_topic_record(
        &image,
        crate::proposal::NewTopic {
            name: "wide".into(),
            partitions: 1,
            replication_factor: 3,
            configs: BTreeMap::new(),
            internal: false,
        },
        TopicId(9),
        0,
    )
    .expect_err("only two brokers are available");
    assert!(
        matches!(err, MetadataError::NotEnoughBrokers { available: 2, .. }),
        "{err}"
    );
    // Fencing twice, or fencing an earlier run, is refused.
    let twice = fence(&image, 1);
    assert!(matches!(
        rejected(&mut image, twice),
        MetadataError::FencingUnchanged { fenced: true, .. }
    ));
    let stale = MetadataRecord::FenceBroker(BrokerEpoch {
        broker_id: 2,
        epoch: 1,
    });
    assert!(matches!(
        rejected(&mut image, stale),
        MetadataError::StaleBrokerEpoch { .. }
    ));
    // Unfenced, it leads nothing until its leader brings it back into the ISR.
    let back = unfence(&image, 1);
    assert_eq!(
        ok(&mut image, back),
        Applied::BrokerUnfenced { broker_id: 1 }
    );
    assert_eq!(leaders(&image)[0], (Some(2), 1, vec![2, 3]));
}

#[test]
fn a_fenced_broker_cannot_rejoin_an_isr_and_stale_isr_changes_are_refused() {
    let mut image = three_brokers();
    let before = image.partition("r", 0).expect("p0").partition_epoch;
    let record = fence(&image, 3);
    ok(&mut image, record);
    let rejoin = MetadataRecord::PartitionChange(PartitionChange {
        topic: "r".into(),
        partition: 0,
        leader: Some(1),
        leader_epoch: 0,
        isr: vec![1, 2, 3],
        replicas: vec![1, 2, 3],
        partition_epoch: None,
    });
    assert!(matches!(
        rejected(&mut image, rejoin),
        MetadataError::FencedReplica { broker_id: 3, .. }
    ));
    // A shrink proposed before the fencing, against the old partition epoch.
    let stale = MetadataRecord::PartitionChange(PartitionChange {
        topic: "r".into(),
        partition: 0,
        leader: Some(1),
        leader_epoch: 0,
        isr: vec![1],
        replicas: vec![1, 2, 3],
        partition_epoch: Some(before),
    });
    assert!(matches!(
        rejected(&mut image, stale),
        MetadataError::StalePartitionEpoch { .. }
    ));
}

#[test]
fn the_last_in_sync_replica_keeps_its_partition_until_it_returns() {
    let mut image = three_brokers();
    for id in [2, 3] {
        let record = fence(&image, id);
        ok(&mut image, record);
    }
    assert_eq!(leaders(&image)[0], (Some(1), 0, vec![1]));
    let record = fence(&image, 1);
    ok(&mut image, record);
    assert_eq!(leaders(&image)[0], (None, 1, vec![1]), "waits for broker 1");
    // 2 and 3 come back: still no leader, they are not in sync.
    for id in [2, 3] {
        let record = unfence(&image, id);
        ok(&mut image, record);
    }
    assert_eq!(leaders(&image)[0].0, None);
    // A new run of broker 1 registers: it leads again.
    ok(
        &mut image,
        MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id: 1,
            listener: "10.0.0.1:9092".into(),
            incarnation: 99,
            peer_listener: None,
        }),
    );
    assert_eq!(leaders(&image)[0], (Some(1), 2, vec![1]));
}

#[test]
fn a_topic_that_asks_for_unclean_election_is_led_by_an_out_of_sync_replica() {
    let mut image = three_brokers();
    for id in [2, 3, 1] {
        let record = fence(&image, id);
        ok(&mut image, record);
    }
    assert_eq!(leaders(&image)[0], (None, 1, vec![1]), "waits for broker 1");
    let record = unfence(&image, 2);
    ok(&mut image, record);
    assert_eq!(leaders(&image)[0].0, None, "clean: 2 is not in sync");
    // Allowing it elects at once, in replica order among the available brokers.
    ok(
        &mut image,
        alter("r", &[("unclean.leader.election.enable", "true")], &[]),
    );
    assert_eq!(
        leaders(&image),
        vec![(Some(2), 2, vec![2]), (Some(2), 4, vec![2])]
    );
    // Losing that leader too: the next available replica leads, alone in the ISR.
    let record = unfence(&image, 3);
    ok(&mut image, record);
    let record = fence(&image, 2);
    ok(&mut image, record);
    assert_eq!(leaders(&image)[0], (Some(3), 3, vec![3]));
    // A replica that returns to a partition without any available one leads it.
    let record = fence(&image, 3);
    ok(&mut image, record);
    assert_eq!(leaders(&image)[0].0, None, "no replica available");
    let record = unfence(&image, 1);
    ok(&mut image, record);
    assert_eq!(leaders(&image)[0], (Some(1), 5, vec![1]));
}

#[test]
fn a_restarted_leader_hands_its_partitions_to_the_in_sync_replicas() {
    let mut image = three_brokers();
    ok(
        &mut image,
        MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id: 2,
            listener: "10.0.0.2:9092".into(),
            incarnation: 1234,
            peer_listener: Some("10.0.0.2:7421".into()),
        }),
    );
    let reg = image.broker(2).expect("b2");
    assert!(!reg.fenced);
    assert_eq!(reg.peer_listener.as_deref(), Some("10.0.0.2:7421"));
    assert_eq!(
        leaders(&image),
        vec![(Some(1), 0, vec![1, 3]), (Some(3), 1, vec![3, 1])]
    );
    // The same run registering again changes no partition.
    let snapshot = image.topic("r").cloned();
    ok(
        &mut image,
        MetadataRecord::RegisterBroker(RegisterBroker {
            broker_id: 2,
            listener: "10.0.0.2:9092".into(),
            incarnation: 1234,
            peer_listener: None,
        }),
    );
    assert_eq!(image.topic("r").cloned(), snapshot);
}

#[test]
fn leadership_goes_back_to_the_preferred_replica_once_it_is_in_sync() {
    let mut image = three_brokers();
    assert!(
        crate::preferred_leader_changes(&image).is_empty(),
        "all preferred"
    );
    // Broker 1 goes away: r-0 moves to 2. Back and unfenced, 1 is not in sync yet.
    let record = fence(&image, 1);
    ok(&mut image, record);
    let record = unfence(&image, 1);
    ok(&mut image, record);
    assert_eq!(leaders(&image)[0], (Some(2), 1, vec![2, 3]));
    assert!(
        crate::preferred_leader_changes(&image).is_empty(),
        "1 is not in sync"
    );
    // Its leader takes it back into the ISR; now the partition goes back to it.
    ok(
        &mut image,
        MetadataRecord::PartitionChange(PartitionChange {
            topic: "r".into(),
            partition: 0,
            leader: Some(2),
            leader_epoch: 1,
            isr: vec![1, 2, 3],
            replicas: vec![1, 2, 3],
            partition_epoch: None,
        }),
    );
    let changes = crate::preferred_leader_changes(&image);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!((changes[0].leader, changes[0].leader_epoch), (Some(1), 2));
    ok(
        &mut image,
        MetadataRecord::PartitionChange(changes[0].clone()),
    );
    assert_eq!(leaders(&image)[0], (Some(1), 2, vec![1, 2, 3]));
    assert!(crate::preferred_leader_changes(&image).is_empty());
    // A fenced preferred replica is not elected, and a change built before a fencing
    // is refused by its partition epoch.
    let record = fence(&image, 2);
    ok(&mut image, record);
    assert!(
        crate::preferred_leader_changes(&image).is_empty(),
        "r-1 waits for 2"
    );
}

#[test]
fn a_reassignment_adds_the_new_replicas_then_switches_once_they_are_in_sync() {
    let mut image = three_brokers();
    ok(&mut image, broker(4));
    // r-0 is on 1, 2, 3 led by 1; move it to 2, 3, 4.
    let start = MetadataRecord::ReassignPartition(ReassignPartition {
        topic: "r".into(),
        partition: 0,
        target: vec![2, 3, 4],
    });
    ok(&mut image, start);
    let p = image.partition("r", 0).expect("p0").clone();
    assert_eq!(p.replicas, vec![1, 2, 3, 4], "added, nothing removed yet");
    assert_eq!((p.leader, p.isr.clone()), (Some(1), vec![1, 2, 3]));
    assert_eq!(p.target_replicas, Some(vec![2, 3, 4]));
    assert!(
        crate::reassignment_completions(&image).is_empty(),
        "4 is not in sync"
    );
    // Broker 4 catches up; its leader takes it into the ISR, the target stays.
    ok(
        &mut image,
        MetadataRecord::PartitionChange(PartitionChange {
            topic: "r".into(),
            partition: 0,
            leader: Some(1),
            leader_epoch: 0,
            isr: vec![1, 2, 3, 4],
            replicas: vec![1, 2, 3, 4],
            partition_epoch: None,
        }),
    );
    assert!(
        image
            .partition("r", 0)
            .expect("p0")
            .target_replicas
            .is_some()
    );
    let done = crate::reassignment_completions(&image);
    assert_eq!(done.len(), 1, "{done:?}");
    ok(&mut image, MetadataRecord::PartitionChange(done[0].clone()));
    let p = image.partition("r", 0).expect("p0");
    assert_eq!(p.replicas, vec![2, 3, 4]);
    assert_eq!(p.isr, vec![2, 3, 4]);
    assert_eq!((p.leader, p.leader_epoch), (Some(2), 1), "1 left: 2 leads");
    assert_eq!(p.target_replicas, None, "finished");
    assert!(crate::reassignment_completions(&image).is_empty());
    // Refused: an unknown broker, a fenced one, a replica named twice, none at all.
    for (target, what) in [
        (vec![9], "unknown"),
        (vec![2, 2], "twice"),
        (vec![], "empty"),
    ] {
        let record = MetadataRecord::ReassignPartition(ReassignPartition {
            topic: "r".into(),
            partition: 0,
            target,
        });
        assert!(image.check(&record).is_err(), "{what} target accepted");
    }
    let record = fence(&image, 1);
    ok(&mut image, record);
    let to_fenced = MetadataRecord::ReassignPartition(ReassignPartition {
        topic: "r".into(),
        partition: 0,
        target: vec![1, 2],
    });
    assert!(matches!(
        rejected(&mut image, to_fenced),
        MetadataError::FencedReplica { broker_id: 1, .. }
    ));
}

#[test]
fn a_broker_is_unregistered_only_once_it_holds_no_replica() {
    let mut image = cluster();
    ok(&mut image, broker(3));
    let unregister =
        |id| MetadataRecord::UnregisterBroker(crate::UnregisterBroker { broker_id: id });
    // Broker 2 holds both partitions of `t`.
    match rejected(&mut image, unregister(2)) {
        MetadataError::BrokerHoldsReplicas {
            broker_id: 2,
            partitions: 2,
            example,
        } => assert_eq!(example, "t-0"),
        other => panic!("unexpected {other:?}"),
    }
    // A move onto broker 3 under way counts as holding it, before it completes.
    ok(
        &mut image,
        MetadataRecord::ReassignPartition(ReassignPartition {
            topic: "t".into(),
            partition: 1,
            target: vec![2, 3],
        }),
    );
    assert!(matches!(
        rejected(&mut image, unregister(3)),
        MetadataError::BrokerHoldsReplicas {
            broker_id: 3,
            partitions: 1,
            ..
        }
    ));
    ok(
        &mut image,
        MetadataRecord::ReassignPartition(ReassignPartition {
            topic: "t".into(),
            partition: 1,
            target: vec![2, 1],
        }),
    );
    // Until the move back completes, broker 3 is still a replica.
    assert!(matches!(
        rejected(&mut image, unregister(3)),
        MetadataError::BrokerHoldsReplicas { broker_id: 3, .. }
    ));
    for change in crate::reassignment_completions(&image) {
        ok(&mut image, MetadataRecord::PartitionChange(change));
    }
    assert_eq!(image.partition("t", 1).expect("t-1").replicas, vec![2, 1]);
    // Empty, it goes; a second time it is unknown.
    assert_eq!(
        ok(&mut image, unregister(3)),
        Applied::BrokerUnregistered { broker_id: 3 }
    );
    assert!(image.broker(3).is_none());
    assert_eq!(
        rejected(&mut image, unregister(3)),
        MetadataError::UnknownBroker { broker_id: 3 }
    );
}
