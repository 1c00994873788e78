//! The controller's partition decisions when a broker goes away or comes back: who
//! leads each partition and which replicas stay in sync. Pure functions of the image,
//! applied inside the records that cause them (`FenceBroker`, `UnfenceBroker`,
//! `RegisterBroker` of a new run), so every voter moves the same partitions the same way
//! and no second record can be lost between a fencing and its elections.
//!
//! The rules:
//! - A leader is chosen from the in-sync replicas only, in replica order, and never a
//!   fenced broker: a replica outside the ISR may lack acknowledged records.
//! - A broker that goes away leaves the ISR of every partition, except where it is the
//!   last member. There it stays, and the partition has no leader until that broker
//!   returns: electing anyone else could lose what only it holds (the
//!   last-replica-standing loss). Acknowledgements make that safe: acks=all is answered
//!   only once every ISR member has the batch on disk (fsynced), so the last member of
//!   the ISR holds every acknowledged record even after a power loss.
//! - A topic may ask for unclean election (`unclean.leader.election.enable`): where no
//!   in-sync replica can lead, the first available replica outside the ISR does, alone in
//!   a new ISR, and the records only the old ISR held are lost. Kafka's option for
//!   availability over durability; off unless the topic sets it.
//! - A leader change bumps the leader epoch; every change bumps the partition epoch.

use crate::ids::BrokerId;
use crate::image::{MetadataImage, PartitionAssignment};
use crate::record::PartitionChange;

/// `p` once broker `gone` is unavailable (fenced, or restarted as a new run that must
/// catch up before it counts as in sync again); `None` when nothing changes.
/// `available` says which other brokers may lead; `unclean`, whether the topic allows
/// a replica outside the ISR to.
pub(crate) fn without_broker(
    p: &PartitionAssignment,
    gone: BrokerId,
    available: impl Fn(BrokerId) -> bool,
    unclean: bool,
) -> Option<PartitionAssignment> {
    if !p.isr.contains(&gone) {
        return None;
    }
    let remaining: Vec<BrokerId> = p.isr.iter().copied().filter(|b| *b != gone).collect();
    let mut next = p.clone();
    if remaining.is_empty() {
        if unclean && elect_unclean(&mut next, &available) {
            return Some(bumped(p, next));
        }
        // The last in-sync replica: it stays in the ISR and the partition waits for it.
        // Already waiting for it: nothing changes.
        p.leader?;
        next.leader = None;
    } else {
        next.isr = remaining;
        if p.leader.is_none_or(|l| l == gone) {
            next.leader = first_eligible(&next, &available);
            if next.leader.is_none() && unclean {
                elect_unclean(&mut next, &available);
            }
        }
    }
    Some(bumped(p, next))
}

/// `p` once broker `back` is available again: a partition with no leader whose ISR
/// holds it is led by it; with `unclean`, so is one where `back` is any replica (a
/// partition without a leader has no in-sync replica available). `None` when nothing
/// changes.
pub(crate) fn with_broker_back(
    p: &PartitionAssignment,
    back: BrokerId,
    unclean: bool,
) -> Option<PartitionAssignment> {
    if p.leader.is_some() {
        return None;
    }
    let mut next = p.clone();
    if p.isr.contains(&back) {
        next.leader = Some(back);
    } else if unclean && p.replicas.contains(&back) {
        next.leader = Some(back);
        next.isr = vec![back];
    } else {
        return None;
    }
    Some(bumped(p, next))
}

/// `p` once its topic has come to allow unclean election: a partition without a leader
/// is led by its first available replica. `None` when nothing changes.
pub(crate) fn unclean_now(
    p: &PartitionAssignment,
    available: impl Fn(BrokerId) -> bool,
) -> Option<PartitionAssignment> {
    if p.leader.is_some() {
        return None;
    }
    let mut next = p.clone();
    elect_unclean(&mut next, &available).then(|| bumped(p, next))
}

/// Makes the first available replica, in replica order, the leader and the whole ISR;
/// false (and `next` unchanged) when none is available.
fn elect_unclean(next: &mut PartitionAssignment, available: &impl Fn(BrokerId) -> bool) -> bool {
    let Some(leader) = next.replicas.iter().copied().find(|b| available(*b)) else {
        return false;
    };
    next.leader = Some(leader);
    next.isr = vec![leader];
    true
}

