//! What callers ask the coordinator, and what a join answers.
//!
//! These are the coordinator's own types, independent of any wire protocol: a server
//! translates its protocol's requests into them at its front door and the answers back,
//! so the same coordinator can serve more than one protocol.

use crate::partition::TopicPartition;

/// Joins (or rejoins) a group. The answer may wait until every known member has
/// rejoined (or was dropped for not rejoining within its rebalance timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinRequest {
    pub group_id: String,
    /// `None` on the first join; the coordinator hands out the id in [`Joined`].
    pub member_id: Option<String>,
    pub client_id: String,
    /// The member's subscription, already resolved to topic names.
    pub topics: Vec<String>,
    /// The member is dropped when no heartbeat, join, sync or commit arrives for this long.
    pub session_timeout_ms: u32,
    /// How long the member may take to rejoin once a rebalance starts; it is dropped from
    /// the group after that.
    pub rebalance_timeout_ms: u32,
    /// Assignment strategies the member supports, preferred first.
    pub assignors: Vec<String>,
    /// Partitions the member holds now; cooperative assignment keeps them where it can.
    pub owned: Vec<TopicPartition>,
}

/// A completed join: the member's place in the new generation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Joined {
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

/// Asks for the member's assignment in a generation it joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncRequest {
    pub group_id: String,
    pub member_id: String,
    pub generation: i32,
}

/// Keeps the member's session alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatRequest {
    pub group_id: String,
    pub member_id: String,
    pub generation: i32,
}

/// Leaves the group at once, so its partitions move without waiting for a timeout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaveRequest {
    pub group_id: String,
    pub member_id: String,
}

/// Who commits offsets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Committer {
    /// A standalone consumer or an admin tool, accepted only while the group has no
    /// members, since members would overwrite what it commits.
    Outside,
    /// A member in the generation it last joined.
    Member { member_id: String, generation: i32 },
}

/// A position on one partition: the offset of the next record the group will read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommittedOffset {
    pub partition: TopicPartition,
    pub offset: i64,
    /// Free text the committer stores beside the offset (bounded by the coordinator).
    pub metadata: String,
}

/// Commits offsets for a group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitRequest {
    pub group_id: String,
    pub committer: Committer,
    pub offsets: Vec<CommittedOffset>,
}
