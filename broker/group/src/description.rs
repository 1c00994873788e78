//! What the coordinator reports about its groups: listings and descriptions.

use crate::partition::TopicPartition;
use crate::state::GroupState;

/// One line of a group listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupSummary {
    pub group_id: String,
    pub state: GroupState,
    pub members: usize,
}

/// A group's members, assignments and committed offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupDescription {
    pub group_id: String,
    pub state: GroupState,
    pub generation: i32,
    /// `None` until the group's first rebalance completes, and again once it is empty.
    pub assignor: Option<String>,
    /// Sorted by member id.
    pub members: Vec<MemberDescription>,
    /// Every partition the group has a durable commit for or assigns, sorted. End
    /// offsets and lag are not here: only the server can read the partitions.
    pub offsets: Vec<PartitionCommit>,
}

/// One member of a described group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberDescription {
    pub member_id: String,
    pub client_id: String,
    /// Sorted topic names the member subscribes to.
    pub topics: Vec<String>,
    /// What the current generation gives the member, sorted.
    pub assignment: Vec<TopicPartition>,
}

/// A partition of a described group and its durable committed offset, if any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionCommit {
    pub partition: TopicPartition,
    pub committed: Option<i64>,
}
