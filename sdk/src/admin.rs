//! [`Admin`]: topics, their configs, offset look-ups, consumer groups and Wasm plugins
//! (access rules and tokens are in `access.rs`).

use std::collections::BTreeMap;

use bytes::Bytes;
use quiver_proto::api::{
    AlterTopicConfigRequest, CommittedOffset, CreateTopicRequest, DeleteGroupRequest,
    DeleteTopicRequest, DescribeGroupRequest, DescribeTopicRequest, GroupDescription, GroupSummary,
    ListGroupsRequest, ListOffsetsRequest, ListOffsetsResponse, ListTopicsRequest,
    OffsetFetchRequest, OffsetSpec, PartitionDescription, PluginAddRequest, PluginAddResponse,
    PluginDescribeRequest, PluginDescription, PluginLimitsSpec, PluginListRequest,
    PluginLogsRequest, PluginLogsResponse, PluginRemoveRequest, PluginRemoveResponse,
    PluginTestRequest, PluginTestResponse, ReopenPartitionRequest, ResetGroupOffsetsRequest,
    ResetTarget, TopicDescription, TopicSummary,
};

use crate::client::GroupCall;
use crate::{Client, Error};

/// How long [`Admin::add_plugin`] waits for the broker to validate and compile an
/// uploaded component (or the client's request timeout, if that is longer).
pub const PLUGIN_ADD_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(300);

/// Topic administration over a [`Client`]'s connection. Get one with [`Client::admin`].
#[derive(Debug, Clone)]
pub struct Admin {
    pub(crate) client: Client,
}

impl Admin {
    pub(crate) fn new(client: Client) -> Self {
        Admin { client }
    }

    /// Creates a topic. Configs not given take the broker's defaults; the name must be
    /// 1–249 characters of `[A-Za-z0-9._-]`. A `replication_factor` of 0 takes the
    /// cluster's default (1 on a single node).
    pub async fn create_topic(
        &self,
        name: &str,
        partitions: u32,
        replication_factor: u16,
        configs: BTreeMap<String, String>,
    ) -> Result<TopicDescription, Error> {
        quiver_proto::topic_name::validate(name).map_err(Error::Config)?;
        let req = CreateTopicRequest {
            name: name.to_string(),
            partitions,
            replication_factor,
            configs,
        };
        let (desc, _) = self.client.call(&req, Bytes::new()).await?;
        self.client.invalidate_metadata(name);
        Ok(desc)
    }

    /// Deletes a topic and all its data.
    pub async fn delete_topic(&self, name: &str) -> Result<(), Error> {
        let req = DeleteTopicRequest {
            name: name.to_string(),
        };
        self.client.call(&req, Bytes::new()).await?;
        self.client.invalidate_metadata(name);
        Ok(())
    }

    /// Every topic, internal ones included (and marked).
    pub async fn list_topics(&self) -> Result<Vec<TopicSummary>, Error> {
        let (resp, _) = self
            .client
            .call(&ListTopicsRequest {}, Bytes::new())
            .await?;
        Ok(resp.topics)
    }

    /// The cluster as the broker this client talks to sees it: the metadata quorum and
    /// its leader, the registered brokers, and the offline and under-replicated
    /// partitions. Needs describe on the cluster.
    pub async fn cluster_status(&self) -> Result<quiver_proto::api::ClusterStatusResponse, Error> {
        let req = quiver_proto::api::ClusterStatusRequest {};
        Ok(self.client.call(&req, Bytes::new()).await?.0)
    }

