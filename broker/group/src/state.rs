//! The life cycle of a group.

/// Where a group is in its life cycle.
///
/// ```text
/// Empty ──join──▶ PreparingRebalance ──all rejoined──▶ CompletingRebalance ──all synced──▶ Stable
///   ▲                ▲        │                              │                              │
///   └─last member────┴────────┴──join, leave, expiry, follow-up, topic change──────────────┘
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GroupState {
    /// No members; committed offsets may exist. Only here may standalone consumers and
    /// admin tools commit, and the group be deleted or reset.
    Empty,
    /// A rebalance started: waiting for every member to (re)join.
    PreparingRebalance,
    /// The new generation's assignment is computed; waiting for members to sync it.
    CompletingRebalance,
    /// Every member has its assignment.
    Stable,
    /// Deleted; the coordinator forgets the group and never reports it.
    Dead,
}

impl GroupState {
    /// The name reported to clients and shown by the CLI.
    pub fn as_str(self) -> &'static str {
        match self {
            GroupState::Empty => "Empty",
            GroupState::PreparingRebalance => "PreparingRebalance",
            GroupState::CompletingRebalance => "CompletingRebalance",
            GroupState::Stable => "Stable",
            GroupState::Dead => "Dead",
        }
    }
}

impl std::fmt::Display for GroupState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