/// The first in-sync replica, in replica order, that may lead.
fn first_eligible(
    p: &PartitionAssignment,
    available: &impl Fn(BrokerId) -> bool,
) -> Option<BrokerId> {
    p.replicas
        .iter()
        .copied()
        .find(|b| p.isr.contains(b) && available(*b))
}

/// `next` with its epochs moved on from `before`.
fn bumped(before: &PartitionAssignment, mut next: PartitionAssignment) -> PartitionAssignment {
    if next.leader != before.leader {
        next.leader_epoch = before.leader_epoch.saturating_add(1);
    }
    next.partition_epoch = before.partition_epoch.saturating_add(1);
    next
}

/// The changes that give each partition back to its preferred leader (its first
/// replica) where that broker is in sync and not fenced but another one leads: after
/// brokers restart, every leadership would otherwise stay on whoever took it over
/// (Kafka's preferred-leader election). Each change names the partition epoch it was
/// built from, so one that raced with an ISR change or a fencing is refused.
pub fn preferred_leader_changes(image: &MetadataImage) -> Vec<PartitionChange> {
    let available = |b: BrokerId| image.broker(b).is_some_and(|r| !r.fenced);
    let mut changes = Vec::new();
    for topic in image.topics() {
        for (index, p) in topic.partitions.iter().enumerate() {
            let Some(&preferred) = p.replicas.first() else {
                continue;
            };
            if p.leader == Some(preferred) || !p.isr.contains(&preferred) || !available(preferred) {
                continue;
            }
            changes.push(PartitionChange {
                topic: topic.name.clone(),
                partition: u32::try_from(index).unwrap_or(u32::MAX),
                leader: Some(preferred),
                leader_epoch: p.leader_epoch.saturating_add(1),
                isr: p.isr.clone(),
                replicas: p.replicas.clone(),
                partition_epoch: Some(p.partition_epoch),
            });
        }
    }
    changes
}

