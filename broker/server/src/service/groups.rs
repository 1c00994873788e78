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
use crate::error::BrokerError;
use crate::partition::Partition;

impl BrokerService {
    /// Joins (or rejoins) a group; answers once the rebalance this join is part of
    /// completes, or the broker shuts down.
    pub async fn join_group(&self, req: JoinRequest) -> Result<Joined, BrokerError> {
        self.groups.join(&self.broker, req, &self.shutdown).await
    }

    /// The caller's assignment in the current generation.
    pub fn sync_group(&self, req: &SyncRequest) -> Result<Vec<TopicPartition>, BrokerError> {
        self.groups.sync(req)
    }

    /// Keeps a member's session alive; an error says it must rejoin.
    pub fn heartbeat(&self, req: &HeartbeatRequest) -> Result<(), BrokerError> {
        self.groups.heartbeat(req)
    }

    /// Removes a member at once, starting a rebalance for the rest.
    pub fn leave_group(&self, req: &LeaveRequest) -> Result<(), BrokerError> {
        self.groups.leave(&self.broker, req)
    }

    /// Commits offsets; answered only once they are durable in `__consumer_offsets`.
    pub async fn commit_offsets(&self, req: CommitRequest) -> Result<(), BrokerError> {
        self.groups.commit(&self.broker, req).await
    }

    /// A group's committed offsets, for the named partitions or all of them.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Vec<CommittedOffset> {
        self.groups.fetch_offsets(group_id, partitions)
    }

    /// Every group the coordinator knows.
    pub fn list_groups(&self) -> Vec<GroupSummary> {
        self.groups.list()
    }

    /// The coordinator's description with each partition's end offset and the group's
    /// lag on it.
    pub fn describe_group(&self, group_id: &str) -> Result<DescribedGroup, BrokerError> {
        let group: GroupDescription = self.groups.describe(group_id)?;
        let lag = group
            .offsets
            .iter()
            .map(|row| {
                let tp = &row.partition;
                let end_offset = self
                    .broker
                    .partition(&tp.topic, tp.partition)
                    .and_then(|p| p.log())
                    .map_or(-1, |log| log.high_watermark());
                PartitionLag {
                    partition: tp.clone(),
                    committed: row.committed,
                    end_offset,
                    lag: match row.committed {
                        Some(c) if end_offset >= 0 => Some((end_offset - c).max(0)),
                        _ => None,
                    },
                }
            })
            .collect();
        Ok(DescribedGroup { group, lag })
    }

    /// Deletes an empty group and its committed offsets.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), BrokerError> {
        self.groups.delete(&self.broker, group_id).await?;
        tracing::info!(group = %group_id, "consumer group deleted");
        Ok(())
    }

    /// Resolves `to` on every partition of `topic` and commits it for the group.
    /// Refused while the group has members, checked before reading any partition; the
    /// coordinator checks again when it applies the offsets, in case one joined meanwhile.
    pub async fn reset_group_offsets(
        &self,
        group_id: &str,
        topic: &str,
        to: ResetTarget,
    ) -> Result<Vec<CommittedOffset>, BrokerError> {
        self.groups.check_resettable(group_id)?;
        let topic = self.broker.topic(topic)?;
        let mut offsets = Vec::with_capacity(topic.partitions.len());
        for partition in &topic.partitions {
            offsets.push(CommittedOffset {
                partition: TopicPartition::new(topic.record.name.clone(), partition.index),
                offset: resolve(partition, to).await?,
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

/// Where a reset target falls on one partition, always within its readable range.
async fn resolve(partition: &Arc<Partition>, to: ResetTarget) -> Result<i64, BrokerError> {
    let log = partition.log()?;
    let (start, end) = (log.log_start_offset(), log.high_watermark());
    Ok(match to {
        ResetTarget::Earliest => start,
        ResetTarget::Latest => end,
        ResetTarget::Offset(o) => o.clamp(start, end.max(start)),
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
