//! The service driven directly, with no socket: what a door relies on.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use quiver_proto::batch::{self, BatchBuilder, Compression, ProducerIdentity};
use tokio_util::sync::CancellationToken;

use super::BrokerService;
use super::types::{Acks, FetchInput, NewTopic, OffsetQuery, ProduceInput, SubscribeInput};
use crate::auth::Caller;
use crate::config::BrokerConfig;
use crate::error::BrokerError;

/// Every test here runs with authorization off (the default), as an anonymous client.
fn me() -> Caller {
    Caller::anonymous()
}

struct Harness {
    service: BrokerService,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

async fn open() -> Harness {
    let dir = tempfile::tempdir().expect("tempdir");
    let shutdown = CancellationToken::new();
    let service = BrokerService::open(
        BrokerConfig::dev(dir.path()),
        "127.0.0.1:0".into(),
        shutdown.clone(),
    )
    .await
    .expect("open");
    Harness {
        service,
        shutdown,
        _dir: dir,
    }
}

async fn topic(s: &BrokerService, name: &str, partitions: u32) {
    s.create_topic(
        &me(),
        NewTopic {
            name: name.into(),
            partitions,
            replication_factor: 1,
            configs: BTreeMap::new(),
        },
    )
    .await
    .expect("create topic");
}

fn records(values: &[(&str, &str)]) -> Bytes {
    let mut b = BatchBuilder::new();
    for (i, (k, v)) in values.iter().enumerate() {
        b.push(
            1_000 + i as i64,
            Some(k.as_bytes()),
            Some(v.as_bytes()),
            &[],
        );
    }
    b.build(Compression::None, ProducerIdentity::NONE)
}

fn produce(topic: &str, partition: Option<u32>, batches: Bytes) -> ProduceInput {
    ProduceInput {
        topic: topic.into(),
        partition,
        acks: Acks::Leader,
        timeout: Duration::from_secs(1),
        batches,
    }
}

fn fetch(topic: &str, partition: u32, offset: i64, wait: Duration) -> FetchInput {
    FetchInput {
        topic: topic.into(),
        partition,
        offset,
        max_bytes: 1 << 20,
        min_bytes: 1,
        max_wait: wait,
        filter: None,
    }
}

fn values(bytes: &Bytes) -> Vec<(i64, String)> {
    batch::split(bytes)
        .flat_map(|p| batch::decode_records(&p.expect("whole batch").1).expect("decodes"))
        .map(|r| {
            let v = r.value.as_deref().unwrap_or_default();
            (r.offset, String::from_utf8_lossy(v).into_owned())
        })
        .collect()
}

#[tokio::test]
async fn a_produced_batch_is_fetched_back_as_stored() {
    let h = open().await;
    topic(&h.service, "orders", 2).await;
    let batch = records(&[("a", "apple"), ("b", "banana")]);
    let out = h
        .service
        .produce(&me(), produce("orders", Some(1), batch))
        .await
        .expect("produce");
    assert_eq!((out.partition, out.base_offset, out.last_offset), (1, 0, 1));
    let read = h
        .service
        .fetch(&me(), fetch("orders", 1, 0, Duration::ZERO))
        .await
        .expect("fetch");
    assert_eq!(read.next_offset, 2);
    assert_eq!(read.high_watermark, 2);
    assert_eq!(
        values(&read.records),
        vec![(0, "apple".into()), (1, "banana".into())]
    );
}

#[tokio::test]
async fn a_waiting_fetch_answers_when_an_append_lands() {
    let h = open().await;
    topic(&h.service, "t", 1).await;
    let waiting = {
        let s = h.service.clone();
        tokio::spawn(async move {
            s.fetch(&me(), fetch("t", 0, 0, Duration::from_secs(30)))
                .await
        })
    };
    tokio::task::yield_now().await;
    h.service
        .produce(&me(), produce("t", Some(0), records(&[("k", "v")])))
        .await
        .expect("produce");
    let read = waiting.await.expect("task").expect("fetch");
    assert_eq!(values(&read.records), vec![(0, "v".into())]);
}

#[tokio::test]
async fn shutdown_ends_a_waiting_fetch() {
    let h = open().await;
    topic(&h.service, "t", 1).await;
    let waiting = {
        let s = h.service.clone();
        tokio::spawn(async move {
            s.fetch(&me(), fetch("t", 0, 0, Duration::from_secs(30)))
                .await
        })
    };
    tokio::task::yield_now().await;
    h.shutdown.cancel();
    let err = waiting.await.expect("task").expect_err("shutting down");
    assert!(matches!(err, BrokerError::ShuttingDown), "{err}");
}

#[tokio::test]
async fn a_routed_produce_places_keys_as_kafka_does_and_says_where() {
    let h = open().await;
    topic(&h.service, "t", 3).await;
    let keys = ["alice", "bob", "carol", "dave", "erin", "frank"];
    let pairs: Vec<(&str, &str)> = keys.iter().map(|k| (*k, *k)).collect();
    let out = h
        .service
        .produce(&me(), produce("t", None, records(&pairs)))
        .await
        .expect("routed produce");
    let total: u32 = out.routed.iter().map(|r| r.records).sum();
    assert_eq!(total, keys.len() as u32);
    for key in keys {
        let p = quiver_proto::murmur2::key_partition(key.as_bytes(), 3);
        let read = h
            .service
            .fetch(&me(), fetch("t", p, 0, Duration::ZERO))
            .await
            .expect("fetch");
        assert!(
            values(&read.records).iter().any(|(_, v)| v == key),
            "{key} is in partition {p}"
        );
    }
}

#[tokio::test]
async fn a_subscription_yields_what_is_appended_after_it_starts() {
    let h = open().await;
    topic(&h.service, "t", 1).await;
    let mut sub = h
        .service
        .subscribe(
            &me(),
            SubscribeInput {
                topic: "t".into(),
                partition: 0,
                offset: 0,
                max_bytes: 1 << 20,
                filter: None,
            },
        )
        .await
        .expect("subscribe");
    let next = tokio::spawn(async move { sub.next().await });
    tokio::task::yield_now().await;
    h.service
        .produce(&me(), produce("t", Some(0), records(&[("k", "pushed")])))
        .await
        .expect("produce");
    let pushed = next.await.expect("task").expect("next").expect("a read");
    assert_eq!(values(&pushed.records), vec![(0, "pushed".into())]);
}

#[tokio::test]
async fn unknown_names_and_internal_topics_are_typed_errors() {
    let h = open().await;
    let err = h
        .service
        .produce(&me(), produce("nope", Some(0), records(&[("k", "v")])))
        .await
        .expect_err("unknown topic");
    assert!(
        matches!(err, BrokerError::UnknownTopic(ref t) if t == "nope"),
        "{err}"
    );
    topic(&h.service, "t", 2).await;
    let err = h
        .service
        .fetch(&me(), fetch("t", 7, 0, Duration::ZERO))
        .await
        .expect_err("unknown partition");
    assert!(
        matches!(
            err,
            BrokerError::UnknownPartition {
                partition: 7,
                count: 2,
                ..
            }
        ),
        "{err}"
    );
    let internal = h
        .service
        .list_topics(&me())
        .into_iter()
        .find(|t| t.internal)
        .expect("the offsets topic exists");
    let err = h
        .service
        .produce(
            &me(),
            produce(&internal.name, Some(0), records(&[("k", "v")])),
        )
        .await
        .expect_err("internal topic");
    assert!(matches!(err, BrokerError::InvalidRequest(_)), "{err}");
}

#[tokio::test]
async fn topics_are_created_altered_described_and_deleted() {
    let h = open().await;
    topic(&h.service, "t", 2).await;
    let info = h
        .service
        .alter_topic(
            &me(),
            "t",
            BTreeMap::from([("retention.ms".to_string(), "60000".to_string())]),
            Vec::new(),
        )
        .await
        .expect("alter");
    assert_eq!(
        info.configs.get("retention.ms").map(String::as_str),
        Some("60000")
    );
    assert_eq!(info.partitions.len(), 2);
    let view = h
        .service
        .cluster_view(&me(), Some(&["t".to_string()]))
        .expect("cluster view");
    assert_eq!(view.topics[0].partitions.len(), 2);
    h.service.delete_topic(&me(), "t").await.expect("delete");
    assert!(matches!(
        h.service.describe_topic(&me(), "t"),
        Err(BrokerError::UnknownTopic(_))
    ));
}

#[tokio::test]
async fn list_offsets_answers_earliest_latest_and_by_time() {
    let h = open().await;
    topic(&h.service, "t", 1).await;
    h.service
        .produce(
            &me(),
            produce("t", Some(0), records(&[("a", "1"), ("b", "2"), ("c", "3")])),
        )
        .await
        .expect("produce");
    let s = &h.service;
    let earliest = s
        .list_offsets(&me(), "t", 0, OffsetQuery::Earliest)
        .await
        .expect("earliest");
    let latest = s
        .list_offsets(&me(), "t", 0, OffsetQuery::Latest)
        .await
        .expect("latest");
    let by_time = s
        .list_offsets(&me(), "t", 0, OffsetQuery::Timestamp(1_001))
        .await
        .expect("by time");
    assert_eq!(earliest.offset, Some(0));
    assert_eq!(latest.offset, Some(3));
    assert_eq!((by_time.offset, by_time.timestamp), (Some(1), Some(1_001)));
}

#[tokio::test]
async fn producer_ids_are_fresh() {
    let h = open().await;
    let a = h.service.init_producer_id(&me()).await.expect("id");
    let b = h.service.init_producer_id(&me()).await.expect("id");
    assert_ne!(a.producer_id, b.producer_id);
}

/// A data directory from before the metadata log: topics in `meta/topics.json`, the
/// producer-id block in `meta/producer-id-block`, partition logs beside them.
#[tokio::test]
async fn an_old_data_directory_is_imported_on_first_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let open = |dir: &std::path::Path| {
        BrokerService::open(
            BrokerConfig::dev(dir),
            "127.0.0.1:0".into(),
            CancellationToken::new(),
        )
    };
    // Write partition data with today's broker, then turn its metadata into the old files.
    let service = open(dir.path()).await.expect("open");
    topic(&service, "orders", 2).await;
    service
        .produce(&me(), produce("orders", Some(1), records(&[("k", "kept")])))
        .await
        .expect("produce");
    service.close();
    drop(service);
    std::fs::remove_dir_all(dir.path().join("meta/log")).expect("drop the metadata log");
    // Partition directories did not record a topic id then either.
    for p in 0..2 {
        let marker = crate::broker::partition_dir(dir.path(), "orders", p)
            .join(quiver_storage::PARTITION_METADATA);
        std::fs::remove_file(marker).expect("no topic id record yet");
    }
    std::fs::write(
        dir.path().join("meta/topics.json"),
        r#"{"version":1,"topics":[
            {"name":"orders","partitions":2,"replication_factor":1,
             "configs":{"retention.ms":"60000"},"internal":false},
            {"name":"__consumer_offsets","partitions":1,"replication_factor":1,
             "configs":{"cleanup.policy":"compact"},"internal":true}]}"#,
    )
    .expect("write old catalog");
    std::fs::write(dir.path().join("meta/producer-id-block"), "5000").expect("write old block");

    let service = open(dir.path()).await.expect("open an old data directory");
    let info = service
        .describe_topic(&me(), "orders")
        .expect("imported topic");
    assert_eq!(info.partitions.len(), 2);
    assert_eq!(
        info.configs.get("retention.ms").map(String::as_str),
        Some("60000")
    );
    let read = service
        .fetch(&me(), fetch("orders", 1, 0, Duration::ZERO))
        .await
        .expect("fetch");
    assert_eq!(values(&read.records), vec![(0, "kept".into())]);
    let id = service.init_producer_id(&me()).await.expect("producer id");
    assert!(
        id.producer_id >= 5000,
        "ids start past the old block: {id:?}"
    );
    assert!(dir.path().join("meta/topics.json.migrated").exists());
    assert!(!dir.path().join("meta/topics.json").exists());
    service.close();
    drop(service);

    // The import happens once: the next start reads the log alone.
    let service = open(dir.path()).await.expect("reopen");
    assert!(service.describe_topic(&me(), "orders").is_ok());
    let again = service.init_producer_id(&me()).await.expect("producer id");
    assert!(again.producer_id > id.producer_id);
}

