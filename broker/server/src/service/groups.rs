//! Consumer groups: join, sync, heartbeat, leave, offset commit and fetch, and the
//! admin operations (list, describe, delete, reset offsets). Membership and offsets live
//! in [`GroupService`](crate::groups::GroupService), which speaks `quiver_group`'s own
//! types; this file adds what needs the partition logs: end offsets and lag, and reset
//! targets.

use std::sync::Arc;

use quiver_group::{
    CommitRequest, CommittedOffset, GroupDescription, GroupSummary, HeartbeatRequest, JoinRequest,
    Joined, LeaveRequest, SyncRequest, TopicPartition,
};

use super::types::{DescribedGroup, PartitionLag, ResetTarget};
use super::{BrokerService, blocking};
use crate::auth::Caller;
use crate::error::BrokerError;
use crate::groups::CoordinatorAddress;
use crate::partition::Partition;
use quiver_metadata::{Operation, ResourceKind};

impl BrokerService {
    /// Which broker coordinates the group (see [`crate::groups::GroupService::find_coordinator`]).
    pub async fn find_coordinator(
        &self,
        caller: &Caller,
        group_id: &str,
    ) -> Result<CoordinatorAddress, BrokerError> {
        self.check(caller, Operation::Describe, ResourceKind::Group, group_id)?;
        self.groups.find_coordinator(&self.broker, group_id).await
    }

    /// Joins (or rejoins) a group; answers once the rebalance this join is part of
    /// completes, or the broker shuts down.
    pub async fn join_group(
        &self,
        caller: &Caller,
        req: JoinRequest,
    ) -> Result<Joined, BrokerError> {
        self.check(caller, Operation::Read, ResourceKind::Group, &req.group_id)?;
        self.groups.join(&self.broker, req, &self.shutdown).await
    }

    /// The caller's assignment in the current generation.
    pub fn sync_group(
        &self,
        caller: &Caller,
        req: &SyncRequest,
    ) -> Result<Vec<TopicPartition>, BrokerError> {
        self.check(caller, Operation::Read, ResourceKind::Group, &req.group_id)?;
        self.groups.sync(req)
    }

    /// Keeps a member's session alive; an error says it must rejoin.
    pub fn heartbeat(&self, caller: &Caller, req: &HeartbeatRequest) -> Result<(), BrokerError> {
        self.check(caller, Operation::Read, ResourceKind::Group, &req.group_id)?;
        self.groups.heartbeat(req)
    }

    /// Removes a member at once, starting a rebalance for the rest.
    pub fn leave_group(&self, caller: &Caller, req: &LeaveRequest) -> Result<(), BrokerError> {
        self.check(caller, Operation::Read, ResourceKind::Group, &req.group_id)?;
        self.groups.leave(&self.broker, req)
    }

    /// Commits offsets; answered only once they are durable in `__consumer_offsets`.
    pub async fn commit_offsets(
        &self,
        caller: &Caller,
        req: CommitRequest,
    ) -> Result<(), BrokerError> {
        self.check(caller, Operation::Read, ResourceKind::Group, &req.group_id)?;
        for o in &req.offsets {
            self.check(
                caller,
                Operation::Read,
                ResourceKind::Topic,
                &o.partition.topic,
            )?;
        }
        self.groups.commit(&self.broker, req).await
    }

