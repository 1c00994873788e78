//! Consumer groups on the broker: the [`GroupCoordinator`] state machine behind a mutex,
//! joins parked until their rebalance completes, the timer that drives session and
//! rebalance deadlines, and committed offsets made durable in the internal compacted
//! topic `__consumer_offsets`.
//!
//! The coordinator itself does no I/O and reads no clock; this file gives it both. Every
//! event (join, leave) is followed by a `poll` whose completions answer parked joins, and
//! the timer task sleeps until `next_deadline`, re-armed through a [`Notify`] after every
//! event, so it never spins.
//!
//! Durability: a commit is accepted by the coordinator, appended to the offsets topic as
//! one batch, and then completed (made visible to offset fetches, descriptions and lag)
//! or, if the append failed, aborted, so nothing a restart would lose is ever shown.
//! All three steps happen under a per-partition lock, so the log holds a group's records
//! in the order the coordinator accepted them; the client is answered only after the
//! append. Memberships are not stored: after a restart or a move members rejoin.
//!
//! Where a group lives: a group belongs to one partition of the offsets topic (its id's
//! murmur2 hash), and the broker that leads that partition coordinates it, as in Kafka.
//! A single node leads every partition, and replays the whole topic before its listener
//! serves anything. In a cluster the topic is created at the first `FindCoordinator`
//! (with `groups.offsets_topic_replication_factor` replicas), and [`GroupService::
//! run_ownership`] follows the leaderships after every metadata change: a partition this
//! broker starts to lead is replayed (to its log end, which holds every commit any
//! earlier leader acknowledged) before its groups are served; one it stops leading has
//! its groups forgotten here, and their members, told `NOT_COORDINATOR`, find the new
//! coordinator. A commit is acknowledged only once every in-sync replica of its
//! partition has it, so the loss of any one broker loses no committed offset.
//!
//! This file speaks the coordinator's types; translating the wire's requests and error
//! codes is the request handlers' job.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use quiver_group::{
    CommitRequest, CommitTicket, CommittedOffset, CoordinatorConfig, GroupCoordinator,
    GroupDescription, GroupError, GroupSummary, HeartbeatRequest, JoinOutcome, JoinRequest,
    JoinTicket, Joined, LeaveRequest, OffsetRecord, OffsetRecordError, PendingCommit, SyncRequest,
    TopicCatalog, TopicPartition,
};
use quiver_proto::batch::{self, BatchBuilder, Compression, ProducerIdentity};
use quiver_storage::ReadBound;
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::broker::{Topic, TopicRecord};
use crate::config::GroupsConfig;
use crate::error::BrokerError;
use crate::partition::Partition;
use crate::service::{blocking, now_ms};

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Bytes read per step while replaying the offsets topic.
const REPLAY_READ_BYTES: usize = 1024 * 1024;
/// Longest an offsets append may wait, for the disk and, in a cluster, for the
/// partition's in-sync replicas.
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);
/// How soon an offsets partition led here that could not be loaded is tried again.
const OWNERSHIP_RETRY: Duration = Duration::from_secs(1);
/// Shortest sleep of the timer, so a deadline that stays in the past after a poll (which
/// the coordinator should never produce) costs a poll per millisecond, not a spin.
const MIN_TIMER_SLEEP: Duration = Duration::from_millis(1);

type JoinReply = oneshot::Sender<Result<Joined, GroupError>>;

/// The broker's consumer groups. See the module docs.
#[derive(Debug)]
pub struct GroupService {
    state: Mutex<State>,
    /// Re-arms the timer after an event that may have moved the next deadline.
    wake: Notify,
    /// One entry per partition of the offsets topic: whether this broker coordinates
    /// its groups. Empty in a cluster until the topic exists.
    owners: Mutex<Vec<Arc<Owner>>>,
    config: GroupsConfig,
    /// Makes the next offsets append fail or never finish, so tests can check what a
    /// failed or abandoned append leaves visible.
    #[cfg(test)]
    next_append_fault: Mutex<Option<tests::AppendFault>>,
}

