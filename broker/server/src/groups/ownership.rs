//! Where groups live: the partitions of `__consumer_offsets` this broker coordinates.
//!
//! A group belongs to one partition of the offsets topic, and the leader of that
//! partition coordinates it. Each partition has an [`Owner`] entry saying whether this
//! broker serves its groups now. On a single node every partition is this broker's from
//! the start; in a cluster [`GroupService::run_ownership`] follows the leaderships after
//! every reconcile, replaying a partition this broker starts to lead before serving its
//! groups and forgetting the groups of one it stops leading.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use quiver_group::{OffsetRecord, OffsetRecordError};
use quiver_proto::batch;
use quiver_storage::ReadBound;
use tokio_util::sync::CancellationToken;

use super::{GroupService, OFFSETS_TOPIC, offsets_partition};
use crate::broker::{Broker, Topic, TopicRecord};
use crate::error::BrokerError;
use crate::partition::Partition;
use crate::service::blocking;

/// Bytes read per step while replaying the offsets topic.
const REPLAY_READ_BYTES: usize = 1024 * 1024;
/// How soon an offsets partition led here that could not be loaded is tried again.
const OWNERSHIP_RETRY: Duration = Duration::from_secs(1);

/// This broker's part in one partition of the offsets topic.
#[derive(Debug)]
pub(super) struct Owner {
    pub(super) index: u32,
    pub(super) status: Mutex<Status>,
    /// Held from accepting a commit to settling it after its append, so the log order
    /// of a group's records is the acceptance order and a replay ends with the commit
    /// the coordinator shows; and while the partition's groups are loaded or unloaded.
    pub(super) order: Arc<tokio::sync::Mutex<()>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Status {
    /// Another broker leads the partition (`None`: no leader known).
    Elsewhere { leader: Option<u32> },
    /// This broker leads it and is replaying its commits.
    Loading,
    /// This broker coordinates its groups, as the leader of this epoch.
    Here { leader_epoch: u32 },
}

impl Owner {
    pub(super) fn new(index: u32, status: Status) -> Arc<Owner> {
        Arc::new(Owner {
            index,
            status: Mutex::new(status),
            order: Arc::new(tokio::sync::Mutex::new(())),
        })
    }

    /// `Ok` when this broker coordinates the partition's groups now.
    pub(super) fn check(&self, group_id: &str) -> Result<(), BrokerError> {
        let refused = |leader, loading| BrokerError::NotCoordinator {
            group_id: group_id.to_string(),
            partition: self.index,
            leader,
            loading,
        };
        match *self.status.lock() {
            Status::Here { .. } => Ok(()),
            Status::Loading => Err(refused(None, true)),
            Status::Elsewhere { leader } => Err(refused(leader, false)),
        }
    }

    pub(super) fn set(&self, status: Status) {
        *self.status.lock() = status;
    }
}

/// Where a group's coordinator is, for `FindCoordinator`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CoordinatorAddress {
    pub node_id: u32,
    pub address: String,
    /// The broker asked is the coordinator.
    pub local: bool,
}

impl GroupService {
    /// The offsets topic, created with `replication_factor` replicas when missing.
    pub(super) async fn offsets_topic(
        &self,
        broker: &Broker,
        replication_factor: u16,
    ) -> Result<Arc<Topic>, BrokerError> {
        match broker.topic(OFFSETS_TOPIC) {
            Ok(topic) => return Ok(topic),
            Err(BrokerError::UnknownTopic(_)) => {}
            Err(e) => return Err(e),
        }
        let configs = BTreeMap::from([
            ("cleanup.policy".to_string(), "compact".to_string()),
            // Small segments close often, so compaction has something to clean.
            ("segment.bytes".to_string(), (64 * 1024 * 1024).to_string()),
        ]);
        let created = broker
            .create_topic(TopicRecord {
                name: OFFSETS_TOPIC.to_string(),
                partitions: self.config.offsets_topic_partitions.max(1),
                replication_factor,
                configs,
                internal: true,
            })
            .await;
        match created {
            Ok(topic) => Ok(topic),
            // Another broker of the cluster, or another request here, created it first.
            Err(
                BrokerError::TopicExists(_)
                | BrokerError::Metadata(quiver_metadata::MetadataError::TopicExists { .. }),
            ) => {
                let _guard = broker.admin.lock().await;
                broker.reconcile_now().await?;
                broker.topic(OFFSETS_TOPIC)
            }
            Err(e) => Err(e),
        }
    }