/// The changes that finish reassignments: a partition whose target replicas are all in
/// sync switches to exactly them, the replicas it leaves go out of the ISR, and if its
/// leader is one of those, the first in-sync target replica leads (leader epoch +1).
pub fn reassignment_completions(image: &MetadataImage) -> Vec<PartitionChange> {
    let available = |b: BrokerId| image.broker(b).is_some_and(|r| !r.fenced);
    let mut changes = Vec::new();
    for topic in image.topics() {
        for (index, p) in topic.partitions.iter().enumerate() {
            let Some(target) = &p.target_replicas else {
                continue;
            };
            if target.is_empty() || !target.iter().all(|b| p.isr.contains(b)) {
                continue;
            }
            let isr: Vec<BrokerId> = p
                .isr
                .iter()
                .copied()
                .filter(|b| target.contains(b))
                .collect();
            let (leader, leader_epoch) = match p.leader {
                Some(l) if target.contains(&l) => (Some(l), p.leader_epoch),
                _ => {
                    let Some(next) = target.iter().copied().find(|b| available(*b)) else {
                        continue;
                    };
                    (Some(next), p.leader_epoch.saturating_add(1))
                }
            };
            changes.push(PartitionChange {
                topic: topic.name.clone(),
                partition: u32::try_from(index).unwrap_or(u32::MAX),
                leader,
                leader_epoch,
                isr,
                replicas: target.clone(),
                partition_epoch: Some(p.partition_epoch),
            });
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(replicas: &[u32], leader: Option<u32>, isr: &[u32]) -> PartitionAssignment {
        PartitionAssignment {
            replicas: replicas.to_vec(),
            leader,
            leader_epoch: 4,
            isr: isr.to_vec(),
            partition_epoch: 9,
            target_replicas: None,
        }
    }

    #[test]
    fn a_lost_leader_is_replaced_by_the_next_in_sync_replica() {
        let p = part(&[1, 2, 3], Some(1), &[1, 2, 3]);
        let next = without_broker(&p, 1, |_| true, false).expect("changes");
        assert_eq!(next.leader, Some(2));
        assert_eq!(next.isr, vec![2, 3]);
        assert_eq!((next.leader_epoch, next.partition_epoch), (5, 10));
    }

    #[test]
    fn only_in_sync_and_available_replicas_lead() {
        // 2 is out of sync, 3 is in sync but unavailable: nobody can lead.
        let p = part(&[1, 2, 3], Some(1), &[1, 3]);
        let next = without_broker(&p, 1, |b| b != 3, false).expect("changes");
        assert_eq!(next.leader, None);
        assert_eq!(next.isr, vec![3]);
        // Once 3 is back it leads.
        let back = with_broker_back(&next, 3, false).expect("elects");
        assert_eq!(back.leader, Some(3));
        assert_eq!(back.leader_epoch, next.leader_epoch + 1);
        // 2, out of sync, is never chosen.
        assert!(with_broker_back(&next, 2, false).is_none());
    }

    #[test]
    fn a_lost_follower_leaves_the_isr_without_a_new_leader_epoch() {
        let p = part(&[1, 2, 3], Some(1), &[1, 2, 3]);
        let next = without_broker(&p, 3, |_| true, false).expect("changes");
        assert_eq!(next.leader, Some(1));
        assert_eq!(next.isr, vec![1, 2]);
        assert_eq!((next.leader_epoch, next.partition_epoch), (4, 10));
        // A replica already out of sync changes nothing.
        assert!(without_broker(&next, 3, |_| true, false).is_none());
    }

    #[test]
    fn the_last_in_sync_replica_stays_and_the_partition_waits_for_it() {
        let p = part(&[1, 2, 3], Some(2), &[2]);
        let next = without_broker(&p, 2, |_| true, false).expect("changes");
        assert_eq!(next.leader, None);
        assert_eq!(next.isr, vec![2], "never emptied");
        assert!(without_broker(&next, 2, |_| true, false).is_none());
        assert_eq!(
            with_broker_back(&next, 2, false).expect("back").leader,
            Some(2)
        );
    }

    #[test]
    fn with_unclean_election_an_out_of_sync_replica_leads_when_no_in_sync_one_can() {
        // 2 is the last in-sync replica; 1 and 3 are out of sync but available.
        let p = part(&[1, 2, 3], Some(2), &[2]);
        let next = without_broker(&p, 2, |b| b != 2, true).expect("changes");
        assert_eq!(next.leader, Some(1), "the first available replica");
        assert_eq!(next.isr, vec![1], "alone in the ISR");
        assert_eq!((next.leader_epoch, next.partition_epoch), (5, 10));
        // An in-sync replica that can lead is still preferred.
        let p = part(&[1, 2, 3], Some(1), &[1, 3]);
        let next = without_broker(&p, 1, |b| b != 1, true).expect("changes");
        assert_eq!((next.leader, next.isr.clone()), (Some(3), vec![3]));
        // The ISR's other member is fenced: an out-of-sync replica leads.
        let next = without_broker(&p, 1, |b| b == 2, true).expect("changes");
        assert_eq!((next.leader, next.isr.clone()), (Some(2), vec![2]));
        // Nobody available: the partition waits, as without unclean election.
        let next = without_broker(&p, 1, |_| false, true).expect("changes");
        assert_eq!(next.leader, None);
    }

    #[test]
    fn with_unclean_election_any_replica_that_returns_leads_a_partition_without_leader() {
        let waiting = part(&[1, 2, 3], None, &[2]);
        assert!(
            with_broker_back(&waiting, 3, false).is_none(),
            "clean: waits for 2"
        );
        let next = with_broker_back(&waiting, 3, true).expect("elects");
        assert_eq!((next.leader, next.isr.clone()), (Some(3), vec![3]));
        assert_eq!(next.leader_epoch, 5);
        // Not a replica: never.
        assert!(with_broker_back(&waiting, 4, true).is_none());
    }

    #[test]
    fn allowing_unclean_election_elects_where_a_partition_waits() {
        let waiting = part(&[1, 2, 3], None, &[2]);
        let next = unclean_now(&waiting, |b| b == 3).expect("elects");
        assert_eq!((next.leader, next.isr.clone()), (Some(3), vec![3]));
        assert!(
            unclean_now(&waiting, |_| false).is_none(),
            "nobody available"
        );
        let led = part(&[1, 2, 3], Some(2), &[2]);
        assert!(unclean_now(&led, |_| true).is_none(), "already led");
    }
}
