//! The front door of consumer groups: Quiver's wire requests translated into the
//! coordinator's own types, its answers and errors translated back.
//!
//! The coordinator (`quiver_group`) knows no wire protocol, so that another protocol's
//! listener can drive the same groups; every translation between it and
//! `quiver_proto::api` lives here and nowhere else.

use quiver_group::{
    CommitRequest, CommittedOffset, Committer, GroupError, GroupSummary, HeartbeatRequest,
    JoinRequest, Joined, LeaveRequest, MemberDescription, SyncRequest, TopicPartition,
};
use quiver_proto::ErrorCode;
use quiver_proto::api;

use crate::service::types::{DescribedGroup, ResetTarget};

/// The wire code a refused group request is answered with.
pub(crate) fn error_code(e: &GroupError) -> ErrorCode {
    match e {
        GroupError::UnknownGroup { .. } => ErrorCode::UNKNOWN_GROUP,
        GroupError::UnknownMember { .. } => ErrorCode::UNKNOWN_MEMBER,
        GroupError::IllegalGeneration { .. } => ErrorCode::ILLEGAL_GENERATION,
        // A superseded join is answered like a rebalance: the client joins again.
        GroupError::RebalanceInProgress { .. } | GroupError::JoinSuperseded { .. } => {
            ErrorCode::REBALANCE_IN_PROGRESS
        }
        GroupError::GroupNotEmpty { .. } => ErrorCode::GROUP_NOT_EMPTY,
        // The table has no dedicated codes for these yet; the message carries the detail.
        GroupError::NoCommonAssignor { .. }
        | GroupError::GroupFull { .. }
        | GroupError::InvalidGroupId { .. }
        | GroupError::InvalidJoin { .. }
        | GroupError::InvalidCommit { .. } => ErrorCode::INVALID_REQUEST,
        GroupError::UnknownTopic { .. } => ErrorCode::UNKNOWN_TOPIC,
        GroupError::UnknownPartition { .. } => ErrorCode::UNKNOWN_PARTITION,
        GroupError::NotCoordinator { .. } => ErrorCode::NOT_COORDINATOR,
    }
}

pub(crate) fn topic_partition(tp: api::TopicPartition) -> TopicPartition {
    TopicPartition::new(tp.topic, tp.partition)
}

pub(crate) fn wire_topic_partition(tp: TopicPartition) -> api::TopicPartition {
    api::TopicPartition::new(tp.topic, tp.partition)
}

fn topic_partitions(tps: Vec<api::TopicPartition>) -> Vec<TopicPartition> {
    tps.into_iter().map(topic_partition).collect()
}

fn wire_topic_partitions(tps: Vec<TopicPartition>) -> Vec<api::TopicPartition> {
    tps.into_iter().map(wire_topic_partition).collect()
}

pub(crate) fn committed_offset(c: api::CommittedOffset) -> CommittedOffset {
    CommittedOffset {
        partition: topic_partition(c.partition),
        offset: c.offset,
        metadata: c.metadata,
    }
}

pub(crate) fn wire_committed_offset(c: CommittedOffset) -> api::CommittedOffset {
    api::CommittedOffset {
        partition: wire_topic_partition(c.partition),
        offset: c.offset,
        metadata: c.metadata,
    }
}

pub(crate) fn join_request(req: api::JoinGroupRequest) -> JoinRequest {
    JoinRequest {
        group_id: req.group_id,
        member_id: req.member_id,
        client_id: req.client_id,
        topics: req.topics,
        session_timeout_ms: req.session_timeout_ms,
        rebalance_timeout_ms: req.rebalance_timeout_ms,
        assignors: req.assignors,
        owned: topic_partitions(req.owned),
    }
}

pub(crate) fn join_response(joined: Joined) -> api::JoinGroupResponse {
    api::JoinGroupResponse {
        member_id: joined.member_id,
        generation: joined.generation,
        leader: joined.leader,
        assignor: joined.assignor,
        members: joined.members,
    }
}

pub(crate) fn sync_request(req: api::SyncGroupRequest) -> SyncRequest {
    SyncRequest {
        group_id: req.group_id,
        member_id: req.member_id,
        generation: req.generation,
    }
}

pub(crate) fn sync_response(assignment: Vec<TopicPartition>) -> api::SyncGroupResponse {
    api::SyncGroupResponse {
        assignment: wire_topic_partitions(assignment),
    }
}

pub(crate) fn heartbeat_request(req: api::HeartbeatRequest) -> HeartbeatRequest {
    HeartbeatRequest {
        group_id: req.group_id,
        member_id: req.member_id,
        generation: req.generation,
    }
}

pub(crate) fn leave_request(req: api::LeaveGroupRequest) -> LeaveRequest {
    LeaveRequest {
        group_id: req.group_id,
        member_id: req.member_id,
    }
}

/// The wire names the committer with an optional member id and a generation, `-1` for a
/// commit from outside the group; a generation without a member names nobody.
pub(crate) fn commit_request(req: api::OffsetCommitRequest) -> Result<CommitRequest, GroupError> {
    let committer = match (req.member_id, req.generation) {
        (None, -1) => Committer::Outside,
        (None, generation) => {
            return Err(GroupError::InvalidCommit {
                group_id: req.group_id,
                reason: format!(
                    "generation {generation} needs a member id; commit from outside the \
                     group with no member and generation -1"
                ),
            });
        }
        (Some(member_id), generation) => Committer::Member {
            member_id,
            generation,
        },
    };
    Ok(CommitRequest {
        group_id: req.group_id,
        committer,
        offsets: req.offsets.into_iter().map(committed_offset).collect(),
    })
}