    /// Which broker coordinates `group_id`. In a cluster this creates the offsets topic
    /// at its first use, once enough brokers are available for its replicas.
    pub async fn find_coordinator(
        &self,
        broker: &Broker,
        group_id: &str,
    ) -> Result<CoordinatorAddress, BrokerError> {
        let me = broker.config.node_id;
        if !broker.config.cluster.is_cluster() {
            return Ok(CoordinatorAddress {
                node_id: me,
                address: broker.advertised.clone(),
                local: true,
            });
        }
        let unavailable = |reason: String| BrokerError::CoordinatorNotAvailable {
            group_id: group_id.to_string(),
            reason,
        };
        let voters = broker.config.cluster.voter_map().map_or(1, |v| v.len());
        let replication_factor = self
            .config
            .offsets_topic_replication_factor
            .min(u16::try_from(voters).unwrap_or(u16::MAX))
            .max(1);
        let topic = match self.offsets_topic(broker, replication_factor).await {
            Ok(topic) => topic,
            Err(BrokerError::Metadata(
                e @ quiver_metadata::MetadataError::NotEnoughBrokers { .. },
            )) => {
                return Err(unavailable(format!(
                    "{OFFSETS_TOPIC} cannot be created yet ({e})"
                )));
            }
            Err(e) => return Err(e),
        };
        let index = offsets_partition(group_id, topic.partitions.len());
        let image = broker.metadata.image();
        let leader = image
            .partition(OFFSETS_TOPIC, index)
            .and_then(|a| a.leader)
            .ok_or_else(|| unavailable(format!("{OFFSETS_TOPIC}-{index} has no leader")))?;
        let address = image
            .broker(leader)
            .map(|b| b.listener.clone())
            .ok_or_else(|| unavailable(format!("broker {leader} is not registered")))?;
        Ok(CoordinatorAddress {
            node_id: leader,
            address,
            local: leader == me,
        })
    }

    /// In a cluster: follows this broker's leaderships of the offsets topic's partitions
    /// after every reconcile, loading the groups of a partition it starts to lead and
    /// forgetting those of one it stops leading, until `shutdown`.
    pub(crate) async fn run_ownership(
        self: Arc<Self>,
        broker: Arc<Broker>,
        shutdown: CancellationToken,
    ) {
        // A partition led here that could not be loaded (offline, or its replay
        // failed) is tried again, not left until the next metadata change.
        broker
            .after_each_reconcile(&shutdown, OWNERSHIP_RETRY, || {
                self.settle_ownership(&broker)
            })
            .await;
    }

