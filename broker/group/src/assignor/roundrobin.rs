//! `roundrobin`: every partition dealt in turn to the members subscribed to it.

use std::collections::BTreeMap;

use crate::partition::TopicPartition;

use super::{Assignor, MemberSubscription, assignable, empty_assignment};

/// Kafka's round-robin strategy. All assignable partitions, sorted by topic then number,
/// are dealt one at a time around the members sorted by id; a member not subscribed to a
/// partition's topic is skipped for that partition. With identical subscriptions the
/// counts differ by at most one.
#[derive(Debug, Clone, Copy, Default)]
pub struct RoundRobinAssignor;

impl Assignor for RoundRobinAssignor {
    fn name(&self) -> &str {
        "roundrobin"
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions: &BTreeMap<String, u32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut result = empty_assignment(members);
        let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
        sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
        sorted.dedup_by(|a, b| a.member_id == b.member_id);
        if sorted.is_empty() {
            return result;
        }
        // The dealing position carries over from one partition to the next, so the
        // deal continues around the circle instead of restarting at the first member.
        let mut next = 0;
        for tp in assignable(members, partitions) {
            let taker = (0..sorted.len())
                .map(|step| (next + step) % sorted.len())
                .find(|&i| sorted[i].topics.contains(&tp.topic));
            if let Some(i) = taker {
                if let Some(list) = result.get_mut(&sorted[i].member_id) {
                    list.push(tp);
                }
                next = (i + 1) % sorted.len();
            }
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn six_partitions_over_three_members_are_dealt_in_turn() {
        let members = [
            member("b", &["t"]),
            member("a", &["t"]),
            member("c", &["t"]),
        ];
        let out = RoundRobinAssignor.assign(&members, &topics(&[("t", 6)]));
        assert_eq!(out["a"], tps(&[("t", 0), ("t", 3)]));
        assert_eq!(out["b"], tps(&[("t", 1), ("t", 4)]));
        assert_eq!(out["c"], tps(&[("t", 2), ("t", 5)]));
    }

    #[test]
    fn members_only_receive_topics_they_subscribe_to() {
        let members = [member("a", &["x"]), member("b", &["x", "y"])];
        let out = RoundRobinAssignor.assign(&members, &topics(&[("x", 2), ("y", 2)]));
        assert_eq!(out["a"], tps(&[("x", 0)]));
        assert_eq!(out["b"], tps(&[("x", 1), ("y", 0), ("y", 1)]));
    }
}
