//! A broker joins a running three-broker cluster as an observer, takes partitions
//! while a producer writes to them, and is drained and removed again, all under load:
//! nothing acknowledged is lost, and the cluster ends as it began.

use std::collections::BTreeMap;
use std::time::Duration;

use quiver_sdk::{Client, ProducerConfig, ProducerRecord, TopicPartition};
use tokio_util::sync::CancellationToken;

use crate::cluster::Cluster;
use crate::harness::{consumer_from_start, eventually};

/// Sends `n` to partition `n % 3` until `stop`; returns every acknowledged
/// (partition, offset, value).
async fn keep_producing(client: Client, stop: CancellationToken) -> Vec<(u32, i64, String)> {
    let producer = client
        .producer(ProducerConfig {
            delivery_timeout: Duration::from_secs(60),
            ..ProducerConfig::default()
        })
        .await
        .expect("producer");
    let mut deliveries = Vec::new();
    let mut n = 0u32;
    while !stop.is_cancelled() {
        let value = format!("v-{n:06}");
        let record = ProducerRecord::new("grow", value.clone()).partition(n % 3);
        deliveries.push((value, producer.send(record).await.expect("send")));
        n += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    producer.flush().await;
    let mut acked = Vec::new();
    for (value, d) in deliveries {
        let meta = d.await.expect("every record is acknowledged");
        acked.push((meta.partition, meta.offset, value));
    }
    producer.close().await;
    acked
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_joins_takes_partitions_under_load_and_is_drained_and_removed() {
    let mut cluster = Cluster::new();
    cluster.start();
    let client = cluster.bootstrap().await;
    let admin = client.admin();
    let two = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
    admin.create_topic("grow", 3, 2, two).await.expect("create");
    let stop = CancellationToken::new();
    let producing = tokio::spawn(keep_producing(cluster.bootstrap().await, stop.clone()));
    tokio::time::sleep(Duration::from_millis(500)).await;

    // Broker 4 joins as an observer: registered and active, not a voter.
    let four = tokio::task::block_in_place(|| cluster.add_observer());
    assert_eq!(four, 4);
    let status = cluster
        .client(4)
        .await
        .admin()
        .cluster_status()
        .await
        .expect("status from the observer");
    let quorum = status.quorum.as_ref().expect("a quorum");
    assert_eq!(quorum.voters, [1, 2, 3], "{status:?}");
    assert_eq!(quorum.role, "observer", "{status:?}");
    assert!(
        status.brokers.iter().any(|b| b.broker_id == 4 && !b.fenced),
        "{status:?}"
    );
    let (ok, text) = cluster.cli(&["cluster", "status"]);
    assert!(ok && text.contains("observer"), "{text}");
    // The observer has the metadata: it knows the topic made before it came.
    assert_eq!(
        cluster
            .client(4)
            .await
            .admin()
            .describe_topic("grow")
            .await
            .expect("describe on the observer")
            .partitions
            .len(),
        3
    );

    // A partition moves onto it while the producer writes, and it comes to lead it.
    let before = admin.describe_topic("grow").await.expect("describe");
    let target = vec![4, before.partitions[0].replicas[0]];
    admin
        .reassign_partition("grow", 0, target.clone())
        .await
        .expect("move onto broker 4");
    eventually(60, "grow-0 on broker 4, which leads it", || async {
        admin.describe_topic("grow").await.is_ok_and(|d| {
            let p = &d.partitions[0];
            p.replicas == target && p.in_sync_replicas.len() == 2 && p.leader == 4
        })
    })
    .await;
    // New topics are placed on it too.
    admin
        .create_topic("fresh", 4, 3, BTreeMap::new())
        .await
        .expect("create on four brokers");
    let fresh = admin.describe_topic("fresh").await.expect("describe");
    assert!(
        fresh.partitions.iter().any(|p| p.replicas.contains(&4)),
        "{fresh:?}"
    );

    // It cannot be removed while it holds replicas, and a voter never can.
    let (ok, text) = cluster.cli(&["cluster", "remove", "4"]);
    assert!(!ok && text.contains("still holds replicas"), "{text}");
    let (ok, text) = cluster.cli(&["cluster", "remove", "2"]);
    assert!(!ok && text.contains("voter"), "{text}");

    // Drained and removed, still under load.
    let (ok, text) =
        tokio::task::block_in_place(|| cluster.cli(&["cluster", "drain", "4", "--timeout", "90"]));
    assert!(ok && text.contains("broker 4 is drained"), "{text}");
    let (ok, text) = cluster.cli(&["cluster", "remove", "4"]);
    assert!(ok, "{text}");
    let status = admin.cluster_status().await.expect("status");
    assert!(
        status.brokers.iter().all(|b| b.broker_id != 4),
        "{status:?}"
    );
    cluster.stop(4);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.cancel();
    let acked = producing.await.expect("producer task");
    assert!(acked.len() > 100, "only {} acknowledged", acked.len());

    // Every acknowledged record is where it was acknowledged.
    let described = admin.describe_topic("grow").await.expect("describe");
    for p in &described.partitions {
        assert!(!p.replicas.contains(&4), "{p:?}");
        let mut consumer = consumer_from_start(&client, &TopicPartition::new("grow", p.partition));
        let mut stored = BTreeMap::new();
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while (stored.len() as i64) < p.high_watermark && tokio::time::Instant::now() < deadline {
            for r in consumer
                .poll(Duration::from_millis(200))
                .await
                .unwrap_or_default()
            {
                let value = r.value.as_deref().unwrap_or_default();
                stored.insert(r.offset, String::from_utf8_lossy(value).into_owned());
            }
        }
        for (partition, offset, value) in acked.iter().filter(|a| a.0 == p.partition) {
            assert_eq!(
                stored.get(offset),
                Some(value),
                "grow-{partition} offset {offset}"
            );
        }
    }
}