    /// A group's committed offsets, for the named partitions or all of them.
    pub fn fetch_offsets(
        &self,
        caller: &Caller,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<Vec<CommittedOffset>, BrokerError> {
        self.check(caller, Operation::Describe, ResourceKind::Group, group_id)?;
        // Offsets of topics the caller may not see are left out, as Kafka does.
        Ok(self
            .groups
            .fetch_offsets(group_id, partitions)?
            .into_iter()
            .filter(|o| {
                self.may(
                    caller,
                    Operation::Describe,
                    ResourceKind::Topic,
                    &o.partition.topic,
                )
            })
            .collect())
    }

    /// Every group the coordinator knows that the caller may describe.
    pub fn list_groups(&self, caller: &Caller) -> Vec<GroupSummary> {
        self.groups
            .list()
            .into_iter()
            .filter(|g| {
                self.may(
                    caller,
                    Operation::Describe,
                    ResourceKind::Group,
                    &g.group_id,
                )
            })
            .collect()
    }

    /// The coordinator's description with every partition of the topics its members
    /// subscribe to or it has commits on: committed offset (if any), end offset and lag.
    pub fn describe_group(
        &self,
        caller: &Caller,
        group_id: &str,
    ) -> Result<DescribedGroup, BrokerError> {
        self.check(caller, Operation::Describe, ResourceKind::Group, group_id)?;
        let mut group: GroupDescription = self.groups.describe(group_id)?;
        // Topics the caller may not describe are left out of the rows and assignments,
        // as listings leave them out.
        let visible =
            |topic: &str| self.may(caller, Operation::Describe, ResourceKind::Topic, topic);
        group.offsets.retain(|row| visible(&row.partition.topic));
        for member in &mut group.members {
            member.assignment.retain(|tp| visible(&tp.topic));
            member.topics.retain(|t| visible(t));
        }
        let lag = self.lag_rows(&group);
        Ok(DescribedGroup { group, lag })
    }

    /// One row per partition of every topic the group's members subscribe to or it has
    /// a commit on, as Kafka's describe shows them: a partition nobody committed on yet
    /// has no committed offset and no lag, but its end offset. A commit on a partition
    /// that no longer exists keeps its row, with end offset -1.
    pub(crate) fn lag_rows(&self, group: &GroupDescription) -> Vec<PartitionLag> {
        let committed: std::collections::BTreeMap<&TopicPartition, Option<i64>> = group
            .offsets
            .iter()
            .map(|row| (&row.partition, row.committed))
            .collect();
        let mut topics: std::collections::BTreeSet<&str> = group
            .members
            .iter()
            .flat_map(|m| m.topics.iter().map(String::as_str))
            .collect();
        topics.extend(committed.keys().map(|tp| tp.topic.as_str()));
        let mut rows: std::collections::BTreeMap<TopicPartition, PartitionLag> =
            std::collections::BTreeMap::new();
        let row = |tp: TopicPartition, end_offset: i64| {
            let committed = committed.get(&tp).copied().flatten();
            PartitionLag {
                lag: match committed {
                    Some(c) if end_offset >= 0 => Some((end_offset - c).max(0)),
                    _ => None,
                },
                partition: tp,
                committed,
                end_offset,
            }
        };
        for name in topics {
            let Ok(topic) = self.broker.topic(name) else {
                continue;
            };
            for p in &topic.partitions {
                let tp = TopicPartition::new(name.to_owned(), p.index);
                // Only a leader's high watermark is current; the client asks the
                // leaders of the others.
                let end = if p.is_local() && p.leading_epoch().is_some() {
                    p.log().map_or(-1, |log| log.high_watermark())
                } else {
                    -1
                };
                rows.insert(tp.clone(), row(tp, end));
            }
        }
        for tp in committed.keys() {
            if !rows.contains_key(*tp) {
                rows.insert((*tp).clone(), row((*tp).clone(), -1));
            }
        }
        rows.into_values().collect()
    }

    /// Every group's size, generation and lag, for the metrics endpoint.
    pub(crate) fn group_figures(&self) -> Vec<crate::metrics::GroupFigures> {
        self.groups
            .list()
            .into_iter()
            .filter_map(|g| {
                let group = self.groups.describe(&g.group_id).ok()?;
                let lag = self.lag_rows(&group);
                Some(crate::metrics::GroupFigures::new(
                    group.group_id,
                    group.members.len(),
                    group.generation,
                    lag,
                ))
            })
            .collect()
    }

    /// Deletes an empty group and its committed offsets.
    pub async fn delete_group(&self, caller: &Caller, group_id: &str) -> Result<(), BrokerError> {
        self.check(caller, Operation::Delete, ResourceKind::Group, group_id)?;
        self.groups.delete(&self.broker, group_id).await?;
        tracing::info!(group = %group_id, "consumer group deleted");
        Ok(())
    }

    /// Resolves `to` on every partition of `topic` and commits it for the group.
    /// Refused while the group has members, checked before reading any partition; the
    /// coordinator checks again when it applies the offsets, in case one joined meanwhile.
    pub async fn reset_group_offsets(
        &self,
        caller: &Caller,
        group_id: &str,
        topic: &str,
        to: ResetTarget,
    ) -> Result<Vec<CommittedOffset>, BrokerError> {
        self.check(caller, Operation::Alter, ResourceKind::Group, group_id)?;
        self.check(caller, Operation::Read, ResourceKind::Topic, topic)?;
        self.groups.check_resettable(group_id)?;
        let topic = self.broker.topic(topic)?;
        let mut offsets = Vec::with_capacity(topic.partitions.len());
        for partition in &topic.partitions {
            offsets.push(CommittedOffset {
                partition: TopicPartition::new(topic.record.name.clone(), partition.index),
                offset: resolve(partition, &to).await?,
                metadata: String::new(),
            });
        }
        self.groups
            .reset(&self.broker, group_id, offsets.clone())
            .await?;
        tracing::info!(group = %group_id, topic = %topic.record.name, ?to, "group offsets reset");
        Ok(offsets)
    }
}

/// Where a reset target falls on one partition, within its readable range where this
/// broker leads it. A partition led elsewhere takes only a client-resolved offset.
async fn resolve(partition: &Arc<Partition>, to: &ResetTarget) -> Result<i64, BrokerError> {
    let given = match to {
        ResetTarget::Resolved(offsets) => Some(*offsets.get(&partition.index).ok_or_else(|| {
            BrokerError::InvalidRequest(format!(
                "the reset names no offset for partition {} of topic '{}'; name every partition",
                partition.index, partition.topic
            ))
        })?),
        _ => None,
    };
    if !partition.is_local() || partition.leading_epoch().is_none() {
        return given.ok_or_else(|| {
            BrokerError::InvalidRequest(format!(
                "partition {}-{} is led by another broker, so this coordinator cannot resolve the reset there; send offsets resolved from the leaders (the SDK does in a cluster)",
                partition.topic, partition.index
            ))
        });
    }
    let log = partition.log()?;
    let (start, end) = (log.log_start_offset(), log.high_watermark());
    Ok(match *to {
        ResetTarget::Earliest => start,
        ResetTarget::Latest => end,
        ResetTarget::Offset(o) => o.clamp(start, end.max(start)),
        ResetTarget::Resolved(_) => given.unwrap_or(start).clamp(start, end.max(start)),
        ResetTarget::Timestamp(ts) => {
            let partition = Arc::clone(partition);
            let found = blocking(move || {
                partition
                    .log()?
                    .offset_for_timestamp(ts)
                    .map_err(|e| partition.storage_error(e))
            })
            .await?;
            // Nothing that recent: start after everything there is.
            found.map_or(end, |(offset, _)| offset)
        }
    })
}
