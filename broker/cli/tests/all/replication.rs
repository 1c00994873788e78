//! Replicated partitions on a three-broker cluster of child processes: acks=all records
//! reach every in-sync replica, the SIGKILL of a partition's leader moves leadership to
//! an in-sync follower with nothing acknowledged lost, the killed broker comes back as a
//! follower and rejoins the ISR, and acks=all is refused below `min.insync.replicas`.

use std::collections::BTreeMap;
use std::time::Duration;

use quiver_proto::api::{ListOffsetsRequest, OffsetSpec, PartitionDescription};
use quiver_sdk::{Client, ProducerConfig, ProducerRecord, TopicPartition};

use crate::cluster::Cluster;
use crate::harness::{consumer_from_start, eventually};

/// Partition 0 of `topic` as broker `id` describes it (placement from its metadata,
/// offsets from its own replica).
async fn described(cluster: &Cluster, id: u32, topic: &str) -> Option<PartitionDescription> {
    let client = cluster.client(id).await;
    let d = client.admin().describe_topic(topic).await.ok()?;
    d.partitions.into_iter().next()
}

async fn produce(client: &Client, topic: &str, range: std::ops::Range<u32>) {
    let producer = client
        .producer(ProducerConfig {
            delivery_timeout: Duration::from_secs(20),
            request_timeout: Duration::from_secs(5),
            ..ProducerConfig::default()
        })
        .await
        .expect("producer");
    let mut pending = Vec::new();
    for i in range {
        pending.push(
            producer
                .send(ProducerRecord::new(topic, format!("r{i}")).partition(0))
                .await
                .expect("send"),
        );
    }
    for p in pending {
        p.await.expect("acknowledged with acks=all");
    }
    producer.close().await;
}

