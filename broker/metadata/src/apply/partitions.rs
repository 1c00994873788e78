//! Checks of the records that change a partition's placement: `PartitionChange` (a
//! leader's ISR change, a controller's election or switch) and `ReassignPartition`.

use std::sync::Arc;

use super::{Applied, Change, check_replica_set, existing_topic};
use crate::error::MetadataError;
use crate::image::{ImageState, PartitionAssignment};
use crate::record::{PartitionChange, ReassignPartition};

pub(super) fn check_partition_change<'r>(
    s: &ImageState,
    r: &'r PartitionChange,
) -> Result<Change<'r>, MetadataError> {
    let current = existing_partition(s, &r.topic, r.partition)?;
    let bad = |reason: &str| MetadataError::BadReplicas {
        topic: r.topic.clone(),
        partition: r.partition,
        reason: reason.to_string(),
    };
    if r.replicas.is_empty() {
        return Err(bad("a partition needs at least one replica"));
    }
    // Only fencing empties a leadership, and it keeps the last in-sync replica.
    if r.isr.is_empty() {
        return Err(bad("a partition keeps at least one in-sync replica"));
    }
    check_replica_set(s, &r.topic, r.partition, &r.replicas, "replicas")?;
    check_replica_set(s, &r.topic, r.partition, &r.isr, "in-sync replicas")?;
    if let Some(outside) = r.isr.iter().find(|b| !r.replicas.contains(b)) {
        return Err(bad(&format!(
            "in-sync replica {outside} is not one of the replicas"
        )));
    }
    match r.leader {
        Some(leader) if !r.isr.contains(&leader) => {
            return Err(bad(&format!("leader {leader} is not in sync")));
        }
        None if !r.isr.is_empty() => {
            return Err(bad("a partition with in-sync replicas needs a leader"));
        }
        _ => {}
    }
    if let Some(proposed) = r.partition_epoch
        && proposed != current.partition_epoch
    {
        return Err(MetadataError::StalePartitionEpoch {
            topic: r.topic.clone(),
            partition: r.partition,
            proposed,
            current: current.partition_epoch,
        });
    }
    // Joining the ISR or taking the lead needs a broker that is up.
    let joining = r
        .isr
        .iter()
        .filter(|b| !current.isr.contains(b))
        .chain(r.leader.iter().filter(|l| current.leader != Some(**l)));
    for b in joining {
        if s.brokers.get(b).is_some_and(|reg| reg.fenced) {
            return Err(MetadataError::FencedReplica {
                topic: r.topic.clone(),
                partition: r.partition,
                broker_id: *b,
            });
        }
    }
    let partition_epoch = current.partition_epoch.saturating_add(1);
    let leader_changed = r.leader != current.leader;
    if r.leader_epoch < current.leader_epoch
        || (leader_changed && r.leader_epoch == current.leader_epoch)
    {
        return Err(MetadataError::StaleLeaderEpoch {
            topic: r.topic.clone(),
            partition: r.partition,
            proposed: r.leader_epoch,
            current: current.leader_epoch,
        });
    }
    Ok(Box::new(move |s, _| {
        if let Some(topic) = s.topics.get_mut(&r.topic)
            && let Some(p) = Arc::make_mut(topic)
                .partitions
                .get_mut(r.partition as usize)
        {
            // A reassignment under way goes on through ISR changes, and ends with
            // the change that leaves exactly its target replicas.
            let target_replicas = p.target_replicas.take().filter(|target| {
                *target != r.replicas && target.iter().all(|b| r.replicas.contains(b))
            });
            *p = PartitionAssignment {
                replicas: r.replicas.clone(),
                leader: r.leader,
                leader_epoch: r.leader_epoch,
                isr: r.isr.clone(),
                partition_epoch,
                target_replicas,
            };
        }
        Applied::PartitionChanged {
            topic: r.topic.clone(),
            partition: r.partition,
        }
    }))
}

/// Partition `partition` of topic `topic`, which must exist.
fn existing_partition<'s>(
    s: &'s ImageState,
    topic: &str,
    partition: u32,
) -> Result<&'s PartitionAssignment, MetadataError> {
    let t = existing_topic(s, topic)?;
    t.partitions
        .get(partition as usize)
        .ok_or_else(|| MetadataError::UnknownPartition {
            topic: topic.to_string(),
            partition,
            partitions: t.partition_count(),
        })
}

pub(super) fn check_reassign<'r>(
    s: &ImageState,
    r: &'r ReassignPartition,
) -> Result<Change<'r>, MetadataError> {
    let current = existing_partition(s, &r.topic, r.partition)?;
    let bad = |reason: String| MetadataError::BadReplicas {
        topic: r.topic.clone(),
        partition: r.partition,
        reason,
    };
    if r.target.is_empty() {
        return Err(bad("a partition needs at least one replica".into()));
    }
    check_replica_set(s, &r.topic, r.partition, &r.target, "target replicas")?;
    for b in r.target.iter().filter(|b| !current.replicas.contains(b)) {
        if s.brokers.get(b).is_some_and(|reg| reg.fenced) {
            return Err(MetadataError::FencedReplica {
                topic: r.topic.clone(),
                partition: r.partition,
                broker_id: *b,
            });
        }
    }
    // Nothing is removed yet: the current replicas (which may include those of an
    // earlier target, replaced now) keep serving, the new ones are added after them,
    // and the switch to exactly `target` comes once all of it is in sync.
    let mut replicas = current.replicas.clone();
    replicas.extend(r.target.iter().filter(|b| !current.replicas.contains(b)));
    let target = (r.target != replicas).then(|| r.target.clone());
    Ok(Box::new(move |s, _| {
        if let Some(topic) = s.topics.get_mut(&r.topic)
            && let Some(p) = Arc::make_mut(topic)
                .partitions
                .get_mut(r.partition as usize)
        {
            p.replicas = replicas;
            p.target_replicas = target;
            p.partition_epoch = p.partition_epoch.saturating_add(1);
        }
        Applied::PartitionChanged {
            topic: r.topic.clone(),
            partition: r.partition,
        }
    }))
}