    /// A topic's effective configs and the state of each partition. In a cluster the
    /// broker asked measures the logs it holds; the offsets and sizes of the others
    /// come from their leaders (one request per leader), and stay -1 where a leader
    /// cannot be asked.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, Error> {
        let req = DescribeTopicRequest {
            name: name.to_string(),
        };
        let mut topic = self.client.call(&req, Bytes::new()).await?.0;
        let mut asked = std::collections::BTreeSet::new();
        let unmeasured = |p: &quiver_proto::api::PartitionDescription| {
            p.high_watermark < 0 && p.offline.is_none()
        };
        while let Some(first) = topic
            .partitions
            .iter()
            .find(|p| unmeasured(p) && !asked.contains(&p.leader))
        {
            let (leader, partition) = (first.leader, first.partition);
            asked.insert(leader);
            let Ok(client) = self.client.leader_for(name, partition).await else {
                continue;
            };
            let Ok((theirs, _)) = client.call(&req, Bytes::new()).await else {
                continue;
            };
            for p in topic.partitions.iter_mut().filter(|p| p.leader == leader) {
                if let Some(t) = theirs
                    .partitions
                    .iter()
                    .find(|t| t.partition == p.partition)
                    && unmeasured(p)
                {
                    p.log_start_offset = t.log_start_offset;
                    p.high_watermark = t.high_watermark;
                    p.size_bytes = t.size_bytes;
                    p.segments = t.segments;
                }
            }
        }
        Ok(topic)
    }

    /// Re-runs recovery on one partition and swaps the recovered log in, without
    /// restarting the broker: for a partition that is offline (its log could not be
    /// opened; `describe_topic` shows why) or locked after a failed write or fsync, once
    /// the cause is fixed. A healthy partition may be reopened too; it just recovers
    /// again. Answers with the partition's state afterwards; a broker error with code
    /// `PARTITION_OFFLINE` names why it still cannot open.
    pub async fn reopen_partition(
        &self,
        topic: &str,
        partition: u32,
    ) -> Result<PartitionDescription, Error> {
        let req = ReopenPartitionRequest {
            topic: topic.to_string(),
            partition,
        };
        Ok(self.client.call(&req, Bytes::new()).await?.0)
    }

    /// Starts moving partition `partition` of `topic` to the brokers `replicas` (the
    /// first one is its preferred leader). The brokers added copy the log; once all of
    /// `replicas` are in sync the partition switches to exactly them. Returns once the
    /// move has started; [`describe_topic`](Self::describe_topic) shows it finish.
    pub async fn reassign_partition(
        &self,
        topic: &str,
        partition: u32,
        replicas: Vec<u32>,
    ) -> Result<(), Error> {
        let req = quiver_proto::api::ReassignPartitionRequest {
            topic: topic.to_string(),
            partition,
            replicas,
        };
        self.client.call(&req, Bytes::new()).await?;
        Ok(())
    }

    /// Takes broker `broker_id` out of the cluster for good: the metadata forgets it and
    /// an observer leaves the metadata quorum. Refused while it holds any replica (move
    /// them first, as `quiver cluster drain` does) and for a voter. Stop the broker's
    /// process afterwards; started again, it would join and register anew.
    pub async fn unregister_broker(&self, broker_id: u32) -> Result<(), Error> {
        let req = quiver_proto::api::UnregisterBrokerRequest { broker_id };
        self.client.call(&req, Bytes::new()).await?;
        Ok(())
    }

    /// Sets the configs in `set` and removes those in `delete` (they fall back to the
    /// broker's defaults). Returns the topic as it is afterwards.
    pub async fn alter_topic_config(
        &self,
        name: &str,
        set: BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<TopicDescription, Error> {
        let req = AlterTopicConfigRequest {
            name: name.to_string(),
            set,
            delete,
        };
        let (desc, _) = self.client.call(&req, Bytes::new()).await?;
        // A changed partitioner changes how producers route: drop what they cached.
        self.client.invalidate_metadata(name);
        Ok(desc)
    }

    /// Looks up an offset of a partition: its start, its end, or the first at or after a
    /// timestamp.
    pub async fn list_offsets(
        &self,
        topic: &str,
        partition: u32,
        spec: OffsetSpec,
    ) -> Result<ListOffsetsResponse, Error> {
        let req = ListOffsetsRequest {
            topic: topic.to_string(),
            partition,
            spec,
        };
        // Asked of the partition's leader, followed when it moves.
        self.client.call_leader(topic, partition, &req).await
    }

    /// Every consumer group of the cluster, sorted by id. Each broker lists the groups
    /// it coordinates, so in a cluster every broker is asked. A broker that cannot be
    /// reached is left out with a warning: once the cluster has fenced it, its groups
    /// are coordinated (and listed) by the brokers that took over its partitions.
    pub async fn list_groups(&self) -> Result<Vec<GroupSummary>, Error> {
        let brokers = self.client.every_broker().await?;
        let single = brokers.len() == 1;
        let mut groups = Vec::new();
        for broker in brokers {
            match broker.call(&ListGroupsRequest {}, Bytes::new()).await {
                Ok((resp, _)) => groups.extend(resp.groups),
                Err(e) if !single && e.code().is_none() => {
                    tracing::warn!(broker = %broker.url(), error = %e, "cannot list the groups of an unreachable broker");
                }
                Err(e) => return Err(e),
            }
        }
        groups.sort_by(|a, b| a.group_id.cmp(&b.group_id));
        groups.dedup_by(|a, b| a.group_id == b.group_id);
        Ok(groups)
    }

    /// A group's members and their partitions, and per partition its committed offset,
    /// end offset and lag. Fails with `UNKNOWN_GROUP` for a group the broker does not know.
    pub async fn describe_group(&self, group_id: &str) -> Result<GroupDescription, Error> {
        let req = DescribeGroupRequest {
            group_id: group_id.to_string(),
        };
        let mut group = self
            .client
            .call_group(group_id, &req, GroupCall::Retried)
            .await?;
        // The coordinator knows the end offsets of the partitions it holds; the others'
        // come from their leaders.
        for row in group.offsets.iter_mut().filter(|r| r.end_offset < 0) {
            let tp = &row.partition;
            let Ok(ListOffsetsResponse {
                offset: Some(end), ..
            }) = self
                .list_offsets(&tp.topic, tp.partition, OffsetSpec::Latest)
                .await
            else {
                continue;
            };
            row.end_offset = end;
            row.lag = row.committed.map(|c| (end - c).max(0));
        }
        Ok(group)
    }

    /// A group's committed offsets, sorted by partition.
    pub async fn group_offsets(&self, group_id: &str) -> Result<Vec<CommittedOffset>, Error> {
        let req = OffsetFetchRequest {
            group_id: group_id.to_string(),
            partitions: None,
        };
        Ok(self
            .client
            .call_group(group_id, &req, GroupCall::Retried)
            .await?
            .offsets)
    }

    /// Deletes a group and its committed offsets. Refused with `GROUP_NOT_EMPTY` while
    /// it has members.
    pub async fn delete_group(&self, group_id: &str) -> Result<(), Error> {
        let req = DeleteGroupRequest {
            group_id: group_id.to_string(),
        };
        self.client
            .call_group(group_id, &req, GroupCall::Retried)
            .await?;
        Ok(())
    }

    /// Moves a group's committed offsets on every partition of `topic`, and returns
    /// them. Refused with `GROUP_NOT_EMPTY` while the group has members.
    ///
    /// In a cluster the group's coordinator may lead none of the topic's partitions, so
    /// the target is first resolved on each partition by its leader and the coordinator
    /// is sent the offsets.
    pub async fn reset_group_offsets(
        &self,
        group_id: &str,
        topic: &str,
        to: ResetTarget,
    ) -> Result<Vec<CommittedOffset>, Error> {
        let meta = self.client.topic_metadata(topic).await?;
        let to = if self.client.broker_count() > 1 {
            let mut resolved = Vec::with_capacity(meta.partitions.len());
            for p in &meta.partitions {
                resolved.push((p.partition, self.resolve(topic, p.partition, &to).await?));
            }
            ResetTarget::Resolved(resolved)
        } else {
            to
        };
        let req = ResetGroupOffsetsRequest {
            group_id: group_id.to_string(),
            topic: topic.to_string(),
            to,
        };
        Ok(self
            .client
            .call_group(group_id, &req, GroupCall::Retried)
            .await?
            .offsets)
    }

    /// Where `to` falls on one partition, as its leader answers: within the partition's
    /// range, and its end when no record is as recent as a timestamp.
    async fn resolve(&self, topic: &str, partition: u32, to: &ResetTarget) -> Result<i64, Error> {
        let at = |spec| self.list_offsets(topic, partition, spec);
        let start =
            || async { Ok::<_, Error>(at(OffsetSpec::Earliest).await?.offset.unwrap_or(0)) };
        let end = || async { Ok::<_, Error>(at(OffsetSpec::Latest).await?.offset.unwrap_or(0)) };
        Ok(match to {
            ResetTarget::Earliest => start().await?,
            ResetTarget::Latest => end().await?,
            ResetTarget::Offset(o) => {
                let (start, end) = (start().await?, end().await?);
                (*o).clamp(start, end.max(start))
            }
            ResetTarget::Timestamp(ts) => match at(OffsetSpec::Timestamp(*ts)).await?.offset {
                Some(offset) => offset,
                None => end().await?,
            },
            ResetTarget::Resolved(offsets) => offsets
                .iter()
                .find(|(p, _)| *p == partition)
                .map(|(_, o)| *o)
                .ok_or_else(|| {
                    Error::Config(format!(
                        "the reset names no offset for partition {partition} of topic '{topic}'"
                    ))
                })?,
        })
    }

    /// Uploads `component` (the WebAssembly component's bytes) as the next version of
    /// plugin `name`. The broker detects its kind from its exports, validates it and makes
    /// it current: topics bound to `name` without a version switch to it at once.
    /// Fails with `INVALID_PLUGIN` naming what is wrong (for example a missing export).
    pub async fn add_plugin(
        &self,
        name: &str,
        component: impl Into<Bytes>,
    ) -> Result<PluginAddResponse, Error> {
        self.add_plugin_with_limits(name, component, PluginLimitsSpec::default())
            .await
    }

    /// [`add_plugin`](Self::add_plugin), setting the plugin's per-call time and memory
    /// limits. A limit left `None` is the previous version's, or the broker's default
    /// when no version set it. Out of bounds (10 ms to 60 s, 1 MiB to 4 GiB) is refused
    /// with `INVALID_CONFIG` naming the setting.
    pub async fn add_plugin_with_limits(
        &self,
        name: &str,
        component: impl Into<Bytes>,
        limits: PluginLimitsSpec,
    ) -> Result<PluginAddResponse, Error> {
        let req = PluginAddRequest {
            name: name.to_string(),
            kind: None,
            limits,
        };
        // The broker validates and compiles the component before it answers: a large
        // one (a Python component is tens of MB) can take longer than a usual request.
        let after = self
            .client
            .options()
            .request_timeout
            .max(PLUGIN_ADD_TIMEOUT);
        self.client
            .call_with_payload_within(&req, component.into(), after)
            .await
    }

    /// Every registered plugin, sorted by name.
    pub async fn list_plugins(&self) -> Result<Vec<PluginDescription>, Error> {
        let (resp, _) = self
            .client
            .call(&PluginListRequest {}, Bytes::new())
            .await?;
        Ok(resp.plugins)
    }

    /// One plugin: its stored versions, the current one, and the topics bound to it.
    /// Fails with `UNKNOWN_PLUGIN` for a name the broker does not know.
    pub async fn describe_plugin(&self, name: &str) -> Result<PluginDescription, Error> {
        let req = PluginDescribeRequest {
            name: name.to_string(),
        };
        Ok(self.client.call(&req, Bytes::new()).await?.0)
    }

    /// Removes one version of a plugin, or all of them when `version` is `None`.
    /// Refused with `PLUGIN_IN_USE` while a topic's `partitioner` or `compaction.policy`
    /// names it, unless `force`.
    pub async fn remove_plugin(
        &self,
        name: &str,
        version: Option<u32>,
        force: bool,
    ) -> Result<PluginRemoveResponse, Error> {
        let req = PluginRemoveRequest {
            name: name.to_string(),
            version,
            force,
        };
        Ok(self.client.call(&req, Bytes::new()).await?.0)
    }

    /// Runs a plugin over stored records of a partition and returns what it decided for
    /// each, without binding it or changing any data.
    pub async fn test_plugin(&self, req: PluginTestRequest) -> Result<PluginTestResponse, Error> {
        Ok(self.client.call(&req, Bytes::new()).await?.0)
    }

    /// A plugin's log entries from sequence number `since_seq`. With `follow`, the broker
    /// waits a bounded time for new entries when there are none; ask again from the
    /// response's `next_seq`.
    pub async fn plugin_logs(
        &self,
        name: &str,
        since_seq: u64,
        follow: bool,
    ) -> Result<PluginLogsResponse, Error> {
        let req = PluginLogsRequest {
            name: name.to_string(),
            follow,
            since_seq,
        };
        Ok(self.client.call(&req, Bytes::new()).await?.0)
    }
}
