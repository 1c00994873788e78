//! Plugins on a three-broker cluster: a plugin uploaded to one broker is loaded by every
//! broker, including one that was down during the upload and fetches the component
//! from a peer when it returns; a filter then runs on whichever broker leads each
//! partition, and a partitioner routes on the broker a produce reaches, which hands
//! each batch to its partition's leader.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use quiver_proto::api::FilterSpec;
use quiver_sdk::{ConsumerConfig, OffsetReset, ProducerConfig, ProducerRecord, TopicPartition};

use quiver_sdk::partitioner::partition_for_key;

use crate::cluster::Cluster;
use crate::data_path::read_all;
use crate::harness::eventually;
use crate::plugins::plugin;

const PARTITIONS: u32 = 3;
const PER_PARTITION: u32 = 30;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_plugin_added_on_one_broker_runs_on_every_broker() {
    let filter = plugin("header-filter");
    let mut cluster = Cluster::new();
    cluster.start();
    // Broker 3 is down while the plugin is added (once the other two have a quorum
    // leader between them, should it have been broker 3).
    cluster.kill(3);
    let first = cluster.client(1).await;
    eventually(30, "a quorum leader among brokers 1 and 2", || async {
        first
            .admin()
            .cluster_status()
            .await
            .is_ok_and(|s| s.quorum.is_some_and(|q| matches!(q.leader, Some(1 | 2))))
    })
    .await;
    first
        .admin()
        .add_plugin("by-color", filter)
        .await
        .expect("add the plugin on broker 1");
    first
        .admin()
        .add_plugin("key-hash", plugin("key-hash"))
        .await
        .expect("add the partitioner on broker 1");
    cluster.start();
    for id in 1..=3 {
        let client = cluster.client(id).await;
        eventually(30, &format!("broker {id} runs by-color"), || async {
            client.admin().list_plugins().await.is_ok_and(|plugins| {
                ["by-color", "key-hash"]
                    .iter()
                    .all(|name| plugins.iter().any(|p| p.name == *name))
            })
        })
        .await;
    }

    let client = cluster.bootstrap().await;
    let admin = client.admin();
    // Every broker is back (unfenced) before the topic is placed, so its partitions are
    // led by different brokers.
    eventually(30, "three active brokers", || async {
        admin
            .create_topic("paint", PARTITIONS, 3, BTreeMap::new())
            .await
            .is_ok()
            || admin.describe_topic("paint").await.is_ok()
    })
    .await;
    let described = admin.describe_topic("paint").await.expect("describe");
    let leaders: BTreeSet<u32> = described.partitions.iter().map(|p| p.leader).collect();
    assert!(
        leaders.len() > 1,
        "one broker leads everything: {described:?}"
    );

    let producer = client
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    for p in 0..PARTITIONS {
        for i in 0..PER_PARTITION {
            let color = if i % 2 == 0 { "red" } else { "blue" };
            let record = ProducerRecord::new("paint", format!("{color}-{p}-{i}"))
                .partition(p)
                .header("color", color);
            deliveries.push(producer.send(record).await.expect("send"));
        }
    }
    for d in deliveries {
        d.await.expect("acknowledged");
    }
    producer.close().await;

    // Each partition's fetches are filtered by its leader.
    let mut consumer = client
        .consumer(ConsumerConfig {
            auto_offset_reset: OffsetReset::Earliest,
            filter: Some(FilterSpec {
                name: "by-color".into(),
                version: None,
                params: BTreeMap::from([
                    ("header".to_string(), "color".to_string()),
                    ("value".to_string(), "red".to_string()),
                ]),
            }),
            ..ConsumerConfig::default()
        })
        .expect("consumer");
    consumer.assign(
        (0..PARTITIONS)
            .map(|p| TopicPartition::new("paint", p))
            .collect(),
    );
    let expected = (PARTITIONS * PER_PARTITION / 2) as usize;
    let mut got = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while got.len() < expected && tokio::time::Instant::now() < deadline {
        for r in consumer
            .poll(Duration::from_millis(200))
            .await
            .expect("filtered poll")
        {
            got.push(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned());
        }
    }
    assert_eq!(got.len(), expected, "{got:?}");
    assert!(got.iter().all(|v| v.starts_with("red-")), "{got:?}");

    // Records routed by the partitioner on broker 1 land on partitions led elsewhere too.
    let partitioned = BTreeMap::from([("partitioner".to_string(), "key-hash".to_string())]);
    admin
        .create_topic("routed", PARTITIONS, 3, partitioned)
        .await
        .expect("create a topic routed by the plugin");
    let described = admin.describe_topic("routed").await.expect("describe");
    assert!(
        described.partitions.iter().any(|p| p.leader != 1),
        "{described:?}"
    );
    let one = cluster.client(1).await;
    let producer = one
        .producer(ProducerConfig::default())
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..90 {
        let record = ProducerRecord::new("routed", format!("v{i}")).key(format!("user-{i}"));
        deliveries.push(producer.send(record).await.expect("send"));
    }
    for d in deliveries {
        d.await
            .expect("acknowledged by each partition's in-sync replicas");
    }
    producer.close().await;
    let records = read_all(&client, "routed", PARTITIONS, 90).await;
    assert_eq!(records.len(), 90);
    let mut used = BTreeSet::new();
    for r in &records {
        let key = r.key.as_deref().expect("keyed");
        assert_eq!(r.partition, partition_for_key(key, PARTITIONS));
        used.insert(r.partition);
    }
    assert_eq!(used.len(), PARTITIONS as usize, "{used:?}");
}
