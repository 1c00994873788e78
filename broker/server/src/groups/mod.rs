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

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use quiver_group::{
    CommitRequest, CommitTicket, CommittedOffset, CoordinatorConfig, GroupCoordinator,
    GroupDescription, GroupError, GroupSummary, HeartbeatRequest, JoinOutcome, JoinRequest,
    JoinTicket, Joined, LeaveRequest, OffsetRecord, PendingCommit, SyncRequest, TopicCatalog,
    TopicPartition,
};
use quiver_proto::batch::{BatchBuilder, Compression, ProducerIdentity};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::config::GroupsConfig;
use crate::error::BrokerError;
use crate::partition::Partition;
use crate::service::now_ms;

mod ownership;
#[cfg(test)]
mod tests;

pub use ownership::CoordinatorAddress;
use ownership::{Owner, Status, replay_partition};

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Longest an offsets append may wait, for the disk and, in a cluster, for the
/// partition's in-sync replicas.
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);
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
        let order = Arc::clone(&owner.order).lock_owned().await;
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
        // The lock orders the appends, and is released when the append ends (even if
        // this request is dropped first); waiting for the in-sync replicas happens after
        // it, so one slow follower does not hold up every other group's commits.
        let appended = self
            .append(broker, index, &records, order)
            .await
            .map_err(moved);
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

    /// Appends `records` as one batch to partition `index` of the offsets topic, holding
    /// `order` until the append has ended; returns the partition, the batch's last
    /// offset and the topic's `min.insync.replicas`, for the wait until the in-sync
    /// replicas have it. `None` when there was nothing to append.
    ///
    /// The append runs as a task of its own: should the request be dropped while the
    /// log is being written, the append still ends before the next commit of the
    /// partition may begin, so the log keeps the acceptance order.
    async fn append(
        &self,
        broker: &Broker,
        index: u32,
        records: &[OffsetRecord],
        order: tokio::sync::OwnedMutexGuard<()>,
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
        let partition = Arc::clone(topic.partition(index)?);
        let appending = Arc::clone(&partition);
        let out = tokio::spawn(async move {
            let _order = order;
            appending.append(batch, now, APPEND_TIMEOUT).await
        })
        .await
        .map_err(|e| BrokerError::Internal(format!("the offsets append failed: {e}")))??;
        Ok(Some((
            partition,
            out.last_offset,
            topic.config.min_insync_replicas,
        )))
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