    /// Brings each offsets partition's [`Status`] in line with this broker's role;
    /// returns whether a partition led here is still not loaded.
    async fn settle_ownership(&self, broker: &Broker) -> bool {
        let Ok(topic) = broker.topic(OFFSETS_TOPIC) else {
            return false;
        };
        let owners = {
            let mut owners = self.owners.lock();
            if owners.len() != topic.partitions.len() {
                // The topic appeared (its partition count never changes afterwards).
                *owners = (0..topic.record.partitions)
                    .map(|index| Owner::new(index, Status::Elsewhere { leader: None }))
                    .collect();
            }
            owners.clone()
        };
        let leading_now = |partition: &Partition| {
            if partition.is_local() && partition.offline_reason().is_none() {
                partition.leading_epoch()
            } else {
                None
            }
        };
        let mut unsettled = false;
        for owner in owners {
            let Some(partition) = topic.partitions.get(owner.index as usize) else {
                continue;
            };
            let here = |status| matches!(status, Status::Here { leader_epoch } if Some(leader_epoch) == leading_now(partition));
            if here(*owner.status.lock()) {
                continue;
            }
            let _order = owner.order.lock().await;
            // Read again under the lock: commits in flight have settled meanwhile.
            let current = *owner.status.lock();
            if here(current) {
                continue;
            }
            let leading = leading_now(partition);
            // The status changes first, then the groups go: a request that checks the
            // status under the coordinator's lock sees one or the other, never a group
            // served by a broker that no longer coordinates it.
            let Some(leader_epoch) = leading else {
                let leader = broker
                    .metadata
                    .image()
                    .partition(OFFSETS_TOPIC, owner.index)
                    .and_then(|a| a.leader);
                owner.set(Status::Elsewhere { leader });
                if matches!(current, Status::Here { .. }) {
                    self.unload(owner.index, topic.partitions.len());
                }
                if partition.is_local() && leader == Some(broker.config.node_id) {
                    // Led here, but its log is offline: clients are told to wait.
                    owner.set(Status::Loading);
                    unsettled = true;
                }
                continue;
            };
            owner.set(Status::Loading);
            if matches!(current, Status::Here { .. }) {
                self.unload(owner.index, topic.partitions.len());
            }
            let mut records = Vec::new();
            match replay_partition(partition, &mut records).await {
                Ok(()) => {
                    let loaded = records.len();
                    self.state.lock().coordinator.load(records);
                    owner.set(Status::Here { leader_epoch });
                    tracing::info!(
                        partition = owner.index,
                        leader_epoch,
                        records = loaded,
                        "coordinating the groups of {OFFSETS_TOPIC}-{}",
                        owner.index
                    );
                }
                Err(e) => {
                    tracing::error!(partition = owner.index, error = %e, "cannot load the committed offsets of {OFFSETS_TOPIC}-{}; trying again", owner.index);
                    unsettled = true;
                }
            }
        }
        unsettled
    }

    /// Forgets the groups of offsets partition `index`, answering their parked joins.
    fn unload(&self, index: u32, partitions: usize) {
        let mut s = self.state.lock();
        let answers = s
            .coordinator
            .unload(|group| offsets_partition(group, partitions) == index);
        s.answer(answers);
        tracing::info!(
            partition = index,
            "no longer coordinating the groups of {OFFSETS_TOPIC}-{index}"
        );
    }
}

/// Reads one offsets partition from its start to its log end into `out`. A new leader
/// reads past its high watermark: what lies there was appended by an earlier leader and
/// may have been acknowledged. Records of kinds this broker does not know are skipped;
/// so are damaged ones, with a warning, since one bad record must not keep the groups
/// of a partition from loading.
pub(super) async fn replay_partition(
    partition: &Partition,
    out: &mut Vec<OffsetRecord>,
) -> Result<(), BrokerError> {
    let log = partition.log()?;
    let mut offset = log.log_start_offset();
    loop {
        let reader = Arc::clone(&log);
        let read =
            blocking(move || Ok(reader.read_with(offset, REPLAY_READ_BYTES, ReadBound::LogEnd)))
                .await?
                .map_err(|source| partition.storage_error(source))?;
        if read.bytes.is_empty() || read.next_offset <= offset {
            return Ok(());
        }
        for item in batch::split(&read.bytes) {
            let (_, bytes) = item?;
            for record in batch::decode_records(&bytes)? {
                let Some(key) = record.key.as_deref() else {
                    continue;
                };
                match OffsetRecord::decode(key, record.value.as_deref()) {
                    Ok(r) => out.push(r),
                    Err(OffsetRecordError::UnknownKind(_)) => {}
                    Err(e) => tracing::warn!(
                        partition = partition.index,
                        offset = record.offset,
                        error = %e,
                        "skipping a damaged committed-offset record"
                    ),
                }
            }
        }
        offset = read.next_offset;
        if offset >= log.log_end_offset() {
            return Ok(());
        }
    }
}