/// A service with authorization on and `User:root` as its super user, and root's caller.
async fn open_with_authorization() -> (tempfile::TempDir, BrokerService, Caller) {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut config = BrokerConfig::dev(dir.path());
    config.auth.enabled = true;
    config.auth.super_users.insert("User:root".into());
    let service = BrokerService::open(config, "127.0.0.1:0".into(), CancellationToken::new())
        .await
        .expect("open");
    let root = Caller::client(quiver_metadata::Principal("User:root".into()));
    (dir, service, root)
}

/// With authorization on, only super users and what access rules allow get through.
#[tokio::test]
async fn authorization_lets_through_super_users_and_what_rules_allow() {
    use quiver_metadata::access::{Effect, PatternKind, ResourcePattern};
    use quiver_metadata::{AccessRule, MetadataRecord, Operation, Principal, ResourceKind};

    let (_dir, service, root) = open_with_authorization().await;
    let alice = Caller::client(Principal("User:alice".into()));
    let anonymous = Caller::anonymous();
    for name in ["orders", "payroll"] {
        service
            .create_topic(
                &root,
                NewTopic {
                    name: name.into(),
                    partitions: 1,
                    replication_factor: 1,
                    configs: BTreeMap::new(),
                },
            )
            .await
            .expect("a super user may create");
    }
    service
        .broker
        .metadata
        .append(&MetadataRecord::AddAccessRule(AccessRule {
            principal: Principal("User:alice".into()),
            resource: ResourcePattern {
                kind: ResourceKind::Topic,
                pattern: PatternKind::Literal,
                name: "orders".into(),
            },
            operations: [Operation::Write, Operation::Read].into_iter().collect(),
            effect: Effect::Allow,
        }))
        .expect("rule");

    fn refused<T: std::fmt::Debug>(r: Result<T, BrokerError>) -> String {
        match r {
            Err(BrokerError::Unauthorized(m)) => m,
            other => panic!("expected Unauthorized, got {other:?}"),
        }
    }
    let m = refused(
        service
            .produce(
                &anonymous,
                produce("orders", Some(0), records(&[("k", "v")])),
            )
            .await,
    );
    assert!(m.contains("ANONYMOUS") && m.contains("orders"), "{m}");
    service
        .produce(&alice, produce("orders", Some(0), records(&[("k", "v")])))
        .await
        .expect("alice may write orders");
    refused(
        service
            .produce(&alice, produce("payroll", Some(0), records(&[("k", "v")])))
            .await,
    );
    refused(
        service
            .fetch(&alice, fetch("payroll", 0, 0, Duration::ZERO))
            .await,
    );
    let read = service
        .fetch(&alice, fetch("orders", 0, 0, Duration::ZERO))
        .await
        .expect("alice may read orders");
    assert_eq!(values(&read.records), vec![(0, "v".into())]);
    let seen: Vec<String> = service
        .list_topics(&alice)
        .into_iter()
        .map(|t| t.name)
        .collect();
    assert_eq!(
        seen,
        vec!["orders".to_string()],
        "listings leave out what alice may not see"
    );
    refused(service.delete_topic(&alice, "orders").await);
    refused(
        service
            .add_plugin(
                &alice,
                "p".into(),
                None,
                Default::default(),
                bytes::Bytes::from_static(b"\0asm"),
            )
            .await,
    );
    // A producer id needs the right to write somewhere.
    refused(service.init_producer_id(&anonymous).await);
    service
        .init_producer_id(&alice)
        .await
        .expect("alice may write a topic, so she may have an id");
    // Internal topics are the broker's, super user or not: no alter either.
    let err = service
        .alter_topic(
            &root,
            "__consumer_offsets",
            BTreeMap::from([("retention.ms".to_string(), "1000".to_string())]),
            Vec::new(),
        )
        .await
        .expect_err("internal");
    assert!(matches!(err, BrokerError::InvalidRequest(_)), "{err}");
    let err = service
        .produce(
            &root,
            produce("__consumer_offsets", Some(0), records(&[("k", "v")])),
        )
        .await
        .expect_err("internal");
    assert!(matches!(err, BrokerError::InvalidRequest(_)), "{err}");
}

