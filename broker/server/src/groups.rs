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
//! Durability: a commit is applied to the coordinator and appended to the offsets topic
//! as one batch under a per-partition lock, so the log holds a group's records in the
//! order the coordinator applied them; the client is answered only after the append.
//! At startup the whole topic is replayed into the coordinator before the listener
//! serves anything. Memberships are not stored: after a restart members rejoin.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::Mutex;
use quiver_group::{
    CoordinatorConfig, GroupCoordinator, GroupError, JoinOutcome, JoinTicket, OffsetRecord,
    OffsetRecordError, TopicCatalog,
};
use quiver_proto::api::{
    CommittedOffset, GroupDescription, HeartbeatRequest, HeartbeatResponse, JoinGroupRequest,
    JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse, ListGroupsResponse,
    OffsetCommitRequest, OffsetFetchRequest, OffsetFetchResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use quiver_proto::batch::{self, BatchBuilder, Compression, ProducerIdentity};
use tokio::sync::{Notify, oneshot};
use tokio_util::sync::CancellationToken;

use crate::broker::Broker;
use crate::catalog::TopicRecord;
use crate::config::GroupsConfig;
use crate::error::BrokerError;
use crate::service::now_ms;

/// The internal topic holding committed offsets.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Bytes read per step while replaying the offsets topic at startup.
const REPLAY_READ_BYTES: usize = 1024 * 1024;
/// Longest an offsets append may wait; it only ever waits on the disk.
const APPEND_TIMEOUT: Duration = Duration::from_secs(30);
/// Shortest sleep of the timer, so a deadline that stays in the past after a poll (which
/// the coordinator should never produce) costs a poll per millisecond, not a spin.
const MIN_TIMER_SLEEP: Duration = Duration::from_millis(1);

type JoinReply = oneshot::Sender<Result<JoinGroupResponse, GroupError>>;

/// The broker's consumer groups. See the module docs.
#[derive(Debug)]
pub struct GroupService {
    state: Mutex<State>,
    /// Re-arms the timer after an event that may have moved the next deadline.
    wake: Notify,
    /// One lock per partition of the offsets topic, held from applying a commit to the
    /// end of its append, so the log order of a group's records is the applied order
    /// and a replay ends with the latest commit.
    append_order: Vec<tokio::sync::Mutex<()>>,
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
        for done in self.coordinator.poll(now, &Topics(broker)) {
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
    /// Creates `__consumer_offsets` when missing and replays it into a new coordinator.
    /// Must finish before the listener serves requests, so no fetch of committed offsets
    /// can see a half-loaded state.
    pub async fn open(broker: &Broker, config: &GroupsConfig) -> Result<GroupService, BrokerError> {
        let topic = match broker.topic(OFFSETS_TOPIC) {
            Ok(topic) => topic,
            Err(BrokerError::UnknownTopic(_)) => {
                let configs = BTreeMap::from([
                    ("cleanup.policy".to_string(), "compact".to_string()),
                    // Small segments close often, so compaction has something to clean.
                    ("segment.bytes".to_string(), (64 * 1024 * 1024).to_string()),
                ]);
                broker
                    .create_topic(TopicRecord {
                        name: OFFSETS_TOPIC.to_string(),
                        partitions: config.offsets_topic_partitions.max(1),
                        replication_factor: 1,
                        configs,
                        internal: true,
                    })
                    .await?
            }
            Err(e) => return Err(e),
        };
        if !topic.record.internal {
            tracing::warn!(
                topic = OFFSETS_TOPIC,
                "the offsets topic exists but is not marked internal; using it anyway"
            );
        }
        let mut records = Vec::new();
        for partition in &topic.partitions {
            replay_partition(partition, &mut records).await?;
        }
        let loaded = records.len();
        let mut coordinator = GroupCoordinator::new(CoordinatorConfig {
            min_session_timeout_ms: config.min_session_timeout_ms,
            max_session_timeout_ms: config.max_session_timeout_ms,
            initial_rebalance_delay_ms: config.initial_rebalance_delay_ms,
            incarnation: u64::try_from(now_ms()).unwrap_or(0),
            ..CoordinatorConfig::default()
        });
        coordinator.load(records);
        tracing::info!(
            records = loaded,
            groups = coordinator.list().groups.len(),
            "committed offsets loaded"
        );
        Ok(GroupService {
            state: Mutex::new(State {
                coordinator,
                parked: HashMap::new(),
                last_now: 0,
            }),
            wake: Notify::new(),
            append_order: topic
                .partitions
                .iter()
                .map(|_| tokio::sync::Mutex::new(()))
                .collect(),
        })
    }

    /// Joins a group, waiting (until the rebalance completes or the broker stops) when
    /// the coordinator parks the join.
    pub async fn join(
        &self,
        broker: &Broker,
        req: JoinGroupRequest,
        shutdown: &CancellationToken,
    ) -> Result<JoinGroupResponse, BrokerError> {
        let waiting = {
            let mut s = self.state.lock();
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

    pub fn sync(&self, req: &SyncGroupRequest) -> Result<SyncGroupResponse, BrokerError> {
        let result = {
            let mut s = self.state.lock();
            let now = s.now();
            s.coordinator.sync(req, now)
        };
        // A sync may start a follow-up rebalance, whose deadlines the timer must see.
        self.wake.notify_one();
        Ok(result?)
    }

    /// Does not re-arm the timer: a heartbeat only moves a deadline later, and a timer
    /// that wakes early costs one poll, where re-arming would cost one per heartbeat.
    pub fn heartbeat(&self, req: &HeartbeatRequest) -> Result<HeartbeatResponse, BrokerError> {
        let mut s = self.state.lock();
        let now = s.now();
        Ok(s.coordinator.heartbeat(req, now)?)
    }

    pub fn leave(
        &self,
        broker: &Broker,
        req: &LeaveGroupRequest,
    ) -> Result<LeaveGroupResponse, BrokerError> {
        let result = {
            let mut s = self.state.lock();
            let now = s.now();
            let result = s.coordinator.leave(req, now);
            // The rest of the group may now complete its rebalance.
            s.deliver(now, broker);
            result
        };
        self.wake.notify_one();
        Ok(result?)
    }

    pub fn fetch_offsets(&self, req: &OffsetFetchRequest) -> OffsetFetchResponse {
        self.state.lock().coordinator.fetch_offsets(req)
    }

    pub fn list(&self) -> ListGroupsResponse {
        self.state.lock().coordinator.list()
    }

    /// The coordinator's view of a group; end offsets and lag are the caller's to fill.
    pub fn describe(&self, group_id: &str) -> Result<GroupDescription, BrokerError> {
        Ok(self.state.lock().coordinator.describe(group_id)?)
    }

    /// Fails with `GROUP_NOT_EMPTY` while the group has members.
    pub fn check_resettable(&self, group_id: &str) -> Result<(), BrokerError> {
        Ok(self.state.lock().coordinator.check_resettable(group_id)?)
    }

    /// Applies and persists a commit; answers only once the records are appended.
    pub async fn commit(
        &self,
        broker: &Broker,
        req: OffsetCommitRequest,
    ) -> Result<(), BrokerError> {
        let group_id = req.group_id.clone();
        self.persist(broker, &group_id, |c, now, topics| {
            c.commit(req, now, topics)
        })
        .await
    }

    /// Deletes an empty group, appending tombstones for its commits.
    pub async fn delete(&self, broker: &Broker, group_id: &str) -> Result<(), BrokerError> {
        self.persist(broker, group_id, |c, _, _| c.delete(group_id))
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
        })
        .await
    }

    /// Runs `apply` on the coordinator and appends the records it returns to the
    /// group's partition of the offsets topic, in the applied order.
    async fn persist(
        &self,
        broker: &Broker,
        group_id: &str,
        apply: impl FnOnce(
            &mut GroupCoordinator,
            u64,
            &dyn TopicCatalog,
        ) -> Result<Vec<OffsetRecord>, GroupError>,
    ) -> Result<(), BrokerError> {
        let index = offsets_partition(group_id, self.append_order.len());
        let lock = self.append_order.get(index as usize).ok_or_else(|| {
            BrokerError::Internal(format!("no append lock for offsets partition {index}"))
        })?;
        let _order = lock.lock().await;
        let records = {
            let mut s = self.state.lock();
            let now = s.now();
            apply(&mut s.coordinator, now, &Topics(broker))?
        };
        if records.is_empty() {
            return Ok(());
        }
        let now = now_ms();
        let mut builder = BatchBuilder::new();
        for record in &records {
            let (key, value) = record.encode();
            builder.push(now, Some(&key), value.as_deref(), &[]);
        }
        let batch = builder.build(Compression::None, ProducerIdentity::NONE);
        let partition = broker.partition(OFFSETS_TOPIC, index)?;
        partition.append(batch, now, APPEND_TIMEOUT).await?;
        Ok(())
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

/// The offsets partition that holds a group's records.
fn offsets_partition(group_id: &str, partitions: usize) -> u32 {
    let n = u32::try_from(partitions).unwrap_or(1).max(1);
    quiver_proto::murmur2::key_partition(group_id.as_bytes(), n)
}

/// Reads one offsets partition from its start to its high watermark into `out`.
/// Records of kinds this broker does not know are skipped; so are damaged ones, with a
/// warning, since one bad record must not keep the broker from starting.
async fn replay_partition(
    partition: &crate::partition::Partition,
    out: &mut Vec<OffsetRecord>,
) -> Result<(), BrokerError> {
    let mut offset = partition.log().log_start_offset();
    loop {
        let read = partition.read(offset, REPLAY_READ_BYTES).await?;
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
        if offset >= read.high_watermark {
            return Ok(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_group_always_maps_to_the_same_offsets_partition() {
        assert_eq!(offsets_partition("billing", 1), 0);
        let p = offsets_partition("billing", 8);
        assert!(p < 8);
        assert_eq!(offsets_partition("billing", 8), p);
        assert_eq!(offsets_partition("billing", 0), 0);
    }
}