/// This broker's part in one partition of the offsets topic.
#[derive(Debug)]
struct Owner {
    index: u32,
    status: Mutex<Status>,
    /// Held from accepting a commit to settling it after its append, so the log order
    /// of a group's records is the acceptance order and a replay ends with the commit
    /// the coordinator shows; and while the partition's groups are loaded or unloaded.
    order: tokio::sync::Mutex<()>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Status {
    /// Another broker leads the partition (`None`: no leader known).
    Elsewhere { leader: Option<u32> },
    /// This broker leads it and is replaying its commits.
    Loading,
    /// This broker coordinates its groups, as the leader of this epoch.
    Here { leader_epoch: u32 },
}

impl Owner {
    fn new(index: u32, status: Status) -> Arc<Owner> {
        Arc::new(Owner {
            index,
            status: Mutex::new(status),
            order: tokio::sync::Mutex::new(()),
        })
    }

    /// `Ok` when this broker coordinates the partition's groups now.
    fn check(&self, group_id: &str) -> Result<(), BrokerError> {
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

    fn set(&self, status: Status) {
        *self.status.lock() = status;
    }
}

#[derive(Debug)]
struct State {
    coordinator: GroupCoordinator,
    /// Joins waiting for their rebalance, answered from `poll`'s completions.
    parked: HashMap<JoinTicket, JoinReply>,
    /// The coordinator's clock: wall-clock milliseconds, never moving backwards.
    last_now: u64,
}

impl State {
    fn now(&mut self) -> u64 {
        self.last_now = self.last_now.max(u64::try_from(now_ms()).unwrap_or(0));
        self.last_now
    }

    /// Advances the coordinator and answers the joins it completed.
    fn deliver(&mut self, now: u64, broker: &Broker) {
        let done = self.coordinator.poll(now, &Topics(broker));
        self.answer(done);
    }

