//! Commits are visible only once the server reports them durable.

use std::collections::BTreeMap;

use super::{GROUP, no_delay};
use crate::{
    CommitRequest, CommittedOffset, Committer, GroupCoordinator, GroupError, OffsetRecord,
    PendingCommit, TopicPartition,
};

fn topics() -> BTreeMap<String, u32> {
    BTreeMap::from([("t".to_string(), 2u32)])
}

fn commit(coord: &mut GroupCoordinator, offset: i64, now: u64) -> PendingCommit {
    let req = CommitRequest {
        group_id: GROUP.into(),
        committer: Committer::Outside,
        offsets: vec![CommittedOffset {
            partition: TopicPartition::new("t", 0),
            offset,
            metadata: format!("at {offset}"),
        }],
    };
    coord
        .commit(req, now, &topics())
        .expect("an outside commit to an empty group")
}

/// The offset of `t-0` as offset fetch and describe show it; both must agree.
fn shown(coord: &GroupCoordinator) -> Option<i64> {
    let fetched = coord.fetch_offsets(GROUP, None).first().map(|c| c.offset);
    let described = coord
        .describe(GROUP)
        .ok()
        .and_then(|d| d.offsets.first().and_then(|p| p.committed));
    assert_eq!(fetched, described, "offset fetch and describe disagree");
    fetched
}

#[test]
fn a_commit_is_invisible_until_completed() {
    let mut coord = no_delay();
    let first = commit(&mut coord, 5, 1);
    assert_eq!(first.records.len(), 1);
    assert_eq!(first.ticket.group_id(), GROUP);
    assert_eq!(shown(&coord), None, "accepted is not durable");
    // A poll must not forget a group whose only content is a commit in flight.
    assert!(coord.poll(2, &topics()).is_empty());
    coord.complete_commit(&first.ticket);
    assert_eq!(shown(&coord), Some(5));
    assert_eq!(coord.fetch_offsets(GROUP, None)[0].metadata, "at 5");
}

#[test]
fn an_aborted_commit_leaves_the_previous_offset_visible() {
    let mut coord = no_delay();
    let first = commit(&mut coord, 5, 1);
    coord.complete_commit(&first.ticket);
    let second = commit(&mut coord, 9, 2);
    assert_eq!(
        shown(&coord),
        Some(5),
        "the durable offset while 9 is in flight"
    );
    coord.abort_commit(&second.ticket);
    assert_eq!(shown(&coord), Some(5));
    // Settling an aborted ticket again changes nothing.
    coord.complete_commit(&second.ticket);
    assert_eq!(shown(&coord), Some(5));
}

#[test]
fn an_aborted_first_commit_leaves_no_group_behind() {
    let mut coord = no_delay();
    let only = commit(&mut coord, 5, 1);
    coord.abort_commit(&only.ticket);
    assert!(matches!(
        coord.describe(GROUP),
        Err(GroupError::UnknownGroup { .. })
    ));
    assert!(coord.list().is_empty());
}

#[test]
fn the_later_accepted_of_two_durable_commits_wins_whatever_the_completion_order() {
    for later_completes_first in [false, true] {
        let mut coord = no_delay();
        let earlier = commit(&mut coord, 5, 1);
        let later = commit(&mut coord, 9, 2);
        if later_completes_first {
            coord.complete_commit(&later.ticket);
            coord.complete_commit(&earlier.ticket);
        } else {
            coord.complete_commit(&earlier.ticket);
            coord.complete_commit(&later.ticket);
        }
        assert_eq!(
            shown(&coord),
            Some(9),
            "later first: {later_completes_first}"
        );
    }
}

#[test]
fn a_failed_later_commit_does_not_hide_an_earlier_durable_one() {
    let mut coord = no_delay();
    let earlier = commit(&mut coord, 5, 1);
    let later = commit(&mut coord, 9, 2);
    coord.abort_commit(&later.ticket);
    assert_eq!(shown(&coord), None);
    coord.complete_commit(&earlier.ticket);
    assert_eq!(shown(&coord), Some(5));
}

#[test]
fn a_loaded_record_is_not_overwritten_by_a_commit_accepted_before_it() {
    let mut coord = no_delay();
    let in_flight = commit(&mut coord, 5, 1);
    let replayed = commit(&mut GroupCoordinator::new(coord.config().clone()), 7, 1);
    coord.load(replayed.records);
    assert_eq!(shown(&coord), Some(7));
    coord.complete_commit(&in_flight.ticket);
    assert_eq!(shown(&coord), Some(7));
}

#[test]
fn deleting_a_group_tombstones_commits_in_flight_and_drops_them() {
    let mut coord = no_delay();
    let durable = commit(&mut coord, 5, 1);
    coord.complete_commit(&durable.ticket);
    let req = CommitRequest {
        group_id: GROUP.into(),
        committer: Committer::Outside,
        offsets: vec![CommittedOffset {
            partition: TopicPartition::new("t", 1),
            offset: 3,
            metadata: String::new(),
        }],
    };
    let in_flight = coord.commit(req, 2, &topics()).expect("accepted");
    let tombstones = coord.delete(GROUP).expect("an empty group");
    assert_eq!(
        tombstones,
        [
            OffsetRecord::tombstone(GROUP, TopicPartition::new("t", 0)),
            OffsetRecord::tombstone(GROUP, TopicPartition::new("t", 1)),
        ]
    );
    coord.complete_commit(&in_flight.ticket);
    assert!(
        coord.describe(GROUP).is_err(),
        "a commit of a deleted group does not bring it back"
    );
}
