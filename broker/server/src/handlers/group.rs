//! Consumer groups: join, sync, heartbeat, leave, offset commit and fetch, and the
//! admin requests (list, describe, delete, reset offsets). Membership and offsets live in
//! [`GroupService`](crate::groups::GroupService); this file adds what needs the
//! partition logs: end offsets and lag, and reset targets.

use std::sync::Arc;

use quiver_proto::api::{
    CommittedOffset, DeleteGroupRequest, DeleteGroupResponse, DescribeGroupRequest,
    GroupDescription, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest, JoinGroupResponse,
    LeaveGroupRequest, LeaveGroupResponse, ListGroupsRequest, ListGroupsResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetFetchRequest, OffsetFetchResponse,
    ResetGroupOffsetsRequest, ResetGroupOffsetsResponse, ResetTarget, SyncGroupRequest,
    SyncGroupResponse,
};

use super::group_convert as convert;
use crate::error::BrokerError;
use crate::listener::Context;
use crate::partition::Partition;

pub(super) async fn join(
    ctx: &Context,
    req: JoinGroupRequest,
) -> Result<JoinGroupResponse, BrokerError> {
    let joined = ctx
        .groups
        .join(&ctx.broker, convert::join_request(req), &ctx.shutdown)
        .await?;
    Ok(convert::join_response(joined))
}

pub(super) async fn sync(
    ctx: &Context,
    req: SyncGroupRequest,
) -> Result<SyncGroupResponse, BrokerError> {
    let assignment = ctx.groups.sync(&convert::sync_request(req))?;
    Ok(convert::sync_response(assignment))
}

pub(super) async fn heartbeat(
    ctx: &Context,
    req: HeartbeatRequest,
) -> Result<HeartbeatResponse, BrokerError> {
    ctx.groups.heartbeat(&convert::heartbeat_request(req))?;
    Ok(HeartbeatResponse {})
}

pub(super) async fn leave(
    ctx: &Context,
    req: LeaveGroupRequest,
) -> Result<LeaveGroupResponse, BrokerError> {
    ctx.groups
        .leave(&ctx.broker, &convert::leave_request(req))?;
    Ok(LeaveGroupResponse {})
}

pub(super) async fn commit(
    ctx: &Context,
    req: OffsetCommitRequest,
) -> Result<OffsetCommitResponse, BrokerError> {
    let req = convert::commit_request(req)?;
    ctx.groups.commit(&ctx.broker, req).await?;
    Ok(OffsetCommitResponse {})
}

pub(super) async fn fetch_offsets(
    ctx: &Context,
    req: OffsetFetchRequest,
) -> Result<OffsetFetchResponse, BrokerError> {
    let partitions = convert::fetch_partitions(&req);
    let offsets = ctx
        .groups
        .fetch_offsets(&req.group_id, partitions.as_deref());
    Ok(convert::offset_fetch_response(offsets))
}

pub(super) async fn list(
    ctx: &Context,
    _req: ListGroupsRequest,
) -> Result<ListGroupsResponse, BrokerError> {
    Ok(convert::list_response(ctx.groups.list()))
}

/// The coordinator's description with each partition's end offset and the group's lag.
pub(super) async fn describe(
    ctx: &Context,
    req: DescribeGroupRequest,
) -> Result<GroupDescription, BrokerError> {
    let mut desc = convert::group_description(ctx.groups.describe(&req.group_id)?);
    for row in &mut desc.offsets {
        let tp = &row.partition;
        row.end_offset = ctx
            .broker
            .partition(&tp.topic, tp.partition)
            .map_or(-1, |p| p.log().high_watermark());
        row.lag = match row.committed {
            Some(committed) if row.end_offset >= 0 => Some((row.end_offset - committed).max(0)),
            _ => None,
        };
    }
    Ok(desc)
}

pub(super) async fn delete(
    ctx: &Context,
    req: DeleteGroupRequest,
) -> Result<DeleteGroupResponse, BrokerError> {
    ctx.groups.delete(&ctx.broker, &req.group_id).await?;
    tracing::info!(group = %req.group_id, "consumer group deleted");
    Ok(DeleteGroupResponse {})
}

/// Resolves the target on every partition of the topic and commits it for the group.
/// Refused while the group has members, checked before reading any partition; the
/// coordinator checks again when it applies the offsets, in case one joined meanwhile.
pub(super) async fn reset_offsets(
    ctx: &Context,
    req: ResetGroupOffsetsRequest,
) -> Result<ResetGroupOffsetsResponse, BrokerError> {
    ctx.groups.check_resettable(&req.group_id)?;
    let topic = ctx.broker.topic(&req.topic)?;
    let mut offsets = Vec::with_capacity(topic.partitions.len());
    for partition in &topic.partitions {
        offsets.push(CommittedOffset {
            partition: quiver_proto::api::TopicPartition::new(req.topic.clone(), partition.index),
            offset: resolve(partition, req.to).await?,
            metadata: String::new(),
        });
    }
    let resolved = offsets
        .iter()
        .cloned()
        .map(convert::committed_offset)
        .collect();
    ctx.groups
        .reset(&ctx.broker, &req.group_id, resolved)
        .await?;
    tracing::info!(group = %req.group_id, topic = %req.topic, to = ?req.to, "group offsets reset");
    Ok(ResetGroupOffsetsResponse { offsets })
}

/// Where a reset target falls on one partition, always within its readable range.
async fn resolve(partition: &Arc<Partition>, to: ResetTarget) -> Result<i64, BrokerError> {
    let log = partition.log();
    let (start, end) = (log.log_start_offset(), log.high_watermark());
    Ok(match to {
        ResetTarget::Earliest => start,
        ResetTarget::Latest => end,
        ResetTarget::Offset(o) => o.clamp(start, end.max(start)),
        ResetTarget::Timestamp(ts) => {
            let log = Arc::clone(log);
            let found = tokio::task::spawn_blocking(move || log.offset_for_timestamp(ts))
                .await
                .map_err(|e| BrokerError::Internal(e.to_string()))?
                .map_err(|e| partition.storage_error(e))?;
            // Nothing that recent: start after everything there is.
            found.map_or(end, |(offset, _)| offset)
        }
    })
}
