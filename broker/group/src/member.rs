//! One member of a group, as the coordinator tracks it.

use std::collections::BTreeSet;

use crate::partition::TopicPartition;

use crate::coordinator::JoinTicket;

/// A consumer in a group: its subscription, its timers, and what it was assigned.
#[derive(Debug, Clone)]
pub(crate) struct Member {
    pub client_id: String,
    pub topics: BTreeSet<String>,
    pub session_timeout_ms: u32,
    pub rebalance_timeout_ms: u32,
    /// Assignor names, preferred first.
    pub assignors: Vec<String>,
    /// Order of first join; the earliest member still present leads the group.
    pub joined_seq: u64,
    /// Last join, sync, heartbeat or commit; the session expires from here.
    pub last_seen_ms: u64,
    /// Set while the member waits for the rebalance to complete; also means "has
    /// rejoined in this rebalance".
    pub awaiting_join: Option<JoinTicket>,
    /// What this generation gives the member, sorted.
    pub assignment: Vec<TopicPartition>,
    /// Every partition the member may be reading right now: what it last synced plus
    /// what it was given since, plus what it claimed when joining. Cooperative assignment
    /// never gives one of these to another member, so this errs on the side of too many.
    pub holds: BTreeSet<TopicPartition>,
    /// Whether the member has fetched this generation's assignment.
    pub synced: bool,
}

impl Member {
    /// When the session runs out unless the member shows up again.
    pub fn session_deadline(&self) -> u64 {
        self.last_seen_ms
            .saturating_add(u64::from(self.session_timeout_ms))
    }

    /// The latest time a member may take to rejoin (or sync) in a phase that began at
    /// `started_ms`.
    pub fn rebalance_deadline(&self, started_ms: u64) -> u64 {
        started_ms.saturating_add(u64::from(self.rebalance_timeout_ms))
    }
}
