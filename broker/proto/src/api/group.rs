//! Consumer groups: membership, assignment and committed offsets.
//!
//! Assignment is computed by the coordinator on the broker with the strategy the group
//! agreed on, so every client language gets the same behaviour.
//!
//! A member's life: [`JoinGroupRequest`] (the response may wait until every known member
//! has rejoined), then [`SyncGroupRequest`] for its partitions, then
//! [`HeartbeatRequest`] within its session timeout. A heartbeat answered with
//! `REBALANCE_IN_PROGRESS` means "join again"; `UNKNOWN_MEMBER` means "join again without
//! a member id". Committed offsets are keyed by group, topic and partition, and survive
//! restarts.

use serde::{Deserialize, Serialize};

use super::{TopicPartition, request};

/// Joins a group, or rejoins it during a rebalance. The response arrives once every known
/// member has rejoined (or was dropped for not rejoining within its rebalance timeout).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinGroupRequest {
    pub group_id: String,
    /// `None` on the first join; the broker hands out the id in the response.
    pub member_id: Option<String>,
    pub client_id: String,
    /// The member's subscription, already resolved to topic names.
    pub topics: Vec<String>,
    /// The member is dropped when no heartbeat, join, sync or commit arrives for this long.
    pub session_timeout_ms: u32,
    /// How long the member may take to rejoin once a rebalance starts (its max poll
    /// interval); it is dropped from the group after that.
    pub rebalance_timeout_ms: u32,
    /// Assignment strategies the member supports, preferred first: `range`,
    /// `roundrobin`, `cooperative-sticky`.
    pub assignors: Vec<String>,
    /// Partitions the member holds now; cooperative assignment keeps them where it can.
    pub owned: Vec<TopicPartition>,
}
request!(JoinGroupRequest => JoinGroupResponse, JOIN_GROUP, "join-group");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JoinGroupResponse {
    /// The id to use in every later request of this member.
    pub member_id: String,
    pub generation: i32,
    pub leader: String,
    /// The strategy the group agreed on: the first of the leader's preferences that every
    /// member supports.
    pub assignor: String,
    /// Every member of this generation, sorted.
    pub members: Vec<String>,
}

/// Fetches the member's assignment for a generation it joined.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncGroupRequest {
    pub group_id: String,
    pub member_id: String,
    pub generation: i32,
}
request!(SyncGroupRequest => SyncGroupResponse, SYNC_GROUP, "sync-group");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SyncGroupResponse {
    /// The partitions the member owns in this generation, sorted. With
    /// `cooperative-sticky`, partitions it held before and that are missing here are
    /// revoked: the member stops consuming them, and the broker starts a follow-up
    /// rebalance that hands them to their new owner.
    pub assignment: Vec<TopicPartition>,
}

/// Keeps the member's session alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub member_id: String,
    pub generation: i32,
}
request!(HeartbeatRequest => HeartbeatResponse, HEARTBEAT, "heartbeat");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeartbeatResponse {}

/// Leaves the group at once, so its partitions move without waiting for a timeout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveGroupRequest {
    pub group_id: String,
    pub member_id: String,
}
request!(LeaveGroupRequest => LeaveGroupResponse, LEAVE_GROUP, "leave-group");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LeaveGroupResponse {}

/// A committed position: the offset of the next record the group will read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommittedOffset {
    pub partition: TopicPartition,
    pub offset: i64,
    /// Free text the committer stores beside the offset (bounded by the broker).
    pub metadata: String,
}

/// Commits offsets for a group. A member commits with its id and current generation; a
/// standalone consumer or an admin tool commits with no member and generation `-1`, which
/// the broker accepts only while the group has no members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetCommitRequest {
    pub group_id: String,
    pub member_id: Option<String>,
    /// The member's generation, or `-1` for a commit from outside the group.
    pub generation: i32,
    pub offsets: Vec<CommittedOffset>,
}
request!(OffsetCommitRequest => OffsetCommitResponse, OFFSET_COMMIT, "offset-commit");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetCommitResponse {}

