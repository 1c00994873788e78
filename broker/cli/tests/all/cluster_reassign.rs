//! Moving partitions between the brokers of a three-broker cluster: a partition
//! reassigned to another broker is copied there, switched over once in sync, and
//! removed from the broker it left, with every record still readable; `quiver cluster
//! drain` moves every replica off a broker.

use std::collections::BTreeMap;
use std::time::Duration;

use quiver_sdk::{Client, TopicPartition};

use crate::cluster::Cluster;
use crate::groups::fill;
use crate::harness::{consumer_from_start, eventually};

/// Every value of `topic`-`partition`, in offset order.
async fn values(client: &Client, topic: &str, partition: u32, expected: usize) -> Vec<String> {
    let mut consumer = consumer_from_start(client, &TopicPartition::new(topic, partition));
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while out.len() < expected && tokio::time::Instant::now() < deadline {
        for r in consumer
            .poll(Duration::from_millis(200))
            .await
            .unwrap_or_default()
        {
            out.push(String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned());
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partition_moves_to_another_broker_and_a_broker_is_drained() {
    let mut cluster = Cluster::new();
    cluster.start();
    let client = cluster.bootstrap().await;
    let admin = client.admin();
    admin
        .create_topic("moving", 1, 1, BTreeMap::new())
        .await
        .expect("create");
    fill(&client, "moving", 1, 50, "a").await;
    let from = admin
        .describe_topic("moving")
        .await
        .expect("describe")
        .partitions[0]
        .leader;
    let to = (1..=3).find(|b| *b != from).expect("another broker");

    // Bad targets are refused as such, naming what is wrong.
    for (target, says) in [
        (vec![9], "no broker 9"),
        (vec![to, to], "appears twice"),
        (vec![], "at least one replica"),
    ] {
        let err = admin
            .reassign_partition("moving", 0, target)
            .await
            .expect_err("a bad target");
        assert_eq!(
            err.code(),
            Some(quiver_sdk::ErrorCode::INVALID_REQUEST),
            "{err}"
        );
        assert!(err.to_string().contains(says), "{err}");
    }
    admin
        .reassign_partition("moving", 0, vec![to])
        .await
        .expect("start the move");
    eventually(30, "the partition on its new broker only", || async {
        admin.describe_topic("moving").await.is_ok_and(|d| {
            let p = &d.partitions[0];
            p.replicas == vec![to] && p.leader == to && p.in_sync_replicas == vec![to]
        })
    })
    .await;
    let expected: Vec<String> = (0..50).map(|i| format!("a-0-{i}")).collect();
    assert_eq!(values(&client, "moving", 0, 50).await, expected);
    let left = cluster.data_dir(from).join("moving-0");
    eventually(10, "the old replica's data removed", || async {
        !left.exists()
    })
    .await;
    // It takes new records where it is now.
    fill(&client, "moving", 1, 10, "b").await;
    assert_eq!(values(&client, "moving", 0, 60).await.len(), 60);

    // Drain broker 3: every replica it holds moves to a broker that lacks it.
    admin
        .create_topic("spread", 3, 2, BTreeMap::new())
        .await
        .expect("create");
    fill(&client, "spread", 3, 20, "s").await;
    let (ok, text) = cluster.cli(&["cluster", "drain", "3", "--timeout", "60"]);
    assert!(ok, "{text}");
    assert!(text.contains("broker 3 is drained"), "{text}");
    for topic in ["moving", "spread"] {
        let d = admin.describe_topic(topic).await.expect("describe");
        for p in &d.partitions {
            assert!(!p.replicas.contains(&3), "{topic}: {p:?}");
            assert_eq!(p.in_sync_replicas.len(), p.replicas.len(), "{topic}: {p:?}");
        }
    }
    for p in 0..3 {
        let expected: Vec<String> = (0..20).map(|i| format!("s-{p}-{i}")).collect();
        assert_eq!(values(&client, "spread", p, 20).await, expected);
    }
}
