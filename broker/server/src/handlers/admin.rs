//! Topic administration and metadata.

use quiver_proto::api::{
    AlterTopicConfigRequest, BrokerInfo, CreateTopicRequest, DeleteTopicRequest,
    DeleteTopicResponse, DescribeTopicRequest, ListTopicsRequest, ListTopicsResponse,
    MetadataRequest, MetadataResponse, PartitionMetadata, TopicDescription, TopicMetadata,
    TopicSummary,
};

use crate::broker::Broker;
use crate::catalog::TopicRecord;
use crate::error::BrokerError;

pub(super) async fn create(
    b: &Broker,
    req: CreateTopicRequest,
) -> Result<TopicDescription, BrokerError> {
    let topic = b
        .create_topic(TopicRecord {
            name: req.name,
            partitions: req.partitions,
            replication_factor: req.replication_factor,
            configs: req.configs,
            internal: false,
        })
        .await?;
    tracing::info!(topic = %topic.record.name, partitions = topic.record.partitions, "topic created");
    Ok(b.describe(&topic))
}

pub(super) async fn delete(
    b: &Broker,
    req: DeleteTopicRequest,
) -> Result<DeleteTopicResponse, BrokerError> {
    b.delete_topic(&req.name).await?;
    tracing::info!(topic = %req.name, "topic deleted");
    Ok(DeleteTopicResponse {})
}

pub(super) async fn list(
    b: &Broker,
    _req: ListTopicsRequest,
) -> Result<ListTopicsResponse, BrokerError> {
    Ok(ListTopicsResponse {
        topics: b
            .topics()
            .iter()
            .map(|t| TopicSummary {
                name: t.record.name.clone(),
                partitions: t.record.partitions,
                replication_factor: t.record.replication_factor,
                internal: t.record.internal,
            })
            .collect(),
    })
}

pub(super) async fn describe(
    b: &Broker,
    req: DescribeTopicRequest,
) -> Result<TopicDescription, BrokerError> {
    let topic = b.topic(&req.name)?;
    Ok(b.describe(&topic))
}

pub(super) async fn alter(
    b: &Broker,
    req: AlterTopicConfigRequest,
) -> Result<TopicDescription, BrokerError> {
    let topic = b.alter_topic(&req.name, req.set, req.delete).await?;
    Ok(b.describe(&topic))
}

pub(super) async fn metadata(
    b: &Broker,
    req: MetadataRequest,
) -> Result<MetadataResponse, BrokerError> {
    let topics = match req.topics {
        None => b.topics(),
        Some(names) => names
            .iter()
            .map(|n| b.topic(n))
            .collect::<Result<Vec<_>, _>>()?,
    };
    let node = b.config.node_id;
    Ok(MetadataResponse {
        cluster_id: "quiver-single-node".to_string(),
        controller: node,
        brokers: vec![BrokerInfo {
            id: node,
            address: b.advertised.clone(),
        }],
        topics: topics
            .iter()
            .map(|t| TopicMetadata {
                name: t.record.name.clone(),
                partitioner: t.config.partitioner.clone(),
                partitions: t
                    .partitions
                    .iter()
                    .map(|p| PartitionMetadata {
                        partition: p.index,
                        leader: node,
                        leader_epoch: 0,
                    })
                    .collect(),
            })
            .collect(),
    })
}