/// Reads a group's committed offsets: for the given partitions, or all of them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetFetchRequest {
    pub group_id: String,
    pub partitions: Option<Vec<TopicPartition>>,
}
request!(OffsetFetchRequest => OffsetFetchResponse, OFFSET_FETCH, "offset-fetch");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OffsetFetchResponse {
    /// Sorted by partition. Partitions with no committed offset are left out, so the
    /// consumer falls back to its reset policy for them.
    pub offsets: Vec<CommittedOffset>,
}

/// Lists every group the coordinator knows.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListGroupsRequest {}
request!(ListGroupsRequest => ListGroupsResponse, LIST_GROUPS, "list-groups");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListGroupsResponse {
    pub groups: Vec<GroupSummary>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupSummary {
    pub group_id: String,
    /// `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable` or `Dead`.
    pub state: String,
    pub members: u32,
}

/// Describes one group: its members, their assignments, and its committed offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DescribeGroupRequest {
    pub group_id: String,
}
request!(DescribeGroupRequest => GroupDescription, DESCRIBE_GROUP, "describe-group");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupDescription {
    pub group_id: String,
    /// `Empty`, `PreparingRebalance`, `CompletingRebalance`, `Stable` or `Dead`.
    pub state: String,
    pub generation: i32,
    /// Empty until the group's first rebalance completes.
    pub assignor: String,
    pub members: Vec<MemberDescription>,
    /// Every partition the group has a commit for or assigns, sorted.
    pub offsets: Vec<PartitionLag>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberDescription {
    pub member_id: String,
    pub client_id: String,
    pub topics: Vec<String>,
    pub assignment: Vec<TopicPartition>,
}

/// How far a group is behind on one partition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionLag {
    pub partition: TopicPartition,
    pub committed: Option<i64>,
    /// The partition's high watermark; `-1` when unknown.
    pub end_offset: i64,
    /// `end_offset - committed`, when both are known.
    pub lag: Option<i64>,
}

/// Deletes a group and its committed offsets; refused while it has members.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteGroupRequest {
    pub group_id: String,
}
request!(DeleteGroupRequest => DeleteGroupResponse, DELETE_GROUP, "delete-group");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeleteGroupResponse {}

/// Where [`ResetGroupOffsetsRequest`] moves a group's offsets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ResetTarget {
    /// Each partition's log start offset.
    Earliest,
    /// Each partition's high watermark: skip everything not yet read.
    Latest,
    /// The same offset on every partition, clamped to the partition's range.
    Offset(i64),
    /// The first offset whose record timestamp (ms) is at or after this one.
    Timestamp(i64),
    /// An offset per partition as `(partition, offset)`, naming every partition of the
    /// topic, resolved by the client from the partitions' leaders. In a cluster the
    /// coordinator may lead none of the topic's partitions, so the SDK resolves the
    /// other targets this way there; a partition the coordinator leads is still
    /// clamped to its readable range.
    Resolved(Vec<(u32, i64)>),
}

/// Sets a group's committed offsets on every partition of a topic; refused with
/// `GROUP_NOT_EMPTY` while the group has members, since they would overwrite it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetGroupOffsetsRequest {
    pub group_id: String,
    pub topic: String,
    pub to: ResetTarget,
}
request!(ResetGroupOffsetsRequest => ResetGroupOffsetsResponse, RESET_GROUP_OFFSETS, "reset-group-offsets");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ResetGroupOffsetsResponse {
    /// The offsets now committed, one per partition of the topic.
    pub offsets: Vec<CommittedOffset>,
}

/// Which broker coordinates a group: the leader of the group's partition of the
/// offsets topic. Every group request goes there; any other broker answers
/// `NOT_COORDINATOR`. Answered `COORDINATOR_NOT_AVAILABLE` (retriable) while that
/// partition has no leader or the offsets topic cannot be created yet.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindCoordinatorRequest {
    pub group_id: String,
}
request!(FindCoordinatorRequest => FindCoordinatorResponse, FIND_COORDINATOR, "find-coordinator");

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FindCoordinatorResponse {
    pub node_id: u32,
    /// Where clients reach the coordinator.
    pub address: String,
    /// The answering broker is the coordinator: keep using this connection.
    pub local: bool,
}
