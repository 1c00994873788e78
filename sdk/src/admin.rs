//! [`Admin`]: topics, their configs and offset look-ups.

use std::collections::BTreeMap;

use bytes::Bytes;
use quiver_proto::api::{
    AlterTopicConfigRequest, CreateTopicRequest, DeleteTopicRequest, DescribeTopicRequest,
    ListOffsetsRequest, ListOffsetsResponse, ListTopicsRequest, OffsetSpec, TopicDescription,
    TopicSummary,
};

use crate::{Client, Error};

/// Topic administration over a [`Client`]'s connection. Get one with [`Client::admin`].
#[derive(Debug, Clone)]
pub struct Admin {
    client: Client,
}

impl Admin {
    pub(crate) fn new(client: Client) -> Self {
        Admin { client }
    }

    /// Creates a topic. Configs not given take the broker's defaults; the name must be
    /// 1–249 characters of `[A-Za-z0-9._-]`.
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

    /// A topic's effective configs and the state of each partition.
    pub async fn describe_topic(&self, name: &str) -> Result<TopicDescription, Error> {
        let req = DescribeTopicRequest {
            name: name.to_string(),
        };
        Ok(self.client.call(&req, Bytes::new()).await?.0)
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
        Ok(self.client.call(&req, Bytes::new()).await?.0)
    }
}
