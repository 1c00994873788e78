//! Consumer groups on a three-broker cluster: each group is coordinated by the leader of
//! its partition of the replicated `__consumer_offsets`, clients find it, and committed
//! offsets survive the SIGKILL of that broker: the partition's new leader replays them
//! and the group carries on from them.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use bytes::Bytes;
use quiver_proto::api::FindCoordinatorRequest;
use quiver_sdk::{Client, ResetTarget};

use crate::cluster::Cluster;
use crate::groups::{fill, member_config};
use crate::harness::eventually;

const PARTITIONS: u32 = 3;
const PER_PARTITION: u32 = 10;

/// Polls `consumer` until it has returned `n` more records, or panics after 30 s.
async fn take(consumer: &mut quiver_sdk::Consumer, n: usize, into: &mut Vec<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    let goal = into.len() + n;
    while into.len() < goal {
        assert!(
            tokio::time::Instant::now() < deadline,
            "only {} of {goal} records arrived",
            into.len()
        );
        match consumer.poll(Duration::from_millis(200)).await {
            Ok(records) => into.extend(records.iter().map(|r| {
                String::from_utf8_lossy(r.value.as_deref().unwrap_or_default()).into_owned()
            })),
            // The group's coordinator or a partition's leader moving shows here as a
            // retriable error; the next poll carries on.
            Err(e) if e.is_retriable() => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("poll failed: {e}"),
        }
    }
}

/// The group's committed offsets as `(partition, offset)`, through `client`.
async fn committed(client: &Client, group: &str) -> Option<Vec<(u32, i64)>> {
    let offsets = client.admin().group_offsets(group).await.ok()?;
    Some(
        offsets
            .into_iter()
            .map(|c| (c.partition.partition, c.offset))
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn committed_offsets_survive_the_sigkill_of_the_group_coordinator() {
    let mut cluster = Cluster::new();
    cluster.start();
    let client = cluster.bootstrap().await;
    let admin = client.admin();
    let two = BTreeMap::from([("min.insync.replicas".to_string(), "2".to_string())]);
    admin
        .create_topic("orders", PARTITIONS, 3, two)
        .await
        .expect("create the topic");
    // Acknowledged by every in-sync replica (acks=all is the producer's default).
    fill(&client, "orders", PARTITIONS, PER_PARTITION, "o").await;

    // A member reads part of the topic and commits where it stands.
    let mut first = client.consumer(member_config("billing")).expect("consumer");
    first.subscribe(["orders"]).expect("subscribe");
    let mut seen = Vec::new();
    take(&mut first, 12, &mut seen).await;
    first.commit().await.expect("commit");
    first.close().await;
    let before = committed(&client, "billing").await.expect("offsets");
    let total: i64 = before.iter().map(|(_, o)| o).sum();
    assert_eq!(
        total,
        seen.len() as i64,
        "the commit covers exactly what was read: {before:?}"
    );

    // The offsets topic was created at the first group request, replicated on all three.
    let offsets_topic = admin
        .describe_topic("__consumer_offsets")
        .await
        .expect("the offsets topic exists");
    assert_eq!(offsets_topic.partitions.len(), 3);
    assert!(
        offsets_topic
            .partitions
            .iter()
            .all(|p| p.replicas.len() == 3),
        "{offsets_topic:?}"
    );
    // Any broker names the coordinator, and only it serves the group.
    let (found, _) = client
        .call(
            &FindCoordinatorRequest {
                group_id: "billing".into(),
            },
            Bytes::new(),
        )
        .await
        .expect("find the coordinator");
    let coordinator = found.node_id;
    let elsewhere = (1..=3).find(|id| *id != coordinator).expect("another");
    let err = cluster
        .client(elsewhere)
        .await
        .call(
            &quiver_proto::api::OffsetFetchRequest {
                group_id: "billing".into(),
                partitions: None,
            },
            Bytes::new(),
        )
        .await
        .expect_err("only the coordinator serves the group");
    assert_eq!(
        err.code(),
        Some(quiver_proto::ErrorCode::NOT_COORDINATOR),
        "{err}"
    );
    let listed: Vec<String> = admin
        .list_groups()
        .await
        .expect("list")
        .into_iter()
        .map(|g| g.group_id)
        .collect();
    assert_eq!(listed, ["billing"], "listed once, by its coordinator");

    // The coordinator dies; the offsets partition's new leader takes the group over.
    cluster.kill(coordinator);
    let survivor = cluster.client(elsewhere).await;
    eventually(
        20,
        "the committed offsets on the new coordinator",
        || async { committed(&survivor, "billing").await.as_ref() == Some(&before) },
    )
    .await;
    let (moved, _) = survivor
        .call(
            &FindCoordinatorRequest {
                group_id: "billing".into(),
            },
            Bytes::new(),
        )
        .await
        .expect("find the new coordinator");
    assert_ne!(moved.node_id, coordinator);

    // A new member of the group carries on where the commit left off: the rest of the
    // records, none of them read twice.
    let mut second = client.consumer(member_config("billing")).expect("consumer");
    second.subscribe(["orders"]).expect("subscribe");
    let rest = (PARTITIONS * PER_PARTITION) as usize - seen.len();
    let mut after = Vec::new();
    take(&mut second, rest, &mut after).await;
    second
        .commit()
        .await
        .expect("commit on the new coordinator");
    second.close().await;
    let all: BTreeSet<&String> = seen.iter().chain(&after).collect();
    assert_eq!(
        all.len(),
        (PARTITIONS * PER_PARTITION) as usize,
        "every record once: first {seen:?}, then {after:?}"
    );
    let end = committed(&client, "billing").await.expect("offsets");
    assert_eq!(
        end,
        (0..PARTITIONS)
            .map(|p| (p, i64::from(PER_PARTITION)))
            .collect::<Vec<_>>()
    );
    // Describe fills the end offsets of partitions the coordinator does not lead.
    let described = admin.describe_group("billing").await.expect("describe");
    for row in &described.offsets {
        assert_eq!(row.end_offset, i64::from(PER_PARTITION), "{row:?}");
        assert_eq!(row.lag, Some(0), "{row:?}");
    }

    // Resets resolve on each partition's leader, whichever broker coordinates.
    for (to, expected) in [
        (ResetTarget::Earliest, 0),
        (ResetTarget::Offset(4), 4),
        (ResetTarget::Offset(99), i64::from(PER_PARTITION)),
    ] {
        let reset = admin
            .reset_group_offsets("billing", "orders", to.clone())
            .await
            .unwrap_or_else(|e| panic!("reset to {to:?}: {e}"));
        assert!(
            reset.iter().all(|c| c.offset == expected),
            "{to:?}: {reset:?}"
        );
        let now = committed(&client, "billing").await.expect("offsets");
        assert!(now.iter().all(|(_, o)| *o == expected), "{to:?}: {now:?}");
    }
}
