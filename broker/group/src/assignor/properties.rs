//! Properties every strategy keeps, checked over random groups.

use std::collections::{BTreeMap, BTreeSet};

use crate::partition::TopicPartition;
use proptest::prelude::*;

use super::sticky::target;
use super::*;

const TOPICS: [&str; 3] = ["t0", "t1", "t2"];

/// Up to eight members with random subscriptions over three topics, of which some may
/// not exist, and up to nine partitions per existing topic.
fn group() -> impl Strategy<Value = (Vec<MemberSubscription>, BTreeMap<String, u32>)> {
    let members = prop::collection::vec(prop::collection::btree_set(0..3usize, 0..=3), 1..=8);
    let counts = prop::collection::vec(prop::option::of(0..10u32), 3);
    (members, counts).prop_map(|(subs, counts)| {
        let members = subs
            .into_iter()
            .enumerate()
            .map(|(i, topics)| MemberSubscription {
                member_id: format!("m{i}"),
                topics: topics.into_iter().map(|t| TOPICS[t].to_string()).collect(),
                owned: BTreeSet::new(),
            })
            .collect();
        let partitions = TOPICS
            .iter()
            .zip(counts)
            .filter_map(|(t, n)| n.map(|n| (t.to_string(), n)))
            .collect();
        (members, partitions)
    })
}

/// Same-subscription groups: every member subscribes to the same topics.
fn uniform_group() -> impl Strategy<Value = (Vec<MemberSubscription>, BTreeMap<String, u32>)> {
    (group(), prop::collection::btree_set(0..3usize, 1..=3)).prop_map(|((mut members, p), t)| {
        let topics: BTreeSet<String> = t.into_iter().map(|i| TOPICS[i].to_string()).collect();
        for m in &mut members {
            m.topics = topics.clone();
        }
        (members, p)
    })
}

/// Each assigned partition exists, goes to a subscriber, and to one member only; every
/// member has an entry.
fn check_valid(
    members: &[MemberSubscription],
    partitions: &BTreeMap<String, u32>,
    out: &BTreeMap<String, Vec<TopicPartition>>,
) -> Result<BTreeSet<TopicPartition>, TestCaseError> {
    let universe = assignable(members, partitions);
    let mut seen = BTreeSet::new();
    for m in members {
        let list = out.get(&m.member_id);
        prop_assert!(list.is_some(), "{} has no entry", m.member_id);
        for tp in list.into_iter().flatten() {
            prop_assert!(universe.contains(tp), "{tp} does not exist");
            prop_assert!(
                m.topics.contains(&tp.topic),
                "{} got unsubscribed {tp}",
                m.member_id
            );
            prop_assert!(seen.insert(tp.clone()), "{tp} assigned twice");
        }
    }
    Ok(seen)
}

fn counts(out: &BTreeMap<String, Vec<TopicPartition>>) -> (usize, usize) {
    let min = out.values().map(Vec::len).min().unwrap_or(0);
    let max = out.values().map(Vec::len).max().unwrap_or(0);
    (min, max)
}

/// Kafka's balance condition: no member holds two more than another member that could
/// take one of its partitions.
fn check_no_improving_move(
    members: &[MemberSubscription],
    out: &BTreeMap<String, Vec<TopicPartition>>,
) -> Result<(), TestCaseError> {
    for giver in members {
        for taker in members {
            let (g, t) = (&out[&giver.member_id], &out[&taker.member_id]);
            if g.len() >= t.len() + 2 {
                prop_assert!(
                    !g.iter().any(|tp| taker.topics.contains(&tp.topic)),
                    "{} ({}) could give to {} ({})",
                    giver.member_id,
                    g.len(),
                    taker.member_id,
                    t.len()
                );
            }
        }
    }
    Ok(())
}

proptest! {
    #[test]
    fn every_strategy_assigns_each_partition_once_to_a_subscriber((members, partitions) in group()) {
        let universe = assignable(&members, &partitions);
        for assignor in builtin() {
            let out = assignor.assign(&members, &partitions);
            let seen = check_valid(&members, &partitions, &out)?;
            prop_assert_eq!(&seen, &universe, "{} left partitions out", assignor.name());
        }
    }

    #[test]
    fn identical_subscriptions_are_balanced((members, partitions) in uniform_group()) {
        for name in ["roundrobin", "cooperative-sticky"] {
            let assignor = builtin().into_iter().find(|a| a.name() == name).unwrap();
            let (min, max) = counts(&assignor.assign(&members, &partitions));
            prop_assert!(max - min <= 1, "{name}: {min}..{max}");
        }
        // Range balances each topic on its own, not the total.
        let out = RangeAssignor.assign(&members, &partitions);
        for topic in partitions.keys() {
            let per: Vec<usize> = out
                .values()
                .map(|l| l.iter().filter(|tp| &tp.topic == topic).count())
                .collect();
            let (min, max) = (per.iter().min().unwrap(), per.iter().max().unwrap());
            prop_assert!(max - min <= 1, "range on {topic}: {per:?}");
        }
    }

    #[test]
    fn sticky_target_admits_no_improving_move((members, partitions) in group()) {
        let out: BTreeMap<String, Vec<TopicPartition>> = target(&members, &partitions)
            .into_iter()
            .map(|(id, set)| (id, set.into_iter().collect()))
            .collect();
        check_no_improving_move(&members, &out)?;
    }

    /// With random (even overlapping or stale) holdings, a partition only goes to a
    /// member when nobody else may hold it, and repeating the rebalance with what each
    /// member was given converges to a complete, balanced assignment.
    #[test]
    fn sticky_rounds_never_share_a_partition_and_converge(
        (mut members, partitions) in group(),
        held in prop::collection::vec(prop::collection::btree_set((0..3usize, 0..10u32), 0..6), 8),
    ) {
        for (m, h) in members.iter_mut().zip(held) {
            m.owned = h.into_iter().map(|(t, p)| TopicPartition::new(TOPICS[t], p)).collect();
        }
        let universe = assignable(&members, &partitions);
        let mut rounds = 0;
        loop {
            let out = CooperativeStickyAssignor.assign(&members, &partitions);
            check_valid(&members, &partitions, &out)?;
            for (id, list) in &out {
                for tp in list {
                    for other in members.iter().filter(|m| &m.member_id != id) {
                        prop_assert!(!other.owned.contains(tp), "{tp} given to {id} while {} holds it", other.member_id);
                    }
                }
            }
            let assigned: usize = out.values().map(Vec::len).sum();
            if assigned == universe.len() {
                check_no_improving_move(&members, &out)?;
                break;
            }
            rounds += 1;
            prop_assert!(rounds <= 3, "no convergence after {rounds} rounds");
            for m in &mut members {
                m.owned = out[&m.member_id].iter().cloned().collect();
            }
        }
    }
}
