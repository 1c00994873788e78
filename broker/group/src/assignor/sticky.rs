//! `cooperative-sticky`: balanced, keeps partitions where they are, and moves them in two
//! steps so no partition ever has two owners.
//!
//! # The incremental protocol
//!
//! Eager strategies rely on every member giving up all its partitions before it rejoins.
//! Under this strategy members keep consuming what they hold across a rebalance, so a
//! partition that moves from member A to member B must not reach B while A may still be
//! reading it. Each rebalance therefore works in two steps:
//!
//! 1. Generation N: the assignor computes the balanced, sticky *target*, but a partition
//!    whose target owner is not the member that holds it now is given to *nobody*: A's
//!    assignment simply lacks it (A revokes it when it syncs) and B does not get it yet.
//! 2. The coordinator sees that an assignable partition went to nobody, waits until the
//!    members that lost partitions have synced generation N (so they know to stop), and
//!    then starts rebalance N+1 on its own. By then nobody holds the partition, and the
//!    target hands it to B.
//!
//! Partitions held by nobody (new partitions, or those of members that left or expired)
//! go to their target owner at once.
//!
//! # The target
//!
//! Each member starts with the partitions it holds that still exist and that it still
//! subscribes to (a partition claimed twice goes to the first claimant by member id).
//! Free partitions go one by one to the eligible member with the fewest, placing those
//! with the fewest eligible members first. Then, while some member has at least two more
//! partitions than another member that could take one of them, one such partition moves,
//! preferring partitions the giver did not hold before. Each move lowers the sum of
//! squared counts, so this ends; when it does, no single move can improve balance, and
//! with identical subscriptions the counts differ by at most one.

use std::collections::{BTreeMap, BTreeSet};

use crate::partition::TopicPartition;

use super::{Assignor, MemberSubscription, assignable, empty_assignment};

/// Balanced and sticky assignment, applied incrementally (see the module docs).
#[derive(Debug, Clone, Copy, Default)]
pub struct CooperativeStickyAssignor;

impl Assignor for CooperativeStickyAssignor {
    fn name(&self) -> &str {
        "cooperative-sticky"
    }

    fn assign(
        &self,
        members: &[MemberSubscription],
        partitions: &BTreeMap<String, u32>,
    ) -> BTreeMap<String, Vec<TopicPartition>> {
        let target = target(members, partitions);
        // Every member that may hold a partition now, valid claim or not: a member that
        // stopped subscribing to a topic may still be reading it until it syncs.
        let mut holders: BTreeMap<&TopicPartition, BTreeSet<&str>> = BTreeMap::new();
        for m in members {
            for tp in &m.owned {
                holders.entry(tp).or_default().insert(&m.member_id);
            }
        }
        let mut result = empty_assignment(members);
        for (member_id, set) in target {
            let Some(list) = result.get_mut(&member_id) else {
                continue;
            };
            list.extend(set.into_iter().filter(|tp| {
                holders
                    .get(tp)
                    .is_none_or(|h| h.iter().all(|&holder| holder == member_id))
            }));
        }
        result
    }
}

/// The balanced, sticky assignment this rebalance aims for, before withholding
/// partitions that change hands.
pub(crate) fn target(
    members: &[MemberSubscription],
    partitions: &BTreeMap<String, u32>,
) -> BTreeMap<String, BTreeSet<TopicPartition>> {
    let mut sorted: Vec<&MemberSubscription> = members.iter().collect();
    sorted.sort_by(|a, b| a.member_id.cmp(&b.member_id));
    sorted.dedup_by(|a, b| a.member_id == b.member_id);
    let universe = assignable(members, partitions);

    let mut assignment: BTreeMap<&str, BTreeSet<TopicPartition>> = sorted
        .iter()
        .map(|m| (m.member_id.as_str(), BTreeSet::new()))
        .collect();
    let mut placed: BTreeSet<&TopicPartition> = BTreeSet::new();
    for m in &sorted {
        for tp in &m.owned {
            if universe.contains(tp)
                && m.topics.contains(&tp.topic)
                && placed.insert(tp)
                && let Some(set) = assignment.get_mut(m.member_id.as_str())
            {
                set.insert(tp.clone());
            }
        }
    }

    let eligible = |tp: &TopicPartition| -> Vec<&str> {
        sorted
            .iter()
            .filter(|m| m.topics.contains(&tp.topic))
            .map(|m| m.member_id.as_str())
            .collect()
    };
    let mut free: Vec<(usize, &TopicPartition)> = universe
        .iter()
        .filter(|tp| !placed.contains(tp))
        .map(|tp| (eligible(tp).len(), tp))
        .collect();
    free.sort();
    for (_, tp) in free {
        let taker = eligible(tp)
            .into_iter()
            .min_by_key(|id| (assignment.get(id).map_or(0, BTreeSet::len), *id));
        if let Some(set) = taker.and_then(|id| assignment.get_mut(id)) {
            set.insert(tp.clone());
        }
    }

    while let Some((from, to, tp)) = improving_move(&sorted, &assignment) {
        if let Some(set) = assignment.get_mut(from) {
            set.remove(&tp);
        }
        if let Some(set) = assignment.get_mut(to) {
            set.insert(tp);
        }
    }

    assignment
        .into_iter()
        .map(|(id, set)| (id.to_string(), set))
        .collect()
}