/// The partitions an offset fetch asks for; `None` asks for all.
pub(crate) fn fetch_partitions(req: &api::OffsetFetchRequest) -> Option<Vec<TopicPartition>> {
    req.partitions
        .as_ref()
        .map(|tps| topic_partitions(tps.clone()))
}

pub(crate) fn offset_fetch_response(offsets: Vec<CommittedOffset>) -> api::OffsetFetchResponse {
    api::OffsetFetchResponse {
        offsets: offsets.into_iter().map(wire_committed_offset).collect(),
    }
}

pub(crate) fn list_response(groups: Vec<GroupSummary>) -> api::ListGroupsResponse {
    api::ListGroupsResponse {
        groups: groups
            .into_iter()
            .map(|g| api::GroupSummary {
                group_id: g.group_id,
                state: g.state.as_str().to_string(),
                members: u32::try_from(g.members).unwrap_or(u32::MAX),
            })
            .collect(),
    }
}

/// The description with each partition's end offset and lag.
pub(crate) fn group_description(described: DescribedGroup) -> api::GroupDescription {
    let desc = described.group;
    api::GroupDescription {
        group_id: desc.group_id,
        state: desc.state.as_str().to_string(),
        generation: desc.generation,
        assignor: desc.assignor.unwrap_or_default(),
        members: desc.members.into_iter().map(member_description).collect(),
        offsets: described
            .lag
            .into_iter()
            .map(|p| api::PartitionLag {
                partition: wire_topic_partition(p.partition),
                committed: p.committed,
                end_offset: p.end_offset,
                lag: p.lag,
            })
            .collect(),
    }
}

pub(crate) fn reset_target(to: api::ResetTarget) -> ResetTarget {
    match to {
        api::ResetTarget::Earliest => ResetTarget::Earliest,
        api::ResetTarget::Latest => ResetTarget::Latest,
        api::ResetTarget::Offset(o) => ResetTarget::Offset(o),
        api::ResetTarget::Timestamp(ts) => ResetTarget::Timestamp(ts),
        api::ResetTarget::Resolved(offsets) => ResetTarget::Resolved(offsets.into_iter().collect()),
    }
}

pub(crate) fn reset_response(offsets: Vec<CommittedOffset>) -> api::ResetGroupOffsetsResponse {
    api::ResetGroupOffsetsResponse {
        offsets: offsets.into_iter().map(wire_committed_offset).collect(),
    }
}

fn member_description(m: MemberDescription) -> api::MemberDescription {
    api::MemberDescription {
        member_id: m.member_id,
        client_id: m.client_id,
        topics: m.topics,
        assignment: wire_topic_partitions(m.assignment),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_follow_the_wire_table() {
        let stale = GroupError::IllegalGeneration {
            group_id: "g".into(),
            got: 1,
            current: 2,
        };
        assert_eq!(error_code(&stale), ErrorCode::ILLEGAL_GENERATION);
        let busy = GroupError::GroupNotEmpty {
            group_id: "g".into(),
            members: 2,
        };
        assert_eq!(error_code(&busy), ErrorCode::GROUP_NOT_EMPTY);
        let superseded = GroupError::JoinSuperseded {
            group_id: "g".into(),
            member_id: "m".into(),
        };
        assert_eq!(error_code(&superseded), ErrorCode::REBALANCE_IN_PROGRESS);
        let gone = GroupError::UnknownGroup {
            group_id: "g".into(),
        };
        assert_eq!(error_code(&gone), ErrorCode::UNKNOWN_GROUP);
    }

    fn wire_commit(member_id: Option<&str>, generation: i32) -> api::OffsetCommitRequest {
        api::OffsetCommitRequest {
            group_id: "g".into(),
            member_id: member_id.map(Into::into),
            generation,
            offsets: vec![api::CommittedOffset {
                partition: api::TopicPartition::new("t", 3),
                offset: 7,
                metadata: "m".into(),
            }],
        }
    }

    #[test]
    fn a_commit_names_its_committer_by_member_and_generation() {
        let outside = commit_request(wire_commit(None, -1)).expect("outside");
        assert_eq!(outside.committer, Committer::Outside);
        assert_eq!(
            outside.offsets,
            [CommittedOffset {
                partition: TopicPartition::new("t", 3),
                offset: 7,
                metadata: "m".into(),
            }]
        );
        let member = commit_request(wire_commit(Some("a-1"), 4)).expect("member");
        assert_eq!(
            member.committer,
            Committer::Member {
                member_id: "a-1".into(),
                generation: 4
            }
        );
        let nobody = commit_request(wire_commit(None, 4)).expect_err("generation without member");
        assert_eq!(error_code(&nobody), ErrorCode::INVALID_REQUEST);
        assert!(nobody.to_string().contains("needs a member id"), "{nobody}");
    }

    #[test]
    fn partitions_and_offsets_survive_the_round_trip() {
        let wire = api::CommittedOffset {
            partition: api::TopicPartition::new("orders", 11),
            offset: 42,
            metadata: "x".into(),
        };
        assert_eq!(wire_committed_offset(committed_offset(wire.clone())), wire);
        let join = api::JoinGroupRequest {
            group_id: "g".into(),
            member_id: Some("m".into()),
            client_id: "c".into(),
            topics: vec!["orders".into()],
            session_timeout_ms: 10_000,
            rebalance_timeout_ms: 30_000,
            assignors: vec!["range".into()],
            owned: vec![api::TopicPartition::new("orders", 1)],
        };
        let domain = join_request(join);
        assert_eq!(domain.owned, [TopicPartition::new("orders", 1)]);
        assert_eq!(domain.member_id.as_deref(), Some("m"));
    }
}
