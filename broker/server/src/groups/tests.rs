//! The group service against a real single-node broker: what a failed, abandoned or
//! stale commit leaves visible.

use quiver_group::{Committer, GroupState};

use std::collections::BTreeMap;

use super::*;
use crate::broker::TopicRecord;
use crate::config::BrokerConfig;

/// How the next offsets append goes wrong.
#[derive(Debug, Clone, Copy)]
pub(super) enum AppendFault {
    /// It fails, as on a full or broken disk.
    Fail,
    /// It never finishes, so the request can be dropped while it waits.
    Hang,
}

impl AppendFault {
    pub(super) async fn inject(self) -> Result<(), BrokerError> {
        match self {
            AppendFault::Fail => Err(BrokerError::Internal(
                "injected offsets append failure".into(),
            )),
            AppendFault::Hang => std::future::pending().await,
        }
    }
}

async fn open_broker(dir: &std::path::Path) -> (Broker, GroupService) {
    let broker =
        Broker::open(BrokerConfig::dev(dir), "localhost:7420".into()).expect("broker opens");
    broker
        .create_topic(TopicRecord {
            name: "t".into(),
            partitions: 1,
            replication_factor: 1,
            configs: BTreeMap::new(),
            internal: false,
        })
        .await
        .expect("topic created");
    let groups = GroupService::open(&broker, &GroupsConfig::default())
        .await
        .expect("groups open");
    (broker, groups)
}

fn commit(offset: i64) -> CommitRequest {
    commit_to("billing", offset)
}

fn commit_to(group_id: &str, offset: i64) -> CommitRequest {
    CommitRequest {
        group_id: group_id.into(),
        committer: Committer::Outside,
        offsets: vec![CommittedOffset {
            partition: TopicPartition::new("t", 0),
            offset,
            metadata: String::new(),
        }],
    }
}

/// The committed offset of `t-0` as offset fetch and describe show it.
fn shown(groups: &GroupService) -> (Vec<i64>, Option<i64>) {
    let fetched = groups
        .fetch_offsets("billing", None)
        .expect("coordinated here")
        .iter()
        .map(|c| c.offset)
        .collect();
    let described = groups.describe("billing").ok().and_then(|d| {
        assert_eq!(d.state, GroupState::Empty);
        d.offsets.first().and_then(|p| p.committed)
    });
    (fetched, described)
}

#[tokio::test]
async fn a_commit_whose_append_fails_is_refused_and_never_shown() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (broker, groups) = open_broker(dir.path()).await;

    groups
        .commit(&broker, commit(5))
        .await
        .expect("a durable commit");
    assert_eq!(shown(&groups), (vec![5], Some(5)));

    *groups.next_append_fault.lock() = Some(AppendFault::Fail);
    let err = groups
        .commit(&broker, commit(9))
        .await
        .expect_err("the append fails, so the commit does");
    assert!(err.to_string().contains("injected"), "{err}");
    assert_eq!(
        shown(&groups),
        (vec![5], Some(5)),
        "the failed commit is not shown"
    );

    // A restart replays what is durable, which is what was shown.
    let replayed = GroupService::open(&broker, &GroupsConfig::default())
        .await
        .expect("groups reopen");
    assert_eq!(shown(&replayed), (vec![5], Some(5)));

    // The client's retry succeeds.
    groups
        .commit(&broker, commit(9))
        .await
        .expect("the retry is durable");
    assert_eq!(shown(&groups), (vec![9], Some(9)));
    broker.close();
}

#[test]
fn a_group_always_maps_to_the_same_offsets_partition() {
    assert_eq!(offsets_partition("billing", 1), 0);
    let p = offsets_partition("billing", 8);
    assert!(p < 8);
    assert_eq!(offsets_partition("billing", 8), p);
    assert_eq!(offsets_partition("billing", 0), 0);
}

#[tokio::test]
async fn a_commit_dropped_during_its_append_is_aborted_not_left_pending() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (broker, groups) = open_broker(dir.path()).await;
    *groups.next_append_fault.lock() = Some(AppendFault::Hang);
    {
        let abandoned = groups.commit(&broker, commit_to("gone", 3));
        // Polls the commit once, into its append, and then drops it, as when the
        // client's connection closes.
        let waited = tokio::time::timeout(Duration::ZERO, abandoned).await;
        assert!(waited.is_err(), "the append never finishes");
    }
    assert!(
        groups
            .fetch_offsets("gone", None)
            .expect("coordinated here")
            .is_empty()
    );
    assert!(
        groups.list().iter().all(|g| g.group_id != "gone"),
        "a commit left pending would keep its group: {:?}",
        groups.list()
    );
    // The append order lock was released with the dropped request.
    groups
        .commit(&broker, commit_to("gone", 4))
        .await
        .expect("a later commit goes through");
    assert_eq!(
        groups
            .fetch_offsets("gone", None)
            .expect("coordinated here")[0]
            .offset,
        4
    );
    broker.close();
}

#[tokio::test]
async fn a_coordinator_led_again_at_a_new_epoch_refuses_commits_until_it_reloads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (broker, groups) = open_broker(dir.path()).await;
    groups
        .commit(&broker, commit(5))
        .await
        .expect("a durable commit");
    // The offsets partition is led here again, at a new epoch (it was led elsewhere
    // meanwhile, and other commits may have been made there).
    let me = broker.config.node_id;
    broker
        .partition(OFFSETS_TOPIC, 0)
        .expect("offsets partition")
        .set_role(
            &crate::replica::Placement {
                me,
                leader: Some(me),
                leader_epoch: 3,
                partition_epoch: 3,
                replicas: vec![me],
                isr: vec![me],
            },
            0,
        );
    let err = groups
        .commit(&broker, commit(2))
        .await
        .expect_err("the commits of the new leadership are not loaded yet");
    assert!(
        matches!(err, BrokerError::NotCoordinator { loading: true, .. }),
        "{err}"
    );
    assert_eq!(shown(&groups), (vec![5], Some(5)), "nothing changed");
    broker.close();
}