/// A partition that can move from a member with at least two more partitions to one
/// that subscribes to its topic, or `None` when the assignment is balanced.
fn improving_move<'m>(
    sorted: &[&'m MemberSubscription],
    assignment: &BTreeMap<&str, BTreeSet<TopicPartition>>,
) -> Option<(&'m str, &'m str, TopicPartition)> {
    let count = |id: &str| assignment.get(id).map_or(0, BTreeSet::len);
    let mut by_load: Vec<&'m MemberSubscription> = sorted.to_vec();
    by_load.sort_by_key(|m| (count(&m.member_id), m.member_id.as_str()));
    for &giver in by_load.iter().rev() {
        let Some(held) = assignment.get(giver.member_id.as_str()) else {
            continue;
        };
        for &taker in &by_load {
            if count(&taker.member_id) + 2 > held.len() {
                break;
            }
            let movable = |tp: &&TopicPartition| taker.topics.contains(&tp.topic);
            // Moving a partition the giver only just received costs no stickiness.
            let pick = held
                .iter()
                .filter(movable)
                .find(|tp| !giver.owned.contains(*tp))
                .or_else(|| held.iter().find(movable));
            if let Some(tp) = pick {
                return Some((&giver.member_id, &taker.member_id, tp.clone()));
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::super::test_support::*;
    use super::*;

    fn owning(id: &str, topics: &[&str], owned: &[(&str, u32)]) -> MemberSubscription {
        MemberSubscription {
            owned: tps(owned).into_iter().collect(),
            ..member(id, topics)
        }
    }

    #[test]
    fn fresh_group_is_balanced() {
        let members = [
            member("a", &["t"]),
            member("b", &["t"]),
            member("c", &["t"]),
        ];
        let out = CooperativeStickyAssignor.assign(&members, &topics(&[("t", 6)]));
        assert!(out.values().all(|l| l.len() == 2), "{out:?}");
    }

    #[test]
    fn a_new_member_receives_moved_partitions_only_in_the_next_round() {
        let t = topics(&[("t", 6)]);
        let members = [
            owning("a", &["t"], &[("t", 0), ("t", 1)]),
            owning("b", &["t"], &[("t", 2), ("t", 3)]),
            owning("c", &["t"], &[("t", 4), ("t", 5)]),
            member("d", &["t"]),
        ];
        let first = CooperativeStickyAssignor.assign(&members, &t);
        assert_eq!(first["d"], vec![], "d must wait for the revocation");
        let kept: usize = first.values().map(Vec::len).sum();
        assert_eq!(kept, 5, "exactly one partition is revoked: {first:?}");
        for m in &members[..3] {
            let now: BTreeSet<_> = first[&m.member_id].iter().cloned().collect();
            assert!(
                now.is_subset(&m.owned),
                "members only lose partitions in round one"
            );
        }

        let second_members: Vec<MemberSubscription> = members
            .iter()
            .map(|m| MemberSubscription {
                owned: first[&m.member_id].iter().cloned().collect(),
                ..m.clone()
            })
            .collect();
        let second = CooperativeStickyAssignor.assign(&second_members, &t);
        assert_eq!(second["d"].len(), 1);
        let mut counts: Vec<usize> = second.values().map(Vec::len).collect();
        counts.sort();
        assert_eq!(counts, vec![1, 1, 2, 2]);
        for m in &second_members {
            let now: BTreeSet<_> = second[&m.member_id].iter().cloned().collect();
            assert!(m.owned.is_subset(&now), "round two only adds");
        }
    }

    #[test]
    fn partitions_of_an_unsubscribed_topic_are_withheld_from_the_new_owner() {
        let t = topics(&[("x", 1), ("y", 1)]);
        // a dropped y but may still be reading y-0 until it syncs.
        let members = [
            owning("a", &["x"], &[("x", 0), ("y", 0)]),
            member("b", &["y"]),
        ];
        let out = CooperativeStickyAssignor.assign(&members, &t);
        assert_eq!(out["a"], tps(&[("x", 0)]));
        assert_eq!(out["b"], vec![]);
    }
}
