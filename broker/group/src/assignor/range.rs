//! `range`: per topic, contiguous runs of partitions to members in id order.

use std::collections::BTreeMap;

use crate::partition::TopicPartition;

use super::{Assignor, MemberSubscription, empty_assignment};

/// Kafka's range strategy. For each topic, the members subscribed to it are sorted by id
/// and each takes a contiguous run of partitions; when the count does not divide evenly,
/// the first members take one extra. Co-partitioned topics therefore land together, at
/// the price of imbalance across many topics (the first members collect every extra).
#[derive(Debug, Clone, Copy, Default)]
pub struct RangeAssignor;

impl Assignor for RangeAssignor {
    fn name(&self) -> &str {
        "range"
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions: &BTreeMap<String, u32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let mut result = empty_assignment(members);
        for (topic, &count) in partitions {
            let mut subscribers: Vec<&str> = members
                .iter()
                .filter(|m| m.topics.contains(topic))
                .map(|m| m.member_id.as_str())
                .collect();
            if subscribers.is_empty() {
                continue;
            }
            subscribers.sort_unstable();
            subscribers.dedup();
            let n = subscribers.len() as u32;
            let (each, extra) = (count / n, count % n);
            for (i, id) in (0u32..).zip(subscribers) {
                let start = i * each + i.min(extra);
                let len = each + u32::from(i < extra);
                if let Some(list) = result.get_mut(id) {
                    list.extend((start..start + len).map(|p| TopicPartition::new(topic, p)));
                }
            }
        }
        for list in result.values_mut() {
            list.sort();
        }
        result
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    #[test]
    fn six_partitions_over_three_members_are_contiguous_pairs() {
        let members = [
            member("c", &["t"]),
            member("a", &["t"]),
            member("b", &["t"]),
        ];
        let out = RangeAssignor.assign(&members, &topics(&[("t", 6)]));
        assert_eq!(out["a"], tps(&[("t", 0), ("t", 1)]));
        assert_eq!(out["b"], tps(&[("t", 2), ("t", 3)]));
        assert_eq!(out["c"], tps(&[("t", 4), ("t", 5)]));
    }

    #[test]
    fn first_members_take_the_extras() {
        let members = [member("a", &["t"]), member("b", &["t"])];
        let out = RangeAssignor.assign(&members, &topics(&[("t", 3)]));
        assert_eq!(out["a"], tps(&[("t", 0), ("t", 1)]));
        assert_eq!(out["b"], tps(&[("t", 2)]));
    }

    #[test]
    fn a_member_beyond_the_partition_count_gets_nothing() {
        let members = [
            member("a", &["t"]),
            member("b", &["t"]),
            member("c", &["t"]),
            member("d", &["t"]),
        ];
        let out = RangeAssignor.assign(&members, &topics(&[("t", 3)]));
        assert_eq!(out["d"], vec![]);
        assert_eq!(out.values().map(Vec::len).sum::<usize>(), 3);
    }
}
