//! Topic administration and the cluster view clients route by.

use super::BrokerService;
use super::types::{
    BrokerAddress, ClusterView, NewTopic, PartitionRoute, TopicInfo, TopicRoute, TopicSummary,
};
use crate::auth::Caller;
use crate::broker::TopicRecord;
use crate::error::BrokerError;
use quiver_metadata::{Operation, ResourceKind};

impl BrokerService {
    /// Starts moving a partition to `replicas` (see [`Broker::reassign_partition`]).
    /// Administrators only: it moves data between brokers.
    pub async fn reassign_partition(
        &self,
        caller: &Caller,
        topic: &str,
        partition: u32,
        replicas: Vec<u32>,
    ) -> Result<(), BrokerError> {
        self.check(caller, Operation::Alter, ResourceKind::Cluster, "*")?;
        self.broker
            .reassign_partition(topic, partition, replicas.clone())
            .await?;
        tracing::info!(%topic, partition, ?replicas, "partition reassignment started");
        Ok(())
    }

    /// Creates a topic and answers with its description.
    pub async fn create_topic(
        &self,
        caller: &Caller,
        new: NewTopic,
    ) -> Result<TopicInfo, BrokerError> {
        self.check(caller, Operation::Create, ResourceKind::Topic, &new.name)?;
        let topic = self
            .broker
            .create_topic(TopicRecord {
                name: new.name,
                partitions: new.partitions,
                replication_factor: new.replication_factor,
                configs: new.configs,
                internal: false,
            })
            .await?;
        tracing::info!(topic = %topic.record.name, partitions = topic.record.partitions, "topic created");
        Ok(self.broker.describe(&topic))
    }

    /// Deletes a topic and its data.
    pub async fn delete_topic(&self, caller: &Caller, name: &str) -> Result<(), BrokerError> {
        self.check(caller, Operation::Delete, ResourceKind::Topic, name)?;
        self.broker.delete_topic(name).await?;
        tracing::info!(topic = %name, "topic deleted");
        Ok(())
    }

    /// Every topic the caller may describe, internal ones included.
    pub fn list_topics(&self, caller: &Caller) -> Vec<TopicSummary> {
        self.broker
            .topics()
            .iter()
            .filter(|t| {
                self.may(
                    caller,
                    Operation::Describe,
                    ResourceKind::Topic,
                    &t.record.name,
                )
            })
            .map(|t| TopicSummary {
                name: t.record.name.clone(),
                partitions: t.record.partitions,
                replication_factor: t.record.replication_factor,
                internal: t.record.internal,
            })
            .collect()
    }

    /// One topic with its effective configs and every partition's state.
    pub fn describe_topic(&self, caller: &Caller, name: &str) -> Result<TopicInfo, BrokerError> {
        self.check(caller, Operation::Describe, ResourceKind::Topic, name)?;
        let topic = self.broker.topic(name)?;
        Ok(self.broker.describe(&topic))
    }

    /// Sets and removes configs of a topic; answers with its new description.
    pub async fn alter_topic(
        &self,
        caller: &Caller,
        name: &str,
        set: std::collections::BTreeMap<String, String>,
        delete: Vec<String>,
    ) -> Result<TopicInfo, BrokerError> {
        self.check(caller, Operation::Alter, ResourceKind::Topic, name)?;
        // Internal topics are the broker's: a client reconfiguring `__consumer_offsets`
        // (say, to delete by age) could wipe every group's offsets.
        if self.broker.topic(name)?.record.internal {
            return Err(BrokerError::InvalidRequest(format!(
                "topic '{name}' is internal to the broker; clients cannot alter it"
            )));
        }
        let topic = self.broker.alter_topic(name, set, delete).await?;
        Ok(self.broker.describe(&topic))
    }

    /// The brokers and the leaders of the named topics (all topics for `None`).
    pub fn cluster_view(
        &self,
        caller: &Caller,
        topics: Option<&[String]>,
    ) -> Result<ClusterView, BrokerError> {
        let b = &self.broker;
        // Named topics must be describable; without names, the describable ones are listed.
        let topics = match topics {
            None => b
                .topics()
                .into_iter()
                .filter(|t| {
                    self.may(
                        caller,
                        Operation::Describe,
                        ResourceKind::Topic,
                        &t.record.name,
                    )
                })
                .collect(),
            Some(names) => names
                .iter()
                .map(|n| {
                    self.check(caller, Operation::Describe, ResourceKind::Topic, n)?;
                    b.topic(n)
                })
                .collect::<Result<Vec<_>, _>>()?,
        };
        let image = b.metadata.image();
        let node = b.config.node_id;
        Ok(ClusterView {
            cluster_id: "quiver-single-node".to_string(),
            controller: node,
            brokers: image
                .brokers()
                .map(|r| BrokerAddress {
                    id: r.broker_id,
                    address: if r.broker_id == node {
                        b.advertised.clone()
                    } else {
                        r.listener.clone()
                    },
                })
                .collect(),
            topics: topics
                .iter()
                .map(|t| TopicRoute {
                    name: t.record.name.clone(),
                    partitioner: t.config.partitioner.clone(),
                    partitions: t
                        .partitions
                        .iter()
                        .map(|p| {
                            let placed = image.partition(&t.record.name, p.index);
                            PartitionRoute {
                                partition: p.index,
                                leader: placed.and_then(|a| a.leader).unwrap_or(node),
                                leader_epoch: placed.map_or(0, |a| {
                                    i32::try_from(a.leader_epoch).unwrap_or(i32::MAX)
                                }),
                            }
                        })
                        .collect(),
                })
                .collect(),
        })
    }
}
