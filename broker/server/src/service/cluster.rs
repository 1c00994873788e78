//! `quiver cluster status`: the brokers, the metadata quorum and the partitions that need
//! an operator, as the answering broker's applied metadata has them; and
//! `quiver cluster remove`, which takes a drained broker out of the cluster.

use quiver_metadata::{MetadataRecord, Operation, ResourceKind, UnregisterBroker};
use quiver_quorum::Role;

use super::BrokerService;
use super::types::{ClusterStatus, QuorumView, RegisteredBroker};
use crate::auth::Caller;
use crate::error::BrokerError;

impl BrokerService {
    /// Takes broker `broker_id` out of the cluster for good: the metadata forgets it
    /// (refused while any partition has a replica on it) and, an observer, it leaves
    /// the metadata quorum. Voters are fixed by `cluster.voters` and refused.
    /// Administrators only. Idempotent: a broker already forgotten by the metadata but
    /// still an observer is taken out of the quorum.
    pub async fn unregister_broker(
        &self,
        caller: &Caller,
        broker_id: u32,
    ) -> Result<(), BrokerError> {
        self.check(caller, Operation::Alter, ResourceKind::Cluster, "*")?;
        let b = &self.broker;
        let Some(quorum) = b.metadata.quorum().cloned() else {
            return Err(BrokerError::InvalidRequest(
                "a single node has one broker: there is no other to remove".into(),
            ));
        };
        let status = quorum.status();
        let id = u64::from(broker_id);
        if status.voters.contains(&id) {
            return Err(BrokerError::InvalidRequest(format!(
                "broker {broker_id} is a voter of the metadata quorum; voters are fixed by cluster.voters and cannot be removed"
            )));
        }
        let registered = b.metadata.image().broker(broker_id).is_some();
        if registered {
            let record = MetadataRecord::UnregisterBroker(UnregisterBroker { broker_id });
            let _guard = b.admin.lock().await;
            let metadata = std::sync::Arc::clone(&b.metadata);
            super::blocking(move || metadata.append(&record).map(|_| ())).await?;
        } else if !status.learners.contains(&id) {
            return Err(BrokerError::Metadata(
                quiver_metadata::MetadataError::UnknownBroker { broker_id },
            ));
        }
        quorum
            .remove_observer(id)
            .await
            .map_err(BrokerError::Quorum)?;
        tracing::info!(broker = broker_id, "broker removed from the cluster");
        Ok(())
    }

    /// The cluster's state from this broker's point of view. Needs describe on the
    /// cluster.
    pub fn cluster_status(&self, caller: &Caller) -> Result<ClusterStatus, BrokerError> {
        self.check(caller, Operation::Describe, ResourceKind::Cluster, "*")?;
        let b = &self.broker;
        let image = b.metadata.image();
        let quorum = b.metadata.quorum().map(|q| {
            let s = q.status();
            // Voter ids are broker ids, which the config bounds to 31 bits.
            let id = |n: u64| u32::try_from(n).unwrap_or(u32::MAX);
            QuorumView {
                leader: s.leader.map(id),
                term: s.term,
                voters: s.voters.into_iter().map(id).collect(),
                role: match s.role {
                    Role::Leader => "leader",
                    Role::Follower => "follower",
                    Role::Candidate => "candidate",
                    Role::Learner => "observer",
                    Role::Other => "other",
                },
            }
        });
        let brokers = image
            .brokers()
            .map(|r| RegisteredBroker {
                broker_id: r.broker_id,
                address: r.listener.clone(),
                epoch: r.epoch,
                fenced: r.fenced,
            })
            .collect();
        let (mut offline, mut under_replicated, mut partitions) = (Vec::new(), Vec::new(), 0);
        for topic in image.topics() {
            for (index, placed) in topic.partitions.iter().enumerate() {
                let index = u32::try_from(index).unwrap_or(u32::MAX);
                partitions += 1;
                let tp = quiver_group::TopicPartition::new(topic.name.clone(), index);
                // Without a leader nobody serves it; a leader here whose log could not
                // open does not serve it either.
                let quarantined = b
                    .partition(&topic.name, index)
                    .is_ok_and(|p| p.offline_reason().is_some());
                if placed.leader.is_none() || quarantined {
                    offline.push(tp);
                } else if placed.isr.len() < placed.replicas.len() {
                    under_replicated.push(tp);
                }
            }
        }
        Ok(ClusterStatus {
            node_id: b.config.node_id,
            quorum,
            brokers,
            metadata_applied: image.last_applied(),
            offline,
            under_replicated,
            partitions,
        })
    }
}