/// Tokens and rules are administered by super users; a token authenticates its principal
/// until revoked, and rules take effect at once.
#[tokio::test]
async fn tokens_and_rules_are_administered_by_super_users_and_take_effect() {
    use quiver_metadata::access::{Effect, PatternKind, ResourcePattern};
    use quiver_metadata::{AccessRule, Operation, Principal, ResourceKind};

    let (_dir, service, root) = open_with_authorization().await;
    let alice_p = Principal("User:alice".into());

    let refused = service
        .issue_token(&Caller::anonymous(), alice_p.clone(), None)
        .await
        .expect_err("only administrators issue tokens");
    assert!(matches!(refused, BrokerError::Unauthorized(_)), "{refused}");
    let issued = service
        .issue_token(&root, alice_p.clone(), None)
        .await
        .expect("issue");
    assert_eq!(service.authenticate(&issued.token).expect("valid"), alice_p);
    let listed = service.list_tokens(&root).expect("list");
    assert_eq!(listed.len(), 1);
    assert!(
        !format!("{listed:?}").contains(&issued.token),
        "no secret is kept"
    );

    let alice = Caller::client(alice_p.clone());
    service
        .create_topic(
            &root,
            NewTopic {
                name: "orders".into(),
                partitions: 1,
                replication_factor: 1,
                configs: BTreeMap::new(),
            },
        )
        .await
        .expect("create");
    assert!(service.describe_topic(&alice, "orders").is_err());
    let rule = AccessRule {
        principal: alice_p,
        resource: ResourcePattern {
            kind: ResourceKind::Topic,
            pattern: PatternKind::Prefix,
            name: "ord".into(),
        },
        operations: [Operation::Describe].into_iter().collect(),
        effect: Effect::Allow,
    };
    service
        .add_access_rule(&root, rule.clone())
        .await
        .expect("add rule");
    assert!(service.describe_topic(&alice, "orders").is_ok());
    assert_eq!(
        service.list_access_rules(&root).expect("rules"),
        vec![rule.clone()]
    );
    service
        .remove_access_rule(&root, rule)
        .await
        .expect("remove rule");
    assert!(service.describe_topic(&alice, "orders").is_err());

    service
        .revoke_token(&root, &issued.token_id)
        .await
        .expect("revoke");
    assert!(matches!(
        service.authenticate(&issued.token),
        Err(BrokerError::Unauthenticated(_))
    ));
}