    fn answer(&mut self, completions: Vec<quiver_group::Completion>) {
        for done in completions {
            match self.parked.remove(&done.ticket) {
                // The joiner may have gone (connection closed); it rejoins if it returns.
                Some(reply) => drop(reply.send(done.result)),
                None => {
                    tracing::debug!(ticket = ?done.ticket, "completion for a join no longer waiting")
                }
            }
        }
    }
}

/// The broker's topics as the coordinator sees them: partition counts.
struct Topics<'a>(&'a Broker);

impl TopicCatalog for Topics<'_> {
    fn partitions(&self, topic: &str) -> Option<u32> {
        self.0.topic(topic).ok().map(|t| t.record.partitions)
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
    /// On a single node: creates `__consumer_offsets` when missing and replays it into
    /// a new coordinator, which then coordinates every group. Must finish before the
    /// listener serves requests, so no fetch of committed offsets can see a half-loaded
    /// state. In a cluster: starts with no group, and [`run_ownership`](Self::
    /// run_ownership) loads the partitions this broker leads.
    pub async fn open(broker: &Broker, config: &GroupsConfig) -> Result<GroupService, BrokerError> {
        let coordinator = GroupCoordinator::new(CoordinatorConfig {
            min_session_timeout_ms: config.min_session_timeout_ms,
            max_session_timeout_ms: config.max_session_timeout_ms,
            initial_rebalance_delay_ms: config.initial_rebalance_delay_ms,
            incarnation: u64::try_from(now_ms()).unwrap_or(0),
            ..CoordinatorConfig::default()
        });
        let service = GroupService {
            state: Mutex::new(State {
                coordinator,
                parked: HashMap::new(),
                last_now: 0,
            }),
            wake: Notify::new(),
            owners: Mutex::new(Vec::new()),
            config: config.clone(),
            #[cfg(test)]
            next_append_fault: Mutex::new(None),
        };
        if broker.config.cluster.is_cluster() {
            return Ok(service);
        }
        let topic = service.offsets_topic(broker, 1).await?;
        let mut records = Vec::new();
        for partition in &topic.partitions {
            // A quarantined offsets partition must not keep the broker down; the groups
            // it holds start without their committed offsets (logged, so an operator
            // can reopen it and restart to load them).
            if let Some(reason) = partition.offline_reason() {
                tracing::error!(topic = OFFSETS_TOPIC, partition = partition.index, reason = %reason, "offsets partition offline: committed offsets of its groups are not loaded");
                continue;
            }
            replay_partition(partition, &mut records).await?;
        }
        let loaded = records.len();
        let groups = {
            let mut s = service.state.lock();
            s.coordinator.load(records);
            s.coordinator.list().len()
        };
        tracing::info!(records = loaded, groups, "committed offsets loaded");
        *service.owners.lock() = (0..topic.record.partitions)
            .map(|index| Owner::new(index, Status::Here { leader_epoch: 0 }))
            .collect();
        Ok(service)
    }

    /// The offsets topic, created with `replication_factor` replicas when missing.
    async fn offsets_topic(
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
            // Another broker of the cluster created it first.
            Err(BrokerError::Metadata(quiver_metadata::MetadataError::TopicExists { .. })) => {
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

    /// The partition entry of `group_id`, when this broker coordinates it now.
    fn owner(&self, group_id: &str) -> Result<Arc<Owner>, BrokerError> {
        let owners = self.owners.lock();
        let Some(owner) = owners
            .get(offsets_partition(group_id, owners.len()) as usize)
            .cloned()
        else {
            // A cluster whose offsets topic does not exist yet.
            return Err(BrokerError::NotCoordinator {
                group_id: group_id.to_string(),
                partition: 0,
                leader: None,
                loading: false,
            });
        };
        drop(owners);
        owner.check(group_id)?;
        Ok(owner)
    }

    /// Joins a group, waiting (until the rebalance completes or the broker stops) when
    /// the coordinator parks the join.
    pub async fn join(
        &self,
        broker: &Broker,
        req: JoinRequest,
        shutdown: &CancellationToken,
    ) -> Result<Joined, BrokerError> {
        let waiting = {
            // Checked under the coordinator's lock, which unloading takes too.
            let mut s = self.state.lock();
            self.owner(&req.group_id)?;
            let now = s.now();
            let outcome = s.coordinator.join(req, now, &Topics(broker));
            // Park before polling: the poll may complete this very join.
            let waiting = match outcome {
                Ok(JoinOutcome::Ready(resp)) => Ok(resp),
                Ok(JoinOutcome::Pending(ticket)) => {
                    let (tx, rx) = oneshot::channel();
                    s.parked.insert(ticket, tx);
                    Err(Ok(rx))
                }
                Err(e) => Err(Err(e)),
            };
            s.deliver(now, broker);
            waiting
        };
        self.wake.notify_one();
        let rx = match waiting {
            Ok(resp) => return Ok(resp),
            Err(Err(e)) => return Err(e.into()),
            Err(Ok(rx)) => rx,
        };
        tokio::select! {
            answer = rx => match answer {
                Ok(result) => result.map_err(Into::into),
                Err(_) => Err(BrokerError::Internal("the coordinator dropped a parked join".into())),
            },
            () = shutdown.cancelled() => Err(BrokerError::ShuttingDown),
        }
    }

    /// The member's assignment in the generation it joined, sorted.
    pub fn sync(&self, req: &SyncRequest) -> Result<Vec<TopicPartition>, BrokerError> {
        let result = {
            let mut s = self.state.lock();
            self.owner(&req.group_id)?;
            let now = s.now();
            s.coordinator.sync(req, now)
        };
        // A sync may start a follow-up rebalance, whose deadlines the timer must see.
        self.wake.notify_one();
        Ok(result?)
    }

    /// Does not re-arm the timer: a heartbeat only moves a deadline later, and a timer
    /// that wakes early costs one poll, where re-arming would cost one per heartbeat.
    pub fn heartbeat(&self, req: &HeartbeatRequest) -> Result<(), BrokerError> {
        let mut s = self.state.lock();
        self.owner(&req.group_id)?;
        let now = s.now();
        Ok(s.coordinator.heartbeat(req, now)?)
    }

    pub fn leave(&self, broker: &Broker, req: &LeaveRequest) -> Result<(), BrokerError> {
        let result = {
            let mut s = self.state.lock();
            self.owner(&req.group_id)?;
            let now = s.now();
            let result = s.coordinator.leave(req, now);
            // The rest of the group may now complete its rebalance.
            s.deliver(now, broker);
            result
        };
        self.wake.notify_one();
        Ok(result?)
    }

    /// The group's durable committed offsets, for `partitions` or all, sorted.
    pub fn fetch_offsets(
        &self,
        group_id: &str,
        partitions: Option<&[TopicPartition]>,
    ) -> Result<Vec<CommittedOffset>, BrokerError> {
        let s = self.state.lock();
        self.owner(group_id)?;
        Ok(s.coordinator.fetch_offsets(group_id, partitions))
    }

    /// The groups this broker coordinates.
    pub fn list(&self) -> Vec<GroupSummary> {
        self.state.lock().coordinator.list()
    }

    /// The coordinator's view of a group; end offsets and lag are the caller's to fill.
    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, BrokerError> {
        let s = self.state.lock();
        self.owner(group_id)?;
        Ok(s.coordinator.describe(group_id)?)
    }

    /// Fails with `GROUP_NOT_EMPTY` while the group has members.
    pub fn check_resettable(&self, group_id: &str) -> Result<(), BrokerError> {
        let s = self.state.lock();
        self.owner(group_id)?;
        Ok(s.coordinator.check_resettable(group_id)?)
    }

    /// Accepts and persists a commit; answers only once the records are appended, and
    /// only then do fetches see the new offsets.
    pub async fn commit(&self, broker: &Broker, req: CommitRequest) -> Result<(), BrokerError> {
        let group_id = req.group_id.clone();
        self.persist(broker, &group_id, |c, now, topics| {
            c.commit(req, now, topics).map(Persist::Commit)
        })
        .await
    }

    /// Deletes an empty group, appending tombstones for its commits.
    ///
    /// Unlike a commit, a deletion takes effect before its append: should the append
    /// fail, the group is gone until a restart replays the commits the tombstones were
    /// meant to delete.
    pub async fn delete(&self, broker: &Broker, group_id: &str) -> Result<(), BrokerError> {
        self.persist(broker, group_id, |c, _, _| {
            c.delete(group_id).map(Persist::Deletion)
        })
        .await
    }

    /// Overwrites an empty group's offsets with resolved ones and persists them.
    pub async fn reset(
        &self,
        broker: &Broker,
        group_id: &str,
        offsets: Vec<CommittedOffset>,
    ) -> Result<(), BrokerError> {
        self.persist(broker, group_id, |c, now, topics| {
            c.reset_offsets(group_id, offsets, now, topics)
                .map(Persist::Commit)
        })
        .await
    }

    /// Runs `apply` on the coordinator, appends the records it returns to the group's
    /// partition of the offsets topic, and settles a commit by the append's outcome:
    /// completed once durable, aborted if the append failed.
    async fn persist(
        &self,
        broker: &Broker,
        group_id: &str,
        apply: impl FnOnce(&mut GroupCoordinator, u64, &dyn TopicCatalog) -> Result<Persist, GroupError>,
    ) -> Result<(), BrokerError> {
        let owner = self.owner(group_id)?;
        let order = owner.order.lock().await;
        // The partition may have moved while this waited for the lock, or moved away
        // and back (a new leadership whose commits this broker has not loaded yet).
        let index = owner.index;
        self.check_leading(broker, &owner, group_id)?;
        let (ticket, records) = {
            let mut s = self.state.lock();
            let now = s.now();
            match apply(&mut s.coordinator, now, &Topics(broker))? {
                Persist::Commit(PendingCommit { ticket, records }) => (Some(ticket), records),
                Persist::Deletion(records) => (None, records),
            }
        };
        let mut unsettled = Unsettled {
            service: self,
            ticket,
        };
        let moved = |e| match e {
            // Lost the leadership under the commit: the group moves with it.
            BrokerError::NotLeader { leader, .. } => BrokerError::NotCoordinator {
                group_id: group_id.to_string(),
                partition: index,
                leader,
                loading: false,
            },
            e => e,
        };
        // The lock orders the appends; waiting for the in-sync replicas happens after
        // it, so one slow follower does not hold up every other group's commits.
        let appended = self.append(broker, index, &records).await.map_err(moved);
        drop(order);
        let durable = match appended {
            Ok(Some((partition, last_offset, min_insync))) => partition
                .await_durable(last_offset, min_insync, APPEND_TIMEOUT)
                .await
                .map_err(moved),
            Ok(None) => Ok(()),
            Err(e) => Err(e),
        };
        if let Some(ticket) = unsettled.ticket.take() {
            let mut s = self.state.lock();
            match &durable {
                Ok(()) => s.coordinator.complete_commit(&ticket),
                Err(e) => {
                    tracing::warn!(group = %group_id, error = %e, "offset commit not durable; dropped");
                    s.coordinator.abort_commit(&ticket);
                }
            }
        }
        durable
    }

    /// `Ok` when this broker still leads the group's offsets partition at the epoch it
    /// loaded the partition's commits for.
    fn check_leading(
        &self,
        broker: &Broker,
        owner: &Owner,
        group_id: &str,
    ) -> Result<(), BrokerError> {
        owner.check(group_id)?;
        let loaded = match *owner.status.lock() {
            Status::Here { leader_epoch } => leader_epoch,
            _ => return owner.check(group_id),
        };
        let leading = broker
            .topic(OFFSETS_TOPIC)
            .ok()
            .and_then(|t| t.partitions.get(owner.index as usize).cloned())
            .and_then(|p| p.leading_epoch());
        if leading == Some(loaded) {
            return Ok(());
        }
        Err(BrokerError::NotCoordinator {
            group_id: group_id.to_string(),
            partition: owner.index,
            leader: None,
            // Led here again at a new epoch: its commits are about to be reloaded.
            loading: leading.is_some(),
        })
    }

    /// Appends `records` as one batch to partition `index` of the offsets topic; returns
    /// the partition, the batch's last offset and the topic's `min.insync.replicas`, for
    /// the wait until the in-sync replicas have it. `None` when there was nothing to
    /// append.
    async fn append(
        &self,
        broker: &Broker,
        index: u32,
        records: &[OffsetRecord],
    ) -> Result<Option<(Arc<Partition>, i64, u16)>, BrokerError> {
        if records.is_empty() {
            return Ok(None);
        }
        #[cfg(test)]
        {
            let fault = self.next_append_fault.lock().take();
            if let Some(fault) = fault {
                return fault.inject().await.map(|()| None);
            }
        }
        let now = now_ms();
        let mut builder = BatchBuilder::new();
        for record in records {
            let (key, value) = record.encode();
            builder.push(now, Some(&key), value.as_deref(), &[]);
        }
        let batch = builder.build(Compression::None, ProducerIdentity::NONE);
        let topic = broker.topic(OFFSETS_TOPIC)?;
        let partition = topic.partition(index)?;
        let out = partition.append(batch, now, APPEND_TIMEOUT).await?;
        Ok(Some((
            Arc::clone(partition),
            out.last_offset,
            topic.config.min_insync_replicas,
        )))
    }

    /// In a cluster: follows this broker's leaderships of the offsets topic's partitions
    /// after every reconcile, loading the groups of a partition it starts to lead and
    /// forgetting those of one it stops leading, until `shutdown`.
    pub(crate) async fn run_ownership(
        self: Arc<Self>,
        broker: Arc<Broker>,
        shutdown: CancellationToken,
    ) {
        let mut reconciled = broker.reconciled.subscribe();
        loop {
            reconciled.borrow_and_update();
            let unsettled = self.settle_ownership(&broker).await;
            // A partition led here that could not be loaded (offline, or its replay
            // failed) is tried again, not left until the next metadata change.
            let retry = async {
                if unsettled {
                    tokio::time::sleep(OWNERSHIP_RETRY).await;
                } else {
                    std::future::pending::<()>().await;
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                changed = reconciled.changed() => if changed.is_err() { return },
                () = retry => {}
            }
        }
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

    /// Drives the coordinator's deadlines (session expiry, rebalance timeouts, the
    /// initial delay) until `shutdown`: sleeps until the next deadline, or until an
    /// event re-arms it.
    pub(crate) async fn run_timer(
        self: Arc<Self>,
        broker: Arc<Broker>,
        shutdown: CancellationToken,
    ) {
        loop {
            let wait = {
                let mut s = self.state.lock();
                let now = s.now();
                s.coordinator
                    .next_deadline()
                    .map(|d| Duration::from_millis(d.saturating_sub(now)).max(MIN_TIMER_SLEEP))
            };
            let sleep = async {
                match wait {
                    Some(d) => tokio::time::sleep(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = self.wake.notified() => continue,
                () = sleep => {
                    let mut s = self.state.lock();
                    let now = s.now();
                    s.deliver(now, &broker);
                }
            }
        }
    }
}

/// What an operation on the coordinator asks to persist.
enum Persist {
    /// A commit (or reset), visible once its records are appended.
    Commit(PendingCommit),
    /// A deletion's tombstones; the coordinator has forgotten the group already.
    Deletion(Vec<OffsetRecord>),
}

/// A commit whose append is under way. Should the request be dropped before the append
/// reports back (the client went away, the broker stops), the commit is aborted rather
/// than left pending for ever. Its records may still have reached the log; then a
/// restart shows an offset the coordinator did not, which only makes the group re-read
/// records, where the opposite would skip them.
struct Unsettled<'a> {
    service: &'a GroupService,
    ticket: Option<CommitTicket>,
}

impl Drop for Unsettled<'_> {
    fn drop(&mut self) {
        if let Some(ticket) = self.ticket.take() {
            self.service.state.lock().coordinator.abort_commit(&ticket);
        }
    }
}

/// The offsets partition that holds a group's records.
fn offsets_partition(group_id: &str, partitions: usize) -> u32 {
    let n = u32::try_from(partitions).unwrap_or(1).max(1);
    quiver_proto::murmur2::key_partition(group_id.as_bytes(), n)
}

/// Reads one offsets partition from its start to its log end into `out`. A new leader
/// reads past its high watermark: what lies there was appended by an earlier leader and
/// may have been acknowledged. Records of kinds this broker does not know are skipped;
/// so are damaged ones, with a warning, since one bad record must not keep the groups
/// of a partition from loading.
async fn replay_partition(
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

#[cfg(test)]
mod tests {
    use quiver_group::{Committer, GroupState};

    use super::*;
    use crate::config::BrokerConfig;

    /// How the next offsets append goes wrong.
    #[derive(Debug, Clone, Copy)]
    pub(super) enum AppendFault {
        /// It fails, as on a full or broken disk.
        Fail,
        /// It never finishes, so the request can be dropped while it waits.
        Hang,
    }

    impl AppendFault {
        pub(super) async fn inject(self) -> Result<(), BrokerError> {
            match self {
                AppendFault::Fail => Err(BrokerError::Internal(
                    "injected offsets append failure".into(),
                )),
                AppendFault::Hang => std::future::pending().await,
            }
        }
    }

    async fn open_broker(dir: &std::path::Path) -> (Broker, GroupService) {
        let broker =
            Broker::open(BrokerConfig::dev(dir), "localhost:7420".into()).expect("broker opens");
        broker
            .create_topic(TopicRecord {
                name: "t".into(),
                partitions: 1,
                replication_factor: 1,
                configs: BTreeMap::new(),
                internal: false,
            })
            .await
            .expect("topic created");
        let groups = GroupService::open(&broker, &GroupsConfig::default())
            .await
            .expect("groups open");
        (broker, groups)
    }

    fn commit(offset: i64) -> CommitRequest {
        commit_to("billing", offset)
    }

    fn commit_to(group_id: &str, offset: i64) -> CommitRequest {
        CommitRequest {
            group_id: group_id.into(),
            committer: Committer::Outside,
            offsets: vec![CommittedOffset {
                partition: TopicPartition::new("t", 0),
                offset,
                metadata: String::new(),
            }],
        }
    }

    /// The committed offset of `t-0` as offset fetch and describe show it.
    fn shown(groups: &GroupService) -> (Vec<i64>, Option<i64>) {
        let fetched = groups
            .fetch_offsets("billing", None)
            .expect("coordinated here")
            .iter()
            .map(|c| c.offset)
            .collect();
        let described = groups.describe("billing").ok().and_then(|d| {
            assert_eq!(d.state, GroupState::Empty);
            d.offsets.first().and_then(|p| p.committed)
        });
        (fetched, described)
    }

    #[tokio::test]
    async fn a_commit_whose_append_fails_is_refused_and_never_shown() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (broker, groups) = open_broker(dir.path()).await;

        groups
            .commit(&broker, commit(5))
            .await
            .expect("a durable commit");
        assert_eq!(shown(&groups), (vec![5], Some(5)));

        *groups.next_append_fault.lock() = Some(AppendFault::Fail);
        let err = groups
            .commit(&broker, commit(9))
            .await
            .expect_err("the append fails, so the commit does");
        assert!(err.to_string().contains("injected"), "{err}");
        assert_eq!(
            shown(&groups),
            (vec![5], Some(5)),
            "the failed commit is not shown"
        );

        // A restart replays what is durable, which is what was shown.
        let replayed = GroupService::open(&broker, &GroupsConfig::default())
            .await
            .expect("groups reopen");
        assert_eq!(shown(&replayed), (vec![5], Some(5)));

        // The client's retry succeeds.
        groups
            .commit(&broker, commit(9))
            .await
            .expect("the retry is durable");
        assert_eq!(shown(&groups), (vec![9], Some(9)));
        broker.close();
    }

    #[test]
    fn a_group_always_maps_to_the_same_offsets_partition() {
        assert_eq!(offsets_partition("billing", 1), 0);
        let p = offsets_partition("billing", 8);
        assert!(p < 8);
        assert_eq!(offsets_partition("billing", 8), p);
        assert_eq!(offsets_partition("billing", 0), 0);
    }

    #[tokio::test]
    async fn a_commit_dropped_during_its_append_is_aborted_not_left_pending() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (broker, groups) = open_broker(dir.path()).await;
        *groups.next_append_fault.lock() = Some(AppendFault::Hang);
        {
            let abandoned = groups.commit(&broker, commit_to("gone", 3));
            // Polls the commit once, into its append, and then drops it, as when the
            // client's connection closes.
            let waited = tokio::time::timeout(Duration::ZERO, abandoned).await;
            assert!(waited.is_err(), "the append never finishes");
        }
        assert!(
            groups
                .fetch_offsets("gone", None)
                .expect("coordinated here")
                .is_empty()
        );
        assert!(
            groups.list().iter().all(|g| g.group_id != "gone"),
            "a commit left pending would keep its group: {:?}",
            groups.list()
        );
        // The append order lock was released with the dropped request.
        groups
            .commit(&broker, commit_to("gone", 4))
            .await
            .expect("a later commit goes through");
        assert_eq!(
            groups
                .fetch_offsets("gone", None)
                .expect("coordinated here")[0]
                .offset,
            4
        );
        broker.close();
    }

    #[tokio::test]
    async fn a_coordinator_led_again_at_a_new_epoch_refuses_commits_until_it_reloads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (broker, groups) = open_broker(dir.path()).await;
        groups
            .commit(&broker, commit(5))
            .await
            .expect("a durable commit");
        // The offsets partition is led here again, at a new epoch (it was led elsewhere
        // meanwhile, and other commits may have been made there).
        let me = broker.config.node_id;
        broker
            .partition(OFFSETS_TOPIC, 0)
            .expect("offsets partition")
            .set_role(
                &crate::replica::Placement {
                    me,
                    leader: Some(me),
                    leader_epoch: 3,
                    partition_epoch: 3,
                    replicas: vec![me],
                    isr: vec![me],
                },
                0,
            );
        let err = groups
            .commit(&broker, commit(2))
            .await
            .expect_err("the commits of the new leadership are not loaded yet");
        assert!(
            matches!(err, BrokerError::NotCoordinator { loading: true, .. }),
            "{err}"
        );
        assert_eq!(shown(&groups), (vec![5], Some(5)), "nothing changed");
        broker.close();
    }
}
