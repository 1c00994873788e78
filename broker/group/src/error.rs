//! Why a group operation was refused.

/// A refused group request. Each variant names the group and says what the caller should
/// do. The coordinator knows no wire protocol: a server maps each variant to its own
/// protocol's error code at its front door.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupError {
    #[error("no consumer group '{group_id}' exists; check the group id")]
    UnknownGroup { group_id: String },

    #[error(
        "member '{member_id}' is not part of group '{group_id}' (expired, removed or never \
         joined); join again without a member id"
    )]
    UnknownMember { group_id: String, member_id: String },

    #[error(
        "generation {got} is not the current generation {current} of group '{group_id}'; \
         join the group again"
    )]
    IllegalGeneration {
        group_id: String,
        got: i32,
        current: i32,
    },

    #[error("group '{group_id}' is rebalancing; join the group again")]
    RebalanceInProgress { group_id: String },

    #[error(
        "group '{group_id}' has {members} active member(s); stop its consumers before \
         deleting it or resetting its offsets"
    )]
    GroupNotEmpty { group_id: String, members: usize },

    #[error(
        "none of the assignors {offered:?} is supported by every member of group \
         '{group_id}' and by this broker (common to the group: {supported:?}); configure \
         an assignor the group shares"
    )]
    NoCommonAssignor {
        group_id: String,
        offered: Vec<String>,
        supported: Vec<String>,
    },

    #[error("group '{group_id}' already has the maximum of {max} members; add no more consumers")]
    GroupFull { group_id: String, max: usize },

    #[error("invalid group id {group_id:?}: it must be 1 to {max} bytes")]
    InvalidGroupId { group_id: String, max: usize },

    #[error("invalid join request for group '{group_id}': {reason}")]
    InvalidJoin { group_id: String, reason: String },

    #[error("invalid offset commit for group '{group_id}': {reason}")]
    InvalidCommit { group_id: String, reason: String },

    #[error("cannot commit for group '{group_id}': topic '{topic}' does not exist")]
    UnknownTopic { group_id: String, topic: String },

    #[error(
        "cannot commit for group '{group_id}': topic '{topic}' has {partitions} partition(s), \
         so partition {partition} does not exist"
    )]
    UnknownPartition {
        group_id: String,
        topic: String,
        partition: u32,
        partitions: u32,
    },

    #[error(
        "join of member '{member_id}' to group '{group_id}' was replaced by a newer join from \
         the same member; wait for that one"
    )]
    JoinSuperseded { group_id: String, member_id: String },

    #[error(
        "this broker no longer coordinates group '{group_id}' (its partition of the offsets \
         topic is led elsewhere now); find the group's coordinator again"
    )]
    NotCoordinator { group_id: String },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_name_the_group_and_what_to_do() {
        let stale = GroupError::IllegalGeneration {
            group_id: "g".into(),
            got: 1,
            current: 2,
        };
        assert!(stale.to_string().contains("generation 1"), "{stale}");
        assert!(
            stale.to_string().contains("join the group again"),
            "{stale}"
        );
        let busy = GroupError::GroupNotEmpty {
            group_id: "billing".into(),
            members: 2,
        };
        assert!(busy.to_string().contains("'billing' has 2"), "{busy}");
    }
}