/// A partition directory records its topic's id; data of another id (left by an earlier
/// topic of the same name) is removed at start, data from before the record existed is
/// adopted.
#[tokio::test]
async fn partition_data_of_another_topic_id_is_not_adopted_at_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let start = || async {
        BrokerService::open(
            BrokerConfig::dev(dir.path()),
            "127.0.0.1:0".into(),
            CancellationToken::new(),
        )
        .await
        .expect("open")
    };
    let latest = |s: &BrokerService| {
        let s = s.clone();
        async move {
            s.list_offsets(&me(), "x", 0, OffsetQuery::Latest)
                .await
                .expect("latest")
                .offset
        }
    };
    let s = start().await;
    topic(&s, "x", 1).await;
    s.produce(
        &me(),
        produce("x", Some(0), records(&[("a", "1"), ("b", "2")])),
    )
    .await
    .expect("produce");
    let marker = dir
        .path()
        .join("x-0")
        .join(quiver_storage::PARTITION_METADATA);
    let recorded = std::fs::read_to_string(&marker).expect("the topic id is recorded");
    s.close();
    drop(s);

    // Without the file (a directory from an older broker) the data is adopted, and the
    // file written.
    std::fs::remove_file(&marker).expect("remove marker");
    let s = start().await;
    assert_eq!(latest(&s).await, Some(2));
    assert_eq!(
        std::fs::read_to_string(&marker).expect("rewritten"),
        recorded
    );
    s.close();
    drop(s);

    // Naming another topic id, it is an earlier topic's data: removed, not served.
    std::fs::write(
        &marker,
        "version: 0\ntopic_id: 0123456789abcdef0123456789abcdef\n",
    )
    .expect("another id");
    let s = start().await;
    assert_eq!(latest(&s).await, Some(0));
    assert_eq!(
        std::fs::read_to_string(&marker).expect("replaced"),
        recorded
    );
}