async fn read_all(client: &Client, topic: &str, expected: usize) -> Vec<String> {
    let mut consumer = consumer_from_start(client, &TopicPartition::new(topic, 0));
    let mut values = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while values.len() < expected && tokio::time::Instant::now() < deadline {
        for r in consumer
            .poll(Duration::from_millis(200))
            .await
            .expect("poll")
        {
            let v = r
                .value
                .as_deref()
                .map(|v| String::from_utf8_lossy(v).into_owned());
            values.push(v.unwrap_or_default());
        }
    }
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acknowledged_record_survives_the_sigkill_of_its_leader() {
    let mut cluster = Cluster::new();
    cluster.start();
    let admin = cluster.client(1).await.admin();
    let two = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
    let three = BTreeMap::from([("min.insync.replicas".to_string(), "3".to_string())]);
    admin
        .create_topic("rep", 1, 3, two)
        .await
        .expect("create a topic of three replicas");
    admin
        .create_topic("strict", 1, 3, three)
        .await
        .expect("create a topic needing all three");
    let err = admin
        .create_topic("too-wide", 1, 4, BTreeMap::new())
        .await
        .expect_err("four replicas on three brokers");
    assert!(err.to_string().contains("replication factor of 4"), "{err}");

    let first = described(&cluster, 1, "rep").await.expect("described");
    assert_eq!(first.replicas.len(), 3, "{first:?}");
    assert_eq!(first.in_sync_replicas.len(), 3, "{first:?}");
    let leader = first.leader;
    // One client given the three brokers: it sends each partition's requests to the
    // partition's leader, wherever it connected first.
    let client = cluster.bootstrap().await;
    produce(&client, "rep", 0..200).await;

    // Every replica has all of it, and knows it committed.
    for id in 1..=3 {
        eventually(10, &format!("broker {id} has the 200 records"), || async {
            described(&cluster, id, "rep")
                .await
                .is_some_and(|p| p.high_watermark == 200)
        })
        .await;
    }
    // A follower refuses requests for the partition and names the leader.
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let err = cluster
        .client(follower)
        .await
        .call(
            &ListOffsetsRequest {
                topic: "rep".into(),
                partition: 0,
                spec: OffsetSpec::Latest,
            },
            bytes::Bytes::new(),
        )
        .await
        .expect_err("a follower serves no offsets");
    assert!(
        err.to_string().contains(&format!("led by broker {leader}")),
        "{err}"
    );

    // The leader dies without a word; an in-sync follower takes over.
    cluster.kill(leader);
    let survivor = (1..=3).find(|id| *id != leader).expect("a survivor");
    let mut new_leader = None;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while new_leader.is_none() && tokio::time::Instant::now() < deadline {
        let p = described(&cluster, survivor, "rep").await;
        new_leader = p
            .filter(|p| p.leader != leader && p.offline.is_none())
            .map(|p| p.leader);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let new_leader = new_leader.expect("a new leader for rep-0 within 15 s");
    let after = described(&cluster, new_leader, "rep")
        .await
        .expect("described");
    assert!(after.leader_epoch > first.leader_epoch, "{after:?}");
    assert!(!after.in_sync_replicas.contains(&leader), "{after:?}");

    // Nothing acknowledged is lost, and the same client, following the cluster, goes
    // on writing with acks=all to the new leader.
    produce(&client, "rep", 200..300).await;
    let values = read_all(&client, "rep", 300).await;
    let expected: Vec<String> = (0..300).map(|i| format!("r{i}")).collect();
    assert_eq!(values, expected);

    // With a replica gone, a topic that needs all three refuses acks=all.
    let strict = described(&cluster, survivor, "strict")
        .await
        .expect("strict");
    let strict_client = cluster.client(strict.leader).await;
    eventually(10, "strict's ISR shrinks to two", || async {
        described(&cluster, survivor, "strict")
            .await
            .is_some_and(|p| p.in_sync_replicas.len() == 2)
    })
    .await;
    let err = strict_client
        .producer(ProducerConfig {
            retries: 0,
            delivery_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(3),
            ..ProducerConfig::default()
        })
        .await
        .expect("producer")
        .send_and_wait(ProducerRecord::new("strict", "needs three").partition(0))
        .await
        .expect_err("refused below min.insync.replicas");
    assert!(err.to_string().contains("min.insync.replicas"), "{err}");

    // The killed broker returns as a follower, catches up, and rejoins the ISR.
    cluster.start();
    eventually(20, "the returning broker rejoins the ISR", || async {
        described(&cluster, new_leader, "rep")
            .await
            .is_some_and(|p| p.in_sync_replicas.len() == 3)
    })
    .await;
    eventually(10, "the returning broker has every record", || async {
        described(&cluster, leader, "rep")
            .await
            .is_some_and(|p| p.high_watermark == 300)
    })
    .await;
    // In sync again, the broker that led first (the first replica, preferred) gets its
    // leadership back from the controller, at a new epoch.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let back = loop {
        if let Some(p) = described(&cluster, leader, "rep").await
            && p.leader == leader
        {
            break p;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "leadership did not go back to broker {leader}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(back.leader_epoch > after.leader_epoch, "{back:?}");
    // The CLI shows the placement: leader, epoch, replicas and ISR.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_quiver"))
        .args(["--broker", &cluster.bootstrap_list(), "--ca"])
        .arg(&cluster.ca)
        .args(["topic", "describe", "rep"])
        .env("QUIVER_HOME", cluster.home())
        .output()
        .expect("run quiver");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    let header = text
        .lines()
        .find(|l| l.contains("PARTITION"))
        .unwrap_or_else(|| panic!("no partition table:\n{text}"));
    for column in ["LEADER", "EPOCH", "REPLICAS", "ISR"] {
        assert!(header.contains(column), "{header}");
    }
    let row = text
        .lines()
        .find(|l| l.trim_start().starts_with("0 "))
        .unwrap_or_else(|| panic!("no row for partition 0:\n{text}"));
    let fields: Vec<&str> = row.split_whitespace().collect();
    assert_eq!(fields[1], leader.to_string(), "{row}");
    assert_eq!(fields[2], back.leader_epoch.to_string(), "{row}");
    let mut isr: Vec<&str> = fields[4].split(',').collect();
    isr.sort_unstable();
    assert_eq!(isr, ["1", "2", "3"], "{row}");
}

/// A partition whose last in-sync replica is gone waits for it; once its topic allows
/// unclean election, the out-of-sync replica that is back leads at once, what only the
/// lost replica held is gone, and that replica, when it returns, truncates to the new
/// leader's log and follows it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unclean_election_brings_a_partition_back_on_an_out_of_sync_replica() {
    let mut cluster = Cluster::new();
    cluster.start();
    let admin = cluster.client(1).await.admin();
    admin
        .create_topic("u", 1, 2, BTreeMap::new())
        .await
        .expect("create a topic of two replicas");
    let p = described(&cluster, 1, "u").await.expect("described");
    let a = p.leader;
    let b = *p.replicas.iter().find(|r| **r != a).expect("a follower");
    let c = (1..=3)
        .find(|id| *id != a && *id != b)
        .expect("a third broker");
    let client = cluster.bootstrap().await;
    produce(&client, "u", 0..100).await;
    eventually(10, "the follower has the first 100", || async {
        described(&cluster, b, "u")
            .await
            .is_some_and(|p| p.high_watermark == 100)
    })
    .await;

    // The follower goes; the leader carries on alone and takes 50 more.
    cluster.kill(b);
    eventually(20, "the ISR shrinks to the leader", || async {
        described(&cluster, c, "u")
            .await
            .is_some_and(|p| p.in_sync_replicas == vec![a])
    })
    .await;
    produce(&client, "u", 100..150).await;

    // The leader goes too, and the follower comes back: clean, the partition waits.
    cluster.kill(a);
    cluster.start_one(b);
    eventually(30, "the partition is without a leader", || async {
        described(&cluster, c, "u")
            .await
            .is_some_and(|p| p.offline.is_some() && p.in_sync_replicas == vec![a])
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let waiting = described(&cluster, c, "u").await.expect("described");
    assert!(waiting.offline.is_some(), "still waits: {waiting:?}");

    // Allowed, the returned follower leads at once, alone in the ISR.
    let (ok, out) = cluster.cli(&[
        "topic",
        "alter",
        "u",
        "--set",
        "unclean.leader.election.enable=true",
    ]);
    assert!(ok, "{out}");
    eventually(20, "the out-of-sync replica leads", || async {
        described(&cluster, c, "u")
            .await
            .is_some_and(|p| p.leader == b && p.in_sync_replicas == vec![b] && p.offline.is_none())
    })
    .await;
    let elected = described(&cluster, c, "u").await.expect("described");
    assert!(elected.leader_epoch > p.leader_epoch, "{elected:?}");
    produce(&client, "u", 150..160).await;

    // The old leader returns, drops the 50 records only it held and follows.
    cluster.start_one(a);
    eventually(30, "the old leader rejoins the ISR", || async {
        described(&cluster, b, "u")
            .await
            .is_some_and(|p| p.in_sync_replicas.len() == 2)
    })
    .await;
    eventually(10, "the old leader has the new leader's log", || async {
        described(&cluster, a, "u")
            .await
            .is_some_and(|p| p.high_watermark == 110)
    })
    .await;
    let values = read_all(&client, "u", 110).await;
    let expected: Vec<String> = (0..100).chain(150..160).map(|i| format!("r{i}")).collect();
    assert_eq!(values, expected);
}
